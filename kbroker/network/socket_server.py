"""SocketServer: accepts connections and turns bytes into framed requests and back.

Each connection reads size-prefixed frames (bounded by socket.request.max.bytes), hands them one
at a time, in order, to the request processor (like Kafka, a connection is "muted" while its
request is in flight, so responses keep request order), and writes the response chunks it gets
back. On a plaintext connection that processing begins in the callback of the read that
completed the frames, and a task takes over only when a request has to wait (_start_worker): a
request answered at once costs no task and no extra loop turn, and the answers to the frames of
one read go out in one send (held until those frames are processed, or one waits, or a close).
A frame too large or negative closes the connection.

Memory follows the bytes that arrived, not what a client claims: reads land in one scratch buffer
per listener; whole frames are copied out of it, and a frame that is still arriving gets a buffer
of its own that reads then go straight into, at most FRAME_GROWTH times the bytes that arrived
(and FIRST_FRAME_BYTES before any): a real client's 1 MiB produce, whose first read brings a
good part of it, gets its whole buffer at once, while a client claiming 100 MiB must send
12.5 MiB before it holds that much. An idle connection holds no buffer at all.

Limits, with Kafka's names (wired in kbroker/server.py): socket.request.max.bytes;
queued.max.request.bytes (MemoryPool: every listener stops reading while the bytes read and not yet
taken up for processing reach that much); max.connections, listener.name.X.max.connections,
max.connections.per.ip and its overrides (ConnectionQuotas: the accept loop waits for a slot, or
closes a connection from an address at its maximum); connections.max.idle.ms (a connection with
no bytes in or out for that long, and no request being processed, is closed). Quotas' throttling:
`KafkaConnection.mute_for(ms)`, asked by the request processor, keeps the connection from reading
and processing for that long once the current response is written (KIP-219); the network knows
nothing of why.

TLS (SSL and SASL_SSL listeners): the server is given an ssl.SSLContext (built by
kbroker/security/ssl_factory.py, handed over by kbroker/server.py) and runs each accepted
connection's handshake in a task of its own, bounded by `ssl_handshake_timeout_s`, so that a
slow or silent client never holds up the accept loop; tls_transport.py's SSLSocketTransport (OpenSSL
reading and writing the socket itself, cheaper than the event loop's memory-BIO SSL transport)
feeds the same BufferedProtocol, so framing and the plaintext path are unchanged. A handshake that fails (a
plaintext client, an untrusted or missing certificate, a timeout) closes that connection with
one rate-limited line. Once it succeeds, `session_factory` gets the client's certificate (DER,
or None) and returns the connection's session (the api layer's principal); if it raises, the
connection is closed. A TLS handshake arriving on a plaintext listener is named as such.

This module knows nothing of what a request means: the processor callable it is given
(KafkaApis.process of kbroker/api/kafka_apis.py, wired in kbroker/server.py) decodes and answers.
It must not import handlers or services.
"""

from __future__ import annotations

import asyncio
import collections
import errno
import functools
import logging
import os
import socket
import struct
import time
from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import TYPE_CHECKING, Any, Protocol

from kbroker.network.buffers import unfilled_bytearray
from kbroker.network.connection_quotas import ConnectionQuotas, address_key
from kbroker.network.log_limiter import RateLimitedLog, source_of
from kbroker.network.memory_pool import MemoryPool

if TYPE_CHECKING:
    import ssl

log = logging.getLogger("kbroker.network")
# Bad frames are logged once per client host and kind per interval: a client must not be able to
# flood the log (issue 16, bug 6).
bad_input_log = RateLimitedLog(log)

# One per listener, shared by its connections: asyncio asks a protocol for a buffer, reads into
# it and reports the bytes before any other callback runs, so no two reads overlap in it.
SCRATCH_BUFFER_BYTES = 256 * 1024
# A frame not complete in one read gets a buffer of FRAME_GROWTH times the bytes that arrived, at
# least FIRST_FRAME_BYTES, replaced by a larger one when full: a client claiming 100 MiB and
# sending nothing costs 64 KiB, not 100 MiB. Growth is by a large factor because each step
# allocates and copies, and fresh memory costs page faults (about 1 ms per MiB on a VM): with 8,
# a 1 MiB produce grows at most once, usually never.
FIRST_FRAME_BYTES = 64 * 1024
FRAME_GROWTH = 8
# Out of file descriptors or memory while accepting: wait this long before accepting again
# (asyncio's own accept loop waits the same second).
ACCEPT_RETRY_DELAY_S = 1.0
_ACCEPT_RESOURCE_ERRORS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
# Idle connections are looked for this many times per connections.max.idle.ms (at most every 10 s).
IDLE_CHECKS_PER_PERIOD = 10
MAX_IDLE_CHECK_INTERVAL_S = 10.0

_frame_size = struct.Struct(">i").unpack_from
# A TLS record header read as a frame size: handshake (22), version 3.x (SSL 3.0 to TLS 1.3).
_TLS_HANDSHAKE_PREFIX = 0x1603

# session_factory(peer certificate as DER, or None) -> the api layer's session for a connection
SessionFactory = Callable[[bytes | None], Any]


