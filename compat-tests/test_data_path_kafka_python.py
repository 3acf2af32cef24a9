"""kafka-python against a real kbroker: produce and read back thousands of records with every
codec, list offsets by time, and topic administration through KafkaAdminClient.

Records are produced to explicit partitions with explicit timestamps (kbroker/testing/records.py), so
the offset of each record and the offset a timestamp maps to are known in advance; what is read
back must equal what was sent, in order, byte for byte, and the batches on disk must carry the
codec the producer was asked for.
"""

from __future__ import annotations

import time

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewPartitions, NewTopic
from kafka.errors import (
    InvalidReplicationFactorError,
    InvalidTopicError,
    TopicAlreadyExistsError,
    UnknownTopicOrPartitionError,
)

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
    """Auto-created topics get PARTITIONS partitions."""
    return module_broker_factory(f"num.partitions={PARTITIONS}")


@pytest.fixture
def admin(kbroker):
    client = KafkaAdminClient(bootstrap_servers=kbroker.bootstrap, request_timeout_ms=TIMEOUT_S * 1000)
    yield client
    client.close()


def produce(kbroker, topic: str, records, compression: str | None) -> list[tuple[int, int]]:
    """Send every record to its partition; returns (partition, offset) of each acknowledgement."""
    producer = KafkaProducer(
        bootstrap_servers=kbroker.bootstrap,
        compression_type=compression,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        request_timeout_ms=TIMEOUT_S * 1000,
    )
    try:
        futures = [
            producer.send(
                topic,
                key=r.key,
                value=r.value,
                headers=list(r.headers),
                partition=r.partition,
                timestamp_ms=r.timestamp,
            )
            for r in records
        ]
        producer.flush(timeout=TIMEOUT_S)
        return [(m.partition, m.offset) for m in (f.get(timeout=TIMEOUT_S) for f in futures)]
    finally:
        producer.close(timeout=5)


def consume_all(kbroker, topic: str, counts: dict[int, int]) -> dict[int, list]:
    """Read each partition from offset 0 until `counts[p]` records arrived; returns them with offsets."""
    consumer = KafkaConsumer(bootstrap_servers=kbroker.bootstrap, group_id=None, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in counts]
        consumer.assign(partitions)
        for tp in partitions:
            consumer.seek(tp, 0)
        got: dict[int, list] = {p: [] for p in counts}
        deadline = time.monotonic() + TIMEOUT_S
        while any(len(got[p]) < n for p, n in counts.items()) and time.monotonic() < deadline:
            for tp, messages in consumer.poll(timeout_ms=500).items():
                got[tp.partition] += messages
        return got
    finally:
        consumer.close()


@pytest.mark.parametrize("codec", list(CODEC_IDS))
def test_produce_and_read_back_every_record(kbroker, codec):
    topic = f"kp-roundtrip-{codec}"
    records = sample_records(RECORDS_PER_CODEC, PARTITIONS, seed=CODEC_IDS[codec])
    expected = expected_lists(records)

    acks = produce(kbroker, topic, records, None if codec == "none" else codec)
    got = consume_all(kbroker, topic, {p: len(rs) for p, rs in expected.items()})

    # Each partition's acknowledgements count 0, 1, 2... in send order.
    for partition, want in expected.items():
        assert [o for p, o in acks if p == partition] == list(range(len(want)))
    for partition, want in expected.items():
        messages = got[partition]
        assert [m.offset for m in messages] == list(range(len(want)))
        assert [(m.key, m.value, tuple(m.headers), m.timestamp) for m in messages] == want
        assert {m.timestamp_type for m in messages} == {0}  # CreateTime
    assert_codec_used(kbroker.log_dir, topic, PARTITIONS, codec)


def test_offsets_for_times_earliest_and_latest(kbroker):
    topic = "kp-times"
    records = sample_records(1200, PARTITIONS, seed=99)
    produce(kbroker, topic, records, "gzip")
    middle = records[len(records) // 2].timestamp + 1  # between two records of one partition
    partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]

    consumer = KafkaConsumer(bootstrap_servers=kbroker.bootstrap, group_id=None)
    try:
        found = consumer.offsets_for_times({tp: middle for tp in partitions})
        after_the_end = consumer.offsets_for_times({tp: records[-1].timestamp + 1 for tp in partitions})
        beginning = consumer.beginning_offsets(partitions)
        end = consumer.end_offsets(partitions)
    finally:
        consumer.close()

    for tp in partitions:
        offset = first_offset_at_or_after(records, tp.partition, middle)
        assert found[tp].offset == offset
        assert found[tp].timestamp == [r for r in records if r.partition == tp.partition][offset].timestamp
        assert after_the_end[tp] is None
        assert beginning[tp] == 0
        assert end[tp] == len([r for r in records if r.partition == tp.partition])


# --- topic administration ---------------------------------------------------------------------


def test_create_describe_alter_grow_delete_a_topic(admin):
    topic = "kp-admin"
    created = admin.create_topics([NewTopic(topic, 2, 1, topic_configs={"retention.ms": "3600000"})])
    assert [(t["name"], t["error_code"], t["num_partitions"]) for t in created["topics"]] == [(topic, 0, 2)]

    described = admin.describe_topics([topic])
    assert [p["partition_index"] for p in described[0]["partitions"]] == [0, 1]
    assert all(p["replica_nodes"] == [p["leader_id"]] for p in described[0]["partitions"])

    resource = ConfigResource(ConfigResourceType.TOPIC, topic)
    configs = admin.describe_configs([resource])["topic"][topic]
    assert configs["retention.ms"]["value"] == "3600000"
    assert configs["retention.ms"]["config_source"] == "DYNAMIC_TOPIC_CONFIG"

    altered = ConfigResource(ConfigResourceType.TOPIC, topic, configs={"retention.ms": "60000"})
    admin.alter_configs([altered])
    assert admin.describe_configs([resource])["topic"][topic]["retention.ms"]["value"] == "60000"

    admin.create_partitions({topic: NewPartitions(5)})
    assert len(admin.describe_topics([topic])[0]["partitions"]) == 5

    admin.delete_topics([topic])
    assert topic not in admin.list_topics()


@pytest.mark.parametrize(
    ("new_topic", "error"),
    [
        (NewTopic("kp-rf3", 1, 3), InvalidReplicationFactorError),
        (NewTopic("bad name", 1, 1), InvalidTopicError),
        (NewTopic("x" * 250, 1, 1), InvalidTopicError),
        (NewTopic("..", 1, 1), InvalidTopicError),
    ],
    ids=["replication-factor-3", "space", "too-long", "dot-dot"],
)
def test_create_topic_errors(admin, new_topic, error):
    with pytest.raises(error):
        admin.create_topics([new_topic])
    assert new_topic.name not in admin.list_topics()


def test_create_existing_and_colliding_topics(admin):
    admin.create_topics([NewTopic("kp.collide", 1, 1)])

    with pytest.raises(TopicAlreadyExistsError):
        admin.create_topics([NewTopic("kp.collide", 1, 1)])
    with pytest.raises(InvalidTopicError, match="collides"):
        admin.create_topics([NewTopic("kp_collide", 1, 1)])
    assert "kp_collide" not in admin.list_topics()


def test_delete_unknown_topic(admin):
    with pytest.raises(UnknownTopicOrPartitionError):
        admin.delete_topics(["kp-never-created"])
