"""scripts/bench's partitions-1k scenario (scripts/bench_partitions.py): its record layout and
the check that every record was read back exactly once (pure functions), and one tiny run
against a real kbroker with real confluent-kafka producers and a real consumer group, checked
and compared with produce-1k of the same run. No timing is asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
sys.path.insert(0, str(SCRIPTS))

from bench_partitions import batches_in, expected_counts, log_batches, shares, tiling_problems  # noqa: E402

from kbroker.testing.records import build_batch  # noqa: E402


def test_records_are_spread_over_every_partition_and_shared_between_producers():
    assert expected_counts(10, 4) == [3, 3, 2, 2]
    assert sum(expected_counts(300_000, 1000)) == 300_000 and set(expected_counts(300_000, 1000)) == {300}
    assert shares(25, 10) == [(0, 3), (3, 3), (6, 3), (9, 3), (12, 3), (15, 2), (17, 2), (19, 2), (21, 2), (23, 2)]


def test_runs_must_tile_each_partition_exactly_once():
    expected = [3, 2, 0]
    assert tiling_problems([[0, 0, 1], [0, 2, 2], [1, 0, 1]], expected) is None  # two consumers shared partition 0
    assert "partition 0" in tiling_problems([[0, 0, 1], [0, 1, 2], [1, 0, 1]], expected)  # offset 1 read twice
    assert "partition 0" in tiling_problems([[0, 0, 0], [0, 2, 2], [1, 0, 1]], expected)  # offset 1 never read
    assert "partition 1" in tiling_problems([[0, 0, 2], [1, 0, 2]], expected)  # past the end
    assert "partition 1" in tiling_problems([[0, 0, 2]], expected)  # nothing read
    assert "partition 2: read offsets [(0, 0)], expected 0 from offset 0" in tiling_problems(
        [[0, 0, 2], [1, 0, 1], [2, 0, 0]], expected)
    assert "partition 3, which does not exist" in tiling_problems([[0, 0, 2], [1, 0, 1], [3, 0, 0]], expected)


def test_batches_are_counted_from_the_segments_of_the_topic_only(tmp_path):
    """The broker-side count of partitions per request: batch headers of each .log segment, up
    to zeroes past the last batch, in the directories of exactly that topic (not a topic whose
    name extends it, as partitions-1k-java's extends partitions-1k's)."""
    one, two = build_batch([b"x" * 100] * 3), build_batch([b"y"])
    for name, segments in {"t-0": [one + two, two], "t-1": [one + bytes(64)], "t-java-0": [one]}.items():
        (tmp_path / "data" / name).mkdir(parents=True)
        for i, content in enumerate(segments):
            (tmp_path / "data" / name / f"{i:020d}.log").write_bytes(content)
    assert batches_in(tmp_path / "data" / "t-0" / f"{0:020d}.log") == 2
    assert batches_in(tmp_path / "data" / "t-1" / f"{0:020d}.log") == 1
    assert log_batches(str(tmp_path), "t", 2) == 4
    assert log_batches(str(tmp_path), "t", 3) is None  # a partition missing: no figure rather than a wrong one
    assert log_batches(None, "t", 2) is None  # --bootstrap: no data dir


@pytest.mark.timeout(300)
@pytest.mark.long_running
def test_partitions_1k_runs_verified_with_its_figures_and_the_ratio_to_produce_1k():
    done = subprocess.run(
        [str(SCRIPTS / "bench"), "--scale", "0.0005", "--runs", "1", "--loopback-bytes", str(8 * 1024 * 1024),
         "--scenarios", "produce-1k,partitions-1k"],
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    results = {line["scenario"]: line for line in lines if line["kind"] == "result"}
    result = results["partitions-1k"]
    assert result["verified"] and not result["errors"], result
    # The minimum at any scale: a record for each of the 1,000 partitions.
    assert (result["records"], result["partitions"], result["producers"], result["consumers"]) == (1000, 1000, 10, 4)
    assert result["mb_per_s"] > 0 and result["consume_mb_per_s"] > 0 and result["produce_requests"] > 0
    assert result["produce_rtt_p99_ms"] > 0 and result["broker_cpu_s_per_mb"] is not None
    assert result["vs_produce_1k"] == pytest.approx(result["mb_per_s"] / results["produce-1k"]["mb_per_s"])
    assert result["log_batches"] == 1000 and result["partitions_per_request"] == 1000 / result["produce_requests"]
    table = [line for line in done.stdout.splitlines() if "1,000 partitions, 10 confluent-kafka producers, 4 consumers" in line]
    assert len(table) == 1 and "x produce-1k's" in table[0]
