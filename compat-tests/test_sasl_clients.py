"""Real clients over SASL_PLAINTEXT (issue 12, SASL): confluent-kafka, kafka-python, aiokafka,
KafkaJS and kcat each log in with PLAIN (a JAAS user) and with SCRAM-SHA-256 and SCRAM-SHA-512
(a user created through confluent-kafka's AlterUserScramCredentials), write and read back; the
admin clients of confluent-kafka and kafka-python create, describe and delete SCRAM users; a wrong password is refused as Kafka
refuses it; librdkafka re-authenticates (KIP-368) when connections.max.reauth.ms says so.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import (
    AdminClient,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)

from kbroker.testing.processes import free_port
from kbroker.testing.sasl import ADMIN, client_config, produce_across_sessions, sasl_listener_overrides
from kbroker.testing.tools import run_kafkajs, run_kcat
from kbroker.testing.waiting import eventually

pytestmark = pytest.mark.timeout(300)
REAUTH_MS = 3000
SCRAM_PASSWORD = "scram-pw"
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
SCRAM_TYPES = {"SCRAM-SHA-256": ScramMechanism.SCRAM_SHA_256, "SCRAM-SHA-512": ScramMechanism.SCRAM_SHA_512}


@pytest.fixture(scope="module")
def sasl_broker(module_broker_factory):
    port, sasl_port = free_port(), free_port()
    broker = module_broker_factory(*sasl_listener_overrides(port, sasl_port), f"connections.max.reauth.ms={REAUTH_MS}",
                                   port=port)
    broker.sasl_bootstrap = f"127.0.0.1:{sasl_port}"
    return broker


def admin(broker) -> AdminClient:
    return AdminClient(client_config(broker.sasl_bootstrap, "PLAIN", *ADMIN))


def create_scram_user(broker, user: str, password: str = SCRAM_PASSWORD, iterations: int = 4096) -> None:
    upsertions = [UserScramCredentialUpsertion(user, ScramCredentialInfo(m, iterations), password.encode())
                  for m in SCRAM_TYPES.values()]
    client = admin(broker)  # kept alive until its futures are done: a destroyed handle fails them
    for future in client.alter_user_scram_credentials(upsertions).values():
        future.result(timeout=15)


@pytest.fixture(scope="module")
def scram_user(sasl_broker) -> str:
    create_scram_user(sasl_broker, "scram-user")
    return "scram-user"


def login(mechanism: str, scram_user: str) -> tuple[str, str]:
    return ("alice", "alice-secret") if mechanism == "PLAIN" else (scram_user, SCRAM_PASSWORD)


def values(n: int = 5) -> list[str]:
    return [f"value-{i}-{uuid.uuid4().hex[:6]}" for i in range(n)]


def confluent_roundtrip(bootstrap: str, mechanism: str, user: str, password: str, topic: str, sent: list[str]) -> list[str]:
    config = client_config(bootstrap, mechanism, user, password)
    producer = Producer(config)
    for value in sent:
        producer.produce(topic, value.encode())
    assert producer.flush(30) == 0
    consumer = Consumer({**config, "group.id": f"g-{topic}", "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    received: list[str] = []
    deadline = time.monotonic() + 30
    while len(received) < len(sent) and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is not None and not message.error():
            received.append(message.value().decode())
    consumer.close()
    return received


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_confluent_kafka(sasl_broker, scram_user, mechanism):
    sent, topic = values(), f"confluent-{mechanism}-{uuid.uuid4().hex[:6]}"
    assert confluent_roundtrip(sasl_broker.sasl_bootstrap, mechanism, *login(mechanism, scram_user), topic, sent) == sent


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_kafka_python(sasl_broker, scram_user, mechanism):
    from kafka import KafkaConsumer, KafkaProducer

    user, password = login(mechanism, scram_user)
    settings = {"bootstrap_servers": sasl_broker.sasl_bootstrap, "security_protocol": "SASL_PLAINTEXT",
                "sasl_mechanism": mechanism, "sasl_plain_username": user, "sasl_plain_password": password}
    sent, topic = values(), f"kafka-python-{mechanism}-{uuid.uuid4().hex[:6]}"
    producer = KafkaProducer(acks="all", **settings)
    for value in sent:
        producer.send(topic, value.encode()).get(timeout=30)
    producer.close()
    consumer = KafkaConsumer(topic, auto_offset_reset="earliest", consumer_timeout_ms=10000, **settings)
    received = [message.value.decode() for _, message in zip(sent, consumer, strict=False)]
    consumer.close()
    assert received == sent


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_aiokafka(sasl_broker, scram_user, mechanism):
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    user, password = login(mechanism, scram_user)
    settings = {"bootstrap_servers": sasl_broker.sasl_bootstrap, "security_protocol": "SASL_PLAINTEXT",
                "sasl_mechanism": mechanism, "sasl_plain_username": user, "sasl_plain_password": password}
    sent, topic = values(), f"aiokafka-{mechanism}-{uuid.uuid4().hex[:6]}"

    async def roundtrip() -> list[str]:
        producer = AIOKafkaProducer(acks="all", **settings)
        await producer.start()
        try:
            for value in sent:
                await producer.send_and_wait(topic, value.encode())
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(topic, auto_offset_reset="earliest", **settings)
        await consumer.start()
        try:
            received = []
            while len(received) < len(sent):
                message = await asyncio.wait_for(consumer.getone(), 30)
                received.append(message.value.decode())
            return received
        finally:
            await consumer.stop()

    assert asyncio.run(roundtrip()) == sent


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_kafkajs(sasl_broker, scram_user, mechanism):
    user, password = login(mechanism, scram_user)
    sent, topic = values(), f"kafkajs-{mechanism}-{uuid.uuid4().hex[:6]}"
    answer = run_kafkajs("sasl_roundtrip.js", sasl_broker.sasl_bootstrap, *sent,
                         env={"SASL_MECHANISM": mechanism.lower(), "SASL_USERNAME": user,
                              "SASL_PASSWORD": password, "TOPIC": topic})
    assert answer["values"] == sent


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_kcat(sasl_broker, scram_user, mechanism):
    user, password = login(mechanism, scram_user)
    sasl = ["-X", "security.protocol=SASL_PLAINTEXT", "-X", f"sasl.mechanisms={mechanism}",
            "-X", f"sasl.username={user}", "-X", f"sasl.password={password}"]
    sent, topic = values(), f"kcat-{mechanism}-{uuid.uuid4().hex[:6]}"
    run_kcat(sasl_broker.sasl_bootstrap, *sasl, "-P", "-t", topic, input_text="\n".join(sent) + "\n")
    read = run_kcat(sasl_broker.sasl_bootstrap, *sasl, "-C", "-t", topic, "-o", "beginning", "-e", "-c",
                    str(len(sent)))
    assert read.stdout.split() == sent


def test_admin_creates_describes_and_deletes_scram_users(sasl_broker):
    user = f"user-{uuid.uuid4().hex[:6]}"
    create_scram_user(sasl_broker, user, "first-pw", iterations=8192)
    client = admin(sasl_broker)
    description = client.describe_user_scram_credentials([user])[user].result(timeout=15)
    assert sorted((info.mechanism, info.iterations) for info in description.scram_credential_infos) == [
        (ScramMechanism.SCRAM_SHA_256, 8192), (ScramMechanism.SCRAM_SHA_512, 8192)]
    sent = values(2)
    assert confluent_roundtrip(sasl_broker.sasl_bootstrap, "SCRAM-SHA-512", user, "first-pw", f"t-{user}", sent) == sent

    deletions = [UserScramCredentialDeletion(user, m) for m in SCRAM_TYPES.values()]
    for future in client.alter_user_scram_credentials(deletions).values():
        future.result(timeout=15)
    with pytest.raises(KafkaException) as missing:
        client.describe_user_scram_credentials([user])[user].result(timeout=15)
    assert missing.value.args[0].code() == KafkaError.RESOURCE_NOT_FOUND
    assert "invalid credentials" in login_error(sasl_broker, "SCRAM-SHA-512", user, "first-pw")


def login_error(broker, mechanism: str, user: str, password: str) -> str:
    """The authentication error librdkafka reports (through error_cb) for this login."""
    errors: list[KafkaError] = []
    producer = Producer({**client_config(broker.sasl_bootstrap, mechanism, user, password), "error_cb": errors.append})

    def reported() -> str | None:
        producer.poll(0.2)
        return next((e.str() for e in errors if e.code() == KafkaError._AUTHENTICATION), None)

    try:
        return eventually(reported, what=f"librdkafka to report the failed {mechanism} login", timeout=20)
    finally:
        producer.flush(0)


def test_a_wrong_password_is_refused_with_kafkas_message(sasl_broker, scram_user):
    assert "Authentication failed: Invalid username or password" in login_error(sasl_broker, "PLAIN", "alice", "wrong")
    assert ("Authentication failed during authentication due to invalid credentials with SASL mechanism "
            "SCRAM-SHA-256") in login_error(sasl_broker, "SCRAM-SHA-256", scram_user, "wrong")


def test_librdkafka_reauthenticates_past_connections_max_reauth_ms(sasl_broker, scram_user):
    """A producer that keeps writing for several session lifetimes loses nothing: librdkafka
    re-authenticates its connections (KIP-368) before the broker would close them."""
    config = client_config(sasl_broker.sasl_bootstrap, "SCRAM-SHA-256", scram_user, SCRAM_PASSWORD)
    expired_before = sasl_broker.output().count("its SASL session expired")
    sent, delivered, undelivered = produce_across_sessions(config, REAUTH_MS)
    assert undelivered == 0
    assert len(delivered) == sent and not any(delivered)
    assert sasl_broker.output().count("its SASL session expired") == expired_before  # none had to be closed


def test_kafka_python_admin_manages_scram_users(sasl_broker):
    from kafka import KafkaProducer
    from kafka.admin import KafkaAdminClient
    from kafka.admin import ScramMechanism as KpScram
    from kafka.admin import UserScramCredentialDeletion as KpDeletion
    from kafka.admin import UserScramCredentialUpsertion as KpUpsertion

    user = f"kp-{uuid.uuid4().hex[:6]}"
    settings = {"bootstrap_servers": sasl_broker.sasl_bootstrap, "security_protocol": "SASL_PLAINTEXT",
                "sasl_mechanism": "PLAIN", "sasl_plain_username": ADMIN[0], "sasl_plain_password": ADMIN[1]}
    client = KafkaAdminClient(**settings)
    try:
        assert client.alter_user_scram_credentials(
            [KpUpsertion(user, KpScram.SCRAM_SHA_512, "kp-pw", iterations=4096)]) == {user: None}
        described = client.describe_user_scram_credentials()  # every user
        assert described[user]["error"] is None
        assert [(i["mechanism"], i["iterations"]) for i in described[user]["credential_infos"]] == [
            (KpScram.SCRAM_SHA_512, 4096)]
        producer = KafkaProducer(**{**settings, "sasl_mechanism": "SCRAM-SHA-512", "sasl_plain_username": user,
                                    "sasl_plain_password": "kp-pw"})
        producer.send(f"kp-{user}", b"x").get(timeout=30)
        producer.close()
        assert client.alter_user_scram_credentials([KpDeletion(user, KpScram.SCRAM_SHA_512)]) == {user: None}
        refused = client.alter_user_scram_credentials([KpDeletion(user, KpScram.SCRAM_SHA_512)])[user]
        assert "Attempt to delete a user credential that does not exist" in refused
    finally:
        client.close()
