"""DescribeAcls (29): lists the ACLs matching a filter; kbroker has no authorizer yet.

- Versions: 0-3 served and advertised.
- Behaviour:
  - Answers as Kafka does with no authorizer configured: a top-level SECURITY_DISABLED,
    "No Authorizer is configured on the broker", and no resources.
  - A filter with an UNKNOWN (0) resource type, pattern type, operation or permission type
    closes the connection, as Kafka does when it cannot build the request.
- Gaps: no authorizer (`authorizer.class.name`), so no ACLs to describe.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kbroker.api.acl_requests import NO_AUTHORIZER_ON_BROKER, check_acl_codes
from kbroker.api.request_context import RequestContext
from kbroker.protocol.api_keys import ApiKey
from kbroker.protocol.errors import Errors

if TYPE_CHECKING:
    from kbroker.protocol.message_types import DescribeAclsRequest, DescribeAclsResponse

API_KEY = ApiKey.DESCRIBE_ACLS
VERSIONS = (0, 3)


# Without an authorizer the answer depends on nothing about the broker or the caller.
async def handle(_ctx: RequestContext, request: DescribeAclsRequest) -> DescribeAclsResponse:
    check_acl_codes(request["resource_type_filter"], request["pattern_type_filter"], request["operation"],
                    request["permission_type"])
    return {"throttle_time_ms": 0, "error_code": Errors.SECURITY_DISABLED,
            "error_message": NO_AUTHORIZER_ON_BROKER, "resources": []}
