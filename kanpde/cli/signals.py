"""Stopping a run from outside: SIGTERM is handled like Ctrl-C.

Batch schedulers (SLURM, Kubernetes, systemd) stop a job with SIGTERM and kill it a grace
period later. While :func:`stop_signals` is active, SIGTERM raises :class:`Terminated`, a
``KeyboardInterrupt``, at the point the process is running: the trainer rolls back to the
last consistent state and writes its checkpoint exactly as for Ctrl-C, and the command
exits with status 143 (128 + SIGTERM) after printing the command that resumes the run.
A second SIGTERM while the run is stopping is ignored, so the checkpoint is finished.
The previous handlers are restored when the block ends.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

EXIT_INTERRUPTED = 130  # 128 + SIGINT
EXIT_TERMINATED = 143  # 128 + SIGTERM


class Terminated(KeyboardInterrupt):
    """Raised by the SIGTERM handler of :func:`stop_signals`."""


@dataclass
class StopRecord:
    """Which signal stopped the run (``None``: none did)."""

    signal: str | None = None

    @property
    def exit_code(self) -> int:
        """130 for Ctrl-C, 143 for SIGTERM."""
        return EXIT_TERMINATED if self.signal == "SIGTERM" else EXIT_INTERRUPTED


@contextmanager
def stop_signals() -> Iterator[StopRecord]:
    """Turn SIGTERM into :class:`Terminated` and record SIGINT/SIGTERM for the block.

    Outside the main thread (where handlers cannot be installed) nothing is changed.

    Yields:
        The :class:`StopRecord` of the block.
    """
    record = StopRecord()
    if threading.current_thread() is not threading.main_thread():
        yield record
        return

    def on_term(signum, frame):
        if record.signal == "SIGTERM":  # already stopping: let the checkpoint be written
            return
        record.signal = "SIGTERM"
        raise Terminated("SIGTERM")

    def on_int(signum, frame):
        record.signal = record.signal or "SIGINT"
        raise KeyboardInterrupt

    old_term = signal.signal(signal.SIGTERM, on_term)
    old_int = signal.signal(signal.SIGINT, on_int) \
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler else None
    try:
        yield record
    finally:
        signal.signal(signal.SIGTERM, old_term)
        if old_int is not None:
            signal.signal(signal.SIGINT, old_int)
