"""Validation of batches appended as leader, and offset assignment (Kafka's LogValidator and
UnifiedLog.analyzeAndValidateRecords).

Checks, in Kafka's order: client baseOffset 0, batch size vs max.message.bytes (MESSAGE_TOO_LARGE),
size and CRC-32C (CORRUPT_MESSAGE); then per batch: offset range vs count, count > 0, no client
control batches, producer id with a sequence (INVALID_RECORD); then record-level rules only when
a rule needs the records (keys on compacted topics, finite message.timestamp.before/after.max.ms)
and the timestamp-type rules readable from the header (INVALID_TIMESTAMP). A batch refused by a
record-level rule names each offending record (its index in the batch and Kafka's message) in
LogError.record_errors, with Kafka's RecordValidationException message, for Produce v8+.

Offsets and the partition leader epoch are patched into the batch headers; LogAppendTime topics
also get the timestamp bit and maxTimestamp, with the CRC recomputed. A writable buffer (bytearray
or writable memoryview) is patched in place, so the caller hands it over; read-only input is copied
once. A topic whose compression.type names a codec different from the producer's gets its records
rebuilt into one batch in that codec: on bytes when the request holds one CreateTime batch whose
records carry offset deltas 0..n-1 (what every client writes; the records section is decompressed
and compressed again: the records Kafka's rebuild writes, byte for byte when the first record's
timestamp delta is 0, as clients write it), else record by record.

Known gap (deliberate, for speed): Kafka walks the records of every batch (decompressing compressed
ones) and so notices a record count that disagrees with the records; here records are walked only
when a rule above needs them. The CRC still protects against damage in transit. A rewrite on
bytes reads only each record's length and its timestamp and offset deltas, so a record whose
fields disagree with its length is rewritten as it came, as an uncompressed batch is kept.

`prepare_leader_append` is the part of a leader append that needs no log state (header checks
with the CRC, and a compression.type rewrite with offsets from 0): append_offload.py runs it in a
worker thread for large batches, and `assign_prepared_offsets` then gives the rebuilt batch its
offsets on the event loop (docs/MULTICORE.md).

Batches of origin COORDINATOR (the group and transaction coordinators' records, transaction
markers) are built by this broker just before the append: their CRC is not recomputed and their
records are not walked again; the size limit, offsets, leader epoch, LogAppendTime and the
topic's codec still apply.

No files, no producer state, no partition leadership here.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from kbroker.log.append_origin import AppendOrigin
from kbroker.log.compression import CODEC_NONE, CODEC_ZSTD
from kbroker.log.config import LONG_MAX, LogConfig
from kbroker.log.errors import LogError
from kbroker.log.legacy_records import is_legacy, up_convert
from kbroker.log.records import (
    ATTRIBUTES_OFFSET,
    COMPRESSION_CODEC_MASK,
    CREATE_TIME,
    LENGTH_OFFSET,
    LOG_APPEND_TIME,
    LOG_OVERHEAD,
    MAGIC_OFFSET,
    MAGIC_V2,
    NO_TIMESTAMP,
    RECORD_BATCH_OVERHEAD,
    TIMESTAMP_TYPE_MASK,
    TRANSACTIONAL_FLAG_MASK,
    BatchHeader,
    Buffer,
    CorruptRecordError,
    Record,
    SimpleRecord,
    batch_around_records,
    batch_crc_is_valid,
    batch_records_bytes,
    build_batch,
    iter_batches,
    iter_records,
    parse_header,
    read_varint,
    set_max_timestamp,
    set_offsets_and_epoch,
)
from kbroker.protocol.errors import Errors


@dataclass(slots=True)
class ValidationResult:
    """Batches ready to write, with offsets assigned (Kafka's ValidationResult)."""

    records: Buffer
    batches: list[BatchHeader]
    first_offset: int
    last_offset: int
    max_timestamp: int
    shallow_offset_of_max_timestamp: int
    log_append_time: int
    record_count: int
    size_maybe_changed: bool


@dataclass(slots=True)
class PreparedRecords:
    """What `prepare_leader_append` computed, off the event loop, for one partition's records.

    `config` is the LogConfig it was computed for: the log uses it only while that is still its
    config. `error` is the LogError the append must raise (after the checks the partition makes
    first, as inline). `rebuilt` is a compression.type rewrite with offsets from 0 and no leader
    epoch, or None where the batches are kept (their offsets are patched in place on the loop)."""

    config: LogConfig
    now_ms: int
    view: memoryview
    headers: list[BatchHeader]
    rebuilt: ValidationResult | None = None
    error: LogError | None = None


_BATCH_LENGTH = struct.Struct(">i")


def validate_produce_partition_records(api_version: int, records: Buffer | None) -> Errors:
    """ProduceRequest.validateRecords: v3+ carries exactly one magic-2 batch; zstd needs v7+."""
    if api_version < 3:
        return Errors.NONE
    if records is None:
        return Errors.INVALID_RECORD
    # The common case, exactly one whole v2 batch, is read off three header fields: no parse.
    if (len(records) >= RECORD_BATCH_OVERHEAD and records[MAGIC_OFFSET] == MAGIC_V2
            and _BATCH_LENGTH.unpack_from(records, LENGTH_OFFSET)[0] + LOG_OVERHEAD == len(records)):
        if api_version < 7 and records[ATTRIBUTES_OFFSET + 1] & COMPRESSION_CODEC_MASK == CODEC_ZSTD:
            return Errors.UNSUPPORTED_COMPRESSION_TYPE
        return Errors.NONE
    try:
        batches = iter_batches(records)
        first = next(batches, None)
        if first is None or first.magic != MAGIC_V2:
            return Errors.INVALID_RECORD
        if api_version < 7 and first.compression_codec == CODEC_ZSTD:
            return Errors.UNSUPPORTED_COMPRESSION_TYPE
        if next(batches, None) is not None:
            return Errors.INVALID_RECORD
    except CorruptRecordError:
        return Errors.CORRUPT_MESSAGE
    return Errors.NONE


def analyze_and_validate_records(
    records: Buffer,
    origin: AppendOrigin,
    max_message_bytes: int,
    ignore_record_size: bool = False,
    config: LogConfig | None = None,
) -> tuple[memoryview, list[BatchHeader]]:
    """Header-level checks of every batch; returns the valid prefix and the batches' headers.

    Trailing bytes of a partial batch are dropped, as Kafka does. A client's v0/v1 message set
    (Produce v0-2) is checked and converted to one v2 batch first (legacy_records.up_convert), in
    the topic's compression level when the topic's codec (`config`) is the message set's own:
    Kafka rebuilds it in the target compression, level included.
    """
    view = memoryview(records)
    if origin is AppendOrigin.CLIENT and is_legacy(view):
        target = (config.target_codec, config.target_level) if config is not None else (None, None)
        view = memoryview(up_convert(view, max_message_bytes, *target))
    headers: list[BatchHeader] = []
    try:
        for header in iter_batches(view):
            if header.magic != MAGIC_V2:
                raise LogError(
                    Errors.UNSUPPORTED_FOR_MESSAGE_FORMAT,
                    f"message format v{header.magic} is not supported; only record batch v2",
                )
            if origin is AppendOrigin.CLIENT and header.base_offset != 0:
                raise LogError(
                    Errors.INVALID_RECORD,
                    f"the baseOffset of the record batch in the append should be 0, but it is {header.base_offset}",
                )
            if not ignore_record_size and header.batch_length + LOG_OVERHEAD > max_message_bytes:
                raise LogError(
                    Errors.MESSAGE_TOO_LARGE,
                    f"the record batch size {header.size} exceeds max.message.bytes {max_message_bytes}",
                )
            # A coordinator's batch was encoded by this broker a moment ago: its CRC is not
            # recomputed (client and follower bytes come from elsewhere and are).
            if origin is not AppendOrigin.COORDINATOR and not batch_crc_is_valid(view, header):
                raise LogError(
                    Errors.CORRUPT_MESSAGE, f"record batch at position {header.position} fails its CRC"
                )
            headers.append(header)
    except CorruptRecordError as err:
        raise LogError(Errors.CORRUPT_MESSAGE, str(err)) from err
    valid_bytes = headers[-1].end if headers else 0
    return view[:valid_bytes], headers


def prepare_leader_append(
    records: Buffer, config: LogConfig, now_ms: int, topic: str, partition: int
) -> PreparedRecords:
    """The CPU-heavy, stateless part of a client's leader append, safe in another thread: the
    header checks with each batch's CRC (analyze_and_validate_records) and, for a topic whose
    compression.type rewrites the batches, the record rules and the rebuild. Reads `records`,
    never writes them; a refusal is returned in `error`, not raised."""
    view = memoryview(records)
    try:
        view, headers = analyze_and_validate_records(view, AppendOrigin.CLIENT, config.max_message_bytes,
                                                     config=config)
        if not headers or not needs_rewrite(headers, config):
            return PreparedRecords(config, now_ms, view, headers)
        rebuilt = validate_and_assign_offsets(
            view, headers, first_offset=0, leader_epoch=-1, now_ms=now_ms, config=config,
            origin=AppendOrigin.CLIENT, topic=topic, partition=partition,
        )
    except LogError as err:
        return PreparedRecords(config, now_ms, view, [], error=err)
    return PreparedRecords(config, now_ms, view, headers, rebuilt)


def assign_prepared_offsets(rebuilt: ValidationResult, first_offset: int, leader_epoch: int) -> ValidationResult:
    """A prepared rewrite (offsets from 0) moved to `first_offset` with this leader epoch: both
    header fields lie outside the CRC, so nothing is recomputed."""
    buf = _writable(memoryview(rebuilt.records))
    shift = first_offset - rebuilt.first_offset
    batches = []
    for batch in rebuilt.batches:
        set_offsets_and_epoch(buf, batch, batch.base_offset + shift, leader_epoch)
        batches.append(parse_header(buf, batch.position))
    return ValidationResult(
        records=buf,
        batches=batches,
        first_offset=first_offset,
        last_offset=rebuilt.last_offset + shift,
        max_timestamp=rebuilt.max_timestamp,
        shallow_offset_of_max_timestamp=rebuilt.shallow_offset_of_max_timestamp + shift,
        log_append_time=rebuilt.log_append_time,
        record_count=rebuilt.record_count,
        size_maybe_changed=True,
    )


def validate_and_assign_offsets(
    records: memoryview,
    headers: list[BatchHeader],
    *,
    first_offset: int,
    leader_epoch: int,
    now_ms: int,
    config: LogConfig,
    origin: AppendOrigin,
    topic: str,
    partition: int,
) -> ValidationResult:
    """LogValidator.validateMessagesAndAssignOffsets for v2 batches (headers from
    analyze_and_validate_records); the topic partition is named in record errors."""
    # The record-level rules hold by construction for what a coordinator builds (keyed records
    # stamped now, one marker record): its records are not walked again.
    if origin is not AppendOrigin.COORDINATOR:
        for header in headers:
            _validate_batch(header, origin)
            _validate_records_of_batch(records, header, now_ms, config, topic, partition)
    if needs_rewrite(headers, config):
        transcoded = _transcode_batch(records, headers, first_offset, leader_epoch, config)
        if transcoded is not None:
            return transcoded
        return _rebuild_in_target_codec(records, headers, first_offset, leader_epoch, now_ms, config)
    return _assign_offsets_in_place(records, headers, first_offset, leader_epoch, now_ms, config)


def _validate_batch(header: BatchHeader, origin: AppendOrigin) -> None:
    if origin is not AppendOrigin.CLIENT:
        return
    count_from_offsets = header.last_offset_delta + 1
    if count_from_offsets <= 0:
        raise LogError(
            Errors.INVALID_RECORD,
            f"batch has an invalid offset range: lastOffsetDelta {header.last_offset_delta}",
        )
    if header.record_count <= 0:
        raise LogError(
            Errors.INVALID_RECORD, f"invalid reported count for record batch: {header.record_count}"
        )
    if count_from_offsets != header.record_count:
        raise LogError(
            Errors.INVALID_RECORD,
            f"inconsistent batch offset range (lastOffsetDelta {header.last_offset_delta}) "
            f"and count of records {header.record_count}",
        )
    if header.is_control:
        raise LogError(Errors.INVALID_RECORD, "clients are not allowed to write control records")
    if header.has_producer_id and header.base_sequence < 0:
        raise LogError(
            Errors.INVALID_RECORD,
            f"invalid sequence number {header.base_sequence} in record batch with producerId {header.producer_id}",
        )


def _validate_records_of_batch(
    records: memoryview, header: BatchHeader, now_ms: int, config: LogConfig, topic: str, partition: int
) -> None:
    """Record-level rules (keys, timestamps); decodes records only when a rule needs them.

    As Kafka's LogValidator, every offending record is named (its index in the batch and
    Kafka's message) and the batch is refused as a whole with RecordValidationException's
    message; Produce v8+ hands both to the client."""
    bounded = (
        config.message_timestamp_before_max_ms < LONG_MAX or config.message_timestamp_after_max_ms < LONG_MAX
    )
    create_time = not header.attributes & TIMESTAMP_TYPE_MASK
    check_each_timestamp = create_time and bounded and not config.log_append_time
    if create_time and not check_each_timestamp and not config.compact:
        return  # the common batch: no rule to check (every produce passes here; nothing is built)
    errors: list[tuple[int, str]] = []
    timestamp_errors = False
    if config.compact or check_each_timestamp:
        for index, record in enumerate(_records_or_invalid(records, header)):
            if config.compact and record.key is None:
                errors.append((index, f"Compacted topic cannot accept message without key in topic partition "
                                      f"{topic}-{partition}"))
            elif check_each_timestamp and _timestamp_out_of_bounds(record.timestamp, now_ms, config):
                errors.append((index, _out_of_range_message(record, now_ms, config)))
                timestamp_errors = True
    if not errors:
        errors = _batch_timestamp_errors(records, header, now_ms, config)
        timestamp_errors = bool(errors)
    if errors:
        raise _record_validation_error(errors, timestamp_errors)


def _record_validation_error(errors: list[tuple[int, str]], timestamp_errors: bool) -> LogError:
    """Kafka's processRecordErrors: INVALID_TIMESTAMP if any timestamp is wrong, else
    INVALID_RECORD with the count and the first three RecordErrors in Java's list form."""
    if timestamp_errors:
        return LogError(Errors.INVALID_TIMESTAMP, "One or more records have been rejected due to invalid timestamp",
                        errors)
    shown = ", ".join(f"RecordError(batchIndex={index}, message='{message}')" for index, message in errors[:3])
    return LogError(
        Errors.INVALID_RECORD,
        f"One or more records have been rejected due to {len(errors)} record errors in total, "
        f"and only showing the first three errors at most: [{shown}]",
        errors,
    )


def _records_or_invalid(records: memoryview, header: BatchHeader):
    try:
        yield from iter_records(records, header)
    except CorruptRecordError as err:
        raise LogError(Errors.INVALID_RECORD, f"found invalid record structure: {err}") from err


def _timestamp_out_of_bounds(timestamp: int, now_ms: int, config: LogConfig) -> bool:
    if timestamp == NO_TIMESTAMP:
        return False
    difference = now_ms - timestamp
    return (
        difference > config.message_timestamp_before_max_ms
        or -difference > config.message_timestamp_after_max_ms
    )


def _java_long(value: int) -> int:
    """`value` wrapped to a signed 64-bit integer, as Java's long arithmetic leaves it."""
    return (value + 2**63) % 2**64 - 2**63


def _out_of_range_message(record: Record, now_ms: int, config: LogConfig) -> str:
    # Kafka computes the bounds in longs: the default after.max.ms (Long.MAX_VALUE) wraps around.
    low = _java_long(now_ms - config.message_timestamp_before_max_ms)
    high = _java_long(now_ms + config.message_timestamp_after_max_ms)
    return (f"Timestamp {record.timestamp} of message with offset {record.offset} is out of range. "
            f"The timestamp should be within [{low}, {high}]")


def _batch_timestamp_errors(
    records: memoryview, header: BatchHeader, now_ms: int, config: LogConfig
) -> list[tuple[int, str]]:
    """Timestamp rules decidable from the header: records of a LogAppendTime batch carry its
    maxTimestamp, which a client may not choose except as a plain CreateTime value. The header
    decides; the records are decoded only to name each of them, as Kafka does."""
    if header.timestamp_type != LOG_APPEND_TIME:
        return []
    if config.log_append_time or header.max_timestamp == NO_TIMESTAMP:
        return [(index, f"Invalid timestamp type in message {_describe(record)}. Producer should not set "
                        f"timestamp type to LogAppendTime.")
                for index, record in enumerate(_records_or_invalid(records, header))]
    if _timestamp_out_of_bounds(header.max_timestamp, now_ms, config):
        return [(index, _out_of_range_message(record, now_ms, config))
                for index, record in enumerate(_records_or_invalid(records, header))]
    return []


def _describe(record: Record) -> str:
    """Kafka's DefaultRecord.toString."""
    key_size = 0 if record.key is None else len(record.key)
    value_size = 0 if record.value is None else len(record.value)
    return (f"DefaultRecord(offset={record.offset}, timestamp={record.timestamp}, key={key_size} bytes, "
            f"value={value_size} bytes)")


def needs_rewrite(headers: list[BatchHeader], config: LogConfig) -> bool:
    """The topic's compression.type differs from the producer's codec: the records are rebuilt."""
    target = config.target_codec
    if target is None:
        return False
    source = CODEC_NONE
    for header in headers:
        if header.compression_codec != CODEC_NONE:
            source = header.compression_codec
    if source == target:
        return False
    # Uncompressed control batches are never compressed by the broker.
    return not (source == CODEC_NONE and all(header.is_control for header in headers))


def _writable(records: memoryview) -> memoryview:
    return records if not records.readonly else memoryview(bytearray(records))


def _assign_offsets_in_place(
    records: memoryview,
    headers: list[BatchHeader],
    first_offset: int,
    leader_epoch: int,
    now_ms: int,
    config: LogConfig,
) -> ValidationResult:
    buf = _writable(records)
    next_offset = first_offset
    max_timestamp = NO_TIMESTAMP
    offset_of_max_timestamp = -1
    record_count = 0
    patched: list[BatchHeader] = []
    log_append_time_config = config.log_append_time
    for header in headers:
        set_offsets_and_epoch(buf, header, next_offset, leader_epoch)
        if log_append_time_config:
            set_max_timestamp(buf, header, LOG_APPEND_TIME, now_ms)
        elif header.timestamp_type == LOG_APPEND_TIME:
            set_max_timestamp(buf, header, CREATE_TIME, header.max_timestamp)
        batch = parse_header(buf, header.position)
        patched.append(batch)
        next_offset = batch.next_offset
        record_count += batch.record_count
        if batch.max_timestamp > max_timestamp:
            max_timestamp = batch.max_timestamp
            offset_of_max_timestamp = batch.last_offset
    log_append_time = NO_TIMESTAMP
    if log_append_time_config:
        log_append_time = now_ms
        max_timestamp = now_ms
        offset_of_max_timestamp = next_offset - 1
    return ValidationResult(
        records=buf,
        batches=patched,
        first_offset=first_offset,
        last_offset=next_offset - 1,
        max_timestamp=max_timestamp,
        shallow_offset_of_max_timestamp=offset_of_max_timestamp,
        log_append_time=log_append_time,
        record_count=record_count,
        size_maybe_changed=False,
    )


def _transcode_batch(
    records: memoryview,
    headers: list[BatchHeader],
    first_offset: int,
    leader_epoch: int,
    config: LogConfig,
) -> ValidationResult | None:
    """Kafka's rebuild for the common case, done on bytes: one CreateTime batch whose records
    already carry offset deltas 0..n-1 keeps its record bytes, decompressed and compressed again
    in the topic's codec (C code that releases the GIL: no record is decoded into Python
    objects). Its records read back exactly as the rebuild's; None otherwise (several batches,
    LogAppendTime, records out of order or malformed: the rebuild handles and names them)."""
    if len(headers) != 1 or config.log_append_time:
        return None
    header = headers[0]
    if header.timestamp_type != CREATE_TIME or header.is_control:
        return None
    try:
        data = batch_records_bytes(records, header)
    except CorruptRecordError:
        return None
    max_delta = _max_timestamp_delta_of_records_in_order(data, header.record_count)
    if max_delta is None:
        return None
    attributes = (config.target_codec or CODEC_NONE) | (TRANSACTIONAL_FLAG_MASK if header.is_transactional else 0)
    max_timestamp = header.base_timestamp + max_delta
    rebuilt = batch_around_records(
        data, attributes, header.record_count, header.record_count - 1, header.base_timestamp, max_timestamp,
        base_offset=first_offset, partition_leader_epoch=leader_epoch,
        producer=(header.producer_id, header.producer_epoch, header.base_sequence),
        compression_level=config.target_level,
    )
    batch = parse_header(rebuilt, 0)
    return ValidationResult(
        records=memoryview(rebuilt),
        batches=[batch],
        first_offset=first_offset,
        last_offset=batch.last_offset,
        max_timestamp=max_timestamp,
        shallow_offset_of_max_timestamp=batch.last_offset,
        log_append_time=NO_TIMESTAMP,
        record_count=batch.record_count,
        size_maybe_changed=True,
    )


def _max_timestamp_delta_of_records_in_order(data: Buffer, count: int) -> int | None:
    """The largest timestamp delta of `count` records that fill `data` exactly, with offset
    deltas 0..count-1; None otherwise. Reads three varints a record, nothing else."""
    position, end, max_delta = 0, len(data), None
    try:
        for index in range(count):
            length, position = read_varint(data, position)
            record_end = position + length
            if length <= 0 or record_end > end:
                return None
            timestamp_delta, after = read_varint(data, position + 1)  # after the attributes byte
            offset_delta, _ = read_varint(data, after)
            if offset_delta != index:
                return None
            if max_delta is None or timestamp_delta > max_delta:
                max_delta = timestamp_delta
            position = record_end
    except (IndexError, CorruptRecordError):
        return None
    return max_delta if position == end else None


def _rebuild_in_target_codec(
    records: memoryview,
    headers: list[BatchHeader],
    first_offset: int,
    leader_epoch: int,
    now_ms: int,
    config: LogConfig,
) -> ValidationResult:
    """Kafka's buildRecordsAndAssignOffsets: all records into one batch in the topic's codec."""
    simple_records = [
        SimpleRecord(record.key, record.value, record.headers, record.timestamp)
        for header in headers
        for record in _records_or_invalid(records, header)
    ]
    first = headers[0]
    rebuilt = build_batch(
        simple_records,
        base_offset=first_offset,
        compression=config.target_codec or CODEC_NONE,
        compression_level=config.target_level,
        timestamp_type=LOG_APPEND_TIME if config.log_append_time else CREATE_TIME,
        log_append_time=now_ms,
        producer_id=first.producer_id,
        producer_epoch=first.producer_epoch,
        base_sequence=first.base_sequence,
        is_transactional=first.is_transactional,
        partition_leader_epoch=leader_epoch,
        now_ms=now_ms,
    )
    batch = parse_header(rebuilt, 0)
    log_append_time = now_ms if config.log_append_time else NO_TIMESTAMP
    return ValidationResult(
        records=memoryview(rebuilt),
        batches=[batch],
        first_offset=first_offset,
        last_offset=batch.last_offset,
        max_timestamp=batch.max_timestamp,
        shallow_offset_of_max_timestamp=batch.last_offset,
        log_append_time=log_append_time,
        record_count=batch.record_count,
        size_maybe_changed=True,
    )
