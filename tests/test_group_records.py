"""`__consumer_offsets` record formats and the group partition, checked against Kafka's.

Expected bytes are written out by hand from KAFKA-FACTS §6 (the JSON schemas in Kafka's
group-coordinator module); hash values were computed with Java's own String.hashCode on a JDK.
"""

from __future__ import annotations

import struct

import pytest

from kbroker.group.coordinator_records import (
    CoordinatorRecordError,
    GroupMetadataKey,
    GroupMetadataRecord,
    MemberRecord,
    OffsetCommitKey,
    group_metadata_key,
    group_metadata_value,
    java_string_hash,
    offset_commit_key,
    offset_commit_value,
    partition_for,
    read_group_metadata_value,
    read_key,
    read_offset_commit_value,
    read_subscribed_topics,
)
from kbroker.group.offset_and_metadata import OffsetAndMetadata

# (text, String.hashCode(), Utils.abs(hash) % 50) from `javac` + `java` on OpenJDK 17.
JAVA_HASHES = [
    ("", 0, 0),
    ("a", 97, 47),
    ("hello", 99162322, 22),
    ("polygenelubricants", -2147483648, 0),  # Integer.MIN_VALUE: Utils.abs gives 0
    ("my-group", -1906497762, 12),
    ("console-consumer-12345", 158455506, 6),
    ("group-\u00e9t\u00e9", -1484026544, 44),
    ("\U0001f600", 1772899, 49),  # one code point, two UTF-16 units
    ("kbroker-compat", -1982818965, 15),
    ("test-group", 627841412, 12),
    ("Aa", 2112, 12),
    ("BB", 2112, 12),
]


def s16(text: str | None) -> bytes:
    if text is None:
        return struct.pack(">h", -1)
    data = text.encode()
    return struct.pack(">h", len(data)) + data


def b32(data: bytes) -> bytes:
    return struct.pack(">i", len(data)) + data


def cstr(text: str | None) -> bytes:
    """Compact string (flexible versions): uvarint length + 1, 0 for null (lengths < 127 here)."""
    if text is None:
        return b"\x00"
    data = text.encode()
    return bytes([len(data) + 1]) + data


@pytest.mark.parametrize(("text", "hash_code", "partition"), JAVA_HASHES)
def test_group_partition_matches_java(text, hash_code, partition):
    assert java_string_hash(text) == hash_code
    assert partition_for(text, 50) == partition


def test_partition_for_other_partition_counts():
    assert partition_for("my-group", 7) == 1906497762 % 7
    assert partition_for("anything", 1) == 0


# ---------------------------------------------------------------------------------------------
# What we write


def test_offset_commit_key_is_version_1():
    assert offset_commit_key("grp", "topic-a", 5) == b"\x00\x01" + s16("grp") + s16("topic-a") + b"\x00\x00\x00\x05"


def test_group_metadata_key_is_version_2():
    assert group_metadata_key("grp") == b"\x00\x02" + s16("grp")


def test_offset_commit_value_v3_and_v1_with_expire_timestamp():
    plain = OffsetAndMetadata(offset=1234, leader_epoch=7, metadata="meta", commit_timestamp=1_700_000_000_123)
    assert offset_commit_value(plain) == (b"\x00\x03" + struct.pack(">qi", 1234, 7) + s16("meta")
                                          + struct.pack(">q", 1_700_000_000_123))
    expiring = OffsetAndMetadata(99, 3, "", 1000, expire_timestamp=5000)
    # v1 has no leader epoch: it is dropped, as Kafka 3.x does.
    assert offset_commit_value(expiring) == b"\x00\x01" + struct.pack(">q", 99) + s16("") + struct.pack(">qq", 1000,
                                                                                                      5000)


def test_group_metadata_value_v3():
    record = GroupMetadataRecord("consumer", 4, "range", "m-1", 1_700_000_000_000, [
        MemberRecord("m-1", None, "client-a", "/10.0.0.1", 60000, 10000, b"SUB", b"ASSIGN"),
        MemberRecord("m-2", "inst-2", "client-b", "/10.0.0.2", 30000, 6000, b"", b""),
    ])
    expected = (b"\x00\x03" + s16("consumer") + struct.pack(">i", 4) + s16("range") + s16("m-1")
                + struct.pack(">q", 1_700_000_000_000) + struct.pack(">i", 2)
                + s16("m-1") + s16(None) + s16("client-a") + s16("/10.0.0.1") + struct.pack(">ii", 60000, 10000)
                + b32(b"SUB") + b32(b"ASSIGN")
                + s16("m-2") + s16("inst-2") + s16("client-b") + s16("/10.0.0.2") + struct.pack(">ii", 30000, 6000)
                + b32(b"") + b32(b""))
    assert group_metadata_value(record) == expected
    assert read_group_metadata_value(expected) == record


def test_empty_group_value_has_null_protocol_and_leader():
    value = group_metadata_value(GroupMetadataRecord("consumer", 9, None, None, 5, []))
    assert value == b"\x00\x03" + s16("consumer") + struct.pack(">i", 9) + s16(None) + s16(None) + struct.pack(
        ">qi", 5, 0)


# ---------------------------------------------------------------------------------------------
# What Kafka (of any version) may have written


