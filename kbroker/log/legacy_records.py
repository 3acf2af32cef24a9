"""Message formats v0 and v1 (Kafka's LegacyRecord / AbstractLegacyRecordBatch): the message
sets of Produce v0-2 and Fetch v0-3, converted to and from record batch v2.

A message: i64 offset, i32 size, u32 CRC-32 (IEEE, over magic..end), i8 magic, i8 attributes
(codec in bits 0-2; v1: bit 3 LogAppendTime), v1 only: i64 timestamp, then i32-length key and
value (-1 = null). A compressed message set is one wrapper message whose value is the compressed
inner message set; v1 inner offsets are relative to the first, the wrapper carries the last
absolute offset; v0 inner offsets are absolute.

Since inter.broker.protocol.version 3.0 Kafka ignores log.message.format.version and always
stores v2 (LogConfig.shouldIgnoreMessageFormatVersion), so:
- `up_convert` is LogValidator's conversion to magic 2 for Produce v0-2 (convertAndAssignOffsets
  NonCompressed / buildRecordsAndAssignOffsets): shallow sizes and CRCs checked first
  (UnifiedLog.analyzeAndValidateRecords), then every message becomes a record of one v2 batch in
  the producer's codec; the v2 validator then applies the topic's rules (keys, timestamps,
  compression.type) to that batch as to any other.
- `down_convert` is RecordsUtil.downConvert for Fetch v0-3: v2 batches become magic 0 (Fetch
  v0-1) or magic 1 (v2-3) messages, compressed batches re-compressed with their codec, control
  batches dropped, records of an uncompressed batch before the fetch offset dropped.

Only old clients take these paths; the v2 produce and fetch paths never call into this module.
No files, no partition state.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable, Iterator
from typing import NamedTuple

from kbroker.log.compression import CODEC_LZ4, CODEC_NAMES, CODEC_NONE, CODEC_ZSTD, compress, decompress
from kbroker.log.errors import LogError
from kbroker.log.records import (
    CREATE_TIME,
    LOG_APPEND_TIME,
    LOG_OVERHEAD,
    MAGIC_OFFSET,
    MAGIC_V2,
    NO_TIMESTAMP,
    BatchHeader,
    Buffer,
    CorruptRecordError,
    Record,
    SimpleRecord,
    build_batch,
    iter_batches,
    iter_records,
)
from kbroker.protocol.errors import Errors

MAGIC_V0 = 0
MAGIC_V1 = 1

# offset, size, crc, magic, attributes: what every v0/v1 message starts with.
_MESSAGE_HEAD = struct.Struct(">qiIbb")
_TIMESTAMP_POSITION = 18  # v1's timestamp, or v0's key length
# Bytes after the size field without key and value: crc, magic, attributes, (timestamp), 2 lengths.
RECORD_OVERHEAD = {MAGIC_V0: 14, MAGIC_V1: 22}
_TIMESTAMP_TYPE_BIT = 0x08
_CODEC_MASK = 0x07
_I32 = struct.Struct(">i")
_I64 = struct.Struct(">q")
_V0_HEAD = struct.Struct(">bb")  # magic, attributes
_V1_HEAD = struct.Struct(">bbq")  # magic, attributes, timestamp
_OFFSET_SIZE_CRC = struct.Struct(">qiI")
_NULL_LENGTH = _I32.pack(-1)


class LegacyMessage(NamedTuple):
    """One decoded v0/v1 message; `timestamp` is NO_TIMESTAMP for v0."""

    offset: int
    magic: int
    attributes: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    crc_valid: bool

    @property
    def codec(self) -> int:
        return self.attributes & _CODEC_MASK

    @property
    def log_append_time(self) -> bool:
        return self.magic > MAGIC_V0 and bool(self.attributes & _TIMESTAMP_TYPE_BIT)


# ---------------------------------------------------------------------------------------------
# Decoding


def read_message(buf: Buffer, position: int, end: int) -> LegacyMessage:
    """The message framed at buf[position:end] (offset and size fields included).

    Raises CorruptRecordError when its fields do not fit its size or its magic is not 0/1."""
    size = end - position - LOG_OVERHEAD
    magic = buf[position + MAGIC_OFFSET]
    if magic not in RECORD_OVERHEAD:
        raise CorruptRecordError(f"message at position {position} has magic {magic}, not 0 or 1")
    if size < RECORD_OVERHEAD[magic]:
        raise CorruptRecordError(f"message at position {position} is {size} bytes, below the minimum")
    offset, _, crc, _, attributes = _MESSAGE_HEAD.unpack_from(buf, position)
    cursor = position + _TIMESTAMP_POSITION
    timestamp = NO_TIMESTAMP
    if magic == MAGIC_V1:
        (timestamp,) = _I64.unpack_from(buf, cursor)
        cursor += 8
    key, cursor = _read_bytes(buf, cursor, end)
    value, cursor = _read_bytes(buf, cursor, end)
    if cursor != end:
        raise CorruptRecordError(f"message at position {position} has {end - cursor} bytes after its value")
    crc_valid = zlib.crc32(memoryview(buf)[position + MAGIC_OFFSET : end]) == crc
    return LegacyMessage(offset, magic, attributes & 0xFF, timestamp, key, value, crc_valid)


def _read_bytes(buf: Buffer, position: int, end: int) -> tuple[bytes | None, int]:
    if position + 4 > end:
        raise CorruptRecordError("message field length runs past the message")
    (length,) = _I32.unpack_from(buf, position)
    position += 4
    if length < 0:
        return None, position
    if position + length > end:
        raise CorruptRecordError("message field runs past the message")
    return bytes(buf[position : position + length]), position + length


def iter_message_frames(buf: Buffer) -> Iterator[tuple[int, int]]:
    """(position, end) of each complete entry of a message set; a trailing partial entry is
    dropped, as Kafka's iterators do. Raises CorruptRecordError for a size below v0's minimum."""
    position = 0
    limit = len(buf)
    while limit - position >= LOG_OVERHEAD:
        (size,) = _I32.unpack_from(buf, position + 8)
        if size < RECORD_OVERHEAD[MAGIC_V0]:
            raise CorruptRecordError(f"message size {size} at position {position} is below the minimum")
        end = position + LOG_OVERHEAD + size
        if end > limit:
            return
        yield position, end
        position = end


def _decompress(codec: int, magic: int, data: bytes | None) -> bytes:
    if data is None:
        raise CorruptRecordError("compressed wrapper message without a value")
    if codec not in CODEC_NAMES:
        raise CorruptRecordError(f"unknown compression codec id {codec}")
    if codec == CODEC_LZ4 and magic == MAGIC_V0:
        # Kafka 0.8-0.9 wrote LZ4 frames with a header checksum over the wrong bytes; Kafka
        # ignores that checksum for magic 0 (KafkaLZ4BlockInputStream), so mend it first.
        data = _mend_lz4_header_checksum(data)
    try:
        return decompress(codec, data)
    except ValueError as err:
        raise CorruptRecordError(str(err)) from err


# ---------------------------------------------------------------------------------------------
# Produce v0-2: up-conversion


def up_convert(records: Buffer, max_message_bytes: int, target_codec: int | None = None,
               target_level: int | None = None) -> bytearray:
    """A v0/v1 message set as one v2 batch of base offset 0, or LogError with Kafka's code.
    Compressed in the message set's codec, at `target_level` when that is the topic's
    `target_codec` (a topic of another codec rewrites the batch afterwards, at its level).

    Shallow messages: MESSAGE_TOO_LARGE above max.message.bytes, CORRUPT_MESSAGE for a bad size
    or CRC; INVALID_RECORD for magics that differ, a compressed wrapper with company, nested
    compression or inner magics that differ from the wrapper's; an inner message's bad CRC is
    CORRUPT_MESSAGE. An empty set gives an empty buffer."""
    shallow = _shallow_messages(records, max_message_bytes)
    if not shallow:
        return bytearray()
    source_codec = CODEC_NONE
    for message in shallow:
        if message.codec != CODEC_NONE:
            source_codec = message.codec
    if source_codec == CODEC_NONE:
        messages = shallow
        log_append_time = any(message.log_append_time for message in shallow)
    else:
        if len(shallow) > 1:
            raise LogError(Errors.INVALID_RECORD, "Compressed outer record has more than one batch")
        wrapper = shallow[0]
        messages = _inner_messages(wrapper)
        log_append_time = wrapper.log_append_time
    simple = [SimpleRecord(message.key, message.value, (), message.timestamp) for message in messages]
    # A client's LogAppendTime flag stays on the batch, so the v2 rules judge it (INVALID_TIMESTAMP
    # unless a CreateTime topic can take its timestamp), as Kafka's validateTimestamp does.
    timestamp_type = LOG_APPEND_TIME if log_append_time else CREATE_TIME
    max_timestamp = max(message.timestamp for message in messages)
    level = target_level if source_codec == target_codec else None
    return bytearray(build_batch(simple, compression=source_codec, compression_level=level,
                                 timestamp_type=timestamp_type, log_append_time=max_timestamp, now_ms=max_timestamp))


def _shallow_messages(records: Buffer, max_message_bytes: int) -> list[LegacyMessage]:
    """UnifiedLog.analyzeAndValidateRecords on a message set: size, CRC and magic of each entry."""
    view = memoryview(records)
    messages: list[LegacyMessage] = []
    try:
        for position, end in iter_message_frames(view):
            magic = view[position + MAGIC_OFFSET]
            if messages and magic != messages[0].magic:
                raise LogError(Errors.INVALID_RECORD, f"Batch magic {magic} is not the same as the first "
                                                      f"batch's magic byte {messages[0].magic}")
            if end - position > max_message_bytes:
                raise LogError(Errors.MESSAGE_TOO_LARGE, f"the message size {end - position} exceeds "
                                                         f"max.message.bytes {max_message_bytes}")
            message = read_message(view, position, end)
            if not message.crc_valid:
                raise LogError(Errors.CORRUPT_MESSAGE, f"message at position {position} fails its CRC")
            messages.append(message)
    except CorruptRecordError as err:
        raise LogError(Errors.CORRUPT_MESSAGE, str(err)) from err
    return messages


def _inner_messages(wrapper: LegacyMessage) -> list[LegacyMessage]:
    """The wrapper's inner messages, checked as LogValidator checks deep entries; v1 inner
    records of a LogAppendTime wrapper take its timestamp."""
    inner: list[LegacyMessage] = []
    try:
        data = _decompress(wrapper.codec, wrapper.magic, wrapper.value)
        for position, end in iter_message_frames(data):
            if data[position + MAGIC_OFFSET] != wrapper.magic:
                raise LogError(Errors.INVALID_RECORD, f"Record {len(inner)}'s magic does not match outer "
                                                      f"magic {wrapper.magic}")
            inner.append(read_message(data, position, end))
    except CorruptRecordError as err:
        raise LogError(Errors.CORRUPT_MESSAGE, f"invalid compressed message set: {err}") from err
    if not inner:
        raise LogError(Errors.INVALID_RECORD, "compressed message set without messages")
    for index, message in enumerate(inner):
        if message.codec != CODEC_NONE:
            raise LogError(Errors.INVALID_RECORD, "Compressed outer record should not have an inner record "
                                                  "with a compression attribute set")
        if not message.crc_valid:
            raise LogError(Errors.CORRUPT_MESSAGE, f"inner message {index} fails its CRC")
    if wrapper.log_append_time:
        inner = [message._replace(timestamp=wrapper.timestamp) for message in inner]
    return inner


# ---------------------------------------------------------------------------------------------
# Fetch v0-3: down-conversion


def fetch_magic(fetch_version: int) -> int | None:
    """The message format a Fetch version reads: v0-1 magic 0, v2-3 magic 1, v4+ batches as stored."""
    if fetch_version <= 1:
        return MAGIC_V0
    if fetch_version <= 3:
        return MAGIC_V1
    return None


def down_convert(data: Buffer, to_magic: int, first_offset: int) -> bytes:
    """The v2 batches in `data` as a message set of `to_magic`, cut as Kafka's lazy
    down-conversion sends it: as many bytes as were read, or the first converted batch whole.

    Raises LogError(UNSUPPORTED_COMPRESSION_TYPE) for a zstd batch (no old client reads zstd)."""
    try:
        parts = [part for header in iter_batches(data)
                 if (part := _down_convert_batch(data, header, to_magic, first_offset))]
    except CorruptRecordError as err:  # damaged bytes in the log: the client is told, not dropped
        raise LogError(Errors.CORRUPT_MESSAGE, str(err)) from err
    if not parts:
        return b""
    converted = b"".join(parts)
    return converted[: max(len(data), len(parts[0]))]


def _down_convert_batch(data: Buffer, header: BatchHeader, to_magic: int, first_offset: int) -> bytes:
    """One batch's share of down_convert (empty when nothing of it goes to the client)."""
    if header.magic <= to_magic:  # never in a v2 log, but a batch at or below the target stays
        return bytes(memoryview(data)[header.position : header.end])
    if header.is_control:
        return b""
    codec = header.compression_codec
    if codec == CODEC_ZSTD:
        raise LogError(Errors.UNSUPPORTED_COMPRESSION_TYPE,
                       "Down-conversion of zstandard-compressed batches is not supported")
    records = list(iter_records(data, header))
    if codec == CODEC_NONE:
        # A compressed batch goes whole (the client skips to its offset); an uncompressed one
        # loses the records before the fetch offset, as RecordsUtil.downConvert does.
        records = [record for record in records if record.offset >= first_offset]
    if not records:
        return b""
    log_append_time = header.max_timestamp if header.timestamp_type == LOG_APPEND_TIME else None
    return build_message_set(records, to_magic, codec, log_append_time)


