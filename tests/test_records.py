"""Record batch format (kbroker.log.records, compression) checked against kafka-python's reader
and writer, and leader-append validation (kbroker.log.validator) error codes."""

from __future__ import annotations

import random
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kafka.record.default_records import ControlRecord, DefaultRecordBatchBuilder

from kbroker.log import compression
from kbroker.log.append_origin import AppendOrigin
from kbroker.log.config import LogConfig
from kbroker.log.errors import LogError
from kbroker.log.records import (
    HEADER_STRUCT,
    LOG_APPEND_TIME,
    RECORDS_OFFSET,
    ControlRecordType,
    CorruptRecordError,
    SimpleRecord,
    build_batch,
    build_control_batch,
    compute_batch_crc,
    encode_varint,
    iter_batches,
    iter_records,
    parse_control_record,
    parse_header,
    read_varint,
)
from kbroker.log.validator import (
    _rebuild_in_target_codec,
    analyze_and_validate_records,
    validate_and_assign_offsets,
    validate_produce_partition_records,
)
from kbroker.protocol.errors import Errors
from kbroker.testing.batches import COMPRESSIBLE, producer_batch, read_batches
from kbroker.testing.records import varied_text

CODECS = [
    compression.CODEC_NONE,
    compression.CODEC_GZIP,
    compression.CODEC_SNAPPY,
    compression.CODEC_LZ4,
    compression.CODEC_ZSTD,
]
NOW = 1_700_000_100_000
DEFAULT_CONFIG = LogConfig()


def patch_header(batch: bytes | bytearray, **fields: int) -> bytearray:
    """Rewrite header fields of a single batch and fix its CRC, to craft invalid-but-intact batches."""
    buf = bytearray(batch)
    names = list(parse_header(buf)._fields)[1:]
    values = dict(zip(names, HEADER_STRUCT.unpack_from(buf), strict=True))
    values.update(fields)
    HEADER_STRUCT.pack_into(buf, 0, *(values[name] for name in names))
    struct.pack_into(">I", buf, 17, compute_batch_crc(buf, 0, len(buf)))
    return buf


def validate(batch, config=DEFAULT_CONFIG, origin=AppendOrigin.CLIENT, first_offset=0, leader_epoch=0):
    view, headers = analyze_and_validate_records(batch, origin, config.max_message_bytes)
    return validate_and_assign_offsets(
        view,
        headers,
        first_offset=first_offset,
        leader_epoch=leader_epoch,
        now_ms=NOW,
        config=config,
        origin=origin,
        topic="t",
        partition=0,
    )


def error_of(batch, **kwargs) -> LogError:
    with pytest.raises(LogError) as caught:
        validate(batch, **kwargs)
    return caught.value


# --- format ---------------------------------------------------------------------------------


@given(st.integers(min_value=-(2**63), max_value=2**63 - 1))
def test_varint_round_trip(value):
    encoded = encode_varint(value)
    assert read_varint(encoded + b"\xff", 0) == (value, len(encoded))


@pytest.mark.parametrize("codec", CODECS)
def test_built_batch_reads_back_with_kafka_python(codec):
    records = [
        SimpleRecord(b"k%d" % i, COMPRESSIBLE + b"%d" % i, [("h", b"v%d" % i)], 1_700_000_000_000 + i)
        for i in range(20)
    ]
    records.append(SimpleRecord(None, None, (), 1_700_000_000_050))
    data = build_batch(
        records, base_offset=100, compression=codec, producer_id=7, producer_epoch=2, base_sequence=40
    )
    [(batch, read)] = read_batches(data)
    assert batch.compression_type == codec
    assert (batch.base_offset, batch.producer_id, batch.producer_epoch, batch.base_sequence) == (
        100,
        7,
        2,
        40,
    )
    assert batch.max_timestamp == 1_700_000_000_050
    assert [(r.offset, r.key, r.value, r.timestamp) for r in read] == [
        (100 + i, r.key, r.value, r.timestamp) for i, r in enumerate(records)
    ]
    assert [r.headers for r in read[:20]] == [[("h", b"v%d" % i)] for i in range(20)]


@pytest.mark.parametrize("codec", CODECS)
def test_producer_batches_decode_with_iter_records(codec):
    values = [COMPRESSIBLE + b"%d" % i for i in range(50)]
    data = producer_batch(values, codec=codec, keys=[b"key%d" % i for i in range(50)], headers=[("a", b"b")])
    [header] = list(iter_batches(data))
    assert header.compression_codec == codec
    decoded = list(iter_records(data, header))
    assert [r.value for r in decoded] == values
    assert [r.key for r in decoded] == [b"key%d" % i for i in range(50)]
    assert [r.offset for r in decoded] == list(range(50))
    assert [r.timestamp for r in decoded] == [1_700_000_000_000 + i for i in range(50)]
    assert decoded[3].headers == (("a", b"b"),)


