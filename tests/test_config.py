"""kbroker.config: Kafka's defaults, layer precedence, Properties parsing, validation, listeners."""

import pytest

from kbroker.config import (
    BROKER_CONFIG_BY_NAME,
    BROKER_CONFIGS,
    DATA_DIR_DEFAULT,
    DEFAULT_CONFIG,
    DOUBLE_MAX,
    SINGLE_NODE_DEFAULTS,
    STATIC_BROKER_CONFIG,
    TOPIC_CONFIGS,
    ConfigError,
    Endpoint,
    KafkaConfig,
    Password,
    env_name,
    is_metadata_version,
    java_double_string,
    parse_properties,
    parse_value,
    render_value,
    validate_topic_config,
)


def kafka_defaults(**overrides: str) -> KafkaConfig:
    """Kafka's own defaults only (no kbroker dev defaults), plus dotted overrides given as a_b=..."""
    return KafkaConfig.load(overrides={k.replace("_", "."): v for k, v in overrides.items()}, defaults={})


def write(tmp_path, text: str) -> str:
    path = tmp_path / "server.properties"
    path.write_bytes(text.encode())
    return str(path)


# -- defaults ------------------------------------------------------------------------------

# Values from Kafka 3.x's documentation (Broker Configs page).
KAFKA_DOCUMENTED_DEFAULTS = {
    "num.partitions": 1,
    "log.dir": "/tmp/kafka-logs",
    "log.dirs": None,
    "listeners": "PLAINTEXT://:9092",
    "log.retention.hours": 168,
    "log.retention.bytes": -1,
    "log.segment.bytes": 1073741824,
    "message.max.bytes": 1048588,
    "log.index.interval.bytes": 4096,
    "log.retention.check.interval.ms": 300000,
    "log.cleaner.min.cleanable.ratio": 0.5,
    "log.cleanup.policy": ["delete"],
    "offsets.topic.replication.factor": 3,
    "offsets.topic.num.partitions": 50,
    "offsets.retention.minutes": 10080,
    "transaction.state.log.min.isr": 2,
    "group.initial.rebalance.delay.ms": 3000,
    "group.min.session.timeout.ms": 6000,
    "group.max.session.timeout.ms": 1800000,
    "replica.lag.time.max.ms": 30000,
    "socket.request.max.bytes": 104857600,
    "zookeeper.session.timeout.ms": 18000,
    "compression.type": "producer",
    "fetch.max.bytes": 57671680,
    "default.replication.factor": 1,
    "unclean.leader.election.enable": False,
    "auto.create.topics.enable": True,
    "min.insync.replicas": 1,
    "log.message.timestamp.type": "CreateTime",
    "producer.id.expiration.ms": 86400000,
    "transactional.id.expiration.ms": 604800000,
}


def test_defaults_match_kafka_documentation():
    config = KafkaConfig.load(defaults={})
    for name, expected in KAFKA_DOCUMENTED_DEFAULTS.items():
        assert config.get(name) == expected, name
        assert config.source(name) == DEFAULT_CONFIG
    assert config.log_dirs == ["/tmp/kafka-logs"]
    assert config.log_retention_ms == 7 * 24 * 3600 * 1000
    assert config.unknown_keys == []


def test_every_default_passes_its_own_validator_and_round_trips_as_text():
    for key in BROKER_CONFIGS:
        if key.default is None:
            continue
        text = render_value(key.type, key.default)
        parsed = parse_value(key.type, text)
        assert parsed == key.default, key.name
        assert key.validator is None or key.validator.check(key.default) is None, key.name


def test_single_node_defaults_apply_without_zookeeper_only():
    single = KafkaConfig.load()
    assert single.single_node
    for name, text in SINGLE_NODE_DEFAULTS.items():
        assert single.value_string(name) == text
        assert single.is_default(name) and single.origin(name) == "defaults"
    assert single.log_dirs == [DATA_DIR_DEFAULT]
    assert single.listeners == [Endpoint("PLAINTEXT", "localhost", 9092, "PLAINTEXT")]

    cluster = KafkaConfig.load(overrides=["zookeeper.connect=zk1:2181/kafka"])
    assert not cluster.single_node
    assert cluster.get("offsets.topic.replication.factor") == 3
    assert cluster.get("group.initial.rebalance.delay.ms") == 3000
    assert cluster.get("listeners") == "PLAINTEXT://:9092"
    assert cluster.log_dirs == [DATA_DIR_DEFAULT]


