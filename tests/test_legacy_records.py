"""Message formats v0/v1 (kbroker/log/legacy_records.py): Produce v0-2's message sets converted
to v2 batches and Fetch v0-3's down-conversion, checked against kafka-python's own legacy record
classes as an independent implementation. Expected behaviour is Kafka 3.x's LogValidator and
RecordsUtil.downConvert."""

from __future__ import annotations

import struct
import zlib

import pytest
import xxhash
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kafka.record.legacy_records import LegacyRecordBatchBuilder
from kafka.record.memory_records import MemoryRecords

from kbroker.log.compression import CODEC_GZIP, CODEC_LZ4, CODEC_NONE, CODEC_SNAPPY, CODEC_ZSTD, compress
from kbroker.log.config import LogConfig
from kbroker.log.errors import LogError
from kbroker.log.legacy_records import (
    _mend_lz4_header_checksum,
    _xxh32_short,
    build_message_set,
    down_convert,
    encode_message,
    fetch_magic,
    up_convert,
)
from kbroker.log.records import (
    CREATE_TIME,
    LOG_APPEND_TIME,
    NO_TIMESTAMP,
    ControlRecordType,
    Record,
    SimpleRecord,
    build_batch,
    build_control_batch,
    iter_batches,
    iter_records,
)
from kbroker.log.validator import AppendOrigin, analyze_and_validate_records, validate_and_assign_offsets
from kbroker.protocol.errors import Errors

NOW = 1_700_000_000_000
KAFKA_PYTHON_CODECS = {CODEC_NONE: 0, CODEC_GZIP: 1, CODEC_SNAPPY: 2, CODEC_LZ4: 3}


def kafka_python_message_set(magic: int, codec: int, entries: list[tuple[bytes | None, bytes | None]],
                             timestamp: int = NOW) -> bytes:
    """A message set written by kafka-python (a compressed one is one wrapper)."""
    builder = LegacyRecordBatchBuilder(magic, KAFKA_PYTHON_CODECS[codec], 1 << 20)
    for offset, (key, value) in enumerate(entries):
        builder.append(offset, timestamp + offset if magic else None, key, value)
    return bytes(builder.build())


def kafka_python_read(data: bytes) -> list[tuple[int, int, int | None, bytes | None, bytes | None]]:
    """(offset, magic, timestamp, key, value) of every message, read by kafka-python."""
    records = MemoryRecords(data)
    out = []
    while records.has_next():
        batch = records.next_batch()
        out.extend((r.offset, batch.magic, r.timestamp, r.key, r.value) for r in batch)
    return out


def converted(data: bytes, config: LogConfig | None = None, first_offset: int = 0):
    """Produce v0-2's path through the log's validator: the appended batch and its records."""
    config = config or LogConfig()
    view, headers = analyze_and_validate_records(data, AppendOrigin.CLIENT, config.max_message_bytes, config=config)
    result = validate_and_assign_offsets(view, headers, first_offset=first_offset, leader_epoch=3, now_ms=NOW + 5,
                                         config=config, origin=AppendOrigin.CLIENT, topic="t", partition=0)
    (batch,) = result.batches
    return result, batch, list(iter_records(result.records, batch))


def error_of(data: bytes, config: LogConfig | None = None) -> LogError:
    with pytest.raises(LogError) as raised:
        converted(data, config)
    return raised.value


ENTRIES = [(b"k0", b"v0"), (None, b"v1"), (b"k2", None), (b"k3", b"v3" * 50)]


@pytest.mark.parametrize("magic", [0, 1])
@pytest.mark.parametrize("codec", [CODEC_NONE, CODEC_GZIP, CODEC_SNAPPY, CODEC_LZ4])
def test_message_sets_become_one_v2_batch(magic, codec):
    data = kafka_python_message_set(magic, codec, ENTRIES)
    result, batch, records = converted(data, first_offset=40)
    assert batch.magic == 2 and batch.compression_codec == codec and batch.partition_leader_epoch == 3
    assert (result.first_offset, result.last_offset) == (40, 43)
    assert [(r.offset, r.key, r.value) for r in records] == [(40 + i, k, v) for i, (k, v) in enumerate(ENTRIES)]
    expected_timestamps = [NOW + i for i in range(4)] if magic else [NO_TIMESTAMP] * 4
    assert [r.timestamp for r in records] == expected_timestamps
    assert batch.timestamp_type == CREATE_TIME


