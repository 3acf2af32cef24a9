"""ListGroups (16): every group this broker coordinates.

- Versions: 0-5 served and advertised.
- Behaviour:
  - Each group with its protocol type ("" for offsets-only groups).
  - v4+ filter by state and report it (KIP-518); v5+ filter by type and report it ("classic").
    Filters match case-insensitively; an empty filter matches everything.
  - While an offsets partition is loading the error is COORDINATOR_LOAD_IN_PROGRESS, with the
    groups known so far.
  - Without DESCRIBE on the cluster, only the groups the principal may DESCRIBE are listed
    (api/auth_helper.py), as Kafka does.
- Gaps: the KIP-848 consumer protocol is not served, so every group is "classic".
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kbroker.api import auth_helper
from kbroker.api.auth_helper import AclOperation, ResourceType
from kbroker.api.request_context import RequestContext
from kbroker.protocol.api_keys import ApiKey

if TYPE_CHECKING:
    from kbroker.protocol.message_types import ListGroupsRequest, ListGroupsResponse

API_KEY = ApiKey.LIST_GROUPS
VERSIONS = (0, 5)


async def handle(ctx: RequestContext, request: ListGroupsRequest) -> ListGroupsResponse:
    error, groups = ctx.services.group_coordinator.list_groups(request["states_filter"] or [],
                                                             request["types_filter"] or [])
    if not auth_helper.authorize(ctx, AclOperation.DESCRIBE, ResourceType.CLUSTER):
        visible = auth_helper.authorized_names(ctx, AclOperation.DESCRIBE, ResourceType.GROUP,
                                               [g.group_id for g in groups])
        groups = [g for g in groups if g.group_id in visible]
    return {"throttle_time_ms": 0, "error_code": error,
            "groups": [{"group_id": g.group_id, "protocol_type": g.protocol_type, "group_state": g.state,
                        "group_type": g.group_type} for g in groups]}
