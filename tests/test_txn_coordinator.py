"""The transaction coordinator (kbroker/txn/) in process, over real logs in a tmp dir.

The protocol of Kafka 3.9's TransactionCoordinator: InitProducerId, AddPartitionsToTxn, EndTxn,
fencing (KIP-360 bumps, PrepareEpochFence), markers written on the data partitions, the state
written to `__transaction_state` (read back from the segment files by an independent decoder),
loading on leadership (finishing a PrepareCommit left by the previous coordinator), unloading
(NOT_COORDINATOR), the transaction timeout and transactional.id.expiration.ms.
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from pathlib import Path

from kbroker.config import KafkaConfig
from kbroker.log.config import LogConfig
from kbroker.log.log_manager import LogManager
from kbroker.log.records import ControlRecordType, iter_batches, iter_records, parse_control_record
from kbroker.metadata.metadata_cache import BrokerInfo, MetadataCache, PartitionState, TopicMetadata
from kbroker.metadata.topic_names import TRANSACTION_STATE_TOPIC_NAME
from kbroker.protocol.errors import Errors
from kbroker.replica.replica_manager import ReplicaManager
from kbroker.testing.transaction_log_reader import read_transaction_log
from kbroker.testing.waiting import eventually_async
from kbroker.txn.transaction_coordinator import TransactionCoordinator
from kbroker.txn.transaction_log import key_to_bytes, read_key, read_value, value_to_bytes
from kbroker.txn.transaction_metadata import TransactionMetadata, TransactionState, TxnTransitMetadata

T0 = 1_700_000_000_000
DATA = "data"
TOPICS = {TRANSACTION_STATE_TOPIC_NAME: 1, DATA: 2}


def async_test(fn):
    @functools.wraps(fn)
    def run(*args, **kwargs):
        return asyncio.run(asyncio.wait_for(fn(*args, **kwargs), 20))
    return run


class Node:
    """One broker's ReplicaManager and TransactionCoordinator, leading every partition."""

    def __init__(self, log_dir: Path, *overrides: str) -> None:
        self.now = T0
        self.config = KafkaConfig.load(overrides=[
            f"log.dirs={log_dir}", "transaction.state.log.num.partitions=1",
            "transaction.state.log.replication.factor=1", "transaction.state.log.min.isr=1", *overrides],
            defaults={})
        self.cache = MetadataCache(0)
        self.cache.set_brokers([BrokerInfo(0, {})])
        base = LogConfig.from_topic_config(self.config.topic_defaults())
        self.log_manager = LogManager([str(log_dir)], cluster_id="txn-tests", broker_id=0, default_config=base)
        self.replica_manager = ReplicaManager(0, self.log_manager, self.cache, lambda _topic: {}, base)
        self.producer_ids = iter(range(1000, 2000))
        self.coordinator = TransactionCoordinator(0, self.config, self.replica_manager, self.cache,
                                                  lambda: next(self.producer_ids), time_ms=lambda: self.now)
        self.replica_manager.leadership_listeners.append(self.coordinator.on_leadership_change)
        self.coordinator.startup()
        self.leader_epoch = 0

    def lead(self, leader: int = 0) -> None:
        self.leader_epoch += 1
        topic_states = []
        for name, count in TOPICS.items():
            topic_id = uuid.uuid5(uuid.NAMESPACE_OID, name)
            states = [{"partition_index": p, "leader": leader, "leader_epoch": self.leader_epoch, "isr": [leader],
                       "replicas": [0, 1] if leader else [0], "partition_epoch": self.leader_epoch,
                       "controller_epoch": 1} for p in range(count)]
            self.cache.put_topic(TopicMetadata(name, topic_id, {
                p: PartitionState(name, p, leader, self.leader_epoch, [leader], [0]) for p in range(count)}))
            topic_states.append({"topic_name": name, "topic_id": topic_id, "partition_states": states})
        answer = self.replica_manager.become_leader_or_follower(
            {"controller_id": 0, "controller_epoch": 1, "topic_states": topic_states})
        assert answer["error_code"] == 0

    async def start(self) -> Node:
        self.lead()
        await eventually_async(lambda: self.coordinator.state_manager.owned_partitions() == [0],
                               what="the transaction state partition loaded")
        return self

    async def close(self) -> None:
        await self.coordinator.shutdown()
        self.log_manager.close()

    def markers(self, partition: int) -> list[tuple[int, ControlRecordType, int]]:
        """(producer id, marker type, producer epoch) of the control batches in a data partition."""
        unified_log = self.replica_manager.get_partition(DATA, partition).log
        buf = unified_log.read(0, 1 << 20, None, True).read_bytes()
        out = []
        for header in iter_batches(buf):
            if header.is_control:
                for record in iter_records(buf, header):
                    out.append((header.producer_id, parse_control_record(record)[0], header.producer_epoch))
        return out

    def state(self, transactional_id: str):
        error, found = self.coordinator.state_manager.get_transaction_state(transactional_id)
        assert error == Errors.NONE and found is not None, error
        return found.metadata


