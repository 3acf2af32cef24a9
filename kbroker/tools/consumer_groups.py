"""`kbroker consumer-groups`: kafka-consumer-groups.sh through AdminClient.

--describe prints Kafka's columns GROUP TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG
CONSUMER-ID HOST CLIENT-ID (`-` where a value is unknown), --members GROUP CONSUMER-ID HOST
CLIENT-ID #PARTITIONS; --reset-offsets prints GROUP TOPIC PARTITION NEW-OFFSET and changes
nothing without --execute (Kafka's rule: only while the group has no active members).
--delete-offsets sends OffsetDelete with kbroker's codec, which confluent-kafka has no API for.
"""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import Any

from kbroker.tools.common import (
    ToolError,
    add_connection_args,
    add_output_arg,
    admin_client,
    cluster_metadata,
    list_offsets,
    print_json,
    print_table,
    result,
    usage_error,
)

ACTIONS = ("list", "describe", "reset-offsets", "delete", "delete-offsets")
RESETS = ("to_earliest", "to_latest", "to_datetime", "shift_by", "to_offset")
DESCRIBE_COLUMNS = ("GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG",
                    "CONSUMER-ID", "HOST", "CLIENT-ID")
MEMBER_COLUMNS = ("GROUP", "CONSUMER-ID", "HOST", "CLIENT-ID", "#PARTITIONS")
STATE_COLUMNS = ("GROUP", "COORDINATOR (ID)", "ASSIGNMENT-STRATEGY", "STATE", "#MEMBERS")
# confluent-kafka's ConsumerGroupState names to Kafka's (ConsumerGroupState.toString()).
KAFKA_STATE_NAMES = {"STABLE": "Stable", "EMPTY": "Empty", "DEAD": "Dead", "UNKNOWN": "Unknown",
                     "PREPARING_REBALANCING": "PreparingRebalance", "COMPLETING_REBALANCING": "CompletingRebalance"}
# States in which a group's offsets may be reset or deleted (no member would overwrite them).
INACTIVE_STATES = ("Empty", "Dead", "Unknown")


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser("consumer-groups", help="list, describe, reset and delete consumer groups")
    add_connection_args(parser)
    action = parser.add_mutually_exclusive_group(required=True)
    for name in ACTIONS:
        action.add_argument(f"--{name}", action="store_true")
    parser.add_argument("--group", help="the group id")
    parser.add_argument("--topic", help="a topic, or topic:0,1 for some partitions (reset/delete offsets)")
    parser.add_argument("--all-topics", action="store_true", help="--reset-offsets: every topic the group has")
    parser.add_argument("--all-groups", action="store_true", help="--describe or --delete every group")
    parser.add_argument("--members", action="store_true", help="--describe: the members instead of offsets")
    parser.add_argument("--offsets", action="store_true", help="--describe: offsets and lag (the default)")
    parser.add_argument("--state", action="store_true",
                        help="--describe: coordinator, strategy, state and member count; --list: with states")
    reset = parser.add_mutually_exclusive_group()
    reset.add_argument("--to-earliest", action="store_true")
    reset.add_argument("--to-latest", action="store_true")
    reset.add_argument("--to-datetime", metavar="YYYY-MM-DDTHH:mm:SS.sss", help="local time unless a zone is given")
    reset.add_argument("--shift-by", type=int, metavar="N")
    reset.add_argument("--to-offset", type=int, metavar="N")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--execute", action="store_true", help="--reset-offsets: apply the new offsets")
    mode.add_argument("--dry-run", action="store_true", help="--reset-offsets: only show them (the default)")
    add_output_arg(parser)
    parser.set_defaults(run=run, parser=parser)


def run(args: argparse.Namespace) -> int:
    _check_args(args)
    admin = admin_client(args)
    if args.list:
        return _list(admin, args)
    if args.describe:
        return _describe(admin, args)
    if args.reset_offsets:
        return _reset(admin, args)
    if args.delete:
        groups = _all_groups(admin) if args.all_groups else [args.group]
        for future in admin.delete_consumer_groups(groups).values() if groups else ():
            result(future)
        named = ", ".join(f"'{group}'" for group in groups)
        print(f"Deletion of requested consumer groups ({named}) was successful.")
        return 0
    return _delete_offsets(admin, args)


def _list(admin: Any, args: argparse.Namespace) -> int:
    listed = sorted(result(admin.list_consumer_groups()).valid, key=lambda g: g.group_id)
    groups = [{"group": g.group_id, "state": _state(g)} for g in listed]
    if args.output == "json":
        print_json(groups if args.state else [g["group"] for g in groups])
    elif args.state:
        print_table(("GROUP", "STATE"), [list(g.values()) for g in groups])
    elif groups:
        print("\n".join(g["group"] for g in groups))
    return 0


