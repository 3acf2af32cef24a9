"""Run the non-Python clients the compat tests use: kcat and KafkaJS scripts under compat-tests/js/.

Each helper skips the calling test (with the reason) when its tool is not installed, and fails it
with the tool's output when the tool itself fails. Must not install anything: scripts/test does.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

# The KafkaJS scripts and their node_modules live in the repository's compat-tests/js.
JS_DIR = Path(__file__).resolve().parents[2] / "compat-tests" / "js"


def _timed_out(program: str, exc: subprocess.TimeoutExpired) -> AssertionError:
    """The failure for a tool that outran its timeout, with what it printed so far."""
    return AssertionError(
        f"{program} timed out after {exc.timeout}s\nstdout:\n{_text(exc.stdout)}\nstderr:\n{_text(exc.stderr)}"
    )


def _text(output: bytes | str | None) -> str:
    # TimeoutExpired carries the raw bytes read so far, even when the run asked for text.
    return output.decode(errors="replace") if isinstance(output, bytes) else output or ""


def _run(argv: list[str], timeout: float, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, check=False)
    except subprocess.TimeoutExpired as exc:
        raise _timed_out(argv[0], exc) from None


def _require(completed: subprocess.CompletedProcess, argv: list[str]) -> None:
    assert completed.returncode == 0, (
        f"{' '.join(argv)} exited with {completed.returncode}\n"
        f"stdout:\n{completed.stdout[-4000:]}\nstderr:\n{completed.stderr[-4000:]}"
    )


def kcat_path() -> str:
    path = shutil.which("kcat") or shutil.which("kafkacat")
    if path is None:
        pytest.skip("kcat is not installed (apt-get install kcat)")
    return path


def run_kcat(
    bootstrap: str, *args: str, timeout: float = 30.0, input_text: str | None = None, check: bool = True
) -> subprocess.CompletedProcess:
    """`kcat -b <bootstrap> <args...>`; with check=True a non-zero exit fails the test."""
    argv = [kcat_path(), "-b", bootstrap, *args]
    try:
        completed = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, input=input_text, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise _timed_out("kcat", exc) from None
    if check:
        _require(completed, argv)
    return completed


def kcat_metadata(bootstrap: str, *args: str, timeout: float = 30.0) -> dict:
    """`kcat -L -J` parsed: {"brokers": [...], "topics": [...], "controllerid": ..., ...}."""
    completed = run_kcat(bootstrap, "-L", "-J", *args, timeout=timeout)
    return json.loads(completed.stdout)


def kafkajs_unavailable_reason() -> str | None:
    if shutil.which("node") is None:
        return "node is not installed"
    if not (JS_DIR / "node_modules" / "kafkajs").is_dir():
        return f"kafkajs is not installed in {JS_DIR}/node_modules (run scripts/test, which runs npm ci)"
    return None


def run_kafkajs(
    script: str, bootstrap: str, *args: str, timeout: float = 60.0, env: dict[str, str] | None = None
) -> dict:
    """Run `node compat-tests/js/<script>` with BOOTSTRAP set; return its last JSON stdout line.

    The scripts print exactly one JSON object per result line and exit non-zero on error.
    """
    reason = kafkajs_unavailable_reason()
    if reason:
        pytest.skip(reason)
    argv = ["node", str(JS_DIR / script), *args]
    full_env = dict(os.environ, BOOTSTRAP=bootstrap, **(env or {}))
    completed = _run(argv, timeout, full_env)
    _require(completed, argv)
    json_lines = [line for line in completed.stdout.splitlines() if line.startswith("{")]
    assert json_lines, (
        f"{script} printed no JSON line\nstdout:\n{completed.stdout}\nstderr:\n{completed.stderr}"
    )
    return json.loads(json_lines[-1])


CHROMIUM = Path("/usr/bin/chromium")


def browser_unavailable_reason() -> str | None:
    """Why the web console's page cannot be driven here, or None: Debian's chromium and npm's
    playwright-core (installed by scripts/test; playwright never downloads a browser here)."""
    if shutil.which("node") is None:
        return "node is not installed"
    if not CHROMIUM.is_file():
        return f"Chromium is not installed at {CHROMIUM} (apt-get install chromium; scripts/test does)"
    if not (JS_DIR / "node_modules" / "playwright-core").is_dir():
        return f"playwright-core is not installed in {JS_DIR}/node_modules (run scripts/test, which runs npm ci)"
    return None


def run_console_page(url: str, screenshots: Path, steps: list[dict], timeout: float = 180.0) -> list[dict]:
    """Drive the web console at `url` in headless Chromium (compat-tests/js/console_page.js): one
    browser runs every step; returns each step's result. Screenshots go to `screenshots`, whose
    path is printed (pytest shows it with -s, and with the failure's captured output)."""
    reason = browser_unavailable_reason()
    if reason:
        print(f"skipping the browser test: {reason}")
        pytest.skip(reason)
    screenshots.mkdir(parents=True, exist_ok=True)
    for stale in screenshots.glob("*.png"):  # a previous run's: the folder shows this run only
        stale.unlink()
    print(f"console screenshots: {screenshots}")
    argv = ["node", str(JS_DIR / "console_page.js"),
            json.dumps({"url": url, "shots": str(screenshots), "steps": steps})]
    completed = _run(argv, timeout)
    _require(completed, argv)
    [line] = [line for line in completed.stdout.splitlines() if line.startswith("{")]
    return json.loads(line)["results"]
