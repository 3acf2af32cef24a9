"""Produce, Fetch, ListOffsets and InitProducerId over raw sockets against a kbroker subprocess:
every request version, the error codes Kafka answers with, acks=0, long polls, KIP-74,
LogAppendTime topics and the idempotent producer's duplicate and sequence checks.

Requests are encoded with kbroker's schema codec (kbroker.testing.raw_client.RawClient), but every
record batch is built and read with kafka-python's record classes, so the bytes that matter are
checked against an independent implementation. Expected behaviour is Apache Kafka 3.x's.
"""

from __future__ import annotations

import select
import struct
import time

import pytest

from kbroker.testing import wire
from kbroker.testing.raw_client import (
    DEFAULT_FETCH_VERSION,
    DEFAULT_PRODUCE_VERSION,
    FETCH,
    LIST_OFFSETS,
    METADATA,
    NONE,
    PRODUCE,
    RawClient,
    create_topic,
    fetch,
    fetch_body,
    init_producer_id,
    list_offset,
    produce,
    produce_body,
    raw_call,
    topic_id_of,
)
from kbroker.testing.records import batch_values, build_batch, stored_records

OFFSET_OUT_OF_RANGE = 1
CORRUPT_MESSAGE = 2
UNKNOWN_TOPIC_OR_PARTITION = 3
MESSAGE_TOO_LARGE = 10
INVALID_REQUIRED_ACKS = 21
UNSUPPORTED_VERSION = 35
OUT_OF_ORDER_SEQUENCE_NUMBER = 45
INVALID_PRODUCER_EPOCH = 47
UNKNOWN_LEADER_EPOCH = 75
UNSUPPORTED_COMPRESSION_TYPE = 76
INVALID_RECORD = 87

PRODUCE_VERSIONS = range(3, 14)
FETCH_VERSIONS = range(4, 19)
FIRST_TOPIC_ID_VERSION = 13  # Produce and Fetch name topics by id from v13
LATEST = -1
EARLIEST = -2


@pytest.fixture(scope="module")
def kbroker(module_broker_factory):
    return module_broker_factory()


def batch_attributes(records) -> int:
    """The attributes (i16 at byte 21) of the first batch in a records field."""
    return struct.unpack_from(">h", records, 21)[0]


def values(count: int, prefix: str = "v", size: int = 0) -> list[bytes]:
    return [f"{prefix}{i}".encode().ljust(size, b".") for i in range(count)]


# --- produce and fetch at every version -------------------------------------------------------


def test_every_produce_version_appends_and_every_fetch_version_reads(kbroker):
    topic = "wire-versions"
    create_topic(kbroker.port, topic)
    topic_id = topic_id_of(kbroker.port, topic)
    sent: list[bytes] = []
    with RawClient(kbroker.port) as client:
        for version in PRODUCE_VERSIONS:
            batch_values_ = values(3, prefix=f"p{version}-")
            by_id = topic_id if version >= FIRST_TOPIC_ID_VERSION else None
            answer = produce(client, topic, 0, build_batch(batch_values_), version=version, topic_id=by_id)
            assert (answer["error_code"], answer["base_offset"]) == (NONE, len(sent)), f"Produce v{version}"
            sent += batch_values_

        for version in FETCH_VERSIONS:
            by_id = topic_id if version >= FIRST_TOPIC_ID_VERSION else None
            _, answer = fetch(client, topic, 0, 0, version=version, topic_id=by_id)
            assert answer["error_code"] == NONE, f"Fetch v{version}"
            assert answer["high_watermark"] == len(sent)
            got = batch_values(answer["records"])
            assert [(o, v) for o, _, v, _ in got] == list(enumerate(sent)), f"Fetch v{version}"


def test_produce_answers_base_offset_and_log_start_offset(kbroker):
    topic = "wire-offsets"
    create_topic(kbroker.port, topic)
    with RawClient(kbroker.port) as client:
        first = produce(client, topic, 0, build_batch(values(5)))
        second = produce(client, topic, 0, build_batch(values(2), compression="gzip"))

    assert (first["base_offset"], second["base_offset"]) == (0, 5)
    assert (first["log_append_time_ms"], first["log_start_offset"]) == (-1, 0)
    assert [(o, v) for o, _, v in stored_records(kbroker.log_dir, topic, 0)] == list(
        enumerate(values(5) + values(2))
    )


