"""LogSegment: one `<20-digit base offset>.log` file of record batches with its indexes.

Appends are one pwrite of already-validated batches (page cache; fsync only from `flush`).
Reads return file regions (file, position, length), not bytes: the network layer sends each one
with sendfile or reads it with one pread when it writes the response, without decoding them.
A large append's bytes stay in memory for a while (RECENT_APPENDS): a region that lies within them
(a follower's or a tailing consumer's fetch of what was just appended) carries them as `data`,
so the response is written from memory, with no pread and no sendfile from the page cache.
Offsets are translated to positions through the sparse offset index and then by scanning batch
headers (61 bytes each, read in 64 KiB blocks). `recover` re-reads every batch, checks sizes and
CRCs, rebuilds the indexes and truncates at the first bad byte. With preallocate (Kafka's
`preallocate` / `log.preallocate`), a new segment's .log is created at `init_file_size`
(segment.bytes) with ftruncate, a sparse file as the JVM's RandomAccessFile.setLength makes on
Linux, and trimmed to its data when the segment stops being active (`on_become_inactive_segment`)
and at `close`; every read is bounded by `size` (the data), never by the file's length, and after
a crash `recover` cuts the zeros after the last valid batch. The .log and index files are
opened on first use and may be closed again by OPEN_FILES (open_files.py: a bounded LRU), so a
broker with many partitions holds a bounded number of descriptors.

Knows files and batch headers only: no partition state beyond the optional leader epoch cache and
producer state handed to `recover`.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from kbroker.log import io_faults
from kbroker.log.index import (
    INDEX_FILE_SUFFIX,
    TIME_INDEX_FILE_SUFFIX,
    TXN_INDEX_FILE_SUFFIX,
    OffsetIndex,
    TimeIndex,
    TimestampOffset,
    TransactionIndex,
)
from kbroker.log.open_files import FileHandle, SegmentFile
from kbroker.log.records import (
    HEADER_SIZE_UP_TO_MAGIC,
    HEADER_STRUCT,
    LENGTH_OFFSET,
    LOG_OVERHEAD,
    MAGIC_OFFSET,
    MAGIC_V2,
    RECORD_BATCH_OVERHEAD,
    BatchHeader,
    CorruptRecordError,
    batch_crc_is_valid,
    iter_records,
)

LOG_FILE_SUFFIX = ".log"
DELETED_FILE_SUFFIX = ".deleted"
CLEANED_FILE_SUFFIX = ".cleaned"
SWAP_FILE_SUFFIX = ".swap"

_HEADER_FIRST_READ = 4096
_HEADER_READ_AHEAD = 64 * 1024
_RECOVERY_READ_CHUNK = 8 * 1024 * 1024
_INT32_MAX = 2**31 - 1


def filename_prefix_from_offset(offset: int) -> str:
    """Kafka's 20-digit zero-padded segment name."""
    return f"{offset:020d}"


def now_ms() -> int:
    return int(time.time() * 1000)


class LogOffsetMetadata(NamedTuple):
    """An offset and where its batch starts (Kafka's LogOffsetMetadata)."""

    message_offset: int
    segment_base_offset: int = -1
    relative_position: int = -1

    @property
    def message_offset_only(self) -> bool:
        return self.segment_base_offset < 0


class LogOffsetPosition(NamedTuple):
    """A batch found by offset: its last offset, position and size (searchForOffsetWithSize)."""

    offset: int
    position: int
    size: int


