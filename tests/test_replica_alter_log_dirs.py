"""Moving a replica between the log dirs of one broker (AlterReplicaLogDirs), in-process: a
ReplicaManager leading `moving-0` in log dir a, with small segments and small copy steps so a
move takes many steps. Most tests step the ReplicaAlterLogDirsManager by hand (no event loop: a
step never awaits, so stepping by hand is what its task does), producing between steps.

- The moved log holds exactly the bytes of the old one (every segment's batches, leader epochs,
  log start, high watermark), records produced during the move included; the partition serves
  from the new dir afterwards and the old one is renamed `-delete`.
- DescribeLogDirs shows the future replica in the destination (IsFutureKey, size, offset lag).
- A current log truncated (and rewritten at a new epoch) or with its log start moved during the
  move is followed by the future log.
- A restart in the middle (clean, or with the logs to recover) loads the `-future` dir and the
  move resumes once the partition is led again, finishing with identical data.
- The destination dir failing mid-move abandons the future log; the replica keeps serving.
- Transactions move too: aborted-transaction index, last stable offset, producer sequences.
- Redirecting a move abandons the future log; a dir named for a partition not hosted yet is
  where its log is created (Kafka's preferred log dir).
"""

from __future__ import annotations

import asyncio
import errno
import functools
import os

import pytest

from kbroker.api.handlers.describe_log_dirs import _describe_dir
from kbroker.log.append_origin import AppendOrigin
from kbroker.log.config import LogConfig
from kbroker.log.log_manager import CLEAN_SHUTDOWN_FILE, LogManager
from kbroker.log.records import ControlRecordType, build_control_batch
from kbroker.metadata.metadata_cache import BrokerInfo, MetadataCache
from kbroker.protocol.errors import Errors
from kbroker.replica.replica_alter_log_dirs_manager import StepResult
from kbroker.replica.replica_manager import ReplicaManager
from kbroker.testing.batches import producer_batch, read_batches
from kbroker.testing.disk_faults import FailingDisk
from kbroker.testing.waiting import eventually_async

CLUSTER = "alter-log-dirs"
TP = ("moving", 0)


def log_bytes(unified_log) -> bytes:
    return b"".join(segment.read_bytes(0, segment.size) for segment in unified_log.log_segments())


def values(unified_log) -> list[bytes]:
    return [record.value for _batch, records in read_batches(log_bytes(unified_log)) for record in records]


class Broker:
    """A ReplicaManager over log dirs a and b of `root`, leading the partitions it is asked to."""

    def __init__(self, root, step_bytes: int = 2048) -> None:
        cache = MetadataCache(1)
        cache.set_brokers([BrokerInfo(1, {})])
        self.dirs = [str(root / "a"), str(root / "b")]
        self.logs = LogManager(self.dirs, cluster_id=CLUSTER, broker_id=1, default_config=LogConfig())
        self.manager = ReplicaManager(1, self.logs, cache, lambda _topic: {"segment.bytes": "8192"}, LogConfig())
        self.manager.alter_log_dirs_manager.step_bytes = step_bytes
        self.produced = 0

    def make_leader(self, topic: str = TP[0], leader_epoch: int = 1) -> None:
        state = {"partition_index": 0, "leader": 1, "leader_epoch": leader_epoch, "isr": [1], "replicas": [1],
                 "partition_epoch": leader_epoch, "controller_epoch": 1}
        answer = self.manager.become_leader_or_follower({"controller_id": 1, "controller_epoch": 1, "topic_states": [
            {"topic_name": topic, "topic_id": None, "partition_states": [state]}]})
        assert answer["topics"][0]["partition_errors"][0]["error_code"] == Errors.NONE

    def produce(self, count: int = 1, topic: str = TP[0]) -> None:
        for _ in range(count):
            batch = producer_batch([b"value-%05d-" % self.produced + os.urandom(200)] * 3)
            assert self.manager.append_to_partition(topic, 0, memoryview(batch), 1).error == Errors.NONE
            self.produced += 1

    def step(self) -> StepResult:
        return self.manager.alter_log_dirs_manager.step(TP)

    def current(self):
        return self.logs.get_log(*TP)


