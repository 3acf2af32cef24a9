"""The Java client (kafka-clients, Kafka Streams) from Python: one JVM per test module and version.

compat-tests/java/clients/src/Driver.java reads one command a line (`verb [name] key=value ...`)
and answers `OK <json>` or `ERR <exception class> <message>`; JavaDriver.call sends a command and
returns the decoded answer, or raises JavaError with the Java exception's simple class name, so a
test asserts the exception Kafka's client made of the broker's error code. The jars come from
`./scripts/test` (target/lib-<version>); the driver is compiled with javac into target/classes
when its sources change (against the oldest version, so it runs with each).

`python compat-tests/java_driver.py` compiles it (scripts/test calls it). With
KBROKER_JAVA_TIMING=1 each command's duration goes to stderr (pytest -s shows it).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import selectors
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

JAVA_DIR = Path(__file__).resolve().parent / "java" / "clients"
SOURCES = JAVA_DIR / "src"
TARGET = JAVA_DIR / "target"
CLASSES = TARGET / "classes"
# the newest 4.x and the oldest 4.0.x Maven Central serves here (it serves no 3.x)
JAVA_CLIENT_VERSIONS = tuple((JAVA_DIR / "versions").read_text().split())
ANSWER_TIMEOUT_S = 120.0
# The JVM's heap: several clients and a Streams app fit; two JVMs may run on this 2-core machine.
JVM_ARGS = ("-Xmx384m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
            "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn")


class JavaError(Exception):
    """The Java client threw: `kind` is the exception's simple class name (TopicExistsException...)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message


def jars_missing_reason(version: str) -> str | None:
    lib = TARGET / f"lib-{version}"
    if not (lib / ".stamp").exists():
        return f"kafka-clients {version} is not resolved: run ./scripts/test once (it runs Maven)"
    if shutil.which("java") is None:
        return "java is not installed: ./scripts/test installs it"
    return None


def _sources_hash() -> str:
    digest = hashlib.sha256()
    for source in sorted(SOURCES.glob("*.java")):
        digest.update(source.name.encode() + b"\0" + source.read_bytes())
    return digest.hexdigest()


def compile_driver() -> None:
    """javac the driver into target/classes unless the stamp says its sources are unchanged.

    Under a lock on target/.compile.lock: two pytest-xdist workers may both find the stamp stale,
    and one must not delete the classes the other is writing."""
    stamp = CLASSES / ".stamp"
    want = _sources_hash()
    if stamp.exists() and stamp.read_text() == want:
        return
    TARGET.mkdir(parents=True, exist_ok=True)
    with (TARGET / ".compile.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if stamp.exists() and stamp.read_text() == want:
            return  # the other worker compiled it while this one waited
        oldest = JAVA_CLIENT_VERSIONS[-1]
        shutil.rmtree(CLASSES, ignore_errors=True)
        CLASSES.mkdir(parents=True)
        subprocess.run(["javac", "-nowarn", "-d", str(CLASSES), "-cp", str(TARGET / f"lib-{oldest}" / "*"),
                        *map(str, sorted(SOURCES.glob("*.java")))], check=True)
        stamp.write_text(want)


class JavaDriver:
    """A running Driver JVM for one client version against `bootstrap`; stop() ends it by pid."""

    def __init__(self, version: str, bootstrap: str, log_path: Path) -> None:
        compile_driver()
        classpath = os.pathsep.join([str(CLASSES), str(TARGET / f"lib-{version}" / "*")])
        self.version = version
        self.log_path = log_path
        self._log = log_path.open("wb")
        self._proc = subprocess.Popen(["java", *JVM_ARGS, "-cp", classpath, "Driver", bootstrap],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log)
        self._selector = selectors.DefaultSelector()
        assert self._proc.stdout is not None
        self._selector.register(self._proc.stdout, selectors.EVENT_READ)
        self._buffer = b""
        assert self._read_answer() == "ready"

    def call(self, verb: str, *names: str, **kwargs: Any) -> Any:
        """Run one command: `call("send", "p1", topic="t", count=3)`; lists are joined by commas."""
        words = [verb, *names]
        for key, value in kwargs.items():
            text = ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
            assert " " not in text and "\n" not in text, text
            words.append(f"{key}={text}")
        assert self._proc.stdin is not None
        self._proc.stdin.write((" ".join(words) + "\n").encode())
        self._proc.stdin.flush()
        started = time.monotonic()
        try:
            return self._read_answer()
        finally:
            if os.environ.get("KBROKER_JAVA_TIMING"):
                print(f"java {verb} {names} took {time.monotonic() - started:.2f}s", file=sys.stderr)

    def _read_answer(self) -> Any:
        deadline = time.monotonic() + ANSWER_TIMEOUT_S
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._proc.poll() is not None:
                raise AssertionError(f"the Java driver gave no answer; its log:\n{self.log_tail()}")
            if self._selector.select(remaining):
                assert self._proc.stdout is not None
                chunk = os.read(self._proc.stdout.fileno(), 65536)
                if not chunk:
                    continue
                self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        status, _, rest = line.decode().partition(" ")
        if status == "OK":
            return json.loads(rest)
        kind, _, message = rest.partition(" ")
        raise JavaError(kind, message)

    def log_tail(self, lines: int = 60) -> str:
        self._log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        try:
            if self._proc.poll() is None:
                self.call("exit")
                self._proc.wait(timeout=30)
        except (AssertionError, OSError, subprocess.TimeoutExpired):
            pass
        finally:
            if self._proc.poll() is None:
                self._proc.kill()
                self._proc.wait()
            self._selector.close()
            self._log.close()


if __name__ == "__main__":
    compile_driver()
    sys.exit(0)


def driver_for(request: Any, bootstrap: str, tmp_path_factory: Any) -> Iterator[JavaDriver]:
    """The body of each Java test module's `java` fixture (parametrised over JAVA_CLIENT_VERSIONS):
    the driver for `request.param` against `bootstrap`, stopped afterwards; a skip, with the
    reason, when that version's jars are missing."""
    import pytest

    reason = jars_missing_reason(request.param)
    if reason:
        pytest.skip(reason)
    driver = JavaDriver(request.param, bootstrap, tmp_path_factory.mktemp("java") / "driver.log")
    try:
        yield driver
    finally:
        driver.stop()
