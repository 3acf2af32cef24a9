"""Message formats v0/v1 over raw sockets against a kbroker subprocess: Produce v0-2's message
sets, Fetch v0-3's down-conversion, ListOffsets v0, and every advertised version of the data-path
APIs answering. Message sets are built and read with kafka-python's legacy record classes, an
independent implementation. Expected behaviour is Apache Kafka 3.9's (message format v2 on disk).
"""

from __future__ import annotations

import time

import pytest
from kafka.record.legacy_records import LegacyRecordBatchBuilder
from kafka.record.memory_records import MemoryRecords

from kbroker.protocol.messages import request_codec
from kbroker.testing import wire
from kbroker.testing.raw_client import (
    FETCH,
    LIST_OFFSETS,
    NONE,
    PRODUCE,
    RawClient,
    advertised_api_keys,
    create_topic,
    fetch,
    produce,
    raw_call,
)
from kbroker.testing.records import batch_values, build_batch

CORRUPT_MESSAGE = 2
MESSAGE_TOO_LARGE = 10
UNSUPPORTED_VERSION = 35
INVALID_RECORD = 87
GZIP, SNAPPY, LZ4 = 1, 2, 3
# Recent timestamps: ones older than segment.ms would roll a segment at each append (as in Kafka).
NOW = int(time.time() * 1000) - 60_000


@pytest.fixture(scope="module")
def kbroker(module_broker_factory):
    return module_broker_factory()


def message_set(magic: int, entries: list[tuple[bytes | None, bytes | None]], codec: int = 0,
                timestamp: int = NOW) -> bytes:
    builder = LegacyRecordBatchBuilder(magic, codec, 1 << 20)
    for offset, (key, value) in enumerate(entries):
        builder.append(offset, timestamp + offset if magic else None, key, value)
    return bytes(builder.build())


def read_messages(records) -> list[tuple[int, int, int | None, bytes | None, bytes | None]]:
    """(offset, magic, timestamp, key, value) of each complete message, read by kafka-python."""
    data = MemoryRecords(bytes(records or b""))
    out = []
    while data.has_next():
        batch = data.next_batch()
        out.extend((r.offset, batch.magic, r.timestamp, r.key, r.value) for r in batch)
    return out


def entries(prefix: str, count: int = 3) -> list[tuple[bytes | None, bytes | None]]:
    return [(f"{prefix}k{i}".encode() if i % 2 == 0 else None, f"{prefix}v{i}".encode()) for i in range(count)]


# --- produce v0-2 and fetch v0-3 ------------------------------------------------------------


@pytest.mark.parametrize("codec", [0, GZIP, SNAPPY, LZ4])
def test_old_produce_versions_append_and_every_fetch_version_reads(kbroker, codec):
    topic = f"old-formats-{codec}"
    create_topic(kbroker.port, topic)
    sent: list[tuple[int, int | None, bytes | None, bytes | None]] = []  # offset, timestamp, key, value
    with RawClient(kbroker.port) as client:
        for version, magic in ((0, 0), (1, 0), (2, 1)):
            batch = entries(f"p{version}-")
            answer = produce(client, topic, 0, message_set(magic, batch, codec), version=version)
            assert (answer["error_code"], answer["base_offset"]) == (NONE, len(sent)), f"Produce v{version}"
            for i, (key, value) in enumerate(batch):
                sent.append((len(sent), NOW + i if magic else None, key, value))
        modern = build_batch([b"m0", b"m1"])
        assert produce(client, topic, 0, modern)["error_code"] == NONE
        modern_values = [(o, v) for o, _, v, _ in batch_values(modern)]
        for version in range(4):
            got = read_from(client, topic, version)
            magic = 0 if version <= 1 else 1
            assert {m for _, m, *_ in got} == {magic}, f"Fetch v{version}"
            assert [(o, k, v) for o, _, _, k, v in got[: len(sent)]] == [(o, k, v) for o, _, k, v in sent]
            assert [(o - len(sent), v) for o, _, _, _, v in got[len(sent):]] == modern_values
            if magic == 1:  # magic 0 messages were stored without a timestamp (-1), v1 reads them so
                assert [t for _, _, t, _, _ in got[: len(sent)]] == [t if t is not None else -1 for _, t, _, _ in sent]
        # a modern fetch reads the up-converted batches as v2
        _, answer = fetch(client, topic, 0, 0)
        assert [v for _, _, v, _ in batch_values(answer["records"])] == [v for *_, v in sent] + [b"m0", b"m1"]


def test_produce_v2_answers_the_log_append_time(kbroker):
    topic = "old-formats-append-time"
    create_topic(kbroker.port, topic, configs={"message.timestamp.type": "LogAppendTime"})
    with RawClient(kbroker.port) as client:
        answer = produce(client, topic, 0, message_set(1, entries("t")), version=2)
        _, fetched = fetch(client, topic, 0, 0, version=2)
    assert answer["error_code"] == NONE and answer["log_append_time_ms"] > NOW
    assert {t for _, _, t, _, _ in read_messages(fetched["records"])} == {answer["log_append_time_ms"]}


