"""Property tests of the compiled codec over every (API, version, request|response) pair.

Messages are generated from the schemas themselves. For each pair:
- decode(encode(m)) == m, and encode_chunks agrees with encode;
- our bytes equal kafka-python's encoding of the same message (its classes are built from
  the same JSON files) and kio's (generated from Kafka's schemas by another project),
  wherever those oracles know the pair;
- every proper prefix of a valid encoding, mutated encodings and random bytes raise
  nothing but CodecError.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import io

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

# kio's error_code fields only hold members of its ErrorCode enum, so error codes are
# drawn from that set: every generated message can then be written by kio too.
from kio.schema.errors import ErrorCode as KioErrorCode

from kbroker.protocol.messages import CodecError, known_api_keys, request_codec, response_codec
from kbroker.protocol.schema import (
    REGISTRY,
    FieldSpec,
    default_value,
)
from kbroker.protocol.uuids import ZERO_UUID

KIO_ERROR_CODES = sorted(code.value for code in KioErrorCode)

INT_RANGES = {
    "int8": (-(2**7), 2**7 - 1),
    "int16": (-(2**15), 2**15 - 1),
    "uint16": (0, 2**16 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
    "int64": (-(2**63), 2**63 - 1),
}


def _pairs() -> list[tuple[int, int, str]]:
    pairs = []
    for api_key in known_api_keys():
        for kind in ("request", "response"):
            for version in range(REGISTRY.get(api_key, kind).valid_versions.hi + 1):
                pairs.append((api_key, version, kind))
    return pairs


PAIRS = _pairs()
PAIR_IDS = [f"{REGISTRY.get(k, kind).name}-v{v}" for k, v, kind in PAIRS]


def _codec(api_key: int, version: int, kind: str):
    return (request_codec if kind == "request" else response_codec)(api_key, version)


# ------------------------------------------------------------------ message generation


def decoded_default(spec: FieldSpec):
    """A field's default as the decoder returns it (lists, not tuples)."""
    value = default_value(spec)
    if isinstance(value, tuple):
        return []
    if isinstance(value, dict):
        return {member.key: decoded_default(member) for member in spec.fields}
    return value


def _scalar_strategy(type_name: str, key: str) -> st.SearchStrategy:
    if type_name == "int16" and key.endswith("error_code"):
        return st.sampled_from(KIO_ERROR_CODES)
    if type_name in INT_RANGES:
        low, high = INT_RANGES[type_name]
        return st.integers(low, high)
    return {
        "bool": st.booleans(),
        "float64": st.floats(allow_nan=False),
        "string": st.text(max_size=6),
        "bytes": st.binary(max_size=8),
        "records": st.binary(max_size=24),
        "uuid": st.uuids() | st.just(ZERO_UUID),
    }[type_name]


def _value_strategy(spec: FieldSpec, version: int) -> st.SearchStrategy:
    if spec.is_struct_array:
        strategy = st.lists(struct_strategy(spec.fields, version), max_size=2)
    elif spec.is_array:
        strategy = st.lists(_scalar_strategy(spec.element_type, spec.key), max_size=3)
    elif spec.is_struct:
        strategy = struct_strategy(spec.fields, version)
    else:
        strategy = _scalar_strategy(spec.type, spec.key)
    if version in spec.nullable:
        strategy = st.none() | strategy
    if spec.is_tagged_in(version):
        strategy = st.just(decoded_default(spec)) | strategy
    return strategy


def struct_strategy(specs: tuple[FieldSpec, ...], version: int) -> st.SearchStrategy:
    """Dicts with every key; fields absent from this version hold their default."""
    return st.fixed_dictionaries(
        {
            spec.key: _value_strategy(spec, version)
            if version in spec.versions
            else st.just(decoded_default(spec))
            for spec in specs
        }
    )


@functools.cache
def message_strategy(api_key: int, version: int, kind: str) -> st.SearchStrategy:
    return struct_strategy(REGISTRY.get(api_key, kind).fields, version)


# ------------------------------------------------------------------ kafka-python oracle


# Vendored schemas newer than kafka-python's copies (from the kafka-clients 4.4.0 jar).
NEWER_THAN_KAFKA_PYTHON = frozenset({"TxnOffsetCommitRequest", "TxnOffsetCommitResponse"})


@functools.cache
def kafka_python_struct(api_key: int, kind: str):
    """kafka-python's field machinery built from the raw schema file (ours or Kafka's).

    Its ready-made message classes are not used: some of them patch the JSON (e.g.
    MetadataResponse turns AuthorizedOperations into a bit set), which is no longer the
    wire schema.
    """
    from kafka.protocol.schemas import StructField, load_json

    schema = REGISTRY.get(api_key, kind)
    # kafka-python's loader takes package names: ours, then its own schema package, then the
    # Kafka schemas we vendor that its package data lacks (KIP-848's ConsumerGroup* APIs) or
    # has in an older form (Kafka 4.4's TxnOffsetCommit v6 renamed GenerationId).
    packages = ("kbroker.protocol.schemas", "kafka.protocol.schemas.resources", "kbroker.protocol.schemas.kafka")
    if schema.name in NEWER_THAN_KAFKA_PYTHON:
        packages = ("kbroker.protocol.schemas.kafka",)
    for package in packages:
        try:
            return StructField(load_json(schema.name, package=package))
        except FileNotFoundError:
            continue
    raise AssertionError(f"no schema file for {schema.name}")


