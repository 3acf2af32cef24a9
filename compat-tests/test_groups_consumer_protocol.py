"""KIP-848 consumer groups with a real client: confluent-kafka (librdkafka 2.12+) members with
group.protocol=consumer, as processes (test_groups_member.py, strategy `consumer`).

- One broker: two members share a 4-partition topic (2 each, every partition once), consume and
  commit 40 records; one leaves and the other takes all 4; the last one commits, closes, the
  broker restarts, and a newcomer resumes exactly at the commits.
- Three brokers with a real ZooKeeper: kill -9 of the group's coordinator; the offsets
  partition's new leader reloads the group from its records (epochs, assignments) and the
  members carry on with it, consuming and committing what follows.
- A transactional producer commits a member's offsets (send_offsets_to_transaction with its
  KIP-848 group metadata: member id and epoch).
Expected behaviour is Apache Kafka 4.x's (GroupMetadataManager.consumerGroupHeartbeat).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from confluent_kafka import Consumer, ConsumerGroupState, ConsumerGroupType, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from test_groups_clients import Member, values, wait_for
from test_groups_cluster import CLUSTER_OVERRIDES, coordinator_of

from kbroker.group.coordinator_records import partition_for
from kbroker.testing.cluster import KafkaCluster
from kbroker.testing.waiting import eventually

PARTITIONS = 4
TIMEOUT_S = 30
# Faster than Kafka's defaults (5 s heartbeats, 45 s sessions), their lower bounds with them.
CONSUMER_PROTOCOL = ("group.coordinator.rebalance.protocols=classic,consumer",
                     "group.consumer.min.heartbeat.interval.ms=1000", "group.consumer.heartbeat.interval.ms=1000",
                     "group.consumer.min.session.timeout.ms=10000", "group.consumer.session.timeout.ms=10000")
pytestmark = pytest.mark.timeout(300)


def member(bootstrap: str, topic: str, group: str, name: str, log_dir) -> Member:
    return Member("confluent-kafka", bootstrap, topic, group, name, log_dir, strategy="consumer")


def produce(bootstrap: str, topic: str, start: int, count: int) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    for i in range(start, start + count):
        producer.produce(topic, f"r{i}".encode(), partition=i % PARTITIONS)
    assert producer.flush(TIMEOUT_S) == 0


def create_topic(bootstrap: str, topic: str, replicas: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, PARTITIONS, replicas)], operation_timeout=TIMEOUT_S)[topic].result(TIMEOUT_S)


def shared(members: list[Member], each: int) -> bool:
    assignments = [m.assignment for m in members]
    if any(a is None or len(a) != each for a in assignments):
        return False
    return sorted(p for a in assignments for p in a) == list(range(PARTITIONS))


def committed(members: list[Member]) -> dict[int, int]:
    out: dict[int, int] = {}
    for m in members:
        for p, offset in m.committed.items():
            out[p] = max(offset, out.get(p, 0))
    return out


def assert_records_decode(data_dir: Path, group: str, client_ids: set[str]) -> None:
    """`kbroker dump-log --offsets-decoder` reads the group's KIP-848 records as Kafka's decoder:
    each member's metadata, and the tombstones its leave wrote."""
    segment = data_dir / f"__consumer_offsets-{partition_for(group, 50)}" / f"{0:020d}.log"
    out = subprocess.run([sys.executable, "-m", "kbroker", "dump-log", "--offsets-decoder", "--files", str(segment)],
                         capture_output=True, text=True, check=True).stdout
    lines = [line.split(" key: ")[1] for line in out.splitlines() if line.startswith("| ") and " key: " in line]
    members = [json.loads(line.split(" payload: ")[1]) for line in lines if line.startswith('{"type":"5"')
               and not line.endswith("<DELETE>")]
    assert {m["data"]["clientId"] for m in members} == client_ids
    assert all(m["data"]["subscribedTopicNames"] for m in members)
    assert sum(line.startswith('{"type":"5"') and line.endswith("<DELETE>") for line in lines) == 2  # both left
    epochs = [json.loads(line.split(" payload: ")[1])["data"]["epoch"] for line in lines
              if line.startswith(f'{{"type":"3","data":{{"groupId":"{group}"}}}}')]
    assert epochs == sorted(epochs) and epochs[-1] >= 3