def test_a_bad_crc_in_a_v0_message_set_is_corrupt_message(kbroker):
    topic = "old-formats-crc"
    create_topic(kbroker.port, topic)
    data = bytearray(message_set(0, entries("c")))
    data[-1] ^= 1
    with RawClient(kbroker.port) as client:
        answer = produce(client, topic, 0, bytes(data), version=0)
        _, fetched = fetch(client, topic, 0, 0, version=0)
    assert answer["error_code"] == CORRUPT_MESSAGE
    assert fetched["high_watermark"] == 0


def test_mixed_magics_in_a_message_set_are_an_invalid_record(kbroker):
    topic = "old-formats-magic"
    create_topic(kbroker.port, topic)
    data = message_set(0, entries("a", 1)) + message_set(1, entries("b", 1))
    with RawClient(kbroker.port) as client:
        assert produce(client, topic, 0, data, version=1)["error_code"] == INVALID_RECORD
        # a v2 batch in Produce v3+ is still the only thing v3+ takes
        assert produce(client, topic, 0, message_set(1, entries("c")), version=3)["error_code"] == INVALID_RECORD


def test_a_message_above_max_message_bytes_is_too_large(kbroker):
    topic = "old-formats-large"
    create_topic(kbroker.port, topic, configs={"max.message.bytes": "1000"})
    with RawClient(kbroker.port) as client:
        answer = produce(client, topic, 0, message_set(1, [(None, b"x" * 2000)]), version=2)
    assert answer["error_code"] == MESSAGE_TOO_LARGE


# --- fetch limits and settings --------------------------------------------------------------


def read_from(client: RawClient, topic: str, version: int, start: int = 0) -> list[tuple]:
    """Every message from `start` to the high watermark at one Fetch version, fetching on from
    the last message read as an old client does (a down-converted answer may end early)."""
    got: list[tuple] = []
    offset = start
    while True:
        _, answer = fetch(client, topic, 0, offset, version=version)
        assert answer["error_code"] == NONE, answer
        fresh = [m for m in read_messages(answer["records"]) if m[0] >= offset]
        got += fresh
        if not fresh or fresh[-1][0] + 1 >= answer["high_watermark"]:
            return got
        offset = fresh[-1][0] + 1


def fill(client: RawClient, topic: str, batches: int, size: int) -> None:
    for i in range(batches):
        assert produce(client, topic, 0, build_batch([f"{i}".encode() * size]))["error_code"] == NONE


def test_fetch_v3_honours_max_bytes_past_the_first_batch(kbroker):
    topic = "old-formats-max-bytes"
    create_topic(kbroker.port, topic)
    with RawClient(kbroker.port) as client:
        fill(client, topic, 5, 1000)
        _, small = fetch(client, topic, 0, 0, version=3, max_bytes=10)
        _, two = fetch(client, topic, 0, 0, version=3, max_bytes=2300)
        _, everything = fetch(client, topic, 0, 0, version=3)
    assert [o for o, *_ in read_messages(small["records"])] == [0]  # KIP-74: the first whole
    assert [o for o, *_ in read_messages(two["records"])] == [0, 1]
    assert len(two["records"]) <= 2300
    assert [o for o, *_ in read_messages(everything["records"])] == [0, 1, 2, 3, 4]


def test_fetch_v2_never_sends_a_batch_above_the_partition_limit(kbroker):
    """Before KIP-74 (v0-2) the limits are hard: a first batch larger than them is not sent."""
    topic = "old-formats-hard-limit"
    create_topic(kbroker.port, topic)
    with RawClient(kbroker.port) as client:
        fill(client, topic, 2, 1000)
        _, too_small = fetch(client, topic, 0, 0, version=2, partition_max_bytes=500)
        _, one = fetch(client, topic, 0, 0, version=2, partition_max_bytes=1500)
    assert too_small["error_code"] == NONE and read_messages(too_small["records"]) == []
    assert [o for o, *_ in read_messages(one["records"])] == [0]


def test_down_conversion_disabled_answers_unsupported_version(kbroker):
    topic = "old-formats-no-down-conversion"
    create_topic(kbroker.port, topic, configs={"message.downconversion.enable": "false"})
    with RawClient(kbroker.port) as client:
        fill(client, topic, 1, 10)
        _, old = fetch(client, topic, 0, 0, version=3)
        _, new = fetch(client, topic, 0, 0, version=4)
    assert old["error_code"] == UNSUPPORTED_VERSION
    assert new["error_code"] == NONE and len(batch_values(new["records"])) == 1


def test_broker_wide_down_conversion_off_yields_to_a_topic_override(broker_factory):
    broker = broker_factory("log.message.downconversion.enable=false")
    create_topic(broker.port, "off")
    create_topic(broker.port, "on", configs={"message.downconversion.enable": "true"})
    with RawClient(broker.port) as client:
        for topic in ("off", "on"):
            fill(client, topic, 1, 10)
        _, off = fetch(client, "off", 0, 0, version=1)
        _, on = fetch(client, "on", 0, 0, version=1)
    assert off["error_code"] == UNSUPPORTED_VERSION
    assert on["error_code"] == NONE and len(read_messages(on["records"])) == 1


