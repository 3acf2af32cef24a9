"""KIP-848 consumer groups' records in `__consumer_offsets`, as Kafka 4.x writes them.

Keys are an int16 record type and a classic (non-flexible) struct; values an int16 version (0)
and a flexible struct with empty tagged fields:
- 3 ConsumerGroupMetadataKey {GroupId} -> ConsumerGroupMetadataValue {Epoch};
- 5 ConsumerGroupMemberMetadataKey {GroupId, MemberId} -> {InstanceId?, RackId?, ClientId,
  ClientHost, SubscribedTopicNames, SubscribedTopicRegex?, RebalanceTimeoutMs, ServerAssignor?};
- 6 ConsumerGroupTargetAssignmentMetadataKey {GroupId} -> {AssignmentEpoch};
- 7 ConsumerGroupTargetAssignmentMemberKey {GroupId, MemberId} -> {TopicPartitions};
- 8 ConsumerGroupCurrentMemberAssignmentKey {GroupId, MemberId} -> {MemberEpoch,
  PreviousMemberEpoch, State (int8), AssignedPartitions, PartitionsPendingRevocation}.
A null value is a tombstone. `group_records` renders a group as the full set of its records, so
the coordinator writes what differs from what it wrote before; `rebuild_group` does the reverse
on load. Plain bytes in and out: no log, no sockets.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Mapping

from kbroker.group.consumer_group import ConsumerGroup, ConsumerGroupMember, MemberState
from kbroker.group.coordinator_records import CoordinatorRecordError, RecordReader

GROUP_METADATA = 3
MEMBER_METADATA = 5
TARGET_ASSIGNMENT_METADATA = 6
TARGET_ASSIGNMENT_MEMBER = 7
CURRENT_MEMBER_ASSIGNMENT = 8
RECORD_TYPES = frozenset({GROUP_METADATA, MEMBER_METADATA, TARGET_ASSIGNMENT_METADATA, TARGET_ASSIGNMENT_MEMBER,
                          CURRENT_MEMBER_ASSIGNMENT})
VALUE_VERSION = 0

# Kafka's MemberState ids (modern/MemberState.java).
_STATE_IDS = {MemberState.STABLE: 0, MemberState.UNREVOKED_PARTITIONS: 1, MemberState.UNRELEASED_PARTITIONS: 2}
_STATES = {v: k for k, v in _STATE_IDS.items()}

_I8, _I16, _I32 = struct.Struct(">b"), struct.Struct(">h"), struct.Struct(">i")
Assignment = dict[uuid.UUID, set[int]]
# (record type, group id, member id or None) -> value bytes
RecordKey = tuple[int, str, str | None]


def _uvarint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


class _FlexWriter:
    """Kafka's flexible encoding: compact lengths (n+1, 0 = null) and tagged fields."""

    def __init__(self) -> None:
        self.parts: list[bytes] = [_I16.pack(VALUE_VERSION)]

    def int8(self, v: int) -> None:
        self.parts.append(_I8.pack(v))

    def int32(self, v: int) -> None:
        self.parts.append(_I32.pack(v))

    def string(self, v: str | None) -> None:
        if v is None:
            self.parts.append(b"\x00")
            return
        data = v.encode("utf-8")
        self.parts += [_uvarint(len(data) + 1), data]

    def strings(self, values: list[str]) -> None:
        self.parts.append(_uvarint(len(values) + 1))
        for v in values:
            self.string(v)

    def topic_partitions(self, assignment: Mapping[uuid.UUID, set[int]]) -> None:
        items = sorted((t, ps) for t, ps in assignment.items() if ps)
        self.parts.append(_uvarint(len(items) + 1))
        for topic_id, parts in items:
            self.parts.append(topic_id.bytes)
            self.parts.append(_uvarint(len(parts) + 1))
            self.parts += [_I32.pack(p) for p in sorted(parts)]
            self.end_struct()

    def end_struct(self) -> None:
        self.parts.append(b"\x00")  # no tagged fields

    def done(self) -> bytes:
        self.end_struct()
        return b"".join(self.parts)


def record_key(record_type: int, group_id: str, member_id: str | None) -> bytes:
    parts = [_I16.pack(record_type)]
    for s in (group_id, member_id) if member_id is not None else (group_id,):
        data = s.encode("utf-8")
        parts += [_I16.pack(len(data)), data]
    return b"".join(parts)


def read_record_key(key: bytes) -> RecordKey | None:
    """The record type, group and member of a KIP-848 key; None for other record types."""
    if len(key) < 2:
        raise CoordinatorRecordError("record shorter than its version")
    record_type = _I16.unpack_from(key)[0]
    if record_type not in RECORD_TYPES:
        return None
    r = RecordReader(key)
    group_id = r.string()
    member_id = r.string() if record_type in (MEMBER_METADATA, TARGET_ASSIGNMENT_MEMBER,
                                              CURRENT_MEMBER_ASSIGNMENT) else None
    if group_id is None:
        raise CoordinatorRecordError("null group in a consumer group key")
    return record_type, group_id, member_id


def _epoch_value(epoch: int) -> bytes:
    w = _FlexWriter()
    w.int32(epoch)
    return w.done()


def _member_value(m: ConsumerGroupMember) -> bytes:
    w = _FlexWriter()
    w.string(m.instance_id)
    w.string(m.rack_id)
    w.string(m.client_id)
    w.string(m.client_host)
    w.strings(m.subscribed_topic_names)
    w.string(m.subscribed_topic_regex)
    w.int32(m.rebalance_timeout_ms)
    w.string(m.server_assignor)
    return w.done()


