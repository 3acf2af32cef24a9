"""Malformed input cannot flood the broker's log (issue 16, bug 6): one line per client host and
kind per interval, and the lines held back are counted. The limiter on a fake clock, then 1,000
malformed connections against a real broker."""

from __future__ import annotations

import logging
import struct

from kbroker.network.log_limiter import RateLimitedLog, source_of
from kbroker.testing import wire


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def limited(caplog, **kwargs) -> tuple[RateLimitedLog, Clock]:
    clock = Clock()
    caplog.set_level(logging.INFO, logger="test.limiter")
    return RateLimitedLog(logging.getLogger("test.limiter"), interval_s=60, clock=clock, **kwargs), clock


def messages(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == "test.limiter"]


def test_one_line_per_source_and_kind_per_interval_then_the_count(caplog):
    limiter, clock = limited(caplog)
    for n in range(100):
        limiter.warning("10.0.0.1", "frame size", "bad frame %d", n)
    limiter.warning("10.0.0.1", "header", "bad header")
    limiter.warning("10.0.0.2", "frame size", "bad frame from .2")
    clock.now += 59.9
    limiter.warning("10.0.0.1", "frame size", "still held back")
    assert messages(caplog) == ["bad frame 0", "bad header", "bad frame from .2"]

    clock.now += 0.1
    limiter.warning("10.0.0.1", "frame size", "bad frame %d", 101)
    limiter.warning("10.0.0.2", "frame size", "again from .2")
    assert messages(caplog)[3:] == [
        "bad frame 101 (and 100 more like it from 10.0.0.1 since the last such line)", "again from .2"]


def test_memory_stays_bounded_with_many_sources(caplog):
    limiter, clock = limited(caplog, max_sources=100)
    for n in range(1000):
        limiter.warning(f"10.0.{n // 256}.{n % 256}", "frame size", "bad frame")
        assert len(limiter._windows) <= 100


def test_source_is_the_host_without_the_port():
    assert source_of("10.0.0.5:53122") == "10.0.0.5"
    assert source_of("::1:53122") == "::1"
    assert source_of("?") == "?"


def test_a_thousand_malformed_connections_log_a_bounded_number_of_lines(broker):
    negative_size = struct.pack(">i", -1)
    garbage_header = wire.frame(b"\x00")  # a 1-byte request: no room for a header
    for n in range(1000):
        with wire.connect(broker.port) as sock:
            sock.sendall(negative_size if n % 2 else garbage_header)
            wire.wait_closed(sock)
    output = broker.output()
    frame_lines = [line for line in output.splitlines() if "closing connection from 127.0.0.1" in line]
    # Each kind had its first line; everything else within the interval was held back.
    assert len([line for line in frame_lines if "frame of -1 bytes" in line]) == 1
    assert len([line for line in frame_lines if "unreadable request header" in line]) == 1
    assert len(frame_lines) == 2
    # The broker still answers.
    payload = wire.roundtrip(broker.port, wire.api_versions_request(correlation_id=11))
    assert wire.correlation_id_of(payload) == 11
