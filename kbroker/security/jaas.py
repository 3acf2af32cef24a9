"""JAAS configuration text as Kafka reads `sasl.jaas.config` (JaasConfig's parser).

`org.apache.kafka.common.security.plain.PlainLoginModule required username="admin"
password="admin-secret" user_alice="alice-secret";` is one entry: a login module class, a
control flag (required, requisite, sufficient, optional) and `name=value` options, values
quoted or bare, ended by `;`. Kafka's parser is Java's StreamTokenizer; this one takes the
same text: words, double- or single-quoted strings (backslash escapes), and `//` or `/* */`
comments.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

PLAIN_LOGIN_MODULE = "org.apache.kafka.common.security.plain.PlainLoginModule"
SCRAM_LOGIN_MODULE = "org.apache.kafka.common.security.scram.ScramLoginModule"
CONTROL_FLAGS = ("required", "requisite", "sufficient", "optional")

_TOKEN = re.compile(r"""\s+|//[^\n]*|/\*.*?\*/|"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)'|([=;])|([^\s=;"']+)""",
                    re.DOTALL)


class JaasConfigError(ValueError):
    """The text is not a JAAS configuration Kafka would accept."""


@dataclass(frozen=True)
class LoginModuleEntry:
    login_module: str
    control_flag: str
    options: dict[str, str] = field(default_factory=dict)


def _tokens(text: str) -> list[str]:
    tokens: list[str] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise JaasConfigError(f"unexpected character {text[pos]!r} at {pos}")
        pos = match.end()
        double, single, punct, word = match.groups()
        quoted = double if double is not None else single
        if quoted is not None:
            tokens.append("\0" + re.sub(r"\\(.)", r"\1", quoted))  # "\0": a value, never punctuation
        elif punct is not None or word is not None:
            tokens.append(punct or word)
    return tokens


def _value(token: str) -> str:
    return token[1:] if token.startswith("\0") else token


def parse_jaas_config(text: str) -> list[LoginModuleEntry]:
    """The login module entries of `text`; JaasConfigError with Kafka's meaning when malformed."""
    tokens = _tokens(text)
    entries: list[LoginModuleEntry] = []
    i = 0
    while i < len(tokens):
        if len(tokens) - i < 3 and tokens[-1] != ";":
            raise JaasConfigError("JAAS config entry not terminated by semi-colon")
        module, flag = _value(tokens[i]), _value(tokens[i + 1]) if i + 1 < len(tokens) else ""
        if flag.lower() not in CONTROL_FLAGS:
            raise JaasConfigError(f"Invalid control flag {flag!r} in JAAS config")
        i += 2
        options: dict[str, str] = {}
        while i < len(tokens) and tokens[i] != ";":
            if i + 2 >= len(tokens) or tokens[i + 1] != "=":
                raise JaasConfigError("Value not specified for key in JAAS config")
            options[_value(tokens[i])] = _value(tokens[i + 2])
            i += 3
        if i >= len(tokens):
            raise JaasConfigError("JAAS config entry not terminated by semi-colon")
        entries.append(LoginModuleEntry(module, flag.lower(), options))
        i += 1
    if not entries:
        raise JaasConfigError("JAAS config property does not contain any login modules")
    return entries


def plain_users(entry: LoginModuleEntry) -> dict[str, str]:
    """PlainLoginModule's `user_<name>="<password>"` options: the users PLAIN accepts."""
    return {key[len("user_"):]: value for key, value in entry.options.items() if key.startswith("user_")}
