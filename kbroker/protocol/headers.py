"""Request and response headers (Kafka's RequestHeader v0-2 and ResponseHeader v0-1).

Request header: api key (i16), api version (i16), correlation id (i32); from header v1 a
client id as a *classic* nullable string even in flexible requests; from v2 (flexible
APIs) a tagged-fields section, which carries nothing we need and is skipped. Header v0 is
used only by ControlledShutdown v0. Tagged fields are read only when the api key is known
and its version is within the schema's range and flexible: otherwise the handler layer
answers UNSUPPORTED_VERSION (or closes) without needing the body offset to be exact.

Response header: the correlation id, plus an empty tagged-fields section (v1) for
flexible versions, except ApiVersions which always answers with header v0 (KIP-511).
This module must not touch sockets or broker state.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import lru_cache

from kbroker.protocol.api_keys import ApiKey
from kbroker.protocol.compiler import CodecError, read_uvarint_tail
from kbroker.protocol.schema import REGISTRY

_REQUEST_HEADER_FIXED = struct.Struct(">hhih")  # key, version, correlation id, client id length
_REQUEST_HEADER_V0 = struct.Struct(">hhi")
_CORRELATION_ID = struct.Struct(">i")
_CONTROLLED_SHUTDOWN = int(ApiKey.CONTROLLED_SHUTDOWN)  # read per request: an enum member's lookup is not free


@dataclass(slots=True)
class RequestHeader:
    """A request header's fields (Kafka's RequestHeader), the client id None when the client sent none."""

    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None


# Cached: every request's header asks it (one C-level lookup instead of three Python calls);
# bounded, since the pair comes from the wire.
@lru_cache(maxsize=1024)
def _request_is_flexible(api_key: int, api_version: int) -> bool:
    """True only for a known api key at a version within its schema and flexible."""
    try:
        schema = REGISTRY.get(api_key, "request")
    except KeyError:
        return False
    return 0 <= api_version <= schema.valid_versions.hi and schema.is_flexible(api_version)


def _skip_tagged_fields(buf: bytes | bytearray | memoryview, pos: int) -> int:
    count, pos = _read_uvarint(buf, pos)
    for _ in range(count):
        _tag, pos = _read_uvarint(buf, pos)
        size, pos = _read_uvarint(buf, pos)
        pos += size
    return pos


def _read_uvarint(buf: bytes | bytearray | memoryview, pos: int) -> tuple[int, int]:
    first = buf[pos]
    if first < 0x80:
        return first, pos + 1
    return read_uvarint_tail(buf, pos + 1, first)


def decode_request_header(buf: memoryview) -> tuple[RequestHeader, int]:
    """Decode the header at the start of a request frame (size prefix excluded).

    Returns the header and the offset where the body starts; CodecError on truncation
    or a client id that is not UTF-8.
    """
    try:
        if len(buf) >= 10:  # one unpack for every header but a bare ControlledShutdown v0's
            api_key, api_version, correlation_id, length = _REQUEST_HEADER_FIXED.unpack_from(buf, 0)
        else:
            api_key, api_version, correlation_id = _REQUEST_HEADER_V0.unpack_from(buf, 0)
            length = None
        if api_key == _CONTROLLED_SHUTDOWN and api_version == 0:
            return RequestHeader(api_key, api_version, correlation_id, None), 8
        if length is None:
            raise CodecError("request header truncated before the client id")
        pos = 10
        client_id = None
        if length >= 0:
            if pos + length > len(buf):
                raise CodecError("request header truncated in the client id")
            client_id = str(buf[pos : pos + length], "utf-8")
            pos += length
        if _request_is_flexible(api_key, api_version):
            # No tagged fields (what every client sends) is one zero byte: read inline.
            pos = pos + 1 if buf[pos] == 0 else _skip_tagged_fields(buf, pos)
            if pos > len(buf):
                raise CodecError("request header truncated in its tagged fields")
        return RequestHeader(api_key, api_version, correlation_id, client_id), pos
    except CodecError:
        raise
    except (struct.error, IndexError, ValueError, TypeError) as exc:
        raise CodecError(f"cannot decode request header: {exc}") from None


def response_header_is_flexible(api_key: int, api_version: int) -> bool:
    """Response header v1 for flexible versions, except ApiVersions (always v0)."""
    return api_key != ApiKey.API_VERSIONS and _request_is_flexible(api_key, api_version)


_FRAME_HEAD = struct.Struct(">ii")  # size, correlation id
_FRAME_HEAD_FLEXIBLE = struct.Struct(">iix")  # size, correlation id, no tagged fields


def response_frame_head(api_key: int, api_version: int) -> struct.Struct:
    """The size prefix and response header of a response frame as one Struct, packed with
    (size after the prefix, correlation id): the request pipeline picks it once per API and
    version, so a response costs one pack."""
    return _FRAME_HEAD_FLEXIBLE if response_header_is_flexible(api_key, api_version) else _FRAME_HEAD


# -- the client side (broker-to-broker requests) ----------------------------------------------
def encode_request_header(api_key: int, api_version: int, correlation_id: int, client_id: str | None) -> bytes:
    """Request header v1 (v2 with an empty tagged-fields section for flexible versions)."""
    if api_key == ApiKey.CONTROLLED_SHUTDOWN and api_version == 0:
        return _REQUEST_HEADER_V0.pack(api_key, api_version, correlation_id)
    if client_id is None:
        header = _REQUEST_HEADER_FIXED.pack(api_key, api_version, correlation_id, -1)
    else:
        raw = client_id.encode()
        header = _REQUEST_HEADER_FIXED.pack(api_key, api_version, correlation_id, len(raw)) + raw
    return header + b"\x00" if _request_is_flexible(api_key, api_version) else header


def decode_response_header(buf: memoryview, api_key: int, api_version: int) -> tuple[int, int]:
    """(correlation id, body offset) of a response to a request of this api key and version."""
    try:
        correlation_id = _CORRELATION_ID.unpack_from(buf, 0)[0]
        pos = 4
        if response_header_is_flexible(api_key, api_version):
            pos = _skip_tagged_fields(buf, pos)
            if pos > len(buf):
                raise CodecError("response header truncated in its tagged fields")
        return correlation_id, pos
    except CodecError:
        raise
    except (struct.error, IndexError) as exc:
        raise CodecError(f"cannot decode response header: {exc}") from None
