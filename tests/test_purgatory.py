"""Kafka's purgatory (kbroker/replica/delayed_operation.py) and the two operations that wait in
it, DelayedProduce and DelayedFetch, driven through a real ReplicaManager over real logs.

Covered: completion by key (and leaving every other key), expiry by the timer, a completion
racing the expiry completing once, a cancelled waiter leaving the purgatory; a fetch completed
by the bytes counted beyond its offset reaching min_bytes (not by the first append), or at once
when its data lands in a newer segment; a consumer fetch that appends alone do not wake, woken
by the high watermark a follower's fetch moves, while a follower's fetch sees up to the log end; acks=all answered by the high watermark, by
the timeout (REQUEST_TIMED_OUT) and by a leadership change (NOT_LEADER_OR_FOLLOWER, which also
answers parked fetches); shutdown answering parked fetches at once.
"""

from __future__ import annotations

import asyncio

import pytest

from kbroker.log.config import LogConfig
from kbroker.log.log_manager import LogManager
from kbroker.log.records import SimpleRecord, build_batch
from kbroker.metadata.metadata_cache import BrokerInfo, MetadataCache
from kbroker.protocol.errors import Errors
from kbroker.replica.delayed_operation import DelayedOperation, DelayedOperationPurgatory
from kbroker.replica.partition import FETCH_HIGH_WATERMARK, FETCH_LOG_END, FETCH_TXN_COMMITTED
from kbroker.replica.replica_manager import FetchRequestPartition, ProduceResult, ReplicaManager

T = "t"
TP = (T, 0)
LONG_WAIT_MS = 60_000  # longer than any test: only a key's change can answer first
TIMESTAMP = 1_700_000_000_000


def producer_batch(*values: bytes) -> bytearray:
    """One batch as a producer sends it; a fixed timestamp, so equal values make equal sizes."""
    return bytearray(build_batch([SimpleRecord(None, value, timestamp=TIMESTAMP) for value in values]))


class Gate(DelayedOperation):
    """The simplest delayed operation: completes once `open` is set; counts its callbacks."""

    def __init__(self, delay_ms: int = LONG_WAIT_MS) -> None:
        super().__init__(delay_ms)
        self.open = False
        self.completions = 0
        self.expirations = 0

    def try_complete(self) -> bool:
        return self.open and self.force_complete()

    def on_complete(self) -> None:
        self.completions += 1

    def on_expiration(self) -> None:
        self.expirations += 1


def run(scenario) -> None:
    asyncio.run(scenario())


# -- the purgatory ------------------------------------------------------------------------------

def test_an_operation_completes_when_a_key_it_watches_changes_and_leaves_every_key():
    async def scenario():
        purgatory = DelayedOperationPurgatory("test")
        gate = Gate()
        assert not purgatory.try_complete_else_watch(gate, ["a", "b"])
        assert (purgatory.watched("a"), purgatory.watched("b"), purgatory.num_delayed) == (1, 1, 1)
        assert purgatory.check_and_complete("a") == 0  # not satisfied yet
        gate.open = True
        assert purgatory.check_and_complete("c") == 0  # a key it does not watch
        assert purgatory.check_and_complete("b") == 1
        assert (gate.completions, gate.expirations, gate.is_completed) == (1, 0, True)
        assert (purgatory.watched("a"), purgatory.watched("b"), purgatory.num_delayed) == (0, 0, 0)
        assert purgatory.check_and_complete("a") == 0
        assert gate.completions == 1
    run(scenario)


def test_an_operation_that_can_complete_at_once_is_never_watched():
    async def scenario():
        purgatory = DelayedOperationPurgatory("test")
        gate = Gate()
        gate.open = True
        assert purgatory.try_complete_else_watch(gate, ["a"])
        assert (gate.completions, purgatory.watched("a"), purgatory.num_delayed) == (1, 0, 0)
    run(scenario)


