"""FindCoordinator (10): the broker that coordinates a group or a transactional id.

- Versions: 0-6 served and advertised. v0-3 ask for one key (v1+ carry an error message); v4+
  batch keys, one answer each.
- Behaviour:
  - Group keys (key type 0) are answered with the leader of their `__consumer_offsets`
    partition (abs(javaStringHash(groupId)) % partitions).
  - The topic is created on first use with offsets.topic.num.partitions,
    offsets.topic.replication.factor and Kafka's topic configs (compact,
    compression.type=producer, offsets.topic.segment.bytes); that first answer, and any while
    the partition has no live leader, is COORDINATOR_NOT_AVAILABLE, as Kafka answers.
  - Transaction keys (key type 1) are answered with the leader of their `__transaction_state`
    partition (same hash, transaction.state.log.num.partitions), the topic created the same
    way on first use with transaction.state.log.replication.factor and Kafka's configs
    (compact, uncompressed, min.insync.replicas = transaction.state.log.min.isr,
    transaction.state.log.segment.bytes, unclean leader election off).
  - Other key types (share groups) get INVALID_REQUEST.
  - Needs DESCRIBE on the group (GROUP_AUTHORIZATION_FAILED) or the transactional id
    (TRANSACTIONAL_ID_AUTHORIZATION_FAILED), as Kafka (api/auth_helper.py).
- Gaps: none known.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from kbroker.api import auth_helper
from kbroker.api.auth_helper import AclOperation, ResourceType
from kbroker.api.request_context import RequestContext
from kbroker.metadata.admin_manager import TopicRequest
from kbroker.metadata.topic_names import GROUP_METADATA_TOPIC_NAME, TRANSACTION_STATE_TOPIC_NAME
from kbroker.protocol.api_keys import ApiKey
from kbroker.protocol.errors import Errors

if TYPE_CHECKING:
    from kbroker.protocol.message_types import (
        FindCoordinatorRequest,
        FindCoordinatorResponse,
        FindCoordinatorResponseCoordinator,
    )

API_KEY = ApiKey.FIND_COORDINATOR
VERSIONS = (0, 6)

GROUP_KEY_TYPE = 0
TRANSACTION_KEY_TYPE = 1
NO_NODE = (-1, "", -1)
# What Kafka's Errors.message() says (v1-3 send it, "NONE" included).
_MESSAGES = {
    Errors.NONE: "NONE",
    Errors.COORDINATOR_NOT_AVAILABLE: "The coordinator is not available.",
    Errors.INVALID_REQUEST: "This most likely occurs because of a request being malformed by the client library "
                            "or the message was sent to an incompatible broker. See the broker logs for more details.",
}

log = logging.getLogger("kbroker.request")


async def handle(ctx: RequestContext, request: FindCoordinatorRequest) -> FindCoordinatorResponse:
    key_type = request["key_type"]
    if ctx.api_version >= 4:
        coordinators: list[FindCoordinatorResponseCoordinator] = []
        for key in request["coordinator_keys"]:
            error, (node_id, host, port) = _find(ctx, key_type, key)
            coordinators.append({"key": key, "node_id": node_id, "host": host, "port": port, "error_code": error,
                                 "error_message": None})
        return {"throttle_time_ms": 0, "coordinators": coordinators}
    error, (node_id, host, port) = _find(ctx, key_type, request["key"])
    return {"throttle_time_ms": 0, "error_code": error, "error_message": _MESSAGES.get(error),
            "node_id": node_id, "host": host, "port": port}


def _find(ctx: RequestContext, key_type: int, key: str) -> tuple[Errors, tuple[int, str, int]]:
    if key_type == GROUP_KEY_TYPE:
        topic_request = _offsets_topic
    elif key_type == TRANSACTION_KEY_TYPE:
        topic_request = _transaction_state_topic
    else:
        return Errors.INVALID_REQUEST, NO_NODE
    resource_type = ResourceType.GROUP if key_type == GROUP_KEY_TYPE else ResourceType.TRANSACTIONAL_ID
    error = auth_helper.error_for(ctx, AclOperation.DESCRIBE, resource_type, key)
    if error:
        return error, NO_NODE
    cache = ctx.services.metadata_cache
    request, partition_for = topic_request(ctx)
    topic = cache.topic(request.name)
    if topic is None:
        _create_internal_topic(ctx, request)
        return Errors.COORDINATOR_NOT_AVAILABLE, NO_NODE
    state = topic.partitions.get(partition_for(key))
    endpoint = cache.endpoint_of(state.leader, ctx.listener_name) if state is not None else None
    if state is None or endpoint is None:
        return Errors.COORDINATOR_NOT_AVAILABLE, NO_NODE
    return Errors.NONE, (state.leader, endpoint.host, endpoint.port)


def _offsets_topic(ctx: RequestContext) -> tuple[TopicRequest, Callable[[str], int]]:
    coordinator = ctx.services.group_coordinator
    config = coordinator.offset_config
    return (TopicRequest(GROUP_METADATA_TOPIC_NAME, config.topic_num_partitions, config.topic_replication_factor,
                         configs=coordinator.offsets_topic_configs()), coordinator.partition_for)


def _transaction_state_topic(ctx: RequestContext) -> tuple[TopicRequest, Callable[[str], int]]:
    coordinator = ctx.services.transaction_coordinator
    config = coordinator.config
    return (TopicRequest(TRANSACTION_STATE_TOPIC_NAME, config.topic_num_partitions, config.topic_replication_factor,
                         configs=coordinator.transaction_topic_configs()), coordinator.partition_for)


def _create_internal_topic(ctx: RequestContext, request: TopicRequest) -> None:
    """The coordinator's topic on first use (Kafka's AutoTopicCreationManager for internal topics)."""
    result = ctx.services.admin_manager.create_topic_now(request)
    if result.error not in (Errors.NONE, Errors.TOPIC_ALREADY_EXISTS):
        log.warning("cannot create %s: %s (%s)", request.name, result.error.name, result.message)
