"""Fuzz targets `batches` and `recovery`: the log's two parsers of untrusted bytes.

`batches`: the input is what a producer (or a leader, for a follower) sends as one partition's
records; it goes through UnifiedLog.append_as_leader (validation, offset assignment, producer
state, the segment write) or, when the first byte is odd, append_as_follower. LogError, with
Kafka's error code, is the only allowed refusal. After every accepted append the whole log must
read back as intact batches.

`recovery`: the input is the content of a segment file left by a crash; opening the log runs
recovery, which must truncate at the first bad batch and never fail. The log it leaves must read
back as intact batches, and a new append must land at its log end offset.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

from kbroker.log.append_origin import AppendOrigin
from kbroker.log.config import LogConfig
from kbroker.log.errors import LogError
from kbroker.log.records import SimpleRecord, build_batch, compute_batch_crc, iter_batches
from kbroker.log.unified_log import UnifiedLog

T0 = 1_700_000_000_000
# Small segments and indexes, so appends roll segments and fill indexes often.
CONFIG = LogConfig(segment_bytes=64 * 1024, segment_index_bytes=4096, max_message_bytes=256 * 1024)
_ROOT = tempfile.mkdtemp(prefix="kbroker-fuzz-log-")
atexit.register(shutil.rmtree, _ROOT, True)


def check_readable(log: UnifiedLog) -> None:
    """Every byte of every segment is whole batches with good CRCs (the log is not corrupt)."""
    for segment in log.log_segments():
        data = segment.read_bytes(0, segment.size)
        consumed = 0
        for batch in iter_batches(data):
            if compute_batch_crc(data, batch.position, batch.end) != batch.crc:
                raise AssertionError(f"{segment.log_path}: batch at offset {batch.base_offset} fails its CRC")
            consumed = batch.end
        if consumed != len(data):
            raise AssertionError(f"{segment.log_path}: {len(data) - consumed} bytes after the last whole batch")


class _Appender:
    def __init__(self) -> None:
        self.directory = os.path.join(_ROOT, "fuzz-0")
        self.log = UnifiedLog(self.directory, CONFIG, had_clean_shutdown=True, now=T0)
        self.appends = 0

    def append(self, data: bytes) -> None:
        origin_is_follower = bool(data[0] & 1)
        try:
            if origin_is_follower:
                self.log.append_as_follower(bytearray(data[1:]), now=T0)
            else:
                self.log.append_as_leader(bytearray(data[1:]), leader_epoch=0, origin=AppendOrigin.CLIENT, now=T0)
        except LogError:
            return
        self.appends += 1
        check_readable(self.log)
        if self.log.number_of_segments > 8:  # start over now and then: keeps every input fast
            self.log.delete()
            self.__init__()  # type: ignore[misc]


_appender: _Appender | None = None


def batches_one_input(data: bytes) -> None:
    global _appender
    if not data:
        return
    if _appender is None:
        _appender = _Appender()
    _appender.append(data)


def recovery_one_input(data: bytes) -> None:
    directory = os.path.join(_ROOT, "recovery-0")
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(directory)
    with open(os.path.join(directory, f"{0:020d}.log"), "wb") as segment:
        segment.write(data)
    log = UnifiedLog(directory, CONFIG, had_clean_shutdown=False, now=T0)
    try:
        check_readable(log)
        end = log.log_end_offset
        batch = build_batch([SimpleRecord(b"k", b"after recovery", timestamp=T0)], base_offset=0)
        info = log.append_as_leader(bytearray(batch), leader_epoch=log.leader_epoch_cache.latest_epoch() or 0,
                                    origin=AppendOrigin.CLIENT, now=T0)
        if info.base_offset != end:
            raise AssertionError(f"append after recovery landed at {info.base_offset}, log end was {end}")
        check_readable(log)
    finally:
        log.close(sync=False)


def close() -> None:
    """Remove the targets' logs (as atexit does in a process that exits normally)."""
    global _appender
    if _appender is not None:
        _appender.log.close()
        _appender = None
    shutil.rmtree(_ROOT, True)
