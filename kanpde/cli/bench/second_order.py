"""``kanpde bench second-order``: what Levenberg-Marquardt stages buy, for KANs and MLPs.

The targets of the second-order stages (:mod:`kanpde.training.second_order`), measured in
float64 with one torch thread per run:

1. ``poisson2d_paper``, KAN [2,10,1] (``solvers/kan_paper_lm.toml``): squared L2 error
   (``mse``) <= 1e-10 within 5 minutes of wall time, on every seed;
2. ``poisson2d_sinsin``: relative L2 error <= 1e-7 for the KAN (``kan_paper_lm`` with quintic
   splines, 1410 parameters) and for an MLP of similar size (``mlp_paper_lm``);
3. ``helmholtz2d``, ``kovasznay``, ``heat1d``: Adam then Levenberg-Marquardt against Adam then
   L-BFGS at equal wall time (every optimiser stage capped at the same seconds), for a
   ``[d, 10, m]`` KAN (grid 5 -> 10 -> 20) and a ``[d, 32, 32, m]`` tanh MLP; the error of each
   at the shorter run's end, and their ratio (target: LM at least 10x lower);
4. the cost of one LM iteration for KAN [2,10,1] at G = 20 on the 5800 residuals of
   ``kan_paper_lm`` (5000 interior + 800 boundary points): residuals, Jacobian (by every
   path that works for the model), normal equations ``J^T J``, ``J^T r`` and the damped
   solve.

Writes ``OUT/second_order.md``, ``OUT/second_order.json`` and
``OUT/figures/second_order.png`` (error against wall time, Adam -> L-BFGS and Adam -> LM per
family and problem); runs are kept in ``--work`` and not rerun (resumable).

Example::

    kanpde bench second-order --budget full --out results
"""

from __future__ import annotations

import argparse
import copy
import math
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from kanpde.cli.bench import common, report
from kanpde.cli.bench.runner import Job, check_budget, resolve_problems, run_jobs
from kanpde.io import curves

PAPER, SINSIN = "poisson2d_paper", "poisson2d_sinsin"
COMPARE = ("helmholtz2d", "kovasznay", "heat1d")
TARGETS = {"paper_mse": 1e-10, "paper_time_s": 300.0, "sinsin_l2": 1e-7, "compare_ratio": 10.0}
#: per budget: points and seconds per optimiser stage of the equal-time comparison, and the
#: scale of the recipe runs (``None``: the solver files as they are)
BUDGETS = {
    "quick": {"interior": 300, "boundary": 60, "adam": 100, "stage_s": 5.0,
              "recipe": {"interior": 600, "boundary": 120, "steps": 0.25},
              "split": {"interior": 1000, "boundary": 200, "grid": 10, "repeats": 1}},
    "full": {"interior": 1500, "boundary": 300, "adam": 300, "stage_s": 100.0,
             "recipe": None,
             "split": {"interior": 5000, "boundary": 800, "grid": 20, "repeats": 3}},
}


# ------------------------------------------------------------------ solvers ------------


def _solver_file(root: Path, name: str) -> dict[str, Any]:
    from kanpde.training.config import load_config

    return load_config(root / "solvers" / f"{name}.toml").to_dict()


def scaled(solver: Mapping[str, Any], recipe: Mapping[str, Any] | None) -> dict[str, Any]:
    """A recipe at a budget: fewer points and steps for ``quick`` (``None``: unchanged)."""
    out = copy.deepcopy(dict(solver))
    if recipe is None:
        return out
    out["sampling"] = {**out.get("sampling", {}), "interior": recipe["interior"],
                       "boundary": recipe["boundary"]}
    for st in out["stages"]:
        st["steps"] = max(2, int(st["steps"] * recipe["steps"]))
    return out


