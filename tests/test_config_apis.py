"""DescribeConfigs, AlterConfigs and IncrementalAlterConfigs against a `python -m kbroker` subprocess.

Requests go out through kafka-python's KafkaAdminClient, or are encoded with kbroker's codec when a
test needs one exact version or a request no client would send; responses of raw requests are
decoded with kafka-python's schema classes (and must re-encode byte for byte). The expectations are
Apache Kafka's (ConfigHelper, ZkAdminManager): sources, synonyms in Kafka's order, error codes and
messages. The first few tests check the ConfigHelper functions in-process on KafkaConfig objects.
"""

from __future__ import annotations

import itertools

import pytest
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.admin._configs import ConfigResource, ConfigResourceType
from kafka.errors import MessageSizeTooLargeError
from kafka.protocol.admin import (
    AlterConfigsResponse,
    DescribeConfigsResponse,
    IncrementalAlterConfigsResponse,
)

from kbroker.api.config_helper import broker_config_entries, topic_config_entries
from kbroker.config import TOPIC_CONFIGS, KafkaConfig
from kbroker.protocol.messages import request_codec
from kbroker.testing import wire
from kbroker.testing.waiting import eventually

DESCRIBE_CONFIGS, ALTER_CONFIGS, INCREMENTAL_ALTER_CONFIGS = 32, 33, 44
TOPIC, BROKER, BROKER_LOGGER, CLIENT_METRICS = 2, 4, 8, 16
SET, DELETE, APPEND, SUBTRACT = 0, 1, 2, 3
DYNAMIC_TOPIC_CONFIG, STATIC_BROKER_CONFIG, DEFAULT_CONFIG, DYNAMIC_BROKER_LOGGER_CONFIG = 1, 4, 5, 6
UNKNOWN_TOPIC_OR_PARTITION, INVALID_TOPIC_EXCEPTION, INVALID_CONFIG, INVALID_REQUEST = 3, 17, 40, 42
LIST_TYPE, LONG_TYPE, PASSWORD_TYPE = 7, 5, 9
STATIC_RETENTION_MS = "3600000"  # the module broker's log.retention.ms

_correlation_ids = itertools.count(1)
_topic_numbers = itertools.count(1)


# ----------------------------------------------------------------------------------------------
# ConfigHelper in-process


def by_name(entries) -> dict:
    return {e.name: e for e in entries}


def test_topic_entries_follow_kafkas_synonym_order():
    config = KafkaConfig.load(overrides=["log.retention.hours=24", "log.roll.ms=60000"], defaults={})
    entries = by_name(topic_config_entries(config, {"segment.ms": "1000"}, include_synonyms=True))
    assert set(entries) == {key.name for key in TOPIC_CONFIGS}
    retention = entries["retention.ms"]
    # Kafka lists synonyms from the first broker synonym's own name on: log.retention.ms is set
    # nowhere, so the static log.retention.hours is dropped and the source reads DEFAULT_CONFIG,
    # while the value is the effective one.
    assert (retention.value, retention.source, retention.synonyms) == (str(24 * 3600000), DEFAULT_CONFIG, [])
    segment = entries["segment.ms"]
    assert segment.source == DYNAMIC_TOPIC_CONFIG and not segment.is_default
    assert segment.synonyms == [("segment.ms", "1000", DYNAMIC_TOPIC_CONFIG),
                                ("log.roll.ms", "60000", STATIC_BROKER_CONFIG),
                                ("log.roll.hours", "168", DEFAULT_CONFIG)]
    policy = entries["cleanup.policy"]
    assert (policy.value, policy.is_default, policy.config_type) == ("delete", True, LIST_TYPE)
    assert policy.synonyms == [("log.cleanup.policy", "delete", DEFAULT_CONFIG)]


