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

Connection creation rates (KIP-612), measured with Kafka's sampled Rate over `quota.window.num`
windows of `quota.window.size.seconds`:
- `max.connection.creation.rate` (broker-wide, every listener but the protected inter-broker one)
  and `listener.name.<name>.max.connection.creation.rate` (defaulting to the broker-wide value, as
  Kafka's listener configs do): an accepted connection over either rate waits, and the listener
  accepts nothing else meanwhile, until the rate is back at its quota (at most one window);
- `connection_creation_rate` quotas of `ip` entities (`/config/ips/<ip>`, `/config/ips/<default>`,
  set by AlterClientQuotas): a connection from an address over its rate is not served and is
  closed once the rate is back at the quota (at most one window), counted in no rate nor count.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterable, Mapping
from typing import Protocol

from kbroker.config.value_types import ConfigError
from kbroker.metrics.rate import Rate, throttle_time_ms

# QuotaConfig.IP_CONNECTION_RATE_DEFAULT and max.connection.creation.rate's default (Int.MaxValue):
# no connection rate quota at all, nothing measured.
UNLIMITED_RATE = 2**31 - 1
# IP rate sensors kept before idle ones are dropped (Kafka expires them after an hour idle).
MAX_IP_SENSORS = 10_000


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
                 inter_broker_listener: str | None = None, max_connection_creation_rate: int = UNLIMITED_RATE,
                 quota_window_num: int = 11, quota_window_size_s: int = 1) -> None:
        self.max_connections = max_connections
        self.max_connections_per_ip = max_connections_per_ip
        self.per_ip_overrides = resolve_overrides(per_ip_overrides or {})
        self.inter_broker_listener = inter_broker_listener
        self.total = 0
        self._per_address: dict[str, int] = {}
        self._listeners: dict[str, tuple[_Listener, int]] = {}  # name -> (its server, its limit)
        self._listener_counts: dict[str, int] = {}
        self._waiters: list[asyncio.Future] = []
        self._window_num = quota_window_num
        self._window_ms = quota_window_size_s * 1000
        self.max_connection_creation_rate = max_connection_creation_rate
        self._broker_rate = self._rate_quota(max_connection_creation_rate)
        self._listener_rates: dict[str, _RateQuota | None] = {}
        self.default_ip_rate = UNLIMITED_RATE
        self.ip_rates: dict[str, int] = {}  # address -> connection_creation_rate of its ip entity
        self._ip_sensors: dict[str, _RateQuota] = {}

    def add_listener(self, name: str, server: _Listener, max_connections: int | None = None,
                     max_connection_creation_rate: int | None = None) -> None:
        limit = self.max_connections if max_connections is None else max_connections
        self._listeners[name] = (server, limit)
        self._listener_counts.setdefault(name, 0)
        rate = self.max_connection_creation_rate if max_connection_creation_rate is None else max_connection_creation_rate
        self._listener_rates[name] = self._rate_quota(rate)

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

    # -- connection creation rates (KIP-612) ----------------------------------------------------
    def _rate_quota(self, bound: int) -> _RateQuota | None:
        return None if bound >= UNLIMITED_RATE else _RateQuota(Rate(self._window_num, self._window_ms), bound)

    def record_connection(self, listener: str, now_ms: float) -> int:
        """Count an accepted connection in the broker-wide rate (not for the protected listener)
        and its listener's: the milliseconds the listener must wait before it goes on (Kafka's
        recordConnectionAndGetThrottleTimeMs), 0 within both quotas."""
        throttle = 0
        if not self._protected(listener):
            throttle = self._record(self._broker_rate, now_ms)
        return max(throttle, self._record(self._listener_rates.get(listener), now_ms))

    def _record(self, quota: _RateQuota | None, now_ms: float) -> int:
        if quota is None:
            return 0
        quota.rate.record(1.0, now_ms)
        return throttle_time_ms(quota.rate, quota.bound, now_ms, self._window_ms)

    def connection_rate_for_ip(self, address: str) -> int:
        return self.ip_rates.get(address, self.default_ip_rate)

    def record_ip_connection(self, listener: str, address: str, now_ms: float) -> int:
        """Count a connection from `address` in its IP rate; over its quota, the connection is
        taken back out of every rate and the milliseconds after which it is to be closed are
        returned (Kafka's recordIpConnectionMaybeThrottle); 0: serve it."""
        bound = self.connection_rate_for_ip(address)
        if bound >= UNLIMITED_RATE:
            return 0
        sensor = self._ip_sensors.get(address)
        if sensor is None:
            if len(self._ip_sensors) >= MAX_IP_SENSORS:
                self._drop_idle_ip_sensors(now_ms)
            sensor = self._ip_sensors[address] = _RateQuota(Rate(self._window_num, self._window_ms), bound)
        sensor.bound = bound
        throttle = self._record(sensor, now_ms)
        if throttle:
            sensor.rate.record(-1.0, now_ms)
            for quota in (None if self._protected(listener) else self._broker_rate, self._listener_rates.get(listener)):
                if quota is not None:
                    quota.rate.record(-1.0, now_ms)
        return throttle

    def _drop_idle_ip_sensors(self, now_ms: float) -> None:
        for address, sensor in list(self._ip_sensors.items()):
            if sensor.rate.measure(now_ms) <= 0:
                del self._ip_sensors[address]

    def update_ip_connection_rate(self, address: str | None, rate: int | None) -> None:
        """An ip entity's connection_creation_rate changed (None address: the default entity;
        None rate: removed). Rates measured so far are kept, as Kafka keeps its sensors."""
        if address is None:
            self.default_ip_rate = UNLIMITED_RATE if rate is None else rate
        elif rate is None:
            self.ip_rates.pop(address, None)
        else:
            self.ip_rates[address] = rate

    def _protected(self, listener: str) -> bool:
        return listener == self.inter_broker_listener and len(self._listeners) > 1

    def _wake_waiters(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)


class _RateQuota:
    """A measured connection rate and its quota (connections per second)."""

    __slots__ = ("rate", "bound")

    def __init__(self, rate: Rate, bound: int) -> None:
        self.rate = rate
        self.bound = bound
