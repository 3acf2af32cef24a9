"""Log compaction seen by real clients: confluent-kafka (librdkafka) writes a compacted topic with
repeated keys and deletions; once the broker's cleaner has run, a consumer reading from offset 0
gets exactly the latest value of every key at increasing offsets (gaps allowed), and once
delete.retention.ms has passed and the log was cleaned again, deleted keys are gone altogether.
kafka-python reads the same cleaned log. The group coordinator's own compacted topic,
__consumer_offsets, is cleaned too, and a group's commits survive a restart that replays it.

The topic has small segments (segment.bytes, segment.ms) so records leave the active segment
quickly, min.cleanable.dirty.ratio=0.01 so any new segment makes it dirty enough, and the broker
runs with log.cleaner.backoff.ms small.
"""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaConsumer
from kafka import TopicPartition as KafkaPythonTopicPartition
from kafka.record.memory_records import MemoryRecords

from kbroker.testing.waiting import eventually

TIMEOUT_S = 20
SEGMENT_MS = 300
DELETE_RETENTION_MS = 500
KEYS = 40
ROUNDS = 8
DELETED = {b"key-%02d" % k for k in range(0, KEYS, 7)}


@pytest.fixture(scope="module")
def kbroker(module_broker_factory):
    return module_broker_factory("log.cleaner.backoff.ms=100")


def create_compacted_topic(kbroker, topic: str) -> None:
    admin = AdminClient({"bootstrap.servers": kbroker.bootstrap})
    config = {
        "cleanup.policy": "compact",
        "segment.bytes": "4096",
        "segment.ms": str(SEGMENT_MS),
        "min.cleanable.dirty.ratio": "0.01",
        "delete.retention.ms": str(DELETE_RETENTION_MS),
    }
    futures = admin.create_topics([NewTopic(topic, 1, 1, config=config)], operation_timeout=TIMEOUT_S)
    futures[topic].result(timeout=TIMEOUT_S)


def produce(producer: Producer, topic: str, pairs: list[tuple[bytes, bytes | None]]) -> None:
    errors: list[KafkaError] = []
    for key, value in pairs:
        producer.produce(topic, key=key, value=value, partition=0, on_delivery=lambda err, _m: err and errors.append(err))
        producer.poll(0)
    assert producer.flush(TIMEOUT_S) == 0 and not errors, errors[:3]


def roll_active_segment(producer: Producer, topic: str, filler: bytes) -> None:
    """A record written segment.ms after the active segment began rolls it: everything before
    becomes cleanable. The filler's key is unique, so it never hides another key."""
    time.sleep(SEGMENT_MS * 1.5 / 1000)
    produce(producer, topic, [(filler, b"roll")])


