"""AlterReplicaLogDirs (34): moves replicas between the log directories of this broker.

- Versions: 1-2 served and advertised (v0 is not in the 4.x schema set).
- Behaviour: Kafka's ReplicaManager.alterReplicaLogDirs, per partition
  (`ReplicaManager.alter_replica_log_dir`):
  - a topic name too long for a future log dir: INVALID_TOPIC_EXCEPTION; a path that is not one
    of log.dirs (absolute paths compared as strings): LOG_DIR_NOT_FOUND; an offline one, or an
    offline partition: KAFKA_STORAGE_ERROR;
  - a move in flight to another dir is abandoned (its future log deleted) and redirected;
  - the dir is remembered as the partition's preferred dir unless its log is there already:
    a partition this broker holds no replica of answers REPLICA_NOT_AVAILABLE and is created
    in that dir when a LeaderAndIsr makes it a replica here;
  - the replica's log already in that directory (or moving there): NONE (nothing to do);
  - else the future log `<topic>-<p>.<uuid>-future` is created there (KAFKA_STORAGE_ERROR
    while any log dir is offline or if it cannot be created) and the
    ReplicaAlterLogDirsManager copies the current log into it in bounded steps, follows its
    appends, truncations, log start and high watermark, and swaps the two once caught up (the
    old dir renamed `-delete`, removed after file.delete.delay.ms); NONE at once, as Kafka
    answers before the data has moved. Produce and fetch are served throughout. A `-future`
    dir found at start-up resumes its move when the partition is hosted again; a destination
    dir failing ends the move and the current replica keeps serving.
  - Needs ALTER on the cluster, else CLUSTER_AUTHORIZATION_FAILED for each partition asked for
    (api/auth_helper.py), checked first, as Kafka's KafkaApis does.
- Gaps: no replica.alter.log.dirs.io.max.bytes.per.second throttle (kbroker has no dynamic
  broker configs): a move copies as fast as its steps allow, yielding to the event loop between
  steps.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kbroker.api.auth_helper import AclOperation, requires_cluster
from kbroker.api.request_context import RequestContext
from kbroker.protocol.api_keys import ApiKey
from kbroker.protocol.errors import Errors

if TYPE_CHECKING:
    from kbroker.protocol.message_types import (
        AlterReplicaLogDirsRequest,
        AlterReplicaLogDirsResponse,
        AlterReplicaLogDirsResponseAlterReplicaLogDirTopicResult,
    )

API_KEY = ApiKey.ALTER_REPLICA_LOG_DIRS
VERSIONS = (1, 2)


def _refused(request: AlterReplicaLogDirsRequest) -> dict:
    """Kafka answers each partition asked for with the refusal (there is no top-level code)."""
    return {"results": [{"topic_name": topic["name"], "partitions": [
        {"partition_index": index, "error_code": Errors.CLUSTER_AUTHORIZATION_FAILED}
        for index in topic["partitions"]]} for log_dir in request["dirs"] for topic in log_dir["topics"]]}


@requires_cluster(AclOperation.ALTER, _refused)
async def handle(ctx: RequestContext, request: AlterReplicaLogDirsRequest) -> AlterReplicaLogDirsResponse:
    replica_manager = ctx.services.replica_manager
    results: list[AlterReplicaLogDirsResponseAlterReplicaLogDirTopicResult] = []
    for log_dir in request["dirs"]:
        for topic in log_dir["topics"]:
            results.append({"topic_name": topic["name"], "partitions": [
                {"partition_index": index,
                 "error_code": replica_manager.alter_replica_log_dir(topic["name"], index, log_dir["path"])}
                for index in topic["partitions"]]})
    return {"throttle_time_ms": 0, "results": results}
