"""Helpers shared by the data-path tests (compat-tests/test_data_path_*.py and tests/test_produce_fetch_wire.py,
test_crash_recovery.py, test_topics_admin.py). It holds no tests of its own.

- `sample_records`: a deterministic data set with keys, null keys, null values, empty values,
  binary and larger values and headers, spread over partitions with increasing timestamps, so
  a test knows exactly which offset each record must get and which offset a timestamp maps to;
- `stored_batches`: the record batches of a partition as they lie in the broker's segment files,
  parsed and CRC-checked with kafka-python's reader (an oracle independent of kbroker);
- `RawClient`: one socket speaking Kafka requests encoded with kbroker's schema codec, for
  tests that need exact request fields (acks, sequence numbers, session ids) no client exposes;
- `build_batch`: a v2 record batch written with kafka-python's builder;
- `create_topic`, `produce`, `fetch`, `list_offset`, `read_partition`: one-partition requests
  over a RawClient, for the raw-wire, crash and admin tests.

Must not start or stop brokers (the fixtures do) and must not write to the broker's data dir.
"""

from __future__ import annotations

import random
import struct
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest
from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder
from support import wire

from kbroker.protocol.messages import is_flexible, request_codec, response_codec

PRODUCE = 0
FETCH = 1
LIST_OFFSETS = 2
METADATA = 3
FIND_COORDINATOR = 10
CREATE_TOPICS = 19
INIT_PRODUCER_ID = 22
DEFAULT_PRODUCE_VERSION = 9
DEFAULT_FETCH_VERSION = 12
NONE = 0
MIB = 1024 * 1024

CODEC_IDS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
CODEC_NAMES = {value: name for name, value in CODEC_IDS.items()}
# Timestamps start an hour ago: older ones would fall to the default retention.ms (7 days), which
# Kafka applies to the records' own timestamps, and newer ones could be in the future.
TIMESTAMP_LEAD_MS = 3600 * 1000
TIMESTAMP_STEP_MS = 10


# --- the data set ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SampleRecord:
    index: int  # position in the produce order over all partitions
    partition: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    timestamp: int

    def comparable(self, *, with_timestamp: bool = True) -> tuple:
        """The fields a consumer gets back, as one tuple for list comparison."""
        base = (self.key, self.value, self.headers)
        return (*base, self.timestamp) if with_timestamp else base


def now_ms() -> int:
    return int(time.time() * 1000)


def _payload(rng: random.Random, index: int, text: bool) -> bytes:
    """Values of varied sizes; text mode keeps to printable ASCII without separators (kcat)."""
    size = rng.choice((0, 1, 8, 60, 300, 2000)) if not text else rng.choice((1, 8, 60, 300))
    if text:
        alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_."
        return (f"v{index}-" + "".join(rng.choice(alphabet) for _ in range(size))).encode()
    return rng.randbytes(size)


def sample_records(
    count: int,
    partitions: int,
    *,
    seed: int,
    text: bool = False,
    headers: bool = True,
    null_values: bool = True,
    base_timestamp: int | None = None,
) -> list[SampleRecord]:
    """`count` records; record i goes to partition i % partitions with timestamp base + i*step.

    Every 7th record has a null key, about every 11th (when `null_values`) a null value; records
    carry 0-2 headers (a repeated header name included) when `headers` is on.
    """
    rng = random.Random(seed)
    if base_timestamp is None:
        base_timestamp = now_ms() - TIMESTAMP_LEAD_MS
    records = []
    for i in range(count):
        key = (
            None
            if i % 7 == 3
            else (f"key-{i}".encode() if text else b"k" + rng.randbytes(rng.randint(0, 12)))
        )
        # Never both null: some clients refuse a record with neither key nor value.
        value = None if null_values and i % 11 == 5 and key is not None else _payload(rng, i, text)
        record_headers: tuple[tuple[str, bytes], ...] = ()
        if headers and i % 3:
            record_headers = (("trace", f"t{i}".encode()),)
            if i % 3 == 2:
                record_headers += (("trace", b""), ("bin", rng.randbytes(4)))
        records.append(
            SampleRecord(
                i, i % partitions, key, value, record_headers, base_timestamp + i * TIMESTAMP_STEP_MS
            )
        )
    return records


