"""The tables of ``kanpde compare``: final errors over seeds, and errors at matched budgets.

Equal *steps* is not an equal budget (one KAN step costs more than one MLP step), so next to
the final numbers a comparison reports, per solver and as medians over its seeds:

* the best error reached within the same wall time and the same CPU time ``T`` (budgets are
  fractions of the shortest run, so every run was observed up to every ``T``);
* the time each solver took to reach the error levels 1e-2, 1e-3, 1e-4 (relative L2);
* the runs on the error-against-parameters Pareto front.

Only finished runs enter these statistics (:func:`split_finished`); interrupted ones are
listed apart with the command that resumes each. Systems get a table of per-field errors
side by side, and no table names a winner from the aggregate alone. A problem without a
solution has no error columns ("no reference"); its solvers are ranked by the validation
loss (:mod:`kanpde.training.diagnostics`).

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


UNFINISHED = ("interrupted",)
"""Statuses of runs that stopped before their end and can be resumed."""


def split_finished(records: Sequence[Mapping[str, Any]]
                   ) -> tuple[list[Mapping[str, Any]], list[Mapping[str, Any]]]:
    """``(finished, unfinished)`` runs: an interrupted run is unfinished; every other
    status (ok, max_time, diverged, no_metrics) is a finished run's outcome."""
    finished = [r for r in records if r.get("status") not in UNFINISHED]
    return finished, [r for r in records if r.get("status") in UNFINISHED]


def resume_command(problem_path: str, run_dir: str) -> str:
    """``kanpde solve PROBLEM --resume DIR``: the command that continues a stopped run."""
    import shlex

    return f"kanpde solve {shlex.quote(str(problem_path))} --resume {shlex.quote(str(run_dir))}"


def _no_reference(rows: Sequence[Mapping[str, Any]]) -> bool:
    return any(r.get("reference") == "none" for r in rows)


def markdown(problem: str, rows: Sequence[Mapping[str, Any]],
             matched: Mapping[str, Any] | None = None,
             unfinished: Sequence[Mapping[str, Any]] = (),
             problem_path: str | None = None) -> str:
    """``compare.md``: the final numbers of the finished runs, per-field errors for systems,
    the matched-budget tables when given, and the unfinished runs (``unfinished``: their
    summaries with ``run_dir``) with the commands that resume them."""
    cell = spread_cell
    noref = _no_reference(rows)
    fields = list(dict.fromkeys(f for r in rows for f in (r.get("fields") or {})))
    if noref:
        rows = sorted(rows, key=lambda r: (r["validation_loss"]["median"] is None,
                                           r["validation_loss"]["median"] or 0.0))
    l2_head = "l2_rel (mean over fields)" if len(fields) > 1 else "l2_rel"
    lines = [f"# {problem}: solver comparison", "",
             "median [min–max] over the finished seeds", ""]
    if noref:
        lines += ["The problem has no exact solution or reference: the solvers are ranked "
                  "by their PINN loss on fresh validation points (lowest first).", ""]
    region = next((r["region"] for r in rows if r.get("region")), None)
    if region and not noref:
        lines += [f"Every error is measured on a part of the evaluation set ({region}).", ""]
    gauge = next((r["gauge"] for r in rows if r.get("gauge")), [])
    if gauge and not noref:
        lines += [f"Gauge fields ({', '.join(gauge)}) are measured up to a constant: the mean "
                  "difference to the solution is removed first.", ""]
    lines += [f"| solver | model | params | seeds | {l2_head} | max abs err | validation loss "
              "| wall time s | CPU time s | steps | status |",
              "|:---|:---|---:|---:|---:|---:|---:|---:|---:|---:|:---|"]
    for r in rows:
        err = ("no reference", "no reference") if noref else \
            (cell(r['l2_rel'], '.3e'), cell(r['max_abs_err'], '.3e'))
        lines.append(f"| {r['solver']} | {r['model']} | {r['n_params']} | {len(r['seeds'])} | "
                     f"{err[0]} | {err[1]} | "
                     f"{cell(r.get('validation_loss') or {}, '.3e')} | "
                     f"{cell(r['wall_time_s'], '.1f')} | "
                     f"{cell(r.get('cpu_time_s') or {}, '.1f')} | {cell(r['steps'], '.0f')} | "
                     f"{', '.join(r['status'])} |")
    if len(fields) > 1 and not noref:
        lines += _field_lines(rows, fields)
    if matched and not noref:
        lines += _matched_lines(matched, mean=len(fields) > 1)
    if unfinished:
        lines += ["", "## Unfinished runs (not in the statistics above)", "",
                  "| solver | seed | status | steps | resume with |", "|:---|---:|:---|---:|:---|"]
        for u in unfinished:
            cmd = resume_command(problem_path or problem, str(u.get("run_dir")))
            lines.append(f"| {u.get('solver')} | {u.get('seed')} | {u.get('status')} | "
                         f"{u.get('steps')} | `{cmd}` |")
    load = load_average()
    if load is not None and load[0] > load[1]:
        lines += ["", f"Load average {load[0]:.1f} on {load[1]} cores when this table was "
                      "written: wall times are inflated by other jobs; compare CPU times."]
    return "\n".join(lines) + "\n"