def test_snappy_reads_raw_blocks_without_xerial_framing():
    import snappy

    payload = COMPRESSIBLE * 10
    assert compression.decompress(compression.CODEC_SNAPPY, snappy.compress(payload)) == payload
    assert compression.compress(compression.CODEC_SNAPPY, payload).startswith(b"\x82SNAPPY\x00")


def test_iter_batches_stops_at_a_partial_batch_and_rejects_bad_lengths():
    first = build_batch([SimpleRecord(b"a", b"1")])
    second = build_batch([SimpleRecord(b"b", b"2")], base_offset=1)
    data = first + second[:-3]
    headers = list(iter_batches(data))
    assert [h.base_offset for h in headers] == [0]
    assert headers[0].end == len(first)
    bad_length = bytearray(first)
    struct.pack_into(">i", bad_length, 8, 1)
    with pytest.raises(CorruptRecordError):
        list(iter_batches(bad_length))


def test_control_batch_round_trip():
    data = build_control_batch(ControlRecordType.COMMIT, 42, 3, 9, base_offset=5, timestamp=NOW)
    [(batch, [record])] = read_batches(data)
    assert batch.is_control_batch and batch.is_transactional and batch.producer_id == 42
    assert isinstance(record, ControlRecord) and record.commit
    [header] = list(iter_batches(data))
    [ours] = list(iter_records(data, header))
    assert parse_control_record(ours) == (ControlRecordType.COMMIT, 9)


def test_truncated_compressed_records_are_corrupt():
    data = producer_batch([COMPRESSIBLE] * 5, codec=compression.CODEC_GZIP)
    header = parse_header(data)
    lying = patch_header(data, record_count=6, last_offset_delta=5)
    with pytest.raises(CorruptRecordError):
        list(iter_records(lying, parse_header(lying)))
    assert len(list(iter_records(data, header))) == 5


# --- validation ------------------------------------------------------------------------------


def test_assigns_offsets_and_leader_epoch_in_place():
    data = producer_batch([b"a", b"b", b"c"])
    result = validate(data, first_offset=1000, leader_epoch=7)
    assert (result.first_offset, result.last_offset, result.record_count) == (1000, 1002, 3)
    assert result.log_append_time == -1
    assert result.max_timestamp == 1_700_000_000_002 and result.shallow_offset_of_max_timestamp == 1002
    [(batch, records)] = read_batches(data)  # patched in the caller's bytearray
    assert batch.base_offset == 1000 and batch.leader_epoch == 7
    assert [r.offset for r in records] == [1000, 1001, 1002]


def test_read_only_input_is_copied_not_patched():
    data = bytes(producer_batch([b"a"]))
    result = validate(data, first_offset=55)
    assert parse_header(data).base_offset == 0
    assert parse_header(result.records).base_offset == 55


@pytest.mark.parametrize("codec", [compression.CODEC_NONE, compression.CODEC_LZ4])
def test_log_append_time_rewrites_timestamp_and_crc(codec):
    data = producer_batch([COMPRESSIBLE] * 4, codec=codec)
    result = validate(data, config=LogConfig(message_timestamp_type="LogAppendTime"), first_offset=10)
    assert result.log_append_time == NOW and result.max_timestamp == NOW
    assert result.shallow_offset_of_max_timestamp == 13
    [(batch, records)] = read_batches(result.records)
    assert batch.timestamp_type == LOG_APPEND_TIME and batch.max_timestamp == NOW
    assert {r.timestamp for r in records} == {NOW}