def make_broker_in_a(root, **kw) -> Broker:
    """The partition's log is created in dir a (made its preferred dir first)."""
    broker = Broker(root, **kw)
    assert broker.manager.alter_replica_log_dir(*TP, broker.dirs[0]) == Errors.REPLICA_NOT_AVAILABLE
    broker.make_leader()
    assert broker.current().parent_dir == broker.dirs[0]
    return broker


def test_the_moved_log_is_byte_identical_and_takes_produce_during_the_move(tmp_path):
    broker = make_broker_in_a(tmp_path)
    a, b = broker.dirs
    broker.produce(60)
    old = broker.current()
    assert old.number_of_segments > 3
    assert broker.manager.alter_replica_log_dir(*TP, b) == Errors.NONE  # no event loop: stepped here
    future = broker.logs.get_future_log(*TP)
    assert future.parent_dir == b and os.path.basename(future.directory).endswith("-future")
    assert broker.manager.alter_replica_log_dir(*TP, b) == Errors.NONE  # already moving there

    results = []
    for _ in range(5):
        results.append(broker.step())
        broker.produce(2)  # producers go on during the move
    assert results == [StepResult.COPIED] * 5
    [described] = [t for t in _describe_dir(broker.logs, b, None)["topics"] if t["name"] == "moving"]
    [entry] = described["partitions"]
    assert entry["is_future_key"] and 0 < entry["partition_size"] < old.size
    assert entry["offset_lag"] == old.log_end_offset - future.log_end_offset > 0
    assert [p["is_future_key"] for t in _describe_dir(broker.logs, a, None)["topics"] for p in t["partitions"]] == [False]

    while (result := broker.step()) is StepResult.COPIED:
        pass
    assert result is StepResult.REPLACED
    moved = broker.current()
    assert moved is future and moved.parent_dir == b and os.path.basename(moved.directory) == "moving-0"
    assert broker.manager.get_partition(*TP).log is moved
    assert log_bytes(moved) == log_bytes(old)  # the old files stay readable until removed
    assert os.path.basename(old.directory).endswith("-delete") and old.parent_dir == a
    assert broker.logs.get_future_log(*TP) is None
    assert (moved.log_end_offset, moved.high_watermark, moved.log_start_offset) == \
        (old.log_end_offset, old.high_watermark, old.log_start_offset)
    assert moved.leader_epoch_cache.entries == old.leader_epoch_cache.entries

    broker.produce(1)  # served from the new dir
    assert len(values(moved)) == 3 * broker.produced
    assert broker.manager.alter_replica_log_dir(*TP, b) == Errors.NONE  # there now: nothing to do
    assert broker.logs.get_future_log(*TP) is None
    broker.logs.delete_due_logs(now=2**62)
    assert not os.path.exists(old.directory)
    broker.logs.close()


def test_the_future_log_follows_truncation_and_the_log_start(tmp_path):
    broker = make_broker_in_a(tmp_path)
    _, b = broker.dirs
    broker.produce(40)
    assert broker.manager.alter_replica_log_dir(*TP, b) == Errors.NONE
    for _ in range(8):
        assert broker.step() is StepResult.COPIED
    current, future = broker.current(), broker.logs.get_future_log(*TP)
    assert future.log_end_offset > 30
    current.truncate_to(30)  # as a follower diverging from a new leader would
    current.append_as_leader(memoryview(producer_batch([b"new leader's"] * 2)), leader_epoch=7)
    assert broker.manager.delete_records(*TP, 12) == (Errors.NONE, 12)
    while (result := broker.step()) is StepResult.COPIED:
        pass
    assert result is StepResult.REPLACED
    moved = broker.current()
    assert log_bytes(moved) == log_bytes(current)
    assert moved.log_start_offset == current.log_start_offset == 12
    assert moved.leader_epoch_cache.entries == current.leader_epoch_cache.entries
    broker.logs.close()


