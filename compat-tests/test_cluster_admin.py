"""The cluster's ZooKeeper data and admin operations, checked the way Kafka's tools see them: three
kbroker processes on 127.0.0.1 with a real ZooKeeper (kbroker/testing/cluster.py), znodes read with
kazoo, admin calls through confluent-kafka and kafka-python, log directories read from disk.

- Every znode a ZooKeeper-mode Kafka 3.x writes has Kafka's JSON shape, under the chroot of
  zookeeper.connect and nowhere else (KAFKA-FACTS.md §1); topic ids and the cluster id match
  what Metadata v12 reports.
- A config change rewrites /config/topics/<t> and announces itself under /config/changes.
- DeleteTopics marks the topic under /admin/delete_topics; the controller renames every
  replica's directory to `*-delete`, removes them after log.segment.delete.delay.ms, and then
  the znodes. A replica that is down holds the deletion until it returns (Kafka's
  TopicDeletionManager).
- ElectLeaders (confluent-kafka) moves leadership back to the preferred replica; a reassignment
  through kafka-python's AlterPartitionReassignments moves an RF=1 partition with its data to
  another broker and deletes the old replica.
- A broker started without broker.id gets reserved.broker.max.id + 1 and keeps it.
"""

from __future__ import annotations

import base64
import json
import re
import time

import pytest
from confluent_kafka import ElectionType, TopicPartition
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic
from kafka import TopicPartition as KafkaPythonTopicPartition
from kafka.admin import KafkaAdminClient
from kafka.admin import NewTopic as KafkaPythonNewTopic
from kazoo.client import KazooClient
from test_cluster_replication import CLUSTER_OVERRIDES, produce_and_flush, read_all

from kbroker.testing.cluster import KafkaCluster
from kbroker.testing.raw_client import RawClient
from kbroker.testing.records import stored_records

TIMEOUT_S = 30
# Three brokers, ZooKeeper, kills and session expiries: more than pyproject's default per test.
pytestmark = pytest.mark.timeout(300)
DELETE_DELAY_MS = 3000
ADMIN_OVERRIDES = (
    *CLUSTER_OVERRIDES,
    "auto.leader.rebalance.enable=false",  # only the test's ElectLeaders may move leaders back
    f"log.segment.delete.delay.ms={DELETE_DELAY_MS}",
)
DELETE_TOPICS, DELETE_TOPICS_VERSION = 20, 4
ELECTION_NOT_NEEDED = 84
# What createTopLevelPaths, the controller and the cluster id write at the top of the chroot.
KAFKA_TOP_LEVEL = {"admin", "brokers", "cluster", "config", "consumers", "controller", "controller_epoch",
                   "isr_change_notification", "latest_producer_id_block", "log_dir_event_notification"}
TOPIC_ID = re.compile(r"[A-Za-z0-9_-]{22}")


@pytest.fixture(scope="module")
def cluster(zookeeper, module_broker_factory):
    with KafkaCluster(module_broker_factory, zookeeper, overrides=ADMIN_OVERRIDES) as cluster:
        yield cluster


def admin_client(cluster: KafkaCluster) -> AdminClient:
    return AdminClient({"bootstrap.servers": cluster.bootstrap})


def create_topic(cluster: KafkaCluster, topic: NewTopic) -> None:
    admin = admin_client(cluster)  # the future dies with its client: keep it referenced
    admin.create_topics([topic], operation_timeout=TIMEOUT_S)[topic.topic].result(TIMEOUT_S)
    partitions = len(topic.replica_assignment) if topic.replica_assignment else topic.num_partitions
    cluster.wait_for(lambda: all(cluster.leader(topic.topic, p) >= 0 for p in range(partitions)),
                     what=f"leaders for {topic.topic}")


def znode_json(cluster: KafkaCluster, path: str) -> tuple[dict, object]:
    data, stat = cluster.zk.get(path)
    return json.loads(data), stat


def assert_ms_timestamp(text: object, since_ms: int) -> None:
    assert isinstance(text, str) and text.isdigit(), f"timestamp {text!r} is not a decimal string"
    assert since_ms <= int(text) <= time.time() * 1000


