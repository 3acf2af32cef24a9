"""No accepted setting is silently ignored (issue 16, bug 1): every key of the settings table is
read by the broker, refused at start while unsupported, or named at start as having no effect;
a misspelled setting or KBROKER_* variable gets a "did you mean"."""

import asyncio
import logging
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from kbroker import cli
from kbroker.config import BROKER_CONFIG_BY_NAME, BROKER_CONFIGS, KafkaConfig
from kbroker.config.properties import did_you_mean, unknown_env_variables
from kbroker.config.support import (
    NO_EFFECT,
    UNSUPPORTED,
    ignored_settings,
    refused_settings,
    unknown_settings,
)
from kbroker.log.config import LogConfig
from kbroker.network.socket_server import SocketServer
from kbroker.testing.batches import producer_batch, read_batches
from kbroker.testing.raw_client import RawClient, create_topic, fetch, produce
from kbroker.testing.waiting import eventually_async

KBROKER = Path(__file__).resolve().parents[1] / "kbroker"

# Settings read through one of KafkaConfig's derived properties: the property must be read.
READ_THROUGH = {
    "control.plane.listener.name": "control_plane_listener_name",
    "max.connections.per.ip.overrides": "max_connections_per_ip_overrides",
    "listeners": "listeners",
    "listener.security.protocol.map": "listeners",
    "advertised.listeners": "advertised_listeners",
    "log.dir": "log_dirs",
    "log.dirs": "log_dirs",
    "inter.broker.listener.name": "inter_broker_listener_name",
    "security.inter.broker.protocol": "inter_broker_listener_name",
    "zookeeper.connection.timeout.ms": "zookeeper_connection_timeout_ms",
}
# Implemented on other branches of issue 16 (connection limits, listeners) in flight at the same
# time; each is read by the broker once they are merged, and must then leave this set.
PENDING_ELSEWHERE: set[str] = set()


def _broker_sources() -> str:
    """Every module of the broker: not the config package, which declares settings but acts on
    none, nor the test support, which only sets them."""
    return "\n".join(path.read_text() for path in KBROKER.rglob("*.py")
                     if path.relative_to(KBROKER).parts[0] not in ("config", "testing"))


SOURCES = _broker_sources()
LOG_FIELDS = {field.replace("_", ".") for field in LogConfig._fields}


def read_by_broker(name: str) -> bool:
    key = BROKER_CONFIG_BY_NAME[name]
    if f'"{name}"' in SOURCES:
        return True
    # KafkaConfig.topic_defaults() gives the topic setting's default to every log's LogConfig.
    if key.topic_name is not None and (key.topic_name in LOG_FIELDS or f'"{key.topic_name}"' in SOURCES):
        return True
    prop = READ_THROUGH.get(name)
    return prop is not None and re.search(rf"\.{prop}\b", SOURCES) is not None


def test_every_accepted_setting_is_read_refused_or_declared_without_effect():
    silent = [key.name for key in BROKER_CONFIGS
              if not (read_by_broker(key.name) or key.name in UNSUPPORTED or key.name in NO_EFFECT
                      or key.name in PENDING_ELSEWHERE)]
    assert silent == [], "accepted but never read: implement, add to UNSUPPORTED or to NO_EFFECT"


# LogConfig fields read through one of its properties (which must then be read), and fields another
# layer reads by the topic config's Kafka name rather than from the log's LogConfig.
LOG_FIELDS_READ_THROUGH = {
    "cleanup_policy": ("compact", "delete"),
    "message_timestamp_type": ("log_append_time",),
    "compression_type": ("target_codec",),
    "compression_gzip_level": ("target_level",),
    "compression_lz4_level": ("target_level",),
    "compression_zstd_level": ("target_level",),
    "segment_ms": ("max_segment_ms",),
    "segment_jitter_ms": ("random_segment_jitter",),
}
LOG_FIELDS_READ_BY_NAME = {
    # The controller reads it from the topic's config in ZooKeeper when it elects a leader.
    "unclean_leader_election_enable": '"unclean.leader.election.enable"',
}
LOG_CONFIG_MODULE = KBROKER / "log" / "config.py"
# The broker's modules except the one declaring LogConfig: a field parsed there but read nowhere
# else (`preallocate` was) is a topic setting accepted and ignored.
SOURCES_BESIDE_LOG_CONFIG = "\n".join(path.read_text() for path in KBROKER.rglob("*.py")
                                      if path != LOG_CONFIG_MODULE
                                      and path.relative_to(KBROKER).parts[0] not in ("config", "testing"))


