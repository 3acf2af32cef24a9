"""DescribeGroups (15): groups' state and members, as Kafka's GroupCoordinator summarises them.

- Versions: 0-6 served and advertised.
- Behaviour:
  - State and protocol type and, for Stable groups only, the protocol and each member's
    metadata and assignment (members of other states are listed without them).
  - A group that does not exist is reported Dead with no members; v6 adds GROUP_ID_NOT_FOUND
    and a message for it (KIP-1043). A KIP-848 consumer group is answered the same way, with
    "Group X is not a classic group." (ConsumerGroupDescribe describes it).
  - A group the principal may not DESCRIBE gets GROUP_AUTHORIZATION_FAILED (api/auth_helper.py).
  - v3+ may ask for the authorized operations (the principal's; everything without an
    authorizer); v4+ show members' group.instance.id.
- Gaps: none known.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kbroker.api import auth_helper
from kbroker.api.auth_helper import OMITTED, AclOperation, ResourceType
from kbroker.api.request_context import RequestContext
from kbroker.protocol.api_keys import ApiKey
from kbroker.protocol.errors import Errors

if TYPE_CHECKING:
    from kbroker.group.group_coordinator import GroupSummary
    from kbroker.protocol.message_types import (
        DescribeGroupsRequest,
        DescribeGroupsResponse,
        DescribeGroupsResponseDescribedGroup,
    )

API_KEY = ApiKey.DESCRIBE_GROUPS
VERSIONS = (0, 6)

DEAD = "Dead"


async def handle(ctx: RequestContext, request: DescribeGroupsRequest) -> DescribeGroupsResponse:
    coordinator = ctx.services.group_coordinator
    include_operations = request["include_authorized_operations"]
    groups: list[DescribeGroupsResponseDescribedGroup] = []
    for group_id in request["groups"]:
        authorized = auth_helper.authorize(ctx, AclOperation.DESCRIBE, ResourceType.GROUP, group_id)
        error, summary = coordinator.describe_group(group_id) if authorized else (
            Errors.GROUP_AUTHORIZATION_FAILED, None)
        entry: DescribeGroupsResponseDescribedGroup = {
            "error_code": error, "error_message": None, "group_id": group_id, "group_state": "",
            "protocol_type": "", "protocol_data": "", "members": [], "authorized_operations": OMITTED}
        if error == Errors.NONE and summary is None:  # no such group
            entry["group_state"] = DEAD
            if ctx.api_version >= 6:
                entry["error_code"] = Errors.GROUP_ID_NOT_FOUND
                entry["error_message"] = (f"Group {group_id} is not a classic group."
                                          if coordinator.is_consumer_group(group_id) else f"Group {group_id} not found.")
        elif error == Errors.NONE and summary is not None:
            _describe(entry, summary)
            if include_operations:
                entry["authorized_operations"] = auth_helper.authorized_operations(ctx, ResourceType.GROUP,
                                                                                   group_id)
        groups.append(entry)
    return {"throttle_time_ms": 0, "groups": groups}


def _describe(entry: DescribeGroupsResponseDescribedGroup, summary: GroupSummary) -> None:
    entry["group_state"] = summary.state
    entry["protocol_type"] = summary.protocol_type
    entry["protocol_data"] = summary.protocol
    entry["members"] = [{"member_id": m.member_id, "group_instance_id": m.group_instance_id,
                         "client_id": m.client_id, "client_host": m.client_host,
                         "member_metadata": m.metadata, "member_assignment": m.assignment}
                        for m in summary.members]