def test_fetch_from_the_middle_of_an_uncompressed_batch_skips_earlier_records(kbroker):
    topic = "old-formats-middle"
    create_topic(kbroker.port, topic)
    with RawClient(kbroker.port) as client:
        produce(client, topic, 0, build_batch([b"a", b"b", b"c"]))
        _, answer = fetch(client, topic, 0, 1, version=1)
    assert [(o, v) for o, _, _, _, v in read_messages(answer["records"])] == [(1, b"b"), (2, b"c")]


# --- ListOffsets v0 -------------------------------------------------------------------------


def old_style_offsets(client: RawClient, topic: str, timestamp: int, max_num_offsets: int) -> list[int]:
    answer = client.call(LIST_OFFSETS, 0, {"replica_id": -1, "topics": [{"name": topic, "partitions": [
        {"partition_index": 0, "timestamp": timestamp, "max_num_offsets": max_num_offsets}]}]})
    [entry] = answer["topics"][0]["partitions"]
    assert entry["error_code"] == NONE, entry
    return entry["old_style_offsets"]


def test_list_offsets_v0_lists_segment_offsets_newest_first(kbroker):
    topic = "old-formats-offsets"
    create_topic(kbroker.port, topic, configs={"segment.bytes": "1100"})
    with RawClient(kbroker.port) as client:
        fill(client, topic, 3, 1000)  # one batch per segment: segments at 0, 1, 2, log end 3
        latest = old_style_offsets(client, topic, -1, 10)
        latest_one = old_style_offsets(client, topic, -1, 1)
        earliest = old_style_offsets(client, topic, -2, 10)
        before_all = old_style_offsets(client, topic, 0, 10)
    assert latest == [3, 2, 1, 0]
    assert latest_one == [3]
    assert earliest == [0]
    assert before_all == []


# --- every advertised version answers -------------------------------------------------------

# Client-facing APIs; the inter-broker ones (LeaderAndIsr, StopReplica, UpdateMetadata,
# ControlledShutdown, AlterPartition) would change the broker's state and are tested elsewhere.
INTER_BROKER_APIS = {4, 5, 6, 7, 56, 67}
# The smallest request that must be answered: the schema defaults, except acks=0 (no answer).
# DescribeAcls' filter must not name UNKNOWN (0), which Kafka cannot parse: ANY (1) instead.
OVERRIDES = {PRODUCE: {"acks": 1}, FETCH: {"max_wait_ms": 0},
             29: {"resource_type_filter": 1, "pattern_type_filter": 1, "operation": 1, "permission_type": 1}}


def test_every_advertised_version_of_every_client_api_answers(kbroker):
    advertised = advertised_api_keys(kbroker.port)
    assert advertised[PRODUCE] == (0, 13) and advertised[FETCH] == (0, 18) and advertised[LIST_OFFSETS][0] == 0
    unanswered = []
    with RawClient(kbroker.port) as client:
        for api_key, (low, high) in sorted(advertised.items()):
            if api_key in INTER_BROKER_APIS:
                continue
            for version in range(low, high + 1):
                body = dict(OVERRIDES.get(api_key, {}))
                try:
                    request_codec(api_key, version).encode(body)  # the schema defaults fill the rest
                    client.call(api_key, version, body)
                except (wire.ConnectionClosed, OSError) as exc:
                    unanswered.append((api_key, version, repr(exc)))
                    client.close()
                    client = RawClient(kbroker.port)
    assert unanswered == []


# --- message format versions ----------------------------------------------------------------

INVALID_CONFIG = 40


def test_topic_message_format_before_v2_is_refused_below_ibp_3_0(broker_factory):
    """Below inter.broker.protocol.version 3.0 Kafka would store magic 0/1 for such a topic;
    kbroker stores v2 only, so it refuses rather than ignores the setting. From 3.0 Kafka ignores it."""
    old_ibp = broker_factory("inter.broker.protocol.version=2.8")
    new_ibp = broker_factory()
    for broker, expected in ((old_ibp, INVALID_CONFIG), (new_ibp, NONE)):
        answer = raw_call(broker.port, 19, 7, {"topics": [{
            "name": "old-format", "num_partitions": 1, "replication_factor": 1,
            "configs": [{"name": "message.format.version", "value": "0.10.2"}]}], "timeout_ms": 10000})
        assert answer["topics"][0]["error_code"] == expected, answer
    create_topic(old_ibp.port, "new-format")
    answer = raw_call(old_ibp.port, 33, 1, {"resources": [{
        "resource_type": 2, "resource_name": "new-format",
        "configs": [{"name": "message.format.version", "value": "0.9.0"}]}], "validate_only": False})
    assert answer["responses"][0]["error_code"] == INVALID_CONFIG, answer
