"""Replication between brokers in one process (kbroker/testing/replication_cluster.py): followers
fetch from leaders over real sockets, the real KafkaController answers AlterPartition, and
each scenario checks the logs byte for byte, the znode state and what the producers saw.

Covered: acks=all completing once the ISR has the records; a stuck follower leaving the ISR
(AlterPartition, same leader epoch) and rejoining after it catches up; a former leader with
records the new leader never had truncating to the new leader's epoch, through DivergingEpoch
(Fetch v15) and through OffsetForLeaderEpoch (IBP 2.6, Fetch v11); a follower behind the
leader's log start starting over there; the leader's answers to replicas outside the
assignment; OffsetForLeaderEpoch v0-4 on the wire.
"""

from __future__ import annotations

import asyncio

import pytest

from kbroker.metadata.admin_zk_client import AdminZkClient
from kbroker.network.network_client import NetworkClient
from kbroker.protocol.api_keys import ApiKey
from kbroker.protocol.errors import Errors
from kbroker.replica.replica_fetcher import BrokerEndPoint, InitialFetchState
from kbroker.testing.replication_cluster import InProcessCluster, Node, settle
from kbroker.testing.waiting import eventually_async

T = "t"
TP = (T, 0)


def run(scenario):
    asyncio.run(asyncio.wait_for(scenario(), 30))


async def started(tmp_path, **options) -> InProcessCluster:
    return await InProcessCluster(tmp_path, **options).start()


def in_sync(cluster: InProcessCluster, *brokers: int) -> bool:
    """Every named broker's log equals the first one's, byte for byte, and is not empty."""
    first = cluster.nodes[brokers[0]].log_bytes(T)
    return bool(first) and all(cluster.nodes[b].log_bytes(T) == first for b in brokers[1:])


async def shrink_until(cluster: InProcessCluster, leader: Node, isr: list[int]) -> None:
    """Runs the leader's ISR-expiration task until the znode shows `isr`."""
    def shrunk() -> bool:
        if cluster.state(T).isr == isr:
            return True
        leader.replica_manager.maybe_shrink_isr()
        return False
    await eventually_async(shrunk, what=f"the ISR to become {isr}", timeout=10, interval=0.05)


def test_acks_all_returns_once_the_follower_has_the_records(tmp_path):
    async def scenario():
        cluster = await started(tmp_path)
        try:
            await cluster.create_topic(T, {0: [1, 2]})
            leader, follower = cluster.nodes[1], cluster.nodes[2]
            for _ in range(5):
                result = await leader.produce(T, 20)
                assert result.error == Errors.NONE
                # The leader's high watermark passed the batch only after the follower fetched it.
                assert follower.log(T).log_end_offset >= result.last_offset + 1
            assert leader.log(T).high_watermark == 100
            await eventually_async(lambda: follower.log(T).high_watermark == 100, what="the follower's high watermark")
            assert in_sync(cluster, 1, 2)
            assert follower.log(T).leader_epoch_cache.entries == leader.log(T).leader_epoch_cache.entries
            assert cluster.state(T).isr == [1, 2]
        finally:
            await cluster.close()
    run(scenario)


def test_a_stuck_follower_leaves_the_isr_and_rejoins_after_catching_up(tmp_path):
    async def scenario():
        cluster = await started(tmp_path, lag_ms=300)
        try:
            await cluster.create_topic(T, {0: [1, 2]})
            leader, follower = cluster.nodes[1], cluster.nodes[2]
            assert (await leader.produce(T, 5)).error == Errors.NONE
            before = cluster.state(T)
            resume = follower.pause_fetching(TP)
            waiting = asyncio.ensure_future(leader.produce(T, 5, timeout_ms=10_000))
            await asyncio.sleep(0.2)
            assert not waiting.done()  # acks=all waits for the stuck follower...
            await shrink_until(cluster, leader, [1])
            result = await waiting  # ...until it leaves the ISR
            assert result.error == Errors.NONE and leader.log(T).high_watermark == 10
            shrunk = cluster.state(T)
            assert (shrunk.leader, shrunk.leader_epoch) == (before.leader, before.leader_epoch)  # AlterPartition
            assert shrunk.zk_version == before.zk_version + 1
            assert leader.partition(T).isr == [1] and leader.partition(T).partition_epoch == shrunk.zk_version
            follower.resume_fetching(TP, resume)
            await eventually_async(lambda: cluster.state(T).isr == [1, 2], what="the follower rejoining the ISR")
            assert in_sync(cluster, 1, 2)
            # The znode changes first; the leader learns it from the AlterPartition answer just after.
            await eventually_async(lambda: leader.partition(T).isr == [1, 2], what="the leader's ISR to expand")
        finally:
            await cluster.close()
    run(scenario)


