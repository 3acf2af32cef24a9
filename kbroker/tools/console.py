"""`kbroker console-producer` and `kbroker console-consumer`, as Kafka's console tools.

The producer sends one record per stdin line (LineReader: `--property parse.key=true` splits a
key off at `key.separator`, a tab by default; parse.headers=true reads `k:v,k2:v2` first), with a progress bar (rich) only when stderr is a terminal
and stdin is not. The consumer prints each record with DefaultMessageFormatter's properties
(print.timestamp, print.partition, print.offset, print.headers, print.key, print.value,
key.separator, line.separator, headers.separator, headers.key.separator, null.literal) and
`Processed a total of N messages` on stderr at the end.
"""

from __future__ import annotations

import argparse
import os
import random
import stat
import sys
import time
from collections.abc import Iterator
from typing import IO, Any

from kbroker.tools.common import ToolError, add_connection_args, client_config, error_text, parse_assignments

_TIMESTAMP_TYPES = {1: "CreateTime", 2: "LogAppendTime"}


def add_parser(subparsers: Any) -> None:
    producer = subparsers.add_parser("console-producer", help="send stdin's lines as records")
    add_connection_args(producer)
    producer.add_argument("--topic", required=True)
    producer.add_argument("--property", action="append", default=[], metavar="k=v",
                          help="parse.key=true, key.separator=SEP")
    producer.add_argument("--producer-property", action="append", default=[], metavar="k=v")
    producer.set_defaults(run=run_producer, parser=producer)

    consumer = subparsers.add_parser("console-consumer", help="print a topic's records")
    add_connection_args(consumer)
    consumer.add_argument("--topic", required=True)
    consumer.add_argument("--group", help="consume in this group (committing offsets)")
    consumer.add_argument("--from-beginning", action="store_true",
                          help="start at the earliest offset when the group has none")
    consumer.add_argument("--partition", type=int, help="read only this partition (no group subscription)")
    consumer.add_argument("--offset", default=None, metavar="earliest|latest|N",
                          help="--partition: where to start (default: latest, or earliest with --from-beginning)")
    consumer.add_argument("--max-messages", type=int, help="exit after this many records")
    consumer.add_argument("--timeout-ms", type=int, help="exit when no record arrives for this long")
    consumer.add_argument("--property", action="append", default=[], metavar="k=v",
                          help="print.key=true, print.headers=true, key.separator=SEP, ...")
    consumer.add_argument("--consumer-property", action="append", default=[], metavar="k=v")
    consumer.set_defaults(run=run_consumer, parser=consumer)


def _flag(properties: dict[str, str], name: str, default: bool = False) -> bool:
    return properties.get(name, str(default)).strip().lower() == "true"


def run_producer(args: argparse.Namespace) -> int:
    from confluent_kafka import Producer

    reader = LineReader(parse_assignments(args.property, "--property"))
    try:
        producer = Producer(client_config(args, args.producer_property))
    except Exception as exc:
        raise ToolError(error_text(exc)) from None
    failures: list[str] = []

    def delivered(error: Any, _message: Any) -> None:
        if error is not None:
            failures.append(f"{error.name()}: {error.str()}")

    for number, line in enumerate(_input_lines(sys.stdin.buffer), start=1):
        headers, key, value = reader.parse(line, number)
        _produce(producer, args.topic, headers, key, value, delivered)
        if failures:
            break
    remaining = producer.flush(60)
    if failures or remaining:
        raise ToolError(failures[0] if failures else f"{remaining} records not delivered within 60 s")
    return 0


class LineReader:
    """Kafka's LineMessageReader: `[headers<headers.delimiter>][key<key.separator>]value` per line.

    parse.key and parse.headers switch the parts on; headers are `k:v` pairs joined by
    headers.separator (`,`) with headers.key.separator (`:`); a part equal to null.marker is null.
    """

    def __init__(self, properties: dict[str, str]) -> None:
        self.parse_key = _flag(properties, "parse.key")
        self.parse_headers = _flag(properties, "parse.headers")
        self.key_separator = properties.get("key.separator", "\t").encode()
        self.headers_delimiter = properties.get("headers.delimiter", "\t").encode()
        self.headers_separator = properties.get("headers.separator", ",").encode()
        self.header_key_separator = properties.get("headers.key.separator", ":").encode()
        marker = properties.get("null.marker")
        self.null_marker = None if marker is None else marker.encode()

    def parse(self, line: bytes, number: int) -> tuple[list[tuple[str, bytes | None]], bytes | None, bytes | None]:
        rest, headers = line, []
        if self.parse_headers:
            text, found, rest = rest.partition(self.headers_delimiter)
            if not found:
                raise ToolError(f"No headers delimiter found on line number {number}: '{_show(line)}'")
            headers = [self._header(pair, number) for pair in text.split(self.headers_separator) if pair]
        key = None
        if self.parse_key:
            key, found, rest = rest.partition(self.key_separator)
            if not found:
                raise ToolError(f"No key separator found on line number {number}: '{_show(line)}'")
        return headers, self._nullable(key), self._nullable(rest)

    def _header(self, pair: bytes, number: int) -> tuple[str, bytes | None]:
        name, found, value = pair.partition(self.header_key_separator)
        if not found:
            raise ToolError(f"No header key separator found in pair '{_show(pair)}' on line number {number}")
        return name.decode("utf-8", "replace"), self._nullable(value)

    def _nullable(self, part: bytes | None) -> bytes | None:
        return None if part is None or part == self.null_marker else part


