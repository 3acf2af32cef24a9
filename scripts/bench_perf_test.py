#!/usr/bin/env python3
"""Kafka's own producer benchmark, kafka-producer-perf-test (ProducerPerformance from Kafka 4.4's
jars, as bin/kafka-producer-perf-test.sh runs it: heap 512 MiB, full JIT), against kbroker and
against Apache Kafka 4.4 (single-node KRaft, kbroker.testing.apache_kafka), alternating.

Four cases: 100 B and 1 KiB records, each with acks=1 and acks=all, the tool's other settings
left at the Java producer's defaults (what Kafka users measure with). Each case writes a topic of
its own, created by the first record (one partition). Prints a table of records/s, MB/s and the
tool's average and p99 latency per broker, the ratio kbroker/Kafka, and JSON lines. Touches only
its temporary directory and the processes it starts.

    .venv/bin/python scripts/bench_perf_test.py --scale 0.1 --runs 1
"""

from __future__ import annotations

import argparse
import json
import re
import secrets
import shutil
import statistics
import sys
import tempfile
from dataclasses import dataclass

from bench import apache_kafka_spec
from bench_broker import BrokerSpec, RunningBroker, start_broker, stop_broker

from kbroker.testing.apache_kafka import run_kafka_tool

PERF_HEAP = "512m"  # kafka-producer-perf-test.sh's KAFKA_HEAP_OPTS
SUMMARY = re.compile(
    r"^(?P<records>\d+) records sent, (?P<records_per_s>[\d.]+) records/sec \((?P<mb_per_s>[\d.]+) MB/sec\), "
    r"(?P<avg_ms>[\d.]+) ms avg latency, (?P<max_ms>[\d.]+) ms max latency, (?P<p50_ms>\d+) ms 50th, "
    r"(?P<p95_ms>\d+) ms 95th, (?P<p99_ms>\d+) ms 99th", re.M)


@dataclass(frozen=True)
class Case:
    key: str
    records: int
    size: int
    acks: str


CASES = (Case("100b-acks1", 1_000_000, 100, "1"), Case("100b-acks-all", 1_000_000, 100, "all"),
         Case("1k-acks1", 300_000, 1024, "1"), Case("1k-acks-all", 300_000, 1024, "all"))


def log(message: str) -> None:
    print(f"[bench-perf-test] {message}", file=sys.stderr, flush=True)


def run_case(case: Case, records: int, broker: RunningBroker, topic: str) -> dict:
    """One kafka-producer-perf-test run: its summary line as numbers, or the error."""
    done = run_kafka_tool("kafka-producer-perf-test", "--topic", topic, "--num-records", str(records),
                          "--record-size", str(case.size), "--throughput", "-1",
                          "--bootstrap-server", broker.bootstrap, "--command-property", f"acks={case.acks}",
                          quick_start=False, heap=PERF_HEAP, timeout=600 + records / 1000)
    match = SUMMARY.search(done.stdout)
    if done.returncode != 0 or match is None:
        tail = " | ".join((done.stdout + done.stderr).strip().splitlines()[-3:])
        return {"error": f"exit {done.returncode}: {tail}"}
    sample = {key: float(value) for key, value in match.groupdict().items()}
    if sample["records"] != records:
        return {"error": f"sent {sample['records']:.0f} records of {records}"}
    return sample


def median_of(samples: list[dict], key: str) -> float | None:
    values = [s[key] for s in samples if "error" not in s]
    return statistics.median(values) if values else None


def cells(medians: dict[str, float | None]) -> str:
    """One broker's columns: records/s, MB/s, avg ms, p99 ms (FAILED when no run succeeded)."""
    if None in medians.values():
        return f"{'FAILED':>43}"
    rate, mb, avg, p99 = (medians[key] or 0.0 for key in ("records_per_s", "mb_per_s", "avg_ms", "p99_ms"))
    return f"{rate:>16,.0f}{mb:>9.1f}{avg:>9.1f}{p99:>9.1f}"


def report(results: dict[tuple[str, str], list[dict]], names: list[str], cases: list[Case]) -> list[dict]:
    """Prints the table; returns one JSON-able row per case."""
    rows = []
    columns = "".join(f"{name + ' rec/s':>16}{'MB/s':>9}{'avg ms':>9}{'p99 ms':>9}" for name in names)
    print(f"{'case':<16}{columns}{'MB/s ' + names[0] + '/' + names[1]:>22}")
    for case in cases:
        row: dict = {"kind": "perf-test", "case": case.key}
        text = f"{case.key:<16}"
        for name in names:
            samples = results[(name, case.key)]
            medians = {key: median_of(samples, key) for key in ("records_per_s", "mb_per_s", "avg_ms", "p99_ms")}
            row[name] = {**medians, "errors": [s["error"] for s in samples if "error" in s]}
            text += cells(medians)
        ours, theirs = row[names[0]]["mb_per_s"], row[names[1]]["mb_per_s"]
        row["ratio_mb_per_s"] = ours / theirs if ours and theirs else None
        text += f"{row['ratio_mb_per_s']:>21.2f}x" if row["ratio_mb_per_s"] else f"{'-':>22}"
        print(text)
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/bench_perf_test.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply record counts (0.1 for a quick run)")
    parser.add_argument("--runs", type=int, default=3, help="runs per case and broker; figures are medians")
    parser.add_argument("--cases", default=",".join(case.key for case in CASES),
                        help=f"comma-separated subset of: {', '.join(case.key for case in CASES)}")
    args = parser.parse_args(argv)
    known = {case.key: case for case in CASES}
    unknown = [key for key in args.cases.split(",") if key not in known]
    if unknown or args.runs < 1 or args.scale <= 0:
        parser.error(f"unknown cases {unknown}" if unknown else "--runs must be at least 1 and --scale positive")
    cases = [known[key] for key in args.cases.split(",")]
    specs = [BrokerSpec("kbroker"), apache_kafka_spec()]
    work_dir = tempfile.mkdtemp(prefix="kbroker-perf-test-")
    brokers: dict[str, RunningBroker] = {}
    results: dict[tuple[str, str], list[dict]] = {}
    token = secrets.token_hex(3)
    try:
        for spec in specs:
            brokers[spec.name] = start_broker(spec, work_dir)
            log(f"{spec.name} answers at {brokers[spec.name].bootstrap}")
        for run in range(args.runs):
            order = specs if run % 2 == 0 else specs[::-1]
            for case in cases:
                records = max(100, round(case.records * args.scale))
                for spec in order:
                    sample = run_case(case, records, brokers[spec.name], f"perf-{token}-{case.key}-r{run}")
                    results.setdefault((spec.name, case.key), []).append(sample)
                    log(f"run {run + 1}/{args.runs} {case.key} on {spec.name}: "
                        + (sample["error"] if "error" in sample else
                           f"{sample['records_per_s']:,.0f} records/s, {sample['mb_per_s']:.1f} MB/s"))
    finally:
        for broker in brokers.values():
            stop_broker(broker)
        shutil.rmtree(work_dir, ignore_errors=True)
    rows = report(results, [spec.name for spec in specs], cases)
    for row in rows:
        print(json.dumps(row))
    return 0 if all(not row[spec.name]["errors"] for row in rows for spec in specs) else 1


if __name__ == "__main__":
    sys.exit(main())