async def node(tmp_path, *overrides) -> Node:
    return await Node(tmp_path, *overrides).start()


async def completed(n: Node, transactional_id: str, state: TransactionState) -> None:
    await eventually_async(lambda: n.state(transactional_id).state == state
                           and n.state(transactional_id).pending_state is None, what=state.display_name)


@async_test
async def test_commit_writes_markers_then_complete_state_read_back_by_an_independent_decoder(tmp_path):
    n = await node(tmp_path)
    try:
        init = await n.coordinator.handle_init_producer_id("t1", 60000, None)
        assert (init.error, init.producer_epoch) == (Errors.NONE, 0)
        pid = init.producer_id
        partitions = {(DATA, 0), (DATA, 1)}
        assert await n.coordinator.handle_add_partitions_to_transaction("t1", pid, 0, partitions) == Errors.NONE
        assert await n.coordinator.handle_add_partitions_to_transaction("t1", pid, 0, {(DATA, 0)}) == Errors.NONE
        assert n.coordinator.handle_verify_partitions_in_transaction("t1", pid, 0, {(DATA, 0), ("other", 0)}) == {
            (DATA, 0): Errors.NONE, ("other", 0): Errors.TRANSACTION_ABORTABLE}
        n.now += 5
        assert await n.coordinator.handle_end_transaction("t1", pid, 0, True) == Errors.NONE
        # While the markers are written (a task that has not run yet), everyone else must wait.
        assert n.state("t1").pending_state == TransactionState.COMPLETE_COMMIT
        assert (await n.coordinator.handle_init_producer_id("t1", 60000, None)).error == \
            Errors.CONCURRENT_TRANSACTIONS
        assert await n.coordinator.handle_add_partitions_to_transaction("t1", pid, 0, {(DATA, 0)}) == \
            Errors.CONCURRENT_TRANSACTIONS
        assert await n.coordinator.handle_end_transaction("t1", pid, 0, True) == Errors.CONCURRENT_TRANSACTIONS
        await completed(n, "t1", TransactionState.COMPLETE_COMMIT)
        assert n.markers(0) == [(pid, ControlRecordType.COMMIT, 0)]
        assert n.markers(1) == [(pid, ControlRecordType.COMMIT, 0)]
        assert await n.coordinator.handle_end_transaction("t1", pid, 0, True) == Errors.NONE  # a retry
        assert await n.coordinator.handle_end_transaction("t1", pid, 0, False) == Errors.INVALID_TXN_STATE
        records = [(r.transactional_id, r.value["state"], r.value["partitions"])
                   for r in read_transaction_log(Path(tmp_path))]
        assert records == [("t1", "Empty", None), ("t1", "Ongoing", sorted(partitions)),
                           ("t1", "PrepareCommit", sorted(partitions)), ("t1", "CompleteCommit", [])]
    finally:
        await n.close()


