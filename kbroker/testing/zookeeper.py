"""A throwaway ZooKeeper on 127.0.0.1 for cluster tests: Debian's `zookeeper` package, run by
java directly on a free port, with its zoo.cfg and snapshots under the given dir.

    zookeeper = ZooKeeperProcess(tmp_path).start()   # returns once it accepts sessions
    ...                                              # brokers use zookeeper.connect_string
    zookeeper.stop()                                 # SIGTERM, then SIGKILL to its process group

`four_letter_word` sends one of ZooKeeper's four-letter commands (ruok, srvr, ...).
`python -m kbroker.testing.zookeeper PORT DATA_DIR` (scripts/zookeeper) runs one in the
foreground: the process execs into java, so its pid is ZooKeeper's. It never touches
/etc/zookeeper or /var/lib/zookeeper.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

from kbroker.testing.processes import (
    free_port,
    start_failure,
    start_session_process,
    terminate_then_kill,
)

ZOOKEEPER_JAR = Path("/usr/share/java/zookeeper.jar")
# zookeeper.jar's manifest Class-Path names the rest (jute, netty, slf4j-api, ...);
# slf4j-simple is the logging backend, which the manifest leaves to the caller.
CLASSPATH = f"{ZOOKEEPER_JAR}:/usr/share/java/slf4j-simple.jar"


def zookeeper_config(port: int, data_dir: Path, host: str = "127.0.0.1") -> str:
    """zoo.cfg for a ZooKeeper on host:port that answers ruok/srvr/stat/mntr."""
    return (
        f"tickTime=2000\ndataDir={data_dir}\nclientPort={port}\nclientPortAddress={host}\n"
        "admin.enableServer=false\n4lw.commands.whitelist=ruok,srvr,stat,mntr\n"
    )


def zookeeper_argv(port: int, data_dir: Path, host: str = "127.0.0.1") -> list[str]:
    """Write zoo.cfg into `data_dir` (created if needed); the java command that serves it,
    logging warnings only."""
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "zoo.cfg").write_text(zookeeper_config(port, data_dir, host))
    return [
        "java", "-Xmx256m", "-cp", CLASSPATH,
        "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
        "-Dzookeeper.jmx.log4j.disable=true",
        "org.apache.zookeeper.server.ZooKeeperServerMain", str(data_dir / "zoo.cfg"),
    ]  # fmt: skip


def zookeeper_unavailable_reason() -> str | None:
    """Why ZooKeeper cannot run here (for pytest.skip), or None when it can."""
    if shutil.which("java") is None:
        return "java is not installed (apt-get install zookeeper pulls in a JRE)"
    if not ZOOKEEPER_JAR.exists():
        return f"{ZOOKEEPER_JAR} is missing (apt-get install zookeeper)"
    return None


def four_letter_word(port: int, word: str, timeout: float = 2.0, host: str = "127.0.0.1") -> bytes:
    """Send a ZooKeeper four-letter command (ruok, srvr, ...) and return the whole answer."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(word.encode())
        answer = bytearray()
        while chunk := sock.recv(4096):
            answer += chunk
        return bytes(answer)


BIND_ATTEMPTS = 3


class ZooKeeperProcess:
    """Debian's ZooKeeper on a free 127.0.0.1 port, in its own process group; or on `host`:`port`
    inside a network namespace entered by `argv_prefix` (scripts/chaos)."""

    def __init__(self, workdir: Path, *, host: str = "127.0.0.1", port: int | None = None,
                 argv_prefix: tuple[str, ...] = ()) -> None:
        self.workdir = workdir
        self.host = host
        self.argv_prefix = argv_prefix
        self.port = port or free_port()
        self._port_chosen = port is None  # ours to change if another process takes it first
        self.output_path = workdir / "zookeeper.out"
        self.proc: subprocess.Popen | None = None
        workdir.mkdir(parents=True, exist_ok=True)

    @property
    def connect_string(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> ZooKeeperProcess:
        """Start it and wait until it accepts sessions; raises AssertionError (with its output) if it does not.

        The JVM binds its port seconds after free_port() found it free; on a machine shared by
        several test runs another process may take it in between ("Address already in use"), so a
        port we chose is chosen again, up to BIND_ATTEMPTS times."""
        for attempt in range(1, BIND_ATTEMPTS + 1):
            argv = [*self.argv_prefix, *zookeeper_argv(self.port, self.workdir / "data", self.host)]
            self.proc = start_session_process(argv, self.output_path, self.workdir)
            failure = start_failure(self.proc, self._is_ok, "ZooKeeper", "ruok and srvr", timeout, self.output_path,
                                    self.stop)
            if failure is None:
                return self
            if not (self._port_chosen and "BindException" in failure and attempt < BIND_ATTEMPTS):
                raise AssertionError(failure)
            self.port = free_port()
        raise AssertionError("unreachable")

    def _is_ok(self) -> bool:
        # "imok" comes before the server accepts sessions; `srvr` reports a Mode only once it does.
        try:
            return four_letter_word(self.port, "ruok", host=self.host) == b"imok" and b"Mode:" in four_letter_word(
                self.port, "srvr", host=self.host
            )
        except OSError:
            return False

    def stop(self) -> None:
        """SIGTERM, then SIGKILL to the process group if it is still there after 5 s."""
        terminate_then_kill(self.proc, 5)


def main(args: list[str]) -> int:
    """`python -m kbroker.testing.zookeeper PORT DATA_DIR`: exec into ZooKeeper in the foreground."""
    if len(args) != 2 or not args[0].isdigit():
        print("usage: python -m kbroker.testing.zookeeper PORT DATA_DIR", file=sys.stderr)
        return 2
    reason = zookeeper_unavailable_reason()
    if reason:
        print(f"zookeeper: {reason}", file=sys.stderr)
        return 3
    argv = zookeeper_argv(int(args[0]), Path(args[1]))
    os.execvp(argv[0], argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
