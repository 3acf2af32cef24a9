"""Start and stop kbroker processes on 127.0.0.1, for tests and benchmarks.

A `BrokerProcess` is `python -m kbroker` on a free 127.0.0.1 port with its own log dir, its
output in a file beside that dir; it counts as ready once it answers a raw ApiVersions v0
request. A `BrokerLauncher` owns every broker it started and stops them all in one call, which
the fixtures run at teardown whether the test passed or not. Each child gets its own session
(process group) so a stuck one can be killed, by its pid, with everything it spawned.

    launcher = BrokerLauncher(tmp_path)
    broker = launcher.start("num.partitions=3")   # returns once the broker answers
    ...                                           # connect to broker.bootstrap
    launcher.stop_all()                           # SIGTERM, then SIGKILL if it lingers

Must not touch the repository's files: everything a process writes goes under the given dir.
"""

from __future__ import annotations

import collections
import os
import random
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from kbroker.testing import wire
from kbroker.testing.waiting import eventually

BROKER_READY_TIMEOUT = 15.0
STACK_DUMP_GRACE_S = 5.0  # for a stuck broker to write its threads' stacks before SIGKILL
LOG_TAIL_LINES = 200


# Listening ports for the processes tests start are drawn below the kernel's ephemeral range
# (32768-60999 on Linux): a port the kernel picked for us could be handed out again as the
# local port of any outgoing connection before the broker binds it ("Address already in use").
LISTEN_PORTS = range(20000, 32000)


def worker_port_range(ports: range = LISTEN_PORTS) -> range:
    """This pytest-xdist worker's share of `ports` (all of it outside xdist).

    Two workers each draw from their own slice, so one cannot take a port the other handed out
    and has not bound yet; the processes a test starts inherit the worker's environment, so the
    brokers scripts/bench or scripts/chaos start draw from the same slice."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or "1")
    if not worker.startswith("gw") or not worker[2:].isdigit() or count <= 1:
        return ports
    size = len(ports) // count
    start = ports.start + int(worker[2:]) % count * size
    return range(start, start + size)


_port_choice = random.Random()  # its own: a test that seeds `random` must not make ports repeat
# Ports handed out lately by this process: a fixture takes several ports before any process binds
# them, and a random draw may give the same one twice (two brokers of a cluster on one port).
_recent_ports: collections.deque[int] = collections.deque(maxlen=2000)


def free_port() -> int:
    """A port that was free on 127.0.0.1 a moment ago, outside the ephemeral range, and not one
    this process handed out lately."""
    ports = worker_port_range()  # read each time: xdist names the worker in the environment
    for _ in range(200):
        port = _port_choice.choice(ports)
        if port in _recent_ports:
            continue
        _recent_ports.append(port)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise OSError(f"no free port in {ports}")


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last `lines` lines of a process's output file, for failure messages."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return f"<{path} does not exist>"
    return "\n".join(text.splitlines()[-lines:])


def start_session_process(argv: list[str], output: Path, cwd: Path) -> subprocess.Popen:
    """Start `argv` in its own session (process group), stdout and stderr appended to `output`."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONFAULTHANDLER="1")
    with output.open("ab") as out:
        return subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            env=env,
            start_new_session=True,
        )


def started(proc: subprocess.Popen | None, what: str) -> subprocess.Popen:
    """`proc` once its start() has run; asking for it earlier is a test's own mistake."""
    if proc is None:
        raise AssertionError(f"{what} was never started")
    return proc


def start_failure(proc: subprocess.Popen, is_serving: Callable[[], bool], name: str, answer: str,
                  timeout: float, output_path: Path, stop: Callable[[], None]) -> str | None:
    """Waits until a just-started process serves (`is_serving`) or exits. None once it serves;
    otherwise why it does not, with the tail of its output (a process that never answers is
    stopped with `stop` first)."""
    try:
        eventually(lambda: proc.poll() is not None or is_serving(), what=f"{name} to answer {answer}",
                   timeout=timeout)
    except AssertionError:
        stop()
        return f"{name} did not answer {answer} within {timeout}s:\n{tail(output_path)}"
    if proc.poll() is not None:
        return f"{name} exited with {proc.returncode} before serving:\n{tail(output_path)}"
    return None


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the process and its group; harmless when they are already gone."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


def terminate_then_kill(proc: subprocess.Popen | None, grace_s: float) -> None:
    """SIGTERM, then SIGKILL to the process group if it is still there after `grace_s` seconds."""
    if proc is None:
        return
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            pass
    kill_group(proc)


class BrokerFailed(AssertionError):
    """The broker did not start, or did not stop as asked; the message carries its log."""


