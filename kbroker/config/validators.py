"""Validators of settings' values (Kafka's ConfigDef.Validator: Range.atLeast, Range.between,
ValidString.in, ValidList.in, and named rules for versions, throttled replicas and compression
levels), and `check_setting`, which parses one setting's text and validates it.

Must not touch: files, sockets or any other kbroker package.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, NamedTuple

from kbroker.config.value_types import PASSWORD, ConfigError, parse_value

COMPRESSION_TYPES = ("uncompressed", "zstd", "lz4", "snappy", "gzip", "producer")


# ----------------------------------------------------------------------------------------------
# Validators: each `check(value)` returns None when the value is allowed, else the reason.
# This module's records are NamedTuples, not dataclasses: every start-up builds these classes,
# and a NamedTuple class costs a fraction of a frozen dataclass's (0.1 against 0.5-0.9 ms each
# on a 2-core machine).


class AtLeast(NamedTuple):
    minimum: int | float

    def check(self, value: Any) -> str | None:
        return None if value is None or value >= self.minimum else f"Value must be at least {self.minimum}"

    def __str__(self) -> str:
        return f"[{self.minimum},...]"


class Between(NamedTuple):
    minimum: int | float
    maximum: int | float

    def check(self, value: Any) -> str | None:
        if value is None or self.minimum <= value <= self.maximum:
            return None
        if value < self.minimum:
            return f"Value must be at least {self.minimum}"
        return f"Value must be no more than {self.maximum}"

    def __str__(self) -> str:
        return f"[{self.minimum},...,{self.maximum}]"


class OneOf(NamedTuple):
    """A string from a fixed set; case-sensitive, as Kafka's ValidString is."""

    choices: tuple[str, ...]

    def check(self, value: Any) -> str | None:
        return None if value is None or value in self.choices else f"String must be one of: {', '.join(self.choices)}"

    def __str__(self) -> str:
        return "[" + ", ".join(self.choices) + "]"


class ListOf(NamedTuple):
    """Every element of a list from a fixed set (Kafka's ValidList.in)."""

    choices: tuple[str, ...]

    def check(self, value: Any) -> str | None:
        return f"String must be one of: {', '.join(self.choices)}" if self.offending(value) is not None else None

    def offending(self, value: Any) -> str | None:
        """The first item not allowed: Kafka's message names it, not the whole list."""
        return next((item for item in value or () if item not in self.choices), None)

    def __str__(self) -> str:
        return "[" + ", ".join(self.choices) + "]"


class Rule(NamedTuple):
    """A validator given as a function plus the text that describes what it allows; `kafka_reason`
    is the words of Kafka's own validator for the same rule, when it has one."""

    description: str
    test: Callable[[Any], bool]
    kafka_reason: str | None = None

    def check(self, value: Any) -> str | None:
        if value is None or self.test(value):
            return None
        return self.kafka_reason or f"must be {self.description}"

    def __str__(self) -> str:
        return self.description


# A pattern string, not a compiled pattern: re compiles it (once, in its cache) on first use, not at every start.
_HTTP_LISTENER = r"http://(?P<host>\[[0-9A-Fa-f:.]+\]|[^:/\[\]]*):(?P<port>[0-9]{1,5})/?"


def parse_http_listener(text: str) -> tuple[str, int] | None:
    """(host, port) of an `http://HOST:PORT` listener (kbroker's metrics.listener; an empty host
    binds every interface, a port of 0 any free port), or None if the text is not one."""
    match = re.fullmatch(_HTTP_LISTENER, text)
    if match is None or int(match["port"]) > 65535:
        return None
    return match["host"].strip("[]"), int(match["port"])


HTTP_LISTENER = Rule("an http://HOST:PORT listener", lambda text: parse_http_listener(text) is not None)


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


def metadata_version_release(text: str) -> tuple[int, ...]:
    """The release a valid inter.broker.protocol.version / message format version names, as
    numbers ("0.10.2-IV0" -> (0, 10, 2), "3.7.1" -> (3, 7))."""
    match = _VERSION_TEXT.fullmatch(text)
    if not match:
        raise ValueError(f"not a Kafka version: {text!r}")
    parts = match["release"].split(".")
    return tuple(int(part) for part in parts[: 3 if parts[0] == "0" else 2])


# The first release of record batch v2 (magic 2); earlier message format versions are magic 0/1.
RECORD_BATCH_V2_RELEASE = (0, 11, 0)
# From this inter.broker.protocol.version Kafka ignores message format versions (always v2).
IGNORE_MESSAGE_FORMAT_IBP = (3, 0)


def _is_throttled_replica_list(items: list[str]) -> bool:
    if items == ["*"]:
        return True
    return all(re.fullmatch(r"\s*[0-9]+\s*:\s*[0-9]+\s*", item) for item in items)


METADATA_VERSION = Rule("a Kafka version such as 3.7 or 3.7-IV4 (0.8.0 to 3.9)", is_metadata_version)
THROTTLED_REPLICAS = Rule("* or a list of partition:broker pairs", _is_throttled_replica_list)
# KIP-390's levels: GzipCompression.LevelValidator (-1 is Deflater.DEFAULT_COMPRESSION), and the
# Range.between of Lz4Compression and ZstdCompression (zstd's minCLevel() and maxCLevel()).
GZIP_LEVEL = Rule("[1,...,9] or -1", lambda v: v == -1 or 1 <= v <= 9, "Value must be between 1 and 9 or equal to -1")
LZ4_LEVEL = Between(1, 17)
ZSTD_LEVEL = Between(-131072, 22)
TIMESTAMP_TYPES = OneOf(("CreateTime", "LogAppendTime"))
CLEANUP_POLICIES = ListOf(("compact", "delete"))
COMPRESSION = OneOf(COMPRESSION_TYPES)

Validator = AtLeast | Between | OneOf | ListOf | Rule


def check_setting(name: str, type_: str, validator: Validator | None, raw: str) -> Any:
    """Parse and validate one setting's text; ConfigError naming key, value and what is allowed."""
    # Kafka's ConfigException shows the value as given, unquoted: "Invalid value abc for configuration x: ..."
    shown = "[hidden]" if type_ == PASSWORD else raw
    try:
        value = parse_value(type_, raw)
    except ValueError as exc:
        raise ConfigError(f"Invalid value {shown} for configuration {name}: {exc}") from None
    reason = validator.check(value) if validator else None
    if not reason:
        return value
    if isinstance(validator, Rule) and validator.kafka_reason is None:  # kbroker's own rules say what they allow
        raise ConfigError(f"Invalid value {shown} for configuration {name}: {reason} (allowed: {validator})")
    if isinstance(validator, ListOf):
        shown = str(validator.offending(value))
    # Kafka's Range, ValidString and ValidList words, as kafka-configs prints them.
    raise ConfigError(f"Invalid value {shown} for configuration {name}: {reason}")
