"""The group APIs over the wire, every served version, against a `python -m kbroker` subprocess.

Requests are encoded with kbroker's codec (one exact version each); responses are decoded with
kafka-python's schema classes, which must re-encode them byte for byte. Expectations are Apache
Kafka 3.x's KafkaApis and GroupCoordinator answers (KAFKA-FACTS §6-7). The last test stops the
broker and reads `__consumer_offsets` segment files with kafka-python's record reader.
"""

from __future__ import annotations

import itertools
import struct
import time
import uuid
from pathlib import Path

import pytest
from kafka.protocol.admin.groups import DeleteGroupsResponse, DescribeGroupsResponse, ListGroupsResponse
from kafka.protocol.admin.topics import CreateTopicsResponse
from kafka.protocol.consumer.group import (
    HeartbeatResponse,
    JoinGroupResponse,
    LeaveGroupResponse,
    OffsetCommitResponse,
    OffsetDeleteResponse,
    OffsetFetchResponse,
    SyncGroupResponse,
)
from kafka.protocol.metadata.find_coordinator import FindCoordinatorResponse
from kafka.protocol.metadata.metadata import MetadataResponse
from kafka.record.memory_records import MemoryRecords

from kbroker.protocol.messages import request_codec
from kbroker.protocol.uuids import ZERO_UUID
from kbroker.testing import wire
from kbroker.testing.waiting import eventually

FIND_COORDINATOR, JOIN_GROUP, HEARTBEAT, LEAVE_GROUP, SYNC_GROUP = 10, 11, 12, 13, 14
OFFSET_COMMIT, OFFSET_FETCH, DESCRIBE_GROUPS, LIST_GROUPS, DELETE_GROUPS, OFFSET_DELETE = 8, 9, 15, 16, 42, 47
CREATE_TOPICS, METADATA = 19, 3
NONE, UNKNOWN_TOPIC_OR_PARTITION, COORDINATOR_NOT_AVAILABLE = 0, 3, 15
ILLEGAL_GENERATION, INCONSISTENT_GROUP_PROTOCOL, INVALID_GROUP_ID, UNKNOWN_MEMBER_ID = 22, 23, 24, 25
INVALID_SESSION_TIMEOUT, REBALANCE_IN_PROGRESS, INVALID_REQUEST = 26, 27, 42
NON_EMPTY_GROUP, GROUP_ID_NOT_FOUND, MEMBER_ID_REQUIRED, UNKNOWN_TOPIC_ID = 68, 69, 79, 100
TOPIC = "group-api-topic"
SUBSCRIPTION = struct.pack(">hih", 0, 1, len(TOPIC)) + TOPIC.encode() + struct.pack(">i", -1)
# Creating and loading __consumer_offsets takes a moment; generous for a loaded machine.
COORDINATOR_WAIT_S = 30.0

_correlation_ids = itertools.count(1)


def call(port: int, api_key: int, version: int, body: dict, response_class):
    codec = request_codec(api_key, version)
    frame = wire.request_frame(api_key, version, next(_correlation_ids), codec.encode(body), flexible=codec.flexible)
    _, response = wire.decode_with_kafka_python(response_class, wire.roundtrip(port, frame), version)
    return response


def find_coordinator(port: int, version: int, key: str = "g", key_type: int = 0):
    body = {"key": key, "key_type": key_type, "coordinator_keys": [key]}
    return call(port, FIND_COORDINATOR, version, body, FindCoordinatorResponse)


def await_coordinator(port: int, version: int = 0, key: str = "g") -> None:
    """Until FindCoordinator for `key` answers NONE (the offsets topic is created and loaded)."""
    eventually(lambda: find_coordinator(port, version, key).error_code == NONE, what="the coordinator",
               timeout=COORDINATOR_WAIT_S)


def join(port: int, version: int, group: str, member_id: str = "", session_ms: int = 10000,
         instance: str | None = None):
    body = {"group_id": group, "session_timeout_ms": session_ms, "rebalance_timeout_ms": 10000,
            "member_id": member_id, "group_instance_id": instance, "protocol_type": "consumer",
            "protocols": [{"name": "range", "metadata": SUBSCRIPTION}], "reason": "tests"}
    return call(port, JOIN_GROUP, version, body, JoinGroupResponse)


