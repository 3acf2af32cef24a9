"""`kbroker reassign-partitions`: kafka-reassign-partitions.sh's --execute, --verify, --list, --cancel.

confluent-kafka has no API for AlterPartitionReassignments and ListPartitionReassignments
(KIP-455), so they are sent with kbroker's codec (wire.py) to the active controller, which
AdminClient's DescribeCluster names. The file is Kafka's:
`{"version": 1, "partitions": [{"topic": "t", "partition": 0, "replicas": [2, 3]}]}`, with
optional `"log_dirs": ["/data/a", "any"]` (one per replica): --execute then moves those replicas
into those log dirs with AlterReplicaLogDirs to their brokers, retrying every 100 ms while a
replica does not exist there yet (until --timeout), and --verify reports each move as Kafka's
tool does, from DescribeLogDirs. --execute prints the current assignment first (to save for a
rollback), as Kafka's tool does.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from kbroker.protocol.api_keys import ApiKey
from kbroker.protocol.errors import Errors
from kbroker.tools.common import ToolError, add_connection_args, admin_client, result
from kbroker.tools.topics import describe_topic
from kbroker.tools.wire import alter_replica_log_dirs, error_name, replica_log_dirs, send_request

# How long the controller may take to answer (the requests' timeout_ms).
CONTROLLER_TIMEOUT_MS = 30_000
ANY_LOG_DIR = "any"
MOVE_RETRY_BACKOFF_S = 0.1  # Kafka's tool retries log dir moves of replicas not there yet as often


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser("reassign-partitions", help="move partitions' replicas to other brokers")
    add_connection_args(parser)
    action = parser.add_mutually_exclusive_group(required=True)
    for name in ("execute", "verify", "list", "cancel"):
        action.add_argument(f"--{name}", action="store_true")
    parser.add_argument("--reassignment-json-file", metavar="FILE", help="the target replicas (Kafka's JSON)")
    parser.add_argument("--timeout", type=int, default=10_000, metavar="MS",
                        help="how long --execute waits for log dir moves to start (default 10000)")
    parser.set_defaults(run=run, parser=parser)


def run(args: argparse.Namespace) -> int:
    if not args.list and not args.reassignment_json_file:
        args.parser.error("--execute, --verify and --cancel need --reassignment-json-file")
    admin = admin_client(args)
    controller = _controller(admin)
    if args.list:
        return _list(controller)
    targets, moves = _read_plan(args.reassignment_json_file)
    if args.execute:
        _execute(admin, controller, targets)
        if moves:
            _execute_moves(admin, moves, args.timeout / 1000)
        return 0
    if args.verify:
        _verify(admin, controller, targets)
        if moves:
            _verify_moves(admin, moves)
        return 0
    return _cancel(controller, targets)


Targets = dict[tuple[str, int], list[int]]
# (topic, partition, broker id) -> the log dir that broker is to hold the replica in.
Moves = dict[tuple[str, int, int], str]


def _read_plan(path: str) -> tuple[Targets, Moves]:
    try:
        with open(path) as file:
            document = json.load(file)
        targets: Targets = {}
        moves: Moves = {}
        for p in document["partitions"]:
            key, replicas = (str(p["topic"]), int(p["partition"])), [int(r) for r in p["replicas"]]
            log_dirs = [str(d) for d in p.get("log_dirs", [ANY_LOG_DIR] * len(replicas))]
            if len(log_dirs) != len(replicas):  # Kafka's message
                raise ToolError(f"Size of replicas list {_java_list(replicas)} is different from size of log dirs "
                                f"list {_java_list(log_dirs)} for partition {key[0]}-{key[1]}")
            targets[key] = replicas
            moves.update({(*key, r): d for r, d in zip(replicas, log_dirs, strict=True) if d != ANY_LOG_DIR})
        return targets, moves
    except OSError as exc:
        raise ToolError(f"cannot read --reassignment-json-file {path}: {exc.strerror}") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ToolError(f"--reassignment-json-file {path} is not Kafka's reassignment JSON ({exc!r})") from None


def _java_list(values: list[Any]) -> str:
    return f"[{', '.join(map(str, values))}]"


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


def _execute(admin: Any, controller: str, targets: Targets) -> None:
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


def _broker_addresses(admin: Any) -> dict[int, str]:
    return {node.id: f"{node.host}:{node.port}" for node in result(admin.describe_cluster()).nodes}


def _by_broker(moves: Moves) -> dict[int, dict[tuple[str, int], str]]:
    grouped: dict[int, dict[tuple[str, int], str]] = {}
    for (topic, partition, broker), log_dir in moves.items():
        grouped.setdefault(broker, {})[(topic, partition)] = log_dir
    return grouped


def _replica_name(topic: str, partition: int, broker: int) -> str:
    return f"{topic}-{partition}-{broker}"  # Kafka's TopicPartitionReplica


def _execute_moves(admin: Any, moves: Moves, timeout_s: float) -> None:
    """Kafka's executeMoves: AlterReplicaLogDirs to each broker; a replica not there yet
    (REPLICA_NOT_AVAILABLE, its dir remembered by the broker) is asked again until it is."""
    addresses = _broker_addresses(admin)
    pending = dict(moves)
    deadline = time.monotonic() + timeout_s
    while True:
        for broker, wanted in sorted(_by_broker(pending).items()):
            if broker not in addresses:
                raise ToolError(f"Unknown broker id {broker}")
            for (topic, partition), code in sorted(alter_replica_log_dirs(addresses[broker], wanted).items()):
                if code == Errors.REPLICA_NOT_AVAILABLE:
                    continue
                if code != Errors.NONE:
                    raise ToolError(f"Failed to alter dir for {_replica_name(topic, partition, broker)}: "
                                    f"{error_name(code)}")
                log_dir = pending.pop((topic, partition, broker))
                print(f"Successfully started moving log directory to {log_dir} for replica {topic}-{partition} "
                      f"with broker {broker} ")
        if not pending:
            return
        if time.monotonic() >= deadline:
            names = ",".join(_replica_name(*key) for key in sorted(pending, key=lambda k: (k[2], k[0], k[1])))
            raise ToolError(f"Timed out before log directory move{'' if len(pending) == 1 else 's'} "
                            f"could be started for: {names}")
        time.sleep(MOVE_RETRY_BACKOFF_S)


def _verify_moves(admin: Any, moves: Moves) -> None:
    """Kafka's verifyReplicaMoves: each replica's current and future log dir against its target."""
    addresses = _broker_addresses(admin)
    for broker, wanted in sorted(_by_broker(moves).items()):
        if broker not in addresses:
            raise ToolError(f"Unknown broker id {broker}")
        dirs = replica_log_dirs(addresses[broker], sorted(wanted))
        for (topic, partition), target in sorted(wanted.items()):
            print(_move_state(topic, partition, broker, target, *dirs[(topic, partition)]))


def _move_state(topic: str, partition: int, broker: int, target: str, current: str | None,
                future: str | None) -> str:
    """Kafka's replicaMoveStatesToString, one replica."""
    name = f"{topic}-{partition}"
    if current is None:
        return (f"Partition {name} is not found in any live log dir on broker {broker}. "
                "There is likely an offline log directory on the broker.")
    if future is None and current == target:
        return f"Reassignment of replica {_replica_name(topic, partition, broker)} completed successfully."
    if future is None:
        return f"Partition {name} on broker {broker} is not being moved from log dir {current} to {target}."
    if future == target:
        return f"Reassignment of replica {_replica_name(topic, partition, broker)} is still in progress."
    return f"Partition {name} on broker {broker} is being moved to log dir {future} instead of {target}."


def _verify(admin: Any, controller: str, targets: Targets) -> None:
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