def _all_groups(admin: Any) -> list[str]:
    return sorted(g.group_id for g in result(admin.list_consumer_groups()).valid)


def _check_args(args: argparse.Namespace) -> None:
    if args.all_groups and not (args.describe or args.delete):
        usage_error(args.parser, "--all-groups goes with --describe or --delete")
    if not args.list and not args.all_groups and not args.group:
        usage_error(args.parser, "--group (or --all-groups) is required with --describe, --reset-offsets, "
                    "--delete, --delete-offsets")
    if args.reset_offsets:
        if not any(getattr(args, name) not in (None, False) for name in RESETS):
            usage_error(args.parser, "--reset-offsets needs one of --to-earliest, --to-latest, --to-datetime, "
                        "--shift-by, --to-offset")
        if not args.topic and not args.all_topics:
            usage_error(args.parser, "--reset-offsets needs --topic or --all-topics")
    if args.delete_offsets and not args.topic:
        usage_error(args.parser, "--delete-offsets needs --topic")
    # Parsed here, before any connection, so that a typo is a usage error and nothing else.
    args.timestamp_ms = _timestamp_ms(args) if args.to_datetime else None
    args.partition_numbers = _partition_numbers(args) if args.topic else None


def _partition_numbers(args: argparse.Namespace) -> list[int] | None:
    """The partitions of --topic T:0,2 (None for a plain --topic T: all of them)."""
    numbers = args.topic.partition(":")[2]
    if not numbers:
        return None
    try:
        return [int(n) for n in numbers.split(",")]
    except ValueError:
        usage_error(args.parser, f"invalid --topic {args.topic!r}: expected topic:0,1,...")


def _group(admin: Any, group: str) -> Any:
    return result(admin.describe_consumer_groups([group])[group])


def _state(description: Any) -> str:
    """The group's state as Kafka's tools spell it (Stable, PreparingRebalance, ...)."""
    name = str(getattr(description.state, "name", description.state)).upper()
    return KAFKA_STATE_NAMES.get(name, name.title())


def _committed(admin: Any, group: str) -> dict[tuple[str, int], int]:
    from confluent_kafka import ConsumerGroupTopicPartitions

    answer = result(admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group])
    return {(tp.topic, tp.partition): tp.offset for tp in answer.topic_partitions if tp.offset >= 0}


def _describe(admin: Any, args: argparse.Namespace) -> int:
    groups = _all_groups(admin) if args.all_groups else [args.group]
    described = [_describe_group(admin, args, group) for group in groups]
    if args.output == "json":
        print_json(described if args.all_groups else described[0])
    return 0


def _describe_group(admin: Any, args: argparse.Namespace, group: str) -> Any:
    """Prints one group's --describe table (text output) and returns it as plain data."""
    description = _group(admin, group)
    state = _state(description)
    if state == "Dead":
        raise ToolError(f"Consumer group '{group}' does not exist.")
    text = args.output == "text"
    if args.state:
        coordinator = description.coordinator
        summary = {"group": group, "coordinator": f"{coordinator.host}:{coordinator.port} ({coordinator.id})",
                   "assignment_strategy": description.partition_assignor, "state": state,
                   "members": len(description.members)}
        if text:
            print()
            print_table(STATE_COLUMNS, [list(summary.values())])
        return summary
    if args.members:
        members = [{"group": group, "consumer_id": m.member_id, "host": m.host, "client_id": m.client_id,
                    "partitions": len(m.assignment.topic_partitions)} for m in description.members]
        if text:
            _no_active_members(group, state, bool(members))
            if members:
                print_table(MEMBER_COLUMNS, [list(m.values()) for m in members])
        return members
    rows = _offset_rows(admin, group, description)
    if text:
        _no_active_members(group, state, bool(description.members))
        print_table(DESCRIBE_COLUMNS, [["-" if v is None else v for v in row.values()] for row in rows])
    return {"group": group, "state": state, "partitions": rows}


def _offset_rows(admin: Any, group: str, description: Any) -> list[dict[str, Any]]:
    """Per partition the group has an offset for or is assigned: offsets, lag and its owner."""
    from confluent_kafka.admin import OffsetSpec

    owners = {(tp.topic, tp.partition): member for member in description.members
              for tp in member.assignment.topic_partitions}
    committed = _committed(admin, group)
    partitions = sorted(set(committed) | set(owners))
    log_end = list_offsets(admin, partitions, OffsetSpec.latest())
    rows = []
    for key in partitions:
        member = owners.get(key)
        current, end = committed.get(key), log_end.get(key)
        rows.append({"group": group, "topic": key[0], "partition": key[1], "current_offset": current,
                     "log_end_offset": end, "lag": None if current is None or end is None else max(end - current, 0),
                     "consumer_id": member.member_id if member else None, "host": member.host if member else None,
                     "client_id": member.client_id if member else None})
    return rows