def test_one_request_for_several_partitions_answers_each(kbroker):
    topic = "wire-multi"
    create_topic(kbroker.port, topic, partitions=2)
    body = {
        "acks": -1,
        "timeout_ms": 10000,
        "topic_data": [
            {
                "name": topic,
                "partition_data": [
                    {"index": 0, "records": build_batch(values(2))},
                    {"index": 1, "records": build_batch(values(3))},
                ],
            },
            {
                "name": "wire-multi-missing",
                "partition_data": [{"index": 0, "records": build_batch(values(1))}],
            },
        ],
    }
    answer = raw_call(kbroker.port, PRODUCE, DEFAULT_PRODUCE_VERSION, body)

    assert [
        (t["name"], p["index"], p["error_code"], p["base_offset"])
        for t in answer["responses"]
        for p in t["partition_responses"]
    ] == [
        (topic, 0, NONE, 0),
        (topic, 1, NONE, 0),
        ("wire-multi-missing", 0, UNKNOWN_TOPIC_OR_PARTITION, -1),
    ]


def test_a_partition_the_topic_lacks_is_unknown(kbroker):
    topic = "wire-missing-partition"
    create_topic(kbroker.port, topic, partitions=2)
    with RawClient(kbroker.port) as client:
        produced = produce(client, topic, 7, build_batch(values(1)))
        _, fetched = fetch(client, topic, 7, 0)
        listed = list_offset(client, topic, 7, LATEST)

    assert (produced["error_code"], fetched["error_code"], listed[0]) == (UNKNOWN_TOPIC_OR_PARTITION,) * 3


# --- produce errors ---------------------------------------------------------------------------


def test_acks_2_is_invalid_required_acks(kbroker):
    topic = "wire-acks2"
    create_topic(kbroker.port, topic)
    with RawClient(kbroker.port) as client:
        answer = produce(client, topic, 0, build_batch(values(1)), acks=2)
        _, fetched = fetch(client, topic, 0, 0)

    assert answer["error_code"] == INVALID_REQUIRED_ACKS
    assert fetched["high_watermark"] == 0


@pytest.mark.parametrize("position", [-1, 21, 60], ids=["last-record-byte", "attributes", "record-count"])
def test_a_flipped_byte_is_corrupt_message(kbroker, position):
    topic = f"wire-corrupt-{position}"
    create_topic(kbroker.port, topic)
    batch = bytearray(build_batch(values(4)))
    batch[position] ^= 0x01
    with RawClient(kbroker.port) as client:
        answer = produce(client, topic, 0, bytes(batch))
        _, fetched = fetch(client, topic, 0, 0)

    assert answer["error_code"] == CORRUPT_MESSAGE
    assert fetched["high_watermark"] == 0


def test_batch_above_max_message_bytes_is_too_large(kbroker):
    topic = "wire-too-large"
    create_topic(kbroker.port, topic, configs={"max.message.bytes": "1000"})
    small = build_batch([b"x" * 800])
    large = build_batch([b"x" * 1000])
    assert len(small) <= 1000 < len(large)
    with RawClient(kbroker.port) as client:
        too_large = produce(client, topic, 0, large)
        fits = produce(client, topic, 0, small)

    assert too_large["error_code"] == MESSAGE_TOO_LARGE
    assert (fits["error_code"], fits["base_offset"]) == (NONE, 0)


def test_two_batches_in_one_partition_are_an_invalid_record(kbroker):
    topic = "wire-two-batches"
    create_topic(kbroker.port, topic)
    with RawClient(kbroker.port) as client:
        answer = produce(client, topic, 0, build_batch(values(2)) + build_batch(values(2)))
        _, fetched = fetch(client, topic, 0, 0)

    assert answer["error_code"] == INVALID_RECORD
    assert fetched["high_watermark"] == 0


def test_null_records_are_an_invalid_record(kbroker):
    # Kafka's ProduceRequest.validateRecords: from v3 a partition carries exactly one batch.
    topic = "wire-null-records"
    create_topic(kbroker.port, topic)
    with RawClient(kbroker.port) as client:
        answer = produce(client, topic, 0, None)
        _, fetched = fetch(client, topic, 0, 0)

    assert answer["error_code"] == INVALID_RECORD
    assert fetched["high_watermark"] == 0


