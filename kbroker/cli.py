"""The `kbroker` command (and `python -m kbroker`), shaped like kafka-server-start.sh:

    kbroker [server.properties] [--override key=value ...] [--log-level LEVEL] [--log-format text|json]

or, when the first argument names one (TOOL_COMMANDS), runs a Kafka-style tool of kbroker.tools:
`kbroker topics --bootstrap-server HOST:PORT --list`.

It reads the settings (kbroker.config), reports unknown keys and KBROKER_* variables in one
warning line (with a "did you mean"), and stops with exit code 2 and one error line on a bad
value, an unreadable file or a setting kbroker does not support yet (kbroker/config/support.py),
before anything listens; settings without effect here are named in one INFO line.
Then it sets up logging (`[time] LEVEL logger: message`, or with `--log-format json` one JSON
object per line: time, level, logger, message and the record's extras, such as the request log's
api, client_id and times) and hands over to kbroker.server. At DEBUG the logger
`kafka.request.logger` writes one line per request (kbroker/api/kafka_apis.py), as Kafka's does.

Must not touch: sockets, the data directory or any service; kbroker.server is imported only once
the settings are known to be good.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import time
from typing import Any

import kbroker
from kbroker.config import DATA_DIR_DEFAULT, ConfigError, KafkaConfig
from kbroker.config.properties import did_you_mean, unknown_env_variables
from kbroker.config.support import (
    ignored_message,
    ignored_settings,
    refusal_message,
    refused_settings,
    unknown_settings,
)

LOG_FORMAT = "[%(asctime)s] %(levelname)s %(name)s: %(message)s"
LOG_LEVELS = ("TRACE", "DEBUG", "INFO", "WARN", "WARNING", "ERROR", "CRITICAL")
LOG_LEVEL_ENV = "KBROKER_LOG_LEVEL"
LOG_FORMATS = ("text", "json")
LOG_FORMAT_ENV = "KBROKER_LOG_FORMAT"

log = logging.getLogger("kbroker.cli")

# The subcommands of kbroker.tools (a test keeps this list equal to theirs). Named here so that
# starting a broker does not import the tools or their client library.
TOOL_COMMANDS = frozenset({
    "topics", "consumer-groups", "configs", "console-producer", "console-consumer", "get-offsets",
    "delete-records", "leader-election", "reassign-partitions", "acls", "transactions", "dump-log", "console",
})


def _terminal_columns() -> int:
    """shutil.get_terminal_size()'s width: $COLUMNS, else stdout's terminal, else 80."""
    columns = 0
    with contextlib.suppress(ValueError):
        columns = int(os.environ.get("COLUMNS", "0"))
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


class _HelpFormatter(argparse.HelpFormatter):
    """argparse's own, sized to the terminal without `import shutil`: argparse builds a formatter
    for every add_argument, and shutil brings bz2, lzma and fnmatch into every broker start."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                 width: int | None = None) -> None:
        super().__init__(prog, indent_increment, max_help_position,
                         _terminal_columns() - 2 if width is None else width)


def _argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kbroker",
        formatter_class=_HelpFormatter,
        description="Run a Kafka broker. Settings use Kafka's names; precedence, lowest first: Kafka's "
        "defaults, kbroker's single-node defaults (without zookeeper.connect), the properties file, "
        "KBROKER_<NAME> environment variables (KBROKER_ADVERTISED_LISTENERS), then --override.",
        epilog="Kafka's tools, for any Kafka broker: kbroker {" + ",".join(sorted(TOOL_COMMANDS))
        + "} --help",
    )
    parser.add_argument(
        "properties",
        nargs="?",
        metavar="server.properties",
        help="a Java properties file with broker settings",
    )
    parser.add_argument(
        "--override",
        action="append",
        default=[],
        metavar="key=value",
        help="set one broker setting; may be repeated",
    )
    parser.add_argument(
        "--log-level",
        type=str.upper,
        choices=LOG_LEVELS,
        metavar="LEVEL",
        default=None,
        help=f"DEBUG, INFO, WARN or ERROR (default: ${LOG_LEVEL_ENV} or INFO)",
    )
    parser.add_argument(
        "--log-format",
        type=str.lower,
        choices=LOG_FORMATS,
        metavar="FORMAT",
        default=None,
        help=f"text, or json: one JSON object per line (default: ${LOG_FORMAT_ENV} or text)",
    )
    parser.add_argument("--version", action="version", version=f"kbroker {kbroker.__version__}")
    return parser


