"""NetworkClient: one broker's connection to another, for inter-broker requests.

The controller's channel to brokers, the replica fetchers and the broker-to-controller channel
(AlterPartition, AllocateProducerIds, ControlledShutdown) all send requests through it. It
connects lazily, pipelines requests and matches responses by correlation id, decodes them with
the codec, and turns any connection failure (a failed TLS handshake included) into a `ConnectionError` for every request in
flight so callers retry or fail over. It knows framing and the codec, not what requests mean.

Responses are read as the SocketServer reads requests (`ResponseReader`, an asyncio
BufferedProtocol): the transport reads the socket straight into the response's own bytearray, so
a follower's fetched records are copied once on their way from the socket to the decoder (a
StreamReader copied each megabyte three more times, into its buffer, out of it as bytes, and
into a bytearray, each into freshly faulted-in memory: half of a follower's CPU). Small
responses, and the first bytes of a large one, arrive in a scratch buffer and are cut out of it.

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

from kbroker.network.buffers import unfilled_bytearray
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


SCRATCH_BYTES = 64 * 1024  # what one read takes between frames (and a small response whole)
# A frame's buffer grows with the bytes that arrive, never straight to the size a peer claims (as
# the SocketServer's): at most this many times what is there. A follower's 1 MiB response, whose
# first read brings tens of KiB, still gets its whole buffer at once.
RESPONSE_GROWTH = 32


class ResponseReader(asyncio.BufferedProtocol):
    """One connection's response frames (size-prefixed) handed whole to `on_frame`, each in a
    writable buffer of its own; `on_lost` hears once why the connection ended."""

    def __init__(self, max_size: int, on_frame: Callable[[memoryview], None],
                 on_lost: Callable[[Exception], None]) -> None:
        self.max_size = max_size
        self.on_frame = on_frame
        self.on_lost = on_lost
        self.transport: asyncio.BaseTransport | None = None
        self._scratch = bytearray(SCRATCH_BYTES)
        self._pending = b""  # the start of a frame whose size is not known yet (at most 3 bytes)
        self._frame: bytearray | None = None  # a frame larger than what the scratch read held
        self._size = 0  # that frame's size
        self._filled = 0
        self._lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def get_buffer(self, _sizehint: int) -> memoryview:  # asyncio's BufferedProtocol signature
        frame = self._frame
        if frame is None:
            return memoryview(self._scratch)
        if self._filled == len(frame):  # full but the frame is not: a larger buffer, the bytes moved over
            larger = self._frame = unfilled_bytearray(self._capacity(self._filled))
            memoryview(larger)[: self._filled] = frame
            frame = larger
        return memoryview(frame)[self._filled:]

    def _capacity(self, arrived: int) -> int:
        return min(self._size, max(SCRATCH_BYTES, RESPONSE_GROWTH * arrived))

    def buffer_updated(self, nbytes: int) -> None:
        try:
            if self._frame is not None:
                self._filled += nbytes
                if self._filled == self._size:
                    frame, self._frame = self._frame, None
                    self.on_frame(memoryview(frame))
                return
            self._cut_frames(memoryview(self._scratch)[:nbytes])
        except Exception as exc:  # a bad size or an undecodable response: drop the connection
            self._fail(exc if isinstance(exc, ConnectionError) else ConnectionError(str(exc)))

    def _cut_frames(self, data: memoryview) -> None:
        if self._pending:
            data = memoryview(self._pending + data)  # rare: a size split across reads (a few bytes)
            self._pending = b""
        pos, end = 0, len(data)
        while end - pos >= 4:
            size = _SIZE.unpack_from(data, pos)[0]
            if not 0 <= size <= self.max_size:
                raise ConnectionError(f"bad response size {size}")
            pos += 4
            if end - pos < size:  # the rest arrives straight into the frame's own buffer
                self._size, self._filled = size, end - pos
                # Not zeroed: reads fill all of it before on_frame sees it (buffers.py).
                frame = self._frame = unfilled_bytearray(self._capacity(self._filled))
                memoryview(frame)[: self._filled] = data[pos:end]  # (a bytearray slice would copy twice)
                return
            self.on_frame(memoryview(bytearray(data[pos : pos + size])))
            pos += size
        self._pending = bytes(data[pos:end])

    def _fail(self, error: Exception) -> None:
        if not self._lost:
            self._lost = True
            self.on_lost(error)
        if self.transport is not None:
            self.transport.close()

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._lost:
            self._lost = True
            self.on_lost(ConnectionError(f"connection lost: {exc}" if exc else "connection closed"))


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
        self._transport: asyncio.Transport | None = None  # once connected (and logged in)
        self._reader: ResponseReader | None = None  # the protocol of the newest connection
        self._pending: dict[int, tuple[asyncio.Future, int, int]] = {}
        self._correlation = itertools.count(1)
        self._connecting: asyncio.Lock | None = None
        self.closed = False
        self.sasl = sasl if sasl is not None else _inter_broker_sasl
        self._reauth_at: float | None = None  # time.monotonic() when an idle connection is replaced

    def __repr__(self) -> str:
        return f"NetworkClient({self.host}:{self.port})"

    async def _ensure_connected(self) -> asyncio.Transport:
        """The open connection's transport, connecting first when there is none."""
        transport = self._transport
        if transport is not None and self._reauth_at is not None and not self._pending \
                and time.monotonic() >= self._reauth_at:
            self._retire_connection()
            transport = None
        if transport is not None and not transport.is_closing():
            return transport
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            transport = self._transport
            if transport is not None and not transport.is_closing():
                return transport
            # The handshake counts towards the connect timeout: a peer that never answers it fails the same way.
            connected, _ = await asyncio.wait_for(asyncio.get_running_loop().create_connection(
                self._new_reader, self.host, self.port, ssl=self.ssl_context), self.connect_timeout_s)
            if self.sasl is not None:
                try:
                    await asyncio.wait_for(self._authenticate(self.sasl, connected), self.connect_timeout_s)
                except BaseException:
                    connected.close()
                    raise
            self._transport = connected
            return connected

    def _new_reader(self) -> ResponseReader:
        """The protocol of a new connection, from then on the current one: its responses answer
        this client's pending requests and its loss fails them. A connection no longer current
        (retired at a SASL session's end) fails nothing when it goes."""
        reader: ResponseReader

        def lost(error: Exception) -> None:
            if reader is self._reader:
                self._disconnect(ConnectionError(f"connection to {self.host}:{self.port} lost: {error}"))

        reader = self._reader = ResponseReader(self.max_response_bytes, self._on_frame, lost)
        return reader

    def _on_frame(self, frame: memoryview) -> None:
        """A whole response: decoded and handed to the request it answers."""
        correlation_id = _SIZE.unpack_from(frame, 0)[0]
        entry = self._pending.pop(correlation_id, None)
        if entry is None:
            return  # its caller gave up (timeout)
        future, api_key, version = entry
        _, offset = decode_response_header(frame, api_key, version)
        try:
            response, _ = response_codec(api_key, version).decode(frame, offset)
        except Exception as exc:
            log.warning("dropping connection to %s:%d: %s", self.host, self.port, exc)
            if not future.done():
                future.set_exception(ConnectionError(str(exc)))
            raise
        if not future.done():
            future.set_result(response)

    def _retire_connection(self) -> None:
        """Replace an idle connection whose SASL session nears its end (nothing is in flight)."""
        transport, self._transport, self._reader = self._transport, None, None
        if transport is not None:
            transport.close()
        self._reauth_at = None

    def _write_request(self, transport: asyncio.Transport, api_key: int, version: int,
                       request: Mapping[str, Any]) -> asyncio.Future:
        """Writes one request; returns the future its response will complete."""
        correlation_id = next(self._correlation)
        header = encode_request_header(api_key, version, correlation_id, self.client_id)
        chunks: list = [b"", header]
        body_len = request_codec(api_key, version).encode_chunks(request, chunks)
        chunks[0] = _SIZE.pack(len(header) + body_len)
        future = asyncio.get_running_loop().create_future()
        self._pending[correlation_id] = (future, api_key, version)
        transport.writelines(chunks)
        return future

    async def _authenticate(self, sasl: ClientSasl, transport: asyncio.Transport) -> None:
        """The SASL exchange on a new connection, before it is handed over."""
        handshake = await self._write_request(transport, ApiKey.SASL_HANDSHAKE, 1, {"mechanism": sasl.mechanism})
        if handshake["error_code"]:
            raise SaslAuthenticationFailed(f"{self.host}:{self.port} does not enable SASL mechanism "
                                           f"{sasl.mechanism} (it enables {handshake['mechanisms']})")
        client = sasl.new_client()
        token = client.initial_response()
        while True:
            answer = await self._write_request(transport, ApiKey.SASL_AUTHENTICATE, 2, {"auth_bytes": token})
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
            transport = await self._ensure_connected()
        except SaslAuthenticationFailed as exc:
            _auth_failure_log.warning(f"{self.host}:{self.port}", "sasl", "%s", exc)
            raise
        except Exception as exc:  # refused, timed out, or an unreadable answer during the SASL exchange
            raise ConnectionError(f"cannot connect to {self.host}:{self.port}: {exc!r}") from None
        future = self._write_request(transport, api_key, version, request)
        # A timer on the future itself rather than asyncio.wait_for, which (Python 3.11) wraps it
        # in a second future: the response then reaches the caller one loop turn later, and a
        # follower's next fetch (the acks=all round trip) waits for that turn.
        timer = asyncio.get_running_loop().call_later(timeout_s or self.request_timeout_s, self._time_out,
                                                      future, api_key, version)
        try:
            return await future
        finally:
            timer.cancel()

    def _time_out(self, future: asyncio.Future, api_key: int, version: int) -> None:
        """A request's timeout: it fails, and with it the connection and everything else in flight."""
        if not future.done():
            future.set_exception(ConnectionError(f"request {api_key} v{version} to {self.host}:{self.port} timed out"))
            self._disconnect(ConnectionError(f"request to {self.host}:{self.port} timed out"))

    def _disconnect(self, error: Exception) -> None:
        transport, self._transport, self._reader = self._transport, None, None
        if transport is not None:
            transport.close()
        pending, self._pending = self._pending, {}
        for future, _, _ in pending.values():
            if not future.done():
                future.set_exception(error)

    async def close(self) -> None:
        self.closed = True
        self._disconnect(ConnectionError(f"{self} closed"))
