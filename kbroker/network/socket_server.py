"""SocketServer: accepts connections and turns bytes into framed requests and back.

Each connection reads size-prefixed frames (bounded by socket.request.max.bytes) into a
receive buffer, hands them one at a time, in order, to the request processor (like Kafka, a
connection is "muted" while its request is in flight, so responses keep request order), and
writes the response chunks it gets back. A frame too large or negative closes the connection.

This module knows nothing of what a request means: the processor callable it is given
(KafkaApis.process of kbroker/api/kafka_apis.py, wired in kbroker/server.py) decodes and answers.
It must not import handlers or services.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import Protocol

from kbroker.network.log_limiter import RateLimitedLog, source_of

log = logging.getLogger("kbroker.network")
# Bad frames are logged once per client host and kind per interval: a client must not be able to
# flood the log (issue 16, bug 6).
bad_input_log = RateLimitedLog(log)

# Frames up to this size are cut out of the shared receive buffer; larger ones are read
# straight into a buffer of their own so that a 1 MiB produce is not copied on the way in.
RECEIVE_BUFFER_BYTES = 256 * 1024


class CloseConnection(Exception):
    """Raised by the request processor when Kafka would close the connection instead of answering
    (the api layer turns its handlers' own signal into this one)."""


class ConnectionInfo(Protocol):
    peer: str
    listener_name: str


# Response chunks are bytes-like, or file regions (records of a fetch) that know how to read
# themselves once: `read_bytes()`, one pread when the response is written. There is no sendfile:
# the records are copied into the process and written like any other bytes, never decoded.
_BYTES_LIKE = (bytes, bytearray, memoryview)

# processor(connection, frame) -> list of response chunks (None: no response, e.g. acks=0)
RequestProcessor = Callable[["KafkaConnection", memoryview], Awaitable["list | None"]]


class KafkaConnection(asyncio.BufferedProtocol):
    """One client connection: frames in, processed strictly in order, responses out."""

    # Set by connection_made, which asyncio calls before any other method of a protocol runs,
    # so the framing and writing paths never see a connection without one.
    transport: asyncio.Transport

    def __init__(self, server: SocketServer) -> None:
        self.server = server
        self.listener_name = server.listener_name
        self.peer = "?"
        self._recv = bytearray(RECEIVE_BUFFER_BYTES)
        self._recv_view = memoryview(self._recv)
        self._filled = 0  # bytes of _recv holding data not yet framed
        self._big: bytearray | None = None  # a large frame being read directly
        self._big_filled = 0
        self._frames: collections.deque[memoryview] = collections.deque()
        self._worker: asyncio.Task | None = None
        self._closing = False
        self._close_when_idle = False  # a bad frame was seen: answer what came before it, then close
        self._paused_reading = False
        self._can_write = asyncio.Event()
        self._can_write.set()

    # -- asyncio protocol callbacks ------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                # socket.send/receive.buffer.bytes; -1 keeps the OS default, as in Kafka
                for option, size in ((socket.SO_SNDBUF, self.server.send_buffer_bytes),
                                     (socket.SO_RCVBUF, self.server.receive_buffer_bytes)):
                    if size != -1:
                        sock.setsockopt(socket.SOL_SOCKET, option, size)
            except OSError:
                pass
        self.server.connections.add(self)

    def connection_lost(self, _exc: Exception | None) -> None:  # asyncio's Protocol signature
        self._closing = True
        self.server.connections.discard(self)
        self._can_write.set()
        if self._worker is not None and not self._worker.done():
            self._worker.cancel()

    def pause_writing(self) -> None:
        self._can_write.clear()

    def resume_writing(self) -> None:
        self._can_write.set()

    def get_buffer(self, _sizehint: int) -> memoryview:  # asyncio's BufferedProtocol signature
        if self._big is not None:
            return memoryview(self._big)[self._big_filled :]
        if self._filled == len(self._recv):  # only possible transiently; grow to be safe
            self._recv.extend(bytes(len(self._recv)))
            self._recv_view = memoryview(self._recv)
        return self._recv_view[self._filled :]

    def buffer_updated(self, nbytes: int) -> None:
        if self._big is not None:
            self._big_filled += nbytes
            if self._big_filled == len(self._big):
                self._frames.append(memoryview(self._big))
                self._big = None
                self._wake_worker()
            return
        self._filled += nbytes
        self._cut_frames()

    def eof_received(self) -> bool:
        return False  # close our side too

    # -- framing --------------------------------------------------------------------------
    def _cut_frames(self) -> None:
        buf, view, pos, end = self._recv, self._recv_view, 0, self._filled
        max_bytes = self.server.max_request_bytes
        while end - pos >= 4:
            size = int.from_bytes(buf[pos : pos + 4], "big", signed=True)
            if size < 0 or size > max_bytes:
                bad_input_log.warning(source_of(self.peer), "frame size",
                                      "closing connection from %s: frame of %d bytes (socket.request.max.bytes=%d)",
                                      self.peer, size, max_bytes)
                # Kafka reads one request at a time, so the ones before this frame are answered first.
                self._close_when_idle = True
                self._filled = 0
                self.transport.pause_reading()
                self._wake_worker()
                return
            if end - pos - 4 >= size:
                # A bytearray, so the log validator can patch offsets into a produce in place.
                self._frames.append(memoryview(bytearray(view[pos + 4 : pos + 4 + size])))
                pos += 4 + size
                continue
            if size > RECEIVE_BUFFER_BYTES // 2:
                # Large frame: move what we have of it into its own buffer, read the rest into it.
                have = end - pos - 4
                self._big = bytearray(size)
                self._big[:have] = view[pos + 4 : end]
                self._big_filled = have
                pos = end
            break
        if pos:
            remaining = end - pos
            if remaining:
                buf[:remaining] = view[pos:end]
            self._filled = remaining
        if self._frames:
            self._wake_worker()

    def _wake_worker(self) -> None:
        if self._close_when_idle and not self._frames and (self._worker is None or self._worker.done()):
            self.close()
            return
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(self._process_frames())
        # Back-pressure: stop reading while a lot of requests queue up behind a slow one.
        if len(self._frames) > self.server.max_queued_requests and not self._paused_reading:
            self._paused_reading = True
            self.transport.pause_reading()

    async def _process_frames(self) -> None:
        processor = self.server.processor
        frames = self._frames
        while frames and not self._closing:
            frame = frames.popleft()
            if self._paused_reading and not self._close_when_idle \
                    and len(frames) <= self.server.max_queued_requests // 2:
                self._paused_reading = False
                self.transport.resume_reading()
            self.server.in_flight += 1
            try:
                chunks = await processor(self, frame)
            except CloseConnection:
                self.close()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                bad_input_log.log(logging.ERROR, source_of(self.peer), "unexpected error",
                                  "closing connection from %s: unexpected error while processing a request",
                                  self.peer, exc_info=True)
                self.close()
                return
            finally:
                self.server.in_flight -= 1
            if chunks and not self._closing:
                self.transport.writelines([c if isinstance(c, _BYTES_LIKE) else c.read_bytes() for c in chunks])
                if not self._can_write.is_set():
                    await self._can_write.wait()
        if self._close_when_idle:
            self.close()

    def close(self) -> None:
        if not self._closing:
            self._closing = True
            self.transport.close()

    async def drain_in_flight(self) -> None:
        """Wait until this connection has answered what it already read."""
        worker = self._worker
        if worker is not None and not worker.done():
            try:
                await worker
            except (asyncio.CancelledError, Exception):
                pass


class SocketServer:
    """Listens on one endpoint; owns the set of live connections."""

    def __init__(self, host: str, port: int, processor: RequestProcessor, *, listener_name: str = "PLAINTEXT",
                 max_request_bytes: int = 104857600, max_queued_requests: int = 500,
                 backlog: int = 1024, send_buffer_bytes: int = -1, receive_buffer_bytes: int = -1) -> None:
        self.host = host
        self.port = port
        self.processor = processor
        self.listener_name = listener_name
        self.max_request_bytes = max_request_bytes
        self.max_queued_requests = max_queued_requests
        self.backlog = backlog
        self.send_buffer_bytes = send_buffer_bytes
        self.receive_buffer_bytes = receive_buffer_bytes
        self.connections: set[KafkaConnection] = set()
        self.in_flight = 0
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        bind_host = None if self.host in ("", "0.0.0.0", "::") else self.host
        self._server = await loop.create_server(lambda: KafkaConnection(self), bind_host, self.port,
                                                backlog=self.backlog, reuse_address=True)
        if self.port == 0:
            self.port = self._server.sockets[0].getsockname()[1]

    def stop_accepting(self) -> None:
        if self._server is not None:
            self._server.close()

    async def shutdown(self, timeout: float) -> None:
        """Stop accepting, let in-flight requests finish (up to timeout), close connections."""
        self.stop_accepting()
        pending = [c.drain_in_flight() for c in list(self.connections)]
        if pending:
            await asyncio.wait([asyncio.ensure_future(p) for p in pending], timeout=timeout)
        for conn in list(self.connections):
            conn.close()
