"""Broker settings under their Kafka names, with Kafka 3.x's (ZooKeeper mode) types, defaults and checks.

What is here:
- `BROKER_CONFIGS`: one `ConfigKey` per broker setting (name, type, default, validator, importance, a
  one-line doc in our own words, and the topic-level name when the setting is a topic default).
- `TOPIC_CONFIGS`: one `TopicConfigKey` per topic-level setting with its broker synonyms in Kafka's
  order of precedence (`retention.ms` <- log.retention.ms, .minutes, .hours), and
  `validate_topic_config()` for CreateTopics/AlterConfigs (the reason string becomes INVALID_CONFIG).
- `parse_properties()`: Java Properties text (comments, `=`/`:`/space separators, continuations, escapes).
- `KafkaConfig.load()`: built-in default < `defaults` < properties file < `KBROKER_*` env < `--override`.
  Values from the first two layers report the source DEFAULT_CONFIG, the others STATIC_BROKER_CONFIG
  (Kafka's DescribeConfigs names).

Must not touch: sockets, files other than the properties file it is asked to read, or any other
kbroker package. It never creates the data directory; it only names it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

# ----------------------------------------------------------------------------------------------
# Types, limits and value rendering

BOOLEAN, INT, SHORT, LONG, DOUBLE = "boolean", "int", "short", "long", "double"
STRING, LIST, PASSWORD, CLASS = "string", "list", "password", "class"
HIGH, MEDIUM, LOW = "high", "medium", "low"

INT_MAX = 2**31 - 1
LONG_MAX = 2**63 - 1
DOUBLE_MAX = 1.7976931348623157e308
_INTEGER_BOUNDS = {SHORT: (-(2**15), 2**15 - 1), INT: (-(2**31), INT_MAX), LONG: (-(2**63), LONG_MAX)}
_INTEGER_TEXT = re.compile(r"[+-]?[0-9]+")
# Java's Double.parseDouble syntax, less hex floats; Python's float() alone would also take "1_0".
_DOUBLE_TEXT = re.compile(r"[+-]?(NaN|Infinity|([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?)[fFdD]?")

DEFAULT_CONFIG = "DEFAULT_CONFIG"
STATIC_BROKER_CONFIG = "STATIC_BROKER_CONFIG"

SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
COMPRESSION_TYPES = ("uncompressed", "zstd", "lz4", "snappy", "gzip", "producer")

# Where kbroker keeps data when neither log.dirs nor log.dir is given. Kafka's own default is
# /tmp/kafka-logs; a different path means a kbroker never opens a real Kafka's data by accident.
DATA_DIR_DEFAULT = "/tmp/kbroker-logs"

# DESIGN.md's dev-friendly defaults, used when zookeeper.connect is unset (embedded single node).
SINGLE_NODE_DEFAULTS: dict[str, str] = {
    "listeners": "PLAINTEXT://localhost:9092",
    "auto.create.topics.enable": "true",
    "group.initial.rebalance.delay.ms": "0",
    "offsets.topic.replication.factor": "1",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "default.replication.factor": "1",
}

ENV_PREFIX = "KBROKER_"


class ConfigError(Exception):
    """A bad setting: the message names the key, the value given and what is allowed."""


class Password:
    """A secret value; prints as [hidden] so it never lands in a log line."""

    __slots__ = ("value",)

    def __init__(self, value: str) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "[hidden]"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Password) and other.value == self.value

    def __hash__(self) -> int:
        return hash(self.value)


def java_double_string(value: float) -> str:
    """Render a double the way Java's Double.toString does (what DescribeConfigs shows)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0:
        return "-0.0" if math.copysign(1.0, value) < 0 else "0.0"
    if 1e-3 <= abs(value) < 1e7:
        text = repr(value)
        return text if "." in text else text + ".0"
    from decimal import Decimal  # only here: importing it costs a few ms of every start-up

    sign, digits, exponent = Decimal(repr(value)).normalize().as_tuple()
    text = "".join(map(str, digits))
    mantissa = text[0] + "." + (text[1:] or "0")
    return ("-" if sign else "") + f"{mantissa}E{len(text) - 1 + exponent}"


def render_value(type_: str, value: Any) -> str | None:
    """A typed value back to the text Kafka shows for it (None stays None)."""
    if value is None:
        return None
    if type_ == BOOLEAN:
        return "true" if value else "false"
    if type_ == LIST:
        return ",".join(value)
    if type_ == DOUBLE:
        return java_double_string(value)
    if type_ == PASSWORD:
        return value.value
    return str(value)


def split_list(text: str) -> list[str]:
    """Kafka's LIST parsing: trim, then split on commas with the blanks around them."""
    trimmed = text.strip()
    return re.split(r"\s*,\s*", trimmed) if trimmed else []


def parse_value(type_: str, raw: str) -> Any:
    """Text to a typed value; ValueError with what was expected when the text does not fit."""
    trimmed = raw.strip()
    if type_ == BOOLEAN:
        if trimmed.lower() in ("true", "false"):
            return trimmed.lower() == "true"
        raise ValueError("expected true or false")
    if type_ in _INTEGER_BOUNDS:
        low, high = _INTEGER_BOUNDS[type_]
        if not _INTEGER_TEXT.fullmatch(trimmed) or not low <= int(trimmed) <= high:
            raise ValueError(f"expected a whole number of type {type_} ({low} to {high})")
        return int(trimmed)
    if type_ == DOUBLE:
        if not _DOUBLE_TEXT.fullmatch(trimmed):
            raise ValueError("expected a number of type double")
        return float(trimmed.rstrip("fFdD").replace("Infinity", "inf"))
    if type_ == LIST:
        return split_list(trimmed)
    if type_ == PASSWORD:
        return Password(raw)
    return trimmed  # STRING and CLASS (class names are kept as text)


# ----------------------------------------------------------------------------------------------
# Validators: each `check(value)` returns None when the value is allowed, else the reason.
# This module's records are NamedTuples, not dataclasses: every start-up builds these classes,
# and a NamedTuple class costs a fraction of a frozen dataclass's (0.1 against 0.5-0.9 ms each
# on a 2-core machine).


class AtLeast(NamedTuple):
    minimum: int | float

    def check(self, value: Any) -> str | None:
        return None if value is None or value >= self.minimum else f"must be at least {self.minimum}"

    def __str__(self) -> str:
        return f"[{self.minimum},...]"


class Between(NamedTuple):
    minimum: int | float
    maximum: int | float

    def check(self, value: Any) -> str | None:
        if value is None or self.minimum <= value <= self.maximum:
            return None
        return f"must be between {self.minimum} and {self.maximum}"

    def __str__(self) -> str:
        return f"[{self.minimum},...,{self.maximum}]"


class OneOf(NamedTuple):
    """A string from a fixed set; case-sensitive, as Kafka's ValidString is."""

    choices: tuple[str, ...]

    def check(self, value: Any) -> str | None:
        return None if value is None or value in self.choices else f"must be one of {', '.join(self.choices)}"

    def __str__(self) -> str:
        return "[" + ", ".join(self.choices) + "]"


class ListOf(NamedTuple):
    """Every element of a list from a fixed set (Kafka's ValidList.in)."""

    choices: tuple[str, ...]

    def check(self, value: Any) -> str | None:
        bad = [item for item in value or () if item not in self.choices]
        return f"each item must be one of {', '.join(self.choices)}" if bad else None

    def __str__(self) -> str:
        return "[" + ", ".join(self.choices) + "]"


class Rule(NamedTuple):
    """A validator given as a function plus the text that describes what it allows."""

    description: str
    test: Callable[[Any], bool]

    def check(self, value: Any) -> str | None:
        return None if value is None or self.test(value) else f"must be {self.description}"

    def __str__(self) -> str:
        return self.description


