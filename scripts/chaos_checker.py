"""scripts/chaos's checker: plain functions from what the clients saw and what the logs hold to
counts and violations. Nothing here talks to a broker.

- `check_records`: every acknowledged record is in the final log at the offset it was acked
  with (else lost / misplaced), no id appears twice (duplicated), and each producer's records
  appear in sequence order within each partition (reordered).
- `check_transactions`: the transactional topic read with read_committed: every record of a
  committed transaction there exactly once, no record of an aborted one visible, each
  producer's records in order within a partition (an indeterminate commit may go either way,
  but never twice); `check_txn_offsets`: the offset each transactional producer's group ends
  with (send_offsets_to_transaction, one per transaction, its number) is the last committed
  transaction's (or a later one whose outcome the client never learned), never an aborted one's.
- `check_group`: the group's final committed offset of each partition is at least the last
  commit the coordinator acknowledged (else an acked commit was lost), at most the end of what
  the group consumed, every record below it was consumed by some member, and every record a
  member consumed is the record the final log holds at that offset.
- `replica_divergence`: the record batches of every replica, byte for byte, below the high
  watermark (of the workload's topic; __consumer_offsets is compacted by each replica on its
  own schedule, so its files may differ legitimately).
- `unavailability`: per fault, the time from the fault to the first acknowledgement after it
  (any partition), until every partition had one, and the longest time any one partition went
  without an acknowledgement from the fault until AFTER_HEAL_S after it was healed.
"""

from __future__ import annotations

import bisect
import struct
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from chaos_workload import Ack, Commit, Consumed, TxnRecord, parse_value

BATCH_HEADER = struct.Struct(">qi")  # baseOffset, batchLength
LAST_OFFSET_DELTA = struct.Struct(">i")
LAST_OFFSET_DELTA_AT = 23  # baseOffset 8, length 4, partitionLeaderEpoch 4, magic 1, crc 4, attributes 2
EXAMPLES = 5
AFTER_HEAL_S = 10.0


@dataclass(frozen=True)
class Fault:
    nemesis: str
    target: str
    started: float  # time.monotonic()
    healed: float


def _ids(records: Iterable[Consumed]) -> list[tuple[str, int] | None]:
    return [parse_value(r.value) for r in records]


def check_records(acks: list[Ack], log: dict[int, list[Consumed]]) -> tuple[dict[str, int], list[str]]:
    """Counts (acked, in_log, lost, misplaced, duplicated, reordered) and one line per violation kind."""
    at_offset = {(p, r.offset): parse_value(r.value) for p, records in log.items() for r in records}
    in_log = Counter(i for records in log.values() for i in _ids(records) if i is not None)
    lost = [a for a in acks if (a.producer, a.seq) not in in_log]
    misplaced = [a for a in acks if (a.producer, a.seq) in in_log and a.offset is not None
                 and at_offset.get((a.partition, a.offset)) != (a.producer, a.seq)]
    duplicated = {i: n for i, n in in_log.items() if n > 1}
    reordered = _reordered(log)
    counts = {"acked": len(acks), "acked_without_offset": sum(a.offset is None for a in acks), "in_log": sum(in_log.values()), "lost": len(lost), "misplaced": len(misplaced),
              "duplicated": sum(n - 1 for n in duplicated.values()), "reordered": len(reordered)}
    violations = []
    if lost:
        violations.append(f"lost: {len(lost)} acknowledged records are not in the log, e.g. "
                          f"{[(a.producer, a.seq, a.partition, a.offset) for a in lost[:EXAMPLES]]}")
    if misplaced:
        violations.append(f"misplaced: {len(misplaced)} acknowledged records are not at their acked offset, e.g. "
                          f"{[(a.producer, a.seq, a.partition, a.offset) for a in misplaced[:EXAMPLES]]}")
    if duplicated:
        violations.append(f"duplicated: {len(duplicated)} ids appear more than once, e.g. (producer, seq, partition, "
                          f"offsets) {_where(list(duplicated)[:EXAMPLES], log)}")
    if reordered:
        violations.append(f"reordered: {len(reordered)} records out of their producer's order, e.g. "
                          f"{reordered[:EXAMPLES]}")
    return counts, violations


