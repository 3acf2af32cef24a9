"""Client quotas: Kafka's ClientQuotaManager and its DefaultQuotaCallback, for ZooKeeper mode.

Quotas live in the entity configs Kafka 3.9 uses: `/config/users/<user>`,
`/config/users/<user>/clients/<client-id>` and `/config/clients/<client-id>` (names sanitized,
`<default>` for the defaults), keys `producer_byte_rate`, `consumer_byte_rate`,
`request_percentage` and `controller_mutation_rate`. Each quota type has its own manager; for a
request's (user, client id) the manager finds the first entity with a quota of its type in
Kafka's precedence order:

  1. /config/users/<user>/clients/<client-id>    5. /config/users/<default>/clients/<default>
  2. /config/users/<user>/clients/<default>      6. /config/users/<default>
  3. /config/users/<user>                        7. /config/clients/<client-id>
  4. /config/users/<default>/clients/<client-id> 8. /config/clients/<default>

and the level it was found at decides who shares the measured rate (Kafka's metric tags): a user
quota is shared by all of that user's client ids, a client-id quota by all users of that id.

Rates are Kafka's sampled Rate: `quota.window.num` samples of `quota.window.size.seconds` each;
a value is recorded, then the rate over the retained samples is compared with the quota, and the
throttle time is `(rate - quota) / quota * window` (QuotaUtils.throttleTime), at most one window
for request_percentage (ClientRequestQuotaManager). controller_mutation_rate is a TokenBucket
(KIP-599) over `controller.quota.window.num` x `controller.quota.window.size.seconds`. With no quota set anywhere `enabled` is False
and the api layer does no quota work at all.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kbroker.metadata.zk_data import desanitize_entity_name, sanitize_entity_name
from kbroker.metrics.rate import Rate, throttle_time_ms

if TYPE_CHECKING:
    from kbroker.metadata.kafka_zk_client import KafkaZkClient

log = logging.getLogger("kbroker.security")

DEFAULT = "<default>"  # ZooKeeperInternals.DEFAULT_STRING: the default entity's stored name
USERS = "users"
CLIENTS = "clients"
IPS = "ips"  # /config/ips/<ip>: connection_creation_rate, enforced by the network's ConnectionQuotas
CONNECTION_CREATION_RATE = "connection_creation_rate"  # QuotaConfig.IP_CONNECTION_RATE_OVERRIDE_CONFIG (an INT)

PRODUCER_BYTE_RATE = "producer_byte_rate"
CONSUMER_BYTE_RATE = "consumer_byte_rate"
REQUEST_PERCENTAGE = "request_percentage"
CONTROLLER_MUTATION_RATE = "controller_mutation_rate"
# The quota keys and whether Kafka's ConfigDef types them LONG (else DOUBLE).
QUOTA_KEYS: dict[str, bool] = {PRODUCER_BYTE_RATE: True, CONSUMER_BYTE_RATE: True,
                               REQUEST_PERCENTAGE: False, CONTROLLER_MUTATION_RATE: False}

# An entity as stored: (user, client id), each None (not part of it), DEFAULT or a sanitized name.
EntityKey = tuple[str | None, str | None]


def _precedence(user: str, client: str) -> list[tuple[EntityKey, tuple[str, str]]]:
    """The eight entities for a sanitized (user, client id) in Kafka's order, each with the metric
    tags (who shares the rate) a quota found there gives."""
    both = (user, client)
    user_only = (user, "")
    return [((user, client), both), ((user, DEFAULT), both), ((user, None), user_only),
            ((DEFAULT, client), both), ((DEFAULT, DEFAULT), both), ((DEFAULT, None), user_only),
            ((None, client), ("", client)), ((None, DEFAULT), ("", client))]


class TokenBucket:
    """Kafka's TokenBucket (KIP-599, controller mutations): up to quota x (samples - 1) x window
    tokens, refilled at the quota per second, spent by each mutation; below zero means throttled."""

    __slots__ = ("tokens", "last_ms", "quota", "burst")

    def __init__(self, quota: float, burst: float) -> None:
        self.quota = quota
        self.burst = burst
        self.tokens = burst
        self.last_ms: float | None = None

    def _refill(self, now_ms: float) -> None:
        if self.last_ms is not None:
            self.tokens = min(self.burst, self.tokens + self.quota * (now_ms - self.last_ms) / 1000)
        self.last_ms = now_ms

    def record(self, value: float, now_ms: float) -> None:
        self._refill(now_ms)
        self.tokens = min(self.burst, self.tokens - value)

    def measure(self, now_ms: float) -> float:
        self._refill(now_ms)
        return self.tokens

    def throttle_time_ms(self, now_ms: float) -> int:
        """Kafka's ControllerMutationQuotaManager.throttleTimeMs: how long until tokens are back to 0."""
        tokens = self.measure(now_ms)
        return round(-tokens / self.quota * 1000) if tokens < 0 else 0


