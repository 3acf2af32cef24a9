"""KafkaApis: decodes one request frame, runs its handler, encodes the response frame.

The rules for requests it cannot serve follow Kafka (KAFKA-FACTS.md §9):
- unknown API key, unparsable header: close the connection;
- unsupported version: ApiVersions is answered in v0 format with UNSUPPORTED_VERSION and
  ApiVersions' own range (KIP-511); any other API closes the connection;
- unparsable body: ApiVersions v3+ gets INVALID_REQUEST, anything else closes the connection.
Each case logs one line, as does a ZooKeeper session lost under a handler (ZooKeeperUnavailableError,
the connection closed).
On a SASL listener a connection carries a SaslServerAuthenticator (kbroker/security) in its
Session, and `process` enforces what Kafka's SaslServerAuthenticator does before the handlers
see anything: only ApiVersions (once) and SaslHandshake before a mechanism is chosen (anything
else closes the connection), only SaslAuthenticate during the exchange (anything else is answered
ILLEGAL_SASL_STATE in its top-level error fields, then closed), raw tokens
after a v0 handshake, frames no larger than sasl.server.max.receive.size until authenticated, a
failed exchange answered and then closed after connection.failed.authentication.delay.ms, and a
session past connections.max.reauth.ms closed on its next request other than SaslHandshake.
A handler that wants the connection closed raises the api layer's
CloseConnection (kbroker/api/handlers); `process` turns it into the network layer's signal, as
it does for the cases above. This module knows the codec, the handler registry and the services
handlers get (BrokerServices), not sockets: the server hands `process` to the network.

Client quotas (kbroker/security/client_quota_manager.py): while any quota exists, each request
is recorded against the quotas of its principal and client id (api/quota_helper.py); a throttle
time goes into the response's throttle_time_ms and the connection is muted for it once the
response is written (KafkaConnection.mute_for, KIP-219). With no quota, none of that runs.

Measured requests: with metrics on (`metrics.listener`, a RequestMetrics given) or the logger
`kafka.request.logger` at DEBUG, each answered request's time is split as Kafka splits it
(request queue: from the frame's arrival to its handler; remote: parked in a purgatory, counted
by the purgatory in `metrics.stats.remote_time_s`; local: the rest) and counted per API and
version, with the error codes of its response (Produce and Fetch per partition, other APIs their
top-level code); the request logger gets one line per request, like Kafka's. Otherwise none of
that runs: no clock is read.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from kbroker.api import quota_helper
from kbroker.api.handlers import CloseConnection, Handler, load_handlers, resolved
from kbroker.api.request_context import RequestContext
from kbroker.metadata.znode_store import ZooKeeperUnavailableError
from kbroker.metrics.stats import remote_time_s
from kbroker.network import socket_server
from kbroker.network.log_limiter import RateLimitedLog, source_of
from kbroker.protocol.api_keys import ApiKey
from kbroker.protocol.errors import Errors
from kbroker.protocol.headers import RequestHeader, decode_request_header, response_frame_head
from kbroker.protocol.messages import CodecError, request_codec, response_codec
from kbroker.security.principal import ANONYMOUS

if TYPE_CHECKING:
    from kbroker.api.broker_services import BrokerServices
    from kbroker.metrics.stats import RequestMetrics, RequestTimes
    from kbroker.network.socket_server import KafkaConnection
    from kbroker.security.sasl_authenticator import SaslServerAuthenticator
    from kbroker.security.session import Session

log = logging.getLogger("kbroker.request")
# Malformed requests are logged once per client host and kind per interval (issue 16, bug 6).
bad_input_log = RateLimitedLog(log)
# Kafka's request log: one DEBUG line per completed request (log4j's kafka.request.logger).
request_log = logging.getLogger("kafka.request.logger")

# Kafka's names of the APIs in its request metrics and logs (ApiKeys' names): PRODUCE is
# "Produce", LEADER_AND_ISR "LeaderAndIsr".
REQUEST_NAMES: dict[int, str] = {
    key.value: "".join(part.capitalize() for part in key.name.split("_")) for key in ApiKey}
_ERROR_NAMES: dict[int, str] = {error.value: error.name for error in Errors}
# logging's own per-level answers of isEnabledFor for the request log, cleared (in place) by any
# setLevel (KIP-412's BROKER_LOGGER changes too): read directly, a request costs a dict lookup,
# not a call. Without it (another Python), every request asks isEnabledFor.
_REQUEST_LOG_ANSWERS: dict[int, bool] = getattr(request_log, "_cache", {})
_DEBUG = logging.DEBUG


def _api_name(api_key: int) -> str:
    try:
        return ApiKey(api_key).name
    except ValueError:
        return f"api key {api_key}"


def _frame_chunks(head: Any, encode_chunks: Any, correlation_id: int, response: dict) -> list:
    """A response frame as chunks: the body encoded after a placeholder that the frame's head
    (size prefix and response header, one Struct) then replaces."""
    chunks: list = [b""]
    chunks[0] = head.pack(head.size - 4 + encode_chunks(response, chunks), correlation_id)
    return chunks


class Route:
    """What a request of one API and version needs, looked up once (the first such request) and
    kept: the handler, the request decoder, the response encoder and the response frame's head.
    A request then costs one dict lookup instead of the registry's and codecs' checks."""

    __slots__ = ("handle", "decode", "encode_chunks", "head", "name", "metrics")

    def __init__(self, handler: Handler, version: int, request_metrics: RequestMetrics | None) -> None:
        api_key = handler.api_key
        self.handle = handler.handle
        self.decode = request_codec(api_key, version).decode
        self.encode_chunks = response_codec(api_key, version).encode_chunks
        self.head = response_frame_head(api_key, version)
        self.name = REQUEST_NAMES[api_key]
        # With metrics on, the counters this API and version count into (no lookup per request).
        self.metrics = request_metrics.api(self.name, version) if request_metrics is not None else None


class KafkaApis:
    def __init__(self, services: BrokerServices, request_metrics: RequestMetrics | None = None) -> None:
        self.services = services
        self.handlers: dict[int, Handler] = load_handlers()
        self.request_metrics = request_metrics
        self._routes: dict[tuple[int, int], Route] = {}
        # Fetch's times again as FetchConsumer (index False) or FetchFollower (True), with metrics on.
        self._fetch_times: tuple[RequestTimes, RequestTimes] | None = None if request_metrics is None else (
            request_metrics.times_of("FetchConsumer"), request_metrics.times_of("FetchFollower"))
        # Chosen once: without a SASL listener no connection ever needs a SASL session made.
        self._sasl_listeners = bool(services.sasl_listeners)

    async def process(self, conn: KafkaConnection, frame: memoryview) -> list | None:
        """The network's request processor: the response chunks, or None where Kafka sends none."""
        session = conn.session
        authenticator = None
        if session is None and self._sasl_listeners:
            session = self._session_of(conn)
        if session is not None and (authenticator := session.sasl) is not None and not authenticator.authenticated:
            self._check_sasl_frame_size(conn, authenticator, frame)
            if authenticator.raw_tokens and authenticator.exchanging:
                return await self._raw_sasl_token(conn, authenticator, frame)
        try:
            header, body_offset = decode_request_header(frame)
        except CodecError as exc:
            bad_input_log.warning(source_of(conn.peer), "header",
                                  "closing connection from %s: unreadable request header (%s)", conn.peer, exc)
            raise socket_server.CloseConnection from None
        route = self._routes.get((header.api_key, header.api_version))
        if route is None:
            found = self._route(conn, header)
            if isinstance(found, list):  # ApiVersions newer than ours, answered in v0
                return found
            route = found
        try:
            request, _ = route.decode(frame, body_offset)
        except CodecError as exc:
            return self._unparsable(conn, header, exc)
        # An authenticated session without an end (the common case) costs nothing more per request.
        if authenticator is not None and (not authenticator.authenticated or authenticator.expires_at is not None):
            await self._check_sasl_state(conn, authenticator, header.correlation_id, header.api_key,
                                         header.api_version)
        ctx = RequestContext(header, self.services, conn.peer, conn.listener_name,
                             ANONYMOUS if session is None else session.principal, session)
        log_on = _REQUEST_LOG_ANSWERS.get(_DEBUG)
        if log_on is None:
            log_on = request_log.isEnabledFor(_DEBUG)
        measured = log_on or self.request_metrics is not None
        quotas_on = self.services.client_quotas.enabled  # no quota anywhere: no quota work at all
        started = 0.0
        if measured or quotas_on:
            started = time.monotonic()
            remote_time_s.set(0.0)
        try:
            response = await route.handle(ctx, request)
        except CloseConnection:  # the handler's own signal, in the network's terms
            raise socket_server.CloseConnection from None
        except ZooKeeperUnavailableError as lost:
            # A ZooKeeper write or read outside the controller-only APIs (which answer
            # NOT_CONTROLLER): its outcome is unknown, so no answer is given; the client retries
            # on a new connection once the session is back. One line, not a traceback.
            log.warning("closing connection from %s: %s v%d could not complete: %s", conn.peer,
                        _api_name(header.api_key), header.api_version, lost)
            raise socket_server.CloseConnection from None
        if quotas_on:
            local_s = max(0.0, time.monotonic() - started - remote_time_s.get())
            throttle_ms = quota_helper.throttle_time_ms(ctx, request, response, len(frame), local_s)
            if throttle_ms:
                conn.mute_for(throttle_ms)
        if measured:
            self._completed(conn, ctx, route, request, response, started, log_on)
        if response is None:
            return None
        chunks = _frame_chunks(route.head, route.encode_chunks, header.correlation_id, response)
        if authenticator is not None:
            if header.api_key == ApiKey.API_VERSIONS:
                authenticator.versions_answered()
            elif authenticator.failed:
                await self._close_failed_authentication(conn, authenticator, response.get("error_message"), chunks)
        return chunks

    def _route(self, conn: KafkaConnection, header: RequestHeader) -> Route | list:
        """The Route of a request's API and version, made and kept on first use; for an API or
        version we do not serve, Kafka's answer (ApiVersions in v0) or the connection closed."""
        api_key, version = header.api_key, header.api_version
        handler = self.handlers.get(api_key)
        if handler is None:
            bad_input_log.warning(source_of(conn.peer), "api key",
                                  "closing connection from %s: unknown or unsupported API key %d (client %r)",
                                  conn.peer, api_key, header.client_id)
            raise socket_server.CloseConnection
        if not handler.min_version <= version <= handler.max_version:
            if api_key == ApiKey.API_VERSIONS:
                bad_input_log.log(logging.INFO, source_of(conn.peer), "newer api versions",
                                  "ApiVersions v%d from %s (client %r) is newer than ours: answering in v0",
                                  version, conn.peer, header.client_id)
                return self._unsupported_api_versions(header.correlation_id, handler)
            bad_input_log.warning(source_of(conn.peer), "version",
                                  "closing connection from %s: %s v%d is not supported (we serve v%d-%d; client %r)",
                                  conn.peer, _api_name(api_key), version, handler.min_version,
                                  handler.max_version, header.client_id)
            raise socket_server.CloseConnection
        route = self._routes[(api_key, version)] = Route(resolved(self.handlers, api_key), version,
                                                         self.request_metrics)
        return route

    def _unparsable(self, conn: KafkaConnection, header: RequestHeader, exc: CodecError) -> list:
        """A body the codec cannot read: ApiVersions v3+ answers INVALID_REQUEST, anything else
        closes the connection."""
        api_key, version = header.api_key, header.api_version
        if api_key == ApiKey.API_VERSIONS and version >= 3:
            bad_input_log.warning(source_of(conn.peer), "api versions",
                                  "invalid ApiVersions v%d request from %s: %s", version, conn.peer, exc)
            return self._encode(header.correlation_id, api_key, version, {"error_code": Errors.INVALID_REQUEST})
        bad_input_log.warning(source_of(conn.peer), "unparsable",
                              "closing connection from %s: unparsable %s v%d request (%s)",
                              conn.peer, _api_name(api_key), version, exc)
        raise socket_server.CloseConnection from None

    def _session_of(self, conn: KafkaConnection) -> Session | None:
        """The connection's Session; on a SASL listener one is made with the first request."""
        session = conn.session
        if session is None and conn.listener_name in self.services.sasl_listeners:
            # Imported here: only SASL listeners need the SASL stack (start-up stays lean).
            from kbroker.security.sasl_authenticator import SaslServerAuthenticator
            from kbroker.security.session import Session

            session = conn.session = Session(sasl=SaslServerAuthenticator(
                self.services.sasl_listeners[conn.listener_name], self.services.credential_cache.get))
        return session

    @staticmethod
    def _check_sasl_frame_size(conn: KafkaConnection, authenticator: SaslServerAuthenticator,
                               frame: memoryview) -> None:
        """Before authentication a frame may not exceed sasl.server.max.receive.size."""
        if len(frame) > authenticator.config.max_receive_size:
            bad_input_log.warning(source_of(conn.peer), "sasl size",
                                  "closing connection from %s: Failing SASL authentication due to invalid "
                                  "receive size (%d bytes)", conn.peer, len(frame))
            raise socket_server.CloseConnection

    async def _check_sasl_state(self, conn: KafkaConnection, authenticator: SaslServerAuthenticator,
                                correlation_id: int, api_key: int, version: int) -> None:
        """Closes the connection where Kafka's authenticator would (see the module docstring).
        During a v1 exchange Kafka first answers the stray request with ILLEGAL_SASL_STATE (the
        request's own response, its error fields set) after the failed-authentication delay."""
        if authenticator.authenticated:
            if api_key != ApiKey.SASL_HANDSHAKE and authenticator.expired(time.monotonic()):
                log.info("closing connection from %s: its SASL session expired (connections.max.reauth.ms)",
                         conn.peer)
                raise socket_server.CloseConnection
            return
        refusal = authenticator.refusal(api_key)
        if refusal is not None and authenticator.exchanging:
            authenticator.fail()
            answer = self._encode(correlation_id, api_key, version,
                                  {"error_code": Errors.ILLEGAL_SASL_STATE, "error_message": refusal})
            await self._close_failed_authentication(conn, authenticator, refusal, answer)
        if refusal is not None:
            bad_input_log.warning(source_of(conn.peer), "sasl state", "closing connection from %s: %s",
                                  conn.peer, refusal)
            raise socket_server.CloseConnection

    @staticmethod
    async def _close_failed_authentication(conn: KafkaConnection, authenticator: SaslServerAuthenticator,
                                           reason: object, last_response: list | None) -> None:
        """Kafka answers a failed authentication, waits connection.failed.authentication.delay.ms
        (only this connection waits), then closes it."""
        bad_input_log.log(logging.INFO, source_of(conn.peer), "failed authentication",
                          "Failed authentication with %s (%s)", conn.peer,
                          reason or f"SASL mechanism {authenticator.mechanism} refused")
        await asyncio.sleep(authenticator.config.failed_authentication_delay_ms / 1000)
        raise socket_server.CloseConnection(last_response)

    async def _raw_sasl_token(self, conn: KafkaConnection, authenticator: SaslServerAuthenticator,
                              frame: memoryview) -> list:
        """After SaslHandshake v0 a frame is a bare SASL token, answered size-prefixed without a
        response header; a failure closes the connection without an answer, as Kafka does."""
        result = authenticator.authenticate(bytes(frame), 0)
        if result.error_code:
            await self._close_failed_authentication(conn, authenticator, result.error_message, None)
        session = conn.session
        if authenticator.authenticated and authenticator.principal is not None and session is not None:
            session.principal = authenticator.principal
        return [len(result.token).to_bytes(4, "big"), result.token]

    def _completed(self, conn: KafkaConnection, ctx: RequestContext, route: Route, request: Any,
                   response: dict | None, started: float, log_on: bool) -> None:
        """Kafka's RequestChannel.updateRequestMetrics and request log for one answered request."""
        now = time.monotonic()
        arrival = conn.request_arrival or started
        header = ctx.header
        name = route.name
        queue_ms = (started - arrival) * 1000
        total_ms = (now - arrival) * 1000
        remote_ms = remote_time_s.get() * 1000
        local_ms = total_ms - queue_ms - remote_ms
        if local_ms < 0.0:
            local_ms = 0.0
        metrics = route.metrics
        if metrics is not None:
            metrics.requests += 1
            times = metrics.times  # RequestTimes.observe, inline: this runs for every request
            times.samples.append((queue_ms, local_ms, remote_ms, total_ms))
            if len(times.samples) >= times.FOLD_AT:
                times.fold()
            fetch_times = self._fetch_times
            if header.api_key == ApiKey.FETCH and fetch_times is not None:  # also as FetchConsumer or FetchFollower
                replica_id = request["replica_state"]["replica_id"] if header.api_version >= 15 else request["replica_id"]
                fetch_times[replica_id >= 0].observe(queue_ms, local_ms, remote_ms, total_ms)
            if response is not None:
                count_errors(header.api_key, response, metrics.errors)
        if log_on:
            request_log.debug(
                "Completed request:%s v%d (correlation id %d, client id %s) from connection %s;totalTime:%.3f,"
                "requestQueueTime:%.3f,localTime:%.3f,remoteTime:%.3f,listener:%s,principal:%s",
                name, header.api_version, header.correlation_id, header.client_id, conn.peer, total_ms, queue_ms,
                local_ms, remote_ms, conn.listener_name, ctx.principal,
                extra={"api": name, "api_version": header.api_version, "correlation_id": header.correlation_id,
                       "client_id": header.client_id, "peer": conn.peer, "listener": conn.listener_name,
                       "total_time_ms": round(total_ms, 3), "request_queue_time_ms": round(queue_ms, 3),
                       "local_time_ms": round(local_ms, 3), "remote_time_ms": round(remote_ms, 3)})

    @staticmethod
    def _encode(correlation_id: int, api_key: int, version: int, response: dict) -> list:
        """A response frame outside the routes (SASL refusals, bad requests)."""
        return _frame_chunks(response_frame_head(api_key, version), response_codec(api_key, version).encode_chunks,
                             correlation_id, response)

    def _unsupported_api_versions(self, correlation_id: int, handler: Handler) -> list:
        body = {
            "error_code": Errors.UNSUPPORTED_VERSION,
            "api_keys": [{"api_key": handler.api_key, "min_version": handler.advertised_min,
                          "max_version": handler.advertised_max}],
        }
        return self._encode(correlation_id, ApiKey.API_VERSIONS, 0, body)


def count_errors(api_key: int, response: dict, errors: dict[str, int]) -> None:
    """Counts the error codes of a response by name into `errors`, as Kafka's
    AbstractResponse.errorCounts counts them for Produce (each partition) and Fetch (the top level
    and each partition); for the other APIs, the top-level error_code (NONE when it has none)."""
    codes: list[int]
    if api_key == ApiKey.PRODUCE:  # loops, not comprehensions: no function call each (Python 3.11)
        codes = []
        for topic in response["responses"]:
            for partition in topic["partition_responses"]:
                codes.append(partition["error_code"])
    elif api_key == ApiKey.FETCH:
        codes = [response.get("error_code", 0)]
        for topic in response["responses"]:
            for partition in topic["partitions"]:
                codes.append(partition["error_code"])
    else:
        codes = [response.get("error_code", 0)]
    for code in codes:
        error = _ERROR_NAMES.get(code) or str(code)
        errors[error] = errors.get(error, 0) + 1
