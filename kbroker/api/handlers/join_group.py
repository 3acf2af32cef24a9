"""JoinGroup (11): a member joins a group's rebalance.

- Versions: 0-9 served and advertised.
- Behaviour:
  - Handed to the GroupCoordinator (kbroker/group/group_coordinator.py), which answers once the
    rebalance completes.
  - v0 has no rebalance timeout: the session timeout stands in for it.
  - From v4 a new member without group.instance.id first gets MEMBER_ID_REQUIRED with its
    member id (KIP-394); v5 adds static membership.
  - v7+ return the protocol type and a null protocol name where older versions get ""; v9 tells
    a rejoining static leader to skip the assignment (SkipAssignment).
  - The member's client host is "/<address>", as Kafka records it.
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
    from kbroker.protocol.message_types import JoinGroupRequest, JoinGroupResponse

API_KEY = ApiKey.JOIN_GROUP
VERSIONS = (0, 9)


def client_host(ctx: RequestContext) -> str:
    """Kafka's InetAddress.toString() of the peer: "/127.0.0.1"."""
    return "/" + ctx.peer.rsplit(":", 1)[0]


async def handle(ctx: RequestContext, request: JoinGroupRequest) -> JoinGroupResponse:
    # Imported here, not at the top: every handler loads at start-up, the group coordinator only
    # when a group first needs it (see KafkaServer.group_coordinator).
    from kbroker.group.group_coordinator import JoinGroupParams

    version = ctx.api_version
    error = auth_helper.error_for(ctx, AclOperation.READ, ResourceType.GROUP, request["group_id"])
    if error:
        return {"throttle_time_ms": 0, "error_code": error, "generation_id": -1, "member_id": request["member_id"],
                "leader": "", "protocol_name": "" if version < 7 else None, "members": []}
    instance_id = request["group_instance_id"]
    params = JoinGroupParams(
        group_id=request["group_id"],
        member_id=request["member_id"],
        group_instance_id=instance_id,
        protocol_type=request["protocol_type"],
        protocols=[(p["name"], bytes(p["metadata"])) for p in request["protocols"]],
        session_timeout_ms=request["session_timeout_ms"],
        rebalance_timeout_ms=request["rebalance_timeout_ms"] if version >= 1 else request["session_timeout_ms"],
        client_id=ctx.client_id or "",
        client_host=client_host(ctx),
        require_known_member_id=version >= 4 and instance_id is None,
        support_skipping_assignment=version >= 9,
        reason=request["reason"],
    )
    result = await ctx.services.group_coordinator.join_group(params)
    protocol_name = result.protocol_name
    if version < 7:
        protocol_name = protocol_name or ""
    elif protocol_name == "":
        protocol_name = None
    return {
        "throttle_time_ms": 0,
        "error_code": result.error,
        "generation_id": result.generation_id,
        "protocol_type": result.protocol_type,
        "protocol_name": protocol_name,
        "leader": result.leader_id,
        "skip_assignment": result.skip_assignment,
        "member_id": result.member_id,
        "members": [{"member_id": member_id, "group_instance_id": instance, "metadata": metadata}
                    for member_id, instance, metadata in result.members],
    }