def join_stable(port: int, group: str, version: int = 5) -> tuple[str, int]:
    """One member joined and synced; returns (member id, generation)."""
    first = join(port, version, group)
    member_id = first.member_id
    if first.error_code == MEMBER_ID_REQUIRED:
        first = join(port, version, group, member_id)
    assert first.error_code == NONE, first
    sync = call(port, SYNC_GROUP, min(version, 5), {
        "group_id": group, "generation_id": first.generation_id, "member_id": member_id,
        "protocol_type": "consumer", "protocol_name": "range",
        "assignments": [{"member_id": member_id, "assignment": b"mine"}]}, SyncGroupResponse)
    assert sync.error_code == NONE and sync.assignment == b"mine"
    return member_id, first.generation_id


def commit(port: int, version: int, group: str, offsets: dict, generation: int = -1, member_id: str = "",
           topic_id: uuid.UUID | None = None):
    topics = [{"name": topic, "topic_id": topic_id or ZERO_UUID,
               "partitions": [{"partition_index": p, "committed_offset": o, "committed_leader_epoch": 3,
                               "committed_metadata": "meta"} for p, o in parts.items()]}
              for topic, parts in offsets.items()]
    body = {"group_id": group, "generation_id_or_member_epoch": generation, "member_id": member_id,
            "group_instance_id": None, "retention_time_ms": -1, "topics": topics}
    response = call(port, OFFSET_COMMIT, version, body, OffsetCommitResponse)
    return {(t.name if version < 10 else t.topic_id, p.partition_index): p.error_code
            for t in response.topics for p in t.partitions}


def fetch(port: int, version: int, group: str, partitions: dict | None, topic_ids: dict | None = None):
    topics = None if partitions is None else [
        {"name": t, "topic_id": (topic_ids or {}).get(t, ZERO_UUID), "partition_indexes": ps}
        for t, ps in partitions.items()]
    body = {"group_id": group, "topics": topics, "require_stable": True,
            "groups": [{"group_id": group, "member_id": None, "member_epoch": -1, "topics": topics}]}
    return call(port, OFFSET_FETCH, version, body, OffsetFetchResponse)


def fetched(response, version: int) -> tuple[int, dict]:
    """(group error, {(topic, partition): (offset, leader epoch, metadata, error)})."""
    if version >= 8:
        (group,) = response.groups
        error, topics = group.error_code, group.topics
    else:
        error, topics = (response.error_code if version >= 2 else NONE), response.topics
    return error, {((t.name if version < 10 else t.topic_id), p.partition_index):
                   (p.committed_offset, p.committed_leader_epoch if version >= 5 else None, p.metadata, p.error_code)
                   for t in topics for p in t.partitions}


@pytest.fixture(scope="module")
def broker(module_broker_factory):
    broker = module_broker_factory()
    created = call(broker.port, CREATE_TOPICS, 5, {"topics": [{"name": TOPIC, "num_partitions": 2,
                                                               "replication_factor": 1}], "timeout_ms": 10000},
                   CreateTopicsResponse)
    assert created.topics[0].error_code == NONE
    return broker


@pytest.fixture(scope="module")
def port(broker) -> int:
    """The broker's port once the coordinator answers (the first FindCoordinator creates the topic)."""
    first = find_coordinator(broker.port, 1)
    assert (first.error_code, first.node_id, first.host, first.port) == (COORDINATOR_NOT_AVAILABLE, -1, "", -1)
    assert first.error_message == "The coordinator is not available."
    await_coordinator(broker.port)
    return broker.port


def topic_id(port: int, name: str) -> uuid.UUID:
    body = {"topics": [{"name": name, "topic_id": ZERO_UUID}], "allow_auto_topic_creation": False,
            "include_cluster_authorized_operations": False, "include_topic_authorized_operations": False}
    return call(port, METADATA, 12, body, MetadataResponse).topics[0].topic_id


# ---------------------------------------------------------------------------------------------


