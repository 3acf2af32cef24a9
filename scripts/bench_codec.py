#!/usr/bin/env python3
"""Times the compiled codec against hand-written struct/memoryview code for the same messages.

Cases: Produce request v9 with 1 MiB of records (decode), Metadata response v12 with 200
topics x 10 partitions x 3 replicas (encode and decode), Fetch request v13 with 50
partitions (decode). Each hand-written function produces exactly what the codec produces
(checked before timing), so the ratio compares equal work. Prints the median time per
call over many runs. Touches nothing outside this process.
"""

from __future__ import annotations

import statistics
import struct
import sys
import time
import uuid
from collections.abc import Callable

from kbroker.protocol.api_keys import ApiKey
from kbroker.protocol.messages import request_codec, response_codec
from kbroker.protocol.uuids import ZERO_UUID

INT32 = struct.Struct(">i")
INT16_INT32 = struct.Struct(">hi")


# ---------------------------------------------------------------- shared hand-written helpers


def read_uvarint(buf, pos: int) -> tuple[int, int]:
    value = 0
    shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def write_uvarint(out: bytearray, value: int) -> None:
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def read_compact_string(buf, pos: int) -> tuple[str | None, int]:
    n, pos = read_uvarint(buf, pos)
    if n == 0:
        return None, pos
    end = pos + n - 1
    return str(buf[pos:end], "utf-8"), end


def read_compact_int32s(buf, pos: int) -> tuple[list[int], int]:
    n, pos = read_uvarint(buf, pos)
    n -= 1
    return list(struct.unpack_from(f">{n}i", buf, pos)), pos + 4 * n


def skip_tags(buf, pos: int) -> int:
    count, pos = read_uvarint(buf, pos)
    for _ in range(count):
        _tag, pos = read_uvarint(buf, pos)
        size, pos = read_uvarint(buf, pos)
        pos += size
    return pos


# ---------------------------------------------------------------- Produce v9 request


def produce_message(records: bytes) -> dict:
    return {
        "transactional_id": None,
        "acks": -1,
        "timeout_ms": 30000,
        "topic_data": [
            {"name": "bench", "topic_id": ZERO_UUID, "partition_data": [{"index": 0, "records": records}]}
        ],
    }


def hand_decode_produce_v9(buf) -> dict:
    mv = memoryview(buf)
    transactional_id, pos = read_compact_string(buf, 0)
    acks, timeout_ms = struct.unpack_from(">hi", buf, pos)
    pos += 6
    topic_count, pos = read_uvarint(buf, pos)
    topics = []
    for _ in range(topic_count - 1):
        name, pos = read_compact_string(buf, pos)
        partition_count, pos = read_uvarint(buf, pos)
        partitions = []
        for _ in range(partition_count - 1):
            (index,) = INT32.unpack_from(buf, pos)
            size, pos = read_uvarint(buf, pos + 4)
            records = None if size == 0 else mv[pos : pos + size - 1]
            pos = skip_tags(buf, pos + max(size - 1, 0))
            partitions.append({"index": index, "records": records})
        pos = skip_tags(buf, pos)
        topics.append({"name": name, "topic_id": ZERO_UUID, "partition_data": partitions})
    skip_tags(buf, pos)
    return {
        "transactional_id": transactional_id,
        "acks": acks,
        "timeout_ms": timeout_ms,
        "topic_data": topics,
    }


# ---------------------------------------------------------------- Metadata v12 response


def metadata_message(topics: int, partitions: int) -> dict:
    return {
        "throttle_time_ms": 0,
        "brokers": [
            {"node_id": i, "host": f"broker-{i}.example", "port": 9092, "rack": None} for i in range(3)
        ],
        "cluster_id": "kbroker-bench-cluster",
        "controller_id": 0,
        "topics": [
            {
                "error_code": 0,
                "name": f"topic-{t:04d}",
                "topic_id": uuid.UUID(int=t + 1),
                "is_internal": False,
                "partitions": [
                    {
                        "error_code": 0,
                        "partition_index": p,
                        "leader_id": p % 3,
                        "leader_epoch": 7,
                        "replica_nodes": [p % 3, (p + 1) % 3, (p + 2) % 3],
                        "isr_nodes": [p % 3, (p + 1) % 3, (p + 2) % 3],
                        "offline_replicas": [],
                    }
                    for p in range(partitions)
                ],
                "topic_authorized_operations": -2147483648,
            }
            for t in range(topics)
        ],
        "cluster_authorized_operations": -2147483648,
        "error_code": 0,
    }


def _write_compact_string(out: bytearray, value: str | None) -> None:
    if value is None:
        out.append(0)
        return
    data = value.encode()
    write_uvarint(out, len(data) + 1)
    out += data


def _write_compact_int32s(out: bytearray, values: list[int]) -> None:
    write_uvarint(out, len(values) + 1)
    if values:
        out += struct.pack(f">{len(values)}i", *values)


PARTITION_HEAD = struct.Struct(">hiii")


