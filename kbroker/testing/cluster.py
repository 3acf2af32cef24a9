"""A cluster of kbroker processes against the `zookeeper` fixture, for the cluster compat tests.

`KafkaCluster` starts brokers 1..N on 127.0.0.1 through a BrokerLauncher (so the fixtures' log
capture and teardown apply), each with `broker.id`, `zookeeper.connect` in its own chroot and
the overrides given. It reads partition state straight from the znodes with kazoo, kills,
pauses (SIGSTOP) and resumes brokers, and at `stop()` resumes any paused broker and stops
them all at once (SIGTERM to all, then SIGKILL for any still running after the timeout).
`add_broker()` starts one more broker without a broker.id (ZooKeeper generates one), and
`metadata(broker_id)` asks that one broker for Metadata v12 over a raw socket, decoded by
kafka-python, when a test must know which broker answered (on another of its listeners with
`port`).
It only reads znodes and signals the processes it started; the repository is never touched.
"""

from __future__ import annotations

import itertools
import json
import re
import signal
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kazoo.client import KazooClient

from kbroker.testing import admin, wire
from kbroker.testing.processes import BrokerLauncher, BrokerProcess
from kbroker.testing.waiting import eventually

STOP_TIMEOUT_S = 10.0
METADATA_VERSION = 12
METADATA_API_KEY = 3
_correlation_ids = itertools.count(1)


