"""The log cleaner on real files: latest value per key at its original offset, tombstones kept until
delete.retention.ms after their first cleaning, the active segment untouched, the dirty ratio and
compaction lags honoured, transactions, the background task giving a round up when the log is
truncated under it, and a kill at every step of the swap leaving a log that reopens consistent.

Everything cleaned is read back with kafka-python's record reader (CRCs checked).
"""

from __future__ import annotations

import asyncio
import os
import struct
import subprocess
import sys
import zlib

import pytest

from kbroker.log.append_origin import AppendOrigin
from kbroker.log.checkpoint import CLEANER_OFFSET_CHECKPOINT_FILE, read_offset_checkpoint
from kbroker.log.config import LogConfig
from kbroker.log.log_cleaner import CleanerConfig, log_to_clean
from kbroker.log.log_manager import LogManager
from kbroker.log.records import (
    DELETE_HORIZON_FLAG_MASK,
    ControlRecordType,
    build_control_batch,
    iter_batches,
)
from kbroker.log.unified_log import UnifiedLog
from kbroker.testing.batches import batches_with_positions, producer_batch, read_batches
from kbroker.testing.waiting import eventually_async

T0 = 1_700_000_000_000
TOPIC = "prices"
CODEC_GZIP, CODEC_LZ4, CODEC_ZSTD = 1, 3, 4
TEMPORARY_SUFFIXES = (".cleaned", ".swap", ".deleted")


def open_manager(path, **config) -> LogManager:
    settings = {"cleanup_policy": "compact", "min_cleanable_dirty_ratio": 0.01, **config}
    return LogManager([str(path)], cluster_id="cleaner", broker_id=0, default_config=LogConfig(**settings))


def write(log: UnifiedLog, pairs, timestamp: int = T0, codec: int = 0, **producer) -> int:
    """Append one batch of (key, value) pairs, make it committed; returns its base offset."""
    keys = [key for key, _value in pairs]
    values = [value for _key, value in pairs]
    batch = producer_batch(values, keys=keys, codec=codec, timestamp=timestamp, **producer)
    info = log.append_as_leader(batch, leader_epoch=0, now=timestamp)
    log.update_high_watermark(log.log_end_offset)
    return info.base_offset


def marker(log: UnifiedLog, control: ControlRecordType, producer_id: int) -> int:
    batch = build_control_batch(control, producer_id, 0, 1, timestamp=T0)
    info = log.append_as_leader(batch, leader_epoch=0, origin=AppendOrigin.COORDINATOR, now=T0)
    log.update_high_watermark(log.log_end_offset)
    return info.base_offset


def stored_batches(log: UnifiedLog, segments=None) -> list[tuple[object, list[object]]]:
    """(kafka-python batch, records) in log order, CRCs validated by kafka-python."""
    result = []
    for segment in segments if segments is not None else log.log_segments():
        result.extend((batch, records) for _pos, batch, records in batches_with_positions(segment.log_path))
    return result


def stored_records(log: UnifiedLog, segments=None) -> list[tuple[int, bytes | None, bytes | None]]:
    return [(r.offset, r.key, r.value) for _batch, records in stored_batches(log, segments) for r in records]


def headers_in(path: str):
    with open(path, "rb") as file:
        data = file.read()
    return list(iter_batches(data))


def assert_offsets_increase(records) -> None:
    offsets = [offset for offset, _key, _value in records]
    assert offsets == sorted(set(offsets)), "offsets must be unique and increasing"


def leftover_temporary_files(directory: str) -> list[str]:
    return [name for name in os.listdir(directory) if name.endswith(TEMPORARY_SUFFIXES)]


# --- what survives ------------------------------------------------------------------------


