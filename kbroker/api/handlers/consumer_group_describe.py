"""ConsumerGroupDescribe (69): KIP-848 consumer groups' epochs, members and assignments.

- Versions: 0-1 served (v1 adds each member's type, always 1: consumer); advertised only
  while group.coordinator.rebalance.protocols lists `consumer` (api_versions.py).
- Behaviour:
  - Per group: state (Empty, Assigning, Reconciling, Stable), group and assignment epochs, the
    assignor in use, and each member's ids, epoch, client, subscription, current and target
    assignment (topics by id and name).
  - GROUP_ID_NOT_FOUND for unknown groups and classic groups ("Group X is not a consumer
    group."), INVALID_GROUP_ID for an empty id, NOT_COORDINATOR / COORDINATOR_LOAD_IN_PROGRESS.
  - Needs DESCRIBE on each group (GROUP_AUTHORIZATION_FAILED); the authorized operations when
    asked for (api/auth_helper.py).
- Gaps: none known beyond the heartbeat's (no rack-aware assignment, no classic members).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING

from kbroker.api import auth_helper
from kbroker.api.auth_helper import OMITTED, AclOperation, ResourceType
from kbroker.api.handlers.consumer_group_heartbeat import consumer_protocol_enabled
from kbroker.api.request_context import RequestContext
from kbroker.protocol.api_keys import ApiKey
from kbroker.protocol.errors import Errors

if TYPE_CHECKING:
    from kbroker.group.consumer_group import ConsumerGroup
    from kbroker.protocol.message_types import (
        ConsumerGroupDescribeRequest,
        ConsumerGroupDescribeResponse,
        ConsumerGroupDescribeResponseAssignment,
        ConsumerGroupDescribeResponseDescribedGroup,
        ConsumerGroupDescribeResponseMember,
        ConsumerGroupDescribeResponseTopicPartitions,
    )

API_KEY = ApiKey.CONSUMER_GROUP_DESCRIBE
VERSIONS = (0, 1)
CONSUMER_MEMBER_TYPE = 1


async def handle(ctx: RequestContext, request: ConsumerGroupDescribeRequest) -> ConsumerGroupDescribeResponse:
    groups: list[ConsumerGroupDescribeResponseDescribedGroup] = []
    for group_id in request["group_ids"]:
        entry: ConsumerGroupDescribeResponseDescribedGroup = {
            "error_code": Errors.NONE, "error_message": None, "group_id": group_id, "group_state": "",
            "group_epoch": 0, "assignment_epoch": 0, "assignor_name": "", "members": [],
            "authorized_operations": OMITTED}
        groups.append(entry)
        if not consumer_protocol_enabled(ctx):
            entry["error_code"] = Errors.UNSUPPORTED_VERSION
            continue
        if not auth_helper.authorize(ctx, AclOperation.DESCRIBE, ResourceType.GROUP, group_id):
            entry["error_code"] = Errors.GROUP_AUTHORIZATION_FAILED
            continue
        error, message, group = ctx.services.group_coordinator.consumer_group_describe(group_id)
        entry["error_code"], entry["error_message"] = error, message
        if group is None:
            continue
        _describe(ctx, entry, group)
        if request["include_authorized_operations"]:
            entry["authorized_operations"] = auth_helper.authorized_operations(ctx, ResourceType.GROUP, group_id)
    return {"throttle_time_ms": 0, "groups": groups}


def _assignment(ctx: RequestContext, assignment: Mapping[uuid.UUID, set[int]]) -> ConsumerGroupDescribeResponseAssignment:
    cache = ctx.services.metadata_cache
    topics: list[ConsumerGroupDescribeResponseTopicPartitions] = []
    for topic_id, parts in assignment.items():
        topic = cache.topic_by_id(topic_id)
        if topic is not None and parts:
            topics.append({"topic_id": topic_id, "topic_name": topic.name, "partitions": sorted(parts)})
    return {"topic_partitions": sorted(topics, key=lambda t: t.get("topic_name", ""))}


def _describe(ctx: RequestContext, entry: ConsumerGroupDescribeResponseDescribedGroup, group: ConsumerGroup) -> None:
    entry["group_state"] = group.state().value
    entry["group_epoch"] = group.group_epoch
    entry["assignment_epoch"] = group.assignment_epoch
    entry["assignor_name"] = group.assignor_name
    members: list[ConsumerGroupDescribeResponseMember] = []
    for m in group.members.values():
        members.append({
            "member_id": m.member_id, "instance_id": m.instance_id, "rack_id": m.rack_id,
            "member_epoch": m.member_epoch, "client_id": m.client_id, "client_host": m.client_host,
            "subscribed_topic_names": list(m.subscribed_topic_names),
            "subscribed_topic_regex": m.subscribed_topic_regex,
            "assignment": _assignment(ctx, m.assigned),
            "target_assignment": _assignment(ctx, group.target_assignment.get(m.member_id, {})),
            "member_type": CONSUMER_MEMBER_TYPE})
    entry["members"] = members
