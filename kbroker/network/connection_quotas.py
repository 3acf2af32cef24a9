"""ConnectionQuotas: max.connections, listener.name.X.max.connections, max.connections.per.ip
and max.connections.per.ip.overrides, counted over every listener of the broker, as Kafka's
ConnectionQuotas (core/.../network/SocketServer.scala) counts them:

- a listener whose own limit, or the broker-wide limit, is reached stops accepting: new
  connections wait in the listen backlog until one closes (Kafka's acceptor blocks in
  waitForConnectionSlot; it does not refuse them);
- the inter-broker listener, when there are several listeners, is exempt from the broker-wide
  limit (only its own listener limit applies); a connection it accepts beyond the broker-wide
  limit closes the least recently active connection of another listener;
- a connection from an address that already has its maximum (the override for that address,
  else max.connections.per.ip) is accepted and closed at once, with one info line.

A listener's limit is `listener.name.<name>.max.connections`, else max.connections. Override
hosts are resolved once, at start, to every address they name.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterable, Mapping
from typing import Protocol

from kbroker.config.value_types import ConfigError


class _Connection(Protocol):
    last_active: float

    @property
    def closing(self) -> bool: ...

    def close(self) -> None: ...


class _Listener(Protocol):
    connections: set


def address_key(host: str) -> str:
    """One spelling per address. The kernel and getaddrinfo already give canonical text; an
    IPv4-mapped IPv6 peer (a dual-stack socket's) counts as its IPv4 address."""
    host = host.split("%", 1)[0]
    if host.startswith("::ffff:") and "." in host:
        return host[len("::ffff:"):]
    return host


def resolve_overrides(overrides: Mapping[str, int]) -> dict[str, int]:
    """host -> limit as address -> limit; a host that does not resolve stops the start, as in Kafka."""
    resolved: dict[str, int] = {}
    for host, limit in overrides.items():
        try:
            infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise ConfigError(
                f"Invalid value {host!r} in configuration max.connections.per.ip.overrides: "
                f"cannot resolve it ({exc})"
            ) from None
        for info in infos:
            resolved[address_key(str(info[4][0]))] = limit
    return resolved


class ConnectionQuotas:
    """Connection counts per address, per listener and in total; shared by all SocketServers."""

    def __init__(self, *, max_connections: int, max_connections_per_ip: int,
                 per_ip_overrides: Mapping[str, int] | None = None,
                 inter_broker_listener: str | None = None) -> None:
        self.max_connections = max_connections
        self.max_connections_per_ip = max_connections_per_ip
        self.per_ip_overrides = resolve_overrides(per_ip_overrides or {})
        self.inter_broker_listener = inter_broker_listener
        self.total = 0
        self._per_address: dict[str, int] = {}
        self._listeners: dict[str, tuple[_Listener, int]] = {}  # name -> (its server, its limit)
        self._listener_counts: dict[str, int] = {}
        self._waiters: list[asyncio.Future] = []

    def add_listener(self, name: str, server: _Listener, max_connections: int | None = None) -> None:
        limit = self.max_connections if max_connections is None else max_connections
        self._listeners[name] = (server, limit)
        self._listener_counts.setdefault(name, 0)

    def remove_listener(self, name: str) -> None:
        self._listeners.pop(name, None)
        self._wake_waiters()

    # -- accepting ------------------------------------------------------------------------
    async def wait_for_connection_slot(self, listener: str) -> None:
        """Return once the listener may accept one more connection."""
        while not self.connection_slot_available(listener):
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            await waiter

    def connection_slot_available(self, listener: str) -> bool:
        limit = self._listeners[listener][1] if listener in self._listeners else self.max_connections
        if self._listener_counts.get(listener, 0) >= limit:
            return False
        return self._protected(listener) or self.total < self.max_connections

    def limit_for(self, address: str) -> int:
        return self.per_ip_overrides.get(address, self.max_connections_per_ip)

    def inc(self, listener: str, address: str) -> int | None:
        """Count a new connection; returns the per-address limit instead (counting nothing) when
        that address already has that many."""
        count = self._per_address.get(address, 0)
        limit = self.limit_for(address)
        if count >= limit:
            return limit
        self._per_address[address] = count + 1
        self._listener_counts[listener] = self._listener_counts.get(listener, 0) + 1
        self.total += 1
        return None

    def dec(self, listener: str, address: str) -> None:
        count = self._per_address.get(address, 0)
        if count <= 1:
            self._per_address.pop(address, None)
        else:
            self._per_address[address] = count - 1
        self._listener_counts[listener] = max(0, self._listener_counts.get(listener, 0) - 1)
        self.total = max(0, self.total - 1)
        self._wake_waiters()

    def count(self, address: str) -> int:
        return self._per_address.get(address, 0)

    def close_excess_connection(self, listener: str) -> None:
        """After the protected listener accepted beyond max.connections: close the least recently
        active connection of another listener (Kafka closes one per excess connection)."""
        if not self._protected(listener) or self.total <= self.max_connections:
            return
        others: Iterable[_Connection] = (
            conn for name, (server, _) in self._listeners.items() if name != listener
            for conn in server.connections if not conn.closing
        )
        victim = min(others, key=lambda conn: conn.last_active, default=None)
        if victim is not None:
            victim.close()

    def _protected(self, listener: str) -> bool:
        return listener == self.inter_broker_listener and len(self._listeners) > 1

    def _wake_waiters(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