@pytest.mark.parametrize("codec", [0, CODEC_GZIP, CODEC_LZ4, CODEC_ZSTD])
def test_latest_value_per_key_is_kept_at_its_original_offset(tmp_path, codec):
    manager = open_manager(tmp_path)
    log = manager.get_or_create_log(TOPIC, 0)
    latest = {}
    for round_ in range(6):
        pairs = [(b"key-%d" % k, b"value-%d-%d" % (round_, k)) for k in range(8) if (k + round_) % 3]
        base = write(log, pairs, codec=codec)
        latest.update({key: (base + n, value) for n, (key, value) in enumerate(pairs)})
        log.roll()
    write(log, [(b"key-0", b"in the active segment"), (b"key-0", b"twice")])
    active = log.active_segment
    with open(active.log_path, "rb") as file:
        active_bytes = file.read()

    assert manager.cleaner.clean_filthiest_log(now=T0) is not None

    cleaned = stored_records(log, log.log_segments()[:-1])
    assert_offsets_increase(cleaned)
    assert {key: (offset, value) for offset, key, value in cleaned} == latest
    assert len(cleaned) == len(latest)
    assert log.active_segment is active  # never cleaned, never rewritten
    with open(active.log_path, "rb") as file:
        assert file.read() == active_bytes
    assert log.number_of_segments == 2  # the six small segments were merged into one
    checkpoint = read_offset_checkpoint(str(tmp_path / CLEANER_OFFSET_CHECKPOINT_FILE))
    assert checkpoint == {(TOPIC, 0): active.base_offset}
    # A consumer fetching from offset 0 (maybe a gap now) gets the first batch still there.
    fetched = read_batches(log.read(0, 1 << 20, max_offset=log.high_watermark).read_bytes())
    first_kept = min(offset for offset, _value in latest.values())
    assert next(r.offset for _batch, records in fetched for r in records) == first_kept
    manager.close()


def test_a_rebuilt_batch_is_compressed_at_its_codecs_default_level_not_the_topics(tmp_path):
    """Kafka's cleaner (MemoryRecords.filterTo) compresses what it keeps with the batch's own codec
    at that codec's default level: compression.gzip.level is for the produce path's rewrites."""
    manager = open_manager(tmp_path, compression_type="gzip", compression_gzip_level=1)
    log = manager.get_or_create_log(TOPIC, 0)
    text = b" ".join(b"price %d of item %d" % (n * 37 % 101, n) for n in range(200))
    write(log, [(b"a", text), (b"a", text + b"!"), (b"b", text[::-1])], codec=CODEC_GZIP)
    log.roll()
    write(log, [(b"c", b"active")])

    assert manager.cleaner.clean_filthiest_log(now=T0) is not None

    [header] = headers_in(log.log_segments()[0].log_path)
    with open(log.log_segments()[0].log_path, "rb") as file:
        body = file.read()[header.position + 61 : header.end]
    plain = zlib.decompress(body, 31)
    default = zlib.compressobj(-1, zlib.DEFLATED, 31)
    assert header.record_count == 2 and body == default.compress(plain) + default.flush()
    assert body[8] == 0  # the gzip header's XFL: neither the fastest (4) nor the best (2) level
    manager.close()


def test_keyless_records_are_dropped_and_untouched_batches_are_copied_byte_for_byte(tmp_path):
    manager = open_manager(tmp_path, cleanup_policy="delete")  # the only way keyless records get in
    log = manager.get_or_create_log(TOPIC, 0)
    write(log, [(None, b"no key"), (b"a", b"1")])
    kept_whole = write(log, [(b"b", b"2"), (b"c", b"3")])
    log.roll()
    write(log, [(b"z", b"active")])
    kept_bytes = next(
        open(s.log_path, "rb").read()[h.position : h.end]
        for s in log.log_segments()
        for h in headers_in(s.log_path)
        if h.base_offset == kept_whole
    )
    manager.update_topic_config(TOPIC, LogConfig(cleanup_policy="compact", min_cleanable_dirty_ratio=0.01))

    manager.cleaner.clean_filthiest_log(now=T0)

    segment = log.log_segments()[0]
    assert [(key, value) for _o, key, value in stored_records(log, [segment])] == [
        (b"a", b"1"),
        (b"b", b"2"),
        (b"c", b"3"),
    ]
    with open(segment.log_path, "rb") as file:
        assert kept_bytes in file.read()
    assert manager.cleaner.last_stats.invalid_messages == 1
    manager.close()


