"""Kafka's topic name rules (Topic.java): legal characters, length, '.'/'_' collisions, the
internal topics' names, and which partition of an internal topic holds a group or a
transactional id. Plain code with no imports of ours, so anything may use it cheaply."""

from __future__ import annotations

import functools
import re

MAX_NAME_LENGTH = 249
GROUP_METADATA_TOPIC_NAME = "__consumer_offsets"
TRANSACTION_STATE_TOPIC_NAME = "__transaction_state"
# A pattern string, not a compiled pattern: re compiles it (once, in its cache) on first use, not at every start.
_LEGAL = r"[a-zA-Z0-9._-]+"
_INT32_MIN = -(2**31)


def topic_name_error(name: str) -> str | None:
    """None when `name` is a legal topic name, else why not (Kafka's wording of the rule)."""
    if not name:
        return "Topic name is illegal, it can't be empty"
    if name in (".", ".."):
        return "Topic name cannot be \".\" or \"..\""
    if len(name) > MAX_NAME_LENGTH:
        return f"Topic name is illegal, it can't be longer than {MAX_NAME_LENGTH} characters, topic name: {name}"
    if not re.fullmatch(_LEGAL, name):
        return (f"Topic name \"{name}\" is illegal, it contains a character other than "
                "ASCII alphanumerics, '.', '_' and '-'")
    return None


def collision_key(name: str) -> str:
    """Names that differ only by '.' versus '_' collide in metric names, so Kafka refuses both."""
    return name.replace(".", "_")


@functools.lru_cache(maxsize=4096)
def java_string_hash(text: str) -> int:
    """Java's String.hashCode: 31*h + c over UTF-16 code units, with int32 wraparound. Cached
    (a bounded cache: ids are few and short-lived ones fall out): the coordinators hash the
    same ids on every request, a transaction about 14 times, in a per-character Python loop."""
    data = text.encode("utf-16-be")
    h = 0
    for i in range(0, len(data), 2):
        h = (31 * h + (data[i] << 8 | data[i + 1])) & 0xFFFFFFFF
    return h - 0x100000000 if h & 0x80000000 else h


def coordinator_partition_for(key: str, partition_count: int) -> int:
    """The partition of `__consumer_offsets` or `__transaction_state` holding a group id or a
    transactional id: Kafka's `Utils.abs(key.hashCode) % partitions` (Utils.abs(MIN_VALUE) is 0)."""
    h = java_string_hash(key)
    return (0 if h == _INT32_MIN else abs(h)) % partition_count