def by_partition(records: list[SampleRecord]) -> dict[int, list[SampleRecord]]:
    grouped: dict[int, list[SampleRecord]] = defaultdict(list)
    for record in records:
        grouped[record.partition].append(record)
    return dict(grouped)


def expected_lists(records: list[SampleRecord], *, with_timestamp: bool = True) -> dict[int, list[tuple]]:
    """partition -> the records' comparable tuples in the order they were produced."""
    return {
        partition: [r.comparable(with_timestamp=with_timestamp) for r in rs]
        for partition, rs in by_partition(records).items()
    }


def first_offset_at_or_after(records: list[SampleRecord], partition: int, timestamp: int) -> int:
    """The offset a ListOffsets by `timestamp` must answer, given offsets start at 0 per partition."""
    for offset, record in enumerate(by_partition(records)[partition]):
        if record.timestamp >= timestamp:
            return offset
    return -1


# --- what lies on disk -----------------------------------------------------------------------


def partition_dir(log_dir: Path, topic: str, partition: int) -> Path:
    return Path(log_dir) / f"{topic}-{partition}"


def segment_files(log_dir: Path, topic: str, partition: int, suffix: str = ".log") -> list[Path]:
    return sorted(partition_dir(log_dir, topic, partition).glob(f"*{suffix}"))


def stored_batches(log_dir: Path, topic: str, partition: int) -> list[DefaultRecordBatch]:
    """Every v2 batch in the partition's .log files, in offset order; asserts each CRC is valid.

    Reads the files as they are (the broker's page cache is shared), without any kbroker code.
    """
    batches = []
    for path in segment_files(log_dir, topic, partition):
        data = path.read_bytes()
        position = 0
        while position + 12 <= len(data):
            base_offset, length = struct.unpack_from(">qi", data, position)
            if length == 0:  # zero-filled tail of a preallocated segment (preallocate=true)
                break
            end = position + 12 + length
            assert end <= len(data), f"{path.name}: batch at {position} runs past the end of the file"
            batch = DefaultRecordBatch(data[position:end])
            assert batch.magic == 2, f"{path.name}: magic {batch.magic} at {position}"
            assert batch.validate_crc(), f"{path.name}: bad CRC in the batch at offset {base_offset}"
            batches.append(batch)
            position = end
    return batches


def stored_codecs(log_dir: Path, topic: str, partitions: int) -> set[str]:
    """The compression codecs of every batch stored for the topic."""
    return {
        CODEC_NAMES[batch.compression_type]
        for partition in range(partitions)
        for batch in stored_batches(log_dir, topic, partition)
    }


def assert_codec_used(log_dir: Path, topic: str, partitions: int, codec: str) -> None:
    """The topic's batches on disk use `codec`, except batches the client left uncompressed
    because compressing them did not make them smaller (kafka-python and librdkafka do that)."""
    codecs = stored_codecs(log_dir, topic, partitions)
    assert codec in codecs, f"no {codec} batch stored for {topic}: {codecs}"
    assert codecs <= {codec, "none"}, f"{topic} holds batches of other codecs: {codecs}"


def stored_records(log_dir: Path, topic: str, partition: int) -> list[tuple[int, bytes | None, bytes | None]]:
    """(offset, key, value) of every record stored for the partition, read from the segments."""
    return [
        (record.offset, record.key, record.value)
        for batch in stored_batches(log_dir, topic, partition)
        for record in batch
    ]


# --- record batches --------------------------------------------------------------------------


def build_batch(
    values: list[bytes],
    *,
    keys: list[bytes | None] | None = None,
    compression: str = "none",
    producer_id: int = -1,
    producer_epoch: int = -1,
    base_sequence: int = -1,
    timestamps: list[int] | None = None,
    base_offset: int = 0,
) -> bytes:
    """One v2 batch written by kafka-python's builder (offsets 0..n-1 unless `base_offset`)."""
    builder = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=CODEC_IDS[compression],
        is_transactional=False,
        producer_id=producer_id,
        producer_epoch=producer_epoch,
        base_sequence=base_sequence,
        batch_size=1 << 30,
    )
    keys = keys or [None] * len(values)
    for offset, (key, value) in enumerate(zip(keys, values, strict=True)):
        timestamp = timestamps[offset] if timestamps else now_ms()
        builder.append(offset, timestamp=timestamp, key=key, value=value, headers=[])
    batch = bytearray(builder.build())
    if base_offset:
        # baseOffset is outside the CRC (which starts at attributes), so patching it keeps the batch valid.
        struct.pack_into(">q", batch, 0, base_offset)
    return bytes(batch)