def test_the_group_coordinator_starts_when_a_group_first_needs_it(broker_factory):
    """A broker that sees no group never builds the coordinator (start-up time and memory);
    the first FindCoordinator builds it, and it loads the offsets topic it then creates."""
    fresh = broker_factory()
    assert call(fresh.port, METADATA, 12, {"topics": None, "allow_auto_topic_creation": False,
                                           "include_cluster_authorized_operations": False,
                                           "include_topic_authorized_operations": False},
                MetadataResponse).topics == []
    assert "group coordinator started" not in fresh.output()
    await_coordinator(fresh.port)
    assert fresh.output().count("group coordinator started") == 1


def test_offsets_topic_is_created_on_first_use(port):
    body = {"topics": [{"name": "__consumer_offsets", "topic_id": ZERO_UUID}],
            "allow_auto_topic_creation": False, "include_cluster_authorized_operations": False,
            "include_topic_authorized_operations": False}
    (topic,) = call(port, METADATA, 12, body, MetadataResponse).topics
    assert topic.error_code == NONE and topic.is_internal and len(topic.partitions) == 50


@pytest.mark.parametrize("version", range(7))
def test_find_coordinator(port, version):
    response = find_coordinator(port, version, "my-group")
    if version >= 4:
        (answer,) = response.coordinators
        assert (answer.key, answer.error_code) == ("my-group", NONE)
    else:
        answer = response
        assert response.error_code == NONE
        if version >= 1:
            assert response.error_message == "NONE"  # Kafka's Errors.NONE.message()
    assert (answer.node_id, answer.host, answer.port) == (0, "127.0.0.1", port)
    if version >= 1:  # a transactional id: __transaction_state is created on first use, then led here
        def txn_coordinator():
            txn = find_coordinator(port, version, "txn-id", key_type=1)
            found = txn.coordinators[0] if version >= 4 else txn
            return found if found.error_code == NONE else None

        found = eventually(txn_coordinator, what="the transaction coordinator")
        assert (found.node_id, found.port) == (0, port)


def test_find_coordinator_batches_keys_and_refuses_unknown_key_types(port):
    body = {"key_type": 0, "coordinator_keys": ["a", "b", "c"]}
    response = call(port, FIND_COORDINATOR, 4, body, FindCoordinatorResponse)
    assert [(c.key, c.error_code, c.node_id) for c in response.coordinators] == [(k, NONE, 0) for k in "abc"]
    share = find_coordinator(port, 6, "g:topic:0", key_type=2)
    assert share.coordinators[0].error_code == INVALID_REQUEST


@pytest.mark.parametrize("version", range(10))
def test_join_sync_heartbeat_leave(port, version):
    group = f"lifecycle-v{version}"
    first = join(port, version, group)
    if version >= 4:  # KIP-394: a second round trip with the id the coordinator handed out
        assert (first.error_code, first.generation_id) == (MEMBER_ID_REQUIRED, -1)
        assert first.member_id.startswith("kbroker-tests-")
        first = join(port, version, group, first.member_id)
    member_id = first.member_id
    assert (first.error_code, first.generation_id, first.leader) == (NONE, 1, member_id)
    assert first.protocol_name == "range"
    if version >= 7:
        assert first.protocol_type == "consumer"
    assert [(m.member_id, m.metadata) for m in first.members] == [(member_id, SUBSCRIPTION)]

    sync_version = min(version, 5)
    sync = call(port, SYNC_GROUP, sync_version, {
        "group_id": group, "generation_id": 1, "member_id": member_id, "protocol_type": "consumer",
        "protocol_name": "range", "assignments": [{"member_id": member_id, "assignment": b"abc"}]},
        SyncGroupResponse)
    assert (sync.error_code, sync.assignment) == (NONE, b"abc")
    if sync_version >= 5:
        assert (sync.protocol_type, sync.protocol_name) == ("consumer", "range")

    heartbeat_version = min(version, 4)
    beat = {"group_id": group, "generation_id": 1, "member_id": member_id}
    assert call(port, HEARTBEAT, heartbeat_version, beat, HeartbeatResponse).error_code == NONE
    stale = dict(beat, generation_id=0)
    assert call(port, HEARTBEAT, heartbeat_version, stale, HeartbeatResponse).error_code == ILLEGAL_GENERATION

    leave_version = min(version, 5)
    leave = call(port, LEAVE_GROUP, leave_version, {"group_id": group, "member_id": member_id,
                                                    "members": [{"member_id": member_id, "reason": "done"}]},
                 LeaveGroupResponse)
    assert leave.error_code == NONE
    if leave_version >= 3:
        assert [(m.member_id, m.error_code) for m in leave.members] == [(member_id, NONE)]
    assert call(port, HEARTBEAT, heartbeat_version, beat, HeartbeatResponse).error_code == UNKNOWN_MEMBER_ID


