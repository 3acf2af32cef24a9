"""ElectLeaders (43): preferred (type 0) or unclean (type 1) leader elections.

- Versions: 0-2 served and advertised; v0 has no election type and no top-level error code.
- Behaviour:
  - Served by the active controller; any other broker answers as ZooKeeper-mode Kafka's
    KafkaController does off the controller: NOT_CONTROLLER (no message) for each partition
    asked, no partition for a null list, and a top-level NONE (v0 has no top-level code).
  - Null topic_partitions means every partition.
  - Preferred: the first replica of the assignment leads if it is alive and in the ISR
    (PREFERRED_LEADER_NOT_AVAILABLE otherwise, ELECTION_NOT_NEEDED if it already leads).
  - Unclean: only partitions without a live leader, any live replica (ELECTION_NOT_NEEDED when a
    leader is alive, ELIGIBLE_LEADERS_NOT_AVAILABLE when no replica is).
  - Unknown partitions: UNKNOWN_TOPIC_OR_PARTITION.
  - Needs ALTER on the cluster, else CLUSTER_AUTHORIZATION_FAILED at the top and for each
    partition asked for (api/auth_helper.py), checked first, as Kafka does.
- Gaps: none known.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kbroker.api.auth_helper import AclOperation, requires_cluster
from kbroker.api.request_context import RequestContext
from kbroker.protocol.api_keys import ApiKey
from kbroker.protocol.errors import Errors

if TYPE_CHECKING:
    from kbroker.protocol.message_types import (
        ElectLeadersRequest,
        ElectLeadersResponse,
        ElectLeadersResponsePartitionResult,
    )

API_KEY = ApiKey.ELECT_LEADERS
VERSIONS = (0, 2)


def _refused(request: ElectLeadersRequest) -> dict:
    """Kafka names each partition asked for with the refusal too."""
    return {"replica_election_results": [
        {"topic": t["topic"], "partition_result": [
            {"partition_id": p, "error_code": Errors.CLUSTER_AUTHORIZATION_FAILED, "error_message": None}
            for p in t["partitions"]]} for t in request["topic_partitions"] or []]}


@requires_cluster(AclOperation.ALTER, _refused, replica_election_results=[])
async def handle(ctx: RequestContext, request: ElectLeadersRequest) -> ElectLeadersResponse:
    controller = ctx.services.controller
    wanted = request["topic_partitions"]
    partitions = None if wanted is None else [(t["topic"], p) for t in wanted for p in t["partitions"]]
    election_type = request["election_type"] if ctx.api_version >= 1 else 0
    if controller.is_active:
        results = controller.elect_leaders(election_type, partitions)
    else:
        results = {tp: (Errors.NOT_CONTROLLER, None) for tp in partitions or []}
    by_topic: dict[str, list[ElectLeadersResponsePartitionResult]] = {}
    for (topic, partition), (error, message) in results.items():
        by_topic.setdefault(topic, []).append({"partition_id": partition, "error_code": error,
                                               "error_message": message})
    return {"throttle_time_ms": 0, "error_code": 0,
            "replica_election_results": [{"topic": t, "partition_result": r} for t, r in by_topic.items()]}