def test_read_keys_of_every_version():
    v0 = b"\x00\x00" + s16("g") + s16("t") + struct.pack(">i", 2)
    assert read_key(v0) == OffsetCommitKey("g", "t", 2)
    assert read_key(offset_commit_key("g", "t", 3)) == OffsetCommitKey("g", "t", 3)
    assert read_key(group_metadata_key("g")) == GroupMetadataKey("g")
    # KIP-848 consumer-group records (key versions 3+) are not the classic coordinator's.
    assert read_key(b"\x00\x03" + s16("g")) is None
    with pytest.raises(CoordinatorRecordError):
        read_key(b"\x00\x01" + s16("g"))  # truncated
    with pytest.raises(CoordinatorRecordError):
        read_key(b"\x00")


def test_read_offset_commit_values_v0_to_v4():
    v0 = b"\x00\x00" + struct.pack(">q", 10) + s16("m") + struct.pack(">q", 111)
    assert read_offset_commit_value(v0) == OffsetAndMetadata(10, -1, "m", 111, None)
    v1 = b"\x00\x01" + struct.pack(">q", 11) + s16("") + struct.pack(">qq", 112, 999)
    assert read_offset_commit_value(v1) == OffsetAndMetadata(11, -1, "", 112, 999)
    v1_no_expiry = b"\x00\x01" + struct.pack(">q", 11) + s16("") + struct.pack(">qq", 112, -1)
    assert read_offset_commit_value(v1_no_expiry).expire_timestamp is None
    v2 = b"\x00\x02" + struct.pack(">q", 12) + s16("x") + struct.pack(">q", 113)
    assert read_offset_commit_value(v2) == OffsetAndMetadata(12, -1, "x", 113, None)
    v3 = b"\x00\x03" + struct.pack(">qi", 13, 4) + s16("y") + struct.pack(">q", 114)
    assert read_offset_commit_value(v3) == OffsetAndMetadata(13, 4, "y", 114, None)
    # v4: flexible, with an unknown tagged field (tag 5, 2 bytes) to skip.
    v4 = b"\x00\x04" + struct.pack(">qi", 14, 5) + cstr("z") + struct.pack(">q", 115) + b"\x01\x05\x02hi"
    assert read_offset_commit_value(v4) == OffsetAndMetadata(14, 5, "z", 115, None)
    with pytest.raises(CoordinatorRecordError):
        read_offset_commit_value(b"\x00\x05" + bytes(30))


def test_read_group_metadata_values_v0_v1_v2_v4():
    member_v0 = s16("m") + s16("cid") + s16("/h") + struct.pack(">i", 7000) + b32(b"s") + b32(b"a")
    v0 = b"\x00\x00" + s16("consumer") + struct.pack(">i", 1) + s16("range") + s16("m") + struct.pack(">i", 1) \
        + member_v0
    group = read_group_metadata_value(v0)
    assert (group.generation, group.current_state_timestamp) == (1, -1)
    # v0 had no rebalance timeout: the session timeout stands in for it.
    assert group.members == [MemberRecord("m", None, "cid", "/h", 7000, 7000, b"s", b"a")]

    member_v1 = s16("m") + s16("cid") + s16("/h") + struct.pack(">ii", 9000, 7000) + b32(b"s") + b32(b"a")
    v1 = b"\x00\x01" + s16("consumer") + struct.pack(">i", 2) + s16("range") + s16("m") + struct.pack(">i", 1) \
        + member_v1
    assert read_group_metadata_value(v1).members[0].rebalance_timeout_ms == 9000
    v2 = b"\x00\x02" + s16("consumer") + struct.pack(">i", 3) + s16(None) + s16(None) + struct.pack(">qi", 77, 0)
    assert read_group_metadata_value(v2) == GroupMetadataRecord("consumer", 3, None, None, 77, [])

    member_v4 = (cstr("m") + cstr("inst") + cstr("cid") + cstr("/h") + struct.pack(">ii", 9000, 7000)
                 + b"\x02s" + b"\x02a" + b"\x00")
    v4 = (b"\x00\x04" + cstr("consumer") + struct.pack(">i", 4) + cstr("range") + cstr("m") + struct.pack(">q", 88)
          + b"\x02" + member_v4 + b"\x01\x00\x01\xff")
    assert read_group_metadata_value(v4) == GroupMetadataRecord(
        "consumer", 4, "range", "m", 88, [MemberRecord("m", "inst", "cid", "/h", 9000, 7000, b"s", b"a")])


def test_subscribed_topics_from_consumer_protocol_subscriptions():
    v0 = struct.pack(">hi", 0, 2) + s16("t1") + s16("t2") + struct.pack(">i", -1)
    assert read_subscribed_topics(v0) == {"t1", "t2"}
    # v1 appends owned partitions, v3 a generation and rack: the v0 prefix is all that is read.
    v1 = struct.pack(">hi", 1, 1) + s16("t3") + b32(b"ud") + struct.pack(">i", 1) + s16("t3") + struct.pack(">ii", 1, 0)
    assert read_subscribed_topics(v1) == {"t3"}
    assert read_subscribed_topics(b"\x00") is None
    assert read_subscribed_topics(struct.pack(">hi", 0, 3) + s16("only-one")) is None
    assert read_subscribed_topics(b"") is None
