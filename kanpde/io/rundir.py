"""Run directories: a directory belongs to one run.

A run claims its directory when it starts and releases it when it ends:

* the claim is the file ``DIR/.kanpde.lock``, created with ``O_CREAT | O_EXCL`` (so of two
  processes started at the same moment exactly one gets it) and holding the owner's process
  id, host, start time and command line as JSON;
* after taking the lock a new run checks that the directory holds no run: any of
  :data:`RUN_FILES` (``result.h5`` alone is enough) means it does, and the run is refused;
  a resumed run needs ``checkpoint.pt``;
* the lock is removed when the run ends, however it ends (error, Ctrl-C, SIGTERM); only
  ``kill -9`` or a crash of the machine leaves it behind. Such a stale lock is detected
  (its process is gone) and reported with the command that clears it,
  ``kanpde unlock DIR`` (``--force`` for a lock taken on another host, whose process cannot
  be checked from here).

No command writes a file named like one of :data:`PROTECTED` except the run that owns the
directory: outputs of ``predict``, ``export`` and ``plot`` are checked with
:func:`check_output_name`. Run names made from user strings (problem and solver names)
go through :func:`safe_name`, so a run directory never lands outside its parent.
"""

from __future__ import annotations

import json
import os
import re
import socket
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

LOCK_FILE = ".kanpde.lock"
#: files that make a directory "hold a run"
RUN_FILES = ("summary.json", "result.h5", "checkpoint.pt", "checkpoint.prev.pt")
#: names no command but the owning run writes
PROTECTED = (*RUN_FILES, LOCK_FILE)
#: an empty lock older than this (seconds) was left by a process that died while claiming
EMPTY_LOCK_GRACE_S = 30.0


class RunDirError(ValueError):
    """A run directory cannot be used (held by another run, or holds a run already)."""


@dataclass(frozen=True)
class Holder:
    """Who holds a run directory: the contents of its lock file."""

    pid: int | None
    host: str
    started: str
    command: str
    token: str = ""

    def alive(self) -> bool | None:
        """Whether the holding process still runs: ``None`` when that cannot be told
        (another host, or an empty lock still being written)."""
        if self.pid is None or self.host != socket.gethostname():
            return None
        if self.pid == os.getpid():  # not a lock this process holds (claims never nest)
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # exists, belongs to someone else
            return True
        return True

    def describe(self) -> str:
        if self.pid is None:
            return "a kanpde process that has not written its details"
        return f"process {self.pid} on host {self.host} (started {self.started})"


def safe_name(name: str) -> str:
    """``name`` usable as one path component: path separators, control characters and
    ``:`` become ``_``, leading dots are dropped (no ``..``, no hidden names), and an empty
    result becomes ``"run"``. Other characters (unicode, brackets) are kept."""
    out = re.sub(r"[\x00-\x1f\x7f/\\:]", "_", str(name)).strip().lstrip(".")
    return out or "run"


def run_files(directory: str | Path) -> list[str]:
    """The :data:`RUN_FILES` present in ``directory`` (empty: it holds no run)."""
    d = Path(directory)
    return [name for name in RUN_FILES if (d / name).exists()]


def read_holder(directory: str | Path) -> Holder | None:
    """The holder recorded in ``directory``'s lock, or ``None`` when it is not locked."""
    path = Path(directory) / LOCK_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError):
        text = ""
    try:
        data = json.loads(text)
        pid = int(data["pid"])
        return Holder(pid, str(data.get("host", "?")), str(data.get("started", "?")),
                      str(data.get("command", "")), str(data.get("token", "")))
    except (ValueError, KeyError, TypeError):
        try:
            age = time.time() - path.stat().st_mtime
        except OSError:
            age = 0.0
        started = f"{age:.0f} s ago"
        return Holder(None, "?", started, "") if age < EMPTY_LOCK_GRACE_S else \
            Holder(-1, "?", started, "")


def unlock_command(directory: str | Path, holder: Holder) -> str:
    force = "--force " if holder.alive() is None else ""
    return f"kanpde unlock {force}{directory}"


def _refusal(directory: Path, flag: str, holder: Holder) -> RunDirError:
    alive = holder.alive()
    if holder.pid == -1:
        return RunDirError(f"{flag} {directory}: holds an unreadable lock {LOCK_FILE} "
                           f"({holder.started}); if no kanpde run uses it, clear it with: "
                           f"kanpde unlock --force {directory}")
    if alive is False:
        return RunDirError(f"{flag} {directory}: its lock is stale: {holder.describe()} is "
                           f"no longer running (killed?); clear it with: "
                           f"{unlock_command(directory, holder)}")
    if alive is None and holder.pid is not None:
        return RunDirError(f"{flag} {directory}: in use by {holder.describe()}; if that "
                           f"process is gone, clear it with: "
                           f"{unlock_command(directory, holder)}")
    return RunDirError(f"{flag} {directory}: in use by {holder.describe()}; wait for it to "
                       "end or choose another directory")


