"""KafkaServer: wires the broker's parts together, starts them in order and stops them cleanly.

Start: the metadata store (embedded, or ZooKeeper in cluster mode), the listeners, the broker's
registration under /brokers/ids, then the controller election; the controller tells this broker
its partitions and the cluster's metadata through the same requests in both modes.
Stop (SIGTERM/SIGINT): stop accepting, let in-flight requests finish, then flush and
checkpoint the services, and exit 0 within `SHUTDOWN_TIMEOUT_S`.
This is the only module that knows every service; the services must not import it. Handlers
see the services through the BrokerServices built here once, at start-up, never this object.

Start-up imports only what answering the first requests needs. The group coordinator is built
when a group first needs it (a group API, or this broker coming to lead a `__consumer_offsets`
partition), the transaction coordinator likewise (a transaction API or a `__transaction_state`
partition), and the follower fetchers and the AlterPartition channel only in cluster mode,
where a broker can be a follower: a broker that never sees a group starts faster and idles in
less memory (scripts/bench measures both).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import logging
import os
import signal
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, TypeVar

from kbroker.api.broker_services import BrokerServices
from kbroker.api.controller_fence import ControllerFence
from kbroker.api.controller_requests import deliver_locally
from kbroker.api.kafka_apis import KafkaApis
from kbroker.config.value_types import ConfigError
from kbroker.controller.controller_channel_manager import ControllerChannelManager
from kbroker.controller.kafka_controller import KafkaController
from kbroker.controller.producer_id_manager import ZkProducerIdManager
from kbroker.group.zk_consumer_offsets import ZkConsumerOffsets
from kbroker.log.config import LogConfig
from kbroker.log.errors import InconsistentClusterIdError, LogDirLockedError
from kbroker.log.log_dir_failure_channel import LogDirFailureChannel
from kbroker.log.log_manager import LogManager, read_meta_properties
from kbroker.metadata import zk_data
from kbroker.metadata.kafka_zk_client import KafkaZkClient
from kbroker.metadata.metadata_cache import (
    BrokerEndpoint,
    BrokerInfo,
    MetadataCache,
)
from kbroker.metadata.topic_names import GROUP_METADATA_TOPIC_NAME, TRANSACTION_STATE_TOPIC_NAME
from kbroker.metadata.znode_store import EmbeddedZNodeStore, NodeExistsError
from kbroker.metrics.stats import BrokerTopicStats, RequestMetrics
from kbroker.network.connection_quotas import ConnectionQuotas
from kbroker.network.memory_pool import MemoryPool
from kbroker.network.socket_server import RequestProcessor, SocketServer
from kbroker.protocol.api_keys import ApiKey
from kbroker.protocol.errors import Errors
from kbroker.protocol.uuids import random_kafka_uuid, uuid_to_base64
from kbroker.replica.replica_manager import ReplicaManager
from kbroker.security.client_quota_manager import CLIENTS, IPS, ClientQuotaManagers

if TYPE_CHECKING:
    import ssl

    from kbroker.config import KafkaConfig
    from kbroker.console.web import ConsoleServer
    from kbroker.group.group_coordinator import GroupCoordinator
    from kbroker.log.append_offload import AppendOffloader
    from kbroker.metadata.admin_manager import AdminManager
    from kbroker.metadata.kazoo_store import KazooZNodeStore
    from kbroker.metrics.exporter import MetricsEndpoint
    from kbroker.network.socket_server import SessionFactory
    from kbroker.replica.replica_manager import TopicPartition
    from kbroker.security.acl_authorizer import AclAuthorizer
    from kbroker.security.client_quota_admin import ClientQuotaAdmin
    from kbroker.txn.transaction_coordinator import TransactionCoordinator

log = logging.getLogger("kbroker.server")

SHUTDOWN_TIMEOUT_S = 4.0
# A TLS handshake must finish within this (or connections.max.idle.ms if shorter): a client
# that connects and says nothing holds a connection slot no longer.
SSL_HANDSHAKE_TIMEOUT_S = 10.0
REGISTRATION_POLL_S = 0.2  # how often a restart looks whether its previous run's registration has gone

Service = TypeVar("Service")


def _started(service: Service | None) -> Service:
    """A service startup() builds, for the code that runs only once it has (watches, timers,
    callbacks): a clear error rather than an AttributeError on None if that ever changes."""
    if service is None:
        raise RuntimeError("KafkaServer used before startup() built its services")
    return service


class CannotStart(Exception):
    """A start-up problem the operator must fix, told in one line without a traceback."""


@contextlib.contextmanager
def _naming_log_dirs() -> Iterator[None]:
    """Problems with the data directories, reported as what they are: log.dirs."""
    try:
        yield
    except (LogDirLockedError, InconsistentClusterIdError) as exc:
        raise CannotStart(f"log.dirs: {exc}") from None
    except FileExistsError as exc:  # makedirs of a path that is a file
        raise CannotStart(f"log.dirs: cannot use {exc.filename}: it is not a directory") from None
    except OSError as exc:
        raise CannotStart(f"log.dirs: cannot use {exc.filename or 'a data directory'}: "
                          f"{exc.strerror or exc}") from None


def process_age_s() -> float | None:
    """Seconds since this process started, from /proc/self/stat (its start in clock ticks after
    boot, field 22) and CLOCK_BOOTTIME; None where /proc is not there. Ticks are 10 ms."""
    try:
        with open("/proc/self/stat", "rb") as file:
            fields = file.read().rpartition(b")")[2].split()  # the command name may hold spaces
        start_ticks = int(fields[19])  # fields[0] is field 3, the state
        return time.clock_gettime(time.CLOCK_BOOTTIME) - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return None


class KafkaServer:
    def __init__(self, config: KafkaConfig) -> None:
        self.config = config
        self.cluster_mode = bool(config.get("zookeeper.connect"))
        self.broker_id: int = config.get("broker.id")
        if self.broker_id < 0 and not self.cluster_mode:
            self.broker_id = 0  # the single-node default, as Kafka's sample server.properties has it
        self.metadata_cache = MetadataCache(self.broker_id)
        self.services: BrokerServices | None = None  # built once in startup(), when every service exists
        self.socket_servers: list[SocketServer] = []
        self.zk_client: KafkaZkClient | None = None
        self.controller: KafkaController | None = None
        self.controller_channel: ControllerChannelManager | None = None
        self.broker_epoch = -1
        self.log_manager: LogManager | None = None
        self.replica_manager: ReplicaManager | None = None
        self.producer_id_manager: ZkProducerIdManager | None = None
        # A topic setting without a broker default (none today) leaves LogConfig's own default.
        self.base_log_config = LogConfig.from_topic_config(
            {name: value for name, value in config.topic_defaults().items() if value is not None})
        self._config_changes_seen: set[str] = set()
        self._background: list[asyncio.Task] = []
        self._due_times: dict[str, float] = {}
        self._stopped = asyncio.Event()
        self.exit_code = 0  # 1 once every log dir failed (Kafka halts the broker then)
        self._session_lost = False
        self._session_state = "connected"  # the embedded store's session never ends
        # TLS (built in startup() when a listener is SSL or SASL_SSL): each TLS listener's server
        # context and session factory, and the client contexts for other brokers' listeners.
        self.listener_ssl: dict[str, ssl.SSLContext] = {}
        self.listener_sessions: dict[str, SessionFactory] = {}
        self.inter_broker_ssl: ssl.SSLContext | None = None
        self.controller_ssl: ssl.SSLContext | None = None
        # Client quotas are enforced from the first request, so their (small) manager is always built.
        self.client_quotas = ClientQuotaManagers(config.get("quota.window.num"), config.get("quota.window.size.seconds"),
                                                 config.get("controller.quota.window.num"),
                                                 config.get("controller.quota.window.size.seconds"))
        self._session_events: dict[str, int] = {}  # kazoo's events counted (SessionExpireListener)
        # metrics.listener: the request metrics KafkaApis counts into, and the /metrics endpoint.
        self.request_metrics: RequestMetrics | None = None
        self.metrics_endpoint: MetricsEndpoint | None = None
        # console.listener: the web console, on its own thread, a client of our own listener.
        self.console_server: ConsoleServer | None = None

    # -- lifecycle ------------------------------------------------------------------------
    async def startup(self) -> None:
        started = time.monotonic()
        loop = asyncio.get_running_loop()
        self._build_tls()  # a bad key store stops the start before anything is opened
        console_listener = self._console_client_listener()  # refused here, before anything is opened
        sasl_listeners = _sasl_listeners(self.config)  # a SASL setting Kafka would refuse stops us here
        store = self._open_store(loop)
        zk_client = self.zk_client = KafkaZkClient(store)
        zk_client.create_top_level_paths()
        if self.broker_id < 0:
            self.broker_id = self._generated_broker_id(zk_client)
            self.metadata_cache.broker_id = self.broker_id
        self.metadata_cache.cluster_id = zk_client.get_or_create_cluster_id(
            uuid_to_base64(random_kafka_uuid()))
        with _naming_log_dirs():
            self.log_manager = LogManager(self.config.log_dirs, cluster_id=self.metadata_cache.cluster_id,
                                          broker_id=self.broker_id, default_config=self.base_log_config,
                                          topic_config=self.log_config_for,
                                          producer_id_expiration_ms=self.config.get("producer.id.expiration.ms"),
                                          log_dir_failure_channel=LogDirFailureChannel())
        replica_manager = self.replica_manager = ReplicaManager(
            self.broker_id, self.log_manager, self.metadata_cache, zk_client.get_topic_config, self.base_log_config)
        if self.cluster_mode:
            self._create_replication_managers(replica_manager)
        if self.config.get("metrics.listener"):  # counting costs nothing while metrics are off
            self.request_metrics = RequestMetrics()
            replica_manager.topic_stats = BrokerTopicStats()
        replica_manager.leadership_listeners.append(self._on_leadership_change)
        replica_manager.txn_marker_listeners.append(self._on_txn_markers_written)
        producer_id_manager = self.producer_id_manager = ZkProducerIdManager(self.broker_id, store)
        self._config_changes_seen = set(store.get_children(zk_data.CONFIG_CHANGES))
        self.client_quotas.load(zk_client)  # quotas written before any broker ran count too
        store.watch_children(zk_data.CONFIG_CHANGES, self._on_config_changes)
        # The controller only stands for election once we are registered (below); it exists
        # before the listeners so that the first request finds every service in place.
        self.controller_channel = ControllerChannelManager(self.broker_id, self._deliver_locally,
                                                           f"broker-{self.broker_id}-controller", self.controller_ssl)
        controller = self.controller = KafkaController(
            self.broker_id, zk_client, self.controller_channel, self.config.inter_broker_listener_name, self.config,
            control_plane_listener=self.config.control_plane_listener_name)
        self.services = BrokerServices(
            broker_id=self.broker_id, config=self.config, metadata_cache=self.metadata_cache,
            replica_manager=replica_manager, build_admin_manager=lambda: _admin_manager(self.config, zk_client,
                                                                                        self.metadata_cache),
            controller=controller,
            producer_id_manager=producer_id_manager,
            zk_consumer_offsets=ZkConsumerOffsets(store, self.config.get("offset.metadata.max.bytes")),
            controller_fence=ControllerFence(self.broker_id, lambda: self.broker_epoch,
                                             lambda sync: zk_client.get_controller_and_epoch(sync=sync)),
            build_group_coordinator=self._build_group_coordinator,
            build_transaction_coordinator=self._build_transaction_coordinator,
            build_scram_credentials=lambda: _scram_credentials(zk_client),
            client_quotas=self.client_quotas,
            build_client_quota_admin=lambda: _client_quota_admin(zk_client, self.client_quotas),
            sasl_listeners=sasl_listeners,
            authorizer=_authorizer(self.config, store),
            append_offloader=_append_offloader(self.config))
        if sasl_listeners:
            _ = self.services.credential_cache  # logins are checked from the first connection on
        self._start_metrics_endpoint(loop)  # before the Kafka listeners: a port taken stops the start first
        # Wait before listening: until it has registered, this broker's metadata cache is empty,
        # and a client asking it then would be told that its topics do not exist (librdkafka
        # fails the records with "Unknown topic"). Kafka too serves requests only once started.
        await self._wait_for_earlier_registration()
        await self._start_socket_servers(KafkaApis(self.services, self.request_metrics).process)
        if console_listener is not None:  # after the listeners: a port 0 is known by now
            self._start_console(console_listener)
        try:
            self._register()
        except NodeExistsError:  # registered by someone else since the wait looked
            raise CannotStart(f"broker.id {self.broker_id} is registered in ZooKeeper by another session: "
                              f"is another broker running with broker.id {self.broker_id}?") from None
        store.watch_data(zk_data.CONTROLLER, self._on_controller_change)
        if not controller.elect():
            self.services.controller_fence.learn(*zk_client.get_controller_and_epoch())
        # Kafka's LogManager waits log.initial.task.delay.ms before its first retention pass, so a
        # client that has just written old timestamps can still read them back right after start-up.
        self._due_times["retention"] = time.monotonic() + self.config.get("log.initial.task.delay.ms") / 1000
        self._background = [loop.create_task(self._periodic(self._log_maintenance, 1.0)),
                            loop.create_task(replica_manager.run_log_dir_failure_handler(
                                lambda: zk_client.propagate_log_dir_event(self.broker_id), self._halt))]
        if self.cluster_mode:
            self._background.append(loop.create_task(self._periodic(
                controller.rebalance_preferred_leaders, self.config.get("leader.imbalance.check.interval.seconds"))))
        self._background.append(loop.create_task(self._periodic(  # Kafka's isr-expiration task
            replica_manager.maybe_shrink_isr, self.config.get("replica.lag.time.max.ms") / 2000)))
        bound = ", ".join(f"{s.listener_name}://{s.host}:{s.port}" for s in self.socket_servers)
        if self.metrics_endpoint is not None:
            bound += f" (metrics at http://{self.metrics_endpoint.host or '0.0.0.0'}:{self.metrics_endpoint.port}/metrics)"
        if self.console_server is not None:
            bound += f" (web console at http://{self.console_server.host}:{self.console_server.port}/)"
        advertised = ", ".join(f"{e.listener_name}://{e.host}:{e.port}" for e in self._this_broker().endpoints.values())
        since_process_start = process_age_s()  # what a client waiting for the port sees
        log.info("kbroker %d started in %.0f ms (%s; cluster id %s), listening on %s, advertised as %s",
                 self.broker_id, (since_process_start or time.monotonic() - started) * 1000,
                 "since the process started" if since_process_start else "since start-up began",
                 self.metadata_cache.cluster_id, bound, advertised)

    async def _start_socket_servers(self, processor: RequestProcessor) -> None:
        """One SocketServer per listener; like Kafka's, they share one ConnectionQuotas and one
        MemoryPool (queued.max.request.bytes; -1, the default, is no pool at all)."""
        config = self.config
        queued_bytes = config.get("queued.max.request.bytes")
        pool = MemoryPool(queued_bytes) if queued_bytes > 0 else None
        quotas = ConnectionQuotas(max_connections=config.get("max.connections"),
                                  max_connections_per_ip=config.get("max.connections.per.ip"),
                                  per_ip_overrides=config.max_connections_per_ip_overrides,
                                  inter_broker_listener=config.inter_broker_listener_name,
                                  max_connection_creation_rate=config.get("max.connection.creation.rate"),
                                  quota_window_num=config.get("quota.window.num"),
                                  quota_window_size_s=config.get("quota.window.size.seconds"))
        self.client_quotas.follow_ip_quotas(quotas.update_ip_connection_rate)
        for endpoint in config.listeners:
            server = SocketServer(endpoint.host, endpoint.port, processor,
                                  listener_name=endpoint.listener_name,
                                  max_request_bytes=config.get("socket.request.max.bytes"),
                                  max_queued_requests=config.get("queued.max.requests"),
                                  backlog=config.get("socket.listen.backlog.size"),
                                  send_buffer_bytes=config.get("socket.send.buffer.bytes"),
                                  receive_buffer_bytes=config.get("socket.receive.buffer.bytes"),
                                  memory_pool=pool, quotas=quotas,
                                  max_connections=config.listener_max_connections(endpoint.listener_name),
                                  max_connection_creation_rate=config.listener_max_connection_creation_rate(
                                      endpoint.listener_name),
                                  connections_max_idle_ms=config.get("connections.max.idle.ms"),
                                  ssl_context=self.listener_ssl.get(endpoint.listener_name),
                                  ssl_handshake_timeout_s=self._ssl_handshake_timeout_s(),
                                  session_factory=self.listener_sessions.get(endpoint.listener_name))
            await server.start()
            self.socket_servers.append(server)

    def _build_tls(self) -> None:
        """The TLS contexts: each SSL/SASL_SSL listener's, and the client ones for the inter-broker
        and controller listeners when those are TLS. ssl_factory (and `cryptography`) are
        imported only when some listener is TLS; a problem is a ConfigError: the start stops."""
        config = self.config
        tls_listeners = [e for e in config.listeners if e.security_protocol in ("SSL", "SASL_SSL")]
        if not tls_listeners:
            return
        from kbroker.security import ssl_factory

        for endpoint in tls_listeners:
            self.listener_ssl[endpoint.listener_name] = ssl_factory.listener_server_context(config, endpoint)
            if endpoint.security_protocol == "SSL":  # on SASL_SSL the SASL exchange sets the principal
                self.listener_sessions[endpoint.listener_name] = ssl_factory.session_factory(
                    config, endpoint.listener_name)
        self.inter_broker_ssl = ssl_factory.inter_broker_client_context(config, config.inter_broker_listener_name)
        self.controller_ssl = ssl_factory.inter_broker_client_context(
            config, config.controller_to_broker_listener_name)

    def _ssl_handshake_timeout_s(self) -> float:
        idle_ms = self.config.get("connections.max.idle.ms")
        return SSL_HANDSHAKE_TIMEOUT_S if idle_ms < 0 else max(0.1, min(SSL_HANDSHAKE_TIMEOUT_S, idle_ms / 1000))

    def _start_metrics_endpoint(self, loop: asyncio.AbstractEventLoop) -> None:
        """metrics.listener: the Prometheus endpoint in its own thread, reading snapshots taken
        on this loop (prometheus_client is imported only here)."""
        listener = self.config.get("metrics.listener")
        if not listener:
            return
        from kbroker.broker_metrics import broker_snapshot
        from kbroker.config.validators import parse_http_listener

        try:
            from kbroker.metrics.exporter import MetricsEndpoint
        except ImportError as exc:
            raise CannotStart(f"metrics.listener needs prometheus_client ({exc}): pip install 'kbroker[metrics]'") from None

        address = parse_http_listener(listener)
        assert address is not None  # the setting's validator accepted it
        rm, controller = _started(self.replica_manager), _started(self.controller)
        services = _started(self.services)

        def snapshot() -> list:
            zookeeper = (self._session_state, self._session_events) if self.cluster_mode else None
            return broker_snapshot(self.request_metrics, rm, controller, self.socket_servers,
                                   lambda: services.started_group_coordinator, zookeeper,
                                   lambda: services.started_fetch_manager)

        endpoint = MetricsEndpoint(address[0], address[1], snapshot)
        try:
            endpoint.start(loop)
        except OSError as exc:
            raise CannotStart(f"metrics.listener: cannot listen on {listener}: {exc.strerror or exc}") from None
        self.metrics_endpoint = endpoint

    def _console_client_listener(self) -> str | None:
        """console.listener: the advertised listener the console reads the cluster through, as a
        plain client: the first advertised one if it is PLAINTEXT, else the first PLAINTEXT one.
        The console holds no credentials of its own, so without a PLAINTEXT listener the start
        stops here (`kbroker console --command-config` serves a secured cluster instead)."""
        if not self.config.get("console.listener"):
            return None
        advertised = self.config.advertised_listeners
        plain = [e for e in advertised if e.security_protocol == "PLAINTEXT"]
        if not plain:
            names = ", ".join(f"{e.listener_name} ({e.security_protocol})" for e in advertised)
            raise CannotStart(f"console.listener needs a PLAINTEXT listener to read the cluster through, and the "
                              f"advertised listeners are {names}: run `kbroker console --bootstrap-server ... "
                              f"--command-config client.properties` beside the broker instead")
        return plain[0].listener_name

    def _start_console(self, listener_name: str) -> None:
        """The web console on a thread and event loop of its own (aiohttp and confluent-kafka are
        imported only here): the broker's loop never serves a page nor waits for one."""
        listener = self.config.get("console.listener")
        try:
            from kbroker.console.web import ConsoleServer, listen_error
        except ImportError as exc:
            raise CannotStart(f"console.listener needs aiohttp and confluent-kafka ({exc}): "
                              f"pip install 'kbroker[console]'") from None
        endpoint = self._this_broker().endpoints[listener_name]
        console = ConsoleServer(listener, {"bootstrap.servers": f"{endpoint.host}:{endpoint.port}",
                                           "client.id": f"kbroker-console-{self.broker_id}"})
        try:
            console.start()
        except OSError as exc:
            raise CannotStart(f"console.listener: cannot listen on {listener}: {listen_error(exc)}") from None
        self.console_server = console

    def _open_store(self, loop: asyncio.AbstractEventLoop) -> EmbeddedZNodeStore | KazooZNodeStore:
        """ZooKeeper with zookeeper.connect, else the embedded store in the first log dir."""
        # The stores' `notify` is typed to return None; the loop's schedulers return a Handle,
        # which the stores ignore. (kbroker/metadata could type it Callable[..., object].)
        if not self.cluster_mode:
            with _naming_log_dirs():
                return EmbeddedZNodeStore(self.config.log_dirs[0], notify=loop.call_soon)  # type: ignore[arg-type]
        from kbroker.metadata.kazoo_store import KazooZNodeStore  # kazoo only when it is needed

        return KazooZNodeStore(self.config.get("zookeeper.connect"), self.config.get("zookeeper.session.timeout.ms"),
                               self.config.zookeeper_connection_timeout_ms,
                               notify=loop.call_soon_threadsafe,  # type: ignore[arg-type]
                               on_session_event=self._on_zk_session_event)

    def _generated_broker_id(self, zk_client: KafkaZkClient) -> int:
        """broker.id -1: the id in meta.properties, else a new one from /brokers/seqid (Kafka's
        broker.id.generation.enable: the seqid znode's version plus reserved.broker.max.id)."""
        properties = read_meta_properties(self.config.log_dirs) or {}
        if "broker.id" in properties:
            return int(properties["broker.id"])
        if not self.config.get("broker.id.generation.enable"):
            raise ValueError("broker.id is not set and broker.id.generation.enable is false")
        stat = zk_client.store.set(zk_data.BROKER_SEQID, b"")
        return stat.version + self.config.get("reserved.broker.max.id")

    async def _wait_for_earlier_registration(self) -> None:
        """A broker killed (kill -9) and restarted within its ZooKeeper session finds its old
        ephemeral /brokers/ids/<id> still there until ZooKeeper expires that session. Wait for it
        to go, saying so once, rather than fail (Kafka fails with NodeExistsException); a
        registration that outlives the session timeout belongs to a live broker with our id."""
        zk_client = _started(self.zk_client)
        owner = zk_client.broker_registration_owner(self.broker_id)
        if owner is None or owner == zk_client.store.session_id:
            return
        timeout_ms = self.config.get("zookeeper.session.timeout.ms")
        # ZooKeeper expires sessions on its tick, so allow a margin past the timeout.
        wait_s = timeout_ms * 1.5 / 1000 + 2
        log.info("broker %d is still registered in ZooKeeper by an earlier session (0x%x), most likely "
                 "this broker's previous run that did not stop cleanly: waiting up to %.0f s for ZooKeeper "
                 "to expire it (zookeeper.session.timeout.ms=%d)", self.broker_id, owner, wait_s, timeout_ms)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while loop.time() < deadline:
            await asyncio.sleep(REGISTRATION_POLL_S)
            owner = zk_client.broker_registration_owner(self.broker_id)
            if owner is None or owner == zk_client.store.session_id:
                return
        raise CannotStart(f"broker.id {self.broker_id} is registered in ZooKeeper by another session (0x{owner:x}) "
                          f"that did not expire in {wait_s:.0f} s: is another broker running with broker.id "
                          f"{self.broker_id}?")

    def _register(self) -> None:
        """The ephemeral /brokers/ids/<id>; its czxid is our broker epoch."""
        me = self._this_broker()
        self.broker_epoch = _started(self.zk_client).register_broker(zk_data.BrokerRegistration(
            self.broker_id, [(e.listener_name, e.host, e.port, e.security_protocol) for e in me.endpoints.values()],
            me.rack))

    def _on_controller_change(self) -> None:
        """/controller changed or vanished: if nobody holds it, stand for election."""
        if self.controller is None or self._stopped.is_set():
            return
        epoch, current = _started(self.zk_client).get_controller_and_epoch()
        if current != self.broker_id and self.controller.is_active:
            self.controller.resign()
        if current < 0:
            self.controller.elect()
        else:
            _started(self.services).controller_fence.learn(epoch, current)

    def _on_zk_session_event(self, event: str) -> None:
        """A lost session took our ephemeral znodes: stop acting as controller, and once a new
        session is up, register again (a new broker epoch) and stand for election."""
        if self._stopped.is_set():  # our own close at shutdown ends the session: nothing to act on
            log.info("ZooKeeper session %s at shutdown", "closed" if event == "lost" else event)
            return
        # A normal start connects once: INFO. Suspended or lost is a real problem: WARNING.
        self._session_events[event] = self._session_events.get(event, 0) + 1
        level = logging.INFO if event == "connected" else logging.WARNING
        again = event == "connected" and self._session_state != "connected"
        log.log(level, "ZooKeeper session %s", "reconnected" if again else event)
        self._session_state = event
        if event == "lost" and self.controller is not None:
            self.controller.resign()
            self._session_lost = True
        elif event == "connected" and self._session_lost and not self._stopped.is_set():
            self._session_lost = False
            try:
                self._register()
            except Exception:  # the old ephemeral may linger a moment; the next event retries
                log.exception("re-registration after a session loss failed")
                return
            self._on_controller_change()

    def _halt(self, message: str) -> None:
        """Every log dir failed: stop with exit code 1 and Kafka's one line (Kafka halts the JVM;
        we stop the same way as on SIGTERM, writing nothing to the failed dirs)."""
        log.error(message)
        self.exit_code = 1
        self._stopped.set()

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
        if self.cluster_mode and self.config.get("controlled.shutdown.enable") and self.controller is not None:
            if self._session_state == "connected":
                await self._controlled_shutdown(self.controller)
            else:  # every step would block on ZooKeeper: Kafka too gives up and stops uncleanly
                log.warning("no ZooKeeper session (%s): skipping controlled shutdown", self._session_state)
        deadline = time.monotonic() + SHUTDOWN_TIMEOUT_S
        for server in self.socket_servers:
            server.stop_accepting()
        if self.replica_manager is not None:
            self.replica_manager.wake_all()  # parked fetches answer now with what they have
        coordinator = self.services.started_group_coordinator if self.services is not None else None
        if coordinator is not None:
            coordinator.shutdown()  # members waiting on a rebalance are answered now
        txn_coordinator = self.services.started_transaction_coordinator if self.services is not None else None
        if txn_coordinator is not None:
            await txn_coordinator.shutdown()  # no marker is sent once the logs close
        for server in self.socket_servers:
            await server.shutdown(max(0.1, deadline - time.monotonic()))
        for task in self._background:
            task.cancel()
        if self.metrics_endpoint is not None:
            await self.metrics_endpoint.close()
        if self.console_server is not None:
            await asyncio.to_thread(self.console_server.stop)  # joins its thread: not on this loop
        await self._stop_replication_managers()
        if self.controller is not None:
            self.controller.resign()  # no controller event may run against a closed store
        if self.controller_channel is not None:
            await self.controller_channel.close()
        if self.services is not None:
            self.services.controller_fence.close()
            if self.services.append_offloader is not None:  # the listeners have answered what they read
                self.services.append_offloader.shutdown()
        if self.log_manager is not None:
            self.log_manager.close()
        if self.zk_client is not None:
            try:
                self.zk_client.store.close()
            except OSError as exc:  # the embedded store's file is in the first log dir, which may have failed
                log.error("could not save the metadata store on shutdown: %s", exc)
        log.info("shut down cleanly")

    async def _controlled_shutdown(self, controller: KafkaController) -> None:
        """Ask the controller to move our leadership elsewhere before we stop serving (Kafka's
        controlled shutdown), retrying while partitions remain, up to
        controlled.shutdown.max.retries times, controlled.shutdown.retry.backoff.ms apart."""
        from kbroker.network.network_client import NetworkClient

        backoff = self.config.get("controlled.shutdown.retry.backoff.ms") / 1000
        for attempt in range(1, self.config.get("controlled.shutdown.max.retries") + 1):
            controller_id = self.metadata_cache.controller_id  # no ZooKeeper call: it may be gone
            remaining: Sequence[object]  # the partitions still led here, only counted
            try:
                if controller_id == self.broker_id:
                    error, remaining = controller.on_controlled_shutdown(self.broker_id, self.broker_epoch)
                else:
                    endpoint = self.metadata_cache.endpoint_of(controller_id, self.config.inter_broker_listener_name)
                    if endpoint is None:
                        raise ConnectionError(f"no endpoint for controller {controller_id}")
                    client = NetworkClient(endpoint.host, endpoint.port, f"broker-{self.broker_id}-shutdown",
                                           ssl_context=self.inter_broker_ssl)
                    try:
                        answer = await client.send(ApiKey.CONTROLLED_SHUTDOWN, 3,
                                                   {"broker_id": self.broker_id, "broker_epoch": self.broker_epoch},
                                                   timeout_s=self.config.get("controller.socket.timeout.ms") / 1000)
                    finally:
                        await client.close()
                    error, remaining = answer["error_code"], answer["remaining_partitions"]
            except ConnectionError as exc:
                error, remaining = Errors.NETWORK_EXCEPTION, [str(exc)]
            if error == Errors.NONE and not remaining:
                log.info("controlled shutdown done: no partition led here any more")
                await asyncio.sleep(0)  # let the LeaderAndIsr that made us a follower land
                return
            log.info("controlled shutdown attempt %d: error %d, %d partitions remain", attempt, error,
                     len(remaining))
            await asyncio.sleep(backoff)
        log.warning("controlled shutdown did not complete; proceeding with an unclean shutdown")

    # -- replication (kbroker/replica): follower fetchers and the AlterPartition channel ------
    def _create_replication_managers(self, rm: ReplicaManager) -> None:
        from kbroker.replica.alter_partition_manager import AlterPartitionManager
        from kbroker.replica.replica_fetcher import FetcherConfig, ReplicaFetcherManager

        rm.replica_lag_time_max_ms = self.config.get("replica.lag.time.max.ms")
        rm.inter_broker_listener = self.config.inter_broker_listener_name
        fetcher_config = dataclasses.replace(FetcherConfig.from_kafka_config(self.broker_id, self.config),
                                             ssl_context=self.inter_broker_ssl)
        rm.replica_fetcher_manager = ReplicaFetcherManager(fetcher_config, rm, lambda: self.broker_epoch)
        rm.alter_partition_manager = AlterPartitionManager(
            self.broker_id, lambda: self.broker_epoch, self.metadata_cache, self.config.inter_broker_listener_name,
            ssl_context=self.inter_broker_ssl)

    async def _stop_replication_managers(self) -> None:
        """Before the logs close: no fetcher may append any more."""
        rm = self.replica_manager
        if rm is not None and rm.replica_fetcher_manager is not None:
            await rm.replica_fetcher_manager.close()
        if rm is not None and rm.alter_partition_manager is not None:
            await rm.alter_partition_manager.close()
        if rm is not None:
            await rm.close_alter_log_dirs_manager()

    # -- the group coordinator (kbroker/group), built on first use ----------------------------
    def _build_group_coordinator(self) -> GroupCoordinator:
        """BrokerServices builds the group coordinator through this the first time anything needs it."""
        from kbroker.group.group_coordinator import GroupCoordinator

        coordinator = GroupCoordinator(self.broker_id, self.config, _started(self.replica_manager),
                                       self.metadata_cache)
        coordinator.startup()
        return coordinator

    def _on_leadership_change(self, topic: str, partition: int, is_leader: bool, leader_epoch: int) -> None:
        """ReplicaManager leadership listener: the coordinators load the __consumer_offsets and
        __transaction_state partitions this broker comes to lead (building them the first time)
        and unload the rest."""
        services = _started(self.services)
        if topic == GROUP_METADATA_TOPIC_NAME and (is_leader or services.started_group_coordinator is not None):
            services.group_coordinator.on_leadership_change(topic, partition, is_leader, leader_epoch)
        if topic == TRANSACTION_STATE_TOPIC_NAME and (
                is_leader or services.started_transaction_coordinator is not None):
            services.transaction_coordinator.on_leadership_change(topic, partition, is_leader, leader_epoch)

    def _on_txn_markers_written(self, producer_id: int, partitions: list[TopicPartition], committed: bool) -> None:
        """ReplicaManager marker listener (Kafka's onTransactionCompleted): a producer's
        transactional offset commits become visible, or are dropped, once its marker is written
        on their __consumer_offsets partition."""
        offsets_partitions = {p for topic, p in partitions if topic == GROUP_METADATA_TOPIC_NAME}
        coordinator = _started(self.services).started_group_coordinator
        if offsets_partitions and coordinator is not None:
            coordinator.on_transaction_completed(producer_id, offsets_partitions, committed)

    # -- the transaction coordinator (kbroker/txn), built on first use ----------------------------
    def _build_transaction_coordinator(self) -> TransactionCoordinator:
        from kbroker.txn.transaction_coordinator import TransactionCoordinator

        coordinator = TransactionCoordinator(self.broker_id, self.config, _started(self.replica_manager),
                                             self.metadata_cache, _started(self.producer_id_manager).generate_producer_id,
                                             inter_broker_ssl=self.inter_broker_ssl)
        coordinator.startup()
        return coordinator

    # -- requests from our own controller, delivered without a socket ----------------------------
    def _deliver_locally(self, api_key: int, request: dict) -> dict | None:
        """The controller channel's path to this broker; the same calls as the inter-broker handlers'."""
        return deliver_locally(_started(self.services), api_key, request)

    def log_config_for(self, topic: str) -> LogConfig:
        return LogConfig.from_topic_config(_started(self.zk_client).get_topic_config(topic), self.base_log_config)

    def _on_config_changes(self) -> None:
        """A /config/changes notification: re-read the named topics' configs into their logs, users'
        SCRAM credentials and quotas, client ids' quotas."""
        store = _started(self.zk_client).store
        for child in store.get_children(zk_data.CONFIG_CHANGES):
            if child in self._config_changes_seen:
                continue
            self._config_changes_seen.add(child)
            try:
                entity = zk_data.decode_config_change(store.get(f"{zk_data.CONFIG_CHANGES}/{child}")[0])
            except Exception:  # a notification we cannot read names nothing we can apply
                log.warning("ignoring unreadable config change notification %s", child)
                continue
            kind, _, name = entity.partition("/")
            if kind == "topics":
                _started(self.replica_manager).update_topic_config(name)
            elif kind == "users":
                cache = _started(self.services).started_credential_cache
                if cache is not None:  # not built yet: it loads every user when it is
                    cache.refresh(_started(self.zk_client), name)
                self.client_quotas.refresh(_started(self.zk_client), kind, name)
            elif kind in (CLIENTS, IPS):
                self.client_quotas.refresh(_started(self.zk_client), kind, name)

    # -- background work ---------------------------------------------------------------------
    async def _periodic(self, work: Callable[[], object], interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                work()
            except Exception:
                log.exception("background task %s failed", work.__name__)

    def _log_maintenance(self) -> None:
        """Retention, checkpoints and flushes when each is due (Kafka's LogManager scheduler); keeps
        the log cleaner's task running (log.cleaner.enable)."""
        log_manager = _started(self.log_manager)
        log_manager.start_cleaner(self.config.get)
        log_manager.delete_due_logs()
        now = time.monotonic()
        due = self._due_times
        if now >= due.get("retention", 0):
            log_manager.run_retention()
            due["retention"] = now + self.config.get("log.retention.check.interval.ms") / 1000
        if now >= due.get("checkpoint", 0):
            log_manager.checkpoint()
            # One pass writes every checkpoint file, as often as the most frequent of them asks.
            due["checkpoint"] = now + min(self.config.get("log.flush.offset.checkpoint.interval.ms"),
                                          self.config.get("log.flush.start.offset.checkpoint.interval.ms"),
                                          self.config.get("replica.high.watermark.checkpoint.interval.ms")) / 1000
        log_manager.flush_if_due()

    async def run_until_stopped(self, on_started: Callable[[], None] | None = None) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stopped.set)
        await self.startup()
        if on_started is not None:
            on_started()
        await self._stopped.wait()
        for sig in (signal.SIGTERM, signal.SIGINT):
            # A second signal while we shut down (or tear down the interpreter) must not kill us
            # half-way: the first one already asked for a clean stop.
            loop.remove_signal_handler(sig)
            signal.signal(sig, signal.SIG_IGN)
        await self.shutdown()


