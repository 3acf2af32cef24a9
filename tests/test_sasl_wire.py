"""SASL on a SASL_PLAINTEXT listener over real sockets, request by request, as Kafka's
SaslServerAuthenticator answers: a broker subprocess with PLAIN (JAAS users) and SCRAM-SHA-256/512
(credentials made through AlterUserScramCredentials on its PLAINTEXT listener), PLAIN sessions
limited by listener.name.sasl_plaintext.plain.connections.max.reauth.ms.

Bad input: requests before authentication, unknown mechanisms, wrong passwords, malformed and
out-of-order tokens, 1,000 failed logins in a row: each answered with Kafka's error where Kafka
answers, the connection closed, one rate-limited log line, and other clients served meanwhile.
"""

from __future__ import annotations

import asyncio
import socket
import struct

import pytest

from kbroker.network.network_client import ClientSasl, NetworkClient
from kbroker.protocol.api_keys import ApiKey
from kbroker.protocol.errors import Errors
from kbroker.security.sasl import PlainClient
from kbroker.security.scram import SCRAM_MECHANISMS
from kbroker.testing import wire
from kbroker.testing.processes import free_port
from kbroker.testing.raw_client import RawClient, raw_call
from kbroker.testing.sasl import (
    MECHANISMS,
    failed_plain_login,
    mechanism_client,
    sasl_listener_overrides,
    sasl_login,
)
from kbroker.testing.waiting import eventually

REAUTH_MS = 1500
METADATA_V = 9
SCRAM_USER = ("carol", "carol-pw")


@pytest.fixture(scope="module")
def sasl_broker(module_broker_factory):
    port, sasl_port = free_port(), free_port()
    broker = module_broker_factory(*sasl_listener_overrides(port, sasl_port),
                                   f"listener.name.sasl_plaintext.plain.connections.max.reauth.ms={REAUTH_MS}",
                                   port=port)
    broker.sasl_port = sasl_port
    salt = b"carol-salt-01234"
    upsertions = [{"name": SCRAM_USER[0], "mechanism": m.type_code, "iterations": 4096, "salt": salt,
                   "salted_password": m.salted_password(SCRAM_USER[1], salt, 4096)}
                  for m in SCRAM_MECHANISMS.values()]
    answer = raw_call(port, ApiKey.ALTER_USER_SCRAM_CREDENTIALS, 0, {"deletions": [], "upsertions": upsertions})
    assert [r["error_code"] for r in answer["results"]] == [0]
    return broker


def metadata(client: RawClient) -> dict:
    return client.call(ApiKey.METADATA, METADATA_V, {"topics": [], "allow_auto_topic_creation": False,
                                                     "include_topic_authorized_operations": False})


def closed(client: RawClient) -> bool:
    return wire.wait_closed(client.sock) == b""


def test_the_sasl_apis_are_advertised(sasl_broker):
    answer = wire.parse_api_versions(wire.roundtrip(sasl_broker.sasl_port, wire.api_versions_request(1)), 0)
    assert answer.api_keys[ApiKey.SASL_HANDSHAKE] == (0, 1)
    assert answer.api_keys[ApiKey.SASL_AUTHENTICATE] == (0, 2)
    assert answer.api_keys[ApiKey.DESCRIBE_USER_SCRAM_CREDENTIALS] == (0, 0)
    assert answer.api_keys[ApiKey.ALTER_USER_SCRAM_CREDENTIALS] == (0, 0)


def test_a_request_before_authentication_closes_the_connection(sasl_broker):
    with RawClient(sasl_broker.sasl_port) as client:
        client.send(ApiKey.METADATA, METADATA_V, {"topics": [], "allow_auto_topic_creation": False,
                                                  "include_topic_authorized_operations": False})
        assert closed(client)


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_each_mechanism_logs_in_and_is_served(sasl_broker, mechanism):
    user = ("alice", "alice-secret") if mechanism == "PLAIN" else SCRAM_USER
    with RawClient(sasl_broker.sasl_port) as client:
        assert client.call(ApiKey.API_VERSIONS, 3, {"client_software_name": "t", "client_software_version": "1"})[
            "error_code"] == 0
        answer = sasl_login(client, mechanism, *user)
        assert answer["error_code"] == 0
        assert answer["session_lifetime_ms"] == (REAUTH_MS if mechanism == "PLAIN" else 0)
        assert metadata(client)["brokers"]