def test_a_client_base_offset_other_than_zero_is_an_invalid_record(kbroker):
    topic = "wire-base-offset"
    create_topic(kbroker.port, topic)
    with RawClient(kbroker.port) as client:
        answer = produce(client, topic, 0, build_batch(values(2), base_offset=5))

    assert answer["error_code"] == INVALID_RECORD


def test_zstd_before_produce_v7_is_unsupported(kbroker):
    topic = "wire-zstd-v6"
    create_topic(kbroker.port, topic)
    with RawClient(kbroker.port) as client:
        # Values that compress: kafka-python's builder leaves a batch uncompressed otherwise.
        batch = build_batch(values(20, size=100), compression="zstd")
        assert batch_attributes(batch) & 0x07 == 4
        old = produce(client, topic, 0, batch, version=6)
        new = produce(client, topic, 0, batch, version=7)

    assert old["error_code"] == UNSUPPORTED_COMPRESSION_TYPE
    assert (new["error_code"], new["base_offset"]) == (NONE, 0)


def test_produce_never_creates_a_topic(kbroker):
    """Kafka creates topics from Metadata requests only, even with auto.create.topics.enable."""
    with RawClient(kbroker.port) as client:
        answer = produce(client, "wire-produce-no-create", 0, build_batch(values(1)))
        metadata = client.call(
            METADATA, 12, {"topics": [{"name": "wire-produce-no-create"}], "allow_auto_topic_creation": False}
        )

    assert answer["error_code"] == UNKNOWN_TOPIC_OR_PARTITION
    assert metadata["topics"][0]["error_code"] == UNKNOWN_TOPIC_OR_PARTITION


def test_unknown_topic_with_auto_create_off(broker_factory):
    kbroker = broker_factory("auto.create.topics.enable=false")
    with RawClient(kbroker.port) as client:
        metadata = client.call(
            METADATA, 12, {"topics": [{"name": "wire-missing"}], "allow_auto_topic_creation": True}
        )
        produced = produce(client, "wire-missing", 0, build_batch(values(1)))
        _, fetched = fetch(client, "wire-missing", 0, 0)
        listed = list_offset(client, "wire-missing", 0, LATEST)

    assert metadata["topics"][0]["error_code"] == UNKNOWN_TOPIC_OR_PARTITION
    assert produced["error_code"] == UNKNOWN_TOPIC_OR_PARTITION
    assert fetched["error_code"] == UNKNOWN_TOPIC_OR_PARTITION
    assert listed[0] == UNKNOWN_TOPIC_OR_PARTITION


# --- acks=0 and connection handling -----------------------------------------------------------


def test_acks_0_gets_no_answer(kbroker):
    topic = "wire-acks0"
    create_topic(kbroker.port, topic)
    with RawClient(kbroker.port) as client:
        client.send(PRODUCE, DEFAULT_PRODUCE_VERSION, produce_body(topic, 0, build_batch(values(3)), acks=0))
        # The next answer on the connection is the Fetch's: the produce got none.
        _, fetched = fetch(client, topic, 0, 0)

    assert [v for _, _, v, _ in batch_values(fetched["records"])] == values(3)


def test_acks_0_with_an_error_closes_the_connection(kbroker):
    topic = "wire-acks0-error"
    create_topic(kbroker.port, topic)
    with RawClient(kbroker.port) as client:
        client.send(PRODUCE, DEFAULT_PRODUCE_VERSION, produce_body(topic, 3, build_batch(values(1)), acks=0))
        assert wire.wait_closed(client.sock) == b""


def test_produce_v0_to_v2_are_served_as_advertised(kbroker):
    """Old message formats (tests/test_old_message_formats_wire.py): an empty Produce v0-2 is answered."""
    payload = wire.roundtrip(kbroker.port, wire.api_versions_request(5, version=3, software=("t", "1")))
    assert wire.parse_api_versions(payload, 3).api_keys[PRODUCE] == (0, 13)
    for version in (0, 1, 2):
        answer = raw_call(kbroker.port, PRODUCE, version, {"acks": 1, "timeout_ms": 10000, "topic_data": []})
        assert answer["responses"] == []


