"""AclAuthorizer: Kafka's ZooKeeper-mode ACL authorizer (`authorizer.class.name=
kafka.security.authorizer.AclAuthorizer`, or its old name kafka.security.auth.SimpleAclAuthorizer).

Semantics as Kafka's:
- `super.users` (`User:a;User:b`) may do anything.
- A resource with no ACL at all (literal of its name, literal `*`, or prefixed of a prefix of its
  name) is allowed to everyone only with `allow.everyone.if.no.acl.found=true`.
- A DENY for the principal (or User:*), the host (or *) and the operation (or ALL) wins;
  otherwise an ALLOW of the operation, of one implying it (DESCRIBE by READ/WRITE/DELETE/ALTER,
  DESCRIBE_CONFIGS by ALTER_CONFIGS) or of ALL grants it.
ACLs live in the metadata store (kbroker/metadata/acl_zk_client.py, Kafka's znodes); every
broker keeps all of them in memory, indexed by resource type and name, and follows Kafka's change
notifications, so an ACL written through any broker or by Kafka's tools applies everywhere
(notifications older than 15 minutes are deleted, as Kafka does).
Decisions are cached per (principal, host, operation, resource) and the cache is dropped on any
change: a produce costs one dict lookup per topic, whatever the number of ACLs. The principal may
be given as its KafkaPrincipal (the request's own, hashed as it is: no text is built per check)
or as its text `User:alice`; the text is made only when a decision is not cached.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable

from kbroker.config import KafkaConfig
from kbroker.config.support import ACL_AUTHORIZER_CLASSES
from kbroker.metadata.acl_zk_client import AclZkClient, StoredResource
from kbroker.security.acl import (
    IMPLIED_BY,
    SUPPORTED_OPERATIONS,
    WILDCARD_HOST,
    WILDCARD_PRINCIPAL,
    WILDCARD_RESOURCE,
    AccessControlEntry,
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    PatternType,
    ResourcePattern,
    ResourceType,
)
from kbroker.security.principal import KafkaPrincipal

log = logging.getLogger("kbroker.authorizer")

SUPER_USERS = "super.users"
ALLOW_EVERYONE_IF_NO_ACL_FOUND = "allow.everyone.if.no.acl.found"
# Change notifications older than this are deleted (Kafka's changeExpirationMs, 15 minutes).
CHANGE_EXPIRATION_MS = 15 * 60 * 1000
# ...looked for at most this often: each look reads every notification's znode, and a burst of
# changes would repeat it once per change (a notification waits a little longer to be deleted).
PURGE_INTERVAL_S = 60.0
# Decisions remembered before the cache starts over: bounds memory against a client that names
# a new topic in every request.
MAX_CACHED_DECISIONS = 100_000

Entries = frozenset[AccessControlEntry]
_DENY, _ALLOW = AclPermissionType.DENY, AclPermissionType.ALLOW


def _entry_from_json(item: dict[str, str]) -> AccessControlEntry:
    return AccessControlEntry(item["principal"], item["host"], AclOperation.parse(item["operation"]),
                              AclPermissionType.parse(item["permissionType"]))


def _entry_to_json(entry: AccessControlEntry) -> dict[str, str]:
    return {"principal": entry.principal, "permissionType": entry.permission_type.zk_name,
            "operation": entry.operation.zk_name, "host": entry.host}


def _stored(pattern: ResourcePattern) -> StoredResource:
    return StoredResource(pattern.resource_type.zk_name, pattern.name, pattern.pattern_type.name)


def _pattern(stored: StoredResource) -> ResourcePattern:
    return ResourcePattern(ResourceType.parse(stored.resource_type), stored.name,
                           PatternType.parse(stored.pattern_type))


def _now_ms() -> int:
    return int(time.time() * 1000)


def parse_super_users(text: str | None) -> frozenset[str]:
    """`User:alice;User:bob` -> {"User:alice", "User:bob"} (Kafka splits on ; and trims)."""
    return frozenset(part.strip() for part in (text or "").split(";") if part.strip())


def _denies(entries: Iterable[AccessControlEntry], principal: str, host: str, operation: AclOperation) -> bool:
    return any(e.permission_type == _DENY and e.principal in (principal, WILDCARD_PRINCIPAL)
               and e.host in (host, WILDCARD_HOST) and e.operation in (operation, AclOperation.ALL)
               for e in entries)


def _allows(entries: Iterable[AccessControlEntry], principal: str, host: str, operation: AclOperation) -> bool:
    granting = IMPLIED_BY.get(operation, (operation,))
    return any(e.permission_type == _ALLOW and e.principal in (principal, WILDCARD_PRINCIPAL)
               and e.host in (host, WILDCARD_HOST) and (e.operation in granting or e.operation == AclOperation.ALL)
               for e in entries)


def _named_patterns(acl_filter: AclBindingFilter) -> list[ResourcePattern]:
    """The patterns a filter matches at most (Kafka's filterToResources): a concrete resource type
    and name with LITERAL, PREFIXED or ANY (both)."""
    if acl_filter.name is None or acl_filter.resource_type in (ResourceType.ANY, ResourceType.UNKNOWN):
        return []
    types = {PatternType.LITERAL: (PatternType.LITERAL,), PatternType.PREFIXED: (PatternType.PREFIXED,),
             PatternType.ANY: (PatternType.LITERAL, PatternType.PREFIXED)}.get(acl_filter.pattern_type, ())
    return [ResourcePattern(acl_filter.resource_type, acl_filter.name, t) for t in types]


class AclAuthorizer:
    def __init__(self, zk: AclZkClient, super_users: frozenset[str] = frozenset(),
                 allow_everyone_if_no_acl_found: bool = False) -> None:
        self.zk = zk
        self.super_users = super_users
        self.allow_everyone_if_no_acl_found = allow_everyone_if_no_acl_found
        self._acls: dict[ResourcePattern, Entries] = {}
        self._literal: dict[tuple[ResourceType, str], Entries] = {}
        self._prefixed: dict[ResourceType, dict[str, Entries]] = {}
        self._cache: dict[tuple[KafkaPrincipal | str, str, AclOperation, ResourceType, str], bool] = {}
        self._seen_changes: set[tuple[str, str]] = set()
        self._last_purge = float("-inf")  # time.monotonic() of the last purge of old notifications
        self._read_pending = False  # a reading of the change notifications is queued on the loop

    @classmethod
    def from_config(cls, config: KafkaConfig, store) -> AclAuthorizer | None:
        """The authorizer `authorizer.class.name` asks for, started; None when it is empty."""
        if config.get("authorizer.class.name") not in ACL_AUTHORIZER_CLASSES:
            return None  # empty: no authorizer (any other class is refused at start)
        settings = config.unknown_settings
        allow_everyone = settings.get(ALLOW_EVERYONE_IF_NO_ACL_FOUND, "false").strip().lower() == "true"
        authorizer = cls(AclZkClient(store), parse_super_users(settings.get(SUPER_USERS)), allow_everyone)
        authorizer.start()
        return authorizer

    def start(self) -> None:
        """Create Kafka's ACL paths, follow the change notifications, then load every ACL (in
        Kafka's order: no change can fall between the load and the watch). The notifications
        present before the load are reflected in it."""
        self.zk.create_paths()
        self.zk.watch_changes(self._on_change_notifications)
        present = self.zk.change_notifications()
        self._seen_changes = set(present)
        self.zk.purge_changes(present, CHANGE_EXPIRATION_MS, _now_ms())
        for stored in self.zk.all_resources():
            self._reload(stored)
        log.info("AclAuthorizer loaded %d ACLs on %d resources (super.users: %s, %s=%s)",
                 sum(len(e) for e in self._acls.values()), len(self._acls),
                 ", ".join(sorted(self.super_users)) or "none", ALLOW_EVERYONE_IF_NO_ACL_FOUND,
                 str(self.allow_everyone_if_no_acl_found).lower())

    # -- the in-memory index -----------------------------------------------------------------
    def _reload(self, stored: StoredResource) -> None:
        try:
            pattern = _pattern(stored)
            items, _ = self.zk.get_acls(stored)
            entries = frozenset(_entry_from_json(item) for item in items)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring unreadable ACLs of %s %s %s: %s", stored.pattern_type, stored.resource_type,
                        stored.name, exc)
            return
        self._set_entries(pattern, entries)

    def _set_entries(self, pattern: ResourcePattern, entries: Entries) -> None:
        literal = pattern.pattern_type == PatternType.LITERAL
        prefixed = self._prefixed.setdefault(pattern.resource_type, {})
        if entries:
            self._acls[pattern] = entries
            if literal:
                self._literal[(pattern.resource_type, pattern.name)] = entries
            else:
                prefixed[pattern.name] = entries
        else:
            self._acls.pop(pattern, None)
            if literal:
                self._literal.pop((pattern.resource_type, pattern.name), None)
            else:
                prefixed.pop(pattern.name, None)
        self._cache.clear()  # any change may change any decision: start over

    def _on_change_notifications(self) -> None:
        """A watch fired: reload the resource of each notification not seen yet. On the event
        loop, a burst of watch events (CreateAcls of 1,000 bindings fires 1,000, queued) is one
        reading of the notifications, after the burst, instead of one per event."""
        if self._read_pending:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a tool, a test): read them now
            self._read_changes()
            return
        self._read_pending = True
        loop.call_soon(self._read_changes)

    def _read_changes(self) -> None:
        self._read_pending = False
        try:
            current = self.zk.change_notifications()
        except Exception:  # a ZooKeeper hiccup: the next notification tries again
            log.warning("cannot list ACL change notifications", exc_info=True)
            return
        seen = self._seen_changes
        unseen = [notification for notification in current if notification not in seen]
        if not unseen and len(current) == len(seen):
            # A burst of watch events for changes already read (CreateAcls of 1,000 bindings
            # fires 1,000): each costs a listing, not a purge of every notification.
            return
        for changes_path, child in unseen:
            self._seen_changes.add((changes_path, child))
            changed = self.zk.read_change(changes_path, child)
            if changed is None:
                continue
            resource_type, name, pattern_type = changed
            try:
                stored = StoredResource(ResourceType.parse(resource_type).zk_name, name,
                                        PatternType.parse(pattern_type).name)
            except ValueError:
                log.warning("ignoring ACL change notification for %s %s %s", pattern_type, resource_type, name)
                continue
            try:
                self._reload(stored)
            except Exception:  # the store unreachable: the next notification retries this one
                log.warning("cannot reload the ACLs of %s", stored, exc_info=True)
                self._seen_changes.discard((changes_path, child))
        self._seen_changes.intersection_update(current)  # forget notifications deleted since
        now = time.monotonic()
        if now - self._last_purge < PURGE_INTERVAL_S:
            return
        self._last_purge = now
        try:
            self.zk.purge_changes(current, CHANGE_EXPIRATION_MS, _now_ms())
        except Exception:  # a ZooKeeper hiccup: the next notification purges them
            log.warning("cannot purge old ACL change notifications", exc_info=True)

    def _matching_entries(self, resource_type: ResourceType, name: str) -> list[Entries]:
        found = [entries for key in ((resource_type, name), (resource_type, WILDCARD_RESOURCE))
                 if (entries := self._literal.get(key)) is not None]
        prefixed = self._prefixed.get(resource_type)
        if prefixed:
            found += [entries for i in range(1, len(name) + 1) if (entries := prefixed.get(name[:i])) is not None]
        return found

    # -- decisions ---------------------------------------------------------------------------
    def authorize(self, principal: KafkaPrincipal | str, host: str, operation: AclOperation,
                  resource_type: ResourceType, name: str) -> bool:
        """May `principal` (KafkaPrincipal("User", "alice") or "User:alice") from `host` perform
        `operation` on the resource?"""
        key = (principal, host, operation, resource_type, name)
        decision = self._cache.get(key)
        if decision is None:
            decision = self._decide(str(principal), host, operation, resource_type, name)
            if len(self._cache) >= MAX_CACHED_DECISIONS:
                self._cache.clear()
            self._cache[key] = decision
        return decision

    def _decide(self, principal: str, host: str, operation: AclOperation, resource_type: ResourceType,
                name: str) -> bool:
        if principal in self.super_users:
            return True
        matching = self._matching_entries(resource_type, name)
        if not matching:
            return self.allow_everyone_if_no_acl_found
        if any(_denies(entries, principal, host, operation) for entries in matching):
            return False
        return any(_allows(entries, principal, host, operation) for entries in matching)

    def authorized_operations(self, principal: KafkaPrincipal | str, host: str, resource_type: ResourceType,
                              name: str) -> int:
        """KIP-430's bit field: 1 << code of each supported operation the principal may perform."""
        bits = 0
        for operation in SUPPORTED_OPERATIONS.get(resource_type, ()):
            if self.authorize(principal, host, operation, resource_type, name):
                bits |= 1 << operation
        return bits

    def authorize_by_resource_type(self, principal: str, host: str, operation: AclOperation,
                                   resource_type: ResourceType) -> bool:
        """Kafka's authorizeByResourceType: may the principal perform the operation on some
        resource of the type (InitProducerId without a transactional id asks it of topics)? A
        DENY on the literal `*` refuses; then allow.everyone.if.no.acl.found allows; else an ALLOW
        (of the operation or ALL, no implied operations) whose pattern no DENY dominates."""
        if principal in self.super_users:
            return True
        allowed: dict[PatternType, set[str]] = {PatternType.LITERAL: set(), PatternType.PREFIXED: set()}
        denied: dict[PatternType, set[str]] = {PatternType.LITERAL: set(), PatternType.PREFIXED: set()}
        for pattern, entries in self._acls.items():
            if pattern.resource_type != resource_type:
                continue
            for entry in entries:
                if (entry.principal in (principal, WILDCARD_PRINCIPAL) and entry.host in (host, WILDCARD_HOST)
                        and entry.operation in (operation, AclOperation.ALL)):
                    (allowed if entry.permission_type == _ALLOW else denied)[pattern.pattern_type].add(pattern.name)
        if WILDCARD_RESOURCE in denied[PatternType.LITERAL]:
            return False
        if self.allow_everyone_if_no_acl_found:
            return True
        deny_prefixes = denied[PatternType.PREFIXED]

        def dominated(name: str) -> bool:  # a DENY on a prefix of it (or itself)
            return any(name[:i] in deny_prefixes for i in range(len(name) + 1))

        return (any(not dominated(prefix) for prefix in allowed[PatternType.PREFIXED])
                or any(name == WILDCARD_RESOURCE or (name not in denied[PatternType.LITERAL] and not dominated(name))
                       for name in allowed[PatternType.LITERAL]))

    # -- the ACL APIs ------------------------------------------------------------------------
    def describe(self, acl_filter: AclBindingFilter) -> list[AclBinding]:
        return [AclBinding(pattern, entry) for pattern, entries in self._acls.items()
                if acl_filter.matches_pattern(pattern) for entry in entries if acl_filter.matches_entry(entry)]

    def create_acls(self, bindings: list[AclBinding]) -> dict[ResourcePattern, str]:
        """Add the bindings, one conditional write per resource (Kafka's updateResourceAcls);
        returns the resources whose write failed (the store unreachable), with why."""
        by_pattern: dict[ResourcePattern, set[AccessControlEntry]] = {}
        for binding in bindings:
            by_pattern.setdefault(binding.pattern, set()).add(binding.entry)
        failed: dict[ResourcePattern, str] = {}
        for pattern, added in by_pattern.items():
            try:
                self._update(pattern, frozenset(added).union)
            except Exception as exc:  # Kafka answers each of its bindings with the error
                log.warning("cannot add ACLs to %s: %s", pattern, exc)
                failed[pattern] = f"Failed to update ACLs: {exc}"
        return failed

    def delete_acls(self, filters: list[AclBindingFilter]) -> list[list[AclBinding]]:
        """Remove what the filters match; per filter, the bindings it removed."""
        deleted: list[list[AclBinding]] = [[] for _ in filters]
        # As Kafka: the patterns known here, and those a filter names exactly (read from the store
        # even if their notification has not arrived yet).
        candidates = dict.fromkeys([*self._acls, *(p for f in filters for p in _named_patterns(f))])
        for pattern in [p for p in candidates if any(f.matches_pattern(p) for f in filters)]:
            removed_here: dict[AccessControlEntry, list[int]] = {}

            def without_matches(current: Entries, pattern: ResourcePattern = pattern,
                                removed_here: dict[AccessControlEntry, list[int]] = removed_here) -> Entries:
                removed_here.clear()
                for entry in current:
                    hits = [i for i, f in enumerate(filters) if f.matches(AclBinding(pattern, entry))]
                    if hits:
                        removed_here[entry] = hits
                return frozenset(e for e in current if e not in removed_here)

            try:
                self._update(pattern, without_matches)
            except Exception as exc:  # the store unreachable: this resource keeps its ACLs
                log.warning("cannot remove ACLs of %s: %s", pattern, exc)
                continue
            for entry, hits in removed_here.items():
                for i in hits:
                    deleted[i].append(AclBinding(pattern, entry))
        return deleted

    def _update(self, pattern: ResourcePattern, change: Callable[[Entries], Entries]) -> None:
        """Read, change and write one resource's entries until no other writer interleaves;
        then notify every broker (ourselves included) and apply it here at once."""
        stored = _stored(pattern)
        while True:
            items, version = self.zk.get_acls(stored)
            current = frozenset(_entry_from_json(item) for item in items)
            updated = frozenset(change(current))
            if updated == current:
                break
            ordered = sorted(updated, key=lambda e: (e.principal, e.permission_type, e.operation, e.host))
            if self.zk.conditional_set(stored, [_entry_to_json(e) for e in ordered], version):
                self.zk.notify_change(stored)
                break
        self._set_entries(pattern, updated)
