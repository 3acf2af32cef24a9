"""What every subcommand shares: the connection flags, the clients, errors and output.

Flags keep Kafka's spellings (`--bootstrap-server`, `--command-config` with client properties in
a Java properties file). Errors are one line on stderr and exit code 1 (ToolError); a wrong or
missing argument is argparse's usage message and exit code 2 (`usage_error`).
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from collections.abc import Iterable, Sequence
from concurrent.futures import Future
from typing import Any, NoReturn

from kbroker.config import ConfigError
from kbroker.config.properties import read_properties_file
from kbroker.console.client_log import LastClientError


class _Session:
    """What one tool run shares: how long it waits for an answer (a broker that does not answer is
    an error, not a hang; Kafka's default.api.timeout.ms in --command-config sets it) and its
    admin clients, polled for their log when an answer does not come; and its client settings,
    which wire.py's own connections follow (TLS, SASL) as the clients do."""

    def __init__(self) -> None:
        self.timeout_s = 30.0
        self.clients: list[Any] = []
        self.config: dict[str, Any] = {}

    def explain_failure(self) -> None:
        for client in self.clients:
            client.poll(0)  # hands librdkafka's queued log lines over to CLIENT_LOG


SESSION = _Session()


class ToolError(Exception):
    """A failure to report as one line on stderr with a non-zero exit."""


# librdkafka's log, kept off stderr: only its last error is remembered, to explain a failure that
# the client reports in general terms (`_TRANSPORT: Broker transport failure`).
CLIENT_LOG = LastClientError()
_client_logger = logging.getLogger("kbroker.tools.librdkafka")
_client_logger.addHandler(CLIENT_LOG)
_client_logger.propagate = False


def add_connection_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bootstrap-server", required=True, metavar="HOST:PORT",
                        help="the server(s) to connect to, comma-separated")
    parser.add_argument("--command-config", metavar="FILE",
                        help="client settings (security.protocol, sasl.*, ssl.*: librdkafka's names, and "
                        "sasl.jaas.config with a PLAIN or SCRAM login module)")


def add_output_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", choices=("text", "json"), default="text",
                        help="text (Kafka's tool layout) or json for scripts")


def usage_error(parser: argparse.ArgumentParser, message: str) -> NoReturn:
    parser.error(message)  # usage and exit code 2, as for any argparse error


def client_config(args: argparse.Namespace, extra: Iterable[str] = ()) -> dict[str, Any]:
    """librdkafka settings: the bootstrap servers, the --command-config file, then `k=v` extras."""
    config: dict[str, Any] = {}
    if args.command_config:
        try:
            config.update(read_properties_file(args.command_config))
        except ConfigError as exc:
            raise ToolError(f"--command-config: {exc}") from None
    config = translate_java_properties(config)
    config.update(parse_assignments(extra, "property"))
    timeout_ms = config.pop("default.api.timeout.ms", None)  # a Java client setting librdkafka lacks
    if timeout_ms is not None:
        if not str(timeout_ms).isdigit() or int(timeout_ms) == 0:
            raise ToolError(f"default.api.timeout.ms={timeout_ms!r} is not a positive number of ms")
        SESSION.timeout_s = int(timeout_ms) / 1000
    config["bootstrap.servers"] = args.bootstrap_server
    # librdkafka's notices (a purged queue at exit, ...) are noise; a console producer or consumer
    # still shows its warnings and errors as they come, as Kafka's console tools do.
    config.setdefault("log_level", 4)
    SESSION.config = config
    return config


# sasl.jaas.config's login modules whose username and password librdkafka takes as settings.
_JAAS_CREDENTIALS = re.compile(r'(username|password)\s*=\s*"((?:[^"\\]|\\.)*)"')


