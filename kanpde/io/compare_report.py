"""The tables of ``kanpde compare``: final errors over seeds, and errors at matched budgets.

Equal *steps* is not an equal budget (one KAN step costs more than one MLP step), so next to
the final numbers a comparison reports, per solver and as medians over its seeds:

* the best error reached within the same wall time and the same CPU time ``T`` (budgets are
  fractions of the shortest run, so every run was observed up to every ``T``);
* the time each solver took to reach the error levels 1e-2, 1e-3, 1e-4 (relative L2);
* the runs on the error-against-parameters Pareto front.

See :mod:`kanpde.io.curves` for the curves these numbers are read from.
"""

from __future__ import annotations

import math
import os
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from kanpde.io.aggregate import spread, spread_cell
from kanpde.io.curves import LEVELS, budgets, error_at, error_curve, pareto_front, time_to

CLOCK_LABELS = {"wall": "wall time", "cpu": "CPU time"}
TOTAL_KEYS = {"wall": "wall_time_s", "cpu": "cpu_time_s"}


def _median_or_never(values: Sequence[float | None]) -> float | None:
    """Median time over seeds, a seed that never got there counting as infinitely late
    (``None`` when at least half never did)."""
    if not values:
        return None
    keyed = sorted(math.inf if v is None else float(v) for v in values)
    med = statistics.median(keyed)
    return None if math.isinf(med) else med


def matched_budgets(runs: Sequence[Mapping[str, Any]],
                    levels: Sequence[float] = LEVELS) -> dict[str, Any]:
    """Errors at equal budgets and times to error levels, per solver (medians over seeds).

    Args:
        runs: one dict per (solver, seed) run with ``summary`` (its summary dict) and
            ``history`` (its ``Result.history``).
        levels: relative L2 levels for the time-to-level table.

    Returns:
        ``{"wall": block, "cpu": block, "pareto": [...]}`` where a block is
        ``{"budgets": [T, ...], "solvers": {solver: {"error_at": [spread, ...],
        "time_to": {str(level): median seconds or None}}}}`` and ``pareto`` lists the
        ``(solver, seed, n_params, l2_rel)`` of the runs on the error-against-parameters
        front.
    """
    solvers = list(dict.fromkeys(str(r["summary"].get("solver")) for r in runs))
    out: dict[str, Any] = {}
    for clock in ("wall", "cpu"):
        curves = [(str(r["summary"].get("solver")), error_curve(r["history"], clock))
                  for r in runs]
        totals = [float(c[0][-1]) if c[0].size else math.nan for _, c in curves]
        ts = budgets(totals)
        block: dict[str, Any] = {"budgets": ts, "solvers": {}}
        for s in solvers:
            mine = [c for name, c in curves if name == s]
            block["solvers"][s] = {
                "error_at": [spread(error_at(c, t) for c in mine) for t in ts],
                "time_to": {f"{lv:g}": _median_or_never([time_to(c, lv) for c in mine])
                            for lv in levels},
            }
        out[clock] = block
    pts = [(float(r["summary"].get("n_params") or math.nan),
            float(r["summary"].get("l2_rel") if r["summary"].get("l2_rel") is not None
                  else math.nan)) for r in runs]
    out["pareto"] = [{"solver": runs[i]["summary"].get("solver"),
                      "seed": runs[i]["summary"].get("seed"),
                      "n_params": runs[i]["summary"].get("n_params"),
                      "l2_rel": runs[i]["summary"].get("l2_rel")} for i in pareto_front(pts)]
    return out


def load_average() -> tuple[float, int] | None:
    """The 1-minute load average and the number of usable cores (``None`` where unknown)."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return load, int(cores or 1)


def markdown(problem: str, rows: Sequence[Mapping[str, Any]],
             matched: Mapping[str, Any] | None = None) -> str:
    """``compare.md``: the final numbers and, when given, the matched-budget tables."""
    cell = spread_cell
    lines = [f"# {problem}: solver comparison", "",
             "median [min–max] over seeds", "",
             "| solver | model | params | seeds | l2_rel | max abs err | wall time s "
             "| CPU time s | steps | status |",
             "|:---|:---|---:|---:|---:|---:|---:|---:|---:|:---|"]
    for r in rows:
        lines.append(f"| {r['solver']} | {r['model']} | {r['n_params']} | {len(r['seeds'])} | "
                     f"{cell(r['l2_rel'], '.3e')} | {cell(r['max_abs_err'], '.3e')} | "
                     f"{cell(r['wall_time_s'], '.1f')} | "
                     f"{cell(r.get('cpu_time_s') or {}, '.1f')} | {cell(r['steps'], '.0f')} | "
                     f"{', '.join(r['status'])} |")
    if matched:
        lines += _matched_lines(matched)
    load = load_average()
    if load is not None and load[0] > load[1]:
        lines += ["", f"Load average {load[0]:.1f} on {load[1]} cores when this table was "
                      "written: wall times are inflated by other jobs; compare CPU times."]
    return "\n".join(lines) + "\n"


def _matched_lines(matched: Mapping[str, Any]) -> list[str]:
    lines: list[str] = []
    for clock in ("wall", "cpu"):
        block = matched.get(clock) or {}
        ts = block.get("budgets") or []
        if not ts:
            continue
        label = CLOCK_LABELS[clock]
        lines += ["", f"## Best relative L2 error within equal {label}", "",
                  "| solver | " + " | ".join(f"T = {t:.3g} s" for t in ts) + " |",
                  "|:---|" + "---:|" * len(ts)]
        for s, v in block["solvers"].items():
            lines.append(f"| {s} | " + " | ".join(cell_or_na(x) for x in v["error_at"]) + " |")
        levels = list(next(iter(block["solvers"].values()))["time_to"]) if block["solvers"] \
            else []
        title = f"{label[0].upper() + label[1:]} to reach a relative L2 error (median s)"
        lines += ["", f"## {title}", "",
                  "| solver | " + " | ".join(f"≤ {lv}" for lv in levels) + " |",
                  "|:---|" + "---:|" * len(levels)]
        for s, v in block["solvers"].items():
            lines.append(f"| {s} | " + " | ".join(
                "never" if v["time_to"][lv] is None else f"{v['time_to'][lv]:.3g}"
                for lv in levels) + " |")
    front = matched.get("pareto") or []
    if front:
        lines += ["", "## Error against parameters: the Pareto front", "",
                  "| solver | seed | params | l2_rel |", "|:---|---:|---:|---:|"]
        for p in front:
            lines.append(f"| {p['solver']} | {p['seed']} | {p['n_params']} | "
                         f"{p['l2_rel']:.3e} |")
    return lines


def cell_or_na(s: Mapping[str, float | None]) -> str:
    """A :func:`~kanpde.io.aggregate.spread_cell` in scientific notation."""
    return spread_cell(s, ".2e")


__all__ = ["matched_budgets", "markdown", "load_average"]
