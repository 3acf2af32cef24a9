"""GroupMetadata and MemberMetadata: one classic group's state, as Kafka's GroupMetadata.scala keeps it.

States Empty -> PreparingRebalance -> CompletingRebalance -> Stable, any -> Dead (KAFKA-FACTS §7),
with Kafka's table of allowed transitions; members with their supported protocols, the protocol
chosen by a vote among protocols every member supports, the leader, static members by
group.instance.id, members pending a MEMBER_ID_REQUIRED rejoin or a SyncGroup, and the group's
committed offsets (with commits still being written kept apart, for require_stable).
Plain data and bookkeeping: no timers, no I/O, no asyncio. Members wait for JoinGroup/SyncGroup
answers through plain callbacks that the coordinator supplies.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kbroker.group.consumer_group import ConsumerGroup
from kbroker.group.coordinator_records import read_subscribed_topics
from kbroker.group.offset_and_metadata import OffsetAndMetadata
from kbroker.protocol.errors import Errors

CONSUMER_PROTOCOL_TYPE = "consumer"
UNKNOWN_MEMBER_ID = ""
UNKNOWN_GENERATION_ID = -1

TopicPartition = tuple[str, int]


class GroupState(enum.Enum):
    EMPTY = "Empty"
    PREPARING_REBALANCE = "PreparingRebalance"
    COMPLETING_REBALANCE = "CompletingRebalance"
    STABLE = "Stable"
    DEAD = "Dead"


_VALID_PREVIOUS_STATES = {
    GroupState.DEAD: {GroupState.STABLE, GroupState.PREPARING_REBALANCE, GroupState.COMPLETING_REBALANCE,
                      GroupState.EMPTY, GroupState.DEAD},
    GroupState.COMPLETING_REBALANCE: {GroupState.PREPARING_REBALANCE},
    GroupState.STABLE: {GroupState.COMPLETING_REBALANCE},
    GroupState.PREPARING_REBALANCE: {GroupState.STABLE, GroupState.COMPLETING_REBALANCE, GroupState.EMPTY},
    GroupState.EMPTY: {GroupState.PREPARING_REBALANCE},
}


@dataclass(slots=True)
class JoinGroupResult:
    member_id: str
    error: Errors
    generation_id: int = UNKNOWN_GENERATION_ID
    protocol_type: str | None = None
    protocol_name: str | None = None
    leader_id: str = UNKNOWN_MEMBER_ID
    skip_assignment: bool = False
    # (member id, group instance id, metadata) of every member: for the leader only
    members: list[tuple[str, str | None, bytes]] = field(default_factory=list)


@dataclass(slots=True)
class SyncGroupResult:
    error: Errors
    protocol_type: str | None = None
    protocol_name: str | None = None
    assignment: bytes = b""


@dataclass(slots=True)
class CommitRecordMetadataAndOffset:
    """A committed offset with the log offset of the batch that stored it (None until written:
    a newer batch wins over an older one when two commits race)."""

    appended_batch_offset: int | None
    offset_and_metadata: OffsetAndMetadata

    def older_than(self, other: CommitRecordMetadataAndOffset) -> bool:
        return (self.appended_batch_offset or -1) < (other.appended_batch_offset or -1)


@dataclass(eq=False, slots=True)
class MemberMetadata:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    rebalance_timeout_ms: int
    session_timeout_ms: int
    protocol_type: str
    supported_protocols: list[tuple[str, bytes]]
    assignment: bytes = b""
    awaiting_join_callback: Callable[[JoinGroupResult], None] | None = None
    awaiting_sync_callback: Callable[[SyncGroupResult], None] | None = None
    is_new: bool = False
    heartbeat_timer: Any = None  # the scheduler's handle of the next session expiry

    @property
    def is_static_member(self) -> bool:
        return self.group_instance_id is not None

    @property
    def is_awaiting_join(self) -> bool:
        return self.awaiting_join_callback is not None

    @property
    def is_awaiting_sync(self) -> bool:
        return self.awaiting_sync_callback is not None

    def protocols(self) -> list[str]:
        return [name for name, _ in self.supported_protocols]

    def metadata(self, protocol: str) -> bytes:
        for name, metadata in self.supported_protocols:
            if name == protocol:
                return metadata
        raise ValueError(f"member {self.member_id} does not support protocol {protocol}")

    def matches(self, protocols: list[tuple[str, bytes]]) -> bool:
        return list(protocols) == list(self.supported_protocols)

    def vote(self, candidates: set[str]) -> str:
        """The first of this member's protocols (in its order of preference) among the candidates."""
        for name, _ in self.supported_protocols:
            if name in candidates:
                return name
        raise ValueError(f"member {self.member_id} supports none of {sorted(candidates)}")

    def has_satisfied_heartbeat_on_expiry(self) -> bool:
        """Kafka's hasSatisfiedHeartbeat at the moment the session timer fires (no heartbeat came
        since it was armed): new members may expire while awaiting their join; members waiting
        for a rebalance to finish count as alive."""
        if self.is_new:
            return False
        return self.is_awaiting_join or self.is_awaiting_sync


