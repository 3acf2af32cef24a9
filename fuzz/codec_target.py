"""Fuzz target `codec`: every request and response schema, every version, decoded from arbitrary
bytes; what decodes must encode, and decode back to a message that encodes the same.

The first two bytes pick the API (among those with a schema) and the version (within the
schema's range); the rest is the message body. The only exception allowed out of the codec is
CodecError: anything else (IndexError, struct.error, UnicodeDecodeError, a MemoryError from a
length taken on trust, ...) is a crash, as it would be a broker dying on a request.
"""

from __future__ import annotations

from fuzz.instrumentation import instrument_generated_codecs
from kbroker.protocol.messages import (
    CodecError,
    known_api_keys,
    request_codec,
    response_codec,
    schema_versions,
)

instrument_generated_codecs()

API_KEYS = sorted(known_api_keys())


def pick(data: bytes) -> tuple[int, int, memoryview]:
    """(api key, version, body) chosen by the first two bytes of `data`."""
    api_key = API_KEYS[data[0] % len(API_KEYS)]
    low, high = schema_versions(api_key)
    version = low + data[1] % (high - low + 1)
    return api_key, version, memoryview(data)[2:]


def test_one_input(data: bytes) -> None:
    if len(data) < 2:
        return
    api_key, version, body = pick(data)
    for codec in (request_codec(api_key, version), response_codec(api_key, version)):
        try:
            message, _end = codec.decode(body, 0)
        except CodecError:
            continue
        encoded = codec.encode(message)
        again, _ = codec.decode(memoryview(encoded), 0)
        if codec.encode(again) != encoded:  # bytes, not dicts: a float64 field may hold NaN
            raise AssertionError(f"{codec!r}: encode(decode(encode(m))) != encode(m) for\n{message!r}")
