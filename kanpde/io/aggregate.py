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
    """One row per ``solver`` (in order of appearance): model, parameters, seeds, statuses
    (:func:`status_text`), the :func:`spread` of each of ``keys`` over the solver's runs,
    of the validation loss (``validation_loss``) and of every per-field error
    (``fields``: ``{field: {metric: spread}}``), ``reference`` (``"none"`` for a
    problem without a solution), and the ``region`` and ``gauge`` fields the errors were
    measured with (``None`` and ``[]`` when not used)."""
    rows = []
    for solver in dict.fromkeys(r["solver"] for r in records):
        runs = [r for r in records if r["solver"] == solver]
        rows.append({
            "solver": solver, "model": runs[0].get("model"), "n_params": runs[0].get("n_params"),
            "seeds": [r.get("seed") for r in runs],
            "status": sorted({status_text(r) for r in runs}),
            **{key: spread(r.get(key) for r in runs) for key in keys},
            "validation_loss": spread((r.get("validation") or {}).get("loss") for r in runs),
            "reference": "none" if any(r.get("reference") == "none" for r in runs) else "yes",
            "fields": _field_spreads(runs),
            "region": next((r["region"] for r in runs if r.get("region")), None),
            "gauge": next((r["gauge"] for r in runs if r.get("gauge")), []),
        })
    return rows


def field_names(summary: Mapping[str, Any]) -> list[str]:
    """The fields of a run's per-field errors in the problem's order (``field_names``; the
    keys of ``fields`` otherwise)."""
    fields = summary.get("fields") or {}
    order = [f for f in summary.get("field_names") or [] if f in fields]
    return order + [f for f in fields if f not in order]


def _field_spreads(runs: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """``{field: {metric: spread}}`` of the runs' per-field errors (``summary["fields"]``)."""
    names = list(dict.fromkeys(f for r in runs for f in field_names(r)))
    metrics = ("l2_rel", "max_abs_err", "mse")
    return {f: {k: spread(((r.get("fields") or {}).get(f) or {}).get(k) for r in runs)
                for k in metrics} for f in names}


def capped_stages(summary: Mapping[str, Any]) -> list[str]:
    """``["stage 3 stopped by its time cap at 1131/2000", ...]``: the stages of a run that
    its stage time cap (``max_time_s`` of the stage) cut short, while the run went on."""
    if summary.get("status") == "max_time":  # the run's own cap: the status says it
        return []
    return [f"stage {st.get('index')} stopped by its time cap at {st.get('steps_run')}/"
            f"{st.get('steps_planned')}"
            for st in summary.get("stages") or [] if st.get("stopped") == "max_time"]


def status_text(summary: Mapping[str, Any]) -> str:
    """A run's status as tables and the one-line summary show it: ``ok``, or ``ok (stage 3
    stopped by its time cap at 1131/2000)`` when a stage time cap cut a stage short, or
    ``ok (last stage 2 stalled: not converged)`` when the run ended on a stall (a tolerance
    met while a loss term had not come down; the stage's ``reason`` says which)."""
    notes = capped_stages(summary)
    stages = summary.get("stages") or []
    if summary.get("status") == "ok" and stages and stages[-1].get("stopped") == "stalled":
        notes.append(f"last stage {stages[-1].get('index')} stalled: not converged")
    status = str(summary.get("status"))
    return f"{status} ({'; '.join(notes)})" if notes else status


def error_text(summary: Mapping[str, Any]) -> str:
    """The errors of a run in one line: ``l2_rel ... | max_abs_err ... | mse ...`` with the
    per-field relative errors of a system, or ``no reference | validation loss ...`` for
    a problem without a solution."""
    def g(v: Any) -> str:
        return "n/a" if v is None else format(v, ".3e")

    if summary.get("reference") == "none":
        loss = (summary.get("validation") or {}).get("loss")
        return f"no reference | validation loss {g(loss)}"
    fields = summary.get("fields") or {}
    per = ""
    if len(fields) > 1:
        per = " (" + ", ".join(f"{f} {g(fields[f].get('l2_rel'))}"
                               for f in field_names(summary)) + ")"
    region = " [on its region]" if summary.get("region") else ""
    return (f"l2_rel {g(summary.get('l2_rel'))}{per}{region} | "
            f"max_abs_err {g(summary.get('max_abs_err'))} | mse {g(summary.get('mse'))}")


__all__ = ["SUMMARY_KEYS", "spread", "spread_cell", "aggregate", "capped_stages", "field_names",
           "status_text", "error_text"]