@dataclass(slots=True)
class QuotaSensor:
    """The rate one set of metric tags shares, and the quota that applies to it (a TokenBucket
    instead of the rate for controller mutations)."""

    rate: Rate
    bound: float
    bucket: TokenBucket | None = None


class ClientQuotaManager:
    """One quota type's quotas by entity and the rates they are measured with."""

    def __init__(self, key: str, num_samples: int, window_s: int, max_throttle_ms: int | None = None) -> None:
        self.key = key
        self.num_samples = num_samples
        self.window_ms = window_s * 1000
        self.max_throttle_ms = max_throttle_ms
        self.quotas: dict[EntityKey, float] = {}
        self._sensors: dict[tuple[str, str], QuotaSensor] = {}
        self._resolved: dict[tuple[str, str], QuotaSensor | None] = {}  # (user, client id) as given

    def set_quota(self, entity: EntityKey, value: float | None) -> None:
        """A quota changed: later requests are measured against it (rates restart)."""
        if value is None:
            self.quotas.pop(entity, None)
        else:
            self.quotas[entity] = value
        self._sensors.clear()
        self._resolved.clear()

    def quota_for(self, user: str, client_id: str) -> tuple[tuple[str, str], float] | None:
        """The metric tags and quota for a sanitized user and client id, or None without one."""
        quotas = self.quotas
        for entity, tags in _precedence(user, client_id):
            bound = quotas.get(entity)
            if bound is not None:
                return tags, bound
        return None

    def sensor(self, user: str, client_id: str) -> QuotaSensor | None:
        """The sensor a principal's user name and a client id record into (cached per pair)."""
        pair = (user, client_id)
        try:
            return self._resolved[pair]
        except KeyError:
            pass
        found = self.quota_for(sanitize_entity_name(user), sanitize_entity_name(client_id)) if self.quotas else None
        sensor = None
        if found is not None:
            tags, bound = found
            sensor = self._sensors.get(tags)
            if sensor is None:
                sensor = self._sensors[tags] = self._new_sensor(bound)
        if len(self._resolved) > 100_000:  # client ids made up per request must not grow these forever
            self._resolved.clear()
            self._sensors.clear()
        self._resolved[pair] = sensor
        return sensor

    def _new_sensor(self, bound: float) -> QuotaSensor:
        return QuotaSensor(Rate(self.num_samples, self.window_ms), bound)

    def record_and_get_throttle_time_ms(self, user: str, client_id: str, value: float, now_ms: float) -> int:
        """Records `value` and returns how long the client must wait for its rate to fall back
        to the quota (0 within it)."""
        sensor = self.sensor(user, client_id)
        if sensor is None:
            return 0
        sensor.rate.record(value, now_ms)
        return self._throttle_time_ms(sensor, now_ms)

    def unrecord(self, user: str, client_id: str, value: float, now_ms: float) -> None:
        """Takes back a recorded value (a throttled fetch sends no records: Kafka's unrecordQuotaSensor)."""
        sensor = self.sensor(user, client_id)
        if sensor is not None:
            sensor.rate.record(-value, now_ms)

    def max_value_in_window(self, user: str, client_id: str) -> float | None:
        """The most one request may bring without certain throttling (Kafka's
        getMaxValueInQuotaWindow: caps a fetch's max_bytes); None without a quota."""
        sensor = self.sensor(user, client_id)
        if sensor is None:
            return None
        return sensor.bound * (self.num_samples - 1) * self.window_ms / 1000

    def _throttle_time_ms(self, sensor: QuotaSensor, now_ms: float) -> int:
        return throttle_time_ms(sensor.rate, sensor.bound, now_ms, self.max_throttle_ms)


class ControllerMutationQuotaManager(ClientQuotaManager):
    """controller_mutation_rate (KIP-599): partitions created or deleted per second, measured by a
    token bucket per sensor; the handlers of CreateTopics, CreatePartitions and DeleteTopics spend
    from it (api/quota_helper.py's ControllerMutationQuota, strict or permissive by version)."""

    def _new_sensor(self, bound: float) -> QuotaSensor:
        burst = bound * (self.num_samples - 1) * self.window_ms / 1000
        return QuotaSensor(Rate(self.num_samples, self.window_ms), bound, TokenBucket(bound, burst))

    def bucket(self, user: str, client_id: str) -> TokenBucket | None:
        sensor = self.sensor(user, client_id)
        return None if sensor is None else sensor.bucket