def batch_values(records: bytes | memoryview) -> list[tuple[int, bytes | None, bytes | None, int]]:
    """(offset, key, value, timestamp) of every record in a Fetch answer's records field."""
    data = bytes(records)
    found = []
    position = 0
    while position + 12 <= len(data):
        (length,) = struct.unpack_from(">i", data, position + 8)
        end = position + 12 + length
        if end > len(data):
            break  # a partial batch at the end of a fetch answer is allowed
        batch = DefaultRecordBatch(data[position:end])
        assert batch.validate_crc(), f"bad CRC in the fetched batch at byte {position}"
        found += [(r.offset, r.key, r.value, r.timestamp) for r in batch]
        position = end
    return found


# --- raw requests ----------------------------------------------------------------------------


class RawClient:
    """One connection sending requests encoded with kbroker's codec and decoding the answers."""

    def __init__(self, port: int, timeout: float = 10.0) -> None:
        self.sock = wire.connect(port, timeout)
        self._next_correlation_id = 1

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def send(self, api_key: int, version: int, body: dict) -> int:
        """Send one request; returns its correlation id."""
        correlation_id = self._next_correlation_id
        self._next_correlation_id += 1
        flexible = is_flexible(api_key, version)
        header = wire.request_header(api_key, version, correlation_id, "data-path-tests", flexible)
        self.sock.sendall(wire.frame(header + request_codec(api_key, version).encode(body)))
        return correlation_id

    def receive(self, api_key: int, version: int) -> tuple[int, dict]:
        """The next answer on the connection, as (correlation id, body)."""
        payload = wire.read_frame(self.sock)
        reader = wire.Reader(payload)
        correlation_id = reader.int32()
        if is_flexible(api_key, version) and api_key != wire.API_VERSIONS:
            reader.tagged_fields()
        body, end = response_codec(api_key, version).decode(payload, reader.pos)
        assert end == len(payload), f"{len(payload) - end} bytes left after the response body"
        return correlation_id, body

    def call(self, api_key: int, version: int, body: dict) -> dict:
        correlation_id = self.send(api_key, version, body)
        received, answer = self.receive(api_key, version)
        assert received == correlation_id, f"answer {received} arrived for request {correlation_id}"
        return answer


def advertised_api_keys(port: int) -> dict[int, tuple[int, int]]:
    """api key -> (min, max) versions from the broker's ApiVersions v0 answer."""
    return wire.parse_api_versions(wire.roundtrip(port, wire.api_versions_request(1)), 0).api_keys


def expect_librdkafka_lz4_fallback(request, port: int, codec: str) -> None:
    """librdkafka enables LZ4 only when the broker advertises FindCoordinator (its feature table
    ties "LZ4" to that API) and otherwise sends lz4 batches uncompressed: while kbroker does not
    serve FindCoordinator, an lz4 round trip is expected to fail its codec check."""
    if codec == "lz4" and FIND_COORDINATOR not in advertised_api_keys(port):
        reason = "librdkafka sends lz4 uncompressed: FindCoordinator (10) is not advertised"
        request.applymarker(pytest.mark.xfail(strict=True, reason=reason))


def raw_call(port: int, api_key: int, version: int, body: dict) -> dict:
    """One request on a fresh connection."""
    with RawClient(port) as client:
        return client.call(api_key, version, body)


# --- one-partition requests -----------------------------------------------------------------


def create_topic(port: int, name: str, partitions: int = 1, configs: dict[str, str] | None = None) -> None:
    answer = raw_call(
        port,
        CREATE_TOPICS,
        7,
        {
            "topics": [
                {
                    "name": name,
                    "num_partitions": partitions,
                    "replication_factor": 1,
                    "configs": [{"name": k, "value": v} for k, v in (configs or {}).items()],
                }
            ],
            "timeout_ms": 10000,
        },
    )
    [result] = answer["topics"]
    assert result["error_code"] == NONE, result


