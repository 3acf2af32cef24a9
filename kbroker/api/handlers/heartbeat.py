"""Heartbeat (12): keeps a member's session alive (GroupCoordinator).

- Versions: 0-4 served and advertised.
- Behaviour:
  - NONE while the group is Stable or completing a rebalance, REBALANCE_IN_PROGRESS while it
    prepares one.
  - UNKNOWN_MEMBER_ID / ILLEGAL_GENERATION / FENCED_INSTANCE_ID (v3+ static members) for stale
    members.
  - NONE while the group's partition is still loading, as Kafka answers.
  - Needs READ on the group, else GROUP_AUTHORIZATION_FAILED (api/auth_helper.py).
- Gaps: none known.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kbroker.api import auth_helper
from kbroker.api.auth_helper import AclOperation, ResourceType
from kbroker.api.request_context import RequestContext
from kbroker.protocol.api_keys import ApiKey

if TYPE_CHECKING:
    from kbroker.protocol.message_types import HeartbeatRequest, HeartbeatResponse

API_KEY = ApiKey.HEARTBEAT
VERSIONS = (0, 4)


async def handle(ctx: RequestContext, request: HeartbeatRequest) -> HeartbeatResponse:
    error = auth_helper.error_for(ctx, AclOperation.READ, ResourceType.GROUP, request["group_id"])
    if error:
        return {"throttle_time_ms": 0, "error_code": error}
    error = ctx.services.group_coordinator.heartbeat(request["group_id"], request["member_id"],
                                                   request["group_instance_id"], request["generation_id"])
    return {"throttle_time_ms": 0, "error_code": error}
