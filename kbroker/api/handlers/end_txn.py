"""EndTxn (26): commits or aborts a producer's transaction.

- Versions: 0-5 served and advertised (v5, KIP-890 part 2, answers like v4 with the producer's
  current id and epoch: no transaction.version 2 feature is advertised).
- Behaviour:
  - The TransactionCoordinator writes PrepareCommit/PrepareAbort to `__transaction_state`,
    answers, then writes the markers on every partition of the transaction and the Complete
    state (kbroker/txn/).
  - INVALID_PRODUCER_ID_MAPPING (unknown id or another producer id), PRODUCER_FENCED
    (INVALID_PRODUCER_EPOCH before v2) for another epoch, CONCURRENT_TRANSACTIONS while a
    transition is in flight, INVALID_TXN_STATE for an end that does not match the state
    (commit after abort, nothing to end), NONE for a retry of a completed end,
    NOT_COORDINATOR / COORDINATOR_LOAD_IN_PROGRESS.
  - Needs WRITE on the transactional id, else TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    (api/auth_helper.py).
- Gaps: transaction.version 2 (KIP-890 part 2: an epoch bump per transaction, partitions added
  by Produce v12) is not implemented; the feature is not advertised in ApiVersions, so clients
  (Kafka 4.x's included) stay on the transaction.version 0/1 protocol.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kbroker.api import auth_helper, transaction_errors
from kbroker.api.auth_helper import AclOperation, ResourceType
from kbroker.api.request_context import RequestContext
from kbroker.protocol.api_keys import ApiKey

if TYPE_CHECKING:
    from kbroker.protocol.message_types import EndTxnRequest, EndTxnResponse

API_KEY = ApiKey.END_TXN
VERSIONS = (0, 5)


async def handle(ctx: RequestContext, request: EndTxnRequest) -> EndTxnResponse:
    error = auth_helper.error_for(ctx, AclOperation.WRITE, ResourceType.TRANSACTIONAL_ID, request["transactional_id"])
    if not error:
        error = await ctx.services.transaction_coordinator.handle_end_transaction(
            request["transactional_id"], request["producer_id"], request["producer_epoch"], request["committed"])
    return {"throttle_time_ms": 0, "error_code": transaction_errors.for_version(error, ctx.api_version, 2),
            "producer_id": request["producer_id"], "producer_epoch": request["producer_epoch"]}