# Known releases for inter.broker.protocol.version / log.message.format.version, each with its
# highest "-IVn" sub-version (None: that release has no sub-versions).
_METADATA_VERSIONS: dict[str, int | None] = {
    "0.8.0": None, "0.8.1": None, "0.8.2": None, "0.9.0": None,
    "0.10.0": 1, "0.10.1": 2, "0.10.2": 0, "0.11.0": 2, "1.0": 0, "1.1": 0,
    "2.0": 1, "2.1": 2, "2.2": 1, "2.3": 1, "2.4": 1, "2.5": 0, "2.6": 0, "2.7": 2, "2.8": 1,
    "3.0": 1, "3.1": 0, "3.2": 0, "3.3": 3, "3.4": 0, "3.5": 2, "3.6": 2, "3.7": 4, "3.8": 0, "3.9": 0,
}  # fmt: skip
_VERSION_TEXT = re.compile(r"(?P<release>[0-9]+(?:\.[0-9]+)*)(?:-IV(?P<iv>[0-9]+))?")


def is_metadata_version(text: str) -> bool:
    """Kafka's reading: the release is the first three dotted parts for 0.x, two otherwise;
    further parts ("3.7.1", "0.10.2.1") are patch levels it ignores."""
    match = _VERSION_TEXT.fullmatch(text)
    if not match:
        return False
    parts = match["release"].split(".")
    width = 3 if parts[0] == "0" else 2
    if len(parts) < width or (match["iv"] is not None and len(parts) != width):
        return False
    release = ".".join(parts[:width])
    if release not in _METADATA_VERSIONS:
        return False
    if match["iv"] is None:
        return True
    highest = _METADATA_VERSIONS[release]
    return highest is not None and int(match["iv"]) <= highest


def _is_throttled_replica_list(items: list[str]) -> bool:
    if items == ["*"]:
        return True
    return all(re.fullmatch(r"\s*[0-9]+\s*:\s*[0-9]+\s*", item) for item in items)


METADATA_VERSION = Rule("a Kafka version such as 3.7 or 3.7-IV4 (0.8.0 to 3.9)", is_metadata_version)
THROTTLED_REPLICAS = Rule("* or a list of partition:broker pairs", _is_throttled_replica_list)
GZIP_LEVEL = Rule("[1,...,9] or -1", lambda v: v == -1 or 1 <= v <= 9)
LZ4_LEVEL = Between(1, 17)
ZSTD_LEVEL = Between(-131072, 22)
TIMESTAMP_TYPES = OneOf(("CreateTime", "LogAppendTime"))
CLEANUP_POLICIES = ListOf(("compact", "delete"))
COMPRESSION = OneOf(COMPRESSION_TYPES)

Validator = AtLeast | Between | OneOf | ListOf | Rule


def _check(name: str, type_: str, validator: Validator | None, raw: str) -> Any:
    """Parse and validate one setting's text; ConfigError naming key, value and what is allowed."""
    shown = "[hidden]" if type_ == PASSWORD else repr(raw)
    try:
        value = parse_value(type_, raw)
    except ValueError as exc:
        raise ConfigError(f"Invalid value {shown} for configuration {name}: {exc}") from None
    reason = validator.check(value) if validator else None
    if reason:
        raise ConfigError(f"Invalid value {shown} for configuration {name}: {reason} (allowed: {validator})")
    return value


# ----------------------------------------------------------------------------------------------
# The tables


class ConfigKey(NamedTuple):
    name: str
    type: str
    default: Any
    validator: Validator | None
    importance: str
    doc: str
    topic_name: str | None = None  # the topic-level setting this broker setting is a default for

    @property
    def sensitive(self) -> bool:
        return self.type == PASSWORD


class Synonym(NamedTuple):
    """A broker setting that gives a topic setting's default, times `multiplier` (hours -> ms)."""

    broker_name: str
    multiplier: int = 1


class TopicConfigKey(NamedTuple):
    name: str
    type: str
    default: Any
    validator: Validator | None
    doc: str
    synonyms: tuple[Synonym, ...] = ()


HOUR_MS = 60 * 60 * 1000
MINUTE_MS = 60 * 1000
WEEK_MS = 7 * 24 * HOUR_MS
DAY_MS = 24 * HOUR_MS
MIB = 1024 * 1024