class RecentAppends:
    """The bytes of the latest large leader append of each segment, at most `max_bytes` in all,
    the oldest dropped first, and dropped once IDLE_S old (`drop_idle`, from the log maintenance:
    what a burst of produce held goes within seconds). Written bytes never change in place (a
    truncation drops its segment's entry first), so a region within an entry may be sent from it.
    Why: the replication round trip sends each append to every follower right after writing it,
    and writing those bytes from memory costs the leader less than reading the page cache again
    (a sendfile of 1 MiB from tmpfs cost ~2x a send from memory here; about the same from ext4's
    page cache). An entry is a view of the buffer the append came in (a produce's request frame,
    a batch a coordinator built, a recompressed batch), counted at that buffer's size. Used on the
    event loop only."""

    MIN_BYTES = 64 * 1024  # smaller appends are left alone: they cost a pread at most
    IDLE_S = 1.0  # a follower fetches an append within milliseconds of it

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        # segment -> (position, bytes, charge, time.monotonic() when kept); oldest first
        self.entries: dict[LogSegment, tuple[int, memoryview, int, float]] = {}
        self.bytes = 0

    def remember(self, segment: LogSegment, position: int, records: bytes | bytearray | memoryview) -> None:
        """Keep `records` (MIN_BYTES or more: LogSegment.append asks only then), written at `position`."""
        view = memoryview(records)
        charge = view.obj.nbytes if isinstance(view.obj, memoryview) else len(view.obj)  # type: ignore[arg-type]
        self.forget(segment)
        if charge > self.max_bytes // 4:
            return  # a slice of a large buffer would hold all of it
        self.entries[segment] = (position, view, charge, time.monotonic())
        self.bytes += charge
        while self.bytes > self.max_bytes:
            self.forget(next(iter(self.entries)))

    def drop_idle(self, now: float) -> None:
        """Drops the entries kept more than IDLE_S before `now` (time.monotonic())."""
        entries = self.entries
        while entries:
            segment, entry = next(iter(entries.items()))
            if now - entry[3] < self.IDLE_S:
                return
            self.forget(segment)

    def forget(self, segment: LogSegment) -> None:
        entry = self.entries.pop(segment, None)
        if entry is not None:
            self.bytes -= entry[2]

    def data(self, segment: LogSegment, position: int, length: int) -> memoryview | None:
        """The bytes at [position, position + length) of the segment if an entry holds them."""
        entry = self.entries.get(segment)
        if entry is None:
            return None
        start, view, _, _ = entry
        if position < start or position + length > start + view.nbytes:
            return None
        return view[position - start : position - start + length]


RECENT_APPENDS = RecentAppends(16 * 1024 * 1024)


@dataclass(frozen=True, slots=True)
class FileRegion:
    """`length` bytes at `position` of an open segment file, read (`read_bytes`) only when the
    response carrying them is written; `data`: those bytes, when still in memory (RECENT_APPENDS).

    `file` stays open (and readable) while the region holds it, even if OPEN_FILES evicts it from
    its segment meanwhile, until the segment is deleted, which happens file.delete.delay.ms after
    retention or truncation removed it from the log.
    """

    file: SegmentFile
    position: int
    length: int
    data: memoryview | None = None

    def __len__(self) -> int:  # the codec sizes a records field with len()
        return self.length

    def fileno(self) -> int:
        return self.file.fileno()

    def read_bytes(self, skip: int = 0) -> bytes:
        """The region's bytes, from `skip` bytes into it (the rest of one partly sent with sendfile)."""
        if self.data is not None:
            return bytes(self.data[skip:])
        return _pread_exactly(self.file.fileno(), self.length - skip, self.position + skip)


class SegmentRead(NamedTuple):
    """What LogSegment.read found: where the fetch starts and the bytes to send."""

    offset_metadata: LogOffsetMetadata
    region: FileRegion | None
    first_entry_incomplete: bool = False


class TimestampAndOffset(NamedTuple):
    timestamp: int
    offset: int
    leader_epoch: int | None


def _pread_exactly(fd: int, length: int, position: int) -> bytes:
    data = os.pread(fd, length, position)
    if len(data) == length or not data:
        return data
    parts = [data]
    read = len(data)
    while read < length:
        chunk = os.pread(fd, length - read, position + read)
        if not chunk:
            break
        parts.append(chunk)
        read += len(chunk)
    return b"".join(parts)


