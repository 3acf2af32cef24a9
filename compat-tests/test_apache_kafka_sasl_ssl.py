"""kbroker.testing.apache_kafka's SASL_SSL listener, checked on its own (scripts/bench's
`kafka+sasl_ssl` target relies on it): Apache Kafka 4.4 with a PKCS12 key store from
kbroker.testing.tls and the SCRAM-SHA-512 user `kafka-storage format --add-scram` wrote; a
confluent-kafka producer and consumer log in over it and get back what they wrote, a wrong
password is refused, and the PLAINTEXT listener keeps serving beside it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from kbroker.testing.apache_kafka import ApacheKafkaProcess, SaslSslListener, apache_kafka_unavailable_reason
from kbroker.testing.waiting import eventually

pytestmark = [pytest.mark.skipif(apache_kafka_unavailable_reason() is not None,
                                 reason=apache_kafka_unavailable_reason() or ""),
              pytest.mark.long_running]

RECORDS = 200
TIMEOUT_S = 60.0


@pytest.fixture(scope="module")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApacheKafkaProcess]:
    process = ApacheKafkaProcess(tmp_path_factory.mktemp("apache-kafka-sasl-ssl"), sasl_ssl=True).start()
    try:
        yield process
    finally:
        process.stop()


def listener(kafka: ApacheKafkaProcess) -> SaslSslListener:
    assert kafka.sasl_ssl is not None
    return kafka.sasl_ssl


def test_server_properties_keep_brokers_on_plaintext_and_clients_on_sasl_ssl(kafka):
    settings = dict(line.split("=", 1) for line in (kafka.workdir / "server.properties").read_text().splitlines())
    secure = listener(kafka)
    assert settings["listeners"].split(",")[:2] == [f"PLAINTEXT://{kafka.bootstrap}", f"SASL_SSL://{secure.bootstrap}"]
    assert settings["listener.security.protocol.map"] == "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL"
    assert settings["inter.broker.listener.name"] == "PLAINTEXT" and settings["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert Path(settings["listener.name.sasl_ssl.ssl.keystore.location"]) == secure.keystore


def test_confluent_kafka_produces_and_consumes_over_sasl_ssl_with_scram(kafka):
    config = listener(kafka).client_config()
    topic = "sasl-ssl-records"
    admin = AdminClient(config)  # kept: a destroyed client fails its futures
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(timeout=TIMEOUT_S)
    producer = Producer({**config, "acks": "all"})
    delivered: list[int] = []
    for i in range(RECORDS):
        producer.produce(topic, value=f"value-{i}".encode(),
                         on_delivery=lambda err, msg: delivered.append(msg.offset()) if err is None else None)
    assert producer.flush(TIMEOUT_S) == 0
    assert sorted(delivered) == list(range(RECORDS))
    assert read_values(config, topic, RECORDS) == [f"value-{i}".encode() for i in range(RECORDS)]


def test_the_plaintext_listener_still_serves_beside_it(kafka):
    plain = {"bootstrap.servers": kafka.bootstrap}
    producer = Producer(plain)
    producer.produce("plain-records", value=b"plain")
    assert producer.flush(TIMEOUT_S) == 0
    assert read_values(plain, "plain-records", 1) == [b"plain"]


def test_a_wrong_password_is_refused(kafka):
    errors: list[KafkaError] = []
    admin = AdminClient({**listener(kafka).client_config(), "sasl.password": "not-the-password",
                         "error_cb": errors.append})

    def refused() -> bool:
        admin.poll(0.1)  # error_cb runs from poll
        return any(error.code() == KafkaError._AUTHENTICATION for error in errors)

    eventually(refused, what="SASL authentication failed", timeout=TIMEOUT_S)
    assert "Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512" \
        in errors[0].str(), errors[0]


def read_values(config: dict[str, str], topic: str, count: int) -> list[bytes]:
    consumer = Consumer({**config, "group.id": f"{topic}-reader", "auto.offset.reset": "earliest",
                         "enable.auto.commit": False})
    consumer.subscribe([topic])
    values: list[bytes] = []

    def read_all() -> bool:
        for message in consumer.consume(500, timeout=0.5):
            assert message.error() is None, message.error()
            values.append(message.value())
        return len(values) >= count

    try:
        eventually(read_all, what=f"{count} records of {topic}", timeout=TIMEOUT_S)
    finally:
        consumer.close()
    return values
