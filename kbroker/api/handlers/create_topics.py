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
  - A request whose topics add up to more than 10,000 partitions (num.partitions counting for -1,
    the assignments' count when given) is refused before anything is placed, as Kafka 4's
    controller refuses it: every topic of the request answers POLICY_VIOLATION "Excessively large
    number of partitions per request."
  - v5+ answers carry the partition count, replication factor and the topic's configs; v7 the
    topic id.
  - Needs CREATE on the cluster or on the topic (TOPIC_AUTHORIZATION_FAILED "Authorization
    failed."); a created topic's configs (v5+) need DESCRIBE_CONFIGS on it, else
    topic_config_error_code TOPIC_AUTHORIZATION_FAILED, as Kafka (api/auth_helper.py).
  - controller_mutation_rate (KIP-599, api/quota_helper.py): each topic to create spends its
    partitions; from v6 a topic arriving while the quota is exhausted answers
    THROTTLING_QUOTA_EXCEEDED and is not created, before v6 it is created and the answer
    throttled; throttle_time_ms says how long to wait.
- Gaps: a topic refused by validation after the quota was charged (an existing topic, say) still
  counts against controller_mutation_rate, where Kafka charges only topics that pass validation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kbroker.api import auth_helper, quota_helper
from kbroker.api.auth_helper import AclOperation, ResourceType
from kbroker.api.config_helper import split_null_values, topic_config_entries
from kbroker.api.request_context import RequestContext
from kbroker.metadata.admin_manager import TopicRequest, TopicResult
from kbroker.protocol.api_keys import ApiKey
from kbroker.protocol.errors import Errors

if TYPE_CHECKING:
    from kbroker.protocol.message_types import (
        CreateTopicsRequest,
        CreateTopicsRequestCreatableTopic,
        CreateTopicsResponse,
        CreateTopicsResponseCreatableTopicConfigs,
        CreateTopicsResponseCreatableTopicResult,
    )

API_KEY = ApiKey.CREATE_TOPICS
VERSIONS = (0, 7)


async def handle(ctx: RequestContext, request: CreateTopicsRequest) -> CreateTopicsResponse:
    names = [t["name"] for t in request["topics"]]
    duplicates = {n for n in names if names.count(n) > 1}
    unique = [t for t in request["topics"] if t["name"] not in duplicates]
    too_many = ctx.services.admin_manager.check_partitions_requested([_as_topic_request(t) for t in unique])
    if too_many is not None:
        return {"throttle_time_ms": 0,
                "topics": [_result(ctx, TopicResult(t["name"], too_many.code, too_many.message))
                           for t in request["topics"]]}
    creatable = (set(names) if auth_helper.authorize(ctx, AclOperation.CREATE, ResourceType.CLUSTER)
                 else auth_helper.authorized_names(ctx, AclOperation.CREATE, ResourceType.TOPIC, names))
    checked = [_topic_request(ctx, t) if t["name"] in creatable
               else TopicResult(t["name"], Errors.TOPIC_AUTHORIZATION_FAILED, "Authorization failed.")
               for t in unique]
    quota = quota_helper.controller_mutation_quota(ctx, strict_since_version=6)
    if not request["validate_only"]:
        checked = [_charged(ctx, quota, c) if isinstance(c, TopicRequest) else c for c in checked]
    wanted = [c for c in checked if isinstance(c, TopicRequest)]
    created = iter(await ctx.services.admin_manager.create_topics(wanted, request["timeout_ms"],
                                                                request["validate_only"]))
    # In request order: the admin manager answers its topics in the order it was given them.
    out = [_result(ctx, c if isinstance(c, TopicResult) else next(created)) for c in checked]
    out += [{"name": n, "error_code": Errors.INVALID_REQUEST,
             "error_message": f"Create topics request from client `{ctx.client_id}` contains multiple "
                              f"entries for the following topics: {n}"} for n in sorted(duplicates)]
    return {"throttle_time_ms": quota.throttle_time_ms, "topics": out}


def _charged(ctx: RequestContext, quota: quota_helper.ControllerMutationQuota,
             topic: TopicRequest) -> TopicRequest | TopicResult:
    """The topic if the controller mutation quota lets it be created, else Kafka's refusal."""
    partitions = len(topic.assignments) or topic.num_partitions
    if partitions < 0:
        partitions = ctx.services.config.get("num.partitions")
    if quota.record(partitions):
        return topic
    return TopicResult(topic.name, Errors.THROTTLING_QUOTA_EXCEEDED, Errors.THROTTLING_QUOTA_EXCEEDED.message)


def _topic_request(ctx: RequestContext, topic: CreateTopicsRequestCreatableTopic) -> TopicRequest | TopicResult:
    """What to ask the admin manager to create, or Kafka's answer to null config values: INVALID_CONFIG
    naming them all, checked right after the topic's existence, as ZkAdminManager.createTopics does."""
    name = topic["name"]
    configs, nulls = split_null_values(topic["configs"])
    if nulls and ctx.services.metadata_cache.topic(name) is None:
        return TopicResult(name, Errors.INVALID_CONFIG,
                           f"Null value not supported for topic configs: {','.join(nulls)}")
    return _as_topic_request(topic, configs)


def _as_topic_request(topic: CreateTopicsRequestCreatableTopic, configs: dict[str, str] | None = None) -> TopicRequest:
    return TopicRequest(topic["name"], topic["num_partitions"], topic["replication_factor"],
                        {a["partition_index"]: a["broker_ids"] for a in topic["assignments"]}, configs or {})


def _result(ctx: RequestContext, result: TopicResult) -> CreateTopicsResponseCreatableTopicResult:
    if result.error != Errors.NONE:
        return {"name": result.name, "error_code": result.error, "error_message": result.message,
                "num_partitions": -1, "replication_factor": -1, "configs": []}  # Kafka's default: empty
    if not auth_helper.authorize(ctx, AclOperation.DESCRIBE_CONFIGS, ResourceType.TOPIC, result.name):
        return {"name": result.name, "topic_id": result.topic_id,  # type: ignore[typeddict-item]
                "error_code": 0, "error_message": None, "topic_config_error_code": Errors.TOPIC_AUTHORIZATION_FAILED,
                "num_partitions": result.num_partitions, "replication_factor": result.replication_factor,
                "configs": None}
    configs: list[CreateTopicsResponseCreatableTopicConfigs] = [
        {"name": e.name, "value": e.value, "read_only": e.read_only, "config_source": e.source,
         "is_sensitive": e.is_sensitive}
        for e in topic_config_entries(ctx.services.config, result.configs)]
    # TopicResult.topic_id (kbroker/metadata) is typed object: a created topic's is its UUID.
    return {"name": result.name, "topic_id": result.topic_id,  # type: ignore[typeddict-item]
            "error_code": 0, "error_message": None,
            "num_partitions": result.num_partitions, "replication_factor": result.replication_factor,
            "configs": configs}
