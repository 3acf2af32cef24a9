"""`kbroker topics`: kafka-topics.sh against any Kafka-compatible broker, through AdminClient.

--describe prints TopicCommand's layout: a topic line (`Topic: T<TAB>TopicId: ...<TAB>
PartitionCount: N<TAB>ReplicationFactor: R<TAB>Configs: k=v,...`, the configs being the
topic's own, not the defaults) then one tab-indented line per partition with Leader, Replicas
and Isr. --delete and --alter print nothing on success, as Kafka's tool does.
"""

from __future__ import annotations

import argparse
import re
import uuid
from collections.abc import Callable
from typing import Any

from kbroker.protocol.uuids import uuid_to_base64
from kbroker.tools.common import (
    ToolError,
    add_connection_args,
    add_output_arg,
    admin_client,
    cluster_metadata,
    parse_assignments,
    print_json,
    result,
    usage_error,
)

ACTIONS = ("create", "list", "describe", "alter", "delete")
# --describe's partition filters: the flag's attribute name and which partitions it keeps.
PARTITION_FILTERS: dict[str, Callable[[dict[str, Any]], bool]] = {
    "under_replicated_partitions": lambda p: len(p["isr"]) < len(p["replicas"]),
    "unavailable_partitions": lambda p: p["leader"] is None,
}


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser("topics", help="create, list, describe, alter and delete topics")
    add_connection_args(parser)
    action = parser.add_mutually_exclusive_group(required=True)
    for name in ACTIONS:
        action.add_argument(f"--{name}", action="store_true", help=f"{name} topics")
    parser.add_argument("--topic", help="the topic's name (--describe: or a regular expression)")
    parser.add_argument("--partitions", type=int, help="partitions of a new topic, or its new count (--alter)")
    parser.add_argument("--replication-factor", type=int, help="replicas per partition of a new topic")
    parser.add_argument("--replica-assignment", metavar="1:2,2:3",
                        help="--create: each partition's replicas (colon-separated), partitions comma-separated")
    parser.add_argument("--config", action="append", default=[], metavar="k=v", help="a topic setting (--create)")
    parser.add_argument("--if-not-exists", action="store_true", help="--create: no error if the topic exists")
    parser.add_argument("--if-exists", action="store_true", help="--alter/--delete/--describe: no error if absent")
    parser.add_argument("--under-replicated-partitions", action="store_true",
                        help="--describe: only partitions whose ISR is smaller than their replica set")
    parser.add_argument("--unavailable-partitions", action="store_true",
                        help="--describe: only partitions without a leader")
    parser.add_argument("--exclude-internal", action="store_true", help="--list/--describe: leave out __ topics")
    add_output_arg(parser)
    parser.set_defaults(run=run, parser=parser)


def run(args: argparse.Namespace) -> int:
    needs_topic = args.create or args.alter or args.delete
    if needs_topic and not args.topic:
        usage_error(args.parser, "--topic is required with --create, --alter and --delete")
    if args.alter and args.partitions is None:
        usage_error(args.parser, "--alter needs --partitions (the new partition count)")
    assignment = _replica_assignment(args) if args.create and args.replica_assignment else None
    admin = admin_client(args)
    if args.create:
        return _create(admin, args, assignment)
    if args.list:
        for name in _topic_names(admin, None, args.exclude_internal):
            print(name)
        return 0
    if args.describe:
        return _describe(admin, args)
    if args.alter:
        return _alter(admin, args)
    return _delete(admin, args)


def _create(admin: Any, args: argparse.Namespace, assignment: list[list[int]] | None) -> int:
    from confluent_kafka.admin import NewTopic

    config = parse_assignments(args.config, "--config")
    if assignment:
        # confluent-kafka wants the partition count with an assignment (and no replication factor).
        topic = NewTopic(args.topic, num_partitions=len(assignment), replica_assignment=assignment, config=config)
    else:
        topic = NewTopic(args.topic, num_partitions=args.partitions or -1,
                         replication_factor=args.replication_factor or -1, config=config)
    try:
        result(admin.create_topics([topic])[args.topic])
    except ToolError as exc:
        if args.if_not_exists and str(exc).startswith("TOPIC_ALREADY_EXISTS"):
            return 0
        raise
    print(f"Created topic {args.topic}.")
    return 0


