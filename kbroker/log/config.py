"""Topic-level log settings (Kafka's LogConfig) under Kafka's topic config names, with Kafka's defaults.

`LogConfig.from_topic_config` turns a topic's `{name: string value}` overrides (as stored in
/config/topics/<t>) into a LogConfig over a base (the broker's log.* defaults, built elsewhere).
Plain data: no broker config parsing (kbroker/config.py owns that), no files.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any, NamedTuple

from kbroker.log.compression import (
    CODEC_BY_TOPIC_COMPRESSION,
    CODEC_GZIP,
    CODEC_LZ4,
    CODEC_ZSTD,
    GZIP_DEFAULT_LEVEL,
    LZ4_DEFAULT_LEVEL,
    PRODUCER_COMPRESSION,
    ZSTD_DEFAULT_LEVEL,
)

LONG_MAX = 2**63 - 1
CREATE_TIME_NAME = "CreateTime"
LOG_APPEND_TIME_NAME = "LogAppendTime"
DEFAULT_PRODUCER_ID_EXPIRATION_MS = 24 * 3600 * 1000  # producer.id.expiration.ms, a broker setting


class LogConfig(NamedTuple):
    """Immutable, so a NamedTuple: every start-up defines this class, and a frozen dataclass of
    23 fields costs ten times as much to define (2.4 ms on a 2-core machine)."""

    segment_bytes: int = 1024 * 1024 * 1024
    segment_ms: int = 7 * 24 * 3600 * 1000
    segment_jitter_ms: int = 0
    segment_index_bytes: int = 10 * 1024 * 1024
    index_interval_bytes: int = 4096
    retention_ms: int = 7 * 24 * 3600 * 1000
    retention_bytes: int = -1
    max_message_bytes: int = 1048588
    message_timestamp_type: str = CREATE_TIME_NAME
    message_timestamp_before_max_ms: int = LONG_MAX
    message_timestamp_after_max_ms: int = LONG_MAX
    cleanup_policy: str = "delete"
    compression_type: str = PRODUCER_COMPRESSION
    compression_gzip_level: int = GZIP_DEFAULT_LEVEL
    compression_lz4_level: int = LZ4_DEFAULT_LEVEL
    compression_zstd_level: int = ZSTD_DEFAULT_LEVEL
    min_insync_replicas: int = 1
    flush_messages: int = LONG_MAX
    flush_ms: int = LONG_MAX
    file_delete_delay_ms: int = 60000
    delete_retention_ms: int = 24 * 3600 * 1000
    min_cleanable_dirty_ratio: float = 0.5
    min_compaction_lag_ms: int = 0
    max_compaction_lag_ms: int = LONG_MAX
    preallocate: bool = False
    unclean_leader_election_enable: bool = False
    message_downconversion_enable: bool = True

    @property
    def compact(self) -> bool:
        return "compact" in _policies(self.cleanup_policy)

    @property
    def delete(self) -> bool:
        return "delete" in _policies(self.cleanup_policy)

    @property
    def log_append_time(self) -> bool:
        return self.message_timestamp_type == LOG_APPEND_TIME_NAME

    @property
    def max_segment_ms(self) -> int:
        """How old the active segment may get before a roll (Kafka's LogConfig.maxSegmentMs): a
        compacted topic rolls by max.compaction.lag.ms too, so its records become cleanable in time."""
        lag = self.max_compaction_lag_ms
        # Asked by every append: the comparison first, as the lag is unbounded by default.
        if 0 < lag < self.segment_ms and self.compact:
            return lag
        return self.segment_ms

    def random_segment_jitter(self) -> int:
        """A new segment's roll jitter, drawn once per segment (Kafka's randomSegmentJitter):
        segments created together do not all roll at the same moment."""
        if self.segment_jitter_ms == 0:
            return 0
        import random  # here: only with segment.jitter.ms set, so a broker's start does without it

        return random.randrange(min(self.segment_jitter_ms, self.segment_ms))

    @property
    def target_codec(self) -> int | None:
        """Codec batches must end up in, or None to keep the producer's."""
        if self.compression_type == PRODUCER_COMPRESSION:
            return None
        return CODEC_BY_TOPIC_COMPRESSION[self.compression_type]

    @property
    def target_level(self) -> int | None:
        """The level the broker compresses at in the target codec (compression.<codec>.level,
        KIP-390), or None when the codec has none (snappy, uncompressed, producer)."""
        codec = self.target_codec
        if codec == CODEC_GZIP:
            return self.compression_gzip_level
        if codec == CODEC_LZ4:
            return self.compression_lz4_level
        if codec == CODEC_ZSTD:
            return self.compression_zstd_level
        return None

    @classmethod
    def from_topic_config(cls, overrides: Mapping[str, str | None], base: LogConfig | None = None) -> LogConfig:
        """Apply topic overrides (Kafka names, string values) over `base` (default: Kafka's defaults).

        Names this class does not model, and settings without a value (None), are ignored; a bad
        value raises ValueError naming the key.
        """
        base = base if base is not None else cls()
        changes: dict[str, Any] = {}  # each field's own type, parsed by _parse_value
        for name, raw in overrides.items():
            field = _FIELD_BY_TOPIC_NAME.get(name)
            if field is None or raw is None:
                continue
            try:
                changes[field] = _parse_value(field, raw)
            except ValueError as err:
                raise ValueError(f"invalid value {raw!r} for topic config {name}: {err}") from err
        difference = overrides.get("message.timestamp.difference.max.ms")
        if difference is not None:
            # Deprecated since 3.6; it still bounds both sides unless the new settings are given.
            for field in ("message_timestamp_before_max_ms", "message_timestamp_after_max_ms"):
                if changes.get(field, getattr(base, field)) == LONG_MAX:
                    changes[field] = int(difference)
        return base._replace(**changes)


@lru_cache(maxsize=64)
def _policies(cleanup_policy: str) -> frozenset[str]:
    """cleanup.policy's policies; cached, since every append asks whether its topic compacts."""
    return frozenset(policy.strip() for policy in cleanup_policy.split(","))


# Topic config name -> field; every field's Kafka name is its name with dots.
_FIELD_BY_TOPIC_NAME = {field.replace("_", "."): field for field in LogConfig._fields}

_VALID_CHOICES = {
    "message_timestamp_type": {CREATE_TIME_NAME, LOG_APPEND_TIME_NAME},
    "compression_type": {PRODUCER_COMPRESSION, *CODEC_BY_TOPIC_COMPRESSION},
}


def _parse_value(field: str, raw: str) -> object:
    default = getattr(LogConfig(), field)
    text = raw.strip()
    if isinstance(default, bool):
        if text.lower() not in ("true", "false"):
            raise ValueError("expected true or false")
        return text.lower() == "true"
    if isinstance(default, int):
        return int(text)
    if isinstance(default, float):
        return float(text)
    if field == "cleanup_policy":
        policies = [policy.strip() for policy in text.split(",")]
        if not set(policies) <= {"delete", "compact"}:
            raise ValueError("expected delete, compact or both")
        return ",".join(dict.fromkeys(policies))
    if field in _VALID_CHOICES and text not in _VALID_CHOICES[field]:
        raise ValueError(f"expected one of {sorted(_VALID_CHOICES[field])}")
    return text
