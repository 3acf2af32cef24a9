"""Consumer groups in a three-broker cluster (real ZooKeeper, kbroker/testing/cluster.py), confluent-kafka
members as processes (test_groups_member.py).

- `__consumer_offsets` is created with replication factor 3 (offsets.topic.replication.factor's
  cluster default) on the first FindCoordinator; every broker names the same coordinator, and
  group calls sent to another broker get NOT_COORDINATOR.
- kill -9 of the coordinator: the offsets partition's new leader replays it (members, generation,
  commits) and the members carry on; nothing committed is lost and a new member after them
  resumes exactly at the commits.
Expected behaviour is Apache Kafka's (KAFKA-FACTS.md §6-7).
"""

from __future__ import annotations

import itertools

import pytest
from confluent_kafka.admin import AdminClient, NewTopic
from kafka.protocol.consumer.group import HeartbeatResponse
from kafka.protocol.metadata.find_coordinator import FindCoordinatorResponse
from test_groups_clients import PARTITIONS, Member, balanced, produce, values, wait_for

from kbroker.protocol.messages import request_codec
from kbroker.testing import wire
from kbroker.testing.cluster import KafkaCluster

TIMEOUT_S = 30
# Three brokers, ZooKeeper, kills and session expiries: more than pyproject's default per test.
pytestmark = pytest.mark.timeout(300)
CLUSTER_OVERRIDES = (
    "zookeeper.session.timeout.ms=6000",
    "replica.fetch.backoff.ms=200",
    "controlled.shutdown.retry.backoff.ms=200",
    "offsets.topic.num.partitions=6",
)
NONE, NOT_COORDINATOR = 0, 16
_correlation_ids = itertools.count(1)


def call(port: int, api_key: int, version: int, body: dict, response_class):
    codec = request_codec(api_key, version)
    frame = wire.request_frame(api_key, version, next(_correlation_ids), codec.encode(body), flexible=codec.flexible)
    return wire.decode_with_kafka_python(response_class, wire.roundtrip(port, frame), version)[1]


def coordinator_of(cluster: KafkaCluster, broker_id: int, group: str) -> int:
    response = call(cluster.brokers[broker_id].port, 10, 3, {"key": group, "key_type": 0}, FindCoordinatorResponse)
    return response.node_id if response.error_code == NONE else -1


@pytest.fixture
def cluster(zookeeper, broker_factory):
    with KafkaCluster(broker_factory, zookeeper, overrides=CLUSTER_OVERRIDES) as cluster:
        yield cluster


def test_group_survives_the_loss_of_its_coordinator(cluster, tmp_path):
    topic, group = "cluster-orders", "cluster-workers"
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    admin.create_topics([NewTopic(topic, PARTITIONS, 3)], operation_timeout=TIMEOUT_S)[topic].result(TIMEOUT_S)
    produce(cluster.bootstrap, topic, 0, 60)

    def agreed() -> set[int]:
        return {coordinator_of(cluster, b, group) for b in cluster.brokers}

    cluster.wait_for(lambda: len(agreed()) == 1 and -1 not in agreed(), what="every broker to name the coordinator")
    (coordinator,) = agreed()
    assert {len(cluster.replicas("__consumer_offsets", p)) for p in range(6)} == {3}
    assert coordinator in {cluster.leader("__consumer_offsets", p) for p in range(6)}

    members = []
    try:
        for name in ("a", "b"):
            members.append(Member("confluent-kafka", cluster.bootstrap, topic, group, name, tmp_path))
        a, b = members
        wait_for(lambda: balanced([a, b], 3), "two members with 3 partitions each", members)
        wait_for(lambda: values(members) == {f"r{i}" for i in range(60)}
                 and {**a.committed, **b.committed} == {p: 10 for p in range(PARTITIONS)},
                 "60 records consumed and committed", members)
        other = next(b for b in cluster.brokers if b != coordinator)
        beat = {"group_id": group, "generation_id": 1, "member_id": "any"}
        assert call(cluster.brokers[other].port, 12, 4, beat, HeartbeatResponse).error_code == NOT_COORDINATOR

        cluster.kill(coordinator)
        cluster.wait_for(lambda: coordinator_of(cluster, other, group) not in (-1, coordinator), timeout=TIMEOUT_S,
                         what="a new coordinator")
        produce(",".join(b.bootstrap for i, b in cluster.brokers.items() if i != coordinator), topic, 60, 30)
        wait_for(lambda: values(members) >= {f"r{i}" for i in range(90)}
                 and {**a.committed, **b.committed} == {p: 15 for p in range(PARTITIONS)},
                 "the members to carry on with the new coordinator", members, timeout=TIMEOUT_S)
        for m in members:
            m.close()
        # Nothing was lost with the old coordinator: a newcomer starts exactly after the commits.
        produce(",".join(b.bootstrap for i, b in cluster.brokers.items() if i != coordinator), topic, 90, 6)
        c = Member("confluent-kafka", cluster.bootstrap, topic, group, "c", tmp_path)
        members.append(c)
        wait_for(lambda: len(c.records) >= 6, "the newcomer to read the tail", [c])
        # Once it has committed past the tail, everything it was going to read is in.
        wait_for(lambda: c.committed == {p: 16 for p in range(PARTITIONS)}, "the newcomer to commit", [c])
        assert sorted(v for _, _, v in c.records) == sorted(f"r{i}" for i in range(90, 96))
    finally:
        for m in members:
            m.stop()