def _for_kafka_python(specs: tuple[FieldSpec, ...], msg: dict | None, version: int) -> dict | None:
    """Our message as kafka-python's dict encoder wants it.

    Two documented differences of kafka-python, both about tagged fields only:
    - it takes None as the default of tagged uuid and struct fields (Kafka: the zero UUID
      and the all-defaults struct), so it would write a tag we correctly omit: tagged
      fields at their default are left out of its input;
    - it writes tags in the order of the dict's keys: tagged fields are put last, sorted
      by tag, as the protocol requires (KIP-482).
    """
    if msg is None:
        return None
    out = {}
    tagged = []
    for spec in specs:
        value = msg[spec.key]
        if version in spec.versions:
            if spec.is_struct_array and value is not None:
                value = [_for_kafka_python(spec.fields, item, version) for item in value]
            elif spec.is_struct:
                value = _for_kafka_python(spec.fields, value, version)
        if spec.is_tagged_in(version) and version in spec.versions:
            if msg[spec.key] != decoded_default(spec):
                tagged.append((spec.tag, spec.key, value))
            continue
        out[spec.key] = value
    for _tag, key, value in sorted(tagged, key=lambda item: item[0]):
        out[key] = value
    return out


def kafka_python_encoding(api_key: int, version: int, kind: str, msg: dict) -> bytes | None:
    schema = REGISTRY.get(api_key, kind)
    flexible = schema.is_flexible(version)
    value = _for_kafka_python(schema.fields, msg, version)
    return kafka_python_struct(api_key, kind).encode(
        value, version=version, compact=flexible, tagged=flexible
    )


# ------------------------------------------------------------------ kio oracle


class KioCannotRepresent(Exception):
    """The value has no kio representation (e.g. an int64 beyond a timedelta's range)."""


# kio types some integer fields as durations, datetimes or error codes.
KIO_TYPE_ALIASES = {
    "int16": {"int16", "error_code"},
    "int32": {"int32", "timedelta_i32"},
    "int64": {"int64", "timedelta_i64", "datetime_i64"},
}
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


@functools.cache
def kio_class(api_key: int, version: int, kind: str):
    from kio.index import UnknownAPIKey, UnknownEntity, load_request_schema, load_response_schema

    loader = load_request_schema if kind == "request" else load_response_schema
    try:
        return loader(api_key, version)
    except (UnknownAPIKey, UnknownEntity):
        return None


def _kio_shape_differences(cls, specs: tuple[FieldSpec, ...], version: int, path: str) -> list[str]:
    """Where kio's dataclass disagrees with our schema at this version (empty when it agrees)."""
    from kio.serial._introspect import EntityField, EntityTupleField, classify_field

    present = [spec for spec in specs if version in spec.versions]
    kio_fields = dataclasses.fields(cls)
    if len(kio_fields) != len(present):
        return [f"{path}: kio has {len(kio_fields)} fields, the schema {len(present)}"]
    problems = []
    for kio_field, spec in zip(kio_fields, present, strict=True):
        shape = classify_field(kio_field)
        if isinstance(shape, EntityField | EntityTupleField):
            if not (spec.is_struct or spec.is_struct_array):
                problems.append(f"{path}.{spec.key}: kio has a struct")
            else:
                problems += _kio_shape_differences(shape.type_, spec.fields, version, f"{path}.{spec.key}")
            continue
        kafka_type = kio_field.metadata.get("kafka_type")
        ours = spec.element_type
        if kafka_type not in KIO_TYPE_ALIASES.get(ours, {ours}):
            problems.append(f"{path}.{spec.key}: kio type {kafka_type}, schema type {ours}")
    return problems


# kio converts durations and timestamps through float microseconds: beyond 2**53 µs it rounds.
_KIO_EXACT_MS = 2**53 // 1000


def _kio_scalar(kafka_type: str, value):
    if kafka_type in ("timedelta_i32", "timedelta_i64", "datetime_i64") and abs(value) > _KIO_EXACT_MS:
        raise KioCannotRepresent(f"{kafka_type} {value}: kio would round it")
    try:
        if kafka_type == "error_code":
            return KioErrorCode(value)
        if kafka_type in ("timedelta_i32", "timedelta_i64"):
            return datetime.timedelta(milliseconds=value)
        if kafka_type == "datetime_i64":
            return _EPOCH + datetime.timedelta(milliseconds=value)
    except (ValueError, OverflowError) as exc:
        raise KioCannotRepresent(f"{kafka_type} {value}") from exc
    if isinstance(value, memoryview):
        return bytes(value)
    return value


