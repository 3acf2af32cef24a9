"""AlterUserScramCredentials (51): creates, replaces and deletes users' SCRAM credentials.

- Versions: 0 served and advertised (Kafka's only version).
- Behaviour:
  - Upsertions carry the client's salt and salted password (as Kafka's admin clients send them);
    the broker derives stored_key and server_key and writes /config/users/<user> in Kafka's form
    with a /config/changes notification, so every broker (and Kafka's tools) see it within a second.
  - Each user's changes apply all or nothing; one result per user: UNACCEPTABLE_CREDENTIAL
    (empty user, fewer than 4096 or more than 16384 iterations), UNSUPPORTED_SASL_MECHANISM
    (unknown mechanism), DUPLICATE_RESOURCE (a mechanism twice for one user),
    RESOURCE_NOT_FOUND (deleting a credential that does not exist).
  - Needs ALTER on the cluster: else every user named gets CLUSTER_AUTHORIZATION_FAILED (sorted,
    each once), as Kafka's getErrorResponse answers, and nothing changes.
- Gaps: answered by any broker (Kafka in ZooKeeper mode sends NOT_CONTROLLER from all but the
  controller; its admin client then asks the controller, so clients see the same outcome).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kbroker.api.auth_helper import AclOperation, requires_cluster
from kbroker.api.request_context import RequestContext
from kbroker.protocol.api_keys import ApiKey
from kbroker.protocol.errors import Errors

if TYPE_CHECKING:
    from kbroker.protocol.message_types import (
        AlterUserScramCredentialsRequest,
        AlterUserScramCredentialsResponse,
    )

API_KEY = ApiKey.ALTER_USER_SCRAM_CREDENTIALS
VERSIONS = (0, 0)


def _refused(request: AlterUserScramCredentialsRequest) -> dict:
    users = sorted({change["name"] for change in [*request["deletions"], *request["upsertions"]]})
    refused = Errors.CLUSTER_AUTHORIZATION_FAILED  # no message: ApiError drops an exception's default one
    return {"results": [{"user": user, "error_code": refused, "error_message": None} for user in users]}


@requires_cluster(AclOperation.ALTER, _refused)
async def handle(ctx: RequestContext, request: AlterUserScramCredentialsRequest) -> AlterUserScramCredentialsResponse:
    results = ctx.services.scram_credentials.alter([dict(d) for d in request["deletions"]],
                                                   [dict(u) for u in request["upsertions"]])
    return {"throttle_time_ms": 0, "results": results}  # type: ignore[typeddict-item]
