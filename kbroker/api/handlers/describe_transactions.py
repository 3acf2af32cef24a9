"""DescribeTransactions (65): the state of transactional ids this broker coordinates.

- Versions: 0 served and advertised.
- Behaviour:
  - Per id: its state (Kafka's names: Empty, Ongoing, PrepareCommit, ...), timeout, start time
    (-1 when Empty), producer id and epoch, and the partitions of the open transaction.
  - TRANSACTIONAL_ID_NOT_FOUND for an id without state, NOT_COORDINATOR for an id another
    broker coordinates, COORDINATOR_LOAD_IN_PROGRESS while its partition loads.
  - A transactional id the principal may not DESCRIBE gets TRANSACTIONAL_ID_AUTHORIZATION_FAILED;
    the topics of a transaction it may not DESCRIBE are left out, as Kafka (api/auth_helper.py).
- Gaps: no TRANSACTIONAL_ID_AUTHORIZATION_FAILED (no authorizer).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kbroker.api import auth_helper
from kbroker.api.auth_helper import AclOperation, ResourceType
from kbroker.api.request_context import RequestContext
from kbroker.protocol.api_keys import ApiKey
from kbroker.protocol.errors import Errors

if TYPE_CHECKING:
    from kbroker.protocol.message_types import (
        DescribeTransactionsRequest,
        DescribeTransactionsResponse,
        DescribeTransactionsResponseTransactionState,
    )

API_KEY = ApiKey.DESCRIBE_TRANSACTIONS
VERSIONS = (0, 0)


async def handle(ctx: RequestContext, request: DescribeTransactionsRequest) -> DescribeTransactionsResponse:
    from kbroker.txn.transaction_log import group_by_topic  # with the coordinator, not at start-up

    coordinator = ctx.services.transaction_coordinator
    states: list[DescribeTransactionsResponseTransactionState] = []
    for transactional_id in request["transactional_ids"]:
        if not auth_helper.authorize(ctx, AclOperation.DESCRIBE, ResourceType.TRANSACTIONAL_ID, transactional_id):
            states.append({"error_code": Errors.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
                           "transactional_id": transactional_id, "transaction_state": "",
                           "transaction_timeout_ms": 0, "transaction_start_time_ms": -1, "producer_id": -1,
                           "producer_epoch": -1, "topics": []})
            continue
        d = coordinator.describe_transaction(transactional_id)
        states.append({"error_code": d.error, "transactional_id": transactional_id, "transaction_state": d.state,
                       "transaction_timeout_ms": d.timeout_ms, "transaction_start_time_ms": d.start_time_ms,
                       "producer_id": d.producer_id, "producer_epoch": d.producer_epoch,
                       "topics": [{"topic": topic, "partitions": ids} for topic, ids in group_by_topic(d.partitions)
                                  if auth_helper.authorize(ctx, AclOperation.DESCRIBE, ResourceType.TOPIC, topic)]})
    return {"throttle_time_ms": 0, "transaction_states": states}