def translate_java_properties(config: dict[str, Any]) -> dict[str, Any]:
    """A Java client's properties as librdkafka's: sasl.jaas.config (PLAIN or SCRAM login module)
    becomes sasl.username and sasl.password, so that Kafka's client.properties files work here."""
    jaas = config.pop("sasl.jaas.config", None)
    if jaas is None:
        return config
    if "PlainLoginModule" not in jaas and "ScramLoginModule" not in jaas:
        raise ToolError("sasl.jaas.config: only PlainLoginModule and ScramLoginModule can be translated; "
                        "use librdkafka's sasl.* settings instead")
    for name, value in _JAAS_CREDENTIALS.findall(jaas):
        config.setdefault(f"sasl.{name}", re.sub(r"\\(.)", r"\1", value))
    return config


def parse_assignments(items: Iterable[str], what: str) -> dict[str, str]:
    """`k=v` strings to a dict; a string without `=` is a ToolError naming `what`."""
    parsed: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ToolError(f"invalid {what} {item!r}: expected key=value")
        parsed[key.strip()] = value
    return parsed


def admin_client(args: argparse.Namespace) -> Any:
    from confluent_kafka.admin import AdminClient

    config = client_config(args)
    config.setdefault("logger", _client_logger)  # an admin command's failure is one line, its cause included
    try:
        client = AdminClient(config)
    except Exception as exc:  # librdkafka refuses an unknown or bad setting with KafkaException
        raise ToolError(str(exc)) from None
    SESSION.clients.append(client)
    return client


def result(future: Future[Any]) -> Any:
    """The value of an admin future, or ToolError with the broker's error text."""
    try:
        return future.result(timeout=SESSION.timeout_s)
    except TimeoutError:
        SESSION.explain_failure()
        cause = f" ({CLIENT_LOG.message})" if CLIENT_LOG.message else ""
        raise ToolError(f"no answer within {SESSION.timeout_s:g} s{cause}") from None
    except Exception as exc:
        SESSION.explain_failure()
        raise ToolError(error_text(exc)) from None


def cluster_metadata(admin: Any, topic: str | None = None) -> Any:
    """Metadata (all topics, or one) as confluent-kafka's ClusterMetadata; ToolError when none comes."""
    try:
        return admin.list_topics(topic, timeout=SESSION.timeout_s)
    except Exception as exc:
        SESSION.explain_failure()
        raise ToolError(f"cannot read metadata: {error_text(exc)}") from None


def list_offsets(admin: Any, partitions: list[tuple[str, int]], spec: Any) -> dict[tuple[str, int], int]:
    """ListOffsets for each partition with one OffsetSpec (earliest, latest or a timestamp)."""
    from confluent_kafka import TopicPartition

    if not partitions:
        return {}
    futures = admin.list_offsets({TopicPartition(topic, partition): spec for topic, partition in partitions})
    return {(tp.topic, tp.partition): result(future).offset for tp, future in futures.items()}


def error_text(exc: object) -> str:
    """A KafkaError (bare or in a KafkaException) as Kafka names it (`UNKNOWN_TOPIC_OR_PART: ...`);
    a client-side one (`_TRANSPORT`, `_TIMED_OUT`) with the client's last logged error as its cause."""
    error: Any = exc
    if not hasattr(error, "name") and isinstance(exc, BaseException) and exc.args:
        error = exc.args[0]
    if not (hasattr(error, "name") and hasattr(error, "str")):
        return str(exc) or type(exc).__name__
    text = f"{error.name()}: {error.str()}"
    if error.name().startswith("_") and CLIENT_LOG.message:
        text += f" ({CLIENT_LOG.message})"
    return text


def print_json(value: Any) -> None:
    json.dump(value, sys.stdout, indent=2, sort_keys=False)
    sys.stdout.write("\n")


def print_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """Columns padded to their widest cell, as Kafka's consumer-groups tool pads them (last unpadded)."""
    cells = [list(header)] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for row in cells:
        padded = [cell.ljust(width) for cell, width in zip(row[:-1], widths[:-1], strict=True)]
        print(" ".join([*padded, row[-1]]).rstrip())
