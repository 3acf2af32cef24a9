"""GroupCoordinator: the classic group protocol (JoinGroup, SyncGroup, Heartbeat, LeaveGroup),
offset commits and fetches, group listing, description and deletion, as Kafka 3.x's
GroupCoordinator.scala does it (KAFKA-FACTS §7).

- Rebalances: a join moves the group to PreparingRebalance; the join completes when every known
  member has rejoined (and no MEMBER_ID_REQUIRED member is pending) or when the longest rebalance
  timeout passes (DelayedJoin); a group coming from Empty first waits
  group.initial.rebalance.delay.ms, extended per new joiner up to the rebalance timeout
  (InitialDelayedJoin). Missing dynamic members are dropped, the generation goes up, the leader
  gets every member's metadata, and SyncGroup hands out the leader's assignment once it is
  stored. Members that do not SyncGroup within the rebalance timeout are dropped (DelayedSync).
- Sessions: every member has a session timer (an asyncio timer, via `scheduler.call_later`);
  heartbeats, commits and joins re-arm it; when it fires the member is removed and the group
  rebalances. New members get five minutes to finish their first join, as in Kafka.
- Static members (group.instance.id) rejoin with a new member id and, when the chosen protocol
  stays the same, without a rebalance; a stale member id gets FENCED_INSTANCE_ID.
- Pre-checks on every call: INVALID_GROUP_ID, COORDINATOR_NOT_AVAILABLE (not started),
  COORDINATOR_LOAD_IN_PROGRESS (its partition is being replayed; Heartbeat answers NONE and
  SyncGroup REBALANCE_IN_PROGRESS instead), NOT_COORDINATOR (another broker leads it).
- Leadership of `__consumer_offsets` partitions comes through `on_leadership_change` (a
  ReplicaManager leadership listener): we load a partition's groups on becoming its leader and
  drop them, answering waiting members with NOT_COORDINATOR, when we stop leading it.
- Offsets of empty groups expire after offsets.retention.minutes, checked every
  offsets.retention.check.interval.ms.
Storage is GroupMetadataManager's; the wire format is the handlers'. Time comes from `time_ms`
and timers from `scheduler` (the running event loop by default), so tests can drive both.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kbroker.background import BackgroundTasks
from kbroker.group.consumer_group import CONSUMER_GROUP_TYPE, ConsumerGroup
from kbroker.group.consumer_group_coordinator import (
    ConsumerGroupConfig,
    ConsumerGroupCoordinator,
    HeartbeatParams,
    HeartbeatResult,
)
from kbroker.group.group_metadata import (
    UNKNOWN_MEMBER_ID,
    GroupMetadata,
    GroupState,
    JoinGroupResult,
    MemberMetadata,
    SyncGroupResult,
    TopicPartition,
)
from kbroker.group.group_metadata_manager import GROUP_METADATA_TOPIC_NAME, GroupMetadataManager, OffsetConfig
from kbroker.group.offset_and_metadata import OffsetAndMetadata
from kbroker.protocol.api_keys import ApiKey
from kbroker.protocol.errors import Errors

if TYPE_CHECKING:
    from kbroker.config import KafkaConfig
    from kbroker.metadata.metadata_cache import MetadataCache
    from kbroker.replica.replica_manager import ReplicaManager

log = logging.getLogger("kbroker.group")

NEW_MEMBER_JOIN_TIMEOUT_MS = 5 * 60 * 1000
CLASSIC_GROUP_TYPE = "classic"
# APIs that accept an empty group id (offsets-only users, and admin views of "all groups").
_EMPTY_GROUP_ID_APIS = {ApiKey.OFFSET_COMMIT, ApiKey.OFFSET_FETCH, ApiKey.DESCRIBE_GROUPS, ApiKey.DELETE_GROUPS}
# TxnOffsetCommit's first version with GROUP_ID_NOT_FOUND and STALE_MEMBER_EPOCH (KIP-1319).
TXN_OFFSET_COMMIT_V6_ERRORS = 6


@dataclass(frozen=True, slots=True)
class GroupConfig:
    min_session_timeout_ms: int = 6000
    max_session_timeout_ms: int = 1800000
    initial_rebalance_delay_ms: int = 3000
    max_size: int = 2**31 - 1

    @classmethod
    def from_kafka_config(cls, config: KafkaConfig) -> GroupConfig:
        return cls(config.get("group.min.session.timeout.ms"), config.get("group.max.session.timeout.ms"),
                   config.get("group.initial.rebalance.delay.ms"), config.get("group.max.size"))


@dataclass(slots=True)
class JoinGroupParams:
    group_id: str
    member_id: str
    group_instance_id: str | None
    protocol_type: str
    protocols: list[tuple[str, bytes]]
    session_timeout_ms: int
    rebalance_timeout_ms: int
    client_id: str = ""
    client_host: str = ""
    require_known_member_id: bool = True
    support_skipping_assignment: bool = False
    reason: str | None = None


@dataclass(slots=True)
class MemberSummary:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    metadata: bytes
    assignment: bytes


@dataclass(slots=True)
class GroupSummary:
    state: str
    protocol_type: str
    protocol: str
    members: list[MemberSummary]


@dataclass(slots=True)
class GroupOverview:
    group_id: str
    protocol_type: str
    state: str
    group_type: str = CLASSIC_GROUP_TYPE


@dataclass(slots=True)
class _DelayedJoin:
    """A pending join completion: Kafka's DelayedJoin, or InitialDelayedJoin when `initial`."""

    initial: bool
    delay_ms: int
    remaining_ms: int = 0
    handle: Any = None


def _wall_clock_ms() -> int:
    return int(time.time() * 1000)


