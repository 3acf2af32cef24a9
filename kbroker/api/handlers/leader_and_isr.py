"""LeaderAndIsr (4): the controller tells this broker which partitions it leads or follows.

- Versions: 2-7 served and advertised (from v2 partition states come grouped by topic, which is
  what kbroker's controller sends).
- Behaviour:
  - Inter-broker only (ZooKeeper mode; absent from Kafka 4).
  - Fenced by `ctx.services.controller_fence` (api/controller_fence.py): a controller epoch
    older than the newest seen, or one that is not ZooKeeper's current controller and epoch
    (a forged or future one), gets STALE_CONTROLLER_EPOCH; a broker epoch other than this
    broker's registration gets STALE_BROKER_EPOCH (Kafka refuses only older ones; see the
    fence). The error is repeated for every partition, as Kafka's getErrorResponse does.
  - Accepted on any listener, as Kafka accepts it (control.plane.listener.name only decides
    where the controller sends it).
  - Per partition, an older leader epoch is refused (STALE_CONTROLLER_EPOCH) and an equal one
    only refreshes the ISR.
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
    from kbroker.protocol.message_types import LeaderAndIsrRequest, LeaderAndIsrResponse

API_KEY = ApiKey.LEADER_AND_ISR
VERSIONS = (2, 7)


@requires_cluster(AclOperation.CLUSTER_ACTION, partition_errors=[], topics=[])
async def handle(ctx: RequestContext, request: LeaderAndIsrRequest) -> LeaderAndIsrResponse:
    error = await ctx.services.controller_fence.check(request["controller_id"], request["controller_epoch"],
                                                     request["broker_epoch"], ctx.peer)
    if error:
        # Kafka's getErrorResponse: the error for the request and for each of its partitions.
        return {"error_code": error, "topics": [
            {"topic_id": t["topic_id"], "partition_errors": [
                {"topic_name": t["topic_name"], "partition_index": p["partition_index"], "error_code": error}
                for p in t["partition_states"]]}
            for t in request["topic_states"]]}
    return apply(ctx.services, request)


def apply(services: BrokerServices, request: LeaderAndIsrRequest) -> LeaderAndIsrResponse:
    # ReplicaManager (kbroker/replica, not typed yet) takes and returns plain dicts.
    return services.replica_manager.become_leader_or_follower(request)  # type: ignore[arg-type, return-value]
