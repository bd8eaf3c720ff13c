"""Figures of a run and of a comparison (matplotlib, no pyplot state).

Figures are built as :class:`matplotlib.figure.Figure` objects and saved directly (PNG via
the Agg canvas), so nothing touches pyplot's global figure manager or the backend choice.

:func:`plot_result` writes

* ``solution.png``: one row per field. For 2-D problems (space, or 1+1-D space-time with
  ``x`` horizontal and ``t`` vertical): prediction | reference | ``|error|`` maps, drawn with
  ``tripcolor`` on the evaluation points (on the structured triangulation of a grid
  evaluation set, so masked grids such as an L-shape keep their shape; on the Delaunay
  triangulation of scattered points). For 1-D: prediction and reference against ``x``, and
  ``|error|`` (log scale). For ``d > 2`` the stored points are scattered in the volume and no
  slice is available: a parity plot (prediction against reference), ``|error|`` against
  the distance ``|x - c|`` from the centre of the points' bounding box, and a histogram of
  ``|error|`` (log bins).
* ``history.png``: the loss history (total and per term ``loss/<term>``, log scale; stage
  boundaries from ``summary["stages"]`` as dashed lines labelled with the optimiser, at
  each stage's ``start_step`` or else the sum of the earlier stages' ``steps_run``; KAN grid
  events from ``summary["grid_events"]`` (``step``, ``event``, ``grid_size``) as dotted
  lines), and the evaluation history ``eval_l2_rel`` (and ``eval_max_abs_err``; for systems
  also every field's ``eval_l2_rel/<field>``) when
  recorded.

:func:`plot_comparison` (from :mod:`kanpde.io.compare_figure`) draws the ``kanpde compare``
figure.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.tri import Triangulation

from kanpde.io.mesh_export import structured_cells
from kanpde.io.results import Result

DPI = 110
PANEL = (4.2, 3.4)  # inches per panel (width, height)


def _save(fig: Figure, path: Path) -> Path:
    from kanpde.io.rundir import check_output_name

    check_output_name(path, "plot")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, format="png")
    return path


def plot_result(result: Result, out_dir: str | os.PathLike, *,
                scales: Sequence[tuple[float, float, float]] | None = None) -> list[Path]:
    """Write ``solution.png`` (when the result holds fields) and ``history.png`` (when it
    holds a loss or evaluation history) into ``out_dir``.

    Args:
        result: the run.
        out_dir: where the figures go.
        scales: per field ``(vmin, vmax, error_max)`` colour limits of the maps, so that
            several runs' figures share one scale (see :func:`shared_scales`); default: each
            figure its own.

    Returns:
        The paths written.
    """
    out = Path(out_dir)
    written = []
    if result.points is not None and result.prediction is not None:
        written.append(_save(solution_figure(result, scales), out / "solution.png"))
    if any(k == "loss" or k.startswith("loss/") or k.startswith("eval_")
           for k in result.history):
        written.append(_save(history_figure(result), out / "history.png"))
    return written


# ------------------------------------------------------------------------- solution --------

def _columns(arr: np.ndarray | None, n: int) -> np.ndarray | None:
    if arr is None:
        return None
    arr = np.asarray(arr, dtype=np.float64)
    return arr.reshape(n, -1)


def shared_scales(results: Sequence[Result]) -> list[tuple[float, float, float]]:
    """Per field ``(vmin, vmax, error_max)`` over several runs of one problem (finite values
    of their predictions and references, and of their absolute errors)."""
    out = []
    fields = max((np.asarray(r.prediction).reshape(len(r.points), -1).shape[1]
                  for r in results if r.prediction is not None and r.points is not None),
                 default=0)
    for j in range(fields):
        vals, errs = [], []
        for r in results:
            if r.prediction is None or r.points is None:
                continue
            p = _columns(r.prediction, len(r.points))[:, j]
            vals.append(p)
            if r.reference is not None:
                ref = _columns(r.reference, len(r.points))[:, j]
                vals.append(ref)
                errs.append(np.abs(p - ref))
        v = np.concatenate(vals) if vals else np.zeros(1)
        e = np.concatenate(errs) if errs else np.zeros(1)
        v, e = v[np.isfinite(v)], e[np.isfinite(e)]
        out.append((float(v.min()) if v.size else 0.0, float(v.max()) if v.size else 1.0,
                    float(e.max()) if e.size and e.max() > 0 else 1.0))
    return out


def solution_figure(result: Result,
                    scales: Sequence[tuple[float, float, float]] | None = None) -> Figure:
    """The ``solution.png`` figure (see the module docstring); ``scales`` as in
    :func:`plot_result`."""
    pts = np.asarray(result.points, dtype=np.float64)
    pts = pts[:, None] if pts.ndim == 1 else pts
    n, d = pts.shape
    pred = _columns(result.prediction, n)
    ref = _columns(result.reference, n)
    coords, fields = result.coord_names(), result.field_names()
    rows = pred.shape[1]
    ncols = 2 if d == 1 else 3
    fig = Figure(figsize=(ncols * PANEL[0], rows * PANEL[1]), layout="constrained")
    axes = fig.subplots(rows, ncols, squeeze=False)
    title = result.summary.get("problem", "")
    model = result.summary.get("solver") or result.summary.get("model", "")
    if title or model:
        fig.suptitle(f"{title}  {model}".strip())
    tri = _triangulation(pts) if d == 2 else None
    for j in range(rows):
        p = pred[:, j]
        r = ref[:, j] if ref is not None else None
        scale = scales[j] if scales is not None and j < len(scales) else None
        if d == 1:
            _line_row(axes[j], pts[:, 0], p, r, coords[0], fields[j], scale)
        elif d == 2:
            _map_row(fig, axes[j], tri, p, r, coords, fields[j], result.time is not None,
                     scale)
        else:
            _scatter_row(axes[j], pts, p, r, fields[j])
    return fig


def _triangulation(pts: np.ndarray) -> Triangulation | np.ndarray:
    """The grid's triangulation, else Delaunay; the points themselves when neither exists
    (fewer than three distinct or all collinear points): then a scatter plot is drawn."""
    cells = structured_cells(pts)
    if cells is not None:
        return Triangulation(pts[:, 0], pts[:, 1], cells[1])
    try:
        return Triangulation(pts[:, 0], pts[:, 1])  # Delaunay of scattered points
    except (RuntimeError, ValueError):
        return pts


def _line_row(axes, x: np.ndarray, p: np.ndarray, r: np.ndarray | None, coord: str,
              name: str, scale: tuple[float, float, float] | None = None) -> None:
    order = np.argsort(x, kind="stable")
    x = x[order]
    ax = axes[0]
    ax.plot(x, p[order], label="prediction", lw=1.5)
    if r is not None:
        ax.plot(x, r[order], "--", label="reference", lw=1.2)
    ax.set(xlabel=coord, ylabel=name, title=f"{name}")
    ax.legend(fontsize="small")
    ax = axes[1]
    if r is not None:
        err = np.abs(p - r)[order]
        ax.semilogy(x, np.where(err > 0, err, np.nan), lw=1.0, color="C3")
        ax.set(xlabel=coord, ylabel=f"|{name} error|", title=f"|error|, max {err.max():.2e}")
        if scale is not None:  # one error axis for every run of a comparison
            positive = err[err > 0]
            low = float(positive.min()) if positive.size else scale[2] * 1e-6
            ax.set_ylim(min(low, scale[2]) * 0.5, scale[2] * 2)
    else:
        ax.set_axis_off()


def _map_row(fig: Figure, axes, tri: Triangulation | np.ndarray, p: np.ndarray,
             r: np.ndarray | None, coords: Sequence[str], name: str, space_time: bool,
             scale: tuple[float, float, float] | None = None) -> None:
    both = p if r is None else np.concatenate([p, r])
    finite = both[np.isfinite(both)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if scale is not None:
        lo, hi = scale[0], scale[1]
    panels = [(p, f"{name} prediction", "viridis", lo, hi)]
    if r is not None:
        err = np.abs(p - r)
        panels.append((r, f"{name} reference", "viridis", lo, hi))
        emax = float(np.nanmax(err)) if np.isfinite(err).any() else 1.0
        panels.append((err, f"|{name} error|, max {np.nanmax(err):.2e}", "magma", 0.0,
                       scale[2] if scale is not None else emax))
    for ax, (values, label, cmap, vmin, vmax) in zip(axes, panels, strict=False):
        if isinstance(tri, Triangulation):
            art = ax.tripcolor(tri, values, shading="gouraud", cmap=cmap, vmin=vmin,
                               vmax=vmax)
        else:
            art = ax.scatter(tri[:, 0], tri[:, 1], c=values, s=12, cmap=cmap, vmin=vmin,
                             vmax=vmax)
        fig.colorbar(art, ax=ax, shrink=0.9)
        ax.set(xlabel=coords[0], ylabel=coords[1], title=label)
        if not space_time:
            ax.set_aspect("equal")
    for ax in axes[len(panels):]:
        ax.set_axis_off()


def _scatter_row(axes, pts: np.ndarray, p: np.ndarray, r: np.ndarray | None,
                 name: str) -> None:
    if r is None:
        axes[0].hist(p[np.isfinite(p)], bins=50)
        axes[0].set(xlabel=name, ylabel="count", title=f"{name} prediction")
        axes[1].set_axis_off()
        axes[2].set_axis_off()
        return
    ax = axes[0]
    ax.scatter(r, p, s=3, alpha=0.5)
    finite = np.concatenate([p, r])
    finite = finite[np.isfinite(finite)]
    if finite.size:
        ax.plot([finite.min(), finite.max()], [finite.min(), finite.max()], "k--", lw=0.8)
    ax.set(xlabel=f"{name} reference", ylabel=f"{name} prediction", title="parity")
    err = np.abs(p - r)
    centre = 0.5 * (pts.min(axis=0) + pts.max(axis=0))
    radius = np.linalg.norm(pts - centre, axis=1)
    ax = axes[1]
    ax.scatter(radius, np.where(err > 0, err, np.nan), s=3, alpha=0.5, color="C3")
    ax.set_yscale("log")
    ax.set(xlabel="|x - centre|", ylabel=f"|{name} error|",
           title=f"|error| vs radius, max {np.nanmax(err):.2e}")
    ax = axes[2]
    pos = err[np.isfinite(err) & (err > 0)]
    if pos.size:
        lo, hi = math.log10(pos.min()), math.log10(pos.max())
        bins = np.logspace(lo, hi + 1e-9 if hi > lo else lo + 1, 40)
        ax.hist(pos, bins=bins, color="C3")
        ax.set_xscale("log")
    ax.set(xlabel=f"|{name} error|", ylabel="count", title="error histogram")


# ------------------------------------------------------------------------- history ---------

def _positive(y: np.ndarray) -> np.ndarray:
    y = np.asarray(y, dtype=np.float64)
    return np.where(np.isfinite(y) & (y > 0), y, np.nan)


def _stage_starts(summary: Mapping[str, Any]) -> list[tuple[float, str]]:
    """``(start_step, label)`` of every stage after the first."""
    stages = summary.get("stages") or []
    starts, step = [], 0.0
    for i, stage in enumerate(stages):
        if not isinstance(stage, Mapping):
            continue
        start = stage.get("start_step", step)
        start = step if start is None else float(start)
        if i > 0:
            starts.append((start, str(stage.get("optimizer", f"stage {i}"))))
        run = stage.get("steps_run", stage.get("steps_planned", 0)) or 0
        step = start + float(run)
    return starts


def _grid_events(summary: Mapping[str, Any]) -> list[tuple[float, str]]:
    """``(step, label)`` of the KAN grid events in ``summary["grid_events"]``."""
    out = []
    for ev in summary.get("grid_events") or []:
        if isinstance(ev, Mapping) and ev.get("step") is not None:
            sizes = ev.get("grid_size")
            size = sizes[0] if isinstance(sizes, list) and len(set(sizes)) == 1 else sizes
            label = str(ev.get("event", "grid")) + (f" G={size}" if size is not None else "")
            out.append((float(ev["step"]), label))
    return out


def history_figure(result: Result) -> Figure:
    """The ``history.png`` figure (see the module docstring)."""
    h = result.history
    has_eval = "eval_l2_rel" in h or "eval_max_abs_err" in h
    fig = Figure(figsize=((2 if has_eval else 1) * PANEL[0] * 1.3, PANEL[1] * 1.45),
                 layout="constrained")
    axes = fig.subplots(1, 2 if has_eval else 1, squeeze=False)[0]
    ax = axes[0]
    weights = result.summary.get("weights") or {}
    losses = [k for k in h if k == "loss" or k.startswith("loss/")]
    for key in losses:
        y = _positive(h[key])
        step = np.asarray(h.get("step", np.arange(y.size)), dtype=np.float64)
        if step.size != y.size:
            step = np.arange(y.size, dtype=np.float64)
        total = key == "loss"
        term = key.split("/", 1)[-1]
        w = weights.get(term)
        label = ("total (weighted sum)" if total else
                 term + (f" (weight {w:.3g})" if isinstance(w, int | float) else ""))
        ax.plot(step, y, lw=1.6 if total else 1.0, color="k" if total else None,
                label=label, zorder=3 if total else 2)
    if losses:
        ax.set_yscale("log")
        ax.legend(fontsize="x-small", loc="upper center", bbox_to_anchor=(0.5, -0.2),
                  ncols=2, frameon=False)
    ax.set(xlabel="step", ylabel="loss", title="loss: terms unweighted, total weighted")
    marks = [(s, label, "0.5", "--") for s, label in _stage_starts(result.summary)]
    marks += [(s, label, "tab:purple", ":") for s, label in _grid_events(result.summary)]
    for a in axes:
        for start, _, color, style in marks:
            a.axvline(start, color=color, ls=style, lw=0.9)
    if marks:  # labels as ticks of a top axis: rotated, never under the legend
        merged: dict[float, list[str]] = {}
        for start, label, _, _ in marks:  # one label per step ("lbfgs; extend G=10")
            merged.setdefault(start, []).append(label)
        top = ax.secondary_xaxis("top")
        top.set_xticks(list(merged), labels=["; ".join(v) for v in merged.values()],
                       fontsize="x-small", rotation=60, ha="left")
    if has_eval:
        ax = axes[1]
        names = [f for f in result.field_names() if f"eval_l2_rel/{f}" in h]
        curves = [("eval_l2_rel", "relative L2" + (" (mean over fields)" if len(names) > 1
                                                   else "")),
                  ("eval_max_abs_err", "max |error|")]
        if len(names) > 1:  # a system: every field's relative error beside the mean
            curves += [(f"eval_l2_rel/{f}", f"relative L2 of {f}") for f in names]
        for key, label in curves:
            if key in h:
                y = _positive(h[key])
                step = np.asarray(h.get("eval_step", np.arange(y.size)), dtype=np.float64)
                if step.size != y.size:
                    step = np.arange(y.size, dtype=np.float64)
                ax.plot(step, y, marker=".", lw=1.2, label=label)
        ax.set_yscale("log")
        ax.set(xlabel="step", ylabel="error", title="error on the evaluation set")
        ax.legend(fontsize="small")
    return fig
