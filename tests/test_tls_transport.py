"""The SSLSocket transport of TLS listeners (kbroker/network/tls_transport.py) at its edges, over
real sockets on both event loops the broker runs on: responses far larger than the socket's
buffer (writes that must wait and be retried), pipelined requests, a client closing mid-request,
a plaintext client on the TLS port, failed and unfinished handshakes, close_notify on close.
The clients are Python's ssl sockets in a thread; the listener is a SocketServer as the broker
builds it. Real clients over TLS are in compat-tests/test_tls_clients.py and test_sasl_ssl_clients.py.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import socket
import ssl
import struct
import threading
import time

import pytest

from kbroker.config import KafkaConfig
from kbroker.network import socket_server, tls_transport
from kbroker.network.socket_server import CloseConnection, KafkaConnection, SocketServer
from kbroker.security import ssl_factory
from kbroker.testing.tls import STORE_PASSWORD, CertificateAuthority
from kbroker.testing.waiting import eventually_async

LOOPS = ["asyncio", "uvloop"]
BIG = 9 * 1024 * 1024  # far above any socket buffer: the transport's writes must wait
REQUESTS = 100  # of 4 KiB in one write: more than the listener's 256 KiB read buffer


@pytest.fixture(scope="module")
def ca(tmp_path_factory) -> CertificateAuthority:
    return CertificateAuthority(tmp_path_factory.mktemp("pki"))


@pytest.fixture(autouse=True)
def fresh_log_limits(monkeypatch):
    """Each test sees its own lines: the rate limit is per client host and kind, for a minute."""
    monkeypatch.setattr(socket_server.bad_input_log, "_windows", {})


def run(loop: str, coroutine):
    return (asyncio.run if loop == "asyncio" else pytest.importorskip("uvloop").run)(coroutine)


def server_context(ca: CertificateAuthority, *more: str) -> ssl.SSLContext:
    broker = ca.issue("broker")
    config = KafkaConfig.load(overrides=["listeners=PLAINTEXT://:0,SSL://:0", f"ssl.keystore.location={broker.pkcs12}",
                                         f"ssl.keystore.password={STORE_PASSWORD}", *more])
    return ssl_factory.server_context(ssl_factory.ssl_settings(config, "SSL"))


def client_context(ca: CertificateAuthority) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca.cert_pem))


def tls_client(port: int, context: ssl.SSLContext) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", port), timeout=20)
    # A ragged EOF (no close_notify) raises SSLEOFError instead of reading as b"".
    return context.wrap_socket(raw, server_hostname="localhost", suppress_ragged_eofs=False)


def read_exactly(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(min(size - len(data), 65536))
        if not chunk:
            raise ConnectionError(f"closed after {len(data)} of {size} bytes")
        data += chunk
    return bytes(data)


def read_frame(sock: socket.socket) -> bytes:
    return read_exactly(sock, struct.unpack(">i", read_exactly(sock, 4))[0])


def read_until_closed(sock: socket.socket) -> bytes:
    """What arrives before the peer closes (b"" chunks end it; a reset ends it too)."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (ConnectionResetError, ssl.SSLEOFError):
        pass
    return data


