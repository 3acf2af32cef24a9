"""`kbroker reassign-partitions`: kafka-reassign-partitions.sh's --execute, --verify, --list, --cancel.

confluent-kafka has no API for AlterPartitionReassignments and ListPartitionReassignments
(KIP-455), so they are sent with kbroker's codec (wire.py) to the active controller, which
AdminClient's DescribeCluster names. The file is Kafka's:
`{"version": 1, "partitions": [{"topic": "t", "partition": 0, "replicas": [2, 3]}]}`.
--execute prints the current assignment first (to save for a rollback), as Kafka's tool does.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from kbroker.protocol.api_keys import ApiKey
from kbroker.tools.common import ToolError, add_connection_args, admin_client, result
from kbroker.tools.topics import describe_topic
from kbroker.tools.wire import error_name, send_request

# How long the controller may take to answer (the requests' timeout_ms).
CONTROLLER_TIMEOUT_MS = 30_000


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser("reassign-partitions", help="move partitions' replicas to other brokers")
    add_connection_args(parser)
    action = parser.add_mutually_exclusive_group(required=True)
    for name in ("execute", "verify", "list", "cancel"):
        action.add_argument(f"--{name}", action="store_true")
    parser.add_argument("--reassignment-json-file", metavar="FILE", help="the target replicas (Kafka's JSON)")
    parser.set_defaults(run=run, parser=parser)


def run(args: argparse.Namespace) -> int:
    if not args.list and not args.reassignment_json_file:
        args.parser.error("--execute, --verify and --cancel need --reassignment-json-file")
    admin = admin_client(args)
    controller = _controller(admin)
    if args.list:
        return _list(controller)
    targets = _read_targets(args.reassignment_json_file)
    if args.execute:
        return _execute(admin, controller, targets)
    if args.verify:
        return _verify(admin, controller, targets)
    return _cancel(controller, targets)


Targets = dict[tuple[str, int], list[int]]


def _read_targets(path: str) -> Targets:
    try:
        with open(path) as file:
            document = json.load(file)
        return {(str(p["topic"]), int(p["partition"])): [int(r) for r in p["replicas"]]
                for p in document["partitions"]}
    except OSError as exc:
        raise ToolError(f"cannot read --reassignment-json-file {path}: {exc.strerror}") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ToolError(f"--reassignment-json-file {path} is not Kafka's reassignment JSON ({exc!r})") from None


def _controller(admin: Any) -> str:
    controller = result(admin.describe_cluster()).controller
    if controller is None:
        raise ToolError("the cluster has no active controller")
    return f"{controller.host}:{controller.port}"


def _by_topic(partitions: Any) -> dict[str, list[Any]]:
    grouped: dict[str, list[Any]] = {}
    for topic, partition in partitions:
        grouped.setdefault(topic, []).append(partition)
    return grouped


def _alter(controller: str, targets: dict[tuple[str, int], list[int] | None]) -> dict[str, str]:
    """AlterPartitionReassignments v0; the failed partitions' names with their error."""
    topics = [{"name": topic, "partitions": [{"partition_index": p, "replicas": targets[(topic, p)]}
                                             for p in partitions]}
              for topic, partitions in _by_topic(targets).items()]
    response = send_request(controller, ApiKey.ALTER_PARTITION_REASSIGNMENTS, 0,
                            {"timeout_ms": CONTROLLER_TIMEOUT_MS, "topics": topics})
    if response["error_code"]:
        raise ToolError(response["error_message"] or error_name(response["error_code"]))
    return {f"{topic['name']}-{p['partition_index']}": p["error_message"] or error_name(p["error_code"])
            for topic in response["responses"] for p in topic["partitions"] if p["error_code"]}


def ongoing(controller: str) -> dict[tuple[str, int], dict[str, list[int]]]:
    """ListPartitionReassignments v0: every reassignment in progress."""
    response = send_request(controller, ApiKey.LIST_PARTITION_REASSIGNMENTS, 0,
                            {"timeout_ms": CONTROLLER_TIMEOUT_MS, "topics": None})
    if response["error_code"]:
        raise ToolError(response["error_message"] or error_name(response["error_code"]))
    return {(topic["name"], p["partition_index"]): {"replicas": p["replicas"], "adding": p["adding_replicas"],
                                                    "removing": p["removing_replicas"]}
            for topic in response["topics"] for p in topic["partitions"]}


def _current(admin: Any, partitions: Any) -> Targets:
    current: Targets = {}
    for topic, numbers in _by_topic(partitions).items():
        described = {p["partition"]: p["replicas"] for p in describe_topic(admin, topic)["partitions"]}
        for number in numbers:
            if number not in described:
                raise ToolError(f"Unable to find partition {topic}-{number}")
            current[(topic, number)] = described[number]
    return current


def _assignment_json(assignment: Targets) -> str:
    partitions = [{"topic": t, "partition": p, "replicas": replicas, "log_dirs": ["any"] * len(replicas)}
                  for (t, p), replicas in sorted(assignment.items())]
    return json.dumps({"version": 1, "partitions": partitions}, separators=(",", ":"))


def _names(partitions: Any) -> str:
    return ",".join(f"{t}-{p}" for t, p in sorted(partitions))


def _execute(admin: Any, controller: str, targets: Targets) -> int:
    current = _current(admin, targets)
    print(f"Current partition replica assignment\n\n{_assignment_json(current)}\n")
    print("Save this to use as the --reassignment-json-file option during rollback")
    failed = _alter(controller, dict(targets))
    if failed:
        print("Error reassigning partition(s):")
        for name, error in sorted(failed.items()):
            print(f"{name}: {error}")
        raise ToolError(f"{len(failed)} partition reassignment(s) failed")
    print(f"Successfully started partition reassignments for {_names(targets)}")
    return 0


def _verify(admin: Any, controller: str, targets: Targets) -> int:
    moving = ongoing(controller)
    current = _current(admin, targets)
    print("Status of partition reassignment:")
    for (topic, partition), target in sorted(targets.items()):
        name = f"{topic}-{partition}"
        if (topic, partition) in moving:
            print(f"Reassignment of partition {name} is still in progress.")
        elif current[(topic, partition)] == target:
            print(f"Reassignment of partition {name} is completed.")
        else:
            now = ",".join(map(str, current[(topic, partition)]))
            print(f"There is no active reassignment of partition {name}, but replica set is {now} rather than "
                  f"{','.join(map(str, target))}.")
    return 0


def _list(controller: str) -> int:
    moving = ongoing(controller)
    if not moving:
        print("No partition reassignments found.")
        return 0
    print("Current partition reassignments:")
    for (topic, partition), state in sorted(moving.items()):
        replicas, adding, removing = (",".join(map(str, state[k])) for k in ("replicas", "adding", "removing"))
        print(f"{topic}-{partition}: replicas: {replicas}. adding: {adding}. removing: {removing}.")
    return 0


def _cancel(controller: str, targets: Targets) -> int:
    failed = _alter(controller, dict.fromkeys(targets))
    cancelled = [key for key in targets if f"{key[0]}-{key[1]}" not in failed]
    if cancelled:
        print(f"Successfully cancelled partition reassignments for: {_names(cancelled)}")
    for name, error in sorted(failed.items()):
        print(f"{name}: {error}")
    return 0
