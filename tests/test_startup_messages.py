"""What a broker says when it cannot start or has started (issue 16, bug 13): a locked data
directory or an unusable one is one line naming log.dirs, the directory and (when locked) the
other process's pid, with no traceback; the start line gives the advertised address and the
time since the process started. Real broker processes."""

from __future__ import annotations

import re
import time

import pytest

from kbroker.server import process_age_s
from kbroker.testing.processes import BrokerFailed, free_port

IMPORTED_AT = time.monotonic()


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if " ERROR " in line]


def test_a_locked_data_directory_is_one_line_naming_it_and_the_other_process(broker_factory):
    first = broker_factory.start()
    second = broker_factory.start(f"log.dirs={first.log_dir}", start=False)
    with pytest.raises(BrokerFailed):
        second.start()
    assert second.process.returncode == 1
    output = second.output()
    assert "Traceback" not in output
    assert error_lines(output) == [error_lines(output)[0]]
    assert error_lines(output)[0].endswith(
        f"cannot start: log.dirs: {first.log_dir} is locked by another process (pid {first.process.pid}): "
        "is another broker using this directory?")
    assert first.alive()


def test_a_data_directory_that_is_a_file_is_named_as_log_dirs(broker_factory, tmp_path):
    not_a_dir = tmp_path / "plain-file"
    not_a_dir.write_text("")
    broker = broker_factory.start(f"log.dirs={not_a_dir}", start=False)
    with pytest.raises(BrokerFailed):
        broker.start()
    output = broker.output()
    assert "Traceback" not in output
    assert [line.split(" ERROR ")[1] for line in error_lines(output)] == [
        f"kbroker.server: cannot start: log.dirs: cannot use {not_a_dir}: it is not a directory"]


def test_the_start_line_gives_the_advertised_address_and_the_time_since_the_process_started(broker_factory):
    broker = broker_factory.start("advertised.listeners=PLAINTEXT://broker.example:19092")
    line = next(line for line in broker.output().splitlines() if " started in " in line)
    assert re.search(r"started in \d+ ms \(since the process started; cluster id \S+\), "
                     rf"listening on PLAINTEXT://127\.0\.0\.1:{broker.port}, "
                     r"advertised as PLAINTEXT://broker\.example:19092$", line), line


def test_process_age_counts_from_the_process_start_not_from_a_later_point():
    age = process_age_s()
    since_import = time.monotonic() - IMPORTED_AT
    assert age is not None
    assert age >= since_import - 0.02  # /proc's start time is in 10 ms ticks


def test_an_unreachable_zookeeper_is_one_line_naming_the_address(broker_factory):
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    broker = broker_factory.start("broker.id=1", f"zookeeper.connect={address}/kbroker",
                                  "zookeeper.connection.timeout.ms=1000", start=False)
    with pytest.raises(BrokerFailed):
        broker.start()
    output = broker.output()
    assert "Traceback" not in output
    assert [line.split(" ERROR ")[1] for line in error_lines(output)] == [
        f"kbroker.server: cannot start: no ZooKeeper answered at {address} within 1000 ms "
        "(zookeeper.connect, zookeeper.connection.timeout.ms)"]
