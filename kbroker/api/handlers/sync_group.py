"""SyncGroup (14): the leader hands out the assignment; every member gets its own.

- Versions: 0-5 served and advertised.
- Behaviour:
  - The leader sends every member's assignment, the others wait for theirs (GroupCoordinator).
  - From v5 the client names the protocol type and name and both must be present and match the
    group's (INCONSISTENT_GROUP_PROTOCOL otherwise), and the answer carries them (KIP-559).
  - While the group's partition is still loading the answer is REBALANCE_IN_PROGRESS, so the
    member rejoins.
  - Needs READ on the group, else GROUP_AUTHORIZATION_FAILED (api/auth_helper.py).
- Gaps: none known.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kbroker.api import auth_helper
from kbroker.api.auth_helper import AclOperation, ResourceType
from kbroker.api.request_context import RequestContext
from kbroker.protocol.api_keys import ApiKey
from kbroker.protocol.errors import Errors

if TYPE_CHECKING:
    from kbroker.protocol.message_types import SyncGroupRequest, SyncGroupResponse

API_KEY = ApiKey.SYNC_GROUP
VERSIONS = (0, 5)


async def handle(ctx: RequestContext, request: SyncGroupRequest) -> SyncGroupResponse:
    protocol_type, protocol_name = request["protocol_type"], request["protocol_name"]
    error = auth_helper.error_for(ctx, AclOperation.READ, ResourceType.GROUP, request["group_id"])
    if error:
        return {"throttle_time_ms": 0, "error_code": error, "assignment": b""}
    if ctx.api_version >= 5 and (protocol_type is None or protocol_name is None):
        return {"throttle_time_ms": 0, "error_code": Errors.INCONSISTENT_GROUP_PROTOCOL, "assignment": b""}
    assignments = {a["member_id"]: bytes(a["assignment"]) for a in request["assignments"]}
    result = await ctx.services.group_coordinator.sync_group(
        request["group_id"], request["generation_id"], request["member_id"], protocol_type, protocol_name,
        request["group_instance_id"], assignments)
    return {"throttle_time_ms": 0, "error_code": result.error, "protocol_type": result.protocol_type,
            "protocol_name": result.protocol_name, "assignment": result.assignment}
