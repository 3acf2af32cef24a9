"""Client quota enforcement for one answered request, as Kafka's KafkaApis throttles.

Called by KafkaApis only while some quota exists (ClientQuotaManagers.enabled): with none, no
clock is read and nothing is recorded. A request is measured for the principal's user name and
its client id:
- Produce records the request's size against producer_byte_rate; Fetch from a consumer the
  size of the records it answers against consumer_byte_rate. A throttled fetch answers no
  records (its bytes are taken back, Kafka's unrecordQuotaSensor), the consumer fetches them
  again after the throttle time.
- Every request but the brokers' own (LeaderAndIsr, UpdateMetadata, ..., follower fetches),
  the SASL exchange, ApiVersions and acks=0 produces records its handler time (the local time:
  time parked in a purgatory is not work) as a percentage of one second against
  request_percentage.
- CreateTopics, CreatePartitions and DeleteTopics spend controller_mutation_rate tokens per
  partition created or deleted through a ControllerMutationQuota their handlers ask for: strict
  from CreateTopics v6, CreatePartitions v3, DeleteTopics v5 (a topic arriving while the bucket
  is empty answers THROTTLING_QUOTA_EXCEEDED, with the time to wait), permissive before (done,
  then throttled), as Kafka's Strict/PermissiveControllerMutationQuota.
The larger throttle time goes into the response's throttle_time_ms; the network then mutes the
connection for that long once the response is written (KIP-219).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from kbroker.protocol.api_keys import ApiKey

if TYPE_CHECKING:
    from kbroker.api.request_context import RequestContext
    from kbroker.security.client_quota_manager import TokenBucket

# The APIs whose handlers throttle for controller mutations (their throttle_time_ms counts).
CONTROLLER_MUTATION_APIS = frozenset({ApiKey.CREATE_TOPICS, ApiKey.CREATE_PARTITIONS, ApiKey.DELETE_TOPICS})

# Kafka's sendResponseExemptThrottle and the requests no quota applies to.
EXEMPT_FROM_REQUEST_QUOTA = frozenset({
    ApiKey.LEADER_AND_ISR, ApiKey.STOP_REPLICA, ApiKey.UPDATE_METADATA, ApiKey.CONTROLLED_SHUTDOWN,
    ApiKey.WRITE_TXN_MARKERS, ApiKey.ALTER_PARTITION, ApiKey.API_VERSIONS, ApiKey.SASL_HANDSHAKE,
    ApiKey.SASL_AUTHENTICATE})


def throttle_time_ms(ctx: RequestContext, request: Any, response: dict | None, request_bytes: int,
                     local_s: float) -> int:
    """Records the request against the quotas that apply and returns the time its connection
    must wait (0: none); sets the response's throttle_time_ms and empties a throttled fetch."""
    quotas = ctx.services.client_quotas
    user = ctx.principal.name
    client_id = ctx.client_id or ""
    now_ms = time.monotonic() * 1000
    api_key = ctx.header.api_key
    if api_key == ApiKey.FETCH and _replica_id(ctx, request) >= 0:
        return 0  # followers are limited by replication quotas, not client quotas
    exempt = api_key in EXEMPT_FROM_REQUEST_QUOTA or (api_key == ApiKey.PRODUCE and request["acks"] == 0)
    request_ms = 0 if exempt else quotas.request.record_and_get_throttle_time_ms(
        user, client_id, local_s * 100, now_ms)
    bandwidth_ms = 0
    if api_key == ApiKey.PRODUCE:
        bandwidth_ms = quotas.produce.record_and_get_throttle_time_ms(user, client_id, request_bytes, now_ms)
    elif api_key == ApiKey.FETCH and response is not None:
        size = records_bytes(response)
        bandwidth_ms = quotas.fetch.record_and_get_throttle_time_ms(user, client_id, size, now_ms)
        if max(bandwidth_ms, request_ms) > 0:
            quotas.fetch.unrecord(user, client_id, size, now_ms)
            response["responses"] = []  # Kafka's getThrottledResponse: no partitions, no records
            _forget_throttled_fetch(ctx, request, response)
    throttle = max(bandwidth_ms, request_ms)
    if api_key in CONTROLLER_MUTATION_APIS and response is not None:
        throttle = max(throttle, response.get("throttle_time_ms") or 0)
    if throttle and response is not None:
        response["throttle_time_ms"] = throttle
    return throttle


def _forget_throttled_fetch(ctx: RequestContext, request: Any, response: dict) -> None:
    """The fetch session must not count the emptied answer as heard: a full fetch's new session
    goes (Kafka's throttled FullFetchContext answers session id 0), an incremental one's
    partitions are all sent again next time."""
    manager = ctx.services.started_fetch_manager
    if manager is None or not response.get("session_id"):
        return
    full = request["session_epoch"] == 0
    manager.cache.on_throttled(response["session_id"], full)
    if full:
        response["session_id"] = 0


class ControllerMutationQuota:
    """One request's controller mutation quota (Kafka's ControllerMutationQuota): `record` spends
    a topic's partitions and says whether it may go ahead; `throttle_time_ms` is what the
    response carries."""

    __slots__ = ("bucket", "strict", "throttle_time_ms")

    def __init__(self, bucket: TokenBucket | None, strict: bool) -> None:
        self.bucket = bucket
        self.strict = strict
        self.throttle_time_ms = 0

    def record(self, partitions: int) -> bool:
        bucket = self.bucket
        if bucket is None or partitions <= 0:
            return True
        now_ms = time.monotonic() * 1000
        if self.strict:
            wait_ms = bucket.throttle_time_ms(now_ms)
            if wait_ms > 0:  # refused, and told how long to wait
                self.throttle_time_ms = wait_ms
                return False
            bucket.record(partitions, now_ms)
            return True
        bucket.record(partitions, now_ms)
        self.throttle_time_ms = bucket.throttle_time_ms(now_ms)
        return True


def controller_mutation_quota(ctx: RequestContext, strict_since_version: int) -> ControllerMutationQuota:
    """The request's controller mutation quota (nothing to spend from when none applies)."""
    quotas = ctx.services.client_quotas
    bucket = None
    if quotas.enabled:
        bucket = quotas.controller_mutation.bucket(ctx.principal.name, ctx.client_id or "")
    return ControllerMutationQuota(bucket, ctx.api_version >= strict_since_version)


def fetch_max_bytes(ctx: RequestContext, max_bytes: int) -> int:
    """A consumer's fetch brings at most what its quota allows in the quota window (Kafka's
    getMaxValueInQuotaWindow), so that one response cannot be throttled for ever."""
    cap = ctx.services.client_quotas.fetch.max_value_in_window(ctx.principal.name, ctx.client_id or "")
    return max_bytes if cap is None else max(1, min(max_bytes, int(cap)))


def records_bytes(response: dict) -> int:
    """The records' bytes of a Fetch response: one len() per partition, never per record."""
    return sum(len(p["records"]) for t in response["responses"] for p in t["partitions"]
               if p.get("records") is not None)


def _replica_id(ctx: RequestContext, request: Any) -> int:
    if ctx.api_version >= 15:
        return request["replica_state"]["replica_id"]
    return request["replica_id"]