def test_trailing_partial_batch_is_dropped():
    data = producer_batch([b"a"])
    view, headers = analyze_and_validate_records(data + data[:30], AppendOrigin.CLIENT, 1 << 20)
    assert len(view) == len(data) and len(headers) == 1
    # A length field below the smallest message is corruption, not a partial batch (as in Kafka).
    assert error_of(data + b"\x00" * 20).code == Errors.CORRUPT_MESSAGE


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (lambda b: patch_header(b, base_offset=5), Errors.INVALID_RECORD),
        (lambda b: patch_header(b, last_offset_delta=5), Errors.INVALID_RECORD),
        (lambda b: patch_header(b, last_offset_delta=-1), Errors.INVALID_RECORD),
        (lambda b: patch_header(b, record_count=0, last_offset_delta=-1), Errors.INVALID_RECORD),
        (lambda b: patch_header(b, attributes=0x30, producer_id=1, producer_epoch=0), Errors.INVALID_RECORD),
        (lambda b: patch_header(b, producer_id=9, producer_epoch=0, base_sequence=-1), Errors.INVALID_RECORD),
        (lambda b: b[:-1] + bytes([b[-1] ^ 1]), Errors.CORRUPT_MESSAGE),
        # A client's magic 1 is a v1 message set (Produce v0-2): these bytes fail its CRC-32.
        (lambda b: patch_header(b, magic=1), Errors.CORRUPT_MESSAGE),
    ],
)
def test_invalid_batches_get_kafka_error_codes(mutate, code):
    data = mutate(producer_batch([b"a", b"b"]))
    assert error_of(data).code == code


def test_replicas_never_append_old_message_formats():
    data = patch_header(producer_batch([b"a"]), magic=1)
    assert error_of(data, origin=AppendOrigin.REPLICATION).code == Errors.UNSUPPORTED_FOR_MESSAGE_FORMAT


def test_batch_shorter_than_its_header_is_corrupt():
    data = producer_batch([b"a"])
    short = bytearray(data[:40])
    struct.pack_into(">i", short, 8, 28)
    assert error_of(short).code == Errors.CORRUPT_MESSAGE


def test_message_too_large():
    data = producer_batch([b"x" * 2000])
    assert error_of(data, config=LogConfig(max_message_bytes=1000)).code == Errors.MESSAGE_TOO_LARGE
    assert validate(data, config=LogConfig(max_message_bytes=len(data))).record_count == 1


@pytest.mark.parametrize("value", [-65, -64, -1, 0, 1, 63, 64, 127, 128])
def test_varint_one_byte_table_boundaries(value):
    """Values -64..63 come from a table of one-byte encodings; their neighbours are computed."""
    encoded = encode_varint(value)
    assert len(encoded) == (1 if -64 <= value <= 63 else 2)
    assert read_varint(encoded, 0) == (value, len(encoded))


def test_coordinator_batches_are_placed_by_the_log_like_any_other():
    """A coordinator's batch (built by the broker a moment before: its CRC and records are not
    checked again) still gets the offsets, the leader epoch and LogAppendTime, with a CRC that
    an independent reader accepts, and the size limit still refuses it."""
    config = LogConfig(cleanup_policy="compact", message_timestamp_type="LogAppendTime")
    data = build_batch([SimpleRecord(b"k1", b"v1", timestamp=NOW - 50), SimpleRecord(b"k2", None, timestamp=NOW - 40)],
                       now_ms=NOW - 40)
    result = validate(data, config=config, origin=AppendOrigin.COORDINATOR, first_offset=7, leader_epoch=3)
    assert (result.first_offset, result.last_offset, result.log_append_time) == (7, 8, NOW)
    [(batch, records)] = read_batches(result.records)
    assert (batch.base_offset, batch.max_timestamp, parse_header(result.records).partition_leader_epoch) == (7, NOW, 3)
    assert [(r.offset, r.key, r.value, r.timestamp) for r in records] == [(7, b"k1", b"v1", NOW), (8, b"k2", None, NOW)]
    small = LogConfig(max_message_bytes=len(data) - 1)
    assert error_of(data, config=small, origin=AppendOrigin.COORDINATOR).code == Errors.MESSAGE_TOO_LARGE


def test_build_batch_matches_kafka_pythons_builder():
    """build_batch's bytes against kafka-python's own DefaultRecordBatchBuilder (an independent
    encoder): the same header fields, records and CRC give the same bytes."""
    builder = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=True, producer_id=11,
                                        producer_epoch=3, base_sequence=9, batch_size=1 << 20)
    records = [SimpleRecord(b"key", b"x" * 200, (("h", b"1"),), NOW), SimpleRecord(None, b"v", (), NOW + 70),
               SimpleRecord(b"k" * 70, None, (), NOW + 1)]
    for i, r in enumerate(records):
        builder.append(i, timestamp=r.timestamp, key=r.key, value=r.value, headers=list(r.headers))
    expected = bytes(builder.build())
    assert build_batch(records, producer_id=11, producer_epoch=3, base_sequence=9, is_transactional=True,
                       partition_leader_epoch=0) == expected  # kafka-python writes epoch 0, kbroker -1 (no epoch)


