"""scripts/chaos's cluster: a real ZooKeeper and three kbroker processes (kbroker.testing's
ZooKeeperProcess and KafkaCluster), each placed on its node of the chaos network, plus what the
nemeses and the checker ask of it: is it healthy, heal everything, the replicas' log files.

Broker DISK_BROKER has two log dirs, one of them a small tmpfs (kbroker.testing.disk_faults)
that the disk-full nemesis fills, when this runs as root; otherwise that nemesis is skipped.

Every process is started through kbroker.testing, which keeps its Popen and stops it by pid;
`ChaosCluster.close()` stops them all (also after a failure or Ctrl-C), unmounts the tmpfs and
then removes the network.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chaos_fuse import FailingFs
from chaos_net import Network, Node
from kazoo.exceptions import KazooException

from kbroker.testing.cluster import KafkaCluster
from kbroker.testing.disk_faults import Tmpfs
from kbroker.testing.processes import BrokerLauncher, BrokerProcess, kill_group
from kbroker.testing.waiting import eventually
from kbroker.testing.zookeeper import ZooKeeperProcess

BROKER_IDS = (1, 2, 3)
SESSION_TIMEOUT_MS = 6000
REPLICA_LAG_MS = 5000
OFFSETS_PARTITIONS = 6  # fewer than Kafka's 50: every leader election after a kill is quicker
# A restarted broker answers only once it has loaded its logs and registered, as Kafka's
# KafkaServer.startup enables request processing only after LogManager.startup and the
# registration (which waits out the killed run's session). Loading after a kill -9 recovers every
# segment from the recovery point on, which grows with the run; on a loaded machine and through the
# FUSE passthrough that took past the 15 s kbroker.testing allows (the 24-minute soak, broker 2 at
# 737 s). So a restart may take the broker's own registration wait (1.5 session timeouts + 2 s,
# server.py) plus this much for loading.
LOAD_ALLOWANCE_S = 120.0
RESTART_TIMEOUT_S = SESSION_TIMEOUT_MS * 1.5 / 1000 + 2 + LOAD_ALLOWANCE_S
# Small segments, so that the recovery point moves (it advances when a rolled segment is flushed)
# and a restart after kill -9 recovers a bounded tail, as in production where 1 GiB segments roll;
# at this rate a 1 GiB segment never would, and every restart would replay the partition's history.
SEGMENT_BYTES = 1 << 20
OVERRIDES = (
    f"zookeeper.session.timeout.ms={SESSION_TIMEOUT_MS}",
    f"replica.lag.time.max.ms={REPLICA_LAG_MS}",
    "replica.fetch.backoff.ms=200",
    "controlled.shutdown.retry.backoff.ms=200",
    "auto.create.topics.enable=false",
    "min.insync.replicas=2",
    "offsets.topic.replication.factor=3",
    f"offsets.topic.num.partitions={OFFSETS_PARTITIONS}",
    f"transaction.state.log.num.partitions={OFFSETS_PARTITIONS}",
    "group.initial.rebalance.delay.ms=0",
    "unclean.leader.election.enable=false",
    f"log.segment.bytes={SEGMENT_BYTES}",
)
OFFSETS_TOPIC = "__consumer_offsets"
DISK_BROKER = 3
# More than a run writes to it (a 30-minute soak wrote past 32 MiB and took the dir offline for
# good: its replicas left the ISR, which the checker reported as unhealed); the nemesis fills
# what is left, so the size costs memory only while it is full.
DISK_SIZE = "512m"
FILLER = "chaos-filler"
EIO_BROKER = 2  # its first log dir is the FUSE passthrough that fails with EIO on demand (chaos_fuse.py)


class PlacedLauncher(BrokerLauncher):
    """Starts broker N on node `bN` of the network (its address, port and namespace)."""

    def __init__(self, root: Path, nodes: dict[str, Node]) -> None:
        super().__init__(root)
        self.nodes = nodes

    def make_broker(self, workdir: Path, overrides: list[str], _port: int | None) -> BrokerProcess:
        broker_id = next(o.split("=", 1)[1] for o in overrides if o.startswith("broker.id="))
        node = self.nodes[f"b{broker_id}"]
        return BrokerProcess(workdir, overrides, node.port, host=node.host,
                             argv_prefix=node.argv_prefix)


def quiet(read: Callable[[], Any], default: Any) -> Any:
    """A znode read that answers `default` while ZooKeeper is away (the zookeeper nemesis)."""
    try:
        return read()
    except (KazooException, OSError):
        return default


class ChaosCluster:
    def __init__(self, workdir: Path, network: Network, topic: str, partitions: int) -> None:
        self.network = network
        self.topic = topic
        self.partitions = partitions
        zk = network.nodes["zk"]
        self.zookeeper = ZooKeeperProcess(workdir / "zookeeper", host=zk.host, port=zk.port,
                                          argv_prefix=zk.argv_prefix)
        self.launcher = PlacedLauncher(workdir, network.nodes)
        self.disk = Tmpfs(workdir / f"broker{DISK_BROKER}-tmpfs", DISK_SIZE)
        self.disk_unavailable: str | None = None
        self.disk_log_dirs = [self.disk.mount_point, workdir / f"broker{DISK_BROKER}-disk"]
        self.failing_fs = FailingFs(workdir / f"broker{EIO_BROKER}-fuse-backing", workdir / f"broker{EIO_BROKER}-fuse")
        self.failing_fs_unavailable: str | None = None
        self.eio_log_dirs = [self.failing_fs.mount_point, workdir / f"broker{EIO_BROKER}-disk"]
        self.kafka = KafkaCluster(self.launcher, self.zookeeper.connect_string, len(BROKER_IDS), OVERRIDES,
                                  broker_overrides={DISK_BROKER: (f"log.dirs={','.join(map(str, self.disk_log_dirs))}",),
                                                    EIO_BROKER: (f"log.dirs={','.join(map(str, self.eio_log_dirs))}",)})

    @property
    def bootstrap(self) -> str:
        return self.kafka.bootstrap

    def start(self) -> None:
        self.disk_unavailable = self.disk.mount()
        if self.disk_unavailable is not None:
            self.kafka.broker_overrides.pop(DISK_BROKER)  # one ordinary log dir
        self.failing_fs_unavailable = self.failing_fs.mount()
        if self.failing_fs_unavailable is not None:
            self.kafka.broker_overrides.pop(EIO_BROKER)
        self.zookeeper.start()
        self.kafka.start()

    def close(self) -> None:
        """Stop every process this run started, by pid, unmount the tmpfs, remove the network."""
        try:
            self.kafka.stop()
            self.launcher.stop_all()
            self.zookeeper.stop()
            self.disk.unmount()
            self.failing_fs.unmount()
        finally:
            self.network.close()

    # -- reading the cluster's state -------------------------------------------------------------
    def live(self) -> set[int]:
        return quiet(self.kafka.live_broker_ids, set())

    def controller(self) -> int | None:
        return quiet(self.kafka.controller_id, None)

    def leader(self, partition: int) -> int:
        return quiet(lambda: self.kafka.leader(self.topic, partition), -1)

    def epoch(self, broker_id: int) -> int:
        return quiet(lambda: self.kafka.broker_epoch(broker_id), None) or -1

    def unhealthy(self) -> str | None:
        """Why the cluster is not whole yet (a broker down, no controller, a partition without a
        leader or with a short ISR), or None."""
        down = [b for b in BROKER_IDS if not self.kafka.brokers[b].alive()]
        if down:
            return f"brokers {down} not running"
        if self.live() != set(BROKER_IDS):
            return f"registered brokers {sorted(self.live())}"
        if self.controller() is None:
            return "no controller"
        for topic, count in ((self.topic, self.partitions), (OFFSETS_TOPIC, OFFSETS_PARTITIONS)):
            for partition in range(count):
                state = quiet(lambda t=topic, p=partition: self.kafka.partition_state(t, p), None)
                if topic == OFFSETS_TOPIC and state is None:
                    break  # created with the group's first request
                if state is None or state["leader"] not in BROKER_IDS or len(state["isr"]) != len(BROKER_IDS):
                    return f"{topic}-{partition} state {state}"
        return None

    def wait_healthy(self, timeout: float) -> float:
        """Seconds until the cluster was whole; raises AssertionError with the last reason."""
        started = time.monotonic()
        eventually(lambda: self.unhealthy() is None, what="the cluster to be whole (full ISRs)", timeout=timeout,
                   interval=0.25)
        return time.monotonic() - started

    def wait(self, condition: Callable[[], object], what: str, timeout: float = 30.0) -> None:
        eventually(condition, what=what, timeout=timeout, interval=0.1)

    # -- healing ---------------------------------------------------------------------------------------
    def heal_everything(self) -> None:
        """Undo whatever a nemesis left behind: routes, paused brokers, ZooKeeper, a full disk, dead
        brokers."""
        self.network.heal_all()
        self.free_disk()
        self.failing_fs.fail(False)
        for broker_id in list(self.kafka.paused):
            self.kafka.resume(broker_id)
        if self.zookeeper.proc is None or self.zookeeper.proc.poll() is not None:
            self.zookeeper.start()
        for broker_id in BROKER_IDS:
            if not self.kafka.brokers[broker_id].alive():
                self.restart_after_expiry(broker_id)

    def restart_after_expiry(self, broker_id: int) -> None:
        """Start a killed broker again once ZooKeeper has dropped its old registration."""
        self.wait(lambda: broker_id not in self.live(), f"broker {broker_id}'s old session to expire",
                  timeout=SESSION_TIMEOUT_MS / 1000 + 20)
        self.restart(broker_id)
        self.wait(lambda: broker_id in self.live(), f"broker {broker_id} to register again")

    def restart(self, broker_id: int) -> None:
        """Start a stopped or killed broker; returns once it answers (RESTART_TIMEOUT_S)."""
        self.kafka.brokers[broker_id].start(RESTART_TIMEOUT_S)

    def free_disk(self) -> None:
        (self.disk.mount_point / FILLER).unlink(missing_ok=True)

    def kill_zookeeper(self) -> None:
        if self.zookeeper.proc is not None:
            kill_group(self.zookeeper.proc)

    # -- the replicas' files ---------------------------------------------------------------------------
    def log_dirs(self, broker_id: int) -> list[Path]:
        if broker_id == DISK_BROKER and self.disk.mounted:
            return self.disk_log_dirs
        if broker_id == EIO_BROKER and self.failing_fs.mounted:  # its files read beneath the passthrough
            return [self.failing_fs.backing, *self.eio_log_dirs[1:]]
        return [self.kafka.brokers[broker_id].log_dir]

    def replica_logs(self, partition: int) -> dict[int, bytes]:
        """Each replica's segments of the partition, concatenated in offset order."""
        replicas = quiet(lambda: self.kafka.replicas(self.topic, partition), list(BROKER_IDS))
        logs = {}
        for broker_id in replicas:
            segments = [p for d in self.log_dirs(broker_id) for p in (d / f"{self.topic}-{partition}").glob("*.log")]
            logs[broker_id] = b"".join(p.read_bytes() for p in sorted(segments, key=lambda p: p.name))
        return logs