@pytest.mark.parametrize("codec", [0, CODEC_ZSTD])
def test_tombstones_stay_until_delete_retention_after_their_first_cleaning(tmp_path, codec):
    manager = open_manager(tmp_path, delete_retention_ms=10_000)
    log = manager.get_or_create_log(TOPIC, 0)
    write(log, [(b"gone", b"old"), (b"kept", b"1")], timestamp=T0 - 5, codec=codec)
    log.roll()
    tombstone_offset = write(log, [(b"gone", None), (b"kept", b"2")], timestamp=T0 - 3, codec=codec)
    log.roll()
    write(log, [(b"other", b"active")])

    manager.cleaner.clean_filthiest_log(now=T0)
    records = stored_records(log)
    assert (tombstone_offset, b"gone", None) in records
    assert all(value != b"old" for _o, _k, value in records)
    batch = next(h for h in headers_in(log.log_segments()[0].log_path) if h.base_offset == tombstone_offset)
    assert batch.attributes & DELETE_HORIZON_FLAG_MASK
    assert batch.base_timestamp == T0 + 10_000  # the delete horizon: first cleaning + delete.retention.ms
    tombstone = next(r for b, rs in stored_batches(log) for r in rs if r.offset == tombstone_offset)
    assert tombstone.timestamp == T0 - 3  # records keep their own timestamps

    for now, still_there in ((T0 + 9_999, True), (T0 + 10_000, False)):
        write(log, [(b"filler-%d" % now, b"x")])
        log.roll()
        assert manager.cleaner.clean_filthiest_log(now=now) is not None
        records = stored_records(log)
        assert ((tombstone_offset, b"gone", None) in records) is still_there
        assert_offsets_increase(records)
    fillers = {b"filler-%d" % (T0 + 9_999), b"filler-%d" % (T0 + 10_000)}
    assert {key for _o, key, _v in records} == {b"kept", b"other", *fillers}
    manager.close()


# --- when a log is cleaned ----------------------------------------------------------------


def test_min_cleanable_dirty_ratio_is_honoured(tmp_path):
    manager = open_manager(tmp_path, min_cleanable_dirty_ratio=0.5)
    log = manager.get_or_create_log(TOPIC, 0)
    write(log, [(b"key-%d" % k, b"v" * 100) for k in range(40)])
    log.roll()
    assert manager.cleaner.clean_filthiest_log(now=T0) is not None  # never cleaned: ratio 1.0
    clean_bytes = log.log_segments()[0].size

    write(log, [(b"key-%d" % k, b"w" * 100) for k in range(5)])
    log.roll()
    dirty_bytes = log.log_segments()[1].size
    candidate = log_to_clean((TOPIC, 0), log, manager.cleaner.checkpoints[(TOPIC, 0)], T0)
    assert candidate.cleanable_ratio == pytest.approx(dirty_bytes / (clean_bytes + dirty_bytes))
    assert candidate.cleanable_ratio < 0.5
    assert manager.cleaner.grab_filthiest_compacted_log(T0) is None

    write(log, [(b"key-%d" % k, b"x" * 100) for k in range(40)])
    log.roll()
    chosen = manager.cleaner.grab_filthiest_compacted_log(T0)
    assert chosen is not None and chosen.cleanable_ratio > 0.5
    manager.close()


def test_compaction_lags_hold_back_young_records_and_force_old_ones(tmp_path):
    manager = open_manager(tmp_path, min_compaction_lag_ms=60_000)
    log = manager.get_or_create_log(TOPIC, 0)
    write(log, [(b"a", b"1")], timestamp=T0)
    log.roll()
    write(log, [(b"a", b"2")], timestamp=T0 + 1)
    assert manager.cleaner.grab_filthiest_compacted_log(T0 + 59_000) is None  # too young
    assert manager.cleaner.clean_filthiest_log(now=T0 + 60_001) is not None

    lagged = open_manager(tmp_path / "max", min_cleanable_dirty_ratio=0.99, max_compaction_lag_ms=60_000)
    log = lagged.get_or_create_log(TOPIC, 0)
    write(log, [(b"key-%d" % k, b"v" * 100) for k in range(40)], timestamp=T0)
    log.roll()
    lagged.cleaner.clean_filthiest_log(now=T0)
    write(log, [(b"key-1", b"small change")], timestamp=T0 + 1000)
    log.roll()
    assert lagged.cleaner.grab_filthiest_compacted_log(T0 + 2000) is None  # ratio far below 0.99
    forced = lagged.cleaner.grab_filthiest_compacted_log(T0 + 61_001)
    assert forced is not None and forced.need_compaction_now
    manager.close()
    lagged.close()