# --- fetch ------------------------------------------------------------------------------------


def test_fetch_outside_the_log_is_offset_out_of_range(kbroker):
    topic = "wire-out-of-range"
    create_topic(kbroker.port, topic)
    with RawClient(kbroker.port) as client:
        produce(client, topic, 0, build_batch(values(4)))
        _, at_end = fetch(client, topic, 0, 4)
        _, past_end = fetch(client, topic, 0, 5)
        _, negative = fetch(client, topic, 0, -1)

    assert (at_end["error_code"], batch_values(at_end["records"])) == (NONE, [])
    assert past_end["error_code"] == OFFSET_OUT_OF_RANGE
    assert negative["error_code"] == OFFSET_OUT_OF_RANGE


def test_first_batch_is_returned_whole_even_above_the_limits(kbroker):
    """KIP-74: partition_max_bytes and max_bytes never stop the first batch."""
    topic = "wire-kip74"
    create_topic(kbroker.port, topic)
    first = build_batch([b"a" * 3000, b"b" * 3000])
    with RawClient(kbroker.port) as client:
        produce(client, topic, 0, first)
        produce(client, topic, 0, build_batch([b"c" * 3000]))
        _, by_partition_limit = fetch(client, topic, 0, 0, partition_max_bytes=100)
        _, by_response_limit = fetch(client, topic, 0, 0, max_bytes=100)
        _, both = fetch(client, topic, 0, 0)

    for limited in (by_partition_limit, by_response_limit):
        assert [v for _, _, v, _ in batch_values(limited["records"])] == [b"a" * 3000, b"b" * 3000]
    assert [v for _, _, v, _ in batch_values(both["records"])] == [b"a" * 3000, b"b" * 3000, b"c" * 3000]


# Far longer than the waiting client's socket timeout: a fetch that is answered at all was woken
# by the record, since its max wait cannot have run out first.
LONG_POLL_MAX_WAIT_MS = 120_000
LONG_POLL_CLIENT_TIMEOUT_S = 30.0


def answer_pending(sock) -> bool:
    """Whether bytes are waiting to be read on the socket right now (no waiting for them)."""
    readable, _, _ = select.select([sock], [], [], 0)
    return bool(readable)


def test_long_poll_returns_as_soon_as_a_record_arrives(kbroker):
    topic = "wire-long-poll"
    create_topic(kbroker.port, topic)
    with RawClient(kbroker.port, timeout=LONG_POLL_CLIENT_TIMEOUT_S) as waiter, RawClient(kbroker.port) as producer:
        body = fetch_body(topic, 0, 0, max_wait_ms=LONG_POLL_MAX_WAIT_MS, min_bytes=1)
        waiter.send(FETCH, DEFAULT_FETCH_VERSION, body)
        # A round trip on the other connection: the log is still empty, and the fetch unanswered.
        assert list_offset(producer, topic, 0, -1) == (NONE, 0)
        assert not answer_pending(waiter.sock), "the fetch answered before any record arrived"
        produce(producer, topic, 0, build_batch([b"wake up"]))
        _, answer = waiter.receive(FETCH, DEFAULT_FETCH_VERSION)

    [partition] = answer["responses"][0]["partitions"]
    assert [v for _, _, v, _ in batch_values(partition["records"])] == [b"wake up"]


def test_long_poll_without_data_answers_empty_at_max_wait(kbroker):
    topic = "wire-long-poll-empty"
    create_topic(kbroker.port, topic)
    with RawClient(kbroker.port) as client:
        _, answer = fetch(client, topic, 0, 0, max_wait_ms=600, min_bytes=1)

    assert (answer["error_code"], answer["high_watermark"], batch_values(answer["records"])) == (NONE, 0, [])


def test_zstd_topic_refuses_fetch_before_v10(kbroker):
    """Kafka answers UNSUPPORTED_COMPRESSION_TYPE to Fetch v0-9 on a compression.type=zstd topic."""
    topic = "wire-zstd-topic"
    create_topic(kbroker.port, topic, configs={"compression.type": "zstd"})
    with RawClient(kbroker.port) as client:
        produce(client, topic, 0, build_batch(values(3)))
        _, old = fetch(client, topic, 0, 0, version=9)
        _, new = fetch(client, topic, 0, 0, version=10)

    assert old["error_code"] == UNSUPPORTED_COMPRESSION_TYPE
    assert [v for _, _, v, _ in batch_values(new["records"])] == values(3)


