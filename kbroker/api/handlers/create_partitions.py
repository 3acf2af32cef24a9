"""CreatePartitions (37): grows a topic to `count` partitions.

- Versions: 0-3 served and advertised.
- Behaviour:
  - The new partitions get Kafka's assignment, or the explicit assignments given; the
    controller brings them online and the answer waits up to timeout_ms.
  - Errors as Kafka: UNKNOWN_TOPIC_OR_PARTITION, INVALID_PARTITIONS (fewer or the same count),
    INVALID_REPLICA_ASSIGNMENT (wrong number of assignments, unknown brokers, duplicates),
    INVALID_REQUEST for a topic named twice.
  - A request that would add more than 10,000 partitions over all its topics is refused before
    anything is placed: every topic answers POLICY_VIOLATION "Excessively large number of
    partitions per request." (Kafka 4's CreateTopics bound; its controller bounds every
    operation at 10,000 records).
  - validate_only checks without changing anything.
  - Needs ALTER on each topic, else TOPIC_AUTHORIZATION_FAILED (api/auth_helper.py).
  - controller_mutation_rate (KIP-599, api/quota_helper.py): each topic spends the partitions
    it adds; from v3 a topic arriving while the quota is exhausted answers
    THROTTLING_QUOTA_EXCEEDED and is left alone, before v3 it grows and the answer is throttled.
- Gaps: none known.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kbroker.api import auth_helper, quota_helper
from kbroker.api.auth_helper import AclOperation, ResourceType
from kbroker.api.request_context import RequestContext
from kbroker.protocol.api_keys import ApiKey
from kbroker.protocol.errors import Errors

if TYPE_CHECKING:
    from kbroker.protocol.message_types import (
        CreatePartitionsRequest,
        CreatePartitionsResponse,
        CreatePartitionsResponseCreatePartitionsTopicResult,
    )

API_KEY = ApiKey.CREATE_PARTITIONS
VERSIONS = (0, 3)


async def handle(ctx: RequestContext, request: CreatePartitionsRequest) -> CreatePartitionsResponse:
    too_many = ctx.services.admin_manager.check_partitions_added([(t["name"], t["count"]) for t in request["topics"]])
    if too_many is not None:
        return {"throttle_time_ms": 0, "results": [{"name": t["name"], "error_code": too_many.code,
                                                    "error_message": too_many.message} for t in request["topics"]]}
    names = [t["name"] for t in request["topics"]]
    duplicates = {n for n in names if names.count(n) > 1}
    alterable = auth_helper.authorized_names(ctx, AclOperation.ALTER, ResourceType.TOPIC, names)
    changes = [(t["name"], t["count"], None if t["assignments"] is None else [a["broker_ids"] for a in t["assignments"]])
               for t in request["topics"] if t["name"] not in duplicates and t["name"] in alterable]
    quota = quota_helper.controller_mutation_quota(ctx, strict_since_version=3)
    throttled = set()
    if not request["validate_only"]:
        throttled = {name for name, count, _ in changes if not quota.record(_added(ctx, name, count))}
    results = await ctx.services.admin_manager.create_partitions([c for c in changes if c[0] not in throttled],
                                                               request["timeout_ms"], request["validate_only"])
    out: list[CreatePartitionsResponseCreatePartitionsTopicResult] = [
        {"name": n, "error_code": e, "error_message": m} for n, (e, m) in results.items()]
    out += [{"name": n, "error_code": Errors.THROTTLING_QUOTA_EXCEEDED,
             "error_message": Errors.THROTTLING_QUOTA_EXCEEDED.message} for n in throttled]
    out += [{"name": n, "error_code": Errors.TOPIC_AUTHORIZATION_FAILED, "error_message": None}
            for n in dict.fromkeys(names) if n not in duplicates and n not in alterable]
    out += [{"name": n, "error_code": Errors.INVALID_REQUEST,
             "error_message": "Duplicate topic in request."} for n in sorted(duplicates)]
    return {"throttle_time_ms": quota.throttle_time_ms, "results": out}


def _added(ctx: RequestContext, name: str, count: int) -> int:
    """The partitions a change adds (0 for a topic we do not know: its validation fails)."""
    topic = ctx.services.metadata_cache.topic(name)
    return 0 if topic is None else max(0, count - len(topic.partitions))
