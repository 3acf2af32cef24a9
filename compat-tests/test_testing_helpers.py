"""kbroker.testing's public part, as a user's test suite uses it: KafkaBroker (with, async with,
threads, a 3-broker cluster with ZooKeeper), its settings, and the pytest plugin's fixtures
loaded by entry point in a separate pytest run. Real brokers, real clients, real processes.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient

from kbroker.testing import KafkaBroker
from kbroker.testing.broker import _setting_overrides
from kbroker.testing.plugin import MAX_TOPIC_NAME, topic_name_for
from kbroker.testing.zookeeper import zookeeper_unavailable_reason

TIMEOUT_S = 30


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/status").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text()


def roundtrip(bootstrap: str, topic: str, values: list[bytes]) -> list[bytes]:
    producer = Producer({"bootstrap.servers": bootstrap})
    for value in values:
        producer.produce(topic, value)
    assert producer.flush(TIMEOUT_S) == 0
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"g-{uuid.uuid4().hex[:6]}",
                         "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    got: list[bytes] = []
    try:
        while len(got) < len(values):
            message = consumer.poll(TIMEOUT_S)
            assert message is not None, f"only {len(got)} of {len(values)} records came back"
            assert message.error() is None, message.error()
            got.append(message.value())
    finally:
        consumer.close()
    return got


def partition_count(bootstrap: str, topic: str) -> int:
    metadata = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic, timeout=TIMEOUT_S)
    return len(metadata.topics[topic].partitions)


def test_settings_become_kafka_keys():
    overrides = _setting_overrides({"log.retention.ms": 5}, {"num_partitions": 3, "auto_create_topics_enable": False,
                                                              "log_dirs": ["/a", "/b"]})

    assert sorted(overrides) == ["auto.create.topics.enable=false", "log.dirs=/a,/b", "log.retention.ms=5",
                                 "num.partitions=3"]


def test_topic_names_are_legal_unique_and_bounded():
    first, second = topic_name_for("test_x[gzip-1]"), topic_name_for("test_x[gzip-1]")
    longest = topic_name_for("t" * 400)

    assert first != second
    assert first.startswith("test_x-gzip-1-")
    assert len(longest) == MAX_TOPIC_NAME
    assert all(c.isalnum() or c in "._-" for c in first + longest)


def test_broker_serves_clients_with_its_settings_then_leaves_nothing_behind():
    with KafkaBroker(num_partitions=3) as broker:
        process = broker.processes[0]
        data_root = process.workdir.parent
        got = roundtrip(broker.bootstrap_servers, "auto-created", [b"a", b"b", b"c"])

        assert sorted(got) == [b"a", b"b", b"c"]
        assert partition_count(broker.bootstrap_servers, "auto-created") == 3  # num.partitions applied
        assert pid_alive(process.process.pid)

    assert not pid_alive(process.process.pid)
    assert not data_root.exists()


def test_create_topic_with_config_and_a_given_data_dir(tmp_path):
    with KafkaBroker(data_dir=tmp_path / "kb", auto_create_topics_enable=False) as broker:
        broker.create_topic("compacted", partitions=2, config={"cleanup.policy": "compact"})

        admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
        from confluent_kafka.admin import ConfigResource

        resource = ConfigResource(ConfigResource.Type.TOPIC, "compacted")
        configs = admin.describe_configs([resource])[resource].result(TIMEOUT_S)

        assert configs["cleanup.policy"].value == "compact"
        assert partition_count(broker.bootstrap_servers, "compacted") == 2
        with pytest.raises(AssertionError, match="error 36"):  # TOPIC_ALREADY_EXISTS
            broker.create_topic("compacted")

    assert (tmp_path / "kb").exists()  # a directory the caller gave is the caller's to remove


def test_start_from_many_threads_starts_one_broker():
    broker = KafkaBroker()
    threads = [threading.Thread(target=broker.start) for _ in range(4)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(TIMEOUT_S)

        assert len(broker.processes) == 1
        assert roundtrip(broker.bootstrap_servers, "threads", [b"x"]) == [b"x"]
    finally:
        broker.stop()
    with pytest.raises(RuntimeError, match="not started"):
        _ = broker.bootstrap_servers


def test_async_with_serves_an_asyncio_client():
    async def scenario() -> tuple[list[bytes], int]:
        async with KafkaBroker() as broker:
            producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers)
            await producer.start()
            try:
                await producer.send_and_wait("aio", b"hello")
            finally:
                await producer.stop()
            consumer = AIOKafkaConsumer("aio", bootstrap_servers=broker.bootstrap_servers,
                                        auto_offset_reset="earliest")
            await consumer.start()
            try:
                message = await asyncio.wait_for(consumer.getone(), TIMEOUT_S)
            finally:
                await consumer.stop()
            return [message.value], broker.processes[0].process.pid

    values, pid = asyncio.run(scenario())

    assert values == [b"hello"]
    assert not pid_alive(pid)


@pytest.mark.timeout(240)
def test_cluster_of_three_with_zookeeper():
    reason = zookeeper_unavailable_reason()
    if reason:
        pytest.skip(reason)
    with KafkaBroker(brokers=3) as cluster:
        pids = [p.process.pid for p in cluster.processes]
        cluster.create_topic("replicated", partitions=2, replication_factor=3)
        metadata = AdminClient({"bootstrap.servers": cluster.bootstrap_servers}).list_topics(timeout=TIMEOUT_S)

        assert sorted(metadata.brokers) == [1, 2, 3]
        assert all(sorted(p.replicas) == [1, 2, 3] for p in metadata.topics["replicated"].partitions.values())
        assert cluster.zookeeper_connect and cluster.zookeeper_connect.startswith("127.0.0.1:")
        zookeeper_pid = cluster._zookeeper.proc.pid
        assert roundtrip(cluster.bootstrap_servers, "replicated", [b"1", b"2"]) in ([b"1", b"2"], [b"2", b"1"])

    assert not any(pid_alive(pid) for pid in [*pids, zookeeper_pid])


PLUGIN_USER_TESTS = '''
import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient


@pytest.fixture(scope="session")
def kafka_broker_settings():
    return {"num.partitions": 2}


def test_a_topic_of_my_own(kafka_broker, kafka_topic):
    producer = Producer({"bootstrap.servers": kafka_broker.bootstrap_servers})
    producer.produce(kafka_topic, b"v")
    assert producer.flush(30) == 0
    topics = AdminClient({"bootstrap.servers": kafka_broker.bootstrap_servers}).list_topics(timeout=30).topics
    assert kafka_topic in topics and len(topics[kafka_topic].partitions) == 1


@pytest.mark.kafka_topic(partitions=4, config={"cleanup.policy": "compact"})
def test_a_shaped_topic(kafka_broker, kafka_topic):
    topics = AdminClient({"bootstrap.servers": kafka_broker.bootstrap_servers}).list_topics(timeout=30).topics
    assert len(topics[kafka_topic].partitions) == 4


def test_the_session_settings(kafka_broker):
    producer = Producer({"bootstrap.servers": kafka_broker.bootstrap_servers})
    producer.produce("auto-made", b"v")
    assert producer.flush(30) == 0
    topics = AdminClient({"bootstrap.servers": kafka_broker.bootstrap_servers}).list_topics(timeout=30).topics
    assert len(topics["auto-made"].partitions) == 2


def test_one_broker_for_the_session(kafka_broker, request):
    assert request.getfixturevalue("kafka_broker") is kafka_broker
'''


@pytest.mark.timeout(180)
def test_pytest_plugin_by_entry_point(tmp_path):
    """A user's suite with no conftest line: the fixtures come from kbroker's pytest11 entry point."""
    (tmp_path / "test_user.py").write_text(PLUGIN_USER_TESTS)

    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", str(tmp_path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=170)

    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "4 passed" in completed.stdout
