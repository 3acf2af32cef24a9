"""KafkaConfig: the broker's typed settings, loaded in layers: built-in default < `defaults` <
properties file < `KBROKER_*` env < `--override`. Values from the first two layers report the
source DEFAULT_CONFIG, the others STATIC_BROKER_CONFIG (Kafka's DescribeConfigs names). Checks
the relations between settings (broker id, listeners, inter-broker listener, replica fetch sizes).

Must not touch: sockets, files other than the properties file it is asked to read, or any other
kbroker package. It never creates the data directory; it only names it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from kbroker.config.endpoints import Endpoint, check_distinct, parse_endpoints, parse_security_protocol_map
from kbroker.config.properties import read_properties_file, settings_from_env, settings_from_overrides
from kbroker.config.settings import (
    BROKER_CONFIG_BY_NAME,
    BROKER_CONFIGS,
    DATA_DIR_DEFAULT,
    MIB,
    SINGLE_NODE_DEFAULTS,
    TOPIC_CONFIG_BY_NAME,
    TOPIC_CONFIGS,
    Synonym,
    TopicConfigKey,
)
from kbroker.config.validators import (
    IGNORE_MESSAGE_FORMAT_IBP,
    RECORD_BATCH_V2_RELEASE,
    check_setting,
    metadata_version_release,
)
from kbroker.config.value_types import ConfigError, render_value, split_list

DEFAULT_CONFIG = "DEFAULT_CONFIG"
STATIC_BROKER_CONFIG = "STATIC_BROKER_CONFIG"

# `config.num_partitions` reads "num.partitions"; derived properties below take precedence.
_ATTRIBUTE_TO_KEY = {key.name.replace(".", "_"): key.name for key in BROKER_CONFIGS}
# Per-listener settings (listener.name.internal.ssl.keystore.location) are Kafka's, not unknown.
# A pattern string, not a compiled pattern: re compiles it (once, in its cache) on first use, not at every start.
_LISTENER_PREFIXED = r"listener\.name\.[^.]+\..+"


# ----------------------------------------------------------------------------------------------
# KafkaConfig


class _Setting(NamedTuple):
    value: Any
    source: str  # DEFAULT_CONFIG or STATIC_BROKER_CONFIG
    origin: str  # "default", "defaults", "file", "env" or "override": which layer gave it


class _Layers:
    """Raw text per layer, lowest precedence first."""

    def __init__(self, file: dict[str, str], env: dict[str, str], override: dict[str, str]) -> None:
        self.defaults: dict[str, str] = {}
        self.file = file
        self.env = env
        self.override = override

    def static(self) -> dict[str, tuple[str, str]]:
        """The user's settings (file < env < override) as key -> (text, layer)."""
        merged: dict[str, tuple[str, str]] = {}
        for origin in ("file", "env", "override"):
            merged.update({key: (text, origin) for key, text in getattr(self, origin).items()})
        return merged