def _sasl_listeners(config: KafkaConfig) -> dict:
    """The SASL listeners' settings by name, and the inter-broker login when that listener is
    SASL; the SASL stack is imported only when some listener uses it."""
    if not any(e.security_protocol in ("SASL_PLAINTEXT", "SASL_SSL") for e in config.listeners):
        return {}
    from kbroker.security.sasl_config import listener_sasl_configs

    listeners = listener_sasl_configs(config)
    _set_inter_broker_sasl(config)
    return listeners


def _scram_credentials(zk_client: KafkaZkClient) -> tuple:
    """The SCRAM credential cache, loaded whole (credentials written before any broker ran count
    too), and Describe/AlterUserScramCredentials' manager over it."""
    from kbroker.security.credential_cache import CredentialCache, ScramCredentialManager

    cache = CredentialCache()
    cache.load(zk_client)
    return cache, ScramCredentialManager(zk_client, cache)


def _admin_manager(config: KafkaConfig, zk_client: KafkaZkClient, metadata_cache: MetadataCache) -> AdminManager:
    """Topic creation, deletion and configs (imported with the first request that needs them)."""
    from kbroker.metadata.admin_manager import AdminManager
    from kbroker.metadata.admin_zk_client import AdminZkClient

    return AdminManager(config, AdminZkClient(zk_client), metadata_cache)