def compare_solver(family: str, optimizer: str, budget: str) -> dict[str, Any]:
    """Adam, then three stages of ``optimizer`` capped at the same wall time each (the KAN's
    grid 5 -> 10 -> 20 between them)."""
    b = BUDGETS[budget]
    model = ({"kind": "kan", "widths": [10], "grid_size": 5, "spline_order": 3,
              "grid_range": [-1.0, 1.0], "normalize_inputs": True} if family == "kan" else
             {"kind": "mlp", "widths": [32, 32], "activation": "tanh",
              "normalize_inputs": True})
    stages: list[dict[str, Any]] = [{"optimizer": "adam", "steps": b["adam"], "lr": 0.01}]
    for i, grid in enumerate((5, 10, 20)):
        st: dict[str, Any] = {"optimizer": optimizer, "steps": 100000,
                              "max_time_s": b["stage_s"]}
        if optimizer == "lm":  # factors of 3 (of 10 by default): better for the MLP
            st.update(damping_up=3.0, damping_down=3.0)
        if family == "kan":
            st.update(grid_update=True, grid_eps=1.0)
            if i:
                st["grid_extend"] = grid
        stages.append(st)
    return {"engine": "jet", "dtype": "float64", "seed": 0, "model": model,
            "sampling": {"interior": b["interior"], "boundary": b["boundary"],
                         "method": "sobol"},
            "weighting": {"kind": "fixed", "weights": {"residuals": 0.01}},
            "stages": stages, "evaluation": {"every": 5 if optimizer == "lm" else 25},
            "checkpoint": {"every": 200}}


def quintic(solver: Mapping[str, Any], last_steps: int = 90) -> dict[str, Any]:
    """``solver`` with quintic splines (error ``O(h^6)`` instead of ``O(h^4)``: the cubic
    [2,10,1] KAN at G = 40 stops near l2_rel 1e-5 on ``poisson2d_sinsin``) and a longer
    last stage."""
    out = copy.deepcopy(dict(solver))
    out["model"] = {**out["model"], "spline_order": 5}
    out["stages"][-1]["steps"] = max(out["stages"][-1]["steps"], last_steps)
    return out


def jobs(budget: str, seeds: Sequence[int], root: Path,
         compare_seeds: Sequence[int] | None = None) -> list[Job]:
    """Every training run of the benchmark (the equal-time comparison with
    ``compare_seeds``, default ``seeds``)."""
    compare_seeds = seeds if compare_seeds is None else compare_seeds
    recipe = BUDGETS[budget]["recipe"]
    kan, mlp = (scaled(_solver_file(root, n), recipe) for n in ("kan_paper_lm",
                                                                  "mlp_paper_lm"))
    out = [Job(PAPER, "kan_paper_lm", kan, s, {"family": "kan", "part": "paper"})
           for s in seeds]
    kan5 = quintic(kan, 90 if recipe is None else 20)
    out += [Job(SINSIN, label, solver, s, {"family": fam, "part": "sinsin"})
            for label, solver, fam in (("kan_paper_lm-k5", kan5, "kan"),
                                       ("mlp_paper_lm", mlp, "mlp")) for s in seeds]
    out += [Job(p, f"{fam}-{opt}", compare_solver(fam, opt, budget), s,
                {"family": fam, "part": "compare", "optimizer": opt})
            for p in COMPARE for fam in ("kan", "mlp") for opt in ("lbfgs", "lm")
            for s in compare_seeds]
    return out


# ------------------------------------------------------------------ curves --------------


def curve(run_dir: str | Path) -> dict[str, list[float]]:
    """``{"time_s", "l2_rel", "mse"}`` of a run's evaluation history."""
    from kanpde.io.results import load_result

    h = load_result(run_dir).history
    return {"time_s": [float(v) for v in h.get("eval_time_s", [])],
            "l2_rel": [float(v) for v in h.get("eval_l2_rel", [])],
            "mse": [float(v) for v in h.get("eval_mse", [])]}


def _as_curve(c: Mapping[str, Sequence[float]], key: str) -> tuple[np.ndarray, np.ndarray]:
    """A record's curve as :func:`kanpde.io.curves.error_curve` makes it from a history."""
    return curves.error_curve({"eval_time_s": c["time_s"], f"eval_{key}": c[key]},
                              "wall", key)


def error_at(c: Mapping[str, Sequence[float]], t: float, key: str = "l2_rel") -> float:
    """The lowest ``key`` of a curve among its evaluations up to time ``t`` (NaN: none)."""
    return curves.error_at(_as_curve(c, key), t)


