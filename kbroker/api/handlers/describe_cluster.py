"""DescribeCluster (60): the live brokers, the cluster id and the controller.

- Versions: 0-2 served and advertised.
- Behaviour:
  - Brokers alive with their endpoint on the listener the request came in on, the cluster id,
    the controller id and cluster authorized operations when asked (the principal's, from the
    authorizer; every cluster operation without one). No authorization check, as in Kafka.
  - v1's endpoint type 2 (controllers) is answered with UNSUPPORTED_ENDPOINT_TYPE, as a
    ZooKeeper-mode broker does.
  - v2's IsFenced is always false: a ZooKeeper-mode cluster fences no broker
    (IncludeFencedBrokers changes nothing).
- Gaps: none known.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kbroker.api import auth_helper
from kbroker.api.auth_helper import OMITTED, ResourceType
from kbroker.api.request_context import RequestContext
from kbroker.protocol.api_keys import ApiKey
from kbroker.protocol.errors import Errors

if TYPE_CHECKING:
    from kbroker.protocol.message_types import (
        DescribeClusterRequest,
        DescribeClusterResponse,
        DescribeClusterResponseDescribeClusterBroker,
    )

API_KEY = ApiKey.DESCRIBE_CLUSTER
VERSIONS = (0, 2)

BROKERS_ENDPOINT_TYPE = 1


async def handle(ctx: RequestContext, request: DescribeClusterRequest) -> DescribeClusterResponse:
    cache = ctx.services.metadata_cache
    if request["endpoint_type"] != BROKERS_ENDPOINT_TYPE:
        return {"error_code": Errors.UNSUPPORTED_ENDPOINT_TYPE,
                "error_message": "The request was sent to an endpoint of type BROKER, "
                                 f"but we wanted an endpoint of type {request['endpoint_type']}",
                "endpoint_type": request["endpoint_type"], "cluster_id": cache.cluster_id or ""}
    brokers: list[DescribeClusterResponseDescribeClusterBroker] = [
        {"broker_id": b.broker_id, "host": e.host, "port": e.port, "rack": b.rack}
        for b, e in cache.alive_endpoints(ctx.listener_name)]
    return {
        "error_code": 0,
        "endpoint_type": BROKERS_ENDPOINT_TYPE,
        "cluster_id": cache.cluster_id or "",
        "controller_id": cache.controller_id,
        "brokers": brokers,
        "cluster_authorized_operations": (auth_helper.authorized_operations(ctx, ResourceType.CLUSTER)
                                          if request["include_cluster_authorized_operations"] else OMITTED),
    }
