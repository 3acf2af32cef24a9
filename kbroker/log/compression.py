"""Compression codecs of record batches (the bytes after a v2 batch's record count).

Codec ids are those of the batch attributes' low three bits. Only maintained libraries are used:
zlib/gzip (stdlib), python-snappy, lz4.frame, zstandard. Snappy data is written with the xerial
framing Kafka's Java client uses and read with or without it (librdkafka writes raw snappy).

`compress` takes Kafka's compression level of the codec (KIP-390's compression.<codec>.level;
None is the codec's default, at which the coordinators and the log cleaner write).

Pure functions over bytes: nothing here knows batches, files or topics. The codec libraries
are imported on first use: most brokers never look inside a batch, and start-up should not pay
for them.
"""

from __future__ import annotations

import functools
import struct
import threading
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

# Kafka's default compression levels (KIP-390: GzipCompression, Lz4Compression, ZstdCompression);
# the broker compresses at the topic's compression.<codec>.level, whose ranges the settings'
# validators check (kbroker/config/validators.py). Snappy has none.
GZIP_DEFAULT_LEVEL = -1  # zlib's default (6)
LZ4_DEFAULT_LEVEL = 9
ZSTD_DEFAULT_LEVEL = 3

# xerial snappy framing: magic, then big-endian version and minimum compatible version, then
# blocks of (i32 compressed length, raw snappy block). 32 KiB blocks, as xerial's default.
_XERIAL_MAGIC = b"\x82SNAPPY\x00"
_XERIAL_HEADER = _XERIAL_MAGIC + struct.pack(">ii", 1, 1)
_XERIAL_BLOCK_SIZE = 32 * 1024
_I32 = struct.Struct(">i")



@functools.cache
def _libs() -> SimpleNamespace:
    import gzip

    import lz4.block
    import lz4.frame
    import snappy
    import zstandard

    return SimpleNamespace(gzip=gzip, lz4=lz4.frame, lz4_block=lz4.block, snappy=snappy, zstd=zstandard,
                           zstd_decompressor=zstandard.ZstdDecompressor())


# A ZstdCompressor must not be used by two threads at once (append_offload.py validates in worker
# threads), so each thread keeps its own, one per level.
_zstd_local = threading.local()
_ZSTD_COMPRESSORS_KEPT = 8


def _zstd_compressor(level: int):  # -> zstandard.ZstdCompressor, imported lazily
    compressors = getattr(_zstd_local, "compressors", None)
    if compressors is None:
        compressors = _zstd_local.compressors = {}
    compressor = compressors.get(level)
    if compressor is None:
        if len(compressors) >= _ZSTD_COMPRESSORS_KEPT:  # topics' levels come and go: keep a few
            compressors.clear()
        compressor = compressors[level] = _libs().zstd.ZstdCompressor(level=level)
    return compressor


class UnsupportedCodecError(ValueError):
    """The attributes name a codec id that Kafka does not define."""


def compress(codec: int, data: bytes | bytearray | memoryview, level: int | None = None) -> bytes:
    """Compress `data` the way Kafka's clients do for `codec`, at Kafka's compression `level`
    for that codec (None: the codec's default level; snappy and none have no level). The level
    must be in Kafka's range (validated where the setting is read)."""
    if codec == CODEC_NONE:
        return bytes(data)
    if codec == CODEC_GZIP:
        return _gzip_compress(data, GZIP_DEFAULT_LEVEL if level is None else level)
    if codec == CODEC_SNAPPY:
        return _xerial_snappy_compress(data)
    if codec == CODEC_LZ4:
        return _lz4_compress(data, LZ4_DEFAULT_LEVEL if level is None else level)
    if codec == CODEC_ZSTD:
        return _zstd_compressor(ZSTD_DEFAULT_LEVEL if level is None else level).compress(bytes(data))
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


def _gzip_compress(data: bytes | bytearray | memoryview, level: int) -> bytes:
    # wbits=31 writes a gzip member; zero mtime keeps output deterministic. Kafka's -1 is
    # Deflater.DEFAULT_COMPRESSION, zlib's Z_DEFAULT_COMPRESSION (-1) too.
    compressor = zlib.compressobj(level, zlib.DEFLATED, 31)
    return compressor.compress(data) + compressor.flush()


def _lz4_compress(data: bytes | bytearray | memoryview, level: int) -> bytes:
    """Kafka's Lz4BlockOutputStream: lz4's fast compressor at the default level (9), its
    high-compression one (LZ4HC) at any other; independent 64 KiB blocks, no content size."""
    if level != LZ4_DEFAULT_LEVEL:
        return _lz4_hc_frame(data, level)
    lz4 = _libs().lz4
    return lz4.compress(bytes(data), block_size=lz4.BLOCKSIZE_MAX64KB, block_linked=False, store_size=False)


# The frame header lz4.frame writes for the options above (magic, FLG: v1 with independent
# blocks, BD: 64 KiB, header checksum), the end mark, and a block's "stored uncompressed" bit.
_LZ4_FRAME_HEADER = bytes.fromhex("04224d18604082")
_LZ4_END_MARK = bytes(4)
_LZ4_UNCOMPRESSED_BLOCK = 0x80000000
_LZ4_BLOCK_SIZE = 64 * 1024
_U32_LE = struct.Struct("<I")


def _lz4_hc_frame(data: bytes | bytearray | memoryview, level: int) -> bytes:
    # lz4.frame runs its levels 1 and 2 with the fast compressor, where lz4-java's
    # highCompressor(level) (Kafka's) runs LZ4HC: so the frame is built here around LZ4HC blocks.
    block = _libs().lz4_block
    view = memoryview(data).cast("B")
    parts = [_LZ4_FRAME_HEADER]
    for start in range(0, len(view), _LZ4_BLOCK_SIZE):
        chunk = view[start : start + _LZ4_BLOCK_SIZE]
        packed = block.compress(chunk, mode="high_compression", compression=level, store_size=False)
        if len(packed) >= len(chunk):  # incompressible: stored as is, as Kafka's writer does
            parts.append(_U32_LE.pack(len(chunk) | _LZ4_UNCOMPRESSED_BLOCK))
            parts.append(chunk.tobytes())
        else:
            parts.append(_U32_LE.pack(len(packed)))
            parts.append(packed)
    parts.append(_LZ4_END_MARK)
    return b"".join(parts)


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
