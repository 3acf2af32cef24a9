"""Record batch v2 format (DefaultRecordBatch / DefaultRecord): parse, iterate, patch, build.

The hot path works on the 61-byte batch headers only: `iter_batches` unpacks one header per batch
from a buffer (bytes, bytearray or memoryview, never copied) and `batch_crc_is_valid` runs CRC-32C
over the bytes. Individual records are decoded by `iter_records` only when a rule needs them
(compacted topics need keys, timestamp bounds, recompression, ListOffsets by timestamp, the group
coordinator's replay). `build_batch` / `build_control_batch` write batches for the broker's own
writers and for tests.

This module knows the byte format only: no files, no partition state, no validation policy
(see validator.py).
"""

from __future__ import annotations

import enum
import struct
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import NamedTuple

from kbroker.log.compression import CODEC_NONE, compress, decompress
from kbroker.log.crc import crc32c

# Header layout (KAFKA-FACTS §5), big-endian.
HEADER_STRUCT = struct.Struct(">qiibIhiqqqhii")
# HEADER_STRUCT split at the end of the CRC field: what build_batch packs before and after it.
_BEFORE_CRC = struct.Struct(">qiibI")
_AFTER_CRC = struct.Struct(">hiqqqhii")
RECORD_BATCH_OVERHEAD = HEADER_STRUCT.size  # 61
LOG_OVERHEAD = 12  # baseOffset + batchLength; batchLength counts the bytes after it
HEADER_SIZE_UP_TO_MAGIC = 17
LEGACY_MIN_SIZE = 14  # smallest message Kafka's batch iterators accept before calling it corrupt

BASE_OFFSET_OFFSET = 0
LENGTH_OFFSET = 8
PARTITION_LEADER_EPOCH_OFFSET = 12
MAGIC_OFFSET = 16
CRC_OFFSET = 17
ATTRIBUTES_OFFSET = 21
LAST_OFFSET_DELTA_OFFSET = 23
BASE_TIMESTAMP_OFFSET = 27
MAX_TIMESTAMP_OFFSET = 35
PRODUCER_ID_OFFSET = 43
RECORDS_COUNT_OFFSET = 57
RECORDS_OFFSET = 61

MAGIC_V2 = 2
COMPRESSION_CODEC_MASK = 0x07
TIMESTAMP_TYPE_MASK = 0x08
TRANSACTIONAL_FLAG_MASK = 0x10
CONTROL_FLAG_MASK = 0x20
DELETE_HORIZON_FLAG_MASK = 0x40

CREATE_TIME = 0
LOG_APPEND_TIME = 1

NO_TIMESTAMP = -1
NO_PRODUCER_ID = -1
NO_PRODUCER_EPOCH = -1
NO_SEQUENCE = -1
NO_PARTITION_LEADER_EPOCH = -1
INT32_MAX = 2**31 - 1

_I64 = struct.Struct(">q")
_I32 = struct.Struct(">i")
_U32 = struct.Struct(">I")
_I16 = struct.Struct(">h")
_CONTROL_KEY = struct.Struct(">hh")
_CONTROL_VALUE = struct.Struct(">hi")

Buffer = bytes | bytearray | memoryview


class CorruptRecordError(ValueError):
    """Bytes that cannot be a record batch (Kafka's CorruptRecordException)."""


