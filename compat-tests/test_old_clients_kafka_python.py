"""Old clients against a real kbroker: kafka-python pinned to brokers 0.8.2 to 0.11 speaks the old
Produce, Fetch, ListOffsets and Metadata versions and writes message formats 0 (0.8.2, 0.9) or 1
(0.10.x), while confluent-kafka (librdkafka) on the same topic uses record batches v2.

Each old client produces with every codec it can use and confluent-kafka reads the records back,
and the other way round: keys, values and timestamps must survive both conversions (a magic 0
message has no timestamp: it is stored as -1 and read back as none). The log on disk holds v2
batches only, as Kafka 3.x stores them, in the producer's codec.
"""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from kafka import KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KafkaTopicPartition
from kafka.errors import UnsupportedCompressionTypeError

from kbroker.testing.records import CODEC_IDS, stored_batches

RECORDS = 60
TIMEOUT_S = 15

# api_version -> the message format (magic) kafka-python writes and reads with it
OLD_CLIENTS = {(0, 8, 2): 0, (0, 9): 0, (0, 10): 1, (0, 10, 1): 1, (0, 11): 2}
# Every codec kafka-python has for these brokers (zstd needs 2.1); magic 0's lz4 frames carry
# Kafka 0.8's header checksum, which kafka-python writes and mends with xxhash.
CODECS_BY_MAGIC = {magic: ["none", "gzip", "snappy", "lz4"] for magic in (0, 1, 2)}
CASES = [(version, codec) for version, magic in OLD_CLIENTS.items() for codec in CODECS_BY_MAGIC[magic]]


@pytest.fixture(scope="module")
def kbroker(module_broker_factory):
    return module_broker_factory("num.partitions=1")


def sample(prefix: str) -> list[tuple[bytes | None, bytes, int]]:
    """(key, value, timestamp ms): some keys null, values of several sizes, recent timestamps."""
    base = int(time.time() * 1000) - 60_000
    return [(None if i % 7 == 3 else f"{prefix}-k{i}".encode(), f"{prefix}-v{i}-".encode() * (1 + i % 5), base + i)
            for i in range(RECORDS)]


def topic_name(prefix: str, version: tuple[int, ...], codec: str) -> str:
    return f"{prefix}-{'.'.join(map(str, version))}-{codec}"


def old_produce(kbroker, version: tuple[int, ...], topic: str, records, codec: str) -> list[int]:
    producer = KafkaProducer(bootstrap_servers=kbroker.bootstrap, api_version=version,
                             compression_type=None if codec == "none" else codec, linger_ms=5,
                             request_timeout_ms=TIMEOUT_S * 1000)
    try:
        futures = [producer.send(topic, key=key, value=value, partition=0, timestamp_ms=timestamp)
                   for key, value, timestamp in records]
        producer.flush(timeout=TIMEOUT_S)
        return [future.get(timeout=TIMEOUT_S).offset for future in futures]
    finally:
        producer.close(timeout=5)


def old_consume(kbroker, version: tuple[int, ...], topic: str, count: int) -> list[tuple]:
    consumer = KafkaConsumer(bootstrap_servers=kbroker.bootstrap, api_version=version, group_id=None,
                             enable_auto_commit=False, consumer_timeout_ms=TIMEOUT_S * 1000)
    try:
        partition = KafkaTopicPartition(topic, 0)
        consumer.assign([partition])
        consumer.seek_to_beginning(partition)
        got = []
        for message in consumer:
            got.append((message.offset, message.key, message.value, message.timestamp))
            if len(got) == count:
                break
        return got
    finally:
        consumer.close()


def modern_produce(kbroker, topic: str, records, codec: str) -> None:
    producer = Producer({"bootstrap.servers": kbroker.bootstrap, "compression.type": codec, "linger.ms": 5})
    errors = []
    for key, value, timestamp in records:
        producer.produce(topic, key=key, value=value, partition=0, timestamp=timestamp,
                         on_delivery=lambda err, _msg: errors.append(err) if err else None)
    assert producer.flush(TIMEOUT_S) == 0 and errors == []


