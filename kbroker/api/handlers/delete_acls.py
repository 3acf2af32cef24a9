"""DeleteAcls (31): removes the ACLs matching filters; kbroker has no authorizer yet.

- Versions: 0-3 served and advertised.
- Behaviour:
  - Answers as Kafka does with no authorizer configured: one result per filter, each
    SECURITY_DISABLED "No Authorizer is configured." with no matching ACLs.
  - A filter with an UNKNOWN (0) resource type, pattern type, operation or permission type
    closes the connection, as Kafka does when it cannot build the request.
- Gaps: no authorizer (`authorizer.class.name`), so nothing to delete.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kbroker.api.acl_requests import NO_AUTHORIZER, check_acl_codes
from kbroker.api.request_context import RequestContext
from kbroker.protocol.api_keys import ApiKey
from kbroker.protocol.errors import Errors

if TYPE_CHECKING:
    from kbroker.protocol.message_types import DeleteAclsRequest, DeleteAclsResponse

API_KEY = ApiKey.DELETE_ACLS
VERSIONS = (0, 3)


# Without an authorizer the answer depends on nothing about the broker or the caller.
async def handle(_ctx: RequestContext, request: DeleteAclsRequest) -> DeleteAclsResponse:
    for f in request["filters"]:
        check_acl_codes(f["resource_type_filter"], f["pattern_type_filter"], f["operation"], f["permission_type"])
    return {"throttle_time_ms": 0,
            "filter_results": [{"error_code": Errors.SECURITY_DISABLED, "error_message": NO_AUTHORIZER,
                                "matching_acls": []} for _ in request["filters"]]}
