"""Broker processes for scripts/bench: start one on a fresh data directory, time it to its first
Metadata answer, read its RSS and CPU seconds from /proc, stop it.

A broker is kbroker (`python -m kbroker` with listeners and log.dirs overridden, plus any further
overrides, such as a cluster member's broker.id and zookeeper.connect) or any command given to
--against, with {port} and {dir} substituted. Commands run in their own session, so
wrappers (a shell, a Python launcher) are measured together with the broker they start: RSS and
CPU are summed over the whole process tree. Stops only the process groups it started. Knows
nothing of kbroker's internals: it speaks Kafka (one raw Metadata v1 request) and reads /proc.

A SASL_SSL broker (--sasl-ssl) gets a second listener, SASL_SSL with a PKCS12 key store issued
by kbroker.testing.tls's test CA in the work directory and SCRAM-SHA-512 enabled; its readiness is
still read on the PLAINTEXT one. kbroker gets it as `--override`s and its SCRAM user is created
once it answers (AlterUserScramCredentials on the PLAINTEXT listener); a command gets it where its
template says `{sasl_ssl}`, as kbroker.testing.apache_kafka's options (SaslSslListener.options),
and creates the user itself (Apache Kafka: `kafka-storage format --add-scram`). The scenarios
connect to the SASL_SSL listener with the RunningBroker's `client_config` (security.protocol=
SASL_SSL, the CA, the SCRAM login).
"""

from __future__ import annotations

import os
import shlex
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from kbroker.testing import wire
from kbroker.testing.apache_kafka import SaslSslListener
from kbroker.testing.processes import free_port
from kbroker.testing.waiting import eventually

METADATA_API_KEY = 3
METADATA_VERSION = 1  # served by every broker from Kafka 0.10 to 4.x
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# Given to every broker the benchmark starts that takes Kafka's settings (kbroker, Apache Kafka):
# the topics a run deletes once measured (bench.drop_run_topics) leave the disk at once instead
# of a minute later (Kafka's default), so a long run holds one run's data, not every sample's
# (`--against kafka --sasl-ssl` at full scale needed 3.7 GB of tmpfs). It does not make the samples
# equal on a VM with free page reporting (virtio-balloon): memory the guest touches for the first
# time since it gave it back is slow to write (the kernel's copy into new tmpfs pages was 70% of
# the broker's CPU in slow samples), whichever run it comes in; hence alternating targets and medians.
BENCH_BROKER_SETTINGS = ("file.delete.delay.ms=0",)


@dataclass
class BrokerSpec:
    """How to get a broker: a command template to start, or an address already serving."""

    name: str
    command: str | None = None  # with {port} and {dir}; None for kbroker or a --bootstrap address
    bootstrap: str | None = None
    pids: list[int] = field(default_factory=list)  # for --bootstrap: the broker's pid, if known
    overrides: tuple[str, ...] = ()  # kbroker only: further `key=value` settings
    acls: int = 0  # kbroker with an authorizer: ACLs created (CreateAcls) once it answers Metadata
    sasl_ssl: bool = False  # a broker whose clients connect over SASL_SSL with SCRAM-SHA-512
    # --pin-cpus: the CPUs the broker's process tree runs on, and those of the load clients that
    # measure it (empty: wherever the scheduler puts them).
    cpus: tuple[int, ...] = ()
    client_cpus: tuple[int, ...] = ()


    def argv(self, port: int, data_dir: str, secure: SaslSsl | None = None) -> list[str]:
        if self.command is None:
            settings = (f"listeners=PLAINTEXT://127.0.0.1:{port}", f"log.dirs={data_dir}", *BENCH_BROKER_SETTINGS,
                        *self.overrides)
            return [sys.executable, "-m", "kbroker", *(arg for setting in settings for arg in ("--override", setting)),
                    *(secure.arguments() if secure else [])]
        # exec: the shell becomes the broker, so its pid and signals are the broker's.
        text = self.command.replace("{port}", str(port)).replace("{dir}", data_dir)
        text = text.replace("{sasl_ssl}", shlex.join(secure.listener.options()) if secure else "")
        return ["/bin/sh", "-c", "exec " + text]


@dataclass
class RunningBroker:
    name: str
    bootstrap: str
    process: subprocess.Popen | None
    data_dir: str | None
    log_path: Path | None
    start_ms: float | None
    fixed_pids: list[int] = field(default_factory=list)
    client_config: dict[str, str] = field(default_factory=dict)  # librdkafka's security settings
    client_cpus: tuple[int, ...] = ()  # where the load clients of this broker run (empty: anywhere)

    def pids(self) -> list[int]:
        """The broker's process tree now (or the pids given for an external broker)."""
        if self.process is None:
            return list(self.fixed_pids)
        return process_tree(self.process.pid)

    def pid_groups(self) -> list[list[int]]:
        """One pid list per broker (a cluster has several)."""
        return [self.pids()]

    def rss_mib(self) -> float | None:
        return rss_mib_of(self.pids())

    def log_tail(self, lines: int = 20) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def exit_note(self) -> str:
        """Why a failed measurement may have failed: the broker is gone ("" while it runs)."""
        if self.process is None or self.process.poll() is None:
            return ""
        return f"{self.name} exited with code {self.process.returncode}: {self.log_tail(5)}"


