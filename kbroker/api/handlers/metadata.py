"""Metadata (3): the brokers, the controller and the topics' partitions and leaders.

- Versions: 0-13 served and advertised.
- Behaviour:
  - Brokers alive with their endpoint on the listener the request came in on (brokers without
    that listener are left out), cluster id (v2+), controller id (v1+).
  - The requested topics: all of them for a null list (v1+) or an empty one (v0), none for an
    empty list from v1. Topics may be asked for by id from v12 (unknown id: UNKNOWN_TOPIC_ID);
    v10-11 carry the field but, as in Kafka, a topic id or a null name there is an invalid
    request, and the connection is closed (no v10-11 answer can carry a topic without a name).
  - A missing topic is created when the request allows it (v4+, always before) and
    auto.create.topics.enable is on: it is answered with LEADER_NOT_AVAILABLE, as Kafka does,
    until its partitions have leaders. Illegal names get INVALID_TOPIC_EXCEPTION.
  - With an authorizer (api/auth_helper.py), as Kafka's KafkaApis: a null/all-topics request
    leaves out the topics the principal may not DESCRIBE; a topic asked for by name without
    DESCRIBE gets TOPIC_AUTHORIZATION_FAILED (by id: the id, a null name and that error).
    Auto-creation needs CREATE on the cluster or on the topic, else TOPIC_AUTHORIZATION_FAILED.
  - Authorized operations (v8+): the principal's, from the authorizer; every operation the
    resource supports without one.
  - Partitions whose leader is not alive carry LEADER_NOT_AVAILABLE, those whose leader has no
    endpoint on the request's listener LISTENER_NOT_FOUND (v6+; LEADER_NOT_AVAILABLE before),
    both with leader -1, as Kafka's ZkMetadataCache answers. `offline_replicas` lists
    replicas on dead brokers and those in a failed log dir (from the controller's
    UpdateMetadata). Before v5 (no offline replicas field) offline replicas are left out and
    REPLICA_NOT_AVAILABLE is set, as Kafka does.
- Gaps: none known.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kbroker.api import auth_helper
from kbroker.api.auth_helper import OMITTED, AclOperation, ResourceType
from kbroker.api.handlers import CloseConnection
from kbroker.api.request_context import RequestContext
from kbroker.metadata.metadata_cache import MetadataCache, PartitionState, TopicMetadata
from kbroker.metadata.topic_names import topic_name_error
from kbroker.protocol.api_keys import ApiKey
from kbroker.protocol.errors import Errors
from kbroker.protocol.uuids import ZERO_UUID

if TYPE_CHECKING:
    from kbroker.protocol.message_types import (
        MetadataRequest,
        MetadataRequestMetadataRequestTopic,
        MetadataResponse,
        MetadataResponseMetadataResponseBroker,
        MetadataResponseMetadataResponsePartition,
        MetadataResponseMetadataResponseTopic,
    )

API_KEY = ApiKey.METADATA
VERSIONS = (0, 13)


async def handle(ctx: RequestContext, request: MetadataRequest) -> MetadataResponse:
    version = ctx.api_version
    services = ctx.services
    cache = services.metadata_cache
    requested = request["topics"]
    topics: list[MetadataResponseMetadataResponseTopic]
    if requested is None or (version == 0 and not requested):  # all topics
        visible = auth_helper.authorized_names(ctx, AclOperation.DESCRIBE, ResourceType.TOPIC, cache.topics)
        topics = [_topic_entry(ctx, t, version, request) for name, t in cache.topics.items() if name in visible]
    else:
        if version < 12 and any(t["name"] is None or t.get("topic_id", ZERO_UUID) != ZERO_UUID for t in requested):
            raise CloseConnection  # Kafka: InvalidRequestException("Topic IDs are not supported ... for version")
        allow_create = request["allow_auto_topic_creation"] if version >= 4 else True
        topics = [await _requested_topic(ctx, cache, wanted, version, request, allow_create)
                  for wanted in requested]
    response: MetadataResponse = {
        "throttle_time_ms": 0,
        "brokers": _brokers(cache, ctx.listener_name),
        "cluster_id": cache.cluster_id,
        "controller_id": cache.controller_id,
        "topics": topics,
        "cluster_authorized_operations": (auth_helper.authorized_operations(ctx, ResourceType.CLUSTER)
                                          if request["include_cluster_authorized_operations"] else OMITTED),
        "error_code": 0,
    }
    return response


def _brokers(cache: MetadataCache, listener_name: str) -> list[MetadataResponseMetadataResponseBroker]:
    return [{"node_id": b.broker_id, "host": e.host, "port": e.port, "rack": b.rack}
            for b, e in cache.alive_endpoints(listener_name)]


async def _requested_topic(ctx: RequestContext, cache: MetadataCache, wanted: MetadataRequestMetadataRequestTopic,
                           version: int, request: MetadataRequest,
                           allow_create: bool) -> MetadataResponseMetadataResponseTopic:
    name = wanted["name"]
    if name is None:  # v10+: by topic id
        topic = cache.topic_by_id(wanted["topic_id"])
        if topic is None:
            return {"error_code": Errors.UNKNOWN_TOPIC_ID, "name": None, "topic_id": wanted["topic_id"]}
        if not auth_helper.authorize(ctx, AclOperation.DESCRIBE, ResourceType.TOPIC, topic.name):
            return {"error_code": Errors.TOPIC_AUTHORIZATION_FAILED, "name": None, "topic_id": topic.topic_id}
        return _topic_entry(ctx, topic, version, request)
    if not auth_helper.authorize(ctx, AclOperation.DESCRIBE, ResourceType.TOPIC, name):
        return {"error_code": Errors.TOPIC_AUTHORIZATION_FAILED, "name": name, "topic_id": ZERO_UUID,
                "is_internal": False}
    topic = cache.topic(name)
    if topic is not None:
        return _topic_entry(ctx, topic, version, request)
    if topic_name_error(name) is not None:
        return {"error_code": Errors.INVALID_TOPIC_EXCEPTION, "name": name, "is_internal": False}
    error = Errors.UNKNOWN_TOPIC_OR_PARTITION
    if allow_create and ctx.services.config.get("auto.create.topics.enable"):
        if not (auth_helper.authorize(ctx, AclOperation.CREATE, ResourceType.CLUSTER)
                or auth_helper.authorize(ctx, AclOperation.CREATE, ResourceType.TOPIC, name)):
            return {"error_code": Errors.TOPIC_AUTHORIZATION_FAILED, "name": name, "topic_id": ZERO_UUID,
                    "is_internal": False}
        error = await ctx.services.admin_manager.auto_create_topic(name)
    return {"error_code": error, "name": name, "topic_id": ZERO_UUID, "is_internal": False}


def _topic_entry(ctx: RequestContext, topic: TopicMetadata, version: int,
                 request: MetadataRequest) -> MetadataResponseMetadataResponseTopic:
    cache = ctx.services.metadata_cache
    partitions = [_partition_entry(state, version, cache, ctx.listener_name)
                  for _, state in sorted(topic.partitions.items())]
    return {
        "error_code": 0,
        "name": topic.name,
        "topic_id": topic.topic_id,
        "is_internal": topic.is_internal,
        "partitions": partitions,
        "topic_authorized_operations": (auth_helper.authorized_operations(ctx, ResourceType.TOPIC, topic.name)
                                        if request["include_topic_authorized_operations"] else OMITTED),
    }


def _partition_entry(state: PartitionState, version: int, cache: MetadataCache,
                     listener_name: str) -> MetadataResponseMetadataResponsePartition:
    error = 0
    leader = state.leader
    if leader < 0 or not cache.is_alive(leader):
        error, leader = Errors.LEADER_NOT_AVAILABLE, -1
    elif cache.endpoint_of(leader, listener_name) is None:
        # Alive, but not reachable on the client's listener (Kafka's ZkMetadataCache).
        error = Errors.LISTENER_NOT_FOUND if version >= 6 else Errors.LEADER_NOT_AVAILABLE
        leader = -1
    replicas, isr = state.replicas, state.isr
    # Replicas on dead brokers, and those the controller knows are in a failed log dir.
    offline = [r for r in replicas if not cache.is_alive(r) or r in state.offline_replicas]
    if offline and version < 5:
        replicas = [r for r in replicas if r not in offline]
        isr = [r for r in isr if r not in offline]
        error = error or Errors.REPLICA_NOT_AVAILABLE
    return {
        "error_code": error,
        "partition_index": state.partition,
        "leader_id": leader,
        "leader_epoch": state.leader_epoch,
        "replica_nodes": replicas,
        "isr_nodes": isr,
        "offline_replicas": offline,
    }
