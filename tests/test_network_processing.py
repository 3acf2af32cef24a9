"""How a connection hands its frames to the request processor (kbroker/network/socket_server.py):
on a plaintext connection processing begins in the callback of the read that completed the
frames, and a task takes over only when a request has to wait. These drive a SocketServer in
this process over real sockets on 127.0.0.1, on both event loops the broker runs on.
"""

from __future__ import annotations

import asyncio
import struct

import pytest

from kbroker.network.socket_server import KafkaConnection, SocketServer
from kbroker.testing.waiting import eventually_async

LOOPS = ["asyncio", "uvloop"]

# What the test processor does with a frame, by its first byte.
ANSWER, SLEEP, BARE_YIELD, NO_ANSWER, FAIL = range(5)


def _run(loop: str, scenario):  # noqa: ANN001, ANN202 - a coroutine in, its result out
    run = asyncio.run if loop == "asyncio" else pytest.importorskip("uvloop").run
    return run(scenario)


def _frame(kind: int, number: int) -> bytes:
    return struct.pack(">ibi", 5, kind, number)


@pytest.mark.parametrize("loop", LOOPS)
def test_requests_that_wait_and_requests_answered_at_once_keep_their_order(loop):
    """Pipelined requests, some answered without waiting, some waiting on a timer or a bare yield,
    some without a response (as acks=0): the answers come in request order, each request is
    processed only after the one before it finished, and reading goes on between them."""
    kinds = [ANSWER, SLEEP, ANSWER, NO_ANSWER, BARE_YIELD, ANSWER, SLEEP, SLEEP, NO_ANSWER, ANSWER] * 5

    async def scenario() -> tuple[list[int], list[int], list[str]]:
        started: list[int] = []
        events: list[str] = []

        async def processor(_conn: KafkaConnection, frame: memoryview) -> list | None:
            kind, number = struct.unpack_from(">bi", frame)
            events.append(f"start {number}")
            started.append(number)
            if kind == SLEEP:
                await asyncio.sleep(0.005)
            elif kind == BARE_YIELD:
                await asyncio.sleep(0)
            events.append(f"end {number}")
            return None if kind == NO_ANSWER else [struct.pack(">ii", 4, number)]

        server = SocketServer("127.0.0.1", 0, processor)
        await server.start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"".join(_frame(kind, n) for n, kind in enumerate(kinds[:25])))
            await writer.drain()
            await asyncio.sleep(0.01)  # a second burst while the first may still be in progress
            writer.write(b"".join(_frame(kind, n) for n, kind in enumerate(kinds) if n >= 25))
            await writer.drain()
            answered = [struct.unpack(">i", (await reader.readexactly(8))[4:])[0]
                        for kind in kinds if kind != NO_ANSWER]
            writer.close()
        finally:
            await server.shutdown(1.0)
        return started, answered, events

    started, answered, events = _run(loop, scenario())
    assert started == list(range(len(kinds)))
    assert answered == [n for n, kind in enumerate(kinds) if kind != NO_ANSWER]
    assert events == [f"{step} {n}" for n in range(len(kinds)) for step in ("start", "end")]


@pytest.mark.parametrize("loop", LOOPS)
def test_a_request_waiting_when_its_connection_closes_is_cancelled_and_others_are_served(loop):
    """A request that waits (here forever) holds only its own connection; when the client goes
    away, the wait is cancelled (the processor sees CancelledError), as a task's would be. A
    failing request closes only its connection."""

    async def scenario() -> tuple[list[str], bytes, bytes]:
        seen: list[str] = []

        async def processor(_conn: KafkaConnection, frame: memoryview) -> list | None:
            kind, number = struct.unpack_from(">bi", frame)
            if kind == SLEEP:
                try:
                    await asyncio.get_running_loop().create_future()
                except asyncio.CancelledError:
                    seen.append(f"cancelled {number}")
                    raise
            if kind == FAIL:
                raise RuntimeError("a bug in a handler")
            return [struct.pack(">ii", 4, number)]

        server = SocketServer("127.0.0.1", 0, processor)
        await server.start()
        try:
            waiting_reader, waiting = await asyncio.open_connection("127.0.0.1", server.port)
            waiting.write(_frame(ANSWER, 1) + _frame(SLEEP, 2) + _frame(ANSWER, 3))
            first = await waiting_reader.readexactly(8)
            other_reader, other = await asyncio.open_connection("127.0.0.1", server.port)
            other.write(_frame(ANSWER, 7))
            served = await other_reader.readexactly(8)
            waiting.close()

            await eventually_async(lambda: seen, what="the waiting request cancelled", timeout=5)
            other.write(_frame(FAIL, 8) + _frame(ANSWER, 9))
            closed = await other_reader.read()  # the connection closes without answering
            other.close()
            assert served == struct.pack(">ii", 4, 7) and closed == b""
        finally:
            await server.shutdown(1.0)
        return seen, first, served

    seen, first, _ = _run(loop, scenario())
    assert seen == ["cancelled 2"]
    assert first == struct.pack(">ii", 4, 1)


