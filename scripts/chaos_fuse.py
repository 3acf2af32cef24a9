"""scripts/chaos's failing disk: a FUSE passthrough over a backing directory that answers EIO on
demand, for the io-error nemesis (issue 16: "I/O errors" besides a full disk).

Device-mapper's `error`/`flakey` targets would be the usual way, but this kernel has no
device-mapper (`dmsetup targets`: "/dev/mapper/control: open failed: No such device"); it has
FUSE (/dev/fuse). `FailingFs` mounts this module as a separate process (`python chaos_fuse.py
BACKING MOUNT CONTROL`, fusepy over Debian's libfuse2) and stops it by pid. While the CONTROL
file exists, every data operation (open, create, read, write, truncate, fsync, rename, mkdir,
unlink, rmdir) fails with EIO, as a dying disk's do; lookups and listings keep working, so the
broker can still close its files and shut down. Without root, /dev/fuse, libfuse2 or fusepy,
`FailingFs.unavailable_reason()` says which is missing and the nemesis is skipped.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

MOUNT_TIMEOUT_S = 10.0


def _passthrough():  # fusepy is imported only in the daemon (and by the availability check)
    from fuse import FuseOSError, Operations

    class FailingPassthrough(Operations):
        """Every call goes to the same path under `backing`; data calls fail while `control` exists."""

        def __init__(self, backing: str, control: str) -> None:
            self.backing, self.control = backing, control

        def _real(self, path: str) -> str:
            return os.path.join(self.backing, path.lstrip("/"))

        def _maybe_fail(self) -> None:
            if os.path.exists(self.control):
                raise FuseOSError(errno.EIO)

        # -- metadata: always served
        def getattr(self, path, _fh=None):
            st = os.lstat(self._real(path))
            return {key: getattr(st, key) for key in ("st_atime", "st_ctime", "st_gid", "st_mode", "st_mtime",
                                                      "st_nlink", "st_size", "st_uid")}

        def readdir(self, path, _fh):
            return [".", "..", *os.listdir(self._real(path))]

        def access(self, path, amode):
            if not os.access(self._real(path), amode):
                raise FuseOSError(errno.EACCES)

        def statfs(self, path):
            st = os.statvfs(self._real(path))
            return {key: getattr(st, key) for key in ("f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail",
                                                      "f_ffree", "f_files", "f_flag", "f_frsize", "f_namemax")}

        def chmod(self, path, mode):
            os.chmod(self._real(path), mode)

        def chown(self, path, uid, gid):
            os.chown(self._real(path), uid, gid)

        def utimens(self, path, times=None):
            os.utime(self._real(path), times)

        def release(self, _path, fh):
            os.close(fh)

        def flush(self, path, fh):
            pass  # close(2) must not fail for a descriptor the broker gives up

        # -- data: EIO while failing
        def open(self, path, flags):
            self._maybe_fail()
            return os.open(self._real(path), flags)

        def create(self, path, mode, _fi=None):
            self._maybe_fail()
            return os.open(self._real(path), os.O_RDWR | os.O_CREAT, mode)  # fusepy does not pass the flags

        def read(self, _path, size, offset, fh):
            self._maybe_fail()
            return os.pread(fh, size, offset)

        def write(self, _path, data, offset, fh):
            self._maybe_fail()
            return os.pwrite(fh, data, offset)

        def truncate(self, path, length, _fh=None):
            self._maybe_fail()
            os.truncate(self._real(path), length)

        def fsync(self, _path, _datasync, fh):
            self._maybe_fail()
            os.fsync(fh)

        def rename(self, old, new):
            self._maybe_fail()
            os.rename(self._real(old), self._real(new))

        def mkdir(self, path, mode):
            self._maybe_fail()
            os.mkdir(self._real(path), mode)

        def rmdir(self, path):
            self._maybe_fail()
            os.rmdir(self._real(path))

        def unlink(self, path):
            self._maybe_fail()
            os.unlink(self._real(path))

    return FailingPassthrough


class FailingFs:
    """The passthrough mounted at `mount_point` over `backing`; `fail(True)` turns EIO on."""

    def __init__(self, backing: Path, mount_point: Path) -> None:
        self.backing, self.mount_point = backing, mount_point
        self.control = backing.parent / f"{backing.name}.fail-with-eio"
        self.proc: subprocess.Popen | None = None

    @staticmethod
    def unavailable_reason() -> str | None:
        if os.geteuid() != 0:
            return "a FUSE mount needs root here"
        if not os.path.exists("/dev/fuse"):
            return "no /dev/fuse"
        try:
            import fuse  # noqa: F401  (loads libfuse2 too)
        except (ImportError, OSError) as missing:
            return f"fusepy and Debian's libfuse2 are needed ({missing})"
        return None

    def mount(self) -> str | None:
        """Mount, or the reason it cannot be done."""
        reason = self.unavailable_reason()
        if reason is not None:
            return reason
        self.backing.mkdir(parents=True, exist_ok=True)
        self.mount_point.mkdir(parents=True, exist_ok=True)
        self.control.unlink(missing_ok=True)
        self.proc = subprocess.Popen([sys.executable, __file__, str(self.backing), str(self.mount_point),
                                      str(self.control)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     start_new_session=True)
        deadline = time.monotonic() + MOUNT_TIMEOUT_S
        while not os.path.ismount(self.mount_point):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                error = self.proc.stderr.read().decode(errors="replace").strip() if self.proc.poll() is not None else ""
                self.unmount()
                return f"the FUSE passthrough did not mount: {error or 'timed out'}"
            time.sleep(0.05)
        return None

    @property
    def mounted(self) -> bool:
        return self.proc is not None

    def fail(self, on: bool) -> None:
        if on:
            self.control.touch()
        else:
            self.control.unlink(missing_ok=True)

    def unmount(self) -> None:
        """Stop the daemon by pid (libfuse unmounts on SIGTERM); a lazy umount if it did not."""
        self.fail(False)
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        if os.path.ismount(self.mount_point):
            subprocess.run(["umount", "-l", str(self.mount_point)], capture_output=True)


def main(backing: str, mount_point: str, control: str) -> None:
    from fuse import FUSE

    FUSE(_passthrough()(backing, control), mount_point, foreground=True, nothreads=False, allow_other=True)


if __name__ == "__main__":
    main(*sys.argv[1:4])
