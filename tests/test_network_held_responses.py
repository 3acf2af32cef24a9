"""SocketServer's held responses (kbroker/network/socket_server.py, MAX_HELD_CHUNKS): while more
pipelined requests of a connection wait, a response of bytes goes out with the next one instead of
a send each. Driven in this process over a real socket on 127.0.0.1, on both event loops the broker
runs on: answers stay in order, a request that waits holds none of the answers before it back,
and a request that closes the connection still gets the answers before its own out first."""

from __future__ import annotations

import asyncio
import struct

import pytest

from kbroker.network.socket_server import MAX_HELD_CHUNKS, CloseConnection, KafkaConnection, SocketServer

ANSWER_TIMEOUT_S = 10.0  # a held answer would wait for the parked request, which never ends by itself


def frame(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


def run(loop: str, scenario) -> None:
    (asyncio.run if loop == "asyncio" else pytest.importorskip("uvloop").run)(scenario())


async def serving(processor):
    server = SocketServer("127.0.0.1", 0, processor)
    await server.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    return server, reader, writer


async def answer(reader: asyncio.StreamReader) -> int:
    return struct.unpack(">i", await asyncio.wait_for(reader.readexactly(4), ANSWER_TIMEOUT_S))[0]


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_pipelined_answers_come_in_order_whatever_is_held(loop):
    """More pipelined requests than one write may hold: every answer, in order."""
    count = 3 * MAX_HELD_CHUNKS + 7

    async def scenario() -> None:
        async def processor(_conn: KafkaConnection, request: memoryview) -> list:
            return [bytes(request[:4])]

        server, reader, writer = await serving(processor)
        try:
            writer.write(b"".join(frame(struct.pack(">i", i)) for i in range(count)))
            assert [await answer(reader) for _ in range(count)] == list(range(count))
            writer.close()
        finally:
            await server.shutdown(1.0)

    run(loop, scenario)


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_waiting_request_holds_back_none_of_the_answers_before_it(loop):
    """Requests 0 and 1 are answered at once, 2 waits until the client has read both answers (as a
    Fetch parked in the purgatory waits for data): held until 2 is answered, they would never come."""

    async def scenario() -> None:
        both_read = asyncio.Event()

        async def processor(_conn: KafkaConnection, request: memoryview) -> list:
            number = struct.unpack(">i", request)[0]
            if number == 2:
                await both_read.wait()
            return [struct.pack(">i", number)]

        server, reader, writer = await serving(processor)
        try:
            writer.write(b"".join(frame(struct.pack(">i", i)) for i in range(4)))
            assert [await answer(reader), await answer(reader)] == [0, 1]
            both_read.set()
            assert [await answer(reader), await answer(reader)] == [2, 3]
            writer.close()
        finally:
            await server.shutdown(1.0)

    run(loop, scenario)


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_request_that_closes_the_connection_comes_after_the_held_answers(loop):
    """Requests 0 and 1 are answered; 2 closes the connection with a last answer (acks=0's failed
    produce closes without one, a failed SASL authentication with one): 0, 1, 2, then end of stream."""

    async def scenario() -> None:
        async def processor(_conn: KafkaConnection, request: memoryview) -> list:
            number = struct.unpack(">i", request)[0]
            if number == 2:
                raise CloseConnection([struct.pack(">i", number)])
            return [struct.pack(">i", number)]

        server, reader, writer = await serving(processor)
        try:
            writer.write(b"".join(frame(struct.pack(">i", i)) for i in range(4)))
            assert [await answer(reader) for _ in range(3)] == [0, 1, 2]
            assert await asyncio.wait_for(reader.read(), ANSWER_TIMEOUT_S) == b""
            writer.close()
        finally:
            await server.shutdown(1.0)

    run(loop, scenario)