# -- precedence ----------------------------------------------------------------------------


def test_layers_in_kafka_order(tmp_path):
    path = write(tmp_path, "num.partitions=3\nnum.io.threads=4\nnum.network.threads=5\n")
    env = {"KBROKER_NUM_IO_THREADS": "6", "KBROKER_NUM_NETWORK_THREADS": "7"}
    config = KafkaConfig.load(
        path,
        overrides=["num.network.threads=9"],
        env=env,
        defaults={"num.partitions": "2", "background.threads": "11"},
    )
    assert (config.get("background.threads"), config.origin("background.threads")) == (11, "defaults")
    assert (config.get("num.partitions"), config.origin("num.partitions")) == (3, "file")
    assert (config.get("num.io.threads"), config.origin("num.io.threads")) == (6, "env")
    assert (config.get("num.network.threads"), config.origin("num.network.threads")) == (9, "override")
    assert config.source("background.threads") == DEFAULT_CONFIG
    for name in ("num.partitions", "num.io.threads", "num.network.threads"):
        assert config.source(name) == STATIC_BROKER_CONFIG and not config.is_default(name)
    assert config.source("queued.max.requests") == DEFAULT_CONFIG


def test_env_names_and_unrelated_or_empty_variables():
    assert env_name("advertised.listeners") == "KBROKER_ADVERTISED_LISTENERS"
    env = {
        "KBROKER_ADVERTISED_LISTENERS": "PLAINTEXT://example.com:9092",
        "KBROKER_LOG_LEVEL": "DEBUG",
        "KBROKER_BROKER_RACK": "",
        "NUM_PARTITIONS": "9",
    }
    config = KafkaConfig.load(env=env)
    assert config.advertised_listeners == [Endpoint("PLAINTEXT", "example.com", 9092, "PLAINTEXT")]
    assert config.is_default("broker.rack") and config.get("num.partitions") == 1
    assert config.unknown_keys == []
    assert KafkaConfig.load().is_default("advertised.listeners")  # env is read only when given


def test_overrides_as_list_or_dict():
    config = KafkaConfig.load(overrides=["broker.rack=a=b", " num.partitions = 4"])
    assert config.get("broker.rack") == "a=b" and config.get("num.partitions") == 4
    assert KafkaConfig.load(overrides={"num.partitions": "5"}).get("num.partitions") == 5
    with pytest.raises(ConfigError, match="num.partitions"):
        KafkaConfig.load(overrides=["num.partitions"])


def test_zookeeper_in_file_turns_off_single_node_defaults(tmp_path):
    config = KafkaConfig.load(write(tmp_path, "zookeeper.connect = localhost:2181\n"))
    assert config.get("default.replication.factor") == 1  # Kafka's own default is also 1
    assert config.get("transaction.state.log.replication.factor") == 3


# -- alternates ----------------------------------------------------------------------------


def test_log_dirs_wins_over_log_dir():
    config = KafkaConfig.load(overrides=["log.dir=/a", "log.dirs= /b , /c ,"])
    assert config.log_dirs == ["/b", "/c"]
    assert KafkaConfig.load(overrides=["log.dir=/a"]).log_dirs == ["/a"]


@pytest.mark.parametrize(
    ("settings", "expected_ms"),
    [
        ({}, 168 * 3600_000),
        ({"log.retention.hours": "1"}, 3600_000),
        ({"log.retention.hours": "1", "log.retention.minutes": "2"}, 120_000),
        ({"log.retention.hours": "1", "log.retention.minutes": "2", "log.retention.ms": "5"}, 5),
        ({"log.retention.ms": "-1"}, -1),
        ({"log.retention.minutes": "-7"}, -1),  # any negative retention means forever
    ],
)
def test_retention_precedence_ms_minutes_hours(settings, expected_ms):
    config = KafkaConfig.load(overrides=settings)
    assert config.log_retention_ms == expected_ms
    assert config.topic_defaults()["retention.ms"] == str(expected_ms)