def _replica_assignment(args: argparse.Namespace) -> list[list[int]]:
    if args.partitions is not None or args.replication_factor is not None:
        usage_error(args.parser, "--replica-assignment goes without --partitions and --replication-factor")
    try:
        return [[int(broker) for broker in partition.split(":")] for partition in args.replica_assignment.split(",")]
    except ValueError:
        usage_error(args.parser, f"invalid --replica-assignment {args.replica_assignment!r}: expected 1:2,2:3")


def _alter(admin: Any, args: argparse.Namespace) -> int:
    from confluent_kafka.admin import NewPartitions

    if args.if_exists and args.topic not in _topic_names(admin, None, False):
        return 0
    result(admin.create_partitions([NewPartitions(args.topic, args.partitions)])[args.topic])
    return 0


def _delete(admin: Any, args: argparse.Namespace) -> int:
    if args.if_exists and args.topic not in _topic_names(admin, None, False):
        return 0
    result(admin.delete_topics([args.topic])[args.topic])
    return 0


def _topic_names(admin: Any, only: str | None, exclude_internal: bool) -> list[str]:
    metadata = cluster_metadata(admin)
    names = sorted(metadata.topics)
    if only is not None and only not in names:  # as in Kafka, --topic may be a regular expression
        try:
            names = [name for name in names if re.fullmatch(only, name)]
        except re.error:
            names = []
    elif only is not None:
        names = [only]
    if exclude_internal:
        names = [name for name in names if not name.startswith("__")]
    return names


def _describe(admin: Any, args: argparse.Namespace) -> int:
    names = _topic_names(admin, args.topic, args.exclude_internal)
    if args.topic and not names:
        if args.if_exists:
            return 0
        raise ToolError(f"Topic '{args.topic}' does not exist as expected")
    described = [describe_topic(admin, name) for name in names]
    wanted = [check for flag, check in PARTITION_FILTERS.items() if getattr(args, flag)]
    if wanted:  # only the partitions asked for, without the topic lines (as TopicCommand does)
        for topic in described:
            topic["partitions"] = [p for p in topic["partitions"] if any(check(p) for check in wanted)]
    if args.output == "json":
        print_json(described)
        return 0
    for topic in described:
        text = format_topic(topic, header=not wanted)
        if text:
            print(text)
    return 0


def describe_topic(admin: Any, name: str) -> dict[str, Any]:
    """One topic as plain data: name, id, partitions (leader, replicas, isr) and its own configs."""
    from confluent_kafka import TopicCollection
    from confluent_kafka.admin import ConfigResource, ConfigSource, ResourceType

    description = result(admin.describe_topics(TopicCollection([name]))[name])
    resource = ConfigResource(ResourceType.TOPIC, name)
    entries = result(admin.describe_configs([resource])[resource])
    configs = {key: entry.value for key, entry in sorted(entries.items())
               if entry.source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value}
    partitions = [
        {"partition": p.id, "leader": p.leader.id if p.leader is not None else None,
         "replicas": [node.id for node in p.replicas], "isr": [node.id for node in p.isr]}
        for p in sorted(description.partitions, key=lambda p: p.id)
    ]
    return {"topic": name, "topic_id": _kafka_uuid(description.topic_id),
            "partition_count": len(partitions),
            "replication_factor": len(partitions[0]["replicas"]) if partitions else 0,
            "configs": configs, "partitions": partitions}


def _kafka_uuid(value: Any) -> str:
    """Kafka's text form of a topic id (URL-safe base64); confluent-kafka's str() uses + and /."""
    bits = (value.get_most_significant_bits() % (1 << 64) << 64) | value.get_least_significant_bits() % (1 << 64)
    return uuid_to_base64(uuid.UUID(int=bits))


def format_topic(topic: dict[str, Any], header: bool = True) -> str:
    configs = ",".join(f"{key}={value}" for key, value in topic["configs"].items())
    lines = [f"Topic: {topic['topic']}\tTopicId: {topic['topic_id']}\tPartitionCount: {topic['partition_count']}"
             f"\tReplicationFactor: {topic['replication_factor']}\tConfigs: {configs}"] if header else []
    for p in topic["partitions"]:
        leader = "none" if p["leader"] is None else p["leader"]
        lines.append(f"\tTopic: {topic['topic']}\tPartition: {p['partition']}\tLeader: {leader}"
                     f"\tReplicas: {_ids(p['replicas'])}\tIsr: {_ids(p['isr'])}")
    return "\n".join(lines)


def _ids(ids: list[int]) -> str:
    return ",".join(str(i) for i in ids)