def _field_lines(rows: Sequence[Mapping[str, Any]], fields: Sequence[str]) -> list[str]:
    """The per-field errors of a system side by side (relative L2, then max abs error)."""
    lines = ["", "## Errors per field", "",
             "Each field measured on its own scale (gauge fields up to a constant); read "
             "these, not the mean, to compare the solvers field by field.", ""]
    for metric, label in (("l2_rel", "relative L2 error"), ("max_abs_err", "max abs error")):
        lines += ["| solver | " + " | ".join(f"{f}: {label}" for f in fields) + " |",
                  "|:---|" + "---:|" * len(fields)]
        for r in rows:
            per = r.get("fields") or {}
            lines.append(f"| {r['solver']} | " + " | ".join(
                spread_cell((per.get(f) or {}).get(metric) or {}, ".3e") for f in fields) + " |")
        lines.append("")
    return lines[:-1]


def _matched_lines(matched: Mapping[str, Any], mean: bool = False) -> list[str]:
    """The matched-budget tables; ``mean``: the relative L2 error is the mean over fields
    (a system), which the titles say."""
    what = "relative L2 error (mean over fields)" if mean else "relative L2 error"
    lines: list[str] = []
    for clock in ("wall", "cpu"):
        block = matched.get(clock) or {}
        ts = block.get("budgets") or []
        if not ts:
            continue
        label = CLOCK_LABELS[clock]
        lines += ["", f"## Best {what} within equal {label}", "",
                  "| solver | " + " | ".join(f"T = {t:.3g} s" for t in ts) + " |",
                  "|:---|" + "---:|" * len(ts)]
        for s, v in block["solvers"].items():
            lines.append(f"| {s} | " + " | ".join(cell_or_na(x) for x in v["error_at"]) + " |")
        levels = list(next(iter(block["solvers"].values()))["time_to"]) if block["solvers"] \
            else []
        title = f"{label[0].upper() + label[1:]} to reach a {what} (median s)"
        lines += ["", f"## {title}", "",
                  "| solver | " + " | ".join(f"≤ {lv}" for lv in levels) + " |",
                  "|:---|" + "---:|" * len(levels)]
        for s, v in block["solvers"].items():
            lines.append(f"| {s} | " + " | ".join(
                "never" if v["time_to"][lv] is None else f"{v['time_to'][lv]:.3g}"
                for lv in levels) + " |")
    front = matched.get("pareto") or []
    if front:
        lines += ["", "## Error against parameters: the Pareto front"
                  + (" (mean relative L2 over fields)" if mean else ""), "",
                  "| solver | seed | params | l2_rel |", "|:---|---:|---:|---:|"]
        for p in front:
            lines.append(f"| {p['solver']} | {p['seed']} | {p['n_params']} | "
                         f"{p['l2_rel']:.3e} |")
    return lines


def cell_or_na(s: Mapping[str, float | None]) -> str:
    """A :func:`~kanpde.io.aggregate.spread_cell` in scientific notation."""
    return spread_cell(s, ".2e")


__all__ = ["matched_budgets", "markdown", "load_average", "split_finished", "resume_command",
           "UNFINISHED"]