def test_roll_and_flush_alternates_reach_topic_defaults():
    config = KafkaConfig.load(
        overrides=["log.roll.hours=2", "log.roll.jitter.hours=1", "log.flush.scheduler.interval.ms=700"]
    )
    assert config.log_roll_ms == 2 * 3600_000 and config.log_roll_jitter_ms == 3600_000
    assert config.log_flush_interval_ms == 700
    defaults = config.topic_defaults()
    assert defaults["segment.ms"] == str(2 * 3600_000)
    assert defaults["segment.jitter.ms"] == "3600000"
    assert defaults["flush.ms"] == "700"
    config = KafkaConfig.load(overrides=["log.roll.hours=2", "log.roll.ms=1234", "log.flush.interval.ms=5"])
    assert config.log_roll_ms == 1234 and config.topic_defaults()["segment.ms"] == "1234"
    assert config.topic_defaults()["flush.ms"] == "5"


def test_topic_defaults_follow_broker_settings():
    config = KafkaConfig.load(
        overrides=[
            "message.max.bytes=2000",
            "log.cleanup.policy=compact, delete",
            "log.cleaner.min.cleanable.ratio=0.25",
            "log.message.timestamp.type=LogAppendTime",
            "compression.type=zstd",
            "min.insync.replicas=2",
            "unclean.leader.election.enable=TRUE",
            "log.segment.delete.delay.ms=1",
        ]
    )
    defaults = config.topic_defaults()
    assert defaults["max.message.bytes"] == "2000"
    assert defaults["cleanup.policy"] == "compact,delete"
    assert defaults["min.cleanable.dirty.ratio"] == "0.25"
    assert defaults["message.timestamp.type"] == "LogAppendTime"
    assert defaults["compression.type"] == "zstd"
    assert defaults["min.insync.replicas"] == "2"
    assert defaults["unclean.leader.election.enable"] == "true"
    assert defaults["file.delete.delay.ms"] == "1"
    assert defaults["remote.storage.enable"] == "false"  # no broker synonym: the topic's own default


def test_topic_table_agrees_with_broker_table():
    topic_defaults = KafkaConfig.load(defaults={}).topic_defaults()
    for key in TOPIC_CONFIGS:
        # With Kafka's broker defaults, each topic default is the topic table's own default.
        assert parse_value(key.type, topic_defaults[key.name]) == key.default, key.name
        for synonym in key.synonyms:
            assert BROKER_CONFIG_BY_NAME[synonym.broker_name].topic_name == key.name
    assert BROKER_CONFIG_BY_NAME["log.retention.hours"].topic_name == "retention.ms"
    assert BROKER_CONFIG_BY_NAME["num.partitions"].topic_name is None


def test_timestamp_bounds_fall_back_on_the_deprecated_difference():
    config = KafkaConfig.load(
        overrides=["log.message.timestamp.difference.max.ms=1000", "log.message.timestamp.after.max.ms=50"]
    )
    assert config.log_message_timestamp_before_max_ms == 1000
    assert config.log_message_timestamp_after_max_ms == 50


# -- properties text -----------------------------------------------------------------------


def test_properties_separators_comments_and_blank_lines():
    text = (
        "# a comment\n"
        "   ! another comment\n"
        "\n"
        "a=1\n"
        "b: 2\n"
        "c 3\n"
        "  d   =   4  \n"
        "e=\n"
        "f\n"
        "g==5\n"
        "h = : 6\n"
        "a=last wins\n"
    )
    assert parse_properties(text) == {
        "a": "last wins",
        "b": "2",
        "c": "3",
        "d": "4  ",
        "e": "",
        "f": "",
        "g": "=5",
        "h": ": 6",
    }


