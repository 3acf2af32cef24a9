"""The broker's metrics snapshot: every counter and gauge as plain `Family` data, taken on the
event loop when /metrics is scraped (kbroker/metrics/exporter.py asks the loop for it).

Part of the wiring, like kbroker/server.py: it reads the services' own state (partitions, logs,
the controller, the purgatories, the listeners' connections, the group coordinator's committed
offsets) and the counters that the hot paths bump (kbroker/metrics/stats.py). The services
import nothing of it. A snapshot walks the partitions and logs this broker hosts once, on the
loop, in one go: with the default scrape interval (15 s or more) that is a small fraction of a
millisecond per partition, and no lock is ever held against the hot path.

Names follow the Prometheus JMX exporter's rule for Kafka's MBeans (docs/DESIGN.md, "Metrics");
consumer group lag, which Kafka brokers do not export, uses kafka_exporter's names
(`kafka_consumergroup_lag{consumergroup,topic,partition}`), which Grafana dashboards know.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from kbroker.metrics.stats import Family, RequestMetrics

if TYPE_CHECKING:
    from kbroker.controller.kafka_controller import KafkaController
    from kbroker.group.group_coordinator import GroupCoordinator
    from kbroker.network.socket_server import SocketServer
    from kbroker.replica.fetch_session import FetchManager
    from kbroker.replica.replica_manager import ReplicaManager

# kazoo's session events as ZooKeeper's client states (Kafka's SessionExpireListener SessionState).
SESSION_STATES = {"connected": "CONNECTED", "suspended": "CONNECTING", "lost": "CLOSED"}
# The session events Kafka counts (SessionExpireListener's ZooKeeper*PerSec meters).
SESSION_EVENT_METRICS = {"connected": "zookeepersyncconnects", "suspended": "zookeeperdisconnects",
                         "lost": "zookeeperexpires"}


def _gauge(name: str, help_text: str, value: float, labels: dict[str, str] | None = None) -> Family:
    return Family(name, "gauge", help_text, [(labels or {}, value)])


def replica_manager_families(rm: ReplicaManager) -> list[Family]:
    """kafka.server:type=ReplicaManager, from one walk over the partitions hosted here."""
    leaders = under_replicated = under_min_isr = at_min_isr = 0
    for partition in rm.partitions.values():
        if not partition.is_leader or partition.log is None:
            continue
        leaders += 1
        isr = len(partition.isr)
        if isr < len(partition.replicas):
            under_replicated += 1
        min_isr = partition.effective_min_isr
        if isr < min_isr:
            under_min_isr += 1
        elif isr == min_isr:
            at_min_isr += 1
    prefix = "kafka_server_replicamanager_"
    return [
        _gauge(prefix + "partitioncount", "Partitions hosted by this broker", len(rm.partitions)),
        _gauge(prefix + "leadercount", "Partitions this broker leads", leaders),
        _gauge(prefix + "underreplicatedpartitions", "Partitions led here whose ISR is smaller than their replicas",
               under_replicated),
        _gauge(prefix + "underminisrpartitioncount", "Partitions led here with fewer in-sync replicas than min ISR",
               under_min_isr),
        _gauge(prefix + "atminisrpartitioncount", "Partitions led here with exactly min ISR in-sync replicas",
               at_min_isr),
        _gauge(prefix + "offlinereplicacount", "Partitions here offline after a log directory failure",
               len(rm.offline_partitions)),
        _gauge("kafka_server_replicafetchermanager_maxlag", "Most messages a partition followed here lags its leader",
               _max_follower_lag(rm), {"clientId": "Replica"}),
        Family(prefix + "isrshrinks", "counter", "ISR shrinks committed by the controller", [({}, rm.isr_shrinks)]),
        Family(prefix + "isrexpands", "counter", "ISR expansions committed by the controller", [({}, rm.isr_expands)]),
    ]


def _max_follower_lag(rm: ReplicaManager) -> int:
    """Kafka's ReplicaFetcherManager MaxLag: the largest lag (leader's high watermark minus our
    fetch offset) of the partitions this broker follows, as of their last fetch."""
    manager = rm.replica_fetcher_manager
    if manager is None:
        return 0
    return max((state.lag for fetcher in list(manager.fetchers.values())
                for state in list(fetcher.partitions.values()) if state.lag is not None), default=0)


def fetch_session_families(manager: FetchManager | None) -> list[Family]:
    """kafka.server:type=FetchSessionCache (zeros until the first Fetch builds the cache)."""
    prefix = "kafka_server_fetchsessioncache_"
    sessions, partitions, evictions = (0, 0, 0) if manager is None else (
        len(manager.cache), manager.cache.total_partitions, manager.cache.evictions)
    return [
        _gauge(prefix + "numincrementalfetchsessions", "Incremental fetch sessions cached", sessions),
        _gauge(prefix + "numincrementalfetchpartitionscached", "Partitions of the cached fetch sessions", partitions),
        Family(prefix + "incrementalfetchsessionevictionspersec", "counter", "Fetch sessions evicted",
               [({}, evictions)]),
    ]


def log_families(rm: ReplicaManager) -> list[Family]:
    """kafka.log:type=Log per partition: size, segments, start and end offsets."""
    size = Family("kafka_log_log_size", "gauge", "Bytes of the partition's log segments")
    segments = Family("kafka_log_log_numlogsegments", "gauge", "Segments of the partition's log")
    start = Family("kafka_log_log_logstartoffset", "gauge", "The log's start offset")
    end = Family("kafka_log_log_logendoffset", "gauge", "The log's end offset")
    for (topic, partition), log in list(rm.log_manager.logs.items()):
        labels = {"topic": topic, "partition": str(partition)}
        size.samples.append((labels, log.size))
        segments.samples.append((labels, log.number_of_segments))
        start.samples.append((labels, log.log_start_offset))
        end.samples.append((labels, log.log_end_offset))
    return [size, segments, start, end]


def purgatory_families(rm: ReplicaManager) -> list[Family]:
    """kafka.server:type=DelayedOperationPurgatory for the Produce and Fetch purgatories."""
    size = Family("kafka_server_delayedoperationpurgatory_purgatorysize", "gauge",
                  "Requests waiting in the purgatory")
    delayed = Family("kafka_server_delayedoperationpurgatory_numdelayedoperations", "gauge",
                     "Delayed operations not completed yet")
    for purgatory in (rm.delayed_produce_purgatory, rm.delayed_fetch_purgatory):
        labels = {"delayedOperation": purgatory.name}
        size.samples.append((labels, purgatory.num_delayed))
        delayed.samples.append((labels, purgatory.num_delayed))
    return [size, delayed]


def controller_families(controller: KafkaController) -> list[Family]:
    """kafka.controller:type=KafkaController; the cluster-wide counts only on the active controller
    (0 elsewhere, as Kafka reports them), so they can be summed across brokers."""
    active = controller.is_active
    offline = 0
    if active:
        live = controller.live_brokers
        offline = sum(1 for state in controller.states.values() if state.leader < 0 or state.leader not in live)
    prefix = "kafka_controller_kafkacontroller_"
    return [
        _gauge(prefix + "activecontrollercount", "1 on the active controller, else 0", int(active)),
        _gauge(prefix + "offlinepartitionscount", "Partitions without a live leader", offline),
        _gauge(prefix + "globaltopiccount", "Topics in the cluster", len(controller.assignments) if active else 0),
        _gauge(prefix + "globalpartitioncount", "Partitions in the cluster", len(controller.states) if active else 0),
    ]


def socket_server_families(servers: Iterable[SocketServer]) -> list[Family]:
    """Kafka's socket-server-metrics connection-count, per listener (one network processor here)."""
    family = Family("kafka_server_socket_server_metrics_connection_count", "gauge", "Open client connections")
    for server in servers:
        family.samples.append(({"listener": server.listener_name, "networkProcessor": "0"}, len(server.connections)))
    return [family]