class BatchHeader(NamedTuple):
    """One batch's header fields, plus where the batch starts in the buffer it came from."""

    position: int
    base_offset: int
    batch_length: int
    partition_leader_epoch: int
    magic: int
    crc: int
    attributes: int
    last_offset_delta: int
    base_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    record_count: int

    @property
    def size(self) -> int:
        """Bytes the whole batch occupies."""
        return self.batch_length + LOG_OVERHEAD

    @property
    def end(self) -> int:
        """Position just after the batch."""
        return self.position + self.batch_length + LOG_OVERHEAD

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.last_offset_delta

    @property
    def next_offset(self) -> int:
        return self.base_offset + self.last_offset_delta + 1

    @property
    def compression_codec(self) -> int:
        return self.attributes & COMPRESSION_CODEC_MASK

    @property
    def timestamp_type(self) -> int:
        return LOG_APPEND_TIME if self.attributes & TIMESTAMP_TYPE_MASK else CREATE_TIME

    @property
    def is_transactional(self) -> bool:
        return bool(self.attributes & TRANSACTIONAL_FLAG_MASK)

    @property
    def is_control(self) -> bool:
        return bool(self.attributes & CONTROL_FLAG_MASK)

    @property
    def has_producer_id(self) -> bool:
        return self.producer_id > NO_PRODUCER_ID

    @property
    def last_sequence(self) -> int:
        """Sequence of the last record; sequences wrap from Int32.MAX to 0."""
        return increment_sequence(self.base_sequence, self.last_offset_delta)


def increment_sequence(sequence: int, increment: int) -> int:
    if sequence == NO_SEQUENCE:
        return NO_SEQUENCE
    if sequence > INT32_MAX - increment:
        return increment - (INT32_MAX - sequence) - 1
    return sequence + increment


def parse_header(buf: Buffer, position: int = 0) -> BatchHeader:
    """Unpack the 61-byte header at `position` (caller checks there are 61 bytes)."""
    return BatchHeader(position, *HEADER_STRUCT.unpack_from(buf, position))


def iter_batches(buf: Buffer, start: int = 0, end: int | None = None) -> Iterator[BatchHeader]:
    """Yield the header of every complete batch in buf[start:end].

    Stops silently at a trailing partial batch, as Kafka's batch iterators do (the caller can
    compare the last header's `end` with the buffer length). Raises CorruptRecordError when a
    length field cannot be right. Headers of magic 0/1 entries are yielded too (same framing);
    only `position`, `base_offset`, `batch_length` and `magic` mean anything for those.
    """
    limit = len(buf) if end is None else end
    position = start
    unpack = HEADER_STRUCT.unpack_from
    while limit - position >= HEADER_SIZE_UP_TO_MAGIC:
        (batch_length,) = _I32.unpack_from(buf, position + LENGTH_OFFSET)
        size = batch_length + LOG_OVERHEAD
        if size < LEGACY_MIN_SIZE:
            raise CorruptRecordError(f"record size {size} at position {position} is smaller than the minimum")
        if position + size > limit:
            return
        if buf[position + MAGIC_OFFSET] == MAGIC_V2:
            if size < RECORD_BATCH_OVERHEAD:
                raise CorruptRecordError(f"batch at position {position} is {size} bytes, below the v2 header")
            yield BatchHeader(position, *unpack(buf, position))
        else:
            yield _legacy_header(buf, position, batch_length)
        position += size


def _legacy_header(buf: Buffer, position: int, batch_length: int) -> BatchHeader:
    (base_offset,) = _I64.unpack_from(buf, position)
    magic = buf[position + MAGIC_OFFSET]
    return BatchHeader(position, base_offset, batch_length, -1, magic, 0, 0, 0, -1, -1, -1, -1, -1, 1)


def batch_crc_is_valid(buf: Buffer, header: BatchHeader) -> bool:
    """CRC-32C over attributes..end matches the stored CRC."""
    view = memoryview(buf)[header.position + ATTRIBUTES_OFFSET : header.end]
    return crc32c(view) == header.crc


def compute_batch_crc(buf: Buffer, position: int, end: int) -> int:
    return crc32c(memoryview(buf)[position + ATTRIBUTES_OFFSET : end])


def set_offsets_and_epoch(
    buf: bytearray | memoryview, header: BatchHeader, base_offset: int, leader_epoch: int
) -> None:
    """Patch baseOffset and partitionLeaderEpoch in place; both lie outside the CRC."""
    _I64.pack_into(buf, header.position + BASE_OFFSET_OFFSET, base_offset)
    _I32.pack_into(buf, header.position + PARTITION_LEADER_EPOCH_OFFSET, leader_epoch)