def test_an_idle_partition_stays_in_the_isr_while_another_replicates(tmp_path):
    """A follower caught up on a partition is answered without a read of its log (every idle
    partition it follows, in every fetch), but its fetch still counts: the partition's follower
    stays caught up, so the leader's ISR check keeps it, and data appended later still arrives."""
    async def scenario():
        cluster = await started(tmp_path, lag_ms=300)
        try:
            await cluster.create_topic(T, {0: [1, 2]})
            await cluster.create_topic("idle", {0: [1, 2]})
            leader, follower = cluster.nodes[1], cluster.nodes[2]
            assert (await leader.produce("idle", 3)).error == Errors.NONE
            until = asyncio.get_running_loop().time() + 3 * 0.3  # three replica.lag.time.max.ms
            while asyncio.get_running_loop().time() < until:
                assert (await leader.produce(T, 5)).error == Errors.NONE
            idle = leader.partition("idle")
            assert idle.out_of_sync_replicas(idle.time_ms()) == []  # its follower's fetches were recorded
            leader.replica_manager.maybe_shrink_isr()
            assert idle.isr == [1, 2] and idle.pending_isr_change is None
            assert idle.remote_replicas[2].log_end_offset == 3
            assert (await leader.produce("idle", 2)).error == Errors.NONE
            assert follower.log("idle").log_end_offset == 5
            await eventually_async(lambda: follower.log("idle").high_watermark == 5, what="the follower's high watermark")
        finally:
            await cluster.close()
    run(scenario)


def test_followers_fetch_in_an_incremental_session(tmp_path):
    """KIP-227 between brokers: the follower opens a session (privileged, every partition it
    follows), then sends incremental fetches; an idle partition, absent from those requests and
    answers, still has its follower's fetches recorded, so it stays in the ISR. A partition that
    leaves the fetcher is forgotten by the session and rejoins it; a session the leader lost
    (FETCH_SESSION_ID_NOT_FOUND) is opened again and replication goes on."""
    async def scenario():
        cluster = await started(tmp_path, lag_ms=300)
        try:
            await cluster.create_topic(T, {0: [1, 2]})
            await cluster.create_topic("idle", {0: [1, 2]})
            leader, follower = cluster.nodes[1], cluster.nodes[2]
            cache = leader.fetch_manager.cache
            assert (await leader.produce("idle", 3)).error == Errors.NONE
            until = asyncio.get_running_loop().time() + 3 * 0.3  # three replica.lag.time.max.ms
            while asyncio.get_running_loop().time() < until:
                assert (await leader.produce(T, 5)).error == Errors.NONE
            [session] = cache.sessions.values()
            [fetcher] = follower.fetchers.fetchers.values()
            assert session.privileged and len(session.partitions) == 2 and session.epoch > 3
            assert fetcher.session.session_id == session.id
            idle = leader.partition("idle")
            leader.replica_manager.maybe_shrink_isr()
            assert idle.isr == [1, 2] and idle.pending_isr_change is None
            assert idle.remote_replicas[2].log_end_offset == 3

            resume = follower.pause_fetching(TP)  # T leaves the session: forgotten_topics_data
            await eventually_async(lambda: len(session.partitions) == 1, what="the session to forget the partition")
            assert cache.total_partitions == 1
            assert set(fetcher._topic_names.values()) == {"idle"}  # the fetcher forgets T's topic id too
            follower.resume_fetching(TP, resume)
            await eventually_async(lambda: len(session.partitions) == 2, what="the partition to rejoin the session")
            assert set(fetcher._topic_names.values()) == {T, "idle"}

            cache.remove(session)  # as after a leader restart: the follower must open a new session
            assert (await leader.produce(T, 5)).error == Errors.NONE
            assert (await leader.produce("idle", 2)).error == Errors.NONE
            await eventually_async(lambda: follower.log("idle").high_watermark == 5, what="the follower's high watermark")
            await eventually_async(lambda: in_sync(cluster, 1, 2), what="the logs to converge")
            [renewed] = cache.sessions.values()
            assert renewed.id != session.id and len(renewed.partitions) == 2
            assert cluster.state(T).isr == [1, 2] and idle.isr == [1, 2]
        finally:
            await cluster.close()
    run(scenario)


