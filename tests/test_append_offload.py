"""kbroker.append.offload.threads: large produce appends validated (CRC-32C, compression.type
rewrites) in worker threads, then appended on the event loop. The answers, the stored bytes and
the order must be those of the inline path: CORRUPT_MESSAGE for a damaged batch, the topic's
codec after a rewrite, a connection's pipelined requests appended in the order sent.

Against a broker subprocess over raw sockets (batches built with kafka-python's builder), plus
the log-level seam: what a worker prepared for a config the topic no longer has is not used.
"""

from __future__ import annotations

import random

import pytest

from kbroker.log.append_offload import REWRITE_MIN_RECORDS, AppendOffloader
from kbroker.log.config import LogConfig
from kbroker.log.errors import LogError
from kbroker.log.unified_log import UnifiedLog
from kbroker.log.validator import prepare_leader_append
from kbroker.protocol.errors import Errors
from kbroker.testing.raw_client import PRODUCE, RawClient, create_topic, fetch, produce, produce_body
from kbroker.testing.records import batch_values, build_batch

CORRUPT_MESSAGE = 2
MIN_BYTES = 4096
LARGE = 2048  # value size: a few of them make a batch above MIN_BYTES


@pytest.fixture(scope="module")
def kbroker(module_broker_factory):
    return module_broker_factory("kbroker.append.offload.threads=2", f"kbroker.append.offload.min.bytes={MIN_BYTES}")


def values(count: int, prefix: str, size: int = 0) -> list[bytes]:
    return [f"{prefix}{i}".encode().ljust(size, b".") for i in range(count)]


def fetched_values(client: RawClient, topic: str, partition: int = 0) -> list[bytes]:
    _, answer = fetch(client, topic, partition, 0)
    return [value for _, _, value, _ in batch_values(answer["records"])]


@pytest.mark.parametrize("position", [-1, 21, 60], ids=["last-record-byte", "attributes", "record-count"])
def test_an_offloaded_batch_with_a_flipped_byte_is_corrupt_message(kbroker, position):
    topic = f"offload-corrupt-{position}"
    create_topic(kbroker.port, topic)
    good = build_batch(values(4, "a", LARGE))
    assert len(good) >= MIN_BYTES  # so the workers check it
    corrupt = bytearray(good)
    corrupt[position] ^= 0x01
    with RawClient(kbroker.port) as client:
        refused = produce(client, topic, 0, bytes(corrupt))
        accepted = produce(client, topic, 0, good)
        stored = fetched_values(client, topic)

    assert refused["error_code"] == CORRUPT_MESSAGE
    assert refused["log_start_offset"] == -1 and refused["error_message"] is None  # as inline
    assert accepted["error_code"] == 0 and accepted["base_offset"] == 0
    assert stored == values(4, "a", LARGE)


def test_pipelined_requests_of_one_connection_are_appended_in_order(kbroker):
    """Large (offloaded) and small (inline) batches alternate, all sent before any answer is
    read: a small request must not overtake the large one before it."""
    topic = "offload-order"
    create_topic(kbroker.port, topic)
    rng = random.Random(15)
    batches = [values(rng.choice((2, 3, 4)), f"r{n}-", LARGE if n % 2 == 0 else 0) for n in range(40)]
    with RawClient(kbroker.port) as client:
        for batch in batches:
            client.send(PRODUCE, 9, produce_body(topic, 0, build_batch(batch)))
        answers = [client.receive(PRODUCE, 9)[1]["responses"][0]["partition_responses"][0] for _ in batches]
        stored = fetched_values(client, topic)

    expected_offsets, offset = [], 0
    for batch in batches:
        expected_offsets.append(offset)
        offset += len(batch)
    assert [a["error_code"] for a in answers] == [0] * len(batches)
    assert [a["base_offset"] for a in answers] == expected_offsets
    assert stored == [value for batch in batches for value in batch]


