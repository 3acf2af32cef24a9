"""A throwaway ZooKeeper on 127.0.0.1 for cluster tests: Debian's `zookeeper` package run
through scripts/zookeeper, on a free port, with its data under the given dir.

    zookeeper = ZooKeeperProcess(tmp_path).start()   # returns once it accepts sessions
    ...                                              # brokers use zookeeper.connect_string
    zookeeper.stop()                                 # SIGTERM, then SIGKILL to its process group

`four_letter_word` sends one of ZooKeeper's four-letter commands (ruok, srvr, ...).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path

from kbroker.testing.processes import free_port, kill_group, start_session_process, tail
from kbroker.testing.waiting import eventually

# The script lives in the repository: these helpers start ZooKeeper from a checkout.
REPO_ROOT = Path(__file__).resolve().parents[2]
ZOOKEEPER_SCRIPT = REPO_ROOT / "scripts" / "zookeeper"
ZOOKEEPER_JAR = Path("/usr/share/java/zookeeper.jar")


def zookeeper_unavailable_reason() -> str | None:
    """Why ZooKeeper cannot run here (for pytest.skip), or None when it can."""
    if shutil.which("java") is None:
        return "java is not installed (apt-get install zookeeper pulls in a JRE)"
    if not ZOOKEEPER_JAR.exists():
        return f"{ZOOKEEPER_JAR} is missing (apt-get install zookeeper)"
    return None


def four_letter_word(port: int, word: str, timeout: float = 2.0) -> bytes:
    """Send a ZooKeeper four-letter command (ruok, srvr, ...) and return the whole answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(word.encode())
        answer = bytearray()
        while chunk := sock.recv(4096):
            answer += chunk
        return bytes(answer)


class ZooKeeperProcess:
    """Debian's ZooKeeper through scripts/zookeeper, on a free 127.0.0.1 port."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.output_path = workdir / "zookeeper.out"
        self.proc: subprocess.Popen | None = None
        workdir.mkdir(parents=True, exist_ok=True)

    @property
    def connect_string(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> ZooKeeperProcess:
        argv = [str(ZOOKEEPER_SCRIPT), str(self.port), str(self.workdir / "data")]
        self.proc = start_session_process(argv, self.output_path, self.workdir)
        try:
            eventually(self._exited_or_ok, what="ZooKeeper to answer ruok and srvr", timeout=timeout)
        except AssertionError:
            self.stop()
            raise AssertionError(
                f"ZooKeeper did not answer ruok within {timeout}s:\n{tail(self.output_path)}"
            ) from None
        if self.proc.poll() is not None:
            raise AssertionError(f"ZooKeeper exited with {self.proc.returncode}:\n{tail(self.output_path)}")
        return self

    def _exited_or_ok(self) -> bool:
        return self.proc.poll() is not None or self._is_ok()

    def _is_ok(self) -> bool:
        # "imok" comes before the server accepts sessions; `srvr` reports a Mode only once it does.
        try:
            return four_letter_word(self.port, "ruok") == b"imok" and b"Mode:" in four_letter_word(
                self.port, "srvr"
            )
        except OSError:
            return False

    def stop(self) -> None:
        """SIGTERM, then SIGKILL to the process group if it is still there after 5 s."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        kill_group(self.proc)