class CloseConnection(Exception):
    """Raised by the request processor when Kafka would close the connection instead of answering
    (the api layer turns its handlers' own signal into this one). `last_response`, when given, is
    written before the close (a failed SASL authentication is answered, then closed, as in Kafka)."""

    def __init__(self, last_response: list | None = None) -> None:
        super().__init__()
        self.last_response = last_response


class ConnectionInfo(Protocol):
    peer: str
    listener_name: str
    session: Any
    request_arrival: float  # when the frame being processed was read whole (time.monotonic())


# Response chunks are bytes-like, or file regions (records of a fetch) that know how to read
# themselves once: `read_bytes()`, one pread when the response is written, then written like any
# other bytes, never decoded. On a plaintext connection a region of SENDFILE_MIN_BYTES or more
# goes with os.sendfile instead, straight from the page cache, when nothing is queued before it
# in the transport; what the socket does not take at once is read and written as before. (A
# follower's 1 MiB fetch cost the leader a pread into fresh memory, a fifth of its CPU under
# replication.) Smaller regions keep the one writev of the whole response: a sendfile each would
# be a syscall, and a TCP segment, per partition. A region whose bytes are still in memory (`data`:
# the log's latest large append, what a follower fetches next) is written from there instead.
_BYTES_LIKE = (bytes, bytearray, memoryview)
SENDFILE_MIN_BYTES = 64 * 1024


class _FileRegion(Protocol):
    """What the writing path needs of kbroker.log's FileRegion (the network does not import it)."""

    position: int
    data: memoryview | None  # the region's bytes when the log still holds them in memory

    def __len__(self) -> int: ...

    def fileno(self) -> int: ...

    def read_bytes(self, skip: int = 0) -> bytes: ...

# Linux's TCP_QUICKACK (None elsewhere): TLS connections ACK a partly arrived request at once.
_TCP_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)
# TLS connections served by tls_transport are woken in the middle of a large request only once
# this much more of it can be read (SO_RCVLOWAT): a producer's 1 MB request (librdkafka's batch
# cap) wakes the loop once, not every 256 KiB. It is the client that gains: read less often, its
# window fills and its kernel sends what it queued as fewer, fuller segments (librdkafka writes each
# TLS record with its own write(2), Nagle off): librdkafka used ~10% less CPU, the broker the same
# (docs/DESIGN.md, TLS).
WAKE_BYTES_MAX = 1024 * 1024
# What OpenSSL may hold of a request without having handed it over once a read wants the socket:
# one unfinished TLS record (16 KiB of plaintext at most), whose bytes have arrived already.
TLS_HELD_BYTES = 17 * 1024
# Bytes a TLS connection has not been woken for are read after this long anyway: what arrives in
# the middle of a request is not always more of it (a close_notify, say).
WAKE_DELAY_MAX_S = 0.02

# The answers held back to go out with those of the read's next frames, at most (bytes): past it
# they are written, and a full transport buffer makes the connection wait as for any response.
HELD_MAX_BYTES = 64 * 1024

# processor(connection, frame) -> list of response chunks (None: no response, e.g. acks=0)
RequestProcessor = Callable[["KafkaConnection", memoryview], Awaitable["list | None"]]


class _Rest:
    """Awaitable: the rest of a coroutine begun outside any task and suspended on `waiting_on`
    (what it yielded: a future, or None for a bare yield), driven as `yield from` would drive it:
    each value it yields goes to the awaiting task, and what the task sends or throws back goes
    to it (a cancellation included)."""

    __slots__ = ("_coro", "_waiting_on")

    def __init__(self, coro: Coroutine[Any, Any, None], waiting_on: Any) -> None:
        self._coro = coro
        self._waiting_on = waiting_on

    def __await__(self) -> Generator[Any, Any, None]:
        coro, value = self._coro, self._waiting_on
        while True:
            try:
                sent = yield value
            except BaseException as exc:  # the task's cancellation (or its closing): the coroutine's
                try:
                    value = coro.throw(exc)
                except StopIteration:
                    return
            else:
                try:
                    value = coro.send(sent)
                except StopIteration:
                    return


def _all_bytes(chunks: list) -> bool:
    for chunk in chunks:
        if type(chunk) is not bytes:
            return False
    return True


def _holdable(chunks: list) -> bool:
    """Chunks a connection may hold back to send with the next answers: bytes, HELD_MAX_BYTES in all."""
    return _all_bytes(chunks) and sum(map(len, chunks)) <= HELD_MAX_BYTES


async def _finish(coro: Coroutine[Any, Any, None], waiting_on: Any) -> None:
    await _Rest(coro, waiting_on)


def _sendfile(out_fd: int, region: _FileRegion) -> int:
    """Sends what the non-blocking socket takes now of `region`; returns how many bytes that was."""
    in_fd, position, total, sent = region.fileno(), region.position, len(region), 0
    while sent < total:
        try:
            count = os.sendfile(out_fd, in_fd, position + sent, total - sent)
        except BlockingIOError:
            break
        if not count:  # the file ended early: the read of the rest finds out how early
            break
        sent += count
    return sent


