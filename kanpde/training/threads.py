"""How many CPU threads a solve uses: the cores that are actually free, or a chosen count.

torch's default (one intra-op thread per core) makes training several times slower when the
cores are shared: threads wait for each other at every parallel op while other processes hold
the cores. The automatic choice is therefore::

    threads = clamp(round(cores - load), 1, cores)

with ``cores`` the CPUs this process may run on (``os.sched_getaffinity``; ``os.cpu_count``
where that does not exist) and ``load`` the 1-minute load average (``os.getloadavg``; 0 where
unavailable). A requested count is used as given, but never above ``cores``.

:func:`apply_threads` sets ``torch.set_num_threads`` and, where torch still allows it (only
once per process, before any inter-op parallel work), ``torch.set_num_interop_threads`` to
the same count. Results are bit-for-bit reproducible only with the same thread count: blocked
reductions in torch's kernels depend on it.
"""

from __future__ import annotations

import os

import torch


def available_cores() -> int:
    """CPUs this process may run on (at least 1)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def load_average() -> float:
    """The 1-minute load average (0 where the platform has none)."""
    try:
        return float(os.getloadavg()[0])
    except (AttributeError, OSError):
        return 0.0


def choose_threads(requested: int | None = None, *, cores: int | None = None,
                   load: float | None = None) -> int:
    """The thread count for a solve.

    Args:
        requested: a fixed count (``>= 1``), or ``None`` for the cores that are free.
        cores: available CPUs (default :func:`available_cores`).
        load: 1-minute load average (default :func:`load_average`).

    Returns:
        ``min(requested, cores)``, or ``clamp(round(cores - load), 1, cores)``.

    Raises:
        ValueError: ``requested`` is not a positive integer.
    """
    if requested is not None and (isinstance(requested, bool) or not isinstance(requested, int)
                                  or requested < 1):
        raise ValueError(f"threads must be a positive integer, got {requested!r}")
    cores = available_cores() if cores is None else max(1, int(cores))
    if requested is not None:
        return min(requested, cores)
    load = load_average() if load is None else max(0.0, float(load))
    return min(cores, max(1, round(cores - load)))


def current_threads() -> int:
    """torch's intra-op thread count now."""
    return torch.get_num_threads()


def apply_threads(requested: int | None = None, *, cores: int | None = None,
                  load: float | None = None) -> int:
    """Set torch's intra-op (and, if still possible, inter-op) threads; return the count.

    Arguments as :func:`choose_threads`. The inter-op pool can be sized once per process
    only; when that has happened already it is left as it is.
    """
    threads = choose_threads(requested, cores=cores, load=load)
    torch.set_num_threads(threads)
    if torch.get_num_interop_threads() != threads:
        try:
            torch.set_num_interop_threads(threads)
        except RuntimeError:  # already set, or inter-op work has started: keep it
            pass
    return threads
