"""MetricsEndpoint: the Prometheus endpoint of `metrics.listener=http://HOST:PORT`, at /metrics.

prometheus_client's own HTTP server (a WSGI server in a daemon thread, one more thread per
scrape) serves it, so a slow or stuck scraper never holds the event loop. The metrics are not
prometheus_client objects updated on the hot path: a scrape asks the event loop for a snapshot
(`snapshot()`, plain `Family` data copied from the broker's counters and gauges in one turn of
the loop) and turns it into the exposition format in its own thread. If the loop does not
answer within SNAPSHOT_TIMEOUT_S (a long stall), the scrape gets the previous snapshot rather
than waiting: the endpoint keeps answering while the broker is busy.

Imported only when `metrics.listener` is set (tests/test_start_imports.py), with prometheus_client.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client.core import Metric
from prometheus_client.exposition import ThreadingWSGIServer, make_wsgi_app
from prometheus_client.registry import Collector, CollectorRegistry

if TYPE_CHECKING:
    from kbroker.metrics.stats import Family

log = logging.getLogger("kbroker.metrics")

SNAPSHOT_TIMEOUT_S = 5.0


def to_metric(family: Family) -> Metric:
    """One plain Family as prometheus_client's Metric (its samples named as the exposition wants)."""
    metric = Metric(family.name, family.help, family.kind)
    for labels, value in family.samples:
        if family.kind == "histogram":
            assert isinstance(value, tuple)
            buckets, total = value
            for bound, count in buckets:
                metric.add_sample(family.name + "_bucket", {**labels, "le": _bound(bound)}, count)
            metric.add_sample(family.name + "_count", labels, buckets[-1][1])
            metric.add_sample(family.name + "_sum", labels, total)
        else:
            assert not isinstance(value, tuple)
            metric.add_sample(family.name + ("_total" if family.kind == "counter" else ""), labels, value)
    return metric


def _bound(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)


class _LoopSnapshotCollector(Collector):
    """Collects by running `snapshot` on the event loop; the last good snapshot if it cannot."""

    def __init__(self, loop: asyncio.AbstractEventLoop, snapshot: Callable[[], list[Family]]) -> None:
        self.loop = loop
        self.snapshot = snapshot
        self.last: list[Family] = []
        self.lock = threading.Lock()  # two scrapes at once: each gets a whole snapshot

    def collect(self) -> Iterator[Metric]:
        future: concurrent.futures.Future[list[Family]] = concurrent.futures.Future()

        def take() -> None:
            try:
                future.set_result(self.snapshot())
            except Exception as exc:  # a bug in one gauge must not end the scrapes
                future.set_exception(exc)

        try:
            self.loop.call_soon_threadsafe(take)
            families = future.result(timeout=SNAPSHOT_TIMEOUT_S)
        except concurrent.futures.TimeoutError:
            log.warning("metrics scrape: the event loop did not answer in %.0f s; serving the last snapshot",
                        SNAPSHOT_TIMEOUT_S)
            families = self.last
        except RuntimeError:  # the loop is closed: the broker is stopping
            families = self.last
        except Exception:
            log.exception("metrics scrape: taking the snapshot failed; serving the last one")
            families = self.last
        with self.lock:
            self.last = families
        for family in families:
            yield to_metric(family)


class _QuietHandler(WSGIRequestHandler):
    """No access log line per scrape on stderr (wsgiref's default)."""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (wsgiref's signature)
        pass


def _only_metrics_path(app: Callable) -> Callable:
    """The WSGI app at /metrics only (prometheus_client's answers every path); 404 elsewhere."""

    def serve(environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "/") in ("/metrics", "/metrics/"):
            return app(environ, start_response)
        start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
        return [b"Not found: the metrics are at /metrics\n"]

    return serve


class MetricsEndpoint:
    """The HTTP server of metrics.listener; `close()` stops it (from the loop, off the loop thread)."""

    def __init__(self, host: str, port: int, snapshot: Callable[[], list[Family]]) -> None:
        self.host = host
        self.port = port
        self.snapshot = snapshot
        self._server: ThreadingWSGIServer | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Binds (an OSError if it cannot) and serves from a daemon thread."""
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_LoopSnapshotCollector(loop, self.snapshot))

        class Server(ThreadingWSGIServer):  # a class per endpoint: the address family is a class attribute
            address_family = socket.AF_INET6 if ":" in self.host else socket.AF_INET

        server = make_server(self.host or "0.0.0.0", self.port, _only_metrics_path(make_wsgi_app(registry)),
                             Server, handler_class=_QuietHandler)
        threading.Thread(target=server.serve_forever, name="metrics-endpoint", daemon=True).start()
        self._server = server
        self.port = server.server_port

    async def close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            # shutdown() waits for serve_forever's next poll (up to 0.5 s): not on the loop.
            await asyncio.get_running_loop().run_in_executor(None, server.shutdown)
            server.server_close()