class BrokerProcess:
    """One `python -m kbroker` subprocess on 127.0.0.1, or on `host` when a caller (scripts/chaos)
    puts it in a network namespace by an `argv_prefix` such as `ip netns exec NS` (which execs,
    so the pid stays the broker's)."""

    def __init__(self, workdir: Path, overrides: list[str], port: int | None = None, *, host: str = "127.0.0.1",
                 argv_prefix: tuple[str, ...] = ()) -> None:
        self.workdir = workdir
        self.host = host
        self.argv_prefix = argv_prefix
        self.log_dir = workdir / "data"
        self.output_path = workdir / "broker.out"
        self.overrides = list(overrides)
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None
        self.log_dir.mkdir(parents=True, exist_ok=True)

    @property
    def process(self) -> subprocess.Popen:
        """The broker's process (running or exited) once start() has run."""
        return started(self.proc, "kbroker")

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def argv(self) -> list[str]:
        argv = [
            *self.argv_prefix,
            sys.executable,
            "-m",
            "kbroker",
            "--override",
            f"listeners=PLAINTEXT://{self.host}:{self.port}",
            "--override",
            f"log.dirs={self.log_dir}",
        ]
        for override in self.overrides:
            argv += ["--override", override]
        return argv

    def output(self) -> str:
        """Everything the broker wrote to stdout and stderr, over all its runs."""
        return self.output_path.read_text(errors="replace") if self.output_path.exists() else ""

    def start(self, timeout: float = BROKER_READY_TIMEOUT) -> BrokerProcess:
        assert self.proc is None or self.proc.poll() is not None, "broker already running"
        with self.output_path.open("a") as out:
            out.write(f"=== starting: {' '.join(self.argv())}\n")
        self.proc = start_session_process(self.argv(), self.output_path, self.workdir)
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = BROKER_READY_TIMEOUT) -> None:
        """Wait until an ApiVersions v0 request over a socket is answered; kill it if it never is."""
        failure = start_failure(self.process, self._answers_api_versions, "kbroker", "ApiVersions", timeout,
                                self.output_path, self.kill_stuck)
        if failure is not None:
            raise BrokerFailed(failure)

    def _answers_api_versions(self) -> bool:
        try:
            payload = wire.roundtrip(self.port, wire.api_versions_request(correlation_id=7), timeout=2.0,
                                     host=self.host)
        except (OSError, wire.ConnectionClosed):
            return False
        return wire.correlation_id_of(payload) == 7

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def send_signal(self, sig: int) -> None:
        self.process.send_signal(sig)

    def wait(self, timeout: float = 10.0) -> int:
        """Wait for the broker to exit on its own; return the exit code. Kills it on timeout."""
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise BrokerFailed(
                f"kbroker still running after {timeout}s; killed it:\n{tail(self.output_path)}"
            ) from None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        """Send `sig` and wait for the exit; return the exit code (negative = killed by a signal).

        If the broker is still running after `timeout` seconds it is killed and BrokerFailed raised.
        """
        process = self.process
        if process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise BrokerFailed(
                    f"kbroker still running {timeout}s after signal {signal.Signals(sig).name}; killed it:\n"
                    f"{tail(self.output_path)}"
                ) from None
        return process.returncode

    def kill(self) -> None:
        """SIGKILL the broker (and its process group), as a crash would."""
        if self.proc is not None:
            kill_group(self.proc)

    def kill_stuck(self) -> None:
        """Kill a broker that never answered, leaving evidence of where it was: SIGABRT first, on
        which PYTHONFAULTHANDLER (start_session_process sets it) writes every thread's stack to
        its output, then SIGKILL to the group for whatever is left."""
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGABRT)
            try:
                proc.wait(timeout=STACK_DUMP_GRACE_S)
            except subprocess.TimeoutExpired:  # blocked in the kernel, e.g. on a hung FUSE mount
                pass
        self.kill()

    def restart(self, timeout: float = BROKER_READY_TIMEOUT) -> BrokerProcess:
        """Stop (SIGTERM) if running, then start again on the same port and log dir."""
        if self.alive():
            self.stop()
        return self.start(timeout)


class BrokerLauncher:
    """Starts brokers under one tmp dir and stops every one of them in `stop_all()`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.brokers: list[BrokerProcess] = []

    def start(self, *overrides: str, port: int | None = None, start: bool = True) -> BrokerProcess:
        """Start a broker with extra `key=value` overrides, retrying when its port was taken."""
        for attempt in range(3):
            broker = self.make_broker(self.root / f"broker{len(self.brokers)}", list(overrides), port)
            self.brokers.append(broker)
            if not start:
                return broker
            try:
                return broker.start()
            except BrokerFailed:
                port_taken = "Address already in use" in broker.output()
                if port is not None or not port_taken or attempt == 2:
                    raise
        raise AssertionError("unreachable")

    __call__ = start

    def make_broker(self, workdir: Path, overrides: list[str], port: int | None) -> BrokerProcess:
        """The next broker (not started); scripts/chaos overrides it to place brokers in namespaces."""
        return BrokerProcess(workdir, overrides, port)

    def stop_all(self) -> None:
        for broker in self.brokers:
            if not broker.alive():
                continue
            try:
                broker.stop(timeout=10)
            except BrokerFailed:
                pass  # stop() already killed it; the test that cared has reported it

    def logs_for_report(self) -> list[tuple[str, str]]:
        return [
            (f"kbroker {b.bootstrap} output (last {LOG_TAIL_LINES} lines)", tail(b.output_path))
            for b in self.brokers
        ]