def test_log_append_time_topic_stamps_converted_records():
    data = kafka_python_message_set(0, CODEC_NONE, ENTRIES)
    result, batch, records = converted(data, LogConfig(message_timestamp_type="LogAppendTime"))
    assert batch.timestamp_type == LOG_APPEND_TIME and result.log_append_time == NOW + 5
    assert {r.timestamp for r in records} == {NOW + 5}


def test_topic_codec_recompresses_converted_records():
    data = kafka_python_message_set(1, CODEC_GZIP, ENTRIES)
    _, batch, records = converted(data, LogConfig(compression_type="snappy"))
    assert batch.compression_codec == CODEC_SNAPPY and [r.value for r in records] == [v for _, v in ENTRIES]


@pytest.mark.parametrize(("topic", "level", "xfl"), [
    ({"compression_type": "gzip", "compression_gzip_level": 1}, 1, 4),
    ({"compression_type": "gzip", "compression_gzip_level": 9}, 9, 2),
    ({"compression_type": "producer", "compression_gzip_level": 1}, None, 0),
])
def test_a_converted_gzip_message_set_is_compressed_at_the_topics_gzip_level(topic, level, xfl):
    """Kafka rebuilds a v0/v1 message set in the target compression, level included: the topic's
    compression.gzip.level when the topic's codec is the set's own; with compression.type=producer
    the target is the producer's codec at its default level. (The gzip header's XFL byte: 4 for
    deflate's fastest level, 2 for its best, 0 otherwise.)"""
    entries = [(b"k%d" % i, b"value %d of the converted set " % (i * 7919 % 1000) * 20) for i in range(30)]
    data = kafka_python_message_set(1, CODEC_GZIP, entries)
    result, batch, records = converted(data, LogConfig(**topic))
    assert [(r.key, r.value) for r in records] == entries
    body = bytes(result.records[61 : batch.end])
    assert batch.compression_codec == CODEC_GZIP and body[8] == xfl
    assert body == compress(CODEC_GZIP, zlib.decompress(body, 31), level)


def test_another_codecs_topic_rewrites_a_converted_set_at_its_own_level():
    data = kafka_python_message_set(1, CODEC_GZIP, [(b"k", b"zstd me " * 100)] * 5)
    config = LogConfig(compression_type="zstd", compression_gzip_level=1, compression_zstd_level=15)
    result, batch, _ = converted(data, config)
    body = bytes(result.records[61 : batch.end])
    assert batch.compression_codec == CODEC_ZSTD
    plain = zstandard.ZstdDecompressor().decompressobj().decompress(body)
    assert body == zstandard.ZstdCompressor(level=15).compress(plain)


def test_keyless_message_on_a_compacted_topic_is_an_invalid_record():
    data = kafka_python_message_set(1, CODEC_NONE, ENTRIES)
    assert error_of(data, LogConfig(cleanup_policy="compact")).code == Errors.INVALID_RECORD


def test_timestamp_out_of_bounds_is_invalid_timestamp():
    data = kafka_python_message_set(1, CODEC_NONE, ENTRIES, timestamp=1000)
    config = LogConfig(message_timestamp_before_max_ms=60_000)
    assert error_of(data, config).code == Errors.INVALID_TIMESTAMP
    # magic 0 has no timestamp to judge
    assert converted(kafka_python_message_set(0, CODEC_NONE, ENTRIES), config)[0].record_count == 4


def flip_last_byte(data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 1])


@pytest.mark.parametrize("magic", [0, 1])
def test_a_bad_crc_is_corrupt_message(magic):
    data = kafka_python_message_set(magic, CODEC_NONE, ENTRIES)
    assert error_of(flip_last_byte(data)).code == Errors.CORRUPT_MESSAGE