@async_test
async def test_locally_written_transaction_completes_in_one_step_of_the_loop(tmp_path):
    """With every partition led here by a single replica nothing waits, so the marker task writes
    the markers and the Complete state in its first step: a producer's next AddPartitionsToTxn,
    read from the socket no earlier than the loop's next turn, finds the transaction complete
    instead of getting CONCURRENT_TRANSACTIONS and a client backoff."""
    n = await node(tmp_path)
    try:
        pid = (await n.coordinator.handle_init_producer_id("t1", 60000, None)).producer_id
        partitions = {(DATA, 0), (DATA, 1)}
        for _ in range(3):
            assert await n.coordinator.handle_add_partitions_to_transaction("t1", pid, 0, partitions) == Errors.NONE
            assert await n.coordinator.handle_end_transaction("t1", pid, 0, True) == Errors.NONE
            await asyncio.sleep(0)  # one turn of the loop: the marker task's first step
            assert (n.state("t1").state, n.state("t1").pending_state) == (TransactionState.COMPLETE_COMMIT, None)
        assert n.markers(0) == [(pid, ControlRecordType.COMMIT, 0)] * 3
    finally:
        await n.close()


@async_test
async def test_init_producer_id_fences_an_open_transaction_with_a_bumped_epoch(tmp_path):
    n = await node(tmp_path)
    try:
        pid = (await n.coordinator.handle_init_producer_id("t", 60000, None)).producer_id
        assert await n.coordinator.handle_add_partitions_to_transaction("t", pid, 0, {(DATA, 1)}) == Errors.NONE
        fenced = await n.coordinator.handle_init_producer_id("t", 60000, None)
        assert fenced.error == Errors.CONCURRENT_TRANSACTIONS  # the open transaction is aborted first
        await completed(n, "t", TransactionState.COMPLETE_ABORT)
        assert n.markers(1) == [(pid, ControlRecordType.ABORT, 1)]
        again = await n.coordinator.handle_init_producer_id("t", 60000, None)
        assert (again.error, again.producer_id, again.producer_epoch) == (Errors.NONE, pid, 2)
        # The old producer is fenced everywhere.
        assert await n.coordinator.handle_add_partitions_to_transaction("t", pid, 0, {(DATA, 0)}) == \
            Errors.PRODUCER_FENCED
        assert await n.coordinator.handle_end_transaction("t", pid, 0, True) == Errors.PRODUCER_FENCED
        assert (await n.coordinator.handle_init_producer_id("t", 60000, (pid, 0))).error == Errors.PRODUCER_FENCED
        assert await n.coordinator.handle_end_transaction("t", pid + 1, 2, True) == \
            Errors.INVALID_PRODUCER_ID_MAPPING
        assert await n.coordinator.handle_end_transaction("unknown", pid, 2, True) == \
            Errors.INVALID_PRODUCER_ID_MAPPING
        # KIP-360: the current producer bumps its own epoch; a retry of that bump gets the same answer.
        bumped = await n.coordinator.handle_init_producer_id("t", 60000, (pid, 2))
        assert (bumped.error, bumped.producer_epoch) == (Errors.NONE, 3)
        retry = await n.coordinator.handle_init_producer_id("t", 60000, (pid, 2))
        assert (retry.error, retry.producer_epoch) == (Errors.NONE, 3)
        assert (await n.coordinator.handle_init_producer_id("t", 900001, None)).error == \
            Errors.INVALID_TRANSACTION_TIMEOUT
        # An exhausted epoch: the next InitProducerId rotates to a new producer id, epoch 0.
        n.state("t").producer_epoch = 32766
        rotated = await n.coordinator.handle_init_producer_id("t", 60000, (pid, 32766))
        assert (rotated.error, rotated.producer_epoch) == (Errors.NONE, 0) and rotated.producer_id != pid
        assert (await n.coordinator.handle_init_producer_id("t", 60000, (pid, 3))).error == Errors.PRODUCER_FENCED
        # An id created by an InitProducerId whose write failed has no epoch: a guessed (id, -1) maps to nothing.
        n.coordinator.state_manager.get_transaction_state("half", TransactionMetadata(
            "half", 4242, -1, -1, -1, 60000, TransactionState.EMPTY))
        assert await n.coordinator.handle_add_partitions_to_transaction("half", 4242, -1, {(DATA, 0)}) == \
            Errors.INVALID_PRODUCER_ID_MAPPING
    finally:
        await n.close()


