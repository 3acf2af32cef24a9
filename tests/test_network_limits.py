"""The network layer's limits over real sockets on 127.0.0.1 (issue 16, bug 5): memory follows the
bytes that arrive, not the sizes clients claim; socket.request.max.bytes, queued.max.request.bytes,
max.connections (and per listener), max.connections.per.ip (and its overrides), connection
creation rates (max.connection.creation.rate, per listener, and ip entities' quotas) and
connections.max.idle.ms each do what Kafka does. Brokers run as subprocesses (kbroker.testing),
except for the framing test, which drives a SocketServer in this process.
"""

from __future__ import annotations

import asyncio
import random
import resource
import select
import shutil
import socket
import struct
import time

import pytest

from kbroker.config import ConfigError, KafkaConfig
from kbroker.network.connection_quotas import ConnectionQuotas
from kbroker.network.socket_server import FIRST_FRAME_BYTES, KafkaConnection, SocketServer
from kbroker.protocol.api_keys import ApiKey
from kbroker.protocol.messages import request_codec
from kbroker.testing import raw_client, wire
from kbroker.testing.processes import BrokerProcess, free_port
from kbroker.testing.waiting import eventually

MIB = 1024 * 1024


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


def api_versions(sock: socket.socket, correlation_id: int) -> None:
    sock.sendall(wire.api_versions_request(correlation_id))
    assert wire.correlation_id_of(wire.read_frame(sock)) == correlation_id


def served_connection(port: int, source: str | None = None) -> socket.socket | None:
    """A new connection that had one ApiVersions answered, or None if the broker closed it; from
    the address `source` when given (any of 127.0.0.0/8 reaches 127.0.0.1)."""
    if source is None:
        sock = wire.connect(port)
    else:
        sock = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))
    try:
        api_versions(sock, 1)
    except (wire.ConnectionClosed, OSError):
        sock.close()
        return None
    return sock


def readable(sock: socket.socket) -> bool:
    return bool(select.select([sock], [], [], 0)[0])


def count_in_output(broker: BrokerProcess, text: str) -> int:
    return broker.output().count(text)


# ------------------------------------------------------------------------------ framing


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_frames_cut_anywhere_arrive_whole_and_in_order(loop):
    """Pipelined small frames and large ones, sent in random pieces (a size split inside its 4 bytes,
    a frame larger than the first buffer a partial frame gets), reach the processor byte for byte,
    on both event loops the broker runs on (uvloop's transports ask for buffers differently)."""
    rng = random.Random(16)
    payloads = [rng.randbytes(rng.choice([0, 1, 7, 100, 5000, FIRST_FRAME_BYTES + 3, 300_000])) for _ in range(60)]
    stream = b"".join(struct.pack(">i", len(p)) + p for p in payloads)

    async def scenario() -> list[bytes]:
        seen: list[bytes] = []

        async def processor(_conn: KafkaConnection, frame: memoryview) -> list:
            seen.append(bytes(frame))
            return [struct.pack(">i", len(seen))]

        server = SocketServer("127.0.0.1", 0, processor)
        await server.start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            pos = 0
            while pos < len(stream):
                step = rng.choice([1, 2, 3, 5, 64, 4096, 70_000])
                writer.write(stream[pos : pos + step])
                await writer.drain()
                pos += step
                if rng.random() < 0.2:
                    await asyncio.sleep(0)  # let the server read this piece on its own
            for expected in range(1, len(payloads) + 1):
                assert struct.unpack(">i", await reader.readexactly(4))[0] == expected
            writer.close()
        finally:
            await server.shutdown(1.0)
        return seen

    run = asyncio.run if loop == "asyncio" else pytest.importorskip("uvloop").run
    assert run(scenario()) == payloads


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_connections_queued_in_the_backlog_are_all_accepted_within_a_few_loop_turns(loop):
    """Clients that connected while the loop was busy wait in the kernel's backlog (Kafka's default
    socket.listen.backlog.size is 50): the accept loop takes every one of them in the same turn, as
    Kafka's Acceptor takes every ready key, instead of one per turn; taken one per turn, a thousand
    clients connecting to a busy broker overflowed the backlog and half were reset."""
    queued = 200

    async def scenario() -> int:
        async def processor(_conn: KafkaConnection, _frame: memoryview) -> list:
            return []

        server = SocketServer("127.0.0.1", 0, processor, backlog=queued + 10)
        await server.start()
        clients = []
        try:
            for _ in range(queued):  # the kernel completes the handshakes; the loop does not run meanwhile
                clients.append(socket.create_connection(("127.0.0.1", server.port), timeout=10))
            for _ in range(10):
                await asyncio.sleep(0)
            return len(server.connections)
        finally:
            for sock in clients:
                sock.close()
            await server.shutdown(1.0)

    run = asyncio.run if loop == "asyncio" else pytest.importorskip("uvloop").run
    assert run(scenario()) == queued