def hand_encode_metadata_v12(msg: dict) -> bytes:
    out = bytearray(INT32.pack(msg["throttle_time_ms"]))
    brokers = msg["brokers"]
    write_uvarint(out, len(brokers) + 1)
    for broker in brokers:
        out += INT32.pack(broker["node_id"])
        _write_compact_string(out, broker["host"])
        out += INT32.pack(broker["port"])
        _write_compact_string(out, broker["rack"])
        out.append(0)
    _write_compact_string(out, msg["cluster_id"])
    out += INT32.pack(msg["controller_id"])
    topics = msg["topics"]
    write_uvarint(out, len(topics) + 1)
    for topic in topics:
        out += struct.pack(">h", topic["error_code"])
        _write_compact_string(out, topic["name"])
        out += topic["topic_id"].bytes
        out.append(1 if topic["is_internal"] else 0)
        partitions = topic["partitions"]
        write_uvarint(out, len(partitions) + 1)
        for p in partitions:
            out += PARTITION_HEAD.pack(
                p["error_code"], p["partition_index"], p["leader_id"], p["leader_epoch"]
            )
            _write_compact_int32s(out, p["replica_nodes"])
            _write_compact_int32s(out, p["isr_nodes"])
            _write_compact_int32s(out, p["offline_replicas"])
            out.append(0)
        out += INT32.pack(topic["topic_authorized_operations"])
        out.append(0)
    out.append(0)
    return bytes(out)


def hand_decode_metadata_v12(buf) -> dict:
    (throttle_time_ms,) = INT32.unpack_from(buf, 0)
    count, pos = read_uvarint(buf, 4)
    brokers = []
    for _ in range(count - 1):
        (node_id,) = INT32.unpack_from(buf, pos)
        host, pos = read_compact_string(buf, pos + 4)
        (port,) = INT32.unpack_from(buf, pos)
        rack, pos = read_compact_string(buf, pos + 4)
        pos = skip_tags(buf, pos)
        brokers.append({"node_id": node_id, "host": host, "port": port, "rack": rack})
    cluster_id, pos = read_compact_string(buf, pos)
    (controller_id,) = INT32.unpack_from(buf, pos)
    count, pos = read_uvarint(buf, pos + 4)
    topics = []
    for _ in range(count - 1):
        (error_code,) = struct.unpack_from(">h", buf, pos)
        name, pos = read_compact_string(buf, pos + 2)
        topic_id = uuid.UUID(bytes=bytes(buf[pos : pos + 16]))
        is_internal = buf[pos + 16] != 0
        partition_count, pos = read_uvarint(buf, pos + 17)
        partitions = []
        for _ in range(partition_count - 1):
            p_error, index, leader, epoch = PARTITION_HEAD.unpack_from(buf, pos)
            replicas, pos = read_compact_int32s(buf, pos + 14)
            isr, pos = read_compact_int32s(buf, pos)
            offline, pos = read_compact_int32s(buf, pos)
            pos = skip_tags(buf, pos)
            partitions.append(
                {
                    "error_code": p_error,
                    "partition_index": index,
                    "leader_id": leader,
                    "leader_epoch": epoch,
                    "replica_nodes": replicas,
                    "isr_nodes": isr,
                    "offline_replicas": offline,
                }
            )
        (operations,) = INT32.unpack_from(buf, pos)
        pos = skip_tags(buf, pos + 4)
        topics.append(
            {
                "error_code": error_code,
                "name": name,
                "topic_id": topic_id,
                "is_internal": is_internal,
                "partitions": partitions,
                "topic_authorized_operations": operations,
            }
        )
    skip_tags(buf, pos)
    return {
        "throttle_time_ms": throttle_time_ms,
        "brokers": brokers,
        "cluster_id": cluster_id,
        "controller_id": controller_id,
        "topics": topics,
        "cluster_authorized_operations": -2147483648,
        "error_code": 0,
    }


# ---------------------------------------------------------------- Fetch v13 request


def fetch_message(topics: int, partitions: int) -> dict:
    return {
        "cluster_id": None,
        "replica_id": -1,
        "replica_state": {"replica_id": -1, "replica_epoch": -1},
        "max_wait_ms": 500,
        "min_bytes": 1,
        "max_bytes": 52428800,
        "isolation_level": 0,
        "session_id": 0,
        "session_epoch": -1,
        "topics": [
            {
                "topic": "",
                "topic_id": uuid.UUID(int=t + 1),
                "partitions": [
                    {
                        "partition": p,
                        "current_leader_epoch": 3,
                        "fetch_offset": 1000 * p,
                        "last_fetched_epoch": -1,
                        "log_start_offset": -1,
                        "partition_max_bytes": 1048576,
                        "replica_directory_id": ZERO_UUID,
                        "high_watermark": 9223372036854775807,
                    }
                    for p in range(partitions)
                ],
            }
            for t in range(topics)
        ],
        "forgotten_topics_data": [],
        "rack_id": "",
    }


FETCH_HEAD = struct.Struct(">iiiibii")
FETCH_PARTITION = struct.Struct(">iiqiqi")


