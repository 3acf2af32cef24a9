"""The seam through which tests inject disk faults into the log's file operations.

The log calls `check(operation, path)` just before each write-like system call that a full,
failing or read-only disk refuses: "write" (segment appends, checkpoint and snapshot files),
"create" (new segment files), "flush" (fsync of a segment) and "rename" (moving a partition
directory). Production never sets `hook`, so each call costs one global lookup; a test sets it
(kbroker/testing/disk_faults.py) to raise OSError(ENOSPC / EIO / EROFS) where it wants the disk
to fail, and resets it to None afterwards.
"""

from __future__ import annotations

from collections.abc import Callable

# (operation, path) -> None, or raises OSError. None outside tests.
hook: Callable[[str, str], None] | None = None


def check(operation: str, path: str) -> None:
    if hook is not None:
        hook(operation, path)
