"""The znode stores (embedded, and a real ZooKeeper through kazoo), Kafka's znode shapes and the
replica assignment algorithm. The same semantic tests run against both stores."""

from __future__ import annotations

import itertools
import json

import pytest

from kbroker.metadata import kafka_zk_client
from kbroker.metadata import zk_data as zk
from kbroker.metadata.admin_zk_client import AdminError, AdminZkClient, assign_replicas_to_brokers
from kbroker.metadata.kafka_zk_client import ControllerMovedError, KafkaZkClient
from kbroker.metadata.kazoo_store import KazooZNodeStore, split_chroot
from kbroker.metadata.znode_store import (
    BadVersionError,
    EmbeddedZNodeStore,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
    Op,
)
from kbroker.protocol.errors import Errors
from kbroker.testing.waiting import eventually

_chroots = itertools.count()


@pytest.fixture(params=["embedded", "zookeeper"])
def make_store(request, tmp_path):
    """Builds stores of one kind; each test gets a fresh tree (a new chroot on ZooKeeper)."""
    opened = []
    if request.param == "embedded":
        def make(notify=None):
            return EmbeddedZNodeStore(str(tmp_path), notify=notify)
    else:
        connect = f"{request.getfixturevalue('zookeeper')}/kbroker-test-{next(_chroots)}"

        def make(notify=None):
            store = KazooZNodeStore(connect, 6000, 5000, notify=notify or (lambda fn: fn()))
            opened.append(store)
            return store
    yield make
    for store in opened:
        store.close()


def test_split_chroot():
    assert split_chroot("h1:2181,h2:2181/kafka/x/") == ("h1:2181,h2:2181", "/kafka/x")
    assert split_chroot("h:2181") == ("h:2181", "")
    assert split_chroot("h:2181/") == ("h:2181", "")


def test_versions_and_conditional_writes(make_store):
    store = make_store()
    store.create("/a", b"1")
    assert store.get("/a") == (b"1", store.exists("/a"))
    assert store.set("/a", b"2", version=0).version == 1
    with pytest.raises(BadVersionError):
        store.set("/a", b"3", version=0)
    with pytest.raises(NodeExistsError):
        store.create("/a")
    with pytest.raises(NoNodeError):
        store.create("/missing/child")
    store.create("/a/b", b"")
    with pytest.raises(NotEmptyError):
        store.delete("/a")
    store.delete("/a", recursive=True)
    assert store.exists("/a") is None


def test_multi_is_all_or_nothing(make_store):
    store = make_store()
    store.create("/epoch", b"0")
    with pytest.raises(BadVersionError):
        store.multi([Op("create", "/controller", b"x", ephemeral=True), Op("set", "/epoch", b"1", version=7)])
    assert store.exists("/controller") is None
    assert store.get("/epoch")[0] == b"0"


def test_sequential_nodes_and_persistence_without_ephemerals(tmp_path):
    store = EmbeddedZNodeStore(str(tmp_path))
    store.ensure_path("/config/changes")
    first = store.create("/config/changes/config_change_", b"a", sequence=True)
    second = store.create("/config/changes/config_change_", b"b", sequence=True)
    assert (first, second) == ("/config/changes/config_change_0000000000", "/config/changes/config_change_0000000001")
    store.create("/brokers", b"")
    store.create("/brokers/0", b"me", ephemeral=True)
    reopened = EmbeddedZNodeStore(str(tmp_path))
    assert reopened.get(second)[0] == b"b"
    assert reopened.exists("/brokers/0") is None  # ephemeral: gone with the session
    assert reopened.create("/config/changes/config_change_", sequence=True).endswith("0000000002")


def test_watches_fire_through_notify(make_store):
    fired: list[str] = []
    queued: list = []
    store = make_store(notify=queued.append)
    store.create("/topics")
    store.watch_children("/topics", lambda: fired.append("children"))
    store.create("/topics/t")
    eventually(lambda: queued, what="the watch's notification", timeout=10, interval=0.01)  # ZooKeeper's is asynchronous
    assert fired == []  # never inside the store's call or on the store's thread
    for fn in list(queued):
        fn()
    assert fired == ["children"]


def test_controller_election_is_fenced_by_the_epoch(make_store):
    client = KafkaZkClient(make_store())
    client.create_top_level_paths()
    assert client.try_elect_controller(1) == (1, 1)
    assert client.try_elect_controller(2) is None  # /controller exists
    assert json.loads(client.store.get(zk.CONTROLLER)[0])["brokerid"] == 1
    assert client.store.get(zk.CONTROLLER_EPOCH)[0] == b"1"


def _topic_znodes(topic: str, partitions: int) -> list[str]:
    return [zk.topic_path(topic), zk.partitions_path(topic), zk.topic_config_path(topic),
            zk.delete_topic_path(topic)] + [zk.partition_state_path(topic, p) for p in range(partitions)]


def _topic_marked_for_deletion(client: KafkaZkClient, topic: str, partitions: int, epoch_zk_version: int) -> None:
    AdminZkClient(client).create_topic(topic, {p: [1] for p in range(partitions)}, {"cleanup.policy": "compact"})
    for p in range(partitions):
        client.create_partition_state(topic, p, zk.LeaderIsrAndControllerEpoch(1, 0, [1], 1), epoch_zk_version)
    client.mark_topic_for_deletion(topic)