_K = ConfigKey
_BROKER_TABLE: tuple[ConfigKey, ...] = (
    # ZooKeeper
    _K("zookeeper.connect", STRING, None, None, HIGH, "ZooKeeper host:port list with optional /chroot; unset means embedded single node"),
    _K("zookeeper.session.timeout.ms", INT, 18000, None, HIGH, "ZooKeeper session timeout"),
    _K("zookeeper.connection.timeout.ms", INT, None, None, HIGH, "Time to wait for a ZooKeeper connection; unset uses the session timeout"),
    _K("zookeeper.sync.time.ms", INT, 2000, None, LOW, "How far a ZooKeeper follower may lag its leader (unused since Kafka 3)"),
    _K("zookeeper.set.acl", BOOLEAN, False, None, HIGH, "Create znodes with secure ACLs"),
    _K("zookeeper.max.in.flight.requests", INT, 10, AtLeast(1), HIGH, "Unacknowledged ZooKeeper requests before the client blocks"),
    _K("zookeeper.metadata.migration.enable", BOOLEAN, False, None, HIGH, "ZooKeeper to KRaft migration (not supported by kbroker)"),
    _K("zookeeper.ssl.client.enable", BOOLEAN, False, None, MEDIUM, "Use TLS towards ZooKeeper"),
    _K("zookeeper.clientCnxnSocket", STRING, None, None, MEDIUM, "ZooKeeper client socket class, for TLS"),
    _K("zookeeper.ssl.keystore.location", STRING, None, None, MEDIUM, "Keystore for TLS client auth to ZooKeeper"),
    _K("zookeeper.ssl.keystore.password", PASSWORD, None, None, MEDIUM, "Password of that keystore"),
    _K("zookeeper.ssl.keystore.type", STRING, None, None, MEDIUM, "Type of that keystore; unset guesses from the file name"),
    _K("zookeeper.ssl.truststore.location", STRING, None, None, MEDIUM, "Truststore for TLS to ZooKeeper"),
    _K("zookeeper.ssl.truststore.password", PASSWORD, None, None, MEDIUM, "Password of that truststore"),
    _K("zookeeper.ssl.truststore.type", STRING, None, None, MEDIUM, "Type of that truststore; unset guesses from the file name"),
    _K("zookeeper.ssl.protocol", STRING, "TLSv1.2", None, LOW, "TLS protocol towards ZooKeeper"),
    _K("zookeeper.ssl.enabled.protocols", LIST, None, None, LOW, "TLS protocols enabled towards ZooKeeper"),
    _K("zookeeper.ssl.cipher.suites", LIST, None, None, LOW, "Cipher suites enabled towards ZooKeeper"),
    _K("zookeeper.ssl.endpoint.identification.algorithm", STRING, "HTTPS", None, LOW, "HTTPS checks ZooKeeper's host name; blank disables it"),
    _K("zookeeper.ssl.crl.enable", BOOLEAN, False, None, LOW, "Check certificate revocation lists with ZooKeeper"),
    _K("zookeeper.ssl.ocsp.enable", BOOLEAN, False, None, LOW, "Check certificates over OCSP with ZooKeeper"),
    # General
    _K("broker.id.generation.enable", BOOLEAN, True, None, MEDIUM, "Let ZooKeeper hand out a broker id when broker.id is unset"),
    _K("reserved.broker.max.id", INT, 1000, AtLeast(0), MEDIUM, "Highest id a user may configure; generated ids start above it"),
    _K("broker.id", INT, -1, None, HIGH, "This broker's id; -1 asks for a generated one"),
    _K("message.max.bytes", INT, MIB + 12, AtLeast(0), HIGH, "Largest record batch the broker accepts (topic: max.message.bytes)"),
    _K("num.network.threads", INT, 3, AtLeast(1), HIGH, "Threads reading requests from and writing responses to sockets"),
    _K("num.io.threads", INT, 8, AtLeast(1), HIGH, "Threads handling requests"),
    _K("num.replica.alter.log.dirs.threads", INT, None, None, HIGH, "Threads moving replicas between log dirs"),
    _K("background.threads", INT, 10, AtLeast(1), HIGH, "Threads for background tasks"),
    _K("queued.max.requests", INT, 500, AtLeast(1), HIGH, "Requests queued before the network threads stop reading"),
    _K("queued.max.request.bytes", LONG, -1, None, MEDIUM, "Queued request bytes before reading stops; -1 is no limit"),
    _K("request.timeout.ms", INT, 30000, None, HIGH, "How long the broker's own client requests wait for an answer"),
    _K("socket.connection.setup.timeout.ms", LONG, 10000, None, MEDIUM, "Initial time allowed to open a connection"),
    _K("socket.connection.setup.timeout.max.ms", LONG, 30000, None, MEDIUM, "Cap on the growing connection setup timeout"),
    _K("process.roles", LIST, [], ListOf(("broker", "controller")), HIGH, "KRaft roles; must stay empty, kbroker runs in ZooKeeper mode"),
    _K("authorizer.class.name", STRING, "", None, LOW, "Authorizer class; empty means no authorization"),
    _K("early.start.listeners", STRING, None, None, HIGH, "Listeners started before authorizer initialisation completes"),
    _K("max.request.partition.size.limit", INT, 2000, AtLeast(1), MEDIUM, "Most partitions one request may name"),
    _K("telemetry.max.bytes", INT, MIB, AtLeast(1), LOW, "Largest client telemetry push accepted"),
    # Socket server
    _K("listeners", STRING, "PLAINTEXT://:9092", None, HIGH, "NAME://host:port list to bind; empty host or 0.0.0.0 means all interfaces"),
    _K("advertised.listeners", STRING, None, None, HIGH, "Addresses given to clients; unset means the listeners"),
    _K("listener.security.protocol.map", STRING, "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL", None, LOW, "Listener name to security protocol"),
    _K("control.plane.listener.name", STRING, None, None, HIGH, "Listener reserved for controller-to-broker traffic"),
    _K("socket.send.buffer.bytes", INT, 100 * 1024, None, HIGH, "SO_SNDBUF of accepted sockets; -1 keeps the OS default"),
    _K("socket.receive.buffer.bytes", INT, 100 * 1024, None, HIGH, "SO_RCVBUF of accepted sockets; -1 keeps the OS default"),
    _K("socket.request.max.bytes", INT, 100 * MIB, AtLeast(1), HIGH, "Largest request frame accepted"),
    _K("socket.listen.backlog.size", INT, 50, AtLeast(1), MEDIUM, "Pending connection backlog of each listening socket"),
    _K("max.connections.per.ip", INT, INT_MAX, AtLeast(0), MEDIUM, "Connections allowed from one address"),
    _K("max.connections.per.ip.overrides", STRING, "", None, MEDIUM, "host:count list overriding max.connections.per.ip"),
    _K("max.connections", INT, INT_MAX, AtLeast(0), MEDIUM, "Connections allowed in total"),
    _K("max.connection.creation.rate", INT, INT_MAX, AtLeast(0), MEDIUM, "New connections allowed per second"),
    _K("connections.max.idle.ms", LONG, 10 * MINUTE_MS, None, MEDIUM, "Idle connections are closed after this long"),
    _K("connection.failed.authentication.delay.ms", INT, 100, AtLeast(0), LOW, "Delay before closing a connection that failed authentication"),
    _K("broker.rack", STRING, None, None, MEDIUM, "Rack of this broker, for rack-aware replica placement"),
    # Log
    _K("num.partitions", INT, 1, AtLeast(1), MEDIUM, "Partitions of a topic created without a count"),
    _K("log.dir", STRING, "/tmp/kafka-logs", None, HIGH, "Data directory when log.dirs is unset"),
    _K("log.dirs", STRING, None, None, HIGH, "Comma-separated data directories; wins over log.dir"),
    _K("log.segment.bytes", INT, 1024 * MIB, AtLeast(14), HIGH, "Segment size before a roll"),
    _K("log.roll.ms", LONG, None, None, HIGH, "Segment age before a roll, in ms; wins over log.roll.hours"),
    _K("log.roll.hours", INT, 168, AtLeast(1), HIGH, "Segment age before a roll, in hours"),
    _K("log.roll.jitter.ms", LONG, None, None, HIGH, "Random jitter taken off the roll time, in ms; wins over hours"),
    _K("log.roll.jitter.hours", INT, 0, AtLeast(0), HIGH, "Random jitter taken off the roll time, in hours"),
    _K("log.retention.ms", LONG, None, None, HIGH, "Data age before deletion, in ms; -1 keeps forever; wins over minutes and hours"),
    _K("log.retention.minutes", INT, None, None, HIGH, "Data age before deletion, in minutes; wins over hours"),
    _K("log.retention.hours", INT, 168, None, HIGH, "Data age before deletion, in hours"),
    _K("log.retention.bytes", LONG, -1, None, HIGH, "Partition size before old segments go; -1 is no limit"),
    _K("log.retention.check.interval.ms", LONG, 5 * MINUTE_MS, AtLeast(1), MEDIUM, "How often retention is checked"),
    _K("log.cleanup.policy", LIST, ["delete"], CLEANUP_POLICIES, MEDIUM, "delete, compact or both, for data past retention"),
    _K("log.cleaner.threads", INT, 1, AtLeast(0), MEDIUM, "Compaction threads"),
    _K("log.cleaner.io.max.bytes.per.second", DOUBLE, DOUBLE_MAX, None, MEDIUM, "Compaction I/O throttle"),
    _K("log.cleaner.dedupe.buffer.size", LONG, 128 * MIB, None, MEDIUM, "Memory for compaction's key map, over all threads"),
    _K("log.cleaner.io.buffer.size", INT, 512 * 1024, AtLeast(0), MEDIUM, "Memory for compaction's I/O buffers, over all threads"),
    _K("log.cleaner.io.buffer.load.factor", DOUBLE, 0.9, None, MEDIUM, "How full compaction's key map may get"),
    _K("log.cleaner.backoff.ms", LONG, 15000, AtLeast(0), MEDIUM, "Sleep when nothing needs compacting"),
    _K("log.cleaner.min.cleanable.ratio", DOUBLE, 0.5, Between(0, 1), MEDIUM, "Dirty share of a log before it is compacted"),
    _K("log.cleaner.enable", BOOLEAN, True, None, MEDIUM, "Run compaction (needed by __consumer_offsets)"),
    _K("log.cleaner.delete.retention.ms", LONG, DAY_MS, AtLeast(0), MEDIUM, "How long tombstones outlive compaction"),
    _K("log.cleaner.min.compaction.lag.ms", LONG, 0, AtLeast(0), MEDIUM, "Minimum record age before compaction"),
    _K("log.cleaner.max.compaction.lag.ms", LONG, LONG_MAX, AtLeast(1), MEDIUM, "Maximum time a record stays uncompacted"),
    _K("log.index.size.max.bytes", INT, 10 * MIB, AtLeast(4), MEDIUM, "Largest offset index file"),
    _K("log.index.interval.bytes", INT, 4096, AtLeast(0), MEDIUM, "Bytes appended between offset index entries"),
    _K("log.flush.interval.messages", LONG, LONG_MAX, AtLeast(1), HIGH, "Messages appended before an fsync"),
    _K("log.segment.delete.delay.ms", LONG, 60000, AtLeast(0), HIGH, "Wait before a deleted segment's files are removed"),
    _K("log.flush.scheduler.interval.ms", LONG, LONG_MAX, None, HIGH, "How often logs are checked for a due fsync"),
    _K("log.flush.interval.ms", LONG, None, None, HIGH, "Longest time data waits for an fsync; unset uses the scheduler interval"),
    _K("log.flush.offset.checkpoint.interval.ms", INT, 60000, AtLeast(0), HIGH, "How often the recovery point is checkpointed"),
    _K("log.flush.start.offset.checkpoint.interval.ms", INT, 60000, AtLeast(0), HIGH, "How often log start offsets are checkpointed"),
    _K("log.preallocate", BOOLEAN, False, None, MEDIUM, "Preallocate segment files"),
    _K("num.recovery.threads.per.data.dir", INT, 1, AtLeast(1), HIGH, "Threads per data dir for recovery and shutdown flush"),
    _K("auto.create.topics.enable", BOOLEAN, True, None, HIGH, "Create unknown topics on metadata requests and produce"),
    _K("min.insync.replicas", INT, 1, AtLeast(1), HIGH, "In-sync replicas needed to accept an acks=all write"),
    _K("log.message.format.version", STRING, "3.0-IV1", METADATA_VERSION, MEDIUM, "Record format for appends (ignored at IBP 3.0 and later)"),
    _K("log.message.timestamp.type", STRING, "CreateTime", TIMESTAMP_TYPES, MEDIUM, "CreateTime keeps the producer's timestamp, LogAppendTime stamps the broker's"),
    _K("log.message.timestamp.difference.max.ms", LONG, LONG_MAX, AtLeast(0), MEDIUM, "Deprecated: largest timestamp skew in either direction"),
    _K("log.message.timestamp.before.max.ms", LONG, LONG_MAX, AtLeast(0), MEDIUM, "How far a CreateTime may lie in the past"),
    _K("log.message.timestamp.after.max.ms", LONG, LONG_MAX, AtLeast(0), MEDIUM, "How far a CreateTime may lie in the future"),
    _K("create.topic.policy.class.name", CLASS, None, None, LOW, "Policy class that vets topic creation"),
    _K("alter.config.policy.class.name", CLASS, None, None, LOW, "Policy class that vets config changes"),
    _K("log.message.downconversion.enable", BOOLEAN, True, None, LOW, "Convert records for old fetchers"),
    _K("log.dir.failure.timeout.ms", LONG, 30000, AtLeast(1), LOW, "KRaft: time to report a failed log dir before shutting down"),
    _K("log.local.retention.ms", LONG, -2, AtLeast(-2), MEDIUM, "Tiered storage: local retention time; -2 follows log.retention"),
    _K("log.local.retention.bytes", LONG, -2, AtLeast(-2), MEDIUM, "Tiered storage: local retention size; -2 follows log.retention.bytes"),
    _K("remote.log.storage.system.enable", BOOLEAN, False, None, MEDIUM, "Tiered storage (not supported by kbroker)"),
    _K("compression.type", STRING, "producer", COMPRESSION, HIGH, "Codec batches are stored with; producer keeps the producer's"),
    _K("compression.gzip.level", INT, -1, GZIP_LEVEL, MEDIUM, "gzip level when the broker compresses"),
    _K("compression.lz4.level", INT, 9, LZ4_LEVEL, MEDIUM, "lz4 level when the broker compresses"),
    _K("compression.zstd.level", INT, 3, ZSTD_LEVEL, MEDIUM, "zstd level when the broker compresses"),
    _K("delete.topic.enable", BOOLEAN, True, None, HIGH, "Allow DeleteTopics"),
    # Replication
    _K("controller.socket.timeout.ms", INT, 30000, None, MEDIUM, "Timeout of controller-to-broker requests"),
    _K("default.replication.factor", INT, 1, None, MEDIUM, "Replication factor of topics created without one"),
    _K("replica.lag.time.max.ms", LONG, 30000, None, HIGH, "A follower not caught up for this long leaves the ISR"),
    _K("replica.socket.timeout.ms", INT, 30000, None, HIGH, "Timeout of follower fetches; at least replica.fetch.wait.max.ms"),
    _K("replica.socket.receive.buffer.bytes", INT, 64 * 1024, None, HIGH, "SO_RCVBUF of follower fetch sockets"),
    _K("replica.fetch.max.bytes", INT, MIB, AtLeast(0), MEDIUM, "Bytes a follower asks for per partition"),
    _K("replica.fetch.wait.max.ms", INT, 500, None, HIGH, "Longest a follower fetch waits on the leader"),
    _K("replica.fetch.backoff.ms", INT, 1000, AtLeast(0), MEDIUM, "Follower sleep after a fetch error"),
    _K("replica.fetch.min.bytes", INT, 1, None, HIGH, "Bytes a follower fetch waits for"),
    _K("replica.fetch.response.max.bytes", INT, 10 * MIB, AtLeast(0), MEDIUM, "Bytes a follower asks for per fetch"),
    _K("num.replica.fetchers", INT, 1, None, HIGH, "Fetcher threads per source broker"),
    _K("replica.high.watermark.checkpoint.interval.ms", LONG, 5000, None, HIGH, "How often high watermarks are checkpointed"),
    _K("fetch.purgatory.purge.interval.requests", INT, 1000, None, MEDIUM, "Fetch purgatory purge interval, in requests"),
    _K("producer.purgatory.purge.interval.requests", INT, 1000, None, MEDIUM, "Produce purgatory purge interval, in requests"),
    _K("delete.records.purgatory.purge.interval.requests", INT, 1, None, MEDIUM, "DeleteRecords purgatory purge interval, in requests"),
    _K("auto.leader.rebalance.enable", BOOLEAN, True, None, HIGH, "Move leadership back to preferred replicas"),
    _K("leader.imbalance.per.broker.percentage", INT, 10, None, HIGH, "Leader imbalance per broker that triggers a rebalance"),
    _K("leader.imbalance.check.interval.seconds", LONG, 300, AtLeast(1), HIGH, "How often leader imbalance is checked"),
    _K("unclean.leader.election.enable", BOOLEAN, False, None, HIGH, "Allow an out-of-sync replica to lead, losing data"),
    _K("security.inter.broker.protocol", STRING, "PLAINTEXT", OneOf(SECURITY_PROTOCOLS), MEDIUM, "Security protocol between brokers"),
    _K("inter.broker.protocol.version", STRING, "3.9-IV0", METADATA_VERSION, MEDIUM, "Inter-broker protocol version (IBP)"),
    _K("inter.broker.listener.name", STRING, None, None, MEDIUM, "Listener brokers use among themselves"),
    _K("replica.selector.class", STRING, None, None, MEDIUM, "Class choosing a preferred read replica"),
    _K("controlled.shutdown.max.retries", INT, 3, None, MEDIUM, "Controlled shutdown attempts"),
    _K("controlled.shutdown.retry.backoff.ms", LONG, 5000, None, MEDIUM, "Wait between controlled shutdown attempts"),
    _K("controlled.shutdown.enable", BOOLEAN, True, None, MEDIUM, "Hand over leadership before stopping"),
    # Group coordinator
    _K("group.min.session.timeout.ms", INT, 6000, None, MEDIUM, "Shortest consumer session timeout accepted"),
    _K("group.max.session.timeout.ms", INT, 1800000, None, MEDIUM, "Longest consumer session timeout accepted"),
    _K("group.initial.rebalance.delay.ms", INT, 3000, None, MEDIUM, "Wait for more members before a new group's first rebalance"),
    _K("group.max.size", INT, INT_MAX, AtLeast(1), MEDIUM, "Most members in one group"),
    _K("group.coordinator.rebalance.protocols", LIST, ["classic"], ListOf(("classic", "consumer")), MEDIUM, "Group protocols served"),
    _K("group.coordinator.threads", INT, 1, AtLeast(1), MEDIUM, "Threads of the new group coordinator"),
    _K("group.consumer.session.timeout.ms", INT, 45000, AtLeast(1), MEDIUM, "KIP-848 groups: session timeout"),
    _K("group.consumer.min.session.timeout.ms", INT, 45000, AtLeast(1), MEDIUM, "KIP-848 groups: shortest session timeout"),
    _K("group.consumer.max.session.timeout.ms", INT, 60000, AtLeast(1), MEDIUM, "KIP-848 groups: longest session timeout"),
    _K("group.consumer.heartbeat.interval.ms", INT, 5000, AtLeast(1), MEDIUM, "KIP-848 groups: heartbeat interval"),
    _K("group.consumer.min.heartbeat.interval.ms", INT, 5000, AtLeast(1), MEDIUM, "KIP-848 groups: shortest heartbeat interval"),
    _K("group.consumer.max.heartbeat.interval.ms", INT, 15000, AtLeast(1), MEDIUM, "KIP-848 groups: longest heartbeat interval"),
    _K("group.consumer.max.size", INT, INT_MAX, AtLeast(1), MEDIUM, "KIP-848 groups: most members"),
    _K("group.consumer.assignors", LIST, ["org.apache.kafka.coordinator.group.assignor.UniformAssignor", "org.apache.kafka.coordinator.group.assignor.RangeAssignor"], None, MEDIUM, "KIP-848 groups: server-side assignors"),
    # Offsets
    _K("offset.metadata.max.bytes", INT, 4096, None, HIGH, "Largest metadata string of a committed offset"),
    _K("offsets.load.buffer.size", INT, 5 * MIB, AtLeast(1), HIGH, "Read size when loading __consumer_offsets"),
    _K("offsets.topic.replication.factor", SHORT, 3, AtLeast(1), HIGH, "Replication factor of __consumer_offsets"),
    _K("offsets.topic.num.partitions", INT, 50, AtLeast(1), HIGH, "Partitions of __consumer_offsets"),
    _K("offsets.topic.segment.bytes", INT, 100 * MIB, AtLeast(1), HIGH, "Segment size of __consumer_offsets"),
    _K("offsets.topic.compression.codec", INT, 0, None, HIGH, "Codec id for __consumer_offsets writes (0 is none)"),
    _K("offsets.retention.minutes", INT, 7 * 24 * 60, AtLeast(1), HIGH, "How long an empty group's offsets are kept"),
    _K("offsets.retention.check.interval.ms", LONG, 600000, AtLeast(1), HIGH, "How often stale offsets are looked for"),
    _K("offsets.commit.timeout.ms", INT, 5000, AtLeast(1), HIGH, "Longest wait for an offset commit to replicate"),
    _K("offsets.commit.required.acks", SHORT, -1, None, HIGH, "Deprecated: acks for offset commits"),
    # Transactions
    _K("transactional.id.expiration.ms", INT, WEEK_MS, AtLeast(1), HIGH, "Idle time before a transactional id expires"),
    _K("transaction.max.timeout.ms", INT, 900000, AtLeast(1), HIGH, "Longest transaction timeout a producer may ask for"),
    _K("transaction.state.log.min.isr", INT, 2, AtLeast(1), HIGH, "min.insync.replicas of __transaction_state"),
    _K("transaction.state.log.load.buffer.size", INT, 5 * MIB, AtLeast(1), HIGH, "Read size when loading __transaction_state"),
    _K("transaction.state.log.replication.factor", SHORT, 3, AtLeast(1), HIGH, "Replication factor of __transaction_state"),
    _K("transaction.state.log.num.partitions", INT, 50, AtLeast(1), HIGH, "Partitions of __transaction_state"),
    _K("transaction.state.log.segment.bytes", INT, 100 * MIB, AtLeast(1), HIGH, "Segment size of __transaction_state"),
    _K("transaction.abort.timed.out.transaction.cleanup.interval.ms", INT, 10000, AtLeast(1), LOW, "How often timed-out transactions are aborted"),
    _K("transaction.remove.expired.transaction.cleanup.interval.ms", INT, HOUR_MS, AtLeast(1), LOW, "How often expired transactional ids are removed"),
    _K("transaction.partition.verification.enable", BOOLEAN, True, None, LOW, "Check a partition joined the transaction before a transactional write"),
    _K("producer.id.expiration.ms", INT, DAY_MS, AtLeast(1), LOW, "Idle time before a partition forgets a producer id"),
    _K("producer.id.expiration.check.interval.ms", INT, 600000, AtLeast(1), LOW, "How often expired producer ids are removed"),
    # Fetch
    _K("max.incremental.fetch.session.cache.slots", INT, 1000, AtLeast(0), MEDIUM, "Incremental fetch sessions kept"),
    _K("fetch.max.bytes", INT, 55 * MIB, AtLeast(1024), MEDIUM, "Most bytes returned by one fetch"),
    # Metrics
    _K("metrics.num.samples", INT, 2, AtLeast(1), LOW, "Samples kept per metric"),
    _K("metrics.sample.window.ms", LONG, 30000, AtLeast(1), LOW, "Time covered by one metric sample"),
    _K("metric.reporters", LIST, [], None, LOW, "Metric reporter classes"),
    _K("metrics.recording.level", STRING, "INFO", None, LOW, "Metric recording level"),
    _K("auto.include.jmx.reporter", BOOLEAN, True, None, LOW, "Deprecated: add the JMX reporter"),
    _K("kafka.metrics.reporters", LIST, [], None, LOW, "Yammer metric reporter classes"),
    _K("kafka.metrics.polling.interval.secs", INT, 10, AtLeast(1), LOW, "Polling interval for those reporters"),
    # Quotas
    _K("quota.window.num", INT, 11, AtLeast(1), LOW, "Samples kept for client quotas"),
    _K("replication.quota.window.num", INT, 11, AtLeast(1), LOW, "Samples kept for replication quotas"),
    _K("alter.log.dirs.replication.quota.window.num", INT, 11, AtLeast(1), LOW, "Samples kept for log dir move quotas"),
    _K("controller.quota.window.num", INT, 11, AtLeast(1), LOW, "Samples kept for controller mutation quotas"),
    _K("quota.window.size.seconds", INT, 1, AtLeast(1), LOW, "Time covered by one client quota sample"),
    _K("replication.quota.window.size.seconds", INT, 1, AtLeast(1), LOW, "Time covered by one replication quota sample"),
    _K("alter.log.dirs.replication.quota.window.size.seconds", INT, 1, AtLeast(1), LOW, "Time covered by one log dir move quota sample"),
    _K("controller.quota.window.size.seconds", INT, 1, AtLeast(1), LOW, "Time covered by one controller mutation quota sample"),
    _K("client.quota.callback.class", CLASS, None, None, LOW, "Class deciding client quotas"),
    # Security
    _K("connections.max.reauth.ms", LONG, 0, None, MEDIUM, "Session lifetime before SASL re-authentication; 0 is none"),
    _K("sasl.server.max.receive.size", INT, 524288, None, MEDIUM, "Largest SASL message before authentication"),
    _K("security.providers", STRING, None, None, LOW, "Security provider creator classes"),
    _K("principal.builder.class", CLASS, "org.apache.kafka.common.security.authenticator.DefaultKafkaPrincipalBuilder", None, MEDIUM, "Class building the principal of a connection"),
    _K("ssl.protocol", STRING, "TLSv1.3", None, MEDIUM, "TLS protocol for SSL contexts"),
    _K("ssl.provider", STRING, None, None, MEDIUM, "Security provider for TLS"),
    _K("ssl.enabled.protocols", LIST, ["TLSv1.2", "TLSv1.3"], None, MEDIUM, "TLS protocols enabled"),
    _K("ssl.keystore.type", STRING, "JKS", None, MEDIUM, "Keystore format"),
    _K("ssl.keystore.location", STRING, None, None, MEDIUM, "Keystore file"),
    _K("ssl.keystore.password", PASSWORD, None, None, MEDIUM, "Keystore password"),
    _K("ssl.key.password", PASSWORD, None, None, MEDIUM, "Private key password"),
    _K("ssl.keystore.key", PASSWORD, None, None, MEDIUM, "Private key in PEM"),
    _K("ssl.keystore.certificate.chain", PASSWORD, None, None, MEDIUM, "Certificate chain in PEM"),
    _K("ssl.truststore.type", STRING, "JKS", None, MEDIUM, "Truststore format"),
    _K("ssl.truststore.location", STRING, None, None, MEDIUM, "Truststore file"),
    _K("ssl.truststore.password", PASSWORD, None, None, MEDIUM, "Truststore password"),
    _K("ssl.truststore.certificates", PASSWORD, None, None, MEDIUM, "Trusted certificates in PEM"),
    _K("ssl.keymanager.algorithm", STRING, "SunX509", None, MEDIUM, "Key manager algorithm"),
    _K("ssl.trustmanager.algorithm", STRING, "PKIX", None, MEDIUM, "Trust manager algorithm"),
    _K("ssl.endpoint.identification.algorithm", STRING, "https", None, LOW, "Host name check of peers"),
    _K("ssl.secure.random.implementation", STRING, None, None, LOW, "SecureRandom implementation"),
    _K("ssl.client.auth", STRING, "none", OneOf(("required", "requested", "none")), MEDIUM, "Whether clients must present certificates"),
    _K("ssl.cipher.suites", LIST, [], None, MEDIUM, "Cipher suites enabled; empty means all"),
    _K("ssl.principal.mapping.rules", STRING, "DEFAULT", None, LOW, "Rules mapping certificate names to principals"),
    _K("ssl.engine.factory.class", CLASS, None, None, LOW, "Custom SSLEngine factory"),
    _K("ssl.allow.dn.changes", BOOLEAN, False, None, LOW, "Allow a keystore update to change the certificate DN"),
    _K("ssl.allow.san.changes", BOOLEAN, False, None, LOW, "Allow a keystore update to change the certificate SANs"),
    _K("sasl.mechanism.inter.broker.protocol", STRING, "GSSAPI", None, MEDIUM, "SASL mechanism between brokers"),
    _K("sasl.jaas.config", PASSWORD, None, None, MEDIUM, "JAAS login context"),
    _K("sasl.enabled.mechanisms", LIST, ["GSSAPI"], None, MEDIUM, "SASL mechanisms served"),
    _K("sasl.server.callback.handler.class", CLASS, None, None, MEDIUM, "Server SASL callback handler"),
    _K("sasl.client.callback.handler.class", CLASS, None, None, MEDIUM, "Client SASL callback handler"),
    _K("sasl.login.class", CLASS, None, None, MEDIUM, "SASL login class"),
    _K("sasl.login.callback.handler.class", CLASS, None, None, MEDIUM, "SASL login callback handler"),
    _K("sasl.kerberos.service.name", STRING, None, None, MEDIUM, "Kerberos service name"),
    _K("sasl.kerberos.kinit.cmd", STRING, "/usr/bin/kinit", None, MEDIUM, "kinit command"),
    _K("sasl.kerberos.ticket.renew.window.factor", DOUBLE, 0.8, None, MEDIUM, "Share of ticket lifetime before renewal"),
    _K("sasl.kerberos.ticket.renew.jitter", DOUBLE, 0.05, None, MEDIUM, "Random jitter on renewal"),
    _K("sasl.kerberos.min.time.before.relogin", LONG, 60000, None, MEDIUM, "Shortest time between relogins"),
    _K("sasl.kerberos.principal.to.local.rules", LIST, ["DEFAULT"], None, MEDIUM, "Rules mapping Kerberos principals to names"),
    _K("sasl.login.refresh.window.factor", DOUBLE, 0.8, None, MEDIUM, "Share of credential lifetime before refresh"),
    _K("sasl.login.refresh.window.jitter", DOUBLE, 0.05, None, MEDIUM, "Random jitter on refresh"),
    _K("sasl.login.refresh.min.period.seconds", SHORT, 60, None, MEDIUM, "Shortest time between refreshes"),
    _K("sasl.login.refresh.buffer.seconds", SHORT, 300, None, MEDIUM, "Time kept before expiry when refreshing"),
    _K("sasl.login.connect.timeout.ms", INT, None, None, LOW, "OAuth login connect timeout"),
    _K("sasl.login.read.timeout.ms", INT, None, None, LOW, "OAuth login read timeout"),
    _K("sasl.login.retry.backoff.max.ms", LONG, 10000, None, LOW, "Longest OAuth login retry wait"),
    _K("sasl.login.retry.backoff.ms", LONG, 100, None, LOW, "First OAuth login retry wait"),
    _K("sasl.oauthbearer.scope.claim.name", STRING, "scope", None, LOW, "JWT claim holding the scope"),
    _K("sasl.oauthbearer.sub.claim.name", STRING, "sub", None, LOW, "JWT claim holding the subject"),
    _K("sasl.oauthbearer.token.endpoint.url", STRING, None, None, MEDIUM, "OAuth token endpoint"),
    _K("sasl.oauthbearer.jwks.endpoint.url", STRING, None, None, MEDIUM, "JWKS endpoint for token checks"),
    _K("sasl.oauthbearer.jwks.endpoint.refresh.ms", LONG, HOUR_MS, None, LOW, "How often the JWKS is refreshed"),
    _K("sasl.oauthbearer.jwks.endpoint.retry.backoff.ms", LONG, 100, None, LOW, "First JWKS retry wait"),
    _K("sasl.oauthbearer.jwks.endpoint.retry.backoff.max.ms", LONG, 10000, None, LOW, "Longest JWKS retry wait"),
    _K("sasl.oauthbearer.clock.skew.seconds", INT, 30, None, LOW, "Clock skew tolerated in tokens"),
    _K("sasl.oauthbearer.expected.audience", LIST, None, None, LOW, "Audiences a token must name"),
    _K("sasl.oauthbearer.expected.issuer", STRING, None, None, LOW, "Issuer a token must name"),
    # Delegation tokens and password encoding
    _K("delegation.token.master.key", PASSWORD, None, None, MEDIUM, "Deprecated alias of delegation.token.secret.key"),
    _K("delegation.token.secret.key", PASSWORD, None, None, MEDIUM, "Key signing delegation tokens; unset disables them"),
    _K("delegation.token.max.lifetime.ms", LONG, WEEK_MS, AtLeast(1), MEDIUM, "Longest life of a delegation token"),
    _K("delegation.token.expiry.time.ms", LONG, DAY_MS, AtLeast(1), MEDIUM, "Delegation token validity before renewal"),
    _K("delegation.token.expiry.check.interval.ms", LONG, HOUR_MS, AtLeast(1), LOW, "How often expired tokens are removed"),
    _K("password.encoder.secret", PASSWORD, None, None, MEDIUM, "Secret encoding dynamic passwords"),
    _K("password.encoder.old.secret", PASSWORD, None, None, MEDIUM, "Previous such secret, while rotating"),
    _K("password.encoder.keyfactory.algorithm", STRING, None, None, LOW, "SecretKeyFactory algorithm for that encoding"),
    _K("password.encoder.cipher.algorithm", STRING, "AES/CBC/PKCS5Padding", None, LOW, "Cipher for that encoding"),
    _K("password.encoder.key.length", INT, 128, AtLeast(8), LOW, "Key length for that encoding"),
    _K("password.encoder.iterations", INT, 4096, AtLeast(1024), LOW, "Iterations for that encoding"),
)  # fmt: skip