def _acquire(directory: Path, flag: str, retries: int = 3) -> str:
    """Create the lock exclusively; returns its token (what :func:`_release` checks)."""
    path = directory / LOCK_FILE
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        holder = read_holder(directory)
        if holder is None and retries > 0:  # released in between: try again
            return _acquire(directory, flag, retries - 1)
        raise _refusal(directory, flag, holder or Holder(None, "?", "just now", "")) \
            from None
    token = uuid.uuid4().hex
    record = {"pid": os.getpid(), "host": socket.gethostname(),
              "started": time.strftime("%Y-%m-%d %H:%M:%S"),
              "command": " ".join(sys.argv), "token": token}
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(record, fh)
        fh.flush()
        os.fsync(fh.fileno())
    return token


def _release(directory: Path, token: str) -> None:
    """Remove the lock if it is still the one this claim created."""
    holder = read_holder(directory)
    if holder is not None and holder.token == token:
        (directory / LOCK_FILE).unlink(missing_ok=True)


def check_free(directory: str | Path, *, resume: bool, flag: str = "--out",
               check_lock: bool = True, token: str | None = None) -> None:
    """Raise unless ``directory`` may take a new run (``resume`` false) or holds a run to
    continue (``resume`` true). Reads only; :func:`claim` also takes the lock.

    Args:
        directory, resume, flag: as for :func:`claim`.
        check_lock: refuse a directory another process holds (naming the holder) before
            looking at its files.
        token: the token of this process's own lock (not a refusal).

    Raises:
        RunDirError: one line naming the directory and what it holds, or its holder.
    """
    d = Path(directory)
    if d.exists() and not d.is_dir():
        raise RunDirError(f"{flag} {d}: is a file, not a directory")
    if check_lock:
        holder = read_holder(d)
        if holder is not None and (token is None or holder.token != token):
            raise _refusal(d, flag, holder)
    if resume:
        if not (d / "checkpoint.pt").is_file():
            raise RunDirError(f"--resume {d}: no checkpoint.pt in that directory")
        return
    found = run_files(d)
    if found:
        hint = f"use --resume {d} to continue it or choose another directory" \
            if flag == "--out" else "move it away or choose another directory"
        raise RunDirError(f"{flag} {d}: already holds a run ({', '.join(found)}); {hint}")


@contextmanager
def claim(directory: str | Path, *, resume: bool, flag: str = "--out",
          active: bool = True) -> Iterator[Path]:
    """Own ``directory`` for the duration of a run (see the module docstring).

    Args:
        directory: the run directory (created if needed).
        resume: the run continues the checkpoint there (else the directory must hold no
            run).
        flag: the option that named the directory, for messages.
        active: take the lock (``False``: only check, as the non-writing processes of a
            data-parallel run do).

    Yields:
        The directory.

    Raises:
        RunDirError: another process holds it, its lock is stale, it already holds a run,
            or (resume) it holds no checkpoint.
    """
    d = Path(directory)
    if not active:  # rank 0 of a data-parallel run holds the lock
        check_free(d, resume=resume, flag=flag, check_lock=False)
        yield d
        return
    if d.exists() and not d.is_dir():
        raise RunDirError(f"{flag} {d}: is a file, not a directory")
    if resume and not d.is_dir():
        raise RunDirError(f"--resume {d}: no such directory")
    d.mkdir(parents=True, exist_ok=True)
    token = _acquire(d, flag)
    try:
        check_free(d, resume=resume, flag=flag, token=token)
        yield d
    finally:
        _release(d, token)


def check_output_name(path: str | Path, flag: str) -> Path:
    """``path``, unless it is named like a run's own file (:data:`PROTECTED`).

    Raises:
        RunDirError: naming the flag, the file and why.
    """
    p = Path(path)
    if p.name in PROTECTED:
        raise RunDirError(f"{flag} {p}: '{p.name}' is the name of a run's own file, which "
                          "only that run writes; choose another file name")
    return p


def unlock(directory: str | Path, *, force: bool = False) -> str:
    """Remove a stale lock from ``directory``; returns what was done (one line).

    Raises:
        RunDirError: the directory is not locked by a dead process (the holder runs on
            this host, or on another host and ``force`` is not given).
    """
    d = Path(directory)
    holder = read_holder(d)
    if holder is None:
        if not d.is_dir():
            raise RunDirError(f"unlock {d}: no such directory")
        return f"{d} is not locked"
    alive = holder.alive()
    if alive:
        raise RunDirError(f"unlock {d}: {holder.describe()} is still running; stop it first "
                          f"(kill -TERM {holder.pid} checkpoints it)")
    if alive is None and not force:
        raise RunDirError(f"unlock {d}: held by {holder.describe()}, which cannot be checked "
                          f"from here; if it is gone, run: kanpde unlock --force {d}")
    (d / LOCK_FILE).unlink(missing_ok=True)
    return f"removed the lock of {holder.describe()} from {d}"