def test_properties_continuations():
    text = (
        "listeners=PLAINTEXT://a:1,\\\n"
        "          SSL://b:2\n"
        "even=ends with two\\\\\n"
        "next=x\n"
        "# comment ends in backslash \\\n"
        "after=comment\n"
        "crlf=one\\\r\n"
        "   two\r\n"
        "eof=dangling\\"
    )
    assert parse_properties(text) == {
        "listeners": "PLAINTEXT://a:1,SSL://b:2",
        "even": "ends with two\\",
        "next": "x",
        "after": "comment",
        "crlf": "onetwo",
        "eof": "dangling",
    }


def test_properties_escapes_in_keys_and_values():
    text = "my\\ key\\:x\\=y=tab\\tnew\\nu\\u0041\\\\ \\z\n"
    assert parse_properties(text) == {"my key:x=y": "tab\tnew\nuA\\ z"}
    with pytest.raises(ConfigError, match="uxxxx"):
        parse_properties("k=\\u12G4\n")


def test_properties_file_values_are_typed_and_trimmed(tmp_path):
    path = write(
        tmp_path,
        "num.partitions = 7   \nauto.create.topics.enable=False\n"
        "log.cleanup.policy=compact ,delete\nbroker.rack=  r1  \n",
    )
    config = KafkaConfig.load(path)
    assert config.get("num.partitions") == 7
    assert config.get("auto.create.topics.enable") is False
    assert config.get("log.cleanup.policy") == ["compact", "delete"]
    assert config.get("broker.rack") == "r1"


def test_unreadable_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="Cannot read properties file .*missing.properties"):
        KafkaConfig.load(str(tmp_path / "missing.properties"))


# -- bad values ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "allowed"),
    [
        ("num.partitions=abc", "Not a number of type INT"),
        ("num.partitions=1.5", "Not a number of type INT"),
        ("num.partitions=0", "Value must be at least 1"),
        ("num.partitions=2147483648", "Not a number of type INT"),
        ("offsets.topic.replication.factor=40000", "Not a number of type SHORT"),
        ("log.retention.ms=9223372036854775808", "Not a number of type LONG"),
        ("auto.create.topics.enable=yes", "Expected value to be either true or false"),
        ("log.cleaner.min.cleanable.ratio=1.5", "Value must be no more than 1"),
        ("log.cleaner.min.cleanable.ratio=1_0", "Not a number of type DOUBLE"),
        ("log.message.timestamp.type=createtime", "CreateTime, LogAppendTime"),
        ("compression.type=brotli", "uncompressed, zstd, lz4, snappy, gzip, producer"),
        ("log.cleanup.policy=purge", "String must be one of: compact, delete"),
        ("inter.broker.protocol.version=3.7-IV9", "Kafka version"),
        ("inter.broker.protocol.version=banana", "Kafka version"),
        ("security.inter.broker.protocol=TLS", "PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL"),
        ("fetch.max.bytes=1023", "at least 1024"),
        ("compression.gzip.level=10", "Value must be between 1 and 9 or equal to -1"),
        ("compression.gzip.level=0", "Value must be between 1 and 9 or equal to -1"),
        ("compression.lz4.level=18", "Value must be no more than 17"),
        ("compression.lz4.level=0", "Value must be at least 1"),
        ("compression.zstd.level=23", "Value must be no more than 22"),
        ("compression.zstd.level=-131073", "Value must be at least -131072"),
    ],
)
def test_bad_value_names_key_value_and_what_is_allowed(setting, allowed):
    key, _, value = setting.partition("=")
    with pytest.raises(ConfigError) as info:
        KafkaConfig.load(overrides=[setting])
    message = str(info.value)
    # ConfigException's form: the value unquoted, then ConfigDef's own words for what is wrong.
    assert f"Invalid value {value} for configuration {key}: " in message and allowed in message


