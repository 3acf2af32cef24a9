"""The principal of a TLS client certificate, as Kafka's DefaultKafkaPrincipalBuilder builds it.

`User:` + the certificate subject's distinguished name in Java's RFC 2253 form
(X500Principal.getName()), passed through `ssl.principal.mapping.rules` (Kafka's
SslPrincipalMapper): a comma-separated list of `DEFAULT` and `RULE:pattern/replacement/[LU]`
rules, the first whose pattern matches the whole name gives the principal's name. No rule
matching fails the authentication (NoMatchingRule), as in Kafka. Without a certificate the
connection is ANONYMOUS.

The name is formatted from the subject's DER encoding the way the JDK does: RDNs last to first,
joined with ","; the attributes of a multi-valued RDN joined with "+"; CN, C, L, ST, O, OU,
STREET, DC and UID by keyword and others by dotted OID with the value as `#` + the hex of its
DER; `,=+<>#;"\\` escaped with a backslash, as are leading and trailing spaces.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from kbroker.security.der import children, read_tlv
from kbroker.security.principal import ANONYMOUS, USER_TYPE, KafkaPrincipal

DEFAULT_RULES = "DEFAULT"

# The JDK's RFC 2253 keywords (AVAKeyword's RFC 2253-compliant ones), by dotted OID.
_KEYWORDS = {
    "2.5.4.3": "CN", "2.5.4.6": "C", "2.5.4.7": "L", "2.5.4.8": "ST", "2.5.4.10": "O",
    "2.5.4.11": "OU", "2.5.4.9": "STREET", "0.9.2342.19200300.100.1.25": "DC",
    "0.9.2342.19200300.100.1.1": "UID",
}  # fmt: skip
# ASN.1 string types the JDK prints as text (DerValue.isDerString): their decoding.
_STRING_TAGS = {12: "utf-8", 19: "latin-1", 20: "latin-1", 22: "latin-1", 30: "utf-16-be", 27: "latin-1"}
_ESCAPED = frozenset(',=+<>#;"\\')
_SEQUENCE, _SET, _OID = 0x30, 0x31, 0x06


class NoMatchingRule(ValueError):
    """No `ssl.principal.mapping.rules` rule applies to a certificate's name (Kafka's message)."""


# -- the distinguished name ------------------------------------------------------------------
def _oid(encoded: bytes) -> str:
    first, rest = encoded[0], encoded[1:]
    parts = [min(first // 40, 2), first - 40 * min(first // 40, 2)]
    value = 0
    for byte in rest:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            parts.append(value)
            value = 0
    return ".".join(map(str, parts))


def _escape(text: str) -> str:
    escaped = "".join("\\00" if c == "\0" else f"\\{c}" if c in _ESCAPED else c for c in text)
    lead = len(escaped) - len(escaped.lstrip(" "))
    trail = len(escaped) - len(escaped.rstrip(" "))
    if lead == len(escaped):
        return "\\ " * lead
    return "\\ " * lead + escaped[lead : len(escaped) - trail] + "\\ " * trail


def _attribute(data: bytes, start: int, end: int) -> str:
    (oid_tag, _, oid_start, oid_end), (tag, element, value_start, value_end) = children(data, start, end)[:2]
    if oid_tag != _OID:
        raise ValueError("attribute without an OID")
    oid = _oid(data[oid_start:oid_end])
    keyword = _KEYWORDS.get(oid)
    encoding = _STRING_TAGS.get(tag)
    if keyword is None or encoding is None:
        return f"{keyword or oid}=#{data[element:value_end].hex()}"
    return f"{keyword}={_escape(data[value_start:value_end].decode(encoding, errors='replace'))}"


def rfc2253_name(name_der: bytes) -> str:
    """The DER of an X.509 Name as Java's X500Principal.getName() spells it."""
    tag, start, end = read_tlv(name_der, 0)
    if tag != _SEQUENCE:
        raise ValueError("a Name is a SEQUENCE")
    rdns = []
    for rdn_tag, _, rdn_start, rdn_end in children(name_der, start, end):
        if rdn_tag != _SET:
            raise ValueError("an RDN is a SET")
        rdns.append("+".join(_attribute(name_der, a_start, a_end)
                             for _, _, a_start, a_end in children(name_der, rdn_start, rdn_end)))
    return ",".join(reversed(rdns))


def certificate_subject(cert_der: bytes) -> str:
    """The RFC 2253 subject name of a DER certificate."""
    from cryptography import x509  # only with TLS client certificates: start-up stays light

    return rfc2253_name(x509.load_der_x509_certificate(cert_der).subject.public_bytes())