def test_a_bad_inner_crc_is_corrupt_message():
    inner = encode_message(0, 1, 0, NOW, b"k", b"v")
    inner = flip_last_byte(inner)
    wrapper = encode_message(0, 1, CODEC_GZIP, NOW, None, compress(CODEC_GZIP, inner))
    assert error_of(wrapper).code == Errors.CORRUPT_MESSAGE


def test_undecompressable_wrapper_is_corrupt_message():
    assert error_of(encode_message(0, 1, CODEC_GZIP, NOW, None, b"not gzip")).code == Errors.CORRUPT_MESSAGE


def test_mixed_magics_are_an_invalid_record():
    data = encode_message(0, 0, 0, NOW, b"k", b"a") + encode_message(1, 1, 0, NOW, b"k", b"b")
    assert error_of(data).code == Errors.INVALID_RECORD


def test_inner_magic_other_than_the_wrapper_is_an_invalid_record():
    inner = encode_message(0, 0, 0, NOW, b"k", b"v")
    wrapper = encode_message(0, 1, CODEC_GZIP, NOW, None, compress(CODEC_GZIP, inner))
    assert error_of(wrapper).code == Errors.INVALID_RECORD


def test_nested_compression_is_an_invalid_record():
    inner = encode_message(0, 1, CODEC_GZIP, NOW, None, compress(CODEC_GZIP, encode_message(0, 1, 0, NOW, None, b"v")))
    wrapper = encode_message(0, 1, CODEC_GZIP, NOW, None, compress(CODEC_GZIP, inner))
    assert error_of(wrapper).code == Errors.INVALID_RECORD


def test_a_wrapper_with_company_is_an_invalid_record():
    wrapper = kafka_python_message_set(1, CODEC_GZIP, ENTRIES)
    assert error_of(wrapper + encode_message(0, 1, 0, NOW, b"k", b"v")).code == Errors.INVALID_RECORD


def test_a_message_above_max_message_bytes_is_too_large():
    data = kafka_python_message_set(1, CODEC_NONE, [(b"k", b"x" * 2000)])
    assert error_of(data, LogConfig(max_message_bytes=1000)).code == Errors.MESSAGE_TOO_LARGE


def test_a_size_below_the_minimum_is_corrupt_message():
    data = bytearray(kafka_python_message_set(0, CODEC_NONE, ENTRIES[:1]))
    struct.pack_into(">i", data, 8, 13)
    assert error_of(bytes(data)).code == Errors.CORRUPT_MESSAGE


def test_a_trailing_partial_message_is_dropped():
    data = kafka_python_message_set(1, CODEC_NONE, ENTRIES)
    result, _, records = converted(data + data[:20])
    assert len(records) == 4


def test_client_log_append_time_on_a_create_time_topic_keeps_a_valid_timestamp():
    message = encode_message(0, 1, 0x08, NOW, b"k", b"v")
    _, batch, records = converted(message)
    assert batch.timestamp_type == CREATE_TIME and records[0].timestamp == NOW
    # without a timestamp, or on a LogAppendTime topic, the flag is refused as Kafka refuses it
    assert error_of(encode_message(0, 1, 0x08, NO_TIMESTAMP, b"k", b"v")).code == Errors.INVALID_TIMESTAMP
    config = LogConfig(message_timestamp_type="LogAppendTime")
    assert error_of(message, config).code == Errors.INVALID_TIMESTAMP


def test_empty_message_set_appends_nothing():
    assert up_convert(b"", 1000) == bytearray()


# --- down-conversion ------------------------------------------------------------------------


def stored(records: list[SimpleRecord], base_offset: int, codec: int = CODEC_NONE, **kwargs) -> bytes:
    return build_batch(records, base_offset=base_offset, compression=codec, **kwargs)


RECORDS = [SimpleRecord(b"k0", b"v0", (("h", b"x"),), NOW), SimpleRecord(None, b"v1", (), NOW + 1),
           SimpleRecord(b"k2", None, (), NOW + 2)]