def _parse_command_line(argv: list[str] | None) -> argparse.Namespace:
    return _argument_parser().parse_args(argv)


def _load_config(args: argparse.Namespace) -> KafkaConfig:
    """The settings from the command line; on a bad one, one error line and SystemExit(2)."""
    try:
        config = KafkaConfig.load(args.properties, overrides=args.override, env=os.environ)
    except ConfigError as exc:
        print(f"kbroker: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    refused = refused_settings(config)
    if refused:  # fail closed: running without them would serve less than the operator asked for
        print(f"kbroker: error: {refusal_message(refused)}", file=sys.stderr)
        raise SystemExit(2)
    unknown = unknown_settings(config) + unknown_env_variables(os.environ)
    if unknown:
        named = ", ".join(name + did_you_mean(name) for name in unknown)
        print(f"kbroker: warning: ignoring unknown settings: {named}", file=sys.stderr)
    return config


def parse_args(argv: list[str] | None = None) -> KafkaConfig:
    """Command line to checked settings; SystemExit(2) with one stderr line on any error."""
    return _load_config(_parse_command_line(argv))


def _log_level(args: argparse.Namespace) -> int:
    name = (args.log_level or os.environ.get(LOG_LEVEL_ENV) or "INFO").upper()
    # Kafka's log4j names: WARN for WARNING, and TRACE (finer than DEBUG, which Python lacks).
    name = {"WARN": "WARNING", "TRACE": "DEBUG"}.get(name, name)
    level = logging.getLevelName(name)
    if not isinstance(level, int):
        print(
            f"kbroker: error: {LOG_LEVEL_ENV}={name!r} is not one of DEBUG, INFO, WARN, ERROR",
            file=sys.stderr,
        )
        raise SystemExit(2)
    return level


def _log_format(args: argparse.Namespace) -> str:
    name = (args.log_format or os.environ.get(LOG_FORMAT_ENV) or "text").lower()
    if name not in LOG_FORMATS:
        print(f"kbroker: error: {LOG_FORMAT_ENV}={name!r} is not one of text, json", file=sys.stderr)
        raise SystemExit(2)
    return name


# What every LogRecord has; anything else on a record came as `extra=` and goes into the JSON.
_RECORD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, ISO 8601 with milliseconds), level, logger,
    message, the record's extras, and the traceback as `exception` when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRIBUTES:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def _setup_logging(level: int, log_format: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(LOG_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def _log_startup(config: KafkaConfig) -> None:
    ignored = ignored_settings(config)
    if ignored:
        log.info(ignored_message(ignored))
    if config.single_node:
        log.info("single-node mode: no zookeeper.connect, metadata kept under the data directory")
    else:
        log.info("cluster mode: ZooKeeper at %s", config.get("zookeeper.connect"))
    dirs = ", ".join(config.log_dirs)
    if config.is_default("log.dirs") and config.is_default("log.dir"):
        log.info("data directory: %s (log.dirs not set; kbroker's default is %s)", dirs, DATA_DIR_DEFAULT)
    else:
        log.info("data directory: %s", dirs)


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    if arguments and arguments[0] in TOOL_COMMANDS:
        from kbroker.tools import main as run_tool  # late: a broker's start-up never loads the tools

        return run_tool(arguments)
    args = _parse_command_line(argv)
    level = _log_level(args)
    log_format = _log_format(args)
    config = _load_config(args)
    _setup_logging(level, log_format)
    _log_startup(config)
    from kbroker.server import run_broker  # late: nothing starts before the settings are good

    try:
        return run_broker(config)
    except KeyboardInterrupt:
        return 130
