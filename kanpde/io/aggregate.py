"""Many runs of one configuration (seeds) summarised as medians and ranges.

Used by ``kanpde compare`` and the ``kanpde bench`` tables: :func:`spread` of one quantity,
:func:`spread_cell` for a table cell, :func:`aggregate` for one row per solver.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

SUMMARY_KEYS = ("l2_rel", "max_abs_err", "mse", "wall_time_s", "cpu_time_s", "steps")
"""The summary numbers :func:`aggregate` spreads over seeds."""


def spread(values: Iterable[float | None]) -> dict[str, float | None]:
    """Median, min and max of the finite values (all ``None`` when there are none)."""
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not vals:
        return {"median": None, "min": None, "max": None}
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals)}


def spread_cell(s: Mapping[str, float | None], fmt: str = ".2e") -> str:
    """``median [min–max]`` (just the value when all agree; ``n/a`` when there is none)."""
    if s.get("median") is None:
        return "n/a"
    if s["min"] == s["max"]:
        return format(s["median"], fmt)
    return f"{format(s['median'], fmt)} [{format(s['min'], fmt)}–{format(s['max'], fmt)}]"


def aggregate(records: Sequence[Mapping[str, Any]],
              keys: Sequence[str] = SUMMARY_KEYS) -> list[dict[str, Any]]:
    """One row per ``solver`` (in order of appearance): model, parameters, seeds, statuses and
    the :func:`spread` of each of ``keys`` over the solver's runs."""
    rows = []
    for solver in dict.fromkeys(r["solver"] for r in records):
        runs = [r for r in records if r["solver"] == solver]
        rows.append({
            "solver": solver, "model": runs[0].get("model"), "n_params": runs[0].get("n_params"),
            "seeds": [r.get("seed") for r in runs],
            "status": sorted({str(r.get("status")) for r in runs}),
            **{key: spread(r.get(key) for r in runs) for key in keys},
        })
    return rows


__all__ = ["SUMMARY_KEYS", "spread", "spread_cell", "aggregate"]
