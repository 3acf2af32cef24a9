"""DescribeLogDirs (35): each log directory of this broker with the replicas it holds.

- Versions: 1-5 served and advertised (v0 is not in the 4.x schema set; v5's IsCordoned is
  always false: cordoning is KRaft's).
- Behaviour:
  - Every configured log dir (absolute path), as Kafka's ReplicaManager.describeLogDirs: an
    offline one answers KAFKA_STORAGE_ERROR with nothing else; a live one its volume's total
    and usable bytes (v4+) and, per topic with a log there, the requested partitions' size in
    bytes and offset lag (high watermark minus log end offset, at least 0).
  - A replica moving between log dirs (AlterReplicaLogDirs) also appears in its destination
    dir as the future replica (IsFutureKey true) with its size and its offset lag behind the
    current replica's log end offset, as Kafka's getLogEndOffsetLag.
  - Topics null asks for every partition; a topic listed whose logs are there but none of
    whose partitions was asked appears with no partitions, as in Kafka.
  - Needs DESCRIBE on the cluster, else a top-level CLUSTER_AUTHORIZATION_FAILED and no dirs
    (api/auth_helper.py), as Kafka's KafkaApis answers.
- Gaps: none known.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from kbroker.api.auth_helper import AclOperation, requires_cluster
from kbroker.api.request_context import RequestContext
from kbroker.protocol.api_keys import ApiKey
from kbroker.protocol.errors import Errors

if TYPE_CHECKING:
    from kbroker.log.log_manager import LogManager
    from kbroker.log.unified_log import UnifiedLog
    from kbroker.protocol.message_types import (
        DescribeLogDirsRequest,
        DescribeLogDirsResponse,
        DescribeLogDirsResponseDescribeLogDirsResult,
        DescribeLogDirsResponseDescribeLogDirsTopic,
    )

API_KEY = ApiKey.DESCRIBE_LOG_DIRS
VERSIONS = (1, 5)
# Kafka's adjustForLargeFileSystems: a volume too large for a long reads as Long.MAX_VALUE.
_LONG_MAX = 2**63 - 1


@requires_cluster(AclOperation.DESCRIBE, results=[])
async def handle(ctx: RequestContext, request: DescribeLogDirsRequest) -> DescribeLogDirsResponse:
    log_manager = ctx.services.replica_manager.log_manager
    wanted = None if request["topics"] is None else {
        (topic["topic"], index) for topic in request["topics"] for index in topic["partitions"]}
    return {"throttle_time_ms": 0, "error_code": Errors.NONE,
            "results": [_describe_dir(log_manager, log_dir, wanted) for log_dir in log_manager.log_dirs]}


def _describe_dir(log_manager: LogManager, log_dir: str,
                  wanted: set[tuple[str, int]] | None) -> DescribeLogDirsResponseDescribeLogDirsResult:
    if log_manager.is_offline(log_dir):
        return {"error_code": Errors.KAFKA_STORAGE_ERROR, "log_dir": log_dir, "topics": []}
    try:
        volume = os.statvfs(log_dir)
    except OSError:
        return {"error_code": Errors.KAFKA_STORAGE_ERROR, "log_dir": log_dir, "topics": []}
    by_topic: dict[str, list[UnifiedLog]] = {}
    for log in [*log_manager.all_logs(), *log_manager.future_logs.values()]:
        if log.parent_dir == log_dir:
            by_topic.setdefault(log.topic, []).append(log)
    topics: list[DescribeLogDirsResponseDescribeLogDirsTopic] = [
        {"name": topic, "partitions": [
            {"partition_index": log.partition, "partition_size": log.size,
             "offset_lag": _offset_lag(log_manager, log), "is_future_key": log.is_future}
            for log in sorted(logs, key=lambda log: log.partition)
            if wanted is None or (topic, log.partition) in wanted]}
        for topic, logs in sorted(by_topic.items())]
    return {"error_code": Errors.NONE, "log_dir": log_dir, "topics": topics,
            "total_bytes": min(volume.f_blocks * volume.f_frsize, _LONG_MAX),
            "usable_bytes": min(volume.f_bavail * volume.f_frsize, _LONG_MAX), "is_cordoned": False}


def _offset_lag(log_manager: LogManager, log: UnifiedLog) -> int:
    """Kafka's getLogEndOffsetLag: a current replica's high watermark minus its log end offset
    (at least 0); a future replica's distance behind the current replica's log end."""
    if not log.is_future:
        return max(log.high_watermark - log.log_end_offset, 0)
    current = log_manager.get_log(log.topic, log.partition)
    return max(current.log_end_offset - log.log_end_offset, 0) if current is not None else 0
