"""LogCleaner: compaction of the logs whose cleanup.policy includes `compact` (Kafka's LogCleaner,
LogCleanerManager, Cleaner, OffsetMap and CleanedTransactionMetadata).

Choosing a log (grabFilthiestCompactedLog). A compacted log's dirty section starts at its entry in
`cleaner-offset-checkpoint` (the log start if none, or if the entry fell outside the log) and ends
at the first uncleanable offset, rounded down to a segment: the active segment, the last stable
offset (it includes the high watermark) and the first segment holding a record younger than
min.compaction.lag.ms all stop it. The log with the largest cleanable / (clean + cleanable)
bytes is cleaned if that ratio exceeds min.cleanable.dirty.ratio, or if a dirty segment began
longer than max.compaction.lag.ms ago. (The active segment rolls only on append, after segment.ms
or segment.bytes: until then its records cannot be cleaned.)

Cleaning one log (Cleaner.doClean):
1. an offset map, key -> offset of its last record, over the dirty section (batches of aborted
   transactions left out), held within log.cleaner.dedupe.buffer.size; a full map ends the round
   early and the next round starts where it stopped;
2. every segment below the end of the map is recopied, in groups that fit one segment, into a
   `.cleaned` segment keeping: records past the map; keyed records at or after their key's offset
   in the map, tombstones only until their batch's delete horizon. Keyless records are dropped
   (compacted topics refuse them on produce). Offsets never change: a batch keeps its base offset,
   last offset delta, leader epoch, producer fields and base sequence (and its base timestamp, so
   the records' deltas stay valid); a batch that keeps all its records is copied byte for byte;
3. a batch that keeps a tombstone, or a marker whose transaction has no data left, gets a delete
   horizon the first time it is cleaned (KIP-534): attribute bit 6 set and baseTimestamp =
   now + delete.retention.ms; a round after the horizon drops them;
4. transactions: aborted batches go at once; a marker stays until no batch of its transaction is
   left, then follows the tombstone horizon; the cleaned .txnindex lists the aborted transactions
   whose markers stay;
5. the last batch of each active producer is kept, emptied if need be, so its sequence and epoch
   survive. So is the last batch of each group: the cleaned segment then ends where its group
   ended, which is what crash recovery reads to know which segments a `.swap` replaces (Kafka keeps
   only the round's last batch);
6. the cleaned segment is flushed and swapped in (UnifiedLog.replace_segments: `.cleaned` ->
   `.swap` -> old segments `.deleted` -> final names); when every group is done the checkpoint
   moves to the end of the map.

Scheduling. The broker is one asyncio thread and UnifiedLog is not thread-safe, so cleaning runs on
the event loop as a generator of small steps (one batch each). The background task yields to the
loop every 3 ms (and sleeps to honour log.cleaner.io.max.bytes.per.second), so an append or a
fetch waits about one slice. A worker thread would gain nothing under the GIL and
would race retention, truncation and topic deletion closing the files it reads. While the task is
suspended the log may change: on resuming, and before each swap, the cleaner checks that the log
is still registered, compacted and untruncated with its segments in place, and gives the round up
otherwise (the checkpoint stays; the next round starts over).

Never touches the active segment or anything at or above the last stable offset; knows nothing of
partition leadership or the network.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import math
import os
import struct
import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from kbroker.log.checkpoint import (
    CLEANER_OFFSET_CHECKPOINT_FILE,
    MalformedCheckpointError,
    read_offset_checkpoint,
    write_offset_checkpoint,
)
from kbroker.log.compression import CODEC_NONE, compress
from kbroker.log.config import LONG_MAX
from kbroker.log.errors import KafkaStorageException
from kbroker.log.index import AbortedTxn, TransactionIndex
from kbroker.log.records import (
    CONTROL_FLAG_MASK,
    CRC_OFFSET,
    DELETE_HORIZON_FLAG_MASK,
    HEADER_STRUCT,
    INT32_MAX,
    LOG_APPEND_TIME,
    LOG_OVERHEAD,
    MAGIC_V2,
    RECORD_BATCH_OVERHEAD,
    RECORDS_OFFSET,
    TIMESTAMP_TYPE_MASK,
    TRANSACTIONAL_FLAG_MASK,
    BatchHeader,
    ControlRecordType,
    CorruptRecordError,
    batch_records_bytes,
    compute_batch_crc,
    encode_varint,
    parse_header,
    read_varint,
)
from kbroker.log.segment import LogSegment, now_ms
from kbroker.log.unified_log import UnifiedLog

log = logging.getLogger(__name__)

TopicPartition = tuple[str, int]


class CleanableLogs(Protocol):
    """What the cleaner reads of the LogManager that owns it: its logs and which dir holds each.
    A Protocol, so this module does not import log_manager.py (which imports this one)."""

    @property
    def log_dirs(self) -> list[str]: ...

    @property
    def logs(self) -> Mapping[TopicPartition, UnifiedLog]: ...

    def log_dir_of(self, topic: str, partition: int) -> str | None: ...

ScannedRecord = tuple[int, int, int, int, bytes | None, bool]
# Cleaning steps yield the bytes they processed, or a blocking call (an fsync) for the driver to run
# (the background task runs it in a worker thread); they are sent True when the loop ran other
# code since the previous step (the log may have changed).
Step = int | Callable[[], None]
Steps = Generator[Step, bool | None, None]

MIB = 1024 * 1024
# What one offset map entry costs in CPython 3.11 besides the key's bytes: the dict slot and index,
# the bytes object's header and the offset int (tracemalloc: 117 bytes each for 200,000 keys).
OFFSET_MAP_ENTRY_OVERHEAD = 120
# Longest stretch of cleaning between two yields to the event loop, and the pause at each yield.
# A task that only yields (sleep(0)) is back in the ready queue before the callbacks and tasks its
# slice made ready, so a request would wait two or three slices; a short timer lets the loop run
# everything ready first (measured: ~1 slice of extra latency, ~6% less cleaning throughput).
STEP_SLICE_S = 0.003
STEP_PAUSE_S = 0.0002
_MIN_READ_CHUNK = 64 * 1024
_CONTROL_KEY = struct.Struct(">hh")
_U32 = struct.Struct(">I")


@dataclass(frozen=True, slots=True)
class CleanerConfig:
    """Broker-level cleaner settings (Kafka's CleanerConfig), under their Kafka names."""

    enable: bool = True  # log.cleaner.enable
    threads: int = 1  # log.cleaner.threads: 0 disables cleaning; cleaning runs as one loop task
    dedupe_buffer_size: int = 128 * MIB  # log.cleaner.dedupe.buffer.size (over all threads)
    dedupe_buffer_load_factor: float = 0.9  # log.cleaner.io.buffer.load.factor
    io_buffer_size: int = 512 * 1024  # log.cleaner.io.buffer.size (over all threads)
    max_io_bytes_per_second: float = math.inf  # log.cleaner.io.max.bytes.per.second
    backoff_ms: int = 15000  # log.cleaner.backoff.ms

    @classmethod
    def from_settings(cls, get: Callable[[str], Any]) -> CleanerConfig:
        """Read the settings by their Kafka names through `get` (e.g. KafkaConfig.get)."""
        return cls(
            enable=bool(get("log.cleaner.enable")),
            threads=int(get("log.cleaner.threads")),
            dedupe_buffer_size=int(get("log.cleaner.dedupe.buffer.size")),
            dedupe_buffer_load_factor=float(get("log.cleaner.io.buffer.load.factor")),
            io_buffer_size=int(get("log.cleaner.io.buffer.size")),
            max_io_bytes_per_second=float(get("log.cleaner.io.max.bytes.per.second")),
            backoff_ms=int(get("log.cleaner.backoff.ms")),
        )

    @property
    def runs(self) -> bool:
        return self.enable and self.threads > 0

    @property
    def map_memory(self) -> int:
        """Kafka gives each cleaner thread dedupe.buffer.size / threads for its map."""
        return self.dedupe_buffer_size // max(self.threads, 1)

    @property
    def read_chunk(self) -> int:
        """Kafka's read buffer: io.buffer.size / threads / 2 (the other half is for writing)."""
        return max(self.io_buffer_size // max(self.threads, 1) // 2, _MIN_READ_CHUNK)


class OffsetMap:
    """Key -> offset of its last record in the dirty section, and the last offset mapped.

    Kafka's SkimpyOffsetMap stores MD5 hashes in a fixed buffer; a dict of the keys themselves is
    exact and faster in Python, so its memory is estimated per entry and capped at
    `memory * load_factor`."""

    def __init__(self, memory: int, load_factor: float = 0.9):
        self.offsets: dict[bytes, int] = {}
        self.latest_offset = -1
        self.bytes_used = 0
        self.capacity_bytes = memory * load_factor

    def put(self, key: bytes, offset: int) -> bool:
        """Map `key` to `offset`; False (nothing changed) when a new key does not fit."""
        offsets = self.offsets
        if key not in offsets:
            cost = len(key) + OFFSET_MAP_ENTRY_OVERHEAD
            if offsets and self.bytes_used + cost > self.capacity_bytes:
                return False
            self.bytes_used += cost
        offsets[key] = offset
        self.latest_offset = offset
        return True

    def get(self, key: bytes) -> int:
        return self.offsets.get(key, -1)

    def update_latest_offset(self, offset: int) -> None:
        self.latest_offset = offset

    @property
    def size(self) -> int:
        return len(self.offsets)

    @property
    def utilization(self) -> float:
        return self.bytes_used / self.capacity_bytes if self.capacity_bytes else 1.0


# ---------------------------------------------------------------------------------------------
# Records and batches


def _read_varint(data: bytes, position: int) -> tuple[int, int]:
    """records.read_varint with the one- and two-byte cases inline (nearly every length, delta
    and key size in a batch)."""
    byte = data[position]
    if byte < 0x80:
        return (byte >> 1) ^ -(byte & 1), position + 1
    second = data[position + 1]
    if second < 0x80:
        raw = (byte & 0x7F) | (second << 7)
        return (raw >> 1) ^ -(raw & 1), position + 2
    return read_varint(data, position)


def scan_records(data: bytes, start: int, end: int, count: int) -> list[ScannedRecord]:
    """(start, end, offset delta, timestamp delta, key, is tombstone) of each of the `count`
    records in data[start:end] (a batch's records section, decompressed). Reads only what the
    cleaner needs; headers are skipped by length. Raises CorruptRecordError on bad structure."""
    result: list[ScannedRecord] = []
    append = result.append
    position = start
    try:
        for _ in range(count):
            record_start = position
            length, position = _read_varint(data, position)
            record_end = position + length
            # Skip the record attributes (unused in v2).
            timestamp_delta, position = _read_varint(data, position + 1)
            offset_delta, position = _read_varint(data, position)
            key_length, position = _read_varint(data, position)
            key = None
            if key_length >= 0:
                key = data[position : position + key_length]
                position += key_length
            if length < 0 or position >= record_end or record_end > end:
                raise CorruptRecordError(f"record at position {record_start} runs past its batch")
            # A value length of -1 (a tombstone) is the single zig-zag varint byte 0x01.
            append((record_start, record_end, offset_delta, timestamp_delta, key, data[position] == 1))
            position = record_end
    except IndexError as err:
        raise CorruptRecordError("batch records end before their count") from err
    if position != end:
        raise CorruptRecordError(f"{end - position} bytes after the last record of a batch")
    return result


def has_delete_horizon(header: BatchHeader) -> bool:
    """Bit 6 of the attributes: baseTimestamp is the delete horizon (KIP-534)."""
    return bool(header.attributes & DELETE_HORIZON_FLAG_MASK)


def _record_with_timestamp_delta(data: bytes, start: int, end: int, timestamp_delta: int) -> bytes:
    """The record at data[start:end] with a new timestamp delta (its length prefix redone)."""
    _length, attributes_at = read_varint(data, start)
    _old_delta, rest_at = read_varint(data, attributes_at + 1)
    body = data[attributes_at : attributes_at + 1] + encode_varint(timestamp_delta) + data[rest_at:end]
    return encode_varint(len(body)) + body


def _batch_bytes(
    original: BatchHeader,
    attributes: int,
    base_timestamp: int,
    max_timestamp: int,
    record_count: int,
    body: bytes,
) -> bytes:
    """A v2 batch with `original`'s offsets, epoch and producer fields around `body`."""
    batch = bytearray(RECORD_BATCH_OVERHEAD + len(body))
    HEADER_STRUCT.pack_into(
        batch,
        0,
        original.base_offset,
        len(batch) - LOG_OVERHEAD,
        original.partition_leader_epoch,
        MAGIC_V2,
        0,
        attributes,
        original.last_offset_delta,
        base_timestamp,
        max_timestamp,
        original.producer_id,
        original.producer_epoch,
        original.base_sequence,
        record_count,
    )
    batch[RECORDS_OFFSET:] = body
    _U32.pack_into(batch, CRC_OFFSET, compute_batch_crc(batch, 0, len(batch)))
    return bytes(batch)


def empty_batch(original: BatchHeader) -> bytes:
    """`original`'s header with no records (Kafka's writeEmptyHeader): it keeps the offsets,
    sequence and epoch a producer's state needs."""
    attributes = original.attributes & (TIMESTAMP_TYPE_MASK | TRANSACTIONAL_FLAG_MASK | CONTROL_FLAG_MASK)
    return _batch_bytes(original, attributes, original.max_timestamp, original.max_timestamp, 0, b"")


def batch_records(data: bytes, header: BatchHeader) -> tuple[bytes, list[ScannedRecord]]:
    """(bytes the record spans point into, scanned records) of the batch at `header` in `data`:
    `data` itself when uncompressed, else the decompressed records section."""
    if header.compression_codec == CODEC_NONE:
        return data, scan_records(data, header.position + RECORDS_OFFSET, header.end, header.record_count)
    records = bytes(batch_records_bytes(data, header))
    return records, scan_records(records, 0, len(records), header.record_count)


def _control_type(data: bytes, header: BatchHeader) -> ControlRecordType | None:
    """The marker type of a control batch; None for one the cleaner already emptied."""
    if header.record_count == 0:
        return None
    key = batch_records(data, header)[1][0][4]
    if key is None or len(key) < _CONTROL_KEY.size:
        raise CorruptRecordError(f"control batch at offset {header.base_offset} without a valid key")
    try:
        return ControlRecordType(_CONTROL_KEY.unpack_from(key)[1])
    except ValueError:
        return None  # an unknown control type: kept, never decides a transaction (as Kafka)


class CleanedTransactionMetadata:
    """Transactions seen while the cleaner walks the log in offset order: decides which batches
    belong to aborted transactions and when markers may go, and fills the cleaned .txnindex."""

    def __init__(self) -> None:
        self._pending: list[tuple[int, AbortedTxn]] = []  # heap by first offset
        self._known: set[AbortedTxn] = set()
        self._ongoing_aborted: dict[int, tuple[AbortedTxn, bool]] = {}  # pid -> (txn, batch seen)
        self._ongoing_committed: set[int] = set()
        self.cleaned_index: TransactionIndex | None = None

    def add_aborted_transactions(self, transactions: list[AbortedTxn]) -> None:
        for txn in transactions:
            if txn not in self._known:
                self._known.add(txn)
                heapq.heappush(self._pending, (txn.first_offset, txn))

    def _consume_aborted_up_to(self, offset: int) -> None:
        pending = self._pending
        while pending and pending[0][0] <= offset:
            _first, txn = heapq.heappop(pending)
            self._ongoing_aborted.setdefault(txn.producer_id, (txn, False))

    def on_control_batch_read(self, header: BatchHeader, control_type: ControlRecordType | None) -> bool:
        """True if this marker may be discarded (no batch of its transaction is left)."""
        self._consume_aborted_up_to(header.last_offset)
        if header.record_count == 0:
            return True  # already emptied by an earlier round
        if control_type is ControlRecordType.ABORT:
            txn, batch_seen = self._ongoing_aborted.pop(header.producer_id, (None, False))
            if txn is not None and batch_seen:
                if self.cleaned_index is not None:
                    self.cleaned_index.append(txn)
                return False
            return True
        if control_type is ControlRecordType.COMMIT:
            if header.producer_id in self._ongoing_committed:
                self._ongoing_committed.discard(header.producer_id)
                return False
            return True
        return False

    def on_batch_read(self, header: BatchHeader) -> bool:
        """True if this data batch belongs to an aborted transaction."""
        self._consume_aborted_up_to(header.last_offset)
        if not header.is_transactional:
            return False
        aborted = self._ongoing_aborted.get(header.producer_id)
        if aborted is not None:
            self._ongoing_aborted[header.producer_id] = (aborted[0], True)
            return True
        self._ongoing_committed.add(header.producer_id)
        return False


@dataclass(slots=True)
class CleanerStats:
    bytes_read: int = 0
    bytes_written: int = 0
    messages_read: int = 0
    messages_written: int = 0
    map_bytes_read: int = 0
    map_messages_read: int = 0
    invalid_messages: int = 0
    started: float = 0.0
    map_done: float = 0.0
    finished: float = 0.0

    @property
    def elapsed_s(self) -> float:
        return max(self.finished - self.started, 1e-9)


@dataclass(slots=True)
class LogToClean:
    """A compacted log with its cleanable range (Kafka's LogToClean); offsets are inclusive-exclusive."""

    topic_partition: TopicPartition
    log: UnifiedLog
    first_dirty_offset: int
    first_uncleanable_offset: int  # base offset of the first segment that may not be cleaned
    clean_bytes: int
    cleanable_bytes: int
    need_compaction_now: bool

    @property
    def total_bytes(self) -> int:
        return self.clean_bytes + self.cleanable_bytes

    @property
    def cleanable_ratio(self) -> float:
        return self.cleanable_bytes / self.total_bytes if self.total_bytes else 0.0


def cleanable_offsets(log: UnifiedLog, checkpoint: int | None, now: int) -> tuple[int, int]:
    """(first dirty offset, first uncleanable offset) of `log` (LogCleanerManager.cleanableOffsets)."""
    first_dirty = log.log_start_offset if checkpoint is None else checkpoint
    if first_dirty < log.log_start_offset or first_dirty > log.log_end_offset:
        first_dirty = log.log_start_offset
    limits = [log.last_stable_offset, log.active_segment.base_offset]
    min_lag = max(log.config.min_compaction_lag_ms, 0)
    if min_lag > 0:
        for segment in _non_active_segments_from(log, first_dirty):
            if segment.largest_timestamp > now - min_lag:
                limits.append(segment.base_offset)
                break
    return first_dirty, max(first_dirty, min(limits))


def _non_active_segments_from(log: UnifiedLog, offset: int) -> list[LogSegment]:
    return log.log_segments_between(offset, log.active_segment.base_offset)


def max_compaction_delay(log: UnifiedLog, first_dirty: int, now: int) -> int:
    """How long past max.compaction.lag.ms the oldest dirty segment's first batch is (0: not)."""
    first_batches = (next(s.iter_batch_headers(0), None) for s in _non_active_segments_from(log, first_dirty))
    first_timestamps = [h.max_timestamp for h in first_batches if h is not None and h.max_timestamp > 0]
    if not first_timestamps:
        return 0
    clean_until = now - max(log.config.max_compaction_lag_ms, 0)
    earliest = min(first_timestamps)
    return clean_until - earliest if earliest < clean_until else 0


def log_to_clean(
    topic_partition: TopicPartition, log: UnifiedLog, checkpoint: int | None, now: int
) -> LogToClean:
    first_dirty, uncleanable = cleanable_offsets(log, checkpoint, now)
    # Whole segments only: the first uncleanable one is the segment holding `uncleanable`.
    non_active = _non_active_segments_from(log, uncleanable)
    first_uncleanable = non_active[0].base_offset if non_active else log.active_segment.base_offset
    clean_bytes = sum(segment.size for segment in log.log_segments_between(-1, first_dirty))
    cleanable_bytes = sum(
        segment.size
        for segment in log.log_segments_between(min(first_dirty, first_uncleanable), first_uncleanable)
    )
    # Reading each dirty segment's first batch costs I/O: only when a maximum lag is set.
    needs_now = (
        log.config.max_compaction_lag_ms < LONG_MAX and max_compaction_delay(log, first_dirty, now) > 0
    )
    return LogToClean(
        topic_partition, log, first_dirty, first_uncleanable, clean_bytes, cleanable_bytes, needs_now
    )


def group_segments_by_size(
    segments: list[LogSegment], max_size: int, max_index_size: int, first_uncleanable_offset: int
) -> list[list[LogSegment]]:
    """Consecutive segments merged while their logs fit `max_size`, their indexes `max_index_size`
    and their offsets a segment's 32-bit relative range (Kafka's groupSegmentsBySize)."""
    groups: list[list[LogSegment]] = []
    index = 0
    while index < len(segments):
        group = [segments[index]]
        log_size = segments[index].size
        index_size = segments[index].offset_index.file_size()
        time_index_size = segments[index].time_index.file_size()
        index += 1
        while index < len(segments):
            candidate = segments[index]
            next_base = (
                segments[index + 1].base_offset if index + 1 < len(segments) else first_uncleanable_offset
            )
            fits = (
                log_size + candidate.size <= max_size
                and index_size + candidate.offset_index.file_size() <= max_index_size
                and time_index_size + candidate.time_index.file_size() <= max_index_size
                and (candidate.size == 0 or next_base - 1 - group[0].base_offset <= INT32_MAX)
            )
            if not fits:
                break
            group.append(candidate)
            log_size += candidate.size
            index_size += candidate.offset_index.file_size()
            time_index_size += candidate.time_index.file_size()
            index += 1
        groups.append(group)
    return groups


class CleaningAbortedError(Exception):
    """The log changed under the cleaner (truncated, deleted, segments removed): round given up."""


class _BatchWriter:
    """Collects output batches and appends them to the cleaned segment a chunk at a time."""

    def __init__(self, segment: LogSegment, chunk_size: int):
        self.segment = segment
        self.chunk_size = chunk_size
        self.buffer = bytearray()
        self.headers: list[BatchHeader] = []
        self.bytes_written = 0

    def add(self, batch: bytes | memoryview) -> None:
        self.headers.append(parse_header(batch)._replace(position=len(self.buffer)))
        self.buffer += batch
        if len(self.buffer) >= self.chunk_size:
            self.flush()

    def flush(self) -> None:
        if self.headers:
            self.segment.append_batches(self.buffer, self.headers)
            self.bytes_written += len(self.buffer)
            self.buffer = bytearray()
            self.headers = []


class Cleaner:
    """One cleaning round of one log (Kafka's Cleaner.doClean), as a generator of small steps.

    `steps()` yields the bytes each step processed, or a blocking call for the caller to make;
    the caller runs it to the end (or gives up, then calls `abort()`). `is_still_valid(segments)` is asked when a step is resumed after the
    loop ran other code, and before each swap; CleaningAbortedError ends the round."""

    def __init__(
        self,
        to_clean: LogToClean,
        config: CleanerConfig,
        now: int,
        is_still_valid: Callable[[list[LogSegment]], bool],
    ):
        self.to_clean = to_clean
        self.log = to_clean.log
        self.config = config
        self.now = now
        self.is_still_valid = is_still_valid
        self.offset_map = OffsetMap(config.map_memory, config.dedupe_buffer_load_factor)
        self.stats = CleanerStats()
        self.end_offset = to_clean.first_dirty_offset
        self._cleaned: LogSegment | None = None
        self._transactions = CleanedTransactionMetadata()
        self._last_records_of_producers: dict[int, tuple[int | None, int]] = {}
        self._delete_retention_ms = self.log.config.delete_retention_ms

    def steps(self) -> Steps:
        """Build the offset map, then clean and swap each group; sets `end_offset` at the end."""
        self.stats.started = time.monotonic()
        yield from self._build_offset_map()
        end_offset = self.offset_map.latest_offset + 1
        self.stats.map_done = time.monotonic()
        segments = self.log.log_segments_between(0, end_offset)
        groups = group_segments_by_size(
            segments,
            self.log.config.segment_bytes,
            self.log.config.segment_index_bytes,
            self.to_clean.first_uncleanable_offset,
        )
        for group in groups:
            yield from self._clean_group(group)
        self.end_offset = end_offset
        self.stats.finished = time.monotonic()

    def abort(self) -> None:
        """Remove the half-written cleaned segment, if any."""
        if self._cleaned is not None:
            self._cleaned.delete()
            self._cleaned = None

    # -- the offset map

    def _build_offset_map(self) -> Steps:
        start, end = self.to_clean.first_dirty_offset, self.to_clean.first_uncleanable_offset
        dirty = self.log.log_segments_between(start, end)
        transactions = CleanedTransactionMetadata()
        transactions.add_aborted_transactions(self.log.collect_aborted_transactions(start, end))
        offset_map = self.offset_map
        for position, segment in enumerate(dirty):
            next_start = dirty[position + 1].base_offset if position + 1 < len(dirty) else end
            full = yield from self._map_segment(segment, start, transactions, dirty)
            if full:
                return
            offset_map.update_latest_offset(next_start - 1)

    def _map_segment(
        self,
        segment: LogSegment,
        start: int,
        transactions: CleanedTransactionMetadata,
        dirty: list[LogSegment],
    ) -> Generator[int, bool | None, bool]:
        """Map one segment's keys from offset `start` on; returns True if the map filled up."""
        offset_map = self.offset_map
        stats = self.stats
        begin = segment.offset_index.lookup(start).position if start > segment.base_offset else 0
        for _position, header, data in segment.iter_full_batches(begin, self.config.read_chunk):
            if header.is_control:
                transactions.on_control_batch_read(header, _control_type(data, header))
            elif not transactions.on_batch_read(header):
                base_offset = header.base_offset
                for _start, _end, offset_delta, _ts, key, _tombstone in batch_records(data, header)[1]:
                    offset = base_offset + offset_delta
                    if key is not None and offset >= start and not offset_map.put(key, offset):
                        return True
                stats.map_messages_read += header.record_count
            if header.last_offset >= start:
                offset_map.update_latest_offset(header.last_offset)
            stats.map_bytes_read += header.size
            resumed = yield header.size
            if resumed and not self.is_still_valid(dirty):
                raise CleaningAbortedError(f"{self.log} changed while its offset map was built")
        return False

    # -- recopying

    def _clean_group(self, group: list[LogSegment]) -> Steps:
        unified_log = self.log
        cleaned = self._cleaned = unified_log.create_cleaned_segment(group[0].base_offset)
        self._transactions.cleaned_index = cleaned.txn_index
        self._last_records_of_producers = unified_log.last_records_of_active_producers()
        writer = _BatchWriter(cleaned, self.config.read_chunk)
        for position, segment in enumerate(group):
            is_last_segment = position + 1 == len(group)
            upper = group[position + 1].base_offset if not is_last_segment else segment.read_next_offset()
            self._transactions.add_aborted_transactions(
                unified_log.collect_aborted_transactions(segment.base_offset, upper)
            )
            segment_size = segment.size
            for file_position, header, data in segment.iter_full_batches(0, self.config.read_chunk):
                ends_group = is_last_segment and file_position + header.size == segment_size
                batch = self._retained_batch(header, data, keep_even_if_empty=ends_group)
                if batch is not None:
                    writer.add(batch)
                self.stats.bytes_read += header.size
                self.stats.messages_read += header.record_count
                resumed = yield header.size
                if resumed and not self.is_still_valid(group):
                    raise CleaningAbortedError(f"{unified_log} changed while it was cleaned")
        writer.flush()
        cleaned.on_become_inactive_segment()
        # The cleaned files are the cleaner's alone until the swap: a worker thread may fsync them,
        # through descriptors duplicated here on the loop (OPEN_FILES is the loop's alone).
        resumed = yield cleaned.flush_elsewhere(check_faults=True)
        if resumed and not self.is_still_valid(group):
            raise CleaningAbortedError(f"{unified_log} changed while its cleaned segment was flushed")
        # Keep the last modified time of the originals (it stands in for record times in retention).
        cleaned.set_last_modified_ms(group[-1].last_modified_ms)
        if not self.is_still_valid(group):
            raise CleaningAbortedError(f"{unified_log} changed before its cleaned segment was swapped in")
        unified_log.replace_segments(cleaned, group)
        self._cleaned = None
        self.stats.bytes_written += writer.bytes_written
        log.debug("swapped cleaned segment %d in for %s of %s", cleaned.base_offset, group, unified_log)

    def _is_last_batch_of_producer(self, header: BatchHeader) -> bool:
        last = self._last_records_of_producers.get(header.producer_id)
        if last is None or not header.has_producer_id:
            return False
        last_data_offset, producer_epoch = last
        if last_data_offset is not None:
            return header.last_offset == last_data_offset
        return header.is_control and header.producer_epoch == producer_epoch

    def _retained_batch(self, header: BatchHeader, data: bytes, keep_even_if_empty: bool) -> bytes | None:
        """What stays of one batch: itself, a rewritten batch, an empty header, or None."""
        transactions = self._transactions
        if header.is_control:
            can_discard = transactions.on_control_batch_read(header, _control_type(data, header))
            horizon_passed = has_delete_horizon(header) and header.base_timestamp <= self.now
            discard_records = can_discard and horizon_passed
            marker_of_empty_txn = can_discard
        else:
            discard_records = transactions.on_batch_read(header)
            marker_of_empty_txn = False
        keep_empty = keep_even_if_empty or self._is_last_batch_of_producer(header)
        if discard_records:
            return empty_batch(header) if keep_empty else None
        if header.is_control:
            return self._with_delete_horizon_if_needed(header, data, marker_of_empty_txn)
        return self._filter_records(header, data, keep_empty)

    def _with_delete_horizon_if_needed(self, header: BatchHeader, data: bytes, needs_horizon: bool) -> bytes:
        """A kept marker batch, stamped with a delete horizon once its transaction is gone."""
        if not needs_horizon or has_delete_horizon(header):
            return data[header.position : header.end]
        source, records = batch_records(data, header)
        return self._rewritten(header, source, records, set_horizon=True)

    def _filter_records(self, header: BatchHeader, data: bytes, keep_empty: bool) -> bytes | None:
        offsets = self.offset_map.offsets
        latest_offset = self.offset_map.latest_offset
        retain_deletes = not has_delete_horizon(header) or self.now < header.base_timestamp
        base_offset = header.base_offset
        source, records = batch_records(data, header)
        retained = []
        keeps_tombstone = False
        for record in records:
            offset = base_offset + record[2]
            key = record[4]
            if offset <= latest_offset:
                if key is None:
                    self.stats.invalid_messages += 1
                    continue
                if offset < offsets.get(key, -1) or (record[5] and not retain_deletes):
                    continue
            retained.append(record)
            keeps_tombstone = keeps_tombstone or record[5]
        self.stats.messages_written += len(retained)
        set_horizon = keeps_tombstone and not has_delete_horizon(header)
        if len(retained) == header.record_count and not set_horizon:
            return data[header.position : header.end]
        if not retained:
            return empty_batch(header) if keep_empty else None
        return self._rewritten(header, source, retained, set_horizon)

    def _rewritten(
        self, header: BatchHeader, source: bytes, retained: list[ScannedRecord], set_horizon: bool
    ) -> bytes:
        """`header`'s batch holding only `retained` (spans of `source`), recompressed with its codec.
        With `set_horizon` the base timestamp becomes the delete horizon and the records' timestamp
        deltas are rewritten against it."""
        log_append_time = header.timestamp_type == LOG_APPEND_TIME
        timestamps = [header.base_timestamp + record[3] for record in retained]
        max_timestamp = header.max_timestamp if log_append_time else max(timestamps)
        attributes = header.attributes
        base_timestamp = header.base_timestamp
        if set_horizon:
            base_timestamp = self.now + self._delete_retention_ms
            attributes |= DELETE_HORIZON_FLAG_MASK
            body = b"".join(
                _record_with_timestamp_delta(source, record[0], record[1], timestamp - base_timestamp)
                for record, timestamp in zip(retained, timestamps, strict=True)
            )
        else:
            body = b"".join(source[record[0] : record[1]] for record in retained)
        if header.compression_codec != CODEC_NONE:
            # At the codec's default level, whatever the topic's compression.<codec>.level, as
            # Kafka's MemoryRecords.filterTo (Compression.of(batch's codec).build()) does.
            body = compress(header.compression_codec, body)
        return _batch_bytes(header, attributes, base_timestamp, max_timestamp, len(retained), body)


# ---------------------------------------------------------------------------------------------
# The cleaner of a LogManager


class LogCleaner:
    """Chooses and cleans compacted logs of a LogManager (Kafka's LogCleaner + LogCleanerManager).

    `clean_filthiest_log(now)` runs one whole round synchronously (tests, tools); `start()` runs
    rounds forever as an asyncio task on the running loop, sleeping log.cleaner.backoff.ms when
    no log needs cleaning; `shutdown()` stops it and removes a half-written cleaned segment."""

    def __init__(self, log_manager: CleanableLogs, config: CleanerConfig | None = None):
        self.log_manager = log_manager
        self.config = config or CleanerConfig()
        self.checkpoints: dict[TopicPartition, int] = {}
        self.uncleanable: set[TopicPartition] = set()
        self.last_stats: CleanerStats | None = None
        self._task: asyncio.Task | None = None
        self._in_progress: Cleaner | None = None
        for log_dir in log_manager.log_dirs:
            self.checkpoints.update(self._read_checkpoint(log_dir))

    # -- checkpoints

    @staticmethod
    def _read_checkpoint(log_dir: str) -> dict[TopicPartition, int]:
        try:
            return read_offset_checkpoint(os.path.join(log_dir, CLEANER_OFFSET_CHECKPOINT_FILE))
        except MalformedCheckpointError as err:
            log.warning("ignoring %s: %s", CLEANER_OFFSET_CHECKPOINT_FILE, err)
            return {}

    def _write_checkpoint(self, log_dir: str) -> None:
        """The entries of the logs held in `log_dir` (others are forgotten, as Kafka's)."""
        manager = self.log_manager
        entries = {
            key: offset
            for key, offset in self.checkpoints.items()
            if key in manager.logs and manager.log_dir_of(*key) == log_dir
        }
        write_offset_checkpoint(os.path.join(log_dir, CLEANER_OFFSET_CHECKPOINT_FILE), entries)

    def alter_checkpoint_dir(self, source_dir: str, destination_dir: str) -> None:
        """A log moved between log dirs (Kafka's alterCheckpointDir): its entry leaves the source
        dir's file for the destination's; the log manager already holds it in the destination."""
        self._write_checkpoint(source_dir)
        self._write_checkpoint(destination_dir)

    def forget_log(self, topic_partition: TopicPartition, log_dir: str) -> None:
        """A deleted log: drop its checkpoint entry (a new log of the same name starts dirty)."""
        self.uncleanable.discard(topic_partition)
        if self.checkpoints.pop(topic_partition, None) is not None:
            self._write_checkpoint(log_dir)

    def _apply_truncations(self) -> None:
        """Lower the checkpoint of logs truncated since the last look (maybeTruncateCheckpoint)."""
        for key, unified_log in self.log_manager.logs.items():
            truncated_to = unified_log.min_truncated_offset
            if truncated_to is None:
                continue
            unified_log.min_truncated_offset = None
            log_dir = self.log_manager.log_dir_of(*key)  # never None for a log in `logs`
            if log_dir is not None and self.checkpoints.get(key, 0) > truncated_to:
                self.checkpoints[key] = truncated_to
                self._write_checkpoint(log_dir)

    # -- choosing

    def grab_filthiest_compacted_log(self, now: int) -> LogToClean | None:
        self._apply_truncations()
        candidates = []
        for key, unified_log in self.log_manager.logs.items():
            if not unified_log.config.compact or key in self.uncleanable:
                continue
            candidate = log_to_clean(key, unified_log, self.checkpoints.get(key), now)
            ratio_reached = candidate.cleanable_ratio > unified_log.config.min_cleanable_dirty_ratio
            if candidate.total_bytes > 0 and (
                ratio_reached or (candidate.need_compaction_now and candidate.cleanable_bytes > 0)
            ):
                candidates.append(candidate)
        return max(candidates, key=lambda c: c.cleanable_ratio) if candidates else None

    # -- cleaning

    def clean_filthiest_log(self, now: int | None = None) -> LogToClean | None:
        """Clean the dirtiest log that needs it, synchronously; the log cleaned or None."""
        now = now_ms() if now is None else now
        to_clean = self.grab_filthiest_compacted_log(now)
        if to_clean is None:
            return None
        cleaner = self._begin(to_clean, now)
        try:
            for step in cleaner.steps():  # nothing else runs in between: no need to re-check the log
                if callable(step):
                    step()
        except Exception as err:
            self._fail(cleaner, err)
        else:
            self._done(cleaner)
        return to_clean

    def _begin(self, to_clean: LogToClean, now: int) -> Cleaner:
        key = to_clean.topic_partition

        def is_still_valid(segments: list[LogSegment]) -> bool:
            unified_log = to_clean.log
            if self.log_manager.logs.get(key) is not unified_log or not unified_log.config.compact:
                return False
            if unified_log.min_truncated_offset is not None:
                return False
            active = unified_log.active_segment
            return all(
                unified_log.segments.get(segment.base_offset) is segment and segment is not active
                for segment in segments
            )

        cleaner = Cleaner(to_clean, self.config, now, is_still_valid)
        self._in_progress = cleaner
        log.info(
            "cleaning %s-%d: dirty section [%d, %d), %.1f%% of %d bytes cleanable",
            *key,
            to_clean.first_dirty_offset,
            to_clean.first_uncleanable_offset,
            100 * to_clean.cleanable_ratio,
            to_clean.total_bytes,
        )
        return cleaner

    def _done(self, cleaner: Cleaner) -> None:
        self._in_progress = None
        key = cleaner.to_clean.topic_partition
        self.last_stats = stats = cleaner.stats
        self.checkpoints[key] = cleaner.end_offset
        log_dir = self.log_manager.log_dir_of(*key)
        if log_dir is not None:
            self._write_checkpoint(log_dir)
        log.info(
            "cleaned %s-%d up to offset %d: %.1f MB read in %.2f s (%.1f MB/s), %.1f MB written, "
            "%d of %d records kept, offset map %.0f%% full",
            *key,
            cleaner.end_offset,
            stats.bytes_read / MIB,
            stats.elapsed_s,
            stats.bytes_read / MIB / stats.elapsed_s,
            stats.bytes_written / MIB,
            stats.messages_written,
            stats.messages_read,
            100 * cleaner.offset_map.utilization,
        )

    def _fail(self, cleaner: Cleaner, err: BaseException) -> None:
        self._in_progress = None
        cleaner.abort()
        key = cleaner.to_clean.topic_partition
        if isinstance(err, CleaningAbortedError):
            log.info("cleaning of %s-%d given up: %s", *key, err)
        elif isinstance(err, OSError):  # the log directory goes offline, with one line of its own
            cleaner.to_clean.log.io_failed(f"Failed to clean up log for {key[0]}-{key[1]}", err)
        elif isinstance(err, KafkaStorageException):
            log.info("cleaning of %s-%d given up: %s", *key, err)
        else:
            # Kafka marks the partition uncleanable until it is deleted or moved (or we restart).
            self.uncleanable.add(key)
            log.error("cleaning %s-%d failed; it will not be cleaned again", *key, exc_info=err)

    # -- the background task

    def start(self, config: CleanerConfig | None = None) -> None:
        """Run the cleaning task on the running loop unless it is running or cleaning is disabled."""
        if config is not None:
            self.config = config
        if not self.config.runs or (self._task is not None and not self._task.done()):
            return
        self._task = asyncio.get_running_loop().create_task(self._run(), name="kafka-log-cleaner")

    async def _run(self) -> None:
        while True:
            try:
                to_clean = self.grab_filthiest_compacted_log(now_ms())
            except Exception:  # e.g. an I/O error reading a segment: try again after the backoff
                log.exception("choosing a log to clean failed")
                to_clean = None
            if to_clean is None:
                await asyncio.sleep(self.config.backoff_ms / 1000)
                continue
            cleaner = self._begin(to_clean, now_ms())
            try:
                await self._drive(cleaner.steps())
            except asyncio.CancelledError:
                self._in_progress = None
                cleaner.abort()
                raise
            except Exception as err:
                self._fail(cleaner, err)
            else:
                self._done(cleaner)

    async def _drive(self, steps: Steps) -> None:
        """Run steps, yielding to the loop every STEP_SLICE_S and sleeping to keep within
        log.cleaner.io.max.bytes.per.second; a step resumed after a yield is told so."""
        rate = self.config.max_io_bytes_per_second
        throttled = math.isfinite(rate) and rate > 0
        started = slice_start = time.monotonic()
        processed = 0
        resumed = False
        while True:
            try:
                step = steps.send(resumed) if resumed else next(steps)
            except StopIteration:
                return
            if callable(step):
                await asyncio.get_running_loop().run_in_executor(None, step)
                slice_start, resumed = time.monotonic(), True
                continue
            processed += step
            resumed = False
            now = time.monotonic()
            if now - slice_start >= STEP_SLICE_S:
                ahead = processed / rate - (now - started) if throttled else 0.0
                await asyncio.sleep(max(ahead, STEP_PAUSE_S))
                slice_start = time.monotonic()
                resumed = True

    def shutdown(self) -> None:
        """Stop the task and remove a half-written cleaned segment (Kafka's LogCleaner.shutdown)."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
        if self._in_progress is not None:
            self._in_progress.abort()
            self._in_progress = None

    @property
    def is_running(self) -> bool:
        return self._task is not None and not self._task.done()