def log_field_read(field: str) -> bool:
    """Read as `<something>config.<field>` (the log's LogConfig: `self.config`, `log.config`...)."""
    return re.search(rf"config\.{field}\b", SOURCES_BESIDE_LOG_CONFIG) is not None


def test_every_log_config_field_is_acted_on_outside_its_declaration():
    unread = [field for field in LogConfig._fields
              if not (log_field_read(field)
                      or any(log_field_read(prop) for prop in LOG_FIELDS_READ_THROUGH.get(field, ()))
                      or LOG_FIELDS_READ_BY_NAME.get(field, "\0") in SOURCES_BESIDE_LOG_CONFIG)]
    assert unread == [], "parsed into LogConfig but never acted on: implement, or declare the topic setting " \
                         "without effect (kbroker/config/support.py)"


def test_the_log_config_check_sees_a_field_only_its_declaration_reads():
    """The check above is not vacuous: a name read nowhere is found unread, the module declaring
    LogConfig is left out, and the names in the two tables are real."""
    assert not log_field_read("no_such_field")
    assert LOG_CONFIG_MODULE.is_file() and LOG_CONFIG_MODULE.read_text() not in SOURCES_BESIDE_LOG_CONFIG
    assert all(prop in LOG_CONFIG_MODULE.read_text() for props in LOG_FIELDS_READ_THROUGH.values() for prop in props)
    assert set(LOG_FIELDS_READ_THROUGH) | set(LOG_FIELDS_READ_BY_NAME) <= set(LogConfig._fields)


def test_lists_name_real_settings_and_do_not_contradict_the_code():
    assert set(UNSUPPORTED) <= set(BROKER_CONFIG_BY_NAME)
    assert set(NO_EFFECT) <= set(BROKER_CONFIG_BY_NAME)
    assert not set(UNSUPPORTED) & set(NO_EFFECT)
    assert [name for name in NO_EFFECT if read_by_broker(name)] == [], "read by the broker, so not without effect"
    now_read = [name for name in PENDING_ELSEWHERE if read_by_broker(name)]
    assert now_read == [], f"implemented now: remove {now_read} from PENDING_ELSEWHERE"


@pytest.mark.parametrize("given", [
    ["ssl.provider=SunJSSE"],
    ["ssl.engine.factory.class=com.example.Factory"],
    ["ssl.no.such.setting=1"],  # not in the table: refused by its prefix
    ["sasl.kerberos.service.name=kafka"],
    ["sasl.mechanism.controller.protocol=PLAIN"],  # not in the table: refused by its prefix
    ["authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer"],  # KRaft's
    ["authorizer.class.name=com.example.MyAuthorizer"],
    ["principal.builder.class=com.example.Builder"],
    ["delegation.token.secret.key=k"],
    ["replication.quota.window.num=20"],
    ["quota.producer.default=1048576"],
    ["listener.name.internal.ssl.keymanager.algorithm=PKIX"],
    ["listener.name.sasl.gssapi.sasl.jaas.config=x"],
    ["listener.name.sasl.oauthbearer.sasl.server.callback.handler.class=x"],
])
def test_unsupported_settings_are_refused(given):
    config = KafkaConfig.load(overrides=given)
    names = {item.partition("=")[0] for item in given}
    assert set(refused_settings(config)) & names


def test_a_sasl_ssl_listener_with_tls_and_sasl_settings_loads():
    config = KafkaConfig.load(overrides=[
        "security.inter.broker.protocol=SASL_SSL", "listeners=SASL_SSL://:9093,PLAINTEXT://:9092",
        "sasl.enabled.mechanisms=SCRAM-SHA-512", "sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512",
        "ssl.keystore.location=/k.p12", "ssl.keystore.type=PKCS12",
        "listener.name.sasl_ssl.ssl.client.auth=requested"])
    assert refused_settings(config) == []
    assert config.inter_broker_listener_name == "SASL_SSL"