# ------------------------------------------------------------------------------ claimed sizes


def test_claimed_frame_sizes_cost_no_memory_and_others_are_served(broker_factory):
    """30 connections each claim a 100 MiB frame and send nothing more: the broker does not
    allocate what they claim (it took 3 GB before), and other clients are served meanwhile."""
    broker = broker_factory()
    api_versions(wire.connect(broker.port), 1)
    before = rss_mib(broker.process.pid)
    claimers = [wire.connect(broker.port) for _ in range(30)]
    try:
        for sock in claimers:
            sock.sendall(struct.pack(">i", 100 * MIB))
        for correlation_id in range(2, 5):  # each new connection is read after the claims were
            with wire.connect(broker.port) as bystander:
                api_versions(bystander, correlation_id)
        grown = rss_mib(broker.process.pid) - before
        assert grown < 30, f"broker RSS grew {grown:.1f} MiB for 30 claimed frames of 100 MiB"
        assert not any(readable(sock) for sock in claimers)  # none answered, none closed
    finally:
        for sock in claimers:
            sock.close()


@pytest.fixture(scope="module")
def small_frames_broker(module_broker_factory):
    return module_broker_factory("socket.request.max.bytes=1000")


def test_oversized_frame_closes_only_that_connection_with_one_line(small_frames_broker):
    broker = small_frames_broker
    line = "frame of 1001 bytes (socket.request.max.bytes=1000)"
    lines_before = count_in_output(broker, line)
    with wire.connect(broker.port) as culprit, wire.connect(broker.port) as bystander:
        api_versions(culprit, 1)
        api_versions(bystander, 2)
        culprit.sendall(struct.pack(">i", 1001) + b"x" * 200)
        assert wire.wait_closed(culprit, timeout=10) == b""
        api_versions(bystander, 3)
    eventually(lambda: count_in_output(broker, line) == lines_before + 1, what="one log line for the frame")


def test_frame_of_the_limit_arriving_slowly_is_served(small_frames_broker):
    """A frame of exactly socket.request.max.bytes sent a few bytes at a time is still one request."""
    body = struct.pack(">i", -1) + struct.pack(">?", False)  # Metadata v4: all topics, no auto-creation
    header = wire.request_header(wire.METADATA, 4, 77, "x" * (1000 - 10 - len(body)), False)
    frame = wire.frame(header + body)
    assert len(frame) == 1004
    with wire.connect(small_frames_broker.port) as sock:
        for pos in range(0, len(frame), 97):
            sock.sendall(frame[pos : pos + 97])
        assert wire.correlation_id_of(wire.read_frame(sock)) == 77


# ------------------------------------------------------------------------------ queued.max.request.bytes


def parked_fetch(topic: str, correlation_id: int, max_wait_ms: int) -> bytes:
    """A Fetch v12 that waits max_wait_ms on an empty partition."""
    body = request_codec(raw_client.FETCH, 12).encode(
        raw_client.fetch_body(topic, 0, 0, max_wait_ms=max_wait_ms, min_bytes=1))
    return wire.frame(wire.request_header(raw_client.FETCH, 12, correlation_id, "parked", True) + body)


def padded_api_versions(correlation_id: int, size: int) -> bytes:
    """An ApiVersions v0 frame of `size` bytes, padded by its client id."""
    return wire.frame(wire.request_header(wire.API_VERSIONS, 0, correlation_id, "p" * (size - 14), False))


