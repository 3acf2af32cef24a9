"""CreateTopics (19): creates topics and waits until their partitions are online.

- Versions: 0-7 served and advertised.
- Behaviour:
  - Each topic is validated (legal name, no '.'/'_' collision, partitions and replication
    factor or an explicit assignment but not both, replication factor <= live brokers, known
    topic configs with valid values), then written for the controller, which brings its
    partitions online; the answer waits for that up to timeout_ms (REQUEST_TIMED_OUT after).
  - -1 for partitions or replication factor takes num.partitions / default.replication.factor
    (v4+). validate_only (v1+) checks without creating.
  - A name given twice gets INVALID_REQUEST.
  - v5+ answers carry the partition count, replication factor and the topic's configs; v7 the
    topic id.
- Gaps: none known.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kbroker.api.config_helper import topic_config_entries
from kbroker.api.request_context import RequestContext
from kbroker.metadata.admin_manager import TopicRequest, TopicResult
from kbroker.protocol.api_keys import ApiKey
from kbroker.protocol.errors import Errors

if TYPE_CHECKING:
    from kbroker.protocol.message_types import CreateTopicsRequest, CreateTopicsResponse

API_KEY = ApiKey.CREATE_TOPICS
VERSIONS = (0, 7)


async def handle(ctx: RequestContext, request: CreateTopicsRequest) -> CreateTopicsResponse:
    names = [t["name"] for t in request["topics"]]
    duplicates = {n for n in names if names.count(n) > 1}
    wanted = [TopicRequest(t["name"], t["num_partitions"], t["replication_factor"],
                           {a["partition_index"]: a["broker_ids"] for a in t["assignments"]},
                           {c["name"]: c["value"] for c in t["configs"]})
              for t in request["topics"] if t["name"] not in duplicates]
    results = await ctx.services.admin_manager.create_topics(wanted, request["timeout_ms"],
                                                           request["validate_only"])
    out = [_result(ctx, r) for r in results]
    out += [{"name": n, "error_code": Errors.INVALID_REQUEST,
             "error_message": f"Create topics request from client `{ctx.client_id}` contains multiple "
                              f"entries for the following topics: {n}"} for n in sorted(duplicates)]
    return {"throttle_time_ms": 0, "topics": out}


def _result(ctx: RequestContext, result: TopicResult) -> dict:
    if result.error != Errors.NONE:
        return {"name": result.name, "error_code": result.error, "error_message": result.message,
                "num_partitions": -1, "replication_factor": -1, "configs": None}
    configs = [{"name": e.name, "value": e.value, "read_only": e.read_only, "config_source": e.source,
                "is_sensitive": e.is_sensitive}
               for e in topic_config_entries(ctx.services.config, result.configs)]
    return {"name": result.name, "topic_id": result.topic_id, "error_code": 0, "error_message": None,
            "num_partitions": result.num_partitions, "replication_factor": result.replication_factor,
            "configs": configs}
