"""confluent-kafka (librdkafka) against a real kbroker: produce and read back thousands of records
with every codec, list offsets by time (consumer and admin), and topic administration through
AdminClient, including the errors Kafka gives.

Records go to explicit partitions with explicit timestamps (kbroker/testing/records.py), so every
offset is known in advance; what is read back must equal what was sent, in order, byte for byte.
"""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicCollection, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
    OffsetSpec,
    ResourceType,
)

from kbroker.testing.raw_client import expect_librdkafka_lz4_fallback
from kbroker.testing.records import (
    CODEC_IDS,
    assert_codec_used,
    expected_lists,
    first_offset_at_or_after,
    sample_records,
)

PARTITIONS = 3
RECORDS_PER_CODEC = 2000
TIMEOUT_S = 15


@pytest.fixture(scope="module")
def kbroker(module_broker_factory):
    return module_broker_factory(f"num.partitions={PARTITIONS}")


@pytest.fixture
def admin(kbroker):
    return AdminClient({"bootstrap.servers": kbroker.bootstrap, "socket.timeout.ms": TIMEOUT_S * 1000})


def produce(kbroker, topic: str, records, compression: str) -> list[tuple[int, int]]:
    """Send every record to its partition (idempotent producer); returns (partition, offset) acks."""
    acks: list[tuple[int, int]] = []
    errors: list[KafkaError] = []

    def delivered(err, msg) -> None:
        if err is not None:
            errors.append(err)
        else:
            acks.append((msg.partition(), msg.offset()))

    producer = Producer(
        {
            "bootstrap.servers": kbroker.bootstrap,
            "compression.type": compression,
            "enable.idempotence": True,
            "linger.ms": 5,
        }
    )
    for r in records:
        producer.produce(
            topic,
            value=r.value,
            key=r.key,
            partition=r.partition,
            timestamp=r.timestamp,
            headers=list(r.headers),
            on_delivery=delivered,
        )
        producer.poll(0)
    remaining = producer.flush(TIMEOUT_S)
    assert remaining == 0 and not errors, f"{remaining} undelivered, errors: {errors[:5]}"
    return acks


def new_consumer(kbroker) -> Consumer:
    # A group id is mandatory for this client; partitions are assigned by hand, never committed.
    return Consumer(
        {"bootstrap.servers": kbroker.bootstrap, "group.id": "data-path", "enable.auto.commit": False}
    )


def consume_all(kbroker, topic: str, counts: dict[int, int]) -> dict[int, list]:
    consumer = new_consumer(kbroker)
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in counts])
        got: dict[int, list] = {p: [] for p in counts}
        deadline = time.monotonic() + TIMEOUT_S
        while any(len(got[p]) < n for p, n in counts.items()) and time.monotonic() < deadline:
            for message in consumer.consume(num_messages=1000, timeout=0.5):
                assert message.error() is None, message.error()
                got[message.partition()].append(message)
        return got
    finally:
        consumer.close()


@pytest.mark.parametrize("codec", list(CODEC_IDS))
def test_produce_and_read_back_every_record(request, kbroker, codec):
    expect_librdkafka_lz4_fallback(request, kbroker.port, codec)
    topic = f"ck-roundtrip-{codec}"
    records = sample_records(RECORDS_PER_CODEC, PARTITIONS, seed=10 + CODEC_IDS[codec])
    expected = expected_lists(records)

    acks = produce(kbroker, topic, records, codec)
    got = consume_all(kbroker, topic, {p: len(rs) for p, rs in expected.items()})

    for partition, want in expected.items():
        assert sorted(o for p, o in acks if p == partition) == list(range(len(want)))
        messages = got[partition]
        assert [m.offset() for m in messages] == list(range(len(want)))
        assert [(m.key(), m.value(), tuple(m.headers() or ()), m.timestamp()[1]) for m in messages] == want
    assert_codec_used(kbroker.log_dir, topic, PARTITIONS, codec)


def test_offsets_for_times_and_watermarks(kbroker):
    topic = "ck-times"
    records = sample_records(1200, PARTITIONS, seed=98)
    produce(kbroker, topic, records, "lz4")
    middle = records[len(records) // 2].timestamp + 1
    counts = {p: sum(1 for r in records if r.partition == p) for p in range(PARTITIONS)}

    consumer = new_consumer(kbroker)
    try:
        found = consumer.offsets_for_times(
            [TopicPartition(topic, p, middle) for p in range(PARTITIONS)], timeout=TIMEOUT_S
        )
        after_the_end = consumer.offsets_for_times(
            [TopicPartition(topic, p, records[-1].timestamp + 1) for p in range(PARTITIONS)],
            timeout=TIMEOUT_S,
        )
        watermarks = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=TIMEOUT_S)
            for p in range(PARTITIONS)
        }
    finally:
        consumer.close()

    assert {tp.partition: tp.offset for tp in found} == {
        p: first_offset_at_or_after(records, p, middle) for p in range(PARTITIONS)
    }
    assert {tp.partition: tp.offset for tp in after_the_end} == dict.fromkeys(range(PARTITIONS), -1)
    assert watermarks == {p: (0, n) for p, n in counts.items()}


