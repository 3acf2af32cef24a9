"""AlterReplicaLogDirs (34): moves replicas between the log directories of this broker.

- Versions: 1-2 served and advertised (v0 is not in the 4.x schema set).
- Behaviour: Kafka's ReplicaManager.alterReplicaLogDirs checks, in this order per partition:
  - a path that is not one of log.dirs: LOG_DIR_NOT_FOUND; an offline one, or an offline
    partition: KAFKA_STORAGE_ERROR;
  - a partition this broker holds no replica of: REPLICA_NOT_AVAILABLE;
  - the replica's log already in that directory: NONE (nothing to move).
- Gaps: moving a replica to another log dir (Kafka's future log and ReplicaAlterLogDirsThread)
  is not built: such a request answers KAFKA_STORAGE_ERROR, which Kafka answers when it cannot
  create the future log, and the replica stays where it is. The preferred dir of a partition
  not hosted yet is not remembered. No CLUSTER_AUTHORIZATION_FAILED (no authorizer).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kbroker.api.request_context import RequestContext
from kbroker.protocol.api_keys import ApiKey
from kbroker.protocol.errors import Errors

if TYPE_CHECKING:
    from kbroker.protocol.message_types import (
        AlterReplicaLogDirsRequest,
        AlterReplicaLogDirsResponse,
        AlterReplicaLogDirsResponseAlterReplicaLogDirTopicResult,
    )
    from kbroker.replica.replica_manager import ReplicaManager

API_KEY = ApiKey.ALTER_REPLICA_LOG_DIRS
VERSIONS = (1, 2)


async def handle(ctx: RequestContext, request: AlterReplicaLogDirsRequest) -> AlterReplicaLogDirsResponse:
    replica_manager = ctx.services.replica_manager
    results: list[AlterReplicaLogDirsResponseAlterReplicaLogDirTopicResult] = []
    for log_dir in request["dirs"]:
        for topic in log_dir["topics"]:
            results.append({"topic_name": topic["name"], "partitions": [
                {"partition_index": index, "error_code": _alter(replica_manager, topic["name"], index, log_dir["path"])}
                for index in topic["partitions"]]})
    return {"throttle_time_ms": 0, "results": results}


def _alter(replica_manager: ReplicaManager, topic: str, partition: int, destination: str) -> Errors:
    log_manager = replica_manager.log_manager
    if destination not in log_manager.log_dirs:  # Kafka compares the absolute paths as strings too
        return Errors.LOG_DIR_NOT_FOUND
    if log_manager.is_offline(destination) or (topic, partition) in replica_manager.offline_partitions:
        return Errors.KAFKA_STORAGE_ERROR
    current = log_manager.log_dir_of(topic, partition)
    if replica_manager.get_partition(topic, partition) is None or current is None:
        return Errors.REPLICA_NOT_AVAILABLE
    return Errors.NONE if current == destination else Errors.KAFKA_STORAGE_ERROR
