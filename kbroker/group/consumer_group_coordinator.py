"""ConsumerGroupHeartbeat and ConsumerGroupDescribe: the KIP-848 half of Kafka's
GroupMetadataManager (consumerGroupHeartbeat, consumerGroupDescribe), beside the classic
GroupCoordinator that owns it.

- A consumer group lives in the same GroupMetadata entry as a classic group would (its
  `consumer` attribute), so offsets, FindCoordinator's partition, loading and unloading, expiry
  and DeleteGroups are shared; a classic group with members is not a consumer group
  (GROUP_ID_NOT_FOUND), an empty one (offsets only) becomes one on the first join, as Kafka.
- Timers (through the GroupCoordinator's scheduler): a session timer per member
  (group.consumer.session.timeout.ms) that removes it, and a rebalance timer while it revokes
  (its rebalance timeout) that removes it when it does not revoke in time.
- Persistence: after each change the group is rendered as Kafka's records
  (consumer_group_records.py) and what differs from what was written before is appended
  (`take_records`); a coordinator that loads the partition rebuilds the group from them
  (`on_group_loaded`), so members carry on with their epochs and assignments.
- Gaps: a failed write is answered with its error but the change is not rolled back in memory
  (Kafka's timeline structures revert it); the next write rewrites the whole group.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kbroker.group.consumer_group import (
    LEAVE_GROUP_MEMBER_EPOCH,
    LEAVE_GROUP_STATIC_MEMBER_EPOCH,
    Assignment,
    ConsumerGroup,
    ConsumerGroupMember,
    MemberState,
    compile_regex,
)
from kbroker.group.consumer_group_assignors import TopicInfo, assignor_names
from kbroker.group.consumer_group_records import (
    RecordKey,
    group_records,
    member_records,
    record_key,
)
from kbroker.group.coordinator_records import group_metadata_key
from kbroker.group.group_metadata import GroupMetadata, GroupState
from kbroker.metadata.metadata_cache import INTERNAL_TOPICS
from kbroker.protocol.errors import Errors

if TYPE_CHECKING:
    from kbroker.config import KafkaConfig
    from kbroker.group.group_metadata_manager import GroupMetadataManager
    from kbroker.metadata.metadata_cache import MetadataCache

log = logging.getLogger("kbroker.group")


@dataclass(frozen=True, slots=True)
class ConsumerGroupConfig:
    session_timeout_ms: int = 45000
    heartbeat_interval_ms: int = 5000
    max_size: int = 2**31 - 1
    assignors: tuple[str, ...] = ("uniform", "range")  # the first is the default

    @classmethod
    def from_kafka_config(cls, config: KafkaConfig) -> ConsumerGroupConfig:
        return cls(config.get("group.consumer.session.timeout.ms"),
                   config.get("group.consumer.heartbeat.interval.ms"),
                   config.get("group.consumer.max.size"),
                   tuple(assignor_names(config.get("group.consumer.assignors"))))


@dataclass(slots=True)
class HeartbeatParams:
    group_id: str
    member_id: str
    member_epoch: int
    instance_id: str | None = None
    rack_id: str | None = None
    rebalance_timeout_ms: int = -1
    subscribed_topic_names: list[str] | None = None
    subscribed_topic_regex: str | None = None
    server_assignor: str | None = None
    owned: Assignment | None = None
    client_id: str = ""
    client_host: str = ""
    api_version: int = 1


@dataclass(slots=True)
class HeartbeatResult:
    error: Errors = Errors.NONE
    message: str | None = None
    member_id: str | None = None
    member_epoch: int = 0
    heartbeat_interval_ms: int = 0
    assignment: Assignment | None = None


@dataclass(slots=True)
class _Timers:
    session: dict[str, Any] = field(default_factory=dict)
    rebalance: dict[str, Any] = field(default_factory=dict)


def _fail(error: Errors, message: str) -> HeartbeatResult:
    return HeartbeatResult(error, message)


class ConsumerGroupCoordinator:
    def __init__(self, config: ConsumerGroupConfig, manager: GroupMetadataManager, metadata_cache: MetadataCache,
                 time_ms: Callable[[], int], call_later: Callable[..., Any]) -> None:
        self.config = config
        self.manager = manager
        self.metadata_cache = metadata_cache
        self.time_ms = time_ms
        self._call_later = call_later
        self._timers: dict[str, _Timers] = {}
        # What was written to __consumer_offsets per group, to write only what changed.
        self._written: dict[str, dict[RecordKey, bytes]] = {}
        # Empty classic groups turned consumer groups, whose classic record is still to remove.
        self._classic_tombstones: set[str] = set()
        # (group epoch, assignment epoch, member ids) at the last full write, per group.
        self._written_shape: dict[str, tuple[int, int, frozenset[str]]] = {}
        # Called with a group id when a timer changed the group (GroupCoordinator writes it).
        self.on_timer_change: Callable[[str], None] = lambda _group_id: None

    # -- validation (Kafka's throwIfConsumerGroupHeartbeatRequestIsInvalid) ---------------------
    def _validate(self, p: HeartbeatParams) -> HeartbeatResult | None:
        if not p.group_id:
            return _fail(Errors.INVALID_REQUEST, "GroupId can't be empty.")
        if p.api_version >= 1 and not p.member_id:
            return _fail(Errors.INVALID_REQUEST, "MemberId can't be empty.")
        if p.instance_id is not None and not p.instance_id:
            return _fail(Errors.INVALID_REQUEST, "InstanceId can't be empty.")
        if p.member_epoch > 0 or p.member_epoch == 0:
            if p.member_epoch == 0:
                if p.rebalance_timeout_ms == -1:
                    return _fail(Errors.INVALID_REQUEST, "RebalanceTimeoutMs must be provided in first request.")
                if p.owned is None or p.owned:
                    return _fail(Errors.INVALID_REQUEST, "TopicPartitions must be empty when (re-)joining.")
                if p.subscribed_topic_names is None and p.subscribed_topic_regex is None:
                    return _fail(Errors.INVALID_REQUEST,
                                 "SubscribedTopicNames or SubscribedTopicRegex must be set in first request.")
            elif not p.member_id:
                return _fail(Errors.INVALID_REQUEST, "MemberId can't be empty.")
        elif p.member_epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH:
            if p.instance_id is None:
                return _fail(Errors.INVALID_REQUEST, "InstanceId can't be null.")
        elif p.member_epoch != LEAVE_GROUP_MEMBER_EPOCH:
            return _fail(Errors.INVALID_REQUEST, f"MemberEpoch is invalid: {p.member_epoch}.")
        if p.server_assignor is not None and p.server_assignor not in self.config.assignors:
            return _fail(Errors.UNSUPPORTED_ASSIGNOR, f"ServerAssignor {p.server_assignor} is not supported. "
                         f"Supported assignors: {', '.join(self.config.assignors)}.")
        if p.subscribed_topic_regex is not None:
            try:
                compile_regex(p.subscribed_topic_regex)
            except re.error as exc:
                return _fail(Errors.INVALID_REGULAR_EXPRESSION,
                             f"SubscribedTopicRegex `{p.subscribed_topic_regex}` is not a valid regular expression: {exc}.")
        return None

    # -- the heartbeat ----------------------------------------------------------------------------
    def heartbeat(self, p: HeartbeatParams) -> HeartbeatResult:
        invalid = self._validate(p)
        if invalid is not None:
            return invalid
        if p.member_epoch in (LEAVE_GROUP_MEMBER_EPOCH, LEAVE_GROUP_STATIC_MEMBER_EPOCH):
            return self._leave(p)
        entry = self.manager.get_group(p.group_id)
        if entry is not None and entry.consumer is None:
            if not entry.is_state(GroupState.EMPTY) and not entry.is_state(GroupState.DEAD):
                return _fail(Errors.GROUP_ID_NOT_FOUND, f"Group {p.group_id} is not a consumer group.")
        if entry is None or entry.is_state(GroupState.DEAD) or entry.consumer is None:
            if p.member_epoch != 0:
                # Kafka answers UNKNOWN_MEMBER_ID here (GROUP_ID_NOT_FOUND is fatal to clients):
                # the member rejoins with epoch 0.
                return _fail(Errors.UNKNOWN_MEMBER_ID, f"Consumer group {p.group_id} not found.")
            entry = self._create(p.group_id, entry)
        group = entry.consumer
        assert group is not None
        try:
            member, changed = self._get_or_create_member(group, p)
        except _Refused as refused:
            return refused.result
        topics = self._topics()
        if changed:
            group.bump_group_epoch()
        metadata = self._subscription_metadata(group, topics)
        if metadata != group.subscription_metadata:
            group.subscription_metadata = metadata
            if not changed:
                group.bump_group_epoch()
        if group.group_epoch > group.assignment_epoch:
            group.compute_target_assignment(topics, self.config.assignors[0])
            log.info("computed a new target assignment for consumer group %s in epoch %d with %s",
                     group.group_id, group.assignment_epoch, group.assignor_name)
        was_revoking = member.state == MemberState.UNREVOKED_PARTITIONS
        assignment_changed = group.reconcile(member, p.owned)
        self._schedule_session_timeout(group, member)
        if member.state == MemberState.UNREVOKED_PARTITIONS and not was_revoking:
            self._schedule_rebalance_timeout(group, member)
        elif member.state != MemberState.UNREVOKED_PARTITIONS:
            self._cancel(self._timers_of(group).rebalance, member.member_id)
        send_assignment = assignment_changed or p.member_epoch == 0 or p.owned is not None
        return HeartbeatResult(Errors.NONE, None, member.member_id, member.member_epoch,
                               self.config.heartbeat_interval_ms,
                               {t: set(ps) for t, ps in member.assigned.items()} if send_assignment else None)

    def _create(self, group_id: str, entry: GroupMetadata | None) -> GroupMetadata:
        """A new consumer group, or an empty classic one (its offsets kept) turned into one."""
        if entry is None or entry.is_state(GroupState.DEAD):
            entry = self.manager.add_group(GroupMetadata(group_id, GroupState.EMPTY, self.time_ms()))
        if entry.generation_id > 0:
            # An empty classic group becomes a consumer group: its classic record goes, as in Kafka.
            self._classic_tombstones.add(group_id)
        entry.consumer = ConsumerGroup(group_id)
        entry.protocol_type = "consumer"
        self._remember(group_id, None, {})  # a deleted group's records were tombstoned
        log.info("created consumer group %s", group_id)
        return entry

    def _get_or_create_member(self, group: ConsumerGroup, p: HeartbeatParams) -> tuple[ConsumerGroupMember, bool]:
        """The member the heartbeat is for, updated; and whether the group epoch must move."""
        member = group.members.get(p.member_id) if p.member_id else None
        if p.member_epoch == 0:
            changed = member is None
            if p.instance_id is not None:
                old = group.static_member(p.instance_id)
                if old is not None and old.member_id != p.member_id:
                    if old.member_epoch != LEAVE_GROUP_STATIC_MEMBER_EPOCH:
                        raise _Refused(_fail(Errors.UNRELEASED_INSTANCE_ID,
                                             f"Static member {old.member_id} with instance id {p.instance_id} "
                                             "is not released yet."))
                    # The static member comes back under a new member id: it takes over the old
                    # one's assignment and epoch, and the group epoch does not move.
                    self._remove_member_timers(group, old.member_id)
                    old_target = group.target_assignment.get(old.member_id, {})
                    group.remove_member(old.member_id)
                    member = dataclasses.replace(old, member_id=p.member_id or str(uuid.uuid4()),
                                                 member_epoch=old.previous_member_epoch)
                    group.target_assignment[member.member_id] = old_target
                    changed = False
            if member is None:
                if len(group.members) >= self.config.max_size:
                    raise _Refused(_fail(Errors.GROUP_MAX_SIZE_REACHED,
                                         f"The consumer group has reached its maximum capacity of "
                                         f"{self.config.max_size} members."))
                member = ConsumerGroupMember(p.member_id or str(uuid.uuid4()))
            elif member.member_epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH:
                # A static member back under its own id: its assignment waited for it.
                member.member_epoch = member.previous_member_epoch
            else:
                # A rejoin of a known member starts from nothing, as it has released everything.
                member.assigned, member.pending_revocation = {}, {}
                member.state = MemberState.STABLE
                member.member_epoch = 0
        else:
            if member is None:
                raise _Refused(_fail(Errors.UNKNOWN_MEMBER_ID,
                                     f"Member {p.member_id} is not a member of group {p.group_id}."))
            if p.instance_id is not None and group.static_members.get(p.instance_id) != member.member_id:
                raise _Refused(_fail(Errors.FENCED_INSTANCE_ID, f"Instance id {p.instance_id} is fenced."))
            self._check_epoch(member, p)
            changed = False
        changed |= self._update_subscription(member, p)
        group.add_or_update_member(member)
        return member, changed

    @staticmethod
    def _check_epoch(member: ConsumerGroupMember, p: HeartbeatParams) -> None:
        """Kafka's throwIfMemberEpochIsInvalid: the current epoch, or the previous one while the
        member owns nothing beyond its assignment (a lost response)."""
        if p.member_epoch > member.member_epoch:
            raise _Refused(_fail(Errors.FENCED_MEMBER_EPOCH,
                                 f"The consumer group member has a greater member epoch ({p.member_epoch}) than "
                                 f"the one known by the group coordinator ({member.member_epoch}). "
                                 "The member must abandon all its partitions and rejoin."))
        if p.member_epoch < member.member_epoch:
            owned_ok = p.owned is not None and all(
                ps <= member.assigned.get(t, set()) for t, ps in p.owned.items())
            if p.member_epoch != member.previous_member_epoch or not owned_ok:
                raise _Refused(_fail(Errors.FENCED_MEMBER_EPOCH,
                                     f"The consumer group member has a smaller member epoch ({p.member_epoch}) "
                                     f"than the one known by the group coordinator ({member.member_epoch}). "
                                     "The member must abandon all its partitions and rejoin."))

    @staticmethod
    def _update_subscription(member: ConsumerGroupMember, p: HeartbeatParams) -> bool:
        changed = False
        if p.subscribed_topic_names is not None and sorted(p.subscribed_topic_names) != member.subscribed_topic_names:
            member.subscribed_topic_names = sorted(p.subscribed_topic_names)
            changed = True
        if p.subscribed_topic_regex is not None and \
                (p.subscribed_topic_regex or None) != member.subscribed_topic_regex:
            member.subscribed_topic_regex = p.subscribed_topic_regex or None
            changed = True
        if p.server_assignor is not None and p.server_assignor != member.server_assignor:
            member.server_assignor = p.server_assignor
            changed = True
        if p.rebalance_timeout_ms != -1:
            member.rebalance_timeout_ms = p.rebalance_timeout_ms
        if p.instance_id is not None:
            member.instance_id = p.instance_id
        if p.rack_id is not None:
            member.rack_id = p.rack_id
        if p.client_id:
            member.client_id = p.client_id
        if p.client_host:
            member.client_host = p.client_host
        return changed

    @staticmethod
    def _subscription_metadata(group: ConsumerGroup, topics: dict[str, TopicInfo]) -> dict[str, int]:
        return {name: topics[name].partitions for name in group.subscribed_topic_names(list(topics)) if name in topics}

    def _topics(self) -> dict[str, TopicInfo]:
        return {name: TopicInfo(t.topic_id, name, len(t.partitions))
                for name, t in self.metadata_cache.topics.items() if name not in INTERNAL_TOPICS}

    # -- leaving --------------------------------------------------------------------------------
    def _leave(self, p: HeartbeatParams) -> HeartbeatResult:
        entry = self.manager.get_group(p.group_id)
        group = entry.consumer if entry is not None else None
        if group is None:
            return _fail(Errors.UNKNOWN_MEMBER_ID, f"Consumer group {p.group_id} not found.")
        member = group.members.get(p.member_id)
        if member is None and p.instance_id is not None:
            member = group.static_member(p.instance_id)
        if member is None:
            return _fail(Errors.UNKNOWN_MEMBER_ID, f"Member {p.member_id} is not a member of group {p.group_id}.")
        if p.member_epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH:
            # A static member leaving for a while keeps its assignment until its session expires.
            log.info("static member %s (instance %s) of consumer group %s left temporarily", member.member_id,
                     member.instance_id, group.group_id)
            member.previous_member_epoch = member.member_epoch
            member.member_epoch = LEAVE_GROUP_STATIC_MEMBER_EPOCH
            self._cancel(self._timers_of(group).rebalance, member.member_id)
            self._schedule_session_timeout(group, member)
        else:
            log.info("member %s left consumer group %s", member.member_id, group.group_id)
            self.remove_member(group, member.member_id)
        return HeartbeatResult(Errors.NONE, None, member.member_id, p.member_epoch,
                               self.config.heartbeat_interval_ms)

    def remove_member(self, group: ConsumerGroup, member_id: str) -> None:
        """Fences a member: its partitions go back to the pool, and the group epoch moves."""
        self._remove_member_timers(group, member_id)
        if group.remove_member(member_id) is not None:
            group.bump_group_epoch()
            if group.members:
                topics = self._topics()
                group.subscription_metadata = self._subscription_metadata(group, topics)
                group.compute_target_assignment(topics, self.config.assignors[0])

    # -- timers ---------------------------------------------------------------------------------
    def _timers_of(self, group: ConsumerGroup) -> _Timers:
        return self._timers.setdefault(group.group_id, _Timers())

    @staticmethod
    def _cancel(timers: dict[str, Any], member_id: str) -> None:
        handle = timers.pop(member_id, None)
        if handle is not None:
            handle.cancel()

    def _remove_member_timers(self, group: ConsumerGroup, member_id: str) -> None:
        timers = self._timers_of(group)
        self._cancel(timers.session, member_id)
        self._cancel(timers.rebalance, member_id)

    def _schedule_session_timeout(self, group: ConsumerGroup, member: ConsumerGroupMember) -> None:
        timers = self._timers_of(group)
        self._cancel(timers.session, member.member_id)
        timers.session[member.member_id] = self._call_later(
            self.config.session_timeout_ms, self._on_session_expired, group, member.member_id)

    def _on_session_expired(self, group: ConsumerGroup, member_id: str) -> None:
        self._timers_of(group).session.pop(member_id, None)
        if group.members.get(member_id) is not None:
            log.info("member %s of consumer group %s fenced: session timed out", member_id, group.group_id)
            self.remove_member(group, member_id)
            self.on_timer_change(group.group_id)

    def _schedule_rebalance_timeout(self, group: ConsumerGroup, member: ConsumerGroupMember) -> None:
        timers = self._timers_of(group)
        self._cancel(timers.rebalance, member.member_id)
        timers.rebalance[member.member_id] = self._call_later(
            member.rebalance_timeout_ms, self._on_rebalance_expired, group, member.member_id, member.member_epoch)

    def _on_rebalance_expired(self, group: ConsumerGroup, member_id: str, epoch: int) -> None:
        self._timers_of(group).rebalance.pop(member_id, None)
        member = group.members.get(member_id)
        if member is not None and member.member_epoch == epoch and member.state == MemberState.UNREVOKED_PARTITIONS:
            log.info("member %s of consumer group %s fenced: it did not revoke its partitions in %d ms",
                     member_id, group.group_id, member.rebalance_timeout_ms)
            self.remove_member(group, member_id)
            self.on_timer_change(group.group_id)

    # -- persistence ----------------------------------------------------------------------------
    def take_records(self, group_id: str, member_id: str | None = None) -> list[tuple[bytes, bytes | None]]:
        """The records (key, value or None for a tombstone) that bring `__consumer_offsets` to
        the group's current state; they count as written from now on (see forget_written).
        With `member_id` (a heartbeat's member), while the epochs and the membership stand as
        last written, only that member's records are compared: a steady heartbeat costs one
        member's records, not the group's."""
        entry = self.manager.get_group(group_id)
        group = entry.consumer if entry is not None else None
        written = self._written.get(group_id, {})
        if group is not None and member_id is not None and member_id in group.members and \
                self._unchanged_membership(group, member_id):
            mine = member_records(group, group.members[member_id])
            changed = [(key, value) for key, value in mine.items() if written.get(key) != value]
            written.update(changed)
            return [(record_key(*key), value) for key, value in changed]
        current = group_records(group) if group is not None else {}
        out: list[tuple[bytes, bytes | None]] = [
            (record_key(*key), None) for key in written if key not in current]
        if group_id in self._classic_tombstones:
            self._classic_tombstones.discard(group_id)
            out.append((group_metadata_key(group_id), None))
        out += [(record_key(*key), value) for key, value in current.items() if written.get(key) != value]
        self._remember(group_id, group, current)
        return out

    def _remember(self, group_id: str, group: ConsumerGroup | None, records: dict[RecordKey, bytes]) -> None:
        if group is None or not records:
            self._written.pop(group_id, None)
            self._written_shape.pop(group_id, None)
            return
        self._written[group_id] = records
        self._written_shape[group_id] = (group.group_epoch, group.assignment_epoch, frozenset(group.members))

    def _unchanged_membership(self, group: ConsumerGroup, member_id: str) -> bool:
        """Whether the group's epochs and member set are those of the last full write (every
        change of the member set but a static member's replacement moves the group epoch; that
        one brings a member id the last write did not have)."""
        shape = self._written_shape.get(group.group_id)
        return shape is not None and shape[:2] == (group.group_epoch, group.assignment_epoch) \
            and member_id in shape[2] and len(shape[2]) == len(group.members)

    def forget_written(self, group_id: str) -> None:
        """A write failed: the next one writes the whole group again."""
        self._remember(group_id, None, {})

    def on_group_loaded(self, group: GroupMetadata) -> None:
        """A group rebuilt from its records: its members get fresh session timers."""
        consumer = group.consumer
        if consumer is None:
            return
        self._remember(group.group_id, consumer, group_records(consumer))
        # The topics' partition counts are not in the records (Kafka 4.1 keeps a hash of them):
        # take today's, so that a move alone does not rebalance the group.
        consumer.subscription_metadata = self._subscription_metadata(consumer, self._topics())
        for member in consumer.members.values():
            self._schedule_session_timeout(consumer, member)
        log.info("loaded consumer group %s in epoch %d with %d members", group.group_id, consumer.group_epoch,
                 len(consumer.members))

    def on_group_unloaded(self, group: GroupMetadata) -> None:
        self._remember(group.group_id, None, {})
        timers = self._timers.pop(group.group_id, None)
        if timers is not None:
            for handle in (*timers.session.values(), *timers.rebalance.values()):
                handle.cancel()

    # -- offsets (Kafka's ConsumerGroup.validateOffsetCommit / validateOffsetFetch) ---------------
    @staticmethod
    def validate_offset_commit(group: ConsumerGroup, member_id: str, member_epoch: int,
                               api_version: int) -> Errors | None:
        if member_epoch < 0 and not member_id and not group.members:
            return None  # an admin commit to an empty group
        member = group.members.get(member_id)
        if member is None:
            return Errors.UNKNOWN_MEMBER_ID
        if api_version < 9:
            # A classic client's commit to a consumer group's member: Kafka asks it to upgrade.
            return Errors.UNSUPPORTED_VERSION
        if member_epoch != member.member_epoch:
            return Errors.STALE_MEMBER_EPOCH
        return None

    @staticmethod
    def validate_txn_offset_commit(group: ConsumerGroup, member_id: str, member_epoch: int,
                                   stale_member_epoch: bool = False) -> Errors | None:
        """TxnOffsetCommit: a producer without the consumer's group metadata commits as it
        likes; one with it must name a member in its current epoch (STALE_MEMBER_EPOCH where
        the version knows it, v6+; ILLEGAL_GENERATION, the older versions' error, before)."""
        if member_epoch < 0 and not member_id:
            return None
        member = group.members.get(member_id)
        if member is None:
            return Errors.UNKNOWN_MEMBER_ID
        if member_epoch == member.member_epoch:
            return None
        return Errors.STALE_MEMBER_EPOCH if stale_member_epoch else Errors.ILLEGAL_GENERATION

    @staticmethod
    def validate_offset_fetch(group: ConsumerGroup, member_id: str | None, member_epoch: int) -> Errors | None:
        if member_epoch < 0 and not member_id:
            return None  # an admin fetch
        member = group.members.get(member_id or "")
        if member is None:
            return Errors.UNKNOWN_MEMBER_ID
        if member_epoch != member.member_epoch:
            return Errors.STALE_MEMBER_EPOCH
        return None


class _Refused(Exception):
    def __init__(self, result: HeartbeatResult) -> None:
        super().__init__(result.message)
        self.result = result