def test_another_request_during_the_exchange_is_answered_illegal_sasl_state_then_closed(sasl_broker):
    with RawClient(sasl_broker.sasl_port) as client:
        assert client.call(ApiKey.SASL_HANDSHAKE, 1, {"mechanism": "PLAIN"})["error_code"] == 0
        answer = client.call(ApiKey.SASL_HANDSHAKE, 1, {"mechanism": "PLAIN"})
        assert answer["error_code"] == Errors.ILLEGAL_SASL_STATE
        assert closed(client)


def test_an_unsupported_mechanism_is_answered_with_the_enabled_ones_then_closed(sasl_broker):
    with RawClient(sasl_broker.sasl_port) as client:
        answer = client.call(ApiKey.SASL_HANDSHAKE, 1, {"mechanism": "GSSAPI"})
        assert answer == {"error_code": Errors.UNSUPPORTED_SASL_MECHANISM, "mechanisms": list(MECHANISMS)}
        assert closed(client)


@pytest.mark.parametrize(("mechanism", "user", "message"), [
    ("PLAIN", ("alice", "wrong"), "Authentication failed: Invalid username or password"),
    ("PLAIN", ("", "pw"), "Authentication failed: username not specified"),
    ("SCRAM-SHA-256", ("carol", "wrong"), "Authentication failed during authentication due to invalid "
                                          "credentials with SASL mechanism SCRAM-SHA-256"),
    ("SCRAM-SHA-512", ("nobody", "pw"), "Authentication failed during authentication due to invalid "
                                        "credentials with SASL mechanism SCRAM-SHA-512"),
])
def test_a_failed_login_is_answered_then_closed(sasl_broker, mechanism, user, message):
    with RawClient(sasl_broker.sasl_port) as client:
        answer = sasl_login(client, mechanism, *user)
        assert (answer["error_code"], answer["error_message"]) == (Errors.SASL_AUTHENTICATION_FAILED, message)
        assert closed(client)


GENERIC_PLAIN = "Authentication failed during authentication due to invalid credentials with SASL mechanism PLAIN"


@pytest.mark.parametrize(("token", "message"), [
    (b"\xff\xfe\x00alice\x00alice-secret", GENERIC_PLAIN),  # not UTF-8
    (b"alice-secret", GENERIC_PLAIN),  # no NUL separators
    (b"\x00alice\x00alice-secret\x00more", GENERIC_PLAIN),  # four tokens
    (b"", GENERIC_PLAIN),
    (b"\x00\x00alice-secret", "Authentication failed: username not specified"),
    (b"\x00alice\x00", "Authentication failed: password not specified"),
    (b"bob\x00alice\x00alice-secret", "Authentication failed: Client requested an authorization id that is "
                                       "different from username"),
])
def test_malformed_plain_tokens_are_answered_then_closed_and_others_are_served(sasl_broker, token, message):
    with RawClient(sasl_broker.sasl_port) as client, RawClient(sasl_broker.sasl_port) as other:
        assert sasl_login(other, "PLAIN", "alice", "alice-secret")["error_code"] == 0
        client.call(ApiKey.SASL_HANDSHAKE, 1, {"mechanism": "PLAIN"})
        answer = _authenticate(client, token)
        assert (answer["error_code"], answer["error_message"]) == (Errors.SASL_AUTHENTICATION_FAILED, message)
        assert closed(client)
        assert metadata(other)["brokers"]  # the logged-in connection beside it is still served
    assert sasl_broker.alive()


def _authenticate(client: RawClient, token: bytes) -> dict:
    return client.call(ApiKey.SASL_AUTHENTICATE, 1, {"auth_bytes": token})


@pytest.mark.parametrize("case", ["garbage", "final first", "no nonce", "channel binding", "wrong nonce",
                                  "wrong proof", "twice"])
