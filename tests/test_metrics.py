"""The Prometheus endpoint of metrics.listener and the broker's logging options, end to end:
real broker processes, confluent-kafka clients, a real ZooKeeper for the cluster, the endpoint
scraped over HTTP and parsed with prometheus_client's own parser.

- Counters move by exactly what the clients did: records and bytes in per topic (bytes in equal
  the log's size, batches being stored as produced), requests per API and version from a raw
  client, the latency histograms' counts, error codes per API, consumer lag after a commit.
- Unset, the broker listens on its Kafka port and nothing else.
- A scraper that connects and sends nothing stalls neither the broker nor other scrapes.
- Three brokers with ZooKeeper: one active controller in all; killing a broker (kill -9) makes
  the survivors report under-replicated partitions, and its return brings them back to 0.
- `--log-level DEBUG` writes Kafka's request log (kafka.request.logger); `--log-format json`
  writes one JSON object per line.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from kbroker.testing.batches import producer_batch
from kbroker.testing.cluster import KafkaCluster
from kbroker.testing.metrics_scrape import Samples, scrape
from kbroker.testing.processes import BrokerLauncher, BrokerProcess, free_port
from kbroker.testing.raw_client import RawClient, create_topic, produce
from kbroker.testing.waiting import eventually
from kbroker.testing.wire import API_VERSIONS, METADATA

DASHBOARD = Path(__file__).resolve().parents[1] / "docs" / "grafana-dashboard.json"


def dashboard_metric_names() -> set[str]:
    """The metric names the shipped Grafana dashboard's queries use."""
    exprs = [target["expr"] for panel in json.loads(DASHBOARD.read_text())["panels"]
             for target in panel.get("targets", ())]
    return {name for expr in exprs for name in re.findall(r"\b(kafka_[a-z_]+)", expr)}


def exported_names(samples: Samples) -> set[str]:
    return {name for name, _ in samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum over every sample of `name` whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, sample_labels), v in samples.items() if n == name and wanted <= sample_labels)


def metrics_broker(launcher: BrokerLauncher, *overrides: str) -> tuple[BrokerProcess, int]:
    port = free_port()
    return launcher.start(f"metrics.listener=http://127.0.0.1:{port}", *overrides), port