class KafkaConnection(asyncio.BufferedProtocol):
    """One client connection: frames in, processed strictly in order, responses out."""

    # Slots: an idle connection is this object, its transport and socket, nothing else.
    __slots__ = ("server", "listener_name", "address", "peer", "last_active", "transport", "_head", "_frame",
                 "_frame_size", "_frame_filled", "_charged", "_frames", "_worker", "_processing", "_closing",
                 "_close_when_idle", "_queue_full", "_reading", "_write_paused", "_write_waiter", "session",
                 "_arrivals", "request_arrival", "_mute_s", "_muted", "_ack_socket", "_wake_bytes", "_wake_timer",
                 "_eager", "_running_now", "_held")

    # Set by connection_made, which asyncio calls before any other method of a protocol runs,
    # so the framing and writing paths never see a connection without one.
    transport: asyncio.Transport

    def __init__(self, server: SocketServer, address: str = "", ack_socket: socket.socket | None = None) -> None:
        self.server = server
        # TLS connections (served by tls_transport): the socket whose pending ACK is sent at once
        # while a request is only partly here (see _acknowledge_partial_request), and whose
        # SO_RCVLOWAT gates the wakeups (_wake_when_worth_it); None where neither is needed.
        self._ack_socket = ack_socket if _TCP_QUICKACK is not None else None
        # That socket's SO_RCVLOWAT; 0: not set (no such socket).
        self._wake_bytes = 1 if self._ack_socket is not None else 0
        self._wake_timer: asyncio.TimerHandle | None = None  # puts _wake_bytes back to 1 (WAKE_DELAY_MAX_S)
        self.listener_name = server.listener_name
        self.address = address  # the peer's address as ConnectionQuotas counts it ("" if uncounted)
        self.peer = "?"
        self.last_active = time.monotonic()  # of the last bytes read or written: connections.max.idle.ms
        self._head = b""  # the first bytes (fewer than 4) of a frame's size
        self._frame: bytearray | None = None  # a frame still arriving, in its own growing buffer
        self._frame_size = 0
        self._frame_filled = 0
        self._charged = 0  # bytes of partial and queued frames counted in the memory pool (if any)
        self._frames: collections.deque[memoryview] = collections.deque()
        # When each queued frame was read whole (time.monotonic()), and the one being processed's:
        # the api layer's request queue time (Kafka's requestQueueTimeMs) and request log.
        self._arrivals: collections.deque[float] = collections.deque()
        self.request_arrival = 0.0
        self._mute_s = 0.0  # asked by mute_for: how long to stay muted once the response is out
        self._muted = False  # muted now: nothing is read or processed
        self._worker: asyncio.Task | None = None
        # Plaintext connections begin processing the frames a read completed in that read's
        # callback (_start_worker); TLS ones in a task, outside tls_transport's read loop.
        self._eager = server.ssl_context is None
        self._running_now = False  # _start_worker is processing frames in the current callback
        # Responses of bytes held back while the same callback goes on to the next frames: written
        # together, in order, when that processing ends or waits (or before a close).
        self._held: list | None = None
        self._processing = False  # a request is with the processor
        self._closing = False
        self._close_when_idle = False  # a bad frame was seen: answer what came before it, then close
        self._queue_full = False  # queued.max.requests frames wait: stop reading until half are done
        self._reading = True
        self._write_paused = False
        self._write_waiter: asyncio.Future | None = None
        # The api layer's per-connection security state (who authenticated, SASL progress): the
        # network layer carries it for the connection's lifetime and never reads it.
        self.session: Any = None

    # -- asyncio protocol callbacks ------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        self.server.connections.add(self)
        factory = self.server.session_factory
        if factory is not None and not self._establish_session(factory, transport):
            return
        self._update_reading()  # the memory pool may be exhausted already

    def _establish_session(self, factory: SessionFactory, transport: asyncio.BaseTransport) -> bool:
        """The session from the TLS client certificate; False (connection closed) if it is refused."""
        ssl_object = transport.get_extra_info("ssl_object")
        certificate = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        try:
            self.session = factory(certificate)
        except Exception as exc:  # a certificate no principal rule maps: Kafka fails the authentication
            bad_input_log.warning(source_of(self.peer), "tls principal",
                                  "closing connection from %s on %s: no principal for its certificate: %s",
                                  self.peer, self.listener_name, exc)
            self.close()
            return False
        return True

    def connection_lost(self, exc: Exception | None) -> None:  # asyncio's Protocol signature
        if exc is not None and getattr(exc, "reason", None):  # ssl.SSLError: a bad TLS record, say
            bad_input_log.warning(source_of(self.peer), "tls record", "closing connection from %s on %s: TLS error (%s)",
                                  self.peer, self.listener_name, getattr(exc, "reason", None))
        self._closing = True
        self._ack_socket = None  # its descriptor is closed or about to be
        if self._wake_timer is not None:
            self._wake_timer.cancel()
        self.server.connection_closed(self)
        self._frames.clear()
        self._arrivals.clear()
        self._frame = None
        self._release(self._charged)
        self._wake_writer()
        if self._worker is not None and not self._worker.done():
            self._worker.cancel()

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._wake_writer()

    def get_buffer(self, _sizehint: int) -> memoryview:  # asyncio's BufferedProtocol signature
        frame = self._frame
        if frame is None:
            return self.server.scratch
        filled = self._frame_filled
        if filled == len(frame):
            # A new buffer, not frame.extend(): the transport may still hold the view it read
            # into (a bytearray with a live view cannot resize), and extending by a zeroed
            # temporary would cost a second allocation and copy.
            larger = self._frame = unfilled_bytearray(self._frame_capacity(self._frame_size, filled))
            larger[:filled] = frame
            self._charge(len(larger) - filled)
            frame = larger
        return memoryview(frame)[filled:]

    def buffer_updated(self, nbytes: int) -> None:
        if self._close_when_idle:
            return  # past a bad frame nothing is framed (reading is paused; a read may still land)
        self.last_active = time.monotonic()
        frame = self._frame
        if frame is None:
            self._cut_frames(self.server.scratch[:nbytes])
        else:
            self._frame_filled += nbytes
            if self._frame_filled == self._frame_size:
                self._frame = None
                self._frames.append(memoryview(frame))
                self._arrivals.append(self.last_active)
                self._wake_worker()
        ack_socket = self._ack_socket
        if ack_socket is not None:
            if self._frame is not None or self._head:
                self._acknowledge_partial_request(ack_socket)
            if self._wake_bytes:
                self._wake_when_worth_it(ack_socket)

    def _wake_when_worth_it(self, ack_socket: socket.socket) -> None:
        """TLS: while a large request arrives, have the kernel wake us only once WAKE_BYTES_MAX more
        of it is readable (SO_RCVLOWAT), not for every segment. librdkafka sends a request as
        hundreds of TLS records, many of them small, each its own write(2) and
        often its own segment: each woke the loop for a read of a few records (the readable event,
        reads ending in SSLWantReadError, the framing, an ACK). What is asked for never exceeds
        what must still arrive: the rest of the frame less what OpenSSL may hold of it
        (TLS_HELD_BYTES: tls_transport reads until OpenSSL wants the socket, so at most one
        unfinished record), as ciphertext is never shorter than its plaintext; between frames
        any byte wakes us, and a FIN or an error whatever the setting. Reads themselves are not
        affected: a non-blocking read returns what is there. Something other than the request
        (a close_notify) may come in between: after WAKE_DELAY_MAX_S any byte wakes us again."""
        missing = self._frame_size - self._frame_filled if self._frame is not None else 0
        wanted = max(1, min(WAKE_BYTES_MAX, missing - TLS_HELD_BYTES))
        if wanted != self._wake_bytes:
            self._set_wake_bytes(ack_socket, wanted)
        if wanted > 1 and self._wake_timer is None:
            self._wake_timer = asyncio.get_running_loop().call_later(WAKE_DELAY_MAX_S, self._wake_for_any_byte)

    def _wake_for_any_byte(self) -> None:
        self._wake_timer = None
        ack_socket = self._ack_socket
        if ack_socket is not None and self._wake_bytes > 1:
            self._set_wake_bytes(ack_socket, 1)

    def _set_wake_bytes(self, ack_socket: socket.socket, wanted: int) -> None:
        self._wake_bytes = wanted
        try:
            ack_socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, wanted)
        except OSError:  # closed meanwhile
            self._ack_socket = None

    def _acknowledge_partial_request(self, ack_socket: socket.socket) -> None:
        """ACK what arrived now instead of after Linux's delayed-ACK timer (40 ms). A TLS client
        writes a request as several records (librdkafka: one SSL_write per buffer slice), each its
        own small TCP segment; with Nagle on (a socket's default; librdkafka 2.16 turns it off,
        Python's ssl sockets do not) the next one waits for the ACK
        of the last, and we have nothing to send until the request is whole: every such request
        stalled 40 ms. TCP_QUICKACK sends the scheduled ACK at once (it is not sticky, so it is
        set on each read that leaves a request unfinished)."""
        try:
            ack_socket.setsockopt(socket.IPPROTO_TCP, _TCP_QUICKACK, 1)  # type: ignore[arg-type]
        except OSError:  # closed meanwhile: nothing to acknowledge
            self._ack_socket = None

    def eof_received(self) -> bool:
        return False  # close our side too

    # -- framing --------------------------------------------------------------------------
    def _cut_frames(self, data: memoryview) -> None:
        """Frames out of one read: whole ones are queued, the last may begin a frame still arriving."""
        pos, end = 0, len(data)
        head = self._head
        if head:  # a size split across reads
            pos = 4 - len(head)
            head = self._head = head + bytes(data[:pos])
            if len(head) < 4:
                return
            self._head = b""
        max_bytes = self.server.max_request_bytes
        while pos >= 0:
            if head:
                size = int.from_bytes(head, "big", signed=True)
                head = b""
            elif pos <= end - 4:
                size = _frame_size(data, pos)[0]
                pos += 4
            else:
                break
            if 0 <= size <= max_bytes and end - pos >= size:  # the common case, inline: a whole frame
                # A bytearray, so the log validator can patch offsets into a produce in place.
                self._frames.append(memoryview(bytearray(data[pos : pos + size])))
                self._arrivals.append(self.last_active)  # buffer_updated set it for this read
                if self.server.memory_pool is not None:
                    self._charge(size)
                pos += size
            else:
                pos = self._take_frame(size, data, pos)
        if 0 <= pos < end:
            self._head = bytes(data[pos:end])
        if self._frames:
            self._wake_worker()

    def _take_frame(self, size: int, data: memoryview, pos: int) -> int:
        """A frame `_cut_frames` could not queue whole: a size out of bounds (the connection is
        closed once the frames before it are answered), or one whose bytes, from data[pos], are
        still arriving, begun in a buffer of its own. Returns where the next frame starts (-1: stop)."""
        if size < 0 or size > self.server.max_request_bytes:
            if size >> 16 == _TLS_HANDSHAKE_PREFIX and self.server.ssl_context is None:
                bad_input_log.warning(source_of(self.peer), "tls on plaintext",
                                      "closing connection from %s: a TLS handshake on plaintext listener %s",
                                      self.peer, self.listener_name)
            else:
                bad_input_log.warning(source_of(self.peer), "frame size",
                                      "closing connection from %s: frame of %d bytes (socket.request.max.bytes=%d)",
                                      self.peer, size, self.server.max_request_bytes)
            # Kafka reads one request at a time, so the ones before this frame are answered first.
            self._close_when_idle = True
            self._update_reading()
            self._wake_worker()
            return -1
        end = len(data)
        have = end - pos
        capacity = self._frame_capacity(size, have)
        # A new buffer per frame, never reused: a produce's records are views of it that outlive
        # the request (kbroker.log's RECENT_APPENDS keeps the latest large appends to send them to
        # followers), so written bytes must not change under them. Not zeroed: reads fill all of
        # it before the frame is queued (buffers.py).
        frame = self._frame = unfilled_bytearray(capacity)
        # Through a memoryview: a bytearray's slice assignment from a memoryview copies the
        # bytes twice (into a temporary bytearray first), this copies them once.
        memoryview(frame)[:have] = data[pos:end]
        self._frame_size = size
        self._frame_filled = have
        self._charge(capacity)
        return end

    @staticmethod
    def _frame_capacity(size: int, arrived: int) -> int:
        return min(size, max(FIRST_FRAME_BYTES, FRAME_GROWTH * arrived))

    # Without a memory pool (queued.max.request.bytes=-1, the default) nothing is counted, and
    # the per-frame paths skip these calls altogether.
    def _charge(self, nbytes: int) -> None:
        pool = self.server.memory_pool
        if pool is not None:
            self._charged += nbytes
            pool.allocate(nbytes)

    def _release(self, nbytes: int) -> None:
        pool = self.server.memory_pool
        if pool is not None and nbytes:
            self._charged -= nbytes
            pool.release(nbytes)

    # -- reading on and off ---------------------------------------------------------------
    def _update_reading(self) -> None:
        """Read while nothing says stop: a bad frame, a full request queue, an exhausted memory pool."""
        if self._closing:
            return
        pool = self.server.memory_pool
        want = not (self._close_when_idle or self._queue_full or self._muted
                    or (pool is not None and pool.is_out_of_memory))
        if want != self._reading:
            self._reading = want
            if want:
                self.transport.resume_reading()
            else:
                self.transport.pause_reading()

    def _wake_worker(self) -> None:
        worker = self._worker
        idle = not self._running_now and (worker is None or worker.done())
        if self._close_when_idle and not self._frames and idle:
            self.close()
            return
        if idle:
            self._start_worker()
        # Back-pressure: stop reading while a lot of requests queue up behind a slow one.
        if len(self._frames) > self.server.max_queued_requests and not self._queue_full:
            self._queue_full = True
            self._update_reading()

    # -- processing -----------------------------------------------------------------------
    def _start_worker(self) -> None:
        """Processes the queued frames. On a plaintext connection this begins at once, in the
        callback of the read that completed them, and a task takes over only if processing has to
        wait (a purgatory, a throttle, a full write buffer): most requests (a produce with acks=1,
        a fetch with data) are answered without a task, a scheduled step and a loop turn each.
        Order is kept as with a task: one worker per connection, frames in the order read."""
        processing = self._process_frames()
        if not self._eager:
            self._worker = asyncio.get_running_loop().create_task(processing)
            return
        self._running_now = True
        try:
            waiting_on = processing.send(None)
        except StopIteration:
            return
        finally:
            self._running_now = False
            if self._held is not None:
                self._write_held()
        self._worker = asyncio.get_running_loop().create_task(_finish(processing, waiting_on))

    async def _process_frames(self) -> None:
        processor = self.server.processor
        frames = self._frames
        while frames and not self._closing:
            frame = frames.popleft()
            self.request_arrival = self._arrivals.popleft()
            # Queued bytes end where processing starts: a request parked in the purgatory must not
            # hold back the reads that complete it (a follower's fetch for an acks=all produce).
            if self.server.memory_pool is not None:
                self._release(len(frame))
            if self._queue_full and len(frames) <= self.server.max_queued_requests // 2:
                self._queue_full = False
                self._update_reading()
            self._processing = True
            self.server.in_flight += 1
            try:
                chunks = await processor(self, frame)
            except CloseConnection as exc:
                if self._held is not None:
                    self._write_held()
                if exc.last_response and not self._closing:
                    self.transport.writelines(exc.last_response)  # close() flushes it first
                self.close()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                bad_input_log.log(logging.ERROR, source_of(self.peer), "unexpected error",
                                  "closing connection from %s: unexpected error while processing a request",
                                  self.peer, exc_info=True)
                if self._held is not None:
                    self._write_held()
                self.close()
                return
            finally:
                self._processing = False
                self.server.in_flight -= 1
            if chunks and not self._closing:
                if self._held is not None:
                    chunks = self._held + chunks
                    self._held = None
                if self._running_now and frames and not self._mute_s and _holdable(chunks):
                    self._held = chunks  # more frames of this read are processed first: one send for all
                    continue
                try:
                    self._write_response(chunks)
                except ConnectionError:  # the peer went away while sendfile wrote to its socket
                    self.close()
                    return
                except (OSError, ValueError) as exc:  # a segment closed meanwhile: its log dir failed
                    log.warning("closing connection from %s: reading the records of a response failed: %r",
                                self.peer, exc)
                    self.close()
                    return
                self.last_active = time.monotonic()
                if self._write_paused:
                    await self._writable()
            if self._mute_s:
                await self._stay_muted()
        if self._close_when_idle:
            self.close()

    def _write_held(self) -> None:
        held, self._held = self._held, None
        if held and not self._closing:
            self.transport.writelines(held)
            self.last_active = time.monotonic()

    def _write_response(self, chunks: list) -> None:
        """The response's chunks, in order: bytes and small regions through the transport, large
        regions with sendfile where the connection allows it (see SENDFILE_MIN_BYTES)."""
        if _all_bytes(chunks):
            self.transport.writelines(chunks)  # most responses: bytes only, one writev
        else:
            self._write_with_regions(chunks)

    def _write_with_regions(self, chunks: list) -> None:
        """_write_response's path for a response with a chunk other than bytes (file regions)."""
        out_fd = None
        if self.server.ssl_context is None and any(
                not isinstance(c, _BYTES_LIKE) and c.data is None and len(c) >= SENDFILE_MIN_BYTES for c in chunks):
            sock = self.transport.get_extra_info("socket")
            out_fd = sock.fileno() if sock is not None else None
        pending: list = []
        for chunk in chunks:
            if isinstance(chunk, _BYTES_LIKE):
                pending.append(chunk)
            elif chunk.data is not None:
                pending.append(chunk.data)
            elif out_fd is None or len(chunk) < SENDFILE_MIN_BYTES:
                pending.append(chunk.read_bytes())
            else:
                self.transport.writelines(pending)
                pending = []
                # Only with nothing queued in the transport: the kernel must get the bytes in order.
                sent = _sendfile(out_fd, chunk) if not self.transport.get_write_buffer_size() else 0
                if sent < len(chunk):
                    rest = chunk.read_bytes(sent)
                    if len(rest) != len(chunk) - sent:
                        raise OSError(f"segment file ended {len(chunk) - sent - len(rest)} bytes early")
                    pending.append(rest)
        self.transport.writelines(pending)

    def mute_for(self, ms: int) -> None:
        """Quota throttling (KIP-219): once the current request's response is written, this
        connection reads and processes nothing more for `ms` milliseconds. Called by the request
        processor before it returns."""
        self._mute_s = max(self._mute_s, ms / 1000)

    async def _stay_muted(self) -> None:
        delay, self._mute_s = self._mute_s, 0.0
        self._muted = True
        self._update_reading()
        try:
            await asyncio.sleep(delay)
        finally:
            self._muted = False
            self._update_reading()

    async def _writable(self) -> None:
        """Wait until the transport's buffer drains below its low-water mark (or the connection is lost)."""
        while self._write_paused and not self._closing:
            waiter = self._write_waiter = asyncio.get_running_loop().create_future()
            await waiter

    def _wake_writer(self) -> None:
        waiter, self._write_waiter = self._write_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    @property
    def closing(self) -> bool:
        return self._closing

    @property
    def processing(self) -> bool:
        """A request of this connection is with the processor (the idle check leaves it alone)."""
        return self._processing

    def close(self) -> None:
        if not self._closing:
            self._closing = True
            self.transport.close()

    async def drain_in_flight(self) -> None:
        """Wait until this connection has answered what it already read (a throttled connection
        has: what it read since waits for the end of its throttle, which a shutdown does not)."""
        worker = self._worker
        if worker is not None and not worker.done() and not self._muted:
            try:
                await worker
            except (asyncio.CancelledError, Exception):
                pass