# -- ssl.principal.mapping.rules -------------------------------------------------------------
# Kafka's SslPrincipalMapper grammar: DEFAULT, RULE:pattern/replacement/[LU] with `\` escaping
# a `/`, or anything else (an error unless empty); rules separated by commas.
_RULE = r"(DEFAULT)|RULE:((?:\\.|[^\\/])*)/((?:\\.|[^\\/])*)/([LU]?).*?|(.*?)"
_RULE_SPLITTER = re.compile(r"\s*(" + _RULE + r")\s*(?:,\s*|$)")
_RULE_PARSER = re.compile(_RULE)
_JAVA_NAMED_GROUP = re.compile(r"\(\?<(?=[A-Za-z])")


@dataclass(frozen=True, slots=True)
class _Rule:
    text: str
    pattern: re.Pattern[str] | None = None  # None: DEFAULT
    replacement: str = ""
    case: str = ""  # "L", "U" or ""

    def apply(self, name: str) -> str | None:
        pattern = self.pattern
        if pattern is None:
            return name
        if pattern.fullmatch(name) is None:
            return None
        result = pattern.sub(_java_replacement(self.replacement, pattern.groups), name)
        return result.lower() if self.case == "L" else result.upper() if self.case == "U" else result


def _java_replacement(replacement: str, groups: int) -> Callable[[re.Match[str]], str]:
    """Java's Matcher.replaceAll replacement (`$n` a group, `\\x` a literal x), with Kafka's
    rule that a `$n` naming no group of the pattern stays literal text."""
    parts: list[str | int] = []
    i = 0
    while i < len(replacement):
        char = replacement[i]
        if char == "\\" and i + 1 < len(replacement):
            parts.append(replacement[i + 1])
            i += 2
            continue
        if char == "$" and i + 1 < len(replacement) and replacement[i + 1].isdigit():
            j = i + 2
            number = int(replacement[i + 1])
            while j < len(replacement) and replacement[j].isdigit() and number * 10 + int(replacement[j]) <= groups:
                number = number * 10 + int(replacement[j])
                j += 1
            parts.append(number if number <= groups else replacement[i:j])
            i = j
            continue
        parts.append(char)
        i += 1

    def expand(match: re.Match[str]) -> str:
        return "".join(p if isinstance(p, str) else (match.group(p) or "") for p in parts)

    return expand


class SslPrincipalMapper:
    """`ssl.principal.mapping.rules`, parsed once; ValueError (Kafka's message) on a bad rule."""

    def __init__(self, rules: str | None = DEFAULT_RULES) -> None:
        self.rules = [rule for rule in map(_parse_rule, _split_rules(rules or DEFAULT_RULES)) if rule is not None]

    def name(self, distinguished_name: str) -> str:
        for rule in self.rules:
            mapped = rule.apply(distinguished_name)
            if mapped is not None:
                return mapped
        raise NoMatchingRule(f"No rules apply to {distinguished_name}, rules "
                             f"[{', '.join(rule.text for rule in self.rules)}]")

    def principal(self, cert_der: bytes | None) -> KafkaPrincipal:
        """The principal of a peer certificate (DER), ANONYMOUS without one."""
        if cert_der is None:
            return ANONYMOUS
        return KafkaPrincipal(USER_TYPE, self.name(certificate_subject(cert_der)))


def _split_rules(rules: str) -> list[str]:
    """Kafka's splitRules: every match of the splitter in the trimmed text (empty ones included,
    which the parser then ignores)."""
    return [match.group(1) for match in _RULE_SPLITTER.finditer(rules.strip())]


def _parse_rule(rule: str) -> _Rule | None:
    match = _RULE_PARSER.match(rule)
    if match is None:
        raise ValueError(f"Invalid rule: {rule}")
    if match.end() != len(rule):
        raise ValueError(f"Invalid rule: `{rule}`, unmatched substring: `{rule[match.end():]}`")
    if match.group(1):
        return _Rule("DEFAULT")
    if match.group(2) is None:
        return None  # empty rules are ignored
    pattern_text = _JAVA_NAMED_GROUP.sub("(?P<", match.group(2))
    try:
        pattern = re.compile(pattern_text)
    except re.error as exc:
        raise ValueError(f"Invalid rule: {rule}: {exc}") from None
    text = f"RULE:{match.group(2)}/{match.group(3)}" + (f"/{match.group(4)}" if match.group(4) else "")
    return _Rule(text, pattern, match.group(3), match.group(4))
