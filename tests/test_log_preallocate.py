"""preallocate (topic) / log.preallocate (broker), as Kafka 3.9 does it: a new segment's .log is
created at segment.bytes (a sparse file, ftruncate as the JVM's setLength), trimmed to its data
when it stops being active (roll, a cleaned segment before its swap) and at a clean shutdown, and
cut back to its last valid batch by recovery after a crash. Meanwhile nothing sees the zeros:
reads, fetches by real clients, rolls, size-based retention, the cleaner, restarts, kill -9.

Real files throughout; the broker tests run a kbroker process (stopped by pid), produce and
consume with confluent-kafka and change topic configs with kafka-python's admin client.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient
from kafka.admin._configs import ConfigResource, ConfigResourceType
from kafka.errors import MessageSizeTooLargeError

from kbroker.log.config import LogConfig
from kbroker.log.log_manager import LogManager
from kbroker.log.unified_log import UnifiedLog
from kbroker.testing.batches import batches_with_positions, producer_batch, read_batches
from kbroker.testing.raw_client import create_topic, read_partition
from kbroker.testing.records import segment_files, stored_batches
from kbroker.testing.waiting import eventually
from kbroker.tools.dump_log import dump_segment

T0 = 1_700_000_000_000
SEGMENT_BYTES = 16 * 1024


def open_log(directory: Path, *, clean: bool = True, **config) -> UnifiedLog:
    settings = {"segment_bytes": SEGMENT_BYTES, "index_interval_bytes": 512, **config}
    return UnifiedLog(str(directory / "topic-0"), LogConfig(**settings), had_clean_shutdown=clean, now=T0)


def append(log: UnifiedLog, count: int, start: int = 0) -> list[bytes]:
    values = [b"value-%05d-" % (start + n) + b"x" * 700 for n in range(count)]
    for value in values:
        log.append_as_leader(producer_batch([value], timestamp=T0), 0, now=T0)
    log.update_high_watermark(log.log_end_offset)
    return values


def values_read(log: UnifiedLog) -> list[bytes]:
    """Every record value, fetched by offset as a consumer would (regions of the segments)."""
    values: list[bytes] = []
    offset = log.log_start_offset
    while offset < log.log_end_offset:
        batches = read_batches(log.read(offset, 1 << 20, max_offset=log.log_end_offset).read_bytes())
        values += [record.value for _batch, records in batches for record in records]
        offset = batches[-1][0].base_offset + len(batches[-1][1])
    return values


def layout(log: UnifiedLog) -> list[tuple[int, int]]:
    return [(segment.base_offset, segment.size) for segment in log.log_segments()]


def file_sizes(log: UnifiedLog) -> list[int]:
    return [os.path.getsize(segment.log_path) for segment in log.log_segments()]


def test_the_active_segment_is_preallocated_and_everything_sees_only_its_data(tmp_path):
    plain = open_log(tmp_path / "plain")
    preallocated = open_log(tmp_path / "preallocated", preallocate=True)
    assert file_sizes(preallocated) == [SEGMENT_BYTES]  # created at segment.bytes before any append
    assert preallocated.size == 0 and preallocated.log_end_offset == 0
    assert preallocated.read(0, 1 << 20).records is None

    written = append(plain, 50)
    assert append(preallocated, 50) == written

    # Rolls happened at the same points (segment.bytes counts data, not the file's length) ...
    assert layout(preallocated) == layout(plain) and preallocated.number_of_segments > 2
    # ... each rolled segment was trimmed to its data, and the new active one is preallocated.
    sizes = [size for _base, size in layout(plain)]
    assert file_sizes(preallocated) == sizes[:-1] + [SEGMENT_BYTES]
    assert file_sizes(plain) == sizes
    for segment in preallocated.log_segments()[:-1]:
        batches_with_positions(segment.log_path)  # whole batches to the last byte: no zeros left
    assert values_read(preallocated) == written
    assert preallocated.size == plain.size == sum(sizes)
    active = preallocated.active_segment
    assert active.read_bytes(0, active.size) == plain.active_segment.read_bytes(0, plain.active_segment.size)
    last = preallocated.read(preallocated.log_end_offset - 1, 1 << 20).records
    assert last is not None and last.position + last.length == active.size  # a region ends at the data

    # Retention by size counts data too: exactly the first segment is over the limit (counting
    # the active segment's file length would make it the first two).
    for log in (plain, preallocated):
        log.config = log.config._replace(retention_bytes=sum(sizes) - sizes[0])
        log.delete_old_segments(now=T0)
    assert layout(preallocated) == layout(plain) and preallocated.log_start_offset > 0
    assert values_read(preallocated) == written[preallocated.log_start_offset:]
    plain.close()
    preallocated.close()


def test_a_clean_close_trims_the_active_segment_and_a_restart_continues_at_the_log_end(tmp_path):
    log = open_log(tmp_path, preallocate=True)
    written = append(log, 5)
    end, size = log.log_end_offset, log.active_segment.size
    path = log.active_segment.log_path
    assert os.path.getsize(path) == SEGMENT_BYTES
    log.close()
    assert os.path.getsize(path) == size  # no zero tail after a clean shutdown
    batches_with_positions(path)

    again = open_log(tmp_path, preallocate=True)
    assert (again.log_end_offset, again.active_segment.size) == (end, size)
    assert not again.active_segment.preallocated  # an existing file is taken as it is (Kafka too)
    written += append(again, 3, start=5)
    assert values_read(again) == written and again.log_end_offset == 8
    assert os.path.getsize(path) == again.active_segment.size
    again.close()


@pytest.mark.parametrize("clean_flag", [False, True])
def test_recovery_cuts_the_preallocated_tail_of_a_segment_never_closed(tmp_path, clean_flag):
    """A crash leaves the active .log at segment.bytes with zeros after the data; recovery (an
    unclean shutdown, or a "clean" one whose active tail is damaged anyway) cuts them."""
    log = open_log(tmp_path, preallocate=True)
    written = append(log, 30)  # rolls once or more: only the active segment is preallocated
    end = log.log_end_offset
    path = log.active_segment.log_path
    assert os.path.getsize(path) == SEGMENT_BYTES
    log.close_handlers()  # the process dies: nothing trimmed

    recovered = open_log(tmp_path, clean=clean_flag, preallocate=True)
    assert recovered.log_end_offset == end
    assert os.path.getsize(path) == recovered.active_segment.size
    batches_with_positions(path)
    assert values_read(recovered) == written
    written += append(recovered, 2, start=30)
    assert values_read(recovered) == written and recovered.log_end_offset == end + 2
    recovered.close()


def test_truncation_of_the_active_segment_cuts_the_preallocation_as_kafka_does(tmp_path):
    log = open_log(tmp_path, preallocate=True)
    written = append(log, 4)
    log.truncate_to(2)
    assert os.path.getsize(log.active_segment.log_path) == log.active_segment.size
    written = written[:2] + append(log, 2, start=10)
    assert values_read(log) == written and log.log_end_offset == 4
    log.close()


def test_the_cleaner_preallocates_its_cleaned_segment_and_trims_it_before_the_swap(tmp_path):
    manager = LogManager([str(tmp_path)], cluster_id="prealloc", broker_id=0, default_config=LogConfig(
        cleanup_policy="compact", min_cleanable_dirty_ratio=0.01, preallocate=True, segment_bytes=SEGMENT_BYTES))
    log = manager.get_or_create_log("compacted", 0)
    for round_ in range(4):
        batch = producer_batch([b"v%d-%d" % (round_, k) for k in range(5)], keys=[b"k%d" % k for k in range(5)],
                               timestamp=T0)
        log.append_as_leader(batch, 0, now=T0)
        log.update_high_watermark(log.log_end_offset)
        log.roll()
    assert manager.cleaner.clean_filthiest_log(now=T0) is not None
    [cleaned, active] = log.log_segments()
    assert os.path.getsize(cleaned.log_path) == cleaned.size > 0
    kept = [(r.key, r.value) for _p, _b, records in batches_with_positions(cleaned.log_path) for r in records]
    assert kept == [(b"k%d" % k, b"v3-%d" % k) for k in range(5)]
    assert os.path.getsize(active.log_path) == SEGMENT_BYTES and active.size == 0
    manager.close()
    assert not [name for name in os.listdir(log.directory) if name.endswith((".cleaned", ".swap"))]


def test_dump_log_ends_a_preallocated_segment_at_its_data(tmp_path):
    log = open_log(tmp_path, preallocate=True)
    append(log, 3)
    lines = list(dump_segment(log.active_segment.log_path, deep=False, data=None))
    assert len(lines) == 3 and all(line.startswith("baseOffset: ") for line in lines)
    log.close_handlers()


# --- a broker process, real clients --------------------------------------------------------------------


def produce_acknowledged(bootstrap: str, topic: str, values: list[bytes], one_by_one: bool = False) -> list[int]:
    """Produce with acks=all and wait for every acknowledgement; their offsets. `one_by_one`:
    each record acknowledged before the next is sent (a batch each: rolls fall where computed)."""
    offsets: list[int] = []

    def delivered(err, msg):
        assert err is None, err
        offsets.append(msg.offset())

    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0})
    for value in values:
        producer.produce(topic, value=value, partition=0, on_delivery=delivered)
        producer.poll(0)
        if one_by_one:
            assert producer.flush(30) == 0
    assert producer.flush(30) == 0
    return offsets


def consume_all(bootstrap: str, topic: str, expected: int) -> list[tuple[int, bytes]]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"g-{topic}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, 0, 0)])  # fetches from offset 0, no group to join
    got: list[tuple[int, bytes]] = []
    try:
        def received_all() -> bool:
            for msg in consumer.consume(num_messages=expected - len(got), timeout=0.5):
                assert msg.error() is None, msg.error()
                got.append((msg.offset(), msg.value()))
            return len(got) >= expected

        eventually(received_all, timeout=30, what=f"{expected} records of {topic}")
    finally:
        consumer.close()
    return got


def log_files(log_dir: Path, topic: str) -> list[Path]:
    return segment_files(log_dir, topic, 0)


def data_size(path: Path) -> int:
    """Bytes of whole batches at the start of a .log file, up to preallocated zeros if any."""
    data = path.read_bytes()
    position = 0
    while position + 12 <= len(data):
        (length,) = struct.unpack_from(">i", data, position + 8)
        if length <= 0 or position + 12 + length > len(data):
            break
        position += 12 + length
    return position


def test_kill_9_with_a_preallocated_active_segment_loses_and_invents_nothing(broker_factory):
    broker = broker_factory("log.preallocate=true", "log.segment.bytes=1048576")
    topic = "prealloc-crash"
    create_topic(broker.port, topic)
    values = [b"before-%04d-" % n + b"y" * (n % 300) for n in range(300)]
    assert produce_acknowledged(broker.bootstrap, topic, values) == list(range(300))
    [log_file] = log_files(broker.log_dir, topic)
    assert log_file.stat().st_size == 1048576  # the active segment is preallocated
    consumed = consume_all(broker.bootstrap, topic, 300)  # a real client sees only the data
    assert consumed == list(enumerate(values))
    high_watermark, _records = read_partition(broker.port, topic, 0)
    assert high_watermark == 300

    broker.kill()  # SIGKILL by pid: the preallocated tail stays on disk
    assert log_file.stat().st_size == 1048576
    broker.start()
    high_watermark, records = read_partition(broker.port, topic, 0)
    assert high_watermark == 300
    assert [(offset, value) for offset, _key, value, _ts in records] == list(enumerate(values))
    assert log_file.stat().st_size == data_size(log_file) < 1048576  # recovery cut the zeros
    batches_with_positions(str(log_file))
    more = [b"after-%d" % n for n in range(20)]
    assert produce_acknowledged(broker.bootstrap, topic, more) == list(range(300, 320))
    assert [value for _o, value in consume_all(broker.bootstrap, topic, 320)] == values + more
    assert [r.offset for batch in stored_batches(broker.log_dir, topic, 0) for r in batch] == list(range(320))


def test_a_clean_stop_trims_and_the_restart_finds_the_same_log_end(broker_factory):
    broker = broker_factory("log.preallocate=true", "log.segment.bytes=1048576")
    topic = "prealloc-clean"
    create_topic(broker.port, topic)
    values = [b"v%d" % n for n in range(50)]
    produce_acknowledged(broker.bootstrap, topic, values)
    [log_file] = log_files(broker.log_dir, topic)
    assert log_file.stat().st_size == 1048576
    assert broker.stop() == 0
    assert log_file.stat().st_size == data_size(log_file) > 0
    batches_with_positions(str(log_file))
    broker.start()
    high_watermark, records = read_partition(broker.port, topic, 0)
    assert high_watermark == 50 and [value for _o, _k, value, _t in records] == values
    assert produce_acknowledged(broker.bootstrap, topic, [b"next"]) == [50]


RECORD = 20_000  # a batch of ~20,075 bytes: three fit in a segment of 64 KiB, the fourth rolls


def roll_with(bootstrap: str, topic: str, count: int) -> None:
    produce_acknowledged(bootstrap, topic, [b"z" * RECORD for _ in range(count)], one_by_one=True)


def size_refused(bootstrap: str, topic: str, size: int) -> bool:
    """Whether a record of `size` bytes is refused now (the topic's max.message.bytes changes
    with preallocate in the same request: once it is live, so is preallocate)."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, retries=0, max_request_size=1 << 20)
    try:
        producer.send(topic, b"r" * size, partition=0).get(10)
    except MessageSizeTooLargeError:
        return True
    finally:
        producer.close()
    return False