@pytest.mark.parametrize("deletes_per_multi", [1000, 2])
def test_topic_deletion_is_fenced_by_the_controller_epoch(make_store, monkeypatch, deletes_per_multi):
    # 2 deletes per multi takes the path of a topic too large for one multi: the fence must hold
    # in every multi, and the children-first order across them.
    monkeypatch.setattr(kafka_zk_client, "_MAX_DELETES_PER_MULTI", deletes_per_multi)
    client = KafkaZkClient(make_store())
    client.create_top_level_paths()
    _, old_version = client.try_elect_controller(1)
    _topic_marked_for_deletion(client, "t", 3, old_version)
    client.store.delete(zk.CONTROLLER)  # controller 1 lost its session, but has not noticed yet
    _, new_version = client.try_elect_controller(2)

    with pytest.raises(ControllerMovedError):
        client.delete_topic_znodes("t", old_version)
    assert [path for path in _topic_znodes("t", 3) if client.store.exists(path) is None] == []

    client.delete_topic_znodes("t", new_version)
    assert [path for path in _topic_znodes("t", 3) if client.store.exists(path) is not None] == []
    assert client.topics_to_delete() == [] and client.get_all_topics() == []


def test_znode_json_shapes_are_kafkas():
    assignment = zk.TopicAssignment("AAAAAAAAAAAAAAAAAAAAAQ", {0: [1, 2], 1: [2, 1]}, {}, {})
    assert json.loads(assignment.encode()) == {
        "version": 3, "partitions": {"0": [1, 2], "1": [2, 1]}, "adding_replicas": {}, "removing_replicas": {},
        "topic_id": "AAAAAAAAAAAAAAAAAAAAAQ"}
    state = zk.LeaderIsrAndControllerEpoch(1, 0, [1, 2], 3)
    assert json.loads(state.encode()) == {"version": 1, "leader": 1, "leader_epoch": 0, "controller_epoch": 3,
                                          "isr": [1, 2]}
    broker = json.loads(zk.BrokerRegistration(1, [("PLAINTEXT", "h", 9092, "PLAINTEXT")]).encode())
    assert broker["version"] == 5 and broker["host"] == "h" and broker["port"] == 9092
    assert broker["endpoints"] == ["PLAINTEXT://h:9092"] and "rack" not in broker
    assert json.loads(zk.encode_cluster_id("abc")) == {"version": "1", "id": "abc"}


def test_broker_registration_with_several_listeners_is_kafkas_version_5():
    """BrokerIdZNode.encode: every advertised endpoint, the map of their protocols only, host and
    port from the first PLAINTEXT endpoint (null/-1 without one), IPv6 in brackets, no features
    in ZooKeeper mode."""
    registration = zk.BrokerRegistration(3, [("EXTERNAL", "ext.example", 19092, "PLAINTEXT"),
                                             ("INTERNAL", "::1", 9093, "PLAINTEXT")], rack="r1")
    broker = json.loads(registration.encode())
    assert set(broker) == {"version", "host", "port", "endpoints", "jmx_port", "timestamp",
                           "listener_security_protocol_map", "features", "rack"}
    assert (broker["version"], broker["host"], broker["port"], broker["jmx_port"]) == (5, "ext.example", 19092, -1)
    assert broker["endpoints"] == ["EXTERNAL://ext.example:19092", "INTERNAL://[::1]:9093"]
    assert broker["listener_security_protocol_map"] == {"EXTERNAL": "PLAINTEXT", "INTERNAL": "PLAINTEXT"}
    assert broker["features"] == {} and broker["rack"] == "r1" and broker["timestamp"].isdigit()
    decoded = zk.BrokerRegistration.decode(3, registration.encode(), czxid=42)
    assert decoded.endpoints == registration.endpoints and decoded.epoch == 42
    no_plaintext = json.loads(zk.BrokerRegistration(1, [("SECURE", "h", 9094, "SSL")]).encode())
    assert (no_plaintext["host"], no_plaintext["port"]) == (None, -1)


def test_replica_assignment_matches_kafkas_algorithm():
    # AdminUtils with startIndex 0 and shift 0 on brokers 0..4, 10 partitions, RF 3 (Kafka's own
    # example in AdminUtils' documentation).
    got = assign_replicas_to_brokers(10, 3, [0, 1, 2, 3, 4], start_index=0, first_shift=0)
    assert got[0] == [0, 1, 2] and got[1] == [1, 2, 3] and got[4] == [4, 0, 1]
    assert got[5] == [0, 2, 3] and got[9] == [4, 1, 2]
    leaders = [r[0] for r in got.values()]
    assert sorted(leaders) == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]  # leadership spread evenly
    assert all(len(set(r)) == 3 for r in got.values())


def test_replica_assignment_errors():
    with pytest.raises(AdminError) as exc:
        assign_replicas_to_brokers(1, 3, [0])
    assert exc.value.code == Errors.INVALID_REPLICATION_FACTOR
    with pytest.raises(AdminError) as exc:
        assign_replicas_to_brokers(0, 1, [0])
    assert exc.value.code == Errors.INVALID_PARTITIONS


def test_topic_name_collision_and_duplicates(tmp_path):
    client = KafkaZkClient(EmbeddedZNodeStore(str(tmp_path)))
    client.create_top_level_paths()
    admin = AdminZkClient(client)
    admin.create_topic("a.b", {0: [0]}, {})
    for name, code in (("a_b", Errors.INVALID_TOPIC_EXCEPTION), ("a.b", Errors.TOPIC_ALREADY_EXISTS),
                       ("bad/name", Errors.INVALID_TOPIC_EXCEPTION)):
        with pytest.raises(AdminError) as exc:
            admin.create_topic(name, {0: [0]}, {})
        assert exc.value.code == code
    with pytest.raises(AdminError) as exc:
        admin.create_topic("gaps", {0: [0], 2: [0]}, {})
    assert exc.value.code == Errors.INVALID_REPLICA_ASSIGNMENT