def start_broker(spec: BrokerSpec, work_dir: str) -> RunningBroker:
    """A fresh data directory and port; returns once the broker answered Metadata."""
    if spec.bootstrap is not None:
        return RunningBroker(spec.name, spec.bootstrap, None, None, None, None, list(spec.pids), client_cpus=spec.client_cpus)
    data_dir = tempfile.mkdtemp(prefix=f"{spec.name}-data-", dir=work_dir)
    log_path = Path(data_dir + ".log")
    port = free_port()
    secure = SaslSsl(Path(data_dir + "-pki"), port) if spec.sasl_ssl else None
    argv = spec.argv(port, data_dir, secure)
    with open(log_path, "wb") as log, pinned(spec.cpus):
        started = time.perf_counter()
        process = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
    broker = RunningBroker(spec.name, f"127.0.0.1:{port}", process, data_dir, log_path, None, client_cpus=spec.client_cpus)
    try:
        wait_for_metadata("127.0.0.1", port, process)
    except Exception as exc:
        stop_broker(broker)
        raise BrokerFailedToStart(f"{spec.name}: {exc}; its output ends: {broker.log_tail(3)}") from exc
    broker.start_ms = (time.perf_counter() - started) * 1000
    if spec.acls:
        create_acls(broker.bootstrap, spec.acls)
    if secure:
        if spec.command is None:  # a command's broker has its user from the start (see the module's text)
            secure.create_user(broker.bootstrap)
        broker.bootstrap, broker.client_config = secure.bootstrap, secure.client_config()
    return broker


@contextmanager
def pinned(cpus: tuple[int, ...]) -> Iterator[None]:
    """While open, this thread runs on `cpus` (nothing changes if empty), and so does every
    process it starts: a child inherits its parent's CPU affinity at fork, before it execs or
    starts threads (a JVM's too), which pinning the child afterwards by its pid would miss."""
    if not cpus:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


class SaslSsl:
    """The SASL_SSL listener of a --sasl-ssl broker: its certificates, settings and SCRAM user."""

    MECHANISM = "SCRAM-SHA-512"
    USER, PASSWORD = "bench", "bench-secret"

    def __init__(self, pki_dir: Path, plain_port: int) -> None:
        self.listener = SaslSslListener.issued(pki_dir, self.USER, self.PASSWORD)
        self.plain_port = plain_port
        self.bootstrap = self.listener.bootstrap

    def arguments(self) -> list[str]:
        """kbroker's `--override`s: the listener as Kafka's settings say it, and the PLAINTEXT one."""
        settings = (f"listeners=PLAINTEXT://127.0.0.1:{self.plain_port},SASL_SSL://{self.bootstrap}",
                    "inter.broker.listener.name=PLAINTEXT", *self.listener.properties())
        return [arg for setting in settings for arg in ("--override", setting)]

    def create_user(self, plain_bootstrap: str) -> None:
        from confluent_kafka.admin import (
            AdminClient,
            ScramCredentialInfo,
            ScramMechanism,
            UserScramCredentialUpsertion,
        )

        admin = AdminClient({"bootstrap.servers": plain_bootstrap})
        upsert = UserScramCredentialUpsertion(self.USER, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096),
                                              self.PASSWORD.encode())
        admin.alter_user_scram_credentials([upsert])[self.USER].result(timeout=60)

    def client_config(self) -> dict[str, str]:
        """librdkafka's security settings (the scenarios name the bootstrap servers themselves)."""
        config = self.listener.client_config()
        del config["bootstrap.servers"]
        return config


def create_acls(bootstrap: str, count: int) -> None:
    """`count` ACLs the authorizer indexes and must look past: one ALLOW READ for another user on
    another topic each, plus the PREFIXED one granting ALL on the benchmark's `bench-` topics."""
    from confluent_kafka.admin import (  # the load client's library, not needed without ACLs
        AclBinding,
        AclOperation,
        AclPermissionType,
        AdminClient,
        ResourcePatternType,
        ResourceType,
    )

    def binding(name: str, pattern: ResourcePatternType, principal: str, operation: AclOperation) -> AclBinding:
        return AclBinding(ResourceType.TOPIC, name, pattern, principal, "*", operation, AclPermissionType.ALLOW)

    bindings = [binding("bench-", ResourcePatternType.PREFIXED, "User:ANONYMOUS", AclOperation.ALL)]
    bindings += [binding(f"acl-topic-{i}", ResourcePatternType.LITERAL, f"User:user-{i}", AclOperation.READ)
                 for i in range(count - 1)]
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_acls(bindings, request_timeout=60).values():
        future.result(timeout=60)