def build_message_set(records: Iterable[Record], magic: int, codec: int = CODEC_NONE,
                      log_append_time: int | None = None) -> bytes:
    """Records (offsets absolute) as v0/v1 messages, as MemoryRecordsBuilder writes them: one
    message each, or one `codec` wrapper at the last offset holding them all (v1: relative inner
    offsets and the largest timestamp, or the LogAppendTime). Headers are dropped: v0/v1 have none."""
    records = list(records)
    timestamp_bit = _TIMESTAMP_TYPE_BIT if magic > MAGIC_V0 and log_append_time is not None else 0
    if codec == CODEC_NONE:
        return b"".join(
            encode_message(record.offset, magic, timestamp_bit,
                           record.timestamp if log_append_time is None else log_append_time,
                           record.key, record.value)
            for record in records)
    base = records[0].offset if magic > MAGIC_V0 else 0
    inner = b"".join(encode_message(record.offset - base, magic, timestamp_bit, record.timestamp,
                                    record.key, record.value) for record in records)
    if log_append_time is not None:
        wrapper_timestamp = log_append_time
    else:
        wrapper_timestamp = max(record.timestamp for record in records)
    value = compress(codec, inner)
    if codec == CODEC_LZ4 and magic == MAGIC_V0:
        value = _kafka_08_lz4_header_checksum(value)
    return encode_message(records[-1].offset, magic, codec | timestamp_bit, wrapper_timestamp, None, value)


