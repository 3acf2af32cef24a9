"""Transaction markers in a replicated partition (kbroker/testing/replication_cluster.py: brokers'
replication parts in one event loop, real sockets, the real KafkaController):
ReplicaManager.append_txn_markers, the path a local transaction coordinator takes, answers only
once the follower has the marker (acks=-1), the last stable offset waits for that too, the
follower builds the same producer state and .txnindex from the replicated marker, and the
brokers that do not lead the partition refuse the marker without appending.
"""

from __future__ import annotations

import asyncio

from kbroker.log.index import AbortedTxn
from kbroker.protocol.errors import Errors
from kbroker.replica.replica_manager import TxnMarkerEntry
from kbroker.testing.batches import producer_batch
from kbroker.testing.replication_cluster import InProcessCluster, Node
from kbroker.testing.waiting import eventually_async

T = "orders"
TP = (T, 0)
PID = 77


def run(scenario):
    asyncio.run(asyncio.wait_for(scenario(), 30))


async def produce_txn(node: Node, values: list[bytes], sequence: int = 0) -> int:
    batch = producer_batch(values, producer_id=PID, producer_epoch=0, base_sequence=sequence, transactional=True)
    result = node.replica_manager.append_to_partition(T, 0, memoryview(batch), -1)
    assert result.error == Errors.NONE
    await node.replica_manager.wait_for_acks({TP: result}, 5000)
    assert result.error == Errors.NONE
    return result.base_offset


def test_an_abort_marker_is_answered_once_replicated_and_indexed_on_both_replicas(tmp_path):
    async def scenario():
        cluster = await InProcessCluster(tmp_path).start()
        try:
            await cluster.create_topic(T, {0: [1, 2]})
            leader, follower, outsider = cluster.nodes[1], cluster.nodes[2], cluster.nodes[3]
            completed: list[tuple[int, list, bool]] = []
            leader.replica_manager.txn_marker_listeners.append(
                lambda pid, partitions, committed: completed.append((pid, partitions, committed)))
            first = await produce_txn(leader, [b"a", b"b"])
            assert leader.log(T).last_stable_offset == first == 0

            # The follower stops fetching: the marker is written but not acknowledged.
            paused = follower.pause_fetching(TP)
            abort = TxnMarkerEntry(PID, 0, 3, False, [TP])
            answer = asyncio.ensure_future(leader.replica_manager.append_txn_markers([abort], 10_000))
            await eventually_async(lambda: leader.log(T).log_end_offset == 3, what="the marker appended")
            assert not answer.done() and completed == []
            assert leader.log(T).last_stable_offset == 0  # an unreplicated marker keeps the LSO

            follower.resume_fetching(TP, paused)
            assert await answer == [{TP: Errors.NONE}]
            assert completed == [(PID, [TP], False)]
            assert leader.log(T).last_stable_offset == 3
            for node in (leader, follower):
                await eventually_async(lambda node=node: node.log(T).log_end_offset == 3, what="the follower's copy")
                assert node.log(T).collect_aborted_transactions(0, 3) == [AbortedTxn(PID, 0, 2, 3)]
                assert node.log(T).producer_state_manager.first_unstable_offset() in (None, 0)
            await eventually_async(lambda: follower.log(T).last_stable_offset == 3, what="the follower's LSO")

            # Brokers that do not lead the partition append nothing.
            commit = TxnMarkerEntry(PID, 0, 3, True, [TP])
            assert await follower.replica_manager.append_txn_markers([commit], 1000) == [
                {TP: Errors.NOT_LEADER_OR_FOLLOWER}]
            assert await outsider.replica_manager.append_txn_markers([commit], 1000) == [
                {TP: Errors.UNKNOWN_TOPIC_OR_PARTITION}]
            assert follower.log(T).log_end_offset == 3 and outsider.log(T) is None
            assert completed == [(PID, [TP], False)]
        finally:
            await cluster.close()
    run(scenario)