def on_loop(test):
    @functools.wraps(test)
    def run(*args, **kwargs) -> None:
        asyncio.run(asyncio.wait_for(test(*args, **kwargs), 30))
    return run


@pytest.mark.parametrize("clean", [True, False])
@on_loop
async def test_a_restart_mid_move_resumes_from_the_future_dir(tmp_path, clean):
    broker = make_broker_in_a(tmp_path)
    a, b = broker.dirs
    broker.produce(50)
    expected = log_bytes(broker.current())
    assert broker.manager.alter_replica_log_dir(*TP, b) == Errors.NONE
    broker.manager.alter_log_dirs_manager.remove_fetcher_for_partitions([TP])  # stepped by hand below
    for _ in range(4):
        assert broker.step() is StepResult.COPIED
    future_dir = broker.logs.get_future_log(*TP).directory
    await broker.manager.close_alter_log_dirs_manager()
    broker.logs.close()
    if not clean:  # as after a crash: both logs are recovered from their files
        for log_dir in (a, b):
            os.remove(os.path.join(log_dir, CLEAN_SHUTDOWN_FILE))

    restarted = Broker(tmp_path)
    future = restarted.logs.get_future_log(*TP)
    assert future is not None and future.directory == future_dir and 0 < future.log_end_offset < 150
    assert restarted.current().parent_dir == a
    restarted.make_leader(leader_epoch=2)  # the move resumes with the partition's LeaderAndIsr
    await eventually_async(lambda: restarted.current().parent_dir == b, what="the resumed move")
    assert log_bytes(restarted.current()) == expected
    assert not os.path.exists(future_dir)
    restarted.logs.close()


def test_a_destination_dir_failing_mid_move_abandons_the_future_log(tmp_path):
    broker = make_broker_in_a(tmp_path)
    a, b = broker.dirs
    broker.produce(30)
    assert broker.manager.alter_replica_log_dir(*TP, b) == Errors.NONE
    assert broker.step() is StepResult.COPIED
    with FailingDisk(b, errno.EIO):
        assert broker.step() is StepResult.STOPPED
    assert broker.logs.is_offline(b)
    broker.manager.handle_log_dir_failure(b)  # what the LogDirFailureHandler does
    assert broker.logs.get_future_log(*TP) is None
    assert broker.manager.get_partition(*TP) is not None and TP not in broker.manager.offline_partitions
    broker.produce(2)  # the current replica keeps serving
    assert broker.current().parent_dir == a and len(values(broker.current())) == 3 * 32
    assert broker.manager.alter_replica_log_dir(*TP, b) == Errors.KAFKA_STORAGE_ERROR
    broker.logs.close()


def test_redirecting_a_move_and_the_preferred_dir_of_a_partition_not_hosted(tmp_path):
    broker = make_broker_in_a(tmp_path)
    a, b = broker.dirs
    broker.produce(10)
    assert broker.manager.alter_replica_log_dir(*TP, b) == Errors.NONE
    future = broker.logs.get_future_log(*TP)
    assert broker.step() is StepResult.COPIED
    assert broker.manager.alter_replica_log_dir(*TP, a) == Errors.NONE  # back where it is: move cancelled
    assert broker.logs.get_future_log(*TP) is None and future.directory.endswith("-delete")
    assert broker.step() is StepResult.STOPPED
    assert broker.current().parent_dir == a

    assert broker.manager.alter_replica_log_dir("later", 0, b) == Errors.REPLICA_NOT_AVAILABLE
    broker.make_leader("later")
    assert broker.logs.log_dir_of("later", 0) == b
    assert broker.manager.alter_replica_log_dir(*TP, "/not/a/log/dir") == Errors.LOG_DIR_NOT_FOUND
    assert broker.manager.alter_replica_log_dir("t" * 220, 0, b) == Errors.INVALID_TOPIC_EXCEPTION
    broker.logs.close()


