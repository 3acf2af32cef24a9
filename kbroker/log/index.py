"""Per-segment index files in Kafka's format: OffsetIndex (.index), TimeIndex (.timeindex) and
TransactionIndex (.txnindex).

.index entries are (i32 offset relative to the segment base, i32 file position), .timeindex entries
(i64 max timestamp so far, i32 relative offset), both big-endian, sorted, looked up by binary search.
Active indexes are preallocated to segment.index.bytes (a sparse file) and trimmed to their entries
on roll and close, because readers take length / entry size as the entry count. Entries are kept
in memory in compact arrays, loaded lazily on first use so that opening many segments is cheap;
each append is one pwrite to the page cache.

.txnindex entries are (i16 version 0, i64 producerId, i64 firstOffset, i64 lastOffset,
i64 lastStableOffset) of aborted transactions, appended only.

Only index files: the segment (segment.py) decides when to add entries.
"""

from __future__ import annotations

import contextlib
import os
import struct
import sys
from array import array
from bisect import bisect_left, bisect_right
from typing import NamedTuple

from kbroker.log.open_files import FileHandle

INDEX_FILE_SUFFIX = ".index"
TIME_INDEX_FILE_SUFFIX = ".timeindex"
TXN_INDEX_FILE_SUFFIX = ".txnindex"

_OFFSET_ENTRY = struct.Struct(">ii")
_TIME_ENTRY = struct.Struct(">qi")
_ABORTED_TXN = struct.Struct(">hqqqq")
_NATIVE_IS_BIG_ENDIAN = sys.byteorder == "big"


class CorruptIndexError(ValueError):
    """An index file that cannot describe its segment; the segment must be recovered."""


class OffsetPosition(NamedTuple):
    offset: int
    position: int


class TimestampOffset(NamedTuple):
    timestamp: int
    offset: int


class AbortedTxn(NamedTuple):
    producer_id: int
    first_offset: int
    last_offset: int
    last_stable_offset: int


def _big_endian_array(typecode: str, data: bytes) -> array:
    values = array(typecode)
    values.frombytes(data)
    if not _NATIVE_IS_BIG_ENDIAN:
        values.byteswap()
    return values


