"""Produce rejected for record-level reasons names the records (KIP-467; issue 16, bug 8).

Kafka's LogValidator collects one RecordError (batch index, message) per offending record and
throws a RecordValidationException; the ReplicaManager puts its record errors and its message
in the partition's answer, which Produce v8+ carries as `record_errors` and `error_message`.
Clients rely on them: librdkafka and the Java producer fail only the named records' futures.
Checked over raw sockets against a kbroker subprocess, with the messages Kafka 3.x writes.
"""

from __future__ import annotations

import re

import pytest

from kbroker.testing.raw_client import (
    DEFAULT_PRODUCE_VERSION,
    RawClient,
    create_topic,
    fetch,
    produce,
    topic_id_of,
)
from kbroker.testing.records import build_batch, now_ms

NONE = 0
INVALID_TIMESTAMP = 32
INVALID_RECORD = 87
FIRST_RECORD_ERRORS_VERSION = 8
LATEST_PRODUCE_VERSION = 13
FIRST_TOPIC_ID_VERSION = 13
LONG_MAX = 2**63 - 1
DAY_MS = 24 * 3600 * 1000


@pytest.fixture(scope="module")
def kbroker(module_broker_factory):
    return module_broker_factory()


def java_long(value: int) -> int:
    return (value + 2**63) % 2**64 - 2**63


def keyless_message(topic: str) -> str:
    return f"Compacted topic cannot accept message without key in topic partition {topic}-0"


def rejected_summary(messages: dict[int, str]) -> str:
    """Kafka's InvalidRecordException message: the count, then at most three RecordErrors as a Java list."""
    shown = ", ".join(f"RecordError(batchIndex={i}, message='{m}')" for i, m in list(messages.items())[:3])
    return (f"One or more records have been rejected due to {len(messages)} record errors in total, "
            f"and only showing the first three errors at most: [{shown}]")


@pytest.mark.parametrize("version", [FIRST_RECORD_ERRORS_VERSION, DEFAULT_PRODUCE_VERSION, LATEST_PRODUCE_VERSION])
def test_keyless_record_on_a_compacted_topic_is_named(kbroker, version):
    topic = f"record-errors-compact-v{version}"
    create_topic(kbroker.port, topic, configs={"cleanup.policy": "compact"})
    batch = build_batch([b"v0", b"v1", b"v2"], keys=[b"k0", None, b"k2"])
    topic_id = topic_id_of(kbroker.port, topic) if version >= FIRST_TOPIC_ID_VERSION else None
    with RawClient(kbroker.port) as client:
        answer = produce(client, topic, 0, batch, version=version, topic_id=topic_id)
        _, fetched = fetch(client, topic, 0, 0)

    assert (answer["error_code"], answer["base_offset"]) == (INVALID_RECORD, -1)
    assert answer["record_errors"] == [{"batch_index": 1, "batch_index_error_message": keyless_message(topic)}]
    assert answer["error_message"] == rejected_summary({1: keyless_message(topic)})
    assert fetched["high_watermark"] == 0  # the whole batch is dropped


def test_every_keyless_record_is_listed_and_three_are_summarised(kbroker):
    topic = "record-errors-compact-many"
    create_topic(kbroker.port, topic, configs={"cleanup.policy": "compact"})
    keys: list[bytes | None] = [None, b"k1", None, None, None]
    with RawClient(kbroker.port) as client:
        answer = produce(client, topic, 0, build_batch([b"v"] * 5, keys=keys, compression="gzip"))

    errors = {i: keyless_message(topic) for i, key in enumerate(keys) if key is None}
    assert answer["error_code"] == INVALID_RECORD
    assert answer["record_errors"] == [{"batch_index": i, "batch_index_error_message": m} for i, m in errors.items()]
    assert answer["error_message"] == rejected_summary(errors)  # four errors, three shown


def test_produce_v7_has_no_record_errors_but_the_same_error_code(kbroker):
    topic = "record-errors-compact-v7"
    create_topic(kbroker.port, topic, configs={"cleanup.policy": "compact"})
    with RawClient(kbroker.port) as client:
        answer = produce(client, topic, 0, build_batch([b"v0", b"v1"], keys=[None, b"k1"]), version=7)

    assert answer["error_code"] == INVALID_RECORD
    assert answer.get("record_errors", []) == [] and answer.get("error_message") is None


def test_a_record_outside_the_timestamp_bounds_is_named(kbroker):
    topic = "record-errors-timestamps"
    create_topic(kbroker.port, topic, configs={"message.timestamp.before.max.ms": str(DAY_MS)})
    now = now_ms()
    with RawClient(kbroker.port) as client:
        answer = produce(client, topic, 0, build_batch([b"a", b"b", b"c"], timestamps=[now, now - 2 * DAY_MS, now]))
        accepted = produce(client, topic, 0, build_batch([b"d"], timestamps=[now]))

    assert answer["error_code"] == INVALID_TIMESTAMP
    [error] = answer["record_errors"]
    assert error["batch_index"] == 1
    bounds = re.fullmatch(rf"Timestamp {now - 2 * DAY_MS} of message with offset 1 is out of range\. "
                          r"The timestamp should be within \[(-?\d+), (-?\d+)\]", error["batch_index_error_message"])
    assert bounds is not None, error
    # Kafka prints [now - before.max.ms, now + after.max.ms] in Java longs: the default
    # after.max.ms (Long.MAX_VALUE) wraps the upper bound around to a negative number.
    broker_now = int(bounds[1]) + DAY_MS
    assert int(bounds[2]) == java_long(broker_now + LONG_MAX)
    assert answer["error_message"] == "One or more records have been rejected due to invalid timestamp"
    assert (accepted["error_code"], accepted["base_offset"], accepted["error_message"]) == (NONE, 0, None)
    assert accepted["record_errors"] == []