def listening_ports(pid: int) -> set[int]:
    """TCP ports the process listens on: its sockets' inodes found in /proc/net/tcp{,6} in LISTEN."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: TCP_LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


@pytest.fixture
def producer_of() -> Iterator:
    made: list[Producer] = []

    def make(bootstrap: str) -> Producer:
        producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
        made.append(producer)
        return producer

    yield make
    for producer in made:
        producer.flush(5)


def test_produce_consume_and_requests_move_the_counters_by_what_was_done(broker_factory, producer_of):
    broker, port = metrics_broker(broker_factory)
    create_topic(broker.port, "alpha")
    create_topic(broker.port, "beta")
    producer = producer_of(broker.bootstrap)
    for i in range(50):
        producer.produce("alpha", value=b"a" * 100, key=str(i).encode())
    assert producer.flush(10) == 0
    for _ in range(20):  # after the flush: each produce request holds one partition
        producer.produce("beta", value=b"b" * 10)
    assert producer.flush(10) == 0

    after_produce = scrape(port)
    assert value(after_produce, "kafka_server_brokertopicmetrics_messagesin_total", topic="alpha") == 50
    assert value(after_produce, "kafka_server_brokertopicmetrics_messagesin_total", topic="beta") == 20
    # Batches are stored as produced: the bytes in are the log's bytes.
    for topic in ("alpha", "beta"):
        assert value(after_produce, "kafka_server_brokertopicmetrics_bytesin_total", topic=topic) == \
            value(after_produce, "kafka_log_log_size", topic=topic, partition="0") > 0
    assert value(after_produce, "kafka_log_log_logendoffset", topic="alpha", partition="0") == 50
    assert value(after_produce, "kafka_log_log_numlogsegments", topic="alpha", partition="0") == 1
    assert value(after_produce, "kafka_server_brokertopicmetrics_messagesin_total") >= 70  # all topics
    produces = total(after_produce, "kafka_network_requestmetrics_requests_total", request="Produce")
    assert produces >= 1
    # Each answered request is timed once in each of Kafka's four histograms.
    for histogram in ("totaltimems", "requestqueuetimems", "localtimems", "remotetimems"):
        assert value(after_produce, f"kafka_network_requestmetrics_{histogram}_count", request="Produce") == produces
        assert value(after_produce, f"kafka_network_requestmetrics_{histogram}_bucket", request="Produce",
                     le="+Inf") == produces
    assert value(after_produce, "kafka_network_requestmetrics_errors_total", request="Produce",
                 error="NONE") == produces  # one partition per produce request here
    assert value(after_produce, "kafka_server_replicamanager_leadercount") >= 2
    assert value(after_produce, "kafka_server_replicamanager_underreplicatedpartitions") == 0
    assert value(after_produce, "kafka_controller_kafkacontroller_activecontrollercount") == 1

    # Exact request counts from a client whose requests we count ourselves.
    before = scrape(port)
    with RawClient(broker.port) as client:
        for _ in range(3):
            client.call(API_VERSIONS, 3, {"client_software_name": "metrics-test", "client_software_version": "1"})
        for _ in range(2):
            client.call(METADATA, 12, {"topics": [{"name": "alpha"}], "allow_auto_topic_creation": False})
        # A partition that does not exist: an error code counted per API, a failed produce per topic.
        answer = produce(client, "alpha", 7, producer_batch([b"v"], keys=[b"k"]))
        assert answer["error_code"] != 0
        assert value(scrape(port), "kafka_server_socket_server_metrics_connection_count", listener="PLAINTEXT",
                     networkProcessor="0") >= 1
    after = scrape(port)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("kafka_network_requestmetrics_requests_total", request="ApiVersions", version="3") == 3
    assert moved("kafka_network_requestmetrics_totaltimems_count", request="ApiVersions") == 3
    assert moved("kafka_network_requestmetrics_requests_total", request="Metadata", version="12") == 2
    assert moved("kafka_network_requestmetrics_errors_total", request="Produce", error="UNKNOWN_TOPIC_OR_PARTITION") == 1
    assert moved("kafka_server_brokertopicmetrics_failedproducerequests_total", topic="alpha") == 1
    assert moved("kafka_server_brokertopicmetrics_messagesin_total", topic="alpha") == 0

    # A consumer reads everything and commits offset 30 of 50: a lag of 20.
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "lagging", "auto.offset.reset": "earliest",
                         "enable.auto.commit": False})
    try:
        consumer.assign([TopicPartition("alpha", 0, 0)])
        read = 0
        deadline = time.monotonic() + 30
        while read < 50 and time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is not None and message.error() is None:
                read += 1
        assert read == 50
        consumer.commit(offsets=[TopicPartition("alpha", 0, 30)], asynchronous=False)
    finally:
        consumer.close()
    consumed = scrape(port)
    assert value(consumed, "kafka_consumergroup_current_offset", consumergroup="lagging", topic="alpha",
                 partition="0") == 30
    assert value(consumed, "kafka_consumergroup_lag", consumergroup="lagging", topic="alpha", partition="0") == 20
    assert value(consumed, "kafka_server_brokertopicmetrics_bytesout_total", topic="alpha") >= \
        value(consumed, "kafka_log_log_size", topic="alpha", partition="0")
    assert value(consumed, "kafka_network_requestmetrics_totaltimems_count", request="FetchConsumer") >= 1
    assert total(consumed, "kafka_network_requestmetrics_requests_total", request="OffsetCommit") >= 1
    for operation in ("Produce", "Fetch"):
        assert ("kafka_server_delayedoperationpurgatory_purgatorysize",
                frozenset({("delayedOperation", operation)})) in consumed
    # The dashboard in docs/ asks for what the broker exports (ZooKeeper's only in cluster mode).
    single_node = {n for n in dashboard_metric_names() if not n.startswith("kafka_server_sessionexpirelistener")}
    assert single_node - exported_names(consumed) == set()

    # A deleted topic's metrics go with it, as in Kafka.
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.delete_topics(["beta"])["beta"].result(30)
    eventually(lambda: not any(("topic", "beta") in labels for _, labels in scrape(port)),
               what="beta's metrics to go with the topic")


def test_without_metrics_listener_only_the_kafka_port_listens(broker_factory):
    broker = broker_factory.start()
    assert listening_ports(broker.process.pid) == {broker.port}
    assert "metrics at" not in broker.output()


def test_metrics_listener_must_be_an_http_listener(broker_factory):
    broker = broker_factory.start("metrics.listener=127.0.0.1:9404", start=False)
    proc = subprocess.run(broker.argv(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "metrics.listener" in proc.stderr and "http://HOST:PORT" in proc.stderr


def test_metrics_port_taken_stops_the_start_before_kafka_listens(broker_factory):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        broker = broker_factory.start(f"metrics.listener=http://127.0.0.1:{port}", start=False)
        proc = subprocess.run(broker.argv(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert f"cannot start: metrics.listener: cannot listen on http://127.0.0.1:{port}" in proc.stderr
    assert "Traceback" not in proc.stderr and "started in" not in proc.stderr


def test_endpoint_answers_under_load_and_with_a_stuck_scraper(broker_factory, producer_of):
    broker, port = metrics_broker(broker_factory)
    create_topic(broker.port, "busy")
    # A scraper that connects and never sends its request holds one server thread, nothing more.
    stuck = socket.create_connection(("127.0.0.1", port))
    stuck.sendall(b"GET /metrics HTTP/1.1\r\n")
    stop = threading.Event()

    def flood() -> None:
        producer = producer_of(broker.bootstrap)
        while not stop.is_set():
            try:
                producer.produce("busy", value=b"x" * 200)
            except BufferError:
                producer.poll(0.01)
            producer.poll(0)
        producer.flush(10)

    flooding = threading.Thread(target=flood)
    flooding.start()
    try:
        seen = []
        for _ in range(10):
            seen.append(value(scrape(port, timeout=5), "kafka_server_brokertopicmetrics_messagesin_total",
                              topic="busy"))
            # The broker keeps answering Kafka requests meanwhile.
            with RawClient(broker.port) as client:
                client.call(API_VERSIONS, 3, {"client_software_name": "t", "client_software_version": "1"})
        eventually(lambda: value(scrape(port), "kafka_server_brokertopicmetrics_messagesin_total",
                                 topic="busy") > seen[0], what="the counter to move while producing")
        assert seen == sorted(seen)
    finally:
        stop.set()
        flooding.join(30)
        stuck.close()
    with pytest.raises(urllib.error.HTTPError) as elsewhere:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/other", timeout=5)
    assert elsewhere.value.code == 404


class _BrokerWithLogOptions(BrokerProcess):
    def __init__(self, workdir: Path, overrides: list[str], port: int | None, options: list[str]) -> None:
        super().__init__(workdir, overrides, port)
        self.options = options

    def argv(self) -> list[str]:
        return [*super().argv(), *self.options]


def _start_with_options(root: Path, launcher: BrokerLauncher, *options: str) -> BrokerProcess:
    broker = _BrokerWithLogOptions(root / f"logging{len(launcher.brokers)}", [], None, list(options))
    launcher.brokers.append(broker)  # stopped by the fixture with the others
    return broker.start()


def test_debug_level_writes_the_request_log(tmp_path, broker_factory):
    broker = _start_with_options(tmp_path, broker_factory, "--log-level", "DEBUG")
    with RawClient(broker.port) as client:
        client.call(METADATA, 12, {"topics": None, "allow_auto_topic_creation": False})
    line = eventually(lambda: next((line for line in broker.output().splitlines()
                                    if "kafka.request.logger" in line and "Completed request:Metadata v12" in line),
                                   None), what="the request log line of our Metadata")
    assert "client id data-path-tests" in line and "from connection 127.0.0.1:" in line
    assert "totalTime:" in line and "requestQueueTime:" in line and "localTime:" in line
    assert "listener:PLAINTEXT" in line


def test_json_log_format_writes_one_object_per_line(tmp_path, broker_factory):
    broker = _start_with_options(tmp_path, broker_factory, "--log-format", "json", "--log-level", "DEBUG")
    with RawClient(broker.port) as client:
        client.call(API_VERSIONS, 3, {"client_software_name": "json-test", "client_software_version": "1"})

    def records() -> list[dict]:
        lines = [line for line in broker.output().splitlines() if line and not line.startswith("=== starting")]
        return [json.loads(line) for line in lines]  # every line is one JSON object

    request = eventually(lambda: next((r for r in records() if r["logger"] == "kafka.request.logger"
                                       and r.get("api") == "ApiVersions" and r.get("api_version") == 3), None),
                         what="the request log record of our ApiVersions")
    assert request["level"] == "DEBUG" and request["client_id"] == "data-path-tests"
    assert request["message"].startswith("Completed request:ApiVersions v3")
    assert request["total_time_ms"] >= request["local_time_ms"] >= 0
    started = next(r for r in records() if r["logger"] == "kbroker.server" and "started in" in r["message"])
    assert started["level"] == "INFO" and started["time"].endswith("Z")


@pytest.mark.timeout(240)
def test_cluster_reports_one_controller_and_under_replicated_partitions_after_a_kill(zookeeper, broker_factory):
    metric_ports = {broker_id: free_port() for broker_id in (1, 2, 3)}
    per_broker = {b: (f"metrics.listener=http://127.0.0.1:{p}",) for b, p in metric_ports.items()}
    with KafkaCluster(broker_factory, zookeeper, broker_overrides=per_broker) as cluster:
        def summed(name: str, brokers: set[int]) -> float:
            """The label-less sample (a broker's total) summed over the brokers."""
            return sum(value(scrape(metric_ports[b]), name) for b in brokers)

        every = {1, 2, 3}
        assert summed("kafka_controller_kafkacontroller_activecontrollercount", every) == 1
        assert {n for n in dashboard_metric_names() if "sessionexpirelistener" in n} <= \
            exported_names(scrape(metric_ports[1]))
        for broker_id in every:
            assert value(scrape(metric_ports[broker_id]), "kafka_server_sessionexpirelistener_sessionstate",
                         state="CONNECTED") == 1
        admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
        admin.create_topics([NewTopic("replicated", 3, 3)])["replicated"].result(30)
        cluster.wait_for(lambda: summed("kafka_server_replicamanager_leadercount", every) == 3,
                         what="three partitions led")
        cluster.wait_for(lambda: summed("kafka_server_replicamanager_partitioncount", every) == 9,
                         what="nine replicas hosted")
        assert summed("kafka_server_replicamanager_underreplicatedpartitions", every) == 0
        producer = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all"})
        for i in range(30):
            producer.produce("replicated", value=b"r" * 100, partition=i % 3)
        assert producer.flush(30) == 0
        # acks=all: the followers had every record before the answers, so the leaders sent them.
        assert summed("kafka_server_brokertopicmetrics_messagesin_total", every) >= 30
        assert summed("kafka_server_brokertopicmetrics_replicationbytesout_total", every) >= 2 * 30 * 100
        assert "kafka_server_replicafetchermanager_maxlag" in exported_names(scrape(metric_ports[1]))

        victim = next(b for b in every if b != cluster.controller_id())
        # A partition whose only replica is on the victim goes offline with it.
        lonely = NewTopic("lonely", 1, replica_assignment=[[victim]])  # librdkafka wants the count too
        admin.create_topics([lonely])["lonely"].result(30)
        cluster.wait_for(lambda: value(scrape(metric_ports[victim]), "kafka_log_log_size", topic="lonely",
                                       partition="0") == 0, what="the lonely partition's log on the victim")
        cluster.kill(victim)
        survivors = every - {victim}
        cluster.wait_for(lambda: summed("kafka_server_replicamanager_underreplicatedpartitions", survivors) == 3,
                         what="every partition under-replicated without the killed broker")
        cluster.wait_for(lambda: summed("kafka_controller_kafkacontroller_offlinepartitionscount", survivors) == 1,
                         what="the controller to count the lonely partition offline")
        assert summed("kafka_controller_kafkacontroller_activecontrollercount", survivors) == 1

        cluster.restart(victim)
        cluster.wait_for(lambda: summed("kafka_server_replicamanager_underreplicatedpartitions", every) == 0,
                         timeout=60, what="the restarted broker back in every ISR")
        cluster.wait_for(lambda: summed("kafka_controller_kafkacontroller_offlinepartitionscount", every) == 0,
                         what="the lonely partition back online")
        assert summed("kafka_server_replicamanager_isrexpands_total", every) >= 1
        assert summed("kafka_controller_kafkacontroller_activecontrollercount", every) == 1