def _target_value(assignment: Mapping[uuid.UUID, set[int]]) -> bytes:
    w = _FlexWriter()
    w.topic_partitions(assignment)
    return w.done()


def _current_value(m: ConsumerGroupMember) -> bytes:
    w = _FlexWriter()
    w.int32(m.member_epoch)
    w.int32(m.previous_member_epoch)
    w.int8(_STATE_IDS[m.state])
    w.topic_partitions(m.assigned)
    w.topic_partitions(m.pending_revocation)
    return w.done()


def group_records(group: ConsumerGroup) -> dict[RecordKey, bytes]:
    """Every record that describes the group as it stands."""
    gid = group.group_id
    out: dict[RecordKey, bytes] = {(GROUP_METADATA, gid, None): _epoch_value(group.group_epoch),
                                   (TARGET_ASSIGNMENT_METADATA, gid, None): _epoch_value(group.assignment_epoch)}
    for m in group.members.values():
        out.update(member_records(group, m))
    for member_id, target in group.target_assignment.items():
        out[(TARGET_ASSIGNMENT_MEMBER, gid, member_id)] = _target_value(target)
    return out


def member_records(group: ConsumerGroup, m: ConsumerGroupMember) -> dict[RecordKey, bytes]:
    """The member's own records: what one heartbeat changes while the epochs stand still."""
    return {(MEMBER_METADATA, group.group_id, m.member_id): _member_value(m),
            (CURRENT_MEMBER_ASSIGNMENT, group.group_id, m.member_id): _current_value(m)}


# -- reading ---------------------------------------------------------------------------------------
def _value_reader(value: bytes) -> RecordReader:
    if len(value) < 2 or _I16.unpack_from(value)[0] != VALUE_VERSION:
        raise CoordinatorRecordError("unknown consumer group value version")
    return RecordReader(value, flexible=True)


def _read_topic_partitions(r: RecordReader) -> Assignment:
    out: Assignment = {}
    for _ in range(max(r.array_length(), 0)):
        topic_id = uuid.UUID(bytes=r.uuid_bytes())
        out[topic_id] = {r.int32() for _ in range(max(r.array_length(), 0))}
        r.end_struct()
    return out


def _read_strings(r: RecordReader) -> list[str]:
    return [s for s in (r.string() for _ in range(max(r.array_length(), 0))) if s is not None]


def rebuild_group(group_id: str, records: Mapping[RecordKey, bytes]) -> ConsumerGroup:
    """A group from its latest records (Kafka's replay of the consumer group records)."""
    group = ConsumerGroup(group_id)
    for (record_type, _, member_id), value in records.items():
        r = _value_reader(value)
        if record_type == GROUP_METADATA:
            group.group_epoch = r.int32()
        elif record_type == TARGET_ASSIGNMENT_METADATA:
            group.assignment_epoch = r.int32()
        elif record_type == TARGET_ASSIGNMENT_MEMBER and member_id is not None:
            group.target_assignment[member_id] = _read_topic_partitions(r)
    for (record_type, _, member_id), value in records.items():
        if record_type != MEMBER_METADATA or member_id is None:
            continue
        r = _value_reader(value)
        m = ConsumerGroupMember(member_id, instance_id=r.string(), rack_id=r.string(), client_id=r.string() or "",
                                client_host=r.string() or "", subscribed_topic_names=_read_strings(r),
                                subscribed_topic_regex=r.string(), rebalance_timeout_ms=r.int32(),
                                server_assignor=r.string())
        current = records.get((CURRENT_MEMBER_ASSIGNMENT, group_id, member_id))
        if current is not None:
            c = _value_reader(current)
            m.member_epoch, m.previous_member_epoch = c.int32(), c.int32()
            state = c.int8()
            m.state = _STATES.get(state, MemberState.STABLE)
            m.assigned = _read_topic_partitions(c)
            m.pending_revocation = _read_topic_partitions(c)
        group.add_or_update_member(m)
    return group


# -- JSON, as Kafka's offsets decoder (kafka-dump-log) prints these records ------------------------
def _partitions_json(assignment: Assignment) -> list[dict]:
    from kbroker.protocol.uuids import uuid_to_base64

    return [{"topicId": uuid_to_base64(t), "partitions": sorted(ps)} for t, ps in sorted(assignment.items())]


def key_json(key: RecordKey) -> dict:
    record_type, group_id, member_id = key
    data: dict = {"groupId": group_id}
    if member_id is not None:
        data["memberId"] = member_id
    return {"type": str(record_type), "data": data}


def value_json(record_type: int, value: bytes) -> dict:
    r = _value_reader(value)
    data: dict
    if record_type == GROUP_METADATA:
        data = {"epoch": r.int32()}
    elif record_type == TARGET_ASSIGNMENT_METADATA:
        data = {"assignmentEpoch": r.int32()}
    elif record_type == TARGET_ASSIGNMENT_MEMBER:
        data = {"topicPartitions": _partitions_json(_read_topic_partitions(r))}
    elif record_type == MEMBER_METADATA:
        data = {"instanceId": r.string(), "rackId": r.string(), "clientId": r.string(), "clientHost": r.string(),
                "subscribedTopicNames": _read_strings(r), "subscribedTopicRegex": r.string(),
                "rebalanceTimeoutMs": r.int32(), "serverAssignor": r.string()}
    else:
        data = {"memberEpoch": r.int32(), "previousMemberEpoch": r.int32(), "state": r.int8(),
                "assignedPartitions": _partitions_json(_read_topic_partitions(r)),
                "partitionsPendingRevocation": _partitions_json(_read_topic_partitions(r))}
    return {"version": str(VALUE_VERSION), "data": data}
