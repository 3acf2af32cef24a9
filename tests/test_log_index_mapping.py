"""Index entries written through a shared mapping (kbroker/log/index.py's IndexMapping, Kafka's
MappedByteBuffer): the files hold the same bytes as with pwrites, at every moment and after a
kill -9; an eviction from OPEN_FILES drops the mapping without losing an entry; a full disk is an
OSError (ENOSPC), never a SIGBUS."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from kbroker.log.index import OffsetIndex, TimeIndex
from kbroker.log.open_files import OPEN_FILES
from kbroker.testing.disk_faults import Tmpfs

MAX_INDEX_BYTES = 64 * 1024  # 16 pages: entries cross several page boundaries
ENTRIES = 3000  # 24,000 bytes of offset index, 36,000 of time index


def write_entries(offset_index: OffsetIndex, time_index: TimeIndex, count: int, start: int = 0) -> None:
    for n in range(start, start + count):
        offset_index.append(100 + 7 * n, 4096 * n)
        time_index.maybe_append(1_700_000_000_000 + n, 100 + 7 * n)


def indexes(directory, *, mapped: bool = True) -> tuple[OffsetIndex, TimeIndex]:
    pair = (OffsetIndex(str(directory / "00000000000000000100.index"), 100, MAX_INDEX_BYTES),
            TimeIndex(str(directory / "00000000000000000100.timeindex"), 100, MAX_INDEX_BYTES))
    if not mapped:  # the pwrite path, as for a file no mapping can be made of
        for index in pair:
            index._map = lambda _fd, _position: None  # type: ignore[method-assign]
    return pair


def file_bytes(index: OffsetIndex | TimeIndex) -> bytes:
    with open(index.path, "rb") as file:
        return file.read()


def test_mapped_entries_are_the_pwritten_bytes(tmp_path):
    (tmp_path / "mapped").mkdir()
    (tmp_path / "written").mkdir()
    mapped, written = indexes(tmp_path / "mapped"), indexes(tmp_path / "written", mapped=False)
    write_entries(*mapped, ENTRIES)
    write_entries(*written, ENTRIES)
    assert all(index._mapping is not None for index in mapped)
    assert all(index._mapping is None for index in written)
    for a, b in zip(mapped, written, strict=True):  # preallocated: entries, then zeros
        assert len(file_bytes(a)) == MAX_INDEX_BYTES - MAX_INDEX_BYTES % a.entry.size
        assert file_bytes(a) == file_bytes(b)
    for index in (*mapped, *written):
        index.close()
    for a, b in zip(mapped, written, strict=True):  # trimmed to the entries
        assert len(file_bytes(a)) == ENTRIES * a.entry.size
        assert file_bytes(a) == file_bytes(b)
    reloaded = indexes(tmp_path / "mapped")
    assert reloaded[0].entries == ENTRIES and reloaded[0].lookup(100 + 7 * 10).position == 4096 * 10
    assert reloaded[1].last_entry().timestamp == 1_700_000_000_000 + ENTRIES - 1


def test_truncation_and_trim_keep_the_mapping_coherent(tmp_path):
    offset_index, time_index = indexes(tmp_path)
    write_entries(offset_index, time_index, 1000)
    offset_index.truncate_to(100 + 7 * 600)  # zeroes entries 600.. with a pwrite under the mapping
    time_index.truncate_to(100 + 7 * 600)
    write_entries(offset_index, time_index, 10, start=600)  # through the same mapping again
    assert offset_index.entries == 610 and offset_index._mapping is not None
    offset_index.trim_to_valid_size()  # the file shrinks: the mapping is gone first
    time_index.trim_to_valid_size()
    assert offset_index._mapping is None and time_index._mapping is None
    assert len(file_bytes(offset_index)) == 610 * 8
    expected = b"".join((7 * n).to_bytes(4, "big") + (4096 * n).to_bytes(4, "big") for n in range(610))
    assert file_bytes(offset_index) == expected
    offset_index.resize(MAX_INDEX_BYTES)  # active again (a truncation back into this segment)
    offset_index.append(100 + 7 * 610, 4096 * 610)
    assert file_bytes(offset_index)[: 611 * 8] == expected + (7 * 610).to_bytes(4, "big") + (4096 * 610).to_bytes(4, "big")


def test_eviction_drops_the_mapping_and_loses_nothing(tmp_path):
    capacity = OPEN_FILES.capacity
    OPEN_FILES.set_capacity(1)
    try:
        (tmp_path / "a").mkdir()
        (tmp_path / "b").mkdir()
        a, b = indexes(tmp_path / "a")[0], indexes(tmp_path / "b")[0]
        a.append(100, 0)
        assert a._mapping is not None
        b.append(100, 0)  # opens b: a's descriptor is evicted, and its mapping with it
        assert a._mapping is None and not a._handle.is_open
        for n in range(1, 1500):  # alternating: each write reopens and maps its file again
            a.append(100 + n, n)
            b.append(100 + n, 2 * n)
        assert OPEN_FILES.evictions > 0
        a.close()
        b.close()
        assert file_bytes(a) == b"".join(n.to_bytes(4, "big") * 2 for n in range(1500))
        assert file_bytes(b) == b"".join(n.to_bytes(4, "big") + (2 * n).to_bytes(4, "big") for n in range(1500))
    finally:
        OPEN_FILES.set_capacity(capacity)


def test_kill_9_keeps_the_mapped_entries(tmp_path):
    """Stores through a MAP_SHARED mapping are in the page cache at once, as pwrites are: a
    process killed with SIGKILL leaves them in the file (the preallocated file, untrimmed)."""
    script = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {os.getcwd()!r})
        from kbroker.log.index import OffsetIndex
        index = OffsetIndex({str(tmp_path / "00000000000000000000.index")!r}, 0, {MAX_INDEX_BYTES})
        for n in range(700):
            index.append(n, 10 * n)
        assert index._mapping is not None
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    child = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60, check=False)
    assert child.returncode == -signal.SIGKILL, child.stderr
    data = (tmp_path / "00000000000000000000.index").read_bytes()
    assert len(data) == MAX_INDEX_BYTES
    assert data[: 700 * 8] == b"".join(n.to_bytes(4, "big") + (10 * n).to_bytes(4, "big") for n in range(700))
    assert data[700 * 8:] == bytes(MAX_INDEX_BYTES - 700 * 8)


@pytest.mark.skipif(Tmpfs.unavailable_reason() is not None, reason=str(Tmpfs.unavailable_reason()))
def test_full_disk_is_an_oserror_not_a_sigbus(tmp_path):
    """On a full file system the next page of a sparse index cannot be allocated: the store
    would be a SIGBUS, so the page is allocated first and ENOSPC raised there (in a child
    process, so that a SIGBUS would show as its death rather than the test run's)."""
    mount = Tmpfs(tmp_path / "small", size="1m")
    reason = mount.mount()
    if reason is not None:
        pytest.skip(reason)
    try:
        script = textwrap.dedent(f"""
            import errno, sys
            sys.path.insert(0, {os.getcwd()!r})
            from kbroker.log.index import OffsetIndex
            from kbroker.testing.disk_faults import fill
            index = OffsetIndex({str(mount.mount_point / "00000000000000000000.index")!r}, 0, {MAX_INDEX_BYTES})
            index.append(0, 0)  # maps the file, allocates its first page
            fill({str(mount.mount_point)!r})
            try:
                for n in range(1, 4096):  # into the second page and on
                    index.append(n, n)
            except OSError as error:
                assert error.errno == errno.ENOSPC, error
                print("ENOSPC at entry", n)
            else:
                raise AssertionError("the full disk was not noticed")
        """)
        child = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                               check=False)
        assert child.returncode == 0, (child.returncode, child.stderr)
        assert child.stdout.startswith("ENOSPC at entry 512"), child.stdout  # the first entry of page 2
    finally:
        mount.unmount()