class LogSegment:
    """A .log file plus its .index, .timeindex and .txnindex, named by `base_offset`."""

    def __init__(
        self,
        directory: str,
        base_offset: int,
        *,
        index_interval_bytes: int,
        max_index_size: int,
        file_suffix: str = "",
        writable_indexes: bool = True,
        init_file_size: int = 0,
        roll_jitter_ms: int = 0,
    ):
        self.directory = directory
        self.base_offset = base_offset
        self.index_interval_bytes = index_interval_bytes
        prefix = os.path.join(directory, filename_prefix_from_offset(base_offset))
        # Opened when first read or written, closed again when OPEN_FILES evicts it: a broker
        # loading 10,000 partitions stats their files rather than holding them all open.
        self._log = FileHandle(prefix + LOG_FILE_SUFFIX + file_suffix, os.O_RDWR, reopen_after_close=False)
        # Kafka's FileRecords.openChannel: only a file created here is preallocated; an existing
        # one (loaded) is taken at its length, which recovery cuts back to its data if needed.
        self._size, self._preallocated = _size_or_create(self._log, init_file_size)
        self.max_index_size = max_index_size
        self.offset_index = OffsetIndex(
            prefix + INDEX_FILE_SUFFIX + file_suffix, base_offset, max_index_size, writable_indexes
        )
        self.time_index = TimeIndex(
            prefix + TIME_INDEX_FILE_SUFFIX + file_suffix, base_offset, max_index_size, writable_indexes
        )
        self.txn_index = TransactionIndex(prefix + TXN_INDEX_FILE_SUFFIX + file_suffix, base_offset)
        self.bytes_since_last_index_entry = 0
        self.roll_jitter_ms = roll_jitter_ms  # taken off segment.ms for this segment's roll by time
        self.created_ms = now_ms()
        self.rolling_based_timestamp: int | None = None
        self._max_timestamp_and_offset: TimestampOffset | None = None

    # -- basic properties

    @property
    def size(self) -> int:
        return self._size

    @property
    def file(self) -> SegmentFile:
        return self._log.file()

    @property
    def fd(self) -> int:
        return self._log.fileno()

    @property
    def log_path(self) -> str:
        return self._log.path

    @log_path.setter
    def log_path(self, path: str) -> None:
        self._log.path = path

    def __repr__(self) -> str:
        return f"LogSegment(base_offset={self.base_offset}, size={self._size})"

    @property
    def max_timestamp_so_far(self) -> int:
        return self._max_timestamp_and_offset_so_far().timestamp

    @property
    def offset_of_max_timestamp_so_far(self) -> int:
        return self._max_timestamp_and_offset_so_far().offset

    def _max_timestamp_and_offset_so_far(self) -> TimestampOffset:
        if self._max_timestamp_and_offset is None:
            self._max_timestamp_and_offset = self._load_largest_timestamp()
        return self._max_timestamp_and_offset

    def _load_largest_timestamp(self) -> TimestampOffset:
        """The last time index entry, then every batch after the offset index entry covering it."""
        best = self.time_index.last_entry()
        start = self.offset_index.lookup(best.offset).position
        for header in self.iter_batch_headers(start):
            if header.max_timestamp > best.timestamp:
                best = TimestampOffset(header.max_timestamp, header.last_offset)
        return best

    @property
    def largest_timestamp(self) -> int:
        """Max timestamp of the segment's batches, or the file's mtime if none has one (retention)."""
        max_timestamp = self.max_timestamp_so_far
        if max_timestamp >= 0:
            return max_timestamp
        return self.last_modified_ms

    @property
    def last_modified_ms(self) -> int:
        return int(os.fstat(self.fd).st_mtime * 1000)

    def set_last_modified_ms(self, timestamp_ms: int) -> None:
        seconds = timestamp_ms / 1000
        os.utime(self.log_path, (seconds, seconds))

    # -- appending

    def can_convert_to_relative_offset(self, offset: int) -> bool:
        return 0 <= offset - self.base_offset <= _INT32_MAX

    def append(
        self,
        largest_offset: int,
        largest_timestamp: int,
        offset_of_max_timestamp: int,
        records: bytes | bytearray | memoryview,
        keep_in_memory: bool = False,
    ) -> None:
        """Write validated batches at the end of the file and add index entries when due.
        `keep_in_memory`: a leader's append, which its followers fetch next (RECENT_APPENDS)."""
        # Every produce passes here once per partition: locals and no property calls.
        length = len(records)
        if length == 0:
            return
        if not self.can_convert_to_relative_offset(largest_offset):
            raise ValueError(f"offset {largest_offset} does not fit segment {self.base_offset}")
        physical_position = self._size
        if physical_position == 0:
            self.rolling_based_timestamp = largest_timestamp
        self._write_at(records, physical_position)
        self._size = physical_position + length
        if keep_in_memory and length >= RecentAppends.MIN_BYTES:
            RECENT_APPENDS.remember(self, physical_position, records)
        max_so_far = self._max_timestamp_and_offset or self._max_timestamp_and_offset_so_far()
        if largest_timestamp > max_so_far.timestamp:
            max_so_far = self._max_timestamp_and_offset = TimestampOffset(largest_timestamp, offset_of_max_timestamp)
        if self.bytes_since_last_index_entry > self.index_interval_bytes:
            self.offset_index.append(largest_offset, physical_position)
            self.time_index.maybe_append(max_so_far.timestamp, max_so_far.offset)
            self.bytes_since_last_index_entry = length
        else:
            self.bytes_since_last_index_entry += length

    def append_batches(self, data: bytes | bytearray, headers: Sequence[BatchHeader]) -> None:
        """Write whole batches (`headers` positioned in `data`) with one pwrite, adding index entries
        batch by batch as they fall due (the log cleaner's writes: many small batches at once)."""
        if not headers:
            return
        if not self.can_convert_to_relative_offset(headers[-1].last_offset):
            raise ValueError(f"offset {headers[-1].last_offset} does not fit segment {self.base_offset}")
        start = self._size
        if start == 0:
            self.rolling_based_timestamp = headers[0].max_timestamp
        self._write_at(data, start)
        self._size += len(data)
        for header in headers:
            if header.max_timestamp > self.max_timestamp_so_far:
                self._max_timestamp_and_offset = TimestampOffset(header.max_timestamp, header.last_offset)
            if self.bytes_since_last_index_entry > self.index_interval_bytes:
                self.offset_index.append(header.last_offset, start + header.position)
                self.time_index.maybe_append(self.max_timestamp_so_far, self.offset_of_max_timestamp_so_far)
                self.bytes_since_last_index_entry = 0
            self.bytes_since_last_index_entry += header.size

    def trim(self) -> None:
        """Cut a preallocated file to its data (Kafka's FileRecords.trim); no-op otherwise, so
        closing thousands of segments costs no ftruncate each."""
        if self._preallocated:
            self._truncate_file(self._size)

    def _truncate_file(self, size: int) -> None:
        os.ftruncate(self.fd, size)
        self._size = size
        self._preallocated = False

    @property
    def preallocated(self) -> bool:
        """Whether the .log file is longer than its data (created preallocated, not trimmed yet)."""
        return self._preallocated

    def _write_at(self, records: bytes | bytearray | memoryview, position: int) -> None:
        if io_faults.hook is not None:  # every append passes here: no call while no test hooks it
            io_faults.check("write", self.log_path)
        written = os.pwrite(self._log.fileno(), records, position)
        if written == len(records):
            return
        view = memoryview(records)
        while written < len(view):  # regular files only write short on ENOSPC-like trouble
            more = os.pwrite(self.fd, view[written:], position + written)
            if more <= 0:
                raise OSError(f"short write to {self.log_path}")
            written += more

    # -- reading

    def read_bytes(self, position: int, length: int) -> bytes:
        return _pread_exactly(self.fd, length, position)

    def iter_batch_headers(
        self, start_position: int = 0, end_position: int | None = None
    ) -> Iterator[BatchHeader]:
        """Headers of the complete batches in [start, end); positions are file positions."""
        end = self._size if end_position is None else min(end_position, self._size)
        position = start_position
        block: bytes | memoryview = b""
        block_start = position
        # Start small (large batches need one header per block) and grow for runs of small batches.
        read_ahead = _HEADER_FIRST_READ
        while end - position >= RECORD_BATCH_OVERHEAD:
            relative = position - block_start
            if relative + RECORD_BATCH_OVERHEAD > len(block):
                length = min(read_ahead, end - position)
                # A follower's fetch of the latest append finds its header still in memory.
                block = RECENT_APPENDS.data(self, position, length) or os.pread(self.fd, length, position)
                block_start, relative = position, 0
                read_ahead = min(read_ahead * 4, _HEADER_READ_AHEAD)
                if len(block) < RECORD_BATCH_OVERHEAD:
                    return
            fields = HEADER_STRUCT.unpack_from(block, relative)
            size = fields[1] + LOG_OVERHEAD
            if size < RECORD_BATCH_OVERHEAD or fields[3] != MAGIC_V2:
                raise CorruptRecordError(f"{self.log_path}: bad batch header at position {position}")
            if position + size > end:
                return
            yield BatchHeader(position, *fields)
            position += size

    def iter_full_batches(
        self, start_position: int = 0, read_chunk: int = _RECOVERY_READ_CHUNK
    ) -> Iterator[tuple[int, BatchHeader, bytes]]:
        """(file position, header relative to `data`, data) for each complete batch, read in chunks
        of `read_chunk` bytes (more for a larger batch); stops at a torn tail, raises
        CorruptRecordError at an impossible header."""
        end = self._size
        position = start_position
        data = b""
        data_start = position
        while end - position >= HEADER_SIZE_UP_TO_MAGIC:
            relative = position - data_start
            if relative + RECORD_BATCH_OVERHEAD > len(data):
                data = _pread_exactly(self.fd, min(read_chunk, end - position), position)
                data_start, relative = position, 0
            if len(data) - relative < HEADER_SIZE_UP_TO_MAGIC:
                return
            size = int.from_bytes(
                data[relative + LENGTH_OFFSET : relative + LENGTH_OFFSET + 4], "big", signed=True
            )
            size += LOG_OVERHEAD
            if size < RECORD_BATCH_OVERHEAD or data[relative + MAGIC_OFFSET] != MAGIC_V2:
                raise CorruptRecordError(f"{self.log_path}: bad batch header at position {position}")
            if position + size > end:
                return
            if relative + size > len(data):
                data = _pread_exactly(self.fd, max(size, min(read_chunk, end - position)), position)
                data_start, relative = position, 0
                if len(data) < size:
                    return
            yield position, BatchHeader(relative, *HEADER_STRUCT.unpack_from(data, relative)), data
            position += size

    def translate_offset(self, offset: int, starting_position: int = 0) -> LogOffsetPosition | None:
        """The first batch whose last offset is >= `offset`, searching from the index entry."""
        mapping = self.offset_index.lookup(offset)
        for header in self.iter_batch_headers(max(mapping.position, starting_position)):
            if header.last_offset >= offset:
                return LogOffsetPosition(header.last_offset, header.position, header.size)
        return None

    def read(
        self, start_offset: int, max_size: int, max_position: int | None = None, min_one_message: bool = False,
        start_position: int = 0,
    ) -> SegmentRead | None:
        """Bytes from the batch holding `start_offset`, at most `max_size` (or the first whole batch
        with min_one_message, KIP-74) and never past `max_position`. None if the offset is past
        this segment's end. `start_position`, when known, is a batch start at or before that batch
        (the search begins there rather than at the offset index's entry)."""
        if max_size < 0:
            raise ValueError(f"invalid max size {max_size}")
        found = self.translate_offset(start_offset, start_position)
        if found is None:
            return None
        metadata = LogOffsetMetadata(start_offset, self.base_offset, found.position)
        adjusted_max = max(max_size, found.size) if min_one_message else max_size
        limit = self._size if max_position is None else max_position
        if adjusted_max == 0 or limit <= found.position:
            return SegmentRead(metadata, None)
        length = min(limit - found.position, adjusted_max)
        if found.size < length < limit - found.position:
            length = self._whole_batches(found.position, found.size, length)
        region = FileRegion(self.file, found.position, length, RECENT_APPENDS.data(self, found.position, length))
        return SegmentRead(metadata, region, adjusted_max < found.size)

    def _whole_batches(self, start: int, first_size: int, length: int) -> int:
        """How much of [start, start + length) whole batches fill, the first (`first_size` bytes)
        included. A slice the size limit cuts would end in a partial batch that the client drops
        and fetches again (Kafka sends it; up to a batch per response, a third of a 1 MiB
        response of ~600 KB batches). The offset index gives a batch start at most
        index.interval.bytes before the cut, so only the few headers after it are read."""
        cut = start + length
        end = max(start + first_size, self.offset_index.position_at_or_before(cut))
        for header in self.iter_batch_headers(end, cut):
            end = header.end
        return end - start

    def read_next_offset(self) -> int:
        """Offset after the last batch: scan from the last index entry to the end."""
        return self.scan_tail()[0]

    def scan_tail(self) -> tuple[int, int]:
        """(offset after the last batch, file position after it); the position is short of
        `size` when the file ends in a partial batch."""
        start = self.offset_index.lookup(self.offset_index.last_offset).position
        next_offset, end = self.base_offset, start
        for header in self.iter_batch_headers(start):
            next_offset, end = header.next_offset, header.end
        return next_offset, end

    def find_offset_by_timestamp(self, timestamp: int, starting_offset: int) -> TimestampAndOffset | None:
        """First record with timestamp >= `timestamp` and offset >= `starting_offset`."""
        entry = self.time_index.lookup(timestamp)
        position = self.offset_index.lookup(max(entry.offset, starting_offset)).position
        for header in self.iter_batch_headers(position):
            if header.max_timestamp >= timestamp and header.last_offset >= starting_offset:
                data = self.read_bytes(header.position, header.size)
                for record in iter_records(data, header._replace(position=0)):
                    if record.timestamp >= timestamp and record.offset >= starting_offset:
                        return TimestampAndOffset(record.timestamp, record.offset, _epoch_or_none(header))
        return None

    def record_with_timestamp(self, batch_last_offset: int, timestamp: int) -> TimestampAndOffset | None:
        """The first record carrying `timestamp` in the batch ending at `batch_last_offset`."""
        found = self.translate_offset(batch_last_offset)
        if found is None:
            return None
        data = self.read_bytes(found.position, found.size)
        header = BatchHeader(0, *HEADER_STRUCT.unpack_from(data, 0))
        for record in iter_records(data, header):
            if record.timestamp == timestamp:
                return TimestampAndOffset(record.timestamp, record.offset, _epoch_or_none(header))
        return TimestampAndOffset(timestamp, header.last_offset, _epoch_or_none(header))

    # -- recovery and truncation

    def recover(self, on_batch: Callable[[BatchHeader, bytes], None] | None = None) -> int:
        """Rebuild the indexes from the log, checking every batch; truncate after the last valid
        one. `on_batch(header, data)` sees each valid batch (header positions relative to data)
        so the caller can rebuild its epoch cache and producer state. Returns bytes truncated."""
        self.offset_index.reset()
        self.time_index.reset()
        self.txn_index.reset()
        valid_bytes = 0
        last_index_entry = 0
        expected_offset = self.base_offset
        max_timestamp = TimestampOffset(-1, self.base_offset)
        try:
            for position, header, data in self.iter_full_batches():
                if not batch_crc_is_valid(data, header) or header.base_offset < expected_offset:
                    break
                if (
                    not self.can_convert_to_relative_offset(header.last_offset)
                    or header.last_offset_delta < 0
                ):
                    break
                if header.max_timestamp > max_timestamp.timestamp:
                    max_timestamp = TimestampOffset(header.max_timestamp, header.last_offset)
                if valid_bytes - last_index_entry > self.index_interval_bytes:
                    self.offset_index.append(header.last_offset, position)
                    self.time_index.maybe_append(*max_timestamp)
                    last_index_entry = valid_bytes
                valid_bytes += header.size
                expected_offset = header.next_offset
                if on_batch is not None:
                    on_batch(header, data)
        except CorruptRecordError:
            pass
        truncated = self._size - valid_bytes
        if truncated > 0 or self._preallocated:  # FileRecords.truncateTo cuts a preallocation too
            RECENT_APPENDS.forget(self)
            self._truncate_file(valid_bytes)
        self._max_timestamp_and_offset = max_timestamp
        self.time_index.maybe_append(*max_timestamp, skip_full_check=True)
        self.bytes_since_last_index_entry = valid_bytes - last_index_entry
        if valid_bytes == 0:
            self.rolling_based_timestamp = None
        return truncated

    def truncate_to(self, offset: int) -> int:
        """Drop every batch from the one holding `offset` on; returns bytes removed."""
        found = self.translate_offset(offset)
        self.offset_index.truncate_to(offset)
        self.time_index.truncate_to(offset)
        self.txn_index.truncate_to(offset)
        self.offset_index.resize(self.max_index_size)
        self.time_index.resize(self.max_index_size)
        truncated = 0
        if found is not None:
            RECENT_APPENDS.forget(self)
            truncated = self._size - found.position
            self._truncate_file(found.position)
        if self._size == 0:
            self.created_ms = now_ms()
            self.rolling_based_timestamp = None
        self.bytes_since_last_index_entry = 0
        self._max_timestamp_and_offset = None
        return truncated

    def sanity_check(self) -> None:
        """Raise CorruptIndexError if an index cannot belong to this log file.

        The time index is bounded by the segment's next offset, not by the offset index: the offset
        index covers a batch every index.interval.bytes, while the final time index entry (written
        at close and by recovery) names the offset of the max timestamp, often in a later batch."""
        self.offset_index.sanity_check(self._size)
        self.time_index.sanity_check(self.scan_tail()[0] if self._size else self.base_offset)

    # -- rolling

    def time_waited_for_roll(self, now: int, max_timestamp_in_messages: int) -> int:
        if self.rolling_based_timestamp is None and self._size > 0:
            first = next(self.iter_batch_headers(0), None)
            if first is not None:
                self.rolling_based_timestamp = first.max_timestamp
        if self.rolling_based_timestamp is not None and self.rolling_based_timestamp >= 0:
            return max_timestamp_in_messages - self.rolling_based_timestamp
        return now - self.created_ms

    def should_roll(
        self,
        max_segment_bytes: int,
        max_segment_ms: int,
        rolled_jitter_ms: int,
        messages_size: int,
        max_timestamp_in_messages: int,
        max_offset_in_messages: int,
        now: int,
    ) -> bool:
        """Kafka's LogSegment.shouldRoll (asked by every append: positional arguments, the cheap
        size check first; the time check has no effect beyond caching the rolling timestamp)."""
        size = self._size
        return (
            size > max_segment_bytes - messages_size
            or (size > 0 and self.time_waited_for_roll(now, max_timestamp_in_messages) > max_segment_ms - rolled_jitter_ms)
            or self.offset_index.is_full()
            or self.time_index.is_full()
            or not self.can_convert_to_relative_offset(max_offset_in_messages)
        )

    def on_become_inactive_segment(self) -> None:
        """Record the final max timestamp and trim the indexes to their entries and a preallocated
        .log to its data (on roll, and for a cleaned segment before its swap)."""
        max_timestamp = self._max_timestamp_and_offset_so_far()
        if max_timestamp.timestamp >= 0:
            self.time_index.maybe_append(*max_timestamp, skip_full_check=True)
        self.offset_index.trim_to_valid_size()
        self.time_index.trim_to_valid_size()
        self.trim()

    # -- files

    def flush(self) -> None:
        io_faults.check("flush", self.log_path)
        os.fsync(self.fd)
        self.offset_index.flush()
        self.time_index.flush()
        self.txn_index.flush()

    def flush_elsewhere(self, check_faults: bool = False) -> Callable[[], None]:
        """`flush` as a blocking call for a worker thread. It fsyncs duplicated descriptors, so the
        segment may be closed, renamed or deleted while it runs, and the thread never opens a file
        (OPEN_FILES belongs to the event loop). `check_faults`: through io_faults first, as `flush`."""
        if check_faults:
            io_faults.check("flush", self.log_path)
        fds = [os.dup(self.fd)] + [fd for fd in (self.offset_index.duplicate_fd(), self.time_index.duplicate_fd())
                                   if fd is not None]
        txn_index = self.txn_index

        def fsync_files() -> None:
            try:
                for fd in fds:
                    os.fsync(fd)
                with contextlib.suppress(FileNotFoundError):  # deleted meanwhile: nothing to keep
                    txn_index.flush()
            finally:
                for fd in fds:
                    os.close(fd)

        return fsync_files

    def close(self) -> None:
        """Trim indexes (recording the final max timestamp) and a preallocated .log, then close
        the files: a clean shutdown leaves no preallocated tail."""
        RECENT_APPENDS.forget(self)
        if not self._log.closed:
            if self._max_timestamp_and_offset is not None and self._max_timestamp_and_offset.timestamp >= 0:
                self.time_index.maybe_append(*self._max_timestamp_and_offset, skip_full_check=True)
            with contextlib.suppress(FileNotFoundError):  # deleted meanwhile: nothing left to trim
                self.trim()
            self._log.close()
        self.offset_index.close()
        self.time_index.close()

    def close_handlers(self) -> None:
        """Close files without touching them (after a failure)."""
        RECENT_APPENDS.forget(self)
        self._log.close()
        self.offset_index.close(trim=False)
        self.time_index.close(trim=False)

    def change_file_suffixes(self, old_suffix: str, new_suffix: str, log_file_last: bool = False) -> None:
        """Rename the .log and index files, e.g. to `.deleted` before asynchronous removal.
        The .log goes first unless `log_file_last` (the cleaner's `.cleaned` -> `.swap`, where a
        `.log.swap` must mean that its indexes are complete too)."""

        def renamed(path: str) -> str:
            base = path[: -len(old_suffix)] if old_suffix and path.endswith(old_suffix) else path
            return base + new_suffix

        if not log_file_last:
            self._rename_log_file(renamed(self.log_path))
        self.offset_index.rename_to(renamed(self.offset_index.path))
        self.time_index.rename_to(renamed(self.time_index.path))
        self.txn_index.rename_to(renamed(self.txn_index.path))
        if log_file_last:
            self._rename_log_file(renamed(self.log_path))

    def _rename_log_file(self, new_log_path: str) -> None:
        os.replace(self.log_path, new_log_path)
        self.log_path = new_log_path

    def move_to_directory(self, directory: str) -> None:
        """Follow a rename of the partition directory (open files stay valid)."""
        self.directory = directory
        self.log_path = os.path.join(directory, os.path.basename(self.log_path))
        for index in (self.offset_index, self.time_index, self.txn_index):
            index.path = os.path.join(directory, os.path.basename(index.path))

    def delete(self) -> None:
        """Close and remove every file of the segment."""
        self.close_handlers()
        for path in (self.log_path, self.offset_index.path, self.time_index.path):
            try:
                os.remove(path)
            except FileNotFoundError:
                pass
        self.txn_index.delete()


def _size_or_create(log: FileHandle, init_file_size: int) -> tuple[int, bool]:
    """(size, preallocated): an existing .log file's length (left closed), or 0 for one created
    (and left open), which is `init_file_size` bytes long (sparse) when that is positive."""
    io_faults.check("create", log.path)
    try:
        return os.stat(log.path).st_size, False
    except FileNotFoundError:
        file = log.open(os.O_RDWR | os.O_CREAT)
    if init_file_size <= 0:
        return 0, False
    os.ftruncate(file.fd, init_file_size)
    return 0, True


def _epoch_or_none(header: BatchHeader) -> int | None:
    return header.partition_leader_epoch if header.partition_leader_epoch >= 0 else None
