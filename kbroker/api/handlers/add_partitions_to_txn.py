"""AddPartitionsToTxn (24): adds partitions to a producer's transaction.

- Versions: 0-5 served and advertised. v0-3 carry one transaction (clients); v4+ a batch of
  transactions, each answered on its own, which brokers send to verify a transactional
  produce (KIP-890 part 1, `verify_only`).
- Behaviour:
  - Partitions of unknown topics get UNKNOWN_TOPIC_OR_PARTITION and the others of that
    transaction OPERATION_NOT_ATTEMPTED: nothing is added.
  - Otherwise the TransactionCoordinator adds them (Ongoing, written to `__transaction_state`
    first) and every partition gets its answer: INVALID_PRODUCER_ID_MAPPING, PRODUCER_FENCED
    (INVALID_PRODUCER_EPOCH before v2), CONCURRENT_TRANSACTIONS (a transition or markers in
    flight), NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS, INVALID_REQUEST (empty id).
  - verify_only answers, per partition, NONE if it is in the transaction, else
    TRANSACTION_ABORTABLE, without changing anything.
  - Needs WRITE on the transactional id (every partition TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
    and on each topic (TOPIC_AUTHORIZATION_FAILED, the others OPERATION_NOT_ATTEMPTED); v4+
    (broker-to-broker) CLUSTER_ACTION on the cluster, as Kafka (api/auth_helper.py).
- Gaps: no CLUSTER_ACTION / TRANSACTIONAL_ID_AUTHORIZATION_FAILED checks (no authorizer).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kbroker.api import auth_helper, transaction_errors
from kbroker.api.auth_helper import AclOperation, ResourceType
from kbroker.api.request_context import RequestContext
from kbroker.protocol.api_keys import ApiKey
from kbroker.protocol.errors import Errors

if TYPE_CHECKING:
    from kbroker.protocol.message_types import (
        AddPartitionsToTxnRequest,
        AddPartitionsToTxnRequestAddPartitionsToTxnTopic,
        AddPartitionsToTxnResponse,
        AddPartitionsToTxnResponseAddPartitionsToTxnResult,
        AddPartitionsToTxnResponseAddPartitionsToTxnTopicResult,
    )

API_KEY = ApiKey.ADD_PARTITIONS_TO_TXN
VERSIONS = (0, 5)

TopicPartition = tuple[str, int]


async def handle(ctx: RequestContext, request: AddPartitionsToTxnRequest) -> AddPartitionsToTxnResponse:
    if ctx.api_version < 4:
        results = await _one_transaction(ctx, request["v3_and_below_transactional_id"],
                                         request["v3_and_below_producer_id"], request["v3_and_below_producer_epoch"],
                                         False, request["v3_and_below_topics"])
        return {"throttle_time_ms": 0, "results_by_topic_v3_and_below": results}
    error = auth_helper.cluster_error(ctx, AclOperation.CLUSTER_ACTION)  # v4+ come from brokers only
    if error:
        return {"throttle_time_ms": 0, "error_code": error, "results_by_transaction": []}
    answers: list[AddPartitionsToTxnResponseAddPartitionsToTxnResult] = []
    for txn in request["transactions"]:
        results = await _one_transaction(ctx, txn["transactional_id"], txn["producer_id"], txn["producer_epoch"],
                                         txn["verify_only"], txn["topics"])
        answers.append({"transactional_id": txn["transactional_id"], "topic_results": results})
    return {"throttle_time_ms": 0, "error_code": Errors.NONE, "results_by_transaction": answers}


async def _one_transaction(ctx: RequestContext, transactional_id: str, producer_id: int, producer_epoch: int,
                           verify_only: bool, topics: list[AddPartitionsToTxnRequestAddPartitionsToTxnTopic]
                           ) -> list[AddPartitionsToTxnResponseAddPartitionsToTxnTopicResult]:
    partitions = [(t["name"], p) for t in topics for p in t["partitions"]]
    cache = ctx.services.metadata_cache
    missing = {tp for tp in partitions if cache.partition(*tp) is None}
    errors: dict[TopicPartition, Errors]
    refused = {} if verify_only else _refused(ctx, transactional_id, partitions)
    if refused:  # as a missing partition: the others are not attempted
        errors = {tp: refused.get(tp, Errors.OPERATION_NOT_ATTEMPTED) for tp in partitions}
    elif missing:  # one failed partition fails them all: the others are not attempted
        errors = {tp: Errors.UNKNOWN_TOPIC_OR_PARTITION if tp in missing else Errors.OPERATION_NOT_ATTEMPTED
                  for tp in partitions}
    elif verify_only:
        errors = ctx.services.transaction_coordinator.handle_verify_partitions_in_transaction(
            transactional_id, producer_id, producer_epoch, set(partitions))
    else:
        error = await ctx.services.transaction_coordinator.handle_add_partitions_to_transaction(
            transactional_id, producer_id, producer_epoch, set(partitions))
        errors = dict.fromkeys(partitions, transaction_errors.for_version(error, ctx.api_version, 2))
    return [{"name": t["name"], "results_by_partition": [
        {"partition_index": p, "partition_error_code": errors[(t["name"], p)]} for p in t["partitions"]]}
        for t in topics]


def _refused(ctx: RequestContext, transactional_id: str, partitions: list[TopicPartition]) -> dict[TopicPartition, Errors]:
    """The partitions the authorizer refuses, with Kafka's error; empty when all are allowed."""
    error = auth_helper.error_for(ctx, AclOperation.WRITE, ResourceType.TRANSACTIONAL_ID, transactional_id)
    if error:
        return dict.fromkeys(partitions, error)
    writable = auth_helper.authorized_names(ctx, AclOperation.WRITE, ResourceType.TOPIC, [t for t, _ in partitions])
    return {tp: Errors.TOPIC_AUTHORIZATION_FAILED for tp in partitions if tp[0] not in writable}
