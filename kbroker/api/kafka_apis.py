"""KafkaApis: decodes one request frame, runs its handler, encodes the response frame.

The rules for requests it cannot serve follow Kafka (KAFKA-FACTS.md §9):
- unknown API key, unparsable header: close the connection;
- unsupported version: ApiVersions is answered in v0 format with UNSUPPORTED_VERSION and
  ApiVersions' own range (KIP-511); any other API closes the connection;
- unparsable body: ApiVersions v3+ gets INVALID_REQUEST, anything else closes the connection.
Each case logs one line, as does a ZooKeeper session lost under a handler (ZooKeeperUnavailableError,
the connection closed). A handler that wants the connection closed raises the api layer's
CloseConnection (kbroker/api/handlers); `process` turns it into the network layer's signal, as
it does for the cases above. This module knows the codec, the handler registry and the services
handlers get (BrokerServices), not sockets: the server hands `process` to the network.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from kbroker.api.handlers import CloseConnection, Handler, load_handlers
from kbroker.api.request_context import RequestContext
from kbroker.metadata.znode_store import ZooKeeperUnavailableError
from kbroker.network import socket_server
from kbroker.network.log_limiter import RateLimitedLog, source_of
from kbroker.protocol.api_keys import ApiKey
from kbroker.protocol.errors import Errors
from kbroker.protocol.headers import decode_request_header, encode_response_header
from kbroker.protocol.messages import CodecError, request_codec, response_codec
from kbroker.security.principal import ANONYMOUS

if TYPE_CHECKING:
    from kbroker.api.broker_services import BrokerServices
    from kbroker.network.socket_server import KafkaConnection

log = logging.getLogger("kbroker.request")
# Malformed requests are logged once per client host and kind per interval (issue 16, bug 6).
bad_input_log = RateLimitedLog(log)


def _api_name(api_key: int) -> str:
    try:
        return ApiKey(api_key).name
    except ValueError:
        return f"api key {api_key}"


class KafkaApis:
    def __init__(self, services: BrokerServices) -> None:
        self.services = services
        self.handlers: dict[int, Handler] = load_handlers()

    async def process(self, conn: KafkaConnection, frame: memoryview) -> list | None:
        """The network's request processor: the response chunks, or None where Kafka sends none."""
        try:
            header, body_offset = decode_request_header(frame)
        except CodecError as exc:
            bad_input_log.warning(source_of(conn.peer), "header",
                                  "closing connection from %s: unreadable request header (%s)", conn.peer, exc)
            raise socket_server.CloseConnection from None
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
        try:
            request, _ = request_codec(api_key, version).decode(frame, body_offset)
        except CodecError as exc:
            if api_key == ApiKey.API_VERSIONS and version >= 3:
                bad_input_log.warning(source_of(conn.peer), "api versions",
                                      "invalid ApiVersions v%d request from %s: %s", version, conn.peer, exc)
                return self._encode(header.correlation_id, api_key, version,
                                    {"error_code": Errors.INVALID_REQUEST})
            bad_input_log.warning(source_of(conn.peer), "unparsable",
                                  "closing connection from %s: unparsable %s v%d request (%s)",
                                  conn.peer, _api_name(api_key), version, exc)
            raise socket_server.CloseConnection from None
        session = conn.session
        principal = ANONYMOUS if session is None else session.principal
        ctx = RequestContext(header, self.services, conn.peer, conn.listener_name, principal)
        try:
            response = await handler.handle(ctx, request)
        except CloseConnection:  # the handler's own signal, in the network's terms
            raise socket_server.CloseConnection from None
        except ZooKeeperUnavailableError as lost:
            # A ZooKeeper write or read outside the controller-only APIs (which answer
            # NOT_CONTROLLER): its outcome is unknown, so no answer is given; the client retries
            # on a new connection once the session is back. One line, not a traceback.
            log.warning("closing connection from %s: %s v%d could not complete: %s", conn.peer,
                        _api_name(api_key), version, lost)
            raise socket_server.CloseConnection from None
        if response is None:
            return None
        return self._encode(header.correlation_id, api_key, version, response)

    @staticmethod
    def _encode(correlation_id: int, api_key: int, version: int, response: dict) -> list:
        header = encode_response_header(correlation_id, api_key, version)
        chunks: list = [b"", header]
        body_len = response_codec(api_key, version).encode_chunks(response, chunks)
        chunks[0] = (len(header) + body_len).to_bytes(4, "big")
        return chunks

    def _unsupported_api_versions(self, correlation_id: int, handler: Handler) -> list:
        body = {
            "error_code": Errors.UNSUPPORTED_VERSION,
            "api_keys": [{"api_key": handler.api_key, "min_version": handler.advertised_min,
                          "max_version": handler.advertised_max}],
        }
        return self._encode(correlation_id, ApiKey.API_VERSIONS, 0, body)
