"""Request and response headers: versions 0-2 of RequestHeader, 0-1 of ResponseHeader."""

import struct

import pytest

from kbroker.protocol.api_keys import ApiKey
from kbroker.protocol.headers import RequestHeader, decode_request_header, response_frame_head
from kbroker.protocol.messages import CodecError


def _classic_header(api_key: int, version: int, correlation_id: int, client_id: bytes | None) -> bytes:
    prefix = struct.pack(">hhi", api_key, version, correlation_id)
    if client_id is None:
        return prefix + struct.pack(">h", -1)
    return prefix + struct.pack(">h", len(client_id)) + client_id


def test_flexible_request_header_skips_tagged_fields_including_unknown_ones():
    # Metadata v12 is flexible: header v2 = header v1 + tagged fields (here one unknown tag 7).
    header = _classic_header(ApiKey.METADATA, 12, 42, b"my-client") + b"\x01\x07\x02ab"
    decoded, offset = decode_request_header(memoryview(header + b"BODY"))
    assert decoded == RequestHeader(ApiKey.METADATA, 12, 42, "my-client")
    assert offset == len(header)


def test_non_flexible_request_header_has_no_tagged_fields():
    header = _classic_header(ApiKey.METADATA, 8, 7, b"c")
    decoded, offset = decode_request_header(memoryview(header + b"\x00\x00"))
    assert decoded.client_id == "c"
    assert offset == len(header)


def test_null_client_id():
    header = _classic_header(ApiKey.PRODUCE, 3, 1, None)
    decoded, offset = decode_request_header(memoryview(header))
    assert decoded.client_id is None
    assert offset == 10


def test_controlled_shutdown_v0_uses_header_v0_without_client_id():
    frame = struct.pack(">hhi", ApiKey.CONTROLLED_SHUTDOWN, 0, 99) + struct.pack(">i", 3)
    decoded, offset = decode_request_header(memoryview(frame))
    assert decoded == RequestHeader(ApiKey.CONTROLLED_SHUTDOWN, 0, 99, None)
    assert offset == 8


def test_controlled_shutdown_v3_uses_flexible_header():
    header = _classic_header(ApiKey.CONTROLLED_SHUTDOWN, 3, 5, b"b") + b"\x00"
    decoded, offset = decode_request_header(memoryview(header))
    assert decoded.client_id == "b"
    assert offset == len(header)


@pytest.mark.parametrize(
    "api_key, version",
    [(ApiKey.API_VERSIONS, 99), (1234, 0)],
    ids=["version above the schema", "unknown api key"],
)
def test_unknown_key_or_version_reads_no_tagged_fields(api_key, version):
    # The broker must still learn the correlation id to answer UNSUPPORTED_VERSION; the
    # body of an unknown version is not parsed, so the header stops after the client id.
    header = _classic_header(api_key, version, 3, b"x")
    decoded, offset = decode_request_header(memoryview(header + b"\x05\x05"))
    assert (decoded.api_key, decoded.api_version, decoded.correlation_id) == (api_key, version, 3)
    assert offset == len(header)


def test_every_truncated_header_raises_codec_error():
    header = _classic_header(ApiKey.FETCH, 13, 1, b"client") + b"\x01\x00\x03abc"
    for cut in range(len(header)):
        with pytest.raises(CodecError):
            decode_request_header(memoryview(header[:cut]))


def test_client_id_that_is_not_utf8_raises_codec_error():
    with pytest.raises(CodecError):
        decode_request_header(memoryview(_classic_header(ApiKey.FETCH, 4, 1, b"\xff\xfe")))


def response_header(correlation_id: int, api_key: int, api_version: int) -> bytes:
    """The response header the frame head packs (its bytes after the 4-byte size)."""
    head = response_frame_head(api_key, api_version)
    return head.pack(head.size - 4, correlation_id)[4:]


def test_response_header_versions():
    assert response_header(7, ApiKey.METADATA, 12) == struct.pack(">i", 7) + b"\x00"
    assert response_header(7, ApiKey.METADATA, 8) == struct.pack(">i", 7)
    # ApiVersions answers with header v0 even in its flexible versions (KIP-511).
    assert response_header(-5, ApiKey.API_VERSIONS, 3) == struct.pack(">i", -5)
    assert response_header(1, ApiKey.CONTROLLED_SHUTDOWN, 3) == struct.pack(">i", 1) + b"\x00"