_T, _S = TopicConfigKey, Synonym
TOPIC_CONFIGS: tuple[TopicConfigKey, ...] = (
    _T("cleanup.policy", LIST, ["delete"], CLEANUP_POLICIES, "delete, compact or both", (_S("log.cleanup.policy"),)),
    _T("compression.type", STRING, "producer", COMPRESSION, "Codec batches are stored with", (_S("compression.type"),)),
    _T("compression.gzip.level", INT, -1, GZIP_LEVEL, "gzip level", (_S("compression.gzip.level"),)),
    _T("compression.lz4.level", INT, 9, LZ4_LEVEL, "lz4 level", (_S("compression.lz4.level"),)),
    _T("compression.zstd.level", INT, 3, ZSTD_LEVEL, "zstd level", (_S("compression.zstd.level"),)),
    _T("delete.retention.ms", LONG, DAY_MS, AtLeast(0), "How long tombstones outlive compaction", (_S("log.cleaner.delete.retention.ms"),)),
    _T("file.delete.delay.ms", LONG, 60000, AtLeast(0), "Wait before a deleted segment's files are removed", (_S("log.segment.delete.delay.ms"),)),
    _T("flush.messages", LONG, LONG_MAX, AtLeast(1), "Messages appended before an fsync", (_S("log.flush.interval.messages"),)),
    _T("flush.ms", LONG, LONG_MAX, AtLeast(0), "Longest time data waits for an fsync", (_S("log.flush.interval.ms"), _S("log.flush.scheduler.interval.ms"))),
    _T("follower.replication.throttled.replicas", LIST, [], THROTTLED_REPLICAS, "Replicas throttled on the follower side"),
    _T("index.interval.bytes", INT, 4096, AtLeast(0), "Bytes appended between offset index entries", (_S("log.index.interval.bytes"),)),
    _T("leader.replication.throttled.replicas", LIST, [], THROTTLED_REPLICAS, "Replicas throttled on the leader side"),
    _T("local.retention.bytes", LONG, -2, AtLeast(-2), "Tiered storage: local retention size", (_S("log.local.retention.bytes"),)),
    _T("local.retention.ms", LONG, -2, AtLeast(-2), "Tiered storage: local retention time", (_S("log.local.retention.ms"),)),
    _T("max.compaction.lag.ms", LONG, LONG_MAX, AtLeast(1), "Maximum time a record stays uncompacted", (_S("log.cleaner.max.compaction.lag.ms"),)),
    _T("max.message.bytes", INT, MIB + 12, AtLeast(0), "Largest record batch accepted", (_S("message.max.bytes"),)),
    _T("message.downconversion.enable", BOOLEAN, True, None, "Convert records for old fetchers", (_S("log.message.downconversion.enable"),)),
    _T("message.format.version", STRING, "3.0-IV1", METADATA_VERSION, "Record format (ignored at IBP 3.0 and later)", (_S("log.message.format.version"),)),
    _T("message.timestamp.after.max.ms", LONG, LONG_MAX, AtLeast(0), "How far a CreateTime may lie in the future", (_S("log.message.timestamp.after.max.ms"),)),
    _T("message.timestamp.before.max.ms", LONG, LONG_MAX, AtLeast(0), "How far a CreateTime may lie in the past", (_S("log.message.timestamp.before.max.ms"),)),
    _T("message.timestamp.difference.max.ms", LONG, LONG_MAX, AtLeast(0), "Deprecated: largest timestamp skew", (_S("log.message.timestamp.difference.max.ms"),)),
    _T("message.timestamp.type", STRING, "CreateTime", TIMESTAMP_TYPES, "CreateTime or LogAppendTime", (_S("log.message.timestamp.type"),)),
    _T("min.cleanable.dirty.ratio", DOUBLE, 0.5, Between(0, 1), "Dirty share of a log before it is compacted", (_S("log.cleaner.min.cleanable.ratio"),)),
    _T("min.compaction.lag.ms", LONG, 0, AtLeast(0), "Minimum record age before compaction", (_S("log.cleaner.min.compaction.lag.ms"),)),
    _T("min.insync.replicas", INT, 1, AtLeast(1), "In-sync replicas needed to accept an acks=all write", (_S("min.insync.replicas"),)),
    _T("preallocate", BOOLEAN, False, None, "Preallocate segment files", (_S("log.preallocate"),)),
    _T("remote.storage.enable", BOOLEAN, False, None, "Tiered storage (not supported by kbroker)"),
    _T("retention.bytes", LONG, -1, None, "Partition size before old segments go; -1 is no limit", (_S("log.retention.bytes"),)),
    _T("retention.ms", LONG, WEEK_MS, AtLeast(-1), "Data age before deletion; -1 keeps forever",
       (_S("log.retention.ms"), _S("log.retention.minutes", MINUTE_MS), _S("log.retention.hours", HOUR_MS))),
    _T("segment.bytes", INT, 1024 * MIB, AtLeast(14), "Segment size before a roll", (_S("log.segment.bytes"),)),
    _T("segment.index.bytes", INT, 10 * MIB, AtLeast(4), "Largest offset index file", (_S("log.index.size.max.bytes"),)),
    _T("segment.jitter.ms", LONG, 0, AtLeast(0), "Random jitter taken off the roll time",
       (_S("log.roll.jitter.ms"), _S("log.roll.jitter.hours", HOUR_MS))),
    _T("segment.ms", LONG, WEEK_MS, AtLeast(1), "Segment age before a roll", (_S("log.roll.ms"), _S("log.roll.hours", HOUR_MS))),
    _T("unclean.leader.election.enable", BOOLEAN, False, None, "Allow an out-of-sync replica to lead, losing data", (_S("unclean.leader.election.enable"),)),
)  # fmt: skip

