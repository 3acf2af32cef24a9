#!/usr/bin/env python3
"""Benchmark of kbroker's native log: append and read throughput on real files.

Appends 1 MB batches of 1 KiB and of 100 B records through UnifiedLog.append_as_leader (full
leader validation: CRC-32C, header checks, offset assignment, one pwrite), in the variants a
broker sees: a writable request buffer patched in place, a read-only buffer the log must copy,
LogAppendTime (CRC recomputed), lz4-compressed batches, and idempotent batches. Then reads the
log back in 1 MB fetches (offset lookup + pread of the region) and prints MB/s.

Usage: .venv/bin/python scripts/bench_log.py [--total-mb 512] [--dir /tmp/...]
Only measures; touches nothing outside its temporary directory.
"""

from __future__ import annotations

import argparse
import os
import shutil
import struct
import tempfile
import time

from kbroker.log.compression import CODEC_LZ4, CODEC_NONE
from kbroker.log.config import LogConfig
from kbroker.log.records import SimpleRecord, build_batch, compute_batch_crc
from kbroker.log.unified_log import UnifiedLog

BATCH_BYTES = 1_000_000


def make_batch(record_size: int, codec: int = CODEC_NONE, producer_id: int = -1) -> bytes:
    # Semi-compressible values, as real payloads tend to be.
    value = (b"kbroker benchmark payload " * (record_size // 26 + 1))[:record_size]
    overhead = 10
    count = BATCH_BYTES // (record_size + overhead)
    records = [SimpleRecord(None, value, (), 1_700_000_000_000 + i) for i in range(count)]
    return build_batch(
        records,
        compression=codec,
        producer_id=producer_id,
        producer_epoch=0 if producer_id >= 0 else -1,
        base_sequence=0 if producer_id >= 0 else -1,
    )


def bench_append(
    directory: str,
    batch: bytes,
    total_bytes: int,
    *,
    config: LogConfig,
    in_place: bool = False,
    idempotent: bool = False,
    fresh_copy: bool = False,
) -> tuple[float, UnifiedLog]:
    log = UnifiedLog(os.path.join(directory, "bench-0"), config, had_clean_shutdown=True)
    record_count = struct.unpack_from(">i", batch, 57)[0]
    writable = bytearray(batch)
    appends = max(1, total_bytes // len(batch))
    sequence = 0
    start = time.perf_counter()
    for _ in range(appends):
        if idempotent:
            struct.pack_into(">i", writable, 53, sequence)  # new sequence: the CRC must be redone
            struct.pack_into(">I", writable, 17, compute_batch_crc(writable, 0, len(writable)))
            sequence += record_count
        if fresh_copy:
            log.append_as_leader(bytearray(batch), leader_epoch=0)
        elif in_place:
            writable[0:8] = b"\x00" * 8  # a fresh request buffer has baseOffset 0
            log.append_as_leader(writable, leader_epoch=0)
        else:
            log.append_as_leader(batch, leader_epoch=0)
    elapsed = time.perf_counter() - start
    return appends * len(batch) / elapsed / 1e6, log


def bench_read(log: UnifiedLog, fetch_bytes: int = BATCH_BYTES) -> tuple[float, float]:
    """(MB/s reading regions with pread, microseconds per read() lookup)."""
    log.update_high_watermark(log.log_end_offset)
    offset = log.log_start_offset
    total = 0
    lookups = 0.0
    start = time.perf_counter()
    while offset < log.high_watermark:
        t = time.perf_counter()
        info = log.read(offset, fetch_bytes, max_offset=log.high_watermark)
        lookups += time.perf_counter() - t
        if info.records is None:
            break
        data = info.read_bytes()
        total += len(data)
        # Next offset: the batch after the last complete one (each batch here is whole).
        last_base = struct.unpack_from(">q", data, 0)[0]
        last_delta = struct.unpack_from(">i", data, 23)[0]
        offset = last_base + last_delta + 1
    elapsed = time.perf_counter() - start
    reads = max(1, total // fetch_bytes)
    return total / elapsed / 1e6, lookups / reads * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--total-mb", type=int, default=512, help="bytes appended per scenario")
    parser.add_argument("--dir", default=None, help="where to write (default: a temporary dir)")
    args = parser.parse_args()
    total = args.total_mb * 1_000_000
    base = tempfile.mkdtemp(prefix="kbroker-bench-", dir=args.dir)
    config = LogConfig(segment_bytes=256 * 1024 * 1024, max_message_bytes=2_000_000)
    scenarios = [
        ("1 KiB records, in place", make_batch(1024), {"in_place": True}),
        ("1 KiB records, read-only (copied)", make_batch(1024), {"in_place": False}),
        ("100 B records, in place", make_batch(100), {"in_place": True}),
        ("100 B records, read-only (copied)", make_batch(100), {"in_place": False}),
        (
            "1 KiB records, LogAppendTime (copied)",
            make_batch(1024),
            {"fresh_copy": True, "log_append_time": True},
        ),
        ("1 KiB records, lz4 batch", make_batch(1024, CODEC_LZ4), {"in_place": True}),
        (
            "1 KiB records, idempotent",
            make_batch(1024, producer_id=7),
            {"in_place": True, "idempotent": True},
        ),
    ]
    print(f"append: {args.total_mb} MB per scenario in ~1 MB batches, {base}")
    try:
        # Warm-up: the first writes of a fresh process pay for page cache allocation.
        warm_rate, warm_log = bench_append(
            os.path.join(base, "warm"), scenarios[0][1], total, in_place=True, config=config
        )
        warm_log.close(sync=False)
        shutil.rmtree(os.path.join(base, "warm"), ignore_errors=True)
        for n, (name, batch, options) in enumerate(scenarios):
            directory = os.path.join(base, str(n))
            scenario_config = config
            if options.pop("log_append_time", False):
                scenario_config = config._replace(message_timestamp_type="LogAppendTime")
            rate, log = bench_append(directory, batch, total, config=scenario_config, **options)
            print(f"  {name:38s} {rate:8.0f} MB/s  ({len(batch)} byte batches)")
            if n in (0, 2):
                read_rate, lookup_us = bench_read(log)
                print(
                    f"  {'  read back, 1 MB fetches':38s} {read_rate:8.0f} MB/s  ({lookup_us:.0f} us per read() lookup)"
                )
            log.close(sync=False)
            shutil.rmtree(directory, ignore_errors=True)
            # Let writeback finish so the next scenario is not throttled by this one's dirty pages.
            os.sync()
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
