"""Several listeners in a real cluster (Kafka 3.9, ZooKeeper mode): three kbroker processes, a
real ZooKeeper, confluent-kafka (librdkafka) as client.

Each broker listens on EXTERNAL (clients), INTERNAL (inter.broker.listener.name: replica
fetchers, AlterPartition, ControlledShutdown) and CONTROL (control.plane.listener.name:
LeaderAndIsr, UpdateMetadata, StopReplica); brokers 1 and 2 also on EXTRA, broker 3 not.

- /brokers/ids/<id> holds every advertised endpoint and their protocols, as Kafka writes it.
- An RF=3 topic created and written through EXTERNAL replicates (same bytes everywhere); the
  brokers' own connections go to each other's INTERNAL and CONTROL ports only, never EXTERNAL.
- Metadata over each listener names that listener's endpoints; over EXTRA broker 3 is left out
  and a partition it leads answers LISTENER_NOT_FOUND with no leader, as Kafka does.
- A consumer bootstrapped on INTERNAL reads what was written on EXTERNAL.
- Forged controller requests with the real epochs off by one, a future epoch or the wrong
  controller are refused (STALE_CONTROLLER_EPOCH / STALE_BROKER_EPOCH) and change nothing.
- A broker stopped with SIGTERM moves its leadership away through ControlledShutdown over
  INTERNAL and, restarted, rejoins the ISR.
"""

from __future__ import annotations

import json
import os
import time
import uuid

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

from kbroker.testing.cluster import KafkaCluster
from kbroker.testing.forged_requests import send_forged
from kbroker.testing.processes import free_port
from kbroker.testing.raw_client import RawClient

TIMEOUT_S = 30
pytestmark = pytest.mark.timeout(300)
STALE_CONTROLLER_EPOCH = 11
STALE_BROKER_EPOCH = 77
LISTENER_NOT_FOUND = 72
LISTENERS = ("EXTERNAL", "INTERNAL", "CONTROL", "EXTRA")
CLUSTER_OVERRIDES = (
    "zookeeper.session.timeout.ms=6000",
    "replica.fetch.backoff.ms=200",
    "controlled.shutdown.retry.backoff.ms=200",
    "auto.create.topics.enable=false",
    "inter.broker.listener.name=INTERNAL",
    "control.plane.listener.name=CONTROL",
    "listener.security.protocol.map=" + ",".join(f"{name}:PLAINTEXT" for name in LISTENERS),
)


class Ports:
    """Each broker's port per listener (broker 3 has no EXTRA)."""

    def __init__(self, broker_ids: range) -> None:
        self.by_broker = {b: {name: free_port() for name in (LISTENERS if b != 3 else LISTENERS[:3])}
                          for b in broker_ids}

    def overrides(self) -> dict[int, tuple[str, ...]]:
        """listeners and advertised.listeners of each broker."""
        def listeners(ports: dict[str, int]) -> str:
            return ",".join(f"{name}://127.0.0.1:{port}" for name, port in ports.items())
        return {b: (f"listeners={listeners(p)}", f"advertised.listeners={listeners(p)}")
                for b, p in self.by_broker.items()}

    def bootstrap(self, listener: str) -> str:
        return ",".join(f"127.0.0.1:{p[listener]}" for p in self.by_broker.values() if listener in p)

    def owner(self, port: int) -> tuple[int, str]:
        return next((b, name) for b, ports in self.by_broker.items() for name, p in ports.items() if p == port)


@pytest.fixture(scope="module")
def ports() -> Ports:
    return Ports(range(1, 4))


@pytest.fixture(scope="module")
def cluster(zookeeper, module_broker_factory, ports):
    with KafkaCluster(module_broker_factory, zookeeper, overrides=CLUSTER_OVERRIDES,
                      broker_overrides=ports.overrides(),
                      broker_ports={b: p["EXTERNAL"] for b, p in ports.by_broker.items()}) as cluster:
        yield cluster


def create_topic(cluster: KafkaCluster, ports: Ports, name: str, leader: int | None = None) -> None:
    """RF=3, min.insync.replicas=2; `leader` first in the assignment (the preferred leader)."""
    replicas = [leader, *sorted({1, 2, 3} - {leader})] if leader is not None else None
    admin = KafkaAdminClient(bootstrap_servers=ports.bootstrap("EXTERNAL"), request_timeout_ms=TIMEOUT_S * 1000)
    try:
        topic = NewTopic(name, replica_assignments={0: replicas}, topic_configs={"min.insync.replicas": "2"}) \
            if replicas else NewTopic(name, 1, 3, topic_configs={"min.insync.replicas": "2"})
        admin.create_topics([topic])
    finally:
        admin.close()
    cluster.wait_for(lambda: cluster.leader(name) >= 0, what=f"a leader for {name}")