def encode_message(offset: int, magic: int, attributes: int, timestamp: int, key: bytes | None,
                   value: bytes | None) -> bytes:
    """One v0/v1 message with its offset and size fields; v0 has no timestamp."""
    head = _V1_HEAD.pack(magic, attributes, timestamp) if magic > MAGIC_V0 else _V0_HEAD.pack(magic, attributes)
    body = b"".join((head, _NULL_LENGTH if key is None else _I32.pack(len(key)) + key,
                     _NULL_LENGTH if value is None else _I32.pack(len(value)) + value))
    return _OFFSET_SIZE_CRC.pack(offset, len(body) + 4, zlib.crc32(body)) + body


def is_legacy(records: Buffer) -> bool:
    """Whether a produce's records start with a v0/v1 message (one byte read)."""
    return len(records) > MAGIC_OFFSET and records[MAGIC_OFFSET] < MAGIC_V2


# ---------------------------------------------------------------------------------------------
# LZ4 header checksum (xxHash32 of the frame descriptor, second byte)

_PRIME1, _PRIME2, _PRIME3, _PRIME4, _PRIME5 = 2654435761, 2246822519, 3266489917, 668265263, 374761393
_MASK32 = 0xFFFFFFFF
_LZ4_MAGIC = b"\x04\x22\x4d\x18"