def test_only_logs_with_compact_in_their_policy_are_cleaned(tmp_path):
    manager = open_manager(tmp_path, cleanup_policy="delete")
    log = manager.get_or_create_log(TOPIC, 0)
    write(log, [(b"a", b"1"), (b"a", b"2")])
    log.roll()
    assert manager.cleaner.grab_filthiest_compacted_log(T0) is None
    manager.update_topic_config(TOPIC, LogConfig(cleanup_policy="compact,delete", min_cleanable_dirty_ratio=0.01))
    assert manager.cleaner.clean_filthiest_log(now=T0) is not None
    assert stored_records(log)[0][2] == b"2"
    manager.close()


# --- producers and transactions ------------------------------------------------------------


def test_transactions_aborted_data_goes_markers_stay_until_their_horizon(tmp_path):
    manager = open_manager(tmp_path, delete_retention_ms=1000)
    log = manager.get_or_create_log(TOPIC, 0)
    txn = {"producer_epoch": 0, "transactional": True}
    aborted = write(log, [(b"a", b"aborted")], producer_id=7, base_sequence=0, **txn)
    abort = marker(log, ControlRecordType.ABORT, 7)
    write(log, [(b"c", b"after")], producer_id=7, producer_epoch=0, base_sequence=1)
    committed = write(log, [(b"b", b"committed")], producer_id=8, base_sequence=0, **txn)
    commit = marker(log, ControlRecordType.COMMIT, 8)
    write(log, [(b"a", b"plain")])
    log.roll()
    write(log, [(b"z", b"active")])

    manager.cleaner.clean_filthiest_log(now=T0)
    cleaned = log.log_segments()[0]
    headers = {h.base_offset: h for h in headers_in(cleaned.log_path)}
    assert aborted not in headers
    assert headers[abort].is_control and headers[abort].record_count == 1  # its data went just now
    assert not headers[abort].attributes & DELETE_HORIZON_FLAG_MASK
    assert [t.first_offset for t in cleaned.txn_index.all_aborted()] == [aborted]
    assert headers[commit].is_control  # its transaction's data is still there
    assert (committed, b"b", b"committed") in stored_records(log)

    def rounds_later(now: int) -> dict:
        write(log, [(b"filler", b"%d" % now)])
        log.roll()
        assert manager.cleaner.clean_filthiest_log(now=now) is not None
        return {h.base_offset: h for h in headers_in(log.log_segments()[0].log_path)}

    headers = rounds_later(T0 + 10)
    assert headers[abort].attributes & DELETE_HORIZON_FLAG_MASK
    assert headers[abort].base_timestamp == T0 + 1010  # no data left: the tombstone horizon starts
    headers = rounds_later(T0 + 1010)
    assert abort not in headers and commit in headers
    assert [value for _o, key, value in stored_records(log) if key == b"a"] == [b"plain"]
    manager.close()


def test_an_idempotent_producers_last_batch_is_kept_empty(tmp_path):
    manager = open_manager(tmp_path)
    log = manager.get_or_create_log(TOPIC, 0)
    first = write(log, [(b"a", b"1"), (b"b", b"1")], producer_id=9, producer_epoch=3, base_sequence=0)
    write(log, [(b"a", b"2"), (b"b", b"2")])
    log.roll()
    write(log, [(b"z", b"active")])
    manager.cleaner.clean_filthiest_log(now=T0)
    header = headers_in(log.log_segments()[0].log_path)[0]
    assert (header.base_offset, header.last_offset, header.record_count) == (first, first + 1, 0)
    assert (header.producer_id, header.producer_epoch, header.base_sequence) == (9, 3, 0)
    batch, records = stored_batches(log)[0]  # kafka-python reads the empty batch too
    assert records == [] and batch.base_offset == first
    manager.close()


# --- the background task --------------------------------------------------------------------