class _SortedIndexFile:
    """Shared file handling of .index and .timeindex: an open fd, a preallocated size, entries
    held as two parallel arrays (`_keys` searched, `_values` returned)."""

    entry: struct.Struct
    key_type = "i"
    value_type = "i"

    def __init__(self, path: str, base_offset: int, max_index_size: int, writable: bool = True):
        # Opened on first use and again after OPEN_FILES evicted it (open_files.py).
        self._handle = FileHandle(path, os.O_RDWR | os.O_CREAT)
        self.base_offset = base_offset
        self.max_index_size = max_index_size - max_index_size % self.entry.size
        self.writable = writable
        self._keys = array(self.key_type)
        self._values = array(self.value_type)
        self._loaded = False
        # The file may be longer than its entries (preallocated, or zeroed past a truncation):
        # close trims it. A writable index is preallocated at its first write, not when loaded,
        # so loading thousands of active segments that see no append costs no ftruncate.
        self._untrimmed = False

    # -- lifecycle

    @property
    def path(self) -> str:
        return self._handle.path

    @path.setter
    def path(self, path: str) -> None:
        self._handle.path = path

    def _open(self) -> int:
        return self._handle.fileno()

    def _has_writes(self) -> bool:
        """Open, or loaded (and maybe written) since: what flush and fsync must reach."""
        return self._loaded or self._handle.is_open

    def _ensure_loaded(self) -> None:
        if self._loaded:
            return
        data = _read_all(self._open())
        self._keys, self._values = self._decode_entries(data[: len(data) - len(data) % self.entry.size])
        self._loaded = True
        self._untrimmed = len(data) % self.entry.size != 0

    def _preallocate(self) -> None:
        os.ftruncate(self._open(), max(self.max_index_size, len(self._keys) * self.entry.size))
        self._untrimmed = True

    def _decode_entries(self, data: bytes) -> tuple[array, array]:
        keys, values = array(self.key_type), array(self.value_type)
        for key, value in self.entry.iter_unpack(data):
            keys.append(key)
            values.append(value)
        return keys, values

    @property
    def entries(self) -> int:
        self._ensure_loaded()
        return len(self._keys)

    @property
    def max_entries(self) -> int:
        return self.max_index_size // self.entry.size

    # Entries kept free at the end: TimeIndex keeps one for the final entry.
    reserved_entries = 0

    def is_full(self) -> bool:
        # Asked by every append (LogSegment.shouldRoll): no property calls.
        if not self._loaded:
            self._ensure_loaded()
        return len(self._keys) >= self.max_index_size // self.entry.size - self.reserved_entries

    def file_size(self) -> int:
        try:
            return os.path.getsize(self.path)
        except FileNotFoundError:
            return 0

    def _write_entry(self, key: int, value: int) -> None:
        # Once per produce of a batch over index.interval.bytes (twice with the time index): locals.
        if not self._loaded:
            self._ensure_loaded()
        keys = self._keys
        entry = self.entry
        if len(keys) >= self.max_index_size // entry.size:
            raise ValueError(f"index {self.path} is full ({self.max_entries} entries)")
        if not self._untrimmed and self.writable:
            self._preallocate()
        os.pwrite(self._handle.fileno(), entry.pack(key, value), len(keys) * entry.size)
        keys.append(key)
        self._values.append(value)

    def _truncate_entries(self, count: int) -> None:
        """Keep the first `count` entries; zero the rest so a crash cannot resurrect them."""
        self._ensure_loaded()
        dropped = len(self._keys) - count
        if dropped <= 0:
            return
        os.pwrite(self._open(), bytes(dropped * self.entry.size), count * self.entry.size)
        self._untrimmed = True
        del self._keys[count:]
        del self._values[count:]

    def reset(self) -> None:
        """Drop every entry (before a rebuild); the old content is never parsed."""
        os.ftruncate(self._open(), 0)
        self._keys = array(self.key_type)
        self._values = array(self.value_type)
        self._loaded = True
        self._untrimmed = False  # preallocated again by the first entry written

    def resize(self, max_index_size: int) -> None:
        """Make the file writable up to `max_index_size` again (an active segment's index)."""
        self._ensure_loaded()
        max_index_size -= max_index_size % self.entry.size
        grow = self._untrimmed and (max_index_size != self.max_index_size or not self.writable)
        self.max_index_size, self.writable = max_index_size, True
        if grow:  # preallocated already: to the new size now; otherwise at the first write
            self._preallocate()

    def trim_to_valid_size(self) -> None:
        """Cut the preallocated file to its entries; the index is read-only afterwards."""
        if not self._loaded:
            return
        os.ftruncate(self._open(), len(self._keys) * self.entry.size)
        self._untrimmed = False
        self.writable = False
        self.max_index_size = max(len(self._keys), 1) * self.entry.size

    def flush(self) -> None:
        if self._has_writes():
            os.fsync(self._open())

    def duplicate_fd(self) -> int | None:
        """A new descriptor of the file (None when nothing was written since it was opened or
        loaded), for an fsync elsewhere."""
        return os.dup(self._open()) if self._has_writes() else None

    def close(self, trim: bool = True) -> None:
        """Close the file, trimming a preallocated one to its entries unless `trim` is False (an
        evicted one is opened again for that: a clean shutdown leaves no preallocated index)."""
        if trim and self._loaded and self._untrimmed:
            with contextlib.suppress(FileNotFoundError):  # deleted meanwhile: not created again to trim
                os.ftruncate(self._handle.open(os.O_RDWR).fd, len(self._keys) * self.entry.size)
        self._handle.close()
        self._untrimmed = False
        # A closed index is read-only if touched again (e.g. by an inspection after shutdown).
        self.writable = False
        self._loaded = False
        self._keys = array(self.key_type)
        self._values = array(self.value_type)

    def rename_to(self, path: str) -> None:
        if os.path.exists(self.path):
            os.replace(self.path, path)
        self.path = path

    def delete(self) -> None:
        self.close()
        try:
            os.remove(self.path)
        except FileNotFoundError:
            pass

    def _first_and_last_on_disk(self) -> tuple[tuple[int, int], tuple[int, int]] | None:
        """First and last entries read straight from the file, without loading the index."""
        self._check_file_length()
        size = self.file_size()
        if size == 0:
            return None
        fd = os.open(self.path, os.O_RDONLY)
        try:
            first = self.entry.unpack(os.pread(fd, self.entry.size, 0))
            last = self.entry.unpack(os.pread(fd, self.entry.size, size - self.entry.size))
        finally:
            os.close(fd)
        return first, last

    def _check_file_length(self) -> None:
        size = self.file_size()
        if size % self.entry.size:
            raise CorruptIndexError(
                f"index file {self.path} has size {size}, not a multiple of {self.entry.size}"
            )


def _read_all(fd: int) -> bytes:
    size = os.fstat(fd).st_size
    parts = []
    position = 0
    while position < size:
        chunk = os.pread(fd, size - position, position)
        if not chunk:
            break
        parts.append(chunk)
        position += len(chunk)
    return b"".join(parts)


