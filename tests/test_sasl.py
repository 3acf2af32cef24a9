"""The SASL mechanisms and their state, without a server: the JAAS parser, PLAIN, SCRAM against
RFC 7677's example exchange, Kafka's credential format in /config/users, the authenticator's
states (Kafka's SaslServerAuthenticator) and Describe/AlterUserScramCredentials over the
embedded metadata store."""

from __future__ import annotations

import base64
import json

import pytest

from kbroker.config import ConfigError, KafkaConfig
from kbroker.metadata.kafka_zk_client import KafkaZkClient
from kbroker.metadata.znode_store import EmbeddedZNodeStore
from kbroker.protocol.api_keys import ApiKey
from kbroker.protocol.errors import Errors
from kbroker.security import scram
from kbroker.security.credential_cache import CredentialCache, ScramCredentialManager
from kbroker.security.jaas import JaasConfigError, parse_jaas_config, plain_users
from kbroker.security.principal import KafkaPrincipal
from kbroker.security.sasl import PlainServer, SaslAuthenticationError, SaslError
from kbroker.security.sasl_authenticator import SaslServerAuthenticator, SaslState
from kbroker.security.sasl_config import ListenerSaslConfig, inter_broker_login, listener_sasl_configs
from kbroker.security.scram import SCRAM_SHA_256, SCRAM_SHA_512, ScramClient, ScramCredential, ScramServer
from kbroker.testing.sasl import jaas, sasl_listener_overrides


# -- JAAS ------------------------------------------------------------------------------------
def test_jaas_config_is_parsed_as_kafka_reads_it():
    (entry,) = parse_jaas_config(
        'org.apache.kafka.common.security.plain.PlainLoginModule required\n username="admin" '
        "password='a\\'b' user_admin=\"admin-secret\" user_alice=pw;")
    assert entry.login_module == "org.apache.kafka.common.security.plain.PlainLoginModule"
    assert entry.control_flag == "required"
    assert entry.options == {"username": "admin", "password": "a'b", "user_admin": "admin-secret", "user_alice": "pw"}
    assert plain_users(entry) == {"admin": "admin-secret", "alice": "pw"}


@pytest.mark.parametrize("text", ["", "Module required a=b", "Module maybe a=b;", "Module required a;"])
def test_malformed_jaas_config_is_refused(text):
    with pytest.raises(JaasConfigError):
        parse_jaas_config(text)


# -- PLAIN -----------------------------------------------------------------------------------
@pytest.mark.parametrize(("token", "error", "message"), [
    (b"\0alice\0wrong", SaslAuthenticationError, "Authentication failed: Invalid username or password"),
    (b"\0nobody\0pw", SaslAuthenticationError, "Authentication failed: Invalid username or password"),
    (b"\0\0pw", SaslAuthenticationError, "Authentication failed: username not specified"),
    (b"\0alice\0", SaslAuthenticationError, "Authentication failed: password not specified"),
    (b"bob\0alice\0pw", SaslAuthenticationError, "different from username"),
    (b"alice-pw", SaslError, "expected 3 tokens, got 1"),
    (b"\xff\xfe", SaslError, "not UTF-8"),
])
def test_plain_refuses_what_kafka_refuses(token, error, message):
    with pytest.raises(error, match=message):
        PlainServer({"alice": "pw"}).evaluate(token)


def test_plain_accepts_a_jaas_user():
    server = PlainServer({"alice": "pw"})
    assert server.evaluate(b"alice\0alice\0pw") == b""
    assert server.complete and server.authorization_id == "alice"


