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
    """NAME:PROTOCOL,... (names upper-cased, as Kafka's ListenerName.normalised does)."""
    mapping: dict[str, str] = {}
    for entry in split_list(text):
        if not entry:
            continue
        name, sep, protocol = entry.partition(":")
        if not sep or not name.strip():
            raise ConfigError(
                "Error parsing configuration property 'listener.security.protocol.map': "
                f"Invalid map entry {entry!r}: expected NAME:PROTOCOL"
            )
        if protocol.strip().upper() not in SECURITY_PROTOCOLS:
            raise ConfigError(
                f"Invalid security protocol `{protocol.strip()}` defined in listener.security.protocol.map"
            )
        mapping[name.strip().upper()] = protocol.strip().upper()
    return mapping


def parse_endpoints(text: str, protocol_map: Mapping[str, str]) -> list[Endpoint]:
    """NAME://host:port,... to Endpoints; names are upper-cased, as Kafka normalises them.
    The messages are those of Kafka's CoreUtils.listenerListToEndPoints."""
    endpoints = []
    for item in split_list(text):
        if not item:
            continue
        match = _ENDPOINT.fullmatch(item)
        if not match or not 0 <= int(match["port"]) <= 65535:
            raise ConfigError(f"Error creating broker listeners from {text!r}: "
                              f"Unable to parse {item} to a broker endpoint")
        name, port = match["name"].upper(), int(match["port"])
        if name not in protocol_map:
            raise ConfigError(f"Error creating broker listeners from {text!r}: "
                              f"No security protocol defined for listener {name}")
        endpoints.append(Endpoint(name, match["host"], port, protocol_map[name]))
    return endpoints


def check_distinct(text: str, endpoints: list[Endpoint], *, ports: bool) -> None:
    """Kafka's checks of a listener list: distinct names and (for `listeners`, not for the
    advertised ones) distinct ports, port 0 excepted, unless exactly two listeners share a port
    with one IPv4 and one IPv6 address."""
    names = [e.listener_name for e in endpoints]
    if len(set(names)) != len(names):
        raise ConfigError(f"Each listener must have a different name, listeners: {text}")
    if not ports:
        return
    by_port: dict[int, list[Endpoint]] = {}
    for endpoint in endpoints:
        if endpoint.port != 0:
            by_port.setdefault(endpoint.port, []).append(endpoint)
    for port, sharing in by_port.items():
        if len(sharing) == 1:
            continue
        families = sorted(_ip_version(e.host) for e in sharing)
        if len(sharing) == 2 and families == [4, 6]:
            continue
        if len(sharing) == 2 and all(families):
            raise ConfigError("If you have two listeners on the same port then one needs to be IPv4 and the "
                              f"other IPv6, listeners: {text}, port: {port}")
        raise ConfigError(f"Each listener must have a different port, listeners: {text}")


def _ip_version(host: str) -> int:
    """4 or 6 for an IP address literal, 0 for a host name or the wildcard."""
    import ipaddress  # only when two listeners share a port: start-up imports stay light

    try:
        return ipaddress.ip_address(host).version
    except ValueError:
        return 0
