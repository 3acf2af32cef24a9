"""NetworkClient's ResponseReader over real sockets on 127.0.0.1: response frames sent in random
pieces (a size split inside its 4 bytes, frames far larger than a read, many small ones in one
read) reach `on_frame` whole, byte for byte and in order, on both event loops; a size beyond the
limit ends the connection with one `on_lost`; a request unanswered within its timeout fails,
and with it the connection and every request in flight on it."""

from __future__ import annotations

import asyncio
import random
import struct

import pytest

from kbroker.network.network_client import SCRATCH_BYTES, NetworkClient, ResponseReader
from kbroker.protocol.api_keys import ApiKey


async def serve_stream(chunks: list[bytes]) -> tuple[asyncio.Server, int]:
    """A server writing `chunks` to whoever connects, each on its own loop turn."""
    async def write(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for chunk in chunks:
            writer.write(chunk)
            await writer.drain()
            await asyncio.sleep(0)
        await writer.drain()

    server = await asyncio.start_server(write, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def pieces(stream: bytes, rng: random.Random) -> list[bytes]:
    out, pos = [], 0
    while pos < len(stream):
        step = rng.choice([1, 2, 3, 5, 100, 4096, SCRATCH_BYTES + 7, 300_000, 2_000_000])
        out.append(stream[pos : pos + step])
        pos += step
    return out


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_frames_cut_anywhere_arrive_whole_and_in_order(loop):
    rng = random.Random(15)
    payloads = [rng.randbytes(rng.choice([4, 9, 5000, SCRATCH_BYTES - 3, SCRATCH_BYTES + 3, 1_100_000, 5_000_000]))
                for _ in range(40)]
    stream = b"".join(struct.pack(">i", len(p)) + p for p in payloads)

    async def scenario() -> list[bytes]:
        seen: list[bytes] = []
        done = asyncio.get_running_loop().create_future()

        def on_frame(frame: memoryview) -> None:
            frame[0] ^= 0  # writable, as the follower's append may need
            seen.append(bytes(frame))
            if len(seen) == len(payloads):
                done.set_result(None)

        server, port = await serve_stream(pieces(stream, rng))
        async with server:
            transport, _ = await asyncio.get_running_loop().create_connection(
                lambda: ResponseReader(10_000_000, on_frame, done.set_exception), "127.0.0.1", port)
            await asyncio.wait_for(done, 30)
            transport.close()
        return seen

    run = asyncio.run if loop == "asyncio" else pytest.importorskip("uvloop").run
    assert run(scenario()) == payloads


def test_a_size_beyond_the_limit_ends_the_connection_once():
    async def scenario() -> list[Exception]:
        lost: list[Exception] = []
        frames: list[bytes] = []
        server, port = await serve_stream([struct.pack(">i", 3) + b"abc" + struct.pack(">i", 1_000_001) + b"x" * 100])
        async with server:
            transport, _ = await asyncio.get_running_loop().create_connection(
                lambda: ResponseReader(1_000_000, lambda frame: frames.append(bytes(frame)), lost.append),
                "127.0.0.1", port)
            for _ in range(200):
                if lost and transport.is_closing():
                    break
                await asyncio.sleep(0.01)
        assert frames == [b"abc"]
        return lost

    lost = asyncio.run(scenario())
    assert len(lost) == 1 and "bad response size 1000001" in str(lost[0])


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_request_unanswered_within_its_timeout_fails_the_connection(loop):
    async def scenario() -> None:
        connections: list[asyncio.StreamWriter] = []

        async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            connections.append(writer)
            await reader.read()  # until the client closes

        server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
        client = NetworkClient("127.0.0.1", server.sockets[0].getsockname()[1], "test", request_timeout_s=30)
        try:
            long_wait = asyncio.ensure_future(client.send(ApiKey.API_VERSIONS, 0, {}))
            await asyncio.sleep(0.05)
            started = asyncio.get_running_loop().time()
            with pytest.raises(ConnectionError, match="request 18 v0 .* timed out"):
                await client.send(ApiKey.API_VERSIONS, 0, {}, timeout_s=0.2)
            assert 0.15 < asyncio.get_running_loop().time() - started < 5
            with pytest.raises(ConnectionError, match="timed out"):  # the other request in flight too
                await asyncio.wait_for(long_wait, 5)
            with pytest.raises(ConnectionError, match="timed out"):  # a new connection for the next
                await client.send(ApiKey.API_VERSIONS, 0, {}, timeout_s=0.1)
            assert len(connections) == 2
        finally:
            await client.close()
            server.close()

    run = asyncio.run if loop == "asyncio" else pytest.importorskip("uvloop").run
    run(scenario())
