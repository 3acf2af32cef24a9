"""The web console's HTTP side: aiohttp serving the page (kbroker/console/static, no CDN) and a
JSON API over ClusterView, whose blocking client calls run in worker threads.

- `make_app(view)`: the aiohttp application;
- `parse_listen("http://HOST:PORT")`: where to listen (the `console.listener` setting's form);
- `ConsoleServer`: the console on a thread of its own with its own event loop, as the broker
  runs it when `console.listener` is set: the broker's loop never serves a page.

API (JSON): GET /api/cluster, /api/topics, /api/topics/{topic}, /api/topics/{topic}/messages
(partition, offset | timestamp, limit, search), POST /api/topics/{topic}/messages, GET
/api/groups, /api/groups/{group}, POST /api/groups/{group}/reset, GET /api/throughput. A topic or
group that does not exist is a 404 with {"error": ...}; a bad request a 400; a POST whose body is
not sent as application/json a 415; a cluster that does not answer a 502.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any

from aiohttp import web

from kbroker.config.validators import parse_http_listener
from kbroker.console.cluster_view import BadRequest, ClusterView, NotFound

log = logging.getLogger("kbroker.console")
STATIC = resources.files("kbroker.console") / "static"
VIEW: web.AppKey[ClusterView] = web.AppKey("view", ClusterView)


def parse_listen(value: str) -> tuple[str, int]:
    """`http://HOST:PORT` -> (host, port) (an empty host: every interface); ValueError for anything else."""
    address = parse_http_listener(value)
    if address is None:
        raise ValueError(f"expected http://HOST:PORT, got {value!r}")
    return address[0] or "0.0.0.0", address[1]


class UnsupportedMediaType(BadRequest):
    """A POST whose body is not declared JSON (415)."""


def _json_error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except NotFound as exc:
        return _json_error(404, str(exc))
    except UnsupportedMediaType as exc:
        return _json_error(415, str(exc))
    except (BadRequest, ValueError) as exc:
        return _json_error(400, str(exc))
    except web.HTTPException:
        raise
    except Exception as exc:  # the cluster's answer (KafkaException, a timeout): the page says so
        log.info("console request %s failed: %r", request.path, exc)
        cause = await asyncio.to_thread(request.app[VIEW].last_client_error)
        return _json_error(502, f"the cluster did not answer: {exc}" + (f" ({cause})" if cause else ""))


async def _call(method: Callable[..., Any], *args: Any, **kwargs: Any) -> web.Response:
    return web.json_response(await asyncio.to_thread(method, *args, **kwargs))


def _int_param(request: web.Request, name: str, default: int | None = None) -> int | None:
    text = request.query.get(name, "")
    if text == "":
        return default
    try:
        return int(text)
    except ValueError:
        raise BadRequest(f"{name} must be a whole number, not {text!r}") from None


async def _index(_request: web.Request) -> web.StreamResponse:
    return web.Response(text=(STATIC / "index.html").read_text(), content_type="text/html")


async def _static(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    types = {"js": "text/javascript", "css": "text/css"}
    asset = STATIC / name
    if "/" in name or name.rpartition(".")[2] not in types or not asset.is_file():
        raise web.HTTPNotFound()
    return web.Response(text=asset.read_text(), content_type=types[name.rpartition(".")[2]])


async def _cluster(request: web.Request) -> web.Response:
    return await _call(request.app[VIEW].cluster)


async def _topics(request: web.Request) -> web.Response:
    return await _call(request.app[VIEW].topics)


async def _topic(request: web.Request) -> web.Response:
    return await _call(request.app[VIEW].topic, request.match_info["topic"])


async def _messages(request: web.Request) -> web.Response:
    return await _call(request.app[VIEW].messages, request.match_info["topic"],
                       _int_param(request, "partition", 0) or 0, offset=_int_param(request, "offset"),
                       timestamp_ms=_int_param(request, "timestamp"), limit=_int_param(request, "limit", 50) or 50,
                       search=request.query.get("search") or None)


async def _json_object(request: web.Request) -> dict[str, Any]:
    # Only application/json: a browser sends that cross-site only after a CORS preflight, which
    # this server never grants, so another site's page cannot make a visitor's browser produce
    # records or reset offsets here (a form can post text/plain, never application/json).
    if request.content_type != "application/json":
        raise UnsupportedMediaType("the body must be JSON, sent as Content-Type: application/json")
    try:
        body = await request.json()
    except ValueError:
        raise BadRequest("the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return body


def _optional_int(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value in (None, ""):
        return None
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).lstrip("-").isdigit():
        raise BadRequest(f"{name} must be a whole number, not {value!r}")
    return int(value)


def _optional_text(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise BadRequest(f"{name} must be a string or null")
    return value


async def _produce(request: web.Request) -> web.Response:
    body = await _json_object(request)
    headers = body.get("headers") or {}
    if not isinstance(headers, dict):
        raise BadRequest("headers must be an object of strings")
    return await _call(request.app[VIEW].produce, request.match_info["topic"], key=_optional_text(body, "key"),
                       value=_optional_text(body, "value"), headers={str(k): str(v) for k, v in headers.items()},
                       partition=_optional_int(body, "partition"))


async def _groups(request: web.Request) -> web.Response:
    return await _call(request.app[VIEW].groups)


async def _group(request: web.Request) -> web.Response:
    return await _call(request.app[VIEW].group, request.match_info["group"])


async def _reset(request: web.Request) -> web.Response:
    body = await _json_object(request)
    topic = _optional_text(body, "topic")
    if not topic:
        raise BadRequest("name the topic whose offsets to reset")
    return await _call(request.app[VIEW].reset_group, request.match_info["group"], topic,
                       str(body.get("to")), _optional_int(body, "offset"))


async def _throughput(request: web.Request) -> web.Response:
    return await _call(request.app[VIEW].throughput)


def make_app(view: ClusterView) -> web.Application:
    app = web.Application(middlewares=[_errors])
    app[VIEW] = view
    app.add_routes([
        web.get("/", _index),
        web.get("/static/{name}", _static),
        web.get("/api/cluster", _cluster),
        web.get("/api/topics", _topics),
        web.get("/api/topics/{topic}", _topic),
        web.get("/api/topics/{topic}/messages", _messages),
        web.post("/api/topics/{topic}/messages", _produce),
        web.get("/api/groups", _groups),
        web.get("/api/groups/{group}", _group),
        web.post("/api/groups/{group}/reset", _reset),
        web.get("/api/throughput", _throughput),
    ])
    return app


async def start_site(view: ClusterView, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(make_app(view), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


def listen_error(exc: OSError) -> str:
    """Why binding failed, in the system's words ("Address already in use"): aiohttp's message
    repeats the address the caller has already named."""
    return os.strerror(exc.errno) if exc.errno else str(exc)


def bound_port(runner: web.AppRunner, asked: int) -> int:
    """The port a started site listens on (the one asked for unless that was 0)."""
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    return asked


class ConsoleServer:
    """The console on its own thread and event loop, for the broker process."""

    def __init__(self, listen: str, client_config: dict[str, Any]) -> None:
        self.host, self.port = parse_listen(listen)
        self.client_config = client_config
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="kbroker-console", daemon=True)

    def start(self, timeout: float = 10.0) -> None:
        """Listen, or raise what stopped it from listening (a port in use); `port` is then the
        bound one (a port of 0 asks for any free one)."""
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError(f"the web console did not start listening in {timeout:.0f} s")
        if self._failure is not None:
            raise self._failure

    def _run(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        try:
            view = ClusterView(self.client_config)
            self._runner = loop.run_until_complete(start_site(view, self.host, self.port))
            self.port = bound_port(self._runner, self.port)
        except BaseException as exc:
            self._failure = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        loop.run_forever()
        loop.run_until_complete(self._runner.cleanup())
        loop.close()
        view.close()

    def stop(self) -> None:
        loop = self._loop
        if loop is not None and self._failure is None and not loop.is_closed():
            loop.call_soon_threadsafe(loop.stop)
            self._thread.join(10)