@pytest.mark.parametrize("truncate_on_fetch", [True, False], ids=["DivergingEpoch", "OffsetForLeaderEpoch"])
def test_a_former_leader_truncates_what_the_new_leader_never_had(tmp_path, truncate_on_fetch):
    async def scenario():
        cluster = await started(tmp_path, truncate_on_fetch=truncate_on_fetch)
        try:
            await cluster.create_topic(T, {0: [1, 2]})
            old, new = cluster.nodes[1], cluster.nodes[2]
            assert (await old.produce(T, 5)).error == Errors.NONE
            new.pause_fetching(TP)
            assert (await old.produce(T, 3, acks=1)).error == Errors.NONE  # offsets 5-7 only on broker 1
            await cluster.fail(1)
            assert (cluster.state(T).leader, cluster.state(T).leader_epoch) == (2, 1)
            assert (await new.produce(T, 2, acks=1)).error == Errors.NONE  # offsets 5-6 in epoch 1
            assert old.log(T).log_end_offset == 8
            await cluster.restore(1)
            await eventually_async(lambda: in_sync(cluster, 1, 2), what="the logs to converge")
            assert old.log(T).log_end_offset == 7
            assert old.log(T).leader_epoch_cache.entries == [(0, 0), (1, 5)]
            await eventually_async(lambda: cluster.state(T).isr == [2, 1], what="the old leader rejoining the ISR")
        finally:
            await cluster.close()
    run(scenario)


def test_a_broker_that_led_an_epoch_without_appending_follows_again(tmp_path):
    """Broker 2 leads epoch 1 but appends nothing; broker 1 then leads epoch 2. Broker 2's
    epoch cache ends with (1, 5), which the leader has never heard of: the divergence answer
    (epoch 0 ends at 5) truncates nothing, and the dangling epoch must go (Kafka's truncateTo
    does so) or the follower would ask about it forever."""
    async def scenario():
        cluster = await started(tmp_path)
        try:
            await cluster.create_topic(T, {0: [1, 2]})
            one, two = cluster.nodes[1], cluster.nodes[2]
            assert (await one.produce(T, 5)).error == Errors.NONE
            await cluster.fail(1)
            assert two.partition(T).is_leader and two.log(T).leader_epoch_cache.entries == [(0, 0), (1, 5)]
            await cluster.restore(1)
            await eventually_async(lambda: cluster.state(T).isr == [2, 1], what="broker 1 rejoining the ISR")
            await cluster.fail(2)
            assert one.partition(T).is_leader and one.log(T).leader_epoch_cache.entries == [(0, 0), (2, 5)]
            await cluster.restore(2)
            assert (await one.produce(T, 3, timeout_ms=5000)).error == Errors.NONE
            await eventually_async(lambda: in_sync(cluster, 1, 2), what="broker 2 to catch up")
            assert two.log(T).leader_epoch_cache.entries == [(0, 0), (2, 5)]
            await eventually_async(lambda: cluster.state(T).isr == [1, 2], what="broker 2 rejoining the ISR")
        finally:
            await cluster.close()
    run(scenario)