def check_transactions(committed: list[TxnRecord], aborted: list[TxnRecord], indeterminate: list[TxnRecord],
                       log: dict[int, list[Consumed]]) -> tuple[dict[str, int], list[str]]:
    """Counts and violations of read_committed isolation against the transactional topic's log."""
    in_log = Counter(i for records in log.values() for i in _ids(records) if i is not None)
    missing = [r for r in committed if (r.producer, r.seq) not in in_log]
    visible = [r for r in aborted if (r.producer, r.seq) in in_log]
    duplicated = {i: n for i, n in in_log.items() if n > 1}
    reordered = _reordered(log)
    counts = {"txn_committed": len(committed), "txn_aborted": len(aborted), "txn_indeterminate": len(indeterminate),
              "txn_in_log": sum(in_log.values()), "txn_missing": len(missing), "txn_aborted_visible": len(visible),
              "txn_duplicated": sum(n - 1 for n in duplicated.values()), "txn_reordered": len(reordered)}
    violations = []
    if missing:
        violations.append(f"txn_missing: {len(missing)} records of committed transactions are not in the log, e.g. "
                          f"{missing[:EXAMPLES]}")
    if visible:
        violations.append(f"txn_aborted_visible: {len(visible)} records of aborted transactions read with "
                          f"read_committed, e.g. {visible[:EXAMPLES]}")
    if duplicated:
        violations.append(f"txn_duplicated: {len(duplicated)} ids appear more than once, e.g. "
                          f"{_where(list(duplicated)[:EXAMPLES], log)}")
    if reordered:
        violations.append(f"txn_reordered: {len(reordered)} records out of their producer's order, e.g. "
                          f"{reordered[:EXAMPLES]}")
    return counts, violations


def check_txn_offsets(marks: dict[str, list[int]], final: int) -> tuple[dict[str, int], list[str]]:
    """One transactional producer's group offset against its transactions' outcomes (see the module doc)."""
    committed, aborted, indeterminate = marks["committed"], marks["aborted"], marks["indeterminate"]
    counts = {"txn_offset_commits": len(committed), "txn_offsets_wrong": 0}
    violations = []
    if final in aborted:
        violations.append(f"txn_offsets_aborted_visible: the group's offset {final} is an aborted transaction's")
    elif committed and final < max(committed):
        violations.append(f"txn_offsets_lost: the group's offset {final} is below the last committed transaction's "
                          f"{max(committed)}")
    elif (committed or indeterminate) and final not in committed and final not in indeterminate and final >= 0:
        violations.append(f"txn_offsets_unknown: the group's offset {final} is no transaction's")
    counts["txn_offsets_wrong"] = len(violations)
    return counts, violations


def _where(ids: list[tuple[str, int]], log: dict[int, list[Consumed]]) -> list[tuple[str, int, int, list[int]]]:
    """Each id with the partition and offsets it was found at (the copies of a duplicate)."""
    found: dict[tuple[str, int], list[tuple[int, int]]] = defaultdict(list)
    wanted = set(ids)
    for partition, records in log.items():
        for record in records:
            parsed = parse_value(record.value)
            if parsed in wanted:
                found[parsed].append((partition, record.offset))
    return [(producer, seq, found[(producer, seq)][0][0], [o for _, o in found[(producer, seq)]])
            for producer, seq in ids]


def _reordered(log: dict[int, list[Consumed]]) -> list[tuple[int, int, str, int, int]]:
    """(partition, offset, producer, seq, previous seq) where a producer's seq did not increase."""
    found = []
    for partition, records in log.items():
        last: dict[str, int] = {}
        for record in records:
            parsed = parse_value(record.value)
            if parsed is None:
                continue
            producer, seq = parsed
            if producer in last and seq <= last[producer]:
                found.append((partition, record.offset, producer, seq, last[producer]))
            last[producer] = seq
    return found