def topic_id_of(port: int, name: str):
    answer = raw_call(port, METADATA, 12, {"topics": [{"name": name}], "allow_auto_topic_creation": False})
    [topic] = answer["topics"]
    assert topic["error_code"] == NONE, topic
    return topic["topic_id"]


def produce_body(topic: str, partition: int, records: bytes, *, acks: int = 1, topic_id=None) -> dict:
    entry = {"name": topic, "partition_data": [{"index": partition, "records": records}]}
    if topic_id is not None:
        entry = {"name": "", "topic_id": topic_id, "partition_data": entry["partition_data"]}
    return {"acks": acks, "timeout_ms": 10000, "topic_data": [entry]}


def produce(
    client: RawClient,
    topic: str,
    partition: int,
    records: bytes,
    *,
    version: int = DEFAULT_PRODUCE_VERSION,
    **kw,
) -> dict:
    """One partition's Produce answer."""
    answer = client.call(PRODUCE, version, produce_body(topic, partition, records, **kw))
    [topic_answer] = answer["responses"]
    [partition_answer] = topic_answer["partition_responses"]
    assert partition_answer["index"] == partition
    return partition_answer


def fetch_body(
    topic: str,
    partition: int,
    offset: int,
    *,
    partition_max_bytes: int = MIB,
    max_bytes: int = 50 * MIB,
    max_wait_ms: int = 0,
    min_bytes: int = 0,
    session_id: int = 0,
    session_epoch: int = -1,
    topic_id=None,
) -> dict:
    partitions = [
        {"partition": partition, "fetch_offset": offset, "partition_max_bytes": partition_max_bytes}
    ]
    entry = {"topic": topic, "partitions": partitions}
    if topic_id is not None:
        entry = {"topic": "", "topic_id": topic_id, "partitions": partitions}
    return {
        "replica_id": -1,
        "max_wait_ms": max_wait_ms,
        "min_bytes": min_bytes,
        "max_bytes": max_bytes,
        "session_id": session_id,
        "session_epoch": session_epoch,
        "topics": [entry],
    }


def fetch(
    client: RawClient, topic: str, partition: int, offset: int, *, version: int = DEFAULT_FETCH_VERSION, **kw
):
    """(whole answer, the partition's answer) of a one-partition Fetch."""
    answer = client.call(FETCH, version, fetch_body(topic, partition, offset, **kw))
    [topic_answer] = answer["responses"]
    [partition_answer] = topic_answer["partitions"]
    assert partition_answer["partition_index"] == partition
    return answer, partition_answer


def list_offset(
    client: RawClient, topic: str, partition: int, timestamp: int, version: int = 7
) -> tuple[int, int]:
    """(error code, offset) of ListOffsets for one partition."""
    answer = client.call(
        LIST_OFFSETS,
        version,
        {
            "replica_id": -1,
            "topics": [
                {"name": topic, "partitions": [{"partition_index": partition, "timestamp": timestamp}]}
            ],
        },
    )
    [entry] = answer["topics"][0]["partitions"]
    return entry["error_code"], entry["offset"]


def init_producer_id(client: RawClient) -> tuple[int, int]:
    """A new idempotent producer id and epoch (no transactional id)."""
    answer = client.call(
        INIT_PRODUCER_ID,
        4,
        {"transactional_id": None, "transaction_timeout_ms": 60000, "producer_id": -1, "producer_epoch": -1},
    )
    assert answer["error_code"] == NONE, answer
    return answer["producer_id"], answer["producer_epoch"]


def read_partition(
    port: int, topic: str, partition: int, start: int = 0
) -> tuple[int, list[tuple[int, bytes | None, bytes | None, int]]]:
    """(high watermark, every (offset, key, value, timestamp) from `start` up to it), by Fetch."""
    records: list[tuple[int, bytes | None, bytes | None, int]] = []
    offset = start
    with RawClient(port) as client:
        while True:
            _, answer = fetch(client, topic, partition, offset)
            assert answer["error_code"] == NONE, answer
            fresh = [r for r in batch_values(answer["records"]) if r[0] >= offset]
            records += fresh
            if fresh:
                offset = fresh[-1][0] + 1
            if offset >= answer["high_watermark"] or not fresh:
                return answer["high_watermark"], records
