"""AlterPartition (56), v0-3: a partition leader asks the controller to change its ISR.

Served by the active controller (others answer NOT_CONTROLLER). Checks in Kafka's order:
STALE_BROKER_EPOCH; per partition UNKNOWN_TOPIC_OR_PARTITION, NOT_CONTROLLER for epochs newer
than ours, FENCED_LEADER_EPOCH, the current state when nothing changes, INVALID_UPDATE_VERSION
for an old partition epoch, INELIGIBLE_REPLICA for ISR members that are not alive. Accepted
changes are written to the state znode and sent to every broker with UpdateMetadata.
Topics by name (v0-1) or id (v2+); v3 names ISR members with their broker epochs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kbroker.api.request_context import RequestContext
from kbroker.protocol.api_keys import ApiKey

if TYPE_CHECKING:
    from kbroker.protocol.message_types import AlterPartitionRequest, AlterPartitionResponse

API_KEY = ApiKey.ALTER_PARTITION
VERSIONS = (0, 3)


async def handle(ctx: RequestContext, request: AlterPartitionRequest) -> AlterPartitionResponse:
    return ctx.broker.controller.on_alter_partition(request, ctx.api_version)
