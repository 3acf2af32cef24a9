"""Smoke run of scripts/bench_offload.py (docs/MULTICORE.md's measurements) at a tiny scale: a
kbroker with kbroker.append.offload.threads off and one with it on take the compression.type
rewrite scenario, verified by scripts/bench, and the per-thread CPU split is reported. No
timing is asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_offload.py"
pytestmark = [pytest.mark.timeout(300), pytest.mark.long_running]


def test_offload_off_and_on_both_verify_the_rewrite_scenario_and_split_the_cpu():
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--scenarios", "produce-1k-zstd-to-lz4", "--scale", "0.0005", "--min-bytes", "0"],
        capture_output=True, text=True, timeout=240)

    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(row["scenario"], row["variant"]) for row in rows] == [
        ("produce-1k-zstd-to-lz4", "off"), ("produce-1k-zstd-to-lz4", "on-2")]
    for row in rows:
        assert row["verified"] and row["mb_per_s"] > 0
        assert row["loop_cpu_s"] >= 0 and row["other_threads_cpu_s"] >= 0
    assert "loop CPU s" in done.stderr  # the table