class ClientQuotaManagers:
    """The four managers (Kafka's QuotaManagers for clients) and the store's entities they follow."""

    def __init__(self, num_samples: int = 11, window_s: int = 1, controller_num_samples: int = 11,
                 controller_window_s: int = 1) -> None:
        self.produce = ClientQuotaManager(PRODUCER_BYTE_RATE, num_samples, window_s)
        self.fetch = ClientQuotaManager(CONSUMER_BYTE_RATE, num_samples, window_s)
        self.request = ClientQuotaManager(REQUEST_PERCENTAGE, num_samples, window_s, max_throttle_ms=window_s * 1000)
        # controller.quota.window.num / controller.quota.window.size.seconds, as Kafka's.
        self.controller_mutation = ControllerMutationQuotaManager(CONTROLLER_MUTATION_RATE, controller_num_samples,
                                                                  controller_window_s)
        self.managers = (self.produce, self.fetch, self.request, self.controller_mutation)
        # Read on every request: False while no quota of any type exists.
        self.enabled = False
        # ip entities' connection_creation_rate by stored name; the network's ConnectionQuotas
        # follows them through `ip_listener` (an address, None for the default; a rate or None).
        self.ip_rates: dict[str, int] = {}
        self._ip_listener: Callable[[str | None, int | None], None] | None = None

    def follow_ip_quotas(self, listener: Callable[[str | None, int | None], None]) -> None:
        """Hand every ip entity's rate known so far, and each later change, to `listener`."""
        self._ip_listener = listener
        for stored, rate in self.ip_rates.items():
            self._tell_ip_listener(stored, rate)

    def update_ip_entity(self, stored_name: str, config: dict[str, str]) -> None:
        text = config.get(CONNECTION_CREATION_RATE)
        rate = None
        if text is not None:
            try:
                rate = int(text)
            except ValueError:
                log.warning("ignoring the %s quota %r of ip %s", CONNECTION_CREATION_RATE, text, stored_name)
        if rate is None:
            self.ip_rates.pop(stored_name, None)
        else:
            self.ip_rates[stored_name] = rate
        self._tell_ip_listener(stored_name, rate)

    def _tell_ip_listener(self, stored_name: str, rate: int | None) -> None:
        if self._ip_listener is None:
            return
        if stored_name == DEFAULT:
            self._ip_listener(None, rate)
            return
        address = ip_entity_address(stored_name)
        if address is None:  # Kafka's IpConfigHandler refuses it too ("Unable to resolve address")
            log.warning("ignoring the connection rate quota of ip %s: unable to resolve the address", stored_name)
            return
        self._ip_listener(address, rate)

    def update_entity(self, entity: EntityKey, config: dict[str, str]) -> None:
        """An entity's stored config (other keys, like SCRAM credentials, are not ours)."""
        for manager in self.managers:
            text = config.get(manager.key)
            value = None
            if text is not None:
                try:
                    value = float(text)
                except ValueError:
                    log.warning("ignoring the %s quota %r of %s", manager.key, text, entity)
            manager.set_quota(entity, value)
        self.enabled = any(manager.quotas for manager in self.managers)

    def load(self, zk_client: KafkaZkClient) -> None:
        """Every quota in the store (at start: quotas written before this broker ran count)."""
        for user in zk_client.get_entity_names(USERS):
            self.refresh(zk_client, USERS, user)
            for client in zk_client.get_entity_names(f"{USERS}/{user}/{CLIENTS}"):
                self.refresh(zk_client, USERS, f"{user}/{CLIENTS}/{client}")
        for client in zk_client.get_entity_names(CLIENTS):
            self.refresh(zk_client, CLIENTS, client)
        for ip in zk_client.get_entity_names(IPS):
            self.refresh(zk_client, IPS, ip)

    def refresh(self, zk_client: KafkaZkClient, entity_type: str, stored_name: str) -> None:
        """Re-reads one entity named by a /config/changes notification (`users/<u>`,
        `users/<u>/clients/<c>`, `clients/<c>`, `ips/<ip>`)."""
        if entity_type == IPS:
            self.update_ip_entity(stored_name, zk_client.get_entity_config(IPS, stored_name))
            return
        entity = entity_key(entity_type, stored_name)
        if entity is None:
            log.warning("ignoring a config change of unknown quota entity %s/%s", entity_type, stored_name)
            return
        self.update_entity(entity, zk_client.get_entity_config(entity_type, stored_name))


def entity_key(entity_type: str, stored_name: str) -> EntityKey | None:
    """The (user, client id) of a stored entity path below /config/<entity_type>, or None."""
    if entity_type == CLIENTS and "/" not in stored_name:
        return None, stored_name
    if entity_type != USERS:
        return None
    parts = stored_name.split("/")
    if len(parts) == 1:
        return parts[0], None
    if len(parts) == 3 and parts[1] == CLIENTS:
        return parts[0], parts[2]
    return None


def ip_entity_address(name: str) -> str | None:
    """The address an ip entity names, spelled as the network counts connections (a stored,
    sanitized name is accepted too): an IP literal as is, a host name resolved to its first
    address (Kafka's InetAddress.getByName); None if it does not resolve."""
    import ipaddress  # here: only ip quotas need it (~6M instructions and 0.2 MiB of a start)

    name = desanitize_entity_name(name)
    try:
        return str(ipaddress.ip_address(name))
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(name, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return None
    return str(infos[0][4][0]) if infos else None