TOPIC_CONFIG_BY_NAME: dict[str, TopicConfigKey] = {key.name: key for key in TOPIC_CONFIGS}
_TOPIC_NAME_OF_BROKER_KEY = {syn.broker_name: key.name for key in TOPIC_CONFIGS for syn in key.synonyms}
BROKER_CONFIGS: tuple[ConfigKey, ...] = tuple(
    key._replace(topic_name=_TOPIC_NAME_OF_BROKER_KEY.get(key.name)) for key in _BROKER_TABLE
)
BROKER_CONFIG_BY_NAME: dict[str, ConfigKey] = {key.name: key for key in BROKER_CONFIGS}
# `config.num_partitions` reads "num.partitions"; derived properties below take precedence.
_ATTRIBUTE_TO_KEY = {key.name.replace(".", "_"): key.name for key in BROKER_CONFIGS}
# Per-listener settings (listener.name.internal.ssl.keystore.location) are Kafka's, not unknown.
_LISTENER_PREFIXED = re.compile(r"listener\.name\.[^.]+\..+")


def parse_topic_config(name: str, value: str) -> Any:
    """A topic-level setting's text to its typed value; ConfigError when unknown or bad."""
    key = TOPIC_CONFIG_BY_NAME.get(name)
    if key is None:
        raise ConfigError(f"Unknown topic config name: {name}")
    return _check(name, key.type, key.validator, value)