class SocketServer:
    """Listens on one endpoint; owns the set of live connections."""

    def __init__(self, host: str, port: int, processor: RequestProcessor, *, listener_name: str = "PLAINTEXT",
                 max_request_bytes: int = 104857600, max_queued_requests: int = 500,
                 backlog: int = 1024, send_buffer_bytes: int = -1, receive_buffer_bytes: int = -1,
                 memory_pool: MemoryPool | None = None,
                 quotas: ConnectionQuotas | None = None, max_connections: int | None = None,
                 connections_max_idle_ms: int = 600000, ssl_context: ssl.SSLContext | None = None,
                 ssl_handshake_timeout_s: float = 10.0, session_factory: SessionFactory | None = None,
                 max_connection_creation_rate: int | None = None) -> None:
        self.host = host
        self.port = port
        self.processor = processor
        self.listener_name = listener_name
        self.max_request_bytes = max_request_bytes
        self.max_queued_requests = max_queued_requests
        self.backlog = backlog
        self.memory_pool = memory_pool
        self.connections_max_idle_ms = connections_max_idle_ms
        self.ssl_context = ssl_context
        self.ssl_handshake_timeout_s = ssl_handshake_timeout_s
        self.session_factory = session_factory
        self._handshakes: set[asyncio.Task] = set()  # connections being set up (TLS: handshaking)
        self._throttled: dict[socket.socket, asyncio.TimerHandle] = {}  # connections to close, over their ip's rate
        self.send_buffer_bytes = send_buffer_bytes
        self.receive_buffer_bytes = receive_buffer_bytes
        self.connections: set[KafkaConnection] = set()
        self.in_flight = 0
        self.scratch = memoryview(bytearray(SCRATCH_BUFFER_BYTES))
        self.quotas = quotas if quotas is not None else ConnectionQuotas(
            max_connections=2**31 - 1, max_connections_per_ip=2**31 - 1)
        self.quotas.add_listener(listener_name, self, max_connections, max_connection_creation_rate)
        if memory_pool is not None:
            memory_pool.watch(self._on_memory_pool_change)
        self._sockets: list[socket.socket] = []
        self._accepting: list[asyncio.Task] = []
        self._idle_check: asyncio.TimerHandle | None = None

    async def start(self) -> None:
        self._sockets = _listen_sockets(self.host, self.port, self.backlog)
        if self.port == 0:
            self.port = self._sockets[0].getsockname()[1]
        loop = asyncio.get_running_loop()
        self._accepting = [loop.create_task(self._accept_loop(sock)) for sock in self._sockets]
        if self.connections_max_idle_ms >= 0:
            self._schedule_idle_check(loop)

    # -- accepting ------------------------------------------------------------------------
    async def _accept_loop(self, listen_sock: socket.socket) -> None:
        """Kafka's Acceptor: wait for a connection slot, accept, check the address's count, serve."""
        loop = asyncio.get_running_loop()
        quotas = self.quotas
        while True:
            await quotas.wait_for_connection_slot(self.listener_name)
            try:
                sock, peer = await _accept(loop, listen_sock)
            except OSError as exc:
                if exc.errno in _ACCEPT_RESOURCE_ERRORS:
                    log.error("cannot accept connections on %s for now: %s", self.listener_name, exc)
                    await asyncio.sleep(ACCEPT_RETRY_DELAY_S)
                continue
            address = address_key(str(peer[0])) if isinstance(peer, tuple) else ""
            delay_ms = quotas.record_connection(self.listener_name, time.monotonic() * 1000)
            if delay_ms:  # max.connection.creation.rate: this listener accepts nothing meanwhile
                try:
                    await asyncio.sleep(delay_ms / 1000)
                    await quotas.wait_for_connection_slot(self.listener_name)
                except asyncio.CancelledError:  # stopping: the connection waiting is closed
                    sock.close()
                    raise
            close_in_ms = quotas.record_ip_connection(self.listener_name, address, time.monotonic() * 1000)
            if close_in_ms:
                log.debug("Delaying closing of connection from %s for %d ms", address, close_in_ms)
                self._close_throttled(sock, close_in_ms)
                continue
            limit = quotas.inc(self.listener_name, address)
            if limit is not None:
                log.info("Rejected connection from %s, address already has the configured maximum of %d connections.",
                         address, limit)
                sock.close()
                continue
            # Set up in a task of its own: a TLS handshake may take a while, and even a plaintext
            # transport takes a loop turn to be made, which the next queued connection need not wait for.
            task = loop.create_task(self._serve(sock, address, "" if self.ssl_context is None else _peer_text(peer)))
            self._handshakes.add(task)
            task.add_done_callback(self._handshakes.discard)

    def _close_throttled(self, sock: socket.socket, delay_ms: int) -> None:
        """An address over its connection creation rate: its connection is never served, and
        closed once the rate is back at the quota (Kafka's throttledSockets)."""
        def close() -> None:
            self._throttled.pop(sock, None)
            sock.close()

        self._throttled[sock] = asyncio.get_running_loop().call_later(delay_ms / 1000, close)

    async def _serve(self, sock: socket.socket, address: str, peer: str) -> None:
        """Hands an accepted socket to asyncio (after the TLS handshake on a TLS listener)."""
        loop = asyncio.get_running_loop()
        quotas = self.quotas
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            # socket.send/receive.buffer.bytes; -1 keeps the OS default (and its autotuning)
            for option, size in ((socket.SO_SNDBUF, self.send_buffer_bytes),
                                 (socket.SO_RCVBUF, self.receive_buffer_bytes)):
                if size != -1:
                    sock.setsockopt(socket.SOL_SOCKET, option, size)
            if self.ssl_context is None:
                await loop.connect_accepted_socket(functools.partial(KafkaConnection, self, address), sock)
            else:  # tls_transport's SSLSocketTransport, not the event loop's memory-BIO SSL transport
                # Imported with the first TLS connection: a plaintext broker never loads ssl.
                from kbroker.network.tls_transport import SSLSocketTransport, accept_tls
                tls = await accept_tls(sock, self.ssl_context, self.ssl_handshake_timeout_s)
                SSLSocketTransport(loop, tls, KafkaConnection(self, address, tls))
        except (OSError, RuntimeError) as exc:  # the peer went away in between, the loop is closing, TLS failed
            if self.ssl_context is not None:
                kind, reason = _handshake_failure(exc)
                bad_input_log.warning(source_of(peer), kind, "closing connection from %s on %s: TLS handshake failed (%s)",
                                      peer, self.listener_name, reason)
            else:
                log.debug("connection from %s lost while being set up: %s", address, exc)
            quotas.dec(self.listener_name, address)
            sock.close()
            return
        quotas.close_excess_connection(self.listener_name)

    def connection_closed(self, conn: KafkaConnection) -> None:
        if conn in self.connections:
            self.connections.discard(conn)
            self.quotas.dec(self.listener_name, conn.address)

    # -- memory pool and idle connections -------------------------------------------------
    def _on_memory_pool_change(self) -> None:
        for conn in list(self.connections):
            conn._update_reading()

    def _schedule_idle_check(self, loop: asyncio.AbstractEventLoop) -> None:
        interval = min(MAX_IDLE_CHECK_INTERVAL_S, self.connections_max_idle_ms / 1000 / IDLE_CHECKS_PER_PERIOD)
        self._idle_check = loop.call_later(max(interval, 0.01), self._close_idle_connections, loop)

    def _close_idle_connections(self, loop: asyncio.AbstractEventLoop) -> None:
        """connections.max.idle.ms: Kafka's Selector closes connections with no reads or writes for
        that long; one whose request is still being processed is left to answer it."""
        expired = time.monotonic() - self.connections_max_idle_ms / 1000
        for conn in [c for c in self.connections if c.last_active < expired and not c.processing]:
            log.debug("closing connection from %s: idle for more than connections.max.idle.ms=%d",
                      conn.peer, self.connections_max_idle_ms)
            conn.close()
        self._schedule_idle_check(loop)

    # -- stopping -------------------------------------------------------------------------
    def stop_accepting(self) -> None:
        for task in self._accepting:
            task.cancel()
        self._accepting = []
        for handshake in list(self._handshakes):
            handshake.cancel()
        for sock in self._sockets:
            sock.close()
        self._sockets = []
        for throttled, timer in list(self._throttled.items()):
            timer.cancel()
            throttled.close()
        self._throttled.clear()
        if self._idle_check is not None:
            self._idle_check.cancel()
            self._idle_check = None
        self.quotas.remove_listener(self.listener_name)

    async def shutdown(self, timeout: float) -> None:
        """Stop accepting, let in-flight requests finish (up to timeout), close connections."""
        self.stop_accepting()
        pending = [c.drain_in_flight() for c in list(self.connections)]
        if pending:
            await asyncio.wait([asyncio.ensure_future(p) for p in pending], timeout=timeout)
        for conn in list(self.connections):
            conn.close()