def test_processing_begins_in_the_read_callback_only_on_plaintext_connections():
    """A plaintext connection processes a frame without a task while nothing makes it wait; what
    follows a wait runs in a task."""

    async def scenario() -> list[bool]:
        in_task: list[bool] = []

        async def processor(_conn: KafkaConnection, frame: memoryview) -> list:
            kind, number = struct.unpack_from(">bi", frame)
            in_task.append(asyncio.current_task() is not None)
            if kind == SLEEP:
                await asyncio.sleep(0.001)
                in_task.append(asyncio.current_task() is not None)
            return [struct.pack(">ii", 4, number)]

        server = SocketServer("127.0.0.1", 0, processor)
        await server.start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            for n, kind in enumerate([ANSWER, SLEEP, ANSWER]):
                writer.write(_frame(kind, n))
                assert struct.unpack(">ii", await reader.readexactly(8))[1] == n
            writer.close()
            await eventually_async(lambda: not server.connections, what="the connection closed", timeout=5)
        finally:
            await server.shutdown(1.0)
        return in_task

    assert _run("uvloop", scenario()) == [False, False, True, False]


class _CountingTransport:
    """The connection's transport, with its writelines calls counted (everything else passed on)."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self.sends: list[int] = []  # chunks per send
        self.sizes: list[int] = []  # bytes per send

    def writelines(self, chunks: list) -> None:
        self.sends.append(len(chunks))
        self.sizes.append(sum(len(chunk) for chunk in chunks))
        self._transport.writelines(chunks)

    def __getattr__(self, name: str):  # noqa: ANN204 - a proxy
        return getattr(self._transport, name)


@pytest.mark.parametrize("loop", LOOPS)
def test_the_answers_to_the_frames_of_one_read_go_out_in_one_send_and_before_a_close(loop):
    """Frames that arrived in one read are answered with one send once they are all processed
    (in order, each answer whole); a request that waits sends what was answered before it first,
    and so does a request that closes the connection."""
    from kbroker.network.socket_server import CloseConnection

    async def scenario() -> tuple[list[int], list[int], bytes, list[int]]:
        async def processor(_conn: KafkaConnection, frame: memoryview) -> list | None:
            kind, number = struct.unpack_from(">bi", frame)
            if kind == SLEEP:
                await asyncio.sleep(0.005)
            if kind == FAIL:
                raise CloseConnection([struct.pack(">ii", 4, -number)])
            return None if kind == NO_ANSWER else [struct.pack(">ii", 4, number)]

        server = SocketServer("127.0.0.1", 0, processor)
        await server.start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(_frame(ANSWER, 0))
            assert await reader.readexactly(8) == struct.pack(">ii", 4, 0)
            (conn,) = server.connections
            counting = conn.transport = _CountingTransport(conn.transport)  # type: ignore[assignment]
            burst = [ANSWER, ANSWER, NO_ANSWER, ANSWER, SLEEP, ANSWER, ANSWER]
            writer.write(b"".join(_frame(kind, n) for n, kind in enumerate(burst, 1)))
            answered = [struct.unpack(">ii", await reader.readexactly(8))[1] for kind in burst if kind != NO_ANSWER]
            sends_of_burst = list(counting.sends)
            writer.write(_frame(ANSWER, 10) + _frame(ANSWER, 11) + _frame(FAIL, 12) + _frame(ANSWER, 13))
            rest = await reader.read()  # up to the close
            writer.close()
        finally:
            await server.shutdown(1.0)
        return answered, sends_of_burst, rest, counting.sends

    answered, sends_of_burst, rest, _ = _run(loop, scenario())
    assert answered == [1, 2, 4, 5, 6, 7]
    # 1, 2 and 4 in one send before request 5 waits; 5, 6 and 7 after it (in its task, one each).
    assert sends_of_burst[0] == 3 and sum(sends_of_burst) == 6
    assert rest == struct.pack(">ii", 4, 10) + struct.pack(">ii", 4, 11) + struct.pack(">ii", 4, -12)


def test_answers_held_back_are_bounded():
    """Large answers are not gathered without bound: a send carries at most HELD_MAX_BYTES held
    back plus one answer, so a burst of requests with large answers still meets the transport's
    flow control."""
    from kbroker.network.socket_server import HELD_MAX_BYTES

    answer = 40 * 1024

    async def scenario() -> list[int]:
        async def processor(_conn: KafkaConnection, frame: memoryview) -> list:
            _kind, number = struct.unpack_from(">bi", frame)
            return [struct.pack(">ii", answer + 4, number), bytes(answer)]

        server = SocketServer("127.0.0.1", 0, processor)
        await server.start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(_frame(ANSWER, 0))
            await reader.readexactly(answer + 8)
            (conn,) = server.connections
            counting = conn.transport = _CountingTransport(conn.transport)  # type: ignore[assignment]
            writer.write(b"".join(_frame(ANSWER, n) for n in range(1, 7)))
            for n in range(1, 7):
                head = await reader.readexactly(8)
                assert struct.unpack(">ii", head) == (answer + 4, n)
                await reader.readexactly(answer)
            writer.close()
        finally:
            await server.shutdown(1.0)
        return counting.sizes

    sizes = _run("uvloop", scenario())
    assert sum(sizes) == 6 * (answer + 8)
    assert len(sizes) >= 3 and max(sizes) <= HELD_MAX_BYTES + answer + 8
