"""Property test: random appends, rolls, truncations, retention and reopenings (clean and after a
crash) against a plain list model; the log read back with kafka-python must equal the model, and
every index lookup must land on the right batch."""

from __future__ import annotations

import itertools
import os
import tempfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kbroker.log.config import LogConfig
from kbroker.log.unified_log import UnifiedLog
from kbroker.testing.batches import producer_batch, read_batches

T0 = 1_700_000_000_000
CONFIG = LogConfig(
    segment_bytes=1500, index_interval_bytes=300, segment_index_bytes=120, retention_bytes=4000
)

# Appends and truncations dominate so that truncations often cross several segments.
KINDS = ["append"] * 4 + ["truncate"] * 2 + ["roll", "retention", "reopen_clean", "reopen_crashed"]
operations = st.lists(
    st.tuples(st.sampled_from(KINDS), st.floats(0, 1), st.integers(1, 200)),
    min_size=1,
    max_size=40,
)

_directories = itertools.count()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operations)
def test_log_matches_a_list_model(ops):
    with tempfile.TemporaryDirectory() as tmp:
        directory = os.path.join(tmp, f"model-{next(_directories)}")
        log = UnifiedLog(directory, CONFIG, had_clean_shutdown=True, now=T0)
        model: list[tuple[int, bytes]] = []
        counter = itertools.count()
        for op, fraction, size in ops:
            if op == "append":
                values = [b"%d:" % next(counter) + b"v" * size for _ in range(1 + int(fraction * 5))]
                info = log.append_as_leader(producer_batch(values, timestamp=T0 + len(model)), 0, now=T0)
                assert info.base_offset == (model[-1][0] + 1 if model else log.log_start_offset)
                model.extend((info.base_offset + i, v) for i, v in enumerate(values))
            elif op == "truncate" and model:
                target = model[0][0] + int(fraction * (len(model) - 1))
                target = _batch_start(log, target)
                log.truncate_to(target)
                model = [(o, v) for o, v in model if o < target]
            elif op == "roll":
                log.roll()
            elif op == "retention":
                log.update_high_watermark(log.log_end_offset)
                log.delete_old_segments(now=T0)
                model = [(o, v) for o, v in model if o >= log.log_start_offset]
            elif op == "reopen_clean":
                log.close()
                log = UnifiedLog(
                    directory, CONFIG, had_clean_shutdown=True, log_start_offset=log.log_start_offset
                )
            elif op == "reopen_crashed":
                log.close_handlers()
                log = UnifiedLog(
                    directory, CONFIG, had_clean_shutdown=False, log_start_offset=log.log_start_offset
                )
            _check(log, model)
        log.close()


def _batch_start(log: UnifiedLog, offset: int) -> int:
    """Truncation points are batch boundaries, as a follower's always are."""
    found = log.floor_segment(offset).translate_offset(offset)
    data = log.floor_segment(offset).read_bytes(found.position, found.size)
    return int.from_bytes(data[:8], "big")


def _check(log: UnifiedLog, model: list[tuple[int, bytes]]) -> None:
    expected_end = model[-1][0] + 1 if model else log.log_start_offset
    assert log.log_end_offset == expected_end
    stored = []
    for segment in log.log_segments():
        with open(segment.log_path, "rb") as file:
            stored.extend((r.offset, r.value) for _, records in read_batches(file.read()) for r in records)
    assert [entry for entry in stored if entry[0] >= log.log_start_offset] == model
    # The last offsets too: the batch starts among them are recent log ends, whose positions the
    # log remembers for consumers that keep up (stale after a truncation or roll if mishandled).
    for offset, value in model[:: max(1, len(model) // 7)] + model[-5:]:
        log.update_high_watermark(log.log_end_offset)
        [(batch, records), *_] = read_batches(log.read(offset, 1).read_bytes())
        assert batch.base_offset <= offset <= batch.last_offset
        assert dict((r.offset, r.value) for r in records)[offset] == value


def test_reads_from_remembered_log_ends_follow_truncations_and_rolls(tmp_path):
    """A consumer that keeps up reads from recent log ends, whose positions the log remembers:
    after a truncation the same offsets lie elsewhere (here inside one larger batch), and after
    a roll in another segment; every read must still start at the batch holding its offset."""
    log = UnifiedLog(str(tmp_path / "t-0"), CONFIG, had_clean_shutdown=True, now=T0)
    for i in range(10):
        log.append_as_leader(producer_batch([b"%d" % i + b"v" * 40]), 0, now=T0)
    log.truncate_to(3)
    log.append_as_leader(producer_batch([b"%d" % i for i in range(3, 8)]), 0, now=T0)  # offsets 3-7: one batch
    log.roll()
    log.append_as_leader(producer_batch([b"8"]), 0, now=T0)
    log.update_high_watermark(log.log_end_offset)
    for offset in range(log.log_end_offset):
        [(batch, records), *_] = read_batches(log.read(offset, 1).read_bytes())
        assert batch.base_offset <= offset <= batch.last_offset
        assert dict((r.offset, r.value) for r in records)[offset] == b"%d" % offset + (b"v" * 40 if offset < 3 else b"")
    log.close()
