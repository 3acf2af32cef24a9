"""The requests confluent-kafka has no API for, sent with kbroker's codec over a plain socket.

OffsetDelete (KIP-496) goes to the group's coordinator, AlterPartitionReassignments and
ListPartitionReassignments (KIP-455) to the controller (AdminClient's describe calls name both).
The connection follows the tool's client settings (`--command-config`, librdkafka's names as
`common.client_config` leaves them): `security.protocol` SSL and SASL_SSL wrap it in TLS
(`ssl.ca.location`, `ssl.certificate.location`/`ssl.key.location`/`ssl.key.password` for mutual
TLS, `ssl.endpoint.identification.algorithm` https or none, `enable.ssl.certificate.verification`),
SASL_PLAINTEXT and SASL_SSL log in first (SaslHandshake v1, SaslAuthenticate v2) with
`sasl.mechanism` PLAIN or SCRAM-SHA-256/512 and `sasl.username`/`sasl.password`, through the
mechanisms' client halves in kbroker/security.
DescribeClientQuotas and AlterClientQuotas (KIP-546) go to any broker (`kbroker configs` for
users and clients); AlterReplicaLogDirs and DescribeLogDirs to the broker holding the replicas
(`kbroker reassign-partitions` with `log_dirs`).
"""

from __future__ import annotations

import socket
import ssl
import struct
from collections.abc import Mapping
from typing import Any

from kbroker.protocol.api_keys import ApiKey
from kbroker.protocol.errors import Errors
from kbroker.protocol.headers import decode_response_header, encode_request_header
from kbroker.protocol.messages import request_codec, response_codec
from kbroker.security.sasl import PlainClient, SaslError
from kbroker.security.scram import SCRAM_MECHANISMS, ScramClient
from kbroker.tools.common import SESSION, ToolError

CLIENT_ID = "kbroker-tools"
_LENGTH = struct.Struct(">i")
PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")


def send_request(address: str, api_key: int, version: int, request: dict) -> dict:
    """One request and its decoded response on a fresh connection to `host:port`, secured as the
    tool's client settings say."""
    host, _, port = address.rpartition(":")
    settings = SESSION.config
    protocol = str(settings.get("security.protocol", "PLAINTEXT")).upper()
    if protocol not in PROTOCOLS:
        raise ToolError(f"security.protocol={protocol} is not one of {', '.join(PROTOCOLS)}")
    try:
        with _connect(host, int(port), protocol, settings) as sock:
            if protocol.startswith("SASL_"):
                _authenticate(sock, settings)
            return _call(sock, api_key, version, request, correlation_id=1)
    except ssl.SSLError as exc:
        raise ToolError(f"TLS connection to {address} failed: {exc}") from None
    except OSError as exc:
        raise ToolError(f"request to {address} failed: {exc}") from None


def _connect(host: str, port: int, protocol: str, settings: Mapping[str, Any]) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=SESSION.timeout_s)
    if not protocol.endswith("SSL"):
        return sock
    try:
        return tls_context(settings).wrap_socket(sock, server_hostname=host)
    except BaseException:
        sock.close()
        raise


def tls_context(settings: Mapping[str, Any]) -> ssl.SSLContext:
    """A client context from librdkafka's ssl.* settings (the system's CAs without ssl.ca.location)."""
    try:
        context = ssl.create_default_context(cafile=settings.get("ssl.ca.location"))
        if str(settings.get("ssl.endpoint.identification.algorithm", "https")).lower() == "none":
            context.check_hostname = False
        if str(settings.get("enable.ssl.certificate.verification", "true")).lower() == "false":
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if settings.get("ssl.certificate.location"):
            context.load_cert_chain(settings["ssl.certificate.location"], settings.get("ssl.key.location"),
                                    settings.get("ssl.key.password"))
    except (OSError, ssl.SSLError) as exc:
        raise ToolError(f"cannot set up TLS from the ssl.* settings: {exc}") from None
    return context