def set_max_timestamp(
    buf: bytearray | memoryview, header: BatchHeader, timestamp_type: int, max_timestamp: int
) -> None:
    """Rewrite the timestamp-type bit and maxTimestamp, then the CRC they are covered by."""
    attributes = header.attributes & ~TIMESTAMP_TYPE_MASK
    if timestamp_type == LOG_APPEND_TIME:
        attributes |= TIMESTAMP_TYPE_MASK
    if attributes == header.attributes and max_timestamp == header.max_timestamp:
        return
    _I16.pack_into(buf, header.position + ATTRIBUTES_OFFSET, attributes)
    _I64.pack_into(buf, header.position + MAX_TIMESTAMP_OFFSET, max_timestamp)
    _U32.pack_into(buf, header.position + CRC_OFFSET, compute_batch_crc(buf, header.position, header.end))


# ---------------------------------------------------------------------------------------------
# Records


class Record(NamedTuple):
    """One decoded record; `timestamp` already resolved (LogAppendTime batches use maxTimestamp)."""

    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]


class SimpleRecord(NamedTuple):
    """A record to write with `build_batch`; a None timestamp means "now"."""

    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes | None]] = ()
    timestamp: int | None = None


class ControlRecordType(enum.IntEnum):
    ABORT = 0
    COMMIT = 1