def test_a_follower_behind_the_leaders_log_start_starts_over_there(tmp_path):
    async def scenario():
        cluster = await started(tmp_path, lag_ms=200)
        try:
            await cluster.create_topic(T, {0: [1, 2]})
            leader, follower = cluster.nodes[1], cluster.nodes[2]
            resume = follower.pause_fetching(TP)
            assert (await leader.produce(T, 5, acks=1)).error == Errors.NONE
            await shrink_until(cluster, leader, [1])
            assert (await leader.produce(T, 5)).error == Errors.NONE
            assert leader.replica_manager.delete_records(T, 0, 5) == (Errors.NONE, 5)
            follower.resume_fetching(TP, resume)  # at offset 0, below the leader's log start
            await eventually_async(lambda: follower.log(T).log_end_offset == 10, what="the follower to catch up")
            assert follower.log(T).log_start_offset == 5
            assert [s.base_offset for s in follower.log(T).log_segments()] == [5]
            assert leader.log_bytes(T).endswith(follower.log_bytes(T))
            await eventually_async(lambda: cluster.state(T).isr == [1, 2], what="the follower rejoining the ISR")
        finally:
            await cluster.close()
    run(scenario)


# -- the leader's side on the wire --------------------------------------------------------------------

async def send(node: Node, api_key: int, version: int, request: dict) -> dict:
    client = NetworkClient("127.0.0.1", node.port, "replication-test")
    try:
        return await client.send(api_key, version, request)
    finally:
        await client.close()


def fetch_request(replica_id: int, topic_id, current_leader_epoch: int, fetch_offset: int = 0,
                  last_fetched_epoch: int = -1) -> dict:
    return {"replica_id": replica_id, "replica_state": {"replica_id": replica_id, "replica_epoch": -1},
            "max_wait_ms": 0, "min_bytes": 1, "max_bytes": 1 << 20, "isolation_level": 0, "session_id": 0,
            "session_epoch": -1, "topics": [{"topic": T, "topic_id": topic_id, "partitions": [
                {"partition": 0, "current_leader_epoch": current_leader_epoch, "fetch_offset": fetch_offset,
                 "last_fetched_epoch": last_fetched_epoch, "log_start_offset": 0, "partition_max_bytes": 1 << 20}]}],
            "forgotten_topics_data": [], "rack_id": ""}


def test_the_leader_answers_replicas_outside_the_assignment_and_diverged_ones(tmp_path):
    async def scenario():
        cluster = await started(tmp_path)
        try:
            await cluster.create_topic(T, {0: [1, 2]})
            leader = cluster.nodes[1]
            assert (await leader.produce(T, 4)).error == Errors.NONE
            topic_id = leader.partition(T).topic_id
            for version in (12, 15):
                for epoch, code in ((0, Errors.UNKNOWN_LEADER_EPOCH), (-1, Errors.NOT_LEADER_OR_FOLLOWER)):
                    answer = await send(leader, ApiKey.FETCH, version, fetch_request(3, topic_id, epoch))
                    assert answer["responses"][0]["partitions"][0]["error_code"] == code
            # Broker 2 claims epoch 0 ran to offset 9: the leader's epoch 0 ends at 4.
            answer = await send(leader, ApiKey.FETCH, 15, fetch_request(2, topic_id, 0, 9, last_fetched_epoch=0))
            data = answer["responses"][0]["partitions"][0]
            assert data["error_code"] == 0 and data["diverging_epoch"] == {"epoch": 0, "end_offset": 4}
            assert len(data["records"]) == 0
        finally:
            await cluster.close()
    run(scenario)


