"""DeleteRecords (21): moves partitions' log start offsets forward.

- Versions: 0-2 served and advertised.
- Behaviour:
  - Each partition's log start offset moves to the offset given (-1: the high watermark);
    whole segments below it are deleted by retention, and reads below it get
    OFFSET_OUT_OF_RANGE.
  - Offsets past the high watermark: OFFSET_OUT_OF_RANGE; compacted topics: POLICY_VIOLATION;
    partitions we do not lead: NOT_LEADER_OR_FOLLOWER.
  - The low watermark answered is the new log start offset.
  - Needs DELETE on each topic, else TOPIC_AUTHORIZATION_FAILED (api/auth_helper.py).
- Gaps: with followers, Kafka answers once they have moved their log start too; we answer at once.
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
        DeleteRecordsRequest,
        DeleteRecordsResponse,
        DeleteRecordsResponseDeleteRecordsPartitionResult,
        DeleteRecordsResponseDeleteRecordsTopicResult,
    )

API_KEY = ApiKey.DELETE_RECORDS
VERSIONS = (0, 2)


async def handle(ctx: RequestContext, request: DeleteRecordsRequest) -> DeleteRecordsResponse:
    replica_manager = ctx.services.replica_manager
    topics: list[DeleteRecordsResponseDeleteRecordsTopicResult] = []
    deletable = auth_helper.authorized_names(ctx, AclOperation.DELETE, ResourceType.TOPIC,
                                             [t["name"] for t in request["topics"]])
    for topic in request["topics"]:
        partitions: list[DeleteRecordsResponseDeleteRecordsPartitionResult] = []
        for p in topic["partitions"]:
            if topic["name"] not in deletable:
                error, low_watermark = Errors.TOPIC_AUTHORIZATION_FAILED, -1
            else:
                error, low_watermark = replica_manager.delete_records(topic["name"], p["partition_index"],
                                                                      p["offset"])
            partitions.append({"partition_index": p["partition_index"], "low_watermark": low_watermark,
                               "error_code": error})
        topics.append({"name": topic["name"], "partitions": partitions})
    return {"throttle_time_ms": 0, "topics": topics}