def time_to(c: Mapping[str, Sequence[float]], level: float, key: str = "mse") -> float | None:
    """Wall time of the first evaluation with ``key <= level`` (``None``: never)."""
    return curves.time_to(_as_curve(c, key), level)


def compare_rows(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per (problem, family, seed): L-BFGS and LM errors at the shorter run's end."""
    by = {(r["problem"], r["family"], r["seed"], r["optimizer"]): r for r in records
          if r.get("part") == "compare"}
    out = []
    for (problem, fam, seed, opt), rec in by.items():
        other = by.get((problem, fam, seed, "lbfgs"))
        if opt != "lm" or other is None:
            continue
        lm_c, lb_c = rec["curve"], other["curve"]
        t = min(max(lm_c["time_s"], default=0.0), max(lb_c["time_s"], default=0.0))
        e_lm, e_lb = error_at(lm_c, t), error_at(lb_c, t)
        out.append({"problem": problem, "family": fam, "seed": seed, "time_s": t,
                    "l2_lbfgs": e_lb, "l2_lm": e_lm,
                    "ratio_lbfgs_over_lm": e_lb / e_lm if e_lm and math.isfinite(e_lm)
                    else None, "n_params": rec.get("n_params")})
    return out


# ------------------------------------------------------------------ cost split ----------


def cost_split(root: Path, interior: int = 5000, boundary: int = 800, grid: int = 20,
               repeats: int = 3) -> dict[str, Any]:
    """Seconds of the parts of one LM iteration for KAN [2,10,1] at grid ``grid`` on
    ``poisson2d_paper`` (median of ``repeats``): the residual pass, the Jacobian by every
    path that works, the normal equations and the damped Cholesky solve."""
    import torch

    from kanpde.problem import load_problem
    from kanpde.training.config import config_from_dict
    from kanpde.training.jacobian import PATHS, Jacobian, Parameters
    from kanpde.training.loss import PinnLoss
    from kanpde.training.model import build_model
    from kanpde.training.points import sample_points
    from kanpde.training.second_order import solve_damped
    from kanpde.training.weighting import LossWeights

    problem = load_problem(root / "problems" / f"{PAPER}.py")
    d = _solver_file(root, "kan_paper_lm")
    d["sampling"] = {**d["sampling"], "interior": interior, "boundary": boundary}
    cfg = config_from_dict(d)
    model = build_model(problem, cfg.model, torch.float64, "cpu", 0, grid_size=grid)
    pts = sample_points(problem, cfg.sampling, torch.Generator().manual_seed(0),
                        torch.float64, torch.device("cpu"))
    defaults = {c.label(i): float(c.weight) for i, c in enumerate(problem.conditions)}
    weights = LossWeights(list(problem.residuals), list(defaults), defaults, cfg.weighting)
    loss = PinnLoss(problem, weights, weighting=cfg.weighting,
                    regularization=cfg.regularization)
    params = Parameters(model)

    def timed(fn) -> tuple[float, Any]:
        times, out = [], None
        for _ in range(repeats):
            t0 = time.perf_counter()
            out = fn()
            times.append(time.perf_counter() - t0)
        return sorted(times)[len(times) // 2], out

    with torch.no_grad():
        t_res, res = timed(lambda: loss.residuals(model, pts, blocks=True))
    paths: dict[str, float | str] = {}
    jac_matrix = None
    for path in PATHS[1:]:
        if path == "loop" and paths:  # a pass per row: only when nothing faster works
            continue
        jac = Jacobian(model, params, path)
        try:
            jac.matrix(res.blocks[:1])  # warm-up (torch.func traces once)
            paths[path], jac_matrix = timed(lambda j=jac: j.matrix(res.blocks))
        except RuntimeError as err:
            paths[path] = f"not available: {str(err).splitlines()[0][:80]}"
    assert jac_matrix is not None
    rows = res.rows.to(torch.float64)
    t_ne, (a, g) = timed(lambda: (jac_matrix.T @ jac_matrix, jac_matrix.T @ rows))
    d_scale = a.diagonal().clamp_min(float(a.diagonal().max()) * 1e-12)
    t_solve, _ = timed(lambda: solve_damped(a, g, 1e-3, d_scale))
    chosen = Jacobian(model, params)
    chosen.matrix(res.blocks[:1])
    timed_paths = {k: v for k, v in paths.items() if isinstance(v, float)}
    return {"model": "KAN [2,10,1]", "grid": grid, "residuals": int(res.rows.numel()),
            "parameters": params.numel, "threads": torch.get_num_threads(),
            "residual_s": t_res, "jacobian_s": timed_paths.get(chosen.path or "", math.nan),
            "jacobian_path": chosen.path, "jacobian_paths": paths,
            "normal_equations_s": t_ne, "solve_s": t_solve}


# ------------------------------------------------------------------ report --------------


def _paper_rows(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for r in records:
        if r.get("part") != "paper":
            continue
        hit = time_to(r["curve"], TARGETS["paper_mse"])
        out.append({"seed": r["seed"], "mse": r.get("mse"), "l2_rel": r.get("l2_rel"),
                    "wall_time_s": r.get("wall_time_s"), "cpu_time_s": r.get("cpu_time_s"),
                    "time_to_target_s": hit,
                    "met": hit is not None and hit <= TARGETS["paper_time_s"]})
    return out


def _sinsin_rows(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [{"label": r["label"], "family": r["family"], "seed": r["seed"],
             "n_params": r.get("n_params"), "l2_rel": r.get("l2_rel"),
             "wall_time_s": r.get("wall_time_s"),
             "met": r.get("l2_rel") is not None and r["l2_rel"] <= TARGETS["sinsin_l2"]}
            for r in records if r.get("part") == "sinsin"]


def markdown(doc: Mapping[str, Any]) -> str:
    """``second_order.md``."""
    f = report.fmt
    lines = ["# Second-order stages: Levenberg-Marquardt against L-BFGS", "",
             f"Command: `{doc['command']}`", "", report.machine_line(), "",
             "## poisson2d_paper, KAN [2,10,1] (`solvers/kan_paper_lm.toml`)", "",
             f"Target: mse <= {TARGETS['paper_mse']:g} within "
             f"{TARGETS['paper_time_s']:g} s on every seed.", ""]
    lines.append(common.markdown_table(
        ["seed", "mse", "l2_rel", "wall time s", "CPU time s", "time to target s", "met"],
        [[r["seed"], f(r["mse"]), f(r["l2_rel"]), f(r["wall_time_s"], ".0f"),
          f(r["cpu_time_s"], ".0f"), f(r["time_to_target_s"], ".0f"),
          "yes" if r["met"] else "no"] for r in doc["paper"]]))
    lines += ["", "## poisson2d_sinsin, KAN and MLP of similar size", "",
              f"Target: l2_rel <= {TARGETS['sinsin_l2']:g} for both.", ""]
    lines.append(common.markdown_table(
        ["solver", "params", "seed", "l2_rel", "wall time s", "met"],
        [[r["label"], r["n_params"], r["seed"], f(r["l2_rel"]), f(r["wall_time_s"], ".0f"),
          "yes" if r["met"] else "no"] for r in doc["sinsin"]]))
    lines += ["", "## Adam -> LM against Adam -> L-BFGS at equal wall time", "",
              "Both runs share the Adam warm-up, then three stages capped at the same "
              "seconds each (KAN grid 5 -> 10 -> 20 between them); errors are the best "
              "evaluation up to the shorter run's end. Target: LM at least "
              f"{TARGETS['compare_ratio']:g}x lower.", ""]
    lines.append(common.markdown_table(
        ["problem", "family", "seed", "time s", "l2_rel L-BFGS", "l2_rel LM",
         "L-BFGS / LM"],
        [[r["problem"], r["family"], r["seed"], f(r["time_s"], ".0f"), f(r["l2_lbfgs"]),
          f(r["l2_lm"]), f(r["ratio_lbfgs_over_lm"], ".3g")] for r in doc["compare"]]))
    c = doc["cost_split"]
    paths = ", ".join(f"{k} {f(v, '.3f') if isinstance(v, float) else v}"
                      for k, v in c["jacobian_paths"].items())
    lines += ["", f"## One LM iteration, {c['model']} at G = {c['grid']}", "",
              f"{c['residuals']} residuals, {c['parameters']} parameters, "
              f"{c['threads']} thread(s); medians in seconds.", ""]
    lines.append(common.markdown_table(
        ["residuals", f"Jacobian ({c['jacobian_path']})", "normal equations", "solve"],
        [[f(c["residual_s"], ".3f"), f(c["jacobian_s"], ".3f"),
          f(c["normal_equations_s"], ".3f"), f(c["solve_s"], ".4f")]]))
    lines += ["", f"Jacobian paths: {paths}.", ""]
    return "\n".join(lines)


def figure(records: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """Error against wall time per comparison problem: Adam -> L-BFGS (dashed) and
    Adam -> LM (solid), KAN and MLP in two colours."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(COMPARE), figsize=(5 * len(COMPARE), 4), squeeze=False)
    colours = {"kan": "tab:blue", "mlp": "tab:orange"}
    for ax, problem in zip(axes[0], COMPARE, strict=True):
        for r in records:
            if r.get("part") != "compare" or r["problem"] != problem:
                continue
            c = r["curve"]
            ax.semilogy(c["time_s"], c["l2_rel"], color=colours[r["family"]],
                        ls="-" if r["optimizer"] == "lm" else "--", alpha=0.8,
                        label=f"{r['family'].upper()} Adam -> "
                              f"{'LM' if r['optimizer'] == 'lm' else 'L-BFGS'}"
                        if r["seed"] == min(x["seed"] for x in records) else None)
        ax.set(title=problem, xlabel="wall time s", ylabel="relative L2 error")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    out = report.save_figure(fig, path)
    plt.close(fig)
    return out


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    report.add_common_arguments(parser, problems=False)
    parser.add_argument("--compare-seeds", type=common.seed, nargs="+", metavar="SEED",
                        help="seeds of the equal-time comparison on helmholtz2d, kovasznay "
                             "and heat1d (default: --seeds; each run takes about 5 min of "
                             "wall time at the full budget, 12 runs per seed)")


def run(args: argparse.Namespace) -> int:
    """Run (or continue) the benchmark and write its tables; returns the exit status."""
    import torch

    torch.set_num_threads(1)
    budget = check_budget(args.budget)
    problems = resolve_problems([PAPER, SINSIN, *COMPARE], args.problems_dir)
    root = Path(args.problems_dir).resolve().parent  # solvers/ lives beside problems/
    work = Path(args.work) / f"second-order-{budget}"
    records = run_jobs(jobs(budget, args.seeds, root, args.compare_seeds), problems, work,
                       quiet=not args.progress)
    for r in records:
        r["curve"] = curve(r["run_dir"])
    split = BUDGETS[budget]["split"]
    print(f"cost split of one LM iteration (G = {split['grid']}) ...", file=sys.stderr)
    doc = {"budget": budget, "command": report.command_line(
               "second-order", args, options=["--compare-seeds", *map(str, args.compare_seeds)]
               if args.compare_seeds else []),
           "targets": TARGETS, "paper": _paper_rows(records),
           "sinsin": _sinsin_rows(records), "compare": compare_rows(records),
           "cost_split": cost_split(root, **split),
           "runs": [{**report.slim(r, ("part", "family", "optimizer", "cpu_time_s")),
                     "curve": r["curve"]} for r in records]}
    out = Path(args.out)
    text = markdown(doc)
    out.mkdir(parents=True, exist_ok=True)
    (out / "second_order.md").write_text(text)
    report.write_json(out / "second_order.json", doc)
    fig = figure(records, out / "figures" / "second_order.png")
    print(text)
    print(f"wrote {out / 'second_order.md'}, {out / 'second_order.json'} and {fig}")
    return 0


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``kanpde bench second-order``."""
    return common.add_subcommand(subparsers, "second-order", "Levenberg-Marquardt against "
                                 "L-BFGS: accuracy targets, equal-time errors, LM cost",
                                 __doc__, _add_arguments, run)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m kanpde.cli.bench.second_order [options]``."""
    return common.standalone_main("second_order", __doc__, _add_arguments, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