# -- znode shapes -----------------------------------------------------------------------------


def test_znodes_have_kafkas_shapes_under_the_chroot_only(cluster, zookeeper):
    started_ms = int(time.time() * 1000) - 120_000
    topic = "shapes"
    create_topic(cluster, NewTopic(topic, 3, 2))
    produce_and_flush(cluster, topic, [b"one"])  # idempotent: allocates a producer id block
    metadata = cluster.metadata(1, [topic])

    for broker_id, broker in cluster.brokers.items():
        registration, stat = znode_json(cluster, f"/brokers/ids/{broker_id}")
        assert stat.ephemeralOwner != 0
        assert_ms_timestamp(registration.pop("timestamp"), started_ms)
        assert isinstance(registration.pop("features"), dict)
        assert registration == {
            "version": 5, "host": "127.0.0.1", "port": broker.port, "jmx_port": -1,
            "endpoints": [f"PLAINTEXT://127.0.0.1:{broker.port}"],
            "listener_security_protocol_map": {"PLAINTEXT": "PLAINTEXT"},
        }

    controller, stat = znode_json(cluster, "/controller")
    assert stat.ephemeralOwner != 0
    assert_ms_timestamp(controller.pop("timestamp"), started_ms)
    assert controller == {"version": 2, "brokerid": metadata.controller_id, "kraftControllerEpoch": -1}
    epoch_text, stat = cluster.zk.get("/controller_epoch")
    assert re.fullmatch(rb"\d+", epoch_text) and int(epoch_text) >= 1 and stat.ephemeralOwner == 0

    assignment, _ = znode_json(cluster, f"/brokers/topics/{topic}")
    topic_id = assignment.pop("topic_id")
    assert assignment == {"version": 3, "adding_replicas": {}, "removing_replicas": {},
                          "partitions": {str(p): cluster.replicas(topic, p) for p in range(3)}}
    assert all(len(set(r)) == 2 and set(r) <= {1, 2, 3} for r in assignment["partitions"].values())
    [described] = metadata.topics
    assert TOPIC_ID.fullmatch(topic_id) and base64.urlsafe_b64decode(topic_id + "==") == described.topic_id.bytes

    leaders = {p.partition_index: p.leader_id for p in described.partitions}
    for partition in range(3):
        state, stat = znode_json(cluster, f"/brokers/topics/{topic}/partitions/{partition}/state")
        replicas = assignment["partitions"][str(partition)]
        assert stat.ephemeralOwner == 0
        assert 1 <= state.pop("controller_epoch") <= int(epoch_text)
        assert state == {"version": 1, "leader": replicas[0], "leader_epoch": 0, "isr": replicas}
        assert leaders[partition] == replicas[0]

    cluster_id, _ = znode_json(cluster, "/cluster/id")
    assert cluster_id == {"version": "1", "id": metadata.cluster_id}
    assert admin_client(cluster).list_topics(timeout=TIMEOUT_S).cluster_id == metadata.cluster_id
    for broker in cluster.brokers.values():
        assert f"cluster.id={metadata.cluster_id}" in (broker.log_dir / "meta.properties").read_text()

    block, _ = znode_json(cluster, "/latest_producer_id_block")
    assert block["broker"] in cluster.brokers
    assert block == {"version": 1, "broker": block["broker"], "block_start": "0", "block_end": "999"}
    assert cluster.zk.exists("/brokers/seqid") is not None

    assert KAFKA_TOP_LEVEL <= set(cluster.zk.get_children("/"))
    root = KazooClient(hosts=zookeeper, timeout=10)
    root.start(timeout=10)
    try:
        assert KAFKA_TOP_LEVEL.isdisjoint(root.get_children("/")), "znodes written outside the chroot"
        assert root.exists(cluster.chroot + "/brokers/ids/1") is not None
    finally:
        root.stop()
        root.close()


