"""DescribeTopicPartitions (75, KIP-966) over real sockets against a kbroker subprocess: what a
partition carries, pagination across topics and inside one topic's partitions, unknown and
illegal topics, a cursor on a deleted topic, and invalid cursors, as Kafka's
DescribeTopicPartitionsRequestHandler answers them."""

from __future__ import annotations

import json

import pytest

from kbroker.metadata.znode_store import EmbeddedZNodeStore
from kbroker.testing.raw_client import NONE, advertised_api_keys, create_topic, raw_call, topic_id_of
from kbroker.testing.waiting import eventually

DESCRIBE_TOPIC_PARTITIONS, DELETE_TOPICS, METADATA = 75, 20, 3
UNKNOWN_TOPIC_OR_PARTITION, INVALID_TOPIC_EXCEPTION, INVALID_REQUEST, TOPIC_AUTHORIZATION_FAILED = 3, 17, 42, 29
DESCRIBE_OPERATION = 8  # AclOperation.DESCRIBE's code: KIP-430's bit
ZERO_UUID_STR = "00000000-0000-0000-0000-000000000000"


@pytest.fixture(scope="module")
def kbroker(module_broker_factory):
    broker = module_broker_factory()
    for name, partitions in (("dtp-a", 2), ("dtp-b", 3), ("dtp-five", 5)):
        create_topic(broker.port, name, partitions)
    return broker


def describe(port: int, *names: str, limit: int = 2000, cursor: tuple[str, int] | None = None) -> dict:
    return raw_call(port, DESCRIBE_TOPIC_PARTITIONS, 0, {
        "topics": [{"name": n} for n in names], "response_partition_limit": limit,
        "cursor": None if cursor is None else {"topic_name": cursor[0], "partition_index": cursor[1]}})


def page(answer: dict) -> tuple[list[tuple[str, list[int]]], tuple[str, int] | None]:
    """([(topic, [partition indexes])], next cursor)."""
    cursor = answer["next_cursor"]
    return ([(t["name"], [p["partition_index"] for p in t["partitions"]]) for t in answer["topics"]],
            None if cursor is None else (cursor["topic_name"], cursor["partition_index"]))


def test_advertised(kbroker):
    assert advertised_api_keys(kbroker.port)[DESCRIBE_TOPIC_PARTITIONS] == (0, 0)


def test_named_topics_sorted_with_their_partitions_and_unknown_ones(kbroker):
    answer = describe(kbroker.port, "dtp-b", "no-such-topic", "dtp-a", "bad/name")
    assert [(t["name"], t["error_code"]) for t in answer["topics"]] == [
        ("bad/name", INVALID_TOPIC_EXCEPTION), ("dtp-a", NONE), ("dtp-b", NONE),
        ("no-such-topic", UNKNOWN_TOPIC_OR_PARTITION)]
    assert answer["next_cursor"] is None
    a = answer["topics"][1]
    assert a["topic_id"] == topic_id_of(kbroker.port, "dtp-a")
    assert a["is_internal"] is False
    assert a["topic_authorized_operations"] > 0  # no authorizer: every operation a topic supports
    assert a["partitions"] == [
        {"error_code": NONE, "partition_index": p, "leader_id": 0, "leader_epoch": 0, "replica_nodes": [0],
         "isr_nodes": [0], "eligible_leader_replicas": [], "last_known_elr": [], "offline_replicas": []}
        for p in (0, 1)]
    assert str(answer["topics"][3]["topic_id"]) == ZERO_UUID_STR and answer["topics"][3]["partitions"] == []


def test_pages_across_topics(kbroker):
    assert page(describe(kbroker.port, "dtp-a", "dtp-b", limit=3)) == (
        [("dtp-a", [0, 1]), ("dtp-b", [0])], ("dtp-b", 1))
    assert page(describe(kbroker.port, "dtp-a", "dtp-b", limit=3, cursor=("dtp-b", 1))) == (
        [("dtp-b", [1, 2])], None)
    # The limit reached exactly at a topic's end: the next page starts at the next topic.
    assert page(describe(kbroker.port, "dtp-a", "dtp-b", limit=2)) == ([("dtp-a", [0, 1])], ("dtp-b", 0))
    # A limit of 0 or less counts as 1, as Kafka's max(1, ...).
    assert page(describe(kbroker.port, "dtp-a", limit=0)) == ([("dtp-a", [0])], ("dtp-a", 1))


