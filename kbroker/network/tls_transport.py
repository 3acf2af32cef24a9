"""TLS connections through an ssl.SSLSocket: OpenSSL reads and writes the socket itself.

asyncio's and uvloop's SSL transports put OpenSSL behind a memory BIO: the loop reads the socket
into its own buffer, the BIO zeroes and copies that in, OpenSSL copies each record into its record
buffer, decrypts and copies the plaintext out; sending encrypts into the BIO, which the loop then
copies out to the socket. Here the accepted socket is wrapped server-side (`accept_tls`, the
handshake driven by the event loop's add_reader/add_writer, bounded by a timeout) and
`SSLSocketTransport` drives the SSLSocket with add_reader/add_writer. Reads decrypt straight into
the protocol's buffer (BufferedProtocol: KafkaConnection's frame being filled, or the listener's
scratch buffer), one record per call, until that buffer is full or the socket is empty, then
tell the protocol once; under OpenSSL's record layer a buffering BIO (`_buffer_reads`) reads the
socket 256 KiB at a time and hands out each record with one copy. Writes encrypt straight into
OpenSSL's write buffer and go out from there (SSLSocket.send), small chunks joined first.
Measured with callgrind against uvloop's SSL transport: ~25-30% fewer instructions per MB
received and ~30-35% fewer per MB sent (docs/DESIGN.md, TLS).

OpenSSL's non-blocking rules, as the transport keeps them: a read or a write may want the other
direction (SSLWantWriteError on a read, SSLWantReadError on a write), and is then retried when that
direction is ready; a write that wanted to wait is retried with the same buffer (OpenSSL remembers
the records already sent; Python sets SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER, so the buffer may move
but not change); without SSL_MODE_ENABLE_PARTIAL_WRITE a write sends everything or waits. Bytes
may wait inside OpenSSL (the buffering BIO, the rest of a record) with nothing on the socket to
wake the loop: reads go on until OpenSSL wants the socket, and a read that stops early (paused,
or a long burst) is resumed by the loop's next iteration, not by the socket. So when a read waits
for the socket, OpenSSL holds at most one unfinished record: KafkaConnection's SO_RCVLOWAT
(socket_server's _wake_when_worth_it) counts on it. Closing flushes the
queued writes (for at most CLOSE_FLUSH_TIMEOUT_S), sends close_notify (best effort: a peer gone
does not wait) and closes the socket.

It knows nothing of Kafka: it drives any asyncio.BufferedProtocol, as asyncio's own transports do.
"""

from __future__ import annotations

import asyncio
import collections
import ctypes
import functools
import socket
import ssl
import sys
from collections.abc import Callable
from typing import Any

# Buffers filled per readable event before the loop serves others (a client sending fast must not
# starve the other connections): the protocol's buffers are 256 KiB or a frame's remainder.
MAX_FILLS_PER_EVENT = 4
# The buffering BIO's size: up to this much is read from the socket at once (as the event loop's
# own transports read 256 KiB).
READ_BUFFER_BYTES = 256 * 1024
_BIO_C_SET_BUFF_SIZE = 117  # openssl/bio.h
_POINTER_BYTES = ctypes.sizeof(ctypes.c_void_p)
_SSL_FIELD_OFFSET = 2 * _POINTER_BYTES + _POINTER_BYTES  # PyObject_HEAD, then `PyObject *Socket`
# Write buffer limits, as asyncio's transports' defaults: pause_writing above, resume below.
HIGH_WATER_BYTES = 64 * 1024
LOW_WATER_BYTES = HIGH_WATER_BYTES // 4
# How long close() waits for the queued writes to drain before it drops them (as uvloop's SSL
# transport's ssl_shutdown_timeout).
CLOSE_FLUSH_TIMEOUT_S = 30.0
# Consecutive response chunks smaller than this are joined into one write: each SSLSocket.send
# makes at least one TLS record and one write(2), and a response's small chunks (headers, a
# partition's fields) would otherwise each cost both.
COALESCE_BYTES = 16 * 1024


async def accept_tls(sock: socket.socket, context: ssl.SSLContext, timeout_s: float) -> ssl.SSLSocket:
    """The server side of a TLS handshake on an accepted non-blocking socket, driven by the loop.
    Raises what the handshake raised (ssl.SSLError, OSError), or ConnectionAbortedError after
    `timeout_s` with asyncio's words; the socket is closed then (its descriptor belongs to the
    SSLSocket from the start)."""
    loop = asyncio.get_running_loop()
    tls = context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
    _buffer_reads(tls)
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                try:
                    tls.do_handshake()
                    return tls
                except ssl.SSLWantReadError:
                    await _ready(loop, tls.fileno(), writable=False)
                except ssl.SSLWantWriteError:
                    await _ready(loop, tls.fileno(), writable=True)
    except TimeoutError:
        tls.close()
        raise ConnectionAbortedError(
            f"SSL handshake is taking longer than {timeout_s} seconds: aborting the connection") from None
    except BaseException:
        tls.close()
        raise


