"""AlterPartition (56): a partition leader asks the controller to change its ISR.

- Versions: 0-3 served and advertised. Topics by name (v0-1) or id (v2+); v3 names ISR members
  with their broker epochs.
- Behaviour:
  - Served by the active controller (others answer NOT_CONTROLLER).
  - Checks in Kafka's order: STALE_BROKER_EPOCH; per partition UNKNOWN_TOPIC_OR_PARTITION,
    NOT_CONTROLLER for epochs newer than ours, FENCED_LEADER_EPOCH, the current state when
    nothing changes, INVALID_UPDATE_VERSION for an old partition epoch, INELIGIBLE_REPLICA for
    ISR members that are not alive.
  - Accepted changes are written to the state znode and sent to every broker with UpdateMetadata.
  - Needs CLUSTER_ACTION on the cluster, else CLUSTER_AUTHORIZATION_FAILED (api/auth_helper.py), checked
    first, as Kafka does.
- Gaps: none known.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kbroker.api.auth_helper import AclOperation, requires_cluster
from kbroker.api.controller_only import controller_only
from kbroker.api.request_context import RequestContext
from kbroker.controller.kafka_controller import IsrChange, LeaderAndIsr
from kbroker.protocol.api_keys import ApiKey
from kbroker.protocol.errors import Errors

if TYPE_CHECKING:
    from kbroker.protocol.message_types import (
        AlterPartitionRequest,
        AlterPartitionResponse,
        AlterPartitionResponsePartitionData,
        AlterPartitionResponseTopicData,
    )

API_KEY = ApiKey.ALTER_PARTITION
VERSIONS = (0, 3)


@requires_cluster(AclOperation.CLUSTER_ACTION, topics=[])
@controller_only(topics=[])
async def handle(ctx: RequestContext, request: AlterPartitionRequest) -> AlterPartitionResponse:
    changes = _isr_changes(request, ctx.api_version)
    error, results = ctx.services.controller.on_alter_partition(request["broker_id"], request["broker_epoch"],
                                                                changes)
    if error != Errors.NONE:
        return {"error_code": error, "topics": []}
    answers = iter(results)
    topics: list[AlterPartitionResponseTopicData] = [
        {"topic_name": t["topic_name"], "topic_id": t["topic_id"],
         "partitions": [_partition(p["partition_index"], *next(answers)) for p in t["partitions"]]}
        for t in request["topics"]]
    return {"error_code": Errors.NONE, "topics": topics}


def _isr_changes(request: AlterPartitionRequest, version: int) -> list[IsrChange]:
    """The request's partitions, in order, as the controller takes them."""
    changes = []
    for topic in request["topics"]:
        topic_id = topic["topic_id"] if version >= 2 else None
        for p in topic["partitions"]:
            isr = [e["broker_id"] for e in p["new_isr_with_epochs"]] if version >= 3 else list(p["new_isr"])
            proposed = LeaderAndIsr(request["broker_id"], p["leader_epoch"], isr, p["leader_recovery_state"],
                                    p["partition_epoch"])
            changes.append(IsrChange(topic["topic_name"], topic_id, p["partition_index"], proposed))
    return changes


def _partition(index: int, error: Errors, state: LeaderAndIsr | None) -> AlterPartitionResponsePartitionData:
    if state is None:
        return {"partition_index": index, "error_code": error, "leader_id": -1, "leader_epoch": -1, "isr": [],
                "partition_epoch": -1}
    return {"partition_index": index, "error_code": error, "leader_id": state.leader,
            "leader_epoch": state.leader_epoch, "isr": state.isr, "leader_recovery_state": state.leader_recovery_state,
            "partition_epoch": state.partition_epoch}