def test_control_batches_only_from_the_coordinator():
    marker = build_control_batch(ControlRecordType.ABORT, 5, 0, 1)
    assert error_of(marker).code == Errors.INVALID_RECORD
    assert validate(marker, origin=AppendOrigin.COORDINATOR, first_offset=3).first_offset == 3


@pytest.mark.parametrize("codec", [compression.CODEC_NONE, compression.CODEC_ZSTD])
def test_compacted_topic_rejects_keyless_records(codec):
    compacted = LogConfig(cleanup_policy="compact")
    data = producer_batch([COMPRESSIBLE] * 3, keys=[b"k", None, b"k"], codec=codec)
    err = error_of(data, config=compacted)
    assert err.code == Errors.INVALID_RECORD and [index for index, _ in err.record_errors] == [1]
    keyed = producer_batch([COMPRESSIBLE] * 3, keys=[b"k"] * 3, codec=codec)
    assert validate(keyed, config=compacted).record_count == 3


def test_timestamp_bounds():
    bounded = LogConfig(message_timestamp_before_max_ms=60_000, message_timestamp_after_max_ms=1_000)
    old = producer_batch([b"a", b"b"], timestamp=NOW - 60_001)
    err = error_of(old, config=bounded)
    assert err.code == Errors.INVALID_TIMESTAMP and [i for i, _ in err.record_errors] == [0]
    future = producer_batch([b"a"], timestamp=NOW + 1_001)
    assert error_of(future, config=bounded).code == Errors.INVALID_TIMESTAMP
    assert validate(producer_batch([b"a"], timestamp=NOW - 59_000), config=bounded).record_count == 1
    # Unbounded (the default) never looks at timestamps.
    assert validate(old).record_count == 2


def test_client_log_append_time_batches():
    data = patch_header(producer_batch([b"a"]), attributes=0x08)
    err = error_of(data, config=LogConfig(message_timestamp_type="LogAppendTime"))
    assert err.code == Errors.INVALID_TIMESTAMP
    # Kafka's LogValidator names each record as DefaultRecord.toString does.
    [(index, message)] = err.record_errors
    stamped = read_batches(data)[0][0].max_timestamp
    assert (index, message) == (0, f"Invalid timestamp type in message DefaultRecord(offset=0, timestamp={stamped}, "
                                   "key=0 bytes, value=1 bytes). Producer should not set timestamp type to LogAppendTime.")
    assert err.message == "One or more records have been rejected due to invalid timestamp"
    no_timestamp = patch_header(producer_batch([b"a"]), attributes=0x08, max_timestamp=-1)
    assert error_of(no_timestamp).code == Errors.INVALID_TIMESTAMP
    # On a CreateTime topic a LogAppendTime batch with a real maxTimestamp becomes CreateTime.
    result = validate(patch_header(producer_batch([b"a"]), attributes=0x08))
    [(batch, _)] = read_batches(result.records)
    assert batch.timestamp_type == 0


def test_topic_codec_recompresses_producer_batches():
    data = producer_batch(
        [COMPRESSIBLE] * 10,
        codec=compression.CODEC_SNAPPY,
        keys=[b"k"] * 10,
        producer_id=3,
        producer_epoch=1,
        base_sequence=20,
    )
    result = validate(data, config=LogConfig(compression_type="gzip"), first_offset=70)
    assert result.size_maybe_changed
    [(batch, records)] = read_batches(result.records)
    assert batch.compression_type == compression.CODEC_GZIP
    assert (batch.producer_id, batch.producer_epoch, batch.base_sequence) == (3, 1, 20)
    assert [r.offset for r in records] == list(range(70, 80))
    assert all(r.value == COMPRESSIBLE for r in records)


def rebuilt_record_by_record(batch, config, first_offset=0, leader_epoch=0) -> bytes:
    """The rebuild that decodes every record (validator._rebuild_in_target_codec), which the
    byte-level rewrite must match."""
    view, headers = analyze_and_validate_records(batch, AppendOrigin.CLIENT, config.max_message_bytes)
    result = _rebuild_in_target_codec(view, headers, first_offset, leader_epoch, NOW, config)
    return bytes(result.records)


REWRITES = [
    pytest.param(source, target, id=f"{compression.CODEC_NAMES[source]}-{target}")
    for source in CODECS
    for target in ("uncompressed", "gzip", "snappy", "lz4", "zstd")
    if compression.CODEC_BY_TOPIC_COMPRESSION[target] != source  # the same codec is kept as sent
]