def test_malformed_and_out_of_order_scram_tokens_fail_the_login(sasl_broker, case):
    with RawClient(sasl_broker.sasl_port) as client:
        client.call(ApiKey.SASL_HANDSHAKE, 1, {"mechanism": "SCRAM-SHA-256"})
        login = mechanism_client("SCRAM-SHA-256", *SCRAM_USER)
        first = login.initial_response()
        if case == "garbage":
            answer = _authenticate(client, b"\xff\x00garbage")
        elif case == "final first":
            answer = _authenticate(client, b"c=biws,r=abc,p=AAAA")
        elif case == "no nonce":
            answer = _authenticate(client, b"n,,n=carol")
        elif case == "channel binding":  # Kafka's SCRAM has no channel binding
            answer = _authenticate(client, first.replace(b"n,,", b"p=tls-unique,,", 1))
        else:
            final = login.evaluate(bytes(_authenticate(client, first)["auth_bytes"]))
            if case == "wrong nonce":
                final = final.replace(b",p=", b"X,p=", 1)  # a nonce other than the one the broker sent
            elif case == "wrong proof":
                final = final[:-8] + (b"AAAAAAA=" if not final.endswith(b"AAAAAAA=") else b"BBBBBBB=")
            answer = _authenticate(client, final)
            if case == "twice":
                assert answer["error_code"] == 0
                answer = _authenticate(client, final)
                assert answer["error_code"] == Errors.ILLEGAL_SASL_STATE  # authenticated: not an exchange any more
                assert metadata(client)["brokers"]
                return
        assert answer["error_code"] == Errors.SASL_AUTHENTICATION_FAILED
        assert closed(client)


def test_a_token_larger_than_sasl_server_max_receive_size_closes_the_connection(sasl_broker):
    with RawClient(sasl_broker.sasl_port) as client:
        client.call(ApiKey.SASL_HANDSHAKE, 1, {"mechanism": "PLAIN"})
        client.send(ApiKey.SASL_AUTHENTICATE, 1, {"auth_bytes": b"x" * 600_000})
        assert closed(client)


def _raw_token(sock: socket.socket, token: bytes) -> bytes:
    sock.sendall(struct.pack(">i", len(token)) + token)
    return wire.read_frame(sock)


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_a_v0_handshake_takes_raw_tokens_without_headers(sasl_broker, mechanism):
    user = ("alice", "alice-secret") if mechanism == "PLAIN" else SCRAM_USER
    with RawClient(sasl_broker.sasl_port) as client:
        assert client.call(ApiKey.SASL_HANDSHAKE, 0, {"mechanism": mechanism})["error_code"] == 0
        login = mechanism_client(mechanism, *user)
        token = login.initial_response()
        while not login.complete:
            token = login.evaluate(_raw_token(client.sock, token))
        assert metadata(client)["brokers"]


def test_a_v0_raw_token_with_a_wrong_password_closes_the_connection(sasl_broker):
    with RawClient(sasl_broker.sasl_port) as client:
        client.call(ApiKey.SASL_HANDSHAKE, 0, {"mechanism": "PLAIN"})
        client.sock.sendall(struct.pack(">i", 13) + b"\0alice\0wrong!")
        assert closed(client)


def test_a_session_past_connections_max_reauth_ms_is_closed(sasl_broker):
    with RawClient(sasl_broker.sasl_port) as client:
        assert sasl_login(client, "PLAIN", "alice", "alice-secret", version=1)["session_lifetime_ms"] == REAUTH_MS
        assert metadata(client)["brokers"]

        def connection_closed() -> bool:
            try:
                metadata(client)
            except (wire.ConnectionClosed, OSError):
                return True
            return False

        eventually(connection_closed, what="the expired session to be closed", timeout=REAUTH_MS / 1000 + 10)


def test_reauthentication_keeps_the_session_and_refuses_another_principal(sasl_broker):
    with RawClient(sasl_broker.sasl_port) as client:
        assert sasl_login(client, "PLAIN", "alice", "alice-secret")["error_code"] == 0
        again = sasl_login(client, "PLAIN", "alice", "alice-secret")
        assert (again["error_code"], again["session_lifetime_ms"]) == (0, REAUTH_MS)
        assert metadata(client)["brokers"]
    with RawClient(sasl_broker.sasl_port) as client:
        assert sasl_login(client, "PLAIN", "alice", "alice-secret")["error_code"] == 0
        other = sasl_login(client, "PLAIN", "admin", "admin-secret")
        assert other["error_code"] == Errors.SASL_AUTHENTICATION_FAILED
        assert other["error_message"] == "Cannot change principals during re-authentication from User.alice: User.admin"
        assert closed(client)


def test_sasl_requests_on_a_plaintext_listener_are_an_illegal_state(sasl_broker):
    answer = raw_call(sasl_broker.port, ApiKey.SASL_HANDSHAKE, 1, {"mechanism": "PLAIN"})
    assert answer["error_code"] == Errors.ILLEGAL_SASL_STATE


