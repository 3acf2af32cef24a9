"""AlterClientQuotas (49): sets and removes client quotas of users, client ids or both, and IPs.

- Versions: 0-1 served and advertised (Kafka's range; v1 is flexible).
- Behaviour:
  - Needs ALTER_CONFIGS on the cluster, else every entry answers CLUSTER_AUTHORIZATION_FAILED.
  - Each entry's entity (`user`, `client-id` or both; a null name is the default) is stored where
    Kafka stores it (/config/users/<user>, /config/users/<user>/clients/<client-id>,
    /config/clients/<client-id>, `<default>` for defaults) with a /config/changes notification;
    only the named quota keys change (a user's SCRAM credentials stay). Every broker throttles
    by the new quota within a second, this one at once. validate_only checks and writes nothing.
  - Per entry, Kafka's INVALID_REQUEST: an empty entity, an unknown entity type, an empty name,
    an unknown key ("Invalid configuration key k"), a byte rate that is not an integer
    ("Configuration producer_byte_rate must be a LONG value"); an entity type given twice, the
    last wins (Kafka's entity map).
  - `ip` entities (an address or host, or the default) hold `connection_creation_rate` (an INT)
    in /config/ips/<ip>; the network's ConnectionQuotas closes connections from an address over
    its rate (KIP-612). INVALID_REQUEST for ip with user or client-id ("Invalid quota entity
    combination, ...") and for an ip that is neither an address nor a resolvable host.
- Gaps: none known.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kbroker.api import auth_helper
from kbroker.api.request_context import RequestContext
from kbroker.protocol.api_keys import ApiKey
from kbroker.protocol.errors import Errors
from kbroker.security.acl import AclOperation

if TYPE_CHECKING:
    from kbroker.protocol.message_types import AlterClientQuotasRequest, AlterClientQuotasResponse

API_KEY = ApiKey.ALTER_CLIENT_QUOTAS
VERSIONS = (0, 1)


def _refused(request: Any) -> dict:
    """Kafka's AlterClientQuotasRequest.getErrorResponse: every entry with the error."""
    return {"entries": [{"error_code": Errors.CLUSTER_AUTHORIZATION_FAILED, "error_message": None,
                         "entity": [dict(e) for e in entry["entity"]]} for entry in request["entries"]]}


@auth_helper.requires_cluster(AclOperation.ALTER_CONFIGS, refusal=_refused)
async def handle(ctx: RequestContext, request: AlterClientQuotasRequest) -> AlterClientQuotasResponse:
    entries = ctx.services.client_quota_admin.alter([dict(e) for e in request["entries"]], request["validate_only"])
    return {"throttle_time_ms": 0, "entries": entries}  # type: ignore[typeddict-item]
