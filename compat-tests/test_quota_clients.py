"""Client quotas as real clients see them (issue 12, Quotas): confluent-kafka (librdkafka)
producers and consumers are throttled by a 1 MB/s quota set with AlterClientQuotas: the broker
reports throttle_time_ms (librdkafka's throttle_cb) and the bytes moved stay near the quota over
the elapsed time (generous bounds); a SASL user's quota applies to that user only; a quota written
through one broker of a 3-broker cluster with ZooKeeper is stored in Kafka's znodes and enforced
by every broker. Quotas have no client API in confluent-kafka or kafka-python: they are set
with kbroker's codec (kbroker/testing/raw_client.py), as `kbroker configs` does.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest
from confluent_kafka import Consumer, Producer

from kbroker.protocol.api_keys import ApiKey
from kbroker.testing.cluster import KafkaCluster
from kbroker.testing.processes import free_port
from kbroker.testing.raw_client import RawClient, create_topic
from kbroker.testing.sasl import ADMIN, client_config, sasl_listener_overrides
from kbroker.testing.waiting import eventually

pytestmark = pytest.mark.timeout(300)
MB = 1_000_000
QUOTA = 1 * MB  # bytes per second
TOTAL = 5 * MB
MESSAGE = b"q" * 10_000
# Two one-second samples: the rate is measured over about a second, so little data shows it.
WINDOW_OVERRIDES = ("quota.window.num=2", "quota.window.size.seconds=1")


def alter(port: int, entity: dict[str, str | None], **ops: float | None) -> None:
    body = {"entries": [{"entity": [{"entity_type": t, "entity_name": n} for t, n in entity.items()],
                         "ops": [{"key": k, "value": v or 0.0, "remove": v is None} for k, v in ops.items()]}],
            "validate_only": False}
    with RawClient(port) as client:
        [entry] = client.call(ApiKey.ALTER_CLIENT_QUOTAS, 1, body)["entries"]
    assert entry["error_code"] == 0, entry


def describe(port: int, entity_type: str, name: str) -> list[dict]:
    body = {"components": [{"entity_type": entity_type, "match_type": 0, "match": name}], "strict": True}
    with RawClient(port) as client:
        return client.call(ApiKey.DESCRIBE_CLIENT_QUOTAS, 1, body)["entries"]


@pytest.fixture(scope="module")
def broker(module_broker_factory):
    return module_broker_factory(*WINDOW_OVERRIDES)


def produce_all(config: dict, topic: str, total: int) -> tuple[float, list[int]]:
    """Writes `total` bytes of 10 kB records as fast as librdkafka lets it; (seconds, throttles)."""
    throttles: list[int] = []
    producer = Producer({**config, "throttle_cb": lambda event: throttles.append(event.throttle_time),
                         "linger.ms": 5, "acks": 1})
    started = time.monotonic()
    for _ in range(total // len(MESSAGE)):
        while True:
            try:
                producer.produce(topic, MESSAGE)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    assert producer.flush(120) == 0
    return time.monotonic() - started, throttles


def test_a_producer_over_its_quota_is_throttled_and_bounded(broker):
    topic = f"quota-produce-{uuid.uuid4().hex[:6]}"
    create_topic(broker.port, topic)
    alter(broker.port, {"client-id": "quota-producer"}, producer_byte_rate=float(QUOTA))

    elapsed, throttles = produce_all({"bootstrap.servers": broker.bootstrap, "client.id": "quota-producer"},
                                     topic, TOTAL)

    assert throttles and max(throttles) > 0  # the broker's throttle_time_ms, as librdkafka reports it
    # Without the quota this takes well under a second; with it, the rate stays near 1 MB/s
    # (one window's burst allowed): at least half of TOTAL / QUOTA, a generous bound.
    assert elapsed >= TOTAL / QUOTA / 2


def test_a_consumer_over_its_quota_is_throttled_and_bounded(broker):
    topic = f"quota-fetch-{uuid.uuid4().hex[:6]}"
    create_topic(broker.port, topic)
    produce_all({"bootstrap.servers": broker.bootstrap, "client.id": "unlimited"}, topic, TOTAL)
    alter(broker.port, {"client-id": "quota-consumer"}, consumer_byte_rate=float(QUOTA))
    throttles: list[int] = []
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "client.id": "quota-consumer",
                         "group.id": f"g-{topic}", "auto.offset.reset": "earliest",
                         "throttle_cb": lambda event: throttles.append(event.throttle_time)})
    try:
        consumer.subscribe([topic])
        received, started = 0, time.monotonic()
        deadline = started + 120
        while received < TOTAL and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                received += len(message.value())
        elapsed = time.monotonic() - started
    finally:
        consumer.close()

    assert received == TOTAL
    assert throttles and max(throttles) > 0
    assert elapsed >= TOTAL / QUOTA / 2


def test_a_quota_change_applies_without_restart(broker):
    topic = f"quota-change-{uuid.uuid4().hex[:6]}"
    create_topic(broker.port, topic)
    config = {"bootstrap.servers": broker.bootstrap, "client.id": "changing"}
    alter(broker.port, {"client-id": "changing"}, producer_byte_rate=float(QUOTA))
    _, throttles = produce_all(config, topic, 3 * MB)
    assert throttles and max(throttles) > 0

    alter(broker.port, {"client-id": "changing"}, producer_byte_rate=None)
    _, throttles = produce_all(config, topic, 3 * MB)
    assert not any(throttles)


@pytest.fixture(scope="module")
def sasl_broker(module_broker_factory):
    port, sasl_port = free_port(), free_port()
    broker = module_broker_factory(*sasl_listener_overrides(port, sasl_port, mechanisms=("PLAIN",)),
                                   *WINDOW_OVERRIDES, port=port)
    broker.sasl_bootstrap = f"127.0.0.1:{sasl_port}"
    return broker


def test_a_sasl_users_quota_applies_to_that_user_only(sasl_broker):
    topic = f"quota-user-{uuid.uuid4().hex[:6]}"
    create_topic(sasl_broker.port, topic)
    alter(sasl_broker.port, {"user": "alice"}, producer_byte_rate=float(QUOTA))
    assert describe(sasl_broker.port, "user", "alice")[0]["values"] == [{"key": "producer_byte_rate",
                                                                        "value": float(QUOTA)}]

    _, alice = produce_all(client_config(sasl_broker.sasl_bootstrap, "PLAIN", "alice", "alice-secret"),
                           topic, 3 * MB)
    _, admin = produce_all(client_config(sasl_broker.sasl_bootstrap, "PLAIN", *ADMIN), topic, 3 * MB)

    assert alice and max(alice) > 0
    assert not any(admin)


def test_a_quota_written_through_one_broker_is_enforced_by_every_broker(zookeeper, broker_factory):
    with KafkaCluster(broker_factory, zookeeper) as cluster:
        # RawClient's client id, with a request quota so small that any request exceeds it.
        alter(cluster.brokers[1].port, {"client-id": "data-path-tests"}, request_percentage=0.001)

        stored = json.loads(cluster.zk.get("/config/clients/data-path-tests")[0])
        assert stored == {"version": 1, "config": {"request_percentage": "0.001"}}
        changes = [json.loads(cluster.zk.get(f"/config/changes/{c}")[0])
                   for c in cluster.zk.get_children("/config/changes")]
        assert {"version": 2, "entity_path": "clients/data-path-tests"} in changes
        for broker_id in (2, 3):
            port = cluster.brokers[broker_id].port
            assert describe(port, "client-id", "data-path-tests")[0]["values"] == [
                {"key": "request_percentage", "value": 0.001}]

            def throttled(port: int = port) -> int:
                with RawClient(port) as client:
                    answer = client.call(ApiKey.METADATA, 12, {"topics": None, "allow_auto_topic_creation": False,
                                                               "include_topic_authorized_operations": False})
                    answer = client.call(ApiKey.METADATA, 12, {"topics": None, "allow_auto_topic_creation": False,
                                                               "include_topic_authorized_operations": False})
                return answer["throttle_time_ms"]

            assert eventually(throttled, what=f"broker {broker_id} to throttle", timeout=20) > 0