class GroupMetadata:
    def __init__(self, group_id: str, state: GroupState, now_ms: int) -> None:
        self.group_id = group_id
        self.state = state
        self.current_state_timestamp: int | None = now_ms
        self.protocol_type: str | None = None
        self.protocol_name: str | None = None
        self.generation_id = 0
        self.leader_id: str | None = None
        self.members: dict[str, MemberMetadata] = {}
        self.pending_members: set[str] = set()
        self.pending_sync_members: set[str] = set()
        self.static_members: dict[str, str] = {}
        self.num_members_awaiting_join = 0
        self.supported_protocols: dict[str, int] = {}
        self.new_member_added = False
        self.subscribed_topics: set[str] | None = None
        self.offsets: dict[TopicPartition, CommitRecordMetadataAndOffset] = {}
        self.pending_offset_commits: dict[TopicPartition, OffsetAndMetadata] = {}
        # TxnOffsetCommit's offsets per producer id, invisible until its transaction commits.
        self.pending_transactional_offset_commits: dict[int, dict[TopicPartition, CommitRecordMetadataAndOffset]] = {}
        # The coordinator's timers for this group (see group_coordinator.py).
        self.delayed_join: Any = None
        self.sync_timer: Any = None
        self.pending_member_timers: dict[str, Any] = {}
        # A KIP-848 consumer group's state (consumer_group.py); None for a classic group.
        self.consumer: ConsumerGroup | None = None

    def __repr__(self) -> str:
        return (f"GroupMetadata({self.group_id!r}, {self.state.value}, generation {self.generation_id}, "
                f"{len(self.members)} members)")

    # -- state ------------------------------------------------------------------------------
    def is_state(self, state: GroupState) -> bool:
        return self.state is state

    def transition_to(self, state: GroupState, now_ms: int) -> None:
        if self.state not in _VALID_PREVIOUS_STATES[state]:
            raise RuntimeError(f"group {self.group_id} cannot go from {self.state.value} to {state.value}")
        self.state = state
        self.current_state_timestamp = now_ms

    @property
    def can_rebalance(self) -> bool:
        return self.state in _VALID_PREVIOUS_STATES[GroupState.PREPARING_REBALANCE]

    # -- members ----------------------------------------------------------------------------
    def has(self, member_id: str) -> bool:
        return member_id in self.members

    def get(self, member_id: str) -> MemberMetadata:
        return self.members[member_id]

    @property
    def size(self) -> int:
        return len(self.members)

    def is_leader(self, member_id: str) -> bool:
        return self.leader_id == member_id

    def is_consumer_group(self) -> bool:
        return self.protocol_type == CONSUMER_PROTOCOL_TYPE

    def add(self, member: MemberMetadata, callback: Callable[[JoinGroupResult], None] | None = None) -> None:
        if not self.members:
            self.protocol_type = member.protocol_type
        if self.protocol_type != member.protocol_type:
            raise ValueError("member protocol type differs from the group's")
        if self.leader_id is None:
            self.leader_id = member.member_id
        if member.group_instance_id is not None:
            self.static_members[member.group_instance_id] = member.member_id
        self.members[member.member_id] = member
        self._count_protocols(member, +1)
        member.awaiting_join_callback = callback
        if callback is not None:
            self.num_members_awaiting_join += 1
        self.pending_members.discard(member.member_id)

    def remove(self, member_id: str) -> None:
        member = self.members.pop(member_id, None)
        if member is not None:
            self._count_protocols(member, -1)
            if member.is_awaiting_join:
                self.num_members_awaiting_join -= 1
            if member.group_instance_id is not None:
                self.static_members.pop(member.group_instance_id, None)
        if self.is_leader(member_id):
            self.leader_id = next(iter(self.members), None)
        self.pending_members.discard(member_id)
        self.pending_sync_members.discard(member_id)

    def _count_protocols(self, member: MemberMetadata, delta: int) -> None:
        for name in member.protocols():
            count = self.supported_protocols.get(name, 0) + delta
            if count:
                self.supported_protocols[name] = count
            else:
                self.supported_protocols.pop(name, None)

    def update_member(self, member: MemberMetadata, protocols: list[tuple[str, bytes]],
                      callback: Callable[[JoinGroupResult], None] | None) -> None:
        self._count_protocols(member, -1)
        member.supported_protocols = list(protocols)
        self._count_protocols(member, +1)
        if callback is not None and not member.is_awaiting_join:
            self.num_members_awaiting_join += 1
        elif callback is None and member.is_awaiting_join:
            self.num_members_awaiting_join -= 1
        member.awaiting_join_callback = callback

    def maybe_invoke_join_callback(self, member: MemberMetadata, result: JoinGroupResult) -> bool:
        callback = member.awaiting_join_callback
        if callback is None:
            return False
        member.awaiting_join_callback = None
        self.num_members_awaiting_join -= 1
        callback(result)
        return True

    def maybe_invoke_sync_callback(self, member: MemberMetadata, result: SyncGroupResult) -> bool:
        callback = member.awaiting_sync_callback
        if callback is None:
            return False
        member.awaiting_sync_callback = None
        callback(result)
        return True

    def has_all_members_joined(self) -> bool:
        return len(self.members) == self.num_members_awaiting_join and not self.pending_members

    def not_yet_rejoined_members(self) -> list[MemberMetadata]:
        return [m for m in self.members.values() if not m.is_awaiting_join]

    @property
    def rebalance_timeout_ms(self) -> int:
        return max((m.rebalance_timeout_ms for m in self.members.values()), default=0)

    def generate_member_id(self, client_id: str, group_instance_id: str | None) -> str:
        prefix = group_instance_id if group_instance_id is not None else client_id
        return f"{prefix}-{uuid.uuid4()}"

    def is_pending_member(self, member_id: str) -> bool:
        return member_id in self.pending_members

    def current_static_member_id(self, group_instance_id: str) -> str | None:
        return self.static_members.get(group_instance_id)

    def replace_static_member(self, group_instance_id: str, old_member_id: str,
                              new_member_id: str) -> MemberMetadata:
        """Gives a static member a new member id; answers the old id's pending calls with
        FENCED_INSTANCE_ID."""
        member = self.members.pop(old_member_id)
        if member.is_awaiting_join:
            self.maybe_invoke_join_callback(member, JoinGroupResult(old_member_id, Errors.FENCED_INSTANCE_ID))
        self.maybe_invoke_sync_callback(member, SyncGroupResult(Errors.FENCED_INSTANCE_ID))
        member.member_id = new_member_id
        self.members[new_member_id] = member
        if self.is_leader(old_member_id):
            self.leader_id = new_member_id
        self.static_members[group_instance_id] = new_member_id
        if old_member_id in self.pending_sync_members:
            self.pending_sync_members.discard(old_member_id)
            self.pending_sync_members.add(new_member_id)
        return member

    # -- protocol ---------------------------------------------------------------------------
    def _candidate_protocols(self) -> set[str]:
        total = len(self.members)
        return {name for name, count in self.supported_protocols.items() if count == total}

    def select_protocol(self) -> str:
        """The protocol with most first-choice votes among those every member supports (ties:
        the first counted, as Kafka's maxBy)."""
        candidates = self._candidate_protocols()
        votes: dict[str, int] = {}
        for member in self.members.values():
            choice = member.vote(candidates)
            votes[choice] = votes.get(choice, 0) + 1
        return max(votes, key=votes.__getitem__)

    def supports_protocols(self, protocol_type: str, protocols: set[str]) -> bool:
        if not self.members:
            return bool(protocol_type) and bool(protocols)
        total = len(self.members)
        return self.protocol_type == protocol_type and any(
            self.supported_protocols.get(name, 0) == total for name in protocols)

    def current_member_metadata(self) -> list[tuple[str, str | None, bytes]]:
        if self.protocol_name is None:
            raise RuntimeError(f"no protocol selected for group {self.group_id}")
        return [(m.member_id, m.group_instance_id, m.metadata(self.protocol_name)) for m in self.members.values()]

    def compute_subscribed_topics(self) -> set[str] | None:
        if self.protocol_type != CONSUMER_PROTOCOL_TYPE or not self.members or self.protocol_name is None:
            return None
        topics: set[str] = set()
        for member in self.members.values():
            subscribed = read_subscribed_topics(member.metadata(self.protocol_name))
            if subscribed is None:
                return None
            topics |= subscribed
        return topics

    def is_subscribed_to_topic(self, topic: str) -> bool:
        if self.consumer is not None:
            return self.consumer.is_subscribed_to_topic(topic)
        return self.subscribed_topics is not None and topic in self.subscribed_topics

    def init_next_generation(self, now_ms: int) -> None:
        self.generation_id += 1
        if self.members:
            self.protocol_name = self.select_protocol()
            self.subscribed_topics = self.compute_subscribed_topics()
            self.transition_to(GroupState.COMPLETING_REBALANCE, now_ms)
        else:
            self.protocol_name = None
            self.subscribed_topics = self.compute_subscribed_topics()
            self.transition_to(GroupState.EMPTY, now_ms)
        self.pending_sync_members.clear()

    # -- offsets ----------------------------------------------------------------------------
    def offset(self, tp: TopicPartition) -> OffsetAndMetadata | None:
        record = self.offsets.get(tp)
        return None if record is None else record.offset_and_metadata

    @property
    def has_consumer_members(self) -> bool:
        return self.consumer is not None and bool(self.consumer.members)

    @property
    def has_offsets(self) -> bool:
        return bool(self.offsets) or bool(self.pending_offset_commits) or self.has_pending_transactional_offsets

    @property
    def has_pending_transactional_offsets(self) -> bool:
        return any(self.pending_transactional_offset_commits.values())

    def has_pending_offset_commits_for(self, tp: TopicPartition) -> bool:
        return tp in self.pending_offset_commits or any(
            tp in pending for pending in self.pending_transactional_offset_commits.values())

    # Transactional offsets (Kafka's prepareTxnOffsetCommit, onTxnOffsetCommitAppend,
    # failPendingTxnOffsetCommit, completePendingTxnOffsetCommit).
    def prepare_txn_offset_commit(self, producer_id: int, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        pending = self.pending_transactional_offset_commits.setdefault(producer_id, {})
        for tp, offset in offsets.items():
            pending[tp] = CommitRecordMetadataAndOffset(None, offset)

    def on_txn_offset_commit_append(self, producer_id: int, tp: TopicPartition,
                                    record: CommitRecordMetadataAndOffset) -> None:
        pending = self.pending_transactional_offset_commits.get(producer_id)
        current = None if pending is None else pending.get(tp)
        # A newer commit of the same partition in the same transaction may have replaced it meanwhile.
        if current is not None and current.appended_batch_offset is None and \
                current.offset_and_metadata == record.offset_and_metadata:
            pending[tp] = record  # type: ignore[index]

    def fail_pending_txn_offset_commit(self, producer_id: int, tp: TopicPartition) -> None:
        pending = self.pending_transactional_offset_commits.get(producer_id)
        if pending is not None:
            pending.pop(tp, None)
            if not pending:
                del self.pending_transactional_offset_commits[producer_id]

    def complete_pending_txn_offset_commit(self, producer_id: int, is_commit: bool) -> None:
        """The transaction's marker is written: its offsets become the group's, or are dropped."""
        pending = self.pending_transactional_offset_commits.pop(producer_id, None)
        if not is_commit or pending is None:
            return
        for tp, record in pending.items():
            if record.appended_batch_offset is None:
                continue  # its write never succeeded
            current = self.offsets.get(tp)
            if current is None or current.older_than(record):
                self.offsets[tp] = record

    def prepare_offset_commit(self, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        self.pending_offset_commits.update(offsets)

    def on_offset_commit_append(self, tp: TopicPartition, record: CommitRecordMetadataAndOffset) -> None:
        if tp in self.pending_offset_commits:
            current = self.offsets.get(tp)
            if current is None or current.older_than(record):
                self.offsets[tp] = record
        if self.pending_offset_commits.get(tp) == record.offset_and_metadata:
            del self.pending_offset_commits[tp]

    def fail_pending_offset_write(self, tp: TopicPartition, offset: OffsetAndMetadata) -> None:
        if self.pending_offset_commits.get(tp) == offset:
            del self.pending_offset_commits[tp]

    def remove_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, OffsetAndMetadata]:
        removed = {}
        for tp in tps:
            self.pending_offset_commits.pop(tp, None)
            for pending in self.pending_transactional_offset_commits.values():
                pending.pop(tp, None)
            record = self.offsets.pop(tp, None)
            if record is not None:
                removed[tp] = record.offset_and_metadata
        return removed

    def remove_all_offsets(self) -> dict[TopicPartition, OffsetAndMetadata]:
        return self.remove_offsets(list(self.offsets))

    def remove_expired_offsets(self, now_ms: int, retention_ms: int) -> dict[TopicPartition, OffsetAndMetadata]:
        """Kafka's rules: an Empty group's offsets expire `retention_ms` after it became empty
        (or after the commit, for metadata written before state timestamps existed); a Stable
        consumer group's offsets of topics it no longer subscribes to expire after the commit;
        a group without a protocol type (offsets-only, a "simple" consumer) after the commit.
        Explicit expire timestamps from old clients win. A KIP-848 group with members is as a
        Stable consumer group: only the offsets of topics nobody subscribes to expire."""
        consumer = self.consumer
        if consumer is not None and consumer.members:
            def base(r: CommitRecordMetadataAndOffset) -> int:
                return r.offset_and_metadata.commit_timestamp
            subscribed: set[str] = {tp[0] for tp in self.offsets if consumer.is_subscribed_to_topic(tp[0])}
        elif self.protocol_type is not None and self.is_state(GroupState.EMPTY):
            def base(r: CommitRecordMetadataAndOffset) -> int:
                return (self.current_state_timestamp if self.current_state_timestamp is not None
                        else r.offset_and_metadata.commit_timestamp)
            subscribed = set()
        elif (self.protocol_type == CONSUMER_PROTOCOL_TYPE and self.subscribed_topics is not None
              and self.is_state(GroupState.STABLE)):
            def base(r: CommitRecordMetadataAndOffset) -> int:
                return r.offset_and_metadata.commit_timestamp
            subscribed = self.subscribed_topics
        elif self.protocol_type is None:
            def base(r: CommitRecordMetadataAndOffset) -> int:
                return r.offset_and_metadata.commit_timestamp
            subscribed = set()
        else:
            return {}
        expired = []
        for tp, record in self.offsets.items():
            if tp[0] in subscribed or tp in self.pending_offset_commits:
                continue
            expire = record.offset_and_metadata.expire_timestamp
            if (now_ms >= expire) if expire is not None else (now_ms - base(record) >= retention_ms):
                expired.append(tp)
        return self.remove_offsets(expired)