def test_topic_entries_filter_render_and_hide():
    config = KafkaConfig.load(defaults={})
    overrides = {"cleanup.policy": " compact ,delete", "min.cleanable.dirty.ratio": "0.50", "some.future.key": "x"}
    entries = topic_config_entries(config, overrides, keys=["cleanup.policy", "min.cleanable.dirty.ratio",
                                                            "some.future.key", "no.such.key"])
    assert [(e.name, e.value, e.source) for e in entries] == [
        ("cleanup.policy", "compact,delete", DYNAMIC_TOPIC_CONFIG),
        ("min.cleanable.dirty.ratio", "0.5", DYNAMIC_TOPIC_CONFIG),
        ("some.future.key", None, DYNAMIC_TOPIC_CONFIG),  # unknown type: shown as sensitive, like Kafka
    ]
    assert entries[2].is_sensitive and entries[2].config_type == 0
    assert all(e.synonyms == [] and e.documentation is None for e in entries)
    documented = topic_config_entries(config, {}, keys=["retention.ms"], include_documentation=True)
    assert documented[0].documentation


def test_broker_entries_are_read_only_and_hide_secrets():
    config = KafkaConfig.load(overrides=["log.retention.hours=24", "ssl.keystore.password=s3cret",
                                         "listener.name.plaintext.ssl.keystore.location=/k", "custom.thing=1"],
                              defaults={})
    entries = by_name(broker_config_entries(config, include_synonyms=True))
    hours = entries["log.retention.hours"]
    assert (hours.value, hours.source, hours.read_only) == ("24", STATIC_BROKER_CONFIG, True)
    assert hours.synonyms == [("log.retention.hours", "24", STATIC_BROKER_CONFIG),
                              ("log.retention.hours", "168", DEFAULT_CONFIG)]
    assert entries["log.retention.ms"].value is None and entries["log.retention.ms"].synonyms == []
    password = entries["ssl.keystore.password"]
    assert (password.value, password.is_sensitive, password.config_type) == (None, True, PASSWORD_TYPE)
    assert password.synonyms == [("ssl.keystore.password", None, STATIC_BROKER_CONFIG)]
    listener = entries["listener.name.plaintext.ssl.keystore.location"]
    assert (listener.value, listener.is_sensitive) == ("/k", False)
    assert entries["custom.thing"].value is None and entries["custom.thing"].is_sensitive
    assert all(e.read_only for e in entries.values())


# ----------------------------------------------------------------------------------------------
# Against a broker


@pytest.fixture(scope="module")
def shared_broker(module_broker_factory):
    return module_broker_factory(f"log.retention.ms={STATIC_RETENTION_MS}")


@pytest.fixture(scope="module")
def admin(shared_broker):
    client = KafkaAdminClient(bootstrap_servers=shared_broker.bootstrap, request_timeout_ms=10000)
    yield client
    client.close()


@pytest.fixture
def topic(admin) -> str:
    """A new one-partition topic with one override, cleanup.policy=compact."""
    name = f"configs-{next(_topic_numbers)}"
    result = admin.create_topics([NewTopic(name, 1, 1, topic_configs={"cleanup.policy": "compact"})])
    assert result["topics"][0]["error_code"] == 0, result
    return name


def call(port: int, api_key: int, version: int, body: dict, response_class):
    codec = request_codec(api_key, version)
    frame = wire.request_frame(api_key, version, next(_correlation_ids), codec.encode(body), flexible=codec.flexible)
    _, response = wire.decode_with_kafka_python(response_class, wire.roundtrip(port, frame), version)
    return response


def describe(port: int, resources: list[tuple], version: int = 4, synonyms: bool = False,
             documentation: bool = False):
    body = {"resources": [{"resource_type": t, "resource_name": n, "configuration_keys": keys}
                          for t, n, keys in resources],
            "include_synonyms": synonyms, "include_documentation": documentation}
    return call(port, DESCRIBE_CONFIGS, version, body, DescribeConfigsResponse).results


def incremental(port: int, resources: list[tuple], validate_only: bool = False, version: int = 1):
    body = {"resources": [{"resource_type": t, "resource_name": n,
                           "configs": [{"name": k, "config_operation": op, "value": v} for k, op, v in ops]}
                          for t, n, ops in resources],
            "validate_only": validate_only}
    return call(port, INCREMENTAL_ALTER_CONFIGS, version, body, IncrementalAlterConfigsResponse).responses


