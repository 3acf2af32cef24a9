"""LeaderAndIsr (4), v2-7: the controller tells this broker which partitions it leads or follows.

Inter-broker only (ZooKeeper mode; absent from Kafka 4). A controller epoch older than the
newest seen gets STALE_CONTROLLER_EPOCH, a broker epoch older than ours STALE_BROKER_EPOCH
(a request meant for a previous incarnation of this broker). Per partition, an older leader
epoch is refused (STALE_CONTROLLER_EPOCH) and an equal one only refreshes the ISR. Served from
v2, where partition states come grouped by topic, which is what kbroker's controller sends.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kbroker.api.request_context import RequestContext
from kbroker.protocol.api_keys import ApiKey

if TYPE_CHECKING:
    from kbroker.protocol.message_types import LeaderAndIsrRequest, LeaderAndIsrResponse

API_KEY = ApiKey.LEADER_AND_ISR
VERSIONS = (2, 7)


async def handle(ctx: RequestContext, request: LeaderAndIsrRequest) -> LeaderAndIsrResponse:
    error = ctx.broker.check_controller_request(request)
    if error:
        return {"error_code": error}
    return ctx.broker.handle_controller_request(API_KEY, request)
