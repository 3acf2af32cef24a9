"""LeaderAndIsr (4): the controller tells this broker which partitions it leads or follows.

- Versions: 2-7 served and advertised (from v2 partition states come grouped by topic, which is
  what kbroker's controller sends).
- Behaviour:
  - Inter-broker only (ZooKeeper mode; absent from Kafka 4).
  - A controller epoch older than the newest seen gets STALE_CONTROLLER_EPOCH, a broker epoch
    older than ours STALE_BROKER_EPOCH (a request meant for a previous incarnation of this
    broker).
  - Per partition, an older leader epoch is refused (STALE_CONTROLLER_EPOCH) and an equal one
    only refreshes the ISR.
  - `apply` is also how the controller's own broker gets its requests, without a socket
    (kbroker/api/controller_requests.py).
- Gaps: none known.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kbroker.api.broker_services import BrokerServices
from kbroker.api.request_context import RequestContext
from kbroker.protocol.api_keys import ApiKey

if TYPE_CHECKING:
    from kbroker.protocol.message_types import LeaderAndIsrRequest, LeaderAndIsrResponse

API_KEY = ApiKey.LEADER_AND_ISR
VERSIONS = (2, 7)


async def handle(ctx: RequestContext, request: LeaderAndIsrRequest) -> LeaderAndIsrResponse:
    error = ctx.services.controller_fence.check(request["controller_epoch"], request["broker_epoch"])
    if error:
        return {"error_code": error}
    return apply(ctx.services, request)


def apply(services: BrokerServices, request: LeaderAndIsrRequest) -> LeaderAndIsrResponse:
    # ReplicaManager (kbroker/replica, not typed yet) takes and returns plain dicts.
    return services.replica_manager.become_leader_or_follower(request)  # type: ignore[arg-type, return-value]
