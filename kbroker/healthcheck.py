"""`python -m kbroker.healthcheck [host:port [--tls]]`: exit 0 if a broker answers ApiVersions there.

Used by the Dockerfile's HEALTHCHECK; a socket and one ApiVersions v0 request, so it tests what
a client would see. Without an address it asks the first listener of the KBROKER_LISTENERS
setting (a wildcard host read as 127.0.0.1), so the check follows the port the container is
configured with; 127.0.0.1:9092 when that is unset. A listener whose security protocol
(KBROKER_LISTENER_SECURITY_PROTOCOL_MAP, else its name) is SSL or SASL_SSL, or `--tls`, is asked
over TLS without checking the certificate: the probe asks whether the broker serves, not who it
is, and ApiVersions needs no SASL login. (A listener with ssl.client.auth=required refuses a
probe without a certificate: point the check at another listener.) It must not import the broker.
"""

from __future__ import annotations

import os
import socket
import ssl
import struct
import sys

API_VERSIONS_V0 = struct.pack(">ihhih", 10 + 0, 18, 0, 1, -1)  # size, key, version, correlation id, null client id
TLS_PROTOCOLS = frozenset({"SSL", "SASL_SSL"})


def broker_answers(host: str, port: int, timeout: float = 3.0, tls: bool = False) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            sock = _unverified_tls().wrap_socket(raw, server_hostname=host) if tls else raw
            sock.sendall(API_VERSIONS_V0)
            head = _read(sock, 10)
            if len(head) < 10:
                return False
            size, correlation_id, error_code = struct.unpack(">iih", head)
            return correlation_id == 1 and error_code == 0 and size > 6
    except OSError:  # ssl.SSLError included
        return False


def _unverified_tls() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _read(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:  # a TLS record may hand the first bytes over alone
        chunk = sock.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


DEFAULT_ADDRESS = "127.0.0.1:9092"
_WILDCARD_HOSTS = {"", "0.0.0.0", "::", "[::]"}


def configured_address(listeners: str | None) -> str:
    """host:port of the first listener in a `listeners` value (`NAME://host:port,...`)."""
    if not listeners:
        return DEFAULT_ADDRESS
    first = listeners.split(",")[0].strip()
    host, _, port = first.partition("://")[2].rpartition(":")
    return f"{'127.0.0.1' if host in _WILDCARD_HOSTS else host.strip('[]')}:{port}"


def configured_protocol(listeners: str | None, protocol_map: str | None) -> str:
    """The security protocol of the first listener: its name's entry in the map, else its name."""
    if not listeners:
        return "PLAINTEXT"
    name = listeners.split(",")[0].strip().partition("://")[0].upper()
    entries = dict(entry.strip().upper().partition(":")[::2] for entry in (protocol_map or "").split(",") if entry.strip())
    return entries.get(name, name)


def main(argv: list[str]) -> int:
    if argv:
        address, tls = argv[0], "--tls" in argv[1:]
    else:
        listeners = os.environ.get("KBROKER_LISTENERS")
        address = configured_address(listeners)
        tls = configured_protocol(listeners, os.environ.get("KBROKER_LISTENER_SECURITY_PROTOCOL_MAP")) in TLS_PROTOCOLS
    host, _, port = address.rpartition(":")
    return 0 if broker_answers(host or "127.0.0.1", int(port), tls=tls) else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
