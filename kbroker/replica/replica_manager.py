"""ReplicaManager: this broker's partitions, and the produce and fetch paths through them.

- LeaderAndIsr makes partitions leaders or followers (creating their logs through LogManager);
  StopReplica stops and, when asked, deletes them. Stale controller epochs are refused.
- Appends go to each partition leader; acks=-1 waits as a DelayedProduce until the high
  watermark passes the appended offsets (at once when this broker is the whole ISR) or
  timeout_ms passes (REQUEST_TIMED_OUT).
- Fetches read up to the high watermark (consumers) or the log end (followers); a fetch that
  found less than min_bytes waits as a DelayedFetch, woken by appends, until max_wait_ms.
It knows partitions and logs; request and response shapes stay in the handlers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kbroker.api.protocol.errors import Errors
from kbroker.log.config import LogConfig
from kbroker.log.errors import LogError
from kbroker.log.validator import AppendOrigin
from kbroker.metadata.metadata_cache import uuid_to_base64
from kbroker.replica.partition import (
    FETCH_HIGH_WATERMARK,
    FETCH_LOG_END,
    FETCH_TXN_COMMITTED,
    Partition,
    PartitionError,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from kbroker.log.log_manager import LogManager
    from kbroker.metadata.metadata_cache import MetadataCache

log = logging.getLogger("kbroker.replica")

TopicPartition = tuple[str, int]


@dataclass(slots=True)
class ProduceResult:
    error: Errors = Errors.NONE
    base_offset: int = -1
    log_append_time: int = -1
    log_start_offset: int = -1
    message: str | None = None
    last_offset: int = -1


@dataclass(slots=True)
class FetchResult:
    error: Errors = Errors.NONE
    high_watermark: int = -1
    last_stable_offset: int = -1
    log_start_offset: int = -1
    records: Any = None  # a FileRegion (or None): the bytes to send
    size: int = 0
    aborted_transactions: list | None = None
    diverging_epoch: tuple[int, int] | None = None


@dataclass(slots=True)
class FetchRequestPartition:
    topic: str
    partition: int
    fetch_offset: int
    max_bytes: int
    current_leader_epoch: int = -1
    last_fetched_epoch: int = -1
    log_start_offset: int = -1


class ReplicaManager:
    def __init__(self, broker_id: int, log_manager: LogManager, metadata_cache: MetadataCache,
                 topic_config: Callable[[str], dict[str, str]], base_log_config: LogConfig) -> None:
        self.broker_id = broker_id
        self.log_manager = log_manager
        self.metadata_cache = metadata_cache
        self.topic_config = topic_config
        self.base_log_config = base_log_config
        self.partitions: dict[TopicPartition, Partition] = {}
        self.controller_epoch = 0
        self.stopping = False  # set on shutdown: parked fetches answer with what they have
        # Called as listener(topic, partition, is_leader, leader_epoch) after each leadership change.
        self.leadership_listeners: list[Callable[[str, int, bool, int], None]] = []
        self._appended: dict[TopicPartition, list[asyncio.Future]] = {}

    # -- controller requests ------------------------------------------------------------------
    def log_config_for(self, topic: str) -> LogConfig:
        return LogConfig.from_topic_config(self.topic_config(topic), self.base_log_config)

    def become_leader_or_follower(self, request: dict) -> dict:
        if request["controller_epoch"] < self.controller_epoch:
            log.warning("ignoring LeaderAndIsr from controller %d with stale epoch %d (we know %d)",
                        request["controller_id"], request["controller_epoch"], self.controller_epoch)
            return {"error_code": Errors.STALE_CONTROLLER_EPOCH, "topics": []}
        self.controller_epoch = request["controller_epoch"]
        topics = []
        for topic_state in request["topic_states"]:
            topic = topic_state["topic_name"]
            errors = []
            for state in topic_state["partition_states"]:
                errors.append({"topic_name": topic, "partition_index": state["partition_index"],
                               "error_code": self._apply_partition_state(topic, topic_state["topic_id"], state)})
            topics.append({"topic_id": topic_state["topic_id"], "partition_errors": errors})
        return {"error_code": 0, "topics": topics}

    def _apply_partition_state(self, topic: str, topic_id, state: dict) -> Errors:
        tp = (topic, state["partition_index"])
        if self.broker_id not in state["replicas"]:
            return Errors.NONE
        partition = self.partitions.get(tp)
        if partition is not None and state["leader_epoch"] < partition.leader_epoch:
            return Errors.STALE_CONTROLLER_EPOCH
        if partition is not None and state["leader_epoch"] == partition.leader_epoch \
                and partition.leader_id == state["leader"]:
            partition.isr = list(state["isr"])
            partition.partition_epoch = state["partition_epoch"]
            return Errors.NONE
        if partition is None:
            partition = self.partitions[tp] = Partition(topic, tp[1], self.broker_id)
        partition.topic_id = topic_id
        unified_log = self.log_manager.get_or_create_log(topic, tp[1], uuid_to_base64(topic_id) if topic_id else None,
                                                         self.log_config_for(topic))
        if state["leader"] == self.broker_id:
            partition.make_leader(state, unified_log)
            log.info("leader of %s-%d at epoch %d, ISR %s", topic, tp[1], state["leader_epoch"], state["isr"])
        else:
            partition.make_follower(state, unified_log)
        self._wake(tp)
        self._notify_leadership(topic, tp[1], partition.is_leader, partition.leader_epoch)
        return Errors.NONE

    def _notify_leadership(self, topic: str, partition: int, is_leader: bool, leader_epoch: int) -> None:
        """Kafka's onLeadershipChange: the group coordinator loads or unloads its partitions."""
        for listener in self.leadership_listeners:
            try:
                listener(topic, partition, is_leader, leader_epoch)
            except Exception:
                log.exception("leadership listener failed for %s-%d", topic, partition)

    def stop_replicas(self, request: dict) -> dict:
        if request["controller_epoch"] < self.controller_epoch:
            return {"error_code": Errors.STALE_CONTROLLER_EPOCH, "partition_errors": []}
        errors = []
        for topic_state in request["topic_states"]:
            topic = topic_state["topic_name"]
            for state in topic_state["partition_states"]:
                tp = (topic, state["partition_index"])
                if self.partitions.pop(tp, None) is not None:
                    self._notify_leadership(topic, tp[1], False, state["leader_epoch"])
                if state["delete_partition"]:
                    self.log_manager.delete_log(topic, tp[1])
                self._wake(tp)
                errors.append({"topic_name": topic, "partition_index": tp[1], "error_code": 0})
        return {"error_code": 0, "partition_errors": errors}

    def update_topic_config(self, topic: str) -> None:
        """A topic's config changed: the logs of its partitions take the new LogConfig."""
        self.log_manager.update_topic_config(topic, self.log_config_for(topic))

    # -- produce ------------------------------------------------------------------------------
    def get_partition(self, topic: str, partition: int) -> Partition | None:
        return self.partitions.get((topic, partition))

    def missing_partition_error(self, topic: str, partition: int) -> Errors:
        """Why we have no such partition: it does not exist, or another broker leads it."""
        if self.metadata_cache.partition(topic, partition) is None:
            return Errors.UNKNOWN_TOPIC_OR_PARTITION
        return Errors.NOT_LEADER_OR_FOLLOWER

    def append_to_partition(self, topic: str, partition: int, records: memoryview, required_acks: int,
                            request_version: int, origin: AppendOrigin = AppendOrigin.CLIENT) -> ProduceResult:
        """Appends one partition's batches as leader (clients; the coordinators use origin
        COORDINATOR for their internal topics); acks=-1 callers then await wait_for_acks."""
        p = self.partitions.get((topic, partition))
        if p is None:
            return ProduceResult(self.missing_partition_error(topic, partition))
        try:
            info = p.append_records_to_leader(records, required_acks, origin)
        except PartitionError as exc:
            return ProduceResult(exc.code, message=str(exc) if exc.code != Errors.NOT_LEADER_OR_FOLLOWER else None,
                                 log_start_offset=p.log.log_start_offset if p.log else -1)
        self._wake((topic, partition))
        return ProduceResult(Errors.NONE, info.base_offset, info.log_append_time, info.log_start_offset,
                             None, info.last_offset)

    def delete_records(self, topic: str, partition: int, offset: int) -> tuple[Errors, int]:
        """DeleteRecords on one partition: (error, low watermark)."""
        p = self.partitions.get((topic, partition))
        if p is None:
            return self.missing_partition_error(topic, partition), -1
        try:
            unified_log = p.check_leader()
        except PartitionError as exc:
            return exc.code, -1
        if unified_log.config.compact:
            return Errors.POLICY_VIOLATION, -1
        target = unified_log.high_watermark if offset == -1 else offset
        try:
            unified_log.maybe_increment_log_start_offset(target)
        except LogError as exc:
            return exc.code, -1
        return Errors.NONE, unified_log.log_start_offset

    async def wait_for_acks(self, results: dict[TopicPartition, ProduceResult], timeout_ms: int) -> None:
        """DelayedProduce for acks=-1: until every appended partition's HW passes its last offset."""
        deadline = time.monotonic() + timeout_ms / 1000

        def pending() -> list[TopicPartition]:
            out = []
            for tp, r in results.items():
                if r.error != Errors.NONE:
                    continue
                p = self.partitions.get(tp)
                if p is None or not p.is_leader:
                    r.error = Errors.NOT_LEADER_OR_FOLLOWER
                elif p.high_watermark <= r.last_offset:
                    out.append(tp)
            return out

        waiting = pending()
        while waiting:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                for tp in waiting:
                    results[tp].error = Errors.REQUEST_TIMED_OUT
                return
            await self.wait_for_any(waiting, remaining)
            waiting = pending()
        for tp, r in results.items():
            p = self.partitions.get(tp)
            if r.error == Errors.NONE and p is not None and p.log is not None \
                    and len(p.isr) < p.log.config.min_insync_replicas:
                r.error = Errors.NOT_ENOUGH_REPLICAS_AFTER_APPEND

    # -- fetch ---------------------------------------------------------------------------------
    def read_partition(self, req: FetchRequestPartition, isolation: int, min_one_message: bool) -> FetchResult:
        p = self.partitions.get((req.topic, req.partition))
        if p is None:
            return FetchResult(self.missing_partition_error(req.topic, req.partition))
        try:
            unified_log = p.check_leader(req.current_leader_epoch)
        except PartitionError as exc:
            return FetchResult(exc.code)
        hw = unified_log.high_watermark
        lso = unified_log.last_stable_offset
        max_offset = None if isolation == FETCH_LOG_END else (hw if isolation == FETCH_HIGH_WATERMARK else lso)
        try:
            data = unified_log.read(req.fetch_offset, req.max_bytes, max_offset, min_one_message,
                                    include_aborted_transactions=isolation == FETCH_TXN_COMMITTED)
        except LogError as exc:
            return FetchResult(exc.code, hw, lso, unified_log.log_start_offset)
        return FetchResult(Errors.NONE, hw, lso, unified_log.log_start_offset, data.records, data.size,
                           data.aborted_transactions)

    async def fetch(self, requests: list[FetchRequestPartition], isolation: int, max_wait_ms: int,
                    min_bytes: int, max_bytes: int) -> list[FetchResult]:
        """Reads now; if fewer than min_bytes were found and nothing failed, waits (DelayedFetch)."""
        deadline = time.monotonic() + max(0, max_wait_ms) / 1000
        while True:
            results = self._read_all(requests, isolation, max_bytes)
            total = sum(r.size for r in results)
            if (max_wait_ms <= 0 or total >= min_bytes or any(r.error != Errors.NONE for r in results)
                    or not requests or self.stopping):
                return results
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return results
            await self.wait_for_any([(r.topic, r.partition) for r in requests], remaining)

    def _read_all(self, requests: list[FetchRequestPartition], isolation: int, max_bytes: int) -> list[FetchResult]:
        results = []
        budget = max_bytes
        min_one_message = True  # KIP-74: the first partition with data may exceed the limits by one batch
        for req in requests:
            limited = FetchRequestPartition(req.topic, req.partition, req.fetch_offset,
                                            max(0, min(req.max_bytes, budget)), req.current_leader_epoch)
            result = self.read_partition(limited, isolation, min_one_message)
            if result.size:
                min_one_message = False
                budget -= result.size
            results.append(result)
        return results

    # -- waiting for appends ----------------------------------------------------------------
    async def wait_for_any(self, partitions: list[TopicPartition], timeout: float) -> None:
        fut = asyncio.get_running_loop().create_future()
        for tp in partitions:
            self._appended.setdefault(tp, []).append(fut)
        try:
            await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            pass
        finally:
            for tp in partitions:
                waiters = self._appended.get(tp)
                if waiters is not None:
                    try:
                        waiters.remove(fut)
                    except ValueError:
                        pass
                    if not waiters:
                        del self._appended[tp]

    def _wake(self, tp: TopicPartition) -> None:
        for fut in self._appended.pop(tp, ()):
            if not fut.done():
                fut.set_result(None)

    def wake_all(self) -> None:
        self.stopping = True
        for tp in list(self._appended):
            self._wake(tp)
