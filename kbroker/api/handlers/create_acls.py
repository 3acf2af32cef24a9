"""CreateAcls (30): adds ACL bindings; kbroker has no authorizer yet.

- Versions: 0-3 served and advertised.
- Behaviour:
  - Answers as Kafka does with no authorizer configured: one result per creation, each
    SECURITY_DISABLED "No Authorizer is configured.".
  - A creation with an UNKNOWN (0) resource type, pattern type, operation or permission type
    closes the connection, as Kafka does when it cannot build the request.
- Gaps: no authorizer (`authorizer.class.name`), so nothing is stored.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kbroker.api.acl_requests import NO_AUTHORIZER, check_acl_codes
from kbroker.api.request_context import RequestContext
from kbroker.protocol.api_keys import ApiKey
from kbroker.protocol.errors import Errors

if TYPE_CHECKING:
    from kbroker.protocol.message_types import CreateAclsRequest, CreateAclsResponse

API_KEY = ApiKey.CREATE_ACLS
VERSIONS = (0, 3)


# Without an authorizer the answer depends on nothing about the broker or the caller.
async def handle(_ctx: RequestContext, request: CreateAclsRequest) -> CreateAclsResponse:
    for creation in request["creations"]:
        check_acl_codes(creation["resource_type"], creation["resource_pattern_type"], creation["operation"],
                        creation["permission_type"])
    return {"throttle_time_ms": 0,
            "results": [{"error_code": Errors.SECURITY_DISABLED, "error_message": NO_AUTHORIZER}
                        for _ in request["creations"]]}