def test_a_topic_config_change_rewrites_its_config_and_announces_it(cluster):
    topic = "configured"
    create_topic(cluster, NewTopic(topic, 1, 3, config={"retention.ms": "3600000"}))
    config, _ = znode_json(cluster, f"/config/topics/{topic}")
    assert config == {"version": 1, "config": {"retention.ms": "3600000"}}
    before = set(cluster.zk.get_children("/config/changes"))

    change = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[
        ConfigEntry("max.message.bytes", "200000", incremental_operation=AlterConfigOpType.SET)])
    admin = admin_client(cluster)
    admin.incremental_alter_configs([change])[change].result(TIMEOUT_S)

    config, _ = znode_json(cluster, f"/config/topics/{topic}")
    assert config == {"version": 1, "config": {"retention.ms": "3600000", "max.message.bytes": "200000"}}
    [notification] = set(cluster.zk.get_children("/config/changes")) - before
    assert re.fullmatch(r"config_change_\d{10}", notification)
    data, stat = znode_json(cluster, f"/config/changes/{notification}")
    assert data == {"version": 2, "entity_path": f"topics/{topic}"} and stat.ephemeralOwner == 0


# -- topic deletion ---------------------------------------------------------------------------
# Each deletion test gets its own cluster: a deletion must not leave the next test a broken one.


@pytest.fixture
def fresh_cluster(zookeeper, broker_factory):
    with KafkaCluster(broker_factory, zookeeper, overrides=ADMIN_OVERRIDES) as cluster:
        yield cluster


def delete_topic(cluster: KafkaCluster, topic: str) -> None:
    admin = admin_client(cluster)
    admin.delete_topics([topic], operation_timeout=TIMEOUT_S)[topic].result(TIMEOUT_S)


def mark_for_deletion(cluster: KafkaCluster, broker_id: int, topic: str) -> dict:
    """DeleteTopics with timeout_ms=0 sent to that broker: answered once the topic is marked."""
    with RawClient(cluster.brokers[broker_id].port, timeout=TIMEOUT_S) as client:
        answer = client.call(DELETE_TOPICS, DELETE_TOPICS_VERSION, {"topic_names": [topic], "timeout_ms": 0})
    [result] = answer["responses"]
    return result


def topic_znodes(cluster: KafkaCluster, topic: str) -> list[str]:
    paths = (f"/brokers/topics/{topic}", f"/config/topics/{topic}", f"/admin/delete_topics/{topic}")
    return [p for p in paths if cluster.zk.exists(p) is not None]


def deleted_dir(topic: str, partition: int) -> re.Pattern:
    return re.compile(rf"{re.escape(topic)}-{partition}\.[0-9a-f]{{32}}-delete")


def create_replicated(cluster: KafkaCluster, topic: str, partitions: int = 1) -> set[str]:
    """An RF=3 topic with records in partition 0; returns its live directory names once every
    broker has them."""
    create_topic(cluster, NewTopic(topic, partitions, 3))
    produce_and_flush(cluster, topic, [b"gone"] * 10)
    live = {f"{topic}-{p}" for p in range(partitions)}
    cluster.wait_for(lambda: all(cluster.partition_dirs(b, topic) == live for b in cluster.brokers),
                     what="every replica's directory")
    return live


def test_deleting_a_topic_renames_every_replica_directory_and_removes_its_znodes(fresh_cluster):
    cluster, topic, partitions = fresh_cluster, "doomed", 2
    live = create_replicated(cluster, topic, partitions)
    # With the controller paused the deletion can only be marked: the marker stays to be read.
    controller = cluster.controller_id()
    other = next(b for b in cluster.brokers if b != controller)
    cluster.pause(controller)
    try:
        assert mark_for_deletion(cluster, other, topic)["error_code"] == 0
        data, stat = cluster.zk.get(f"/admin/delete_topics/{topic}")
        assert data in (None, b"") and stat.ephemeralOwner == 0
        assert topic_znodes(cluster, topic) == [
            f"/brokers/topics/{topic}", f"/config/topics/{topic}", f"/admin/delete_topics/{topic}"]
    finally:
        cluster.resume(controller)

    renamed: dict[int, set[str]] = {b: set() for b in cluster.brokers}

    def directories_renamed() -> bool:
        for broker_id in cluster.brokers:
            names = cluster.partition_dirs(broker_id, topic)
            renamed[broker_id] |= names - live
            if names & live:
                return False
        return True

    cluster.wait_for(directories_renamed, interval=0.02, what="every replica's directory to be renamed")
    for broker_id, names in renamed.items():
        for partition in range(partitions):
            assert any(deleted_dir(topic, partition).fullmatch(n) for n in names), (broker_id, names)
    cluster.wait_for(lambda: topic_znodes(cluster, topic) == [], what="the topic's znodes to go")