def test_admin_list_offsets(kbroker, admin):
    topic = "ck-list-offsets"
    records = sample_records(900, PARTITIONS, seed=97)
    produce(kbroker, topic, records, "zstd")
    middle = records[len(records) // 2].timestamp + 1
    counts = {p: sum(1 for r in records if r.partition == p) for p in range(PARTITIONS)}

    def list_offsets(spec: OffsetSpec) -> dict[int, int]:
        futures = admin.list_offsets({TopicPartition(topic, p): spec for p in range(PARTITIONS)})
        return {tp.partition: f.result(timeout=TIMEOUT_S).offset for tp, f in futures.items()}

    assert list_offsets(OffsetSpec.earliest()) == dict.fromkeys(range(PARTITIONS), 0)
    assert list_offsets(OffsetSpec.latest()) == counts
    assert list_offsets(OffsetSpec.for_timestamp(middle)) == {
        p: first_offset_at_or_after(records, p, middle) for p in range(PARTITIONS)
    }
    # The record with the largest timestamp is the last one produced to each partition.
    assert list_offsets(OffsetSpec.max_timestamp()) == {p: n - 1 for p, n in counts.items()}


# --- topic administration ---------------------------------------------------------------------


def result_of(futures: dict, key):
    return futures[key].result(timeout=TIMEOUT_S)


def error_code_of(future) -> int:
    with pytest.raises(KafkaException) as raised:
        future.result(timeout=TIMEOUT_S)
    return raised.value.args[0].code()


def topic_configs(admin, topic: str) -> dict[str, ConfigEntry]:
    resource = ConfigResource(ResourceType.TOPIC, topic)
    return result_of(admin.describe_configs([resource]), resource)


def test_create_describe_alter_grow_delete_a_topic(admin):
    topic = "ck-admin"
    result_of(
        admin.create_topics(
            [NewTopic(topic, num_partitions=2, replication_factor=1, config={"retention.ms": "3600000"})]
        ),
        topic,
    )

    description = result_of(admin.describe_topics(TopicCollection([topic])), topic)
    assert [p.id for p in description.partitions] == [0, 1]
    assert all([r.id for r in p.replicas] == [p.leader.id] for p in description.partitions)

    configs = topic_configs(admin, topic)
    assert configs["retention.ms"].value == "3600000"
    assert configs["retention.ms"].source == 1  # DYNAMIC_TOPIC_CONFIG
    assert configs["cleanup.policy"].value == "delete"

    change = ConfigResource(
        ResourceType.TOPIC,
        topic,
        incremental_configs=[
            ConfigEntry("retention.ms", "60000", incremental_operation=AlterConfigOpType.SET),
            ConfigEntry("max.message.bytes", "5000", incremental_operation=AlterConfigOpType.SET),
        ],
    )
    result_of(admin.incremental_alter_configs([change]), change)
    configs = topic_configs(admin, topic)
    assert (configs["retention.ms"].value, configs["max.message.bytes"].value) == ("60000", "5000")

    result_of(admin.create_partitions([NewPartitions(topic, 4)]), topic)
    description = result_of(admin.describe_topics(TopicCollection([topic])), topic)
    assert [p.id for p in description.partitions] == [0, 1, 2, 3]

    result_of(admin.delete_topics([topic]), topic)
    assert topic not in admin.list_topics(timeout=TIMEOUT_S).topics


def test_create_topic_errors(admin):
    result_of(admin.create_topics([NewTopic("ck.collide", 1, 1)]), "ck.collide")
    attempts = {
        "ck.collide": NewTopic("ck.collide", 1, 1),
        "ck_collide": NewTopic("ck_collide", 1, 1),
        "ck-rf3": NewTopic("ck-rf3", 1, 3),
        "ck bad": NewTopic("ck bad", 1, 1),
        "ck-bad-config": NewTopic("ck-bad-config", 1, 1, config={"retention.ms": "soon"}),
    }
    futures = admin.create_topics(list(attempts.values()))

    assert {name: error_code_of(futures[name]) for name in attempts} == {
        "ck.collide": KafkaError.TOPIC_ALREADY_EXISTS,
        "ck_collide": KafkaError.TOPIC_EXCEPTION,
        "ck-rf3": KafkaError.INVALID_REPLICATION_FACTOR,
        "ck bad": KafkaError.TOPIC_EXCEPTION,
        "ck-bad-config": KafkaError.INVALID_CONFIG,
    }
    listed = admin.list_topics(timeout=TIMEOUT_S).topics
    assert not {"ck_collide", "ck-rf3", "ck bad", "ck-bad-config"} & set(listed)


def test_delete_unknown_topic_and_shrink_partitions(admin):
    result_of(admin.create_topics([NewTopic("ck-two", 2, 1)]), "ck-two")

    assert error_code_of(admin.delete_topics(["ck-never-created"])["ck-never-created"]) == (
        KafkaError.UNKNOWN_TOPIC_OR_PART
    )
    assert error_code_of(admin.create_partitions([NewPartitions("ck-two", 1)])["ck-two"]) == (
        KafkaError.INVALID_PARTITIONS
    )


def test_delete_records_moves_the_earliest_offset(kbroker, admin):
    topic = "ck-delete-records"
    records = sample_records(300, 1, seed=96)
    produce(kbroker, topic, records, "none")

    futures = admin.delete_records([TopicPartition(topic, 0, 120)])
    deleted = next(iter(futures.values())).result(timeout=TIMEOUT_S)
    consumer = new_consumer(kbroker)
    try:
        watermarks = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=TIMEOUT_S)
    finally:
        consumer.close()

    assert deleted.low_watermark == 120
    assert watermarks == (120, 300)