def pattern(size: int, seed: int) -> bytes:
    block = hashlib.sha256(str(seed).encode()).digest() * 2048  # 64 KiB
    return (block * (size // len(block) + 1))[:size]


async def echo_size(_conn: KafkaConnection, frame: memoryview) -> list:
    return [struct.pack(">ii", 4, len(frame))]


async def serve(context: ssl.SSLContext, processor=echo_size, **options) -> SocketServer:
    server = SocketServer("127.0.0.1", 0, processor, listener_name="SSL", ssl_context=context, **options)
    await server.start()
    return server


async def no_connections_left(server: SocketServer) -> None:
    await eventually_async(lambda: not server.connections and server.quotas.count("127.0.0.1") == 0,
                           what="the server to forget the connection")


def clients_in_turn(loop: str, context: ssl.SSLContext, *clients, processor=echo_size, **options) -> list:
    """Serves a TLS listener on `loop` and runs each client (a function of the port, in a thread)
    in turn, each once the server has forgotten the connection before; their answers."""
    async def scenario() -> list:
        server = await serve(context, processor, **options)
        try:
            answers = []
            for client in clients:
                answers.append(await asyncio.wait_for(asyncio.to_thread(client, server.port), 30))
                await no_connections_left(server)
            return answers
        finally:
            await server.shutdown(1.0)

    return run(loop, scenario())


def exchange(port: int, context: ssl.SSLContext) -> int:
    with tls_client(port, context) as sock:
        sock.sendall(struct.pack(">i", 3) + b"abc")
        return struct.unpack(">i", read_frame(sock))[0]


def trusting(ca: CertificateAuthority):
    """A client (a function of the port) making one exchange with a context that trusts `ca`."""
    return lambda port: exchange(port, client_context(ca))


@pytest.mark.parametrize("loop", LOOPS)
def test_large_responses_arrive_whole_and_in_order(ca, loop):
    """Responses of 9 MiB in large and small chunks (joined into fewer TLS records) through a
    16 KiB send buffer, to three requests sent in one write: each arrives whole, in order."""
    transports = []

    async def processor(conn: KafkaConnection, frame: memoryview) -> list:
        transports.append(type(conn.transport))
        seed = bytes(frame)[0]
        body = pattern(BIG, seed)
        # a small head, a large slice, 100 small ones, the large rest as a memoryview
        chunks = [struct.pack(">i", BIG), body[:3_000_000]]
        chunks += [body[3_000_000 + i * 100: 3_000_000 + (i + 1) * 100] for i in range(100)]
        chunks.append(memoryview(body)[3_010_000:])
        return chunks

    def client(port: int) -> list[bool]:
        with tls_client(port, client_context(ca)) as sock:
            sock.sendall(b"".join(struct.pack(">i", 1) + bytes([seed]) for seed in (1, 2, 3)))
            return [read_frame(sock) == pattern(BIG, seed) for seed in (1, 2, 3)]

    answers = clients_in_turn(loop, server_context(ca), client, processor=processor, send_buffer_bytes=16384)
    assert answers == [[True, True, True]]
    assert set(transports) == {tls_transport.SSLSocketTransport}


@pytest.mark.parametrize("loop", LOOPS)
def test_requests_waiting_inside_openssl_are_read_when_reading_resumes(ca, loop):
    """400 KiB of requests in one write, with at most one queued (queued.max.requests=1): reading
    pauses once the listener's 256 KiB read buffer is cut into frames, while the rest already sits
    in OpenSSL's buffer, where no socket event will announce it; resuming must read it anyway.
    All are answered, in order."""
    async def processor(_conn: KafkaConnection, frame: memoryview) -> list:
        await asyncio.sleep(0)  # let the queue fill behind this request
        return [struct.pack(">i", 4), bytes(frame[:4])]

    def client(port: int) -> list[int]:
        with tls_client(port, client_context(ca)) as sock:
            sock.sendall(b"".join(struct.pack(">ii", 4096, n) + b"x" * 4092 for n in range(REQUESTS)))
            return [struct.unpack(">i", read_frame(sock))[0] for _ in range(REQUESTS)]

    answers = clients_in_turn(loop, server_context(ca), client, processor=processor, max_queued_requests=1)
    assert answers == [list(range(REQUESTS))]


LARGE_REQUEST = 4 * 1024 * 1024


@pytest.mark.parametrize("loop", LOOPS)
def test_a_large_request_in_small_records_wakes_the_reader_per_buffer_not_per_record(ca, loop, monkeypatch):
    """A 4 MiB request written as 4,096 TLS records of 1 KiB, each its own segment (as librdkafka
    writes the values it references): the listener is woken about once per 256 KiB of it
    (SO_RCVLOWAT), not for every few records, and the request arrives whole."""
    reads = []
    original = KafkaConnection.buffer_updated

    def counted(self: KafkaConnection, nbytes: int) -> None:
        reads.append(nbytes)
        original(self, nbytes)

    monkeypatch.setattr(KafkaConnection, "buffer_updated", counted)

    def client(port: int) -> int:
        with tls_client(port, client_context(ca)) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            request = struct.pack(">i", LARGE_REQUEST) + pattern(LARGE_REQUEST, 7)
            for start in range(0, len(request), 1024):
                sock.sendall(request[start:start + 1024])
            return struct.unpack(">i", read_frame(sock))[0]

    assert clients_in_turn(loop, server_context(ca), client) == [LARGE_REQUEST]
    # 16 buffers of 256 KiB, the frame's regrowth, and the last ~17 KiB (what OpenSSL may hold)
    # read as it comes: without the setting this is one read per segment or two, ~1,000 or more.
    assert len(reads) < 120, f"{len(reads)} reads"


PRODUCE_REQUEST = 1_000_000  # librdkafka's largest produce request (its batch cap, message.max.bytes)
FIRST_PART = 64 * 1024


@pytest.mark.skipif(not hasattr(socket, "SO_RCVLOWAT") or not hasattr(socket, "TCP_QUICKACK"),
                    reason="SO_RCVLOWAT and TCP_QUICKACK are Linux's")
@pytest.mark.parametrize("loop", LOOPS)
def test_a_producers_1_mb_request_wakes_the_reader_once_the_rest_is_there(ca, loop, monkeypatch):
    """Once the first 64 KiB of a 1 MB request are read, the listener asks the kernel to wake it
    only when all the rest but one record (TLS_HELD_BYTES) is readable: one wake for the rest,
    not one per 256 KiB (reading less often lets the client send fuller segments, docs/DESIGN.md).
    The client holds the rest back until the listener has asked, then the request arrives whole."""
    asked: list[int] = []
    original = KafkaConnection._set_wake_bytes

    def recorded(self: KafkaConnection, ack_socket: socket.socket, wanted: int) -> None:
        asked.append(wanted)
        original(self, ack_socket, wanted)

    monkeypatch.setattr(KafkaConnection, "_set_wake_bytes", recorded)
    request = struct.pack(">i", PRODUCE_REQUEST) + pattern(PRODUCE_REQUEST, 11)
    first_part_read = threading.Event()

    def client(port: int) -> int:
        with tls_client(port, client_context(ca)) as sock:
            sock.sendall(request[:4 + FIRST_PART])
            assert first_part_read.wait(20)
            sock.sendall(request[4 + FIRST_PART:])
            return struct.unpack(">i", read_frame(sock))[0]

    async def scenario() -> int:
        server = await serve(server_context(ca))
        try:
            answer = asyncio.ensure_future(asyncio.to_thread(client, server.port))
            await eventually_async(lambda: any(wanted > 1 for wanted in asked), what="a wake threshold")
            first_part_read.set()
            return await asyncio.wait_for(answer, 30)
        finally:
            await server.shutdown(1.0)

    assert run(loop, scenario()) == PRODUCE_REQUEST
    largest = max(asked)
    assert PRODUCE_REQUEST - FIRST_PART - socket_server.TLS_HELD_BYTES <= largest <= socket_server.WAKE_BYTES_MAX
    assert asked[-1] == 1  # between requests any byte wakes it


def memory_bio_client(port: int, context: ssl.SSLContext) -> tuple[socket.socket, ssl.SSLObject, ssl.MemoryBIO,
                                                                   ssl.MemoryBIO]:
    """A TLS client whose records the test cuts where it likes: the handshake through memory BIOs
    over a plain socket; returns the socket, the SSLObject and its incoming and outgoing BIOs."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=20)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="localhost")
    while True:
        try:
            tls.do_handshake()
            break
        except ssl.SSLWantReadError:
            raw.sendall(outgoing.read())
            data = raw.recv(65536)
            if not data:
                raise ConnectionError("closed during the handshake") from None
            incoming.write(data)
    raw.sendall(outgoing.read())
    return raw, tls, incoming, outgoing


def read_frame_through(raw: socket.socket, tls: ssl.SSLObject, incoming: ssl.MemoryBIO) -> bytes:
    data = b""
    while len(data) < 4 or len(data) < 4 + struct.unpack(">i", data[:4])[0]:
        try:
            data += tls.read(65536)
        except ssl.SSLWantReadError:
            chunk = raw.recv(65536)
            if not chunk:
                raise ConnectionError(f"closed after {len(data)} bytes") from None
            incoming.write(chunk)
    return data[4:]


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("withheld", [100, 16_500])
def test_the_last_bytes_of_a_request_wake_the_reader_even_inside_a_record(ca, loop, withheld):
    """A 1 MiB request in 16 KiB records whose last bytes come alone, once the listener has read
    the rest: part of its last record (100 bytes), or that record and the end of the one before.
    What OpenSSL holds of an unfinished record has arrived already, so the listener must not ask
    to be woken by as many more bytes as the request still misses: the last ones wake it."""
    seen = []

    async def processor(conn: KafkaConnection, frame: memoryview) -> list:
        seen.append(hashlib.sha256(frame).hexdigest())
        return await echo_size(conn, frame)

    def client(port: int) -> int:
        raw, tls, incoming, outgoing = memory_bio_client(port, client_context(ca))
        with raw:
            size = 1024 * 1024 - 4  # with its size in front: 64 records of exactly 16 KiB
            tls.write(struct.pack(">i", size) + pattern(size, 3))
            ciphertext = outgoing.read()
            raw.sendall(ciphertext[:-withheld])
            time.sleep(0.3)  # the listener reads what came (the answer does not depend on it)
            raw.sendall(ciphertext[-withheld:])
            return struct.unpack(">i", read_frame_through(raw, tls, incoming))[0]

    assert clients_in_turn(loop, server_context(ca), client, processor=processor) == [1024 * 1024 - 4]
    assert seen == [hashlib.sha256(pattern(1024 * 1024 - 4, 3)).hexdigest()]


@pytest.mark.parametrize("loop", LOOPS)
def test_a_close_notify_in_the_middle_of_a_large_request_is_answered(ca, loop):
    """300 KiB of a 1 MiB request, then, once the listener has read them (and asked to be woken
    only by much more of it), a close_notify alone, the client waiting for the listener's own as
    Python's unwrap does: the listener sees it though it is not more of the request, answers
    with its close_notify and forgets the connection."""
    def client(port: int) -> float:
        sock = tls_client(port, client_context(ca))
        sock.sendall(struct.pack(">i", 1024 * 1024) + b"x" * 300 * 1024)
        time.sleep(0.3)  # the listener reads what came (the answer does not depend on it)
        sock.settimeout(5)
        started = time.monotonic()
        sock.unwrap().close()  # sends close_notify, then waits for the listener's
        return time.monotonic() - started

    [waited] = clients_in_turn(loop, server_context(ca), client)
    assert waited < 2


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("notify", [True, False], ids=["close_notify", "bare_fin"])
def test_a_client_closing_mid_request_is_forgotten(ca, loop, notify):
    """Half a request, then the client goes (with close_notify or a bare FIN): the connection is
    closed and uncounted, nothing is processed, and the listener serves the next client."""
    processed = []

    async def processor(conn: KafkaConnection, frame: memoryview) -> list:
        processed.append(len(frame))
        return await echo_size(conn, frame)

    def half_request(port: int) -> None:
        sock = tls_client(port, client_context(ca))
        sock.sendall(struct.pack(">i", 100_000) + b"x" * 30_000)
        if notify:
            sock.unwrap().close()
        else:
            sock.close()

    answers = clients_in_turn(loop, server_context(ca), half_request, trusting(ca), processor=processor)
    assert answers == [None, 3]
    assert processed == [3]


@pytest.mark.parametrize("loop", LOOPS)
def test_a_plaintext_client_on_the_tls_port_is_closed_with_one_line(ca, loop, caplog):
    def plaintext(port: int) -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
            sock.sendall(struct.pack(">ihhi", 10, 18, 0, 1) + b"\x00\x00")  # ApiVersions v0, no client id
            return read_until_closed(sock)

    with caplog.at_level(logging.WARNING, logger="kbroker.network"):
        answer, exchanged = clients_in_turn(loop, server_context(ca), plaintext, trusting(ca))
    assert not answer.startswith(b"\x00\x00\x00")  # no Kafka answer: at most a TLS alert
    assert exchanged == 3
    lines = [r.getMessage() for r in caplog.records if "TLS handshake failed" in r.getMessage()]
    assert len(lines) == 1 and "not TLS, a plaintext client?" in lines[0]


@pytest.mark.parametrize("loop", LOOPS)
def test_a_failed_handshake_closes_only_that_connection(ca, loop, caplog):
    """ssl.client.auth=required and a client without a certificate: its handshake fails."""
    trust = [f"ssl.truststore.location={ca.cert_pem}", "ssl.truststore.type=PEM", "ssl.client.auth=required"]
    alice = ca.issue("alice")

    def without_certificate(port: int) -> str:
        try:
            with tls_client(port, client_context(ca)) as sock:
                sock.sendall(struct.pack(">i", 3) + b"abc")  # TLS 1.3: the client learns on its first read
                read_frame(sock)
        except (ssl.SSLError, ConnectionError) as exc:
            return type(exc).__name__
        return "answered"

    def with_certificate(port: int) -> int:
        context = client_context(ca)
        context.load_cert_chain(str(alice.cert_pem), str(alice.key_pem))
        return exchange(port, context)

    with caplog.at_level(logging.WARNING, logger="kbroker.network"):
        refused, answer = clients_in_turn(loop, server_context(ca, *trust), without_certificate, with_certificate)
    assert refused != "answered" and answer == 3
    lines = [r.getMessage() for r in caplog.records if "TLS handshake failed" in r.getMessage()]
    assert len(lines) == 1 and "CERTIFICATE" in lines[0].upper()


@pytest.mark.parametrize("loop", LOOPS)
def test_an_unfinished_handshake_is_closed_after_the_timeout(ca, loop, caplog):
    def silent(port: int) -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
            return read_until_closed(sock)  # sends nothing: the server gives up

    with caplog.at_level(logging.WARNING, logger="kbroker.network"):
        assert clients_in_turn(loop, server_context(ca), silent, ssl_handshake_timeout_s=0.3) == [b""]
    lines = [r.getMessage() for r in caplog.records if "TLS handshake failed" in r.getMessage()]
    assert len(lines) == 1 and "SSL handshake is taking longer than 0.3 seconds" in lines[0]


@pytest.mark.parametrize("loop", LOOPS)
def test_a_connection_the_server_closes_ends_with_close_notify(ca, loop):
    """The last response (a failed authentication's, say) is written, then close_notify: the
    client reads a clean end of the TLS stream, not a ragged EOF."""
    async def refuse(_conn: KafkaConnection, _frame: memoryview) -> list:
        raise CloseConnection([struct.pack(">i", 2), b"no"])

    def client(port: int) -> tuple[bytes, bytes]:
        with tls_client(port, client_context(ca)) as sock:
            sock.sendall(struct.pack(">i", 3) + b"abc")
            return read_frame(sock), sock.recv(10)  # b"" only after close_notify

    assert clients_in_turn(loop, server_context(ca), client, processor=refuse) == [(b"no", b"")]


def test_reads_go_through_a_buffering_bio_on_cpython(ca):
    """The buffering BIO is set through _ssl's internals (tls_transport._buffer_reads): on the
    CPython the broker runs on, it must find them, or every TLS record costs two recv(2)."""
    context = server_context(ca)
    left, right = socket.socketpair()
    with context.wrap_socket(left, server_side=True, do_handshake_on_connect=False) as tls, right:
        assert tls_transport._buffer_reads(tls)