def test_topic_compression_type_recompresses_the_batch(kbroker):
    topic = "wire-recompress"
    create_topic(kbroker.port, topic, configs={"compression.type": "gzip"})
    with RawClient(kbroker.port) as client:
        produce(client, topic, 0, build_batch(values(20, size=50)))
        _, fetched = fetch(client, topic, 0, 0)

    assert [v for _, _, v, _ in batch_values(fetched["records"])] == values(20, size=50)
    assert batch_attributes(fetched["records"]) & 0x07 == 1  # the stored batch is gzip now


# --- timestamps -------------------------------------------------------------------------------


def test_log_append_time_topic_stamps_the_broker_time(kbroker):
    topic = "wire-log-append-time"
    create_topic(kbroker.port, topic, configs={"message.timestamp.type": "LogAppendTime"})
    old_timestamps = [1_000_000, 1_000_001, 1_000_002]
    before = int(time.time() * 1000)
    with RawClient(kbroker.port) as client:
        answer = produce(client, topic, 0, build_batch(values(3), timestamps=old_timestamps))
        after = int(time.time() * 1000)
        _, fetched = fetch(client, topic, 0, 0)
        by_time = list_offset(client, topic, 0, before - 1)

    stamped = answer["log_append_time_ms"]
    assert before <= stamped <= after
    assert batch_attributes(fetched["records"]) & 0x08, "the batch is not marked LogAppendTime"
    assert [t for _, _, _, t in batch_values(fetched["records"])] == [stamped] * 3
    assert by_time == (NONE, 0)


def test_list_offsets_by_time_earliest_latest_and_max_timestamp(kbroker):
    topic = "wire-list-offsets"
    create_topic(kbroker.port, topic)
    base = int(time.time() * 1000) - 60_000
    with RawClient(kbroker.port) as client:
        produce(client, topic, 0, build_batch(values(3), timestamps=[base, base + 10, base + 20]))
        produce(client, topic, 0, build_batch(values(3), timestamps=[base + 30, base + 90, base + 40]))
        found = {
            ts: list_offset(client, topic, 0, ts)
            for ts in (base - 1, base, base + 5, base + 25, base + 90, base + 91, EARLIEST, LATEST, -3)
        }
        v0 = client.call(
            LIST_OFFSETS,
            0,
            {
                "replica_id": -1,
                "topics": [
                    {
                        "name": topic,
                        "partitions": [{"partition_index": 0, "timestamp": LATEST, "max_num_offsets": 1}],
                    }
                ],
            },
        )

    assert found == {
        base - 1: (NONE, 0),
        base: (NONE, 0),
        base + 5: (NONE, 1),
        base + 25: (NONE, 3),
        base + 90: (NONE, 4),
        base + 91: (NONE, -1),
        EARLIEST: (NONE, 0),
        LATEST: (NONE, 6),
        -3: (NONE, 4),  # MAX_TIMESTAMP: the record holding the largest timestamp
    }
    assert v0["topics"][0]["partitions"][0]["old_style_offsets"] == [6]


def test_list_offsets_tiered_storage_timestamps_without_tiered_storage(kbroker):
    """-4 earliest local is the log start; -5 latest tiered (v9) and -6 earliest pending upload
    (v11, KIP-1023) are -1, as Kafka's UnifiedLog answers when remote storage is off (a -6 used
    to be searched as a timestamp, finding the first record)."""
    topic = "wire-list-offsets-tiered"
    create_topic(kbroker.port, topic)
    with RawClient(kbroker.port) as client:
        produce(client, topic, 0, build_batch(values(3)))
        found = {(ts, version): list_offset(client, topic, 0, ts, version)
                 for ts, version in ((-4, 8), (-5, 9), (-5, 11), (-6, 11))}
    assert found == {(-4, 8): (NONE, 0), (-5, 9): (NONE, -1), (-5, 11): (NONE, -1), (-6, 11): (NONE, -1)}


