"""OpenFiles: a bound on the segment files (.log, .index, .timeindex) held open at once.

Kafka keeps every segment's .log open (FileRecords) and opens indexes on first use (LazyIndex),
relying on `ulimit -n`: a broker with 10,000 partitions holds 30,000 descriptors or more. Here
each such file is a FileHandle, opened on first use and again after an eviction; OPEN_FILES keeps
the `capacity` most recently used ones open (LRU) and, when it opens another, drops its reference
to the least recently used one. A dropped SegmentFile closes its descriptor when its last user lets
go of it (CPython's reference counts): a FileRegion of a fetch response still being written holds
it, so that response reads the file it found even if the segment was evicted, renamed or deleted
meanwhile.

Closing loses nothing: appends are pwrites into the page cache, and an fsync on any descriptor of
a file writes back all of its dirty pages, so `flush` after a reopen is as durable as before.

The capacity is a quarter of the soft RLIMIT_NOFILE (the rest is for connections and everything
else), at most DEFAULT_MAX_OPEN and at least MIN_OPEN, read when the log stack is first imported
(in the broker: after `server.raise_open_file_limit` lifted the soft limit to the hard one);
tests make it small with `set_capacity`.
"""

from __future__ import annotations

import os
import resource
from collections import OrderedDict

DEFAULT_MAX_OPEN = 4096
MIN_OPEN = 64


class SegmentFile:
    """An open descriptor, closed by `close` or when the last reference goes."""

    __slots__ = ("fd",)

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def fileno(self) -> int:
        if self.fd < 0:
            raise ValueError("I/O operation on closed file")
        return self.fd

    @property
    def closed(self) -> bool:
        return self.fd < 0

    def close(self, _close=os.close) -> None:  # bound at definition: usable during interpreter shutdown
        fd, self.fd = self.fd, -1
        if fd >= 0:
            _close(fd)

    def __del__(self) -> None:
        self.close()


class FileHandle:
    """One file of a segment, opened through OPEN_FILES when used. `reopen_flags` are the flags of
    an open after an eviction (no O_CREAT for a .log: a vanished file is an error, not a new one).
    After `close`, a handle with `reopen_after_close` False raises ValueError when used again."""

    __slots__ = ("path", "reopen_flags", "reopen_after_close", "_file", "_closed")

    def __init__(self, path: str, reopen_flags: int, *, reopen_after_close: bool = True) -> None:
        self.path = path
        self.reopen_flags = reopen_flags
        self.reopen_after_close = reopen_after_close
        self._file: SegmentFile | None = None
        self._closed = False

    @property
    def is_open(self) -> bool:
        return self._file is not None

    @property
    def closed(self) -> bool:
        """Closed by `close` (not merely evicted)."""
        return self._closed

    def file(self) -> SegmentFile:
        file = self._file
        if file is None:
            return self.open(self.reopen_flags)
        OPEN_FILES.used(self)
        return file

    def fileno(self) -> int:
        file = self._file
        if file is None:
            file = self.open(self.reopen_flags)
        else:
            OPEN_FILES.used(self)
        return file.fd

    def open(self, flags: int) -> SegmentFile:
        """Opens the file now with `flags` (O_CREAT to create it); evicts another if over capacity."""
        if self._closed and not self.reopen_after_close:
            raise ValueError(f"I/O operation on closed file {self.path}")
        if self._file is not None:
            return self._file
        file = self._file = SegmentFile(os.open(self.path, flags, 0o644))
        self._closed = False
        OPEN_FILES.opened(self)
        return file

    def evict(self) -> None:
        """OPEN_FILES's eviction: forget the file (closed once no FileRegion holds it)."""
        self._file = None

    def close(self) -> None:
        """Close the descriptor now (regions still holding it fail to read, as with a closed file)."""
        file, self._file = self._file, None
        self._closed = True
        OPEN_FILES.forget(self)
        if file is not None:
            file.close()


class OpenFiles:
    """The LRU of open FileHandles: at most `capacity` of them keep their descriptor."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._lru: OrderedDict[FileHandle, None] = OrderedDict()
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._lru)

    def used(self, handle: FileHandle) -> None:
        try:
            self._lru.move_to_end(handle)
        except KeyError:  # closed elsewhere while open (cannot happen through FileHandle): count it
            self._lru[handle] = None

    def opened(self, handle: FileHandle) -> None:
        self._lru[handle] = None
        self.shrink_to(self.capacity)

    def forget(self, handle: FileHandle) -> None:
        self._lru.pop(handle, None)

    def shrink_to(self, capacity: int) -> None:
        """Evict least recently used handles until at most `capacity` stay open."""
        while len(self._lru) > capacity:
            oldest, _ = self._lru.popitem(last=False)
            oldest.evict()
            self.evictions += 1

    def set_capacity(self, capacity: int) -> None:
        self.capacity = max(1, capacity)
        self.shrink_to(self.capacity)


def default_capacity() -> int:
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return DEFAULT_MAX_OPEN
    return max(MIN_OPEN, min(DEFAULT_MAX_OPEN, soft // 4))


OPEN_FILES = OpenFiles(default_capacity())