def test_the_background_task_gives_a_round_up_when_the_log_is_truncated_under_it(tmp_path, caplog):
    manager = open_manager(tmp_path, segment_bytes=8 << 20)
    log = manager.get_or_create_log(TOPIC, 0)
    for n in range(4):
        for batch in range(50):
            write(log, [(b"key-%d" % (k % 500), b"%d" % n + b"." * 200) for k in range(batch * 50, batch * 50 + 50)])
        log.roll()
    write(log, [(b"z", b"active")])
    cut = log.log_segments()[2].base_offset + 50  # a batch boundary

    async def scenario() -> None:
        manager.start_cleaner(kafka_settings(tmp_path, "log.cleaner.backoff.ms=10"))
        assert manager.cleaner.is_running
        # Polled without pause: the .cleaned file exists only while the cleaner writes it.
        await eventually_async(lambda: any(name.endswith(".cleaned") for name in os.listdir(log.directory)),
                               what="the cleaner to start writing", interval=0)
        log.truncate_to(cut)  # a follower diverging from its new leader, mid-clean
        log.update_high_watermark(log.log_end_offset)
        await eventually_async(lambda: manager.cleaner.checkpoints.get((TOPIC, 0)) == log.active_segment.base_offset,
                               what="the cleaner's checkpoint to reach the active segment")
        manager.close()

    with caplog.at_level("INFO", logger="kbroker.log.log_cleaner"):
        asyncio.run(scenario())
    assert "given up" in caplog.text
    assert log.log_end_offset == cut
    records = stored_records(log)
    assert_offsets_increase(records)
    keys = [key for _o, key, _v in stored_records(log, log.log_segments()[:-1])]
    assert len(keys) == len(set(keys)) == 500  # cleaned after the truncation, every key once
    assert not [name for name in os.listdir(log.directory) if name.endswith(".cleaned")]
    assert (TOPIC, 0) not in manager.cleaner.uncleanable


def kafka_settings(tmp_path, *overrides: str):
    """A broker config's `get`, which reads settings by their Kafka names."""
    from kbroker.config import KafkaConfig

    return KafkaConfig.load(overrides=[f"log.dirs={tmp_path / 'broker'}", *overrides]).get


def test_cleaner_settings_by_their_kafka_names_and_disabled_cleaners_do_not_run(tmp_path):
    config = CleanerConfig.from_settings(kafka_settings(tmp_path, "log.cleaner.backoff.ms=250", "log.cleaner.threads=2"))
    assert (config.enable, config.threads, config.backoff_ms) == (True, 2, 250)
    assert config.map_memory == 64 * 1024 * 1024  # Kafka splits the dedupe buffer over threads
    manager = open_manager(tmp_path / "data")
    manager.get_or_create_log(TOPIC, 0)  # compacted: the cleaner would run if enabled

    async def start_disabled() -> bool:
        manager.start_cleaner(kafka_settings(tmp_path, "log.cleaner.enable=false"))
        manager.start_cleaner(kafka_settings(tmp_path, "log.cleaner.threads=0"))
        return manager.cleaner.is_running

    assert asyncio.run(start_disabled()) is False
    manager.close()


def test_the_cleaner_starts_once_a_log_is_compacted(tmp_path):
    """No compacted log, nothing to clean: the cleaner is not even built (it is imported on first
    use, which keeps it out of the broker's start-up)."""
    manager = open_manager(tmp_path / "data", cleanup_policy="delete")
    manager.get_or_create_log("plain", 0)
    settings = kafka_settings(tmp_path)

    async def start_then_compact() -> tuple[bool, bool]:
        manager.start_cleaner(settings)
        built_before = manager._cleaner is not None
        manager.get_or_create_log(TOPIC, 0, config=LogConfig(cleanup_policy="compact"))
        manager.start_cleaner(settings)
        return built_before, manager.cleaner.is_running

    assert asyncio.run(start_then_compact()) == (False, True)
    manager.close()


# --- crashes ------------------------------------------------------------------------------

# Where the child process dies (os._exit: no cleanup at all) while cleaning.
CRASH_POINTS = {
    "writing the cleaned segment": "LogSegment.append_batches",
    "indexes renamed to .swap, log still .cleaned": "LogSegment._rename_log_file to .swap",
    "swap complete, old segments untouched": "UnifiedLog._delete_segment_async #1",
    "some old segments already .deleted": "UnifiedLog._delete_segment_async #3",
    "log in place, indexes still .swap": "OffsetIndex.rename_to from .swap",
    "swapped, checkpoint not written": "LogCleaner._write_checkpoint",
}

CHILD = """
import os, sys
sys.path.insert(0, {tests!r})
import test_log_cleaner as t
manager = t.open_manager({path!r})
t.crash_at({point!r})
manager.cleaner.clean_filthiest_log(now=t.T0)
os._exit(3)
"""


