"""compression.gzip.level, compression.lz4.level and compression.zstd.level (KIP-390, Kafka 3.8+):
the level the broker compresses at when a topic's compression.type differs from the producer's
codec, per topic and as broker defaults, with Kafka's ranges, errors and DescribeConfigs sources.

A real broker process; confluent-kafka produces, consumes and administers as a user would; the
stored batches are fetched raw and their compressed bytes compared with what zlib, lz4 and
zstandard write at the level asked for (and not at the default level).
"""

from __future__ import annotations

import struct
import zlib

import lz4.frame
import pytest
import zstandard
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewTopic,
)

from kbroker.testing.processes import BrokerFailed
from kbroker.testing.raw_client import RawClient, fetch
from kbroker.testing.records import varied_text
from kbroker.testing.waiting import eventually

BROKER_GZIP_LEVEL = 1  # the broker's compression.gzip.level: topics without their own use it
INVALID_CONFIG = 40
INVALID_REQUEST = 42
CODEC_BY_NAME = {"gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
RECORDS_OFFSET = 61  # a v2 batch's records (compressed or not) start here
DEFAULT_LEVELS = {"gzip": -1, "lz4": 9, "zstd": 3}


@pytest.fixture(scope="module")
def kbroker(module_broker_factory):
    return module_broker_factory(f"compression.gzip.level={BROKER_GZIP_LEVEL}")


@pytest.fixture(scope="module")
def admin(kbroker):
    return AdminClient({"bootstrap.servers": kbroker.bootstrap})


def create(admin: AdminClient, topic: str, configs: dict[str, str]) -> None:
    admin.create_topics([NewTopic(topic, 1, 1, config=configs)])[topic].result(30)


def produce(kbroker, topic: str, records: list[bytes], codec: str = "none") -> None:
    producer = Producer({"bootstrap.servers": kbroker.bootstrap, "compression.type": codec, "linger.ms": 50,
                         "enable.idempotence": True})
    for value in records:
        producer.produce(topic, value)
    assert producer.flush(30) == 0


def consumed(kbroker, topic: str, count: int) -> list[bytes]:
    consumer = Consumer({"bootstrap.servers": kbroker.bootstrap, "group.id": f"{topic}-reader",
                         "enable.auto.commit": False})
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])  # no group join: only the records matter here
        found: list[bytes] = []

        def read_all() -> bool:
            found.extend(m.value() for m in consumer.consume(count, 0.5) if m.error() is None)
            return len(found) >= count

        eventually(read_all, what=f"{count} records of {topic}", timeout=30)
        return found
    finally:
        consumer.close()


def stored_batches(kbroker, topic: str) -> list[tuple[int, bytes]]:
    """(codec id, compressed records) of every batch in the partition, as stored."""
    with RawClient(kbroker.port) as client:
        _, answer = fetch(client, topic, 0, 0)
    data, position, batches = bytes(answer["records"]), 0, []
    while position + 12 <= len(data):
        (length,) = struct.unpack_from(">i", data, position + 8)
        batch = data[position : position + 12 + length]
        (attributes,) = struct.unpack_from(">h", batch, 21)
        batches.append((attributes & 0x07, batch[RECORDS_OFFSET:]))
        position += 12 + length
    return batches


def library_compress(codec: str, data: bytes, level: int) -> bytes:
    """The codec library's own output at Kafka's level (no kbroker code)."""
    if codec == "gzip":
        compressor = zlib.compressobj(level, zlib.DEFLATED, 31)
        return compressor.compress(data) + compressor.flush()
    if codec == "zstd":
        return zstandard.ZstdCompressor(level=level).compress(data)
    # Kafka: lz4's fast compressor at the default level 9, LZ4HC at any other (lz4.frame's HC from 3).
    return lz4.frame.compress(data, compression_level=0 if level == 9 else level, block_linked=False,
                              store_size=False, block_size=lz4.frame.BLOCKSIZE_MAX64KB)


def library_decompress(codec: str, data: bytes) -> bytes:
    if codec == "gzip":
        return zlib.decompress(data, 31)
    if codec == "zstd":
        return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    return lz4.frame.decompress(data)


