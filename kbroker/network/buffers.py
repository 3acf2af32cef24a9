"""Buffers that the socket fills whole: bytearrays allocated without zeroing them first.

A request or response frame of a known size gets a bytearray of its own that reads then fill
(socket_server.KafkaConnection, network_client.ResponseReader). `bytearray(n)` writes n zeroes
that the reads overwrite at once: for a 1 MB produce at the leader and each 1 MB fetch response
at a follower, that memset was ~2.4% of the three brokers' CPU in the replication benchmark
(perf), and it runs on the acks=all round trip. CPython's PyByteArray_FromStringAndSize(NULL, n)
makes the same object with its bytes left as malloc gave them.

The callers' invariant: a frame's buffer is never longer than the frame, and it is handed on
only once the reads filled it to the frame's size, so a byte that was never written is never
seen. Small buffers (below UNFILLED_MIN_BYTES) are zeroed as usual: there the saving is nothing.
ctypes is imported with the first large frame, not at start-up.
"""

from __future__ import annotations

from typing import Any

UNFILLED_MIN_BYTES = 64 * 1024
_from_string_and_size: Any = None  # ctypes' PyByteArray_FromStringAndSize, once looked up; False: none


def unfilled_bytearray(size: int) -> bytearray:
    """A bytearray of `size` bytes whose contents are undefined until written: only for a
    buffer that reads fill entirely before anything reads it."""
    if size < UNFILLED_MIN_BYTES:
        return bytearray(size)
    make = _from_string_and_size if _from_string_and_size is not None else _look_up()
    return make(None, size) if make else bytearray(size)


def _look_up() -> Any:
    global _from_string_and_size
    make: Any
    try:
        import ctypes

        make = ctypes.pythonapi.PyByteArray_FromStringAndSize
        make.restype = ctypes.py_object
        make.argtypes = (ctypes.c_void_p, ctypes.c_ssize_t)
    except (ImportError, AttributeError):  # not CPython: zeroed buffers, as before
        make = False
    _from_string_and_size = make
    return make
