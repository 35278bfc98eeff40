"""The one atomic-write helper: a file or a folder appears complete under its final name, or not
at all.

Content is written under a hidden temporary name in the target's own folder (same filesystem) and
renamed into place, so a reader never sees a half-written file and a killed writer leaves only a
hidden ``.<name>.partial-<pid>-*`` entry that the next writer may remove. Temporary entries are
created private (``mkstemp`` / ``mkdtemp`` use mode 0600 / 0700); they are given the usual
permissions (``0666`` / ``0777`` less the umask) before the rename, so finished files and folders
are readable like any other.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PARTIAL = re.compile(r"^\.(?P<name>.+)\.partial-(?P<pid>\d+)-")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def partial_prefix(target: Path) -> str:
    """Prefix of the temporary entries written for ``target``: ``.<name>.partial-<pid>-``."""
    return f".{target.name}.partial-{os.getpid()}-"


def write_atomic(path: str | Path, data: bytes | str) -> int:
    """Write ``data`` to ``path`` atomically; returns the number of bytes written.

    :param data: bytes, or text written as UTF-8.
    """
    path = Path(path)
    raw = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=partial_prefix(path), dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return len(raw)


@contextmanager
def atomic_dir(target: str | Path, replace: bool = False) -> Iterator[Path]:
    """Build a folder under a temporary name and rename it to ``target`` when the block ends.

    :param target: the folder to create; it must not exist (or be an empty folder) unless
        ``replace`` is set, in which case a finished old folder is swapped out and removed.
    :yields: the temporary folder to fill. If the block raises, it is removed and ``target`` is
        untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=partial_prefix(target), dir=target.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())
        if target.exists() and (replace or not any(target.iterdir())):
            old = Path(tempfile.mkdtemp(prefix=partial_prefix(target) + "old-", dir=target.parent))
            os.replace(target, old / "previous")
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)  # raises if target is a non-empty folder
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _alive(pid: int) -> bool:
    """Whether process ``pid`` is running (a zombie, killed but not yet reaped, is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] != "Z"


def remove_dead_partials(folder: str | Path, name: str | None = None) -> list[Path]:
    """Remove the temporary entries in ``folder`` (of target ``name`` only, if given) whose
    writer process is gone; returns what was removed."""
    folder, removed = Path(folder), []
    if not folder.is_dir():
        return removed
    for entry in folder.iterdir():
        m = PARTIAL.match(entry.name)
        if m and (name is None or m["name"] == name) and not _alive(int(m["pid"])):
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed
