"""CreateAcls (30): adds ACL bindings.

- Versions: 0-3 served and advertised.
- Behaviour:
  - Needs ALTER on the cluster: else every result is CLUSTER_AUTHORIZATION_FAILED, as Kafka's
    AclApis answers.
  - With an authorizer (`authorizer.class.name`): each creation is validated as Kafka does and
    refused alone with INVALID_REQUEST and Kafka's message (a CLUSTER resource not named
    kafka-cluster, an empty name, a `/` in the name, a principal without its `Type:`); the
    others are written to the metadata store (Kafka's znodes, with a change notification every
    broker follows); a write the store refuses answers its bindings UNKNOWN_SERVER_ERROR.
  - Without one, as Kafka: each result SECURITY_DISABLED "No Authorizer is configured.".
  - A creation with an UNKNOWN (0) or unknown resource type, pattern type, operation or
    permission type, or a value only filters may hold (ANY, MATCH), closes the connection, as
    Kafka does when it cannot build the request.
- Gaps: none known.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kbroker.api import auth_helper
from kbroker.api.acl_requests import NO_AUTHORIZER, creation_binding
from kbroker.api.request_context import RequestContext
from kbroker.protocol.api_keys import ApiKey
from kbroker.protocol.errors import Errors
from kbroker.security.acl import AclOperation, binding_invalid_reason

if TYPE_CHECKING:
    from kbroker.protocol.message_types import (
        CreateAclsRequest,
        CreateAclsResponse,
        CreateAclsResponseAclCreationResult,
    )

API_KEY = ApiKey.CREATE_ACLS
VERSIONS = (0, 3)


async def handle(ctx: RequestContext, request: CreateAclsRequest) -> CreateAclsResponse:
    bindings = [creation_binding(creation) for creation in request["creations"]]
    error = auth_helper.cluster_error(ctx, AclOperation.ALTER)
    authorizer = ctx.services.authorizer
    if error or authorizer is None:
        message = None if error else NO_AUTHORIZER
        return {"throttle_time_ms": 0,
                "results": [{"error_code": error or Errors.SECURITY_DISABLED, "error_message": message}
                            for _ in bindings]}
    reasons = [binding_invalid_reason(binding) for binding in bindings]
    failed = authorizer.create_acls([b for b, reason in zip(bindings, reasons, strict=True) if reason is None])
    results: list[CreateAclsResponseAclCreationResult] = []
    for binding, reason in zip(bindings, reasons, strict=True):
        if reason is not None:
            results.append({"error_code": Errors.INVALID_REQUEST, "error_message": reason})
        elif binding.pattern in failed:
            results.append({"error_code": Errors.UNKNOWN_SERVER_ERROR, "error_message": failed[binding.pattern]})
        else:
            results.append({"error_code": Errors.NONE, "error_message": None})
    return {"throttle_time_ms": 0, "results": results}
