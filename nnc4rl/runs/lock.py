"""One lock file per run of a store, so two sweeps on one store never train the same run twice.

``<store>/.<run id>.lock`` holds its owner's pid and host (JSON, for the message a second sweep
prints) and an exclusive ``flock``: the kernel releases it when the owner exits, however it
exits (``kill -9`` included), so a lock is taken over exactly when its owner is dead, and a live
owner's lock is never broken. The owner removes the file when it releases the lock.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from pathlib import Path


def lock_path(root: str | Path, rid: str) -> Path:
    """The lock file of run ``rid`` in the store at ``root``."""
    return Path(root) / f".{rid}.lock"


class RunLock:
    """The lock of one run; :meth:`acquire` never blocks.

    :param path: the lock file (:func:`lock_path`).
    """

    def __init__(self, path: str | Path):
        self.path, self.fd = Path(path), None

    def acquire(self) -> bool:
        """Take the lock if no live process holds it; True if taken (then it names us)."""
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return False
            try:  # the owner may have released (removed) the file between our open and flock
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(
            fd, (json.dumps({"pid": os.getpid(), "host": socket.gethostname()}) + "\n").encode()
        )
        self.fd = fd
        return True

    def owner(self) -> str:
        """``pid P on HOST`` as the lock file names its owner (``unknown`` if unreadable)."""
        try:
            meta = json.loads(self.path.read_text())
            return f"pid {int(meta['pid'])} on {meta['host']}"
        except (OSError, ValueError, KeyError, TypeError):
            return "unknown"

    def release(self) -> None:
        """Remove the lock file and drop the lock (nothing if not held)."""
        if self.fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)  # while still holding it: see acquire
        finally:
            os.close(self.fd)
            self.fd = None
