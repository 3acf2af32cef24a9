"""`kbroker dump-log --files F...`: kafka-dump-log.sh for kbroker's (Kafka's) segment files, offline.

Reads `.log`, `.index` and `.timeindex` files with kbroker.log's own readers (no broker, no
network) and prints DumpLogSegments' lines: `Dumping F`, then per batch `baseOffset: ...
lastOffset: ... count: ... position: ... CreateTime: ... size: ... magic: ... compresscodec:
... crc: ... isvalid: ...`, per record (--deep-iteration or --print-data-log) `| offset: ...`
with `key: ... payload: ...` under --print-data-log; `offset: O position: P` for an .index and
`timestamp: T offset: O` for a .timeindex. --offsets-decoder shows `__consumer_offsets` keys and
values as Kafka's decoder does (JSON), KIP-848 consumer groups' records (types 3, 5-8) too. The only tool that imports kbroker.log and the group
coordinator's record codec (files, not the protocol, are its input).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
from collections.abc import Callable, Iterator
from typing import Any

from kbroker.group.consumer_group_records import key_json as consumer_key_json
from kbroker.group.consumer_group_records import read_record_key
from kbroker.group.consumer_group_records import value_json as consumer_value_json
from kbroker.group.coordinator_records import (
    CoordinatorRecordError,
    GroupMetadataKey,
    GroupMetadataRecord,
    OffsetCommitKey,
    read_group_metadata_value,
    read_key,
    read_offset_commit_value,
)
from kbroker.log.compression import CODEC_NAMES
from kbroker.log.index import INDEX_FILE_SUFFIX, TIME_INDEX_FILE_SUFFIX, OffsetIndex, TimeIndex
from kbroker.log.records import (
    LOG_APPEND_TIME,
    MAGIC_V2,
    BatchHeader,
    CorruptRecordError,
    batch_crc_is_valid,
    iter_batches,
    iter_records,
)
from kbroker.tools.common import ToolError


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser("dump-log", help="decode .log, .index and .timeindex files offline")
    parser.add_argument("--files", required=True, nargs="+", metavar="FILE")
    parser.add_argument("--print-data-log", action="store_true", help="print each record's key and value")
    parser.add_argument("--deep-iteration", action="store_true", help="print each record, not only batches")
    parser.add_argument("--offsets-decoder", action="store_true",
                        help="decode __consumer_offsets keys and values (implies --print-data-log)")
    parser.set_defaults(run=run, parser=parser)


def run(args: argparse.Namespace) -> int:
    for path in args.files:
        print(f"Dumping {path}")
        try:
            data = _offsets_text if args.offsets_decoder else _plain_text if args.print_data_log else None
            lines = _dump(path, deep=args.deep_iteration or data is not None, data=data)
            for line in lines:
                print(line)
        except OSError as exc:
            raise ToolError(f"cannot read {path}: {exc.strerror or exc}") from None
    return 0


def _base_offset(path: str) -> int:
    try:
        return int(os.path.basename(path).split(".")[0])
    except ValueError:
        raise ToolError(f"{path} is not named by its base offset (00000000000000000000.log)") from None


# How --print-data-log shows a record: its key and value as text, or None to leave them out.
DataFormat = Callable[[bytes | None, bytes | None], tuple[str, str]] | None


def _dump(path: str, deep: bool, data: DataFormat) -> Iterator[str]:
    if not os.path.isfile(path):
        raise ToolError(f"cannot read {path}: no such file")
    base_offset = _base_offset(path)
    if path.endswith(INDEX_FILE_SUFFIX):
        index = OffsetIndex(path, base_offset, os.path.getsize(path), writable=False)
        for n in range(index.entries):
            offset, position = index.entry_at(n)
            if n and offset == base_offset:  # the zeros of a preallocated (active) index: its end
                return
            yield f"offset: {offset} position: {position}"
    elif path.endswith(TIME_INDEX_FILE_SUFFIX):
        time_index = TimeIndex(path, base_offset, os.path.getsize(path), writable=False)
        for n in range(time_index.entries):
            timestamp, offset = time_index.entry_at(n)
            if n and offset == base_offset:
                return
            yield f"timestamp: {timestamp} offset: {offset}"
    elif path.endswith(".log"):
        yield f"Log starting offset: {base_offset}"
        yield from dump_segment(path, deep, data)
    else:
        raise ToolError(f"{path}: not a .log, .index or .timeindex file")


def dump_segment(path: str, deep: bool, data: DataFormat) -> Iterator[str]:
    """DumpLogSegments' lines for one .log file; a corrupt batch ends the dump with a line saying so."""
    with open(path, "rb") as file:
        buf = file.read()  # a segment is at most log.segment.bytes (1 GiB by default): a tool may hold it
    end = 0
    try:
        for header in iter_batches(buf):
            end = header.end
            yield _batch_line(buf, header)
            if deep and header.magic == MAGIC_V2:
                yield from _record_lines(buf, header, data)
    except CorruptRecordError as exc:
        if not _zeros_from(buf, end):
            yield f"Found a corrupt batch after position {end}: {exc}"
        return
    if end < len(buf) and not _zeros_from(buf, end):
        yield f"Found {len(buf) - end} invalid bytes at the end of {os.path.basename(path)}"


