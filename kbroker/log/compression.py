"""Compression codecs of record batches (the bytes after a v2 batch's record count).

Codec ids are those of the batch attributes' low three bits. Only maintained libraries are used:
zlib/gzip (stdlib), python-snappy, lz4.frame, zstandard. Snappy data is written with the xerial
framing Kafka's Java client uses and read with or without it (librdkafka writes raw snappy).

Pure functions over bytes: nothing here knows batches, files or topics. The codec libraries
are imported on first use: most brokers never look inside a batch, and start-up should not pay
for them.
"""

from __future__ import annotations

import functools
import struct
import zlib
from types import SimpleNamespace

CODEC_NONE = 0
CODEC_GZIP = 1
CODEC_SNAPPY = 2
CODEC_LZ4 = 3
CODEC_ZSTD = 4

CODEC_NAMES = {
    CODEC_NONE: "none",
    CODEC_GZIP: "gzip",
    CODEC_SNAPPY: "snappy",
    CODEC_LZ4: "lz4",
    CODEC_ZSTD: "zstd",
}

# Topic-level compression.type values; "producer" keeps whatever codec the producer used.
PRODUCER_COMPRESSION = "producer"
CODEC_BY_TOPIC_COMPRESSION = {
    "uncompressed": CODEC_NONE,
    "gzip": CODEC_GZIP,
    "snappy": CODEC_SNAPPY,
    "lz4": CODEC_LZ4,
    "zstd": CODEC_ZSTD,
}

# xerial snappy framing: magic, then big-endian version and minimum compatible version, then
# blocks of (i32 compressed length, raw snappy block). 32 KiB blocks, as xerial's default.
_XERIAL_MAGIC = b"\x82SNAPPY\x00"
_XERIAL_HEADER = _XERIAL_MAGIC + struct.pack(">ii", 1, 1)
_XERIAL_BLOCK_SIZE = 32 * 1024
_I32 = struct.Struct(">i")



@functools.cache
def _libs() -> SimpleNamespace:
    import gzip

    import lz4.frame
    import snappy
    import zstandard

    return SimpleNamespace(gzip=gzip, lz4=lz4.frame, snappy=snappy, zstd=zstandard,
                           zstd_compressor=zstandard.ZstdCompressor(),
                           zstd_decompressor=zstandard.ZstdDecompressor())


class UnsupportedCodecError(ValueError):
    """The attributes name a codec id that Kafka does not define."""


def compress(codec: int, data: bytes | bytearray | memoryview) -> bytes:
    """Compress `data` the way Kafka's clients do for `codec`."""
    if codec == CODEC_NONE:
        return bytes(data)
    if codec == CODEC_GZIP:
        return _gzip_compress(data)
    if codec == CODEC_SNAPPY:
        return _xerial_snappy_compress(data)
    if codec == CODEC_LZ4:
        # Kafka's LZ4 reader wants independent blocks and no content size in the frame header.
        lz4 = _libs().lz4
        return lz4.compress(
            bytes(data),
            block_size=lz4.BLOCKSIZE_MAX64KB,
            block_linked=False,
            store_size=False,
        )
    if codec == CODEC_ZSTD:
        return _libs().zstd_compressor.compress(bytes(data))
    raise UnsupportedCodecError(f"unknown compression codec id {codec}")


def decompress(codec: int, data: bytes | bytearray | memoryview) -> bytes:
    """Inverse of `compress`; raises ValueError-derived errors on damaged input."""
    if codec == CODEC_NONE:
        return bytes(data)
    libs = _libs()
    try:
        if codec == CODEC_GZIP:
            return libs.gzip.decompress(data)
        if codec == CODEC_SNAPPY:
            return _snappy_decompress(bytes(data))
        if codec == CODEC_LZ4:
            return libs.lz4.decompress(bytes(data))
        if codec == CODEC_ZSTD:
            # A decompressobj copes with frames that do not record their content size.
            return libs.zstd_decompressor.decompressobj(read_across_frames=True).decompress(bytes(data))
    except (OSError, EOFError, RuntimeError, zlib.error, libs.zstd.ZstdError, libs.snappy.UncompressError) as err:
        raise ValueError(f"cannot decompress {CODEC_NAMES[codec]} data: {err}") from err
    raise UnsupportedCodecError(f"unknown compression codec id {codec}")


def _gzip_compress(data: bytes | bytearray | memoryview) -> bytes:
    # wbits=31 writes a gzip member; zero mtime keeps output deterministic.
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31)
    return compressor.compress(data) + compressor.flush()


def _xerial_snappy_compress(data: bytes | bytearray | memoryview) -> bytes:
    view = memoryview(data)
    parts = [_XERIAL_HEADER]
    for start in range(0, len(view), _XERIAL_BLOCK_SIZE):
        block = _libs().snappy.compress(view[start : start + _XERIAL_BLOCK_SIZE].tobytes())
        parts.append(_I32.pack(len(block)))
        parts.append(block)
    return b"".join(parts)


def _snappy_decompress(data: bytes) -> bytes:
    if not data.startswith(_XERIAL_MAGIC) or len(data) < len(_XERIAL_HEADER):
        return _libs().snappy.uncompress(data)
    view = memoryview(data)
    position = len(_XERIAL_HEADER)
    parts = []
    while position < len(view):
        if position + 4 > len(view):
            raise ValueError("truncated xerial snappy block length")
        (block_length,) = _I32.unpack_from(view, position)
        position += 4
        if block_length < 0 or position + block_length > len(view):
            raise ValueError("xerial snappy block runs past the end of the data")
        parts.append(_libs().snappy.uncompress(view[position : position + block_length].tobytes()))
        position += block_length
    return b"".join(parts)
