"""AddOffsetsToTxn (25): adds a group's `__consumer_offsets` partition to a transaction.

- Versions: 0-4 served and advertised.
- Behaviour:
  - The group's offsets partition (abs(javaStringHash(groupId)) % its partition count) is added
    to the transaction as AddPartitionsToTxn adds partitions, so the transaction's markers also
    land there and TxnOffsetCommit's offsets become visible (or are dropped) with them.
  - Errors as AddPartitionsToTxn's: INVALID_PRODUCER_ID_MAPPING, PRODUCER_FENCED
    (INVALID_PRODUCER_EPOCH before v2), CONCURRENT_TRANSACTIONS, NOT_COORDINATOR.
  - Needs WRITE on the transactional id (TRANSACTIONAL_ID_AUTHORIZATION_FAILED) and READ on the
    group (GROUP_AUTHORIZATION_FAILED), as Kafka (api/auth_helper.py).
- Gaps: no GROUP_AUTHORIZATION_FAILED / TRANSACTIONAL_ID_AUTHORIZATION_FAILED (no authorizer).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kbroker.api import auth_helper, transaction_errors
from kbroker.api.auth_helper import AclOperation, ResourceType
from kbroker.api.request_context import RequestContext
from kbroker.metadata.topic_names import GROUP_METADATA_TOPIC_NAME
from kbroker.protocol.api_keys import ApiKey

if TYPE_CHECKING:
    from kbroker.protocol.message_types import AddOffsetsToTxnRequest, AddOffsetsToTxnResponse

API_KEY = ApiKey.ADD_OFFSETS_TO_TXN
VERSIONS = (0, 4)


async def handle(ctx: RequestContext, request: AddOffsetsToTxnRequest) -> AddOffsetsToTxnResponse:
    services = ctx.services
    error = (auth_helper.error_for(ctx, AclOperation.WRITE, ResourceType.TRANSACTIONAL_ID, request["transactional_id"])
             or auth_helper.error_for(ctx, AclOperation.READ, ResourceType.GROUP, request["group_id"]))
    if error:
        return {"throttle_time_ms": 0, "error_code": error}
    partition = (GROUP_METADATA_TOPIC_NAME, services.group_coordinator.partition_for(request["group_id"]))
    error = await services.transaction_coordinator.handle_add_partitions_to_transaction(
        request["transactional_id"], request["producer_id"], request["producer_epoch"], {partition})
    return {"throttle_time_ms": 0, "error_code": transaction_errors.for_version(error, ctx.api_version, 2)}
