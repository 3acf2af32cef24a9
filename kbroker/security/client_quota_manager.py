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
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kbroker.metadata.zk_data import sanitize_entity_name

if TYPE_CHECKING:
    from kbroker.metadata.kafka_zk_client import KafkaZkClient

log = logging.getLogger("kbroker.security")

DEFAULT = "<default>"  # ZooKeeperInternals.DEFAULT_STRING: the default entity's stored name
USERS = "users"
CLIENTS = "clients"

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


class Rate:
    """Kafka's Rate over a SampledStat: the sum of the retained samples per second of the window."""

    __slots__ = ("samples", "window_ms", "num_samples")

    def __init__(self, num_samples: int, window_ms: int) -> None:
        self.samples: deque[list[float]] = deque()  # [start ms, value], oldest first
        self.window_ms = window_ms
        self.num_samples = num_samples

    def record(self, value: float, now_ms: float) -> None:
        samples = self.samples
        if not samples or now_ms - samples[-1][0] >= self.window_ms:
            samples.append([now_ms, 0.0])
            if len(samples) > self.num_samples:
                samples.popleft()
        samples[-1][1] += value

    def _purge(self, now_ms: float) -> None:
        expire_ms = self.num_samples * self.window_ms
        samples = self.samples
        while samples and now_ms - samples[0][0] >= expire_ms:
            samples.popleft()

    def window_size_ms(self, now_ms: float) -> float:
        """Kafka's Rate.windowSize: time since the oldest sample, counted as at least N-1 whole
        windows so that a rate just started is not overestimated."""
        self._purge(now_ms)
        elapsed = now_ms - self.samples[0][0] if self.samples else 0.0
        full = int(elapsed // self.window_ms)
        if full < self.num_samples - 1:
            elapsed += (self.num_samples - 1 - full) * self.window_ms
        return max(elapsed, 1.0)

    def measure(self, now_ms: float) -> float:
        window = self.window_size_ms(now_ms)
        return sum(s[1] for s in self.samples) * 1000.0 / window


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
        rate = sensor.rate
        value = rate.measure(now_ms)
        if value <= sensor.bound:
            return 0
        throttle = round((value - sensor.bound) / sensor.bound * rate.window_size_ms(now_ms))
        if self.max_throttle_ms is not None:
            throttle = min(throttle, self.max_throttle_ms)
        return max(throttle, 0)


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

    def refresh(self, zk_client: KafkaZkClient, entity_type: str, stored_name: str) -> None:
        """Re-reads one entity named by a /config/changes notification (`users/<u>`,
        `users/<u>/clients/<c>`, `clients/<c>`)."""
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