def test_an_operation_expires_through_its_timer():
    async def scenario():
        purgatory = DelayedOperationPurgatory("test")
        gate = Gate(delay_ms=10)
        assert not purgatory.try_complete_else_watch(gate, ["a"])
        await purgatory.wait(gate)  # nothing opens the gate: only the timer can end this
        assert (gate.completions, gate.expirations) == (1, 1)
        assert (purgatory.watched("a"), purgatory.num_delayed) == (0, 0)
    run(scenario)


def test_a_completion_racing_the_expiry_completes_once():
    async def scenario():
        purgatory = DelayedOperationPurgatory("test")
        completed_first = Gate()
        purgatory.try_complete_else_watch(completed_first, ["a"])
        completed_first.open = True
        assert purgatory.check_and_complete("a") == 1
        completed_first._expire()  # the timer firing late changes nothing
        assert not completed_first.force_complete()
        assert (completed_first.completions, completed_first.expirations) == (1, 0)

        expired_first = Gate()
        purgatory.try_complete_else_watch(expired_first, ["a"])
        expired_first._expire()
        expired_first.open = True
        assert purgatory.check_and_complete("a") == 0
        assert not expired_first.force_complete()
        assert (expired_first.completions, expired_first.expirations) == (1, 1)
    run(scenario)


def test_a_cancelled_waiter_takes_its_operation_out_of_the_purgatory():
    async def scenario():
        purgatory = DelayedOperationPurgatory("test")
        gate = Gate()
        purgatory.try_complete_else_watch(gate, ["a", "b"])
        waiter = asyncio.ensure_future(purgatory.wait(gate))
        await asyncio.sleep(0)
        assert purgatory.num_delayed == 1
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert (purgatory.watched("a"), purgatory.watched("b"), purgatory.num_delayed) == (0, 0, 0)
        assert gate.completions == 0
    run(scenario)


# -- DelayedFetch and DelayedProduce in a ReplicaManager ----------------------------------------

class Leader:
    """A ReplicaManager leading t-0 (broker 1) over a real log; broker 2 is the follower when
    the replicas say so."""

    def __init__(self, root, replicas=(1,), min_insync_replicas: int = 1) -> None:
        cache = MetadataCache(1)
        cache.set_brokers([BrokerInfo(b, {}) for b in (1, 2)])
        self.logs = LogManager([str(root)], cluster_id="purgatory", broker_id=1, default_config=LogConfig())
        config = {"min.insync.replicas": str(min_insync_replicas)}
        self.manager = ReplicaManager(1, self.logs, cache, lambda _topic: config, LogConfig())
        self.replicas = list(replicas)
        self.set_leader(1, leader_epoch=1)

    def set_leader(self, leader: int, leader_epoch: int) -> None:
        state = {"partition_index": 0, "leader": leader, "leader_epoch": leader_epoch, "isr": self.replicas,
                 "replicas": self.replicas, "partition_epoch": leader_epoch, "controller_epoch": 1}
        self.manager.become_leader_or_follower({"controller_id": 1, "controller_epoch": 1, "topic_states": [
            {"topic_name": T, "topic_id": None, "partition_states": [state]}]})

    @property
    def log(self):
        return self.manager.get_partition(T, 0).log

    def append(self, *values: bytes, acks: int = 1):
        result = self.manager.append_to_partition(T, 0, memoryview(producer_batch(*values)), acks)
        assert result.error == Errors.NONE
        return result

    def fetch(self, offset: int, min_bytes: int = 1, isolation: int = FETCH_HIGH_WATERMARK,
              max_wait_ms: int = LONG_WAIT_MS, replica_id: int = -1):
        return self.manager.fetch([FetchRequestPartition(T, 0, offset, 1 << 20)], isolation, max_wait_ms,
                                  min_bytes, 1 << 20, replica_id=replica_id)

    async def parked_fetch(self, offset: int, **options) -> asyncio.Future:
        waiter = asyncio.ensure_future(self.fetch(offset, **options))
        await asyncio.sleep(0)  # the fetch runs until it parks
        assert self.manager.delayed_fetch_purgatory.watched(TP) == 1
        return waiter

    async def parked_produce(self, value: bytes) -> tuple[ProduceResult, asyncio.Future]:
        """An acks=-1 append and its DelayedProduce, parked (the follower has not fetched it)."""
        result = self.append(value, acks=-1)
        waiter = asyncio.ensure_future(self.manager.wait_for_acks({TP: result}, LONG_WAIT_MS))
        await asyncio.sleep(0)  # the wait runs until it parks
        assert self.manager.delayed_produce_purgatory.watched(TP) == 1
        return result, waiter

    async def follower_fetch(self, offset: int):
        """Broker 2 fetches at `offset` without waiting: the leader records its position."""
        [result] = await self.fetch(offset, isolation=FETCH_LOG_END, max_wait_ms=0, replica_id=2)
        return result

    def close(self) -> None:
        self.logs.close()


