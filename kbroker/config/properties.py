"""Where settings' text comes from: Java Properties text (`parse_properties`: comments,
`=`/`:`/space separators, continuations, escapes) and server.properties files, `KBROKER_*`
environment variables, and `--override key=value` arguments.

Must not touch: files other than the properties file it is asked to read, sockets, or any other
kbroker package.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

from kbroker.config.settings import BROKER_CONFIGS
from kbroker.config.value_types import ConfigError

ENV_PREFIX = "KBROKER_"
# KBROKER_* variables that are not settings (the cli reads them itself).
ENV_NOT_SETTINGS = frozenset({"KBROKER_LOG_LEVEL", "KBROKER_LOG_FORMAT"})


# ----------------------------------------------------------------------------------------------
# Java Properties text

# A pattern string, not a compiled pattern: re compiles it (once, in its cache) on first use, not at every start.
_NEWLINE = r"\r\n|\r|\n"
_BLANK = " \t\f"
_SIMPLE_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}


def _logical_lines(text: str) -> Iterable[str]:
    """Natural lines joined where one ends in an odd number of backslashes; comments dropped."""
    natural = iter(re.split(_NEWLINE, text))
    for line in natural:
        line = line.lstrip(_BLANK)
        if not line or line[0] in "#!":
            continue  # a comment never continues onto the next line
        while _continues(line):
            following = next(natural, None)
            line = line[:-1] + ("" if following is None else following.lstrip(_BLANK))
            if following is None:
                break
        yield line


def _continues(line: str) -> bool:
    trailing = len(line) - len(line.rstrip("\\"))
    return trailing % 2 == 1


def _split_key_value(line: str) -> tuple[str, str]:
    """Key ends at the first unescaped '=', ':' or blank; one '=' or ':' may follow blanks."""
    index, escaped = 0, False
    while index < len(line):
        char = line[index]
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char in "=:" or char in _BLANK:
            break
        index += 1
    key, rest = line[:index], line[index:]
    rest = rest.lstrip(_BLANK)
    if rest[:1] in ("=", ":"):
        rest = rest[1:].lstrip(_BLANK)
    return key, rest


def _unescape(text: str) -> str:
    if "\\" not in text:
        return text
    out, index = [], 0
    while index < len(text):
        char = text[index]
        if char != "\\" or index + 1 >= len(text):
            out.append(char)
            index += 1
            continue
        code = text[index + 1]
        if code == "u":
            digits = text[index + 2 : index + 6]
            if not re.fullmatch(r"[0-9a-fA-F]{4}", digits):
                raise ConfigError(f"Malformed \\uxxxx escape in properties text: {text!r}")
            out.append(chr(int(digits, 16)))
            index += 6
        else:
            out.append(_SIMPLE_ESCAPES.get(code, code))
            index += 2
    return "".join(out)


def parse_properties(text: str) -> dict[str, str]:
    """Java Properties text to a dict; a repeated key keeps its last value, as Java does."""
    properties: dict[str, str] = {}
    for line in _logical_lines(text):
        key, value = _split_key_value(line)
        properties[_unescape(key)] = _unescape(value)
    return properties


def read_properties_file(path: str) -> dict[str, str]:
    try:
        with open(path, "rb") as file:
            data = file.read()
    except OSError as exc:
        raise ConfigError(f"Cannot read properties file {path}: {exc.strerror or exc}") from None
    # Java reads Properties as ISO-8859-1; UTF-8 first keeps non-ASCII text intact for people
    # who write their files in UTF-8, and ASCII files read the same either way.
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    return parse_properties(text)


def env_name(key: str) -> str:
    """The environment variable that sets `key`: KBROKER_ADVERTISED_LISTENERS for advertised.listeners."""
    return ENV_PREFIX + key.upper().replace(".", "_")


def settings_from_env(env: Mapping[str, str]) -> dict[str, str]:
    """Known settings given as KBROKER_* variables. Other KBROKER_* names (KBROKER_LOG_LEVEL) are not
    settings. An empty variable counts as unset, so `KBROKER_X=${X:-}` in a compose file is harmless."""
    found = {key.name: env.get(env_name(key.name), "") for key in BROKER_CONFIGS}
    return {name: text for name, text in found.items() if text.strip()}


def unknown_env_variables(env: Mapping[str, str]) -> list[str]:
    """KBROKER_* variables that name no setting (a misspelling is otherwise silently ignored)."""
    known = {env_name(key.name) for key in BROKER_CONFIGS} | ENV_NOT_SETTINGS
    return sorted(name for name in env if name.startswith(ENV_PREFIX) and name not in known)


def did_you_mean(name: str) -> str:
    """' (did you mean X?)' for the closest setting, or its KBROKER_ variable; '' if none is close."""
    if name.startswith(ENV_PREFIX):
        candidates = [env_name(key.name) for key in BROKER_CONFIGS] + sorted(ENV_NOT_SETTINGS)
    else:
        candidates = [key.name for key in BROKER_CONFIGS]
    import difflib  # here: only a misspelled name needs it, and it is a few ms of every start

    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.8)
    return f" (did you mean {close[0]}?)" if close else ""


def settings_from_overrides(overrides: Mapping[str, str] | Sequence[str]) -> dict[str, str]:
    if isinstance(overrides, Mapping):
        return {str(key): str(value) for key, value in overrides.items()}
    settings = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"Invalid override {item!r}: expected key=value")
        settings[key.strip()] = value
    return settings