@pytest.mark.parametrize("version", [0, 1, 2, 3, 4])
def test_offset_for_leader_epoch_on_the_wire(tmp_path, version):
    async def scenario():
        cluster = await started(tmp_path)
        try:
            await cluster.create_topic(T, {0: [1, 2]})
            old, new = cluster.nodes[1], cluster.nodes[2]
            assert (await old.produce(T, 3)).error == Errors.NONE
            await cluster.fail(1)  # broker 2 leads epoch 1 from offset 3
            assert (await new.produce(T, 2, acks=1)).error == Errors.NONE

            async def ask(node, epoch, current=-1):
                answer = await send(node, ApiKey.OFFSET_FOR_LEADER_EPOCH, version, {
                    "replica_id": 1, "topics": [{"topic": T, "partitions": [
                        {"partition": 0, "current_leader_epoch": current, "leader_epoch": epoch}]}]})
                data = answer["topics"][0]["partitions"][0]
                return data["error_code"], data.get("leader_epoch", -1) if version >= 1 else None, data["end_offset"]

            no_epoch = None if version == 0 else -1
            assert await ask(new, 0) == (0, 0 if version >= 1 else None, 3)
            assert await ask(new, 1) == (0, 1 if version >= 1 else None, 5)
            assert await ask(new, 7) == (0, no_epoch, -1)
            if version >= 2:
                assert (await ask(new, 1, current=0))[0] == Errors.FENCED_LEADER_EPOCH
                assert (await ask(new, 1, current=2))[0] == Errors.UNKNOWN_LEADER_EPOCH
            assert (await ask(cluster.nodes[3], 0))[0] == Errors.NOT_LEADER_OR_FOLLOWER  # not a replica
        finally:
            await cluster.close()
    run(scenario)


def test_settle_is_enough_for_local_deliveries(tmp_path):
    """The harness itself: a new topic's LeaderAndIsr reaches its brokers within `settle`."""
    async def scenario():
        cluster = await started(tmp_path)
        try:
            await cluster.create_topic(T, {0: [1, 2]})
            await settle()
            assert cluster.nodes[1].partition(T).is_leader
            assert not cluster.nodes[2].partition(T).is_leader
            assert cluster.nodes[3].partition(T) is None
        finally:
            await cluster.close()
    run(scenario)


def test_a_leader_back_at_another_address_takes_its_partitions_along(tmp_path):
    """ReplicaFetcherManager: one fetcher per (leader, fetcher id); a new endpoint for the
    same leader replaces the fetcher, and partitions already followed move to the new one."""
    async def scenario():
        node = Node(2, tmp_path)
        manager = node.replica_manager.replica_fetcher_manager
        try:
            old, new = BrokerEndPoint(1, "127.0.0.1", 1), BrokerEndPoint(1, "127.0.0.1", 2)
            manager.add_fetcher_for_partitions({("a", 0): InitialFetchState(None, old, 3, 10, 2)})
            manager.add_fetcher_for_partitions({("b", 0): InitialFetchState(None, new, 4, 0, None)})
            assert list(manager.fetchers) == [(1, 0)]
            fetcher = manager.fetchers[(1, 0)]
            assert fetcher.leader == new and set(fetcher.partitions) == {("a", 0), ("b", 0)}
            assert manager.fetch_state(("a", 0)).fetch_offset == 10
            assert manager.fetch_state(("b", 0)).truncating  # no epoch yet: reconcile to the high watermark
            assert manager.remove_fetcher_for_partitions([("a", 0), ("b", 0)]).keys() == {("a", 0), ("b", 0)}
            manager.shutdown_idle_fetcher_threads()
            assert manager.fetchers == {}
        finally:
            await node.close()
    run(scenario)


def test_a_topic_deletion_completes_once_every_replica_answered_stop_replica(tmp_path):
    """The in-process channel hands the brokers' answers back to the controller, which finishes
    a deletion only on the StopReplica answers of every replica."""
    async def scenario():
        cluster = await started(tmp_path)
        try:
            await cluster.create_topic(T, {0: [1, 2]})
            assert (await cluster.nodes[1].produce(T, 5)).error == Errors.NONE
            AdminZkClient(cluster.zk).delete_topic(T)
            await settle()
            assert cluster.zk.get_topic_assignment(T) is None and cluster.zk.topics_to_delete() == []
            assert all(node.log(T) is None for node in cluster.nodes.values())
        finally:
            await cluster.close()
    run(scenario)