def assert_stored_at_level(batches: list[tuple[int, bytes]], codec: str, level: int) -> None:
    assert batches
    for codec_id, body in batches:
        assert codec_id == CODEC_BY_NAME[codec]
        plain = library_decompress(codec, body)
        assert body == library_compress(codec, plain, level)
        assert body != library_compress(codec, plain, DEFAULT_LEVELS[codec])  # the level made a difference


@pytest.mark.parametrize(("codec", "level", "sent_as"), [
    ("gzip", 9, "none"), ("gzip", 3, "snappy"),
    ("lz4", 12, "none"), ("lz4", 4, "zstd"),
    ("zstd", 19, "none"), ("zstd", -7, "gzip"), ("zstd", 1, "none"),
])
def test_a_rewrite_compresses_at_the_topics_level(kbroker, admin, codec, level, sent_as):
    topic = f"level-{codec}-{level}-{sent_as}".replace("--", "-minus-")
    create(admin, topic, {"compression.type": codec, f"compression.{codec}.level": str(level)})
    sent = varied_text(150, words_per_value=40, seed=level + 100)
    produce(kbroker, topic, sent, sent_as)

    assert_stored_at_level(stored_batches(kbroker, topic), codec, level)
    assert consumed(kbroker, topic, len(sent)) == sent


def test_the_broker_default_applies_when_the_topic_has_none(kbroker, admin):
    topic = "level-broker-default"
    create(admin, topic, {"compression.type": "gzip"})
    sent = varied_text(100, words_per_value=40, seed=7)
    produce(kbroker, topic, sent)

    batches = stored_batches(kbroker, topic)
    assert_stored_at_level(batches, "gzip", BROKER_GZIP_LEVEL)
    assert all(body[8] == 4 for _, body in batches)  # the gzip header's XFL: deflate's fastest level
    assert consumed(kbroker, topic, len(sent)) == sent


def test_a_producer_in_the_topics_codec_is_not_recompressed(kbroker, admin):
    """As in Kafka: the same codec is kept as the producer sent it, whatever the topic's level."""
    topic = "level-same-codec"
    create(admin, topic, {"compression.type": "zstd", "compression.zstd.level": "19"})
    produce(kbroker, topic, varied_text(50, words_per_value=40, seed=3), "zstd")
    for codec_id, body in stored_batches(kbroker, topic):
        assert codec_id == CODEC_BY_NAME["zstd"]
        plain = library_decompress("zstd", body)
        assert body != library_compress("zstd", plain, 19)


def describe(admin: AdminClient, topic: str) -> dict[str, ConfigEntry]:
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    return admin.describe_configs([resource])[resource].result(30)


def test_describe_configs_shows_each_level_with_its_source(admin):
    topic = "level-described"
    create(admin, topic, {"compression.type": "zstd", "compression.zstd.level": "12"})
    entries = describe(admin, topic)

    zstd, gzip, lz4_level = (entries[f"compression.{c}.level"] for c in ("zstd", "gzip", "lz4"))
    assert (zstd.value, zstd.source) == ("12", ConfigSource.DYNAMIC_TOPIC_CONFIG.value)
    assert (gzip.value, gzip.source) == (str(BROKER_GZIP_LEVEL), ConfigSource.STATIC_BROKER_CONFIG.value)
    assert (lz4_level.value, lz4_level.source) == ("9", ConfigSource.DEFAULT_CONFIG.value)
    assert not zstd.is_read_only

    broker = ConfigResource(ConfigResource.Type.BROKER, "0")
    broker_entries = admin.describe_configs([broker])[broker].result(30)
    assert broker_entries["compression.gzip.level"].value == str(BROKER_GZIP_LEVEL)
    assert broker_entries["compression.gzip.level"].source == ConfigSource.STATIC_BROKER_CONFIG.value
    assert (broker_entries["compression.zstd.level"].value,
            broker_entries["compression.zstd.level"].source) == ("3", ConfigSource.DEFAULT_CONFIG.value)


