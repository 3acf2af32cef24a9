"""UpdateMetadata (6), v5-8: the controller's view of live brokers and partition states.

Inter-broker only (ZooKeeper mode; absent from Kafka 4). Fenced like LeaderAndIsr
(STALE_CONTROLLER_EPOCH, STALE_BROKER_EPOCH); otherwise applied to the metadata cache that
Metadata and DescribeCluster answer from. Deleted topics come as partitions whose leader is -2.
Served from v5, where partition states come grouped by topic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kbroker.api.request_context import RequestContext
from kbroker.protocol.api_keys import ApiKey

if TYPE_CHECKING:
    from kbroker.protocol.message_types import UpdateMetadataRequest, UpdateMetadataResponse

API_KEY = ApiKey.UPDATE_METADATA
VERSIONS = (5, 8)


async def handle(ctx: RequestContext, request: UpdateMetadataRequest) -> UpdateMetadataResponse:
    error = ctx.broker.check_controller_request(request)
    if error:
        return {"error_code": error}
    return ctx.broker.handle_controller_request(API_KEY, request)