def test_a_current_log_starting_inside_a_batch_is_copied_from_that_batch(tmp_path):
    """DeleteRecords left the log start inside a batch: the future log starts at that batch's
    base offset and takes the same log start (Kafka's follower does the same)."""
    broker = make_broker_in_a(tmp_path)
    _, b = broker.dirs
    broker.produce(20)  # batches of 3 records
    assert broker.manager.delete_records(*TP, 31) == (Errors.NONE, 31)
    current = broker.current()
    assert broker.manager.alter_replica_log_dir(*TP, b) == Errors.NONE
    while (result := broker.step()) is StepResult.COPIED:
        pass
    assert result is StepResult.REPLACED
    moved = broker.current()
    assert moved.log_start_offset == 31 and moved.log_segments()[0].base_offset == 30
    copied = [(batch.base_offset, [r.value for r in records]) for batch, records in read_batches(log_bytes(moved))]
    original = [(batch.base_offset, [r.value for r in records]) for batch, records in read_batches(log_bytes(current))]
    assert copied == [entry for entry in original if entry[0] >= 30] and copied[-1][0] == 57
    broker.logs.close()


def test_transactions_move_with_the_replica(tmp_path):
    """The aborted transactions' index, the open transaction (the last stable offset) and the
    producers' sequences are the same in the moved log: the batches are appended as a follower
    appends them, so its producer state is rebuilt from them."""
    broker = make_broker_in_a(tmp_path)
    _, b = broker.dirs
    current = broker.current()

    def txn_batch(pid: int, seq: int) -> memoryview:
        return memoryview(producer_batch([b"t%d-%d" % (pid, seq)] * 2, producer_id=pid, producer_epoch=0,
                                         base_sequence=seq, transactional=True))

    def marker(pid: int, control: ControlRecordType) -> memoryview:
        return memoryview(build_control_batch(control, pid, 0, 0, timestamp=1_700_000_000_000))

    current.append_as_leader(txn_batch(7, 0), leader_epoch=1)
    broker.produce(10)
    current.append_as_leader(marker(7, ControlRecordType.ABORT), leader_epoch=1, origin=AppendOrigin.COORDINATOR)
    current.append_as_leader(txn_batch(8, 0), leader_epoch=1)  # still open at the move
    broker.produce(10)
    current.update_high_watermark(current.log_end_offset)
    assert broker.manager.alter_replica_log_dir(*TP, b) == Errors.NONE
    while (result := broker.step()) is StepResult.COPIED:
        pass
    assert result is StepResult.REPLACED
    moved = broker.current()
    end = moved.log_end_offset
    assert moved.collect_aborted_transactions(0, end) == current.collect_aborted_transactions(0, end) != []
    assert moved.last_stable_offset == current.last_stable_offset < end
    assert moved.last_records_of_active_producers() == current.last_records_of_active_producers()
    moved.append_as_leader(txn_batch(8, 2), leader_epoch=1)  # the next sequence is accepted as before
    broker.logs.close()


@on_loop
async def test_the_log_dir_failure_handler_ends_a_running_move_and_the_replica_serves(tmp_path):
    """The wiring as the server runs it: the move's task and the LogDirFailureHandler's."""
    broker = make_broker_in_a(tmp_path)
    a, b = broker.dirs
    notified: list[str] = []
    handler = asyncio.get_running_loop().create_task(broker.manager.run_log_dir_failure_handler(
        lambda: notified.append("log dir event"), notified.append))
    broker.produce(30)
    assert broker.manager.alter_replica_log_dir(*TP, b) == Errors.NONE
    assert broker.manager.alter_log_dirs_manager.is_moving(TP)
    with FailingDisk(b, errno.ENOSPC):
        await eventually_async(lambda: notified == ["log dir event"], what="the failed dir to be handled")
    assert not broker.manager.alter_log_dirs_manager.is_moving(TP)
    assert broker.logs.get_future_log(*TP) is None and broker.logs.is_offline(b)
    broker.produce(1)
    assert broker.current().parent_dir == a and len(values(broker.current())) == 3 * 31
    handler.cancel()
    broker.logs.close()
