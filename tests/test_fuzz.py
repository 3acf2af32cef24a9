"""The fuzz targets of fuzz/ in CI: every corpus input replays cleanly, and a short
coverage-guided run (scripts/fuzz, libFuzzer's fixed seed) finds no crash.

The corpora hold the seeds and every input that once broke a parser (regression cases), so
the replay is the regression test of each finding; the short run keeps the harness itself
working. Long runs are for developers: `scripts/fuzz --time 600` (fuzz/README.md).
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.long_running  # a coverage-guided run of every target
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fuzz import codec_target, log_target, requests_target  # noqa: E402

TARGETS = {
    "codec": codec_target.test_one_input,
    "requests": requests_target.test_one_input,
    "batches": log_target.batches_one_input,
    "recovery": log_target.recovery_one_input,
}


@pytest.fixture(autouse=True, scope="module")
def targets_closed() -> Iterator[None]:
    """The in-process targets keep a broker and logs in temporary folders that atexit would
    remove; pytest-xdist's workers end without running atexit, so they are removed here."""
    yield
    requests_target.close()
    log_target.close()


@pytest.fixture(autouse=True)
def logging_as_it_was() -> Iterator[None]:
    """The requests target's in-process broker silences WARNING and below for the whole process
    (a fuzzer sends millions of refused requests, each worth a line); the modules that run after
    this one in the same process assert log lines (test_controller's caplog), so it is undone."""
    disabled = logging.root.manager.disable
    yield
    logging.disable(disabled)


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_every_corpus_input_replays_without_a_crash(target: str) -> None:
    inputs = sorted((ROOT / "fuzz" / "corpus" / target).iterdir())
    assert inputs, f"fuzz/corpus/{target} is empty: run python -m fuzz.make_seeds"
    for path in inputs:
        TARGETS[target](path.read_bytes())  # raises on a crash, naming nothing: the path is in the traceback


def test_a_short_coverage_guided_run_finds_no_crash(tmp_path: Path) -> None:
    # An empty work folder: the run starts from the repository's corpus alone, as in a fresh clone.
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "fuzz.py"), "--runs", "2500", "--no-codec-coverage",
                           "--work-dir", str(tmp_path)],
                          capture_output=True, text=True, cwd=ROOT, timeout=280)
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert sorted(r["target"] for r in results) == sorted(TARGETS)
    assert all(r["crashes"] == 0 and r["executions"] >= 2500 for r in results), results