def test_tls_settings_are_accepted_also_per_listener():
    config = KafkaConfig.load(overrides=[
        "security.inter.broker.protocol=SSL", "listeners=SSL://:9093,PLAINTEXT://:9092",
        "ssl.keystore.location=/k.p12", "ssl.keystore.type=PKCS12", "ssl.client.auth=required",
        "ssl.principal.mapping.rules=RULE:^CN=(.*)$/$1/", "ssl.cipher.suites=TLS_AES_128_GCM_SHA256",
        "listener.name.ssl.ssl.keystore.location=/k", "listener.name.ssl.ssl.client.auth=requested"])
    assert refused_settings(config) == []
    assert config.inter_broker_listener_name == "SSL"


@pytest.mark.parametrize("authorizer", ["kafka.security.authorizer.AclAuthorizer",
                                        "kafka.security.auth.SimpleAclAuthorizer"])
def test_the_acl_authorizer_and_its_settings_are_accepted_and_read(authorizer):
    config = KafkaConfig.load(overrides=[f"authorizer.class.name={authorizer}", "super.users=User:admin;User:bob",
                                         "allow.everyone.if.no.acl.found=true"])
    assert refused_settings(config) == []
    assert unknown_settings(config) == []  # read by the authorizer, so no "unknown settings" warning
    assert config.unknown_settings["super.users"] == "User:admin;User:bob"


def test_the_authorizer_settings_without_an_authorizer_are_unknown_as_in_kafka():
    config = KafkaConfig.load(overrides=["super.users=User:admin"])
    assert unknown_settings(config) == ["super.users"]


def test_unsupported_settings_left_at_kafkas_default_are_accepted():
    config = KafkaConfig.load(overrides=["ssl.client.auth=none", "authorizer.class.name=",
                                         "security.inter.broker.protocol=PLAINTEXT", "sasl.enabled.mechanisms=GSSAPI"])
    assert refused_settings(config) == []


KAFKA_SAMPLE = """\
broker.id=0
num.network.threads=3
num.io.threads=8
socket.send.buffer.bytes=102400
socket.receive.buffer.bytes=102400
socket.request.max.bytes=104857600
log.dirs=/tmp/kafka-logs
num.partitions=1
num.recovery.threads.per.data.dir=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
log.retention.hours=168
log.retention.check.interval.ms=300000
zookeeper.connect=localhost:2181
zookeeper.connection.timeout.ms=18000
group.initial.rebalance.delay.ms=0
"""


def test_kafkas_sample_server_properties_starts_and_names_what_has_no_effect(tmp_path):
    path = tmp_path / "server.properties"
    path.write_text(KAFKA_SAMPLE)
    config = KafkaConfig.load(str(path))
    assert refused_settings(config) == []
    ignored = ignored_settings(config)
    assert ignored["one event loop, no thread pools"] == [
        "num.io.threads", "num.network.threads", "num.recovery.threads.per.data.dir"]
    assert not [name for names in ignored.values() for name in names if name.startswith("transaction")]


def run_module(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KBROKER_")}
    return subprocess.run([sys.executable, "-m", "kbroker", *args], capture_output=True, text=True, timeout=30,
                          env={**clean, **(env or {})})


def test_broker_refuses_to_start_with_one_line_naming_them(tmp_path):
    result = run_module("--override", f"log.dirs={tmp_path}", "--override", "ssl.provider=SunJSSE",
                        "--override", "authorizer.class.name=com.example.MyAuthorizer")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "kbroker: error: not supported by kbroker yet: authorizer.class.name, ssl.provider "
        "(kbroker would run without them; remove them, or leave them at Kafka's default)"]
    assert list(tmp_path.iterdir()) == []  # refused before anything was created


