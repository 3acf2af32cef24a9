"""Kafka requests over one plain socket, encoded with kbroker's schema codec, for tests that need
exact request fields (acks, sequence numbers, session ids) no client exposes.

- `RawClient`: one connection; `call(api_key, version, body)` sends a request and decodes the answer;
- `raw_call`: one request on a fresh connection;
- `create_topic`, `produce`, `fetch`, `list_offset`, `init_producer_id`, `read_partition`:
  one-partition requests, for the raw-wire, crash and admin tests.

Must not start or stop brokers and must not write to a broker's data dir.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from kbroker.protocol.messages import is_flexible, request_codec, response_codec
from kbroker.testing import admin, wire
from kbroker.testing.records import batch_values

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


def expect_librdkafka_lz4_fallback(request: pytest.FixtureRequest, port: int, codec: str) -> None:
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
    admin.create_topic(port, name, partitions, 1, configs)


def topic_id_of(port: int, name: str) -> uuid.UUID:
    answer = raw_call(port, METADATA, 12, {"topics": [{"name": name}], "allow_auto_topic_creation": False})
    [topic] = answer["topics"]
    assert topic["error_code"] == NONE, topic
    return topic["topic_id"]


def produce_body(topic: str, partition: int, records: bytes, *, acks: int = 1,
                 topic_id: uuid.UUID | None = None, transactional_id: str | None = None) -> dict:
    entry: dict[str, Any] = {"name": topic, "partition_data": [{"index": partition, "records": records}]}
    if topic_id is not None:
        entry = {"name": "", "topic_id": topic_id, "partition_data": entry["partition_data"]}
    return {"transactional_id": transactional_id, "acks": acks, "timeout_ms": 10000, "topic_data": [entry]}


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
    topic_id: uuid.UUID | None = None,
) -> dict:
    partitions = [
        {"partition": partition, "fetch_offset": offset, "partition_max_bytes": partition_max_bytes}
    ]
    entry: dict[str, Any] = {"topic": topic, "partitions": partitions}
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
    client: RawClient, topic: str, partition: int, offset: int, *, version: int = DEFAULT_FETCH_VERSION, **kw: Any
) -> tuple[dict, dict]:
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