def _show(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def _produce(producer: Any, topic: str, headers: list[tuple[str, bytes | None]], key: bytes | None,
             value: bytes | None, delivered: Any) -> None:
    while True:
        try:
            producer.produce(topic, value, key, headers=headers or None, on_delivery=delivered)
            break
        except BufferError:  # the local queue is full: wait for deliveries, then try again
            producer.poll(0.5)
    producer.poll(0)


def _input_lines(stream: IO[bytes]) -> Iterator[bytes]:
    """stdin's lines without their line end, through a progress bar when a person watches one."""
    lines = (line.rstrip(b"\r\n") for line in stream)
    if not sys.stderr.isatty() or sys.stdin.isatty():
        yield from lines
        return
    try:
        from rich.progress import Progress
    except ImportError:  # the bar is a nicety of the `tools` extra
        yield from lines
        return
    mode = os.fstat(stream.fileno()).st_mode
    total = os.fstat(stream.fileno()).st_size if stat.S_ISREG(mode) else None
    with Progress(transient=True) as progress:
        task = progress.add_task("producing", total=total)
        for line in lines:
            yield line
            progress.advance(task, len(line) + 1)


def _start_offset(args: argparse.Namespace) -> int:
    """--offset as a confluent-kafka start offset; usage errors as kafka-console-consumer.sh has them."""
    from confluent_kafka import OFFSET_BEGINNING, OFFSET_END

    if args.offset is not None and args.partition is None:
        args.parser.error("the partition is required when offset is specified")
    if args.offset is not None and args.from_beginning:
        args.parser.error("options --from-beginning and --offset cannot be specified together")
    text = (args.offset or ("earliest" if args.from_beginning else "latest")).strip().lower()
    if text in ("earliest", "latest"):
        return OFFSET_BEGINNING if text == "earliest" else OFFSET_END
    try:
        offset = int(text)
    except ValueError:
        offset = -1
    if offset < 0:
        args.parser.error(f"invalid --offset {args.offset!r}: expected earliest, latest or an offset >= 0")
    return offset


def run_consumer(args: argparse.Namespace) -> int:
    from confluent_kafka import Consumer, TopicPartition

    start = _start_offset(args)
    properties = parse_assignments(args.property, "--property")
    config = client_config(args, args.consumer_property)
    config.setdefault("group.id", args.group or f"console-consumer-{random.randrange(100000)}")
    config.setdefault("auto.offset.reset", "earliest" if args.from_beginning else "latest")
    config.setdefault("enable.auto.commit", "true" if args.group else "false")
    try:
        consumer = Consumer(config)
    except Exception as exc:
        raise ToolError(error_text(exc)) from None
    count = 0
    try:
        if args.partition is None:
            consumer.subscribe([args.topic])
        else:
            consumer.assign([TopicPartition(args.topic, args.partition, start)])
        count = _consume(consumer, args, properties)
    finally:
        consumer.close()
        print(f"Processed a total of {count} messages", file=sys.stderr)
    return 0


def _consume(consumer: Any, args: argparse.Namespace, properties: dict[str, str]) -> int:
    count = 0
    out = sys.stdout.buffer
    idle_deadline = None if args.timeout_ms is None else time.monotonic() + args.timeout_ms / 1000
    while args.max_messages is None or count < args.max_messages:
        message = consumer.poll(0.2)
        if message is None:
            if idle_deadline is not None and time.monotonic() >= idle_deadline:
                break
            continue
        error = message.error()
        if error is not None:  # a missing topic ends the run; a retriable hiccup does not
            if error.name() != "_PARTITION_EOF" and (error.fatal() or not error.retriable()):
                raise ToolError(f"{error.name()}: {error.str()}")
            continue
        out.write(format_record(message, properties))
        out.flush()
        count += 1
        if args.timeout_ms is not None:
            idle_deadline = time.monotonic() + args.timeout_ms / 1000
    return count


def format_record(message: Any, properties: dict[str, str]) -> bytes:
    """One record as Kafka's DefaultMessageFormatter prints it (timestamp, partition, offset,
    headers, key, value, each field followed by key.separator, then line.separator)."""
    separator = properties.get("key.separator", "\t").encode()
    null = properties.get("null.literal", "null").encode()
    parts: list[bytes] = []
    if _flag(properties, "print.timestamp"):
        kind, timestamp = message.timestamp()
        parts.append(f"{_TIMESTAMP_TYPES[kind]}:{timestamp}".encode() if kind in _TIMESTAMP_TYPES
                     else b"NO_TIMESTAMP")
    if _flag(properties, "print.partition"):
        parts.append(f"Partition:{message.partition()}".encode())
    if _flag(properties, "print.offset"):
        parts.append(f"Offset:{message.offset()}".encode())
    if _flag(properties, "print.headers"):
        parts.append(_headers(message.headers(), properties, null))
    if _flag(properties, "print.key"):
        key = message.key()
        parts.append(null if key is None else key)
    if _flag(properties, "print.value", True):
        value = message.value()
        parts.append(null if value is None else value)
    return separator.join(parts) + properties.get("line.separator", "\n").encode()


def _headers(headers: list[tuple[str, bytes | None]] | None, properties: dict[str, str], null: bytes) -> bytes:
    if not headers:
        return b"NO_HEADERS"
    key_separator = properties.get("headers.key.separator", ":").encode()
    return properties.get("headers.separator", ",").encode().join(
        name.encode() + key_separator + (null if value is None else value) for name, value in headers)
