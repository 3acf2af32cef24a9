"""The requests confluent-kafka has no API for, sent with kbroker's codec over a plain socket.

OffsetDelete (KIP-496) goes to the group's coordinator, AlterPartitionReassignments and
ListPartitionReassignments (KIP-455) to the controller (AdminClient's describe calls name both).
DescribeClientQuotas and AlterClientQuotas (KIP-546) go to any broker (`kbroker configs` for
users and clients). Plain TCP only: a cluster that needs TLS or SASL would need those here too
(not done yet).
"""

from __future__ import annotations

import socket
import struct

from kbroker.protocol.api_keys import ApiKey
from kbroker.protocol.errors import Errors
from kbroker.protocol.headers import decode_response_header, encode_request_header
from kbroker.protocol.messages import request_codec, response_codec
from kbroker.tools.common import SESSION, ToolError

CLIENT_ID = "kbroker-tools"
_LENGTH = struct.Struct(">i")


def send_request(address: str, api_key: int, version: int, request: dict) -> dict:
    """One request and its decoded response on a fresh connection to `host:port`."""
    host, _, port = address.rpartition(":")
    payload = encode_request_header(api_key, version, 1, CLIENT_ID) + request_codec(api_key, version).encode(request)
    try:
        with socket.create_connection((host, int(port)), timeout=SESSION.timeout_s) as sock:
            sock.sendall(_LENGTH.pack(len(payload)) + payload)
            (size,) = _LENGTH.unpack(_read_exactly(sock, 4))
            frame = memoryview(_read_exactly(sock, size))
    except OSError as exc:
        raise ToolError(f"request to {address} failed: {exc}") from None
    _, body = decode_response_header(frame, api_key, version)
    response, _ = response_codec(api_key, version).decode(frame, body)
    return dict(response)


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    chunks, remaining = [], size
    while remaining:
        chunk = sock.recv(remaining)
        if not chunk:
            raise OSError("connection closed by the broker")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def delete_offsets(coordinator: str, group: str, partitions: list[tuple[str, int]]
                   ) -> dict[tuple[str, int], str | None]:
    """OffsetDelete v0: each partition's error name, or None where its offset was deleted."""
    topics: dict[str, list[dict]] = {}
    for topic, partition in partitions:
        topics.setdefault(topic, []).append({"partition_index": partition})
    request = {"group_id": group, "topics": [{"name": name, "partitions": parts} for name, parts in topics.items()]}
    response = send_request(coordinator, ApiKey.OFFSET_DELETE, 0, request)
    if response["error_code"]:
        raise ToolError(error_name(response["error_code"]))
    return {(topic["name"], p["partition_index"]): error_name(p["error_code"]) if p["error_code"] else None
            for topic in response["topics"] for p in topic["partitions"]}


def error_name(code: int) -> str:
    try:
        error = Errors(code)
    except ValueError:
        return f"error code {code}"
    return f"{error.name}: {error.message}" if error.message else error.name


def _checked(code: int, message: str | None) -> None:
    if code:
        raise ToolError(f"{error_name(code)}{f' ({message})' if message else ''}")


def describe_client_quotas(address: str, components: list[dict], strict: bool = True) -> list[dict]:
    """DescribeClientQuotas v1 (KIP-546): [{"entity": {type: name or None}, "values": {key: value}}]."""
    response = send_request(address, ApiKey.DESCRIBE_CLIENT_QUOTAS, 1, {"components": components, "strict": strict})
    _checked(response["error_code"], response["error_message"])
    return [{"entity": {e["entity_type"]: e["entity_name"] for e in entry["entity"]},
             "values": {v["key"]: v["value"] for v in entry["values"]}} for entry in response["entries"] or []]


def alter_client_quotas(address: str, entity: dict[str, str | None], ops: list[dict]) -> None:
    """AlterClientQuotas v1 for one entity; ops are {"key", "value", "remove"}."""
    request = {"entries": [{"entity": [{"entity_type": t, "entity_name": n} for t, n in entity.items()], "ops": ops}],
               "validate_only": False}
    response = send_request(address, ApiKey.ALTER_CLIENT_QUOTAS, 1, request)
    for entry in response["entries"]:
        _checked(entry["error_code"], entry["error_message"])
