"""The `kbroker` subcommands: Kafka's command-line tools against any Kafka-compatible broker.

`kbroker topics|consumer-groups|configs|console-producer|console-consumer|get-offsets|
delete-records|leader-election|reassign-partitions|acls|transactions|dump-log ...`
take the flags of Kafka's own scripts (kafka-topics.sh, ...). They are
clients of the protocol, built on confluent-kafka's AdminClient, Producer and Consumer (the
`tools` extra), with kbroker's codec only where confluent-kafka has no API (OffsetDelete,
AlterPartitionReassignments, ListPartitionReassignments, the transaction APIs of `transactions`).
kbroker.cli hands over here when the first argument names a subcommand (TOOL_COMMANDS), so a
starting broker never imports this package.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys

from kbroker.tools import (
    acls,
    configs,
    console,
    consumer_groups,
    dump_log,
    leader_election,
    offsets,
    reassign_partitions,
    topics,
    transactions,
)
from kbroker.tools.common import ToolError

MODULES = (topics, consumer_groups, configs, console, offsets, leader_election, reassign_partitions, acls,
           transactions, dump_log)


def argument_parser() -> argparse.ArgumentParser:
    return _parser_and_commands()[0]


def command_names() -> list[str]:
    """The subcommands' names (kbroker.cli.TOOL_COMMANDS must list the same)."""
    return sorted(_parser_and_commands()[1])


def _parser_and_commands() -> tuple[argparse.ArgumentParser, list[str]]:
    parser = argparse.ArgumentParser(prog="kbroker", description="Kafka's command-line tools, for any Kafka broker.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in MODULES:
        module.add_parser(subparsers)
    return parser, list(subparsers.choices)


def _raised_in(exc: BaseException) -> str:
    """The module whose code raised `exc` (the last frame of its traceback)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return "" if tb is None else str(tb.tb_frame.f_globals.get("__name__", ""))


def main(argv: list[str]) -> int:
    """Run one subcommand; exit code 0, 1 with one `kbroker <command>: error:` line, or 2 on usage."""
    gc.enable()  # kbroker/__main__.py turns it off for a broker's start-up only
    args = argument_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except ToolError as exc:
        print(f"kbroker {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except (ValueError, TypeError) as exc:  # confluent-kafka refusing an argument before it sends anything
        if not _raised_in(exc).startswith("confluent_kafka"):
            raise
        print(f"kbroker {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except ModuleNotFoundError as exc:
        if exc.name != "confluent_kafka":  # the progress bar does without rich
            raise
        print(f"kbroker {args.command}: error: the tools need {exc.name}: pip install 'kbroker[tools]'",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `kbroker ... | head`: the reader left; say nothing more, as `cat` would
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
