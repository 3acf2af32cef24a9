"""`kbroker get-offsets` (kafka-get-offsets.sh) and `kbroker delete-records` (kafka-delete-records.sh).

get-offsets prints `topic:partition:offset` per partition for --time -1 (latest), -2
(earliest), -3 (the record with the largest timestamp) or a timestamp in ms. delete-records
reads Kafka's JSON file `{"partitions": [{"topic": "t", "partition": 0, "offset": 3}], "version": 1}`
(offset -1: up to the high watermark) and prints each partition's new low watermark.
"""

from __future__ import annotations

import argparse
import json
import re
from typing import Any

from kbroker.tools.common import (
    SESSION,
    ToolError,
    add_connection_args,
    add_output_arg,
    admin_client,
    cluster_metadata,
    error_text,
    list_offsets,
    print_json,
)

TIME_NAMES = {"latest": -1, "earliest": -2, "max-timestamp": -3}


def add_parser(subparsers: Any) -> None:
    get = subparsers.add_parser("get-offsets", help="the offsets of partitions at a time")
    add_connection_args(get)
    get.add_argument("--topic", help="a regular expression of topics (default: all)")
    get.add_argument("--partitions", help="comma-separated partition ids (default: all)")
    get.add_argument("--time", default="-1", help="-1 or latest, -2 or earliest, -3 or max-timestamp, or ms")
    get.add_argument("--exclude-internal-topics", action="store_true")
    add_output_arg(get)
    get.set_defaults(run=run_get_offsets, parser=get)

    delete = subparsers.add_parser("delete-records", help="delete records up to offsets (Kafka's JSON file)")
    add_connection_args(delete)
    delete.add_argument("--offset-json-file", required=True, metavar="FILE")
    delete.set_defaults(run=run_delete_records, parser=delete)


def _offset_spec(args: argparse.Namespace) -> Any:
    from confluent_kafka.admin import OffsetSpec

    text = args.time.strip().lower()
    try:
        time = TIME_NAMES[text] if text in TIME_NAMES else int(text)
    except ValueError:
        args.parser.error(f"invalid --time {args.time!r}: expected -1, -2, -3, latest, earliest or ms")
    if time == -1:
        return OffsetSpec.latest()
    if time == -2:
        return OffsetSpec.earliest()
    if time == -3:
        return OffsetSpec.max_timestamp()
    if time < 0:
        args.parser.error(f"invalid --time {args.time!r}")
    return OffsetSpec.for_timestamp(time)


def run_get_offsets(args: argparse.Namespace) -> int:
    spec = _offset_spec(args)
    try:
        pattern = re.compile(args.topic or ".*")
        wanted = None if args.partitions is None else {int(p) for p in args.partitions.split(",")}
    except (re.error, ValueError) as exc:
        args.parser.error(f"invalid --topic or --partitions: {exc}")
    admin = admin_client(args)
    metadata = cluster_metadata(admin)
    partitions = sorted((name, p) for name, topic in metadata.topics.items() if pattern.fullmatch(name)
                        and not (args.exclude_internal_topics and name.startswith("__"))
                        for p in topic.partitions if wanted is None or p in wanted)
    if args.topic and not partitions:
        raise ToolError("Could not match any topic-partitions with the specified filters")
    offsets = list_offsets(admin, partitions, spec)
    rows = [{"topic": t, "partition": p, "offset": None if offsets[(t, p)] < 0 else offsets[(t, p)]}
            for t, p in partitions]
    if args.output == "json":
        print_json(rows)
    else:
        for row in rows:
            print(f"{row['topic']}:{row['partition']}:{'' if row['offset'] is None else row['offset']}")
    return 0


def _read_offset_json(path: str) -> list[tuple[str, int, int]]:
    try:
        with open(path) as file:
            document = json.load(file)
        return [(str(p["topic"]), int(p["partition"]), int(p["offset"])) for p in document["partitions"]]
    except OSError as exc:
        raise ToolError(f"cannot read --offset-json-file {path}: {exc.strerror}") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ToolError(f"--offset-json-file {path} is not Kafka's offset JSON ({exc!r})") from None


def run_delete_records(args: argparse.Namespace) -> int:
    from confluent_kafka import TopicPartition

    wanted = _read_offset_json(args.offset_json_file)
    admin = admin_client(args)
    print("Executing records delete operation")
    futures = admin.delete_records([TopicPartition(t, p, offset) for t, p, offset in wanted])
    print("Records delete operation completed:")
    failed = False
    for tp, future in sorted(futures.items(), key=lambda item: (item[0].topic, item[0].partition)):
        try:
            line = f"low_watermark: {future.result(timeout=SESSION.timeout_s).low_watermark}"
        except Exception as exc:
            failed, line = True, f"error: {error_text(exc)}"
        print(f"partition: {tp.topic}-{tp.partition}\t{line}")
    return 1 if failed else 0
