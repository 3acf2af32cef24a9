"""Kafka's JSON message schemas, loaded into plain data (MessageSchema, FieldSpec).

Reads Kafka's schema files vendored under ``kbroker/protocol/schemas/kafka/`` (Apache
License 2.0, see the NOTICE there) plus kbroker's own files under ``kbroker/protocol/schemas/``
(the ZooKeeper-mode inter-broker APIs that Kafka 4 dropped). It strips the whole-line ``//``
comments, resolves ``commonStructs`` and named struct references, and turns version strings
into ranges. It knows nothing of encoding: compiler.py turns these specs into code.
It must not touch sockets, the log or any broker state.
"""

from __future__ import annotations

import json
import os
import re
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

from kbroker.protocol.api_keys import ApiKey
from kbroker.protocol.uuids import ZERO_UUID

# Plain os.path, not pathlib: pathlib would be imported for these few joins at every start-up.
OWN_SCHEMA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "schemas")
KAFKA_SCHEMA_DIR = os.path.join(OWN_SCHEMA_DIR, "kafka")


def _schema_dirs() -> tuple[str, str]:
    """Ours first: on a clash, our file wins."""
    return OWN_SCHEMA_DIR, KAFKA_SCHEMA_DIR

# Kafka's schema files carry license text and notes as whole-line // comments.
_COMMENT_LINES = re.compile(r"(?m)^\s*//.*$")
_CAMEL_BOUNDARY = re.compile(r"(?<!^)(?=[A-Z])")

FIXED_WIDTH_TYPES = {
    "bool": "?",
    "int8": "b",
    "int16": "h",
    "uint16": "H",
    "int32": "i",
    "uint32": "I",
    "int64": "q",
    "float64": "d",
    "uuid": "16s",
}
VARIABLE_TYPES = frozenset({"string", "bytes", "records"})
PRIMITIVE_TYPES = frozenset(FIXED_WIDTH_TYPES) | VARIABLE_TYPES
INTEGER_TYPES = frozenset({"int8", "int16", "uint16", "int32", "uint32", "int64"})


class VersionRange(NamedTuple):
    """Inclusive range of versions; an empty range (lo > hi) stands for "none"."""

    lo: int
    hi: int

    # `in` asks about the range, not about the tuple's two bounds: hence the narrower argument.
    def __contains__(self, version: int) -> bool:  # type: ignore[override]
        return self.lo <= version <= self.hi


NO_VERSIONS = VersionRange(0, -1)


def parse_versions(text: str | None) -> VersionRange:
    """Parse Kafka's version syntax: "3+", "0-12", "5", "none" (or absent)."""
    if text is None:
        return NO_VERSIONS
    text = str(text).strip()
    if text in ("", "none"):
        return NO_VERSIONS
    if text.endswith("+"):
        return VersionRange(int(text[:-1]), 0x7FFF)
    if "-" in text:
        lo, hi = text.split("-", 1)
        return VersionRange(int(lo), int(hi))
    return VersionRange(int(text), int(text))


def snake_name(name: str) -> str:
    """kafka-python's rule: ThrottleTimeMs -> throttle_time_ms, TopicId -> topic_id."""
    return _CAMEL_BOUNDARY.sub("_", name).lower()


@dataclass(slots=True)
class FieldSpec:
    """One field of a message or struct, as the schema file declares it."""

    name: str  # the schema's CamelCase name
    key: str  # the snake_case dict key
    type: str  # the schema's type string: "int32", "[]string", "[]Topic", "Cursor"
    versions: VersionRange
    nullable: VersionRange
    tagged: VersionRange
    tag: int | None
    flexible_override: VersionRange | None  # the field's own "flexibleVersions", if any
    raw_default: str | int | float | bool | None  # the schema's "default" (None when absent)
    fields: tuple[FieldSpec, ...] = ()  # members of a struct or of a struct array's elements

    @property
    def is_array(self) -> bool:
        return self.type.startswith("[]")

    @property
    def element_type(self) -> str:
        """The element type of an array, or the type itself for scalars and structs."""
        return self.type[2:] if self.is_array else self.type

    @property
    def is_struct(self) -> bool:
        """A struct-typed field (not an array of structs)."""
        return not self.is_array and self.type not in PRIMITIVE_TYPES

    @property
    def is_struct_array(self) -> bool:
        return self.is_array and self.element_type not in PRIMITIVE_TYPES

    def is_tagged_in(self, version: int) -> bool:
        return self.tag is not None and version in self.tagged

    def is_compact_in(self, version: int, message_flexible: bool) -> bool:
        """Compact (varint-prefixed) encoding, honouring a field-level flexibleVersions override."""
        if self.flexible_override is not None:
            return version in self.flexible_override
        return message_flexible


@dataclass(slots=True)
class MessageSchema:
    """A whole request, response or header schema."""

    name: str
    kind: str  # "request", "response" or "header"
    api_key: int | None
    valid_versions: VersionRange
    flexible_versions: VersionRange
    fields: tuple[FieldSpec, ...] = field(default_factory=tuple)

    def is_flexible(self, version: int) -> bool:
        return version in self.flexible_versions


