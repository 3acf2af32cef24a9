"""KafkaBroker: a real kbroker for your application's tests, in one line.

    from kbroker.testing import KafkaBroker

    with KafkaBroker(num_partitions=3) as broker:
        producer = Producer({"bootstrap.servers": broker.bootstrap_servers})
        ...

    async with KafkaBroker() as broker:          # the same from asyncio (start-up runs in a thread)
        ...

    with KafkaBroker(brokers=3) as cluster:      # three brokers and a ZooKeeper (Debian's package)
        ...

Each broker is a `python -m kbroker` subprocess on a free 127.0.0.1 port with its own temporary
data directory, removed when the broker stops (unless `data_dir` is given). Settings are keyword
arguments with `_` for `.` (`log_retention_ms=1000`) or a `settings` dict with Kafka's own keys
(`{"log.retention.ms": "1000"}`). Starting and stopping are guarded by a lock, so one instance
may be shared by threads. Everything it starts it stops, by pid, also when a start fails.

This module starts processes and talks to them over sockets only; it imports nothing of the
broker itself (so the broker under test is exactly what `python -m kbroker` runs).
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kbroker.testing.processes import BrokerLauncher, BrokerProcess
from kbroker.testing.waiting import eventually

__all__ = ["KafkaBroker"]


def _setting_overrides(settings: Mapping[str, Any] | None, keyword_settings: Mapping[str, Any]) -> list[str]:
    """`key=value` overrides: the dict's keys as given, keyword names with `_` read as `.`."""
    merged = {**{name.replace("_", "."): value for name, value in keyword_settings.items()}, **(settings or {})}
    return [f"{key}={_setting_text(value)}" for key, value in merged.items()]


def _setting_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(str(item) for item in value)
    return str(value)


class KafkaBroker:
    """One broker (or a cluster of `brokers` with ZooKeeper) for the length of a `with` block."""

    def __init__(self, brokers: int = 1, *, data_dir: str | Path | None = None,
                 settings: Mapping[str, Any] | None = None, **keyword_settings: Any) -> None:
        if brokers < 1:
            raise ValueError("brokers must be at least 1")
        self.brokers = brokers
        self.overrides = _setting_overrides(settings, keyword_settings)
        self._given_dir = Path(data_dir) if data_dir is not None else None
        self._root: Path | None = None
        self._launcher: BrokerLauncher | None = None
        self._zookeeper: Any = None  # ZooKeeperProcess, imported only for a cluster
        self._cluster: Any = None  # KafkaCluster, likewise (it needs kazoo)
        self._lock = threading.Lock()

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> KafkaBroker:
        """Start the broker(s) and wait until each answers ApiVersions; idempotent."""
        with self._lock:
            if self._launcher is not None:
                return self
            root = self._given_dir or Path(tempfile.mkdtemp(prefix="kbroker-test-"))
            root.mkdir(parents=True, exist_ok=True)
            self._root, self._launcher = root, BrokerLauncher(root)
            try:
                if self.brokers == 1:
                    self._launcher.start(*self.overrides)
                else:
                    self._start_cluster(root)
            except BaseException:
                self._stop_locked()
                raise
            return self

    def _start_cluster(self, root: Path) -> None:
        from kbroker.testing.cluster import KafkaCluster
        from kbroker.testing.zookeeper import ZooKeeperProcess, zookeeper_unavailable_reason

        reason = zookeeper_unavailable_reason()
        if reason:
            raise RuntimeError(f"a {self.brokers}-broker cluster needs ZooKeeper: {reason}")
        self._zookeeper = ZooKeeperProcess(root / "zookeeper").start()
        assert self._launcher is not None
        self._cluster = KafkaCluster(self._launcher, self._zookeeper.connect_string, size=self.brokers,
                                     overrides=tuple(self.overrides))
        self._cluster.start()

    def stop(self) -> None:
        """Stop every process this instance started (SIGTERM, then SIGKILL) and remove its data."""
        with self._lock:
            self._stop_locked()

    def _stop_locked(self) -> None:
        if self._cluster is not None:
            self._cluster.stop()  # its brokers and its ZooKeeper session
        if self._launcher is not None:
            self._launcher.stop_all()
        if self._zookeeper is not None:
            self._zookeeper.stop()
        if self._root is not None and self._given_dir is None:
            shutil.rmtree(self._root, ignore_errors=True)
        self._cluster = self._zookeeper = self._launcher = self._root = None

    def __enter__(self) -> KafkaBroker:
        return self.start()

    def __exit__(self, *_exc_info: object) -> None:
        self.stop()

    async def __aenter__(self) -> KafkaBroker:
        return await asyncio.to_thread(self.start)

    async def __aexit__(self, *_exc_info: object) -> None:
        await asyncio.to_thread(self.stop)

    # -- what a test needs ---------------------------------------------------------------------
    @property
    def processes(self) -> list[BrokerProcess]:
        """The broker processes (their pids, ports, output), in start order."""
        if self._launcher is None:
            raise RuntimeError("the broker is not started: use `with KafkaBroker() as broker:` or start()")
        return list(self._launcher.brokers)

    @property
    def bootstrap_servers(self) -> str:
        """`host:port[,host:port...]`, for any client's bootstrap.servers setting."""
        return ",".join(process.bootstrap for process in self.processes if process.alive())

    @property
    def zookeeper_connect(self) -> str | None:
        """The cluster's ZooKeeper connect string (with its chroot); None for a single broker."""
        return None if self._cluster is None else self._cluster.zookeeper_connect

    def create_topic(self, name: str, partitions: int = 1, replication_factor: int = 1,
                     config: Mapping[str, Any] | None = None) -> None:
        """Create a topic with CreateTopics (kbroker's codec, no client library needed) and wait
        until every broker's metadata names a leader for each partition, so any client may use it
        at once (in a cluster the controller tells the other brokers a moment later)."""
        from kbroker.testing.admin import create_topic, topic_has_leaders

        live = [process for process in self.processes if process.alive()]
        create_topic(live[0].port, name, partitions, replication_factor,
                     {key: _setting_text(value) for key, value in (config or {}).items()}, host=live[0].host)
        eventually(lambda: all(topic_has_leaders(p.port, name, host=p.host) for p in live),
                   what=f"every broker to know topic {name!r} and its leaders", timeout=30)
