"""DescribeAcls (29): lists the ACLs matching a filter.

- Versions: 0-3 served and advertised.
- Behaviour:
  - Needs DESCRIBE on the cluster: else a top-level CLUSTER_AUTHORIZATION_FAILED, as Kafka's
    AclApis answers.
  - With an authorizer (`authorizer.class.name`): the bindings matching the filter, grouped by
    resource pattern. The filter's pattern type ANY matches every pattern of that name, MATCH
    every pattern that applies to the resource named (literal, `*`, prefixes of it); a null
    name, principal or host matches any.
  - Without one, as Kafka: a top-level SECURITY_DISABLED, "No Authorizer is configured on the
    broker", and no resources.
  - A filter with an UNKNOWN (0) or unknown resource type, pattern type, operation or
    permission type closes the connection, as Kafka does when it cannot build the request.
- Gaps: none known.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kbroker.api import auth_helper
from kbroker.api.acl_requests import NO_AUTHORIZER_ON_BROKER, binding_filter, entry_fields, pattern_fields
from kbroker.api.request_context import RequestContext
from kbroker.protocol.api_keys import ApiKey
from kbroker.protocol.errors import Errors
from kbroker.security.acl import AccessControlEntry, AclOperation, ResourcePattern

if TYPE_CHECKING:
    from kbroker.protocol.message_types import DescribeAclsRequest, DescribeAclsResponse

API_KEY = ApiKey.DESCRIBE_ACLS
VERSIONS = (0, 3)


async def handle(ctx: RequestContext, request: DescribeAclsRequest) -> DescribeAclsResponse:
    acl_filter = binding_filter(request)
    error = auth_helper.cluster_error(ctx, AclOperation.DESCRIBE)
    if error:
        return {"throttle_time_ms": 0, "error_code": error, "error_message": None, "resources": []}
    authorizer = ctx.services.authorizer
    if authorizer is None:
        return {"throttle_time_ms": 0, "error_code": Errors.SECURITY_DISABLED,
                "error_message": NO_AUTHORIZER_ON_BROKER, "resources": []}
    by_pattern: dict[ResourcePattern, list[AccessControlEntry]] = {}
    for binding in authorizer.describe(acl_filter):
        by_pattern.setdefault(binding.pattern, []).append(binding.entry)
    resources = [{**pattern_fields(pattern), "acls": [entry_fields(e) for e in entries]}
                 for pattern, entries in by_pattern.items()]
    return {"throttle_time_ms": 0, "error_code": Errors.NONE, "error_message": None,
            "resources": resources}  # type: ignore[typeddict-item]
