"""NetworkClient: one broker's connection to another, for inter-broker requests.

The controller's channel to brokers, the replica fetchers and the broker-to-controller channel
(AlterPartition, AllocateProducerIds, ControlledShutdown) all send requests through it. It
connects lazily, pipelines requests and matches responses by correlation id, decodes them with
the codec, and turns any connection failure (a failed TLS handshake included) into a `ConnectionError` for every request in
flight so callers retry or fail over. It knows framing and the codec, not what requests mean.

On a SASL inter-broker listener every new connection authenticates first (SaslHandshake v1,
then SaslAuthenticate v2 tokens until the mechanism completes) with the mechanism client that
`set_inter_broker_sasl` was given by the server (the mechanisms live in kbroker/security, which
this layer must not import). When the broker answers a session lifetime (connections.max.reauth.ms),
the connection is replaced by a fresh, freshly authenticated one once 85% of it has passed and
no request is in flight.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import struct
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from kbroker.network.log_limiter import RateLimitedLog
from kbroker.protocol.api_keys import ApiKey
from kbroker.protocol.headers import decode_response_header, encode_request_header
from kbroker.protocol.messages import request_codec, response_codec

if TYPE_CHECKING:
    import ssl

log = logging.getLogger("kbroker.network.client")

# A refused login is retried by every fetcher and channel at its backoff: one line a minute per peer.
_auth_failure_log = RateLimitedLog(log)
_SIZE = struct.Struct(">i")
REAUTH_SHARE = 0.85  # of the session lifetime, after which an idle connection is replaced


class SaslMechanismClient(Protocol):
    complete: bool

    def initial_response(self) -> bytes: ...

    def evaluate(self, challenge: bytes) -> bytes: ...


@dataclass(frozen=True)
class ClientSasl:
    """How the broker's own connections authenticate: the mechanism's name and a new client per exchange."""
    mechanism: str
    new_client: Callable[[], SaslMechanismClient]


_inter_broker_sasl: ClientSasl | None = None


def set_inter_broker_sasl(sasl: ClientSasl | None) -> None:
    """The server's wiring: one broker per process, and all its inter-broker connections use the
    inter-broker listener's security (kbroker/config refuses a control-plane listener that differs)."""
    global _inter_broker_sasl
    _inter_broker_sasl = sasl


class SaslAuthenticationFailed(ConnectionError):
    """The other broker refused this broker's SASL login."""