def test_list_offsets_max_timestamp_before_v7_answers_leadership_errors_first(kbroker):
    topic = "wire-list-offsets-v6"
    create_topic(kbroker.port, topic)

    def max_timestamp_v6(client: RawClient, current_leader_epoch: int) -> int:
        partition = {"partition_index": 0, "current_leader_epoch": current_leader_epoch, "timestamp": -3}
        answer = client.call(LIST_OFFSETS, 6, {"replica_id": -1, "isolation_level": 0,
                                               "topics": [{"name": topic, "partitions": [partition]}]})
        return answer["topics"][0]["partitions"][0]["error_code"]

    with RawClient(kbroker.port) as client:
        assert max_timestamp_v6(client, 99) == UNKNOWN_LEADER_EPOCH
        assert max_timestamp_v6(client, -1) == UNSUPPORTED_VERSION


# --- idempotent producer ----------------------------------------------------------------------


def idempotent_batch(pid: int, epoch: int, sequence: int, count: int = 3) -> bytes:
    return build_batch(
        values(count, prefix=f"e{epoch}s{sequence}-"),
        producer_id=pid,
        producer_epoch=epoch,
        base_sequence=sequence,
    )


def test_init_producer_id_hands_out_distinct_ids(kbroker):
    with RawClient(kbroker.port) as client:
        first, second = init_producer_id(client), init_producer_id(client)

    assert first[1] == second[1] == 0
    assert first[0] >= 0 and second[0] >= 0 and first[0] != second[0]


def test_a_retried_batch_is_not_appended_twice(kbroker):
    topic = "wire-idempotent"
    create_topic(kbroker.port, topic)
    with RawClient(kbroker.port) as client:
        pid, epoch = init_producer_id(client)
        batches = [idempotent_batch(pid, epoch, sequence) for sequence in (0, 3, 6)]
        first = [produce(client, topic, 0, batch) for batch in batches]
        retried_last = produce(client, topic, 0, batches[2])
        retried_first = produce(client, topic, 0, batches[0])  # still among the last 5 batches
        _, fetched = fetch(client, topic, 0, 0)

    assert [(a["error_code"], a["base_offset"]) for a in first] == [(NONE, 0), (NONE, 3), (NONE, 6)]
    assert (retried_last["error_code"], retried_last["base_offset"]) == (NONE, 6)
    assert (retried_first["error_code"], retried_first["base_offset"]) == (NONE, 0)
    assert fetched["high_watermark"] == 9
    assert [o for o, *_ in batch_values(fetched["records"])] == list(range(9))


def test_a_sequence_gap_is_out_of_order(kbroker):
    topic = "wire-sequence-gap"
    create_topic(kbroker.port, topic)
    with RawClient(kbroker.port) as client:
        pid, epoch = init_producer_id(client)
        produce(client, topic, 0, idempotent_batch(pid, epoch, 0))
        gap = produce(client, topic, 0, idempotent_batch(pid, epoch, 5))
        next_in_line = produce(client, topic, 0, idempotent_batch(pid, epoch, 3))

    assert gap["error_code"] == OUT_OF_ORDER_SEQUENCE_NUMBER
    assert (next_in_line["error_code"], next_in_line["base_offset"]) == (NONE, 3)


def test_an_older_epoch_is_fenced_and_a_new_epoch_starts_at_zero(kbroker):
    topic = "wire-epochs"
    create_topic(kbroker.port, topic)
    with RawClient(kbroker.port) as client:
        pid, epoch = init_producer_id(client)
        produce(client, topic, 0, idempotent_batch(pid, epoch, 0))
        bumped_mid_sequence = produce(client, topic, 0, idempotent_batch(pid, epoch + 1, 3))
        bumped = produce(client, topic, 0, idempotent_batch(pid, epoch + 1, 0))
        stale = produce(client, topic, 0, idempotent_batch(pid, epoch, 3))
        _, fetched = fetch(client, topic, 0, 0)

    assert bumped_mid_sequence["error_code"] == OUT_OF_ORDER_SEQUENCE_NUMBER
    assert (bumped["error_code"], bumped["base_offset"]) == (NONE, 3)
    assert stale["error_code"] == INVALID_PRODUCER_EPOCH
    assert fetched["high_watermark"] == 6