class OffsetIndex(_SortedIndexFile):
    """Sparse map from offsets to file positions in the segment's .log."""

    entry = _OFFSET_ENTRY

    def _decode_entries(self, data: bytes) -> tuple[array, array]:
        # Both fields are i32: one array conversion instead of a Python loop per entry.
        pairs = _big_endian_array("i", data)
        return pairs[0::2], pairs[1::2]

    @property
    def last_offset(self) -> int:
        self._ensure_loaded()
        return self.base_offset + self._keys[-1] if self._keys else self.base_offset

    def entry_at(self, n: int) -> OffsetPosition:
        self._ensure_loaded()
        return OffsetPosition(self.base_offset + self._keys[n], self._values[n])

    def lookup(self, target_offset: int) -> OffsetPosition:
        """The entry with the largest offset <= target, or (base offset, 0)."""
        self._ensure_loaded()
        slot = bisect_right(self._keys, target_offset - self.base_offset) - 1
        if slot < 0:
            return OffsetPosition(self.base_offset, 0)
        return OffsetPosition(self.base_offset + self._keys[slot], self._values[slot])

    def position_at_or_before(self, position: int) -> int:
        """The largest indexed position <= `position`, or 0. Every entry points at the start of a
        batch (appends index a batch's first byte), so this is a batch boundary."""
        self._ensure_loaded()
        slot = bisect_right(self._values, position) - 1
        return self._values[slot] if slot >= 0 else 0

    def append(self, offset: int, position: int) -> None:
        if not self._loaded:
            self._ensure_loaded()
        if self._keys and offset - self.base_offset <= self._keys[-1]:
            raise ValueError(
                f"offset {offset} is not larger than the last offset {self.last_offset} of {self.path}"
            )
        self._write_entry(offset - self.base_offset, position)

    def truncate_to(self, offset: int) -> None:
        """Remove every entry with an offset >= `offset`."""
        self._ensure_loaded()
        self._truncate_entries(bisect_left(self._keys, offset - self.base_offset))

    def sanity_check(self, log_size: int) -> None:
        """Raise CorruptIndexError unless entries are increasing and point inside the log."""
        self._check_file_length()
        self._ensure_loaded()
        keys, values = self._keys, self._values
        for n in range(1, len(keys)):
            if keys[n] <= keys[n - 1] or values[n] < values[n - 1]:
                raise CorruptIndexError(f"index {self.path} entries are not increasing at entry {n}")
        if keys and (keys[0] < 0 or values[-1] > log_size):
            raise CorruptIndexError(f"index {self.path} points outside its segment")

    def quick_check(self, log_size: int, next_segment_base: int | None) -> None:
        """Cheap check of a closed index (its ends only), as Kafka's sanityCheck at load."""
        ends = self._first_and_last_on_disk()
        if ends is None:
            return
        (first_key, first_position), (last_key, last_position) = ends
        upper = None if next_segment_base is None else next_segment_base - self.base_offset
        if first_key < 0 or last_key < first_key or first_position < 0 or last_position > log_size:
            raise CorruptIndexError(f"index {self.path} does not fit its segment")
        if upper is not None and last_key >= upper:
            raise CorruptIndexError(f"index {self.path} names offsets of the next segment")