@pytest.fixture
def leader(tmp_path):
    created = []

    def build(**options) -> Leader:
        created.append(Leader(tmp_path / f"broker-{len(created)}", **options))
        return created[-1]

    yield build
    for built in created:
        built.close()


BATCH_SIZE = len(producer_batch(b"0123456789"))


def test_a_fetch_completes_when_the_counted_bytes_reach_min_bytes(leader):
    async def scenario():
        broker = leader()
        waiter = await broker.parked_fetch(0, min_bytes=3 * BATCH_SIZE)
        broker.append(b"0123456789")
        broker.append(b"0123456789")
        await asyncio.sleep(0)
        assert not waiter.done()  # two batches are fewer bytes than min_bytes
        broker.append(b"0123456789")
        assert broker.manager.delayed_fetch_purgatory.num_delayed == 0  # answered by the append itself
        [result] = await waiter
        assert (result.error, result.size, result.high_watermark) == (Errors.NONE, 3 * BATCH_SIZE, 3)
    run(scenario)


def test_the_bytes_a_fetch_found_first_count_towards_min_bytes(leader):
    async def scenario():
        broker = leader()
        broker.append(b"0123456789")
        waiter = await broker.parked_fetch(0, min_bytes=2 * BATCH_SIZE)
        broker.append(b"0123456789")
        assert broker.manager.delayed_fetch_purgatory.num_delayed == 0  # answered by the append itself
        [result] = await waiter
        assert (result.size, result.high_watermark) == (2 * BATCH_SIZE, 2)
    run(scenario)


def test_a_fetch_whose_data_lands_in_a_newer_segment_completes_without_counting(leader):
    async def scenario():
        broker = leader()
        broker.append(b"0123456789")
        waiter = await broker.parked_fetch(1, min_bytes=1 << 20)
        broker.log.roll()
        broker.manager.delayed_fetch_purgatory.check_and_complete(TP)
        assert broker.manager.delayed_fetch_purgatory.num_delayed == 1  # a new, empty segment is no data
        broker.append(b"0123456789")  # positions in two segment files cannot be subtracted
        assert broker.manager.delayed_fetch_purgatory.num_delayed == 0  # answered by the append itself
        [result] = await waiter
        assert (result.error, result.size) == (Errors.NONE, BATCH_SIZE)
    run(scenario)


def test_a_consumer_fetch_waits_for_the_high_watermark_while_a_follower_sees_the_log_end(leader):
    async def scenario():
        broker = leader(replicas=(1, 2))
        waiter = await broker.parked_fetch(0)
        broker.append(b"not committed yet")
        await asyncio.sleep(0)
        assert not waiter.done() and broker.log.high_watermark == 0  # an append alone is not enough
        seen_by_follower = await broker.follower_fetch(0)
        assert seen_by_follower.size == len(producer_batch(b"not committed yet"))
        assert not waiter.done()  # the follower fetched from 0: it does not have the batch yet
        await broker.follower_fetch(1)  # now it does: the high watermark moves to 1
        assert broker.manager.delayed_fetch_purgatory.num_delayed == 0
        [result] = await waiter
        assert (result.error, result.high_watermark, result.size) == (Errors.NONE, 1, seen_by_follower.size)
    run(scenario)