class KafkaCluster:
    def __init__(self, launcher: BrokerLauncher, zookeeper: str, size: int = 3, overrides: tuple[str, ...] = (),
                 broker_overrides: dict[int, tuple[str, ...]] | None = None,
                 broker_ports: dict[int, int] | None = None):
        """`broker_overrides` and `broker_ports` give one broker more overrides (its log.dirs, its
        listeners) and the port where the tests and `bootstrap` reach it."""
        self.launcher = launcher
        self.chroot = f"/kbroker-cluster-{uuid.uuid4().hex[:8]}"
        self.zookeeper_connect = f"{zookeeper}{self.chroot}"
        self.size = size
        self.overrides = overrides
        self.broker_overrides = broker_overrides or {}  # more overrides for one broker id (its log.dirs)
        self.broker_ports = broker_ports or {}
        self.brokers: dict[int, BrokerProcess] = {}
        self.paused: set[int] = set()
        self.zk = KazooClient(hosts=zookeeper + self.chroot, timeout=10)

    def __enter__(self) -> KafkaCluster:
        """Starts the cluster; leaving the block stops every process, also after a failure."""
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def start(self) -> KafkaCluster:
        for broker_id in range(1, self.size + 1):
            self.brokers[broker_id] = self.launcher.start(
                f"broker.id={broker_id}", f"zookeeper.connect={self.zookeeper_connect}", *self.overrides,
                *self.broker_overrides.get(broker_id, ()), port=self.broker_ports.get(broker_id))
        self.zk.start(timeout=10)
        self.wait_for(lambda: self.live_broker_ids() == set(self.brokers), what="every broker to register")
        self.wait_for(self.every_broker_knows_the_cluster, what="every broker's Metadata to name the controller and all brokers")
        return self

    def every_broker_knows_the_cluster(self) -> bool:
        """Each broker has had the controller's UpdateMetadata: its Metadata names the controller
        and every broker. Before that a broker answers controller -1, and an admin client that
        asked it first (librdkafka) waits for its next metadata refresh before it sends anything.
        Asked with kbroker's codec (admin.call), so a cluster starts with only kbroker installed."""
        for broker in self.brokers.values():
            answer = admin.call(broker.port, METADATA_API_KEY, METADATA_VERSION,
                                {"topics": [], "allow_auto_topic_creation": False,
                                 "include_topic_authorized_operations": False}, host=broker.host, timeout=5.0)
            if answer["controller_id"] < 0 or {b["node_id"] for b in answer["brokers"]} != set(self.brokers):
                return False
        return True

    def add_broker(self, *overrides: str) -> int:
        """Starts one more broker with no broker.id; returns the id it registered under."""
        before = self.live_broker_ids()
        broker = self.launcher.start(f"zookeeper.connect={self.zookeeper_connect}", *self.overrides, *overrides)
        self.wait_for(lambda: self.live_broker_ids() - before, what="the new broker to register")
        (broker_id,) = self.live_broker_ids() - before
        self.brokers[broker_id] = broker
        return broker_id

    @property
    def bootstrap(self) -> str:
        return ",".join(b.bootstrap for b in self.brokers.values())

    # -- znodes ---------------------------------------------------------------------------------------
    def live_broker_ids(self) -> set[int]:
        return {int(child) for child in self.zk.get_children("/brokers/ids")} if self.zk.exists("/brokers/ids") \
            else set()

    def broker_epoch(self, broker_id: int) -> int | None:
        """The czxid of the broker's registration znode (its broker epoch), or None if absent."""
        stat = self.zk.exists(f"/brokers/ids/{broker_id}")
        return None if stat is None else stat.czxid

    def controller_id(self) -> int | None:
        if not self.zk.exists("/controller"):
            return None
        return json.loads(self.zk.get("/controller")[0])["brokerid"]

    def partition_state(self, topic: str, partition: int = 0) -> dict | None:
        """The state znode as JSON plus its zkVersion (the partition epoch), or None."""
        path = f"/brokers/topics/{topic}/partitions/{partition}/state"
        if not self.zk.exists(path):
            return None
        data, stat = self.zk.get(path)
        return {**json.loads(data), "partition_epoch": stat.version}

    def leader(self, topic: str, partition: int = 0) -> int:
        state = self.partition_state(topic, partition)
        return -1 if state is None else state["leader"]

    def isr(self, topic: str, partition: int = 0) -> list[int]:
        state = self.partition_state(topic, partition)
        return [] if state is None else state["isr"]

    def replicas(self, topic: str, partition: int = 0) -> list[int]:
        data, _ = self.zk.get(f"/brokers/topics/{topic}")
        return json.loads(data)["partitions"][str(partition)]

    # -- the logs on disk ----------------------------------------------------------------------------
    def log_bytes(self, broker_id: int, topic: str, partition: int = 0) -> bytes:
        """The partition's .log segments on that broker, concatenated in offset order."""
        directory = Path(self.brokers[broker_id].log_dir) / f"{topic}-{partition}"
        return b"".join(path.read_bytes() for path in sorted(directory.glob("*.log")))

    def logs_identical(self, topic: str, partition: int = 0) -> bool:
        contents = {self.log_bytes(b, topic, partition) for b in self.replicas(topic, partition)}
        return len(contents) == 1 and b"" not in contents

    def partition_dirs(self, broker_id: int, topic: str) -> set[str]:
        """The topic's directories in the broker's log dir: `<topic>-<p>` for live logs and
        `<topic>-<p>.<uuid>-delete` for deleted ones not yet removed."""
        pattern = re.compile(rf"{re.escape(topic)}-\d+(\.[0-9a-f]{{32}}-delete)?")
        log_dir = Path(self.brokers[broker_id].log_dir)
        return {p.name for p in log_dir.iterdir() if p.is_dir() and pattern.fullmatch(p.name)}

    # -- asking one broker --------------------------------------------------------------------------
    def metadata(self, broker_id: int, topics: list[str] | None = None, timeout: float = 5.0,
                 port: int | None = None) -> Any:
        """Metadata v12 from that broker alone (a client would pick any), as kafka-python decodes it;
        `port` picks another of its listeners."""
        from kafka.protocol.metadata import MetadataResponse  # a test dependency: the suites' oracle

        request = wire.metadata_request(next(_correlation_ids), METADATA_VERSION, topics)
        broker = self.brokers[broker_id]
        payload = wire.roundtrip(port or broker.port, request, timeout, host=broker.host)
        return wire.decode_with_kafka_python(MetadataResponse, payload, METADATA_VERSION)[1]

    def metadata_leader(self, broker_id: int, topic: str, partition: int = 0) -> int:
        """The leader that broker's metadata names for the partition (-1 if none or unknown)."""
        for entry in self.metadata(broker_id, [topic]).topics:
            for p in entry.partitions:
                if p.partition_index == partition and p.error_code == 0:
                    return p.leader_id
        return -1

    # -- processes ---------------------------------------------------------------------------------------
    def kill(self, broker_id: int) -> None:
        self.brokers[broker_id].kill()

    def restart(self, broker_id: int) -> None:
        self.brokers[broker_id].start()

    def pause(self, broker_id: int) -> None:
        self.paused.add(broker_id)
        self.brokers[broker_id].send_signal(signal.SIGSTOP)

    def resume(self, broker_id: int) -> None:
        self.brokers[broker_id].send_signal(signal.SIGCONT)
        self.paused.discard(broker_id)

    def stop(self) -> None:
        """SIGCONT what is paused, SIGTERM everything, SIGKILL what outlives the timeout."""
        for broker_id in list(self.paused):
            if self.brokers[broker_id].alive():
                self.resume(broker_id)
        running = [b for b in self.brokers.values() if b.alive()]
        for broker in running:
            broker.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for broker in running:
            try:
                broker.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                broker.kill()
        try:
            self.zk.stop()
            self.zk.close()
        except Exception:
            pass

    # -- waiting ------------------------------------------------------------------------------------------
    @staticmethod
    def wait_for(condition: Callable[[], object], timeout: float = 30.0, what: str = "condition",
                 interval: float = 0.1) -> float:
        """Polls until `condition()` holds (see `eventually`); returns the seconds it took, for reports."""
        started = time.monotonic()
        eventually(condition, what=what, timeout=timeout, interval=interval)
        return time.monotonic() - started
