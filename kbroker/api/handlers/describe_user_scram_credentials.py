"""DescribeUserScramCredentials (50): the SCRAM mechanisms and iterations each user has.

- Versions: 0 served and advertised (Kafka's only version).
- Behaviour:
  - Reads /config/users as Kafka keeps it (ZooKeeper or the embedded store); no users (null or
    empty) describes every user that has a SCRAM credential.
  - A user named twice: DUPLICATE_RESOURCE; a user without credentials: RESOURCE_NOT_FOUND,
    "Attempt to describe a user credential that does not exist".
  - Needs DESCRIBE on the cluster: else CLUSTER_AUTHORIZATION_FAILED at the top and in one
    result per user named, as Kafka's getErrorResponse answers: those results carry no user name
    and, like the top level, no message (ApiError drops an exception's default message).
- Gaps: none known.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kbroker.api.auth_helper import AclOperation, requires_cluster
from kbroker.api.request_context import RequestContext
from kbroker.protocol.api_keys import ApiKey
from kbroker.protocol.errors import Errors

if TYPE_CHECKING:
    from kbroker.protocol.message_types import (
        DescribeUserScramCredentialsRequest,
        DescribeUserScramCredentialsResponse,
    )

API_KEY = ApiKey.DESCRIBE_USER_SCRAM_CREDENTIALS
VERSIONS = (0, 0)


def _refused(request: DescribeUserScramCredentialsRequest) -> dict:
    refused = {"user": "", "error_code": Errors.CLUSTER_AUTHORIZATION_FAILED, "error_message": None,
               "credential_infos": []}
    return {"results": [refused for _ in request["users"] or []]}


@requires_cluster(AclOperation.DESCRIBE, _refused)
async def handle(ctx: RequestContext,
                 request: DescribeUserScramCredentialsRequest) -> DescribeUserScramCredentialsResponse:
    users = request["users"]
    names = None if users is None else [u["name"] for u in users]
    results = ctx.services.scram_credentials.describe(names)
    return {"throttle_time_ms": 0, "error_code": Errors.NONE, "error_message": None,
            "results": results}  # type: ignore[typeddict-item]