def test_a_caught_up_consumer_fetch_answers_what_a_read_answers_without_reading(leader):
    """A consumer at the high watermark (most partitions of a fetch of hundreds) is answered
    without a read, with a read's answer: the offsets, no records, read_committed's empty list
    of aborted transactions; still KAFKA_STORAGE_ERROR once the log's directory failed."""
    async def scenario():
        broker = leader()
        broker.append(b"0123456789")
        broker.append(b"0123456789")
        for isolation, aborted in ((FETCH_HIGH_WATERMARK, None), (FETCH_TXN_COMMITTED, [])):
            [result] = await broker.fetch(2, isolation=isolation, max_wait_ms=0)
            assert (result.error, result.high_watermark, result.last_stable_offset, result.log_start_offset,
                    result.records, result.size, result.aborted_transactions) == (Errors.NONE, 2, 2, 0, None, 0, aborted)
        [behind] = await broker.fetch(1, max_wait_ms=0)
        assert (behind.error, behind.size) == (Errors.NONE, BATCH_SIZE)  # one batch below: read as ever
        broker.logs.log_dir_failure_channel.maybe_add_offline_log_dir(broker.log.parent_dir, "test", OSError("gone"))
        [offline] = await broker.fetch(2, max_wait_ms=0)
        assert offline.error == Errors.KAFKA_STORAGE_ERROR
    run(scenario)


def test_acks_all_waits_for_the_high_watermark(leader):
    async def scenario():
        broker = leader(replicas=(1, 2))
        result, waiter = await broker.parked_produce(b"replicate me")
        await broker.follower_fetch(0)
        assert not waiter.done()
        await broker.follower_fetch(1)
        assert broker.manager.delayed_produce_purgatory.num_delayed == 0
        await waiter
        assert result.error == Errors.NONE
    run(scenario)


def test_acks_all_times_out_with_request_timed_out(leader):
    async def scenario():
        broker = leader(replicas=(1, 2))
        result = broker.append(b"never replicated", acks=-1)
        await broker.manager.wait_for_acks({TP: result}, 10)
        assert result.error == Errors.REQUEST_TIMED_OUT
        assert broker.manager.delayed_produce_purgatory.num_delayed == 0
    run(scenario)


def test_acks_all_after_the_isr_shrank_below_min_isr_is_not_enough_replicas_after_append(leader):
    async def scenario():
        broker = leader(replicas=(1, 2), min_insync_replicas=2)
        result = broker.append(b"x", acks=-1)
        await broker.follower_fetch(1)  # the high watermark covers the append...
        partition = broker.manager.get_partition(T, 0)
        partition.isr = [1]  # ...and the ISR shrank below min.insync.replicas before the check
        await broker.manager.wait_for_acks({TP: result}, LONG_WAIT_MS)
        assert result.error == Errors.NOT_ENOUGH_REPLICAS_AFTER_APPEND
    run(scenario)


def test_a_leadership_change_answers_waiting_produces_and_fetches(leader):
    async def scenario():
        broker = leader(replicas=(1, 2))
        result, producing = await broker.parked_produce(b"x")
        fetching = await broker.parked_fetch(1)
        broker.set_leader(2, leader_epoch=2)
        await producing
        [fetched] = await fetching
        assert (result.error, fetched.error) == (Errors.NOT_LEADER_OR_FOLLOWER, Errors.NOT_LEADER_OR_FOLLOWER)
    run(scenario)


def test_shutdown_answers_parked_fetches_and_new_ones_do_not_wait(leader):
    async def scenario():
        broker = leader()
        waiter = await broker.parked_fetch(0)
        broker.manager.wake_all()
        [result] = await waiter
        assert (result.error, result.size) == (Errors.NONE, 0)
        [later] = await broker.fetch(0)
        assert (later.error, later.size) == (Errors.NONE, 0)
    run(scenario)
