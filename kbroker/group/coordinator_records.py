"""Kafka's record formats in `__consumer_offsets`, and which partition holds a group.

Keys and values are an int16 version followed by a struct (KAFKA-FACTS.md §6):
- key v0/v1 OffsetCommitKey {group, topic, partition}; key v2 GroupMetadataKey {group};
- OffsetCommitValue v0 {offset, metadata, commitTimestamp}, v1 adds expireTimestamp, v2 drops it,
  v3 adds leaderEpoch after offset, v4 is v3 flexible;
- GroupMetadataValue {protocolType, generation, protocol?, leader?, currentStateTimestamp (v2+),
  members [memberId, groupInstanceId? (v3+), clientId, clientHost, rebalanceTimeout (v1+),
  sessionTimeout, subscription, assignment]}, v4 flexible.
A null value is a tombstone. We write what Kafka 3.x writes (key v1; OffsetCommitValue v3, or v1
when an expire timestamp is set; GroupMetadataValue v3) and read every version Kafka wrote.
Plain bytes in and out: this module knows no log, no group state and no sockets.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from kbroker.group.offset_and_metadata import NO_LEADER_EPOCH, NO_TIMESTAMP, OffsetAndMetadata
from kbroker.metadata.topic_names import coordinator_partition_for
from kbroker.metadata.topic_names import java_string_hash as java_string_hash  # re-exported for the tests

OFFSET_COMMIT_KEY_VERSION = 1
GROUP_METADATA_KEY_VERSION = 2
OFFSET_COMMIT_VALUE_VERSION = 3
OFFSET_COMMIT_VALUE_VERSION_WITH_EXPIRY = 1
GROUP_METADATA_VALUE_VERSION = 3
FIRST_FLEXIBLE_VALUE_VERSION = 4


_I8 = struct.Struct(">b")
_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_I64 = struct.Struct(">q")


class CoordinatorRecordError(ValueError):
    """A key or value in __consumer_offsets that does not parse."""


# ---------------------------------------------------------------------------------------------
# The group's partition


def partition_for(group_id: str, partition_count: int) -> int:
    """The `__consumer_offsets` partition of a group (Kafka's partitionFor)."""
    return coordinator_partition_for(group_id, partition_count)


# ---------------------------------------------------------------------------------------------
# Decoded shapes


@dataclass(frozen=True, slots=True)
class OffsetCommitKey:
    group: str
    topic: str
    partition: int


@dataclass(frozen=True, slots=True)
class GroupMetadataKey:
    group: str


@dataclass(slots=True)
class MemberRecord:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    rebalance_timeout_ms: int
    session_timeout_ms: int
    subscription: bytes
    assignment: bytes


@dataclass(slots=True)
class GroupMetadataRecord:
    protocol_type: str
    generation: int
    protocol: str | None
    leader: str | None
    current_state_timestamp: int = NO_TIMESTAMP
    members: list[MemberRecord] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# Writing (classic, non-flexible encoding)


class _Writer:
    __slots__ = ("parts",)

    def __init__(self, version: int) -> None:
        self.parts: list[bytes] = [_I16.pack(version)]

    def int32(self, value: int) -> None:
        self.parts.append(_I32.pack(value))

    def int64(self, value: int) -> None:
        self.parts.append(_I64.pack(value))

    def string(self, value: str | None) -> None:
        if value is None:
            self.parts.append(_I16.pack(-1))
            return
        data = value.encode("utf-8")
        self.parts.append(_I16.pack(len(data)))
        self.parts.append(data)

    def bytes_(self, value: bytes | None) -> None:
        if value is None:
            self.parts.append(_I32.pack(-1))
            return
        self.parts.append(_I32.pack(len(value)))
        self.parts.append(bytes(value))

    def done(self) -> bytes:
        return b"".join(self.parts)


def offset_commit_key(group: str, topic: str, partition: int) -> bytes:
    w = _Writer(OFFSET_COMMIT_KEY_VERSION)
    w.string(group)
    w.string(topic)
    w.int32(partition)
    return w.done()


def group_metadata_key(group: str) -> bytes:
    w = _Writer(GROUP_METADATA_KEY_VERSION)
    w.string(group)
    return w.done()


def offset_commit_value(om: OffsetAndMetadata) -> bytes:
    """v3, or v1 when the commit carries an expire timestamp (Kafka 3.x's choice)."""
    if om.expire_timestamp is not None:
        w = _Writer(OFFSET_COMMIT_VALUE_VERSION_WITH_EXPIRY)
        w.int64(om.offset)
        w.string(om.metadata)
        w.int64(om.commit_timestamp)
        w.int64(om.expire_timestamp)
        return w.done()
    w = _Writer(OFFSET_COMMIT_VALUE_VERSION)
    w.int64(om.offset)
    w.int32(om.leader_epoch)
    w.string(om.metadata)
    w.int64(om.commit_timestamp)
    return w.done()


def group_metadata_value(record: GroupMetadataRecord) -> bytes:
    """GroupMetadataValue v3."""
    w = _Writer(GROUP_METADATA_VALUE_VERSION)
    w.string(record.protocol_type)
    w.int32(record.generation)
    w.string(record.protocol)
    w.string(record.leader)
    w.int64(record.current_state_timestamp)
    w.int32(len(record.members))
    for m in record.members:
        w.string(m.member_id)
        w.string(m.group_instance_id)
        w.string(m.client_id)
        w.string(m.client_host)
        w.int32(m.rebalance_timeout_ms)
        w.int32(m.session_timeout_ms)
        w.bytes_(m.subscription)
        w.bytes_(m.assignment)
    return w.done()


# ---------------------------------------------------------------------------------------------
# Reading (classic and flexible encodings)


class _Reader:
    """Reads one version-prefixed struct; `flexible` switches to compact lengths and tagged fields."""

    __slots__ = ("buf", "pos", "flexible")

    def __init__(self, buf: bytes, flexible: bool = False, pos: int = 2) -> None:
        self.buf = buf
        self.pos = pos
        self.flexible = flexible

    def _unpack(self, fmt: struct.Struct) -> int:
        try:
            (value,) = fmt.unpack_from(self.buf, self.pos)
        except struct.error as exc:
            raise CoordinatorRecordError(f"truncated record at byte {self.pos}") from exc
        self.pos += fmt.size
        return value

    def int8(self) -> int:
        return self._unpack(_I8)

    def int32(self) -> int:
        return self._unpack(_I32)

    def uuid_bytes(self) -> bytes:
        return self._take(16)

    def int64(self) -> int:
        return self._unpack(_I64)

    def uvarint(self) -> int:
        result = shift = 0
        while True:
            if self.pos >= len(self.buf) or shift > 28:
                raise CoordinatorRecordError("bad unsigned varint")
            byte = self.buf[self.pos]
            self.pos += 1
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return result
            shift += 7

    def _length(self, classic: struct.Struct) -> int:
        return self.uvarint() - 1 if self.flexible else self._unpack(classic)

    def _take(self, length: int) -> bytes:
        end = self.pos + length
        if end > len(self.buf):
            raise CoordinatorRecordError("field runs past the end of the record")
        data = bytes(self.buf[self.pos:end])
        self.pos = end
        return data

    def string(self) -> str | None:
        length = self._length(_I16)
        if length < 0:
            return None
        try:
            return self._take(length).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CoordinatorRecordError("string is not UTF-8") from exc

    def bytes_(self) -> bytes | None:
        length = self._length(_I32)
        return None if length < 0 else self._take(length)

    def array_length(self) -> int:
        return self._length(_I32)

    def end_struct(self) -> None:
        """Skips the tagged fields that close every struct of a flexible version."""
        if not self.flexible:
            return
        for _ in range(self.uvarint()):
            self.uvarint()  # tag
            self._take(self.uvarint())


RecordReader = _Reader  # for the KIP-848 records (consumer_group_records.py)


def _version(buf: bytes) -> int:
    if len(buf) < 2:
        raise CoordinatorRecordError("record shorter than its version")
    return _I16.unpack_from(buf)[0]


def read_key(key: bytes) -> OffsetCommitKey | GroupMetadataKey | None:
    """The key of a __consumer_offsets record, or None for key versions this coordinator does
    not own (the KIP-848 consumer-group records, versions 3 and up)."""
    version = _version(key)
    r = _Reader(key)
    if version in (0, 1):
        group, topic = r.string(), r.string()
        partition = r.int32()
        if group is None or topic is None:
            raise CoordinatorRecordError("null group or topic in an offset commit key")
        return OffsetCommitKey(group, topic, partition)
    if version == 2:
        group = r.string()
        if group is None:
            raise CoordinatorRecordError("null group in a group metadata key")
        return GroupMetadataKey(group)
    if version < 0:
        raise CoordinatorRecordError(f"negative key version {version}")
    return None


def read_offset_commit_value(value: bytes) -> OffsetAndMetadata:
    version = _version(value)
    if not 0 <= version <= 4:
        raise CoordinatorRecordError(f"unknown OffsetCommitValue version {version}")
    r = _Reader(value, flexible=version >= FIRST_FLEXIBLE_VALUE_VERSION)
    offset = r.int64()
    leader_epoch = r.int32() if version >= 3 else NO_LEADER_EPOCH
    metadata = r.string() or ""
    commit_timestamp = r.int64()
    expire = r.int64() if version == 1 else NO_TIMESTAMP
    r.end_struct()
    return OffsetAndMetadata(offset, leader_epoch, metadata, commit_timestamp,
                             None if expire == NO_TIMESTAMP else expire)


def read_group_metadata_value(value: bytes) -> GroupMetadataRecord:
    version = _version(value)
    if not 0 <= version <= 4:
        raise CoordinatorRecordError(f"unknown GroupMetadataValue version {version}")
    r = _Reader(value, flexible=version >= FIRST_FLEXIBLE_VALUE_VERSION)
    protocol_type = r.string() or ""
    generation = r.int32()
    protocol = r.string()
    leader = r.string()
    state_timestamp = r.int64() if version >= 2 else NO_TIMESTAMP
    members = []
    for _ in range(max(r.array_length(), 0)):
        member_id = r.string() or ""
        instance_id = r.string() if version >= 3 else None
        client_id = r.string() or ""
        client_host = r.string() or ""
        if version >= 1:
            rebalance_timeout = r.int32()
            session_timeout = r.int32()
        else:
            session_timeout = r.int32()
            rebalance_timeout = session_timeout  # v0 had no rebalance timeout: Kafka uses the session's
        subscription = r.bytes_() or b""
        assignment = r.bytes_() or b""
        r.end_struct()
        members.append(MemberRecord(member_id, instance_id, client_id, client_host, rebalance_timeout,
                                    session_timeout, subscription, assignment))
    r.end_struct()
    return GroupMetadataRecord(protocol_type, generation, protocol, leader, state_timestamp, members)


def read_subscribed_topics(subscription: bytes) -> set[str] | None:
    """Topics of a ConsumerProtocolSubscription, read as its v0 prefix (every later version starts
    with it, which is how Kafka's coordinator stays independent of the version); None if the
    bytes are not a consumer subscription."""
    try:
        r = _Reader(subscription)
        if _version(subscription) < 0:
            return None
        count = r.array_length()
        if count < 0:
            return None
        topics = set()
        for _ in range(count):
            topic = r.string()
            if topic is None:
                return None
            topics.add(topic)
        return topics
    except CoordinatorRecordError:
        return None
