"""The checkpoint file: a checksummed container, written atomically, with one generation kept.

Layout of ``checkpoint.pt``::

    KANPDE-CHECKPOINT 2 sha256=<64 hex digits>\\n     (header, ASCII)
    <the payload as written by torch.save>           (the digest is of these bytes)

:func:`write_checkpoint` writes a temporary file in the same directory, syncs it
(:mod:`kanpde.io.atomic`), keeps the checkpoint it replaces as ``checkpoint.prev.pt`` (a hard link
where the file system has them, else a copy) and moves the new file into place with
:func:`os.replace`, so at every moment ``checkpoint.pt`` is a complete file. :func:`read_checkpoint`
verifies the digest before unpickling, so a file whose bytes changed (a torn copy, a bad disk, an
edit) is refused with one line that names it and says whether the previous generation is intact.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from kanpde.io.atomic import atomic_write
from kanpde.training.config import ConfigError

MAGIC = b"KANPDE-CHECKPOINT 2 sha256="
HEADER_LENGTH = len(MAGIC) + 64 + 1
PREVIOUS = "checkpoint.prev.pt"
_HEADER = re.compile(re.escape(MAGIC) + rb"([0-9a-f]{64})\n")


class CheckpointError(ConfigError):
    """A checkpoint file is missing, damaged or not a kanpde checkpoint (one line)."""


def previous_path(path: str | Path) -> Path:
    """Where the generation before ``path`` is kept (``checkpoint.prev.pt`` beside it)."""
    path = Path(path)
    return path.with_name(PREVIOUS) if path.name == "checkpoint.pt" \
        else path.with_name(f"{path.stem}.prev{path.suffix}")


def write_checkpoint(path: str | Path, data: Mapping[str, Any]) -> Path:
    """Write ``data`` (``torch.save``-able) to ``path`` with its checksum, atomically,
    keeping the file it replaces as :func:`previous_path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(dict(data), buffer)
    body = buffer.getvalue()
    header = MAGIC + hashlib.sha256(body).hexdigest().encode("ascii") + b"\n"

    def keep_previous() -> None:
        if path.is_file():
            _keep_previous(path)

    atomic_write(path, lambda tmp: tmp.write_bytes(header + body), sync=True,
                 before_replace=keep_previous, prefix=".checkpoint-")
    return path


def _keep_previous(path: Path) -> None:
    """Make :func:`previous_path` a copy of ``path`` (``path`` itself stays in place)."""

    def link(tmp: Path) -> None:
        tmp.unlink()
        try:
            os.link(path, tmp)
        except OSError:  # no hard links here
            shutil.copy2(path, tmp)

    atomic_write(previous_path(path), link, prefix=".checkpoint-prev-")


def verify_checkpoint(path: str | Path) -> bytes:
    """The payload bytes of a checkpoint whose checksum matches.

    Raises:
        CheckpointError: no such file, no kanpde header, or a checksum mismatch (naming the
            file and the state of the previous generation).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"resume: {path}: no checkpoint found")
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise CheckpointError(f"resume: {path}: cannot read it ({err.strerror})") from err
    match = _HEADER.match(raw[:HEADER_LENGTH])
    if match is None:
        what = "it is empty" if not raw else "it has no kanpde checkpoint header"
        raise CheckpointError(f"resume: {path}: not a verifiable kanpde checkpoint ({what}; "
                              f"damaged, or written by an older kanpde){_fallback(path)}")
    body = raw[HEADER_LENGTH:]
    if hashlib.sha256(body).hexdigest() != match.group(1).decode("ascii"):
        raise CheckpointError(f"resume: {path}: damaged (its checksum does not match its "
                              f"contents){_fallback(path)}")
    return body


def _fallback(path: Path) -> str:
    """What a message about a bad ``path`` says about the previous generation."""
    prev = previous_path(path)
    if prev == path or not prev.is_file():
        return "; no previous checkpoint is kept"
    try:
        verify_checkpoint(prev)
    except CheckpointError:
        return f"; the previous checkpoint {prev} is damaged too"
    return (f"; the previous checkpoint is intact: to continue from it, "
            f"mv {prev} {path}")


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Verify and load a checkpoint written by :func:`write_checkpoint` (on the CPU).

    Raises:
        CheckpointError: see :func:`verify_checkpoint`; or the verified payload cannot be
            unpickled (one line).
    """
    body = verify_checkpoint(path)
    try:
        data = torch.load(io.BytesIO(body), map_location="cpu", weights_only=True)
    except Exception as err:  # written by an incompatible torch, or foreign content
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"resume: {path}: cannot read checkpoint ({first})") from err
    if not isinstance(data, dict):
        raise CheckpointError(f"resume: {path}: not a kanpde checkpoint (holds a "
                              f"{type(data).__name__})")
    return data


def check_complete(data: Mapping[str, Any], required: tuple[str, ...], path: str) -> None:
    """Raise unless ``data`` holds every key in ``required``.

    Raises:
        CheckpointError: naming the file and the missing keys.
    """
    missing = [k for k in required if k not in data]
    if missing:
        shown = ", ".join(missing[:6]) + (", ..." if len(missing) > 6 else "")
        raise CheckpointError(f"resume: {path}: incomplete checkpoint (missing {shown})")