def _to_kio(cls, specs: tuple[FieldSpec, ...], msg: dict | None, version: int):
    from kio.serial._introspect import EntityField, EntityTupleField, classify_field

    if msg is None:
        return None
    present = [spec for spec in specs if version in spec.versions]
    kwargs = {}
    for kio_field, spec in zip(dataclasses.fields(cls), present, strict=True):
        value = msg[spec.key]
        shape = classify_field(kio_field)
        kafka_type = kio_field.metadata.get("kafka_type")
        if isinstance(shape, EntityTupleField):
            value = (
                None if value is None else tuple(_to_kio(shape.type_, spec.fields, v, version) for v in value)
            )
        elif isinstance(shape, EntityField):
            value = _to_kio(shape.type_, spec.fields, value, version)
        elif spec.is_array:
            value = None if value is None else tuple(_kio_scalar(kafka_type, v) for v in value)
        elif spec.is_tagged_in(version) and value == decoded_default(spec) and kio_field.default is None:
            # kio declares some tagged fields (uuid ones) with None as their default where
            # Kafka's default is the zero UUID; None is how kio spells "at the default".
            value = None
        else:
            value = _kio_scalar(kafka_type, value)
        kwargs[kio_field.name] = value
    return cls(**kwargs)


def kio_encoding(api_key: int, version: int, kind: str, msg: dict) -> bytes | None:
    from kio.serial import entity_writer

    cls = kio_class(api_key, version, kind)
    if cls is None or kio_mismatch(api_key, version, kind):
        return None
    try:
        entity = _to_kio(cls, REGISTRY.get(api_key, kind).fields, msg, version)
    except KioCannotRepresent:
        return None
    buffer = io.BytesIO()
    entity_writer(cls)(buffer, entity)
    return buffer.getvalue()


@functools.cache
def kio_mismatch(api_key: int, version: int, kind: str) -> tuple[str, ...]:
    cls = kio_class(api_key, version, kind)
    if cls is None:
        return ()
    return tuple(_kio_shape_differences(cls, REGISTRY.get(api_key, kind).fields, version, cls.__name__))


# ------------------------------------------------------------------ the tests

PROPERTY_SETTINGS = settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)


@pytest.mark.parametrize("api_key, version, kind", PAIRS, ids=PAIR_IDS)
@PROPERTY_SETTINGS
@given(data=st.data())
def test_roundtrip_and_oracles(api_key, version, kind, data):
    codec = _codec(api_key, version, kind)
    msg = data.draw(message_strategy(api_key, version, kind), label="message")
    encoded = codec.encode(msg)

    decoded, end = codec.decode(encoded)
    assert end == len(encoded)
    assert decoded == msg

    pieces: list = []
    assert codec.encode_chunks(msg, pieces) == len(encoded)
    assert b"".join(pieces) == encoded

    # Decoding from an offset inside a larger buffer.
    assert codec.decode(b"\xaa\xbb" + encoded + b"\xcc", 2) == (decoded, end + 2)

    assert encoded == kafka_python_encoding(api_key, version, kind, msg), "differs from kafka-python"
    expected = kio_encoding(api_key, version, kind, msg)
    if expected is not None:
        assert encoded == expected, "differs from kio"


def test_oracles_cover_the_schema_set():
    """Guard against the oracle checks above silently doing nothing."""
    assert {4, 5, 6, 7, 56, 67} <= set(known_api_keys())  # our own schema files are loaded
    with_kio = [pair for pair in PAIRS if kio_class(*pair) is not None]
    assert len(with_kio) > 400
    assert {(56, 3, "request"), (67, 0, "response")} <= set(with_kio)
    # kio's classes agree field by field with the schema for every pair it has.
    assert [pair for pair in with_kio if kio_mismatch(*pair)] == []


@pytest.mark.parametrize("api_key, version, kind", PAIRS, ids=PAIR_IDS)
@settings(max_examples=3, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_bad_input_raises_only_codec_error(api_key, version, kind, data):
    codec = _codec(api_key, version, kind)
    encoded = codec.encode(data.draw(message_strategy(api_key, version, kind), label="message"))
    for cut in range(len(encoded)):
        with pytest.raises(CodecError):
            codec.decode(encoded[:cut])
    garbage = [
        data.draw(st.binary(max_size=64), label="random bytes"),
        _mutated(
            encoded,
            data.draw(st.lists(st.tuples(st.integers(0), st.integers(0, 255)), min_size=1, max_size=4)),
        ),
    ]
    for buf in garbage:
        try:
            msg, end = codec.decode(buf)
        except CodecError:
            continue
        assert 0 <= end <= len(buf)
        assert isinstance(msg, dict)


def _mutated(encoded: bytes, changes: list[tuple[int, int]]) -> bytes:
    if not encoded:
        return encoded
    buf = bytearray(encoded)
    for position, value in changes:
        buf[position % len(buf)] = value
    return bytes(buf)