def stop_broker(broker: RunningBroker) -> None:
    stop_brokers([broker])


def stop_brokers(brokers: list[RunningBroker]) -> None:
    """SIGTERM to every broker's process group at once, SIGKILL to those that linger.

    All at once, so the members of a cluster shut down together rather than each waiting for
    the controller to move leadership onto brokers about to stop too.
    """
    running = [broker.process for broker in brokers if broker.process is not None and broker.process.poll() is None]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for process in running:
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for process in running:
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        running = [process for process in running if process.poll() is None]
        if not running:
            return


class BrokerFailedToStart(Exception):
    pass


def metadata_request(correlation_id: int) -> bytes:
    """Metadata v1 asking for no topics: the cheapest answer a broker can give."""
    client_id = b"kbroker-bench"
    body = struct.pack(">hhih", METADATA_API_KEY, METADATA_VERSION, correlation_id, len(client_id)) + client_id
    body += struct.pack(">i", 0)  # topics: empty array (null would mean all topics)
    return struct.pack(">i", len(body)) + body


def ask_metadata(host: str, port: int, timeout_s: float) -> bytes:
    """The Metadata v1 answer, response header included."""
    with socket.create_connection((host, port), timeout=timeout_s) as sock:
        sock.sendall(metadata_request(correlation_id=1))
        answer = wire.read_frame(sock)
    (correlation_id,) = struct.unpack_from(">i", answer)
    if correlation_id != 1:
        raise ConnectionError(f"Metadata answer carries correlation id {correlation_id}, expected 1")
    return answer


def cluster_view(answer: bytes) -> tuple[set[int], int]:
    """(the broker ids, the controller id) of a Metadata v1 answer.

    After the correlation id: brokers [node_id i32, host string, port i32, rack nullable
    string], then controller_id i32 (-1 while there is none).
    """
    offset = 4
    (count,) = struct.unpack_from(">i", answer, offset)
    offset += 4
    broker_ids = set()
    for _ in range(count):
        node_id, host_length = struct.unpack_from(">ih", answer, offset)
        offset += 6 + host_length + 4  # node id, host, port
        (rack_length,) = struct.unpack_from(">h", answer, offset)
        offset += 2 + max(rack_length, 0)
        broker_ids.add(node_id)
    (controller_id,) = struct.unpack_from(">i", answer, offset)
    return broker_ids, controller_id


def wait_for_metadata(host: str, port: int, process: subprocess.Popen) -> None:
    """Polls every millisecond or so (the start time is measured) until a Metadata request gets its answer."""
    last_error: list[Exception] = []

    def answered_or_exited() -> bool:
        if process.poll() is not None:
            return True
        try:
            ask_metadata(host, port, timeout_s=5.0)
            return True
        except (OSError, wire.ConnectionClosed) as exc:  # refused while it starts, closed if it stops early
            last_error[:] = [exc]
            return False

    try:
        eventually(answered_or_exited, what="a Metadata answer", timeout=START_TIMEOUT_S, interval=0.001)
    except AssertionError:
        raise BrokerFailedToStart(
            f"no Metadata answer within {START_TIMEOUT_S:.0f} s (last: {last_error[0] if last_error else None})"
        ) from None
    if process.poll() is not None:
        raise BrokerFailedToStart(f"exited with code {process.returncode} before answering Metadata")


# ------------------------------------------------------------------------------ /proc


def parent_pids() -> dict[int, int]:
    parents = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                parents[int(entry)] = int(stat.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return parents


def process_tree(root: int) -> list[int]:
    """`root` and all its descendants alive now."""
    parents = parent_pids()
    tree, frontier = [], [root] if root in parents else []
    while frontier:
        pid = frontier.pop()
        tree.append(pid)
        frontier.extend(child for child, parent in parents.items() if parent == pid)
    return tree


def rss_mib_of(pids: list[int]) -> float | None:
    """Sum of VmRSS over `pids` in MiB; None when there is nothing to read."""
    total_kib, seen = 0, False
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        total_kib += int(line.split()[1])
                        seen = True
                        break
        except OSError:
            continue
    return total_kib / 1024 if seen else None


def cpu_seconds_of(pids: list[int]) -> float | None:
    ticks, seen = 0, False
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])
        seen = True
    return ticks / CLOCK_TICKS if seen else None
