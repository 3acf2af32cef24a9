"""AlterPartitionReassignments (45): moves partitions to other brokers (KIP-455).

- Versions: 0-1 served and advertised.
- Behaviour:
  - Served by the active controller (NOT_CONTROLLER elsewhere).
  - A target replica list starts a reassignment: the new replicas join the replica set and
    catch up, and once every target is in the ISR the controller drops the replicas not in the
    target (leadership moves if the leader is one of them).
  - A null target cancels the reassignment in progress (NO_REASSIGNMENT_IN_PROGRESS if none).
  - Targets with duplicates or brokers that are not alive: INVALID_REPLICA_ASSIGNMENT; unknown
    partitions: UNKNOWN_TOPIC_OR_PARTITION; v1's allow_replication_factor_change=false with a
    different replica count: INVALID_REPLICATION_FACTOR.
  - Needs ALTER on the cluster, else CLUSTER_AUTHORIZATION_FAILED (api/auth_helper.py), checked
    first, as Kafka does.
- Gaps: none known.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kbroker.api.auth_helper import AclOperation, requires_cluster
from kbroker.api.controller_only import controller_only
from kbroker.api.request_context import RequestContext
from kbroker.protocol.api_keys import ApiKey

if TYPE_CHECKING:
    from kbroker.protocol.message_types import (
        AlterPartitionReassignmentsRequest,
        AlterPartitionReassignmentsResponse,
        AlterPartitionReassignmentsResponseReassignablePartitionResponse,
        AlterPartitionReassignmentsResponseReassignableTopicResponse,
    )

API_KEY = ApiKey.ALTER_PARTITION_REASSIGNMENTS
VERSIONS = (0, 1)


@requires_cluster(AclOperation.ALTER, responses=[])
@controller_only(responses=[])
async def handle(ctx: RequestContext, request: AlterPartitionReassignmentsRequest) -> AlterPartitionReassignmentsResponse:
    controller = ctx.services.controller
    changes = [(t["name"], p["partition_index"], p["replicas"]) for t in request["topics"] for p in t["partitions"]]
    results = controller.alter_reassignments(changes, request["allow_replication_factor_change"])
    responses: list[AlterPartitionReassignmentsResponseReassignableTopicResponse] = []
    for topic in request["topics"]:
        partitions: list[AlterPartitionReassignmentsResponseReassignablePartitionResponse] = []
        for p in topic["partitions"]:
            error, message = results[(topic["name"], p["partition_index"])]
            partitions.append({"partition_index": p["partition_index"], "error_code": error, "error_message": message})
        responses.append({"name": topic["name"], "partitions": partitions})
    return {"throttle_time_ms": 0, "error_code": 0, "error_message": None, "responses": responses,
            "allow_replication_factor_change": request["allow_replication_factor_change"]}
