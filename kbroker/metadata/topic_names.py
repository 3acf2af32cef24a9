"""Kafka's topic name rules (Topic.java): legal characters, length, '.'/'_' collisions, and the
internal topics' names. Plain code with no imports of ours, so anything may use it cheaply."""

from __future__ import annotations

import re

MAX_NAME_LENGTH = 249
GROUP_METADATA_TOPIC_NAME = "__consumer_offsets"
TRANSACTION_STATE_TOPIC_NAME = "__transaction_state"
_LEGAL = re.compile(r"[a-zA-Z0-9._-]+")


def topic_name_error(name: str) -> str | None:
    """None when `name` is a legal topic name, else why not (Kafka's wording of the rule)."""
    if not name:
        return "Topic name is illegal, it can't be empty"
    if name in (".", ".."):
        return "Topic name cannot be \".\" or \"..\""
    if len(name) > MAX_NAME_LENGTH:
        return f"Topic name is illegal, it can't be longer than {MAX_NAME_LENGTH} characters, topic name: {name}"
    if not _LEGAL.fullmatch(name):
        return (f"Topic name \"{name}\" is illegal, it contains a character other than "
                "ASCII alphanumerics, '.', '_' and '-'")
    return None


def collision_key(name: str) -> str:
    """Names that differ only by '.' versus '_' collide in metric names, so Kafka refuses both."""
    return name.replace(".", "_")
