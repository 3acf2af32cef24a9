"""AppendOffloader: the CPU-heavy, stateless part of leader appends in worker threads
(`kbroker.append.offload.threads`, off by default; docs/MULTICORE.md has the measurements).

A produce hands each partition's records that are at least `kbroker.append.offload.min.bytes`,
or that its topic's compression.type rewrites (from REWRITE_MIN_RECORDS records), to `validator.prepare_leader_append` in a
thread pool: the CRC-32C of the batches and a rewrite's decompress/rebuild/recompress, which
read only the request's own bytes. The append itself (offsets, producer state, the write) then
runs on the event loop as before, with what the worker found; so a partition's state still
changes in one place, and a connection's requests are still appended in order (the network
layer hands the processor one request of a connection at a time, and the response waits for
the worker).

Only C code that releases the GIL runs in parallel with the loop (crc32c from 32 KiB, zlib,
zstandard, lz4, cramjam); the Python that walks a rewrite's records, or rebuilds them one by
one, does not.
"""

from __future__ import annotations

import asyncio
import struct
from concurrent.futures import ThreadPoolExecutor

from kbroker.log.config import LogConfig
from kbroker.log.records import (
    ATTRIBUTES_OFFSET,
    COMPRESSION_CODEC_MASK,
    RECORD_BATCH_OVERHEAD,
    RECORDS_COUNT_OFFSET,
    Buffer,
)
from kbroker.log.validator import PreparedRecords, prepare_leader_append

# A hop to the pool and back costs the loop 15-30 us of CPU (docs/MULTICORE.md); a rewrite
# costs about 2 us a record: below this many records it is cheaper on the loop.
REWRITE_MIN_RECORDS = 100
_RECORD_COUNT = struct.Struct(">i")


class AppendOffloader:
    """The pool and the rule of what goes to it; built by the wiring when threads > 0."""

    def __init__(self, threads: int, min_bytes: int) -> None:
        self.min_bytes = min_bytes
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="kbroker-append")

    def wants(self, records: Buffer, config: LogConfig) -> bool:
        """Large records, or a compression.type rewrite of REWRITE_MIN_RECORDS or more (its cost
        follows the records inside, which a small compressed batch may hold many of). The first
        batch's header decides (its codec and record count): no parse."""
        if len(records) >= self.min_bytes:
            return True
        target = config.target_codec
        return (target is not None and len(records) >= RECORD_BATCH_OVERHEAD
                and records[ATTRIBUTES_OFFSET + 1] & COMPRESSION_CODEC_MASK != target
                and _RECORD_COUNT.unpack_from(records, RECORDS_COUNT_OFFSET)[0] >= REWRITE_MIN_RECORDS)

    async def prepare(self, records: Buffer, config: LogConfig, now_ms: int, topic: str,
                      partition: int) -> PreparedRecords:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor, prepare_leader_append, records, config, now_ms, topic, partition)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