# -- SCRAM -----------------------------------------------------------------------------------
def test_scram_sha_256_matches_rfc_7677(monkeypatch):
    """RFC 7677 section 3: user "user", password "pencil"; the server's nonce part is fixed."""
    salt = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
    credential = scram.credential_from_password(SCRAM_SHA_256, "pencil", 4096, salt)
    monkeypatch.setattr(scram, "_nonce", lambda: "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0")
    server = ScramServer(SCRAM_SHA_256, {"user": credential}.get)
    first = server.evaluate(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO")
    assert first == b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
    final = server.evaluate(b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                            b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
    assert final == b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
    assert server.complete and server.authorization_id == "user"


@pytest.mark.parametrize("mechanism", [SCRAM_SHA_256, SCRAM_SHA_512])
def test_scram_client_and_server_agree(mechanism):
    credential = scram.credential_from_password(mechanism, "s3cret", 8192)
    server = ScramServer(mechanism, {"bob": credential}.get)
    client = ScramClient(mechanism, "bob", "s3cret")
    token = client.initial_response()
    while not client.complete:
        token = client.evaluate(server.evaluate(token))
    assert server.complete and server.authorization_id == "bob"


def _scram_first_step(password: str = "s3cret") -> tuple[ScramServer, ScramClient, bytes]:
    credential = scram.credential_from_password(SCRAM_SHA_512, "s3cret")
    server = ScramServer(SCRAM_SHA_512, {"bob": credential}.get)
    client = ScramClient(SCRAM_SHA_512, "bob", password)
    final = client.evaluate(server.evaluate(client.initial_response()))
    return server, client, final


def test_scram_refuses_a_wrong_password_a_wrong_nonce_and_messages_out_of_order():
    server, _, final = _scram_first_step("wrong")
    with pytest.raises(SaslError, match="Invalid client credentials"):
        server.evaluate(final)
    server, _, final = _scram_first_step()
    with pytest.raises(SaslError, match="Invalid client nonce"):
        server.evaluate(final.replace(b",p=", b"x,p=", 1))  # another nonce
    server = ScramServer(SCRAM_SHA_512, lambda _user: None)
    with pytest.raises(SaslError, match="Invalid SCRAM client first message"):
        server.evaluate(b"c=biws,r=abc,p=AAAA")  # a final message first
    with pytest.raises(SaslError, match="Invalid user credentials"):
        ScramServer(SCRAM_SHA_512, lambda _user: None).evaluate(b"n,,n=nobody,r=abc")
    server, _, final = _scram_first_step()
    server.evaluate(final)
    with pytest.raises(SaslError):
        server.evaluate(final)  # after completion


def test_scram_credential_is_stored_in_kafkas_form():
    credential = scram.credential_from_password(SCRAM_SHA_256, "pw", 4096, b"salt" * 4)
    text = credential.to_config_value()
    assert text.startswith("salt=c2FsdHNhbHRzYWx0c2FsdA==,stored_key=") and text.endswith(",iterations=4096")
    assert ScramCredential.from_config_value(text) == credential
    with pytest.raises(ValueError):
        ScramCredential.from_config_value("salt=!!,iterations=x")


# -- the authenticator's states ------------------------------------------------------------
def _authenticator(reauth_ms: int = 0) -> SaslServerAuthenticator:
    config = ListenerSaslConfig("SASL_PLAINTEXT", ("PLAIN", "SCRAM-SHA-256"), {"alice": "pw", "bob": "pw"},
                                {"PLAIN": reauth_ms, "SCRAM-SHA-256": reauth_ms})
    return SaslServerAuthenticator(config, lambda _m, _u: None)


def test_only_api_versions_and_the_handshake_come_before_authentication():
    auth = _authenticator()
    assert auth.refusal(ApiKey.API_VERSIONS) is None
    assert auth.refusal(ApiKey.METADATA) == "Unexpected Kafka request of type METADATA during SASL handshake."
    auth.versions_answered()
    assert auth.refusal(ApiKey.API_VERSIONS) is not None  # once only, as in Kafka
    assert auth.handshake("PLAIN", 1) == Errors.NONE
    assert auth.refusal(ApiKey.PRODUCE) == "Unexpected Kafka request of type PRODUCE during SASL authentication."
    assert auth.refusal(ApiKey.SASL_AUTHENTICATE) is None


def test_an_unsupported_mechanism_fails_the_connection():
    auth = _authenticator()
    assert auth.handshake("GSSAPI", 1) == Errors.UNSUPPORTED_SASL_MECHANISM
    assert auth.state == SaslState.FAILED


def test_reauthentication_keeps_the_principal_and_the_session_lifetime_is_reported():
    auth = _authenticator(reauth_ms=60000)
    auth.handshake("PLAIN", 1)
    result = auth.authenticate(b"\0alice\0pw", 1)
    assert (result.error_code, result.session_lifetime_ms) == (0, 60000)
    assert auth.principal == KafkaPrincipal("User", "alice") and not auth.expired()
    assert auth.begin_reauthentication(now=10.0)
    assert not auth.begin_reauthentication(now=10.5)  # at most once a second
    auth.handshake("PLAIN", 1)
    result = auth.authenticate(b"\0bob\0pw", 1)
    assert result.error_code == Errors.SASL_AUTHENTICATION_FAILED
    assert result.error_message == "Cannot change principals during re-authentication from User.alice: User.bob"


def test_a_generic_message_hides_why_scram_failed():
    auth = _authenticator()
    auth.handshake("SCRAM-SHA-256", 1)
    result = auth.authenticate(b"n,,n=nobody,r=abc", 2)
    assert result.error_code == Errors.SASL_AUTHENTICATION_FAILED
    assert result.error_message == ("Authentication failed during authentication due to invalid credentials with "
                                    "SASL mechanism SCRAM-SHA-256")


# -- settings -------------------------------------------------------------------------------
def test_listener_settings_are_read_per_listener_and_mechanism():
    config = KafkaConfig.load(overrides=[*sasl_listener_overrides(9092, 9093), "connections.max.reauth.ms=5000",
                                         "security.inter.broker.protocol=SASL_PLAINTEXT",
                                         "sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512"])
    (listener,) = listener_sasl_configs(config).values()
    assert listener.enabled_mechanisms == ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
    assert listener.plain_users == {"admin": "admin-secret", "alice": "alice-secret"}
    assert listener.reauth_ms["PLAIN"] == 5000
    login = inter_broker_login(config)
    assert login is not None and (login.mechanism, login.username) == ("SCRAM-SHA-512", "admin")


def test_the_top_level_jaas_setting_may_hold_one_entry_per_login_module():
    both = f"{jaas('PLAIN')} {jaas('SCRAM-SHA-256', 'broker', 'broker-pw')}"
    config = KafkaConfig.load(overrides=["listeners=SASL_PLAINTEXT://:9093", "security.inter.broker.protocol=SASL_PLAINTEXT",
                                         "sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256", f"sasl.jaas.config={both}",
                                         "sasl.mechanism.inter.broker.protocol=SCRAM-SHA-256"])
    assert listener_sasl_configs(config)["SASL_PLAINTEXT"].plain_users["alice"] == "alice-secret"
    login = inter_broker_login(config)
    assert login is not None and (login.username, login.password) == ("broker", "broker-pw")


@pytest.mark.parametrize(("extra", "message"), [
    (["sasl.enabled.mechanisms=GSSAPI"], "kbroker does not serve GSSAPI"),
    (["listener.name.sasl_plaintext.plain.sasl.jaas.config="], "Could not find a 'KafkaServer'"),
    (["security.inter.broker.protocol=SASL_PLAINTEXT"],
     "sasl.mechanism.inter.broker.protocol must be included in sasl.enabled.mechanisms"),
    ([f"listener.name.sasl_plaintext.plain.sasl.jaas.config={jaas('SCRAM-SHA-256')}"], "needs .*PlainLoginModule"),
    (["listeners=PLAINTEXT://:9092,SASL_PLAINTEXT://:9093,CONTROL://:9094", "control.plane.listener.name=CONTROL",
      "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROL:PLAINTEXT",
      "security.inter.broker.protocol=SASL_PLAINTEXT", "sasl.mechanism.inter.broker.protocol=PLAIN"],
     "must both use SASL or neither"),
])
def test_sasl_settings_kafka_would_refuse_stop_the_start(extra, message):
    config = KafkaConfig.load(overrides=[*sasl_listener_overrides(9092, 9093), *extra])
    with pytest.raises(ConfigError, match=message):
        listener_sasl_configs(config)
        inter_broker_login(config)


# -- credentials in the metadata store ------------------------------------------------------
@pytest.fixture
def credentials(tmp_path) -> tuple[KafkaZkClient, CredentialCache, ScramCredentialManager]:
    zk_client = KafkaZkClient(EmbeddedZNodeStore(str(tmp_path)))
    zk_client.create_top_level_paths()
    cache = CredentialCache()
    return zk_client, cache, ScramCredentialManager(zk_client, cache)


def _upsertion(name: str, mechanism: int = 1, iterations: int = 4096, password: str = "pw") -> dict:
    mech = scram.SCRAM_BY_TYPE.get(mechanism, SCRAM_SHA_256)
    salt = b"0123456789abcdef"
    return {"name": name, "mechanism": mechanism, "iterations": iterations, "salt": salt,
            "salted_password": mech.salted_password(password, salt, max(iterations, 1))}


def test_alter_writes_kafkas_znode_and_a_change_notification(credentials):
    zk_client, cache, manager = credentials
    assert manager.alter([], [_upsertion("alice@example.com"), _upsertion("alice@example.com", 2)]) == [
        {"user": "alice@example.com", "error_code": 0, "error_message": None}]
    data, _ = zk_client.store.get("/config/users/alice%40example.com")
    stored = json.loads(data)
    assert stored["version"] == 1 and set(stored["config"]) == {"SCRAM-SHA-256", "SCRAM-SHA-512"}
    assert stored["config"]["SCRAM-SHA-256"].endswith(",iterations=4096")
    changes = [json.loads(zk_client.store.get(f"/config/changes/{c}")[0])
               for c in zk_client.store.get_children("/config/changes")]
    assert {"version": 2, "entity_path": "users/alice%40example.com"} in changes
    assert cache.get("SCRAM-SHA-512", "alice@example.com") is not None
    fresh = CredentialCache()
    fresh.load(zk_client)  # a broker starting later finds it
    assert fresh.get("SCRAM-SHA-256", "alice@example.com") == cache.get("SCRAM-SHA-256", "alice@example.com")
    assert manager.describe(None) == [{"user": "alice@example.com", "error_code": 0, "error_message": None,
                                       "credential_infos": [{"mechanism": 1, "iterations": 4096},
                                                            {"mechanism": 2, "iterations": 4096}]}]


def test_alter_and_describe_answer_kafkas_errors(credentials):
    _, cache, manager = credentials
    results = manager.alter([{"name": "gone", "mechanism": 1}, {"name": "x", "mechanism": 1}],
                            [_upsertion(""), _upsertion("few", iterations=1000), _upsertion("many", iterations=20000),
                             _upsertion("odd", mechanism=7), _upsertion("x")])
    by_user = {r["user"]: (r["error_code"], r["error_message"]) for r in results}
    assert by_user == {
        "gone": (Errors.RESOURCE_NOT_FOUND, "Attempt to delete a user credential that does not exist"),
        "x": (Errors.DUPLICATE_RESOURCE, "A user credential cannot be altered twice in the same request"),
        "": (Errors.UNACCEPTABLE_CREDENTIAL, "Username must not be empty"),
        "few": (Errors.UNACCEPTABLE_CREDENTIAL, "Too few iterations"),
        "many": (Errors.UNACCEPTABLE_CREDENTIAL, "Too many iterations"),
        "odd": (Errors.UNSUPPORTED_SASL_MECHANISM, "Unknown SCRAM mechanism"),
    }
    assert cache.get("SCRAM-SHA-256", "x") is None  # nothing of a refused user is written
    described = manager.describe(["nobody", "dup", "dup"])
    assert [(r["user"], r["error_code"]) for r in described] == [
        ("nobody", Errors.RESOURCE_NOT_FOUND), ("dup", Errors.DUPLICATE_RESOURCE)]


def test_deleting_a_users_last_credential_removes_it_from_the_cache(credentials):
    _, cache, manager = credentials
    manager.alter([], [_upsertion("bob")])
    assert manager.alter([{"name": "bob", "mechanism": 1}], [])[0]["error_code"] == 0
    assert cache.get("SCRAM-SHA-256", "bob") is None
    assert manager.describe(None) == []