@pytest.mark.parametrize("to_magic", [0, 1])
@pytest.mark.parametrize("codec", [CODEC_NONE, CODEC_GZIP, CODEC_SNAPPY, CODEC_LZ4])
def test_down_conversion_reads_back_with_kafka_python(to_magic, codec):
    # (one batch: the first converted batch always goes whole, later ones may be cut, see below)
    got = kafka_python_read(down_convert(stored(RECORDS, 10, codec), to_magic, 10))
    timestamps = [NOW, NOW + 1, NOW + 2] if to_magic else [None] * 3
    assert got == [(10 + i, to_magic, ts, r.key, r.value)
                   for i, (r, ts) in enumerate(zip(RECORDS, timestamps, strict=True))]


def test_down_converted_compressed_batch_is_one_wrapper_in_the_same_codec():
    out = down_convert(stored(RECORDS, 10, CODEC_GZIP), 1, 11)
    wrapper_offset, size, _crc, magic, attributes = struct.unpack_from(">qiIbb", out)
    assert (wrapper_offset, magic, attributes & 7, len(out)) == (12, 1, CODEC_GZIP, size + 12)
    # the whole batch goes (the client skips to its offset), as Kafka sends it
    assert [o for o, *_ in kafka_python_read(out)] == [10, 11, 12]


def test_uncompressed_records_before_the_fetch_offset_are_dropped():
    out = down_convert(stored(RECORDS, 10), 0, 11)
    assert [o for o, *_ in kafka_python_read(out)] == [11, 12]


def test_control_batches_are_dropped():
    marker = build_control_batch(ControlRecordType.COMMIT, 7, 0, 0, base_offset=13, timestamp=NOW)
    out = down_convert(stored(RECORDS, 10) + marker + stored(RECORDS[:1], 14), 1, 10)
    assert [o for o, *_ in kafka_python_read(out)] == [10, 11, 12, 14]


def test_log_append_time_batches_carry_their_time():
    data = stored(RECORDS, 0, timestamp_type=LOG_APPEND_TIME, log_append_time=NOW + 99)
    assert {ts for _, _, ts, _, _ in kafka_python_read(down_convert(data, 1, 0))} == {NOW + 99}
    compressed = stored(RECORDS, 0, CODEC_GZIP, timestamp_type=LOG_APPEND_TIME, log_append_time=NOW + 99)
    assert {ts for _, _, ts, _, _ in kafka_python_read(down_convert(compressed, 1, 0))} == {NOW + 99}


def test_zstd_batches_cannot_be_down_converted():
    with pytest.raises(LogError) as raised:
        down_convert(stored(RECORDS, 0, CODEC_ZSTD), 1, 0)
    assert raised.value.code == Errors.UNSUPPORTED_COMPRESSION_TYPE


def test_converted_bytes_are_cut_at_what_was_read_unless_the_first_batch_is_larger():
    small = [SimpleRecord(None, b"x", (), NOW + i) for i in range(50)]
    data = stored(small, 0) + stored(small, 50)
    out = down_convert(data, 0, 0)
    # v0 messages cost 26 bytes each against a v2 record's ~8: the first batch grows past the read
    first = len(build_message_set([r._replace(offset=i) for i, r in enumerate(iter_records(data, next(iter_batches(data))))], 0))
    assert len(out) == max(len(data), first)
    assert [o for o, *_ in kafka_python_read(out)] == list(range(50))  # the rest cut, a partial message ignored


def test_partial_trailing_batch_is_not_converted():
    data = stored(RECORDS, 0) + stored(RECORDS, 3)[:40]
    assert [o for o, *_ in kafka_python_read(down_convert(data, 1, 0))] == [0, 1, 2]
    assert down_convert(stored(RECORDS, 0)[:50], 1, 0) == b""


def test_fetch_versions_read_their_magic():
    assert [fetch_magic(v) for v in range(6)] == [0, 0, 1, 1, None, None]


# --- LZ4 of magic 0 -------------------------------------------------------------------------


@given(st.binary(max_size=15))
def test_xxh32_matches_the_xxhash_library(data):
    assert _xxh32_short(data) == xxhash.xxh32(data).intdigest()


