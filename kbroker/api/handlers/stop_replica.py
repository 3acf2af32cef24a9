"""StopReplica (5): the controller tells this broker to stop (and maybe delete) replicas.

- Versions: 3-4 served and advertised (from v3: per-partition delete flags and leader epochs).
- Behaviour:
  - Inter-broker only (ZooKeeper mode; absent from Kafka 4). Fenced like LeaderAndIsr
    (STALE_CONTROLLER_EPOCH, STALE_BROKER_EPOCH, for the request and each partition).
  - Each partition stops being led or followed here; with delete_partition its log directory
    is renamed `-delete` and removed later. A partition whose leader epoch in the request is
    older than ours is left alone with FENCED_LEADER_EPOCH (-2, "being deleted", and -1
    always pass), as Kafka's ReplicaManager.stopReplicas does.
  - `apply` is also how the controller's own broker gets its requests, without a socket
    (kbroker/api/controller_requests.py).
  - Needs CLUSTER_ACTION on the cluster, else CLUSTER_AUTHORIZATION_FAILED (api/auth_helper.py), checked
    first, as Kafka does.
- Gaps: none known.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kbroker.api.auth_helper import AclOperation, requires_cluster
from kbroker.api.broker_services import BrokerServices
from kbroker.api.request_context import RequestContext
from kbroker.protocol.api_keys import ApiKey

if TYPE_CHECKING:
    from kbroker.protocol.message_types import StopReplicaRequest, StopReplicaResponse

API_KEY = ApiKey.STOP_REPLICA
VERSIONS = (3, 4)


@requires_cluster(AclOperation.CLUSTER_ACTION, partition_errors=[])
async def handle(ctx: RequestContext, request: StopReplicaRequest) -> StopReplicaResponse:
    error = await ctx.services.controller_fence.check(request["controller_id"], request["controller_epoch"],
                                                     request["broker_epoch"], ctx.peer)
    if error:
        # Kafka's getErrorResponse: the error for the request and for each of its partitions.
        return {"error_code": error, "partition_errors": [
            {"topic_name": t["topic_name"], "partition_index": p["partition_index"], "error_code": error}
            for t in request["topic_states"] for p in t["partition_states"]]}
    return apply(ctx.services, request)


def apply(services: BrokerServices, request: StopReplicaRequest) -> StopReplicaResponse:
    # ReplicaManager (kbroker/replica, not typed yet) takes and returns plain dicts.
    return services.replica_manager.stop_replicas(request)  # type: ignore[arg-type, return-value]
