"""aiokafka against a real kbroker: produce and read back thousands of records with every codec,
list offsets by time, and topic administration through AIOKafkaAdminClient, whose calls return
the raw responses, so the error codes Kafka defines are checked directly.

Records go to explicit partitions with explicit timestamps (kbroker/testing/records.py), so every
offset is known in advance; what is read back must equal what was sent, in order, byte for byte.

The data-path tests run on the session's broker and a topic of their own, through the fixtures
kbroker's pytest plugin gives every user (`kafka_broker`, `kafka_topic`: kbroker/testing/plugin.py);
the administration tests start a broker of their own with num.partitions set.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic, RecordsToDelete
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import InvalidPartitionsError

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

NONE = 0
UNKNOWN_TOPIC_OR_PARTITION = 3
INVALID_TOPIC_EXCEPTION = 17
TOPIC_ALREADY_EXISTS = 36
INVALID_REPLICATION_FACTOR = 38
INVALID_REQUEST = 42
DYNAMIC_TOPIC_CONFIG = 1


@pytest.fixture(scope="module")
def kbroker(module_broker_factory):
    return module_broker_factory(f"num.partitions={PARTITIONS}")


async def produce(bootstrap: str, topic: str, records, compression: str | None) -> list[tuple[int, int]]:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        compression_type=compression,
        enable_idempotence=True,
        linger_ms=5,
        request_timeout_ms=TIMEOUT_S * 1000,
    )
    await producer.start()
    try:
        futures = [
            await producer.send(
                topic,
                value=r.value,
                key=r.key,
                partition=r.partition,
                timestamp_ms=r.timestamp,
                headers=list(r.headers),
            )
            for r in records
        ]
        metadata = await asyncio.wait_for(asyncio.gather(*futures), TIMEOUT_S)
        return [(m.partition, m.offset) for m in metadata]
    finally:
        await producer.stop()


def new_consumer(bootstrap: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)


async def consume_all(bootstrap: str, topic: str, counts: dict[int, int]) -> dict[int, list]:
    consumer = new_consumer(bootstrap)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in counts]
        consumer.assign(partitions)
        for tp in partitions:
            consumer.seek(tp, 0)
        got: dict[int, list] = {p: [] for p in counts}
        deadline = time.monotonic() + TIMEOUT_S
        while any(len(got[p]) < n for p, n in counts.items()) and time.monotonic() < deadline:
            for tp, messages in (await consumer.getmany(timeout_ms=500)).items():
                got[tp.partition] += messages
        return got
    finally:
        await consumer.stop()


@pytest.mark.kafka_topic(partitions=PARTITIONS)
@pytest.mark.parametrize("codec", list(CODEC_IDS))
def test_produce_and_read_back_every_record(kafka_broker, kafka_topic, codec):
    bootstrap, topic = kafka_broker.bootstrap_servers, kafka_topic
    records = sample_records(RECORDS_PER_CODEC, PARTITIONS, seed=20 + CODEC_IDS[codec])
    expected = expected_lists(records)

    acks = asyncio.run(produce(bootstrap, topic, records, None if codec == "none" else codec))
    got = asyncio.run(consume_all(bootstrap, topic, {p: len(rs) for p, rs in expected.items()}))

    for partition, want in expected.items():
        assert [o for p, o in acks if p == partition] == list(range(len(want)))
        messages = got[partition]
        assert [m.offset for m in messages] == list(range(len(want)))
        assert [(m.key, m.value, tuple(m.headers), m.timestamp) for m in messages] == want
    assert_codec_used(kafka_broker.processes[0].log_dir, topic, PARTITIONS, codec)


@pytest.mark.kafka_topic(partitions=PARTITIONS)
def test_offsets_for_times_earliest_and_latest(kafka_broker, kafka_topic):
    bootstrap, topic = kafka_broker.bootstrap_servers, kafka_topic
    records = sample_records(1200, PARTITIONS, seed=95)
    middle = records[len(records) // 2].timestamp + 1
    partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]

    async def scenario():
        await produce(bootstrap, topic, records, "snappy")
        consumer = new_consumer(bootstrap)
        await consumer.start()
        try:
            return (
                await consumer.offsets_for_times({tp: middle for tp in partitions}),
                await consumer.offsets_for_times({tp: records[-1].timestamp + 1 for tp in partitions}),
                await consumer.beginning_offsets(partitions),
                await consumer.end_offsets(partitions),
            )
        finally:
            await consumer.stop()

    found, after_the_end, beginning, end = asyncio.run(scenario())

    for tp in partitions:
        assert found[tp].offset == first_offset_at_or_after(records, tp.partition, middle)
        assert after_the_end[tp] is None
        assert beginning[tp] == 0
        assert end[tp] == sum(1 for r in records if r.partition == tp.partition)


# --- topic administration ---------------------------------------------------------------------


async def with_admin_async(kbroker, work):
    """`await work(admin)` with a started AIOKafkaAdminClient."""
    admin = AIOKafkaAdminClient(bootstrap_servers=kbroker.bootstrap, request_timeout_ms=TIMEOUT_S * 1000)
    await admin.start()
    try:
        return await work(admin)
    finally:
        await admin.close()


def with_admin(kbroker, work):
    return asyncio.run(with_admin_async(kbroker, work))


def topic_errors(response) -> dict[str, int]:
    return {entry[0]: entry[1] for entry in response.topic_errors}


async def topic_config(admin, topic: str, name: str) -> tuple[str, int]:
    """(value, source) of one topic setting through DescribeConfigs."""
    [response] = await admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, topic, configs={name: None})]
    )
    [resource] = response.resources
    assert resource[0] == NONE, resource
    [entry] = resource[4]
    return entry[1], entry[3]


def test_create_describe_alter_grow_delete_a_topic(kbroker):
    topic = "aio-admin"

    async def work(admin):
        created = await admin.create_topics(
            [NewTopic(topic, 2, 1, topic_configs={"retention.ms": "3600000"})]
        )
        described = await admin.describe_topics([topic])
        before = await topic_config(admin, topic, "retention.ms")
        altered = await admin.alter_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic, configs={"retention.ms": "60000"})]
        )
        after = await topic_config(admin, topic, "retention.ms")
        grown = await admin.create_partitions({topic: NewPartitions(3)})
        regrown = await admin.describe_topics([topic])
        deleted = await admin.delete_topics([topic])
        return created, described, before, altered, after, grown, regrown, deleted, await admin.list_topics()

    created, described, before, altered, after, grown, regrown, deleted, listed = with_admin(kbroker, work)

    assert topic_errors(created) == {topic: NONE}
    assert [p["partition"] for p in described[0]["partitions"]] == [0, 1]
    assert before == ("3600000", DYNAMIC_TOPIC_CONFIG)
    assert [r[0] for r in altered[0].resources] == [NONE]
    assert after == ("60000", DYNAMIC_TOPIC_CONFIG)
    assert topic_errors(grown) == {topic: NONE}
    assert sorted(p["partition"] for p in regrown[0]["partitions"]) == [0, 1, 2]
    assert {t: e for t, e in deleted.topic_error_codes} == {topic: NONE}
    assert topic not in listed


def test_create_topic_errors(kbroker):
    async def work(admin):
        await admin.create_topics([NewTopic("aio.collide", 1, 1)])
        failed = await admin.create_topics(
            [
                NewTopic("aio.collide", 1, 1),
                NewTopic("aio_collide", 1, 1),
                NewTopic("aio-rf3", 1, 3),
                NewTopic("aio*star", 1, 1),
                NewTopic("aio-twice", 1, 1),
                NewTopic("aio-twice", 2, 1),
            ]
        )
        return failed, await admin.list_topics()

    failed, listed = with_admin(kbroker, work)

    assert topic_errors(failed) == {
        "aio.collide": TOPIC_ALREADY_EXISTS,
        "aio_collide": INVALID_TOPIC_EXCEPTION,
        "aio-rf3": INVALID_REPLICATION_FACTOR,
        "aio*star": INVALID_TOPIC_EXCEPTION,
        "aio-twice": INVALID_REQUEST,
    }
    assert not {"aio_collide", "aio-rf3", "aio*star", "aio-twice"} & set(listed)


def test_delete_unknown_topic_and_shrink_partitions(kbroker):
    async def work(admin):
        await admin.create_topics([NewTopic("aio-two", 2, 1)])
        deleted = await admin.delete_topics(["aio-never-created"])
        with pytest.raises(InvalidPartitionsError, match="already has 2 partitions"):
            await admin.create_partitions({"aio-two": NewPartitions(2)})
        return deleted

    deleted = with_admin(kbroker, work)

    assert {t: e for t, e in deleted.topic_error_codes} == {"aio-never-created": UNKNOWN_TOPIC_OR_PARTITION}


def test_delete_records_moves_the_earliest_offset(kbroker):
    topic = "aio-delete-records"
    tp = TopicPartition(topic, 0)
    records = sample_records(200, 1, seed=94)

    async def scenario():
        await produce(kbroker.bootstrap, topic, records, None)
        low = await with_admin_async(kbroker, lambda admin: admin.delete_records({tp: RecordsToDelete(150)}))
        consumer = new_consumer(kbroker.bootstrap)
        await consumer.start()
        try:
            return low, await consumer.beginning_offsets([tp]), await consumer.end_offsets([tp])
        finally:
            await consumer.stop()

    low, beginning, end = asyncio.run(scenario())

    assert low == {tp: 150}
    assert (beginning[tp], end[tp]) == (150, 200)
