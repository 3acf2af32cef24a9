"""Writes the seed corpora of fuzz/corpus/ (run: .venv/bin/python -m fuzz.make_seeds).

Seeds are small valid inputs that reach deep into each parser at once: for every API and
version a request and a response whose arrays hold one element of every struct (fields at their
schema defaults, strings filled in), whole request frames for every handler the broker serves,
record batches as producers write them (every codec, idempotent, transactional, with headers),
and segment files of several batches. File names are content hashes, so rerunning changes
nothing unless the seeds do.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from fuzz.codec_target import API_KEYS
from kbroker.api.handlers import load_handlers
from kbroker.log.records import SimpleRecord, build_batch
from kbroker.protocol.headers import encode_request_header
from kbroker.protocol.messages import request_codec, response_codec, schema_versions
from kbroker.protocol.schema import REGISTRY, FieldSpec, default_value
from kbroker.testing.batches import producer_batch

CORPUS = Path(__file__).resolve().parent / "corpus"
T0 = 1_700_000_000_000


def example_value(spec: FieldSpec, version: int) -> Any:
    """A field's value in an example message: one element per array, a short text per string."""
    if spec.is_struct_array or spec.is_struct:
        element = {f.key: example_value(f, version) for f in spec.fields if version in f.versions}
        return [element] if spec.is_array else element
    if spec.is_array:
        return []
    if spec.type == "string":
        return "fuzz"
    if spec.type in ("bytes", "records"):
        return b""
    return default_value(spec)


def example_message(api_key: int, kind: str, version: int) -> dict:
    schema = REGISTRY.get(api_key, kind)
    return {f.key: example_value(f, version) for f in schema.fields if version in f.versions}


def write(target: str, data: bytes) -> None:
    directory = CORPUS / target
    directory.mkdir(parents=True, exist_ok=True)
    (directory / hashlib.sha1(data).hexdigest()).write_bytes(data)


def codec_seeds() -> None:
    for index, api_key in enumerate(API_KEYS):
        low, high = schema_versions(api_key)
        for version in range(low, high + 1):
            prefix = bytes([index, version - low])
            for kind, codec in (("request", request_codec(api_key, version)), ("response", response_codec(api_key, version))):
                try:
                    write("codec", prefix + codec.encode(example_message(api_key, kind, version)))
                except Exception:  # an example the encoder refuses (a required non-null value): defaults only
                    write("codec", prefix + codec.encode({}))


def request_seeds() -> None:
    for handler in load_handlers().values():
        for version in range(handler.min_version, handler.max_version + 1):
            header = encode_request_header(handler.api_key, version, 7, "fuzz")
            codec = request_codec(handler.api_key, version)
            try:
                body = codec.encode(example_message(handler.api_key, "request", version))
            except Exception:
                body = codec.encode({})
            write("requests", header + body)


def producer_batches() -> list[bytes]:
    values = [b"v" * 10, None, b"kbroker-" * 40]
    batches = [bytes(producer_batch(values, codec=codec, keys=[b"k", None, b"k"])) for codec in range(5)]
    batches.append(bytes(producer_batch(values, producer_id=1000, producer_epoch=0, base_sequence=0)))
    batches.append(bytes(producer_batch(values, producer_id=1001, producer_epoch=0, base_sequence=0, transactional=True)))
    batches.append(bytes(producer_batch([b"h"], headers=[("trace", b"1"), ("empty", b"")])))
    return batches


def batch_seeds() -> None:
    for batch in producer_batches():
        write("batches", b"\x00" + batch)  # as leader
    for base, batch in enumerate(producer_batches()):
        write("batches", b"\x01" + bytes(build_batch([SimpleRecord(b"k", b"v", timestamp=T0)], base_offset=base,
                                                      partition_leader_epoch=0)))
        write("batches", b"\x01" + batch)  # as follower: offsets as they are


def recovery_seeds() -> None:
    offset, segment = 0, b""
    for _ in producer_batches():
        records = [SimpleRecord(b"k%d" % i, b"value %d" % i, timestamp=T0 + i) for i in range(3)]
        segment += build_batch(records, base_offset=offset, partition_leader_epoch=0)
        offset += 3
        write("recovery", segment)
    write("recovery", segment + segment[:37])  # a torn write at the end
    write("recovery", b"".join(producer_batches()))


def main() -> None:
    codec_seeds()
    request_seeds()
    batch_seeds()
    recovery_seeds()
    for directory in sorted(CORPUS.iterdir()):
        print(f"{directory.name}: {len(list(directory.iterdir()))} seeds")


if __name__ == "__main__":
    main()
