#!/usr/bin/env python3
"""scripts/fuzz: coverage-guided fuzzing (atheris, libFuzzer) of kbroker's parsers of untrusted bytes.

    scripts/fuzz [TARGET ...] [--runs N | --time SECONDS] [--seed S] [-- libFuzzer flags]

Targets (fuzz/README.md): codec, requests, batches, recovery; none named = all. Each target runs
in its own process over its corpus: fuzz/work/TARGET (new inputs the fuzzer finds; not in git)
and fuzz/corpus/TARGET (the seeds kept in the repository, and every input that once crashed the
broker, as regression cases). A crash leaves its input in fuzz/crashes/ and makes the exit code
non-zero. Prints one line per target: executions, seconds, crashes; then a JSON line each.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FUZZ = ROOT / "fuzz"
# target -> (module, function, max input length)
TARGETS = {
    "codec": ("fuzz.codec_target", "test_one_input", 16 * 1024),
    "requests": ("fuzz.requests_target", "test_one_input", 16 * 1024),
    "batches": ("fuzz.log_target", "batches_one_input", 64 * 1024),
    "recovery": ("fuzz.log_target", "recovery_one_input", 64 * 1024),
}


def run_child(target: str, libfuzzer_args: list[str]) -> None:
    """In the target's own process: instrument kbroker, then hand control to libFuzzer."""
    import atheris

    sys.path.insert(0, str(ROOT))
    module_name, function_name, _ = TARGETS[target]
    with atheris.instrument_imports(include=["kbroker", "fuzz"]):
        module = __import__(module_name, fromlist=[function_name])
    atheris.Setup([sys.argv[0], *libfuzzer_args], getattr(module, function_name))
    atheris.Fuzz()


def libfuzzer_args(target: str, args: argparse.Namespace) -> list[str]:
    work, seeds, crashes = args.work_dir / target, FUZZ / "corpus" / target, FUZZ / "crashes"
    for directory in (work, seeds, crashes):
        directory.mkdir(parents=True, exist_ok=True)
    limit = f"-runs={args.runs}" if args.runs is not None else f"-max_total_time={args.time}"
    return [limit, f"-seed={args.seed}", f"-max_len={TARGETS[target][2]}", "-timeout=20", "-rss_limit_mb=3072",
            f"-artifact_prefix={crashes}/{target}-", "-print_final_stats=1", *args.extra, str(work), str(seeds)]


def run_target(target: str, args: argparse.Namespace) -> dict:
    started = time.monotonic()
    # libFuzzer ends the child without Python's atexit, which would remove the targets' data:
    # their temporary folders go under one of ours, removed when the child is done.
    with tempfile.TemporaryDirectory(prefix=f"kbroker-fuzz-{target}-") as scratch:
        proc = subprocess.run([sys.executable, __file__, "--child", target, *libfuzzer_args(target, args)],
                              capture_output=True, text=True, cwd=ROOT, env={**os.environ, "TMPDIR": scratch})
    output = proc.stdout + proc.stderr
    executions = re.search(r"stat::number_of_executed_units:\s*(\d+)", output)
    result = {"target": target, "executions": int(executions.group(1)) if executions else None,
              "seconds": round(time.monotonic() - started, 1), "crashes": 0 if proc.returncode == 0 else 1,
              "exit_code": proc.returncode}
    if proc.returncode != 0:
        result["output_tail"] = output[-4000:]
    return result


def main() -> int:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        run_child(sys.argv[2], sys.argv[3:])
        return 0
    argv, extra = sys.argv[1:], []
    if "--" in argv:
        argv, extra = argv[: argv.index("--")], argv[argv.index("--") + 1:]
    parser = argparse.ArgumentParser(prog="scripts/fuzz", description=__doc__.split("\n\n")[0])
    parser.add_argument("targets", nargs="*", choices=[[], *TARGETS], metavar="TARGET",
                        help=f"one or more of {', '.join(TARGETS)} (default: all)")
    limit = parser.add_mutually_exclusive_group()
    limit.add_argument("--runs", type=int, help="inputs to try per target (after the corpus)")
    limit.add_argument("--time", type=int, default=60, help="seconds per target (default 60)")
    parser.add_argument("--seed", type=int, default=1, help="libFuzzer's random seed (default 1: repeatable)")
    parser.add_argument("--work-dir", type=Path, default=FUZZ / "work",
                        help="where new inputs go, one folder per target (default fuzz/work; an empty one makes a "
                             "run repeatable, as CI's is)")
    parser.add_argument("--no-codec-coverage", action="store_true",
                        help="do not instrument the codec's generated functions (a short run starts in seconds, "
                             "but the fuzzer is blind inside them)")
    args = parser.parse_args(argv)
    args.extra = extra
    os.environ["KBROKER_FUZZ_CODEC_COVERAGE"] = "0" if args.no_codec_coverage else "1"
    results = [run_target(target, args) for target in (args.targets or list(TARGETS))]
    for result in results:
        print(f"{result['target']:10s} {result['executions'] or 0:>10,} executions  {result['seconds']:7.1f} s  "
              f"{result['crashes']} crashes")
    for result in results:
        if result["crashes"]:
            print(f"--- {result['target']} (exit {result['exit_code']}):\n{result['output_tail']}", file=sys.stderr)
    for result in results:
        print(json.dumps({key: value for key, value in result.items() if key != "output_tail"}))
    return 1 if any(result["crashes"] for result in results) else 0


if __name__ == "__main__":
    sys.exit(main())
