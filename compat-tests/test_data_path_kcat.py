"""kcat (Debian's, on its own librdkafka) against a real kbroker: produce thousands of text records
with every codec through `-P -z`, read them back with `-C -J` in order, and look offsets up by
timestamp with `-Q`.

kcat's line mode sets no per-record timestamps or headers, so records carry the run's headers
(`-H`) and the producer's clock; `-Z` turns empty keys and values into nulls.
"""

from __future__ import annotations

import json
import time

import pytest

from kbroker.testing.raw_client import expect_librdkafka_lz4_fallback
from kbroker.testing.records import CODEC_IDS, assert_codec_used, by_partition, sample_records
from kbroker.testing.tools import run_kcat

PARTITIONS = 3
RECORDS_PER_CODEC = 2000
RUN_HEADERS = (("run", b"kcat"), ("codec", b""))
TIMEOUT_S = 15


@pytest.fixture(scope="module")
def kbroker(module_broker_factory):
    return module_broker_factory(f"num.partitions={PARTITIONS}")


def kcat_produce(kbroker, topic: str, partition: int, records, codec: str = "none") -> None:
    """One `kcat -P` run: "key<TAB>value" lines, empty meaning null (-Z)."""
    lines = "".join(f"{(r.key or b'').decode()}\t{(r.value or b'').decode()}\n" for r in records)
    header_args = [arg for name, value in RUN_HEADERS for arg in ("-H", f"{name}={value.decode()}")]
    run_kcat(
        kbroker.bootstrap,
        "-P",
        "-t",
        topic,
        "-p",
        str(partition),
        "-K",
        "\t",
        "-Z",
        "-z",
        codec,
        *header_args,
        input_text=lines,
        timeout=TIMEOUT_S,
    )


def kcat_consume(kbroker, topic: str, partition: int) -> list[dict]:
    """The whole partition, from the beginning to its end, as kcat's JSON objects."""
    completed = run_kcat(
        kbroker.bootstrap,
        "-C",
        "-t",
        topic,
        "-p",
        str(partition),
        "-o",
        "beginning",
        "-e",
        "-J",
        "-q",
        timeout=TIMEOUT_S,
    )
    return [json.loads(line) for line in completed.stdout.splitlines() if line.strip()]


def as_kcat_json(record) -> tuple:
    """What kcat -J prints for a sample record: text key and payload, null stays null."""
    headers = [part for name, value in RUN_HEADERS for part in (name, value.decode())]
    key = record.key.decode() if record.key is not None else None
    value = record.value.decode() if record.value is not None else None
    return key, value, headers


@pytest.mark.parametrize("codec", list(CODEC_IDS))
def test_produce_and_read_back_every_record(request, kbroker, codec):
    expect_librdkafka_lz4_fallback(request, kbroker.port, codec)
    topic = f"kcat-roundtrip-{codec}"
    records = sample_records(
        RECORDS_PER_CODEC, PARTITIONS, seed=30 + CODEC_IDS[codec], text=True, headers=False
    )
    grouped = by_partition(records)

    for partition, rs in grouped.items():
        kcat_produce(kbroker, topic, partition, rs, codec)

    for partition, rs in grouped.items():
        got = kcat_consume(kbroker, topic, partition)
        assert [m["offset"] for m in got] == list(range(len(rs)))
        assert [(m["key"], m["payload"], m["headers"]) for m in got] == [as_kcat_json(r) for r in rs]
        assert {m["tstype"] for m in got} == {"create"}
    assert_codec_used(kbroker.log_dir, topic, PARTITIONS, codec)


def kcat_query(kbroker, topic: str, partition: int, timestamp: int) -> int:
    """`kcat -Q` for one partition; -1 asks for the latest offset, -2 for the earliest."""
    completed = run_kcat(kbroker.bootstrap, "-Q", "-t", f"{topic}:{partition}:{timestamp}", timeout=TIMEOUT_S)
    words = completed.stdout.split()
    assert words[:3] == [topic, f"[{partition}]", "offset"], completed.stdout
    return int(words[3])


def test_query_offsets_by_time(kbroker):
    topic = "kcat-times"
    first = by_partition(sample_records(600, PARTITIONS, seed=40, text=True, headers=False))
    second = by_partition(sample_records(900, PARTITIONS, seed=41, text=True, headers=False))

    for partition, rs in first.items():
        kcat_produce(kbroker, topic, partition, rs, "zstd")
    time.sleep(0.05)  # the two halves get timestamps on either side of `between`
    between = int(time.time() * 1000)
    time.sleep(0.05)
    for partition, rs in second.items():
        kcat_produce(kbroker, topic, partition, rs, "snappy")

    for partition in range(PARTITIONS):
        first_count, total = len(first[partition]), len(first[partition]) + len(second[partition])
        assert kcat_query(kbroker, topic, partition, between) == first_count
        assert kcat_query(kbroker, topic, partition, int(time.time() * 1000) + 60_000) == -1
        assert kcat_query(kbroker, topic, partition, -2) == 0
        assert kcat_query(kbroker, topic, partition, -1) == total
