"""scripts/chaos_checker.py on made-up histories: each violation it exists to find is found, and
a clean history passes. (compat-tests/test_chaos.py runs the whole harness against a cluster.)"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from chaos_checker import (  # noqa: E402
    Fault,
    batches,
    check_group,
    check_records,
    check_transactions,
    check_txn_offsets,
    replica_divergence,
    unavailability,
)
from chaos_workload import Ack, Commit, Consumed, TxnRecord, parse_value, record_value  # noqa: E402

from kbroker.testing.batches import producer_batch  # noqa: E402


def log_of(*partitions: list[tuple[str, int]]) -> dict[int, list[Consumed]]:
    return {p: [Consumed(p, offset, record_value(*rid)) for offset, rid in enumerate(ids)]
            for p, ids in enumerate(partitions)}


def acks_for(log: dict[int, list[Consumed]]) -> list[Ack]:
    acks = []
    for p, records in log.items():
        for r in records:
            parsed = parse_value(r.value)
            assert parsed is not None
            acks.append(Ack(parsed[0], parsed[1], p, r.offset, float(r.offset)))
    return acks


def test_clean_history_passes():
    log = log_of([("a", 0), ("b", 0), ("a", 2)], [("a", 1), ("b", 1)])
    counts, violations = check_records(acks_for(log), log)
    assert violations == []
    assert counts["acked"] == counts["in_log"] == 5 and counts["lost"] == counts["duplicated"] == 0


def test_lost_misplaced_duplicated_and_reordered_are_counted():
    full = log_of([("a", 0), ("a", 2), ("a", 4)])
    acks = acks_for(full)
    log = log_of([("a", 0), ("a", 4), ("a", 2), ("a", 4)])  # 2 after 4, 4 twice: offset 1 holds 4
    counts, violations = check_records([*acks, Ack("a", 6, 0, 9, 0.0)], log)
    assert counts["lost"] == 1  # a/6 never reached the log
    assert counts["misplaced"] == 2  # a/2 acked at 1, a/4 acked at 2
    assert counts["duplicated"] == 1 and counts["reordered"] == 1  # 2 after 4
    assert {v.split(":")[0] for v in violations} == {"lost", "misplaced", "duplicated", "reordered"}
    (duplicate,) = [v for v in violations if v.startswith("duplicated")]
    assert "('a', 4, 0, [1, 3])" in duplicate  # producer, seq, partition, the offsets of its copies


def test_an_ack_without_an_offset_is_checked_for_presence_only():
    log = log_of([("a", 0)])
    counts, violations = check_records([Ack("a", 0, 0, None, 0.0)], log)
    assert violations == [] and counts["acked_without_offset"] == 1
    counts, violations = check_records([Ack("a", 1, 0, None, 0.0)], log)
    assert counts["lost"] == 1 and violations


def test_group_checks():
    log = log_of([("a", 0), ("a", 1), ("a", 2)])
    consumed = list(log[0])
    ok_counts, ok = check_group(consumed, [Commit(0, 3, 1.0)], {0: 3}, log)
    assert ok == [] and ok_counts["commits_acked"] == 1
    _, lost = check_group(consumed, [Commit(0, 3, 1.0)], {0: 2}, log)
    assert lost and lost[0].startswith("commit_lost")
    _, skipped = check_group(consumed[:1] + consumed[2:], [], {0: 3}, log)
    assert [v.split(":")[0] for v in skipped] == ["skipped_below_commit"]
    _, beyond = check_group(consumed[:2], [], {0: 3}, log)
    assert [v.split(":")[0] for v in beyond] == ["committed_beyond_consumed", "skipped_below_commit"]
    _, mismatch = check_group([Consumed(0, 1, b"x/9")], [], {}, log)
    assert [v.split(":")[0] for v in mismatch] == ["consumed_not_in_log"]


def stored(*batch_sizes: int, patch: int | None = None) -> bytes:
    """Batches as a log stores them: base offsets patched in, one after the other."""
    out, offset = bytearray(), 0
    for index, size in enumerate(batch_sizes):
        batch = bytearray(producer_batch([b"v%d" % i for i in range(size)]))
        batch[0:8] = offset.to_bytes(8, "big")
        if patch == index:
            batch[-1] ^= 0xFF
        out += batch
        offset += size
    return bytes(out)


def test_replica_divergence_below_the_high_watermark():
    leader = stored(2, 3, 1)
    assert [(b, last) for b, last, _ in batches(leader)] == [(0, 1), (2, 4), (5, 5)]
    assert replica_divergence({1: leader, 2: stored(2, 3, 1), 3: stored(2, 3) + b"\0\0\0"}, 5) is None
    assert "end below the high watermark" in replica_divergence({1: leader, 2: stored(2)}, 5)
    assert "broker 2 differs from broker 1 at batch 1" in replica_divergence({1: leader, 2: stored(2, 3, 1, patch=1)}, 6)
    assert replica_divergence({1: leader, 2: stored(2, 3, 1, patch=2)}, 5) is None  # above the watermark


def test_unavailability_windows():
    acks = [Ack("a", i, i % 2, i, t) for i, t in enumerate([1.0, 1.1, 5.0, 9.0, 9.5])]
    (window,) = unavailability([Fault("kill-broker", "broker 1", 2.0, 4.0)], acks, 2, 0.0)
    assert window["first_ack_s"] == 3.0  # the ack at 5.0 on partition 0
    assert window["all_partitions_s"] == 7.0  # partition 1's next ack is at 9.0
    assert window["longest_gap_s"] == 7.0


def test_read_committed_isolation_is_checked():
    committed = [TxnRecord("t", 0, 0), TxnRecord("t", 1, 1), TxnRecord("t", 8, 0)]
    aborted = [TxnRecord("t", 4, 0), TxnRecord("t", 5, 1)]
    indeterminate = [TxnRecord("t", 12, 0)]
    clean = log_of([("t", 0), ("t", 8), ("t", 12)], [("t", 1)])  # the indeterminate one may be there
    counts, violations = check_transactions(committed, aborted, indeterminate, clean)
    assert violations == [] and counts["txn_in_log"] == 4 and counts["txn_indeterminate"] == 1
    broken = log_of([("t", 8), ("t", 0), ("t", 4), ("t", 12), ("t", 12)], [])  # 1 missing, 4 visible
    counts, violations = check_transactions(committed, aborted, indeterminate, broken)
    assert (counts["txn_missing"], counts["txn_aborted_visible"], counts["txn_duplicated"],
            counts["txn_reordered"]) == (1, 1, 1, 2)
    assert {v.split(":")[0] for v in violations} == {"txn_missing", "txn_aborted_visible", "txn_duplicated",
                                                     "txn_reordered"}


def test_a_transactional_groups_offset_is_its_last_committed_transactions():
    marks = {"committed": [1, 2, 4], "aborted": [5], "indeterminate": []}
    assert check_txn_offsets(marks, 4) == ({"txn_offset_commits": 3, "txn_offsets_wrong": 0}, [])
    assert check_txn_offsets(marks, 5)[1][0].startswith("txn_offsets_aborted_visible")
    assert check_txn_offsets(marks, 2)[1][0].startswith("txn_offsets_lost")
    assert check_txn_offsets({**marks, "indeterminate": [6]}, 6)[1] == []  # its commit may have landed
    assert check_txn_offsets({**marks, "indeterminate": [6]}, 7)[1][0].startswith("txn_offsets_unknown")
