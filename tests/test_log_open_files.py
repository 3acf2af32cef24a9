"""OPEN_FILES (kbroker/log/open_files.py): segment files opened on first use, at most `capacity`
held open at once, reopened after an eviction without losing or tearing anything: reads, appends,
flushes, fetch regions in flight, clean restarts and kill -9 recovery, over real files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from kbroker.log.config import LogConfig
from kbroker.log.log_manager import LogManager
from kbroker.log.open_files import OPEN_FILES
from kbroker.testing.batches import producer_batch, read_batches

CLUSTER = "kbroker-open-files"
CAPACITY = 16
PARTITIONS = 60


@pytest.fixture
def small_capacity():
    saved = OPEN_FILES.capacity
    OPEN_FILES.set_capacity(CAPACITY)
    yield
    OPEN_FILES.set_capacity(saved)


def manager(log_dir) -> LogManager:
    return LogManager([str(log_dir)], cluster_id=CLUSTER, broker_id=1,
                      default_config=LogConfig(segment_bytes=4096, index_interval_bytes=256))


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def values_of(unified_log) -> list[bytes]:
    data = b"".join(segment.read_bytes(0, segment.size) for segment in unified_log.log_segments())
    return [record.value for _batch, records in read_batches(data) for record in records]


def fill(lm: LogManager, rounds: int) -> dict[int, list[bytes]]:
    """`rounds` batches into each of PARTITIONS partitions, round robin (every append evicts)."""
    written: dict[int, list[bytes]] = {p: [] for p in range(PARTITIONS)}
    for n in range(rounds):
        for p in range(PARTITIONS):
            value = b"p%d-n%d-" % (p, n) + b"x" * 300
            lm.get_or_create_log("t", p).append_as_leader(memoryview(producer_batch([value])), 0)
            written[p].append(value)
    return written


@pytest.mark.usefixtures("small_capacity")
def test_many_partitions_hold_a_bounded_number_of_descriptors_and_read_back_after_reopening(tmp_path):
    before = open_descriptors()
    lm = manager(tmp_path)
    written = fill(lm, rounds=20)  # segments of 4 KiB: each partition rolls twice, indexes get entries
    assert all(lm.get_log("t", p).number_of_segments >= 2 for p in range(PARTITIONS))
    assert open_descriptors() - before <= CAPACITY + 2  # the dir's .lock and the odd checkpoint
    assert OPEN_FILES.evictions > 0
    assert all(values_of(lm.get_log("t", p)) == written[p] for p in range(PARTITIONS))
    for p in range(PARTITIONS):  # reads by offset go through the (reopened) indexes
        unified_log = lm.get_log("t", p)
        region = unified_log.read(13, 100_000).records  # from one segment: a prefix of the rest
        read = [r.value for _b, rs in read_batches(region.read_bytes()) for r in rs]
        assert read and read == written[p][13:13 + len(read)]
        unified_log.flush(unified_log.log_end_offset)  # fsync through a reopened descriptor
        assert unified_log.recovery_point == 20
    lm.close()
    assert open_descriptors() <= before  # (earlier tests may have left descriptors for the collector)
    again = manager(tmp_path)
    assert again.had_clean_shutdown[str(tmp_path)]
    assert open_descriptors() - before <= CAPACITY + 2
    assert all(values_of(again.get_log("t", p)) == written[p] for p in range(PARTITIONS))
    assert all(again.get_log("t", p).log_end_offset == 20 for p in range(PARTITIONS))
    again.close()


@pytest.mark.usefixtures("small_capacity")
def test_a_fetch_region_reads_its_file_after_the_segment_was_evicted(tmp_path):
    lm = manager(tmp_path)
    fill(lm, rounds=1)
    first = lm.get_log("t", 0)
    region = first.read(0, 100_000).records
    fill(lm, rounds=1)  # every other partition's files since: partition 0's are evicted
    assert not first.log_segments()[0]._log.is_open
    assert [r.value for _b, rs in read_batches(region.read_bytes()) for r in rs] == [b"p0-n0-" + b"x" * 300]
    descriptor = region.fileno()
    del region  # the last holder: its descriptor closes now
    assert not os.path.exists(f"/proc/self/fd/{descriptor}") or os.readlink(f"/proc/self/fd/{descriptor}") != \
        first.log_segments()[0].log_path
    lm.close()


CHILD = textwrap.dedent(
    """
    from kbroker.log.config import LogConfig
    from kbroker.log.log_manager import LogManager
    from kbroker.log.open_files import OPEN_FILES
    from kbroker.testing.batches import producer_batch

    OPEN_FILES.set_capacity(8)
    lm = LogManager([{log_dir!r}], cluster_id="crash", broker_id=0,
                    default_config=LogConfig(segment_bytes=20_000, index_interval_bytes=1024))
    logs = [lm.get_or_create_log("crash", p) for p in range(30)]
    n = 0
    while True:
        log = logs[n % 30]
        info = log.append_as_leader(producer_batch([b"%d" % n + b"." * 500]), 0)
        print(n % 30, info.base_offset, n, flush=True)
        n += 1
    """
)


def test_kill_9_with_evicted_files_loses_no_acknowledged_record(tmp_path):
    log_dir = str(tmp_path / "data")
    child = subprocess.Popen([sys.executable, "-c", CHILD.format(log_dir=log_dir)], stdout=subprocess.PIPE, text=True)
    acknowledged = []
    try:
        for line in child.stdout:
            acknowledged.append(tuple(int(x) for x in line.split()))
            if len(acknowledged) >= 3000:
                break
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
    lm = LogManager([log_dir], cluster_id="crash", broker_id=0)
    assert not lm.had_clean_shutdown[log_dir]
    try:
        for partition, offset, n in acknowledged:
            unified_log = lm.get_log("crash", partition)
            assert unified_log.number_of_segments > 1
            region = unified_log.read(offset, 1).records  # min one batch: the acknowledged one
            ((_batch, records),) = read_batches(region.read_bytes())[:1]
            assert records[0].offset == offset and records[0].value == b"%d" % n + b"." * 500
    finally:
        lm.close()
