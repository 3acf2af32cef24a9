"""The little DER reading TLS needs: walking a certificate's subject name (ssl_principal.py)
and a Java key store's encrypted keys (jks.py). Not a general ASN.1 parser: definite lengths
only, which is all DER has.
"""

from __future__ import annotations


def read_tlv(data: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, start of the value, end of the value) of the DER element at `pos`; ValueError if cut short."""
    if pos + 2 > len(data):
        raise ValueError("truncated DER")
    tag = data[pos]
    length = data[pos + 1]
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        length = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    end = pos + length
    if end > len(data):
        raise ValueError("truncated DER")
    return tag, pos, end


def children(data: bytes, start: int, end: int) -> list[tuple[int, int, int, int]]:
    """(tag, element start, value start, value end) of each element in data[start:end]."""
    found = []
    while start < end:
        tag, value_start, value_end = read_tlv(data, start)
        found.append((tag, start, value_start, value_end))
        start = value_end
    return found
