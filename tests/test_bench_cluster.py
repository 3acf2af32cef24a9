"""scripts/bench_cluster.py's replication figures on made-up data directories: the bytes of a
topic's segment files per broker, and CPU seconds per GB of them (tests/test_bench_smoke.py runs
them on a real cluster)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from bench_broker import RunningBroker  # noqa: E402
from bench_cluster import RunningCluster, log_bytes_of  # noqa: E402


def segment(data_dir: Path, partition_dir: str, name: str, size: int) -> None:
    (data_dir / partition_dir).mkdir(exist_ok=True)
    (data_dir / partition_dir / name).write_bytes(b"x" * size)


def test_log_bytes_count_every_partitions_log_segments_of_that_topic_only(tmp_path):
    segment(tmp_path, "t-0", "00000000000000000000.log", 1000)
    segment(tmp_path, "t-0", "00000000000000000042.log", 500)
    segment(tmp_path, "t-0", "00000000000000000000.index", 4096)  # indexes are not records
    segment(tmp_path, "t-1", "00000000000000000000.log", 250)
    segment(tmp_path, "t-x-0", "00000000000000000000.log", 7)  # another topic named with t as a prefix
    segment(tmp_path, "t-0.0123abcd-delete", "00000000000000000000.log", 9)  # a deleted one
    (tmp_path / "meta.properties").write_text("broker.id=1\n")
    assert log_bytes_of(str(tmp_path), "t") == 1750
    assert log_bytes_of(str(tmp_path), "t-x") == 7
    assert log_bytes_of(str(tmp_path), "absent") == 0
    assert log_bytes_of(None, "t") is None


def test_cpu_per_replicated_gb_per_broker(tmp_path):
    brokers = []
    for broker_id, size in ((1, 2_000_000), (2, 2_000_000), (3, 0)):
        data_dir = tmp_path / f"b{broker_id}"
        data_dir.mkdir()
        if size:
            segment(data_dir, "t-0", "00000000000000000000.log", size)
        brokers.append(RunningBroker(f"b{broker_id}", "127.0.0.1:1", None, str(data_dir), None, None))
    cluster = RunningCluster("x3", None, brokers, 0.0)  # type: ignore[arg-type]  # no ZooKeeper needed here
    figures = cluster.replication_figures("t", [0.5, 0.25, 0.1])
    assert figures["replicated_bytes_each"] == [2_000_000, 2_000_000, 0]
    assert figures["broker_cpu_s_per_replicated_gb_each"] == [pytest.approx(250.0), pytest.approx(125.0), None]
    assert cluster.replication_figures("t", None)["broker_cpu_s_per_replicated_gb_each"] == [None, None, None]