@async_test
async def test_timed_out_transaction_is_aborted_with_a_bumped_epoch(tmp_path):
    n = await node(tmp_path)
    try:
        pid = (await n.coordinator.handle_init_producer_id("slow", 1000, None)).producer_id
        assert await n.coordinator.handle_add_partitions_to_transaction("slow", pid, 0, {(DATA, 0)}) == Errors.NONE
        n.now += 1000
        assert await n.coordinator.abort_timed_out_transactions() == 0  # not past its timeout yet
        n.now += 1
        assert await n.coordinator.abort_timed_out_transactions() == 1
        # The abort runs as a task: a client's EndTxn arriving first must wait, not break it.
        assert await n.coordinator.handle_end_transaction("slow", pid, 0, True) == Errors.CONCURRENT_TRANSACTIONS
        await completed(n, "slow", TransactionState.COMPLETE_ABORT)
        assert n.state("slow").producer_epoch == 1
        assert n.markers(0) == [(pid, ControlRecordType.ABORT, 1)]
        assert await n.coordinator.handle_end_transaction("slow", pid, 0, True) == Errors.PRODUCER_FENCED
    finally:
        await n.close()


@async_test
async def test_idle_transactional_ids_expire_with_a_tombstone(tmp_path):
    n = await node(tmp_path, "transactional.id.expiration.ms=10000")
    try:
        await n.coordinator.handle_init_producer_id("idle", 1000, None)
        pid = (await n.coordinator.handle_init_producer_id("busy", 1000, None)).producer_id
        assert await n.coordinator.handle_add_partitions_to_transaction("busy", pid, 0, {(DATA, 0)}) == Errors.NONE
        n.now += 9999
        assert await n.coordinator.state_manager.remove_expired_transactional_ids() == 0
        n.now += 1
        assert await n.coordinator.state_manager.remove_expired_transactional_ids() == 1  # an open one stays
        assert n.coordinator.describe_transaction("idle").error == Errors.TRANSACTIONAL_ID_NOT_FOUND
        assert n.coordinator.describe_transaction("busy").state == "Ongoing"
        assert [(r.transactional_id, r.value) for r in read_transaction_log(Path(tmp_path))
                if r.transactional_id == "idle"][-1] == ("idle", None)
    finally:
        await n.close()


@async_test
async def test_new_leader_loads_state_and_finishes_a_prepared_commit(tmp_path):
    n = await node(tmp_path)
    try:
        pid = (await n.coordinator.handle_init_producer_id("kept", 60000, None)).producer_id
        assert await n.coordinator.handle_add_partitions_to_transaction("kept", pid, 0, {(DATA, 0)}) == Errors.NONE
        # What a coordinator that died right after writing PrepareCommit leaves in the log.
        prepared = TxnTransitMetadata(pid + 1, pid + 1, 4, -1, 60000, TransactionState.PREPARE_COMMIT,
                                      frozenset({(DATA, 0), (DATA, 1)}), T0, T0)
        assert await n.coordinator.state_manager._append("in-doubt", key_to_bytes("in-doubt"),
                                                         value_to_bytes(prepared)) == Errors.NONE
        n.lead(leader=1)  # another broker takes over: we stop answering
        await eventually_async(lambda: not n.coordinator.state_manager.owned_partitions(), what="unloaded")
        assert n.coordinator.state_manager.get_transaction_state("kept")[0] == Errors.NOT_COORDINATOR
        assert (await n.coordinator.handle_init_producer_id("kept", 60000, None)).error == Errors.NOT_COORDINATOR
        n.lead(leader=0)  # and we come back, in a newer epoch: load, then finish the in-doubt commit
        await eventually_async(lambda: n.coordinator.state_manager.owned_partitions() == [0], what="loaded")
        await completed(n, "in-doubt", TransactionState.COMPLETE_COMMIT)
        assert n.markers(0) == n.markers(1) == [(pid + 1, ControlRecordType.COMMIT, 4)]
        kept = n.state("kept")
        assert (kept.state, kept.producer_id, kept.producer_epoch, kept.topic_partitions) == (
            TransactionState.ONGOING, pid, 0, {(DATA, 0)})
    finally:
        await n.close()


def test_transaction_log_formats_round_trip():
    transit = TxnTransitMetadata(7, 7, 3, -1, 60000, TransactionState.ONGOING, frozenset({("a", 1), ("a", 0)}),
                                 T0, T0 + 1)
    assert read_key(key_to_bytes("id")) == "id"
    assert read_value(value_to_bytes(transit)) == transit
    assert key_to_bytes("id") == b"\x00\x00\x00\x02id"
