"""Error against cost: what a run reached within a time budget, and when it reached a level.

Comparing a KAN and an MLP at equal *steps* says little, because one step of each costs a
different amount of time. This module reads a run's evaluation history (the error on the
evaluation set, recorded every ``evaluation.every`` steps together with the wall time and the
process CPU time at that moment) and answers the questions of a matched-budget comparison:

* :func:`error_at`: the best error a run had reached within ``T`` seconds;
* :func:`time_to`: the time a run took to first reach an error level;
* :func:`pareto_front`: the runs no other run beats in both error and size (or cost).

The error curve is the *best error so far* (a running minimum), so it never rises: a user
who keeps the best model seen is where this curve says. Times are seconds of the run
(resumes included). ``clock="cpu"`` uses process CPU time (user + system, all threads), which
hardly depends on other jobs sharing the machine; ``clock="wall"`` uses wall time.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

CLOCKS = {"wall": ("eval_time_s", "time_s"), "cpu": ("eval_cpu_s", "cpu_s")}
"""History keys of each clock: (evaluation history, step history)."""

LEVELS = (1e-2, 1e-3, 1e-4)
"""Default relative L2 levels of :func:`time_to` tables."""


def error_curve(history: Mapping[str, Any], clock: str = "wall",
                metric: str = "l2_rel") -> tuple[np.ndarray, np.ndarray]:
    """Times and best-so-far errors of one run.

    Args:
        history: the run's history (``Result.history``): ``eval_step``, ``eval_<metric>``
            and the clock's evaluation times ``eval_time_s``/``eval_cpu_s``; runs written
            before evaluation times were recorded fall back to the step history's
            ``time_s``/``cpu_s`` at the evaluation's step (0 for step 0).
        clock: ``"wall"`` or ``"cpu"``.
        metric: ``"l2_rel"``, ``"mse"`` or ``"max_abs_err"``.

    Returns:
        ``(K,)`` times in seconds (non-decreasing) and ``(K,)`` the running minimum of the
        finite errors; empty arrays when the history has no usable evaluation.

    Raises:
        ValueError: unknown clock.
    """
    if clock not in CLOCKS:
        raise ValueError(f"clock must be one of {', '.join(CLOCKS)}, got {clock!r}")
    eval_key, step_key = CLOCKS[clock]
    err = np.asarray(history.get(f"eval_{metric}", []), dtype=np.float64)
    if eval_key in history:
        t = np.asarray(history[eval_key], dtype=np.float64)
    else:
        t = _times_from_steps(history, step_key, err.size)
    n = min(t.size, err.size)
    t, err = t[:n], err[:n]
    keep = np.isfinite(t) & np.isfinite(err)
    t, err = t[keep], err[keep]
    if not t.size:
        return t, err
    order = np.argsort(t, kind="stable")
    return t[order], np.minimum.accumulate(err[order])


def _times_from_steps(history: Mapping[str, Any], step_key: str, n: int) -> np.ndarray:
    steps = np.asarray(history.get("eval_step", []), dtype=np.int64)[:n]
    if step_key not in history or "step" not in history:
        return np.full(steps.size, np.nan)
    step_of = {int(s): float(t) for s, t in zip(history["step"], history[step_key],
                                                 strict=False)}
    # the step history's row g is taken before update g; evaluation g comes after update g-1
    return np.array([0.0 if s == 0 else step_of.get(int(s), np.nan) for s in steps])


def error_at(curve: tuple[np.ndarray, np.ndarray], budget: float) -> float:
    """Best error reached within ``budget`` seconds (NaN if nothing was evaluated by then)."""
    t, err = curve
    inside = t <= budget
    return float(err[inside][-1]) if inside.any() else math.nan


def time_to(curve: tuple[np.ndarray, np.ndarray], level: float) -> float | None:
    """Seconds until the error first reached ``level`` (``None`` if it never did)."""
    t, err = curve
    hit = np.nonzero(err <= level)[0]
    return float(t[hit[0]]) if hit.size else None


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points ``(cost, error)`` that no other point dominates.

    A point is dominated when another has a cost and an error both no larger and one of them
    smaller. Non-finite points never enter the front. Indices are returned by rising cost.
    """
    finite = [i for i, (c, e) in enumerate(points) if math.isfinite(c) and math.isfinite(e)]
    finite.sort(key=lambda i: (points[i][0], points[i][1]))
    front, best = [], math.inf
    for i in finite:
        if points[i][1] < best:
            front.append(i)
            best = points[i][1]
    return front


def budgets(totals: Sequence[float], count: int = 3) -> list[float]:
    """Time budgets at which every run can be compared: fractions of the shortest run.

    The largest budget is the shortest run's total time (all runs have been observed up
    to it); the others are that divided by 4, 16, ... Returns an empty list when no total is
    finite and positive.
    """
    ok = [t for t in totals if t is not None and math.isfinite(t) and t > 0]
    if not ok:
        return []
    shortest = min(ok)
    return [shortest / 4**i for i in reversed(range(count))]


__all__ = ["CLOCKS", "LEVELS", "error_curve", "error_at", "time_to", "pareto_front",
           "budgets"]
