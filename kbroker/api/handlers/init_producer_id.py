"""InitProducerId (22): a producer id and epoch for an idempotent or transactional producer.

- Versions: 0-5 served and advertised.
- Behaviour:
  - v3+: a producer id without an epoch, or an epoch without an id, is INVALID_REQUEST.
  - Without a transactional id (the idempotent producer) any broker answers with a new
    producer id and epoch 0, taken from a block claimed in /latest_producer_id_block; ids are
    never reused across restarts or brokers. v3+ producers that already hold an id (KIP-360
    epoch bump) get a fresh id too, which is what Kafka does for non-transactional producers.
  - With a transactional id the TransactionCoordinator answers (kbroker/txn/): a new id or an
    epoch bump that fences the previous producer; an ongoing transaction is aborted first and
    the caller gets CONCURRENT_TRANSACTIONS (also while markers are being written); a v3+
    producer's expected id and epoch that are not current get PRODUCER_FENCED
    (INVALID_PRODUCER_EPOCH before v4); an empty transactional id INVALID_REQUEST; a timeout
    above transaction.max.timeout.ms INVALID_TRANSACTION_TIMEOUT; NOT_COORDINATOR /
    COORDINATOR_LOAD_IN_PROGRESS for ids this broker does not (yet) coordinate.
  - A transactional id needs WRITE on it (TRANSACTIONAL_ID_AUTHORIZATION_FAILED); an idempotent
    producer IDEMPOTENT_WRITE on the cluster or WRITE on some topic (CLUSTER_AUTHORIZATION_FAILED),
    as Kafka (api/auth_helper.py).
- Gaps: v6 (KIP-939 two-phase commit) is not served: Kafka 4.x's schema marks it
  latestVersionUnstable, so Kafka advertises 0-5 too (unless unstable.api.versions.enable).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kbroker.api import auth_helper, transaction_errors
from kbroker.api.auth_helper import AclOperation, ResourceType
from kbroker.api.request_context import RequestContext
from kbroker.protocol.api_keys import ApiKey
from kbroker.protocol.errors import Errors

if TYPE_CHECKING:
    from kbroker.protocol.message_types import InitProducerIdRequest, InitProducerIdResponse

API_KEY = ApiKey.INIT_PRODUCER_ID
VERSIONS = (0, 5)
NO_PRODUCER_ID = -1


async def handle(ctx: RequestContext, request: InitProducerIdRequest) -> InitProducerIdResponse:
    transactional_id = request["transactional_id"]
    if ctx.api_version >= 3 and (request["producer_id"] == NO_PRODUCER_ID) != (request["producer_epoch"] == -1):
        return {"throttle_time_ms": 0, "error_code": Errors.INVALID_REQUEST, "producer_id": NO_PRODUCER_ID,
                "producer_epoch": -1}  # an id without an epoch, or an epoch without an id
    error = _authorization_error(ctx, transactional_id)
    if error:
        return {"throttle_time_ms": 0, "error_code": error, "producer_id": NO_PRODUCER_ID, "producer_epoch": -1}
    if transactional_id is None:
        producer_id = ctx.services.producer_id_manager.generate_producer_id()
        return {"throttle_time_ms": 0, "error_code": 0, "producer_id": producer_id, "producer_epoch": 0}
    expected = None
    if ctx.api_version >= 3 and request["producer_id"] != NO_PRODUCER_ID:
        expected = (request["producer_id"], request["producer_epoch"])
    result = await ctx.services.transaction_coordinator.handle_init_producer_id(
        transactional_id, request["transaction_timeout_ms"], expected)
    return {"throttle_time_ms": 0, "error_code": transaction_errors.for_version(result.error, ctx.api_version, 4),
            "producer_id": result.producer_id, "producer_epoch": result.producer_epoch}


def _authorization_error(ctx: RequestContext, transactional_id: str | None) -> Errors:
    """Kafka's checks: WRITE on the transactional id; without one, IDEMPOTENT_WRITE on the
    cluster or WRITE on some topic (KIP-679)."""
    if transactional_id is not None:
        return auth_helper.error_for(ctx, AclOperation.WRITE, ResourceType.TRANSACTIONAL_ID, transactional_id)
    if (auth_helper.authorize(ctx, AclOperation.IDEMPOTENT_WRITE, ResourceType.CLUSTER)
            or auth_helper.authorize_by_resource_type(ctx, AclOperation.WRITE, ResourceType.TOPIC)):
        return Errors.NONE
    return Errors.CLUSTER_AUTHORIZATION_FAILED
