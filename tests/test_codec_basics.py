"""Hand-checked codec behaviour: defaults, records as memoryviews, tagged fields, errors."""

import struct

import pytest

from kbroker.protocol.api_keys import ApiKey
from kbroker.protocol.messages import (
    CodecError,
    UnsupportedVersionError,
    is_flexible,
    request_codec,
    response_codec,
    schema_versions,
)
from kbroker.protocol.uuids import ZERO_UUID


def _produce_v9(records) -> dict:
    return {
        "transactional_id": None,
        "acks": -1,
        "timeout_ms": 1500,
        "topic_data": [{"name": "t", "partition_data": [{"index": 3, "records": records}]}],
    }


def test_produce_v9_bytes_are_kafkas_layout():
    data = request_codec(ApiKey.PRODUCE, 9).encode(_produce_v9(b"RECS"))
    expected = (
        b"\x00"  # compact nullable transactional id: null
        + struct.pack(">hi", -1, 1500)
        + b"\x02"  # one topic
        + b"\x02t"  # compact string "t"
        + b"\x02"  # one partition
        + struct.pack(">i", 3)
        + b"\x05RECS"  # compact records of 4 bytes
        + b"\x00\x00\x00"  # tagged fields of partition, topic, request
    )
    assert data == expected


def test_records_decode_as_memoryview_into_the_input_buffer():
    records = bytes(range(256)) * 4096  # 1 MiB
    codec = request_codec(ApiKey.PRODUCE, 9)
    buf = codec.encode(_produce_v9(records))
    msg, end = codec.decode(buf)
    view = msg["topic_data"][0]["partition_data"][0]["records"]
    assert isinstance(view, memoryview)
    assert view.obj is buf
    assert view == records
    assert end == len(buf)


def test_encode_chunks_hands_records_over_untouched():
    records = memoryview(b"x" * 1000)
    out: list = []
    codec = request_codec(ApiKey.PRODUCE, 8)
    total = codec.encode_chunks(_produce_v9(records), out)
    assert any(piece is records for piece in out)
    assert total == sum(len(piece) for piece in out)
    assert b"".join(out) == codec.encode(_produce_v9(records))


def test_decoded_message_has_every_field_of_every_version():
    codec = request_codec(ApiKey.FETCH, 4)
    msg, _ = codec.decode(codec.encode({"topics": [{"topic": "a", "partitions": [{"partition": 1}]}]}))
    assert msg["topics"][0]["topic_id"] == ZERO_UUID  # v13+ field, default
    assert msg["topics"][0]["partitions"][0]["current_leader_epoch"] == -1  # v9+ default
    assert msg["session_epoch"] == -1 and msg["rack_id"] == "" and msg["cluster_id"] is None
    assert msg["replica_state"] == {"replica_id": -1, "replica_epoch": -1}
    assert msg["forgotten_topics_data"] == []


def test_tagged_field_written_only_when_not_default():
    codec = request_codec(ApiKey.FETCH, 12)
    plain = codec.encode({})
    tagged = codec.encode({"cluster_id": "abc"})
    assert len(tagged) == len(plain) + 1 + 1 + 4  # tag, size, compact string of 3
    assert codec.decode(tagged)[0]["cluster_id"] == "abc"
    assert codec.decode(plain)[0]["cluster_id"] is None


def test_unknown_tagged_fields_are_skipped():
    codec = response_codec(ApiKey.API_VERSIONS, 3)
    body = codec.encode({"api_keys": [{"api_key": 0, "min_version": 0, "max_version": 9}]})
    assert body.endswith(b"\x00")
    with_unknown = body[:-1] + b"\x01\x63\x03xyz"  # tag 99, three bytes
    msg, end = codec.decode(with_unknown)
    assert end == len(with_unknown)
    assert msg == codec.decode(body)[0]


def test_versions_below_the_schema_minimum_still_compile():
    assert schema_versions(ApiKey.PRODUCE)[0] == 3
    codec = request_codec(ApiKey.PRODUCE, 0)
    msg = _produce_v9(b"abc")
    data = codec.encode(msg)
    assert data[:6] == struct.pack(">hi", -1, 1500)  # no transactional id before v3
    assert codec.decode(data)[0]["topic_data"][0]["partition_data"][0]["records"] == b"abc"


def test_unsupported_and_unknown():
    high = schema_versions(ApiKey.METADATA)[1]
    with pytest.raises(UnsupportedVersionError):
        request_codec(ApiKey.METADATA, high + 1)
    assert issubclass(UnsupportedVersionError, CodecError)
    with pytest.raises(KeyError):
        request_codec(999, 0)
    assert is_flexible(ApiKey.METADATA, 9) and not is_flexible(ApiKey.METADATA, 8)


def test_codec_attributes_and_cache():
    codec = response_codec(ApiKey.FETCH, 12)
    assert (codec.api_key, codec.version, codec.flexible) == (ApiKey.FETCH, 12, True)
    assert response_codec(ApiKey.FETCH, 12) is codec


@pytest.mark.parametrize(
    "msg",
    [
        {"acks": 1 << 20},  # int16 out of range
        {"topic_data": [{"name": None}]},  # null in a non-nullable string
        {"topic_data": "nope"},
        {"topic_data": [{"partition_data": [{"records": object()}]}]},
    ],
)
def test_unencodable_messages_raise_codec_error(msg):
    with pytest.raises(CodecError):
        request_codec(ApiKey.PRODUCE, 9).encode(msg)


def test_garbage_lengths_raise_codec_error():
    codec = request_codec(ApiKey.PRODUCE, 3)
    with pytest.raises(CodecError):
        codec.decode(struct.pack(">hhhi", -7, 1, 0, 0))  # transactional id length -7 is not null
    with pytest.raises(CodecError):
        codec.decode(struct.pack(">hhii", -1, 1, 0, 0x7FFFFFFF))  # two billion topics