def _buffer_reads(tls: ssl.SSLSocket) -> bool:
    """Put a buffering BIO (BIO_f_buffer, READ_BUFFER_BYTES) between OpenSSL's record layer and the
    socket, for reads only. OpenSSL reads a record as its 5-byte header and then its body: straight
    from the socket that is two recv(2) per record, and librdkafka writes many records of 1-2 KiB.
    Its own read-ahead (SSL_set_read_ahead) would read more at once but, in OpenSSL 3.0, moves what
    is left of its buffer to the front before every record (quadratic in records per read). The
    buffering BIO reads up to READ_BUFFER_BYTES per recv(2) and hands out each piece with one copy,
    without moving the rest. Python's ssl module has no such setting, so the SSL* is taken from
    the _ssl._SSLSocket object (its third field since Python 3.7), checked first through the field
    after it, which must be the object's SSLContext, and then through SSL_get_fd. False (OpenSSL's
    socket reads then: correct, only slower) when anything does not fit."""
    functions = _libssl()
    sslobj = getattr(tls, "_sslobj", None)
    if not READ_BUFFER_BYTES or functions is None or sslobj is None or \
            sys.getsizeof(sslobj) < _SSL_FIELD_OFFSET + 2 * _POINTER_BYTES:
        return False
    base = id(sslobj) + _SSL_FIELD_OFFSET
    if ctypes.c_void_p.from_address(base + _POINTER_BYTES).value != id(sslobj.context):
        return False
    ssl_pointer = ctypes.c_void_p.from_address(base).value
    if functions.SSL_get_fd(ssl_pointer) != tls.fileno():
        return False
    socket_bio = functions.SSL_get_rbio(ssl_pointer)
    buffering = functions.BIO_new(functions.BIO_f_buffer())
    if not socket_bio or not buffering:
        return False
    if functions.BIO_int_ctrl(buffering, _BIO_C_SET_BUFF_SIZE, READ_BUFFER_BYTES, 0) != 1:
        functions.BIO_free(buffering)
        return False
    functions.BIO_up_ref(socket_bio)  # the chain's reference; SSL_set0_rbio drops the SSL's
    functions.BIO_push(buffering, socket_bio)
    functions.SSL_set0_rbio(ssl_pointer, buffering)
    return True


_SIGNATURES: dict[str, tuple[Any, list[Any]]] = {
    "SSL_get_fd": (ctypes.c_int, [ctypes.c_void_p]),
    "SSL_get_rbio": (ctypes.c_void_p, [ctypes.c_void_p]),
    "SSL_set0_rbio": (None, [ctypes.c_void_p, ctypes.c_void_p]),
    "BIO_f_buffer": (ctypes.c_void_p, []),
    "BIO_new": (ctypes.c_void_p, [ctypes.c_void_p]),
    "BIO_free": (ctypes.c_int, [ctypes.c_void_p]),
    "BIO_up_ref": (ctypes.c_int, [ctypes.c_void_p]),
    "BIO_push": (ctypes.c_void_p, [ctypes.c_void_p, ctypes.c_void_p]),
    "BIO_int_ctrl": (ctypes.c_long, [ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_int]),
}


@functools.cache
def _libssl() -> Any:
    """The OpenSSL functions _buffer_reads calls, from the libssl and libcrypto _ssl is linked with
    (None when they cannot be had: another interpreter, _ssl built in, another TLS library)."""
    if sys.implementation.name != "cpython" or not (3, 7) <= sys.version_info[:2] <= (3, 14):
        return None
    try:
        import _ssl

        library = ctypes.CDLL(_ssl.__file__)  # dlsym searches what it was linked with
        for name, (restype, argtypes) in _SIGNATURES.items():
            function = getattr(library, name)
            function.restype, function.argtypes = restype, argtypes
    except (AttributeError, OSError):
        return None
    return library


def _joined(chunks: list) -> bytes | bytearray | memoryview:
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _ready(loop: asyncio.AbstractEventLoop, fd: int, *, writable: bool) -> None:
    waiter = loop.create_future()

    def wake() -> None:
        if not waiter.done():
            waiter.set_result(None)

    if writable:
        loop.add_writer(fd, wake)
    else:
        loop.add_reader(fd, wake)
    try:
        await waiter
    finally:
        if writable:
            loop.remove_writer(fd)
        else:
            loop.remove_reader(fd)


