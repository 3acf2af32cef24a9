"""InitProducerId (22): a new producer id for an idempotent producer.

- Versions: 0-5 served and advertised.
- Behaviour:
  - Without a transactional id (the idempotent producer) any broker answers with a new
    producer id and epoch 0, taken from a block claimed in /latest_producer_id_block; ids are
    never reused across restarts or brokers.
  - v3+ producers that already hold an id (KIP-360 epoch bump) get a fresh id too, which is
    what Kafka does for non-transactional producers.
- Gaps: transactional ids need the transaction coordinator, which does not exist yet; they are
  answered with COORDINATOR_NOT_AVAILABLE.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kbroker.api.request_context import RequestContext
from kbroker.protocol.api_keys import ApiKey
from kbroker.protocol.errors import Errors

if TYPE_CHECKING:
    from kbroker.protocol.message_types import InitProducerIdRequest, InitProducerIdResponse

API_KEY = ApiKey.INIT_PRODUCER_ID
VERSIONS = (0, 5)


async def handle(ctx: RequestContext, request: InitProducerIdRequest) -> InitProducerIdResponse:
    if request["transactional_id"] is not None:
        return {"throttle_time_ms": 0, "error_code": Errors.COORDINATOR_NOT_AVAILABLE, "producer_id": -1,
                "producer_epoch": -1}
    producer_id = ctx.services.producer_id_manager.generate_producer_id()
    return {"throttle_time_ms": 0, "error_code": 0, "producer_id": producer_id, "producer_epoch": 0}