def modern_consume(kbroker, topic: str, count: int) -> list[tuple]:
    consumer = Consumer({"bootstrap.servers": kbroker.bootstrap, "group.id": f"modern-{topic}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        got = []
        deadline = time.monotonic() + TIMEOUT_S
        while len(got) < count and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            assert message.error() is None, message.error()
            got.append((message.offset(), message.key(), message.value(), message.timestamp()[1]))
        return got
    finally:
        consumer.close()


@pytest.mark.parametrize(("version", "codec"), CASES, ids=[f"{'.'.join(map(str, v))}-{c}" for v, c in CASES])
def test_old_producer_records_read_by_a_modern_consumer(kbroker, version, codec):
    topic = topic_name("old-to-new", version, codec)
    records = sample(topic)
    assert old_produce(kbroker, version, topic, records, codec) == list(range(RECORDS))

    got = modern_consume(kbroker, topic, RECORDS)
    magic = OLD_CLIENTS[version]
    expected = [(offset, key, value, timestamp if magic >= 1 else -1)
                for offset, (key, value, timestamp) in enumerate(records)]
    assert got == expected
    batches = stored_batches(kbroker.log_dir, topic, 0)
    assert {batch.magic for batch in batches} == {2}
    assert {batch.compression_type for batch in batches} == {CODEC_IDS[codec]}
    # and the old client reads its own records back
    old = old_consume(kbroker, version, topic, RECORDS)
    assert [(o, k, v, t if magic >= 1 else None) for o, k, v, t in expected] == old


@pytest.mark.parametrize(("version", "codec"), CASES, ids=[f"{'.'.join(map(str, v))}-{c}" for v, c in CASES])
def test_modern_producer_records_read_by_an_old_consumer(kbroker, version, codec):
    topic = topic_name("new-to-old", version, codec)
    records = sample(topic)
    modern_produce(kbroker, topic, records, codec)

    got = old_consume(kbroker, version, topic, RECORDS)
    magic = OLD_CLIENTS[version]
    assert got == [(offset, key, value, timestamp if magic >= 1 else None)
                   for offset, (key, value, timestamp) in enumerate(records)]


@pytest.mark.parametrize("version", [(0, 9), (0, 10), (0, 10, 1)], ids=["0.9", "0.10", "0.10.1"])
def test_old_group_consumer_reads_and_commits(kbroker, version):
    """An old consumer in a group (JoinGroup/SyncGroup v0, OffsetCommit v2, OffsetFetch v1) reads a
    modern producer's records and its committed offset is what a modern client then sees."""
    topic = topic_name("old-group", version, "none")
    records = sample(topic)
    modern_produce(kbroker, topic, records, "gzip")
    group = f"group-{topic}"
    consumer = KafkaConsumer(topic, bootstrap_servers=kbroker.bootstrap, api_version=version, group_id=group,
                             auto_offset_reset="earliest", enable_auto_commit=False,
                             consumer_timeout_ms=TIMEOUT_S * 1000)
    try:
        got = []
        for message in consumer:
            got.append((message.key, message.value))
            if len(got) == RECORDS:
                break
        consumer.commit()
    finally:
        consumer.close()
    assert got == [(key, value) for key, value, _ in records]

    modern = Consumer({"bootstrap.servers": kbroker.bootstrap, "group.id": group})
    try:
        [committed] = modern.committed([TopicPartition(topic, 0)], timeout=TIMEOUT_S)
    finally:
        modern.close()
    assert committed.offset == RECORDS


def test_old_and_modern_clients_interleaved_on_one_topic(kbroker):
    """Appends in turn from old producers (message formats 0 and 1) and confluent-kafka on one
    partition; every consumer, old or modern, reads all of them in order."""
    topic = "old-and-new-interleaved"
    rounds = [((0, 9), "gzip"), (None, "lz4"), ((0, 10), "snappy"), (None, "gzip"), ((0, 8, 2), "none"),
              ((0, 10, 1), "lz4")]
    expected: list[tuple] = []  # (key, value, timestamp; -1 where the format had none)
    for round_number, (version, codec) in enumerate(rounds):
        records = sample(f"{topic}-{round_number}")[:20]
        if version is None:
            modern_produce(kbroker, topic, records, codec)
        else:
            old_produce(kbroker, version, topic, records, codec)
        keeps_time = version is None or OLD_CLIENTS[version] >= 1
        expected += [(key, value, timestamp if keeps_time else -1) for key, value, timestamp in records]
    modern = modern_consume(kbroker, topic, len(expected))
    assert modern == [(offset, *record) for offset, record in enumerate(expected)]
    for version in ((0, 10, 1), (0, 9)):
        old = old_consume(kbroker, version, topic, len(expected))
        reads_time = OLD_CLIENTS[version] >= 1  # magic 0 readers see no timestamps at all
        assert old == [(offset, key, value, timestamp if reads_time else None)
                       for offset, (key, value, timestamp) in enumerate(expected)], f"{version}"


def test_old_consumer_gets_unsupported_compression_type_for_zstd(kbroker):
    """zstd batches cannot be down-converted: Kafka answers UNSUPPORTED_COMPRESSION_TYPE (76)."""
    topic = "zstd-for-old-consumers"
    modern_produce(kbroker, topic, sample(topic)[:5], "zstd")
    with pytest.raises(UnsupportedCompressionTypeError):
        old_consume(kbroker, (0, 10), topic, 5)