class SSLSocketTransport(asyncio.Transport):
    """An asyncio transport over a handshaken, non-blocking ssl.SSLSocket, for a BufferedProtocol."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: ssl.SSLSocket,
                 protocol: asyncio.BufferedProtocol) -> None:
        super().__init__()
        self._loop = loop
        self._sock = sock
        self._fd = sock.fileno()
        self._protocol = protocol
        self._extra: dict[str, Any] = {"socket": sock, "ssl_object": sock, "sslcontext": sock.context}
        try:
            self._extra["peername"] = sock.getpeername()
            self._extra["sockname"] = sock.getsockname()
        except OSError:
            pass
        # One read of OpenSSL's per record: the C method itself, without SSLSocket.recv_into's
        # two Python layers (argument checks it does not need here); it returns 0 on close_notify
        # and raises SSLEOFError on a bare FIN.
        sslobj = getattr(sock, "_sslobj", None)
        self._read: Callable[[int, memoryview], int] = (
            sslobj.read if sslobj is not None else lambda size, buffer: sock.recv_into(buffer, size))
        self._writes: collections.deque[bytes | bytearray | memoryview] = collections.deque()
        self._buffered = 0
        self._reading = True  # the protocol wants bytes (pause_reading/resume_reading)
        self._reader_on = False
        self._writer_on = False
        self._read_wants_write = False  # a read waits for the socket to be writable
        self._write_wants_read = False  # a write waits for the socket to be readable
        self._read_scheduled = False
        self._protocol_paused = False  # pause_writing was called
        self._closing = False
        self._closed = False
        protocol.connection_made(self)
        if not self._closing:
            self._update_events()
            # The handshake's last read may have left application data inside OpenSSL already.
            self._schedule_read()

    # -- the Transport interface -------------------------------------------------------------
    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "peercert":
            return self._sock.getpeercert()
        if name == "cipher":
            return self._sock.cipher()
        return self._extra.get(name, default)

    def is_closing(self) -> bool:
        return self._closing

    def is_reading(self) -> bool:
        return self._reading and not self._closing

    def pause_reading(self) -> None:
        if self._reading:
            self._reading = False
            self._update_events()

    def resume_reading(self) -> None:
        if not self._reading and not self._closing:
            self._reading = True
            self._update_events()
            self._schedule_read()  # plaintext may wait inside OpenSSL: the socket would not say

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol  # type: ignore[assignment]

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol

    def get_write_buffer_size(self) -> int:
        return self._buffered

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return LOW_WATER_BYTES, HIGH_WATER_BYTES

    def can_write_eof(self) -> bool:
        return False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writelines((data,))

    def writelines(self, list_of_data: Any) -> None:
        if self._closing:
            return
        writes = self._writes
        was_empty = not writes
        small: list = []  # consecutive small chunks, joined into one write
        small_bytes = 0
        for chunk in list_of_data:
            size = chunk.nbytes if isinstance(chunk, memoryview) else len(chunk)
            if not size:
                continue
            self._buffered += size
            if size >= COALESCE_BYTES:
                if small:
                    writes.append(_joined(small))
                    small, small_bytes = [], 0
                writes.append(chunk)
                continue
            small.append(chunk)
            small_bytes += size
            if small_bytes >= COALESCE_BYTES:
                writes.append(_joined(small))
                small, small_bytes = [], 0
        if small:
            writes.append(_joined(small))
        if was_empty and writes and not self._write_wants_read:
            self._write_ready()
        self._maybe_pause_protocol()

    def close(self) -> None:
        """Flush what is queued, send close_notify, close; connection_lost follows."""
        if self._closing:
            return
        self._closing = True
        self._reading = False
        self._update_events()
        if not self._writes:
            self._loop.call_soon(self._finish, None)
        else:  # a peer that never reads must not hold the connection open forever
            self._loop.call_later(CLOSE_FLUSH_TIMEOUT_S, self._force_close, None)

    def abort(self) -> None:
        self._force_close(None)

    # -- reading -------------------------------------------------------------------------------
    def _schedule_read(self) -> None:
        if not self._read_scheduled:
            self._read_scheduled = True
            self._loop.call_soon(self._scheduled_read)

    def _scheduled_read(self) -> None:
        self._read_scheduled = False
        if self._reading and not self._closing and not self._read_wants_write:
            self._read_ready()

    def _read_ready(self) -> None:
        """Fill the protocol's buffer (OpenSSL hands out one record per read) before telling it,
        as the loop's own SSL transport does: the framing runs once per buffer, not per record."""
        protocol = self._protocol
        read = self._read
        for _ in range(MAX_FILLS_PER_EVENT):
            buffer = memoryview(protocol.get_buffer(-1))
            wanted, filled = len(buffer), 0
            failure: Exception | None = None
            more = eof = False
            try:
                while filled < wanted:
                    nbytes = read(wanted - filled, buffer[filled:] if filled else buffer)
                    if not nbytes:  # the peer closed (close_notify, or a bare TCP FIN)
                        eof = True
                        break
                    filled += nbytes
                else:
                    more = True
            except ssl.SSLWantReadError:
                pass  # the next record is not all here: the socket will say when it is
            except ssl.SSLEOFError:  # a bare TCP FIN, no close_notify (what SSLSocket's suppress_ragged_eofs hides)
                eof = True
            except ssl.SSLWantWriteError:  # OpenSSL must send something first (a TLS 1.3 KeyUpdate)
                self._read_wants_write = True
                self._update_events()
            except (ssl.SSLError, OSError) as exc:
                failure = exc
            del buffer  # the protocol may replace the bytearray it lent
            if filled:
                protocol.buffer_updated(filled)
            if failure is not None:
                self._force_close(failure)
                return
            if eof:
                self._eof()
                return
            if not more or not self._reading or self._closing:
                return
        self._schedule_read()  # a long burst: let the others run, then go on

    def _eof(self) -> None:
        keep_open = False
        try:
            keep_open = bool(self._protocol.eof_received())
        except Exception as exc:
            self._force_close(exc)
            return
        if not keep_open:
            self.close()
        else:
            self.pause_reading()

    # -- writing -------------------------------------------------------------------------------
    def _write_ready(self) -> None:
        writes = self._writes
        send = self._sock.send
        while writes:
            chunk = writes[0]
            try:
                sent = send(chunk)
            except ssl.SSLWantWriteError:
                break
            except ssl.SSLWantReadError:  # OpenSSL must read something first
                self._write_wants_read = True
                break
            except (ssl.SSLError, OSError) as exc:
                self._force_close(exc)
                return
            size = chunk.nbytes if isinstance(chunk, memoryview) else len(chunk)
            if sent < size:  # not with OpenSSL's default modes, but the socket API allows it
                writes[0] = memoryview(chunk)[sent:]
            else:
                writes.popleft()
            self._buffered -= sent
        self._update_events()
        if self._protocol_paused and self._buffered <= LOW_WATER_BYTES:
            self._protocol_paused = False
            self._protocol.resume_writing()
        if not writes and self._closing:
            self._finish(None)

    def _maybe_pause_protocol(self) -> None:
        if not self._protocol_paused and self._buffered > HIGH_WATER_BYTES and not self._closed:
            self._protocol_paused = True
            self._protocol.pause_writing()

    # -- the loop's interest in the socket -------------------------------------------------
    def _update_events(self) -> None:
        """Watch for readable while a read is wanted (or a write waits for one), for writable while
        writes are queued (or a read waits for one)."""
        if self._closed:
            return
        want_read = (self._reading and not self._closing and not self._read_wants_write) or self._write_wants_read
        want_write = bool(self._writes and not self._write_wants_read) or self._read_wants_write
        if want_read != self._reader_on:
            self._reader_on = want_read
            if want_read:
                self._loop.add_reader(self._fd, self._on_readable)
            else:
                self._loop.remove_reader(self._fd)
        if want_write != self._writer_on:
            self._writer_on = want_write
            if want_write:
                self._loop.add_writer(self._fd, self._on_writable)
            else:
                self._loop.remove_writer(self._fd)

    def _on_readable(self) -> None:
        if self._write_wants_read:
            self._write_wants_read = False
            self._write_ready()
        if self._reading and not self._closing and not self._read_wants_write:
            self._read_ready()

    def _on_writable(self) -> None:
        if self._read_wants_write:
            self._read_wants_write = False
            self._update_events()
            self._schedule_read()
        if self._writes and not self._write_wants_read:
            self._write_ready()

    # -- closing -------------------------------------------------------------------------------
    def _force_close(self, exc: Exception | None) -> None:
        if self._closed:
            return
        self._closing = True
        self._writes.clear()
        self._buffered = 0
        self._finish(exc, notify=False)

    def _finish(self, exc: Exception | None, *, notify: bool = True) -> None:
        """Stop watching the socket, send close_notify (if asked and possible), close it, and tell
        the protocol in the loop's next iteration."""
        if self._closed:
            return
        self._reading = False
        self._writes.clear()
        self._read_wants_write = self._write_wants_read = False
        self._update_events()
        self._closed = True
        sock = self._sock
        if notify:
            try:
                sock.unwrap()  # sends close_notify; the peer's own is not waited for
            except (ssl.SSLError, OSError, ValueError):
                pass
        sock.close()
        self._loop.call_soon(self._protocol.connection_lost, exc)
