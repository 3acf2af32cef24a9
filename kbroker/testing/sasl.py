"""SASL settings and clients for tests: a broker with a PLAINTEXT listener (where the harness
checks readiness) and a SASL_PLAINTEXT one, PLAIN users from the JAAS setting, and the SCRAM
mechanisms, plus a raw SASL login over kbroker's codec for the wire tests.
"""

from __future__ import annotations

import asyncio
import ssl
import struct

from kbroker.protocol.api_keys import ApiKey
from kbroker.protocol.errors import Errors
from kbroker.security.sasl import PlainClient
from kbroker.security.scram import SCRAM_MECHANISMS, ScramClient
from kbroker.testing import wire
from kbroker.testing.raw_client import RawClient

MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
ADMIN = ("admin", "admin-secret")
PLAIN_USERS = {"admin": "admin-secret", "alice": "alice-secret"}
LISTENER = "SASL_PLAINTEXT"


def jaas(mechanism: str, username: str = ADMIN[0], password: str = ADMIN[1],
         users: dict[str, str] | None = None) -> str:
    """A login module entry as Kafka's listener.name.<l>.<mechanism>.sasl.jaas.config takes it."""
    if mechanism == "PLAIN":
        user_options = "".join(f' user_{name}="{pw}"' for name, pw in (users or PLAIN_USERS).items())
        return (f'org.apache.kafka.common.security.plain.PlainLoginModule required username="{username}" '
                f'password="{password}"{user_options};')
    return f'org.apache.kafka.common.security.scram.ScramLoginModule required username="{username}" password="{password}";'


def sasl_listener_overrides(plain_port: int, sasl_port: int, mechanisms: tuple[str, ...] = MECHANISMS,
                            listener: str = LISTENER, host: str = "127.0.0.1") -> list[str]:
    """listeners PLAINTEXT + a SASL_PLAINTEXT listener named `listener`, with every mechanism's JAAS entry."""
    overrides = [f"listeners=PLAINTEXT://{host}:{plain_port},{listener}://{host}:{sasl_port}",
                 f"sasl.enabled.mechanisms={','.join(mechanisms)}"]
    if listener != LISTENER:
        overrides.append(f"listener.security.protocol.map=PLAINTEXT:PLAINTEXT,{listener}:SASL_PLAINTEXT")
    overrides += [f"listener.name.{listener.lower()}.{m.lower()}.sasl.jaas.config={jaas(m)}" for m in mechanisms]
    return overrides


def client_config(bootstrap: str, mechanism: str, username: str, password: str) -> dict[str, str]:
    """confluent-kafka (librdkafka) settings for a SASL_PLAINTEXT login."""
    return {"bootstrap.servers": bootstrap, "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": mechanism,
            "sasl.username": username, "sasl.password": password}


def mechanism_client(mechanism: str, username: str, password: str) -> PlainClient | ScramClient:
    if mechanism == "PLAIN":
        return PlainClient(username, password)
    return ScramClient(SCRAM_MECHANISMS[mechanism], username, password)


def sasl_login(client: RawClient, mechanism: str, username: str, password: str, version: int = 2) -> dict:
    """SaslHandshake v1 and SaslAuthenticate `version` until the mechanism completes (or the
    broker answers an error, which is returned); the last SaslAuthenticate answer."""
    handshake = client.call(ApiKey.SASL_HANDSHAKE, 1, {"mechanism": mechanism})
    assert handshake["error_code"] == 0, handshake
    login = mechanism_client(mechanism, username, password)
    token = login.initial_response()
    while True:
        answer = client.call(ApiKey.SASL_AUTHENTICATE, version, {"auth_bytes": token})
        if answer["error_code"]:
            return answer
        token = login.evaluate(bytes(answer["auth_bytes"]))
        if login.complete:
            return answer


async def failed_plain_login(port: int, ssl_context: ssl.SSLContext | None = None) -> bool:
    """One connection (over TLS with `ssl_context`): SaslHandshake v1 and a wrong PLAIN password;
    True when answered SASL_AUTHENTICATION_FAILED and then closed. For floods of failed logins."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ssl_context,
                                                   server_hostname="127.0.0.1" if ssl_context else None)
    try:
        header = wire.request_header(ApiKey.SASL_HANDSHAKE, 1, 1, "flood", False)
        writer.write(wire.frame(header + wire.classic_string("PLAIN")))
        token = b"\0alice\0wrong"
        header = wire.request_header(ApiKey.SASL_AUTHENTICATE, 1, 2, "flood", False)
        writer.write(wire.frame(header + struct.pack(">i", len(token)) + token))
        for _ in range(2):
            size = struct.unpack(">i", await reader.readexactly(4))[0]
            payload = await reader.readexactly(size)
        error_code = struct.unpack_from(">h", payload, 4)[0]
        try:
            closed = await reader.read() == b""
        except (ConnectionError, ssl.SSLError):  # a TLS peer may close without close_notify
            closed = True
        return error_code == Errors.SASL_AUTHENTICATION_FAILED and closed
    finally:
        writer.close()


def produce_across_sessions(config: dict[str, str], session_ms: int, sessions: int = 3) -> tuple[int, list, int]:
    """librdkafka producing (acks=all) for `sessions` lifetimes of a SASL session: it must
    re-authenticate on the way (KIP-368). The records sent, their delivery errors (None when
    delivered) and what flush left undelivered."""
    import time
    import uuid

    from confluent_kafka import Producer  # only the compat tests use this

    delivered: list[object] = []
    producer = Producer({**config, "acks": "all"})
    topic = f"reauth-{uuid.uuid4().hex[:6]}"
    started = time.monotonic()
    sent = 0
    while time.monotonic() - started < sessions * session_ms / 1000:
        producer.produce(topic, f"r{sent}".encode(), on_delivery=lambda err, _msg: delivered.append(err))
        sent += 1
        producer.poll(0.1)
    return sent, delivered, producer.flush(30)