async def _accept(loop: asyncio.AbstractEventLoop, listen_sock: socket.socket) -> tuple[socket.socket, Any]:
    """The next connection: one the kernel already queued is taken at once, without a turn of the
    loop for each (as Kafka's Acceptor takes every ready one), so a thousand clients connecting
    together (a broker restart, a consumer fleet starting) are not accepted one loop turn apart
    while the listen backlog overflows; otherwise wait for one."""
    try:
        sock, peer = listen_sock.accept()
    except BlockingIOError:
        return await loop.sock_accept(listen_sock)
    sock.setblocking(False)
    return sock, peer


def _peer_text(peer: Any) -> str:
    return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else "?"


def _handshake_failure(exc: BaseException) -> tuple[str, str]:
    """The kind of a handshake's failure (each is logged once per client host and minute) and
    what went wrong, in a few words (no traceback: the peer caused it)."""
    reason = getattr(exc, "reason", None)  # ssl.SSLError's OpenSSL reason, as WRONG_VERSION_NUMBER
    if reason in ("WRONG_VERSION_NUMBER", "HTTP_REQUEST", "UNKNOWN_PROTOCOL", "RECORD_LAYER_FAILURE"):
        return "plaintext on tls", f"{reason}: not TLS, a plaintext client?"
    if reason:
        return "tls handshake", str(reason)
    if isinstance(exc, ConnectionAbortedError):  # tls_transport.accept_tls past its timeout
        return "tls handshake timeout", str(exc) or "not completed in time"
    return "tls handshake", str(exc) or type(exc).__name__


def _ascii_host(host: str) -> str | bytes:
    """An ASCII host name or address as the bytes getaddrinfo would get anyway: given a str, it
    encodes it with the "idna" codec, which leaves ASCII as it is but whose first use imports
    encodings.idna, stringprep and unicodedata (about 3 ms and 0.7 MiB of every start-up)."""
    return host.encode("ascii") if host.isascii() else host


def _listen_sockets(host: str, port: int, backlog: int) -> list[socket.socket]:
    """Bound, listening, non-blocking sockets for every address of `host` ("", 0.0.0.0 and :: mean
    every interface), as asyncio's create_server binds them: IPv6 ones IPv6-only, so an IPv4 peer
    is seen as IPv4. With port 0 the later sockets take the port the first one got."""
    bind_host = None if host in ("", "0.0.0.0", "::") else _ascii_host(host)
    infos = socket.getaddrinfo(bind_host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    sockets: list[socket.socket] = []
    try:
        for family, type_, proto, _name, address in dict.fromkeys(infos):
            sock = socket.socket(family, type_, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if port == 0 and len(sockets) > 1:
                address = (address[0], sockets[0].getsockname()[1], *address[2:])
            sock.bind(address)
            sock.listen(backlog)
            sock.setblocking(False)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets
