"""LeaveGroup (13): members leave a group.

- Versions: 0-5 served and advertised.
- Behaviour:
  - v0-2 remove one member by id; the answer's error is the group's or else the member's, as
    Kafka folds it.
  - v3+ remove a batch of members, each by member id or, administratively, by
    group.instance.id alone (KIP-345), with an error per member; v5 adds a reason per member.
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
    from kbroker.protocol.message_types import (
        LeaveGroupRequest,
        LeaveGroupResponse,
        LeaveGroupResponseMemberResponse,
    )

API_KEY = ApiKey.LEAVE_GROUP
VERSIONS = (0, 5)


async def handle(ctx: RequestContext, request: LeaveGroupRequest) -> LeaveGroupResponse:
    error = auth_helper.error_for(ctx, AclOperation.READ, ResourceType.GROUP, request["group_id"])
    if error:
        return {"throttle_time_ms": 0, "error_code": error, "members": []}
    coordinator = ctx.services.group_coordinator
    if ctx.api_version <= 2:
        error, member_errors = coordinator.leave_group(request["group_id"], [(request["member_id"], None, None)])
        first_member_error = next((e for e in member_errors if e != Errors.NONE), Errors.NONE)
        return {"throttle_time_ms": 0, "error_code": error if error != Errors.NONE else first_member_error}
    leaving = [(m["member_id"], m["group_instance_id"], m["reason"]) for m in request["members"]]
    error, member_errors = coordinator.leave_group(request["group_id"], leaving)
    members: list[LeaveGroupResponseMemberResponse] = [
        {"member_id": m["member_id"], "group_instance_id": m["group_instance_id"], "error_code": e}
        for m, e in zip(request["members"], member_errors, strict=False)]
    return {"throttle_time_ms": 0, "error_code": error, "members": members}
