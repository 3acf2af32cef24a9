"""AclZkClient: ACLs in the znode tree exactly where Kafka's AclAuthorizer keeps them.

- Literal patterns: `/kafka-acl/<ResourceType>/<name>`; other pattern types:
  `/kafka-acl-extended/<patterntype>/<ResourceType>/<name>` (`prefixed`), each holding
  `{"version":1,"acls":[{"principal":"User:alice","permissionType":"Allow","operation":"Read","host":"*"}]}`.
- Change notifications, one sequential node per changed resource: `/kafka-acl-changes/acl_changes_N`
  holding `TOPIC:name` (Kafka's legacy literal form) and `/kafka-acl-extended-changes/acl_changes_N`
  holding `{"version":1,"resourceType":"TOPIC","name":"...","patternType":"PREFIXED"}`.
Plain strings and dicts in and out (the security package gives them meaning); the same on the
embedded store and a real ZooKeeper, so Kafka's own tools and brokers see what kbroker writes.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass

from kbroker.metadata.znode_store import BadVersionError, NodeExistsError, NoNodeError

LITERAL_ACL_PATH = "/kafka-acl"
EXTENDED_ACL_PATH = "/kafka-acl-extended"
LITERAL_CHANGES_PATH = "/kafka-acl-changes"
EXTENDED_CHANGES_PATH = "/kafka-acl-extended-changes"
CHANGE_PREFIX = "acl_changes_"
LITERAL = "LITERAL"
# The extended pattern types Kafka stores (PREFIXED: /kafka-acl-extended/prefixed).
EXTENDED_PATTERN_TYPES = ("PREFIXED",)

log = logging.getLogger("kbroker.zk")


@dataclass(frozen=True, slots=True)
class StoredResource:
    """A resource pattern as ZooKeeper names it: resource_type as in the path ("Topic"),
    pattern_type upper case ("LITERAL", "PREFIXED")."""
    resource_type: str
    name: str
    pattern_type: str


def _type_root(pattern_type: str) -> str:
    return LITERAL_ACL_PATH if pattern_type == LITERAL else f"{EXTENDED_ACL_PATH}/{pattern_type.lower()}"


def resource_path(resource: StoredResource) -> str:
    return f"{_type_root(resource.pattern_type)}/{resource.resource_type}/{resource.name}"


def encode_acls(acls: list[dict[str, str]]) -> bytes:
    return json.dumps({"version": 1, "acls": acls}, separators=(",", ":")).encode()


def decode_acls(data: bytes) -> list[dict[str, str]]:
    """The entries of a resource znode (empty for an empty node, as Kafka reads one)."""
    if not data:
        return []
    return list(json.loads(data)["acls"])


def encode_change(resource: StoredResource) -> tuple[str, bytes]:
    """(changes path, notification data) for a changed resource, in Kafka's two forms."""
    if resource.pattern_type == LITERAL:
        return LITERAL_CHANGES_PATH, f"{resource.resource_type.upper()}:{resource.name}".encode()
    return EXTENDED_CHANGES_PATH, json.dumps(
        {"version": 1, "resourceType": resource.resource_type.upper(), "name": resource.name,
         "patternType": resource.pattern_type}, separators=(",", ":")).encode()


def decode_change(changes_path: str, data: bytes) -> tuple[str, str, str]:
    """(resource type as written, name, pattern type) of a notification; ValueError if unreadable."""
    text = data.decode()
    if changes_path == LITERAL_CHANGES_PATH:
        resource_type, sep, name = text.partition(":")
        if not sep:
            raise ValueError(f"expected a string in format ResourceType:ResourceName but got {text}")
        return resource_type, name, LITERAL
    event = json.loads(text)
    return event["resourceType"], event["name"], str(event["patternType"]).upper()


class AclZkClient:
    def __init__(self, store) -> None:
        self.store = store

    def create_paths(self) -> None:
        for path in (LITERAL_ACL_PATH, LITERAL_CHANGES_PATH, EXTENDED_CHANGES_PATH,
                     *(_type_root(p) for p in EXTENDED_PATTERN_TYPES)):
            if self.store.exists(path) is None:
                try:
                    self.store.create(path, b"", makepath=True)
                except NodeExistsError:  # another broker made it meanwhile
                    pass

    def all_resources(self) -> list[StoredResource]:
        """Every resource znode, literal and extended."""
        found = []
        for pattern_type in (LITERAL, *EXTENDED_PATTERN_TYPES):
            root = _type_root(pattern_type)
            for resource_type in self._children(root):
                found += [StoredResource(resource_type, name, pattern_type)
                          for name in self._children(f"{root}/{resource_type}")]
        return found

    def _children(self, path: str) -> list[str]:
        try:
            return self.store.get_children(path)
        except NoNodeError:
            return []

    def get_acls(self, resource: StoredResource) -> tuple[list[dict[str, str]], int]:
        """(entries, znode version); ([], -1) when the resource has no znode."""
        try:
            data, stat = self.store.get(resource_path(resource))
        except NoNodeError:
            return [], -1
        return decode_acls(data), stat.version

    def conditional_set(self, resource: StoredResource, acls: list[dict[str, str]], expected_version: int) -> bool:
        """Write the resource's entries if its znode is still at `expected_version` (-1: absent);
        no entries deletes the znode. False when someone else changed it first (read and retry,
        as Kafka's updateResourceAcls does)."""
        path = resource_path(resource)
        try:
            if not acls:
                if expected_version >= 0:
                    self.store.delete(path, version=expected_version)
            elif expected_version < 0:
                self.store.create(path, encode_acls(acls), makepath=True)
            else:
                self.store.set(path, encode_acls(acls), version=expected_version)
        except (BadVersionError, NodeExistsError, NoNodeError):
            return False
        return True

    def notify_change(self, resource: StoredResource) -> None:
        changes_path, data = encode_change(resource)
        self.store.create(f"{changes_path}/{CHANGE_PREFIX}", data, sequence=True, makepath=True)

    def change_notifications(self) -> list[tuple[str, str]]:
        """(changes path, child) of every notification present, oldest first per path."""
        return [(path, child) for path in (LITERAL_CHANGES_PATH, EXTENDED_CHANGES_PATH)
                for child in self._children(path) if child.startswith(CHANGE_PREFIX)]

    def read_change(self, changes_path: str, child: str) -> tuple[str, str, str] | None:
        """The resource a notification names; None if it is gone or unreadable."""
        try:
            data, _ = self.store.get(f"{changes_path}/{child}")
            return decode_change(changes_path, data)
        except NoNodeError:
            return None
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            log.warning("ignoring unreadable ACL change notification %s/%s", changes_path, child)
            return None

    def purge_changes(self, notifications: list[tuple[str, str]], max_age_ms: int, now_ms: int) -> None:
        """Delete the notifications created more than `max_age_ms` ago (Kafka's
        ZkNodeChangeNotificationListener purges them after 15 minutes: every broker has long read
        them by then)."""
        for changes_path, child in notifications:
            path = f"{changes_path}/{child}"
            stat = self.store.exists(path)
            if stat is not None and stat.ctime_ms and now_ms - stat.ctime_ms > max_age_ms:
                try:
                    self.store.delete(path)
                except NoNodeError:  # another broker purged it first
                    pass

    def watch_changes(self, fn: Callable[[], None]) -> None:
        for path in (LITERAL_CHANGES_PATH, EXTENDED_CHANGES_PATH):
            self.store.watch_children(path, fn)