def read_from_start(kbroker, topic: str) -> list[tuple[int, bytes, bytes | None]]:
    """(offset, key, value) of every record from offset 0 to the end, with confluent-kafka."""
    consumer = Consumer(
        {
            "bootstrap.servers": kbroker.bootstrap,
            "group.id": f"reader-{time.monotonic_ns()}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    consumer.assign([TopicPartition(topic, 0, 0)])
    records = []
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            if message.error() is not None:
                if message.error().code() == KafkaError._PARTITION_EOF:
                    return records
                raise AssertionError(message.error())
            records.append((message.offset(), message.key(), message.value()))
    finally:
        consumer.close()
    raise AssertionError(f"no end of partition within {TIMEOUT_S} s")


def wait_for(condition, what: str):
    """Polls (the cleaner runs on its own schedule) until `condition()` returns something truthy."""
    return eventually(condition, what=what, timeout=TIMEOUT_S, interval=0.3)


def test_latest_value_per_key_after_cleaning_and_deletions_after_delete_retention(kbroker):
    topic = "compacted.prices"
    create_compacted_topic(kbroker, topic)
    producer = Producer({"bootstrap.servers": kbroker.bootstrap, "enable.idempotence": True, "linger.ms": 2})
    latest: dict[bytes, bytes | None] = {}
    for round_ in range(ROUNDS):
        pairs = [(b"key-%02d" % k, b"value-%d-%02d-" % (round_, k) + b"." * 40) for k in range(KEYS)]
        if round_ == ROUNDS - 1:
            pairs = [(key, None if key in DELETED else value) for key, value in pairs]
        produce(producer, topic, pairs)
        latest.update(pairs)
    written = ROUNDS * KEYS
    roll_active_segment(producer, topic, b"filler-1")
    latest[b"filler-1"] = b"roll"

    def cleaned_view():
        records = read_from_start(kbroker, topic)
        keys = [key for _offset, key, _value in records]
        return records if len(keys) == len(set(keys)) and len(records) < written else None

    records = wait_for(cleaned_view, "a cleaned log")
    offsets = [offset for offset, _key, _value in records]
    assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets)
    assert offsets[-1] == written  # the filler, after offsets 0..written-1
    alive = {key: value for _offset, key, value in records if value is not None}
    assert alive == {key: value for key, value in latest.items() if value is not None}
    assert {key for _offset, key, value in records if value is None} <= DELETED  # tombstones, for now

    time.sleep(DELETE_RETENTION_MS / 1000)
    produce(producer, topic, [(b"late-key", b"late")])
    roll_active_segment(producer, topic, b"filler-2")

    def without_tombstones():
        records = read_from_start(kbroker, topic)
        return records if not DELETED & {key for _offset, key, _value in records} else None

    records = wait_for(without_tombstones, "the deleted keys removed")
    assert {key: value for _offset, key, value in records} == {
        **{key: value for key, value in latest.items() if value is not None},
        b"late-key": b"late",
        b"filler-2": b"roll",
    }

    # kafka-python's consumer reads the same cleaned log, gaps and emptied batches included.
    consumer = KafkaConsumer(bootstrap_servers=kbroker.bootstrap, enable_auto_commit=False, consumer_timeout_ms=1500)
    partition = KafkaPythonTopicPartition(topic, 0)
    consumer.assign([partition])
    consumer.seek(partition, 0)
    seen = [(m.offset, m.key, m.value) for m in consumer]
    consumer.close()
    assert seen == records
    assert "will not be cleaned again" not in kbroker.output()


def records_in_log_dir(directory) -> int:
    total = 0
    for path in sorted(directory.glob("*.log")):
        records = MemoryRecords(path.read_bytes())
        while records.has_next():
            total += len(list(records.next_batch()))
    return total


def test_consumer_offsets_is_compacted_and_commits_survive_a_restart(broker_factory):
    broker = broker_factory(
        "log.cleaner.backoff.ms=100", "offsets.topic.num.partitions=1", "offsets.topic.segment.bytes=2048"
    )
    topic = "compaction.committed"
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1)], operation_timeout=TIMEOUT_S)[topic].result(timeout=TIMEOUT_S)
    settings = {"bootstrap.servers": broker.bootstrap, "group.id": "compacting-group", "enable.auto.commit": False}
    consumer = Consumer(settings)
    commits = 200
    for offset in range(1, commits + 1):
        consumer.commit(offsets=[TopicPartition(topic, 0, offset)], asynchronous=False)
    consumer.close()

    offsets_log = broker.log_dir / "__consumer_offsets-0"
    checkpoint = broker.log_dir / "cleaner-offset-checkpoint"
    # A first cleaning may run while the commits still arrive; the later ones remove the rest of the
    # older commits of the same key.
    def compacted() -> bool:
        if not (checkpoint.exists() and "__consumer_offsets 0 " in checkpoint.read_text()):
            return False
        try:
            return records_in_log_dir(offsets_log) < commits / 2
        except FileNotFoundError:  # a segment swapped or deleted by the cleaner as we listed them
            return False

    wait_for(compacted, "a cleaned __consumer_offsets, older commits of the same key gone")

    broker.stop()
    broker.start()
    consumer = Consumer(settings)
    committed = consumer.committed([TopicPartition(topic, 0)], timeout=TIMEOUT_S)
    consumer.close()
    assert committed[0].offset == commits
    assert "will not be cleaned again" not in broker.output()
