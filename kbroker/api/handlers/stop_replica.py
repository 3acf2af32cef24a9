"""StopReplica (5), v3-4: the controller tells this broker to stop (and maybe delete) replicas.

Inter-broker only (ZooKeeper mode; absent from Kafka 4). Fenced like LeaderAndIsr. Each
partition stops being led or followed here; with delete_partition its log directory is renamed
`-delete` and removed later. Served from v3 (per-partition delete flags and leader epochs).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kbroker.api.request_context import RequestContext
from kbroker.protocol.api_keys import ApiKey

if TYPE_CHECKING:
    from kbroker.protocol.message_types import StopReplicaRequest, StopReplicaResponse

API_KEY = ApiKey.STOP_REPLICA
VERSIONS = (3, 4)


async def handle(ctx: RequestContext, request: StopReplicaRequest) -> StopReplicaResponse:
    error = ctx.broker.check_controller_request(request)
    if error:
        return {"error_code": error, "partition_errors": []}
    return ctx.broker.handle_controller_request(API_KEY, request)
