"""AppendOffloader: the CPU-heavy, stateless part of leader appends in worker threads
(`kbroker.append.offload.threads`, off by default; docs/MULTICORE.md has the measurements).

A produce hands each partition's records that are at least `kbroker.append.offload.min.bytes`,
or that its topic's compression.type rewrites, to `validator.prepare_leader_append` in a
thread pool: the CRC-32C of the batches and a rewrite's decompress/rebuild/recompress, which
read only the request's own bytes. The append itself (offsets, producer state, the write) then
runs on the event loop as before, with what the worker found; so a partition's state still
changes in one place, and a connection's requests are still appended in order (the network
layer hands the processor one request of a connection at a time, and the response waits for
the worker).

Only C code that releases the GIL runs in parallel with the loop (crc32c from 32 KiB, zlib,
zstandard, lz4, cramjam); the rebuild's per-record Python does not.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from kbroker.log.config import LogConfig
from kbroker.log.records import ATTRIBUTES_OFFSET, COMPRESSION_CODEC_MASK, Buffer
from kbroker.log.validator import PreparedRecords, prepare_leader_append


class AppendOffloader:
    def __init__(self, threads: int, min_bytes: int) -> None:
        self.min_bytes = min_bytes
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="kbroker-append")

    def wants(self, records: Buffer, config: LogConfig) -> bool:
        """Large records, or a compression.type rewrite (its cost follows the records inside,
        which a small compressed batch may hold many of). The first batch's codec decides, read
        from its attributes' low byte: no parse."""
        if len(records) >= self.min_bytes:
            return True
        target = config.target_codec
        return (target is not None and len(records) > ATTRIBUTES_OFFSET + 1
                and records[ATTRIBUTES_OFFSET + 1] & COMPRESSION_CODEC_MASK != target)

    async def prepare(self, records: Buffer, config: LogConfig, now_ms: int, topic: str,
                      partition: int) -> PreparedRecords:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor, prepare_leader_append, records, config, now_ms, topic, partition)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
