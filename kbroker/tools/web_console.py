"""`kbroker console`: the web console (kbroker/console) against any Kafka cluster.

    kbroker console --bootstrap-server HOST:PORT [--command-config client.properties]
                    [--listen http://127.0.0.1:8080]

The same page and API the broker serves with `console.listener`; the connection flags are the
other tools' (`--command-config` with client properties, so SASL and SSL clusters work). It runs
until interrupted; a port in use is one error line and exit code 1.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from kbroker.tools.common import ToolError, add_connection_args, client_config

DEFAULT_LISTEN = "http://127.0.0.1:8080"


def add_parser(subparsers: Any) -> None:
    console = subparsers.add_parser("console", help="serve the web console for a cluster")
    add_connection_args(console)
    console.add_argument("--listen", default=DEFAULT_LISTEN, metavar="http://HOST:PORT",
                         help=f"where the console listens (default {DEFAULT_LISTEN}; port 0: any free port)")
    console.set_defaults(run=run, parser=console)


def run(args: argparse.Namespace) -> int:
    try:
        from kbroker.console.web import parse_listen
    except ModuleNotFoundError as exc:
        if exc.name not in ("aiohttp", "confluent_kafka"):
            raise
        raise ToolError(f"the console needs {exc.name}: pip install 'kbroker[console]'") from None
    try:
        host, port = parse_listen(args.listen)
    except ValueError as exc:
        args.parser.error(f"--listen: {exc}")
    config = client_config(args)
    config["log_level"] = 3  # the page reports what the cluster answers; librdkafka's warnings are noise here
    return asyncio.run(_serve(config, host, port))


async def _serve(config: dict[str, Any], host: str, port: int) -> int:
    from kbroker.console.cluster_view import ClusterView
    from kbroker.console.web import bound_port, listen_error, start_site

    try:
        view = ClusterView(config)
    except Exception as exc:  # librdkafka refusing a setting of --command-config (KafkaException)
        raise ToolError(str(exc)) from None
    try:
        runner = await start_site(view, host, port)
    except OSError as exc:
        raise ToolError(f"cannot listen on http://{host}:{port}: {listen_error(exc)}") from None
    # One line a script can wait for: where the page is.
    print(f"kbroker console at http://{host}:{bound_port(runner, port)}/ "
          f"(cluster {config['bootstrap.servers']}); Ctrl-C stops it", flush=True, file=sys.stdout)
    try:
        await asyncio.Event().wait()  # until interrupted (KeyboardInterrupt: exit code 130)
    finally:
        await runner.cleanup()
        view.close()
    return 0