def produce(ports: Ports, topic: str, values: list[bytes], listener: str = "EXTERNAL") -> list[int]:
    offsets: list[int] = []
    errors: list = []
    producer = Producer({"bootstrap.servers": ports.bootstrap(listener), "acks": "all",
                         "enable.idempotence": True, "message.timeout.ms": 60000, "retry.backoff.ms": 100})
    for value in values:
        producer.produce(topic, value, partition=0,
                         on_delivery=lambda err, msg: errors.append(err) if err else offsets.append(msg.offset()))
    assert producer.flush(TIMEOUT_S) == 0 and errors == []
    return offsets


def consume(ports: Ports, topic: str, count: int, listener: str) -> list[bytes]:
    consumer = Consumer({"bootstrap.servers": ports.bootstrap(listener), "group.id": f"g-{uuid.uuid4().hex[:6]}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        values: list[bytes] = []
        deadline = time.monotonic() + TIMEOUT_S
        while len(values) < count and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                values.append(message.value())
        return values
    finally:
        consumer.close()


def remote_ports(pid: int) -> set[int]:
    """The remote ports of the process's established TCP connections (from /proc: no psutil)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = set()
    with open(f"/proc/{pid}/net/tcp") as table:
        next(table)
        for line in table:
            fields = line.split()
            if fields[3] == "01" and fields[9] in inodes:  # ESTABLISHED
                found.add(int(fields[2].split(":")[1], 16))
    return found


def test_registration_holds_every_endpoint_as_kafka_writes_it(cluster, ports):
    for broker_id, own in ports.by_broker.items():
        data, _ = cluster.zk.get(f"/brokers/ids/{broker_id}")
        registration = json.loads(data)
        assert registration["version"] == 5 and registration["features"] == {}
        assert registration["endpoints"] == [f"{name}://127.0.0.1:{port}" for name, port in own.items()]
        assert registration["listener_security_protocol_map"] == {name: "PLAINTEXT" for name in own}
        # Host and port of the first PLAINTEXT endpoint, for clients older than listeners.
        assert (registration["host"], registration["port"]) == ("127.0.0.1", own["EXTERNAL"])


def test_replication_and_controller_traffic_use_their_own_listeners(cluster, ports):
    create_topic(cluster, ports, "split")
    assert produce(ports, "split", [b"s%04d" % i for i in range(300)]) == list(range(300))
    cluster.wait_for(lambda: sorted(cluster.isr("split")) == [1, 2, 3], what="a full ISR")
    cluster.wait_for(lambda: cluster.logs_identical("split"), what="identical logs on every broker")
    leader, controller = cluster.leader("split"), cluster.controller_id()
    peers_seen: dict[int, set[tuple[int, str]]] = {}
    for broker_id, broker in cluster.brokers.items():
        peers = {ports.owner(port) for port in remote_ports(broker.process.pid)
                 if any(port in p.values() for p in ports.by_broker.values())}
        peers_seen[broker_id] = {peer for peer in peers if peer[0] != broker_id}
    for broker_id, peers in peers_seen.items():
        assert {name for _, name in peers} <= {"INTERNAL", "CONTROL"}, (broker_id, peers)
        if broker_id != leader:  # a follower fetches from the leader's INTERNAL endpoint
            assert (leader, "INTERNAL") in peers, (broker_id, peers)
    # The controller's channel reaches every other broker on its CONTROL endpoint.
    assert {(b, "CONTROL") for b in ports.by_broker if b != controller} <= peers_seen[controller]


@pytest.mark.parametrize("listener", ["EXTERNAL", "INTERNAL", "CONTROL"])
def test_metadata_over_each_listener_names_that_listeners_endpoints(cluster, ports, listener):
    for broker_id in ports.by_broker:
        metadata = cluster.metadata(broker_id, port=ports.by_broker[broker_id][listener])
        assert sorted((b.node_id, b.host, b.port) for b in metadata.brokers) == [
            (b, "127.0.0.1", own[listener]) for b, own in sorted(ports.by_broker.items())]


def test_brokers_without_the_clients_listener_are_left_out(cluster, ports):
    create_topic(cluster, ports, "led-by-3", leader=3)
    cluster.wait_for(lambda: cluster.metadata_leader(1, "led-by-3") == 3, what="broker 1 to know the leader")
    metadata = cluster.metadata(1, ["led-by-3"], port=ports.by_broker[1]["EXTRA"])
    assert sorted(b.node_id for b in metadata.brokers) == [1, 2]
    [partition] = metadata.topics[0].partitions
    assert (partition.error_code, partition.leader_id) == (LISTENER_NOT_FOUND, -1)


def test_a_consumer_on_the_internal_listener_reads_what_was_written_on_the_external_one(cluster, ports):
    create_topic(cluster, ports, "across")
    produce(ports, "across", [b"x", b"y", b"z"])
    assert consume(ports, "across", 3, "INTERNAL") == [b"x", b"y", b"z"]


def test_forged_controller_requests_are_refused_by_every_broker(cluster, ports):
    create_topic(cluster, ports, "guarded")
    produce(ports, "guarded", [b"g"])
    controller = cluster.controller_id()
    epoch = int(cluster.zk.get("/controller_epoch")[0])
    for broker_id, own in ports.by_broker.items():
        before = cluster.metadata(broker_id, ["guarded"])
        broker_epoch = cluster.broker_epoch(broker_id)
        other = next(b for b in ports.by_broker if b not in (broker_id, controller))
        forged = [
            (controller, epoch - 1, broker_epoch, STALE_CONTROLLER_EPOCH),  # a deposed controller
            (controller, epoch + 1, broker_epoch, STALE_CONTROLLER_EPOCH),  # an epoch never given out
            (other, epoch, broker_epoch, STALE_CONTROLLER_EPOCH),  # not the controller
            (broker_id, epoch, broker_epoch, STALE_CONTROLLER_EPOCH),  # in our own name
            (controller, epoch, broker_epoch - 1, STALE_BROKER_EPOCH),
            (controller, epoch, broker_epoch + 1, STALE_BROKER_EPOCH),
            (controller, epoch, -1, STALE_BROKER_EPOCH),
        ]
        for listener in ("EXTERNAL", "CONTROL"):  # Kafka accepts controller requests on any listener
            with RawClient(own[listener]) as client:
                for controller_id, controller_epoch, claimed_epoch, error in forged:
                    if controller_id == controller == broker_id:
                        error = STALE_CONTROLLER_EPOCH
                    answers = send_forged(client, controller_id, controller_epoch, claimed_epoch, "guarded",
                                          cluster.replicas("guarded"))
                    assert {name: a["error_code"] for name, a in answers.items()} == dict.fromkeys(
                        answers, error), (broker_id, listener, controller_id, controller_epoch, claimed_epoch)
        after = cluster.metadata(broker_id, ["guarded"])
        assert sorted(b.node_id for b in after.brokers) == sorted(b.node_id for b in before.brokers) == [1, 2, 3]
        assert [(p.leader_id, p.error_code) for p in after.topics[0].partitions] == \
               [(p.leader_id, p.error_code) for p in before.topics[0].partitions]
    assert consume(ports, "guarded", 1, "EXTERNAL") == [b"g"]
    assert sorted(cluster.isr("guarded")) == [1, 2, 3]


def test_a_stopped_leader_hands_over_through_controlled_shutdown_and_rejoins(cluster, ports):
    # Led by a broker that is not the controller, so its ControlledShutdown crosses INTERNAL.
    leader = next(b for b in sorted(ports.by_broker) if b != cluster.controller_id())
    create_topic(cluster, ports, "handover", leader=leader)
    produce(ports, "handover", [b"before"])
    cluster.wait_for(lambda: sorted(cluster.isr("handover")) == [1, 2, 3], what="a full ISR")
    assert cluster.leader("handover") == leader
    assert cluster.brokers[leader].stop() == 0
    assert "controlled shutdown done" in cluster.brokers[leader].output()
    assert cluster.leader("handover") not in (leader, -1)  # moved before the broker went away
    produce(ports, "handover", [b"during"])
    cluster.restart(leader)
    cluster.wait_for(lambda: sorted(cluster.isr("handover")) == [1, 2, 3], what="the restarted broker in the ISR")
    assert consume(ports, "handover", 2, "INTERNAL") == [b"before", b"during"]