def test_an_offloaded_rewrite_stores_the_topic_codec_in_every_partition(kbroker):
    """A small lz4 batch of many records for a gzip topic is rewritten by the workers (from
    REWRITE_MIN_RECORDS records, whatever its size); one request for two partitions prepares
    both, then appends each."""
    topic = "offload-rewrite"
    create_topic(kbroker.port, topic, partitions=2, configs={"compression.type": "gzip"})
    many = REWRITE_MIN_RECORDS + 30
    body = produce_body(topic, 0, build_batch(values(many, "p0-"), compression="lz4"))
    body["topic_data"][0]["partition_data"].append(
        {"index": 1, "records": build_batch(values(5, "p1-", LARGE), compression="lz4")})
    with RawClient(kbroker.port) as client:
        client.call(PRODUCE, 9, body)  # the offsets: a second append follows the first
        second = produce(client, topic, 0, build_batch(values(3, "again-"), compression="lz4"))
        _, first_partition = fetch(client, topic, 0, 0)
        _, second_partition = fetch(client, topic, 1, 0)

    assert second["error_code"] == 0 and second["base_offset"] == many
    assert [v for _, _, v, _ in batch_values(first_partition["records"])] == values(many, "p0-") + values(3, "again-")
    assert [o for o, _, _, _ in batch_values(first_partition["records"])] == list(range(many + 3))
    assert [v for _, _, v, _ in batch_values(second_partition["records"])] == values(5, "p1-", LARGE)
    for records in (first_partition["records"], second_partition["records"]):
        assert records[21 + 1] & 0x07 == 1  # the first stored batch is gzip


def test_what_goes_to_the_workers():
    offloader = AppendOffloader(1, MIN_BYTES)
    try:
        rewrites = LogConfig(compression_type="gzip")
        assert offloader.wants(build_batch(values(4, "a", LARGE)), LogConfig())  # large
        assert not offloader.wants(build_batch(values(4, "a")), LogConfig())  # small, kept as produced
        assert offloader.wants(build_batch(values(REWRITE_MIN_RECORDS, "a"), compression="lz4"), rewrites)
        assert not offloader.wants(build_batch(values(REWRITE_MIN_RECORDS - 1, "a"), compression="lz4"), rewrites)
        assert not offloader.wants(build_batch(values(REWRITE_MIN_RECORDS, "a"), compression="gzip"), rewrites)
    finally:
        offloader.shutdown()


# --- the log's side ------------------------------------------------------------------------------


def test_a_rewrite_prepared_off_the_loop_gets_the_log_offsets_and_epoch(tmp_path):
    log = UnifiedLog(str(tmp_path / "t-0"), LogConfig(compression_type="zstd"))
    log.append_as_leader(bytearray(build_batch(values(2, "first-"))), leader_epoch=3)
    records = build_batch(values(10, "x", 100))
    prepared = prepare_leader_append(records, log.config, 1_000, "t", 0)

    info = log.append_as_leader(bytearray(records), leader_epoch=4, prepared=prepared)

    assert (info.base_offset, info.last_offset) == (2, 11)
    stored = log.read(2, 1_000_000).records.read_bytes()
    assert [(o, v) for o, _, v, _ in batch_values(stored)] == list(zip(range(2, 12), values(10, "x", 100), strict=True))
    assert stored[21 + 1] & 0x07 == 4  # zstd
    assert int.from_bytes(stored[12:16], "big") == 4  # this append's leader epoch


def test_a_refusal_prepared_off_the_loop_is_raised_by_the_append(tmp_path):
    log = UnifiedLog(str(tmp_path / "t-0"), LogConfig())
    corrupt = bytearray(build_batch(values(3, "v")))
    corrupt[-1] ^= 0x01
    prepared = prepare_leader_append(bytes(corrupt), log.config, 1_000, "t", 0)
    assert prepared.error is not None

    with pytest.raises(LogError) as refused:
        log.append_as_leader(corrupt, leader_epoch=0, prepared=prepared)

    assert refused.value.code == Errors.CORRUPT_MESSAGE
    assert log.log_end_offset == 0


def test_what_was_prepared_for_an_older_config_is_done_again(tmp_path):
    """The topic's compression.type changed while the worker ran: the append follows the new one."""
    log = UnifiedLog(str(tmp_path / "t-0"), LogConfig(compression_type="zstd"))
    records = build_batch(values(5, "v"))
    prepared = prepare_leader_append(records, log.config, 1_000, "t", 0)
    assert prepared.rebuilt is not None
    log.config = log.config._replace(compression_type="producer")

    log.append_as_leader(bytearray(records), leader_epoch=0, prepared=prepared)

    stored = log.read(0, 1_000_000).records.read_bytes()
    assert stored[21 + 1] & 0x07 == 0  # kept as produced, uncompressed
    assert [v for _, _, v, _ in batch_values(stored)] == values(5, "v")