@pytest.mark.parametrize(("source", "target"), REWRITES)
def test_a_rewrite_on_bytes_writes_what_the_record_by_record_rebuild_writes(source, target):
    config = LogConfig(compression_type=target)
    data = producer_batch(
        [COMPRESSIBLE, None, b"", b"v" * 300] * 5, codec=source, keys=[b"k", None, b"", b"key"] * 5,
        producer_id=3, producer_epoch=1, base_sequence=20, transactional=source == compression.CODEC_LZ4,
        headers=[("h", b"1"), ("empty", b"")], timestamps=[NOW - 50 + (i * 7) % 13 for i in range(20)],
    )
    result = validate(data, config=config, first_offset=70, leader_epoch=4)
    assert bytes(result.records) == rebuilt_record_by_record(data, config, first_offset=70, leader_epoch=4)
    assert (result.first_offset, result.last_offset, result.record_count) == (70, 89, 20)
    assert result.max_timestamp == NOW - 50 + 12 and result.shallow_offset_of_max_timestamp == 89


LEVELS = [("gzip", "compression_gzip_level", level) for level in (1, 5, 9)] + \
         [("lz4", "compression_lz4_level", level) for level in (1, 3, 12, 17)] + \
         [("zstd", "compression_zstd_level", level) for level in (-131072, -5, 1, 19, 22)]


@pytest.mark.parametrize("source", [compression.CODEC_NONE, compression.CODEC_SNAPPY])
@pytest.mark.parametrize(("target", "field", "level"), LEVELS)
def test_both_rewrites_compress_at_the_topics_level(source, target, field, level):
    """compression.<codec>.level (KIP-390): the byte-level rewrite and the record-by-record rebuild
    write the same bytes, compressed as the codec does at that level, which differ from the
    default level's on these values."""
    config = LogConfig(compression_type=target, **{field: level})
    values = varied_text(40, seed=level % 97)
    data = producer_batch(values, codec=source, timestamps=[NOW + i for i in range(40)])
    result = validate(data, config=config, first_offset=5, leader_epoch=2)
    assert bytes(result.records) == rebuilt_record_by_record(data, config, first_offset=5, leader_epoch=2)
    [(batch, records)] = read_batches(result.records)
    assert [r.value for r in records] == values
    header = parse_header(result.records)
    stored = bytes(result.records[RECORDS_OFFSET:])
    plain = compression.decompress(header.compression_codec, stored)
    assert stored == compression.compress(header.compression_codec, plain, level)
    default = validate(data, config=LogConfig(compression_type=target), first_offset=5, leader_epoch=2)
    if level != getattr(DEFAULT_CONFIG, field):
        assert bytes(default.records) != bytes(result.records)


def test_compress_levels_are_the_codec_librarys():
    """An independent check of `compress` against zlib and zstandard at the same levels."""
    import zlib

    import zstandard

    data = b" ".join(varied_text(20, seed=3))
    for level in (1, 9):
        gz = compression.compress(compression.CODEC_GZIP, data, level)
        # The gzip header's XFL byte names the extremes of deflate's levels: 4 fastest, 2 best.
        assert gz[8] == {1: 4, 9: 2}[level]
        reference = zlib.compressobj(level, zlib.DEFLATED, 31)
        assert gz == reference.compress(data) + reference.flush()
    assert len(compression.compress(compression.CODEC_GZIP, data, 1)) > len(compression.compress(
        compression.CODEC_GZIP, data, 9))
    for level in (-5, 3, 19):
        zstd = compression.compress(compression.CODEC_ZSTD, data, level)
        assert zstd == zstandard.ZstdCompressor(level=level).compress(data)
        assert compression.decompress(compression.CODEC_ZSTD, zstd) == data
    assert compression.compress(compression.CODEC_GZIP, data) == compression.compress(compression.CODEC_GZIP, data, -1)
    assert compression.compress(compression.CODEC_ZSTD, data) == compression.compress(compression.CODEC_ZSTD, data, 3)
    # lz4: the default level is lz4's fast compressor, any other LZ4HC (lz4-java's highCompressor,
    # which Kafka uses): from level 3, lz4.frame's own HC frames; levels 1-2 compress better than fast.
    import lz4.frame

    def lz4_frame(level):
        return lz4.frame.compress(data, compression_level=level, block_linked=False, store_size=False,
                                  block_size=lz4.frame.BLOCKSIZE_MAX64KB)

    assert compression.compress(compression.CODEC_LZ4, data) == lz4_frame(0)
    for level in (3, 10, 17):
        assert compression.compress(compression.CODEC_LZ4, data, level) == lz4_frame(level)
    for level in (1, 2):
        hc = compression.compress(compression.CODEC_LZ4, data, level)
        assert lz4.frame.decompress(hc) == data and len(hc) < len(lz4_frame(0))
    noise = random.Random(1).randbytes(70_000)  # two blocks, both stored uncompressed
    stored = compression.compress(compression.CODEC_LZ4, noise, 1)
    assert lz4.frame.decompress(stored) == noise and stored[10] & 0x80


