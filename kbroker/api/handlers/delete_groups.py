"""DeleteGroups (42): deletes Empty groups with their committed offsets.

- Versions: 0-2 served and advertised.
- Behaviour:
  - The offsets are deleted with tombstones in `__consumer_offsets`.
  - A group with members gets NON_EMPTY_GROUP, an unknown one GROUP_ID_NOT_FOUND, one
    coordinated elsewhere NOT_COORDINATOR.
  - One result per distinct group id, in request order.
  - A group the principal may not DELETE gets GROUP_AUTHORIZATION_FAILED (api/auth_helper.py).
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
    from kbroker.protocol.message_types import DeleteGroupsRequest, DeleteGroupsResponse

API_KEY = ApiKey.DELETE_GROUPS
VERSIONS = (0, 2)


async def handle(ctx: RequestContext, request: DeleteGroupsRequest) -> DeleteGroupsResponse:
    group_ids = list(dict.fromkeys(request["groups_names"]))
    allowed = auth_helper.authorized_names(ctx, AclOperation.DELETE, ResourceType.GROUP, group_ids)
    errors = ctx.services.group_coordinator.delete_groups([g for g in group_ids if g in allowed])
    errors.update({g: Errors.GROUP_AUTHORIZATION_FAILED for g in group_ids if g not in allowed})
    return {"throttle_time_ms": 0, "results": [{"group_id": g, "error_code": errors[g]} for g in group_ids]}
