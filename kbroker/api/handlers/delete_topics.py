"""DeleteTopics (20): deletes topics and waits until this broker's metadata no longer has them.

- Versions: 0-6 served and advertised. Topics by name (v0-5 TopicNames, v6 Topics with a name)
  or by id (v6, name null); error messages from v5.
- Behaviour:
  - Each topic is marked under /admin/delete_topics; the controller stops its replicas,
    deletes its logs and removes its znodes.
  - The answer waits until this broker's metadata no longer has it (REQUEST_TIMED_OUT after
    timeout_ms).
  - Unknown names: UNKNOWN_TOPIC_OR_PARTITION; unknown ids: UNKNOWN_TOPIC_ID;
    delete.topic.enable=false: TOPIC_DELETION_DISABLED.
  - Needs DELETE on each topic, else TOPIC_AUTHORIZATION_FAILED (api/auth_helper.py).
  - controller_mutation_rate (KIP-599, api/quota_helper.py): each topic deleted spends its
    partitions; from v5 a topic arriving while the quota is exhausted answers
    THROTTLING_QUOTA_EXCEEDED and stays, before v5 it is deleted and the answer throttled.
- Gaps: none known.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kbroker.api import auth_helper, quota_helper
from kbroker.api.auth_helper import AclOperation, ResourceType
from kbroker.api.request_context import RequestContext
from kbroker.protocol.api_keys import ApiKey
from kbroker.protocol.errors import Errors
from kbroker.protocol.uuids import ZERO_UUID

if TYPE_CHECKING:
    from uuid import UUID

    from kbroker.protocol.message_types import (
        DeleteTopicsRequest,
        DeleteTopicsResponse,
        DeleteTopicsResponseDeletableTopicResult,
    )

API_KEY = ApiKey.DELETE_TOPICS
VERSIONS = (0, 6)


async def handle(ctx: RequestContext, request: DeleteTopicsRequest) -> DeleteTopicsResponse:
    cache = ctx.services.metadata_cache
    if ctx.api_version >= 6:
        wanted = [(t["name"], t["topic_id"]) for t in request["topics"]]
    else:
        wanted = [(name, ZERO_UUID) for name in request["topic_names"]]
    # Resolve ids to names first; answers keep the request's order.
    resolved: list[tuple[str | None, UUID]] = []
    for name, topic_id in wanted:
        if name is None:
            topic = cache.topic_by_id(topic_id)
            name = topic.name if topic is not None else None
        resolved.append((name, topic_id))
    deletable = auth_helper.authorized_names(ctx, AclOperation.DELETE, ResourceType.TOPIC,
                                             [n for n, _ in resolved if n is not None])
    quota = quota_helper.controller_mutation_quota(ctx, strict_since_version=5)
    throttled = {n for n, _ in resolved if n in deletable and not quota.record(_partitions(ctx, n))}
    results = await ctx.services.admin_manager.delete_topics(
        [n for n, _ in resolved if n in deletable and n not in throttled], request["timeout_ms"])
    results.update({n: (Errors.THROTTLING_QUOTA_EXCEEDED, Errors.THROTTLING_QUOTA_EXCEEDED.message)
                    for n in throttled})
    results.update({n: (Errors.TOPIC_AUTHORIZATION_FAILED, None) for n, _ in resolved
                    if n is not None and n not in deletable})
    responses: list[DeleteTopicsResponseDeletableTopicResult] = []
    for name, topic_id in resolved:
        if name is None:
            responses.append({"name": None, "topic_id": topic_id, "error_code": Errors.UNKNOWN_TOPIC_ID,
                              "error_message": "Topic id not found"})
            continue
        error, message = results[name]
        responses.append({"name": name, "topic_id": topic_id, "error_code": error, "error_message": message})
    return {"throttle_time_ms": quota.throttle_time_ms, "responses": responses}


def _partitions(ctx: RequestContext, name: str) -> int:
    topic = ctx.services.metadata_cache.topic(name)
    return 0 if topic is None else len(topic.partitions)
