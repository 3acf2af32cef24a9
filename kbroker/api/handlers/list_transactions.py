"""ListTransactions (66): the transactional ids this broker coordinates.

- Versions: 0-2 served and advertised.
- Behaviour:
  - Filters as Kafka's: states by Kafka's names (unknown names are returned in
    unknown_state_filters and match nothing), producer ids, v1+ a minimum duration since the
    transaction started, v2+ a regular expression the whole id must match
    (INVALID_REGULAR_EXPRESSION if it does not compile). Empty filters match everything.
  - COORDINATOR_LOAD_IN_PROGRESS while any of its `__transaction_state` partitions loads.
  - Without DESCRIBE on the cluster, only the transactional ids the principal may DESCRIBE are
    listed, as Kafka (api/auth_helper.py).
- Gaps: Python's regular expressions stand in for Java's (the common syntax is the same).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from kbroker.api import auth_helper
from kbroker.api.auth_helper import AclOperation, ResourceType
from kbroker.api.request_context import RequestContext
from kbroker.protocol.api_keys import ApiKey
from kbroker.protocol.errors import Errors

if TYPE_CHECKING:
    from kbroker.protocol.message_types import ListTransactionsRequest, ListTransactionsResponse

API_KEY = ApiKey.LIST_TRANSACTIONS
VERSIONS = (0, 2)


async def handle(ctx: RequestContext, request: ListTransactionsRequest) -> ListTransactionsResponse:
    pattern = request["transactional_id_pattern"] if ctx.api_version >= 2 else None
    try:
        matcher = re.compile(pattern) if pattern else None
    except re.error:
        return {"throttle_time_ms": 0, "error_code": Errors.INVALID_REGULAR_EXPRESSION, "unknown_state_filters": [],
                "transaction_states": []}
    duration = request["duration_filter"] if ctx.api_version >= 1 else -1
    error, unknown, listings = ctx.services.transaction_coordinator.list_transactions(
        request["state_filters"], request["producer_id_filters"], duration)
    if not auth_helper.authorize(ctx, AclOperation.DESCRIBE, ResourceType.CLUSTER):
        visible = auth_helper.authorized_names(ctx, AclOperation.DESCRIBE, ResourceType.TRANSACTIONAL_ID,
                                               [t.transactional_id for t in listings])
        listings = [t for t in listings if t.transactional_id in visible]
    return {"throttle_time_ms": 0, "error_code": error, "unknown_state_filters": unknown, "transaction_states": [
        {"transactional_id": t.transactional_id, "producer_id": t.producer_id, "transaction_state": t.state}
        for t in listings if matcher is None or matcher.fullmatch(t.transactional_id)]}
