"""KafkaServer: wires the broker's parts together, starts them in order and stops them cleanly.

Start: the metadata store (embedded, or ZooKeeper in cluster mode), the listeners, the broker's
registration under /brokers/ids, then the controller election; the controller tells this broker
its partitions and the cluster's metadata through the same requests in both modes.
Stop (SIGTERM/SIGINT): stop accepting, let in-flight requests finish, then flush and
checkpoint the services, and exit 0 within `SHUTDOWN_TIMEOUT_S`.
This is the only module that knows every service; the services must not import it.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import time
from typing import TYPE_CHECKING

from kbroker.api.kafka_apis import KafkaApis
from kbroker.api.protocol.api_keys import ApiKey
from kbroker.api.protocol.errors import Errors
from kbroker.controller.kafka_controller import KafkaController
from kbroker.metadata import zk_data
from kbroker.metadata.kafka_zk_client import KafkaZkClient
from kbroker.metadata.metadata_cache import (
    BrokerEndpoint,
    BrokerInfo,
    MetadataCache,
    random_kafka_uuid,
    uuid_to_base64,
)
from kbroker.metadata.znode_store import EmbeddedZNodeStore
from kbroker.network.socket_server import SocketServer

if TYPE_CHECKING:
    from kbroker.config import KafkaConfig

log = logging.getLogger("kbroker.server")

SHUTDOWN_TIMEOUT_S = 4.0


class KafkaServer:
    def __init__(self, config: KafkaConfig) -> None:
        self.config = config
        self.broker_id: int = config.get("broker.id")
        if self.broker_id < 0:
            self.broker_id = 0
        self.metadata_cache = MetadataCache(self.broker_id)
        self.apis = KafkaApis(self)
        # The ApiVersions answer never changes while we run: build it once.
        self.api_versions_body = [{"api_key": k, "min_version": lo, "max_version": hi}
                                  for k, lo, hi in self.apis.supported_versions()]
        self.socket_servers: list[SocketServer] = []
        self.zk_client: KafkaZkClient | None = None
        self.controller: KafkaController | None = None
        self.broker_epoch = -1
        self._stopped = asyncio.Event()

    # -- lifecycle ------------------------------------------------------------------------
    async def startup(self) -> None:
        started = time.monotonic()
        loop = asyncio.get_running_loop()
        store = EmbeddedZNodeStore(self.config.log_dirs[0], notify=loop.call_soon)
        self.zk_client = KafkaZkClient(store)
        self.zk_client.create_top_level_paths()
        self.metadata_cache.cluster_id = self.zk_client.get_or_create_cluster_id(
            uuid_to_base64(random_kafka_uuid()))
        for endpoint in self.config.listeners:
            server = SocketServer(endpoint.host, endpoint.port, self.apis.process,
                                  listener_name=endpoint.listener_name,
                                  max_request_bytes=self.config.get("socket.request.max.bytes"),
                                  max_queued_requests=self.config.get("queued.max.requests"))
            await server.start()
            self.socket_servers.append(server)
        me = self._this_broker()
        self.broker_epoch = self.zk_client.register_broker(zk_data.BrokerRegistration(
            self.broker_id, [(e.listener_name, e.host, e.port, e.security_protocol) for e in me.endpoints.values()],
            me.rack))
        self.controller = KafkaController(self.broker_id, self.zk_client, self, lambda: self.broker_epoch)
        self.controller.elect()
        bound = ", ".join(f"{s.listener_name}://{s.host}:{s.port}" for s in self.socket_servers)
        log.info("kbroker %d started in %.0f ms (cluster id %s), listening on %s", self.broker_id,
                 (time.monotonic() - started) * 1000, self.metadata_cache.cluster_id, bound)

    def _this_broker(self) -> BrokerInfo:
        """Our advertised endpoints: advertised.listeners, else the listeners as bound."""
        bound_ports = {s.listener_name: s.port for s in self.socket_servers}
        endpoints = {}
        for ep in self.config.advertised_listeners:
            host = ep.host if ep.host not in ("", "0.0.0.0", "::") else socket.getfqdn()
            port = ep.port or bound_ports.get(ep.listener_name, ep.port)
            endpoints[ep.listener_name] = BrokerEndpoint(ep.listener_name, host, port, ep.security_protocol)
        return BrokerInfo(self.broker_id, endpoints, self.config.get("broker.rack"))

    async def shutdown(self) -> None:
        log.info("shutting down")
        deadline = time.monotonic() + SHUTDOWN_TIMEOUT_S
        for server in self.socket_servers:
            server.stop_accepting()
        for server in self.socket_servers:
            await server.shutdown(max(0.1, deadline - time.monotonic()))
        log.info("shut down cleanly")

    # -- requests from the controller (delivered locally; over the network in cluster mode) ---
    def send(self, broker_id: int, api_key: int, version: int, request: dict) -> None:
        """ControllerChannel for this broker: single-node mode has no other broker to reach."""
        if broker_id != self.broker_id:
            log.warning("no channel to broker %d yet: dropping %s", broker_id, ApiKey(api_key).name)
            return
        self.handle_controller_request(api_key, request)

    def handle_controller_request(self, api_key: int, request: dict) -> None:
        if api_key == ApiKey.UPDATE_METADATA:
            self.metadata_cache.update_metadata(request)

    # -- services the handlers call -------------------------------------------------------
    async def auto_create_topic(self, name: str) -> Errors:
        """Metadata's auto-creation; topics arrive with the log (issue: data path)."""
        return Errors.UNKNOWN_TOPIC_OR_PARTITION

    async def run_until_stopped(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stopped.set)
        await self.startup()
        await self._stopped.wait()
        for sig in (signal.SIGTERM, signal.SIGINT):
            # A second signal while we shut down (or tear down the interpreter) must not kill us
            # half-way: the first one already asked for a clean stop.
            loop.remove_signal_handler(sig)
            signal.signal(sig, signal.SIG_IGN)
        await self.shutdown()


def run_broker(config: KafkaConfig) -> int:
    """Run the broker until SIGTERM/SIGINT; returns the process exit code."""
    try:
        import uvloop
    except ImportError:
        runner = asyncio.run
    else:
        runner = uvloop.run
    try:
        runner(KafkaServer(config).run_until_stopped())
    except OSError as exc:  # e.g. the port is taken
        log.error("cannot start: %s", exc)
        return 1
    return 0
