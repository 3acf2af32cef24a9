"""kbroker.append.offload.threads measured (docs/MULTICORE.md): where the broker's CPU goes.

For each scenario, a kbroker with the offload off and one with `--threads` worker threads
(alternating, a fresh broker each time) take `scripts/bench.py --bootstrap` runs; around each,
the broker's CPU is read per thread from /proc/<pid>/task: the event loop (the main thread)
against every other thread (the offload pool, plus the default executor's fsyncs of rolled
segments, which both variants have). Prints a table and JSON lines with MB/s and those CPU
seconds; ratios are on/off within the run.

    .venv/bin/python scripts/bench_offload.py --scenarios produce-1k,produce-1k-zstd-to-lz4 --scale 0.2 --runs 1
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kbroker.testing.processes import BrokerProcess  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def thread_cpu_s(pid: int) -> dict[int, float]:
    """CPU seconds (user + system) of each thread of `pid`, by thread id."""
    seconds = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended meanwhile
            continue
        seconds[int(tid)] = (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime (fields 14, 15)
    return seconds


def loop_and_others(pid: int, before: dict[int, float], after: dict[int, float]) -> tuple[float, float]:
    used = {tid: after[tid] - before.get(tid, 0.0) for tid in after}
    loop = used.pop(pid, 0.0)
    return loop, sum(used.values())


def run_bench(bootstrap: str, pid: int, scenario: str, scale: float, runs: int) -> dict:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench.py"), "--bootstrap", bootstrap, "--broker-pid", str(pid),
         "--scenarios", scenario, "--scale", str(scale), "--runs", str(runs), "--json-only"],
        capture_output=True, text=True, check=False)
    for line in done.stdout.splitlines():
        result = json.loads(line)
        if result.get("kind") == "result" and result.get("scenario") == scenario:
            return result
    raise RuntimeError(f"scripts/bench gave no result for {scenario}: {done.stderr[-2000:]}")


def measure(variant: str, overrides: list[str], scenario: str, args: argparse.Namespace) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="kbroker-offload-"))
    broker = BrokerProcess(workdir, overrides).start()
    try:
        pid = broker.process.pid
        before = thread_cpu_s(pid)
        result = run_bench(broker.bootstrap, pid, scenario, args.scale, args.runs)
        loop_s, others_s = loop_and_others(pid, before, thread_cpu_s(pid))
    finally:
        broker.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return {"kind": "offload", "scenario": scenario, "variant": variant, "verified": result["verified"],
            "mb_per_s": result.get("mb_per_s"), "loop_cpu_s": round(loop_s, 2), "other_threads_cpu_s": round(others_s, 2),
            "record_bytes_total": result.get("records", 0) * result.get("record_bytes", 0) * args.runs}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="scripts/bench_offload.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenarios", default="produce-1k,produce-1k-zstd,produce-1k-zstd-to-lz4")
    parser.add_argument("--scale", type=float, default=0.2)
    parser.add_argument("--runs", type=int, default=1, help="bench runs per broker (scripts/bench's median)")
    parser.add_argument("--threads", type=int, default=2, help="kbroker.append.offload.threads of the 'on' broker")
    parser.add_argument("--min-bytes", type=int, default=256 * 1024, help="kbroker.append.offload.min.bytes")
    parser.add_argument("--repeat", type=int, default=1, help="off/on pairs per scenario")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    variants = {
        "off": [],
        f"on-{args.threads}": [f"kbroker.append.offload.threads={args.threads}",
                               f"kbroker.append.offload.min.bytes={args.min_bytes}"],
    }
    rows = []
    for scenario in [s.strip() for s in args.scenarios.split(",") if s.strip()]:
        for _ in range(args.repeat):
            for name, overrides in variants.items():
                rows.append(measure(name, overrides, scenario, args))
                print(json.dumps(rows[-1]), flush=True)
    print(f"{'scenario':<26} {'variant':<8} {'MB/s':>8} {'loop CPU s':>11} {'other threads s':>16}", file=sys.stderr)
    for row in rows:
        print(f"{row['scenario']:<26} {row['variant']:<8} {row['mb_per_s'] or 0:>8.1f} {row['loop_cpu_s']:>11.2f}"
              f" {row['other_threads_cpu_s']:>16.2f}", file=sys.stderr)
    return 0 if all(row["verified"] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