def _client_quota_admin(zk_client: KafkaZkClient, client_quotas: ClientQuotaManagers) -> ClientQuotaAdmin:
    """Describe/AlterClientQuotas' side, built with the first such request."""
    from kbroker.security.client_quota_admin import ClientQuotaAdmin

    return ClientQuotaAdmin(zk_client, client_quotas)


def _authorizer(config: KafkaConfig, store: object) -> AclAuthorizer | None:
    """The ACL authorizer when `authorizer.class.name` names it (imported only then)."""
    if not config.get("authorizer.class.name"):
        return None
    from kbroker.security.acl_authorizer import AclAuthorizer

    return AclAuthorizer.from_config(config, store)


def _append_offloader(config: KafkaConfig) -> AppendOffloader | None:
    """Worker threads for large appends' validation (`kbroker.append.offload.threads`; 0, the
    default, keeps it on the event loop and imports nothing of it)."""
    threads = config.get("kbroker.append.offload.threads")
    if not threads:
        return None
    from kbroker.log.append_offload import AppendOffloader

    return AppendOffloader(threads, config.get("kbroker.append.offload.min.bytes"))


def _set_inter_broker_sasl(config: KafkaConfig) -> None:
    """The broker's own connections log in as the inter-broker listener's JAAS entry says, when
    that listener is SASL (NetworkClient takes the mechanism client; kbroker/network cannot
    import kbroker/security)."""
    from kbroker.network.network_client import ClientSasl, set_inter_broker_sasl
    from kbroker.security.sasl import PlainClient
    from kbroker.security.sasl_config import inter_broker_login
    from kbroker.security.scram import SCRAM_MECHANISMS, ScramClient

    login = inter_broker_login(config)
    if login is None:
        set_inter_broker_sasl(None)
        return
    if login.mechanism in SCRAM_MECHANISMS:
        scram = SCRAM_MECHANISMS[login.mechanism]
        set_inter_broker_sasl(ClientSasl(login.mechanism, lambda: ScramClient(scram, login.username, login.password)))
    else:
        set_inter_broker_sasl(ClientSasl(login.mechanism, lambda: PlainClient(login.username, login.password)))


def raise_open_file_limit() -> None:
    """Every connection is a file: lift the soft RLIMIT_NOFILE to the hard one, as the JVM does for
    Kafka (HotSpot's MaxFDLimit), so max.connections, not a 1,024 default, is what limits clients."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as exc:
            log.info("open file limit stays %d: %s", soft, exc)


def _resume_garbage_collection() -> None:
    gc.freeze()
    gc.enable()


def run_broker(config: KafkaConfig) -> int:
    """Run the broker until SIGTERM/SIGINT; returns the process exit code. If the cyclic garbage
    collector is off (kbroker/__main__.py turns it off for the start-up), it comes back on once
    the broker has started, with what start-up made frozen: later collections skip it."""
    try:
        import uvloop
    except ImportError:
        runner = asyncio.run
    else:
        runner = uvloop.run
    on_started = None if gc.isenabled() else _resume_garbage_collection
    raise_open_file_limit()
    server = KafkaServer(config)
    try:
        runner(server.run_until_stopped(on_started))
    except (OSError, CannotStart, ConfigError) as exc:  # a port taken, a locked data dir, a host that does not resolve
        log.error("cannot start: %s", exc)
        return 1
    return server.exit_code
