"""The value types of broker and topic settings (Kafka's ConfigDef.Type) and their text forms:
`parse_value` reads a setting's text, `render_value` writes it back as Kafka shows it
(DescribeConfigs), `Password` hides secrets, `ConfigError` reports a bad setting.

Must not touch: files, sockets or any other kbroker package (plain functions of text and values).
"""

from __future__ import annotations

import math
import re
from typing import Any

# ----------------------------------------------------------------------------------------------
# Types, limits and value rendering

BOOLEAN, INT, SHORT, LONG, DOUBLE = "boolean", "int", "short", "long", "double"
STRING, LIST, PASSWORD, CLASS = "string", "list", "password", "class"
HIGH, MEDIUM, LOW = "high", "medium", "low"

INT_MAX = 2**31 - 1
LONG_MAX = 2**63 - 1
DOUBLE_MAX = 1.7976931348623157e308
_INTEGER_BOUNDS = {SHORT: (-(2**15), 2**15 - 1), INT: (-(2**31), INT_MAX), LONG: (-(2**63), LONG_MAX)}
_INTEGER_TEXT = re.compile(r"[+-]?[0-9]+")
# Java's Double.parseDouble syntax, less hex floats; Python's float() alone would also take "1_0".
# A pattern string, not a compiled pattern: re compiles it (once, in its cache) on first use, not at every start.
_DOUBLE_TEXT = r"[+-]?(NaN|Infinity|([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?)[fFdD]?"


class ConfigError(Exception):
    """A bad setting: the message names the key, the value given and what is allowed."""


class Password:
    """A secret value; prints as [hidden] so it never lands in a log line."""

    __slots__ = ("value",)

    def __init__(self, value: str) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "[hidden]"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Password) and other.value == self.value

    def __hash__(self) -> int:
        return hash(self.value)


def java_double_string(value: float) -> str:
    """Render a double the way Java's Double.toString does (what DescribeConfigs shows)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0:
        return "-0.0" if math.copysign(1.0, value) < 0 else "0.0"
    if 1e-3 <= abs(value) < 1e7:
        text = repr(value)
        return text if "." in text else text + ".0"
    from decimal import Decimal  # only here: importing it costs a few ms of every start-up

    sign, digits, exponent = Decimal(repr(value)).normalize().as_tuple()
    # NaN and the infinities returned above, so the exponent is a number, not 'n'/'N'/'F'.
    assert isinstance(exponent, int)
    text = "".join(map(str, digits))
    mantissa = text[0] + "." + (text[1:] or "0")
    return ("-" if sign else "") + f"{mantissa}E{len(text) - 1 + exponent}"


def render_value(type_: str, value: Any) -> str | None:
    """A typed value back to the text Kafka shows for it (None stays None)."""
    if value is None:
        return None
    if type_ == BOOLEAN:
        return "true" if value else "false"
    if type_ == LIST:
        return ",".join(value)
    if type_ == DOUBLE:
        return java_double_string(value)
    if type_ == PASSWORD:
        return value.value
    return str(value)


def split_list(text: str) -> list[str]:
    """Kafka's LIST parsing: trim, then split on commas with the blanks around them."""
    trimmed = text.strip()
    return re.split(r"\s*,\s*", trimmed) if trimmed else []


def parse_value(type_: str, raw: str) -> Any:
    """Text to a typed value; ValueError with ConfigDef.parseType's words when the text does not fit
    (a number out of its type's range is "Not a number" there too: Java's parse fails on it)."""
    trimmed = raw.strip()
    if type_ == BOOLEAN:
        if trimmed.lower() in ("true", "false"):
            return trimmed.lower() == "true"
        raise ValueError("Expected value to be either true or false")
    if type_ in _INTEGER_BOUNDS:
        low, high = _INTEGER_BOUNDS[type_]
        if not _INTEGER_TEXT.fullmatch(trimmed) or not low <= int(trimmed) <= high:
            raise ValueError(f"Not a number of type {type_.upper()}")
        return int(trimmed)
    if type_ == DOUBLE:
        if not re.fullmatch(_DOUBLE_TEXT, trimmed):
            raise ValueError("Not a number of type DOUBLE")
        return float(trimmed.rstrip("fFdD").replace("Infinity", "inf"))
    if type_ == LIST:
        return split_list(trimmed)
    if type_ == PASSWORD:
        return Password(raw)
    return trimmed  # STRING and CLASS (class names are kept as text)
