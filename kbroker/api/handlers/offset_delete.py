"""OffsetDelete (47): deletes a group's committed offsets for some partitions (KIP-496).

- Versions: 0 served and advertised.
- Behaviour:
  - Any of an Empty group's offsets; of a consumer group with members, only those of topics it
    does not subscribe to (GROUP_SUBSCRIBED_TO_TOPIC for the others).
  - A group with members of another protocol type gets NON_EMPTY_GROUP.
  - Partitions that do not exist get UNKNOWN_TOPIC_OR_PARTITION.
  - A group error leaves the topic list empty.
  - Needs DELETE on the group (else GROUP_AUTHORIZATION_FAILED) and READ on each topic (else
    its partitions TOPIC_AUTHORIZATION_FAILED), as Kafka (api/auth_helper.py).
- Gaps: none known.
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
        OffsetDeleteRequest,
        OffsetDeleteResponse,
        OffsetDeleteResponseOffsetDeleteResponsePartition,
    )

API_KEY = ApiKey.OFFSET_DELETE
VERSIONS = (0, 0)


async def handle(ctx: RequestContext, request: OffsetDeleteRequest) -> OffsetDeleteResponse:
    cache = ctx.services.metadata_cache
    error = auth_helper.error_for(ctx, AclOperation.DELETE, ResourceType.GROUP, request["group_id"])
    if error:
        return {"error_code": error, "throttle_time_ms": 0, "topics": []}
    readable = auth_helper.authorized_names(ctx, AclOperation.READ, ResourceType.TOPIC,
                                            [t["name"] for t in request["topics"]])
    errors: dict[tuple[str, int], Errors] = {}
    existing = []
    for topic in request["topics"]:
        for p in topic["partitions"]:
            tp = (topic["name"], p["partition_index"])
            if tp[0] not in readable:
                errors[tp] = Errors.TOPIC_AUTHORIZATION_FAILED
            elif cache.partition(*tp) is None:
                errors[tp] = Errors.UNKNOWN_TOPIC_OR_PARTITION
            else:
                existing.append(tp)
    group_error, deleted = ctx.services.group_coordinator.delete_offsets(request["group_id"], existing)
    if group_error != Errors.NONE:
        return {"error_code": group_error, "throttle_time_ms": 0, "topics": []}
    errors.update(deleted)
    by_topic: dict[str, list[OffsetDeleteResponseOffsetDeleteResponsePartition]] = {}
    for (name, partition), error in errors.items():
        by_topic.setdefault(name, []).append({"partition_index": partition, "error_code": error})
    return {"error_code": Errors.NONE, "throttle_time_ms": 0,
            "topics": [{"name": t, "partitions": ps} for t, ps in by_topic.items()]}