def test_reading_stops_while_queued_request_bytes_are_held(broker_factory):
    """queued.max.request.bytes=4096: requests queued behind a parked Fetch hold their bytes until
    they are taken up. With 1,500 bytes queued others are still read and answered; with 4,500
    nothing more is read from any socket until the Fetch is answered and the queue moves."""
    broker = broker_factory("socket.request.max.bytes=4096", "queued.max.request.bytes=4096")
    raw_client.create_topic(broker.port, "parked")
    queued, early, late = (wire.connect(broker.port) for _ in range(3))
    try:
        for i, sock in enumerate((queued, early, late)):
            api_versions(sock, 100 + i)
        queued.sendall(parked_fetch("parked", 1, max_wait_ms=5000) + padded_api_versions(2, 1500))
        api_versions(early, 3)  # read and answered: 1,500 bytes held of 4,096
        assert not readable(queued), "the Fetch was answered before its wait"
        queued.sendall(padded_api_versions(4, 1500) + padded_api_versions(5, 1500))
        late.sendall(wire.api_versions_request(6))
        # `late` is read only once the queue behind the Fetch moved: its answer cannot come first.
        select.select([late], [], [], 30)
        assert readable(late), "no answer at all"
        assert readable(queued), "answered while 4,500 queued bytes were held"
        assert wire.correlation_id_of(wire.read_frame(late)) == 6
        assert [wire.correlation_id_of(wire.read_frame(queued)) for _ in range(4)] == [1, 2, 4, 5]
    finally:
        for sock in (queued, early, late):
            sock.close()


# ------------------------------------------------------------------------------ connection counts


def test_per_ip_override_closes_connections_beyond_it(broker_factory):
    """max.connections.per.ip=0 with an override for 127.0.0.1 of 3: a fourth connection is
    accepted and closed at once, with Kafka's info line; once one closes, a new one is served."""
    broker = broker_factory("max.connections.per.ip=0", "max.connections.per.ip.overrides=127.0.0.1:3")
    held = [eventually(lambda: served_connection(broker.port), what="a served connection") for _ in range(3)]
    try:
        with wire.connect(broker.port) as extra:
            extra.sendall(wire.api_versions_request(9))
            assert wire.wait_closed(extra, timeout=10) == b""
        assert "Rejected connection from 127.0.0.1, address already has the configured maximum of 3 connections." \
            in broker.output()
        held.pop().close()
        held.append(eventually(lambda: served_connection(broker.port), what="a connection once one closed"))
    finally:
        for sock in held:
            sock.close()


@pytest.mark.parametrize("setting", ["max.connections=3", "listener.name.plaintext.max.connections=3"])
def test_connection_beyond_max_connections_waits_for_a_slot(broker_factory, setting):
    """Kafka's acceptor blocks at max.connections: a fourth connection waits in the listen backlog,
    unanswered while the others keep being served, and is served once one of them closes."""
    broker = broker_factory(setting)
    held = [eventually(lambda: served_connection(broker.port), what="a served connection") for _ in range(3)]
    try:
        waiting = wire.connect(broker.port)  # the kernel completes the handshake; the broker does not accept
        waiting.sendall(wire.api_versions_request(42))
        for correlation_id in range(200, 250):  # the broker goes round its loop many times meanwhile
            api_versions(held[0], correlation_id)
            assert not readable(waiting), "a connection beyond max.connections was served"
        held.pop().close()
        select.select([waiting], [], [], 30)
        assert wire.correlation_id_of(wire.read_frame(waiting)) == 42
        held.append(waiting)
    finally:
        for sock in held:
            sock.close()


def test_inter_broker_listener_is_exempt_and_closes_the_least_recent_other(broker_factory):
    """With two listeners, the inter-broker one accepts beyond max.connections, and the least
    recently active connection of the other listener is closed in its place."""
    port, internal_port = free_port(), free_port()
    broker = broker_factory(
        f"listeners=PLAINTEXT://127.0.0.1:{port},INTERNAL://127.0.0.1:{internal_port}",
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,INTERNAL:PLAINTEXT",
        "inter.broker.listener.name=INTERNAL", "max.connections=2", port=port)
    older = eventually(lambda: served_connection(broker.port), what="a served connection")
    newer = eventually(lambda: served_connection(broker.port), what="a second served connection")
    try:
        api_versions(newer, 5)  # `older` is now the least recently active
        with wire.connect(internal_port) as internal:
            api_versions(internal, 6)
            assert wire.wait_closed(older, timeout=10) == b""
            api_versions(newer, 7)
    finally:
        older.close()
        newer.close()


