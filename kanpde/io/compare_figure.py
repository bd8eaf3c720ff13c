"""The ``kanpde compare`` figure: error against wall time, CPU time and parameters.

With run histories (``histories``), the first two panels draw each run's best-so-far
relative L2 error on the evaluation set against wall time and against process CPU time
(:func:`kanpde.io.curves.error_curve`), one line per (solver, seed); without them they place
each run's final error at its total time. The last panel places every run's final error
at its number of trainable parameters, with the Pareto front of all runs as a grey step
line. Solvers are told apart by colour, KAN solvers in blue-green shades with circles, MLP
solvers in red-orange shades with squares; the one legend (below the panels) names each
solver, its family and its number of seeds. Axes are log-log, span at least one decade and
leave a margin so no marker sits on the frame. Runs whose values are missing, non-finite or
non-positive (diverged runs) are left out of a panel and counted in its corner. For a
system (several fields) a fourth panel places every run's final relative L2 error of each
field (``summary["fields"]``), the solvers side by side per field: the time and parameter
panels show the mean over fields, this one what it is made of.

The figure is built without pyplot state and saved with the Agg canvas.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from kanpde.io.aggregate import field_names
from kanpde.io.curves import error_curve, pareto_front

DPI = 110
PANEL = (4.2, 3.4)  # inches per panel (width, height)


def _finite_positive(value: Any) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) and v > 0 else None


def _styles(records: Sequence[Mapping[str, Any]]) -> dict[str, tuple[Any, str, str]]:
    """``{solver: (colour, marker, family)}``."""
    solvers: dict[str, str] = {}
    for rec in records:
        solvers.setdefault(str(rec.get("solver", "?")), str(rec.get("model", "")).lower())
    kan = [s for s, m in solvers.items() if m == "kan"]
    other = [s for s in solvers if s not in kan]
    style = {}
    for names, cmap_name, marker in ((kan, "winter", "o"), (other, "autumn", "s")):
        cmap = colormaps[cmap_name]
        for i, s in enumerate(names):
            style[s] = (cmap(0.85 * i / max(len(names) - 1, 1)), marker, solvers[s] or "?")
    return style


def _log_limits(ax: Any, values: Sequence[float], axis: str) -> None:
    """Log limits with a margin of a fifth of the span, spanning at least one decade."""
    if not values:
        return
    lo, hi = math.log10(min(values)), math.log10(max(values))
    if hi - lo < 1.0:
        mid = 0.5 * (lo + hi)
        lo, hi = mid - 0.5, mid + 0.5
    pad = 0.2 * (hi - lo)
    (ax.set_xlim if axis == "x" else ax.set_ylim)(10 ** (lo - pad), 10 ** (hi + pad))


def plot_comparison(records: Sequence[Mapping[str, Any]], out_path: str | os.PathLike,
                    title: str | None = None,
                    histories: Sequence[Mapping[str, Any]] | None = None) -> Path:
    """Write the comparison figure (see the module docstring).

    Args:
        records: summary dicts with ``solver``, ``model`` (``"kan"``/``"mlp"``), ``seed``,
            ``n_params``, ``l2_rel``, ``wall_time_s`` and (optionally) ``cpu_time_s``.
        out_path: the PNG to write (parent directories are created).
        title: figure title (e.g. the problem name).
        histories: the runs' histories, in the order of ``records`` (curves instead of
            end points in the time panels).

    Returns:
        ``out_path`` as a :class:`~pathlib.Path`.
    """
    style = _styles(records)
    seeds = {s: sum(str(r.get("solver", "?")) == s for r in records) for s in style}
    fields = list(dict.fromkeys(f for r in records for f in field_names(r)))
    n_panels = 4 if len(fields) > 1 else 3
    ylabel = "relative L2 error" + (" (mean over fields)" if n_panels == 4 else "")
    fig = Figure(figsize=(n_panels * PANEL[0], PANEL[1] * 1.45), layout="constrained")
    axes = fig.subplots(1, n_panels)
    panels = (("wall", "wall_time_s", "wall time [s]"), ("cpu", "cpu_time_s", "CPU time [s]"))
    for ax, (clock, key, label) in zip(axes[:2], panels, strict=True):
        xs_all, ys_all, skipped = [], [], 0
        for i, rec in enumerate(records):
            colour, marker, _ = style[str(rec.get("solver", "?"))]
            if histories is not None and i < len(histories):
                t, err = error_curve(histories[i], clock)
                ok = (t > 0) & (err > 0)
                t, err = t[ok], err[ok]
            else:
                x, y = _finite_positive(rec.get(key)), _finite_positive(rec.get("l2_rel"))
                t, err = (np.array([x]), np.array([y])) if x and y else (np.empty(0),) * 2
            if not t.size:
                skipped += 1
                continue
            if t.size > 1:
                ax.step(t, err, where="post", color=colour, lw=1.1, alpha=0.85)
            ax.scatter(t[-1:], err[-1:], color=colour, marker=marker, s=30, edgecolor="k",
                       linewidth=0.5, zorder=3)
            xs_all += list(t)
            ys_all += list(err)
        _finish(ax, xs_all, ys_all, label, f"best error so far vs {label.split(' [')[0]}",
                skipped, ylabel)
    ax = axes[2]
    pts, xs_all, ys_all, skipped = [], [], [], 0
    for rec in records:
        x, y = _finite_positive(rec.get("n_params")), _finite_positive(rec.get("l2_rel"))
        if x is None or y is None:
            skipped += 1
            continue
        colour, marker, _ = style[str(rec.get("solver", "?"))]
        ax.scatter([x], [y], color=colour, marker=marker, s=36, edgecolor="k", linewidth=0.5,
                   zorder=3)
        pts.append((x, y))
        xs_all.append(x)
        ys_all.append(y)
    front = [pts[i] for i in pareto_front(pts)]
    if len(front) > 1:
        ax.step([p[0] for p in front], [p[1] for p in front], where="post", color="0.5",
                lw=1.0, ls="--", zorder=2, label="Pareto front")
    _finish(ax, xs_all, ys_all, "trainable parameters", "final error vs parameters", skipped,
            ylabel)
    if n_panels == 4:
        _field_panel(axes[3], records, fields, style)
    handles = [ax.scatter([], [], color=c, marker=m, s=36, edgecolor="k", linewidth=0.5,
                          label=f"{s} ({fam}, {seeds[s]} seed{'s' if seeds[s] != 1 else ''})")
               for s, (c, m, fam) in style.items()]
    if handles:
        fig.legend(handles=handles, loc="outside lower center",
                   ncols=min(len(handles), 4), fontsize="small", frameon=False)
    if title:
        fig.suptitle(title)
    path = Path(out_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, format="png")
    return path


def _field_panel(ax: Any, records: Sequence[Mapping[str, Any]], fields: Sequence[str],
                 style: Mapping[str, tuple[Any, str, str]]) -> None:
    """Every run's final relative L2 error of every field, solvers side by side per field."""
    solvers = list(style)
    width = 0.7 / max(len(solvers), 1)
    ys_all, skipped = [], 0
    for rec in records:
        s = str(rec.get("solver", "?"))
        colour, marker, _ = style[s]
        per = rec.get("fields") or {}
        for j, f in enumerate(fields):
            y = _finite_positive((per.get(f) or {}).get("l2_rel"))
            if y is None:
                skipped += 1
                continue
            x = j - 0.35 + width * (solvers.index(s) + 0.5)
            ax.scatter([x], [y], color=colour, marker=marker, s=30, edgecolor="k",
                       linewidth=0.5, zorder=3)
            ys_all.append(y)
    ax.set_yscale("log")
    _log_limits(ax, ys_all, "y")
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_xticks(range(len(fields)), labels=list(fields))
    ax.set_xlim(-0.6, len(fields) - 0.4)
    ax.set(xlabel="field", ylabel="relative L2 error", title="final error per field")
    ax.grid(True, axis="y", which="both", alpha=0.3)
    if skipped:
        ax.text(0.01, 0.01, f"{skipped} value(s) not finite omitted",
                transform=ax.transAxes, fontsize="x-small", color="0.3")


def _finish(ax: Any, xs: list[float], ys: list[float], xlabel: str, title: str,
            skipped: int, ylabel: str = "relative L2 error") -> None:
    ax.set_xscale("log")
    ax.set_yscale("log")
    _log_limits(ax, xs, "x")
    _log_limits(ax, ys, "y")
    for axis in (ax.xaxis, ax.yaxis):  # decades only: minor labels overprint on short axes
        axis.set_minor_formatter(NullFormatter())
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.grid(True, which="both", alpha=0.3)
    if skipped:
        ax.text(0.01, 0.01, f"{skipped} run(s) without a finite value omitted",
                transform=ax.transAxes, fontsize="x-small", color="0.3")


__all__ = ["plot_comparison"]