def test_a_bad_list_item_is_named_alone_as_kafkas_valid_list_does():
    with pytest.raises(ConfigError) as info:
        KafkaConfig.load(overrides=["log.cleanup.policy=delete,purge"])
    assert "Invalid value purge for configuration log.cleanup.policy: String must be one of: compact, delete" in str(
        info.value)


def test_every_bad_value_is_reported_at_once():
    with pytest.raises(ConfigError) as info:
        KafkaConfig.load(overrides=["num.partitions=x", "num.io.threads=0"])
    assert "num.partitions" in str(info.value) and "num.io.threads" in str(info.value)


def test_password_never_shows():
    config = KafkaConfig.load(overrides=["ssl.keystore.password=s3cret"])
    secret = config.get("ssl.keystore.password")
    assert isinstance(secret, Password) and secret.value == "s3cret"
    assert "s3cret" not in repr(secret) and config.value_string("ssl.keystore.password") is None
    with pytest.raises(ConfigError) as info:
        KafkaConfig.load(overrides=["ssl.keystore.password=s3cret", "password.encoder.key.length=1"])
    assert "s3cret" not in str(info.value)


def test_metadata_versions():
    for good in ("3.9", "3.7-IV4", "3.7.1", "2.8-IV1", "0.10.2", "0.10.2.1", "0.8.0", "1.0"):
        assert is_metadata_version(good), good
    for bad in ("3.7-IV5", "4.1", "0.10", "3", "2.8.1-IV0", "0.9.0-IV0", "3.x"):
        assert not is_metadata_version(bad), bad


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (["replica.fetch.wait.max.ms=40000"], "replica.socket.timeout.ms"),
        (["replica.fetch.wait.max.ms=20000", "replica.lag.time.max.ms=10000"], "replica.lag.time.max.ms"),
        (["offsets.commit.required.acks=2"], "offsets.topic.replication.factor"),
        (["broker.id=1001"], "reserved.broker.max.id"),
        (["broker.id.generation.enable=false"], "broker.id"),
        (["process.roles=broker"], "KRaft"),
        (["log.cleaner.dedupe.buffer.size=1048576"], "1 MiB per cleaner thread"),
    ],
)
def test_settings_checked_against_each_other(settings, message):
    with pytest.raises(ConfigError, match=message):
        KafkaConfig.load(overrides=settings)


# -- listeners -----------------------------------------------------------------------------


def test_listeners_with_names_map_and_hosts():
    config = KafkaConfig.load(
        overrides=[
            "listeners=internal://:9093, external://[::1]:9094,PLAINTEXT://[::]:9092",
            "listener.security.protocol.map=INTERNAL:PLAINTEXT,EXTERNAL:plaintext,PLAINTEXT:PLAINTEXT",
            "inter.broker.listener.name=internal",
        ]
    )
    assert config.listeners == [
        Endpoint("INTERNAL", "", 9093, "PLAINTEXT"),
        Endpoint("EXTERNAL", "::1", 9094, "PLAINTEXT"),
        Endpoint("PLAINTEXT", "::", 9092, "PLAINTEXT"),
    ]
    assert [e.binds_all_interfaces for e in config.listeners] == [True, False, True]
    assert config.listeners[1].connection_string == "EXTERNAL://[::1]:9094"
    assert config.advertised_listeners == config.listeners  # unset: the listeners
    assert (config.inter_broker_listener_name, config.inter_broker_security_protocol) == (
        "INTERNAL",
        "PLAINTEXT",
    )


def test_advertised_listeners_are_their_own_when_set():
    config = KafkaConfig.load(
        overrides=[
            "listeners=PLAINTEXT://0.0.0.0:9092",
            "advertised.listeners=PLAINTEXT://broker1.example:19092",
        ]
    )
    assert config.listeners[0].host == "0.0.0.0"
    assert config.advertised_listeners == [Endpoint("PLAINTEXT", "broker1.example", 19092, "PLAINTEXT")]