def crash_scenario(manager: LogManager) -> dict[bytes, bytes | None]:
    """Five small segments of overwritten and deleted keys and an active one; the expected latest
    value per key (None: deleted)."""
    log = manager.get_or_create_log(TOPIC, 0)
    latest: dict[bytes, bytes | None] = {}
    for round_ in range(5):
        pairs = [(b"key-%d" % k, None if (k, round_) == (3, 4) else b"%d-%d" % (round_, k)) for k in range(6)]
        write(log, pairs[: 4 + round_ % 3])
        latest.update(pairs[: 4 + round_ % 3])
        log.roll()
    write(log, [(b"key-0", b"active")])
    latest[b"key-0"] = b"active"
    return latest


def crash_at(point: str) -> None:
    """Make the process exit at `point` (a CRASH_POINTS value) as kill -9 would."""
    from kbroker.log.index import OffsetIndex
    from kbroker.log.log_cleaner import LogCleaner
    from kbroker.log.segment import LogSegment

    calls = {"n": 0}

    def dying(cls, name, when=lambda *_args: True, after=False):  # `when` gets the method's arguments
        original = getattr(cls, name)

        def wrapper(self, *args):
            if after:
                original(self, *args)
            if when(self, *args):
                os._exit(17)
            return original(self, *args)

        setattr(cls, name, wrapper)

    def nth_call(n):
        def check(*_args):
            calls["n"] += 1
            return calls["n"] == n

        return check

    if point == "LogSegment.append_batches":
        dying(LogSegment, "append_batches", after=True)
    elif point == "LogSegment._rename_log_file to .swap":
        dying(LogSegment, "_rename_log_file", when=lambda _self, path: path.endswith(".swap"))
    elif point.startswith("UnifiedLog._delete_segment_async #"):
        dying(UnifiedLog, "_delete_segment_async", when=nth_call(int(point.rsplit("#", 1)[1])))
    elif point == "OffsetIndex.rename_to from .swap":
        dying(OffsetIndex, "rename_to", when=lambda self, _path: self.path.endswith(".swap"))
    elif point == "LogCleaner._write_checkpoint":
        dying(LogCleaner, "_write_checkpoint")
    else:
        raise ValueError(point)


@pytest.mark.parametrize("point", list(CRASH_POINTS.values()), ids=list(CRASH_POINTS))
def test_a_crash_at_any_step_reopens_consistent_and_cleans_again(tmp_path, point):
    data = tmp_path / "data"
    manager = open_manager(data)
    latest = crash_scenario(manager)
    log_end = manager.get_log(TOPIC, 0).log_end_offset
    manager.close()
    tests_dir = os.path.dirname(os.path.abspath(__file__))
    child = subprocess.run(
        [sys.executable, "-c", CHILD.format(tests=tests_dir, path=str(data), point=point)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert child.returncode == 17, child.stderr  # it died at the crash point

    manager = open_manager(data)
    log = manager.get_log(TOPIC, 0)
    assert leftover_temporary_files(log.directory) == []
    assert log.log_end_offset == log_end
    records = stored_records(log)
    assert_offsets_increase(records)
    last_value = {}
    for _offset, key, value in records:
        last_value[key] = value
    assert {k: v for k, v in last_value.items() if v is not None} == {
        k: v for k, v in latest.items() if v is not None
    }

    manager.cleaner.clean_filthiest_log(now=T0)
    cleaned = stored_records(log, log.log_segments()[:-1])
    keys = [key for _o, key, _v in cleaned]
    assert len(keys) == len(set(keys))
    assert {key: value for _o, key, value in cleaned if key != b"key-0"} == {
        key: value for key, value in latest.items() if key != b"key-0"
    }
    manager.close()


def test_an_index_swap_file_without_its_log_is_dropped_while_the_cleaned_log_remains(tmp_path):
    directory = tmp_path / f"{TOPIC}-0"
    log = UnifiedLog(str(directory), LogConfig(cleanup_policy="compact"))
    write(log, [(b"a", b"1")])
    log.roll()
    write(log, [(b"a", b"2")])
    log.close()
    original_index = (directory / "00000000000000000000.index").read_bytes()
    (directory / "00000000000000000000.log.cleaned").write_bytes(b"partial")
    (directory / "00000000000000000000.index.swap").write_bytes(struct.pack(">ii", 5, 999))
    reopened = UnifiedLog(str(directory), LogConfig(cleanup_policy="compact"))
    assert leftover_temporary_files(str(directory)) == []
    assert (directory / "00000000000000000000.index").read_bytes() == original_index
    assert [value for _o, _k, value in stored_records(reopened)] == [b"1", b"2"]
    reopened.close()
