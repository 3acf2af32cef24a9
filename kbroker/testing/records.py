"""Record data for the data-path tests: a deterministic sample data set, and the batches a broker
stored, read back from its segment files.

- `sample_records`: a deterministic data set with keys, null keys, null values, empty values,
  binary and larger values and headers, spread over partitions with increasing timestamps, so
  a test knows exactly which offset each record must get and which offset a timestamp maps to;
- `stored_batches`: the record batches of a partition as they lie in the broker's segment files,
  parsed and CRC-checked with kafka-python's reader (an oracle independent of kbroker);
- `build_batch`: a v2 record batch written with kafka-python's builder (see `batches`), and
  `batch_values`: the records of a Fetch answer;
- `varied_text`: compressible values that are not one repeated string (compression levels
  give different bytes on them).

Imports kafka-python. Must not start or stop brokers and must not write to a broker's data dir.
"""

from __future__ import annotations

import random
import struct
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from kafka.record.default_records import DefaultRecordBatch

from kbroker.testing.batches import producer_batch

CODEC_IDS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
CODEC_NAMES = {value: name for name, value in CODEC_IDS.items()}
# Timestamps start an hour ago: older ones would fall to the default retention.ms (7 days), which
# Kafka applies to the records' own timestamps, and newer ones could be in the future.
TIMESTAMP_LEAD_MS = 3600 * 1000
TIMESTAMP_STEP_MS = 10


# --- the data set ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SampleRecord:
    index: int  # position in the produce order over all partitions
    partition: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    timestamp: int

    def comparable(self, *, with_timestamp: bool = True) -> tuple:
        """The fields a consumer gets back, as one tuple for list comparison."""
        base = (self.key, self.value, self.headers)
        return (*base, self.timestamp) if with_timestamp else base


def now_ms() -> int:
    return int(time.time() * 1000)


def _payload(rng: random.Random, index: int, text: bool) -> bytes:
    """Values of varied sizes; text mode keeps to printable ASCII without separators (kcat)."""
    size = rng.choice((0, 1, 8, 60, 300, 2000)) if not text else rng.choice((1, 8, 60, 300))
    if text:
        alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_."
        return (f"v{index}-" + "".join(rng.choice(alphabet) for _ in range(size))).encode()
    return rng.randbytes(size)


def varied_text(count: int, seed: int, words_per_value: int = 60) -> list[bytes]:
    """`count` values of `words_per_value` words and numbers from a fixed generator: compressible
    text on which each compression level gives different bytes, the same for the same seed."""
    words = [b"kafka", b"broker", b"record", b"batch", b"offset", b"leader", b"epoch", b"topic", b"partition"]
    state, values = seed, []
    for _ in range(count):
        parts = []
        for _ in range(words_per_value):
            state = (state * 1103515245 + 12345) % 2**31
            parts.append(words[state % len(words)] + str(state % 1000).encode())
        values.append(b" ".join(parts))
    return values


def sample_records(
    count: int,
    partitions: int,
    *,
    seed: int,
    text: bool = False,
    headers: bool = True,
    null_values: bool = True,
    base_timestamp: int | None = None,
) -> list[SampleRecord]:
    """`count` records; record i goes to partition i % partitions with timestamp base + i*step.

    Every 7th record has a null key, about every 11th (when `null_values`) a null value; records
    carry 0-2 headers (a repeated header name included) when `headers` is on.
    """
    rng = random.Random(seed)
    if base_timestamp is None:
        base_timestamp = now_ms() - TIMESTAMP_LEAD_MS
    records = []
    for i in range(count):
        key = (
            None
            if i % 7 == 3
            else (f"key-{i}".encode() if text else b"k" + rng.randbytes(rng.randint(0, 12)))
        )
        # Never both null: some clients refuse a record with neither key nor value.
        value = None if null_values and i % 11 == 5 and key is not None else _payload(rng, i, text)
        record_headers: tuple[tuple[str, bytes], ...] = ()
        if headers and i % 3:
            record_headers = (("trace", f"t{i}".encode()),)
            if i % 3 == 2:
                record_headers += (("trace", b""), ("bin", rng.randbytes(4)))
        records.append(
            SampleRecord(
                i, i % partitions, key, value, record_headers, base_timestamp + i * TIMESTAMP_STEP_MS
            )
        )
    return records


def by_partition(records: list[SampleRecord]) -> dict[int, list[SampleRecord]]:
    grouped: dict[int, list[SampleRecord]] = defaultdict(list)
    for record in records:
        grouped[record.partition].append(record)
    return dict(grouped)