def alter(port: int, resources: list[tuple], validate_only: bool = False, version: int = 2):
    body = {"resources": [{"resource_type": t, "resource_name": n,
                           "configs": [{"name": k, "value": v} for k, v in configs.items()]}
                          for t, n, configs in resources],
            "validate_only": validate_only}
    return call(port, ALTER_CONFIGS, version, body, AlterConfigsResponse).responses


def overrides(port: int, topic: str) -> dict[str, str]:
    """The topic's DYNAMIC_TOPIC_CONFIG settings, as DescribeConfigs reports them."""
    (result,) = describe(port, [(TOPIC, topic, None)])
    assert result.error_code == 0, result
    return {c.name: c.value for c in result.configs if c.config_source == DYNAMIC_TOPIC_CONFIG}


def test_describe_topic_with_kafka_python(admin, topic):
    described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)], include_synonyms=True,
                                       config_filter="all")["topic"][topic]
    assert set(described) == {key.name for key in TOPIC_CONFIGS}
    policy = described["cleanup.policy"]
    assert (policy["value"], policy["config_source"], policy["config_type"]) == (
        "compact", "DYNAMIC_TOPIC_CONFIG", "LIST")
    assert [(s["name"], s["value"], s["source"]) for s in policy["synonyms"]] == [
        ("cleanup.policy", "compact", "DYNAMIC_TOPIC_CONFIG"), ("log.cleanup.policy", "delete", "DEFAULT_CONFIG")]
    retention = described["retention.ms"]
    assert (retention["value"], retention["config_source"]) == (STATIC_RETENTION_MS, "STATIC_BROKER_CONFIG")
    assert [(s["name"], s["source"]) for s in retention["synonyms"]] == [
        ("log.retention.ms", "STATIC_BROKER_CONFIG"), ("log.retention.hours", "DEFAULT_CONFIG")]
    assert described["segment.ms"]["synonyms"] == []  # log.roll.hours dropped, as Kafka does
    assert all(not c["read_only"] and not c["is_sensitive"] for c in described.values())


def test_describe_every_version(shared_broker, topic):
    port = shared_broker.port
    for version in range(5):
        (result,) = describe(port, [(TOPIC, topic, ["cleanup.policy", "compression.type"])], version=version,
                             synonyms=True, documentation=True)
        assert (result.error_code, result.resource_name) == (0, topic)
        configs = {c.name: c for c in result.configs}
        assert set(configs) == {"cleanup.policy", "compression.type"}
        assert configs["cleanup.policy"].value == "compact"
        if version == 0:  # no source field: is_default says whether it is a default
            assert (configs["cleanup.policy"].is_default, configs["compression.type"].is_default) == (False, True)
            continue
        assert configs["cleanup.policy"].config_source == DYNAMIC_TOPIC_CONFIG
        assert configs["compression.type"].config_source == DEFAULT_CONFIG
        assert [s.name for s in configs["cleanup.policy"].synonyms] == ["cleanup.policy", "log.cleanup.policy"]
        if version >= 3:
            assert configs["cleanup.policy"].config_type == LIST_TYPE
            assert configs["cleanup.policy"].documentation
    (plain,) = describe(port, [(TOPIC, topic, ["cleanup.policy"])], version=3)
    assert (plain.configs[0].synonyms, plain.configs[0].documentation) == ([], None)


def test_describe_errors(shared_broker, topic):
    port = shared_broker.port
    results = describe(port, [(TOPIC, "no-such-topic", None), (TOPIC, "bad/name", None), (BROKER, "7", None),
                              (BROKER, "abc", None), (BROKER, "", None), (CLIENT_METRICS, "m", None),
                              (BROKER_LOGGER, "", None)])
    assert [(r.error_code, r.resource_name) for r in results] == [
        (UNKNOWN_TOPIC_OR_PARTITION, "no-such-topic"), (INVALID_TOPIC_EXCEPTION, "bad/name"),
        (INVALID_REQUEST, "7"), (INVALID_REQUEST, "abc"), (0, ""), (INVALID_REQUEST, "m"), (INVALID_REQUEST, "")]
    assert results[2].error_message == "Unexpected broker id, expected 0 or empty string, but received 7"
    assert results[3].error_message == "Broker id must be an integer, but it is: abc"
    assert results[4].configs == []  # cluster-wide dynamic defaults: none
    assert all(r.configs == [] for r in results)
    # A type Kafka does not know fails every resource of the request.
    results = describe(port, [(TOPIC, topic, None), (99, "x", None)])
    assert [r.error_code for r in results] == [INVALID_REQUEST, INVALID_REQUEST]
    assert results[0].error_message == "Unexpected resource type UNKNOWN for resource x"


