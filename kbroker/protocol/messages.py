"""Request and response codecs per (API key, version), compiled from the schemas on first use.

This is the codec's public face:

    codec = request_codec(api_key, version)     # or response_codec(...)
    msg, end = codec.decode(buf, offset)         # dict with every field the schema knows
    data = codec.encode(msg)                     # bytes
    total = codec.encode_chunks(msg, out)        # appends pieces; records values as is

Versions below a schema's validVersions minimum are still compiled from the field
version ranges (the broker must answer old clients); versions above the maximum raise
UnsupportedVersionError. It must not touch sockets, the log or broker state.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

from kbroker.protocol.compiler import CodecError, compile_decoder, compile_encoder, has_records
from kbroker.protocol.schema import REGISTRY, MessageSchema

__all__ = [
    "Codec",
    "CodecError",
    "UnsupportedVersionError",
    "data_codec",
    "is_flexible",
    "request_codec",
    "response_codec",
    "schema_versions",
]


class UnsupportedVersionError(CodecError):
    """The version is above the schema's maximum (or negative)."""


class Codec:
    """Encoder and decoder of one API's request or response at one version.

    decode(buf, offset=0) -> (dict, end) and encode_chunks(msg, out) -> int are the generated
    functions themselves, stored in the instance's slots: no wrapper per call. Each is compiled
    the first time it is used (`__getattr__` runs only while its slot is empty): the broker
    decodes requests and encodes responses and never needs the other half, which was half the
    compile time of every API's first request.
    """

    __slots__ = ("api_key", "version", "kind", "flexible", "name", "_schema", "decode", "encode_chunks", "encode")

    def __init__(self, schema: MessageSchema, version: int) -> None:
        self.api_key = schema.api_key
        self.version = version
        self.kind = schema.kind
        self.name = schema.name
        self.flexible = schema.is_flexible(version)
        self._schema = schema

    def __getattr__(self, name: str) -> Any:
        function: Callable[..., Any]
        if name == "decode":
            function = compile_decoder(self._schema, self.version)
        elif name == "encode_chunks":
            function = compile_encoder(self._schema, self.version)
        elif name == "encode":
            function = _joining_encoder(self.encode_chunks, has_records(self._schema.fields, self.version))
        else:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        setattr(self, name, function)
        return function

    def __repr__(self) -> str:
        return f"<Codec {self.name} v{self.version}>"


def _joining_encoder(
    encode_chunks: Callable[[Mapping[str, Any], list[Any]], int], records: bool
) -> Callable[[Mapping[str, Any]], bytes]:
    """encode(msg) -> bytes on top of encode_chunks."""
    if not records:

        def encode(msg: Mapping[str, Any]) -> bytes:
            out: list = []
            encode_chunks(msg, out)
            return out[0]

        return encode

    def encode_with_records(msg: Mapping[str, Any]) -> bytes:
        out: list = []
        encode_chunks(msg, out)
        try:
            return b"".join(out)
        except TypeError as exc:
            raise CodecError(f"records value cannot be joined into bytes: {exc}") from None

    return encode_with_records


_cache: dict[tuple[int, int, str], Codec] = {}
_cache_lock = threading.Lock()


def _codec(api_key: int, version: int, kind: str) -> Codec:
    key = (api_key, version, kind)
    codec = _cache.get(key)
    if codec is not None:
        return codec
    schema = REGISTRY.get(api_key, kind)
    if not 0 <= version <= schema.valid_versions.hi:
        raise UnsupportedVersionError(
            f"{schema.name} version {version} is not supported (max {schema.valid_versions.hi})"
        )
    with _cache_lock:
        codec = _cache.get(key)
        if codec is None:
            codec = _cache[key] = Codec(schema, version)
    return codec


def request_codec(api_key: int, version: int) -> Codec:
    """The codec of an API's request at a version; KeyError for an unknown api key."""
    return _codec(api_key, version, "request")


def response_codec(api_key: int, version: int) -> Codec:
    """The codec of an API's response at a version; KeyError for an unknown api key."""
    return _codec(api_key, version, "response")


_data_cache: dict[tuple[str, int], Codec] = {}


def data_codec(name: str, version: int) -> Codec:
    """The codec of a record format that is no request or response (Kafka's "data" and
    "coordinator-value" schemas, such as TransactionLogKey/TransactionLogValue), without the
    int16 version prefix that its users write before it; KeyError for an unknown name."""
    key = (name, version)
    codec = _data_cache.get(key)
    if codec is None:
        schema = REGISTRY.data(name)
        if not 0 <= version <= schema.valid_versions.hi:
            raise UnsupportedVersionError(f"{name} version {version} is not supported")
        with _cache_lock:
            codec = _data_cache.setdefault(key, Codec(schema, version))
    return codec


def schema_versions(api_key: int) -> tuple[int, int]:
    """The request schema's validVersions as (min, max); KeyError for an unknown api key."""
    versions = REGISTRY.get(api_key, "request").valid_versions
    return versions.lo, versions.hi


def is_flexible(api_key: int, version: int) -> bool:
    """Whether requests of this API and version use the flexible (KIP-482) encoding."""
    return REGISTRY.get(api_key, "request").is_flexible(version)


def known_api_keys() -> list[int]:
    """Every API key that has a schema."""
    return REGISTRY.api_keys()
