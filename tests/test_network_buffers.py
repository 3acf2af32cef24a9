"""kbroker/network/buffers.py: frame buffers allocated without zeroing are ordinary bytearrays of
the size asked, writable through a memoryview as the transports write them; small ones are
zeroed as bytearray(n) is. (Frames filling them over real sockets, byte for byte:
test_network_client_framing.py and test_network_limits.py.)"""

from __future__ import annotations

import os

from kbroker.network.buffers import UNFILLED_MIN_BYTES, unfilled_bytearray


def test_a_large_buffer_is_a_bytearray_of_the_size_asked_and_takes_what_is_written():
    size = 3 * UNFILLED_MIN_BYTES + 5
    buffer = unfilled_bytearray(size)
    assert type(buffer) is bytearray and len(buffer) == size
    data = os.urandom(size)
    view = memoryview(buffer)
    view[:1000] = data[:1000]  # as reads fill it: in pieces, through a view
    view[1000:] = data[1000:]
    assert buffer == data
    del view
    buffer += b"x"  # an ordinary bytearray otherwise
    assert len(buffer) == size + 1


def test_small_buffers_are_zeroed():
    assert unfilled_bytearray(0) == bytearray()
    assert unfilled_bytearray(UNFILLED_MIN_BYTES - 1) == bytearray(UNFILLED_MIN_BYTES - 1)
