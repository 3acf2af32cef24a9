"""TLS listeners (issue 12) against real clients: confluent-kafka, kafka-python, aiokafka, kcat and
KafkaJS produce and consume over SSL and over mutual TLS.

One broker, certificates made by the test (kbroker.testing.tls), four listeners:
- PLAINTEXT: the harness's, and the inter-broker listener;
- SSL: a PKCS12 key store, no client authentication;
- MTLS (an SSL listener under a custom name): PEM key and chain given inline as
  listener.name.mtls.ssl.keystore.key/.certificate.chain, ssl.client.auth=required, a PEM trust
  store file: a client without a certificate, or with one from another CA, is refused;
- PEMFILE: ssl.keystore.type=PEM with a file holding the encrypted key and its chain (under
  ssl.key.password), ssl.client.auth=requested.
Bad input, each answered by closing that one connection with one log line while the others go on:
a plaintext client on a TLS port, a TLS client on the plaintext port, a failed handshake, a
handshake never finished (bounded by connections.max.idle.ms here) and a garbage TLS record.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import time
import uuid

import pytest
from confluent_kafka import Consumer, Producer

from kbroker.testing import wire
from kbroker.testing.processes import free_port
from kbroker.testing.tls import KEY_PASSWORD, STORE_PASSWORD, CertificateAuthority
from kbroker.testing.tools import run_kafkajs, run_kcat
from kbroker.testing.waiting import eventually

pytestmark = pytest.mark.timeout(300)
RECORDS = 20
IDLE_MS = 3000  # connections.max.idle.ms: also bounds a TLS handshake


class Pki:
    def __init__(self, directory) -> None:
        self.ca = CertificateAuthority(directory / "ca")
        self.broker = self.ca.issue("broker")
        self.client = self.ca.issue("client")
        self.stranger = CertificateAuthority(directory / "other-ca", "other-ca").issue("stranger")


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def tls_broker(module_broker_factory, pki):
    ports = {name: free_port() for name in ("SSL", "MTLS", "PEMFILE")}
    plain = free_port()
    listeners = f"PLAINTEXT://127.0.0.1:{plain}," + ",".join(f"{n}://127.0.0.1:{p}" for n, p in ports.items())
    broker = module_broker_factory(
        f"listeners={listeners}",
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SSL:SSL,MTLS:SSL,PEMFILE:SSL",
        "inter.broker.listener.name=PLAINTEXT",
        f"connections.max.idle.ms={IDLE_MS}",
        # SSL: PKCS12 (Kafka's listener.name.<l>. settings add to the unprefixed ones: each
        # listener names its own key store, or the inline PEM one would clash with a location)
        "listener.name.ssl.ssl.keystore.type=PKCS12", f"listener.name.ssl.ssl.keystore.location={pki.broker.pkcs12}",
        f"listener.name.ssl.ssl.keystore.password={STORE_PASSWORD}",
        # MTLS: inline PEM, client certificates required, a PEM trust store file
        "listener.name.mtls.ssl.keystore.type=PEM",
        f"listener.name.mtls.ssl.keystore.key={pki.broker.key_text()}",
        f"listener.name.mtls.ssl.keystore.certificate.chain={pki.broker.chain_text()}",
        "listener.name.mtls.ssl.client.auth=required",
        "listener.name.mtls.ssl.truststore.type=PEM", f"listener.name.mtls.ssl.truststore.location={pki.ca.cert_pem}",
        # PEMFILE: one PEM file with the encrypted key and the chain
        "listener.name.pemfile.ssl.keystore.type=PEM",
        f"listener.name.pemfile.ssl.keystore.location={pki.broker.keystore_pem}",
        f"listener.name.pemfile.ssl.key.password={KEY_PASSWORD}",
        "listener.name.pemfile.ssl.client.auth=requested",
        f"listener.name.pemfile.ssl.truststore.location={pki.ca.truststore_pkcs12}",
        "listener.name.pemfile.ssl.truststore.type=PKCS12",
        f"listener.name.pemfile.ssl.truststore.password={STORE_PASSWORD}",
        port=plain)
    broker.tls_ports = ports
    return broker


def bootstrap(broker, listener: str) -> str:
    return f"127.0.0.1:{broker.tls_ports[listener]}"


def topic_name() -> str:
    return f"tls-{uuid.uuid4().hex[:8]}"


def values(prefix: str) -> list[str]:
    return [f"{prefix}-{i}" for i in range(RECORDS)]


# -- confluent-kafka (librdkafka) -------------------------------------------------------------
def confluent_tls(pki: Pki, mutual: bool) -> dict:
    settings = {"security.protocol": "SSL", "ssl.ca.location": str(pki.ca.cert_pem)}
    if mutual:
        settings |= {"ssl.certificate.location": str(pki.client.cert_pem),
                     "ssl.key.location": str(pki.client.encrypted_key_pem), "ssl.key.password": KEY_PASSWORD}
    return settings


def confluent_roundtrip(servers: str, tls: dict) -> list[str]:
    topic = topic_name()
    producer = Producer({"bootstrap.servers": servers, "acks": "all", **tls})
    failures = []
    for value in values("confluent"):
        producer.produce(topic, value.encode(), on_delivery=lambda err, _msg: err and failures.append(err))
    assert producer.flush(30) == 0 and failures == []
    consumer = Consumer({"bootstrap.servers": servers, "group.id": topic, "auto.offset.reset": "earliest", **tls})
    consumer.subscribe([topic])
    got: list[str] = []
    deadline = time.monotonic() + 30
    try:
        while len(got) < RECORDS and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                got.append(message.value().decode())
    finally:
        consumer.close()
    return got


@pytest.mark.parametrize("listener, mutual", [("SSL", False), ("MTLS", True), ("PEMFILE", True), ("PEMFILE", False)])
def test_confluent_kafka(tls_broker, pki, listener, mutual):
    assert confluent_roundtrip(bootstrap(tls_broker, listener), confluent_tls(pki, mutual)) == values("confluent")


def test_confluent_kafka_without_a_certificate_is_refused_by_mutual_tls(tls_broker, pki):
    producer = Producer({"bootstrap.servers": bootstrap(tls_broker, "MTLS"), "message.timeout.ms": 3000,
                         **confluent_tls(pki, mutual=False)})
    errors = []
    producer.produce(topic_name(), b"never", on_delivery=lambda err, _msg: errors.append(err))
    producer.flush(10)
    assert errors and errors[0] is not None  # timed out: no connection ever got past the handshake
    assert "TLS handshake failed" in tls_broker.output()


# -- kafka-python ----------------------------------------------------------------------------
def kafka_python_tls(pki: Pki, mutual: bool) -> dict:
    settings = {"security_protocol": "SSL", "ssl_cafile": str(pki.ca.cert_pem)}
    if mutual:
        settings |= {"ssl_certfile": str(pki.client.cert_pem), "ssl_keyfile": str(pki.client.encrypted_key_pem),
                     "ssl_password": KEY_PASSWORD}
    return settings


@pytest.mark.parametrize("listener, mutual", [("SSL", False), ("MTLS", True)])
def test_kafka_python(tls_broker, pki, listener, mutual):
    from kafka import KafkaConsumer, KafkaProducer

    topic, servers, tls = topic_name(), bootstrap(tls_broker, listener), kafka_python_tls(pki, mutual)
    producer = KafkaProducer(bootstrap_servers=servers, acks="all", **tls)
    try:
        for value in values("kafka-python"):
            producer.send(topic, value.encode()).get(timeout=30)
    finally:
        producer.close()
    consumer = KafkaConsumer(topic, bootstrap_servers=servers, auto_offset_reset="earliest",
                             consumer_timeout_ms=15000, **tls)
    try:
        got = [message.value.decode() for _, message in zip(range(RECORDS), consumer, strict=False)]
    finally:
        consumer.close()
    assert got == values("kafka-python")


# -- aiokafka --------------------------------------------------------------------------------
@pytest.mark.parametrize("listener, mutual", [("SSL", False), ("MTLS", True)])
def test_aiokafka(tls_broker, pki, listener, mutual):
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    context = ssl.create_default_context(cafile=str(pki.ca.cert_pem))
    if mutual:
        context.load_cert_chain(str(pki.client.cert_pem), str(pki.client.key_pem))
    topic, servers = topic_name(), bootstrap(tls_broker, listener)

    async def roundtrip() -> list[str]:
        producer = AIOKafkaProducer(bootstrap_servers=servers, security_protocol="SSL", ssl_context=context,
                                    acks="all")
        await producer.start()
        try:
            for value in values("aiokafka"):
                await producer.send_and_wait(topic, value.encode())
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=servers, security_protocol="SSL", ssl_context=context,
                                    auto_offset_reset="earliest")
        await consumer.start()
        got: list[str] = []
        try:
            while len(got) < RECORDS:
                message = await asyncio.wait_for(consumer.getone(), 30)
                got.append(message.value.decode())
        finally:
            await consumer.stop()
        return got

    assert asyncio.run(roundtrip()) == values("aiokafka")


# -- kcat --------------------------------------------------------------------------------------
@pytest.mark.parametrize("listener, mutual", [("SSL", False), ("MTLS", True)])
def test_kcat(tls_broker, pki, listener, mutual):
    topic, servers = topic_name(), bootstrap(tls_broker, listener)
    tls = [f"-X{key}={value}" for key, value in confluent_tls(pki, mutual).items()]
    run_kcat(servers, *tls, "-P", "-t", topic, "-p", "0", input_text="\n".join(values("kcat")) + "\n")
    consumed = run_kcat(servers, *tls, "-C", "-t", topic, "-p", "0", "-o", "beginning", "-e", "-q")
    assert consumed.stdout.splitlines() == values("kcat")


# -- KafkaJS -----------------------------------------------------------------------------------
@pytest.mark.parametrize("listener, mutual", [("SSL", False), ("MTLS", True)])
def test_kafkajs(tls_broker, pki, listener, mutual):
    env = {"SSL_CA": str(pki.ca.cert_pem)}
    if mutual:
        env |= {"SSL_CERT": str(pki.client.cert_pem), "SSL_KEY": str(pki.client.key_pem)}
    answer = run_kafkajs("tls_produce_consume.js", bootstrap(tls_broker, listener), topic_name(), str(RECORDS),
                         env=env)
    assert answer == {"acked": RECORDS, "values": [f"kafkajs-{i}" for i in range(RECORDS)]}


# -- bad input: one connection closed, one line, nothing else affected --------------------------
def tls_connect(port: int, context: ssl.SSLContext) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    return context.wrap_socket(raw, server_hostname="127.0.0.1")


def mutual_context(pki: Pki, identity=None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca.cert_pem))
    if identity is not None:
        context.load_cert_chain(str(identity.cert_pem), str(identity.key_pem))
    return context


def api_versions_over_tls(port: int, context: ssl.SSLContext) -> int:
    with tls_connect(port, context) as sock:
        sock.sendall(wire.api_versions_request(correlation_id=41))
        return wire.correlation_id_of(wire.read_frame(sock))


def closed_by_broker(sock) -> bool:
    try:
        return sock.recv(1) == b""
    except (ConnectionError, ssl.SSLError):
        return True


def lines(broker, text: str) -> list[str]:
    return [line for line in broker.output().splitlines() if text in line]


def test_plaintext_client_on_a_tls_port_is_closed_with_one_line(tls_broker, pki):
    for _ in range(100):  # a hundred in a row: still one line (per client host and minute)
        with socket.create_connection(("127.0.0.1", tls_broker.tls_ports["SSL"]), timeout=10) as sock:
            sock.sendall(wire.api_versions_request(correlation_id=5))
            assert closed_by_broker(sock)
    found = eventually(lambda: lines(tls_broker, "not TLS, a plaintext client?"), what="the broker's line")
    assert "Traceback" not in tls_broker.output()
    assert len(found) == 1
    assert api_versions_over_tls(tls_broker.tls_ports["SSL"], mutual_context(pki)) == 41


def test_tls_client_on_the_plaintext_port_is_closed_with_one_line(tls_broker):
    with socket.create_connection(("127.0.0.1", tls_broker.port), timeout=10) as raw:
        context = ssl.create_default_context()
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            context.wrap_socket(raw, server_hostname="127.0.0.1")
    found = eventually(lambda: lines(tls_broker, "a TLS handshake on plaintext listener PLAINTEXT"),
                       what="the broker's line")
    assert len(found) == 1
    assert wire.correlation_id_of(wire.roundtrip(tls_broker.port, wire.api_versions_request(correlation_id=9))) == 9


def test_failed_handshakes_close_only_their_connection(tls_broker, pki):
    port = tls_broker.tls_ports["MTLS"]
    # A certificate from a CA the listener does not trust, and none at all.
    for context in (mutual_context(pki, pki.stranger), mutual_context(pki)):
        with pytest.raises((ssl.SSLError, ConnectionError, wire.ConnectionClosed)):
            api_versions_over_tls(port, context)
    # A client that does not trust the broker's certificate.
    with pytest.raises(ssl.SSLError):
        api_versions_over_tls(port, ssl.create_default_context())
    eventually(lambda: lines(tls_broker, "on MTLS: TLS handshake failed"), what="the broker's line")
    assert "Traceback" not in tls_broker.output()
    assert api_versions_over_tls(port, mutual_context(pki, pki.client)) == 41


def test_a_handshake_never_finished_is_closed_after_the_timeout(tls_broker, pki):
    port = tls_broker.tls_ports["SSL"]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as silent:
        # Meanwhile the listener serves others: the handshake runs apart from the accept loop.
        assert api_versions_over_tls(port, mutual_context(pki)) == 41
        silent.settimeout(IDLE_MS / 1000 * 5)
        started = time.monotonic()
        assert closed_by_broker(silent)
        assert time.monotonic() - started < IDLE_MS / 1000 * 4
    eventually(lambda: lines(tls_broker, "TLS handshake failed") and
               any("SSL handshake is taking longer" in line
                   for line in lines(tls_broker, "TLS handshake failed")), what="the broker's timeout line")


def test_a_garbage_tls_record_after_the_handshake_closes_that_connection(tls_broker, pki):
    port = tls_broker.tls_ports["SSL"]
    with tls_connect(port, mutual_context(pki)) as sock:
        sock.sendall(wire.api_versions_request(correlation_id=41))
        assert wire.correlation_id_of(wire.read_frame(sock)) == 41
        # Application data with a MAC that cannot check out, under the TLS layer.
        os.write(sock.fileno(), b"\x17\x03\x03\x00\x40" + os.urandom(64))
        assert closed_by_broker(sock)
    eventually(lambda: lines(tls_broker, "on SSL: TLS error (DECRYPTION_FAILED_OR_BAD_RECORD_MAC)"),
               what="the broker's line")
    assert api_versions_over_tls(port, mutual_context(pki)) == 41


def test_garbage_tls_records_from_many_connections_stall_no_other_client(tls_broker, pki):
    """Two hundred connections send a TLS handshake record of random bytes, fifty at a time, while
    a good client keeps being served over TLS: each bad one is closed, the good one never waits
    for them, the broker logs at most one more line per kind and stays up."""
    port = tls_broker.tls_ports["SSL"]
    logged_before = len(lines(tls_broker, "on SSL: TLS"))

    async def garbage() -> bool:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(b"\x16\x03\x01\x00\x80" + os.urandom(128))
            await writer.drain()
            return await asyncio.wait_for(reader.read(), 10) is not None  # EOF (or an alert, then EOF)
        except ConnectionError:
            return True
        finally:
            writer.close()

    async def flood_while_serving() -> tuple[list[bool], list[int]]:
        limit = asyncio.Semaphore(50)

        async def one() -> bool:
            async with limit:
                return await garbage()

        flood = asyncio.gather(*(one() for _ in range(200)))
        served = []
        while not flood.done():
            served.append(await asyncio.to_thread(api_versions_over_tls, port, mutual_context(pki)))
        return await flood, served

    closed, served = asyncio.run(flood_while_serving())
    assert len(closed) == 200 and all(closed)
    assert served and set(served) == {41}
    assert tls_broker.alive() and "Traceback" not in tls_broker.output()
    assert len(lines(tls_broker, "on SSL: TLS")) - logged_before <= 2