def _authenticate(sock: socket.socket, settings: Mapping[str, Any]) -> None:
    """SaslHandshake v1 and SaslAuthenticate v2 until the mechanism completes; ToolError with the
    broker's message when it refuses."""
    mechanism = str(settings.get("sasl.mechanism", settings.get("sasl.mechanisms", "GSSAPI"))).upper()
    username, password = str(settings.get("sasl.username", "")), str(settings.get("sasl.password", ""))
    login: PlainClient | ScramClient
    if mechanism == "PLAIN":
        login = PlainClient(username, password)
    elif mechanism in SCRAM_MECHANISMS:
        login = ScramClient(SCRAM_MECHANISMS[mechanism], username, password)
    else:
        raise ToolError(f"sasl.mechanism={mechanism} is not supported by this tool (PLAIN, SCRAM-SHA-256/512)")
    handshake = _call(sock, ApiKey.SASL_HANDSHAKE, 1, {"mechanism": mechanism}, correlation_id=0)
    if handshake["error_code"]:
        raise ToolError(f"the broker does not enable SASL mechanism {mechanism} "
                        f"(it enables {', '.join(handshake['mechanisms'])})")
    token = login.initial_response()
    try:
        while not login.complete:
            answer = _call(sock, ApiKey.SASL_AUTHENTICATE, 2, {"auth_bytes": token}, correlation_id=0)
            if answer["error_code"]:
                raise ToolError(f"SASL authentication failed: {answer['error_message'] or error_name(answer['error_code'])}")
            token = login.evaluate(bytes(answer["auth_bytes"]))
    except (SaslError, ValueError) as exc:  # a challenge the mechanism cannot read
        raise ToolError(f"SASL authentication failed: {exc}") from None


def _call(sock: socket.socket, api_key: int, version: int, request: dict, correlation_id: int) -> dict:
    payload = (encode_request_header(api_key, version, correlation_id, CLIENT_ID)
               + request_codec(api_key, version).encode(request))
    sock.sendall(_LENGTH.pack(len(payload)) + payload)
    (size,) = _LENGTH.unpack(_read_exactly(sock, 4))
    frame = memoryview(_read_exactly(sock, size))
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


TopicPartition = tuple[str, int]


def alter_replica_log_dirs(address: str, moves: Mapping[TopicPartition, str]) -> dict[TopicPartition, int]:
    """AlterReplicaLogDirs v2 to one broker (Admin.alterReplicaLogDirs): move its replicas of these
    partitions to these log dirs; each partition's error code."""
    by_dir: dict[str, dict[str, list[int]]] = {}
    for (topic, partition), log_dir in moves.items():
        by_dir.setdefault(log_dir, {}).setdefault(topic, []).append(partition)
    request = {"dirs": [{"path": log_dir, "topics": [{"name": t, "partitions": ps} for t, ps in topics.items()]}
                        for log_dir, topics in by_dir.items()]}
    response = send_request(address, ApiKey.ALTER_REPLICA_LOG_DIRS, 2, request)
    return {(topic["topic_name"], p["partition_index"]): p["error_code"]
            for topic in response["results"] for p in topic["partitions"]}


def replica_log_dirs(address: str, partitions: list[TopicPartition]
                     ) -> dict[TopicPartition, tuple[str | None, str | None]]:
    """DescribeLogDirs v4 to one broker, as Admin.describeReplicaLogDirs reads it: each partition's
    (current log dir, future log dir), None where there is none (offline dirs say nothing)."""
    topics: dict[str, list[int]] = {}
    for topic, partition in partitions:
        topics.setdefault(topic, []).append(partition)
    response = send_request(address, ApiKey.DESCRIBE_LOG_DIRS, 4,
                            {"topics": [{"topic": t, "partitions": ps} for t, ps in topics.items()]})
    _checked(response["error_code"], None)
    found: dict[TopicPartition, list[str | None]] = {tp: [None, None] for tp in partitions}
    for result in response["results"]:
        if result["error_code"]:
            continue
        for topic in result["topics"]:
            for p in topic["partitions"]:
                entry = found.get((topic["name"], p["partition_index"]))
                if entry is not None:
                    entry[1 if p["is_future_key"] else 0] = result["log_dir"]
    return {tp: (current, future) for tp, (current, future) in found.items()}

