"""OffsetCommit (8): commits a group's consumed offsets.

- Versions: 0-10 served and advertised.
- Behaviour:
  - Partitions of unknown topics get UNKNOWN_TOPIC_OR_PARTITION (v10, topics by id:
    UNKNOWN_TOPIC_ID).
  - The rest go to the GroupCoordinator, which checks the member and generation (v1+; -1 and no
    member id for offsets-only groups) and writes the commits to `__consumer_offsets` with
    acks=-1.
  - The commit time is now (v1 may give its own); v2-4 may ask for a retention time, which
    becomes an expire timestamp; v6+ carry the leader epoch.
  - Metadata longer than offset.metadata.max.bytes gets OFFSET_METADATA_TOO_LARGE.
  - v9+ committing to an unknown group with a generation get GROUP_ID_NOT_FOUND
    (ILLEGAL_GENERATION before).
  - A KIP-848 consumer group's commits carry the member id and member epoch (v9+):
    UNKNOWN_MEMBER_ID for a stranger, STALE_MEMBER_EPOCH for an epoch that is not the member's
    current one, UNSUPPORTED_VERSION for a member committing below v9; an empty group accepts
    commits without a member (admin tools).
  - v0 commits go to ZooKeeper (/consumers/<group>/offsets/...), as Kafka 3.x stores them
    (kbroker/group/zk_consumer_offsets.py).
  - Needs READ on the group (else every partition GROUP_AUTHORIZATION_FAILED) and READ on each
    topic (else its partitions TOPIC_AUTHORIZATION_FAILED), as Kafka (api/auth_helper.py).
- Gaps: none known.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from kbroker.api import auth_helper, topic_ids
from kbroker.api.auth_helper import AclOperation, ResourceType
from kbroker.api.request_context import RequestContext
from kbroker.group.offset_and_metadata import OffsetAndMetadata
from kbroker.protocol.api_keys import ApiKey
from kbroker.protocol.errors import Errors

if TYPE_CHECKING:
    from kbroker.protocol.message_types import (
        OffsetCommitRequest,
        OffsetCommitRequestOffsetCommitRequestTopic,
        OffsetCommitResponse,
        OffsetCommitResponseOffsetCommitResponseTopic,
    )

API_KEY = ApiKey.OFFSET_COMMIT
VERSIONS = (0, 10)

DEFAULT_TIMESTAMP = -1
DEFAULT_RETENTION_TIME = -1


async def handle(ctx: RequestContext, request: OffsetCommitRequest) -> OffsetCommitResponse:
    version = ctx.api_version
    cache = ctx.services.metadata_cache
    now = int(time.time() * 1000)
    retention = request["retention_time_ms"] if 2 <= version <= 4 else DEFAULT_RETENTION_TIME
    expire = None if retention == DEFAULT_RETENTION_TIME else now + retention
    errors: dict[tuple[str, int], Errors] = {}
    offsets: dict[tuple[str, int], OffsetAndMetadata] = {}
    # (topic entry, [(partition index, key into errors)]) in request order
    layout: list[tuple[OffsetCommitRequestOffsetCommitRequestTopic, list[tuple[int, tuple[str, int]]]]] = []
    group_error = auth_helper.error_for(ctx, AclOperation.READ, ResourceType.GROUP, request["group_id"])
    for topic in request["topics"]:
        name, known, missing, topic_key = topic_ids.resolve(cache, topic, version >= 10)
        entries = []
        readable = name is not None and auth_helper.authorize(ctx, AclOperation.READ, ResourceType.TOPIC, name)
        for p in topic["partitions"]:
            index = p["partition_index"]
            key = (topic_key, index)
            entries.append((index, key))
            if group_error:
                errors[key] = group_error
            elif name is not None and not readable:
                errors[key] = Errors.TOPIC_AUTHORIZATION_FAILED
            elif known is None:
                errors[key] = missing
            elif index not in known.partitions:
                errors[key] = Errors.UNKNOWN_TOPIC_OR_PARTITION
            else:
                commit_time = p["commit_timestamp"] if version == 1 else DEFAULT_TIMESTAMP
                offsets[key] = OffsetAndMetadata(
                    p["committed_offset"], p["committed_leader_epoch"], p["committed_metadata"] or "",
                    now if commit_time == DEFAULT_TIMESTAMP else commit_time, expire)
        layout.append((topic, entries))
    if offsets:
        errors.update(await _commit(ctx, request, offsets))
    topics: list[OffsetCommitResponseOffsetCommitResponseTopic] = []
    for topic, entries in layout:
        topics.append({"name": topic["name"], "topic_id": topic["topic_id"],
                       "partitions": [{"partition_index": index, "error_code": errors[key]} for index, key in entries]})
    return {"throttle_time_ms": 0, "topics": topics}


async def _commit(ctx: RequestContext, request: OffsetCommitRequest,
                  offsets: dict[tuple[str, int], OffsetAndMetadata]) -> dict[tuple[str, int], Errors]:
    if ctx.api_version == 0:
        return ctx.services.zk_consumer_offsets.commit_offsets(request["group_id"], offsets)
    return await ctx.services.group_coordinator.commit_offsets(
        request["group_id"], request["member_id"], request["group_instance_id"],
        request["generation_id_or_member_epoch"], offsets, ctx.api_version)