def test_describe_broker(shared_broker):
    (result,) = describe(shared_broker.port, [(BROKER, "0", None)], synonyms=True)
    assert result.error_code == 0
    configs = {c.name: c for c in result.configs}
    retention = configs["log.retention.ms"]
    assert (retention.value, retention.config_source, retention.read_only) == (
        STATIC_RETENTION_MS, STATIC_BROKER_CONFIG, True)
    assert [(s.name, s.value) for s in retention.synonyms] == [("log.retention.ms", STATIC_RETENTION_MS),
                                                                ("log.retention.hours", "168")]
    assert configs["num.partitions"].value == "1" and configs["num.partitions"].config_source == DEFAULT_CONFIG
    assert configs["ssl.keystore.password"].is_sensitive and configs["ssl.keystore.password"].value is None
    (some,) = describe(shared_broker.port, [(BROKER, "0", ["num.io.threads", "broker.id"])])
    assert sorted(c.name for c in some.configs) == ["broker.id", "num.io.threads"]


def test_incremental_alter_topic(shared_broker, topic):
    port = shared_broker.port
    (response,) = incremental(port, [(TOPIC, topic, [("retention.ms", SET, "1000"),
                                                     ("cleanup.policy", APPEND, "delete,compact"),
                                                     ("max.message.bytes", DELETE, None)])])
    assert (response.error_code, response.error_message) == (0, None)
    assert overrides(port, topic) == {"retention.ms": "1000", "cleanup.policy": "compact,delete"}
    (response,) = incremental(port, [(TOPIC, topic, [("cleanup.policy", SUBTRACT, "compact"),
                                                     ("retention.ms", DELETE, None)])])
    assert response.error_code == 0
    assert overrides(port, topic) == {"cleanup.policy": "delete"}
    # APPEND to a list without an override starts from Kafka's default.
    (response,) = incremental(port, [(TOPIC, topic, [("cleanup.policy", DELETE, None)])])
    (response,) = incremental(port, [(TOPIC, topic, [("cleanup.policy", APPEND, "compact")])])
    assert overrides(port, topic) == {"cleanup.policy": "delete,compact"}


def test_incremental_validate_only_changes_nothing(shared_broker, topic):
    port = shared_broker.port
    (response,) = incremental(port, [(TOPIC, topic, [("retention.ms", SET, "5000")])], validate_only=True)
    assert response.error_code == 0
    (response,) = incremental(port, [(TOPIC, topic, [("retention.ms", SET, "-5")])], validate_only=True)
    assert response.error_code == INVALID_REQUEST
    assert overrides(port, topic) == {"cleanup.policy": "compact"}