def test_join_group_errors(port):
    assert join(port, 5, "bad-session", session_ms=1000).error_code == INVALID_SESSION_TIMEOUT
    assert join(port, 5, "").error_code == INVALID_GROUP_ID
    assert join(port, 5, "never-joined", member_id="made-up").error_code == UNKNOWN_MEMBER_ID
    # LeaveGroup v0-2 fold the member's error into the top level.
    leave = call(port, LEAVE_GROUP, 1, {"group_id": "never-joined", "member_id": "made-up"}, LeaveGroupResponse)
    assert leave.error_code == UNKNOWN_MEMBER_ID


def test_sync_group_v5_needs_protocol_type_and_name(port):
    member_id, generation = join_stable(port, "sync-v5")
    body = {"group_id": "sync-v5", "generation_id": generation, "member_id": member_id, "protocol_type": None,
            "protocol_name": "range", "assignments": []}
    assert call(port, SYNC_GROUP, 5, body, SyncGroupResponse).error_code == INCONSISTENT_GROUP_PROTOCOL
    body["protocol_type"] = "connect"
    assert call(port, SYNC_GROUP, 5, body, SyncGroupResponse).error_code == INCONSISTENT_GROUP_PROTOCOL
    body["protocol_type"] = "consumer"
    assert call(port, SYNC_GROUP, 5, body, SyncGroupResponse).assignment == b"mine"


@pytest.mark.parametrize("version", range(11))
def test_offset_commit_and_fetch(port, version):
    group = f"offsets-v{version}"
    tid = topic_id(port, TOPIC)
    key = tid if version >= 10 else TOPIC
    errors = commit(port, version, group, {TOPIC: {0: 100 + version, 1: 5}}, topic_id=tid)
    assert errors == {(key, 0): NONE, (key, 1): NONE}
    unknown = commit(port, version, group, {"no-such-topic": {0: 1}}, topic_id=uuid.uuid4())
    assert list(unknown.values()) == [UNKNOWN_TOPIC_ID if version >= 10 else UNKNOWN_TOPIC_OR_PARTITION]
    assert list(commit(port, version, group, {TOPIC: {7: 1}}, topic_id=tid).values()) == \
        [UNKNOWN_TOPIC_OR_PARTITION]

    fetch_version = version if version != 9 else 8
    error, offsets = fetched(fetch(port, fetch_version, group, {TOPIC: [0, 1]}, {TOPIC: tid}), fetch_version)
    fkey = tid if fetch_version >= 10 else TOPIC
    assert error == NONE
    if version == 0:  # v0 offsets live in ZooKeeper: offset only
        assert offsets == {(fkey, 0): (100, None, "", NONE), (fkey, 1): (5, None, "", NONE)}
        # and the coordinator (v1+) knows nothing of them
        assert fetched(fetch(port, 1, group, {TOPIC: [0]}), 1)[1][(TOPIC, 0)][0] == -1
        return
    epoch = 3 if version >= 6 else -1
    assert offsets[(fkey, 0)] == (100 + version, epoch if fetch_version >= 5 else None, "meta", NONE)
    if fetch_version >= 2:
        error, everything = fetched(fetch(port, fetch_version, group, None), fetch_version)
        assert error == NONE and set(everything) == {(fkey, 0), (fkey, 1)}
    nothing = fetched(fetch(port, fetch_version, "no-such-group", {TOPIC: [0]}, {TOPIC: tid}), fetch_version)
    assert nothing == (NONE, {(fkey, 0): (-1, -1 if fetch_version >= 5 else None, "", NONE)})


