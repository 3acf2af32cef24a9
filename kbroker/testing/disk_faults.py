"""Disk faults for tests: injected I/O errors and real small tmpfs mounts.

- `FailingDisk`: installs kbroker/log's io_faults hook so that matching file operations raise
  OSError(errno) from the Nth one on (ENOSPC, EIO, EROFS...), only under a given directory;
  a context manager that always removes the hook. In-process only (the hook lives in this
  process's kbroker.log).
- `Tmpfs`: a real tmpfs of a few MiB mounted by the test (root only; `unavailable_reason()`
  says why not), grown or shrunk with `resize`, made read-only with `remount_read_only`
  (refused by the kernel while files are open for writing) and always unmounted by `unmount`.
- `fill(path)`: writes a file until the file system under `path` is full.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from pathlib import Path
from types import TracebackType

from kbroker.log import io_faults

_FILL_CHUNK = 64 * 1024


class FailingDisk:
    """Operations ("write", "create", "flush", "rename", or all when None) on paths under
    `directory` raise OSError(`error`) from the `nth` matching one on (1 = the first)."""

    def __init__(self, directory: str | os.PathLike, error: int = errno.ENOSPC, *, nth: int = 1,
                 operations: frozenset[str] | None = None) -> None:
        self.directory = os.path.abspath(directory)
        self.error = error
        self.nth = nth
        self.operations = operations
        self.seen = 0  # matching operations so far, failed or not
        self.failed: list[tuple[str, str]] = []

    def _hook(self, operation: str, path: str) -> None:
        if self.operations is not None and operation not in self.operations:
            return
        if not os.path.abspath(path).startswith(self.directory + os.sep):
            return
        self.seen += 1
        if self.seen >= self.nth:
            self.failed.append((operation, path))
            raise OSError(self.error, os.strerror(self.error), path)

    def __enter__(self) -> FailingDisk:
        assert io_faults.hook is None, "another FailingDisk is active"
        io_faults.hook = self._hook
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        io_faults.hook = None


class Tmpfs:
    """A tmpfs of `size` (mount's syntax: "2m") at `mount_point`, mounted by `mount()`."""

    def __init__(self, mount_point: str | os.PathLike, size: str = "2m") -> None:
        self.mount_point = Path(mount_point)
        self.size = size
        self.mounted = False

    @staticmethod
    def unavailable_reason() -> str | None:
        """Why tmpfs cannot be mounted here (not root, no mount), or None."""
        if os.geteuid() != 0:
            return "mounting a tmpfs needs root"
        if shutil.which("mount") is None or shutil.which("umount") is None:
            return "mount/umount not installed"
        return None

    def _run(self, *argv: str) -> subprocess.CompletedProcess:
        return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)

    def mount(self) -> str | None:
        """Mount it; None on success, else the reason it could not be mounted."""
        reason = self.unavailable_reason()
        if reason is not None:
            return reason
        self.mount_point.mkdir(parents=True, exist_ok=True)
        done = self._run("mount", "-t", "tmpfs", "-o", f"size={self.size}", "tmpfs", str(self.mount_point))
        if done.returncode != 0:
            return f"mount -t tmpfs failed: {done.stderr.strip()}"
        self.mounted = True
        return None

    def resize(self, size: str) -> None:
        """More (or less) room, keeping the files: how a test 'frees space'."""
        done = self._run("mount", "-o", f"remount,size={size}", str(self.mount_point))
        assert done.returncode == 0, done.stderr
        self.size = size

    def remount_read_only(self) -> str | None:
        """Remount read-only; None on success, else the kernel's refusal (EBUSY while a file
        is open for writing, as a running broker's segments are)."""
        done = self._run("mount", "-o", "remount,ro", str(self.mount_point))
        return None if done.returncode == 0 else done.stderr.strip()

    def unmount(self) -> None:
        if self.mounted:
            done = self._run("umount", str(self.mount_point))
            if done.returncode != 0:  # a process still holds a file: detach it now, freed when closed
                self._run("umount", "-l", str(self.mount_point))
            self.mounted = False


def fill(directory: str | os.PathLike, name: str = "filler") -> int:
    """Write `directory/name` until the file system is full (ENOSPC); returns the bytes written."""
    path = os.path.join(directory, name)
    written = 0
    chunk = b"\0" * _FILL_CHUNK
    with open(path, "ab", buffering=0) as file:
        while True:
            try:
                file.write(chunk)
            except OSError as error:
                if error.errno != errno.ENOSPC:
                    raise
                break
            written += len(chunk)
        # What is left is smaller than a chunk: take it byte-block by byte-block.
        for size in (4096, 512, 1):
            while True:
                try:
                    file.write(b"\0" * size)
                except OSError:
                    break
                written += size
    return written