def test_incremental_errors(shared_broker, topic):
    port = shared_broker.port
    cases = [
        ([("retention.ms", APPEND, "1")], INVALID_REQUEST, "Config value append is not allowed for config key: "
                                                           "retention.ms"),
        ([("no.such.config", SET, "1")], INVALID_CONFIG, "Unknown topic config name: no.such.config"),
        ([("no.such.config", SUBTRACT, "1")], INVALID_CONFIG, "Unknown topic config name: no.such.config"),
        ([("retention.ms", SET, "soon")], INVALID_REQUEST,
         f"Invalid config value for resource ConfigResource(type=TOPIC, name='{topic}'): "),
        ([("cleanup.policy", SET, "sometimes")], INVALID_REQUEST, "Invalid config value for resource"),
        ([("retention.ms", SET, "1"), ("retention.ms", DELETE, None)], INVALID_REQUEST,
         "Error due to duplicate config keys : retention.ms"),
        ([("retention.ms", SET, None)], INVALID_REQUEST, "Null value not supported for : SET:retention.ms"),
        ([("retention.ms", 9, "1")], INVALID_REQUEST, "Unknown operations type 9"),
        ([("min.compaction.lag.ms", SET, "10"), ("max.compaction.lag.ms", SET, "5")], INVALID_CONFIG,
         "conflict topic config setting min.compaction.lag.ms (10) > max.compaction.lag.ms (5)"),
        ([("remote.storage.enable", SET, "true")], INVALID_CONFIG, "Tiered Storage functionality is disabled"),
    ]
    for ops, code, message in cases:
        (response,) = incremental(port, [(TOPIC, topic, ops)])
        assert (response.error_code, response.resource_name) == (code, topic), (ops, response)
        assert response.error_message.startswith(message), (ops, response.error_message)
    (missing,) = incremental(port, [(TOPIC, "no-such-topic", [("retention.ms", SET, "1")])])
    assert (missing.error_code, missing.error_message) == (UNKNOWN_TOPIC_OR_PARTITION,
                                                           "The topic 'no-such-topic' does not exist.")
    twice = incremental(port, [(TOPIC, topic, [("retention.ms", SET, "1")])] * 2)
    assert [(r.error_code, r.error_message) for r in twice] == [(INVALID_REQUEST,
                                                                 "Each resource must appear at most once.")] * 2
    (other,) = incremental(port, [(CLIENT_METRICS, "m", [("interval.ms", SET, "1")])])
    assert other.error_code == INVALID_REQUEST
    assert overrides(port, topic) == {"cleanup.policy": "compact"}


def test_alter_configs_replaces_all_overrides(shared_broker, topic):
    port = shared_broker.port
    for version in range(3):
        (response,) = alter(port, [(TOPIC, topic, {"retention.ms": str(1000 + version)})], version=version)
        assert (response.error_code, response.resource_name) == (0, topic)
        assert overrides(port, topic) == {"retention.ms": str(1000 + version)}  # cleanup.policy is gone
    (response,) = alter(port, [(TOPIC, topic, {"segment.ms": "60000"})], validate_only=True)
    assert response.error_code == 0
    responses = alter(port, [(TOPIC, topic, {"retention.ms": "x"}), (TOPIC, "no-such-topic", {}),
                             (TOPIC, topic + "-2", {"nope": "1"}), (BROKER_LOGGER, "0", {})])
    assert [r.error_code for r in responses] == [INVALID_REQUEST, UNKNOWN_TOPIC_OR_PARTITION,
                                                 UNKNOWN_TOPIC_OR_PARTITION, INVALID_REQUEST]
    assert responses[3].error_message == ("AlterConfigs is only supported for topics and brokers, "
                                          "but resource type is BROKER_LOGGER")
    (unknown,) = alter(port, [(TOPIC, topic, {"nope": "1"})])
    assert (unknown.error_code, unknown.error_message) == (INVALID_CONFIG, "Unknown topic config name: nope")
    assert overrides(port, topic) == {"retention.ms": "1002"}
    (cleared,) = alter(port, [(TOPIC, topic, {})])
    assert cleared.error_code == 0 and overrides(port, topic) == {}


def test_broker_settings_cannot_change(shared_broker):
    port = shared_broker.port
    refused = "Cannot update these configs dynamically: Set(log.retention.ms)"
    (response,) = alter(port, [(BROKER, "0", {"log.retention.ms": "1"})])
    assert response.error_code == INVALID_REQUEST and refused in response.error_message
    responses = incremental(port, [(BROKER, "0", [("log.retention.ms", SET, "1")]),
                                   (BROKER, "", [("log.retention.ms", DELETE, None)]),
                                   (BROKER, "3", [("log.retention.ms", DELETE, None)])])
    assert [r.error_code for r in responses] == [INVALID_REQUEST, 0, INVALID_REQUEST]
    assert refused in responses[0].error_message
    assert responses[2].error_message == "Unexpected broker id, expected 0, but received 3"
    (listed,) = incremental(port, [(BROKER, "0", [("num.io.threads", APPEND, "1")])])
    assert listed.error_message == "Config value append is not allowed for config key: num.io.threads"
    (result,) = describe(port, [(BROKER, "0", ["log.retention.ms"])])
    assert result.configs[0].value == STATIC_RETENTION_MS


