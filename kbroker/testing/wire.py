"""Raw Kafka framing for tests: request frames built with struct, responses read off a socket.

Written independently of kbroker's codec so that protocol tests do not check the broker against
itself. Only the few message layouts the protocol tests need are spelled out here; anything
larger is decoded with kafka-python's schema classes as an oracle. No kbroker imports.
"""

from __future__ import annotations

import json
import re
import socket
import struct
import time
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

API_VERSIONS = 18
METADATA = 3
DESCRIBE_CLUSTER = 60

FIRST_FLEXIBLE_API_VERSIONS = 3
FIRST_FLEXIBLE_METADATA = 9


# --- primitive encoders -----------------------------------------------------------------------


def uvarint(value: int) -> bytes:
    """Unsigned varint (LEB128), as used by compact lengths and tagged fields."""
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def classic_string(value: str | None) -> bytes:
    if value is None:
        return struct.pack(">h", -1)
    data = value.encode()
    return struct.pack(">h", len(data)) + data


def compact_string(value: str | None) -> bytes:
    if value is None:
        return uvarint(0)
    data = value.encode()
    return uvarint(len(data) + 1) + data


NO_TAGGED_FIELDS = uvarint(0)


# --- requests ---------------------------------------------------------------------------------


def request_header(
    api_key: int, api_version: int, correlation_id: int, client_id: str | None, flexible: bool
) -> bytes:
    """Request header v1, or v2 (v1 plus tagged fields) for flexible versions.

    The client id stays a classic nullable string even in v2.
    """
    header = struct.pack(">hhi", api_key, api_version, correlation_id) + classic_string(client_id)
    return header + NO_TAGGED_FIELDS if flexible else header