def zookeeper_families(session_state: str, session_events: dict[str, int]) -> list[Family]:
    """kafka.server:type=SessionExpireListener: the session's state and the events counted."""
    prefix = "kafka_server_sessionexpirelistener_"
    state = SESSION_STATES.get(session_state, session_state.upper())
    families = [Family(prefix + "sessionstate", "gauge", "ZooKeeper session state (1 for the current one)",
                       [({"state": name}, int(name == state)) for name in SESSION_STATES.values()])]
    for event, name in SESSION_EVENT_METRICS.items():
        families.append(Family(prefix + name, "counter", f"ZooKeeper session events: {event}",
                               [({}, session_events.get(event, 0))]))
    return families


def group_lag_families(coordinator: GroupCoordinator | None, rm: ReplicaManager) -> list[Family]:
    """Committed offset and lag per group and partition (kafka_exporter's names), for the groups
    this broker coordinates and the partitions whose log it hosts (lag: high watermark minus
    the committed offset)."""
    lag = Family("kafka_consumergroup_lag", "gauge", "High watermark minus the group's committed offset")
    current = Family("kafka_consumergroup_current_offset", "gauge", "The group's committed offset")
    if coordinator is not None:
        for group_id, group in list(coordinator.manager.groups.items()):
            for (topic, partition), record in list(group.offsets.items()):
                labels = {"consumergroup": group_id, "topic": topic, "partition": str(partition)}
                offset = record.offset_and_metadata.offset
                current.samples.append((labels, offset))
                log = rm.log_manager.logs.get((topic, partition))
                if log is not None:
                    lag.samples.append((labels, max(0, log.high_watermark - offset)))
    return [current, lag]


def broker_snapshot(request_metrics: RequestMetrics | None, rm: ReplicaManager, controller: KafkaController,
                    servers: Iterable[SocketServer], coordinator: Callable[[], GroupCoordinator | None],
                    zookeeper: tuple[str, dict[str, int]] | None,
                    fetch_manager: Callable[[], FetchManager | None] = lambda: None) -> list[Family]:
    """Every metric of the broker; `zookeeper` is (session state, events counted) in cluster mode."""
    families: list[Family] = []
    if request_metrics is not None:
        families += request_metrics.families()
    if rm.topic_stats is not None:
        families += rm.topic_stats.families()
    families += replica_manager_families(rm)
    families += log_families(rm)
    families += purgatory_families(rm)
    families += fetch_session_families(fetch_manager())
    families += controller_families(controller)
    families += socket_server_families(servers)
    if zookeeper is not None:
        families += zookeeper_families(*zookeeper)
    families += group_lag_families(coordinator(), rm)
    return families