def read_varint(buf: Buffer, position: int) -> tuple[int, int]:
    """Decode a zig-zag varint/varlong at `position`; return (value, next position)."""
    result = 0
    shift = 0
    while True:
        byte = buf[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return (result >> 1) ^ -(result & 1), position
        shift += 7
        if shift > 63:
            raise CorruptRecordError("varint longer than 10 bytes")


# One-byte varints (-64..63), the lengths, deltas and counts of small records: a table lookup.
_ONE_BYTE_VARINTS = tuple(bytes([zigzag]) for zigzag in range(0x80))


def encode_varint(value: int) -> bytes:
    """Zig-zag varint/varlong encoding of a signed integer."""
    zigzag = (value << 1) ^ (value >> 63)
    zigzag &= 0xFFFFFFFFFFFFFFFF
    if zigzag < 0x80:
        return _ONE_BYTE_VARINTS[zigzag]
    out = bytearray()
    while zigzag >= 0x80:
        out.append((zigzag & 0x7F) | 0x80)
        zigzag >>= 7
    out.append(zigzag)
    return bytes(out)


def batch_records_bytes(buf: Buffer, header: BatchHeader) -> Buffer:
    """The records section of a batch, decompressed when the batch is compressed."""
    view = memoryview(buf)[header.position + RECORDS_OFFSET : header.end]
    codec = header.compression_codec
    if codec == CODEC_NONE:
        return view
    try:
        return decompress(codec, view)
    except ValueError as err:
        raise CorruptRecordError(f"batch at offset {header.base_offset}: {err}") from err


def iter_records(buf: Buffer, header: BatchHeader) -> Iterator[Record]:
    """Decode the records of one v2 batch (decompressing if needed).

    Raises CorruptRecordError when the record structure does not match the header's count.
    """
    data = batch_records_bytes(buf, header)
    position = 0
    end = len(data)
    log_append_time = header.timestamp_type == LOG_APPEND_TIME
    try:
        for _ in range(header.record_count):
            record, position = _read_record(data, position, header, log_append_time)
            yield record
    except (IndexError, struct.error) as err:
        raise CorruptRecordError(f"batch at offset {header.base_offset} has a truncated record") from err
    if position != end:
        raise CorruptRecordError(
            f"batch at offset {header.base_offset} has {end - position} bytes after its {header.record_count} records"
        )


def _read_record(
    data: Buffer, position: int, header: BatchHeader, log_append_time: bool
) -> tuple[Record, int]:
    length, position = read_varint(data, position)
    record_end = position + length
    if length < 0 or record_end > len(data):
        raise CorruptRecordError(f"record length {length} runs past the batch")
    position += 1  # record attributes: unused in v2
    timestamp_delta, position = read_varint(data, position)
    offset_delta, position = read_varint(data, position)
    key, position = _read_varint_bytes(data, position)
    value, position = _read_varint_bytes(data, position)
    header_count, position = read_varint(data, position)
    if header_count < 0:
        raise CorruptRecordError(f"negative header count {header_count}")
    headers = []
    for _ in range(header_count):
        header_key, position = _read_varint_bytes(data, position)
        if header_key is None:
            raise CorruptRecordError("null record header key")
        header_value, position = _read_varint_bytes(data, position)
        headers.append((header_key.decode("utf-8", "replace"), header_value))
    if position != record_end:
        raise CorruptRecordError(
            f"record declares {length} bytes but its fields take {length + position - record_end}"
        )
    timestamp = header.max_timestamp if log_append_time else header.base_timestamp + timestamp_delta
    return Record(header.base_offset + offset_delta, timestamp, key, value, tuple(headers)), position


def _read_varint_bytes(data: Buffer, position: int) -> tuple[bytes | None, int]:
    length, position = read_varint(data, position)
    if length < 0:
        return None, position
    end = position + length
    if end > len(data):
        raise CorruptRecordError("field runs past the end of the batch")
    return bytes(data[position:end]), end


def parse_control_record(record: Record) -> tuple[ControlRecordType, int]:
    """(marker type, coordinator epoch) of a transaction marker record."""
    if record.key is None or len(record.key) < _CONTROL_KEY.size:
        raise CorruptRecordError("control record without a valid key")
    _version, control_type = _CONTROL_KEY.unpack_from(record.key)
    coordinator_epoch = -1
    if record.value is not None and len(record.value) >= _CONTROL_VALUE.size:
        _value_version, coordinator_epoch = _CONTROL_VALUE.unpack_from(record.value)
    try:
        return ControlRecordType(control_type), coordinator_epoch
    except ValueError as err:
        raise CorruptRecordError(f"unknown control record type {control_type}") from err


# ---------------------------------------------------------------------------------------------
# Building


def encode_record(offset_delta: int, timestamp_delta: int, record: SimpleRecord) -> bytes:
    """One DefaultRecord, length prefix included."""
    headers = record.headers
    parts = [b"\x00", encode_varint(timestamp_delta), encode_varint(offset_delta)]
    _append_varint_bytes(parts, record.key)
    _append_varint_bytes(parts, record.value)
    parts.append(encode_varint(len(headers)))
    for header_key, header_value in headers:
        _append_varint_bytes(parts, header_key.encode("utf-8"))
        _append_varint_bytes(parts, header_value)
    body = b"".join(parts)
    return encode_varint(len(body)) + body


_NULL_LENGTH = b"\x01"  # the varint -1 of a null key, value or header value


def _append_varint_bytes(parts: list[bytes], data: bytes | None) -> None:
    if data is None:
        parts.append(_NULL_LENGTH)
    else:  # joined as it is (bytes or a view): no copy before the join
        parts += (encode_varint(len(data)), data)


def build_batch(
    records: Iterable[SimpleRecord],
    *,
    base_offset: int = 0,
    compression: int = CODEC_NONE,
    compression_level: int | None = None,
    timestamp_type: int = CREATE_TIME,
    log_append_time: int | None = None,
    producer_id: int = NO_PRODUCER_ID,
    producer_epoch: int = NO_PRODUCER_EPOCH,
    base_sequence: int = NO_SEQUENCE,
    is_transactional: bool = False,
    is_control: bool = False,
    partition_leader_epoch: int = NO_PARTITION_LEADER_EPOCH,
    offset_deltas: Sequence[int] | None = None,
    now_ms: int | None = None,
) -> bytes:
    """Write one v2 batch. Records get offset deltas 0..n-1 unless `offset_deltas` is given
    (recompression keeps the original deltas). A LogAppendTime batch's maxTimestamp is
    `log_append_time` (default: now). `compression_level` is Kafka's level for the codec (None:
    its default)."""
    records = [r if isinstance(r, SimpleRecord) else SimpleRecord(*r) for r in records]
    if not records:
        raise ValueError("a record batch needs at least one record")
    now = int(time.time() * 1000) if now_ms is None else now_ms
    timestamps = [now if r.timestamp is None else r.timestamp for r in records]
    base_timestamp = timestamps[0]
    deltas = range(len(records)) if offset_deltas is None else offset_deltas
    body = b"".join([
        encode_record(delta, timestamp - base_timestamp, record)
        for delta, timestamp, record in zip(deltas, timestamps, records, strict=True)
    ])
    attributes = compression
    max_timestamp = max(timestamps)
    if timestamp_type == LOG_APPEND_TIME:
        attributes |= TIMESTAMP_TYPE_MASK
        max_timestamp = now if log_append_time is None else log_append_time
    if is_transactional:
        attributes |= TRANSACTIONAL_FLAG_MASK
    if is_control:
        attributes |= CONTROL_FLAG_MASK
    return bytes(batch_around_records(
        body, attributes, len(records), deltas[-1], base_timestamp, max_timestamp,
        base_offset=base_offset, partition_leader_epoch=partition_leader_epoch,
        producer=(producer_id, producer_epoch, base_sequence), compression_level=compression_level,
    ))


def batch_around_records(
    records_bytes: Buffer,
    attributes: int,
    record_count: int,
    last_offset_delta: int,
    base_timestamp: int,
    max_timestamp: int,
    *,
    base_offset: int,
    partition_leader_epoch: int,
    producer: tuple[int, int, int],
    compression_level: int | None = None,
) -> bytearray:
    """A v2 batch holding already encoded records, compressed with the codec in `attributes`
    here (at `compression_level`, None for the codec's default); `producer` is (producer id,
    epoch, base sequence). The CRC is computed."""
    codec = attributes & COMPRESSION_CODEC_MASK
    body = compress(codec, records_bytes, compression_level) if codec != CODEC_NONE else records_bytes
    batch = bytearray(RECORD_BATCH_OVERHEAD + len(body))
    # The header after the CRC and the records first: the CRC covers exactly these bytes.
    _AFTER_CRC.pack_into(batch, ATTRIBUTES_OFFSET, attributes, last_offset_delta, base_timestamp, max_timestamp,
                         *producer, record_count)
    batch[RECORDS_OFFSET:] = body
    _BEFORE_CRC.pack_into(batch, 0, base_offset, len(batch) - LOG_OVERHEAD, partition_leader_epoch, MAGIC_V2,
                          crc32c(memoryview(batch)[ATTRIBUTES_OFFSET:]))
    return batch


def build_control_batch(
    control_type: ControlRecordType,
    producer_id: int,
    producer_epoch: int,
    coordinator_epoch: int,
    *,
    base_offset: int = 0,
    timestamp: int | None = None,
    partition_leader_epoch: int = NO_PARTITION_LEADER_EPOCH,
) -> bytes:
    """A transaction marker batch (EndTransactionMarker): transactional + control, one record."""
    record = SimpleRecord(
        key=_CONTROL_KEY.pack(0, int(control_type)),
        value=_CONTROL_VALUE.pack(0, coordinator_epoch),
        timestamp=timestamp,
    )
    return build_batch(
        [record],
        base_offset=base_offset,
        producer_id=producer_id,
        producer_epoch=producer_epoch,
        is_transactional=True,
        is_control=True,
        partition_leader_epoch=partition_leader_epoch,
        now_ms=timestamp,
    )