def _rotl32(value: int, bits: int) -> int:
    return ((value << bits) | (value >> (32 - bits))) & _MASK32


def _xxh32_short(data: bytes) -> int:
    """xxHash32 with seed 0 of fewer than 16 bytes: an LZ4 frame descriptor is 2 to 14 bytes,
    Kafka 0.8's checksum input 4 more, and only kbroker's own frames (2-byte descriptors) get it."""
    if len(data) >= 16:
        raise ValueError("xxHash32 of 16 bytes or more is not needed here")
    h = (_PRIME5 + len(data)) & _MASK32
    position = 0
    while position + 4 <= len(data):
        (word,) = struct.unpack_from("<I", data, position)
        h = (_rotl32((h + word * _PRIME3) & _MASK32, 17) * _PRIME4) & _MASK32
        position += 4
    for byte in data[position:]:
        h = (_rotl32((h + byte * _PRIME5) & _MASK32, 11) * _PRIME1) & _MASK32
    h ^= h >> 15
    h = (h * _PRIME2) & _MASK32
    h ^= h >> 13
    h = (h * _PRIME3) & _MASK32
    return h ^ (h >> 16)


def _lz4_descriptor_end(data: bytes) -> int | None:
    """Where an LZ4 frame's header checksum byte is, or None if `data` is no frame."""
    if len(data) < 7 or data[:4] != _LZ4_MAGIC:
        return None
    flags = data[4]
    end = 6 + (8 if flags & 0x08 else 0) + (4 if flags & 0x01 else 0)
    return end if len(data) > end else None


def _with_header_checksum(data: bytes, hashed_from: int) -> bytes:
    end = _lz4_descriptor_end(data)
    if end is None:
        return data
    checksum = (_xxh32_short(data[hashed_from:end]) >> 8) & 0xFF
    return data[:end] + bytes([checksum]) + data[end + 1 :]


def _mend_lz4_header_checksum(data: bytes) -> bytes:
    """The frame with the checksum LZ4 defines (over the descriptor)."""
    return _with_header_checksum(data, 4)


def _kafka_08_lz4_header_checksum(data: bytes) -> bytes:
    """The frame with the checksum Kafka writes for magic 0 (over the magic bytes too), which
    0.8/0.9 clients check and newer ones mend (KafkaLZ4BlockOutputStream)."""
    return _with_header_checksum(data, 0)