# ------------------------------------------------------------------------------ connections.max.idle.ms


def test_idle_connections_are_closed_and_active_ones_kept(broker_factory):
    """connections.max.idle.ms=1000: a connection silent after its answer and one that sent half a
    frame are both closed; one that keeps talking is not."""
    broker = broker_factory("connections.max.idle.ms=1000")
    quiet, partial, active = (wire.connect(broker.port) for _ in range(3))
    try:
        api_versions(quiet, 1)
        partial.sendall(struct.pack(">i", 500) + b"half")
        started = time.monotonic()
        correlation_id = 10
        while not (readable(quiet) and readable(partial)):
            assert time.monotonic() - started < 30, "idle connections still open after 30 s"
            correlation_id += 1
            api_versions(active, correlation_id)  # talks every 50 ms: never idle for 1 s
            time.sleep(0.05)
        assert time.monotonic() - started >= 0.9
        assert wire.wait_closed(quiet) == b"" and wire.wait_closed(partial) == b""
        api_versions(active, correlation_id + 1)
    finally:
        for sock in (quiet, partial, active):
            sock.close()


LOW_OPEN_FILES = 256  # a soft limit well under what the test connects


def open_files_limit(pid: int) -> tuple[int, int]:
    """(soft, hard) RLIMIT_NOFILE of a running process, from /proc/<pid>/limits."""
    with open(f"/proc/{pid}/limits") as limits:
        for line in limits:
            if line.startswith("Max open files"):
                soft, hard = line.split()[3:5]
                return int(soft), int(hard)
    raise AssertionError(f"no open files limit for pid {pid}")