def test_offset_commit_checks_the_member(port):
    member_id, generation = join_stable(port, "member-commits")
    assert commit(port, 8, "member-commits", {TOPIC: {0: 1}}) == {(TOPIC, 0): UNKNOWN_MEMBER_ID}
    assert commit(port, 8, "member-commits", {TOPIC: {0: 1}}, generation + 1, member_id) == \
        {(TOPIC, 0): ILLEGAL_GENERATION}
    assert commit(port, 8, "member-commits", {TOPIC: {0: 1}}, generation, member_id) == {(TOPIC, 0): NONE}
    assert commit(port, 9, "unknown-group", {TOPIC: {0: 1}}, 4, "m") == {(TOPIC, 0): GROUP_ID_NOT_FOUND}


def test_offset_fetch_v8_several_groups(port):
    commit(port, 8, "multi-a", {TOPIC: {0: 11}})
    commit(port, 8, "multi-b", {TOPIC: {1: 22}})
    topics = [{"name": TOPIC, "partition_indexes": [0, 1]}]
    body = {"groups": [{"group_id": g, "topics": topics} for g in ("multi-a", "multi-b", "")],
            "require_stable": False}
    response = call(port, OFFSET_FETCH, 8, body, OffsetFetchResponse)
    assert [(g.group_id, g.error_code, [(p.partition_index, p.committed_offset) for p in g.topics[0].partitions])
            for g in response.groups] == [("multi-a", NONE, [(0, 11), (1, -1)]), ("multi-b", NONE, [(0, -1), (1, 22)]),
                                          ("", NONE, [(0, -1), (1, -1)])]


@pytest.mark.parametrize("version", range(7))
def test_describe_groups(port, version):
    member_id, _ = join_stable(port, "described")
    body = {"groups": ["described", "nobody-here"], "include_authorized_operations": True}
    described, missing = call(port, DESCRIBE_GROUPS, version, body, DescribeGroupsResponse).groups
    assert (described.error_code, described.group_state, described.protocol_type, described.protocol_data) == \
        (NONE, "Stable", "consumer", "range")
    (member,) = described.members
    assert (member.member_id, member.client_id, member.client_host) == (member_id, "kbroker-tests", "/127.0.0.1")
    assert (member.member_metadata, member.member_assignment) == (SUBSCRIPTION, b"mine")
    if version >= 3:
        assert described.authorized_operations == {3, 6, 8}  # READ, DELETE, DESCRIBE (kafka-python decodes the bits)
    assert (missing.group_state, missing.members) == ("Dead", [])
    assert missing.error_code == (GROUP_ID_NOT_FOUND if version >= 6 else NONE)
    call(port, LEAVE_GROUP, 0, {"group_id": "described", "member_id": member_id}, LeaveGroupResponse)


@pytest.mark.parametrize("version", range(6))
def test_list_groups(port, version):
    stable = f"listed-stable-v{version}"
    join_stable(port, stable)
    commit(port, 8, "listed-empty", {TOPIC: {0: 1}})
    body = {"states_filter": ["stable"] if version >= 4 else [], "types_filter": ["classic"] if version >= 5 else []}
    response = call(port, LIST_GROUPS, version, body, ListGroupsResponse)
    assert response.error_code == NONE
    groups = {g.group_id: g for g in response.groups}
    assert groups[stable].protocol_type == "consumer"
    if version >= 4:
        assert "listed-empty" not in groups and {g.group_state for g in response.groups} == {"Stable"}
    else:
        assert groups["listed-empty"].protocol_type == ""
    if version >= 5:
        assert groups[stable].group_type == "classic"
        none = call(port, LIST_GROUPS, 5, {"states_filter": [], "types_filter": ["consumer"]}, ListGroupsResponse)
        assert none.groups == []


@pytest.mark.parametrize("version", range(3))
def test_delete_groups(port, version):
    busy, generation = join_stable(port, f"delete-busy-v{version}")
    commit(port, 8, f"delete-empty-v{version}", {TOPIC: {0: 1}})
    body = {"groups_names": [f"delete-busy-v{version}", f"delete-empty-v{version}", "delete-never"]}
    response = call(port, DELETE_GROUPS, version, body, DeleteGroupsResponse)
    assert [(r.group_id, r.error_code) for r in response.results] == [
        (f"delete-busy-v{version}", NON_EMPTY_GROUP), (f"delete-empty-v{version}", NONE),
        ("delete-never", GROUP_ID_NOT_FOUND)]
    assert fetched(fetch(port, 8, f"delete-empty-v{version}", {TOPIC: [0]}), 8)[1][(TOPIC, 0)][0] == -1


