"""ConsumerGroupHeartbeat (68) and ConsumerGroupDescribe (69) over the wire, against a
`python -m kbroker` subprocess: advertised by default (Kafka 4.0's
group.coordinator.rebalance.protocols=classic,consumer), not when the setting leaves `consumer` out; a join, a heartbeat, a describe; ListGroups v5's type, DescribeGroups'
answer for a consumer group and OffsetCommit/OffsetFetch v9's member epoch checks.
"""

from __future__ import annotations

import pytest

from kbroker.protocol.uuids import ZERO_UUID
from kbroker.testing import wire
from kbroker.testing.admin import call, create_topic
from kbroker.testing.waiting import eventually

HEARTBEAT, DESCRIBE, LIST_GROUPS, DESCRIBE_GROUPS, OFFSET_COMMIT, OFFSET_FETCH = 68, 69, 16, 15, 8, 9
FIND_COORDINATOR = 10
NONE, UNSUPPORTED_VERSION, INVALID_REQUEST, GROUP_ID_NOT_FOUND = 0, 35, 42, 69
UNKNOWN_MEMBER_ID, STALE_MEMBER_EPOCH, UNSUPPORTED_ASSIGNOR = 25, 113, 112
TOPIC = "cg-topic"


def advertised(port: int) -> dict[int, tuple[int, int]]:
    return wire.parse_api_versions(wire.roundtrip(port, wire.api_versions_request(1, 3)), 3).api_keys


@pytest.fixture
def consumer_broker(broker_factory):
    return broker_factory.start("group.consumer.min.heartbeat.interval.ms=1000",
                                "group.consumer.heartbeat.interval.ms=1000")


def heartbeat(port: int, member_id: str, epoch: int, version: int = 1, **fields) -> dict:
    body = {"group_id": "g", "member_id": member_id, "member_epoch": epoch, "instance_id": None, "rack_id": None,
            "rebalance_timeout_ms": 30000 if epoch == 0 else -1,
            "subscribed_topic_names": [TOPIC] if epoch == 0 else None, "subscribed_topic_regex": None,
            "server_assignor": None, "topic_partitions": [] if epoch == 0 else None, **fields}
    return call(port, HEARTBEAT, version, body)


def test_not_advertised_unless_the_consumer_protocol_is_enabled(broker_factory):
    broker = broker_factory.start("group.coordinator.rebalance.protocols=classic")
    keys = advertised(broker.port)
    assert HEARTBEAT not in keys and DESCRIBE not in keys
    answer = heartbeat(broker.port, "m", 0)
    assert answer["error_code"] == UNSUPPORTED_VERSION


def test_heartbeat_describe_and_the_other_group_apis(consumer_broker):
    port = consumer_broker.port
    keys = advertised(port)
    assert keys[HEARTBEAT] == (0, 1) and keys[DESCRIBE] == (0, 1)
    create_topic(port, TOPIC, partitions=3)
    eventually(lambda: call(port, FIND_COORDINATOR, 3, {"key": "g", "key_type": 0})["error_code"] == NONE,
               what="the group coordinator", timeout=30)
    bad = heartbeat(port, "", 0)
    assert (bad["error_code"], bad["error_message"]) == (INVALID_REQUEST, "MemberId can't be empty.")
    assert heartbeat(port, "m1", 0, server_assignor="sticky")["error_code"] == UNSUPPORTED_ASSIGNOR

    joined = heartbeat(port, "m1", 0)
    assert (joined["error_code"], joined["member_id"], joined["member_epoch"]) == (NONE, "m1", 1)
    assert joined["heartbeat_interval_ms"] == 1000
    [tp] = joined["assignment"]["topic_partitions"]
    assert tp["topic_id"] != ZERO_UUID and sorted(tp["partitions"]) == [0, 1, 2]
    v0 = heartbeat(port, "", 0, version=0)
    assert v0["error_code"] == NONE and v0["member_id"]  # v0: the coordinator names the member
    assert heartbeat(port, v0["member_id"], -1, version=0)["member_epoch"] == -1
    # Two members came and went: m1 catches up with the group epoch on its next heartbeat.
    epoch = heartbeat(port, "m1", 1)["member_epoch"]
    assert epoch == 3

    [described] = call(port, DESCRIBE, 1, {"group_ids": ["g"], "include_authorized_operations": True})["groups"]
    assert (described["error_code"], described["group_state"], described["assignor_name"]) == (NONE, "Stable", "uniform")
    [member] = described["members"]
    assert member["member_id"] == "m1" and member["client_id"] == "kbroker-testing"
    assert member["assignment"]["topic_partitions"][0]["topic_name"] == TOPIC
    assert member["member_type"] == 1 and described["authorized_operations"] > 0
    [missing] = call(port, DESCRIBE, 0, {"group_ids": ["nope"], "include_authorized_operations": False})["groups"]
    assert missing["error_code"] == GROUP_ID_NOT_FOUND

    listed = call(port, LIST_GROUPS, 5, {"states_filter": [], "types_filter": ["consumer"]})["groups"]
    assert [(g["group_id"], g["group_type"], g["group_state"]) for g in listed] == [("g", "consumer", "Stable")]
    [classic_view] = call(port, DESCRIBE_GROUPS, 6, {"groups": ["g"], "include_authorized_operations": False})["groups"]
    assert (classic_view["error_code"], classic_view["error_message"]) == (
        GROUP_ID_NOT_FOUND, "Group g is not a classic group.")

    def commit(epoch: int) -> int:
        answer = call(port, OFFSET_COMMIT, 9, {
            "group_id": "g", "generation_id_or_member_epoch": epoch, "member_id": "m1", "group_instance_id": None,
            "topics": [{"name": TOPIC, "partitions": [{"partition_index": 0, "committed_offset": 7,
                                                       "committed_leader_epoch": -1, "committed_metadata": ""}]}]})
        return answer["topics"][0]["partitions"][0]["error_code"]
    assert commit(epoch - 1) == STALE_MEMBER_EPOCH
    assert commit(epoch) == NONE

    def fetch(member_id: str, epoch: int) -> dict:
        return call(port, OFFSET_FETCH, 9, {"groups": [{"group_id": "g", "member_id": member_id, "member_epoch": epoch,
                                                        "topics": [{"name": TOPIC, "partition_indexes": [0]}]}],
                                           "require_stable": True})["groups"][0]
    assert fetch("m1", epoch + 1)["error_code"] == STALE_MEMBER_EPOCH
    assert fetch("x", epoch)["error_code"] == UNKNOWN_MEMBER_ID
    answer = fetch("m1", epoch)
    assert answer["error_code"] == NONE and answer["topics"][0]["partitions"][0]["committed_offset"] == 7
