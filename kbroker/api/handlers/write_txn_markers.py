"""WriteTxnMarkers (27): writes transactions' COMMIT/ABORT markers to the partitions led here.

- Versions: 0-2 served and advertised (Kafka 3.9's minimum to 4.x's maximum; 4.x dropped v0).
- Behaviour:
  - Sent by a transaction coordinator (another broker's, or ours through
    ReplicaManager.append_txn_markers without a socket). Each marker becomes one control batch
    (EndTransactionMarker with the coordinator epoch) per partition, appended with acks=-1 and
    origin COORDINATOR (internal topics allowed), answered once replicated or after
    request.timeout.ms (REQUEST_TIMED_OUT), as Kafka's appendRecords.
  - Producer state completes the transaction: the last stable offset moves past it, an abort
    enters the segment's .txnindex; a COMMIT or ABORT reaches the replica manager's marker
    listeners (transactional offset commits).
  - Per-partition errors, nothing appended: UNKNOWN_TOPIC_OR_PARTITION (no local replica),
    NOT_LEADER_OR_FOLLOWER, INVALID_PRODUCER_EPOCH (an epoch older than the producer's),
    TRANSACTION_COORDINATOR_FENCED (a coordinator epoch older than the last marker's),
    NOT_ENOUGH_REPLICAS.
  - Needs CLUSTER_ACTION on the cluster, else every partition gets CLUSTER_AUTHORIZATION_FAILED
    and nothing is written, as Kafka answers (api/auth_helper.py).
  - v2's TransactionVersion (KIP-1228): a marker of transaction.version 2 or above must carry an
    epoch above the producer's last on the partition (the coordinator bumped it for the marker),
    else INVALID_PRODUCER_EPOCH; 0 and 1 (and v0-1 requests) keep the >= check. kbroker's own
    coordinator writes transaction.version 0/1 markers.
- Gaps: no
  UNSUPPORTED_FOR_MESSAGE_FORMAT (every log is magic 2).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kbroker.api import auth_helper
from kbroker.api.auth_helper import AclOperation
from kbroker.api.request_context import RequestContext
from kbroker.protocol.api_keys import ApiKey
from kbroker.replica.replica_manager import TxnMarkerEntry

if TYPE_CHECKING:
    from kbroker.protocol.message_types import (
        WriteTxnMarkersRequest,
        WriteTxnMarkersResponse,
        WriteTxnMarkersResponseWritableTxnMarkerResult,
    )

API_KEY = ApiKey.WRITE_TXN_MARKERS
VERSIONS = (0, 2)


async def handle(ctx: RequestContext, request: WriteTxnMarkersRequest) -> WriteTxnMarkersResponse:
    services = ctx.services
    entries = [
        TxnMarkerEntry(marker["producer_id"], marker["producer_epoch"], marker["coordinator_epoch"],
                       marker["transaction_result"],
                       [(topic["name"], index) for topic in marker["topics"] for index in topic["partition_indexes"]],
                       marker["transaction_version"])
        for marker in request["markers"]
    ]
    refused = auth_helper.cluster_error(ctx, AclOperation.CLUSTER_ACTION)
    if refused:
        answers = [dict.fromkeys(entry.partitions, refused) for entry in entries]
    else:
        answers = await services.replica_manager.append_txn_markers(entries, services.config["request.timeout.ms"])
    results: list[WriteTxnMarkersResponseWritableTxnMarkerResult] = []
    for marker, errors in zip(request["markers"], answers, strict=True):
        results.append({"producer_id": marker["producer_id"], "topics": [
            {"name": topic["name"], "partitions": [
                {"partition_index": index, "error_code": errors[(topic["name"], index)]}
                for index in topic["partition_indexes"]]}
            for topic in marker["topics"]]})
    return {"markers": results}