def test_a_thousand_failed_logins_close_each_connection_log_one_line_and_stall_nobody(sasl_broker):
    lines_before = sasl_broker.output().count("Failed authentication with")

    async def flood_while_serving() -> tuple[list[bool], list[bool]]:
        semaphore = asyncio.Semaphore(50)

        async def one() -> bool:
            async with semaphore:
                return await failed_plain_login(sasl_broker.sasl_port)

        flood = asyncio.gather(*(one() for _ in range(1000)))
        served = []
        while not flood.done():  # a good client logs in and is served while the flood goes on
            served.append(await asyncio.to_thread(_good_login, sasl_broker.sasl_port))
        return await flood, served

    results, served = asyncio.run(flood_while_serving())
    assert all(results) and len(results) == 1000
    assert served and all(served)
    assert sasl_broker.alive()
    assert sasl_broker.output().count("Failed authentication with") - lines_before <= 2


def _good_login(port: int) -> bool:
    with RawClient(port, timeout=5) as client:
        return sasl_login(client, "SCRAM-SHA-512", *SCRAM_USER)["error_code"] == 0 and bool(metadata(client)["brokers"])


def _network_client(port: int, password: str) -> NetworkClient:
    return NetworkClient("127.0.0.1", port, "broker-9-test",
                         sasl=ClientSasl("PLAIN", lambda: PlainClient("alice", password)))


METADATA_BODY = {"topics": [], "allow_auto_topic_creation": False, "include_topic_authorized_operations": False}


def test_the_brokers_own_client_logs_in_and_replaces_its_connection_before_the_session_ends(sasl_broker):
    """NetworkClient (replica fetchers, controller channel) over SASL: a login refused is a
    ConnectionError naming Kafka's message; a session is not let run out: past 85% of its
    lifetime the idle connection is replaced by a freshly authenticated one."""
    async def run() -> None:
        refused = _network_client(sasl_broker.sasl_port, "wrong")
        with pytest.raises(ConnectionError, match="Invalid username or password"):
            await refused.send(ApiKey.METADATA, METADATA_V, METADATA_BODY)
        await refused.close()
        client = _network_client(sasl_broker.sasl_port, "alice-secret")
        try:
            assert (await client.send(ApiKey.METADATA, METADATA_V, METADATA_BODY))["brokers"]
            first_connection = client._transport
            await asyncio.sleep(REAUTH_MS / 1000 + 0.2)  # past the session: the broker would close it now
            assert (await client.send(ApiKey.METADATA, METADATA_V, METADATA_BODY))["brokers"]
            assert client._transport is not first_connection
        finally:
            await client.close()

    asyncio.run(run())


def test_scram_credentials_outlive_a_restart_of_the_single_node_broker(sasl_broker):
    """Last in this module: the embedded metadata store keeps /config/users across restarts."""
    sasl_broker.restart()
    with RawClient(sasl_broker.sasl_port) as client:
        assert sasl_login(client, "SCRAM-SHA-512", *SCRAM_USER)["error_code"] == 0
    described = raw_call(sasl_broker.port, ApiKey.DESCRIBE_USER_SCRAM_CREDENTIALS, 0, {"users": None})
    assert [(r["user"], len(r["credential_infos"])) for r in described["results"]] == [(SCRAM_USER[0], 2)]


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_the_tools_own_connections_log_in_over_sasl_plaintext(sasl_broker, mechanism, monkeypatch):
    from kbroker.tools import wire as tool_wire
    from kbroker.tools.common import SESSION, ToolError

    user, password = ("alice", "alice-secret") if mechanism == "PLAIN" else SCRAM_USER
    monkeypatch.setattr(SESSION, "config", {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": mechanism,
                                            "sasl.username": user, "sasl.password": password})
    address = f"127.0.0.1:{sasl_broker.sasl_port}"
    listing = {"timeout_ms": 5000, "topics": None}
    answer = tool_wire.send_request(address, ApiKey.LIST_PARTITION_REASSIGNMENTS, 0, listing)
    assert answer["error_code"] == 0 and answer["topics"] == []
    monkeypatch.setitem(SESSION.config, "sasl.password", "wrong")
    with pytest.raises(ToolError, match="^SASL authentication failed: Authentication failed"):
        tool_wire.send_request(address, ApiKey.LIST_PARTITION_REASSIGNMENTS, 0, listing)
    monkeypatch.setitem(SESSION.config, "security.protocol", "PLAINTEXT")  # no login: the broker closes
    with pytest.raises(ToolError, match="connection closed by the broker"):
        tool_wire.send_request(address, ApiKey.LIST_PARTITION_REASSIGNMENTS, 0, listing)