OUT_OF_RANGE = [
    ("compression.gzip.level", "0", "Value must be between 1 and 9 or equal to -1"),
    ("compression.gzip.level", "10", "Value must be between 1 and 9 or equal to -1"),
    ("compression.lz4.level", "0", "Value must be at least 1"),
    ("compression.lz4.level", "18", "Value must be no more than 17"),
    ("compression.zstd.level", "23", "Value must be no more than 22"),
    ("compression.zstd.level", "-131073", "Value must be at least -131072"),
]


@pytest.mark.parametrize(("name", "value", "reason"), OUT_OF_RANGE)
def test_create_topics_refuses_a_level_out_of_range(admin, name, value, reason):
    topic = f"level-refused-{name.split('.')[1]}-{value}"
    with pytest.raises(KafkaException) as refused:
        create(admin, topic, {"compression.type": "producer", name: value})
    error = refused.value.args[0]
    assert error.code() == INVALID_CONFIG
    assert f"Invalid value {value} for configuration {name}: {reason}" in error.str()
    assert topic not in admin.list_topics(timeout=10).topics


@pytest.mark.parametrize(("name", "value", "reason"), OUT_OF_RANGE[1::2])
def test_incremental_alter_configs_refuses_a_level_out_of_range(admin, name, value, reason):
    topic = f"level-alter-refused-{name.split('.')[1]}"
    create(admin, topic, {})
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[
        ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET)])
    with pytest.raises(KafkaException) as refused:
        admin.incremental_alter_configs([resource])[resource].result(30)
    error = refused.value.args[0]
    assert error.code() == INVALID_REQUEST  # ZkAdminManager: a ConfigException is an InvalidRequestException
    assert error.str() == (f"Invalid config value for resource ConfigResource(type=TOPIC, name='{topic}'): "
                           f"Invalid value {value} for configuration {name}: {reason}")
    assert describe(admin, topic)[name].source != ConfigSource.DYNAMIC_TOPIC_CONFIG.value


def test_a_level_altered_on_a_live_topic_applies_to_the_next_append(kbroker, admin):
    topic = "level-altered"
    create(admin, topic, {"compression.type": "gzip", "compression.gzip.level": "1"})
    produce(kbroker, topic, varied_text(20, words_per_value=40, seed=11))
    assert all(body[8] == 4 for _, body in stored_batches(kbroker, topic))  # XFL 4: fastest

    resource = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[
        ConfigEntry("compression.gzip.level", "9", incremental_operation=AlterConfigOpType.SET)])
    admin.incremental_alter_configs([resource])[resource].result(30)

    def last_batch_at_level_9() -> bool:
        # The broker applies the change on its notification: until then appends keep level 1.
        produce(kbroker, topic, varied_text(20, words_per_value=40, seed=12))
        return stored_batches(kbroker, topic)[-1][1][8] == 2  # XFL 2: best compression

    eventually(last_batch_at_level_9, what="appends at the altered level", timeout=20)
    assert_stored_at_level(stored_batches(kbroker, topic)[-1:], "gzip", 9)


@pytest.mark.parametrize(("setting", "reason"), [
    ("compression.zstd.level=23", "Value must be no more than 22"),
    ("compression.gzip.level=0", "Value must be between 1 and 9 or equal to -1"),
])
def test_a_broker_level_out_of_range_stops_the_start(broker_factory, setting, reason):
    broker = broker_factory.start(setting, start=False)
    with pytest.raises(BrokerFailed):
        broker.start()
    name, _, value = setting.partition("=")
    assert broker.process.returncode != 0
    assert f"Invalid value {value} for configuration {name}: {reason}" in broker.output()


def test_broker_levels_in_range_are_accepted(broker_factory):
    """No longer refused as a missing feature: the broker starts and reports them."""
    broker = broker_factory.start("compression.lz4.level=17", "compression.zstd.level=-131072")
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    resource = ConfigResource(ConfigResource.Type.BROKER, "0")
    entries = admin.describe_configs([resource])[resource].result(30)
    assert entries["compression.lz4.level"].value == "17"
    assert entries["compression.zstd.level"].value == "-131072"
