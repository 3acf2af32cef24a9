"""UpdateMetadata (6): the controller's view of live brokers and partition states.

- Versions: 5-8 served and advertised (from v5 partition states come grouped by topic).
- Behaviour:
  - Inter-broker only (ZooKeeper mode; absent from Kafka 4). Fenced like LeaderAndIsr
    (STALE_CONTROLLER_EPOCH, STALE_BROKER_EPOCH): a refused request leaves the metadata cache
    as it was, so a client forging one cannot empty it.
  - Otherwise applied to the metadata cache that Metadata and DescribeCluster answer from.
    Deleted topics come as partitions whose leader is -2; their committed offsets are dropped
    (Kafka's onPartitionsDeleted).
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
    from kbroker.protocol.message_types import UpdateMetadataRequest, UpdateMetadataResponse

API_KEY = ApiKey.UPDATE_METADATA
VERSIONS = (5, 8)


@requires_cluster(AclOperation.CLUSTER_ACTION)
async def handle(ctx: RequestContext, request: UpdateMetadataRequest) -> UpdateMetadataResponse:
    error = await ctx.services.controller_fence.check(request["controller_id"], request["controller_epoch"],
                                                     request["broker_epoch"], ctx.peer)
    if error:
        return {"error_code": error}
    return apply(ctx.services, request)


def apply(services: BrokerServices, request: UpdateMetadataRequest) -> UpdateMetadataResponse:
    # MetadataCache (kbroker/metadata, not typed yet) takes a plain dict.
    deleted = services.metadata_cache.update_metadata(request)  # type: ignore[arg-type]
    coordinator = services.started_group_coordinator  # without one, no group has offsets
    if deleted and coordinator is not None:
        coordinator.on_topics_deleted(deleted)
    services.replica_manager.on_live_brokers_changed()
    return {"error_code": 0}
