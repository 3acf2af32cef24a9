"""`python -m kbroker.healthcheck [host:port]`: exit 0 if a broker answers ApiVersions there.

Used by the Dockerfile's HEALTHCHECK; a plain socket and one ApiVersions v0 request, so it
tests what a client would see. Without an address it asks the first listener of the
KBROKER_LISTENERS setting (a wildcard host read as 127.0.0.1), so the check follows the port
the container is configured with; 127.0.0.1:9092 when that is unset. It must not import the
broker.
"""

from __future__ import annotations

import os
import socket
import struct
import sys

API_VERSIONS_V0 = struct.pack(">ihhih", 10 + 0, 18, 0, 1, -1)  # size, key, version, correlation id, null client id


def broker_answers(host: str, port: int, timeout: float = 3.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(API_VERSIONS_V0)
            head = sock.recv(10)
            if len(head) < 10:
                return False
            size, correlation_id, error_code = struct.unpack(">iih", head)
            return correlation_id == 1 and error_code == 0 and size > 6
    except OSError:
        return False


DEFAULT_ADDRESS = "127.0.0.1:9092"
_WILDCARD_HOSTS = {"", "0.0.0.0", "::", "[::]"}


def configured_address(listeners: str | None) -> str:
    """host:port of the first listener in a `listeners` value (`NAME://host:port,...`)."""
    if not listeners:
        return DEFAULT_ADDRESS
    first = listeners.split(",")[0].strip()
    host, _, port = first.partition("://")[2].rpartition(":")
    return f"{'127.0.0.1' if host in _WILDCARD_HOSTS else host.strip('[]')}:{port}"


def main(argv: list[str]) -> int:
    address = argv[0] if argv else configured_address(os.environ.get("KBROKER_LISTENERS"))
    host, _, port = address.rpartition(":")
    return 0 if broker_answers(host or "127.0.0.1", int(port)) else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