def test_custom_listener_names_with_a_control_plane_listener():
    config = KafkaConfig.load(
        overrides=[
            "listeners=EXTERNAL://127.0.0.1:9092,INTERNAL://127.0.0.1:9093,CONTROL://127.0.0.1:9094",
            "advertised.listeners=EXTERNAL://ext.example:19092,INTERNAL://127.0.0.1:9093,CONTROL://127.0.0.1:9094",
            "listener.security.protocol.map=EXTERNAL:PLAINTEXT,INTERNAL:PLAINTEXT,CONTROL:PLAINTEXT",
            "inter.broker.listener.name=internal",
            "control.plane.listener.name=control",
        ]
    )
    assert [e.listener_name for e in config.listeners] == ["EXTERNAL", "INTERNAL", "CONTROL"]
    assert config.advertised_listeners[0] == Endpoint("EXTERNAL", "ext.example", 19092, "PLAINTEXT")
    assert (config.inter_broker_listener_name, config.control_plane_listener_name) == ("INTERNAL", "CONTROL")
    assert config.controller_to_broker_listener_name == "CONTROL"
    without = KafkaConfig.load(overrides=["listeners=PLAINTEXT://:9092"])
    assert without.control_plane_listener_name is None
    assert without.controller_to_broker_listener_name == "PLAINTEXT"


def test_an_ipv4_and_an_ipv6_listener_may_share_a_port():
    config = KafkaConfig.load(
        overrides=["listeners=PLAINTEXT://127.0.0.1:9092,V6://[::1]:9092",
                   "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,V6:PLAINTEXT"])
    assert [e.port for e in config.listeners] == [9092, 9092]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (["listeners=CLIENT://:9092"], "No security protocol defined for listener CLIENT"),
        (["listeners=PLAINTEXT://:9092,SSL://:9092"], "Each listener must have a different port, listeners: "),
        (["listeners=PLAINTEXT://127.0.0.1:9092,SSL://127.0.0.2:9092"], "one needs to be IPv4 and the other IPv6"),
        (["listeners=PLAINTEXT://:9092,plaintext://:9093"], "Each listener must have a different name"),
        (["advertised.listeners=PLAINTEXT://a:1,PLAINTEXT://b:2"], "Each listener must have a different name"),
        (["listeners=PLAINTEXT://host"], "Unable to parse PLAINTEXT://host to a broker endpoint"),
        (["listeners=PLAINTEXT://:70000"], "Unable to parse PLAINTEXT://:70000"),
        (["listeners="], "at least one listener"),
        (["advertised.listeners=PLAINTEXT://0.0.0.0:9092"], "cannot use the nonroutable meta-address 0.0.0.0"),
        (["listeners=PLAINTEXT://0.0.0.0:9092"], "(taken from listeners, as advertised.listeners is unset)"),
        (["advertised.listeners=PLAINTEXT://h:9092,SSL://h:9093"],
         "advertised.listeners listener names must be equal to or a subset of the ones defined in listeners. "
         "Found PLAINTEXT,SSL. The valid options based on the current configuration are PLAINTEXT"),
        (["listener.security.protocol.map=PLAINTEXT:TLS"], "Invalid security protocol `TLS` defined in"),
        (["listener.security.protocol.map=PLAINTEXT"], "Error parsing configuration property"),
        (["listeners=SSL://:9093"], "inter.broker.listener.name must be a listener name defined in advertised"),
        (["inter.broker.listener.name=PLAINTEXT", "security.inter.broker.protocol=PLAINTEXT"],
         "Only one of inter.broker.listener.name and security.inter.broker.protocol should be set."),
        (["inter.broker.listener.name=REPLICATION"],
         "Listener with name REPLICATION defined in inter.broker.listener.name not found in"),
        (["control.plane.listener.name=CONTROL"], "Listener with CONTROL defined in control.plane.listener.name"),
        (["control.plane.listener.name=SSL"], "control.plane.listener.name must be a listener name defined in"),
        (["control.plane.listener.name=plaintext"], "should have a different value from the inter broker listener"),
        # Every security protocol is served: a SASL_SSL listener loads (TLS and SASL together).
    ],
)
def test_bad_listeners(settings, message):
    with pytest.raises(ConfigError, match=message):
        KafkaConfig.load(overrides=settings)


