"""DescribeProducers (61): the producers a partition leader keeps state for.

- Versions: 0 served and advertised.
- Behaviour:
  - Per partition this broker leads: every producer id in its producer state with its epoch,
    last sequence, last timestamp, coordinator epoch and the first offset of its open
    transaction (-1 when none), as Kafka's activeProducerState.
  - UNKNOWN_TOPIC_OR_PARTITION for a partition that does not exist, NOT_LEADER_OR_FOLLOWER
    where another broker leads it.
  - Needs READ on each topic, else TOPIC_AUTHORIZATION_FAILED, as Kafka (api/auth_helper.py).
- Gaps: no TOPIC_AUTHORIZATION_FAILED (no authorizer).
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
        DescribeProducersRequest,
        DescribeProducersResponse,
        DescribeProducersResponsePartitionResponse,
        DescribeProducersResponseTopicResponse,
    )

API_KEY = ApiKey.DESCRIBE_PRODUCERS
VERSIONS = (0, 0)


async def handle(ctx: RequestContext, request: DescribeProducersRequest) -> DescribeProducersResponse:
    replica_manager = ctx.services.replica_manager
    topics: list[DescribeProducersResponseTopicResponse] = []
    readable = auth_helper.authorized_names(ctx, AclOperation.READ, ResourceType.TOPIC,
                                            [t["name"] for t in request["topics"]])
    for topic in request["topics"]:
        partitions: list[DescribeProducersResponsePartitionResponse] = []
        for index in topic["partition_indexes"]:
            error, producers = (replica_manager.active_producers(topic["name"], index) if topic["name"] in readable
                                else (Errors.TOPIC_AUTHORIZATION_FAILED, []))
            partitions.append({"partition_index": index, "error_code": error,
                               # Kafka's activeProducerState sets no message with its error.
                               "error_message": None,
                               "active_producers": [{
                                   "producer_id": e.producer_id, "producer_epoch": e.producer_epoch,
                                   "last_sequence": e.last_seq, "last_timestamp": e.last_timestamp,
                                   "coordinator_epoch": e.coordinator_epoch,
                                   "current_txn_start_offset": -1 if e.current_txn_first_offset is None
                                   else e.current_txn_first_offset} for e in producers]})
        topics.append({"name": topic["name"], "partitions": partitions})
    return {"throttle_time_ms": 0, "topics": topics}