def frame(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


def request_frame(
    api_key: int,
    api_version: int,
    correlation_id: int,
    body: bytes = b"",
    *,
    flexible: bool = False,
    client_id: str | None = "kbroker-tests",
) -> bytes:
    return frame(request_header(api_key, api_version, correlation_id, client_id, flexible) + body)


def api_versions_request(
    correlation_id: int, version: int = 0, *, software: tuple[str, str] | None = None
) -> bytes:
    """ApiVersions request of any version; v3+ carries the client software name and version."""
    if version < FIRST_FLEXIBLE_API_VERSIONS:
        return request_frame(API_VERSIONS, version, correlation_id)
    name, software_version = software or ("kbroker-tests", "1.0")
    body = compact_string(name) + compact_string(software_version) + NO_TAGGED_FIELDS
    return request_frame(API_VERSIONS, version, correlation_id, body, flexible=True)


def metadata_request(
    correlation_id: int,
    version: int = 1,
    topics: list[str] | None = None,
    *,
    allow_auto_topic_creation: bool = False,
) -> bytes:
    """Metadata request; `topics=None` asks for all topics (v0 has no null, so it sends [])."""
    flexible = version >= FIRST_FLEXIBLE_METADATA
    body = bytearray()
    if flexible:
        if topics is None:
            body += uvarint(0)
        else:
            body += uvarint(len(topics) + 1)
            for name in topics:
                if version >= 10:
                    body += bytes(16)  # topic id: the zero UUID, meaning "by name"
                body += compact_string(name) + NO_TAGGED_FIELDS
    else:
        names = topics if topics is not None else ([] if version == 0 else None)
        if names is None:
            body += struct.pack(">i", -1)
        else:
            body += struct.pack(">i", len(names))
            for name in names:
                body += classic_string(name)
    if version >= 4:
        body += struct.pack(">?", allow_auto_topic_creation)
    if 8 <= version <= 10:
        body += struct.pack(">?", False)  # include_cluster_authorized_operations
    if version >= 8:
        body += struct.pack(">?", False)  # include_topic_authorized_operations
    if flexible:
        body += NO_TAGGED_FIELDS
    return request_frame(METADATA, version, correlation_id, bytes(body), flexible=flexible)


def describe_cluster_request(
    correlation_id: int, version: int = 0, *, endpoint_type: int = 1, include_fenced_brokers: bool = False
) -> bytes:
    """DescribeCluster request (flexible from v0); endpoint type 1 means brokers."""
    body = struct.pack(">?", False)  # include_cluster_authorized_operations
    if version >= 1:
        body += struct.pack(">b", endpoint_type)
    if version >= 2:
        body += struct.pack(">?", include_fenced_brokers)
    return request_frame(DESCRIBE_CLUSTER, version, correlation_id, body + NO_TAGGED_FIELDS, flexible=True)


# --- reading responses ------------------------------------------------------------------------


class ConnectionClosed(Exception):
    """The broker closed the connection (EOF or reset) before `wanted` bytes arrived."""

    def __init__(self, how: str, received: int, wanted: int) -> None:
        super().__init__(f"{how} after {received} of {wanted} bytes")
        self.received = received
        self.wanted = wanted


def recv_exact(sock: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        try:
            chunk = sock.recv(size - len(chunks))
        except ConnectionResetError as exc:
            raise ConnectionClosed("reset", len(chunks), size) from exc
        if not chunk:
            raise ConnectionClosed("EOF", len(chunks), size)
        chunks += chunk
    return bytes(chunks)


def read_frame(sock: socket.socket) -> bytes:
    """One response frame's payload (header and body), without the size prefix."""
    (size,) = struct.unpack(">i", recv_exact(sock, 4))
    assert 0 <= size < 64 * 1024 * 1024, f"implausible response size {size}"
    return recv_exact(sock, size)


def read_frame_or_none(sock: socket.socket) -> bytes | None:
    """The next frame's payload, or None if the connection closed cleanly between frames.

    A close in the middle of a frame still raises ConnectionClosed.
    """
    try:
        size_bytes = recv_exact(sock, 4)
    except ConnectionClosed as closed:
        if closed.received == 0:
            return None
        raise
    (size,) = struct.unpack(">i", size_bytes)
    return recv_exact(sock, size)


def wait_closed(sock: socket.socket, timeout: float = 5.0) -> bytes:
    """Wait until the peer closes; return whatever bytes arrived before (expected: none).

    Raises AssertionError when the connection is still open after `timeout` seconds.
    """
    received = bytearray()
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(
                f"connection still open after {timeout}s (received {bytes(received)[:64]!r})"
            )
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return bytes(received)
        if not chunk:
            return bytes(received)
        received += chunk


def connect(port: int, timeout: float = 10.0, host: str = "127.0.0.1") -> socket.socket:
    sock = socket.create_connection((host, port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def roundtrip(port: int, request: bytes, timeout: float = 10.0, host: str = "127.0.0.1") -> bytes:
    """Send one request frame on a new connection and return the response payload."""
    with connect(port, timeout, host) as sock:
        sock.sendall(request)
        return read_frame(sock)


# --- decoding ---------------------------------------------------------------------------------


class Reader:
    """Cursor over a response payload; `done()` asserts that every byte was consumed."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, fmt: str) -> tuple:
        values = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return values

    def int16(self) -> int:
        return self.take(">h")[0]

    def int32(self) -> int:
        return self.take(">i")[0]

    def int64(self) -> int:
        return self.take(">q")[0]

    def uvarint(self) -> int:
        result = shift = 0
        while True:
            byte = self.data[self.pos]
            self.pos += 1
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return result
            shift += 7

    def raw(self, size: int) -> bytes:
        assert self.pos + size <= len(self.data), "read past the end of the payload"
        value = self.data[self.pos : self.pos + size]
        self.pos += size
        return value

    def tagged_fields(self) -> dict[int, bytes]:
        fields = {}
        for _ in range(self.uvarint()):
            tag = self.uvarint()
            fields[tag] = self.raw(self.uvarint())
        return fields

    def remaining(self) -> int:
        return len(self.data) - self.pos

    def done(self) -> None:
        assert self.pos == len(self.data), f"{len(self.data) - self.pos} unread bytes at offset {self.pos}"


@dataclass
class ApiVersionsAnswer:
    correlation_id: int
    error_code: int
    api_keys: dict[int, tuple[int, int]]
    throttle_time_ms: int | None = None
    tagged_fields: dict[int, bytes] = field(default_factory=dict)


def parse_api_versions(payload: bytes, version: int) -> ApiVersionsAnswer:
    """Decode an ApiVersions response of `version` strictly: header v0, no byte left over.

    Duplicate api keys are an error. Per-entry tagged fields (v3+) must be empty.
    """
    reader = Reader(payload)
    correlation_id = reader.int32()  # header v0 for every version: no tagged-field byte
    error_code = reader.int16()
    flexible = version >= FIRST_FLEXIBLE_API_VERSIONS
    count = reader.uvarint() - 1 if flexible else reader.int32()
    api_keys: dict[int, tuple[int, int]] = {}
    for _ in range(count):
        api_key, min_version, max_version = reader.take(">hhh")
        assert api_key not in api_keys, f"api key {api_key} listed twice"
        api_keys[api_key] = (min_version, max_version)
        if flexible:
            assert reader.tagged_fields() == {}, f"unexpected tagged fields on api key {api_key}"
    throttle = reader.int32() if version >= 1 else None
    tags = reader.tagged_fields() if flexible else {}
    reader.done()
    return ApiVersionsAnswer(correlation_id, error_code, api_keys, throttle, tags)


def correlation_id_of(payload: bytes) -> int:
    return struct.unpack_from(">i", payload)[0]


def decode_with_kafka_python(response_class: type[Any], payload: bytes, version: int) -> tuple[int, Any]:
    """Decode a response payload (header included) with kafka-python's schema classes.

    Returns (header, body). Also re-encodes the body and asserts it is byte-identical, which
    catches extra, missing or misplaced fields that a lenient decoder would silently accept.
    """
    flexible = response_class.flexible_version_q(version)
    header_size = 4
    if flexible:
        header_reader = Reader(payload)
        header_reader.int32()
        header_reader.tagged_fields()
        header_size = header_reader.pos
    body = payload[header_size:]
    decoded = response_class.decode(body, version=version)
    decoded._header = None  # kafka-python's encode() expects the slot to be set
    reencoded = bytes(decoded.encode(version=version))
    assert reencoded == body, (
        f"{response_class.__name__} v{version} does not re-encode identically: "
        f"got {len(body)} bytes, kafka-python's encoding of what it decoded is {len(reencoded)} bytes"
    )
    return correlation_id_of(payload), decoded


# Kafka's inter-broker APIs of ZooKeeper mode (and AlterPartition/AllocateProducerIds in their
# ZooKeeper-era ranges) are absent from the 4.x schema set kafka-python ships.
ZK_MODE_API_RANGES = {4: (0, 7), 5: (0, 4), 6: (0, 8), 7: (0, 3), 56: (0, 3), 67: (0, 0)}
# KIP-848's ConsumerGroupHeartbeat and ConsumerGroupDescribe (Kafka 4.x's ranges) are absent too.
KIP_848_API_RANGES = {68: (0, 1), 69: (0, 1)}
# Kafka 4.4's ranges newer than kafka-python's copies: TxnOffsetCommit v6 (KIP-1319).
KAFKA_4_4_API_RANGES = {28: (0, 6)}


@cache
def kafka_schema_ranges() -> dict[int, tuple[int, int]]:
    """api key -> (min, max) request versions from Kafka's JSON schemas in kafka-python's package data
    (and Kafka 4.4's, where newer)."""
    ranges = {**ZK_MODE_API_RANGES, **KIP_848_API_RANGES}
    folder = resources.files("kafka.protocol.schemas") / "resources"
    for entry in folder.iterdir():
        if not entry.name.endswith("Request.json"):
            continue
        text = re.sub(r"^\s*//.*$", "", entry.read_text(), flags=re.MULTILINE)  # the files carry // comments
        schema = json.loads(text)
        if schema.get("type") != "request" or "apiKey" not in schema:
            continue
        low, _, high = schema["validVersions"].partition("-")
        ranges[schema["apiKey"]] = (int(low), int(high or low))
    return {**ranges, **KAFKA_4_4_API_RANGES}
