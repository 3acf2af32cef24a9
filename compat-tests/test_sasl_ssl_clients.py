"""SASL_SSL: the TLS transport and the SASL login together (issue 12), on one listener.

A broker with a PLAINTEXT listener (for the harness) and a SASL_SSL one (a PKCS12 key store made by
the test, PLAIN users from JAAS, SCRAM-SHA-256/512 users created through AlterUserScramCredentials
over SASL_SSL itself). confluent-kafka, kafka-python, aiokafka and kcat log in and round-trip
records; a wrong password is refused; a client that skips TLS or SASL gets nowhere.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import (
    AdminClient,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)

from kbroker.testing import wire
from kbroker.testing.processes import free_port
from kbroker.testing.sasl import ADMIN, failed_plain_login, jaas, produce_across_sessions
from kbroker.testing.tls import STORE_PASSWORD, CertificateAuthority
from kbroker.testing.tools import run_kcat
from kbroker.testing.waiting import eventually

pytestmark = pytest.mark.timeout(300)
SCRAM_USER, SCRAM_PASSWORD = "sslscram", "scram-over-tls"
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


@pytest.fixture(scope="module")
def broker(module_broker_factory, tmp_path_factory):
    return sasl_ssl_broker(module_broker_factory, tmp_path_factory)


def sasl_ssl_broker(factory, tmp_path_factory, *more: str):
    """A broker with a PLAINTEXT and a SASL_SSL listener, its SCRAM user created over SASL_SSL."""
    ca = CertificateAuthority(tmp_path_factory.mktemp("pki"))
    identity = ca.issue("broker")
    plain, secure = free_port(), free_port()
    broker = factory(
        f"listeners=PLAINTEXT://127.0.0.1:{plain},SASL_SSL://127.0.0.1:{secure}",
        "inter.broker.listener.name=PLAINTEXT",
        f"sasl.enabled.mechanisms={','.join(MECHANISMS)}",
        *(f"listener.name.sasl_ssl.{m.lower()}.sasl.jaas.config={jaas(m)}" for m in MECHANISMS),
        "listener.name.sasl_ssl.ssl.keystore.type=PKCS12",
        f"listener.name.sasl_ssl.ssl.keystore.location={identity.pkcs12}",
        f"listener.name.sasl_ssl.ssl.keystore.password={STORE_PASSWORD}",
        *more, port=plain)
    broker.secure_port = secure
    broker.secure_bootstrap = f"127.0.0.1:{secure}"
    broker.ca_pem = str(ca.cert_pem)
    admin = AdminClient(librdkafka(broker, "PLAIN", *ADMIN))
    upserts = [UserScramCredentialUpsertion(SCRAM_USER, ScramCredentialInfo(m, 4096), SCRAM_PASSWORD.encode())
               for m in (ScramMechanism.SCRAM_SHA_256, ScramMechanism.SCRAM_SHA_512)]
    for future in admin.alter_user_scram_credentials(upserts).values():
        future.result(timeout=30)
    return broker


def librdkafka(broker, mechanism: str, user: str, password: str) -> dict[str, str]:
    return {"bootstrap.servers": broker.secure_bootstrap, "security.protocol": "SASL_SSL",
            "ssl.ca.location": broker.ca_pem, "sasl.mechanism": mechanism, "sasl.username": user,
            "sasl.password": password}


def login(mechanism: str) -> tuple[str, str]:
    return ("alice", "alice-secret") if mechanism == "PLAIN" else (SCRAM_USER, SCRAM_PASSWORD)


def sample() -> tuple[str, list[str]]:
    return f"sasl-ssl-{uuid.uuid4().hex[:8]}", [f"v{i}-{uuid.uuid4().hex[:4]}" for i in range(5)]


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_confluent_kafka(broker, mechanism):
    topic, sent = sample()
    config = librdkafka(broker, mechanism, *login(mechanism))
    producer = Producer(config)
    for value in sent:
        producer.produce(topic, value.encode())
    assert producer.flush(30) == 0
    consumer = Consumer({**config, "group.id": topic, "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    received: list[str] = []
    try:
        while len(received) < len(sent):
            message = consumer.poll(30)
            assert message is not None and message.error() is None, message and message.error()
            received.append(message.value().decode())
    finally:
        consumer.close()
    assert received == sent


def test_kafka_python_scram_sha_256(broker):
    from kafka import KafkaConsumer, KafkaProducer

    settings = {"bootstrap_servers": broker.secure_bootstrap, "security_protocol": "SASL_SSL",
                "ssl_cafile": broker.ca_pem, "sasl_mechanism": "SCRAM-SHA-256",
                "sasl_plain_username": SCRAM_USER, "sasl_plain_password": SCRAM_PASSWORD}
    topic, sent = sample()
    producer = KafkaProducer(acks="all", **settings)
    for value in sent:
        producer.send(topic, value.encode()).get(timeout=30)
    producer.close()
    consumer = KafkaConsumer(topic, auto_offset_reset="earliest", consumer_timeout_ms=15000, **settings)
    received = [message.value.decode() for _, message in zip(sent, consumer, strict=False)]
    consumer.close()
    assert received == sent


def test_aiokafka_plain(broker):
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    context = ssl.create_default_context(cafile=broker.ca_pem)
    settings = {"bootstrap_servers": broker.secure_bootstrap, "security_protocol": "SASL_SSL",
                "ssl_context": context, "sasl_mechanism": "PLAIN", "sasl_plain_username": "alice",
                "sasl_plain_password": "alice-secret"}
    topic, sent = sample()

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
            return [(await asyncio.wait_for(consumer.getone(), 30)).value.decode() for _ in sent]
        finally:
            await consumer.stop()

    assert asyncio.run(roundtrip()) == sent


def test_kcat_scram_sha_512(broker):
    topic, sent = sample()
    options = ["-X", "security.protocol=SASL_SSL", "-X", f"ssl.ca.location={broker.ca_pem}",
               "-X", "sasl.mechanisms=SCRAM-SHA-512", "-X", f"sasl.username={SCRAM_USER}",
               "-X", f"sasl.password={SCRAM_PASSWORD}"]
    run_kcat(broker.secure_bootstrap, *options, "-P", "-t", topic, input_text="\n".join(sent) + "\n")
    read = run_kcat(broker.secure_bootstrap, *options, "-C", "-t", topic, "-o", "beginning", "-e", "-c",
                    str(len(sent)))
    assert read.stdout.split() == sent


def test_a_wrong_password_is_refused(broker):
    errors: list[KafkaError] = []
    producer = Producer({**librdkafka(broker, "SCRAM-SHA-512", SCRAM_USER, "not-it"), "error_cb": errors.append})

    def reported() -> str | None:
        producer.poll(0.2)
        return next((e.str() for e in errors if e.code() == KafkaError._AUTHENTICATION), None)

    try:
        message = eventually(reported, what="librdkafka to report the failed login", timeout=20)
    finally:
        producer.flush(0)
    assert ("Authentication failed during authentication due to invalid credentials with SASL mechanism "
            "SCRAM-SHA-512") in message


def test_a_client_without_tls_or_without_sasl_gets_nowhere(broker):
    # Plaintext bytes on the TLS port: the handshake fails, the connection is closed, no answer.
    with socket.create_connection(("127.0.0.1", broker.secure_port), timeout=10) as sock:
        sock.sendall(wire.api_versions_request(1))
        assert wire.wait_closed(sock)[:1] in (b"", b"\x15")  # nothing, or a TLS alert record
    # TLS without SASL: ApiVersions is answered, a Metadata request before the login is not.
    context = ssl.create_default_context(cafile=broker.ca_pem)
    with context.wrap_socket(socket.create_connection(("127.0.0.1", broker.secure_port), timeout=10),
                             server_hostname="127.0.0.1") as tls:
        tls.sendall(wire.api_versions_request(1))
        assert wire.correlation_id_of(wire.read_frame(tls)) == 1
        tls.sendall(wire.metadata_request(2, 1))
        with pytest.raises((wire.ConnectionClosed, ConnectionError, ssl.SSLError)):
            wire.read_frame(tls)


def test_failed_logins_over_tls_close_each_connection_and_stall_nobody(broker):
    """300 wrong passwords over SASL_SSL, 50 connections at a time (a TLS handshake each, on the
    broker's one event loop), while a fresh client keeps logging in with SCRAM and being served."""
    lines_before = broker.output().count("Failed authentication with")
    context = ssl.create_default_context(cafile=broker.ca_pem)

    def served() -> bool:
        admin = AdminClient(librdkafka(broker, "SCRAM-SHA-512", SCRAM_USER, SCRAM_PASSWORD))
        return admin.list_topics(timeout=20).brokers != {}

    async def flood_while_serving() -> tuple[list[bool], list[bool]]:
        limit = asyncio.Semaphore(50)

        async def one() -> bool:
            async with limit:
                return await failed_plain_login(broker.secure_port, context)

        flood = asyncio.gather(*(one() for _ in range(300)))
        logins = []
        while not flood.done():
            logins.append(await asyncio.to_thread(served))
        return await flood, logins

    results, logins = asyncio.run(flood_while_serving())
    assert len(results) == 300 and all(results)
    assert logins and all(logins)
    assert broker.alive() and "Traceback" not in broker.output()
    assert broker.output().count("Failed authentication with") - lines_before <= 2


def test_librdkafka_reauthenticates_over_tls_past_connections_max_reauth_ms(broker_factory, tmp_path_factory):
    """KIP-368 inside one TLS connection: a producer writing for three session lifetimes
    re-authenticates (SCRAM-SHA-512) before the broker would close its connection, and loses nothing."""
    reauth_ms = 3000
    secure = sasl_ssl_broker(broker_factory, tmp_path_factory, f"connections.max.reauth.ms={reauth_ms}")
    config = librdkafka(secure, "SCRAM-SHA-512", SCRAM_USER, SCRAM_PASSWORD)
    sent, delivered, undelivered = produce_across_sessions(config, reauth_ms)
    assert undelivered == 0
    assert len(delivered) == sent and not any(delivered)
    assert "its SASL session expired" not in secure.output()  # none had to be closed
