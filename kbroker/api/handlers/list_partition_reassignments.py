"""ListPartitionReassignments (46): the reassignments in progress (KIP-455).

- Versions: 0 served and advertised.
- Behaviour:
  - Served by the active controller (NOT_CONTROLLER elsewhere).
  - For each partition being moved: its current replica set and the replicas being added and
    removed. A null topic list means all.
  - Needs DESCRIBE on the cluster, else CLUSTER_AUTHORIZATION_FAILED (api/auth_helper.py), checked
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
        ListPartitionReassignmentsRequest,
        ListPartitionReassignmentsResponse,
        ListPartitionReassignmentsResponseOngoingPartitionReassignment,
    )

API_KEY = ApiKey.LIST_PARTITION_REASSIGNMENTS
VERSIONS = (0, 0)


@requires_cluster(AclOperation.DESCRIBE, topics=[])
@controller_only(topics=[])
async def handle(ctx: RequestContext, request: ListPartitionReassignmentsRequest) -> ListPartitionReassignmentsResponse:
    controller = ctx.services.controller
    wanted = request["topics"]
    filter_ = None if wanted is None else {(t["name"], p) for t in wanted for p in t["partition_indexes"]}
    by_topic: dict[str, list[ListPartitionReassignmentsResponseOngoingPartitionReassignment]] = {}
    for (topic, partition), (replicas, adding, removing) in sorted(controller.ongoing_reassignments().items()):
        if filter_ is None or (topic, partition) in filter_:
            by_topic.setdefault(topic, []).append({"partition_index": partition, "replicas": replicas,
                                                   "adding_replicas": adding, "removing_replicas": removing})
    return {"throttle_time_ms": 0, "error_code": 0, "error_message": None,
            "topics": [{"name": t, "partitions": ps} for t, ps in by_topic.items()]}
