"""A group coordinator harness for the group tests: a fake clock and a coordinator over a
real LogManager and ReplicaManager in a tmp dir, leading the `__consumer_offsets` partitions.

The fake clock is both the coordinator's `time_ms` and its `scheduler` (`call_later`), so a test
moves time with `advance(ms)` and every session, rebalance and sync timer due by then fires, in
order. Storage is real: commits and group metadata go through the ReplicaManager into log
segments, and a second Harness on the same directory replays them.
"""

from __future__ import annotations

import heapq
import itertools
import os
import struct
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from kbroker.config import KafkaConfig
from kbroker.group.group_coordinator import GroupCoordinator, JoinGroupParams
from kbroker.group.group_metadata_manager import GROUP_METADATA_TOPIC_NAME
from kbroker.log.config import LogConfig
from kbroker.log.log_manager import LogManager
from kbroker.log.unified_log import UnifiedLog
from kbroker.metadata.metadata_cache import MetadataCache
from kbroker.replica.replica_manager import ReplicaManager
from kbroker.testing.waiting import settle

T0 = 1_700_000_000_000
OFFSETS_PARTITIONS = 3
OFFSETS_TOPIC_ID = uuid.UUID(int=0x50FF5E7)


@dataclass(order=True)
class FakeTimer:
    due_ms: int
    seq: int
    callback: Callable[..., object] = field(compare=False)
    args: tuple = field(compare=False)
    cancelled: bool = field(default=False, compare=False)

    def cancel(self) -> None:
        self.cancelled = True


class FakeClock:
    def __init__(self, now_ms: int = T0) -> None:
        self.now_ms = now_ms
        self._timers: list[FakeTimer] = []
        self._seq = itertools.count()

    def time_ms(self) -> int:
        return self.now_ms

    def call_later(self, delay_s: float, callback: Callable[..., object], *args: object) -> FakeTimer:
        timer = FakeTimer(self.now_ms + round(delay_s * 1000), next(self._seq), callback, args)
        heapq.heappush(self._timers, timer)
        return timer

    def advance(self, ms: int) -> None:
        """Moves time forward, firing every timer due by then (including ones they arm)."""
        target = self.now_ms + ms
        while self._timers and self._timers[0].due_ms <= target:
            timer = heapq.heappop(self._timers)
            if timer.cancelled:
                continue
            self.now_ms = timer.due_ms
            timer.callback(*timer.args)
        self.now_ms = target

    def pending(self) -> int:
        return sum(1 for t in self._timers if not t.cancelled)


def subscription(*topics: str, version: int = 0, user_data: bytes | None = None) -> bytes:
    """ConsumerProtocolSubscription bytes as Java clients write them (v0 layout, later versions
    only append fields)."""
    out = struct.pack(">hi", version, len(topics))
    for topic in topics:
        out += struct.pack(">h", len(topic)) + topic.encode()
    if user_data is None:
        return out + struct.pack(">i", -1)
    return out + struct.pack(">i", len(user_data)) + user_data


class Harness:
    """A GroupCoordinator wired like the broker's, but with a fake clock. Build it inside a
    running event loop (loads run as tasks)."""

    def __init__(self, log_dir: str | os.PathLike, clock: FakeClock, *overrides: str) -> None:
        self.clock = clock
        self.config = KafkaConfig.load(overrides=[
            f"log.dirs={log_dir}", f"offsets.topic.num.partitions={OFFSETS_PARTITIONS}",
            "group.initial.rebalance.delay.ms=0", "offsets.topic.replication.factor=1", *overrides], defaults={})
        self.cache = MetadataCache(0)
        base = LogConfig.from_topic_config(self.config.topic_defaults())
        self.log_manager = LogManager([str(log_dir)], cluster_id="group-tests", broker_id=0, default_config=base)
        # The topic-config callback is asked per topic; the only topic here is the offsets topic.
        self.replica_manager = ReplicaManager(0, self.log_manager, self.cache,
                                              lambda _topic: {"cleanup.policy": "compact"}, base)
        self.coordinator = GroupCoordinator(0, self.config, self.replica_manager, self.cache,
                                            scheduler=clock, time_ms=clock.time_ms)
        self.replica_manager.leadership_listeners.append(self.coordinator.on_leadership_change)
        self.coordinator.startup()
        self.leader_epoch = 0

    def lead(self, partitions: Iterable[int] = range(OFFSETS_PARTITIONS), leader: int = 0) -> None:
        """A LeaderAndIsr for __consumer_offsets partitions, led by `leader` (0 is us)."""
        self.leader_epoch += 1
        states = [{"partition_index": p, "leader": leader, "leader_epoch": self.leader_epoch, "isr": [leader],
                   "replicas": [0, 1] if leader != 0 else [0], "partition_epoch": self.leader_epoch,
                   "controller_epoch": 1} for p in partitions]
        response = self.replica_manager.become_leader_or_follower({
            "controller_id": 0, "controller_epoch": 1,
            "topic_states": [{"topic_name": GROUP_METADATA_TOPIC_NAME, "topic_id": OFFSETS_TOPIC_ID,
                              "partition_states": states}]})
        assert response["error_code"] == 0

    async def start(self) -> Harness:
        self.lead()
        await settle()
        assert self.coordinator.manager.owned_partitions == set(range(OFFSETS_PARTITIONS))
        return self

    def close(self) -> None:
        self.coordinator.shutdown()
        self.log_manager.close()

    def offsets_log(self, group_id: str) -> UnifiedLog:
        partition = self.coordinator.partition_for(group_id)
        hosted = self.replica_manager.get_partition(GROUP_METADATA_TOPIC_NAME, partition)
        assert hosted is not None and hosted.log is not None, f"{GROUP_METADATA_TOPIC_NAME}-{partition} is not here"
        return hosted.log


def join_params(group_id: str = "g", member_id: str = "", *, instance: str | None = None,
                protocols: Iterable[tuple[str, bytes]] = (("range", b"r"),), protocol_type: str = "consumer", session_ms: int = 10000,
                rebalance_ms: int = 20000, client_id: str = "client", require_known: bool = False,
                skip_assignment: bool = False) -> JoinGroupParams:
    return JoinGroupParams(group_id, member_id, instance, protocol_type, list(protocols), session_ms, rebalance_ms,
                           client_id, "/127.0.0.1", require_known, skip_assignment)