def test_a_rewrite_on_bytes_keeps_the_timestamps_when_the_first_delta_is_not_zero():
    """A base timestamp below the first record's: the bytes keep it (the rebuild would re-base
    on the first record), and every record reads back with the same timestamp either way."""
    data = producer_batch([b"a", b"b", b"c"], codec=compression.CODEC_LZ4, timestamps=[NOW, NOW + 9, NOW + 4])
    data = patch_header(data, base_timestamp=NOW - 5, max_timestamp=NOW + 4)
    config = LogConfig(compression_type="zstd")

    def readable(records):
        [(batch, stored)] = read_batches(records)
        return batch.max_timestamp, [(r.offset, r.timestamp, r.value) for r in stored]

    result = validate(data, config=config)
    assert readable(result.records) == readable(rebuilt_record_by_record(data, config))
    assert readable(result.records) == (NOW + 4, [(0, NOW - 5, b"a"), (1, NOW + 4, b"b"), (2, NOW - 1, b"c")])


def test_records_out_of_order_are_renumbered_by_the_record_by_record_rebuild():
    """Inner offset deltas 0, 2, 1 (valid record count, odd order): Kafka's rebuild writes
    0, 1, 2, so the bytes cannot be kept."""
    records = [SimpleRecord(None, b"a", (), NOW), SimpleRecord(None, b"b", (), NOW), SimpleRecord(None, b"c", (), NOW)]
    data = build_batch(records, offset_deltas=[0, 2, 1], compression=compression.CODEC_LZ4, now_ms=NOW)
    config = LogConfig(compression_type="gzip")
    data = patch_header(data, last_offset_delta=2)
    result = validate(data, config=config)
    [(batch, stored)] = read_batches(result.records)
    assert [r.offset for r in stored] == [0, 1, 2] and [r.value for r in stored] == [b"a", b"b", b"c"]
    assert bytes(result.records) == rebuilt_record_by_record(data, config)


def test_produce_request_records_rule():
    one = producer_batch([b"a"])
    assert validate_produce_partition_records(9, one) == Errors.NONE
    assert validate_produce_partition_records(9, one + one) == Errors.INVALID_RECORD
    assert validate_produce_partition_records(9, b"") == Errors.INVALID_RECORD
    assert validate_produce_partition_records(9, None) == Errors.INVALID_RECORD
    zstd = producer_batch([COMPRESSIBLE] * 3, codec=compression.CODEC_ZSTD)
    assert validate_produce_partition_records(6, zstd) == Errors.UNSUPPORTED_COMPRESSION_TYPE
    assert validate_produce_partition_records(7, zstd) == Errors.NONE


def test_log_config_from_topic_overrides():
    config = LogConfig.from_topic_config(
        {
            "segment.bytes": "1048576",
            "cleanup.policy": "compact,delete",
            "message.timestamp.type": "LogAppendTime",
            "compression.type": "zstd",
            "unclean.leader.election.enable": "true",
            "min.cleanable.dirty.ratio": "0.1",
            "not.a.topic.config": "ignored",
        },
        base=LogConfig(retention_ms=1000),
    )
    assert (config.segment_bytes, config.retention_ms, config.min_cleanable_dirty_ratio) == (
        1048576,
        1000,
        0.1,
    )
    assert config.compact and config.delete and config.log_append_time
    assert config.target_codec == compression.CODEC_ZSTD and config.unclean_leader_election_enable
    assert LogConfig().target_codec is None and LogConfig().max_message_bytes == 1048588
    deprecated = LogConfig.from_topic_config({"message.timestamp.difference.max.ms": "5000"})
    assert deprecated.message_timestamp_before_max_ms == deprecated.message_timestamp_after_max_ms == 5000
    for bad in ({"segment.bytes": "lots"}, {"cleanup.policy": "shred"}, {"compression.type": "brotli"}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            LogConfig.from_topic_config(bad)
