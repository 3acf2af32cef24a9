"""An in-process cluster for the replication tests: several brokers' replication parts in one
event loop, talking over real 127.0.0.1 sockets, under the real KafkaController on the
embedded znode store.

Each `Node` has a LogManager, ReplicaManager, ReplicaFetcherManager, AlterPartitionManager and a
SocketServer serving the real handlers (Fetch, ListOffsets, OffsetForLeaderEpoch, AlterPartition
when it hosts the controller). The controller's requests reach nodes through `InProcessCluster`,
which stands in for the ControllerChannelManager and delivers them on the loop, in order;
a node marked down gets nothing, as a dead broker would.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterable
from typing import Any

from kbroker.api.controller_requests import deliver_locally
from kbroker.api.kafka_apis import KafkaApis
from kbroker.config import KafkaConfig
from kbroker.controller.kafka_controller import KafkaController
from kbroker.log.config import LogConfig
from kbroker.log.log_manager import LogManager
from kbroker.log.unified_log import UnifiedLog
from kbroker.metadata import zk_data as zk
from kbroker.metadata.admin_zk_client import AdminZkClient
from kbroker.metadata.kafka_zk_client import KafkaZkClient
from kbroker.metadata.metadata_cache import MetadataCache
from kbroker.metadata.znode_store import EmbeddedZNodeStore
from kbroker.network.socket_server import SocketServer
from kbroker.protocol.errors import Errors
from kbroker.replica.alter_partition_manager import AlterPartitionManager
from kbroker.replica.fetch_session import FetchManager, FetchSessionCache
from kbroker.replica.partition import Partition
from kbroker.replica.replica_fetcher import FetcherConfig, InitialFetchState, ReplicaFetcherManager
from kbroker.replica.replica_manager import ProduceResult, ReplicaManager
from kbroker.security.client_quota_manager import ClientQuotaManagers
from kbroker.testing import waiting
from kbroker.testing.batches import producer_batch

LAG_MS = 10_000


class Node:
    """One broker's replication parts; the handlers see it as `ctx.services`."""

    def __init__(self, broker_id: int, root: str | os.PathLike, *, truncate_on_fetch: bool = True, lag_ms: int = LAG_MS,
                 topic_configs: dict[str, dict[str, str]] | None = None, log_dir_count: int = 1) -> None:
        self.broker_id = broker_id
        self.metadata_cache = MetadataCache(broker_id)
        self.controller: KafkaController | None = None
        base = LogConfig()
        log_dirs = [os.path.join(str(root), f"broker{broker_id}" + (f"-{n}" if n else "")) for n in range(log_dir_count)]
        # The broker settings handlers read (Fetch: fetch.max.bytes), at Kafka's defaults.
        self.config = KafkaConfig.load(overrides={"broker.id": str(broker_id), "log.dirs": ",".join(log_dirs)},
                                       defaults={})
        self.log_manager = LogManager(log_dirs, cluster_id="replication-tests", broker_id=broker_id,
                                      default_config=base)
        configs = topic_configs if topic_configs is not None else {}
        self.replica_manager = ReplicaManager(broker_id, self.log_manager, self.metadata_cache,
                                              lambda topic: configs.get(topic, {}), base,
                                              replica_lag_time_max_ms=lag_ms)
        fetcher_config = FetcherConfig(broker_id, fetch_wait_max_ms=100, fetch_backoff_ms=50,
                                       truncate_on_fetch=truncate_on_fetch)
        self.fetchers = ReplicaFetcherManager(fetcher_config, self.replica_manager, lambda: -1)
        self.alter_partition = AlterPartitionManager(broker_id, lambda: -1, self.metadata_cache, "PLAINTEXT")
        self.replica_manager.replica_fetcher_manager = self.fetchers
        self.replica_manager.alter_partition_manager = self.alter_partition
        self.down = False
        # No group coordinator here: UpdateMetadata's apply has no group offsets to drop.
        self.started_group_coordinator = None
        # Before KafkaApis, which reads them once:
        self.sasl_listeners: dict = {}  # BrokerServices': no SASL listener here
        self.authorizer = None  # no authorizer.class.name: the handlers allow everything
        self.client_quotas = ClientQuotaManagers()  # no quota set: KafkaApis does no quota work
        self.fetch_manager = self.started_fetch_manager = FetchManager(FetchSessionCache())  # KIP-227 sessions
        # A Node stands in for the broker the handlers are typed against: it has only the
        # replication parts the handlers served here use, so it is not that type.
        self.server = SocketServer("127.0.0.1", 0, KafkaApis(self).process)  # type: ignore[arg-type]

    @property
    def port(self) -> int:
        return self.server.port

    def partition(self, topic: str, index: int = 0) -> Partition | None:
        return self.replica_manager.get_partition(topic, index)

    def log(self, topic: str, index: int = 0) -> UnifiedLog | None:
        return self.log_manager.get_log(topic, index)

    def log_bytes(self, topic: str, index: int = 0) -> bytes:
        """Every segment's bytes, in order."""
        unified_log = self.log(topic, index)
        assert unified_log is not None, f"broker {self.broker_id} has no log of {topic}-{index}"
        return b"".join(s.read_bytes(0, s.size) for s in unified_log.log_segments())

    def pause_fetching(self, tp: tuple[str, int]) -> InitialFetchState:
        """The follower stops fetching `tp` (a stuck fetcher); returns what resumes it."""
        manager = self.fetchers
        state = manager.remove_fetcher_for_partitions([tp])[tp]
        leader = next(f.leader for f in manager.fetchers.values())
        manager.shutdown_idle_fetcher_threads()
        return InitialFetchState(state.topic_id, leader, state.current_leader_epoch, state.fetch_offset,
                                 state.last_fetched_epoch)

    def resume_fetching(self, tp: tuple[str, int], initial: InitialFetchState) -> None:
        self.fetchers.add_fetcher_for_partitions({tp: initial})

    async def produce(self, topic: str, count: int, acks: int = -1, timeout_ms: int = 5000,
                      index: int = 0) -> ProduceResult:
        records = producer_batch([b"%s-%d-%d" % (topic.encode(), self.broker_id, i) for i in range(count)])
        result = self.replica_manager.append_to_partition(topic, index, memoryview(records), acks)
        if acks == -1 and result.error == Errors.NONE:
            await self.replica_manager.wait_for_acks({(topic, index): result}, timeout_ms)
        return result

    async def close(self) -> None:
        await self.fetchers.close()
        await self.alter_partition.close()
        await self.server.shutdown(0.5)
        self.log_manager.close()


