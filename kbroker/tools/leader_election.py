"""`kbroker leader-election`: kafka-leader-election.sh through AdminClient's ElectLeaders.

Prints LeaderElectionCommand's lines: `Successfully completed leader election (PREFERRED) for
partitions t-0, t-1`, `Valid replica already elected for partitions t-2` (ELECTION_NOT_NEEDED),
and for each failure `Error completing leader election (PREFERRED) for partition: t-3: ...`
with exit code 1.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from kbroker.tools.common import ToolError, add_connection_args, admin_client, error_text, result

ELECTION_NOT_NEEDED = "ELECTION_NOT_NEEDED"


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser("leader-election", help="elect preferred or unclean leaders")
    add_connection_args(parser)
    parser.add_argument("--admin.config", dest="admin_config", metavar="FILE",
                        help="kafka-leader-election.sh's name for --command-config")
    parser.add_argument("--election-type", required=True, type=str.upper, choices=("PREFERRED", "UNCLEAN"))
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--topic", help="with --partition: one partition")
    which.add_argument("--all-topic-partitions", action="store_true")
    which.add_argument("--path-to-json-file", metavar="FILE",
                       help='{"partitions": [{"topic": "t", "partition": 0}, ...]}')
    parser.add_argument("--partition", type=int)
    parser.set_defaults(run=run, parser=parser)


def run(args: argparse.Namespace) -> int:
    from confluent_kafka import ElectionType

    if (args.topic is None) != (args.partition is None):
        args.parser.error("--topic and --partition go together")
    args.command_config = args.command_config or args.admin_config
    partitions = _partitions(args)
    admin = admin_client(args)
    election = ElectionType.PREFERRED if args.election_type == "PREFERRED" else ElectionType.UNCLEAN
    outcome = result(admin.elect_leaders(election, partitions))
    return report(args.election_type, outcome)


def _partitions(args: argparse.Namespace) -> list[Any] | None:
    from confluent_kafka import TopicPartition

    if args.all_topic_partitions:
        return None
    if args.topic is not None:
        return [TopicPartition(args.topic, args.partition)]
    try:
        with open(args.path_to_json_file) as file:
            document = json.load(file)
        return [TopicPartition(str(p["topic"]), int(p["partition"])) for p in document["partitions"]]
    except OSError as exc:
        raise ToolError(f"cannot read --path-to-json-file {args.path_to_json_file}: {exc.strerror}") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ToolError(f"--path-to-json-file is not a partition list ({exc!r})") from None


def report(election_type: str, outcome: dict[Any, Any]) -> int:
    done, not_needed, failed = [], [], []
    for tp, error in sorted(outcome.items(), key=lambda item: (item[0].topic, item[0].partition)):
        name = f"{tp.topic}-{tp.partition}"
        text = None if error is None else error_text(error)
        if text is None:
            done.append(name)
        elif text.startswith(ELECTION_NOT_NEEDED):
            not_needed.append(name)
        else:
            failed.append((name, text))
    if done:
        print(f"Successfully completed leader election ({election_type}) for partitions {', '.join(done)}")
    if not_needed:
        print(f"Valid replica already elected for partitions {', '.join(not_needed)}")
    for name, text in failed:
        print(f"Error completing leader election ({election_type}) for partition: {name}: {text}")
    if failed:
        raise ToolError(f"{len(failed)} replica(s) could not be elected")
    return 0
