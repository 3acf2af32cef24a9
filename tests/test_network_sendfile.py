"""Responses carrying file regions (a fetch's records) over real sockets on 127.0.0.1: large
regions go with sendfile on plaintext connections, the rest through the transport, and the peer
gets every response byte for byte and in order, also when the socket takes only part of a region
at once (a reader that is slow to start). A region whose file ended early closes the connection
instead of sending a response shorter than its size."""

from __future__ import annotations

import asyncio
import os
import random
import struct

import pytest

from kbroker.log.segment import FileRegion
from kbroker.network import socket_server
from kbroker.network.socket_server import SENDFILE_MIN_BYTES, KafkaConnection, SocketServer

MIB = 1024 * 1024


def response_chunks(file, request_number: int) -> tuple[list, bytes]:
    """A response's chunks (its size first, bytes and regions of `file` mixed) and the bytes they make."""
    rng = random.Random(request_number)
    regions = [FileRegion(file, rng.randrange(0, 4096), rng.choice([10, 5000, SENDFILE_MIN_BYTES, MIB, 6 * MIB]))
               for _ in range(3)]
    parts: list = []
    for region in regions:
        parts += [struct.pack(">i", request_number), region]
    body = b"".join(part if isinstance(part, bytes) else os.pread(file.fileno(), part.length, part.position)
                    for part in parts)
    return [struct.pack(">i", len(body)), *parts], body


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_responses_with_large_regions_arrive_whole_and_in_order(loop, tmp_path, monkeypatch):
    path = tmp_path / "00000000000000000000.log"
    path.write_bytes(random.Random(15).randbytes(7 * MIB))
    sendfile_calls = []
    real_sendfile = os.sendfile

    def counting_sendfile(*args):
        sendfile_calls.append(args[3])
        return real_sendfile(*args)

    monkeypatch.setattr(socket_server.os, "sendfile", counting_sendfile)

    async def scenario() -> None:
        with open(path, "rb", buffering=0) as file:
            expected = []

            async def processor(_conn: KafkaConnection, frame: memoryview) -> list:
                chunks, body = response_chunks(file, struct.unpack(">i", frame)[0])
                expected.append(body)
                return chunks

            server = SocketServer("127.0.0.1", 0, processor)
            await server.start()
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
                for number in range(12):
                    writer.write(struct.pack(">ii", 4, number))
                await asyncio.sleep(0.2)  # not reading yet: the socket fills, a region goes only in part
                for number in range(12):
                    size = struct.unpack(">i", await reader.readexactly(4))[0]
                    assert await reader.readexactly(size) == expected[number], f"response {number}"
                writer.close()
            finally:
                await server.shutdown(1.0)

    run = asyncio.run if loop == "asyncio" else pytest.importorskip("uvloop").run
    run(scenario())
    assert max(sendfile_calls) >= MIB  # the large regions went with sendfile (the asked counts)


def test_a_region_past_the_end_of_its_file_closes_the_connection(tmp_path):
    path = tmp_path / "00000000000000000000.log"
    path.write_bytes(b"x" * MIB)

    async def scenario() -> bytes:
        with open(path, "rb", buffering=0) as file:
            async def processor(_conn: KafkaConnection, _frame: memoryview) -> list:
                return [struct.pack(">i", 2 * MIB), FileRegion(file, 0, 2 * MIB)]  # truncated under it

            server = SocketServer("127.0.0.1", 0, processor)
            await server.start()
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
                writer.write(struct.pack(">ii", 4, 0))
                received = await asyncio.wait_for(reader.read(), 10)  # until the server closes
                writer.close()
                return received
            finally:
                await server.shutdown(1.0)

    received = asyncio.run(scenario())
    assert len(received) < 4 + 2 * MIB  # never a whole response of the size it announced


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_region_carrying_its_bytes_is_written_from_them(loop, tmp_path, monkeypatch):
    """A region whose bytes the log still holds (`data`: its latest large append) is written from
    memory: no sendfile, no pread. The file here differs from `data` on purpose, to tell them apart."""
    path = tmp_path / "00000000000000000000.log"
    path.write_bytes(b"f" * 2 * MIB)
    in_memory = random.Random(7).randbytes(MIB + 3)
    sendfile_calls = []
    monkeypatch.setattr(socket_server.os, "sendfile", lambda *args: sendfile_calls.append(args) or 0)

    async def scenario() -> bytes:
        with open(path, "rb", buffering=0) as file:
            async def processor(_conn: KafkaConnection, _frame: memoryview) -> list:
                region = FileRegion(file, 5, len(in_memory), memoryview(in_memory))
                return [struct.pack(">i", 2 + len(in_memory)), b"ab", region]

            server = SocketServer("127.0.0.1", 0, processor)
            await server.start()
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
                writer.write(struct.pack(">ii", 4, 0))
                size = struct.unpack(">i", await reader.readexactly(4))[0]
                body = await reader.readexactly(size)
                writer.close()
                return body
            finally:
                await server.shutdown(1.0)

    run = asyncio.run if loop == "asyncio" else pytest.importorskip("uvloop").run
    assert run(scenario()) == b"ab" + in_memory
    assert sendfile_calls == []
