"""LogManager over real log dirs: meta.properties, locking, the clean-shutdown marker, checkpoint
files, topic deletion, loading after clean and unclean shutdowns, and a kill -9 crash test."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading

import pytest

from kbroker.log.config import LogConfig
from kbroker.log.errors import InconsistentClusterIdError, LogDirLockedError
from kbroker.log.log_manager import LogManager, read_meta_properties
from kbroker.testing.batches import batches_with_positions, producer_batch, read_batches
from kbroker.testing.waiting import eventually_async

CLUSTER = "kbroker-test-cluster-1"
T0 = 1_700_000_000_000


def manager(dirs, **kwargs) -> LogManager:
    kwargs.setdefault("cluster_id", CLUSTER)
    kwargs.setdefault("broker_id", 1)
    return LogManager([str(d) for d in dirs], **kwargs)


def read_text(path) -> str:
    with open(path, encoding="utf-8") as file:
        return file.read()


def test_meta_properties_and_other_clusters(tmp_path):
    lm = manager([tmp_path / "a"])
    lines = read_text(tmp_path / "a" / "meta.properties").splitlines()
    assert lines[0] == "#" and lines[1].startswith("#") and len(lines[1]) > 10
    assert sorted(lines[2:]) == ["broker.id=1", f"cluster.id={CLUSTER}", "version=0"]
    assert read_meta_properties([str(tmp_path / "a")])["cluster.id"] == CLUSTER
    lm.close()
    with pytest.raises(InconsistentClusterIdError):
        manager([tmp_path / "a"], cluster_id="another-cluster")
    with pytest.raises(InconsistentClusterIdError):
        manager([tmp_path / "a"], broker_id=2)
    manager([tmp_path / "a"]).close()  # the failed attempts released the lock


def test_a_second_manager_cannot_take_a_locked_dir(tmp_path):
    lm = manager([tmp_path / "a"])
    with pytest.raises(LogDirLockedError):
        manager([tmp_path / "b", tmp_path / "a"])
    lm.close()
    manager([tmp_path / "a"]).close()


def test_new_logs_spread_over_log_dirs_and_checkpoints_are_kafkas(tmp_path):
    lm = manager([tmp_path / "a", tmp_path / "b"])
    logs = [lm.get_or_create_log("events", p, topic_id="AAAAAAAAAAAAAAAAAAAAAQ") for p in range(4)]
    assert {lm.log_dir_of("events", p) for p in range(4)} == {str(tmp_path / "a"), str(tmp_path / "b")}
    assert lm.get_or_create_log("events", 0) is logs[0]
    for unified_log in logs:
        for _ in range(3):
            unified_log.append_as_leader(producer_batch([b"x"] * 2), 0)
        unified_log.update_high_watermark(unified_log.log_end_offset)
    logs[0].maybe_increment_log_start_offset(2)
    lm.checkpoint()
    a_dir = tmp_path / lm.log_dir_of("events", 0)
    assert read_text(a_dir / "log-start-offset-checkpoint") == "0\n1\nevents 0 2\n"
    hw_lines = read_text(a_dir / "replication-offset-checkpoint").splitlines()
    assert hw_lines[:2] == ["0", "2"] and all(line.endswith(" 6") for line in hw_lines[2:])
    assert (
        read_text(a_dir / "events-0" / "partition.metadata")
        == "version: 0\ntopic_id: AAAAAAAAAAAAAAAAAAAAAQ\n"
    )
    lm.close()
    assert json.loads(read_text(tmp_path / "a" / ".kafka_cleanshutdown"))["version"] == 0
    recovery = read_text(a_dir / "recovery-point-offset-checkpoint").splitlines()
    assert recovery[:2] == ["0", "2"] and sorted(recovery[2:]) == ["events 0 6", "events 2 6"]
    assert not os.path.exists(a_dir / "recovery-point-offset-checkpoint.tmp")


def test_reload_after_clean_shutdown(tmp_path):
    lm = manager([tmp_path / "a"])
    unified_log = lm.get_or_create_log("t", 0, topic_id="AAAAAAAAAAAAAAAAAAAAAQ")
    for _ in range(5):
        unified_log.append_as_leader(producer_batch([b"y"] * 3), 0)
    unified_log.update_high_watermark(9)
    unified_log.maybe_increment_log_start_offset(3)
    lm.close()
    again = manager([tmp_path / "a"])
    assert again.had_clean_shutdown[str(tmp_path / "a")]
    assert not os.path.exists(tmp_path / "a" / ".kafka_cleanshutdown")
    reloaded = again.get_log("t", 0)
    assert (reloaded.log_start_offset, reloaded.log_end_offset, reloaded.high_watermark) == (3, 15, 9)
    assert reloaded.topic_id == "AAAAAAAAAAAAAAAAAAAAAQ"
    assert reloaded.recovery_point == 15
    again.close()


def test_loading_says_when_it_recovers_and_how_long_it_took(tmp_path, caplog):
    """A recovery after an unclean shutdown runs before the broker listens and may take long: it
    is announced, and each dir's load is timed (the soak's stuck-looking restart logged nothing)."""
    lm = manager([tmp_path / "a"])
    lm.get_or_create_log("t", 0).append_as_leader(producer_batch([b"y"] * 3), 0)
    lm.close()
    with caplog.at_level(logging.INFO, logger="kbroker.log.log_manager"):
        manager([tmp_path / "a"]).close()
        clean = [r.getMessage() for r in caplog.records]
        caplog.clear()
        os.remove(tmp_path / "a" / ".kafka_cleanshutdown")  # as a kill -9 leaves it
        manager([tmp_path / "a"]).close()
        unclean = [r.getMessage() for r in caplog.records]
    directory = str(tmp_path / "a")
    assert [m for m in clean if "recovering" in m] == []
    assert any(m.startswith(f"loaded 1 logs in {directory} in ") and not m.endswith("(recovered)") for m in clean)
    assert f"recovering the logs in {directory}: no clean shutdown file, the last run did not stop cleanly" in unclean
    assert any(m.startswith(f"loaded 1 logs in {directory} in ") and m.endswith(" ms (recovered)") for m in unclean)


def test_delete_log_renames_then_removes(tmp_path):
    lm = manager([tmp_path / "a"])
    unified_log = lm.get_or_create_log("gone", 0)
    unified_log.append_as_leader(producer_batch([b"z"]), 0)
    unified_log.update_high_watermark(1)
    region = unified_log.read(0, 100).records
    assert lm.delete_log("gone", 0, now=T0)
    names = os.listdir(tmp_path / "a")
    [renamed] = [n for n in names if n.startswith("gone-0.")]
    assert renamed.endswith("-delete") and len(renamed) == len("gone-0.") + 32 + len("-delete")
    assert lm.get_log("gone", 0) is None
    assert region.read_bytes()  # an in-flight fetch can still send from the renamed files
    lm.run_retention(now=T0 + 1000)
    assert os.path.exists(tmp_path / "a" / renamed)
    lm.run_retention(now=T0 + 61_000)
    assert not os.path.exists(tmp_path / "a" / renamed)
    lm.close()


def test_leftover_delete_dirs_are_removed_at_startup(tmp_path):
    os.makedirs(tmp_path / "a" / ("old-0." + "0" * 32 + "-delete"))
    manager([tmp_path / "a"]).close()
    assert not [n for n in os.listdir(tmp_path / "a") if n.endswith("-delete")]


def test_retention_through_the_manager(tmp_path):
    config = LogConfig(segment_bytes=1000, retention_ms=1000)
    lm = manager([tmp_path / "a"], default_config=config)
    unified_log = lm.get_or_create_log("old", 0)
    for _ in range(10):
        unified_log.append_as_leader(producer_batch([b"o" * 100] * 2, timestamp=T0), 0, now=T0)
    unified_log.update_high_watermark(unified_log.log_end_offset)
    assert lm.run_retention(now=T0 + 5000) >= 3
    assert unified_log.log_start_offset == unified_log.log_segments()[0].base_offset > 0
    lm.close()


def test_flush_if_due_follows_flush_ms_and_rolled_segments(tmp_path):
    lm = manager([tmp_path / "a"], default_config=LogConfig(flush_ms=1000, segment_bytes=1000))
    unified_log = lm.get_or_create_log("f", 0)
    unified_log.append_as_leader(producer_batch([b"f"]), 0)
    assert lm.flush_if_due(now=unified_log.last_flush_ms + 10) == 0
    assert lm.flush_if_due(now=unified_log.last_flush_ms + 1000) == 1
    assert unified_log.recovery_point == 1 and unified_log.unflushed_messages == 0
    for _ in range(10):
        unified_log.append_as_leader(producer_batch([b"g" * 200]), 0)
    assert unified_log.number_of_segments > 1
    lm.flush_if_due(now=unified_log.last_flush_ms)
    assert unified_log.recovery_point == unified_log.active_segment.base_offset
    lm.close()


def rolled_log(tmp_path, name: str):
    lm = manager([tmp_path / name], default_config=LogConfig(segment_bytes=1000))
    unified_log = lm.get_or_create_log(name, 0)
    for _ in range(10):
        unified_log.append_as_leader(producer_batch([b"g" * 200]), 0)
    assert unified_log.number_of_segments > 1 and unified_log.recovery_point == 0
    return lm, unified_log


def held_fsyncs(monkeypatch) -> threading.Event:
    """os.fsync waits (in the worker thread) until the returned event is set."""
    release = threading.Event()
    real_fsync = os.fsync

    def fsync_when_released(fd: int) -> None:
        assert threading.current_thread() is not threading.main_thread(), "fsync on the event loop's thread"
        assert release.wait(10)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync_when_released)
    return release


def test_rolled_segments_are_fsynced_in_a_worker_thread_while_appends_go_on(tmp_path, monkeypatch):
    lm, unified_log = rolled_log(tmp_path, "r")
    rolled_up_to = unified_log.active_segment.base_offset

    async def scenario() -> tuple[int, int]:
        release = held_fsyncs(monkeypatch)
        assert lm.flush_if_due() == 1
        end_before = unified_log.log_end_offset
        unified_log.append_as_leader(producer_batch([b"h" * 200]), 0)  # the fsync is still running
        assert unified_log.log_end_offset == end_before + 1
        during = unified_log.recovery_point
        release.set()
        await eventually_async(lambda: unified_log.recovery_point == rolled_up_to, what="the recovery point to move")
        return during, unified_log.recovery_point

    assert asyncio.run(scenario()) == (0, rolled_up_to)
    monkeypatch.undo()
    lm.close()


def test_a_truncation_during_the_rolled_flush_keeps_the_recovery_point(tmp_path, monkeypatch):
    """Offsets the flush covered may hold new, unflushed records after a truncation."""
    lm, unified_log = rolled_log(tmp_path, "t")

    async def scenario() -> int:
        release = held_fsyncs(monkeypatch)
        assert lm.flush_if_due() == 1
        unified_log.truncate_to(2)
        for _ in range(3):
            unified_log.append_as_leader(producer_batch([b"n" * 200]), 0)
        release.set()
        # The completion runs on this loop once the worker thread's fsyncs are done.
        await eventually_async(lambda: not unified_log._rolled_flush_running, what="the rolled flush to complete")
        return unified_log.recovery_point

    assert asyncio.run(scenario()) == 0
    monkeypatch.undo()
    lm.flush_if_due()  # no loop: here and now
    assert unified_log.recovery_point == unified_log.active_segment.base_offset > 0
    lm.close()


CHILD = textwrap.dedent(
    """
    from kbroker.log.config import LogConfig
    from kbroker.log.log_manager import LogManager
    from kbroker.testing.batches import producer_batch

    lm = LogManager([{log_dir!r}], cluster_id="crash", broker_id=0,
                    default_config=LogConfig(segment_bytes=200_000, index_interval_bytes=1024))
    log = lm.get_or_create_log("crash", 0)
    sequence = log.log_end_offset
    n = 0
    while True:
        values = [b"%d-%d" % (n, i) + b"." * 500 for i in range(1 + n % 7)]
        batch = producer_batch(values, producer_id=9, producer_epoch=0, base_sequence=sequence)
        info = log.append_as_leader(batch, 0)
        sequence += len(values)
        print(info.base_offset, info.last_offset, n, flush=True)
        n += 1
    """
)


def test_kill_9_loses_no_acknowledged_batch(tmp_path):
    log_dir = str(tmp_path / "data")
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD.format(log_dir=log_dir)],
        stdout=subprocess.PIPE,
        text=True,
    )
    acknowledged = []
    try:
        for line in child.stdout:
            acknowledged.append(tuple(int(x) for x in line.split()))
            if len(acknowledged) >= 1500:
                break
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
    assert len(acknowledged) >= 1500
    lm = manager([log_dir], cluster_id="crash", broker_id=0)
    assert not lm.had_clean_shutdown[log_dir]
    unified_log = lm.get_log("crash", 0)
    assert unified_log.number_of_segments > 3
    assert unified_log.log_end_offset >= acknowledged[-1][1] + 1
    stored = {}
    for segment in unified_log.log_segments():
        for _position, batch, records in batches_with_positions(segment.log_path):
            stored[batch.base_offset] = (batch.last_offset, [r.value for r in records])
    for base, last, n in acknowledged:
        last_offset, values = stored[base]
        assert last_offset == last
        assert values == [b"%d-%d" % (n, i) + b"." * 500 for i in range(1 + n % 7)]
    # The producer's sequence continues where the log ends.
    unified_log.update_high_watermark(unified_log.log_end_offset)
    next_sequence = unified_log.log_end_offset
    info = unified_log.append_as_leader(
        producer_batch([b"after"], producer_id=9, producer_epoch=0, base_sequence=next_sequence), 0
    )
    assert info.base_offset == next_sequence
    assert read_batches(unified_log.read(info.base_offset, 1000).read_bytes())[0][1][0].value == b"after"
    lm.close()