def test_pages_inside_a_topic(kbroker):
    pages, cursor = [], None
    while True:
        topics, cursor = page(describe(kbroker.port, "dtp-five", limit=2, cursor=cursor))
        pages.append(topics)
        if cursor is None:
            break
    assert pages == [[("dtp-five", [0, 1])], [("dtp-five", [2, 3])], [("dtp-five", [4])]]


def test_all_topics_from_a_cursor_on_a_deleted_topic(kbroker):
    create_topic(kbroker.port, "zz-deleted", 2)
    create_topic(kbroker.port, "zz-next", 2)
    answer = raw_call(kbroker.port, DELETE_TOPICS, 4, {"topic_names": ["zz-deleted"], "timeout_ms": 30000})
    assert answer["responses"][0]["error_code"] == NONE
    eventually(lambda: "zz-deleted" not in [t["name"] for t in describe(kbroker.port)["topics"]],
               what="the deleted topic gone from the metadata", timeout=30)
    # The cursor's partition index is the deleted topic's: the next topic starts at 0.
    assert page(describe(kbroker.port, cursor=("zz-deleted", 1))) == ([("zz-next", [0, 1])], None)
    listed = [name for name, _ in page(describe(kbroker.port))[0]]
    assert listed == sorted(listed) and {"dtp-a", "dtp-b", "dtp-five", "zz-next"} <= set(listed)


def test_invalid_cursors(kbroker):
    for cursor in (("dtp-b", 0), ("dtp-a", -1)):
        answer = describe(kbroker.port, "dtp-a", cursor=cursor)
        assert [(t["name"], t["error_code"], t["partitions"]) for t in answer["topics"]] == [
            ("dtp-a", INVALID_REQUEST, [])]
        assert answer["next_cursor"] is None


def test_the_broker_caps_a_page_with_max_request_partition_size_limit(broker_factory):
    broker = broker_factory("max.request.partition.size.limit=2")
    create_topic(broker.port, "capped", 3)
    assert page(describe(broker.port, "capped", limit=2000)) == ([("capped", [0, 1])], ("capped", 2))


def test_describe_on_each_topic_is_needed(broker_factory):
    """With an AclAuthorizer granting DESCRIBE on auto* only: a named topic without it is
    TOPIC_AUTHORIZATION_FAILED (last, no topic id), listing all topics leaves it out."""
    broker = broker_factory()
    for name in ("auto-orders", "secret"):
        create_topic(broker.port, name, 1)
    broker.stop()
    store = EmbeddedZNodeStore(str(broker.log_dir))
    store.create("/kafka-acl-extended/prefixed/Topic/auto", json.dumps({"version": 1, "acls": [
        {"principal": "User:ANONYMOUS", "permissionType": "Allow", "operation": "Describe", "host": "*"}]}).encode(),
        makepath=True)
    store.close()
    broker.overrides += ["authorizer.class.name=kafka.security.authorizer.AclAuthorizer",
                         "allow.everyone.if.no.acl.found=false"]
    broker.restart()
    named = describe(broker.port, "secret", "auto-orders", "auto-missing")
    assert [(t["name"], t["error_code"]) for t in named["topics"]] == [
        ("auto-missing", UNKNOWN_TOPIC_OR_PARTITION), ("auto-orders", NONE), ("secret", TOPIC_AUTHORIZATION_FAILED)]
    secret = named["topics"][2]
    assert (str(secret["topic_id"]), secret["partitions"]) == (ZERO_UUID_STR, [])
    assert named["topics"][1]["topic_authorized_operations"] == 1 << DESCRIBE_OPERATION
    assert page(describe(broker.port)) == ([("auto-orders", [0])], None)
