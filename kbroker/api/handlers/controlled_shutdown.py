"""ControlledShutdown (7): a stopping broker asks the controller to move its leadership.

- Versions: 0-3 served and advertised; v0 uses request header v0 (no client id).
- Behaviour:
  - Served by the active controller (others answer NOT_CONTROLLER).
  - The broker's partitions get new leaders from their ISR among brokers not shutting down; it
    leaves the ISRs of partitions it follows (and is told to stop those replicas).
  - The answer lists the partitions it still leads (those with no other eligible replica); the
    broker retries while any remain, as Kafka's does (controlled.shutdown.max.retries).
  - Unknown broker: BROKER_NOT_AVAILABLE. Broker epoch (v2+): an older one is STALE_BROKER_EPOCH
    as in Kafka; so are -1 and a newer one that is not the broker's current registration in
    ZooKeeper (Kafka lets both through), so a client cannot make up a broker's shutdown.
  - Needs CLUSTER_ACTION on the cluster, else CLUSTER_AUTHORIZATION_FAILED (api/auth_helper.py), checked
    first, as Kafka does.
- Gaps: v0-1 carry no broker epoch and are accepted as Kafka accepts them; only the authorizer
  (CLUSTER_ACTION, above) refuses a forged one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kbroker.api.auth_helper import AclOperation, requires_cluster
from kbroker.api.controller_only import controller_only
from kbroker.api.request_context import RequestContext
from kbroker.protocol.api_keys import ApiKey
from kbroker.protocol.errors import Errors

if TYPE_CHECKING:
    from kbroker.protocol.message_types import ControlledShutdownRequest, ControlledShutdownResponse

API_KEY = ApiKey.CONTROLLED_SHUTDOWN
VERSIONS = (0, 3)


@requires_cluster(AclOperation.CLUSTER_ACTION, remaining_partitions=[])
@controller_only(remaining_partitions=[])
async def handle(ctx: RequestContext, request: ControlledShutdownRequest) -> ControlledShutdownResponse:
    if ctx.api_version >= 2 and request["broker_epoch"] < 0:
        # v2+ always carries the stopping broker's epoch: -1 there is not "unknown" but made up.
        return {"error_code": Errors.STALE_BROKER_EPOCH, "remaining_partitions": []}
    error, remaining = ctx.services.controller.on_controlled_shutdown(request["broker_id"], request["broker_epoch"])
    return {"error_code": error,
            "remaining_partitions": [{"topic_name": t, "partition_index": p} for t, p in remaining]}