def test_two_members_share_then_one_takes_all_and_offsets_resume(broker_factory, tmp_path):
    broker = broker_factory.start(*CONSUMER_PROTOCOL)
    topic, group = "kip848-orders", "kip848-workers"
    create_topic(broker.bootstrap, topic, 1)
    produce(broker.bootstrap, topic, 0, 40)
    members = []
    try:
        a = member(broker.bootstrap, topic, group, "a", tmp_path)
        members.append(a)
        b = member(broker.bootstrap, topic, group, "b", tmp_path)
        members.append(b)
        wait_for(lambda: shared([a, b], 2), "two members with 2 partitions each", members)
        wait_for(lambda: values(members) == {f"r{i}" for i in range(40)}
                 and committed(members) == {p: 10 for p in range(PARTITIONS)},
                 "40 records consumed and committed", members)
        # librdkafka's admin describes it with ConsumerGroupDescribe and lists it by type.
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        described = admin.describe_consumer_groups([group])[group].result(TIMEOUT_S)
        assert (described.type, described.state) == (ConsumerGroupType.CONSUMER, ConsumerGroupState.STABLE)
        assert sorted(tp.partition for m in described.members for tp in m.assignment.topic_partitions) == [0, 1, 2, 3]
        assert {m.client_id for m in described.members} == {a.client_id, b.client_id}
        listed = admin.list_consumer_groups(types={ConsumerGroupType.CONSUMER}).result(TIMEOUT_S)
        assert [g.group_id for g in listed.valid] == [group]
        b.close()
        # A leave (epoch -1) moves b's partitions at once, well before any session timeout.
        wait_for(lambda: shared([a], 4), "a to take all 4 partitions", [a], timeout=8)
        produce(broker.bootstrap, topic, 40, 20)
        wait_for(lambda: values([a]) >= {f"r{i}" for i in range(40, 60)}
                 and a.committed == {p: 15 for p in range(PARTITIONS)}, "a to consume and commit the rest", [a])
        a.close()
        assert_records_decode(broker.log_dir, group, {a.client_id, b.client_id})
        produce(broker.bootstrap, topic, 60, 8)
        broker.restart()
        c = member(broker.bootstrap, topic, group, "c", tmp_path)
        members.append(c)
        wait_for(lambda: c.committed == {p: 17 for p in range(PARTITIONS)}, "the newcomer to read the tail", [c])
        assert sorted(v for _, _, v in c.records) == sorted(f"r{i}" for i in range(60, 68))
    finally:
        for m in members:
            m.stop()


@pytest.fixture
def cluster(zookeeper, broker_factory):
    with KafkaCluster(broker_factory, zookeeper, overrides=CLUSTER_OVERRIDES + CONSUMER_PROTOCOL) as cluster:
        yield cluster


def test_group_survives_the_loss_of_its_coordinator(cluster, tmp_path):
    topic, group = "kip848-cluster", "kip848-cluster-workers"
    create_topic(cluster.bootstrap, topic, 3)
    produce(cluster.bootstrap, topic, 0, 40)

    def agreed() -> set[int]:
        return {coordinator_of(cluster, b, group) for b in cluster.brokers}
    cluster.wait_for(lambda: len(agreed()) == 1 and -1 not in agreed(), what="every broker to name the coordinator")
    (coordinator,) = agreed()
    members = []
    try:
        for name in ("a", "b"):
            members.append(member(cluster.bootstrap, topic, group, name, tmp_path))
        a, b = members
        wait_for(lambda: shared([a, b], 2), "two members with 2 partitions each", members)
        wait_for(lambda: values(members) == {f"r{i}" for i in range(40)}
                 and committed(members) == {p: 10 for p in range(PARTITIONS)},
                 "40 records consumed and committed", members)
        cluster.kill(coordinator)
        others = [i for i in cluster.brokers if i != coordinator]
        cluster.wait_for(lambda: coordinator_of(cluster, others[0], group) not in (-1, coordinator),
                         timeout=TIMEOUT_S, what="a new coordinator")
        survivors = ",".join(cluster.brokers[i].bootstrap for i in others)
        produce(survivors, topic, 40, 20)
        wait_for(lambda: values(members) >= {f"r{i}" for i in range(60)}
                 and committed(members) == {p: 15 for p in range(PARTITIONS)} and shared([a, b], 2),
                 "the members to carry on with the new coordinator", members, timeout=60)
        new_coordinator = cluster.brokers[coordinator_of(cluster, others[0], group)]
        assert f"loaded consumer group {group} in epoch 2 with 2 members" in new_coordinator.output_path.read_text()
    finally:
        for m in members:
            m.stop()


def test_transactional_offsets_of_a_consumer_group_member(broker_factory):
    """consume-transform-produce with librdkafka: send_offsets_to_transaction with a KIP-848
    member's group metadata (TxnOffsetCommit with its member id and epoch), then a commit."""
    broker = broker_factory.start(*CONSUMER_PROTOCOL)
    create_topic(broker.bootstrap, "kip848-in", 1)  # PARTITIONS partitions
    create_topic(broker.bootstrap, "kip848-out", 1)
    produce(broker.bootstrap, "kip848-in", 0, 12)
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "kip848-eos", "group.protocol": "consumer",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    producer = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": "kip848-tx"})
    try:
        consumer.subscribe(["kip848-in"])
        producer.init_transactions(TIMEOUT_S)
        got: list = []

        def consumed() -> bool:
            got.extend(m for m in consumer.consume(12, 0.5) if m.error() is None)
            return len(got) == 12
        eventually(consumed, what="12 records", timeout=TIMEOUT_S)
        producer.begin_transaction()
        for m in got:
            producer.produce("kip848-out", m.value())
        next_offsets = {}
        for m in got:
            next_offsets[m.partition()] = m.offset() + 1
        producer.send_offsets_to_transaction([TopicPartition("kip848-in", p, o) for p, o in next_offsets.items()],
                                             consumer.consumer_group_metadata(), TIMEOUT_S)
        producer.commit_transaction(TIMEOUT_S)
        assert [tp.offset for tp in consumer.committed([TopicPartition("kip848-in", p) for p in range(PARTITIONS)],
                                                       TIMEOUT_S)] == [3, 3, 3, 3]
    finally:
        consumer.close()
