"""Disk faults injected into the log (kbroker/testing/disk_faults.py's FailingDisk): an I/O error
takes its log directory offline through the LogDirFailureChannel, the request gets
KAFKA_STORAGE_ERROR, later requests for its partitions too, the other log dirs keep serving,
closing writes nothing there and the next start recovers what was appended. Also the
ReplicaManager's and the controller's side, in-process (issue 16, bug 4)."""

from __future__ import annotations

import asyncio
import errno
import functools
import os

import pytest

from kbroker.log.config import LogConfig
from kbroker.log.errors import KafkaStorageException, LogDirsOfflineError
from kbroker.log.log_manager import CLEAN_SHUTDOWN_FILE, LogManager
from kbroker.metadata.metadata_cache import BrokerInfo, MetadataCache
from kbroker.protocol.errors import Errors
from kbroker.replica.delayed_fetch import FetchRequestPartition
from kbroker.replica.partition import FETCH_HIGH_WATERMARK
from kbroker.replica.replica_manager import ReplicaManager
from kbroker.testing.batches import producer_batch, read_batches
from kbroker.testing.disk_faults import FailingDisk
from kbroker.testing.replication_cluster import InProcessCluster, settle
from kbroker.testing.waiting import eventually_async

CLUSTER = "disk-faults"


def manager(dirs) -> LogManager:
    return LogManager([str(d) for d in dirs], cluster_id=CLUSTER, broker_id=1, default_config=LogConfig())


def batch(*values: bytes) -> memoryview:
    return memoryview(producer_batch(list(values)))


def stored_values(unified_log) -> list[bytes]:
    data = b"".join(s.read_bytes(0, s.size) for s in unified_log.log_segments())
    return [record.value for _batch, records in read_batches(data) for record in records]


def on_loop(test):
    """Run an async test on its own event loop (with a deadline)."""
    @functools.wraps(test)
    def run(*args, **kwargs) -> None:
        asyncio.run(asyncio.wait_for(test(*args, **kwargs), 30))
    return run


@pytest.mark.parametrize("error", [errno.ENOSPC, errno.EIO, errno.EROFS])
def test_a_failed_append_takes_its_dir_offline_and_the_other_dir_serves(tmp_path, error):
    a, b = tmp_path / "a", tmp_path / "b"
    lm = manager([a, b])
    in_a = lm.get_or_create_log("in-a", 0)
    in_b = lm.get_or_create_log("in-b", 0)
    assert (in_a.parent_dir, in_b.parent_dir) == (str(a), str(b))
    in_b.append_as_leader(batch(b"acked-1", b"acked-2"), leader_epoch=0)
    with FailingDisk(b, error) as disk:
        with pytest.raises(KafkaStorageException) as raised:
            in_b.append_as_leader(batch(b"refused"), leader_epoch=0)
        assert raised.value.code == Errors.KAFKA_STORAGE_ERROR
        assert lm.live_log_dirs == [str(a)] and lm.is_offline(str(b))
        seen = disk.seen
        with pytest.raises(KafkaStorageException):  # refused without touching the disk again
            in_b.append_as_leader(batch(b"later"), leader_epoch=0)
        assert disk.seen == seen
        assert in_a.append_as_leader(batch(b"still-served"), leader_epoch=0).base_offset == 0
        assert lm.handle_log_dir_failure(str(b)) == [("in-b", 0)]
        assert lm.get_log("in-b", 0) is None
        assert lm.get_or_create_log("new", 0).parent_dir == str(a)  # new logs go to live dirs only
        lm.checkpoint()
        lm.close()
        assert disk.seen == seen  # nothing more was written to the failed dir
    assert (a / CLEAN_SHUTDOWN_FILE).exists() and not (b / CLEAN_SHUTDOWN_FILE).exists()
    reopened = manager([a, b])  # "space freed": the next start recovers the failed dir
    try:
        assert reopened.had_clean_shutdown == {str(a): True, str(b): False}
        assert stored_values(reopened.get_log("in-b", 0)) == [b"acked-1", b"acked-2"]
        assert stored_values(reopened.get_log("in-a", 0)) == [b"still-served"]
    finally:
        reopened.close()


@pytest.mark.parametrize("operation", ["create", "write", "flush"])
def test_rolling_snapshots_and_flushes_fail_the_dir_like_appends(tmp_path, operation):
    lm = manager([tmp_path / "a", tmp_path / "b"])
    unified_log = lm.get_or_create_log("t", 0)
    unified_log.append_as_leader(batch(b"one"), leader_epoch=0)
    with FailingDisk(unified_log.parent_dir, operations=frozenset({operation})):
        with pytest.raises(KafkaStorageException):
            if operation == "flush":
                unified_log.flush()
            else:  # a roll creates the new segment's files and writes a producer snapshot
                unified_log.roll()
    assert lm.is_offline(unified_log.parent_dir)
    lm.close()