def alter(admin: KafkaAdminClient, topic: str, configs: dict[str, str], incremental: bool) -> None:
    result = admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs)], incremental=incremental)
    assert result == {"topic": {topic: "OK"}}, result


def test_the_topic_setting_changed_by_alter_configs_applies_to_the_next_segment(broker_factory):
    broker = broker_factory()
    topic = "prealloc-dynamic"
    segment_bytes = 65536
    create_topic(broker.port, topic, configs={"segment.bytes": str(segment_bytes)})
    roll_with(broker.bootstrap, topic, 2)
    [first] = log_files(broker.log_dir, topic)
    assert first.stat().st_size == data_size(first)  # preallocate is false by default

    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=10000)
    try:
        alter(admin, topic, {"preallocate": "true", "max.message.bytes": "35000"}, incremental=True)
        eventually(lambda: size_refused(broker.bootstrap, topic, 40_000), timeout=10, what="the altered config")
        roll_with(broker.bootstrap, topic, 3)  # the fourth record rolls: the new segment is preallocated
        eventually(lambda: len(log_files(broker.log_dir, topic)) == 2, timeout=10, what="a roll")
        first, second = log_files(broker.log_dir, topic)
        assert first.stat().st_size == data_size(first)
        assert second.stat().st_size == segment_bytes

        # AlterConfigs (the legacy API) replaces the topic's overrides: preallocate is false again.
        alter(admin, topic, {"segment.bytes": str(segment_bytes), "preallocate": "false",
                             "max.message.bytes": "25000"}, incremental=False)
        eventually(lambda: size_refused(broker.bootstrap, topic, 30_000), timeout=10, what="the replaced configs")
        roll_with(broker.bootstrap, topic, 4)
        eventually(lambda: len(log_files(broker.log_dir, topic)) == 3, timeout=10, what="a second roll")
        first, second, third = log_files(broker.log_dir, topic)
        assert second.stat().st_size == data_size(second) < segment_bytes  # trimmed on roll
        assert third.stat().st_size == data_size(third)  # not preallocated
    finally:
        admin.close()
    high_watermark, records = read_partition(broker.port, topic, 0)
    assert high_watermark == 9 and [o for o, *_ in records] == list(range(9))