def test_every_broker_forgets_a_deleted_topic_and_still_hears_from_the_controller(fresh_cluster):
    cluster = fresh_cluster
    create_replicated(cluster, "forgotten")
    delete_topic(cluster, "forgotten")
    cluster.wait_for(lambda: all(not cluster.metadata(b, ["forgotten"]).topics[0].partitions
                                 for b in cluster.brokers), timeout=10,
                     what="every broker's metadata to drop the topic")
    create_topic(cluster, NewTopic("after-the-deletion", 1, 3))
    cluster.wait_for(lambda: all(cluster.metadata_leader(b, "after-the-deletion") >= 0 for b in cluster.brokers),
                     timeout=10, what="every broker to learn the next topic's leader")


def test_deleted_directories_are_removed_after_the_delete_delay(fresh_cluster):
    cluster = fresh_cluster
    create_replicated(cluster, "short-lived")
    delete_topic(cluster, "short-lived")
    cluster.wait_for(lambda: all(not cluster.partition_dirs(b, "short-lived") for b in cluster.brokers),
                     timeout=DELETE_DELAY_MS / 1000 + 5, what="the renamed directories to be removed")


def test_deleting_a_topic_with_a_replica_down_finishes_when_it_returns(fresh_cluster):
    cluster, topic = fresh_cluster, "doomed-later"
    create_replicated(cluster, topic)
    down = next(b for b in cluster.replicas(topic) if b != cluster.controller_id())
    assert cluster.brokers[down].stop() == 0
    try:
        controller = cluster.controller_id()
        assert mark_for_deletion(cluster, controller, topic)["error_code"] == 0
        cluster.wait_for(lambda: all(f"{topic}-0" not in cluster.partition_dirs(b, topic)
                                     for b in cluster.brokers if b != down), what="the live replicas' deletion")
        time.sleep(1)  # time enough for the controller to finish too early
        assert f"/admin/delete_topics/{topic}" in topic_znodes(cluster, topic)
        assert cluster.partition_dirs(down, topic) == {f"{topic}-0"}
    finally:
        cluster.restart(down)
    cluster.wait_for(lambda: topic_znodes(cluster, topic) == [], what="the deletion to finish")
    assert f"{topic}-0" not in cluster.partition_dirs(down, topic)


# -- elections and reassignment ---------------------------------------------------------------


def election_results(cluster: KafkaCluster, topic: str) -> dict:
    admin = admin_client(cluster)  # the future dies with its client: keep it referenced
    # No timeout keywords: confluent-kafka 2.16's binding rejects them (SystemError).
    future = admin.elect_leaders(ElectionType.PREFERRED, [TopicPartition(topic, 0)])
    return {(tp.topic, tp.partition): error for tp, error in future.result(TIMEOUT_S).items()}


