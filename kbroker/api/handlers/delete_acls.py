"""DeleteAcls (31): removes the ACLs matching filters.

- Versions: 0-3 served and advertised.
- Behaviour:
  - Needs ALTER on the cluster: else every filter's result is CLUSTER_AUTHORIZATION_FAILED, as
    Kafka's AclApis answers.
  - With an authorizer (`authorizer.class.name`): per filter, the bindings it matched and
    removed (filters match as DescribeAcls' do; a binding matched by two filters is listed
    under both), removed from the metadata store with a change notification.
  - Without one, as Kafka: each result SECURITY_DISABLED "No Authorizer is configured." with no
    matching ACLs.
  - A filter with an UNKNOWN (0) or unknown resource type, pattern type, operation or
    permission type closes the connection, as Kafka does when it cannot build the request.
- Gaps: none known.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kbroker.api import auth_helper
from kbroker.api.acl_requests import NO_AUTHORIZER, binding_filter, entry_fields, pattern_fields
from kbroker.api.request_context import RequestContext
from kbroker.protocol.api_keys import ApiKey
from kbroker.protocol.errors import Errors
from kbroker.security.acl import AclOperation

if TYPE_CHECKING:
    from kbroker.protocol.message_types import DeleteAclsRequest, DeleteAclsResponse

API_KEY = ApiKey.DELETE_ACLS
VERSIONS = (0, 3)


async def handle(ctx: RequestContext, request: DeleteAclsRequest) -> DeleteAclsResponse:
    filters = [binding_filter(f) for f in request["filters"]]
    error = auth_helper.cluster_error(ctx, AclOperation.ALTER)
    authorizer = ctx.services.authorizer
    if error or authorizer is None:
        message = None if error else NO_AUTHORIZER
        return {"throttle_time_ms": 0,
                "filter_results": [{"error_code": error or Errors.SECURITY_DISABLED, "error_message": message,
                                    "matching_acls": []} for _ in filters]}
    deleted = authorizer.delete_acls(filters)
    return {"throttle_time_ms": 0, "filter_results": [
        {"error_code": Errors.NONE, "error_message": None,
         "matching_acls": [{"error_code": Errors.NONE, "error_message": None,
                            **pattern_fields(b.pattern), **entry_fields(b.entry)}  # type: ignore[typeddict-item]
                           for b in bindings]}
        for bindings in deleted]}