def test_broker_loggers(shared_broker, admin):
    port = shared_broker.port
    (before,) = describe(port, [(BROKER_LOGGER, "0", ["root", "kbroker.request"])])
    levels = {c.name: c.value for c in before.configs}
    assert levels == {"root": "INFO", "kbroker.request": "INFO"}  # the broker logs at INFO by default
    assert all(c.config_source == DYNAMIC_BROKER_LOGGER_CONFIG and not c.read_only for c in before.configs)
    result = admin.alter_configs([ConfigResource(ConfigResourceType.BROKER_LOGGER, "0",
                                                 {"kbroker.request": "DEBUG"})], raise_on_unknown=False)
    assert result == {"broker_logger": {"0": "OK"}}
    (after,) = describe(port, [(BROKER_LOGGER, "0", ["kbroker.request"])])
    assert after.configs[0].value == "DEBUG"
    (response,) = incremental(port, [(BROKER_LOGGER, "0", [("kbroker.request", SET, "TRACE")])], validate_only=True)
    assert response.error_code == 0
    (unset,) = incremental(port, [(BROKER_LOGGER, "0", [("kbroker.request", DELETE, None)])])
    assert unset.error_code == 0
    (after,) = describe(port, [(BROKER_LOGGER, "0", ["kbroker.request"])])
    assert after.configs[0].value == "INFO"  # the root's level again
    cases = [
        ([("no.such.logger", SET, "DEBUG")], "Logger no.such.logger does not exist!"),
        ([("kbroker.request", SET, "LOUD")], "Cannot set the log level of kbroker.request to LOUD"),
        ([("root", DELETE, None)], "Removing the log level of the root logger is not allowed"),
        ([("root", APPEND, "DEBUG")], "APPEND operation is not allowed for the BROKER_LOGGER resource"),
    ]
    for ops, message in cases:
        (response,) = incremental(port, [(BROKER_LOGGER, "0", ops)])
        assert response.error_code == INVALID_REQUEST and message in response.error_message, response
    (wrong,) = describe(port, [(BROKER_LOGGER, "5", None)])
    assert (wrong.error_code, wrong.error_message) == (INVALID_REQUEST, "Unexpected broker id, expected 0 but "
                                                                         "received 5")


def test_overrides_survive_a_restart(broker_factory):
    broker = broker_factory()
    client = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=10000)
    try:
        assert client.create_topics([NewTopic("kept", 1, 1)])["topics"][0]["error_code"] == 0
        result = client.alter_configs([ConfigResource(ConfigResourceType.TOPIC, "kept", {"retention.ms": "4321"})])
        assert result == {"topic": {"kept": "OK"}}
    finally:
        client.close()
    broker.restart()
    assert overrides(broker.port, "kept") == {"retention.ms": "4321"}


def send_refused(producer, topic: str, value: bytes) -> MessageSizeTooLargeError | None:
    """The error a send of `value` gets, or None when the broker takes it."""
    try:
        producer.send(topic, value, key=b"k").get(10)
    except MessageSizeTooLargeError as error:
        return error
    return None


def test_altered_config_reaches_the_live_log(shared_broker, admin, topic):
    """The write goes through the change notification to the partition's log: a lowered
    max.message.bytes makes the next produce fail with MESSAGE_TOO_LARGE. (The topic is compacted,
    so records carry a key.)"""
    producer = KafkaProducer(bootstrap_servers=shared_broker.bootstrap, retries=0)
    try:
        producer.send(topic, b"x" * 1000, key=b"k").get(10)
        result = admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic,
                                                     {"max.message.bytes": "200"})])
        assert result == {"topic": {topic: "OK"}}
        # The broker applies the change on its notification: until then the record still fits.
        refused = eventually(lambda: send_refused(producer, topic, b"x" * 1000), what="the new max.message.bytes",
                             timeout=10)
        assert isinstance(refused, MessageSizeTooLargeError)
    finally:
        producer.close()