class GroupCoordinator:
    def __init__(self, broker_id: int, config: KafkaConfig, replica_manager: ReplicaManager,
                 metadata_cache: MetadataCache, *, scheduler: Any = None,
                 time_ms: Callable[[], int] | None = None) -> None:
        self.broker_id = broker_id
        self.group_config = GroupConfig.from_kafka_config(config)
        self.offset_config = OffsetConfig.from_kafka_config(config)
        self.time_ms = time_ms or _wall_clock_ms
        self._scheduler = scheduler
        self.manager = GroupMetadataManager(self.offset_config, replica_manager, metadata_cache, self.time_ms)
        self.consumer_groups = ConsumerGroupCoordinator(ConsumerGroupConfig.from_kafka_config(config), self.manager,
                                                        metadata_cache, self.time_ms, self._call_later)
        self.consumer_groups.on_timer_change = self._spawn_consumer_group_write
        self.is_active = False
        self._expiry_timer: Any = None
        self._tasks = BackgroundTasks(log, "group coordinator task")
        # Kafka's epochForPartitionId: the leader epoch of the last election or resignation acted
        # on per offsets partition, so a late one for an older epoch is ignored.
        self._epoch_for_partition: dict[int, int] = {}

    # -- lifecycle ------------------------------------------------------------------------------
    def startup(self) -> None:
        self.is_active = True
        self._schedule_offsets_expiry()
        log.info("group coordinator started")

    def shutdown(self) -> None:
        """Stops serving: waiting members are answered NOT_COORDINATOR, timers are cancelled."""
        self.is_active = False
        if self._expiry_timer is not None:
            self._expiry_timer.cancel()
        self._tasks.cancel_all()
        for partition in sorted(self.manager.owned_partitions | self.manager.loading_partitions):
            self.manager.unload_partition(partition, self._on_group_unloaded)
        log.info("group coordinator stopped")

    @property
    def scheduler(self) -> Any:
        return self._scheduler if self._scheduler is not None else asyncio.get_running_loop()

    def _call_later(self, delay_ms: int, callback: Callable, *args: Any) -> Any:
        return self.scheduler.call_later(max(delay_ms, 0) / 1000, self._run_timer, callback, args)

    @staticmethod
    def _run_timer(callback: Callable, args: tuple) -> None:
        try:
            callback(*args)
        except Exception:
            log.exception("group coordinator timer %s failed", callback.__name__)

    # -- the offsets topic ----------------------------------------------------------------------
    def partition_for(self, group_id: str) -> int:
        return self.manager.partition_for(group_id)

    def offsets_topic_configs(self) -> dict[str, str]:
        """Kafka's groupMetadataTopicConfigs, used when the topic is created on first use."""
        return {"cleanup.policy": "compact", "compression.type": "producer",
                "segment.bytes": str(self.offset_config.topic_segment_bytes)}

    def on_leadership_change(self, topic: str, partition: int, is_leader: bool, leader_epoch: int) -> None:
        """ReplicaManager leadership listener: load on election, unload on resignation. A negative
        epoch (StopReplica's "no epoch" or "during delete") resigns whatever the epoch."""
        if topic != GROUP_METADATA_TOPIC_NAME:
            return
        if is_leader:
            self.on_election(partition, leader_epoch)
        else:
            self.on_resignation(partition, leader_epoch if leader_epoch >= 0 else None)

    def on_election(self, partition: int, leader_epoch: int) -> None:
        """Kafka's onElection: load the partition's groups, unless this epoch is not newer than
        the last election or resignation acted on."""
        current = self._epoch_for_partition.get(partition)
        if current is not None and leader_epoch <= current:
            log.info("ignored election as group coordinator for %s-%d in epoch %d: current epoch is %d",
                     GROUP_METADATA_TOPIC_NAME, partition, leader_epoch, current)
            return
        self._epoch_for_partition[partition] = leader_epoch
        token = self.manager.begin_load(partition)
        if token is not None:
            self._tasks.spawn(self.manager.load_partition(partition, token, self._on_group_loaded))

    def on_resignation(self, partition: int, leader_epoch: int | None) -> None:
        """Kafka's onResignation: unload the partition's groups, unless a newer epoch was acted on
        already (a late resignation must not unload state loaded for a newer election)."""
        current = self._epoch_for_partition.get(partition)
        if current is not None and leader_epoch is not None and leader_epoch < current:
            log.info("ignored resignation as group coordinator for %s-%d in epoch %d: current epoch is %d",
                     GROUP_METADATA_TOPIC_NAME, partition, leader_epoch, current)
            return
        if leader_epoch is None:
            self._epoch_for_partition.pop(partition, None)
        else:
            self._epoch_for_partition[partition] = leader_epoch
        count = self.manager.unload_partition(partition, self._on_group_unloaded)
        if count:
            log.info("unloaded %d groups of %s-%d", count, GROUP_METADATA_TOPIC_NAME, partition)

    def _on_group_loaded(self, group: GroupMetadata) -> None:
        self.consumer_groups.on_group_loaded(group)
        log.info("loaded group %s with generation %d (%s, %d members)", group.group_id, group.generation_id,
                 group.state.value, group.size)
        if group.size > self.group_config.max_size:
            self._prepare_rebalance(group, f"freshly-loaded group is over capacity ({group.size} members)")
        for member in list(group.members.values()):
            self._complete_and_schedule_next_heartbeat_expiration(group, member)

    def _on_group_unloaded(self, group: GroupMetadata) -> None:
        self.consumer_groups.on_group_unloaded(group)
        previous = group.state
        group.transition_to(GroupState.DEAD, self.time_ms())
        members = list(group.members.values())
        if previous is GroupState.PREPARING_REBALANCE:
            for member in members:
                group.maybe_invoke_join_callback(member, JoinGroupResult(member.member_id, Errors.NOT_COORDINATOR))
        elif previous in (GroupState.STABLE, GroupState.COMPLETING_REBALANCE):
            for member in members:
                group.maybe_invoke_sync_callback(member, SyncGroupResult(Errors.NOT_COORDINATOR))
        self._cancel_group_timers(group)

    def _cancel_group_timers(self, group: GroupMetadata) -> None:
        for member in group.members.values():
            self._remove_heartbeat(member)
        for handle in group.pending_member_timers.values():
            handle.cancel()
        group.pending_member_timers.clear()
        self._cancel_sync_timer(group)
        if group.delayed_join is not None:
            group.delayed_join.handle.cancel()
            group.delayed_join = None

    # -- pre-checks -----------------------------------------------------------------------------
    def _validate_group_status(self, group_id: str | None, api: ApiKey) -> Errors | None:
        if group_id is None or (not group_id and api not in _EMPTY_GROUP_ID_APIS):
            return Errors.INVALID_GROUP_ID
        if not self.is_active:
            return Errors.COORDINATOR_NOT_AVAILABLE
        if self.manager.is_group_loading(group_id):
            return Errors.COORDINATOR_LOAD_IN_PROGRESS
        if not self.manager.is_group_local(group_id):
            return Errors.NOT_COORDINATOR
        return None

    @staticmethod
    def _validate_current_member(group: GroupMetadata, member_id: str, group_instance_id: str | None) -> Errors | None:
        if group_instance_id is not None:
            current = group.current_static_member_id(group_instance_id)
            if current is None:
                return Errors.UNKNOWN_MEMBER_ID
            if current != member_id:
                log.info("member %s of group %s (instance %s) is fenced by %s", member_id, group.group_id,
                         group_instance_id, current)
                return Errors.FENCED_INSTANCE_ID
        if not group.has(member_id):
            return Errors.UNKNOWN_MEMBER_ID
        return None

    # -- JoinGroup ------------------------------------------------------------------------------
    async def join_group(self, params: JoinGroupParams) -> JoinGroupResult:
        future = asyncio.get_running_loop().create_future()
        self._handle_join_group(params, _resolver(future))
        return await future

    def _handle_join_group(self, p: JoinGroupParams, respond: Callable[[JoinGroupResult], None]) -> None:
        error = self._validate_group_status(p.group_id, ApiKey.JOIN_GROUP)
        if error is not None:
            respond(JoinGroupResult(p.member_id, error))
            return
        cfg = self.group_config
        if not cfg.min_session_timeout_ms <= p.session_timeout_ms <= cfg.max_session_timeout_ms:
            respond(JoinGroupResult(p.member_id, Errors.INVALID_SESSION_TIMEOUT))
            return
        is_unknown_member = p.member_id == UNKNOWN_MEMBER_ID
        # The group is created by a join without a member id; a member id for an unknown group is refused.
        group = self.manager.get_or_maybe_create_group(p.group_id, is_unknown_member)
        if group is None:
            respond(JoinGroupResult(p.member_id, Errors.UNKNOWN_MEMBER_ID))
            return
        if group.consumer is not None:
            if group.consumer.members:
                # A KIP-848 group with members: a classic member cannot join it here.
                respond(JoinGroupResult(p.member_id, Errors.INCONSISTENT_GROUP_PROTOCOL))
                return
            group.consumer = None  # an empty consumer group becomes a classic one, offsets kept
            group.protocol_type = None
            self._spawn_consumer_group_write(group.group_id)  # tombstones for its KIP-848 records
        if not self._accept_joining_member(group, p.member_id):
            if group.has(p.member_id):
                self._remove_heartbeat(group.get(p.member_id))
            group.remove(p.member_id)
            respond(JoinGroupResult(UNKNOWN_MEMBER_ID, Errors.GROUP_MAX_SIZE_REACHED))
        elif is_unknown_member:
            self._do_new_member_join(group, p, respond)
        else:
            self._do_current_member_join(group, p, respond)
        if group.is_state(GroupState.PREPARING_REBALANCE):
            self._try_complete_join(group)

    def _accept_joining_member(self, group: GroupMetadata, member_id: str) -> bool:
        """Kafka's acceptJoiningMember: while preparing, members already awaiting are counted
        (so the last to rejoin of an oversized group are the ones turned away)."""
        max_size = self.group_config.max_size
        if group.state in (GroupState.EMPTY, GroupState.DEAD):
            return True
        if group.is_state(GroupState.PREPARING_REBALANCE):
            return ((group.has(member_id) and group.get(member_id).is_awaiting_join)
                    or group.num_members_awaiting_join < max_size)
        return group.has(member_id) or group.size < max_size

    def _do_new_member_join(self, group: GroupMetadata, p: JoinGroupParams,
                            respond: Callable[[JoinGroupResult], None]) -> None:
        if group.is_state(GroupState.DEAD):
            respond(JoinGroupResult(UNKNOWN_MEMBER_ID, Errors.COORDINATOR_NOT_AVAILABLE))
            return
        if not group.supports_protocols(p.protocol_type, {name for name, _ in p.protocols}):
            respond(JoinGroupResult(UNKNOWN_MEMBER_ID, Errors.INCONSISTENT_GROUP_PROTOCOL))
            return
        new_member_id = group.generate_member_id(p.client_id, p.group_instance_id)
        if p.group_instance_id is not None:
            old_member_id = group.current_static_member_id(p.group_instance_id)
            if old_member_id is not None:
                log.info("static member %s of group %s rejoins: %s replaces %s", p.group_instance_id,
                         group.group_id, new_member_id, old_member_id)
                self._update_static_member_and_rebalance(group, p.group_instance_id, old_member_id, new_member_id,
                                                         p, respond)
            else:
                self._add_member_and_rebalance(group, new_member_id, p, respond)
        elif p.require_known_member_id:
            # KIP-394: the member must come back with this id; it counts as pending until then.
            group.pending_members.add(new_member_id)
            group.pending_member_timers[new_member_id] = self._call_later(
                p.session_timeout_ms, self._on_expire_pending_member, group, new_member_id)
            respond(JoinGroupResult(new_member_id, Errors.MEMBER_ID_REQUIRED))
        else:
            self._add_member_and_rebalance(group, new_member_id, p, respond)

    def _do_current_member_join(self, group: GroupMetadata, p: JoinGroupParams,
                                respond: Callable[[JoinGroupResult], None]) -> None:
        if group.is_state(GroupState.DEAD):
            respond(JoinGroupResult(p.member_id, Errors.COORDINATOR_NOT_AVAILABLE))
            return
        if not group.supports_protocols(p.protocol_type, {name for name, _ in p.protocols}):
            respond(JoinGroupResult(p.member_id, Errors.INCONSISTENT_GROUP_PROTOCOL))
            return
        if group.is_pending_member(p.member_id):
            if p.group_instance_id is not None:  # pending ids are handed to dynamic members only
                respond(JoinGroupResult(p.member_id, Errors.UNKNOWN_SERVER_ERROR))
                return
            self._add_member_and_rebalance(group, p.member_id, p, respond)
            return
        error = self._validate_current_member(group, p.member_id, p.group_instance_id)
        if error is not None:
            respond(JoinGroupResult(p.member_id, error))
            return
        member = group.get(p.member_id)
        state = group.state
        if state is GroupState.PREPARING_REBALANCE:
            self._update_member_and_rebalance(group, member, p.protocols, respond, "member joins while preparing")
        elif state is GroupState.COMPLETING_REBALANCE:
            if member.matches(p.protocols):
                # It missed the JoinGroup answer: give it the current generation again.
                respond(self._generation_result(group, member.member_id, group.is_leader(member.member_id)))
            else:
                self._update_member_and_rebalance(group, member, p.protocols, respond, "member metadata changed")
        elif state is GroupState.STABLE:
            if group.is_leader(member.member_id) or not member.matches(p.protocols):
                # The leader rejoining asks for a new assignment (e.g. the topics' partitions changed).
                self._update_member_and_rebalance(group, member, p.protocols, respond,
                                                  "leader rejoins or member metadata changed")
            else:
                respond(self._generation_result(group, member.member_id, False))
        else:
            log.warning("member %s rejoins group %s in unexpected state %s", p.member_id, group.group_id,
                        state.value)
            respond(JoinGroupResult(p.member_id, Errors.UNKNOWN_MEMBER_ID))

    @staticmethod
    def _generation_result(group: GroupMetadata, member_id: str, with_members: bool,
                           leader_id: str | None = None, skip_assignment: bool = False) -> JoinGroupResult:
        return JoinGroupResult(
            member_id, Errors.NONE, group.generation_id, group.protocol_type, group.protocol_name,
            (group.leader_id if leader_id is None else leader_id) or UNKNOWN_MEMBER_ID, skip_assignment,
            group.current_member_metadata() if with_members else [])

    def _add_member_and_rebalance(self, group: GroupMetadata, member_id: str, p: JoinGroupParams,
                                  respond: Callable[[JoinGroupResult], None]) -> None:
        member = MemberMetadata(member_id, p.group_instance_id, p.client_id, p.client_host,
                                p.rebalance_timeout_ms, p.session_timeout_ms, p.protocol_type, list(p.protocols))
        member.is_new = True
        if group.is_state(GroupState.PREPARING_REBALANCE) and group.generation_id == 0:
            group.new_member_added = True  # lets the initial delay stretch for this joiner
        group.add(member, respond)
        timer = group.pending_member_timers.pop(member_id, None)
        if timer is not None:
            timer.cancel()
        # A new member cannot heartbeat until its join completes: give it the long join timeout.
        self._complete_and_schedule_next_expiration(group, member, NEW_MEMBER_JOIN_TIMEOUT_MS)
        self._maybe_prepare_rebalance(group, f"adding new member {member_id} with group instance id "
                                             f"{p.group_instance_id}; client reason: {p.reason}")

    def _update_member_and_rebalance(self, group: GroupMetadata, member: MemberMetadata,
                                     protocols: list[tuple[str, bytes]], respond: Callable[[JoinGroupResult], None],
                                     reason: str) -> None:
        group.update_member(member, protocols, respond)
        self._maybe_prepare_rebalance(group, f"{reason} ({member.member_id})")

    def _update_static_member_and_rebalance(self, group: GroupMetadata, group_instance_id: str, old_member_id: str,
                                            new_member_id: str, p: JoinGroupParams,
                                            respond: Callable[[JoinGroupResult], None]) -> None:
        current_leader = group.leader_id
        member = group.replace_static_member(group_instance_id, old_member_id, new_member_id)
        self._complete_and_schedule_next_heartbeat_expiration(group, member)
        old_protocols = list(member.supported_protocols)
        group.update_member(member, p.protocols, respond)
        state = group.state
        if state is GroupState.STABLE:
            if group.protocol_name == group.select_protocol():
                # Same protocol: persist the new member id and skip the rebalance.
                assignment = {m.member_id: m.assignment for m in group.members.values()}
                record = self.manager.group_record(group, assignment)
                self._tasks.spawn(self._persist_static_member(group, member, p, group_instance_id, old_member_id,
                                                        old_protocols, current_leader, record, respond))
            else:
                self._maybe_prepare_rebalance(group, f"static member {group_instance_id} changed the protocol")
        elif state is GroupState.COMPLETING_REBALANCE:
            # The leader may be assigning to the old member id: start over.
            self._prepare_rebalance(group, f"static member {group_instance_id} rejoined while completing")

    async def _persist_static_member(self, group: GroupMetadata, member: MemberMetadata, p: JoinGroupParams,
                                     group_instance_id: str, old_member_id: str, old_protocols: list[tuple[str, bytes]],
                                     current_leader: str | None, record: bytes,
                                     respond: Callable[[JoinGroupResult], None]) -> None:
        new_member_id = member.member_id
        error = await self.manager.store_group(group.group_id, record)
        if error != Errors.NONE:
            # Put the old member id back: the new one was never stored.
            group.update_member(member, old_protocols, None)
            old_member = group.replace_static_member(group_instance_id, new_member_id, old_member_id)
            self._complete_and_schedule_next_heartbeat_expiration(group, old_member)
            result = self._generation_result(group, UNKNOWN_MEMBER_ID, False, current_leader)
            result.error = error
            respond(result)
            return
        if p.support_skipping_assignment:
            # JoinGroup v9+: the leader learns it leads but skips the assignor (the group is stable).
            is_leader = group.is_leader(new_member_id)
            group.maybe_invoke_join_callback(member, self._generation_result(
                group, new_member_id, is_leader, skip_assignment=is_leader))
        else:
            # Older versions get the previous leader id, so a rejoined leader does not assign.
            group.maybe_invoke_join_callback(member, self._generation_result(group, new_member_id, False,
                                                                             current_leader))

    # -- rebalances -----------------------------------------------------------------------------
    def _maybe_prepare_rebalance(self, group: GroupMetadata, reason: str) -> None:
        if group.can_rebalance:
            self._prepare_rebalance(group, reason)

    def _prepare_rebalance(self, group: GroupMetadata, reason: str) -> None:
        if group.is_state(GroupState.COMPLETING_REBALANCE):
            self._reset_and_propagate_assignment_error(group, Errors.REBALANCE_IN_PROGRESS)
        self._cancel_sync_timer(group)
        delay = self.group_config.initial_rebalance_delay_ms
        if group.is_state(GroupState.EMPTY):
            delayed = _DelayedJoin(True, delay, max(group.rebalance_timeout_ms - delay, 0))
        else:
            delayed = _DelayedJoin(False, group.rebalance_timeout_ms)
        group.transition_to(GroupState.PREPARING_REBALANCE, self.time_ms())
        log.info("preparing to rebalance group %s with old generation %d (%s-%d) (reason: %s)", group.group_id,
                 group.generation_id, GROUP_METADATA_TOPIC_NAME, self.partition_for(group.group_id), reason)
        self._watch_join(group, delayed)

    def _watch_join(self, group: GroupMetadata, delayed: _DelayedJoin) -> None:
        """Kafka's tryCompleteElseWatch for the join: complete now if everyone has joined."""
        if group.delayed_join is not None:
            group.delayed_join.handle.cancel()
            group.delayed_join = None
        if not delayed.initial and group.has_all_members_joined():
            self._on_complete_join(group)
            return
        delayed.handle = self._call_later(delayed.delay_ms, self._on_join_expired, group, delayed)
        group.delayed_join = delayed

    def _on_join_expired(self, group: GroupMetadata, delayed: _DelayedJoin) -> None:
        if group.delayed_join is not delayed:
            return
        group.delayed_join = None
        if delayed.initial and group.new_member_added and delayed.remaining_ms != 0:
            group.new_member_added = False
            delay = min(self.group_config.initial_rebalance_delay_ms, delayed.remaining_ms)
            remaining = max(delayed.remaining_ms - delayed.delay_ms, 0)
            self._watch_join(group, _DelayedJoin(True, delay, remaining))
            return
        self._on_complete_join(group)

    def _try_complete_join(self, group: GroupMetadata) -> None:
        """Kafka's checkAndComplete on the group's join key."""
        delayed = group.delayed_join
        if delayed is not None and not delayed.initial and group.has_all_members_joined():
            delayed.handle.cancel()
            group.delayed_join = None
            self._on_complete_join(group)

    def _on_complete_join(self, group: GroupMetadata) -> None:
        for member in group.not_yet_rejoined_members():
            if not member.is_static_member:
                log.info("group %s removes member %s, which did not rejoin", group.group_id, member.member_id)
                self._remove_heartbeat(member)
                group.remove(member.member_id)
        if group.is_state(GroupState.DEAD):
            return
        if not self._maybe_elect_new_joined_leader(group) and group.members:
            log.error("group %s could not complete rebalance because no members rejoined", group.group_id)
            self._watch_join(group, _DelayedJoin(False, group.rebalance_timeout_ms))
            return
        group.init_next_generation(self.time_ms())
        if group.is_state(GroupState.EMPTY):
            log.info("group %s with generation %d is now empty", group.group_id, group.generation_id)
            self._tasks.spawn(self._store_empty_group(group.group_id, self.manager.group_record(group, {})))
            return
        log.info("stabilized group %s generation %d (%s-%d) with %d members", group.group_id, group.generation_id,
                 GROUP_METADATA_TOPIC_NAME, self.partition_for(group.group_id), group.size)
        for member in list(group.members.values()):
            result = self._generation_result(group, member.member_id, group.is_leader(member.member_id))
            group.maybe_invoke_join_callback(member, result)
            self._complete_and_schedule_next_heartbeat_expiration(group, member)
            member.is_new = False
            group.pending_sync_members.add(member.member_id)
        self._schedule_pending_sync(group)

    @staticmethod
    def _maybe_elect_new_joined_leader(group: GroupMetadata) -> bool:
        if group.leader_id is None:
            return False
        if group.has(group.leader_id) and group.get(group.leader_id).is_awaiting_join:
            return True
        for member in group.members.values():
            if member.is_awaiting_join:
                log.info("group %s elects %s leader: the old leader did not rejoin", group.group_id,
                         member.member_id)
                group.leader_id = member.member_id
                return True
        return False

    async def _store_empty_group(self, group_id: str, record: bytes) -> None:
        error = await self.manager.store_group(group_id, record)
        if error != Errors.NONE:
            # A restart before the next rebalance replays the previous generation, whose members time out.
            log.warning("failed to write empty metadata for group %s: %s", group_id, error.name)

    def _schedule_pending_sync(self, group: GroupMetadata) -> None:
        self._cancel_sync_timer(group)
        group.sync_timer = self._call_later(group.rebalance_timeout_ms, self._on_expire_pending_sync, group,
                                            group.generation_id)

    def _cancel_sync_timer(self, group: GroupMetadata) -> None:
        if group.sync_timer is not None:
            group.sync_timer.cancel()
            group.sync_timer = None

    def _on_expire_pending_sync(self, group: GroupMetadata, generation_id: int) -> None:
        group.sync_timer = None
        if generation_id != group.generation_id:
            return
        if group.state in (GroupState.COMPLETING_REBALANCE, GroupState.STABLE) and group.pending_sync_members:
            missing = sorted(group.pending_sync_members)
            for member_id in missing:
                if group.has(member_id):
                    self._remove_heartbeat(group.get(member_id))
                group.remove(member_id)
            self._prepare_rebalance(group, f"removing {missing} on pending sync request expiration")

    def _remove_pending_sync_member(self, group: GroupMetadata, member_id: str) -> None:
        group.pending_sync_members.discard(member_id)
        if not group.pending_sync_members:
            self._cancel_sync_timer(group)

    # -- SyncGroup ------------------------------------------------------------------------------
    async def sync_group(self, group_id: str, generation_id: int, member_id: str, protocol_type: str | None,
                         protocol_name: str | None, group_instance_id: str | None,
                         assignments: dict[str, bytes]) -> SyncGroupResult:
        error = self._validate_group_status(group_id, ApiKey.SYNC_GROUP)
        if error == Errors.COORDINATOR_LOAD_IN_PROGRESS:
            # The rebalance state was lost with the load: the member must rejoin, and older
            # clients do not expect COORDINATOR_LOAD_IN_PROGRESS here.
            return SyncGroupResult(Errors.REBALANCE_IN_PROGRESS)
        if error is not None:
            return SyncGroupResult(error)
        group = self.manager.get_group(group_id)
        if group is None:
            return SyncGroupResult(Errors.UNKNOWN_MEMBER_ID)
        future = asyncio.get_running_loop().create_future()
        self._do_sync_group(group, generation_id, member_id, protocol_type, protocol_name, group_instance_id,
                            assignments, _resolver(future))
        return await future

    def _validate_member_generation(self, group: GroupMetadata, member_id: str, group_instance_id: str | None,
                                    generation_id: int) -> Errors | None:
        """SyncGroup's and Heartbeat's shared checks: a live group, a known member, its generation."""
        if group.is_state(GroupState.DEAD):
            return Errors.COORDINATOR_NOT_AVAILABLE
        error = self._validate_current_member(group, member_id, group_instance_id)
        if error is not None:
            return error
        if generation_id != group.generation_id:
            return Errors.ILLEGAL_GENERATION
        return None

    def _validate_sync_group(self, group: GroupMetadata, generation_id: int, member_id: str,
                             protocol_type: str | None, protocol_name: str | None,
                             group_instance_id: str | None) -> Errors | None:
        error = self._validate_member_generation(group, member_id, group_instance_id, generation_id)
        if error is not None:
            return error
        if protocol_type is not None and group.protocol_type != protocol_type:
            return Errors.INCONSISTENT_GROUP_PROTOCOL
        if protocol_name is not None and group.protocol_name != protocol_name:
            return Errors.INCONSISTENT_GROUP_PROTOCOL
        return None

    def _do_sync_group(self, group: GroupMetadata, generation_id: int, member_id: str, protocol_type: str | None,
                       protocol_name: str | None, group_instance_id: str | None, assignments: dict[str, bytes],
                       respond: Callable[[SyncGroupResult], None]) -> None:
        error = self._validate_sync_group(group, generation_id, member_id, protocol_type, protocol_name,
                                          group_instance_id)
        if error is not None:
            respond(SyncGroupResult(error))
            return
        state = group.state
        if state is GroupState.EMPTY:
            respond(SyncGroupResult(Errors.UNKNOWN_MEMBER_ID))
        elif state is GroupState.PREPARING_REBALANCE:
            respond(SyncGroupResult(Errors.REBALANCE_IN_PROGRESS))
        elif state is GroupState.COMPLETING_REBALANCE:
            group.get(member_id).awaiting_sync_callback = respond
            self._remove_pending_sync_member(group, member_id)
            if group.is_leader(member_id):
                log.info("assignment received from leader %s for group %s for generation %d", member_id,
                         group.group_id, group.generation_id)
                assignment = dict(assignments)
                for missing in group.members.keys() - assignment.keys():
                    assignment[missing] = b""
                # Stored as the group is now: members joining before the task runs are not in it.
                record = self.manager.group_record(group, assignment)
                self._tasks.spawn(self._store_assignment(group, generation_id, member_id, assignment, record))
        elif state is GroupState.STABLE:
            self._remove_pending_sync_member(group, member_id)
            member = group.get(member_id)
            respond(SyncGroupResult(Errors.NONE, group.protocol_type, group.protocol_name, member.assignment))
            self._complete_and_schedule_next_heartbeat_expiration(group, member)

    async def _store_assignment(self, group: GroupMetadata, generation_id: int, leader_id: str,
                                assignment: dict[str, bytes], record: bytes) -> None:
        error = await self.manager.store_group(group.group_id, record)
        # Another member may have joined meanwhile: only the same generation, still completing, proceeds.
        if not group.is_state(GroupState.COMPLETING_REBALANCE) or group.generation_id != generation_id:
            return
        if error != Errors.NONE:
            self._reset_and_propagate_assignment_error(group, error)
            self._maybe_prepare_rebalance(group, f"error storing the assignment of leader {leader_id}")
        else:
            self._set_and_propagate_assignment(group, assignment)
            group.transition_to(GroupState.STABLE, self.time_ms())

    def _reset_and_propagate_assignment_error(self, group: GroupMetadata, error: Errors) -> None:
        for member in group.members.values():
            member.assignment = b""
        self._propagate_assignment(group, error)

    def _set_and_propagate_assignment(self, group: GroupMetadata, assignment: dict[str, bytes]) -> None:
        for member in group.members.values():
            member.assignment = assignment.get(member.member_id, b"")
        self._propagate_assignment(group, Errors.NONE)

    def _propagate_assignment(self, group: GroupMetadata, error: Errors) -> None:
        ok = error == Errors.NONE
        for member in list(group.members.values()):
            result = SyncGroupResult(error, group.protocol_type if ok else None, group.protocol_name if ok else None,
                                     member.assignment)
            if group.maybe_invoke_sync_callback(member, result):
                # Its session may have lapsed while it waited: start a fresh one.
                self._complete_and_schedule_next_heartbeat_expiration(group, member)

    # -- Heartbeat ------------------------------------------------------------------------------
    def heartbeat(self, group_id: str, member_id: str, group_instance_id: str | None, generation_id: int) -> Errors:
        error = self._validate_group_status(group_id, ApiKey.HEARTBEAT)
        if error == Errors.COORDINATOR_LOAD_IN_PROGRESS:
            return Errors.NONE  # the group is still loading: answer blindly
        if error is not None:
            return error
        group = self.manager.get_group(group_id)
        if group is None:
            return Errors.UNKNOWN_MEMBER_ID
        error = self._validate_member_generation(group, member_id, group_instance_id, generation_id)
        if error is not None:
            return error
        if group.is_state(GroupState.EMPTY):
            return Errors.UNKNOWN_MEMBER_ID
        self._complete_and_schedule_next_heartbeat_expiration(group, group.get(member_id))
        if group.is_state(GroupState.PREPARING_REBALANCE):
            return Errors.REBALANCE_IN_PROGRESS
        return Errors.NONE

    # -- sessions -------------------------------------------------------------------------------
    def _complete_and_schedule_next_heartbeat_expiration(self, group: GroupMetadata, member: MemberMetadata) -> None:
        self._complete_and_schedule_next_expiration(group, member, member.session_timeout_ms)

    def _complete_and_schedule_next_expiration(self, group: GroupMetadata, member: MemberMetadata,
                                               timeout_ms: int) -> None:
        self._remove_heartbeat(member)
        member.heartbeat_timer = self._call_later(timeout_ms, self._on_expire_heartbeat, group, member)

    @staticmethod
    def _remove_heartbeat(member: MemberMetadata) -> None:
        if member.heartbeat_timer is not None:
            member.heartbeat_timer.cancel()
            member.heartbeat_timer = None

    def _on_expire_heartbeat(self, group: GroupMetadata, member: MemberMetadata) -> None:
        member.heartbeat_timer = None
        if group.is_state(GroupState.DEAD) or group.members.get(member.member_id) is not member:
            return
        if not member.has_satisfied_heartbeat_on_expiry():
            log.info("member %s in group %s has failed, removing it from the group", member.member_id,
                     group.group_id)
            self._remove_member_and_update_group(group, member, "session timeout expired")

    def _on_expire_pending_member(self, group: GroupMetadata, member_id: str) -> None:
        group.pending_member_timers.pop(member_id, None)
        if not group.is_state(GroupState.DEAD) and group.is_pending_member(member_id):
            log.info("pending member %s in group %s has been removed after session timeout expiration",
                     member_id, group.group_id)
            self._remove_pending_member_and_update_group(group, member_id)

    def _remove_member_and_update_group(self, group: GroupMetadata, member: MemberMetadata, reason: str) -> None:
        # A member may time out with its JoinGroup still waiting: answer it so it can retry.
        group.maybe_invoke_join_callback(member, JoinGroupResult(UNKNOWN_MEMBER_ID, Errors.UNKNOWN_MEMBER_ID))
        self._remove_heartbeat(member)
        group.remove(member.member_id)
        if group.state in (GroupState.STABLE, GroupState.COMPLETING_REBALANCE):
            self._maybe_prepare_rebalance(group, f"removing member {member.member_id}: {reason}")
        elif group.is_state(GroupState.PREPARING_REBALANCE):
            self._try_complete_join(group)

    def _remove_pending_member_and_update_group(self, group: GroupMetadata, member_id: str) -> None:
        timer = group.pending_member_timers.pop(member_id, None)
        if timer is not None:
            timer.cancel()
        group.remove(member_id)
        if group.is_state(GroupState.PREPARING_REBALANCE):
            self._try_complete_join(group)

    # -- LeaveGroup -----------------------------------------------------------------------------
    def leave_group(self, group_id: str, leaving: list[tuple[str, str | None, str | None]]
                    ) -> tuple[Errors, list[Errors]]:
        """Removes (member id, group instance id, reason) members; the group error, then one
        error per member in request order."""
        error = self._validate_group_status(group_id, ApiKey.LEAVE_GROUP)
        if error is not None:
            return error, []
        group = self.manager.get_group(group_id)
        if group is None:
            return Errors.NONE, [Errors.UNKNOWN_MEMBER_ID] * len(leaving)
        if group.is_state(GroupState.DEAD):
            return Errors.COORDINATOR_NOT_AVAILABLE, []
        return Errors.NONE, [self._leave_one(group, *member) for member in leaving]

    def _leave_one(self, group: GroupMetadata, member_id: str, group_instance_id: str | None,
                   reason: str | None) -> Errors:
        if member_id == UNKNOWN_MEMBER_ID:
            # Administrative removal by group.instance.id (KIP-345).
            current = group.current_static_member_id(group_instance_id) if group_instance_id is not None else None
            if current is None:
                return Errors.UNKNOWN_MEMBER_ID
            member_id = current
        elif group.is_pending_member(member_id):
            self._remove_pending_member_and_update_group(group, member_id)
            log.info("pending member %s has left group %s (reason: %s)", member_id, group.group_id, reason)
            return Errors.NONE
        else:
            error = self._validate_current_member(group, member_id, group_instance_id)
            if error is not None:
                return error
        log.info("member %s has left group %s through LeaveGroup (reason: %s)", member_id, group.group_id, reason)
        self._remove_member_and_update_group(group, group.get(member_id), f"LeaveGroup; client reason: {reason}")
        return Errors.NONE

    # -- KIP-848 ----------------------------------------------------------------------------------
    def is_consumer_group(self, group_id: str) -> bool:
        group = self.manager.get_group(group_id)
        return group is not None and group.consumer is not None

    async def consumer_group_heartbeat(self, params: HeartbeatParams) -> HeartbeatResult:
        """The heartbeat's changes are written (acks=-1) before it is answered, as Kafka's."""
        if not params.group_id:
            return self.consumer_groups.heartbeat(params)  # INVALID_REQUEST, as Kafka answers it
        error = self._validate_group_status(params.group_id, ApiKey.CONSUMER_GROUP_HEARTBEAT)
        if error is not None:
            return HeartbeatResult(error)
        result = self.consumer_groups.heartbeat(params)
        error = await self._write_consumer_group(params.group_id, result.member_id)
        return result if error == Errors.NONE else HeartbeatResult(error)

    async def _write_consumer_group(self, group_id: str, member_id: str | None = None) -> Errors:
        records = self.consumer_groups.take_records(group_id, member_id)
        if not records:
            return Errors.NONE
        error = await self.manager.store_records(group_id, records)
        if error != Errors.NONE:
            self.consumer_groups.forget_written(group_id)
        return error

    def _spawn_consumer_group_write(self, group_id: str) -> None:
        self._tasks.spawn(self._write_consumer_group(group_id))

    def consumer_group_describe(self, group_id: str) -> tuple[Errors, str | None, ConsumerGroup | None]:
        """(error, message, group) for ConsumerGroupDescribe."""
        error = self._validate_group_status(group_id, ApiKey.CONSUMER_GROUP_DESCRIBE)
        if error is not None:
            return error, None, None
        group = self.manager.get_group(group_id)
        if group is None or group.is_state(GroupState.DEAD):
            return Errors.GROUP_ID_NOT_FOUND, f"Group {group_id} not found.", None
        if group.consumer is None:
            return Errors.GROUP_ID_NOT_FOUND, f"Group {group_id} is not a consumer group.", None
        return Errors.NONE, None, group.consumer

    # -- offsets --------------------------------------------------------------------------------
    async def commit_offsets(self, group_id: str, member_id: str, group_instance_id: str | None,
                             generation_id: int, offsets: dict[TopicPartition, OffsetAndMetadata],
                             api_version: int = 8) -> dict[TopicPartition, Errors]:
        error = self._validate_group_status(group_id, ApiKey.OFFSET_COMMIT)
        if error is not None:
            return dict.fromkeys(offsets, error)
        group = self.manager.get_group(group_id)
        if group is None:
            if generation_id >= 0:
                # A member of a generation this coordinator never saw; v9+ says so plainly.
                return dict.fromkeys(offsets, Errors.GROUP_ID_NOT_FOUND if api_version >= 9
                                     else Errors.ILLEGAL_GENERATION)
            # Not using group management: an offsets-only group.
            group = self.manager.add_group(GroupMetadata(group_id, GroupState.EMPTY, self.time_ms()))
        if group.consumer is not None:
            error = self.consumer_groups.validate_offset_commit(group.consumer, member_id, generation_id, api_version)
            if error is not None:
                return dict.fromkeys(offsets, error)
            return await self.manager.store_offsets(group, offsets)
        error = self._validate_offset_commit(group, generation_id, member_id, group_instance_id)
        if error is not None:
            return dict.fromkeys(offsets, error)
        if group.is_state(GroupState.COMPLETING_REBALANCE):
            # A valid member that has not synced yet: let it find out about the rebalance.
            return dict.fromkeys(offsets, Errors.REBALANCE_IN_PROGRESS)
        if group.state in (GroupState.STABLE, GroupState.PREPARING_REBALANCE):
            self._complete_and_schedule_next_heartbeat_expiration(group, group.get(member_id))
        return await self.manager.store_offsets(group, offsets)

    async def handle_txn_commit_offsets(self, group_id: str, producer_id: int, producer_epoch: int, member_id: str,
                                        group_instance_id: str | None, generation_id: int,
                                        offsets: dict[TopicPartition, OffsetAndMetadata],
                                        api_version: int = 0) -> dict[TopicPartition, Errors]:
        """TxnOffsetCommit: the offsets are written in the producer's transaction and become the
        group's only when its commit marker is written (`on_transaction_completed`). An unknown
        group with a generation is ILLEGAL_GENERATION, and from v6 (KIP-1319) GROUP_ID_NOT_FOUND;
        a KIP-848 member's stale epoch is STALE_MEMBER_EPOCH from v6: Kafka 4.4's
        OffsetMetadataManager.validateTransactionalOffsetCommit."""
        error = self._validate_group_status(group_id, ApiKey.TXN_OFFSET_COMMIT)
        if error is not None:
            return dict.fromkeys(offsets, error)
        v6_errors = api_version >= TXN_OFFSET_COMMIT_V6_ERRORS
        group = self.manager.get_group(group_id)
        if group is None:
            if generation_id >= 0:  # as commit_offsets: a generation this coordinator never saw
                return dict.fromkeys(offsets, Errors.GROUP_ID_NOT_FOUND if v6_errors else Errors.ILLEGAL_GENERATION)
            group = self.manager.add_group(GroupMetadata(group_id, GroupState.EMPTY, self.time_ms()))
        if group.consumer is not None:
            error = self.consumer_groups.validate_txn_offset_commit(group.consumer, member_id, generation_id,
                                                                    v6_errors)
        else:
            error = self._validate_offset_commit(group, generation_id, member_id, group_instance_id,
                                                 transactional=True)
        if error is not None:
            return dict.fromkeys(offsets, error)
        return await self.manager.store_offsets(group, offsets, (producer_id, producer_epoch))

    def on_transaction_completed(self, producer_id: int, partitions: set[int], is_commit: bool) -> None:
        """A commit or abort marker of the producer was written on these `__consumer_offsets` partitions."""
        self.manager.handle_txn_completion(producer_id, partitions, is_commit)

    def _validate_offset_commit(self, group: GroupMetadata, generation_id: int, member_id: str,
                                group_instance_id: str | None, transactional: bool = False) -> Errors | None:
        if group.is_state(GroupState.DEAD):
            return Errors.COORDINATOR_NOT_AVAILABLE
        if generation_id >= 0 or member_id != UNKNOWN_MEMBER_ID or group_instance_id is not None:
            error = self._validate_current_member(group, member_id, group_instance_id)
            if error is not None:
                return error
            return Errors.ILLEGAL_GENERATION if generation_id != group.generation_id else None
        if not transactional and not group.is_state(GroupState.EMPTY):
            return Errors.UNKNOWN_MEMBER_ID  # only members commit to a group that has members
        return None

    def fetch_offsets(self, group_id: str, require_stable: bool, partitions: list[TopicPartition] | None,
                      member_id: str | None = None, member_epoch: int = -1
                      ) -> tuple[Errors, dict[TopicPartition, tuple[OffsetAndMetadata | None, Errors]]]:
        """v9+ fetches of a KIP-848 member carry its id and epoch, checked as OffsetCommit's."""
        error = self._validate_group_status(group_id, ApiKey.OFFSET_FETCH)
        if error is not None:
            return error, {}
        group = self.manager.get_group(group_id)
        if group is not None and group.consumer is not None:
            error = self.consumer_groups.validate_offset_fetch(group.consumer, member_id, member_epoch)
            if error is not None:
                return error, {}
        elif member_epoch >= 0 or member_id:
            # A member id and epoch name a consumer group member: none here.
            return (Errors.GROUP_ID_NOT_FOUND if group is None else Errors.UNKNOWN_MEMBER_ID), {}
        # Offsets are returned whatever the group's state: offsets-only users have no members.
        return Errors.NONE, self.manager.get_offsets(group_id, require_stable, partitions)

    # -- admin ----------------------------------------------------------------------------------
    def describe_group(self, group_id: str) -> tuple[Errors, GroupSummary | None]:
        """(error, summary); the summary is None for a group that does not exist."""
        error = self._validate_group_status(group_id, ApiKey.DESCRIBE_GROUPS)
        if error is not None:
            return error, GroupSummary("", "", "", [])
        group = self.manager.get_group(group_id)
        if group is None:
            return Errors.NONE, None
        if group.consumer is not None:
            return Errors.NONE, None  # DescribeGroups knows classic groups only, as Kafka's
        stable = group.is_state(GroupState.STABLE)
        protocol = (group.protocol_name or "") if stable else ""
        members = [MemberSummary(m.member_id, m.group_instance_id, m.client_id, m.client_host,
                                 m.metadata(group.protocol_name) if stable and group.protocol_name else b"",
                                 m.assignment if stable else b"")
                   for m in group.members.values()]
        return Errors.NONE, GroupSummary(group.state.value, group.protocol_type or "", protocol, members)

    def list_groups(self, states: list[str], types: list[str]) -> tuple[Errors, list[GroupOverview]]:
        """Groups whose state and type match the (case-insensitive) filters; empty = any."""
        if not self.is_active:
            return Errors.COORDINATOR_NOT_AVAILABLE, []
        error = Errors.COORDINATOR_LOAD_IN_PROGRESS if self.manager.is_loading else Errors.NONE
        wanted_states = {s.lower() for s in states}
        wanted_types = {t.lower() for t in types}
        overviews = []
        for group in self.manager.current_groups():
            if group.is_state(GroupState.DEAD):
                continue
            if group.consumer is not None:
                state, group_type = group.consumer.state().value, CONSUMER_GROUP_TYPE
            else:
                state, group_type = group.state.value, CLASSIC_GROUP_TYPE
            if wanted_states and state.lower() not in wanted_states:
                continue
            if wanted_types and group_type not in wanted_types:
                continue
            overviews.append(GroupOverview(group.group_id, group.protocol_type or "", state, group_type))
        return error, overviews

    def delete_groups(self, group_ids: list[str]) -> dict[str, Errors]:
        errors: dict[str, Errors] = {}
        deletable = []
        for group_id in group_ids:
            error = self._validate_group_status(group_id, ApiKey.DELETE_GROUPS)
            if error is not None:
                errors[group_id] = error
                continue
            group = self.manager.get_group(group_id)
            if group is None or group.is_state(GroupState.DEAD):
                errors[group_id] = self._missing_group_error(group_id)
            elif group.is_state(GroupState.EMPTY) and not group.has_consumer_members:
                group.transition_to(GroupState.DEAD, self.time_ms())
                deletable.append(group)
            else:
                errors[group_id] = Errors.NON_EMPTY_GROUP
        if deletable:
            removed = self.manager.cleanup_group_metadata(deletable, GroupMetadata.remove_all_offsets)
            for group in deletable:
                errors[group.group_id] = Errors.NONE
            log.info("deleted groups %s with %d offsets", [g.group_id for g in deletable], removed)
        return errors

    def _missing_group_error(self, group_id: str) -> Errors:
        return Errors.GROUP_ID_NOT_FOUND if self.manager.group_not_exists(group_id) else Errors.NOT_COORDINATOR

    def delete_offsets(self, group_id: str, partitions: list[TopicPartition]
                       ) -> tuple[Errors, dict[TopicPartition, Errors]]:
        """OffsetDelete: a group error (then no partition errors), or an error per partition."""
        error = self._validate_group_status(group_id, ApiKey.OFFSET_DELETE)
        if error is not None:
            return error, {}
        group = self.manager.get_group(group_id)
        if group is None or group.is_state(GroupState.DEAD):
            return self._missing_group_error(group_id), {}
        partition_errors: dict[TopicPartition, Errors] = {}
        if group.is_state(GroupState.EMPTY) and not group.has_consumer_members:
            eligible = list(partitions)
        elif group.is_consumer_group():
            eligible = []
            for tp in partitions:
                if group.is_subscribed_to_topic(tp[0]):
                    partition_errors[tp] = Errors.GROUP_SUBSCRIBED_TO_TOPIC
                else:
                    eligible.append(tp)
        else:
            return Errors.NON_EMPTY_GROUP, {}
        if eligible:
            self.manager.cleanup_group_metadata([group], lambda g: g.remove_offsets(eligible))
            for tp in eligible:
                partition_errors[tp] = Errors.NONE
        return Errors.NONE, partition_errors

    def on_topics_deleted(self, topics: list[str]) -> int:
        """Kafka's onPartitionsDeleted (fed by UpdateMetadata): every group forgets the offsets of
        deleted topics, with tombstones. Returns how many offsets went."""
        deleted = set(topics)
        removed = self.manager.cleanup_group_metadata(
            self.manager.current_groups(), lambda g: g.remove_offsets([tp for tp in g.offsets if tp[0] in deleted]))
        if removed:
            log.info("removed %d offsets of deleted topics %s", removed, sorted(deleted))
        return removed

    # -- expiry ---------------------------------------------------------------------------------
    def _schedule_offsets_expiry(self) -> None:
        self._expiry_timer = self._call_later(self.offset_config.retention_check_interval_ms,
                                              self._expire_offsets_and_reschedule)

    def _expire_offsets_and_reschedule(self) -> None:
        try:
            self.expire_offsets()
        finally:
            if self.is_active:
                self._schedule_offsets_expiry()

    def expire_offsets(self) -> int:
        now = self.time_ms()
        retention = self.offset_config.retention_ms
        removed = self.manager.cleanup_group_metadata(
            self.manager.current_groups(), lambda g: g.remove_expired_offsets(now, retention))
        if removed:
            log.info("removed %d expired offsets in %d ms", removed, self.time_ms() - now)
        return removed


def _resolver(future: asyncio.Future) -> Callable[[Any], None]:
    """A callback that completes the future once (a late second answer is dropped)."""
    def resolve(result: Any) -> None:
        if not future.done():
            future.set_result(result)
    return resolve