def validate_topic_config(name: str, value: str) -> str | None:
    """None when `name=value` is a valid topic setting, else the reason (for INVALID_CONFIG)."""
    try:
        parse_topic_config(name, value)
    except ConfigError as exc:
        return str(exc)
    return None


# ----------------------------------------------------------------------------------------------
# Java Properties text

_NEWLINE = re.compile(r"\r\n|\r|\n")
_BLANK = " \t\f"
_SIMPLE_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}


def _logical_lines(text: str) -> Iterable[str]:
    """Natural lines joined where one ends in an odd number of backslashes; comments dropped."""
    natural = iter(_NEWLINE.split(text))
    for line in natural:
        line = line.lstrip(_BLANK)
        if not line or line[0] in "#!":
            continue  # a comment never continues onto the next line
        while _continues(line):
            following = next(natural, None)
            line = line[:-1] + ("" if following is None else following.lstrip(_BLANK))
            if following is None:
                break
        yield line


def _continues(line: str) -> bool:
    trailing = len(line) - len(line.rstrip("\\"))
    return trailing % 2 == 1


def _split_key_value(line: str) -> tuple[str, str]:
    """Key ends at the first unescaped '=', ':' or blank; one '=' or ':' may follow blanks."""
    index, escaped = 0, False
    while index < len(line):
        char = line[index]
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char in "=:" or char in _BLANK:
            break
        index += 1
    key, rest = line[:index], line[index:]
    rest = rest.lstrip(_BLANK)
    if rest[:1] in ("=", ":"):
        rest = rest[1:].lstrip(_BLANK)
    return key, rest


