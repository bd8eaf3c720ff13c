"""Atomic file writes: a file is either its old complete self or its new complete self.

:func:`atomic_write` has ``write`` fill a temporary file in the target's directory, optionally
syncs it to disk, then moves it into place with :func:`os.replace` (atomic on POSIX within a
file system). On any failure the temporary file is removed and the target is untouched. The
new file gets the permissions an ordinary ``open(path, "w")`` would give it (``0o666`` less
the process's umask), not the ``0o600`` of :func:`tempfile.mkstemp`. Results, checkpoints,
tuning records and stored references are all written through it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def _umask() -> int:
    """The process's file-creation mask (read without changing it where Linux allows)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # no /proc: read it by setting it, then put it back
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None], *,
                 sync: bool = False, before_replace: Callable[[], None] | None = None,
                 prefix: str | None = None) -> Path:
    """Write ``path`` atomically.

    Args:
        path: the target file (its directory must exist).
        write: fills the temporary file it is given (a path in the same directory).
        sync: ``fsync`` the temporary file before it replaces the target.
        before_replace: called after ``write`` succeeded, just before the replacement (e.g. to
            keep the file about to be replaced).
        prefix: name prefix of the temporary file (default ``.<name>.``).

    Returns:
        ``path``.
    """
    path = Path(path)
    fd, name = tempfile.mkstemp(prefix=prefix or f".{path.name}.", suffix=".tmp",
                                dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        os.chmod(tmp, 0o666 & ~_umask())
        write(tmp)
        if sync:
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
        if before_replace is not None:
            before_replace()
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, sync: bool = False) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`)."""
    return atomic_write(path, lambda tmp: tmp.write_bytes(data), sync=sync)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically (see :func:`atomic_write`)."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
