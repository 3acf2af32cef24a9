"""Listeners: `NAME://host:port` endpoints (Kafka's EndPoint) and listener.security.protocol.map.

Must not touch: sockets (it parses addresses, never binds them) or any other kbroker package.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import NamedTuple

from kbroker.config.value_types import ConfigError, split_list

SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")

# ----------------------------------------------------------------------------------------------
# Listeners

_ENDPOINT = re.compile(r"(?P<name>.*)://\[?(?P<host>[0-9a-zA-Z\-%._:]*)\]?:(?P<port>-?[0-9]+)")


class Endpoint(NamedTuple):
    listener_name: str
    host: str
    port: int
    security_protocol: str

    @property
    def binds_all_interfaces(self) -> bool:
        return self.host in ("", "0.0.0.0", "::")

    @property
    def connection_string(self) -> str:
        """NAME://host:port, as registered in ZooKeeper's broker znode."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.listener_name}://{host}:{self.port}"


def parse_security_protocol_map(text: str) -> dict[str, str]:
    mapping: dict[str, str] = {}
    for entry in split_list(text):
        name, sep, protocol = entry.partition(":")
        if not sep or not name.strip():
            raise ConfigError(
                f"Invalid value {text!r} for configuration listener.security.protocol.map: "
                f"entry {entry!r} is not NAME:PROTOCOL"
            )
        if protocol.strip().upper() not in SECURITY_PROTOCOLS:
            raise ConfigError(
                f"Invalid value {text!r} for configuration listener.security.protocol.map: "
                f"{protocol.strip()!r} is not one of {', '.join(SECURITY_PROTOCOLS)}"
            )
        mapping[name.strip().upper()] = protocol.strip().upper()
    return mapping


def parse_endpoints(config_name: str, text: str, protocol_map: Mapping[str, str]) -> list[Endpoint]:
    """NAME://host:port,... to Endpoints; names are upper-cased, as Kafka normalises them."""
    endpoints = []
    for item in split_list(text):
        if not item:
            continue
        match = _ENDPOINT.fullmatch(item)
        if not match:
            raise ConfigError(
                f"Invalid value {text!r} for configuration {config_name}: {item!r} is not NAME://host:port"
            )
        name, port = match["name"].upper(), int(match["port"])
        if not 0 <= port <= 65535:
            raise ConfigError(
                f"Invalid value {text!r} for configuration {config_name}: port {port} is not 0 to 65535"
            )
        if name not in protocol_map:
            raise ConfigError(
                f"Invalid value {text!r} for configuration {config_name}: no security protocol "
                f"for listener {name}; add it to listener.security.protocol.map"
            )
        endpoints.append(Endpoint(name, match["host"], port, protocol_map[name]))
    return endpoints


def require_unique(config_name: str, text: str, values: list, what: str) -> None:
    repeated = sorted({str(v) for v in values if values.count(v) > 1})
    if repeated:
        raise ConfigError(
            f"Invalid value {text!r} for configuration {config_name}: each listener needs "
            f"its own {what}, repeated: {', '.join(repeated)}"
        )
