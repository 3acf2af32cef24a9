"""DescribeClientQuotas (48): the client quotas of the entities a filter selects.

- Versions: 0-1 served and advertised (Kafka's range; v1 is flexible).
- Behaviour:
  - Needs DESCRIBE_CONFIGS on the cluster, else a top-level CLUSTER_AUTHORIZATION_FAILED.
  - Reads the quota keys (producer_byte_rate, consumer_byte_rate, request_percentage,
    controller_mutation_rate) of /config/users/<user>, /config/users/<user>/clients/<client-id>
    and /config/clients/<client-id> (ZooKeeper or the embedded store) and filters them as Kafka's
    ZkAdminManager does: components `user`/`client-id` matching an exact name, the default
    (null name) or any name; `strict` leaves out entities with parts not named by a component.
  - `ip` entities' connection_creation_rate (/config/ips/<ip>): an ip component selects the
    named ip, the default, or every ip entity (the default included, as Kafka's
    handleDescribeIpQuotas); an empty filter that is not strict lists them beside the others.
  - A bad filter (an empty or repeated entity type, an unknown match type, ip with user or
    client-id) is a top-level INVALID_REQUEST; an entity type kbroker does not know, UNSUPPORTED_VERSION.
- Gaps: none known.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kbroker.api import auth_helper
from kbroker.api.request_context import RequestContext
from kbroker.protocol.api_keys import ApiKey
from kbroker.protocol.errors import Errors
from kbroker.security.acl import AclOperation

if TYPE_CHECKING:
    from kbroker.protocol.message_types import DescribeClientQuotasRequest, DescribeClientQuotasResponse

API_KEY = ApiKey.DESCRIBE_CLIENT_QUOTAS
VERSIONS = (0, 1)


@auth_helper.requires_cluster(AclOperation.DESCRIBE_CONFIGS, entries=None)
async def handle(ctx: RequestContext, request: DescribeClientQuotasRequest) -> DescribeClientQuotasResponse:
    from kbroker.security.client_quota_admin import QuotaRequestError  # with the first quota request

    try:
        entries = ctx.services.client_quota_admin.describe([dict(c) for c in request["components"]],
                                                           request["strict"])
    except QuotaRequestError as exc:
        return {"throttle_time_ms": 0, "error_code": exc.error, "error_message": exc.message,
                "entries": None}
    return {"throttle_time_ms": 0, "error_code": Errors.NONE, "error_message": None,
            "entries": entries}  # type: ignore[typeddict-item]
