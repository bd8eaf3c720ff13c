"""``kanpde bench scaling PROBLEM ...``: test error against parameter count, KAN vs MLP.

KANs ``[d, 5, m]`` and ``[d, 10, m]`` are grown by grid extension G = 3 -> 5 -> 10 -> 20 -> 40
(``full`` budget), one L-BFGS stage per grid size, the model evaluated as each stage leaves
it; tanh MLPs grow in width (depth 2: widths 8 ... 128) and depth (4 hidden layers: widths
16 ... 64), each trained for the KAN's total number of steps. A least-squares line through
``log l2_rel`` against ``log N`` (N = trainable parameters) gives the exponent ``alpha`` of
``l2_rel ∝ N^-alpha`` for every series, set beside theory: at fixed width a KAN's N grows
like G, and a spline of order k approximates a smooth function with error ``O(G^-(k+1))``
(alpha = 4 for cubic splines), while its m-th derivative only gets ``O(G^-(k+1-m))`` — a
residual with second derivatives bounds the solution error by ``O(G^-(k-1))`` (alpha = 2).
MLPs have no comparable rate in N.

Writes ``OUT/scaling_<problem>.md``, ``OUT/scaling_<problem>.json`` and
``OUT/figures/scaling_<problem>.png``; runs are kept in ``--work`` (resumable).

Example::

    kanpde bench scaling poisson2d_paper heat1d --budget full --out results
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from kanpde.cli.bench import common, report
from kanpde.cli.bench.runner import Job, check_budget, resolve_problems, run_jobs
from kanpde.tune import budgets

SPLINE_ORDER = 3


def jobs(problem: str, budget: str, seeds: Sequence[int]) -> list[Job]:
    """The KAN and MLP series of one problem."""
    sched = budgets.SCHEDULES["scaling"][budget]
    out = []
    for widths in budgets.SCALING_KAN_WIDTHS:
        out += [Job(problem, budgets.kan_label(widths), budgets.kan_solver(
            sched, widths, spline_order=SPLINE_ORDER), s, {"family": "kan"}) for s in seeds]
    for widths in budgets.SCALING_MLP_WIDTHS:
        out += [Job(problem, budgets.mlp_label(widths), budgets.mlp_solver(sched, widths), s,
                    {"family": "mlp", "depth": len(widths)}) for s in seeds]
    return out


def series(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Points (N, median l2_rel over seeds, G) of each series: one per KAN width, one per MLP
    depth."""
    groups: dict[str, dict[int, list[dict[str, Any]]]] = {}
    for r in records:
        if r.get("model") == "kan":
            for pt in report.stage_points(r):
                groups.setdefault(r["label"], {}).setdefault(pt["n_params"], []).append(
                    {"l2_rel": pt["l2_rel"], "grid": pt["grid"], "time_s": pt["elapsed_s"]})
        else:
            name = f"mlp, {r.get('depth')} hidden layers"
            groups.setdefault(name, {}).setdefault(r.get("n_params"), []).append(
                {"l2_rel": r.get("l2_rel"), "grid": None, "time_s": r.get("wall_time_s"),
                 "label": r["label"]})
    out = []
    for name, by_n in groups.items():
        pts = []
        for n, runs in sorted(by_n.items()):
            errs = [g["l2_rel"] for g in runs if g["l2_rel"] is not None]
            pts.append({"n_params": n, "l2_rel": statistics.median(errs) if errs else None,
                        "grid": runs[0]["grid"], "label": runs[0].get("label"),
                        "time_s": statistics.median(g["time_s"] for g in runs)})
        family = "kan" if name.startswith("kan") else "mlp"
        out.append({"name": name, "family": family, "points": pts, **fit(pts, family)})
    return out


def fit(points: Sequence[Mapping[str, Any]], family: str) -> dict[str, float | None]:
    """Exponents of ``l2_rel ∝ N^-alpha`` (and ``∝ G^-alpha_grid`` for KANs) by least squares
    in log-log; ``None`` with fewer than two usable points."""
    ok = [p for p in points if p["l2_rel"] and p["l2_rel"] > 0 and p["n_params"]]
    if len(ok) < 2:
        return {"alpha": None, "alpha_grid": None}
    n = np.log([p["n_params"] for p in ok])
    e = np.log([p["l2_rel"] for p in ok])
    out: dict[str, float | None] = {"alpha": float(-np.polyfit(n, e, 1)[0]), "alpha_grid": None}
    if family == "kan":
        g = np.log([p["grid"] for p in ok])
        out["alpha_grid"] = float(-np.polyfit(g, e, 1)[0])
    return out