def test_settings_without_effect_get_one_info_line(caplog):
    config = KafkaConfig.load(overrides=["num.io.threads=4", "metrics.num.samples=3", "num.partitions=2"])
    with caplog.at_level(logging.INFO, logger="kbroker.cli"):
        cli._log_startup(config)
    lines = [r.getMessage() for r in caplog.records if "no effect" in r.getMessage()]
    assert lines == ["settings with no effect in kbroker: num.io.threads (one event loop, no thread pools); "
                     "metrics.num.samples (no JMX metrics)"]


# -- misspellings --------------------------------------------------------------------------


def test_misspelled_environment_variable_is_named_with_a_suggestion():
    env = {"KBROKER_NUM_PARTITONS": "3", "KBROKER_NUM_PARTITIONS": "2", "KBROKER_LOG_LEVEL": "INFO",
           "KBROKER_WHATEVER": "1", "HOME": "/"}
    assert unknown_env_variables(env) == ["KBROKER_NUM_PARTITONS", "KBROKER_WHATEVER"]
    assert did_you_mean("KBROKER_NUM_PARTITONS") == " (did you mean KBROKER_NUM_PARTITIONS?)"
    assert did_you_mean("KBROKER_WHATEVER") == ""
    assert did_you_mean("log.retention.hour") == " (did you mean log.retention.hours?)"


def test_cli_warns_about_misspelled_keys_and_variables(monkeypatch, capsys):
    for name in [n for n in os.environ if n.startswith("KBROKER_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("KBROKER_ADVERTISED_LISTENER", "PLAINTEXT://h:9092")
    cli.parse_args(["--override", "num.partiton=3"])
    assert capsys.readouterr().err.splitlines() == [
        "kbroker: warning: ignoring unknown settings: num.partiton (did you mean num.partitions?), "
        "KBROKER_ADVERTISED_LISTENER (did you mean KBROKER_ADVERTISED_LISTENERS?)"]


# -- settings that used to be ignored and now act ------------------------------------------


def test_fetch_max_bytes_caps_what_one_fetch_returns(broker_factory):
    broker = broker_factory.start("fetch.max.bytes=1024")
    create_topic(broker.port, "capped")
    with RawClient(broker.port) as client:
        for _ in range(3):
            assert produce(client, "capped", 0, producer_batch([b"v" * 700]))["error_code"] == 0
        _, partition = fetch(client, "capped", 0, 0, max_bytes=50 * 1024 * 1024)
    # The first batch always comes whole (KIP-74); the broker's cap stops the next ones.
    assert partition["error_code"] == 0
    assert [batch.base_offset for batch, _ in read_batches(bytes(partition["records"]))] == [0]


def test_socket_buffer_sizes_apply_to_accepted_connections():
    async def no_answer(_connection, _frame):
        return None

    async def accepted_buffer_sizes() -> tuple[int, int]:
        server = SocketServer("127.0.0.1", 0, no_answer, send_buffer_bytes=64 * 1024, receive_buffer_bytes=48 * 1024)
        await server.start()
        try:
            _reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            await eventually_async(lambda: server.connections, what="the connection to be accepted")
            [connection] = server.connections
            sock = connection.transport.get_extra_info("socket")
            writer.close()
            return sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF), sock.getsockopt(
                socket.SOL_SOCKET, socket.SO_RCVBUF)
        finally:
            await server.shutdown(1.0)

    # Linux doubles what it is given, for its own bookkeeping.
    assert asyncio.run(accepted_buffer_sizes()) == (2 * 64 * 1024, 2 * 48 * 1024)


def test_the_sasl_settings_of_plain_and_scram_are_accepted_also_per_listener():
    config = KafkaConfig.load(overrides=[
        "sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-512", "sasl.mechanism.inter.broker.protocol=PLAIN",
        "connections.max.reauth.ms=60000", "sasl.server.max.receive.size=1000", "sasl.jaas.config=x",
        "connection.failed.authentication.delay.ms=50",
        "listener.name.client.sasl.enabled.mechanisms=PLAIN",
        "listener.name.client.plain.sasl.jaas.config=x", "listener.name.client.scram-sha-512.sasl.jaas.config=x",
        "listener.name.client.scram-sha-256.connections.max.reauth.ms=1000"])
    assert refused_settings(config) == []