@pytest.mark.skipif(shutil.which("prlimit") is None, reason="util-linux's prlimit is not installed")
def test_the_broker_lifts_its_soft_open_file_limit_to_the_hard_one(broker_factory):
    """Started with a soft RLIMIT_NOFILE of 256 (a login shell's `ulimit -n` is often 1,024), the
    broker raises it to the hard limit at start, as the JVM does for Kafka (MaxFDLimit), and then
    serves more connections than the soft limit would have let it open."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < 2 * LOW_OPEN_FILES:
        pytest.skip(f"the hard open files limit here is only {hard}")
    broker = broker_factory(start=False)
    broker.argv_prefix = ("prlimit", f"--nofile={LOW_OPEN_FILES}:{hard}", "--")  # prlimit execs the broker
    broker.start()
    assert open_files_limit(broker.process.pid) == (hard, hard)
    connections = []
    try:
        for _ in range(LOW_OPEN_FILES + 50):
            connections.append(served_connection(broker.port))
        assert all(sock is not None for sock in connections)
    finally:
        for sock in connections:
            if sock is not None:
                sock.close()


# ------------------------------------------------------------------------------ settings


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["queued.max.request.bytes=1000"], "queued.max.request.bytes: must be -1 (no limit) or larger or equal"),
        (["max.connections.per.ip=0"], "it can be set to zero only if max.connections.per.ip.overrides is set"),
        (["max.connections.per.ip.overrides=localhost"], "expected host:count entries"),
        (["listener.name.plaintext.max.connections=many"], "listener.name.plaintext.max.connections"),
        (["connections.max.idle.ms=50"], "must be less than connections.max.idle.ms (50)"),
    ],
)
def test_socket_server_settings_are_checked_as_kafka_checks_them(overrides, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        KafkaConfig.load(overrides=overrides, defaults={})


def test_per_ip_overrides_parse_hosts_and_counts():
    config = KafkaConfig.load(overrides=["max.connections.per.ip.overrides=hostName:100, 127.0.0.1:200,[::1]:7"],
                              defaults={})
    assert config.max_connections_per_ip_overrides == {"hostName": 100, "127.0.0.1": 200, "::1": 7}


# ------------------------------------------------------------------------------ connection creation rates (KIP-612)


def refused_within(port: int, source: str, attempts: int) -> int | None:
    """Opens served connections from `source` one after the other (closing each); the number of
    the first the broker closed unanswered, or None if all were served."""
    for attempt in range(1, attempts + 1):
        sock = served_connection(port, source)
        if sock is None:
            return attempt
        sock.close()
    return None


def set_ip_quota(port: int, ip: str | None, rate: float | None) -> None:
    op = {"key": "connection_creation_rate", "value": rate or 0.0, "remove": rate is None}
    body = {"entries": [{"entity": [{"entity_type": "ip", "entity_name": ip}], "ops": [op]}], "validate_only": False}
    with raw_client.RawClient(port) as client:
        answer = client.call(ApiKey.ALTER_CLIENT_QUOTAS, 1, body)
    assert answer["entries"][0]["error_code"] == 0, answer


def test_an_ip_over_its_connection_creation_rate_is_closed_and_others_are_served(broker_factory):
    """An ip entity's connection_creation_rate (set by AlterClientQuotas, this broker follows at
    once): connections from that address beyond the rate are closed without an answer, other
    addresses are served meanwhile; the default ip entity applies to every address without its
    own; removing the quota serves the address again."""
    broker = broker_factory("quota.window.num=2", "quota.window.size.seconds=1")  # a rate over about a second
    set_ip_quota(broker.port, "127.0.0.2", 5.0)

    refused_at = refused_within(broker.port, "127.0.0.2", 200)

    assert refused_at is not None and refused_at > 5, refused_at  # the first five of a second are served
    assert refused_within(broker.port, "127.0.0.1", 30) is None  # well above 5/s, from an address without a quota
    set_ip_quota(broker.port, "127.0.0.2", None)
    assert refused_within(broker.port, "127.0.0.2", 30) is None

    set_ip_quota(broker.port, "127.0.0.1", 1_000_000.0)  # this test's own address stays free
    set_ip_quota(broker.port, None, 5.0)
    assert refused_within(broker.port, "127.0.0.3", 200) is not None
    assert refused_within(broker.port, "127.0.0.1", 30) is None


@pytest.mark.parametrize("setting", ["max.connection.creation.rate=5", "listener.name.plaintext.max.connection.creation.rate=5"])
def test_connections_beyond_the_creation_rate_wait_and_are_served(broker_factory, setting):
    """max.connection.creation.rate and its listener form: connections beyond the rate are not
    refused but accepted later, the listener waiting until the rate is back at its quota; 20
    connections at 5 a second (measured over two one-second windows) take over two seconds,
    where they take a few milliseconds without the setting."""
    broker = broker_factory(setting, "quota.window.num=2", "quota.window.size.seconds=1")
    started = time.monotonic()

    assert refused_within(broker.port, "127.0.0.1", 20) is None

    assert time.monotonic() - started > 2.0


def test_connection_quotas_measure_rates_as_kafka():
    """ConnectionQuotas' arithmetic at given times: Kafka's Rate over quota.window.num windows and
    the throttle time (rate - quota) / quota x window, at most a window; a throttled ip connection
    is taken back out of every rate."""
    quotas = ConnectionQuotas(max_connections=100, max_connections_per_ip=100, max_connection_creation_rate=8,
                              quota_window_num=2, quota_window_size_s=1)
    quotas.add_listener("PLAINTEXT", type("Server", (), {"connections": set()})())
    quotas.update_ip_connection_rate("10.0.0.1", 2)

    assert [quotas.record_connection("PLAINTEXT", 0) for _ in range(8)] == [0] * 8
    assert quotas.record_connection("PLAINTEXT", 0) == 125  # 9 a second over 8: (9 - 8) / 8 x 1000 ms
    assert [quotas.record_ip_connection("PLAINTEXT", "10.0.0.1", 0) for _ in range(3)] == [0, 0, 500]
    # Taken back: 3 again, now over 1.1 s (the elapsed time plus the window not begun yet).
    assert quotas.record_ip_connection("PLAINTEXT", "10.0.0.1", 100) == 400
    assert quotas.record_ip_connection("PLAINTEXT", "10.0.0.2", 100) == 0  # no quota for that address
    assert quotas.record_connection("PLAINTEXT", 100) == 0  # the two throttled ones left the broker's rate
    quotas.update_ip_connection_rate(None, 1)  # the default ip entity
    assert quotas.connection_rate_for_ip("10.0.0.3") == 1 and quotas.connection_rate_for_ip("10.0.0.1") == 2
