"""Restarts of a LogManager on real files and of a real broker: after a clean shutdown the loader
must trust the indexes it wrote (no warning, no rebuild, restart after restart), while an index
that truly does not fit its segment is still found and rebuilt (issue 16, bug 9)."""

from __future__ import annotations

import logging
import os
import struct

import pytest

from kbroker.log.config import LogConfig
from kbroker.log.log_manager import LogManager
from kbroker.log.unified_log import UnifiedLog
from kbroker.testing.batches import producer_batch
from kbroker.testing.raw_client import NONE, RawClient, create_topic, produce, read_partition
from kbroker.testing.records import build_batch, partition_dir

CLUSTER = "kbroker-test-cluster-1"
T0 = 1_700_000_000_000
# Small segments and index intervals: the log has rolled segments, and the active one has offset
# index entries followed by batches the offset index does not cover (the last time index entry,
# written at close, names one of those).
CONFIG = LogConfig(segment_bytes=6000, index_interval_bytes=2000)


def manager(log_dir) -> LogManager:
    return LogManager([str(log_dir)], cluster_id=CLUSTER, broker_id=1, default_config=CONFIG)


def produce_and_consume(lm: LogManager) -> UnifiedLog:
    unified_log = lm.get_or_create_log("orders", 0, topic_id="AAAAAAAAAAAAAAAAAAAAAQ")
    for n in range(40):
        # Increasing timestamps, so the final time index entry names the last batch's offset.
        unified_log.append_as_leader(producer_batch([b"v" * 100] * 2, timestamp=T0 + n), 0, now=T0)
    unified_log.update_high_watermark(unified_log.log_end_offset)
    for offset in range(0, unified_log.log_end_offset, 2):  # a consumer reading batch by batch
        region = unified_log.read(offset, 300).records
        assert region is not None and region.read_bytes()
    return unified_log


def index_files(partition_dir) -> dict[str, bytes]:
    contents = {}
    for name in sorted(os.listdir(partition_dir)):
        if name.endswith((".index", ".timeindex")):
            with open(os.path.join(partition_dir, name), "rb") as file:
                contents[name] = file.read()
    return contents


def restart(log_dir, caplog) -> list[str]:
    """Open and cleanly close the manager; the warnings the log package logged meanwhile."""
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="kbroker.log"):
        lm = manager(log_dir)
        assert lm.had_clean_shutdown[str(log_dir)]
        reopened = lm.get_log("orders", 0)
        assert reopened is not None and reopened.log_end_offset == 80
        lm.close()
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_restarts_after_a_clean_shutdown_rebuild_no_index(tmp_path, caplog):
    log_dir = tmp_path / "data"
    lm = manager(log_dir)
    unified_log = produce_and_consume(lm)
    partition_dir = unified_log.directory
    assert len(unified_log.log_segments()) >= 2
    lm.close()
    written = index_files(partition_dir)
    for attempt in (1, 2):
        assert restart(log_dir, caplog) == [], f"restart {attempt} warned"
        assert index_files(partition_dir) == written, f"restart {attempt} rewrote an index"


def append_time_index_entry(path: str, timestamp: int, relative_offset: int) -> None:
    with open(path, "ab") as file:
        file.write(struct.pack(">qi", timestamp, relative_offset))


@pytest.mark.parametrize(
    ("describe", "timestamp", "relative_offset"),
    [
        ("an offset past the end of the segment", T0 + 10_000, 5_000),
        ("a timestamp older than the first entry", 0, 0),
    ],
)
def test_a_corrupt_active_time_index_is_still_rebuilt(tmp_path, caplog, describe, timestamp, relative_offset):
    log_dir = tmp_path / "data"
    lm = manager(log_dir)
    unified_log = produce_and_consume(lm)
    partition_dir = unified_log.directory
    active = unified_log.log_segments()[-1]
    lm.close()
    written = index_files(partition_dir)
    time_index = os.path.basename(active.time_index.path)
    append_time_index_entry(active.time_index.path, timestamp, relative_offset)
    warnings = restart(log_dir, caplog)
    assert any("time index" in message for message in warnings), describe
    assert index_files(partition_dir)[time_index] == written[time_index], describe
    assert restart(log_dir, caplog) == []


def test_a_broker_restarted_twice_after_produce_and_consume_rebuilds_no_index(broker_factory):
    kbroker = broker_factory("log.segment.bytes=8000", "log.index.interval.bytes=2000")
    create_topic(kbroker.port, "restarted")
    with RawClient(kbroker.port) as client:
        for n in range(60):
            batch = build_batch([b"v" * 100] * 2, timestamps=[T0 + n, T0 + n])
            assert produce(client, "restarted", 0, batch)["error_code"] == NONE
    assert len(read_partition(kbroker.port, "restarted", 0)[1]) == 120
    kbroker.stop()
    written = index_files(partition_dir(kbroker.log_dir, "restarted", 0))
    for attempt in (1, 2):
        runs_before = kbroker.output().count("=== starting")
        kbroker.start()
        assert len(read_partition(kbroker.port, "restarted", 0)[1]) == 120
        assert kbroker.stop() == 0
        this_run = kbroker.output().split("=== starting")[runs_before + 1 :]
        warnings = [line for line in "".join(this_run).splitlines() if " WARNING " in line]
        assert warnings == [], f"restart {attempt} warned"
        assert index_files(partition_dir(kbroker.log_dir, "restarted", 0)) == written, attempt