def test_preferred_leader_election_puts_the_first_replica_back(cluster):
    topic = "preferred"
    create_topic(cluster, NewTopic(topic, 1, 3, config={"min.insync.replicas": "2"}))
    produce_and_flush(cluster, topic, [b"p%03d" % i for i in range(100)])
    preferred = cluster.replicas(topic)[0]
    assert cluster.leader(topic) == preferred
    assert cluster.brokers[preferred].stop() == 0  # controlled shutdown hands leadership over
    cluster.wait_for(lambda: cluster.leader(topic) not in (preferred, -1), what="a new leader")
    produce_and_flush(cluster, topic, [b"q%03d" % i for i in range(100)])
    cluster.restart(preferred)
    cluster.wait_for(lambda: preferred in cluster.isr(topic), what="the preferred replica back in the ISR")
    assert cluster.leader(topic) != preferred, "leadership came back without an election"
    epoch_before = cluster.partition_state(topic)["leader_epoch"]

    assert election_results(cluster, topic) == {(topic, 0): None}

    state = cluster.partition_state(topic)
    assert state["leader"] == preferred and state["leader_epoch"] == epoch_before + 1
    cluster.wait_for(lambda: all(cluster.metadata_leader(b, topic) == preferred for b in cluster.brokers),
                     what="every broker's metadata to name the preferred leader")
    [error] = election_results(cluster, topic).values()
    assert error is not None and error.code() == ELECTION_NOT_NEEDED  # a KafkaError
    produce_and_flush(cluster, topic, [b"r%03d" % i for i in range(100)])
    values = [v for _, v in read_all(cluster.bootstrap, topic)]
    assert values == [b"%s%03d" % (c, i) for c in (b"p", b"q", b"r") for i in range(100)]


# -- broker ids -------------------------------------------------------------------------------


def test_a_broker_without_an_id_gets_a_generated_one_and_keeps_it(cluster):
    broker_id = cluster.add_broker()
    broker = cluster.brokers[broker_id]
    try:
        assert broker_id == 1001  # /brokers/seqid's version (1) + reserved.broker.max.id (1000)
        assert "broker.id=1001" in (broker.log_dir / "meta.properties").read_text()
        epoch = cluster.broker_epoch(broker_id)
        assert broker.stop() == 0
        cluster.wait_for(lambda: broker_id not in cluster.live_broker_ids(), what="the broker to deregister")
        broker.start()
        cluster.wait_for(lambda: broker_id in cluster.live_broker_ids(), what="the broker to register again")
        assert cluster.broker_epoch(broker_id) > epoch
        assert cluster.zk.exists("/brokers/seqid").version == 1, "a second id was generated"
        assert len(cluster.metadata(broker_id).brokers) == 4
    finally:
        broker.stop()
        del cluster.brokers[broker_id]


# Last in the module: while the reassignment below fails, it leaves one stuck behind.
def test_reassignment_moves_a_partition_and_its_data_to_another_broker(cluster):
    topic, source, target = "moving", 1, 3
    values = [b"m%05d" % i for i in range(2000)]
    admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap, request_timeout_ms=TIMEOUT_S * 1000)
    try:
        admin.create_topics([KafkaPythonNewTopic(topic, replica_assignments={0: [source]})])
        cluster.wait_for(lambda: cluster.leader(topic) == source, what=f"broker {source} to lead {topic}")
        produce_and_flush(cluster, topic, values)
        assert cluster.partition_dirs(target, topic) == set()

        tp = KafkaPythonTopicPartition(topic, 0)
        assert admin.alter_partition_reassignments({tp: [target]}) == {tp: None}
        cluster.wait_for(lambda: cluster.replicas(topic) == [target], timeout=10, what="the reassignment to complete")
        assert admin.list_partition_reassignments() == {}
    finally:
        admin.close()

    assignment, _ = znode_json(cluster, f"/brokers/topics/{topic}")
    assert (assignment["adding_replicas"], assignment["removing_replicas"]) == ({}, {})
    state = cluster.partition_state(topic)
    assert (state["leader"], state["isr"]) == (target, [target])
    cluster.wait_for(lambda: f"{topic}-0" not in cluster.partition_dirs(source, topic),
                     what="the old replica's directory to be deleted")
    assert all(deleted_dir(topic, 0).fullmatch(n) for n in cluster.partition_dirs(source, topic))
    moved = stored_records(cluster.brokers[target].log_dir, topic, 0)
    assert [v for _, _, v in moved] == values
    cluster.wait_for(lambda: all(cluster.metadata_leader(b, topic) == target for b in cluster.brokers),
                     what="every broker's metadata to name the new leader")
    assert [v for _, v in read_all(cluster.bootstrap, topic)] == values
