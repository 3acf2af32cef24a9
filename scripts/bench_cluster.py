"""A three-broker kbroker cluster for scripts/bench's cluster scenarios: a throwaway ZooKeeper and
kbroker processes that register in it, each on a free port and a fresh data directory.

ZooKeeper is Debian's, started by kbroker.testing's ZooKeeperProcess
(one way of starting and awaiting it in the project, not two). The brokers are started by
bench_broker.start_broker, the same code as the single-broker scenarios, with broker.id and
zookeeper.connect (in a chroot of its own) as extra overrides. A cluster is ready once every
broker's Metadata answer lists all of them and names a controller. Stops only what it started,
and everything it started, also when the start fails half-way. Knows nothing of kbroker's
internals: it reads Metadata answers, /proc, and the sizes of the segment files in each broker's
data directory (Kafka's layout: `<log.dirs>/<topic>-<partition>/<20-digit offset>.log`).

Replication cost per broker (issue 15): after each cluster sample, `replication_figures` gives
every broker's `replicated_bytes_each`, the bytes of record batches in that broker's log of the
scenario's topic (the sum of its `.log` segment files, the same on the leader and on a follower,
which stores the leader's batches byte for byte: record values plus record and batch framing),
and `broker_cpu_s_per_replicated_gb_each`, that broker's CPU seconds in the sample's window
divided by those bytes in GB (10^9). For a produce scenario the log was empty before the window,
so the bytes are what the window replicated; a consume scenario reads its dataset's topic, and
its figure is the CPU of reading back what had been replicated there.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench_broker import (
    START_TIMEOUT_S,
    BrokerSpec,
    RunningBroker,
    ask_metadata,
    cluster_view,
    rss_mib_of,
    start_broker,
    stop_brokers,
)

from kbroker.testing.waiting import eventually
from kbroker.testing.zookeeper import ZooKeeperProcess, zookeeper_unavailable_reason

CLUSTER_SIZE = 3
CHROOT = "/kbroker-bench"
# Kafka's defaults otherwise, so replication is measured as configured out of the box; only the
# wait between controlled-shutdown attempts is cut, because all members stop at the same time.
CLUSTER_OVERRIDES = ("controlled.shutdown.retry.backoff.ms=200",)

GB = 1e9

__all__ = [
    "CLUSTER_SIZE",
    "RunningCluster",
    "log_bytes_of",
    "start_cluster",
    "stop_cluster",
    "zookeeper_unavailable_reason",
]


@dataclass
class RunningCluster:
    """Looks like a RunningBroker to the scenarios: a name, a bootstrap list, pids, exit notes."""

    name: str
    zookeeper: ZooKeeperProcess
    brokers: list[RunningBroker]
    start_ms: float
    client_config: dict[str, str] = field(default_factory=dict)  # PLAINTEXT: no security settings
    client_cpus: tuple[int, ...] = ()  # --pin-cpus applies to the single-broker scenarios only

    @property
    def bootstrap(self) -> str:
        return ",".join(broker.bootstrap for broker in self.brokers)

    def pids(self) -> list[int]:
        """Every member's process tree: CPU and RSS are those of the whole cluster."""
        return [pid for broker in self.brokers for pid in broker.pids()]

    def pid_groups(self) -> list[list[int]]:
        """Per member, in broker.id order, for each broker's CPU seconds."""
        return [broker.pids() for broker in self.brokers]

    def rss_mib(self) -> float | None:
        return rss_mib_of(self.pids())

    def replication_figures(self, topic: str, cpu_each: list[float | None] | None) -> dict:
        """Per broker (broker.id order): the bytes of `topic` in its log, and its CPU seconds in
        `cpu_each` (a sample's broker_cpu_s_each) per GB of them."""
        written = [log_bytes_of(broker.data_dir, topic) for broker in self.brokers]
        cpus = cpu_each if cpu_each and len(cpu_each) == len(written) else [None] * len(written)
        return {
            "replicated_bytes_each": written,
            "broker_cpu_s_per_replicated_gb_each": [
                cpu / (size / GB) if cpu is not None and size else None for cpu, size in zip(cpus, written, strict=True)
            ],
        }

    def exit_note(self) -> str:
        notes = [broker.exit_note() for broker in self.brokers]
        if self.zookeeper.proc is not None and self.zookeeper.proc.poll() is not None:
            notes.append(f"ZooKeeper exited with code {self.zookeeper.proc.returncode}")
        return "; ".join(note for note in notes if note)


def log_bytes_of(data_dir: str | None, topic: str) -> int | None:
    """Bytes of `topic`'s `.log` segment files, every partition, in a broker's data directory (None
    when it is not known: a broker the bench did not start). Directories of other topics sharing
    the name as a prefix, and `-delete` / `-future` ones, are not counted."""
    if data_dir is None:
        return None
    total = 0
    for partition_dir in Path(data_dir).iterdir():
        name, _, partition = partition_dir.name.rpartition("-")
        if name == topic and partition.isdigit():
            total += sum(segment.stat().st_size for segment in partition_dir.glob("*.log"))
    return total


def member_spec(broker_id: int, zookeeper_connect: str) -> BrokerSpec:
    overrides = (f"broker.id={broker_id}", f"zookeeper.connect={zookeeper_connect}{CHROOT}", *CLUSTER_OVERRIDES)
    return BrokerSpec(f"kbroker-{broker_id}", overrides=overrides)


def start_cluster(name: str, work_dir: str, size: int = CLUSTER_SIZE) -> RunningCluster:
    """ZooKeeper, then brokers 1..size; returns once every broker sees the whole cluster."""
    started = time.perf_counter()
    zookeeper = ZooKeeperProcess(Path(tempfile.mkdtemp(prefix="zookeeper-", dir=work_dir)))
    brokers: list[RunningBroker] = []
    try:
        zookeeper.start()
        for broker_id in range(1, size + 1):
            brokers.append(start_broker(member_spec(broker_id, zookeeper.connect_string), work_dir))
        wait_for_cluster(brokers, set(range(1, size + 1)))
    except BaseException:
        stop_brokers(brokers)
        zookeeper.stop()
        raise
    return RunningCluster(name, zookeeper, brokers, (time.perf_counter() - started) * 1000)


def wait_for_cluster(brokers: list[RunningBroker], broker_ids: set[int]) -> None:
    """Until each broker's Metadata lists every id in `broker_ids` and a controller (one deadline for all)."""
    deadline = time.monotonic() + START_TIMEOUT_S
    for broker in brokers:
        eventually(
            lambda broker=broker: sees_cluster(broker, broker_ids),
            what=f"{broker.name} to see brokers {sorted(broker_ids)} and a controller",
            timeout=max(0.0, deadline - time.monotonic()),
            interval=0.02,
        )


def sees_cluster(broker: RunningBroker, broker_ids: set[int]) -> bool:
    """Whether the broker's Metadata lists exactly `broker_ids` and a controller among them."""
    if note := broker.exit_note():
        raise RuntimeError(note)
    host, port = broker.bootstrap.rsplit(":", 1)
    seen_ids, controller_id = cluster_view(ask_metadata(host, int(port), timeout_s=5.0))
    return seen_ids == broker_ids and controller_id in broker_ids


def stop_cluster(cluster: RunningCluster) -> None:
    """The brokers together (SIGTERM, then SIGKILL), then ZooKeeper."""
    try:
        stop_brokers(cluster.brokers)
    finally:
        cluster.zookeeper.stop()