def check_group(consumed: list[Consumed], commits: list[Commit], committed: dict[int, int],
                log: dict[int, list[Consumed]]) -> tuple[dict[str, int], list[str]]:
    """Counts and violations of the consumer group against the final log (see the module doc)."""
    values = {(p, r.offset): r.value for p, records in log.items() for r in records}
    consumed_at = {(c.partition, c.offset) for c in consumed}
    last_acked: dict[int, int] = {}
    for commit in commits:
        last_acked[commit.partition] = max(last_acked.get(commit.partition, -1), commit.offset)
    consumed_end: dict[int, int] = defaultdict(int)
    for c in consumed:
        consumed_end[c.partition] = max(consumed_end[c.partition], c.offset + 1)
    lost_commits = {p: (committed.get(p), o) for p, o in last_acked.items() if committed.get(p, -1) < o}
    beyond = {p: (o, consumed_end[p]) for p, o in committed.items() if o > consumed_end[p]}
    skipped = sorted((p, r.offset) for p, records in log.items() for r in records
                     if r.offset < committed.get(p, -1) and (p, r.offset) not in consumed_at)
    mismatched = [(c.partition, c.offset) for c in consumed if values.get((c.partition, c.offset)) != c.value]
    counts = {"consumed": len(consumed), "commits_acked": len(commits), "commit_lost": len(lost_commits),
              "committed_beyond_consumed": len(beyond), "skipped_below_commit": len(skipped),
              "consumed_not_in_log": len(mismatched)}
    violations = []
    if lost_commits:
        violations.append(f"commit_lost: partitions' final committed offset below an acknowledged commit "
                          f"(final, acked): {lost_commits}")
    if beyond:
        violations.append(f"committed_beyond_consumed: (committed, consumed end) {beyond}")
    if skipped:
        violations.append(f"skipped_below_commit: {len(skipped)} records below the committed offset never consumed, "
                          f"e.g. {skipped[:EXAMPLES]}")
    if mismatched:
        violations.append(f"consumed_not_in_log: {len(mismatched)} consumed records differ from the final log, "
                          f"e.g. {mismatched[:EXAMPLES]}")
    return counts, violations


def batches(log_bytes: bytes) -> list[tuple[int, int, bytes]]:
    """(base offset, last offset, bytes) of each complete record batch in concatenated segments."""
    found, position = [], 0
    while position + BATCH_HEADER.size <= len(log_bytes):
        base_offset, length = BATCH_HEADER.unpack_from(log_bytes, position)
        end = position + BATCH_HEADER.size + length
        if length <= 0 or end > len(log_bytes):
            break  # a torn tail: not below the high watermark by definition
        (delta,) = LAST_OFFSET_DELTA.unpack_from(log_bytes, position + LAST_OFFSET_DELTA_AT)
        found.append((base_offset, base_offset + delta, log_bytes[position:end]))
        position = end
    return found


def replica_divergence(replica_logs: dict[int, bytes], high_watermark: int) -> str | None:
    """Why the replicas' batches below the high watermark differ, or None when they are identical."""
    below = {broker: [b for b in batches(data) if b[0] < high_watermark] for broker, data in replica_logs.items()}
    short = {broker: (b[-1][1] + 1 if b else 0) for broker, b in below.items()
             if (b[-1][1] + 1 if b else 0) < high_watermark}
    if short:
        return f"replicas end below the high watermark {high_watermark}: {short}"
    reference_broker, reference = next(iter(below.items()))
    for broker, replica in below.items():
        if replica == reference:
            continue
        index = next((i for i, (a, b) in enumerate(zip(replica, reference, strict=False)) if a != b),
                     min(len(replica), len(reference)))
        offsets = [r[index][0] if index < len(r) else None for r in (reference, replica)]
        return (f"broker {broker} differs from broker {reference_broker} at batch {index} "
                f"(base offsets {offsets[0]} vs {offsets[1]}; {len(reference)} vs {len(replica)} batches)")
    return None


def unavailability(faults: list[Fault], acks: list[Ack], partitions: int, t0: float) -> list[dict]:
    """Per fault: seconds from the fault to the first ack after it, and until every partition had one
    (None when none came)."""
    every = sorted(a.at for a in acks)
    per_partition: dict[int, list[float]] = defaultdict(list)
    for a in acks:
        per_partition[a.partition].append(a.at)
    for times in per_partition.values():
        times.sort()

    def first_after(times: list[float], moment: float) -> float | None:
        index = bisect.bisect_right(times, moment)
        return times[index] - moment if index < len(times) else None

    windows = []
    for fault in faults:
        firsts = [first_after(per_partition.get(p, []), fault.started) for p in range(partitions)]
        end = fault.healed + AFTER_HEAL_S
        windows.append({
            "nemesis": fault.nemesis, "target": fault.target,
            "at_s": round(fault.started - t0, 1), "held_s": round(fault.healed - fault.started, 1),
            "first_ack_s": _rounded(first_after(every, fault.started)),
            "all_partitions_s": None if None in firsts else _rounded(max(f for f in firsts if f is not None)),
            "longest_gap_s": _rounded(max(_longest_gap(per_partition.get(p, []), fault.started, end)
                                          for p in range(partitions))),
        })
    return windows


def _longest_gap(times: list[float], start: float, end: float) -> float:
    """The longest stretch of [start, end] with no time of `times` (sorted) in it."""
    inside = times[bisect.bisect_right(times, start):bisect.bisect_right(times, end)]
    edges = [start, *inside, end]
    return max(b - a for a, b in zip(edges, edges[1:], strict=False))


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