class InProcessCluster:
    """Nodes plus a KafkaController on an embedded znode store; also the controller's channel."""

    def __init__(self, root: str | os.PathLike, broker_ids: Iterable[int] = (1, 2, 3), controller_id: int = 3,
                 **node_options: Any) -> None:
        self.root = root
        self.nodes = {b: Node(b, root, **node_options) for b in broker_ids}
        self.controller_id = controller_id
        self.zk = KafkaZkClient(EmbeddedZNodeStore(os.path.join(str(root), "zk"), notify=_call_soon))
        self.controller = KafkaController(controller_id, self.zk, self, "PLAINTEXT")

    async def start(self) -> InProcessCluster:
        for node in self.nodes.values():
            await node.server.start()
        self.zk.create_top_level_paths()
        for broker_id in self.nodes:
            self.register(broker_id)
        self.nodes[self.controller_id].controller = self.controller
        assert self.controller.elect()
        await settle()
        return self

    async def close(self) -> None:
        for node in self.nodes.values():
            await node.close()

    # -- the controller's channel -----------------------------------------------------------------
    # ControllerChannel.send: `_version` says how to encode the request; delivered in-process, it is not.
    def send(self, broker_id: int, api_key: int, _version: int, request: dict,
             on_response: Callable[[dict], None] | None = None) -> None:
        asyncio.get_running_loop().call_soon(self._deliver, broker_id, api_key, request, on_response)

    def add_broker(self, broker_id: int, host: str, port: int) -> None:
        pass

    def remove_broker(self, broker_id: int) -> None:
        pass

    def _deliver(self, broker_id: int, api_key: int, request: dict,
                 on_response: Callable[[dict], None] | None) -> None:
        node = self.nodes.get(broker_id)
        if node is None or node.down:
            return  # a dead broker never answers
        # The same apply functions a broker runs for its own controller; the Node stands in for
        # the services, as it does for the handlers.
        response = deliver_locally(node, api_key, request) or {"error_code": 0}  # type: ignore[arg-type]
        if on_response is not None:  # the controller waits for StopReplica answers to finish a deletion
            on_response(response)

    # -- membership --------------------------------------------------------------------------------
    def register(self, broker_id: int) -> None:
        port = self.nodes[broker_id].port
        self.zk.register_broker(zk.BrokerRegistration(broker_id, [("PLAINTEXT", "127.0.0.1", port, "PLAINTEXT")]))

    async def fail(self, broker_id: int) -> None:
        """The broker dies as far as the cluster can tell: its registration goes, it hears
        nothing more and its fetchers stop (its files stay, as after kill -9)."""
        node = self.nodes[broker_id]
        node.down = True
        fetchers = node.fetchers
        fetchers.remove_fetcher_for_partitions(list(node.replica_manager.partitions))
        fetchers.shutdown_idle_fetcher_threads()
        self.zk.store.delete(zk.broker_path(broker_id))
        await settle()

    async def restore(self, broker_id: int) -> None:
        self.nodes[broker_id].down = False
        self.register(broker_id)
        await settle()

    # -- topics and state ----------------------------------------------------------------------------
    async def create_topic(self, name: str, assignment: dict[int, list[int]]) -> None:
        AdminZkClient(self.zk).create_topic(name, assignment, {})
        await settle()

    def state(self, topic: str, index: int = 0) -> zk.LeaderIsrAndControllerEpoch:
        state = self.zk.get_partition_state(topic, index)
        assert state is not None, f"{topic}-{index} has no state znode"
        return state


def _call_soon(callback: Callable[[], None]) -> None:
    """The znode store's `notify`: watches run on the loop, as the broker's kazoo store hands them over."""
    asyncio.get_running_loop().call_soon(callback)


async def settle(rounds: int = 20) -> None:
    """Let callbacks scheduled on the loop (watches, deliveries) run: more rounds than a lone
    coordinator needs, since a delivery schedules the next hop."""
    await waiting.settle(rounds)