def test_a_checkpoint_that_cannot_be_written_takes_its_dir_offline(tmp_path):
    lm = manager([tmp_path / "a", tmp_path / "b"])
    lm.get_or_create_log("t", 0).append_as_leader(batch(b"x"), leader_epoch=0)
    with FailingDisk(tmp_path / "a", errno.ENOSPC, nth=2) as disk:  # the second checkpoint file
        lm.checkpoint()  # does not raise: the failure is the channel's
    assert disk.seen == 2 and len(disk.failed) == 1
    assert lm.live_log_dirs == [str(tmp_path / "b")]
    assert lm.log_dir_failure_channel.offline_log_dirs == {str(tmp_path / "a")}
    lm.close()


def test_a_failed_delete_rename_keeps_the_log_and_fails_the_dir(tmp_path):
    lm = manager([tmp_path / "a"])
    unified_log = lm.get_or_create_log("t", 0)
    with FailingDisk(tmp_path / "a", errno.EIO, operations=frozenset({"rename"})):
        with pytest.raises(KafkaStorageException):
            lm.delete_log("t", 0)
    assert lm.get_log("t", 0) is unified_log  # not dropped before the rename succeeded
    assert lm.is_offline(str(tmp_path / "a"))
    assert os.path.isdir(unified_log.directory)
    lm.close()


