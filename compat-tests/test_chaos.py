"""scripts/chaos --mode ci (issue 16's fault-injection harness) against three kbroker processes
and a real ZooKeeper: every nemesis once (kills of a broker, the controller and a leader, a
SIGSTOP past the session, ZooKeeper killed, and, as root, network partitions between brokers
and between a broker and ZooKeeper, packet loss between brokers, a full tmpfs log dir and a FUSE
log dir failing with EIO), then the checker, transactional producers' read_committed isolation
included. The run must find no violation (exit 0:
nothing acknowledged lost, duplicated or reordered, no lost commit, replicas identical below
the high watermark) with thousands of records acknowledged through the faults.
tests/test_chaos_checker.py checks that the checker finds each violation it looks for."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from kbroker.testing.zookeeper import zookeeper_unavailable_reason

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
RUN_TIMEOUT_S = 900
pytestmark = [pytest.mark.timeout(RUN_TIMEOUT_S + 60), pytest.mark.long_running]
MIN_ACKED = 5000  # ~2 producers x 150 records/s for the minutes the faults take


# The duplicates under idempotent produce this run used to find now and then (seed 16: 1 in
# 35,786; a 30-minute soak, seed 646228055: 2 in 1,199,271) were librdkafka epoch bumps after an
# OUT_OF_ORDER_SEQUENCE_NUMBER that followed a NOT_ENOUGH_REPLICAS (kbroker/replica/partition.py,
# refused_for_min_isr; tests/test_replication_partition.py replays the sequence).
def test_ci_mode_finds_no_violation(tmp_path):
    reason = zookeeper_unavailable_reason()
    if reason:
        pytest.skip(reason)
    done = subprocess.run([str(SCRIPTS / "chaos"), "--mode", "ci", "--workdir", str(tmp_path / "chaos")],
                          capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-10000:]
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    (summary,) = [line for line in lines if line["kind"] == "summary"]
    assert summary["violations"] == 0 and summary["lost"] == summary["duplicated"] == summary["reordered"] == 0
    assert summary["acked"] >= MIN_ACKED and summary["consumed"] >= summary["acked"], summary
    assert summary["txn_committed"] > 0 and summary["txn_aborted"] > 0, summary  # the transactional workload ran
    faults = {line["nemesis"] for line in lines if line["kind"] == "fault"}
    assert {"kill-broker", "kill-controller", "kill-leader", "pause-broker", "kill-zookeeper"} <= faults
    skipped = {line["key"].removeprefix("skipped ") for line in lines if line["kind"] == "note"}
    for root_nemesis in ("partition-brokers", "partition-zookeeper", "isolate-broker", "packet-loss", "disk-full",
                         "io-error"):  # run, or skipped with the reason
        assert (root_nemesis in faults) != (root_nemesis in skipped), (root_nemesis, lines)