def _unescape(text: str) -> str:
    if "\\" not in text:
        return text
    out, index = [], 0
    while index < len(text):
        char = text[index]
        if char != "\\" or index + 1 >= len(text):
            out.append(char)
            index += 1
            continue
        code = text[index + 1]
        if code == "u":
            digits = text[index + 2 : index + 6]
            if not re.fullmatch(r"[0-9a-fA-F]{4}", digits):
                raise ConfigError(f"Malformed \\uxxxx escape in properties text: {text!r}")
            out.append(chr(int(digits, 16)))
            index += 6
        else:
            out.append(_SIMPLE_ESCAPES.get(code, code))
            index += 2
    return "".join(out)


def parse_properties(text: str) -> dict[str, str]:
    """Java Properties text to a dict; a repeated key keeps its last value, as Java does."""
    properties: dict[str, str] = {}
    for line in _logical_lines(text):
        key, value = _split_key_value(line)
        properties[_unescape(key)] = _unescape(value)
    return properties


def read_properties_file(path: str) -> dict[str, str]:
    try:
        with open(path, "rb") as file:
            data = file.read()
    except OSError as exc:
        raise ConfigError(f"Cannot read properties file {path}: {exc.strerror or exc}") from None
    # Java reads Properties as ISO-8859-1; UTF-8 first keeps non-ASCII text intact for people
    # who write their files in UTF-8, and ASCII files read the same either way.
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    return parse_properties(text)