class TimeIndex(_SortedIndexFile):
    """Sparse map from timestamps (max so far) to offsets; one slot is kept for the final entry."""

    entry = _TIME_ENTRY
    key_type = "q"
    reserved_entries = 1

    def last_entry(self) -> TimestampOffset:
        self._ensure_loaded()
        if not self._keys:
            return TimestampOffset(-1, self.base_offset)
        return TimestampOffset(self._keys[-1], self.base_offset + self._values[-1])

    def entry_at(self, n: int) -> TimestampOffset:
        self._ensure_loaded()
        return TimestampOffset(self._keys[n], self.base_offset + self._values[n])

    def lookup(self, target_timestamp: int) -> TimestampOffset:
        """The entry with the largest timestamp <= target, or (-1, base offset)."""
        self._ensure_loaded()
        slot = bisect_right(self._keys, target_timestamp) - 1
        if slot < 0:
            return TimestampOffset(-1, self.base_offset)
        return TimestampOffset(self._keys[slot], self.base_offset + self._values[slot])

    def maybe_append(self, timestamp: int, offset: int, skip_full_check: bool = False) -> None:
        """Append (timestamp, offset) if the timestamp is larger than the last entry's."""
        if not self._loaded:
            self._ensure_loaded()
        keys = self._keys
        if not skip_full_check and self.is_full():
            raise ValueError(f"time index {self.path} is full")
        last_timestamp = keys[-1] if keys else -1
        if keys and offset - self.base_offset < self._values[-1]:
            raise ValueError(f"offset {offset} is smaller than the last offset in time index {self.path}")
        if keys and timestamp < last_timestamp:
            raise ValueError(f"timestamp {timestamp} is smaller than the last timestamp in {self.path}")
        if timestamp > last_timestamp:
            if len(keys) >= self.max_entries:
                self.resize(self.max_index_size + self.entry.size)
            self._write_entry(timestamp, offset - self.base_offset)

    def truncate_to(self, offset: int) -> None:
        """Remove every entry with an offset >= `offset`."""
        self._ensure_loaded()
        self._truncate_entries(bisect_left(self._values, offset - self.base_offset))

    def sanity_check(self, next_offset: int) -> None:
        self._check_file_length()
        self._ensure_loaded()
        keys, values = self._keys, self._values
        for n in range(1, len(keys)):
            if keys[n] < keys[n - 1] or values[n] < values[n - 1]:
                raise CorruptIndexError(f"time index {self.path} entries are not increasing at entry {n}")
        if values and (
            values[0] < 0 or self.base_offset + values[-1] >= max(next_offset, self.base_offset + 1)
        ):
            raise CorruptIndexError(f"time index {self.path} points past its segment")

    def quick_check(self, next_segment_base: int | None) -> None:
        ends = self._first_and_last_on_disk()
        if ends is None:
            return
        (first_timestamp, first_offset), (last_timestamp, last_offset) = ends
        upper = None if next_segment_base is None else next_segment_base - self.base_offset
        if first_offset < 0 or last_offset < first_offset or last_timestamp < first_timestamp:
            raise CorruptIndexError(f"time index {self.path} is not increasing")
        if upper is not None and last_offset >= upper:
            raise CorruptIndexError(f"time index {self.path} names offsets of the next segment")


class TransactionIndex:
    """Aborted transactions whose markers are in this segment; the file exists only once one is added."""

    def __init__(self, path: str, base_offset: int):
        self.path = path
        self.base_offset = base_offset
        self._entries: list[AbortedTxn] | None = None

    def _load(self) -> list[AbortedTxn]:
        if self._entries is None:
            self._entries = []
            if os.path.exists(self.path):
                with open(self.path, "rb") as file:
                    data = file.read()
                usable = len(data) - len(data) % _ABORTED_TXN.size
                for _version, *fields in _ABORTED_TXN.iter_unpack(data[:usable]):
                    self._entries.append(AbortedTxn(*fields))
        return self._entries

    def append(self, txn: AbortedTxn) -> None:
        entries = self._load()
        if entries and txn.last_offset < entries[-1].last_offset:
            raise ValueError(
                f"aborted transaction ending at {txn.last_offset} is out of order in {self.path}"
            )
        with open(self.path, "ab") as file:
            file.write(_ABORTED_TXN.pack(0, *txn))
        entries.append(txn)

    def covers(self, last_offset: int) -> bool:
        """Whether an abort ending at `last_offset` is already indexed: entries are appended in
        marker order, so one ending there or later means it is (a replay finds it so)."""
        entries = self._load()
        return bool(entries) and entries[-1].last_offset >= last_offset

    def all_aborted(self) -> list[AbortedTxn]:
        return list(self._load())

    def collect_aborted(self, fetch_offset: int, upper_bound_offset: int, into: list[AbortedTxn]) -> bool:
        """Adds the aborted transactions overlapping [fetch_offset, upper_bound_offset) to `into`;
        True once an entry's last stable offset reaches the bound (Kafka's
        TxnIndexSearchResult.isComplete): every later abort began at or past it."""
        for txn in self._load():
            if txn.last_offset >= fetch_offset and txn.first_offset < upper_bound_offset:
                into.append(txn)
            if txn.last_stable_offset >= upper_bound_offset:
                return True
        return False

    def truncate_to(self, offset: int) -> None:
        entries = self._load()
        kept = [txn for txn in entries if txn.last_offset < offset]
        if len(kept) != len(entries):
            self._rewrite(kept)

    def reset(self) -> None:
        self._rewrite([])

    def _rewrite(self, entries: list[AbortedTxn]) -> None:
        self._entries = entries
        if not entries:
            if os.path.exists(self.path):
                os.remove(self.path)
            return
        with open(self.path, "wb") as file:
            file.write(b"".join(_ABORTED_TXN.pack(0, *txn) for txn in entries))

    def flush(self) -> None:
        if os.path.exists(self.path):
            fd = os.open(self.path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def rename_to(self, path: str) -> None:
        if os.path.exists(self.path):
            os.replace(self.path, path)
        self.path = path

    def delete(self) -> None:
        try:
            os.remove(self.path)
        except FileNotFoundError:
            pass