def test_offset_delete(port):
    commit(port, 8, "offset-delete", {TOPIC: {0: 5, 1: 6}})
    body = {"group_id": "offset-delete", "topics": [{"name": TOPIC, "partitions": [{"partition_index": 0}]},
                                                    {"name": "nope", "partitions": [{"partition_index": 0}]}]}
    response = call(port, OFFSET_DELETE, 0, body, OffsetDeleteResponse)
    assert response.error_code == NONE
    assert {(t.name, p.partition_index, p.error_code) for t in response.topics for p in t.partitions} == {
        (TOPIC, 0, NONE), ("nope", 0, UNKNOWN_TOPIC_OR_PARTITION)}
    assert fetched(fetch(port, 8, "offset-delete", None), 8)[1] == {(TOPIC, 1): (6, 3, "meta", NONE)}
    gone = call(port, OFFSET_DELETE, 0, dict(body, group_id="never-there"), OffsetDeleteResponse)
    assert (gone.error_code, gone.topics) == (GROUP_ID_NOT_FOUND, [])


# ---------------------------------------------------------------------------------------------
# On disk


def read_offsets_log(data_dir: Path) -> list[tuple[bytes, bytes | None]]:
    """Every (key, value) in the __consumer_offsets-* segments, read with kafka-python."""
    out = []
    for segment in sorted(data_dir.glob("__consumer_offsets-*/*.log")):
        records = MemoryRecords(segment.read_bytes())
        while records.has_next():
            batch = records.next_batch()
            out.extend((r.key, r.value) for r in batch)
    return out


def s16(text: str) -> bytes:
    return struct.pack(">h", len(text.encode())) + text.encode()


def test_commits_and_group_metadata_are_in_the_offsets_segments(broker_factory):
    broker = broker_factory()
    await_coordinator(broker.port, 3, "on-disk")
    call(broker.port, CREATE_TOPICS, 5, {"topics": [{"name": TOPIC, "num_partitions": 2, "replication_factor": 1}],
                                         "timeout_ms": 10000}, CreateTopicsResponse)
    member_id, generation = join_stable(broker.port, "on-disk")
    before = int(time.time() * 1000)
    assert commit(broker.port, 8, "on-disk", {TOPIC: {1: 4242}}, generation, member_id) == {(TOPIC, 1): NONE}
    after = int(time.time() * 1000)
    assert broker.stop() == 0

    records = read_offsets_log(broker.log_dir)
    commit_key = b"\x00\x01" + s16("on-disk") + s16(TOPIC) + struct.pack(">i", 1)
    (value,) = [v for k, v in records if k == commit_key]
    assert value[:2] == b"\x00\x03"  # OffsetCommitValue v3: offset, leader epoch, metadata, commit time
    offset, epoch = struct.unpack_from(">qi", value, 2)
    assert (offset, epoch, value[14:20]) == (4242, 3, s16("meta"))
    assert before <= struct.unpack_from(">q", value, 20)[0] <= after and len(value) == 28
    group_values = [v for k, v in records if k == b"\x00\x02" + s16("on-disk")]
    latest = group_values[-1]
    assert latest.startswith(b"\x00\x03" + s16("consumer") + struct.pack(">i", generation) + s16("range")
                             + s16(member_id))
    assert member_id.encode() in latest and SUBSCRIPTION in latest and b"mine" in latest

    broker.start()
    await_coordinator(broker.port, 3, "on-disk")

    def loaded_offsets():
        error, offsets = fetched(fetch(broker.port, 8, "on-disk", {TOPIC: [1]}), 8)
        return offsets if error == NONE else None

    offsets = eventually(loaded_offsets, what="the group's offsets to load", timeout=COORDINATOR_WAIT_S)
    assert offsets[(TOPIC, 1)] == (4242, 3, "meta", NONE)
    beat = {"group_id": "on-disk", "generation_id": generation, "member_id": member_id}
    assert call(broker.port, HEARTBEAT, 4, beat, HeartbeatResponse).error_code == NONE  # the member carries on