def markdown(problem: str, rows: Sequence[Mapping[str, Any]], budget: str,
             command: str) -> str:
    """``scaling_<problem>.md``."""
    sched = budgets.SCHEDULES["scaling"][budget]
    k = SPLINE_ORDER
    lines = [
        f"# Scaling: {problem}", "",
        f"Command: `{command}`", "",
        f"Budget `{budget}`: {sched.interior} interior points, {sched.boundary} per condition, "
        f"Adam {sched.adam_steps} steps then {len(sched.grids)} L-BFGS stages of "
        f"{sched.lbfgs_steps}; KAN grid G = {' -> '.join(map(str, sched.grids))} by extension "
        f"(spline order k = {k}); MLPs trained for the same {sched.steps} steps. "
        "l2_rel = relative L2 error on the evaluation set (median over seeds).", "",
        report.machine_line(), "",
        f"Theory for a KAN at fixed width (N ∝ G): smooth function fitting l2 ∝ G^-(k+1) = "
        f"G^-{k + 1}; with second derivatives in the residual the bound is G^-(k-1) = G^-{k - 1}.",
        "",
    ]
    table = [[r["name"], len(r["points"]),
              f"{r['points'][0]['n_params']}–{r['points'][-1]['n_params']}",
              report.fmt(r["points"][0]["l2_rel"]), report.fmt(r["points"][-1]["l2_rel"]),
              report.fmt(r["alpha"], ".2f"), report.fmt(r["alpha_grid"], ".2f"),
              f"{k + 1} (fit), {k - 1} (2nd-derivative bound)" if r["family"] == "kan" else "—"]
             for r in rows]
    lines.append(common.markdown_table(
        ["series", "sizes", "params", "l2_rel smallest", "l2_rel largest", "alpha (N)",
         "alpha (G)", "theory alpha (G)"], table))
    lines += ["", "## Points", ""]
    lines.append(common.markdown_table(
        ["series", "size", "params", "l2_rel", "time s"],
        [[r["name"], f"G={p['grid']}" if p["grid"] else (p["label"] or ""), p["n_params"],
          report.fmt(p["l2_rel"]), report.fmt(p["time_s"], ".1f")]
         for r in rows for p in r["points"]]))
    return "\n".join(lines) + "\n"


def figure(problem: str, rows: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """Log-log l2_rel against parameters, one line per series, with theory slopes."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.6), layout="constrained")
    ax = fig.add_subplot()
    kan = [r for r in rows if r["family"] == "kan"]
    mlp = [r for r in rows if r["family"] == "mlp"]
    for group, cmap, marker in ((kan, "winter", "o"), (mlp, "autumn", "s")):
        for i, r in enumerate(group):
            pts = [p for p in r["points"] if p["l2_rel"]]
            color = colormaps[cmap](0.8 * i / max(len(group) - 1, 1))
            alpha = "" if r["alpha"] is None else f" (alpha {r['alpha']:.2f})"
            ax.loglog([p["n_params"] for p in pts], [p["l2_rel"] for p in pts],
                      marker=marker, color=color, label=r["name"] + alpha)
    if kan and kan[-1]["points"] and kan[-1]["points"][0]["l2_rel"]:
        p0 = kan[-1]["points"][0]
        n = np.geomspace(p0["n_params"], max(p["n_params"] for p in kan[-1]["points"]), 20)
        for slope, style in ((SPLINE_ORDER + 1, ":"), (SPLINE_ORDER - 1, "--")):
            ax.loglog(n, p0["l2_rel"] * (n / n[0]) ** -slope, style, color="gray",
                      label=f"N^-{slope} (theory)")
    ax.set_xlabel("trainable parameters N")
    ax.set_ylabel("relative L2 error")
    ax.set_title(f"{problem}: error against size")
    ax.legend(fontsize=7)
    return report.save_figure(fig, path)


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("problem_names", nargs="+", metavar="PROBLEM",
                        help="problem names (in --problems-dir) or problem files")
    report.add_common_arguments(parser, problems=False, seeds=(0,))


def run(args: argparse.Namespace) -> int:
    """Run (or continue) the scaling study of each problem; returns the exit status."""
    budget = check_budget(args.budget)
    problems = resolve_problems(args.problem_names, args.problems_dir)
    if not args.seeds:
        raise ValueError("--seeds: give at least one seed")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in problems:
        records = run_jobs(jobs(name, budget, args.seeds), problems,
                           Path(args.work) / f"scaling-{budget}", quiet=not args.progress)
        rows = series(records)
        command = report.command_line("scaling", args, [name])
        text = markdown(name, rows, budget, command)
        (out / f"scaling_{name}.md").write_text(text)
        report.write_json(out / f"scaling_{name}.json", {
            "problem": name, "budget": budget, "spline_order": SPLINE_ORDER,
            "theory_alpha": {"function_fit": SPLINE_ORDER + 1,
                             "second_derivative_bound": SPLINE_ORDER - 1},
            "series": rows})
        figure(name, rows, out / "figures" / f"scaling_{name}.png")
        print(text)
        print(f"wrote {out}/scaling_{name}.md, .json and figures/scaling_{name}.png")
    return 0


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``kanpde bench scaling``."""
    return common.add_subcommand(subparsers, "scaling", "error against parameters: KAN by grid "
                                 "extension, MLP by width and depth; fitted exponents",
                                 __doc__, _add_arguments, run)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m kanpde.cli.bench.scaling PROBLEM ... [options]``."""
    return common.standalone_main("scaling", __doc__, _add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())