def _zeros_from(buf: bytes, position: int) -> bool:
    """Whether only zeros follow `position`: the unused tail of a preallocated (active) segment
    (preallocate=true), its end rather than invalid bytes."""
    return buf.count(0, position) == len(buf) - position


def _timestamp_type(header: BatchHeader) -> str:
    return "LogAppendTime" if header.timestamp_type == LOG_APPEND_TIME else "CreateTime"


def _batch_line(buf: bytes, header: BatchHeader) -> str:
    if header.magic != MAGIC_V2:
        return (f"baseOffset: {header.base_offset} position: {header.position} size: {header.size} "
                f"magic: {header.magic}")
    last_sequence = header.last_sequence if header.base_sequence >= 0 else -1
    return (f"baseOffset: {header.base_offset} lastOffset: {header.last_offset} count: {header.record_count} "
            f"baseSequence: {header.base_sequence} lastSequence: {last_sequence} "
            f"producerId: {header.producer_id} producerEpoch: {header.producer_epoch} "
            f"partitionLeaderEpoch: {header.partition_leader_epoch} "
            f"isTransactional: {str(header.is_transactional).lower()} isControl: {str(header.is_control).lower()} "
            f"position: {header.position} {_timestamp_type(header)}: {header.max_timestamp} size: {header.size} "
            f"magic: {header.magic} compresscodec: {CODEC_NAMES.get(header.compression_codec, 'unknown')} "
            f"crc: {header.crc & 0xFFFFFFFF} isvalid: {str(batch_crc_is_valid(buf, header)).lower()}")


def _record_lines(buf: bytes, header: BatchHeader, data: DataFormat) -> Iterator[str]:
    for record in iter_records(buf, header):
        sequence = header.base_sequence + record.offset - header.base_offset if header.base_sequence >= 0 else -1
        line = (f"| offset: {record.offset} {_timestamp_type(header)}: {record.timestamp} "
                f"keySize: {_size(record.key)} valueSize: {_size(record.value)} sequence: {sequence} "
                f"headerKeys: [{','.join(key for key, _ in record.headers)}]")
        if data is not None and not header.is_control:
            key, payload = data(record.key, record.value)
            line += f" key: {key} payload: {payload}"
        yield line


def _size(value: bytes | None) -> int:
    return -1 if value is None else len(value)


def _text(value: bytes | None) -> str:
    return "null" if value is None else bytes(value).decode("utf-8", "replace")


def _plain_text(key: bytes | None, value: bytes | None) -> tuple[str, str]:
    return _text(key), _text(value)


def _offsets_text(key: bytes | None, value: bytes | None) -> tuple[str, str]:
    """A __consumer_offsets record as Kafka's offsets decoder prints it: key and value as JSON
    `{"type"|"version": "<n>", "data": {...}}`, a tombstone's value as `<DELETE>`."""
    if key is None:
        return "null", _text(value)
    try:
        consumer_key = read_record_key(bytes(key))
        if consumer_key is not None:  # a KIP-848 consumer group's record
            return (_json(consumer_key_json(consumer_key)),
                    "<DELETE>" if value is None else _json(consumer_value_json(consumer_key[0], bytes(value))))
        decoded = read_key(bytes(key))
        key_json = {"type": str(_version(key)), "data": _key_data(decoded)}
        if value is None:
            return _json(key_json), "<DELETE>"
        if isinstance(decoded, OffsetCommitKey):
            om = read_offset_commit_value(bytes(value))
            data: dict[str, Any] = {"offset": om.offset, "leaderEpoch": om.leader_epoch, "metadata": om.metadata,
                                    "commitTimestamp": om.commit_timestamp}
            if om.expire_timestamp is not None:
                data["expireTimestamp"] = om.expire_timestamp
        elif isinstance(decoded, GroupMetadataKey):
            data = _group_data(read_group_metadata_value(bytes(value)))
        else:
            return _json(key_json), f"unknown record version: {_text(value)}"
        return _json(key_json), _json({"version": str(_version(value)), "data": data})
    except CoordinatorRecordError as exc:
        return _text(key), f"undecodable ({exc})"


def _version(raw: bytes) -> int:
    return int.from_bytes(raw[:2], "big", signed=True)


def _key_data(key: OffsetCommitKey | GroupMetadataKey | None) -> dict[str, Any]:
    if isinstance(key, OffsetCommitKey):
        return {"group": key.group, "topic": key.topic, "partition": key.partition}
    return {"group": key.group} if key is not None else {}


def _group_data(record: GroupMetadataRecord) -> dict[str, Any]:
    members = [{"memberId": m.member_id, "groupInstanceId": m.group_instance_id, "clientId": m.client_id,
                "clientHost": m.client_host, "rebalanceTimeout": m.rebalance_timeout_ms,
                "sessionTimeout": m.session_timeout_ms, "subscription": base64.b64encode(m.subscription).decode(),
                "assignment": base64.b64encode(m.assignment).decode()} for m in record.members]
    return {"protocolType": record.protocol_type, "generation": record.generation, "protocol": record.protocol,
            "leader": record.leader, "currentStateTimestamp": record.current_state_timestamp, "members": members}


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))
