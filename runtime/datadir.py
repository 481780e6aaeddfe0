"""The data directory's owner lock: one runtime per data directory, and who holds it.

RocksDB's own LOCK files only say "Resource temporarily unavailable" deep inside a traceback.
Before opening any database, the runtime takes an exclusive `flock` on DATA_DIR/endure.pid and
writes its pid there; a second runtime fails at once with `DataDirLocked` naming the directory
and the holder's pid. The kernel drops the lock when the holder dies, even by kill -9.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

__all__ = ["PID_FILE", "DataDirLock", "DataDirLocked", "holder_pid"]

PID_FILE = "endure.pid"


class DataDirLocked(Exception):
    """Another process has the data directory open."""

    def __init__(self, data_dir: Path, holder: int | None) -> None:
        self.data_dir = data_dir
        self.holder = holder
        who = f"pid {holder}" if holder else "another process"
        super().__init__(f"data directory {data_dir} is in use by {who} (another endure runtime); "
                         "stop it or choose another --data-dir")


def holder_pid(data_dir: Path) -> int | None:
    """The pid recorded by the runtime holding data_dir, if one was recorded."""
    try:
        text = (data_dir / PID_FILE).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


class DataDirLock:
    """Held for as long as a runtime has data_dir open; `release()` (or process exit) frees it."""

    def __init__(self, data_dir: Path, fd: int) -> None:
        self.data_dir = data_dir
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, data_dir: Path) -> DataDirLock:
        """Lock data_dir (created if missing) and record this pid; DataDirLocked if it is taken."""
        data_dir = Path(data_dir).resolve()
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(data_dir / PID_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise DataDirLocked(data_dir, holder_pid(data_dir)) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        return cls(data_dir, fd)

    def release(self) -> None:
        """Clear the recorded pid and unlock (idempotent)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)
        finally:
            os.close(fd)  # closing the only descriptor drops the flock