# -- access, unknown keys, topic-level validation -------------------------------------------


def test_access_by_name_item_and_attribute():
    config = KafkaConfig.load(overrides=["num.partitions=6", "zookeeper.clientCnxnSocket=X"])
    assert config.get("num.partitions") == config["num.partitions"] == config.num_partitions == 6
    assert config.zookeeper_clientCnxnSocket == "X"
    assert "num.partitions" in config and "no.such" not in config
    with pytest.raises(KeyError, match="no.such.setting"):
        config.get("no.such.setting")
    with pytest.raises(AttributeError):
        _ = config.no_such_setting


def test_unknown_keys_are_collected_and_listener_prefixed_ones_kept(tmp_path):
    path = write(tmp_path, "zeta.thing=1\nalpha.thing=2\nlistener.name.internal.ssl.keystore.location=/k\n")
    config = KafkaConfig.load(path, overrides=["beta.thing=3"])
    assert config.unknown_keys == ["alpha.thing", "beta.thing", "zeta.thing"]
    assert config.listener_settings == {"listener.name.internal.ssl.keystore.location": "/k"}


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("retention.ms", "-1"),
        ("cleanup.policy", "compact,delete"),
        ("cleanup.policy", ""),
        ("min.cleanable.dirty.ratio", "0.1"),
        ("message.timestamp.type", "LogAppendTime"),
        ("compression.type", "lz4"),
        ("segment.bytes", "1048576"),
        ("max.message.bytes", "0"),
        ("leader.replication.throttled.replicas", "0:1, 1:2"),
        ("follower.replication.throttled.replicas", "*"),
        ("unclean.leader.election.enable", "TRUE"),
        ("message.format.version", "2.8"),
    ],
)
def test_valid_topic_configs(name, value):
    assert validate_topic_config(name, value) is None


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("retention.ms", "-2", "at least -1"),
        ("cleanup.policy", "forever", "compact, delete"),
        ("segment.bytes", "13", "at least 14"),
        ("segment.ms", "0", "at least 1"),
        ("min.insync.replicas", "zero", "Invalid value zero for configuration min.insync.replicas: Not a number of type INT"),
        ("message.timestamp.type", "Now", "CreateTime"),
        ("leader.replication.throttled.replicas", "0-1", "partition:broker"),
        ("no.such.topic.config", "1", "Unknown topic config name: no.such.topic.config"),
    ],
)
def test_invalid_topic_configs_give_a_reason(name, value, reason):
    result = validate_topic_config(name, value)
    assert result is not None and reason in result and name in result


def test_java_double_text():
    assert java_double_string(0.5) == "0.5"
    assert java_double_string(100.0) == "100.0"
    assert java_double_string(1e7) == "1.0E7"
    assert java_double_string(0.0001) == "1.0E-4"
    assert java_double_string(DOUBLE_MAX) == "1.7976931348623157E308"
    assert java_double_string(-2.5e-5) == "-2.5E-5"


def test_message_formats_before_v2_are_refused_below_ibp_3_0():
    """kbroker stores record batches v2 only (old clients are served by conversion): Kafka does
    the same from inter.broker.protocol.version 3.0, where the message format version is ignored;
    below it, a format before 0.11.0 would mean magic 0/1 on disk, so it is refused, not ignored."""
    old = {"inter.broker.protocol.version": "2.8", "log.message.format.version": "0.10.2"}
    with pytest.raises(ConfigError, match="log.message.format.version"):
        KafkaConfig.load(overrides=old)
    assert KafkaConfig.load(overrides={**old, "log.message.format.version": "0.11.0-IV2"})
    assert KafkaConfig.load(overrides={**old, "inter.broker.protocol.version": "3.0"})
    config = KafkaConfig.load(overrides={"inter.broker.protocol.version": "2.8"})
    assert "0.10.2" in config.unwritable_message_format("0.10.2")
    assert config.unwritable_message_format("2.8-IV1") is None