def expected_lists(records: list[SampleRecord], *, with_timestamp: bool = True) -> dict[int, list[tuple]]:
    """partition -> the records' comparable tuples in the order they were produced."""
    return {
        partition: [r.comparable(with_timestamp=with_timestamp) for r in rs]
        for partition, rs in by_partition(records).items()
    }


def first_offset_at_or_after(records: list[SampleRecord], partition: int, timestamp: int) -> int:
    """The offset a ListOffsets by `timestamp` must answer, given offsets start at 0 per partition."""
    for offset, record in enumerate(by_partition(records)[partition]):
        if record.timestamp >= timestamp:
            return offset
    return -1


# --- what lies on disk -----------------------------------------------------------------------


def partition_dir(log_dir: Path, topic: str, partition: int) -> Path:
    return Path(log_dir) / f"{topic}-{partition}"


def segment_files(log_dir: Path, topic: str, partition: int, suffix: str = ".log") -> list[Path]:
    return sorted(partition_dir(log_dir, topic, partition).glob(f"*{suffix}"))


def stored_batches(log_dir: Path, topic: str, partition: int) -> list[DefaultRecordBatch]:
    """Every v2 batch in the partition's .log files, in offset order; asserts each CRC is valid.

    Reads the files as they are (the broker's page cache is shared), without any kbroker code.
    """
    batches = []
    for path in segment_files(log_dir, topic, partition):
        data = path.read_bytes()
        position = 0
        while position + 12 <= len(data):
            base_offset, length = struct.unpack_from(">qi", data, position)
            if length == 0:  # zero-filled tail of a preallocated segment (preallocate=true)
                break
            end = position + 12 + length
            assert end <= len(data), f"{path.name}: batch at {position} runs past the end of the file"
            batch = DefaultRecordBatch(data[position:end])
            assert batch.magic == 2, f"{path.name}: magic {batch.magic} at {position}"
            assert batch.validate_crc(), f"{path.name}: bad CRC in the batch at offset {base_offset}"
            batches.append(batch)
            position = end
    return batches


def stored_codecs(log_dir: Path, topic: str, partitions: int) -> set[str]:
    """The compression codecs of every batch stored for the topic."""
    return {
        CODEC_NAMES[batch.compression_type]
        for partition in range(partitions)
        for batch in stored_batches(log_dir, topic, partition)
    }


def assert_codec_used(log_dir: Path, topic: str, partitions: int, codec: str) -> None:
    """The topic's batches on disk use `codec`, except batches the client left uncompressed
    because compressing them did not make them smaller (kafka-python and librdkafka do that)."""
    codecs = stored_codecs(log_dir, topic, partitions)
    assert codec in codecs, f"no {codec} batch stored for {topic}: {codecs}"
    assert codecs <= {codec, "none"}, f"{topic} holds batches of other codecs: {codecs}"


def stored_records(log_dir: Path, topic: str, partition: int) -> list[tuple[int, bytes | None, bytes | None]]:
    """(offset, key, value) of every record stored for the partition, read from the segments."""
    return [
        (record.offset, record.key, record.value)
        for batch in stored_batches(log_dir, topic, partition)
        for record in batch
    ]


# --- record batches --------------------------------------------------------------------------


def build_batch(
    values: list[bytes],
    *,
    keys: list[bytes | None] | None = None,
    compression: str = "none",
    producer_id: int = -1,
    producer_epoch: int = -1,
    base_sequence: int = -1,
    timestamps: list[int] | None = None,
    base_offset: int = 0,
) -> bytes:
    """One v2 batch written by kafka-python's builder (offsets 0..n-1 unless `base_offset`),
    timestamped now unless `timestamps` says otherwise."""
    batch = producer_batch(
        values,
        codec=CODEC_IDS[compression],
        keys=keys,
        timestamp=now_ms(),
        timestamps=timestamps,
        producer_id=producer_id,
        producer_epoch=producer_epoch,
        base_sequence=base_sequence,
    )
    if base_offset:
        # baseOffset is outside the CRC (which starts at attributes), so patching it keeps the batch valid.
        struct.pack_into(">q", batch, 0, base_offset)
    return bytes(batch)


def batch_values(records: bytes | memoryview) -> list[tuple[int, bytes | None, bytes | None, int]]:
    """(offset, key, value, timestamp) of every record in a Fetch answer's records field."""
    data = bytes(records)
    found = []
    position = 0
    while position + 12 <= len(data):
        (length,) = struct.unpack_from(">i", data, position + 8)
        end = position + 12 + length
        if end > len(data):
            break  # a partial batch at the end of a fetch answer is allowed
        batch = DefaultRecordBatch(data[position:end])
        assert batch.validate_crc(), f"bad CRC in the fetched batch at byte {position}"
        found += [(r.offset, r.key, r.value, r.timestamp) for r in batch]
        position = end
    return found