def _no_active_members(group: str, state: str, has_members: bool) -> None:
    if not has_members:
        print(f"\nConsumer group '{group}' has no active members.\n")
    elif state in ("PreparingRebalance", "CompletingRebalance"):
        print(f"\nWarning: Consumer group '{group}' is rebalancing.\n")


def _requested_partitions(admin: Any, args: argparse.Namespace, committed: dict[tuple[str, int], int]
                          ) -> list[tuple[str, int]]:
    """--topic T (all its partitions), --topic T:0,2, or --all-topics (those with committed offsets)."""
    if args.all_topics:
        return sorted(committed)
    topic = args.topic.partition(":")[0]
    if args.partition_numbers is not None:
        return [(topic, n) for n in args.partition_numbers]
    metadata = cluster_metadata(admin, topic).topics.get(topic)
    if metadata is None or metadata.error is not None:
        raise ToolError(f"Topic '{topic}' does not exist")
    return [(topic, p) for p in sorted(metadata.partitions)]


def _reset(admin: Any, args: argparse.Namespace) -> int:
    state = _state(_group(admin, args.group))
    if args.execute and state not in INACTIVE_STATES:
        raise ToolError(f"Assignments can only be reset if the group '{args.group}' is inactive, "
                        f"but the current state is {state}.")
    committed = _committed(admin, args.group)
    partitions = _requested_partitions(admin, args, committed)
    targets = _reset_targets(admin, args, partitions, committed)
    if args.execute:
        from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition

        request = ConsumerGroupTopicPartitions(
            args.group, [TopicPartition(t, p, offset) for (t, p), offset in sorted(targets.items())])
        result(admin.alter_consumer_group_offsets([request])[args.group])
    rows = [{"group": args.group, "topic": t, "partition": p, "new_offset": offset}
            for (t, p), offset in sorted(targets.items())]
    if args.output == "json":
        print_json(rows)
    else:
        print()
        print_table(("GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"), [list(row.values()) for row in rows])
    return 0


def _reset_targets(admin: Any, args: argparse.Namespace, partitions: list[tuple[str, int]],
                   committed: dict[tuple[str, int], int]) -> dict[tuple[str, int], int]:
    """The new offset of each partition, kept between its log start and end as Kafka keeps it."""
    from confluent_kafka.admin import OffsetSpec

    earliest = list_offsets(admin, partitions, OffsetSpec.earliest())
    latest = list_offsets(admin, partitions, OffsetSpec.latest())
    if args.to_earliest:
        return earliest
    if args.to_latest:
        return latest
    if args.to_datetime:
        found = list_offsets(admin, partitions, OffsetSpec.for_timestamp(args.timestamp_ms))
        return {key: latest[key] if offset < 0 else offset for key, offset in found.items()}
    if args.shift_by is not None:
        wanted = {key: committed.get(key, latest[key]) + args.shift_by for key in partitions}
    else:
        wanted = {key: args.to_offset for key in partitions}
    return {key: min(max(offset, earliest[key]), latest[key]) for key, offset in wanted.items()}


def _timestamp_ms(args: argparse.Namespace) -> int:
    try:
        moment = datetime.fromisoformat(args.to_datetime)
    except ValueError:
        usage_error(args.parser, f"invalid --to-datetime {args.to_datetime!r}: expected YYYY-MM-DDTHH:mm:SS.sss")
    return int(moment.timestamp() * 1000)  # a naive time is local time, as Kafka reads it


def _delete_offsets(admin: Any, args: argparse.Namespace) -> int:
    from kbroker.tools.wire import delete_offsets

    description = _group(admin, args.group)
    if _state(description) == "Dead":
        raise ToolError(f"Consumer group '{args.group}' does not exist.")
    partitions = _requested_partitions(admin, args, {})
    coordinator = description.coordinator
    errors = delete_offsets(f"{coordinator.host}:{coordinator.port}", args.group, partitions)
    rows = [[t, p, "Successful" if errors[(t, p)] is None else f"Error: {errors[(t, p)]}"] for t, p in partitions]
    failed = any(error is not None for error in errors.values())
    print(f"Request {'failed' if failed else 'succeed'} for deleting offsets with topic {args.topic} "
          f"group {args.group}\n")
    print_table(("TOPIC", "PARTITION", "STATUS"), rows)
    return 1 if failed else 0