class KafkaConfig:
    """Typed broker settings. Read them with `config.get("num.partitions")`, `config["num.partitions"]`
    or `config.num_partitions`; derived values (`log_dirs`, `listeners`, `log_retention_ms`...) follow
    Kafka's precedence between alternate settings."""

    def __init__(self, layers: _Layers) -> None:
        self._settings: dict[str, _Setting] = {}
        self.unknown_keys: list[str] = []
        # Undeclared settings' text: Kafka hands its authorizer `super.users` and
        # `allow.everyone.if.no.acl.found` this way rather than declaring them.
        self.unknown_settings: dict[str, str] = {}
        self.listener_settings: dict[str, str] = {}  # listener.name.<name>.<setting> as given
        problems = self._parse_layers(layers)
        if problems:
            raise ConfigError("; ".join(problems))
        self._validate_relations()

    @classmethod
    def load(
        cls,
        properties_path: str | None = None,
        overrides: Mapping[str, str] | Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        defaults: Mapping[str, str] | None = None,
    ) -> KafkaConfig:
        """Read the layers and check every value. `env` is read only when given (pass os.environ).
        `defaults=None` picks kbroker's: the data dir, plus SINGLE_NODE_DEFAULTS without ZooKeeper."""
        layers = _Layers(
            file=read_properties_file(properties_path) if properties_path else {},
            env=settings_from_env(env) if env is not None else {},
            override=settings_from_overrides(overrides),
        )
        if defaults is None:
            zookeeper = layers.static().get("zookeeper.connect", ("", ""))[0].strip()
            defaults = {"log.dir": DATA_DIR_DEFAULT, **({} if zookeeper else SINGLE_NODE_DEFAULTS)}
        layers.defaults = dict(defaults)
        return cls(layers)

    def _parse_layers(self, layers: _Layers) -> list[str]:
        problems = []
        static = layers.static()
        for key in BROKER_CONFIGS:
            if key.name in static:
                text, origin = static[key.name]
                source = STATIC_BROKER_CONFIG
            elif key.name in layers.defaults:
                text, origin, source = layers.defaults[key.name], "defaults", DEFAULT_CONFIG
            else:
                self._settings[key.name] = _Setting(key.default, DEFAULT_CONFIG, "default")
                continue
            try:
                self._settings[key.name] = _Setting(
                    check_setting(key.name, key.type, key.validator, text), source, origin
                )
            except ConfigError as exc:
                problems.append(str(exc))
        for name, (text, _origin) in static.items():
            if name in BROKER_CONFIG_BY_NAME:
                continue
            if re.fullmatch(_LISTENER_PREFIXED, name):
                self.listener_settings[name] = text
            else:
                self.unknown_keys.append(name)
                self.unknown_settings[name] = text
        self.unknown_keys.sort()
        return problems

    # -- reading ----------------------------------------------------------------------------
    def get(self, name: str) -> Any:
        """The typed value of a broker setting by its Kafka name (None when unset without default)."""
        try:  # not through _setting: requests read settings, one call less each
            return self._settings[name].value
        except KeyError:
            raise KeyError(f"Unknown broker configuration: {name}") from None

    def __getitem__(self, name: str) -> Any:
        return self.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._settings

    def __getattr__(self, attribute: str) -> Any:
        key = _ATTRIBUTE_TO_KEY.get(attribute)
        settings = self.__dict__.get("_settings")
        if key is None or settings is None:
            raise AttributeError(attribute)
        return settings[key].value

    def _setting(self, name: str) -> _Setting:
        try:
            return self._settings[name]
        except KeyError:
            raise KeyError(f"Unknown broker configuration: {name}") from None

    def source(self, name: str) -> str:
        """DEFAULT_CONFIG or STATIC_BROKER_CONFIG, Kafka's DescribeConfigs source names."""
        return self._setting(name).source

    def origin(self, name: str) -> str:
        """Which layer gave the value: default, defaults, file, env or override."""
        return self._setting(name).origin

    def is_default(self, name: str) -> bool:
        return self.source(name) == DEFAULT_CONFIG

    def value_string(self, name: str) -> str | None:
        """The value as DescribeConfigs shows it; None for unset values and for secrets."""
        key = BROKER_CONFIG_BY_NAME[name]
        return None if key.sensitive else render_value(key.type, self.get(name))

    def topic_defaults(self) -> dict[str, str | None]:
        """Topic-level name -> this broker's default for it, as text (for DescribeConfigs and LogConfig)."""
        return {key.name: render_value(key.type, self._topic_default(key)) for key in TOPIC_CONFIGS}

    def _topic_default(self, key: TopicConfigKey) -> Any:
        if key.name == "retention.ms":
            return self.log_retention_ms  # Kafka turns any negative retention into -1
        value = self._first_set(key.synonyms)
        return key.default if value is None else value

    def _first_set(self, synonyms: Iterable[Synonym]) -> Any:
        """The first of these broker settings that has a value, converted (hours -> ms)."""
        for synonym in synonyms:
            value = self.get(synonym.broker_name)
            if value is not None:
                # Only numbers have multipliers; a list or boolean must not be multiplied.
                return value if synonym.multiplier == 1 else value * synonym.multiplier
        return None

    def _topic_synonym_value(self, topic_name: str) -> Any:
        return self._first_set(TOPIC_CONFIG_BY_NAME[topic_name].synonyms)

    # -- derived values -------------------------------------------------------------------
    @property
    def single_node(self) -> bool:
        """No zookeeper.connect: the embedded single-node metadata store."""
        return not (self.get("zookeeper.connect") or "").strip()

    @property
    def log_dirs(self) -> list[str]:
        """log.dirs, else log.dir, as a list of paths."""
        text = self.get("log.dirs")
        if text is None:
            text = self.get("log.dir")
        return [path for path in split_list(text) if path]

    @property
    def log_retention_ms(self) -> int:
        """log.retention.ms, else .minutes, else .hours, in ms; any negative value means -1 (forever)."""
        millis = self._topic_synonym_value("retention.ms")
        return -1 if millis < 0 else millis

    @property
    def log_roll_ms(self) -> int:
        """log.roll.ms, else log.roll.hours, in ms."""
        return self._topic_synonym_value("segment.ms")

    @property
    def log_roll_jitter_ms(self) -> int:
        return self._topic_synonym_value("segment.jitter.ms")

    @property
    def log_flush_interval_ms(self) -> int:
        """log.flush.interval.ms, else log.flush.scheduler.interval.ms."""
        return self._topic_synonym_value("flush.ms")

    @property
    def log_message_timestamp_before_max_ms(self) -> int:
        """The before bound, falling back on the deprecated difference setting while it is unset."""
        if self.is_default("log.message.timestamp.before.max.ms"):
            return self.get("log.message.timestamp.difference.max.ms")
        return self.get("log.message.timestamp.before.max.ms")

    @property
    def log_message_timestamp_after_max_ms(self) -> int:
        if self.is_default("log.message.timestamp.after.max.ms"):
            return self.get("log.message.timestamp.difference.max.ms")
        return self.get("log.message.timestamp.after.max.ms")

    @property
    def zookeeper_connection_timeout_ms(self) -> int:
        return self._first_set(
            (Synonym("zookeeper.connection.timeout.ms"), Synonym("zookeeper.session.timeout.ms"))
        )

    @property
    def listener_security_protocol_map(self) -> dict[str, str]:
        return parse_security_protocol_map(self.get("listener.security.protocol.map"))

    @property
    def listeners(self) -> list[Endpoint]:
        return parse_endpoints(self.get("listeners"), self.listener_security_protocol_map)

    @property
    def advertised_listeners(self) -> list[Endpoint]:
        """advertised.listeners, else the listeners as configured. A listener's empty host is kept:
        whoever registers the broker puts this host's name in its place (0.0.0.0 is refused)."""
        text = (self.get("advertised.listeners") or "").strip()
        if not text:
            return self.listeners
        return parse_endpoints(text, self.listener_security_protocol_map)

    @property
    def inter_broker_listener_name(self) -> str:
        name = self.get("inter.broker.listener.name")
        return name.strip().upper() if name else self.get("security.inter.broker.protocol")

    @property
    def inter_broker_security_protocol(self) -> str:
        return self.listener_security_protocol_map[self.inter_broker_listener_name]

    @property
    def control_plane_listener_name(self) -> str | None:
        """control.plane.listener.name, normalised; None when the controller's requests share
        the inter-broker listener."""
        name = (self.get("control.plane.listener.name") or "").strip()
        return name.upper() or None

    @property
    def controller_to_broker_listener_name(self) -> str:
        """Where the controller sends LeaderAndIsr, UpdateMetadata and StopReplica (Kafka's
        ControllerChannelManager): the control-plane listener, else the inter-broker one."""
        return self.control_plane_listener_name or self.inter_broker_listener_name

    # -- checks across settings (KafkaConfig.validateValues, ZooKeeper mode) ----------------
    def _validate_relations(self) -> None:
        if self.get("process.roles"):
            raise ConfigError(
                f"Invalid value {self.value_string('process.roles')!r} for configuration "
                "process.roles: KRaft mode is not supported, leave it unset (kbroker runs in ZooKeeper mode)"
            )
        self._validate_broker_id()
        self._validate_listeners()
        self._validate_replica_fetch()
        self._validate_socket_server()
        problem = self.unwritable_message_format(self.get("log.message.format.version"))
        if problem:
            raise ConfigError(f"Invalid value for configuration log.message.format.version: {problem}")
        acks, factor = self.get("offsets.commit.required.acks"), self.get("offsets.topic.replication.factor")
        if not -1 <= acks <= factor:
            raise ConfigError(
                f"Invalid value '{acks}' for configuration offsets.commit.required.acks: "
                f"must be between -1 and offsets.topic.replication.factor ({factor})"
            )
        self._validate_consumer_group_timeouts()
        threads = self.get("log.cleaner.threads")
        if threads > 0 and self.get("log.cleaner.dedupe.buffer.size") / threads <= MIB:
            raise ConfigError(
                f"Invalid value '{self.get('log.cleaner.dedupe.buffer.size')}' for configuration "
                "log.cleaner.dedupe.buffer.size: must be more than 1 MiB per cleaner thread"
            )

    def unwritable_message_format(self, version: str) -> str | None:
        """Why a message format version (log.message.format.version, a topic's
        message.format.version) cannot be honoured, or None. From inter.broker.protocol.version
        3.0 Kafka ignores it and writes record batches v2, as kbroker always does; below 3.0 a
        version before 0.11.0 would mean message format v0/v1 on disk, which kbroker never writes
        (old clients are served by conversion instead)."""
        ibp = self.get("inter.broker.protocol.version")
        if (metadata_version_release(ibp) >= IGNORE_MESSAGE_FORMAT_IBP
                or metadata_version_release(version) >= RECORD_BATCH_V2_RELEASE):
            return None
        return (f"message format version {version} would store message format v0/v1, which kbroker does not "
                f"write; with inter.broker.protocol.version {ibp} use 0.11.0 or later (or set "
                "inter.broker.protocol.version to 3.0 or later, where Kafka ignores the message format version)")

    def unwritable_topic_message_format(self, topic_configs: Mapping[str, str | None]) -> str | None:
        """unwritable_message_format for a topic's message.format.version, if it sets one."""
        version = topic_configs.get("message.format.version")
        return None if version is None else self.unwritable_message_format(version)

    def _validate_consumer_group_timeouts(self) -> None:
        """KIP-848's timeouts between their bounds, as Kafka's GroupCoordinatorConfig requires."""
        for name, low, high in (("group.consumer.heartbeat.interval.ms", "group.consumer.min.heartbeat.interval.ms",
                                 "group.consumer.max.heartbeat.interval.ms"),
                                ("group.consumer.session.timeout.ms", "group.consumer.min.session.timeout.ms",
                                 "group.consumer.max.session.timeout.ms")):
            for ok, message in ((self.get(high) >= self.get(low), f"{high} must be greater than or equal to {low}"),
                                (self.get(name) >= self.get(low), f"{name} must be greater than or equal to {low}"),
                                (self.get(name) <= self.get(high), f"{name} must be less than or equal to {high}")):
                if not ok:
                    raise ConfigError(message)
        if self.get("group.consumer.heartbeat.interval.ms") >= self.get("group.consumer.session.timeout.ms"):
            raise ConfigError("group.consumer.heartbeat.interval.ms must be less than group.consumer.session.timeout.ms")

    def _validate_broker_id(self) -> None:
        broker_id, reserved = self.get("broker.id"), self.get("reserved.broker.max.id")
        if self.get("broker.id.generation.enable"):
            if not -1 <= broker_id <= reserved:
                raise ConfigError(
                    f"Invalid value '{broker_id}' for configuration broker.id: must be between -1 "
                    f"and reserved.broker.max.id ({reserved})"
                )
        elif broker_id < 0:
            raise ConfigError(
                f"Invalid value '{broker_id}' for configuration broker.id: must be at least 0 "
                "when broker.id.generation.enable is false"
            )

    def _validate_listeners(self) -> None:
        """KafkaConfig.validateValues' listener checks, in Kafka's order and with its messages."""
        protocols = self.listener_security_protocol_map
        self._validate_inter_broker_listener(protocols)
        text = self.get("listeners")
        listeners = self.listeners
        if not listeners:
            raise ConfigError(f"Invalid value {text!r} for configuration listeners: at least one listener is needed")
        check_distinct(text, listeners, ports=True)
        explicit = (self.get("advertised.listeners") or "").strip()
        advertised = self.advertised_listeners
        check_distinct(explicit or text, advertised, ports=False)
        advertised_names = [e.listener_name for e in advertised]
        listener_names = [e.listener_name for e in listeners]
        if self.inter_broker_listener_name not in advertised_names:
            raise ConfigError(
                "inter.broker.listener.name must be a listener name defined in advertised.listeners. "
                f"The valid options based on currently configured listeners are {','.join(advertised_names)}")
        if not set(advertised_names) <= set(listener_names):
            raise ConfigError(
                "advertised.listeners listener names must be equal to or a subset of the ones defined in "
                f"listeners. Found {','.join(advertised_names)}. The valid options based on the current "
                f"configuration are {','.join(listener_names)}")
        if any(e.host == "0.0.0.0" for e in advertised):  # Kafka's check, also on listeners taken as advertised
            taken = "" if explicit else " (taken from listeners, as advertised.listeners is unset)"
            raise ConfigError(
                f"Invalid value {explicit or text!r} for configuration advertised.listeners{taken}: "
                "advertised.listeners cannot use the nonroutable meta-address 0.0.0.0; give a host name or "
                "address clients can reach, or leave the listener's host empty (PLAINTEXT://:9092) to bind "
                "every interface and advertise this host's name"
            )
        self._validate_control_plane_listener(protocols, advertised_names)
        _refuse_secured_listeners(text, listeners)

    def _validate_inter_broker_listener(self, protocols: Mapping[str, str]) -> None:
        name = self.get("inter.broker.listener.name")
        if name and not self.is_default("security.inter.broker.protocol"):
            raise ConfigError("Only one of inter.broker.listener.name and security.inter.broker.protocol "
                              "should be set.")
        if name and self.inter_broker_listener_name not in protocols:
            raise ConfigError(f"Listener with name {self.inter_broker_listener_name} defined in "
                              "inter.broker.listener.name not found in listener.security.protocol.map.")

    def _validate_control_plane_listener(self, protocols: Mapping[str, str], advertised_names: list[str]) -> None:
        control = self.control_plane_listener_name
        if control is None:
            return
        if control not in protocols:
            raise ConfigError(f"Listener with {control} defined in control.plane.listener.name not found in "
                              "listener.security.protocol.map.")
        if control not in advertised_names:
            raise ConfigError(
                "control.plane.listener.name must be a listener name defined in advertised.listeners. "
                f"The valid options based on currently configured listeners are {','.join(advertised_names)}")
        if control == self.inter_broker_listener_name:
            raise ConfigError(
                "control.plane.listener.name, when defined, should have a different value from the inter "
                f"broker listener name. Currently they both have the value {control}")

    # -- socket server limits (KafkaConfig.validateValues) ----------------------------------
    @property
    def max_connections_per_ip_overrides(self) -> dict[str, int]:
        """max.connections.per.ip.overrides, "host:count,host:count", as {host: count}."""
        overrides: dict[str, int] = {}
        for entry in split_list(self.get("max.connections.per.ip.overrides") or ""):
            host, sep, count = entry.rpartition(":")
            if not sep or not host.strip() or not count.strip().isdigit():
                raise ConfigError(
                    f"Invalid value {entry!r} for configuration max.connections.per.ip.overrides: "
                    "expected host:count entries separated by commas (like hostName:100,127.0.0.1:200)"
                )
            overrides[host.strip().strip("[]")] = int(count)
        return overrides

    def listener_max_connections(self, listener_name: str) -> int | None:
        """listener.name.<listener>.max.connections, if set."""
        return self._listener_count(listener_name, "max.connections")

    def listener_max_connection_creation_rate(self, listener_name: str) -> int | None:
        """listener.name.<listener>.max.connection.creation.rate, if set."""
        return self._listener_count(listener_name, "max.connection.creation.rate")

    def _listener_count(self, listener_name: str, setting: str) -> int | None:
        name = f"listener.name.{listener_name.lower()}.{setting}"
        text = self.listener_settings.get(name)
        if text is None:
            return None
        if not text.strip().isdigit():
            raise ConfigError(f"Invalid value {text!r} for configuration {name}: must be an integer of at least 0")
        return int(text)

    def _validate_socket_server(self) -> None:
        queued, request_max = self.get("queued.max.request.bytes"), self.get("socket.request.max.bytes")
        if 0 < queued < request_max:
            raise ConfigError(
                f"Invalid value '{queued}' for configuration queued.max.request.bytes: must be -1 (no limit) "
                f"or larger or equal to socket.request.max.bytes ({request_max})"
            )
        overrides = self.max_connections_per_ip_overrides
        if self.get("max.connections.per.ip") == 0 and not overrides:
            raise ConfigError(
                "Invalid value '0' for configuration max.connections.per.ip: it can be set to zero only if "
                "max.connections.per.ip.overrides is set"
            )
        for endpoint in self.listeners:
            self.listener_max_connections(endpoint.listener_name)
            self.listener_max_connection_creation_rate(endpoint.listener_name)
        idle, delay = self.get("connections.max.idle.ms"), self.get("connection.failed.authentication.delay.ms")
        if idle >= 0 and delay >= idle:
            raise ConfigError(
                f"Invalid value '{delay}' for configuration connection.failed.authentication.delay.ms: must be "
                f"less than connections.max.idle.ms ({idle}) so that failed authentication responses do not time out"
            )

    def _validate_replica_fetch(self) -> None:
        wait = self.get("replica.fetch.wait.max.ms")
        if wait > self.get("replica.socket.timeout.ms"):
            raise ConfigError(
                f"Invalid value '{self.get('replica.socket.timeout.ms')}' for configuration "
                f"replica.socket.timeout.ms: must be at least replica.fetch.wait.max.ms ({wait})"
            )
        if wait > self.get("replica.lag.time.max.ms"):
            raise ConfigError(
                f"Invalid value '{wait}' for configuration replica.fetch.wait.max.ms: "
                f"must be at most replica.lag.time.max.ms ({self.get('replica.lag.time.max.ms')})"
            )


# Served: PLAINTEXT, SSL, SASL_PLAINTEXT and SASL_SSL (TLS and SASL together).
_UNSERVED_PROTOCOLS: tuple[str, ...] = ()


def _refuse_secured_listeners(text: str, listeners: list[Endpoint]) -> None:
    """Every security protocol is served now (TLS: kbroker/security/ssl_factory.py; SASL:
    kbroker/security/sasl_*.py); a protocol added to Kafka later would be refused here rather
    than served as plaintext under a name that promises security (fail closed)."""
    secured = [e for e in listeners if e.security_protocol in _UNSERVED_PROTOCOLS]
    if secured:
        described = ", ".join(f"{e.listener_name} ({e.security_protocol})" for e in secured)
        raise ConfigError(
            f"Invalid value {text!r} for configuration listeners: listener {described} uses a security "
            "protocol kbroker does not serve")