def default_value(spec: FieldSpec) -> object:
    """The value a field takes when a message leaves it out (immutable form; arrays -> ())."""
    raw = spec.raw_default
    if spec.is_array:
        if raw == "null":
            return None
        return ()
    if spec.is_struct:
        if raw == "null":
            return None
        return {f.key: default_value(f) for f in spec.fields}
    kind = spec.type
    if raw == "null":
        return None
    if kind in INTEGER_TYPES:
        if raw in (None, ""):
            return 0
        if isinstance(raw, str) and raw.lower().startswith(("0x", "-0x")):
            return int(raw, 16)
        return int(raw)
    if kind == "bool":
        if isinstance(raw, str):
            return raw.strip().lower() == "true"
        return bool(raw)
    if kind == "float64":
        return float(raw) if raw not in (None, "") else 0.0
    if kind == "string":
        return "" if raw is None else str(raw)
    if kind == "uuid":
        return ZERO_UUID if raw in (None, "") else uuid.UUID(str(raw))
    if kind == "bytes":
        return b""
    if kind == "records":
        # Kafka's generated classes start records fields out as null when they may be null.
        return None if spec.nullable.lo <= spec.nullable.hi else b""
    raise ValueError(f"unknown field type {kind!r} for {spec.name}")


def _parse_field(raw: dict, structs: dict[str, list]) -> FieldSpec:
    type_str = raw["type"]
    members = raw.get("fields")
    element = type_str[2:] if type_str.startswith("[]") else type_str
    if members is None and element not in PRIMITIVE_TYPES:
        if element not in structs:
            raise ValueError(f"struct type {element!r} of field {raw['name']!r} is not defined")
        members = structs[element]
    flexible_override = raw.get("flexibleVersions")
    tag = raw.get("tag")
    return FieldSpec(
        name=raw["name"],
        key=snake_name(raw["name"]),
        type=type_str,
        versions=parse_versions(raw.get("versions")),
        nullable=parse_versions(raw.get("nullableVersions")),
        tagged=parse_versions(raw.get("taggedVersions")),
        tag=int(tag) if tag is not None else None,
        flexible_override=parse_versions(flexible_override) if flexible_override is not None else None,
        raw_default=raw.get("default"),
        fields=tuple(_parse_field(m, structs) for m in members or ()),
    )


def _collect_named_structs(fields: list, structs: dict[str, list]) -> None:
    """Remember every struct declared inline, so later references by type name resolve."""
    for raw in fields:
        if "fields" in raw:
            element = raw["type"][2:] if raw["type"].startswith("[]") else raw["type"]
            structs.setdefault(element, raw["fields"])
            _collect_named_structs(raw["fields"], structs)


def parse_schema_text(text: str) -> MessageSchema:
    """Parse one schema file's text (with // comments) into a MessageSchema."""
    data = json.loads(_COMMENT_LINES.sub("", text))
    structs: dict[str, list] = {s["name"]: s["fields"] for s in data.get("commonStructs", ())}
    for common in data.get("commonStructs", ()):
        _collect_named_structs(common["fields"], structs)
    _collect_named_structs(data.get("fields", ()), structs)
    api_key = data.get("apiKey")
    return MessageSchema(
        name=data["name"],
        kind=data["type"],
        api_key=int(api_key) if api_key is not None else None,
        valid_versions=parse_versions(data.get("validVersions")),
        flexible_versions=parse_versions(data.get("flexibleVersions")),
        fields=tuple(_parse_field(f, structs) for f in data.get("fields", ())),
    )


def _schema_files() -> Iterator[str]:
    """Every schema file: ours first, then Kafka's vendored ones (the first of a clash wins)."""
    for folder in _schema_dirs():
        for name in sorted(os.listdir(folder)):
            if name.endswith(".json"):
                yield os.path.join(folder, name)


def _read_schema(path: str) -> MessageSchema:
    with open(path, encoding="utf-8") as file:
        return parse_schema_text(file.read())


class SchemaRegistry:
    """Message schemas by (api key, "request"|"response"). Each API's file is read the first time
    it is asked for (start-up reads only the few the first requests need); `api_keys` reads all."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_key: dict[tuple[int, str], MessageSchema] = {}
        self._headers: dict[str, MessageSchema] = {}
        self._data: dict[str, MessageSchema] = {}
        self._all_loaded = False

    def _read_one(self, api_key: int, kind: str) -> MessageSchema:
        try:
            camel = "".join(word.capitalize() for word in ApiKey(api_key).name.split("_"))
        except ValueError:
            raise KeyError((api_key, kind)) from None
        file_name = f"{camel}{kind.capitalize()}.json"
        for folder in _schema_dirs():
            path = os.path.join(folder, file_name)
            if os.path.isfile(path):
                return _read_schema(path)
        raise KeyError((api_key, kind))

    def get(self, api_key: int, kind: str) -> MessageSchema:
        """The schema of one API's request or response; KeyError for an unknown api key."""
        schema = self._by_key.get((api_key, kind))
        if schema is None:
            with self._lock:
                schema = self._by_key.get((api_key, kind))
                if schema is None:
                    schema = self._by_key[(api_key, kind)] = self._read_one(api_key, kind)
        return schema

    def _load_all(self) -> None:
        with self._lock:
            if self._all_loaded:
                return
            for path in _schema_files():
                schema = _read_schema(path)
                if schema.kind in ("request", "response") and schema.api_key is not None:
                    self._by_key.setdefault((schema.api_key, schema.kind), schema)
                elif schema.kind == "header":
                    self._headers[schema.name] = schema
            self._all_loaded = True

    def api_keys(self) -> list[int]:
        self._load_all()
        return sorted({key for key, kind in self._by_key if kind == "request"})

    def header(self, name: str) -> MessageSchema:
        self._load_all()
        return self._headers[name]

    def data(self, name: str) -> MessageSchema:
        """A schema that is no request or response (a record format such as TransactionLogValue),
        by its file name; KeyError if no schema folder has it."""
        schema = self._data.get(name)
        if schema is None:
            for folder in _schema_dirs():
                path = os.path.join(folder, f"{name}.json")
                if os.path.isfile(path):
                    with self._lock:
                        schema = self._data[name] = _read_schema(path)
                    break
            else:
                raise KeyError(name)
        return schema


REGISTRY = SchemaRegistry()