def env_name(key: str) -> str:
    """The environment variable that sets `key`: KBROKER_ADVERTISED_LISTENERS for advertised.listeners."""
    return ENV_PREFIX + key.upper().replace(".", "_")


def settings_from_env(env: Mapping[str, str]) -> dict[str, str]:
    """Known settings given as KBROKER_* variables. Other KBROKER_* names (KBROKER_LOG_LEVEL) are not
    settings. An empty variable counts as unset, so `KBROKER_X=${X:-}` in a compose file is harmless."""
    found = {key.name: env.get(env_name(key.name), "") for key in BROKER_CONFIGS}
    return {name: text for name, text in found.items() if text.strip()}


def settings_from_overrides(overrides: Mapping[str, str] | Sequence[str]) -> dict[str, str]:
    if isinstance(overrides, Mapping):
        return {str(key): str(value) for key, value in overrides.items()}
    settings = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"Invalid override {item!r}: expected key=value")
        settings[key.strip()] = value
    return settings


# ----------------------------------------------------------------------------------------------
# Listeners

_ENDPOINT = re.compile(r"(?P<name>.*)://\[?(?P<host>[0-9a-zA-Z\-%._:]*)\]?:(?P<port>-?[0-9]+)")


class Endpoint(NamedTuple):
    listener_name: str
    host: str
    port: int
    security_protocol: str

    @property
    def binds_all_interfaces(self) -> bool:
        return self.host in ("", "0.0.0.0", "::")

    @property
    def connection_string(self) -> str:
        """NAME://host:port, as registered in ZooKeeper's broker znode."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.listener_name}://{host}:{self.port}"


def parse_security_protocol_map(text: str) -> dict[str, str]:
    mapping: dict[str, str] = {}
    for entry in split_list(text):
        name, sep, protocol = entry.partition(":")
        if not sep or not name.strip():
            raise ConfigError(
                f"Invalid value {text!r} for configuration listener.security.protocol.map: "
                f"entry {entry!r} is not NAME:PROTOCOL"
            )
        if protocol.strip().upper() not in SECURITY_PROTOCOLS:
            raise ConfigError(
                f"Invalid value {text!r} for configuration listener.security.protocol.map: "
                f"{protocol.strip()!r} is not one of {', '.join(SECURITY_PROTOCOLS)}"
            )
        mapping[name.strip().upper()] = protocol.strip().upper()
    return mapping


def parse_endpoints(config_name: str, text: str, protocol_map: Mapping[str, str]) -> list[Endpoint]:
    """NAME://host:port,... to Endpoints; names are upper-cased, as Kafka normalises them."""
    endpoints = []
    for item in split_list(text):
        if not item:
            continue
        match = _ENDPOINT.fullmatch(item)
        if not match:
            raise ConfigError(
                f"Invalid value {text!r} for configuration {config_name}: {item!r} is not NAME://host:port"
            )
        name, port = match["name"].upper(), int(match["port"])
        if not 0 <= port <= 65535:
            raise ConfigError(
                f"Invalid value {text!r} for configuration {config_name}: port {port} is not 0 to 65535"
            )
        if name not in protocol_map:
            raise ConfigError(
                f"Invalid value {text!r} for configuration {config_name}: no security protocol "
                f"for listener {name}; add it to listener.security.protocol.map"
            )
        endpoints.append(Endpoint(name, match["host"], port, protocol_map[name]))
    return endpoints


def _require_unique(config_name: str, text: str, values: list, what: str) -> None:
    repeated = sorted({str(v) for v in values if values.count(v) > 1})
    if repeated:
        raise ConfigError(
            f"Invalid value {text!r} for configuration {config_name}: each listener needs "
            f"its own {what}, repeated: {', '.join(repeated)}"
        )


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
                    _check(key.name, key.type, key.validator, text), source, origin
                )
            except ConfigError as exc:
                problems.append(str(exc))
        for name, (text, _origin) in static.items():
            if name in BROKER_CONFIG_BY_NAME:
                continue
            if _LISTENER_PREFIXED.fullmatch(name):
                self.listener_settings[name] = text
            else:
                self.unknown_keys.append(name)
        self.unknown_keys.sort()
        return problems

    # -- reading ----------------------------------------------------------------------------
    def get(self, name: str) -> Any:
        """The typed value of a broker setting by its Kafka name (None when unset without default)."""
        return self._setting(name).value

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
        return parse_endpoints("listeners", self.get("listeners"), self.listener_security_protocol_map)

    @property
    def advertised_listeners(self) -> list[Endpoint]:
        """advertised.listeners, else the listeners as configured. A listener's wildcard host ("",
        0.0.0.0) is kept: whoever registers the broker puts a real host name in its place."""
        text = (self.get("advertised.listeners") or "").strip()
        if not text:
            return self.listeners
        return parse_endpoints("advertised.listeners", text, self.listener_security_protocol_map)

    @property
    def inter_broker_listener_name(self) -> str:
        name = self.get("inter.broker.listener.name")
        return name.upper() if name else self.get("security.inter.broker.protocol")

    @property
    def inter_broker_security_protocol(self) -> str:
        return self.listener_security_protocol_map[self.inter_broker_listener_name]

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
        acks, factor = self.get("offsets.commit.required.acks"), self.get("offsets.topic.replication.factor")
        if not -1 <= acks <= factor:
            raise ConfigError(
                f"Invalid value '{acks}' for configuration offsets.commit.required.acks: "
                f"must be between -1 and offsets.topic.replication.factor ({factor})"
            )
        threads = self.get("log.cleaner.threads")
        if threads > 0 and self.get("log.cleaner.dedupe.buffer.size") / threads <= MIB:
            raise ConfigError(
                f"Invalid value '{self.get('log.cleaner.dedupe.buffer.size')}' for configuration "
                "log.cleaner.dedupe.buffer.size: must be more than 1 MiB per cleaner thread"
            )

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
        listeners, advertised = self.listeners, self.advertised_listeners
        text = self.get("listeners")
        if not listeners:
            raise ConfigError(
                f"Invalid value {text!r} for configuration listeners: at least one listener is needed"
            )
        _require_unique("listeners", text, [e.listener_name for e in listeners], "name")
        _require_unique("listeners", text, [e.port for e in listeners if e.port != 0], "port")
        explicit = (self.get("advertised.listeners") or "").strip()
        advertised_text = explicit or text
        _require_unique(
            "advertised.listeners", advertised_text, [e.listener_name for e in advertised], "name"
        )
        if explicit and any(e.host == "0.0.0.0" for e in advertised):
            raise ConfigError(
                f"Invalid value {advertised_text!r} for configuration advertised.listeners: "
                "0.0.0.0 cannot be advertised, give a host name or address clients can reach"
            )
        names = {e.listener_name for e in listeners}
        extra = sorted({e.listener_name for e in advertised} - names)
        if extra:
            raise ConfigError(
                f"Invalid value {advertised_text!r} for configuration advertised.listeners: "
                f"listener names {', '.join(extra)} are not in listeners"
            )
        self._validate_inter_broker_listener({e.listener_name for e in advertised})
        control = self.get("control.plane.listener.name")
        if control and control.upper() not in names:
            raise ConfigError(
                f"Invalid value {control!r} for configuration control.plane.listener.name: "
                "must name one of the listeners"
            )

    def _validate_inter_broker_listener(self, advertised_names: set[str]) -> None:
        name = self.get("inter.broker.listener.name")
        if name and not self.is_default("security.inter.broker.protocol"):
            raise ConfigError(
                "Only one of inter.broker.listener.name and security.inter.broker.protocol may be set"
            )
        if self.inter_broker_listener_name not in advertised_names:
            which = "inter.broker.listener.name" if name else "security.inter.broker.protocol"
            raise ConfigError(
                f"Invalid value {self.inter_broker_listener_name!r} for configuration {which}: "
                "must be a listener name in advertised.listeners (or listeners); "
                "set inter.broker.listener.name to one of "
                f"{', '.join(sorted(advertised_names))}"
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