class NetworkClient:
    def __init__(self, host: str, port: int, client_id: str, *, connect_timeout_s: float = 5.0,
                 request_timeout_s: float = 30.0, max_response_bytes: int = 200 * 1024 * 1024,
                 ssl_context: ssl.SSLContext | None = None, sasl: ClientSasl | None = None) -> None:
        """`ssl_context`: connect over TLS (the peer's listener is SSL or SASL_SSL), with the host
        name checked when the context says so (ssl.endpoint.identification.algorithm). `sasl`:
        authenticate each new connection (default: the inter-broker setting of the process)."""
        self.host = host
        self.port = port
        self.client_id = client_id
        self.connect_timeout_s = connect_timeout_s
        self.request_timeout_s = request_timeout_s
        self.max_response_bytes = max_response_bytes
        self.ssl_context = ssl_context
        self._writer: asyncio.StreamWriter | None = None
        self._pending: dict[int, tuple[asyncio.Future, int, int]] = {}
        self._correlation = itertools.count(1)
        self._connecting: asyncio.Lock | None = None
        self._read_task: asyncio.Task | None = None
        self.closed = False
        self.sasl = sasl if sasl is not None else _inter_broker_sasl
        self._reauth_at: float | None = None  # time.monotonic() when an idle connection is replaced

    def __repr__(self) -> str:
        return f"NetworkClient({self.host}:{self.port})"

    async def _ensure_connected(self) -> asyncio.StreamWriter:
        """The open connection's writer, connecting first when there is none."""
        writer = self._writer
        if writer is not None and self._reauth_at is not None and not self._pending \
                and time.monotonic() >= self._reauth_at:
            self._retire_connection()
            writer = None
        if writer is not None and not writer.is_closing():
            return writer
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            writer = self._writer
            if writer is not None and not writer.is_closing():
                return writer
            # The handshake counts towards the connect timeout: a peer that never answers it fails the same way.
            reader, connected = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port, ssl=self.ssl_context), self.connect_timeout_s)
            if self.sasl is not None:
                try:
                    await asyncio.wait_for(self._authenticate(self.sasl, reader, connected), self.connect_timeout_s)
                except BaseException:
                    connected.close()
                    raise
            self._writer = connected
            self._read_task = asyncio.get_running_loop().create_task(self._read_responses(reader))
            return connected

    def _retire_connection(self) -> None:
        """Replace an idle connection whose SASL session nears its end (nothing is in flight)."""
        if self._read_task is not None:
            self._read_task.cancel()
            self._read_task = None
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()
        self._reauth_at = None

    async def _exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, api_key: int,
                        version: int, request: Mapping[str, Any]) -> Any:
        """One request answered before the connection is handed over (the SASL exchange)."""
        correlation_id = next(self._correlation)
        header = encode_request_header(api_key, version, correlation_id, self.client_id)
        chunks: list = [b"", header]
        body_len = request_codec(api_key, version).encode_chunks(request, chunks)
        chunks[0] = _SIZE.pack(len(header) + body_len)
        writer.writelines(chunks)
        size = _SIZE.unpack(await reader.readexactly(4))[0]
        if not 0 <= size <= self.max_response_bytes:
            raise ConnectionError(f"bad response size {size} from {self.host}:{self.port}")
        frame = memoryview(await reader.readexactly(size))
        _, offset = decode_response_header(frame, api_key, version)
        return response_codec(api_key, version).decode(frame, offset)[0]

    async def _authenticate(self, sasl: ClientSasl, reader: asyncio.StreamReader,
                            writer: asyncio.StreamWriter) -> None:
        handshake = await self._exchange(reader, writer, ApiKey.SASL_HANDSHAKE, 1, {"mechanism": sasl.mechanism})
        if handshake["error_code"]:
            raise SaslAuthenticationFailed(f"{self.host}:{self.port} does not enable SASL mechanism "
                                           f"{sasl.mechanism} (it enables {handshake['mechanisms']})")
        client = sasl.new_client()
        token = client.initial_response()
        while True:
            answer = await self._exchange(reader, writer, ApiKey.SASL_AUTHENTICATE, 2, {"auth_bytes": token})
            if answer["error_code"]:
                raise SaslAuthenticationFailed(f"SASL authentication to {self.host}:{self.port} failed: "
                                               f"{answer['error_message']}")
            token = client.evaluate(bytes(answer["auth_bytes"]))
            if client.complete:
                break
        lifetime_ms = answer["session_lifetime_ms"]
        self._reauth_at = time.monotonic() + REAUTH_SHARE * lifetime_ms / 1000 if lifetime_ms > 0 else None

    async def send(self, api_key: int, version: int, request: Mapping[str, Any], timeout_s: float | None = None) -> Any:
        """Sends one request and returns its decoded response (ConnectionError on failure)."""
        if self.closed:
            raise ConnectionError(f"{self} is closed")
        try:
            writer = await self._ensure_connected()
        except SaslAuthenticationFailed as exc:
            _auth_failure_log.warning(f"{self.host}:{self.port}", "sasl", "%s", exc)
            raise
        except Exception as exc:  # refused, timed out, or an unreadable answer during the SASL exchange
            raise ConnectionError(f"cannot connect to {self.host}:{self.port}: {exc!r}") from None
        correlation_id = next(self._correlation)
        header = encode_request_header(api_key, version, correlation_id, self.client_id)
        chunks: list = [b"", header]
        body_len = request_codec(api_key, version).encode_chunks(request, chunks)
        chunks[0] = _SIZE.pack(len(header) + body_len)
        future = asyncio.get_running_loop().create_future()
        self._pending[correlation_id] = (future, api_key, version)
        writer.writelines(chunks)
        try:
            return await asyncio.wait_for(future, timeout_s or self.request_timeout_s)
        except TimeoutError:
            self._pending.pop(correlation_id, None)
            self._disconnect(ConnectionError(f"request to {self.host}:{self.port} timed out"))
            raise ConnectionError(f"request {api_key} v{version} to {self.host}:{self.port} timed out") from None

    async def _read_responses(self, reader: asyncio.StreamReader) -> None:
        error: Exception = ConnectionError(f"connection to {self.host}:{self.port} closed")
        try:
            while True:
                size = _SIZE.unpack(await reader.readexactly(4))[0]
                if not 0 <= size <= self.max_response_bytes:
                    raise ConnectionError(f"bad response size {size} from {self.host}:{self.port}")
                frame = memoryview(bytearray(await reader.readexactly(size)))
                correlation_id = _SIZE.unpack_from(frame, 0)[0]
                entry = self._pending.pop(correlation_id, None)
                if entry is None:
                    continue  # its caller gave up (timeout)
                future, api_key, version = entry
                _, offset = decode_response_header(frame, api_key, version)
                response, _ = response_codec(api_key, version).decode(frame, offset)
                if not future.done():
                    future.set_result(response)
        except (asyncio.IncompleteReadError, OSError, ConnectionError) as exc:
            error = ConnectionError(f"connection to {self.host}:{self.port} lost: {exc}")
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # an undecodable response: drop the connection, callers retry
            log.warning("dropping connection to %s:%d: %s", self.host, self.port, exc)
            error = ConnectionError(str(exc))
        self._disconnect(error)

    def _disconnect(self, error: Exception) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()
        pending, self._pending = self._pending, {}
        for future, _, _ in pending.values():
            if not future.done():
                future.set_exception(error)

    async def close(self) -> None:
        self.closed = True
        self._disconnect(ConnectionError(f"{self} closed"))
        if self._read_task is not None:
            self._read_task.cancel()
