"""NetworkClient: one broker's connection to another, for inter-broker requests.

The controller's channel to brokers, the replica fetchers and the broker-to-controller channel
(AlterPartition, AllocateProducerIds, ControlledShutdown) all send requests through it. It
connects lazily, pipelines requests and matches responses by correlation id, decodes them with
the codec, and turns any connection failure (a failed TLS handshake included) into a `ConnectionError` for every request in
flight so callers retry or fail over. It knows framing and the codec, not what requests mean.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import struct
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from kbroker.protocol.headers import decode_response_header, encode_request_header
from kbroker.protocol.messages import request_codec, response_codec

if TYPE_CHECKING:
    import ssl

log = logging.getLogger("kbroker.network.client")

_SIZE = struct.Struct(">i")


class NetworkClient:
    def __init__(self, host: str, port: int, client_id: str, *, connect_timeout_s: float = 5.0,
                 request_timeout_s: float = 30.0, max_response_bytes: int = 200 * 1024 * 1024,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        """`ssl_context`: connect over TLS (the peer's listener is SSL or SASL_SSL), with the host
        name checked when the context says so (ssl.endpoint.identification.algorithm)."""
        self.host = host
        self.port = port
        self.client_id = client_id
        self.connect_timeout_s = connect_timeout_s
        self.request_timeout_s = request_timeout_s
        self.max_response_bytes = max_response_bytes
        self.ssl_context = ssl_context
        self._writer: asyncio.StreamWriter | None = None
        self._pending: dict[int, tuple[asyncio.Future, int, int]] = {}
        self._correlation = itertools.count(1)
        self._connecting: asyncio.Lock | None = None
        self._read_task: asyncio.Task | None = None
        self.closed = False

    def __repr__(self) -> str:
        return f"NetworkClient({self.host}:{self.port})"

    async def _ensure_connected(self) -> asyncio.StreamWriter:
        """The open connection's writer, connecting first when there is none."""
        writer = self._writer
        if writer is not None and not writer.is_closing():
            return writer
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            writer = self._writer
            if writer is not None and not writer.is_closing():
                return writer
            # The handshake counts towards the connect timeout: a peer that never answers it fails the same way.
            reader, connected = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port, ssl=self.ssl_context), self.connect_timeout_s)
            self._writer = connected
            self._read_task = asyncio.get_running_loop().create_task(self._read_responses(reader))
            return connected

    async def send(self, api_key: int, version: int, request: Mapping[str, Any], timeout_s: float | None = None) -> Any:
        """Sends one request and returns its decoded response (ConnectionError on failure)."""
        if self.closed:
            raise ConnectionError(f"{self} is closed")
        try:
            writer = await self._ensure_connected()
        except (OSError, TimeoutError) as exc:
            raise ConnectionError(f"cannot connect to {self.host}:{self.port}: {exc}") from None
        correlation_id = next(self._correlation)
        header = encode_request_header(api_key, version, correlation_id, self.client_id)
        chunks: list = [b"", header]
        body_len = request_codec(api_key, version).encode_chunks(request, chunks)
        chunks[0] = _SIZE.pack(len(header) + body_len)
        future = asyncio.get_running_loop().create_future()
        self._pending[correlation_id] = (future, api_key, version)
        writer.writelines(chunks)
        try:
            return await asyncio.wait_for(future, timeout_s or self.request_timeout_s)
        except TimeoutError:
            self._pending.pop(correlation_id, None)
            self._disconnect(ConnectionError(f"request to {self.host}:{self.port} timed out"))
            raise ConnectionError(f"request {api_key} v{version} to {self.host}:{self.port} timed out") from None

    async def _read_responses(self, reader: asyncio.StreamReader) -> None:
        error: Exception = ConnectionError(f"connection to {self.host}:{self.port} closed")
        try:
            while True:
                size = _SIZE.unpack(await reader.readexactly(4))[0]
                if not 0 <= size <= self.max_response_bytes:
                    raise ConnectionError(f"bad response size {size} from {self.host}:{self.port}")
                frame = memoryview(bytearray(await reader.readexactly(size)))
                correlation_id = _SIZE.unpack_from(frame, 0)[0]
                entry = self._pending.pop(correlation_id, None)
                if entry is None:
                    continue  # its caller gave up (timeout)
                future, api_key, version = entry
                _, offset = decode_response_header(frame, api_key, version)
                response, _ = response_codec(api_key, version).decode(frame, offset)
                if not future.done():
                    future.set_result(response)
        except (asyncio.IncompleteReadError, OSError, ConnectionError) as exc:
            error = ConnectionError(f"connection to {self.host}:{self.port} lost: {exc}")
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # an undecodable response: drop the connection, callers retry
            log.warning("dropping connection to %s:%d: %s", self.host, self.port, exc)
            error = ConnectionError(str(exc))
        self._disconnect(error)

    def _disconnect(self, error: Exception) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()
        pending, self._pending = self._pending, {}
        for future, _, _ in pending.values():
            if not future.done():
                future.set_exception(error)

    async def close(self) -> None:
        self.closed = True
        self._disconnect(ConnectionError(f"{self} closed"))
        if self._read_task is not None:
            self._read_task.cancel()