def hand_decode_fetch_v13(buf) -> dict:
    replica_id, max_wait, min_bytes, max_bytes, isolation, session_id, session_epoch = FETCH_HEAD.unpack_from(
        buf, 0
    )
    count, pos = read_uvarint(buf, FETCH_HEAD.size)
    topics = []
    for _ in range(count - 1):
        topic_id = uuid.UUID(bytes=bytes(buf[pos : pos + 16]))
        partition_count, pos = read_uvarint(buf, pos + 16)
        partitions = []
        for _ in range(partition_count - 1):
            partition, leader_epoch, offset, last_epoch, log_start, max_part = FETCH_PARTITION.unpack_from(
                buf, pos
            )
            pos = skip_tags(buf, pos + FETCH_PARTITION.size)
            partitions.append(
                {
                    "partition": partition,
                    "current_leader_epoch": leader_epoch,
                    "fetch_offset": offset,
                    "last_fetched_epoch": last_epoch,
                    "log_start_offset": log_start,
                    "partition_max_bytes": max_part,
                    "replica_directory_id": ZERO_UUID,
                    "high_watermark": 9223372036854775807,
                }
            )
        pos = skip_tags(buf, pos)
        topics.append({"topic": "", "topic_id": topic_id, "partitions": partitions})
    count, pos = read_uvarint(buf, pos)
    forgotten = []
    for _ in range(count - 1):
        topic_id = uuid.UUID(bytes=bytes(buf[pos : pos + 16]))
        indexes, pos = read_compact_int32s(buf, pos + 16)
        pos = skip_tags(buf, pos)
        forgotten.append({"topic": "", "topic_id": topic_id, "partitions": indexes})
    rack_id, pos = read_compact_string(buf, pos)
    cluster_id = None
    count, pos = read_uvarint(buf, pos)
    for _ in range(count):
        tag, pos = read_uvarint(buf, pos)
        size, pos = read_uvarint(buf, pos)
        if tag == 0:
            cluster_id, _ = read_compact_string(buf, pos)
        pos += size
    return {
        "cluster_id": cluster_id,
        "replica_id": replica_id,
        "replica_state": {"replica_id": -1, "replica_epoch": -1},
        "max_wait_ms": max_wait,
        "min_bytes": min_bytes,
        "max_bytes": max_bytes,
        "isolation_level": isolation,
        "session_id": session_id,
        "session_epoch": session_epoch,
        "topics": topics,
        "forgotten_topics_data": forgotten,
        "rack_id": rack_id,
    }


# ---------------------------------------------------------------- timing


def median_seconds(function: Callable[[], object], budget: float = 0.6) -> float:
    """Median time of one call, over repeated batches filling about `budget` seconds."""
    start = time.perf_counter()
    function()
    single = max(time.perf_counter() - start, 1e-7)
    per_batch = max(1, int(0.02 / single))
    samples = []
    deadline = time.perf_counter() + budget
    while time.perf_counter() < deadline or len(samples) < 7:
        start = time.perf_counter()
        for _ in range(per_batch):
            function()
        samples.append((time.perf_counter() - start) / per_batch)
    return statistics.median(samples)


def human(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:8.1f} µs"
    return f"{seconds * 1e3:8.2f} ms"


def report(name: str, codec_call: Callable[[], object], hand_call: Callable[[], object]) -> None:
    ours = median_seconds(codec_call)
    hand = median_seconds(hand_call)
    print(f"{name:<52} codec {human(ours)}   hand-written {human(hand)}   ratio {ours / hand:5.2f}")


def main() -> None:
    produce = request_codec(ApiKey.PRODUCE, 9)
    produce_bytes = produce.encode(produce_message(bytes(1 << 20)))
    assert produce.decode(produce_bytes)[0] == hand_decode_produce_v9(produce_bytes)

    metadata = response_codec(ApiKey.METADATA, 12)
    metadata_msg = metadata_message(200, 10)
    metadata_bytes = metadata.encode(metadata_msg)
    assert hand_encode_metadata_v12(metadata_msg) == metadata_bytes
    assert metadata.decode(metadata_bytes)[0] == hand_decode_metadata_v12(metadata_bytes) == metadata_msg

    fetch = request_codec(ApiKey.FETCH, 13)
    fetch_msg = fetch_message(5, 10)
    fetch_bytes = fetch.encode(fetch_msg)
    assert fetch.decode(fetch_bytes)[0] == hand_decode_fetch_v13(fetch_bytes) == fetch_msg

    print(f"Python {sys.version.split()[0]}; median time per call")
    report(
        "Produce v9 request, 1 MiB records: decode",
        lambda: produce.decode(produce_bytes),
        lambda: hand_decode_produce_v9(produce_bytes),
    )
    report(
        f"Metadata v12 response, 200x10x3 ({len(metadata_bytes)} B): encode",
        lambda: metadata.encode(metadata_msg),
        lambda: hand_encode_metadata_v12(metadata_msg),
    )
    report(
        "Metadata v12 response, 200x10x3: decode",
        lambda: metadata.decode(metadata_bytes),
        lambda: hand_decode_metadata_v12(metadata_bytes),
    )
    report(
        "Fetch v13 request, 50 partitions: decode",
        lambda: fetch.decode(fetch_bytes),
        lambda: hand_decode_fetch_v13(fetch_bytes),
    )


if __name__ == "__main__":
    main()
