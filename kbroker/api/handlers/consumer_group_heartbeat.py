"""ConsumerGroupHeartbeat (68): a KIP-848 consumer's join, heartbeat and leave (GroupCoordinator).

- Versions: 0-1 served; advertised only while group.coordinator.rebalance.protocols lists
  `consumer` (api_versions.py).
- Behaviour:
  - Epoch 0 joins (v0: an empty member id gets one generated; v1: the client's own id, which
    must not be empty), -1 leaves, -2 leaves for a while (static members, InstanceId), a
    positive epoch heartbeats; the answer carries the member epoch, the heartbeat interval
    (group.consumer.heartbeat.interval.ms) and the assignment when it changed.
  - Subscriptions by topic names or (v1) SubscribedTopicRegex, read with Python's `re`
    (INVALID_REGULAR_EXPRESSION where it refuses the pattern); server assignors `uniform`
    and `range` (group.consumer.assignors; UNSUPPORTED_ASSIGNOR for others).
  - Errors as Kafka: INVALID_REQUEST (with Kafka's message) for malformed heartbeats,
    UNKNOWN_MEMBER_ID, FENCED_MEMBER_EPOCH, UNRELEASED_INSTANCE_ID, FENCED_INSTANCE_ID,
    GROUP_MAX_SIZE_REACHED, GROUP_ID_NOT_FOUND (a classic group with members), UNKNOWN_MEMBER_ID
    for an unknown group with a non-zero epoch (clients rejoin), NOT_COORDINATOR /
    COORDINATOR_LOAD_IN_PROGRESS.
  - UNSUPPORTED_VERSION when the broker does not serve the consumer protocol.
  - Needs READ on the group, else GROUP_AUTHORIZATION_FAILED (api/auth_helper.py).
  - The group's changes are written to `__consumer_offsets` with Kafka's record types before
    the answer (kbroker/group/consumer_group_records.py); a new coordinator reloads them.
- Gaps: no rack-aware assignment; no classic members in consumer groups (KIP-848's online
  migration); a failed write is not rolled back in memory.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kbroker.api import auth_helper
from kbroker.api.auth_helper import AclOperation, ResourceType
from kbroker.api.handlers.join_group import client_host
from kbroker.api.request_context import RequestContext
from kbroker.protocol.api_keys import ApiKey
from kbroker.protocol.errors import Errors

if TYPE_CHECKING:
    from kbroker.protocol.message_types import (
        ConsumerGroupHeartbeatRequest,
        ConsumerGroupHeartbeatResponse,
        ConsumerGroupHeartbeatResponseTopicPartitions,
    )

API_KEY = ApiKey.CONSUMER_GROUP_HEARTBEAT
VERSIONS = (0, 1)


def consumer_protocol_enabled(ctx: RequestContext) -> bool:
    return "consumer" in ctx.services.config.get("group.coordinator.rebalance.protocols")


async def handle(ctx: RequestContext, request: ConsumerGroupHeartbeatRequest) -> ConsumerGroupHeartbeatResponse:
    # Imported here: the group coordinator loads with the first group request.
    from kbroker.group.consumer_group_coordinator import HeartbeatParams

    if not consumer_protocol_enabled(ctx):
        return {"throttle_time_ms": 0, "error_code": Errors.UNSUPPORTED_VERSION, "member_epoch": 0,
                "heartbeat_interval_ms": 0}
    error = auth_helper.error_for(ctx, AclOperation.READ, ResourceType.GROUP, request["group_id"])
    if error:
        return {"throttle_time_ms": 0, "error_code": error, "member_epoch": 0, "heartbeat_interval_ms": 0}
    owned = request["topic_partitions"]
    params = HeartbeatParams(
        request["group_id"], request["member_id"], request["member_epoch"], request["instance_id"],
        request["rack_id"], request["rebalance_timeout_ms"], request["subscribed_topic_names"],
        request.get("subscribed_topic_regex"), request["server_assignor"],
        None if owned is None else {tp["topic_id"]: set(tp["partitions"]) for tp in owned if tp["partitions"]},
        ctx.client_id or "", client_host(ctx), ctx.api_version)
    result = await ctx.services.group_coordinator.consumer_group_heartbeat(params)
    response: ConsumerGroupHeartbeatResponse = {
        "throttle_time_ms": 0, "error_code": result.error, "error_message": result.message,
        "member_id": result.member_id, "member_epoch": result.member_epoch,
        "heartbeat_interval_ms": result.heartbeat_interval_ms, "assignment": None}
    if result.assignment is not None:
        partitions: list[ConsumerGroupHeartbeatResponseTopicPartitions] = [
            {"topic_id": topic_id, "partitions": sorted(parts)} for topic_id, parts in result.assignment.items()]
        response["assignment"] = {"topic_partitions": partitions}
    return response