def test_magic_0_lz4_with_kafka_08_header_checksum_is_read():
    inner = encode_message(0, 0, 0, NO_TIMESTAMP, b"k", b"v")
    frame = bytearray(compress(CODEC_LZ4, inner))
    descriptor_end = 6 + (8 if frame[4] & 0x08 else 0)
    # Kafka 0.8 hashed the magic bytes too: any other checksum byte stands for it
    broken = frame[:descriptor_end] + bytes([frame[descriptor_end] ^ 0xFF]) + frame[descriptor_end + 1:]
    assert _mend_lz4_header_checksum(bytes(broken)) == bytes(frame)
    wrapper = encode_message(0, 0, CODEC_LZ4, NO_TIMESTAMP, None, bytes(broken))
    _, _, records = converted(wrapper)
    assert [(r.key, r.value) for r in records] == [(b"k", b"v")]


def test_magic_0_lz4_is_written_with_kafka_08_header_checksum():
    records = [Record(5, NO_TIMESTAMP, b"k", b"v", ())]
    out = build_message_set(records, 0, CODEC_LZ4)
    value = out[12 + 4 + 2 + 4 + 4:]  # offset, size, crc, magic+attributes, null key, value length
    descriptor_end = 6
    assert value[descriptor_end] == (xxhash.xxh32(value[:descriptor_end]).intdigest() >> 8) & 0xFF
    # read back by the path old producers take (which mends the checksum first)
    assert [(r.offset, r.key, r.value) for r in converted(out)[2]] == [(0, b"k", b"v")]


def test_corrupt_log_bytes_down_convert_to_corrupt_message():
    data = bytearray(stored(RECORDS, 0, CODEC_GZIP))
    data[70:80] = b"\xff" * 10  # inside the compressed records
    with pytest.raises(LogError) as raised:
        down_convert(bytes(data), 1, 0)
    assert raised.value.code == Errors.CORRUPT_MESSAGE


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_message_sets_only_ever_raise_log_errors(data):
    """Whatever a client sends in Produce v0-2, the log answers with a Kafka error code."""
    magic = data.draw(st.sampled_from([0, 1]))
    codec = data.draw(st.sampled_from([CODEC_NONE, CODEC_GZIP, CODEC_SNAPPY]))
    original = bytearray(kafka_python_message_set(magic, codec, ENTRIES))
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(original) - 1))
        original[position] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(original)))
    try:
        up_convert(bytes(original[:cut]), 1 << 20)
    except LogError as err:
        assert err.code in (Errors.CORRUPT_MESSAGE, Errors.INVALID_RECORD, Errors.MESSAGE_TOO_LARGE)


def with_fixed_crcs(data: bytearray) -> bytes:
    """Each complete message's CRC recomputed, so mutations reach the checks behind the CRC."""
    position = 0
    while position + 17 <= len(data):
        (size,) = struct.unpack_from(">i", data, position + 8)
        end = position + 12 + size
        if size < 5 or end > len(data):
            break
        struct.pack_into(">I", data, position + 12, zlib.crc32(data[position + 16:end]))
        position = end
    return bytes(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_messages_behind_valid_crcs_only_ever_raise_log_errors(data):
    magic = data.draw(st.sampled_from([0, 1]))
    inner = bytearray(kafka_python_message_set(magic, CODEC_NONE, ENTRIES))
    for _ in range(data.draw(st.integers(1, 4))):
        inner[data.draw(st.integers(0, len(inner) - 1))] = data.draw(st.integers(0, 255))
    inner_bytes = with_fixed_crcs(inner) if data.draw(st.booleans()) else bytes(inner)
    codec = data.draw(st.sampled_from([CODEC_NONE, CODEC_GZIP, CODEC_SNAPPY, CODEC_LZ4, 5]))
    if codec == CODEC_NONE:
        message_set = inner_bytes
    else:
        payload = compress(codec, inner_bytes) if codec != 5 else inner_bytes
        message_set = encode_message(0, magic, codec, NOW, None, payload)
    try:
        up_convert(message_set, 1 << 20)
    except LogError as err:
        assert err.code in (Errors.CORRUPT_MESSAGE, Errors.INVALID_RECORD)