def test_a_dir_that_fails_at_start_is_offline_and_the_broker_starts_with_the_others(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    lm = manager([a, b])
    lm.get_or_create_log("in-a", 0).append_as_leader(batch(b"a"), leader_epoch=0)
    lm.get_or_create_log("in-b", 0).append_as_leader(batch(b"b"), leader_epoch=0)
    lm.close()
    with FailingDisk(b, errno.EIO, operations=frozenset({"create"})):  # opening b's segments fails
        started = manager([a, b])
    try:
        assert started.live_log_dirs == [str(a)]
        assert started.get_log("in-b", 0) is None and stored_values(started.get_log("in-a", 0)) == [b"a"]
        with pytest.raises(KafkaStorageException):  # it may be in b: not created empty elsewhere
            started.get_or_create_log("in-b", 0, is_new=False)
        assert started.get_or_create_log("brand-new", 0, is_new=True).parent_dir == str(a)
    finally:
        started.close()
    recovered = manager([a, b])
    assert stored_values(recovered.get_log("in-b", 0)) == [b"b"]
    recovered.close()
    (tmp_path / "not-a-dir").write_text("a file where a log dir should be")
    with pytest.raises(LogDirsOfflineError, match="none of the specified log dirs"):
        manager([tmp_path / "not-a-dir"])


class Broker:
    """A ReplicaManager leading `in-a-0` (log dir a) and `in-b-0` (log dir b), with its
    LogDirFailureHandler running as the server runs it."""

    def __init__(self, root) -> None:
        cache = MetadataCache(1)
        cache.set_brokers([BrokerInfo(1, {})])
        self.dirs = [str(root / "a"), str(root / "b")]
        self.logs = LogManager(self.dirs, cluster_id=CLUSTER, broker_id=1, default_config=LogConfig())
        self.manager = ReplicaManager(1, self.logs, cache, lambda _topic: {}, LogConfig())
        self.notified: list[str] = []
        self.halted: list[str] = []
        self.make_leader("in-a", 1)
        self.make_leader("in-b", 1)
        self.handler = asyncio.get_running_loop().create_task(self.manager.run_log_dir_failure_handler(
            lambda: self.notified.append("log dir event"), self.halted.append))

    def make_leader(self, topic: str, leader_epoch: int) -> dict:
        state = {"partition_index": 0, "leader": 1, "leader_epoch": leader_epoch, "isr": [1], "replicas": [1],
                 "partition_epoch": leader_epoch, "controller_epoch": 1}
        return self.manager.become_leader_or_follower({"controller_id": 1, "controller_epoch": 1, "topic_states": [
            {"topic_name": topic, "topic_id": None, "partition_states": [state]}]})

    def produce(self, topic: str, value: bytes) -> Errors:
        return self.manager.append_to_partition(topic, 0, batch(value), 1).error

    async def close(self) -> None:
        self.handler.cancel()
        self.logs.close()


@on_loop
async def test_the_request_in_flight_and_later_ones_get_kafka_storage_error(tmp_path):
    broker = Broker(tmp_path)
    assert broker.produce("in-b", b"acked") == Errors.NONE
    with FailingDisk(tmp_path / "b", errno.ENOSPC):
        assert broker.produce("in-b", b"refused") == Errors.KAFKA_STORAGE_ERROR
        await eventually_async(lambda: broker.notified, what="the controller to be told")
    manager = broker.manager
    assert manager.get_partition("in-b", 0) is None and ("in-b", 0) in manager.offline_partitions
    assert broker.produce("in-b", b"later") == Errors.KAFKA_STORAGE_ERROR
    # Fetch, DeleteRecords, ListOffsets and OffsetForLeaderEpoch (missing_partition_error) alike.
    fetched = manager.read_partition(FetchRequestPartition("in-b", 0, 0, 1 << 20), FETCH_HIGH_WATERMARK, True)
    assert fetched.error == Errors.KAFKA_STORAGE_ERROR
    assert manager.delete_records("in-b", 0, -1) == (Errors.KAFKA_STORAGE_ERROR, -1)
    assert manager.missing_partition_error("in-b", 0) == Errors.KAFKA_STORAGE_ERROR
    answer = broker.make_leader("in-b", 2)  # the controller learns the replica is offline
    assert answer["topics"][0]["partition_errors"][0]["error_code"] == Errors.KAFKA_STORAGE_ERROR
    assert broker.produce("in-a", b"other dir") == Errors.NONE
    assert broker.halted == []
    await broker.close()


@on_loop
async def test_stop_replica_with_a_failed_rename_answers_kafka_storage_error(tmp_path):
    broker = Broker(tmp_path)
    request = {"controller_id": 1, "controller_epoch": 1, "topic_states": [
        {"topic_name": "in-b", "partition_states": [{"partition_index": 0, "leader_epoch": -2,
                                                     "delete_partition": True}]}]}
    with FailingDisk(tmp_path / "b", errno.EIO, operations=frozenset({"rename"})):
        answer = broker.manager.stop_replicas(request)  # answers: the controller's deletion completes
    assert answer["partition_errors"][0]["error_code"] == Errors.KAFKA_STORAGE_ERROR
    await eventually_async(lambda: broker.notified, what="the dir failure to be handled")
    assert broker.produce("in-a", b"other dir") == Errors.NONE
    await broker.close()


@on_loop
async def test_the_broker_halts_once_every_log_dir_failed(tmp_path):
    broker = Broker(tmp_path)
    with FailingDisk(tmp_path, errno.EIO):
        assert broker.produce("in-a", b"x") == Errors.KAFKA_STORAGE_ERROR
        await eventually_async(lambda: broker.notified, what="the first failure to be handled")
        assert broker.produce("in-b", b"x") == Errors.KAFKA_STORAGE_ERROR
        await eventually_async(lambda: broker.halted, what="the broker to halt")
    assert broker.halted == [f"Shutdown broker because all log dirs in {', '.join(broker.dirs)} have failed"]
    await broker.close()


@on_loop
async def test_a_failed_dir_on_the_leader_moves_leadership_in_a_cluster(tmp_path):
    cluster = await InProcessCluster(tmp_path, log_dir_count=2).start()
    node = cluster.nodes[1]
    halted: list[str] = []
    handler = asyncio.get_running_loop().create_task(node.replica_manager.run_log_dir_failure_handler(
        lambda: cluster.zk.propagate_log_dir_event(1), halted.append))
    try:
        await cluster.create_topic("t", {0: [1, 2, 3]})
        assert cluster.state("t").leader == 1
        assert (await node.produce("t", 3)).error == Errors.NONE
        with FailingDisk(node.log_manager.log_dirs[0], errno.ENOSPC):
            assert (await node.produce("t", 1)).error == Errors.KAFKA_STORAGE_ERROR
            await eventually_async(lambda: cluster.state("t").leader in (2, 3), what="a new leader")
        await settle()
        state = cluster.state("t")
        assert 1 not in state.isr
        new_leader = cluster.nodes[state.leader]
        assert (await new_leader.produce("t", 2)).error == Errors.NONE  # producers continue
        cached = new_leader.metadata_cache.partition("t", 0)
        assert cached is not None and cached.offline_replicas == [1]
        assert cluster.zk.get_all_log_dir_event_notifications() == []  # the controller consumed it
        values = [v for v in stored_values(new_leader.log("t")) if v is not None]
        assert values[:3] == [b"t-1-0", b"t-1-1", b"t-1-2"]  # nothing acknowledged was lost
        assert halted == []  # node 1's other log dir is still online
    finally:
        handler.cancel()
        await cluster.close()


@on_loop
async def test_a_failed_delete_rename_makes_the_topic_deletion_wait_for_that_broker(tmp_path):
    cluster = await InProcessCluster(tmp_path, log_dir_count=2).start()
    try:
        await cluster.create_topic("doomed", {0: [1, 2, 3]})
        node = cluster.nodes[1]
        failing_dir = node.log_manager.log_dir_of("doomed", 0)
        assert failing_dir is not None
        with FailingDisk(failing_dir, errno.EIO, operations=frozenset({"rename"})) as disk:
            cluster.zk.mark_topic_for_deletion("doomed")
            await eventually_async(lambda: all(cluster.nodes[b].log("doomed") is None for b in (2, 3)),
                                   what="the healthy replicas to be deleted")
            await settle()
        assert disk.failed and node.log_manager.is_offline(failing_dir)  # a dir failure, not a hang
        # Kafka's ReplicaDeletionIneligible: marker and znodes stay until broker 1 comes back.
        assert cluster.zk.topics_to_delete() == ["doomed"]
        assert cluster.zk.get_topic_assignment("doomed") is not None
    finally:
        await cluster.close()
