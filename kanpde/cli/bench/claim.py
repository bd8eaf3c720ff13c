"""``kanpde bench claim``: the KAN paper's §3.4 Poisson claim, with fair baselines.

Liu et al. (2024, arXiv 2404.19756, §3.4) report that a 2-layer width-10 KAN solves a 2-D
Poisson problem about 100x more accurately than a 4-layer width-100 MLP (squared L2 error
~1e-7 vs ~1e-5) with about 100x fewer parameters. Here, on ``problems/poisson2d_paper.py``,
every model family gets the care its own community gives it:

* the KAN ``[2, 10, 1]`` with the paper's recipe (L-BFGS with grid extension
  G = 5 -> 10 -> 20 -> 40, listed at every grid size it passes) and, when the solver files
  exist, with the second-order recipes ``solvers/kan_paper_lm.toml`` and
  ``solvers/mlp_paper_lm.toml``;
* the paper's MLP ``[2, 100, 100, 100, 100, 1]`` (tanh) with DeepXDE's ordinary recipe
  (:data:`kanpde.tune.budgets.DEEPXDE_RECIPE`), run by kanpde and, when the ``anchors``
  extra is installed, by DeepXDE itself (their MSE ratio is in the table);
* both paper architectures tuned with the same effort (``kanpde tune``: the same trials of
  the same wall time, selected by validation loss), and each family tuned freely up to the
  MLP's size.

Squared L2 error (``mse``), squared H1 error (``h1_mse``), parameters, wall and CPU time;
median [min–max] over seeds. Writes ``OUT/claim.md``, ``OUT/claim.json`` and
``OUT/figures/claim_poisson2d_paper.png``; runs and studies are kept in ``--work``
(resumable).

Example::

    kanpde bench claim --budget full --seeds 0 1 2 --mlp-seeds 0 1 2 --out results
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kanpde.cli.bench import common, report
from kanpde.cli.bench.runner import Job, check_budget, resolve_problems, run_jobs
from kanpde.io.aggregate import spread, spread_cell
from kanpde.tune import budgets

PROBLEM = "poisson2d_paper"
KAN_ARCH = {"depth": 1, "width": 10}
"""The paper's KAN [2, 10, 1] as tuning knobs."""
MLP_ARCH = {"depth": 4, "width": 100}
"""The paper's "4-layer width-100" MLP, read as DeepXDE's [2, 100, 100, 100, 100, 1]."""
MLP_PARAMS = 30701
"""Its parameter count: the cap of the free searches."""


@dataclass(frozen=True)
class ClaimBudget:
    """Points and L-BFGS iterations per KAN grid stage of the paper recipe, and the tuning
    effort of the claim's studies (the same for every study)."""

    interior: int
    boundary: int
    grids: tuple[int, ...]
    lbfgs_steps: tuple[int, ...]
    trials: int
    time_per_trial: float
    mlp_width: int

    @property
    def steps(self) -> int:
        return sum(self.lbfgs_steps)


CLAIM_BUDGETS = {
    "quick": ClaimBudget(400, 80, (5, 10), (30, 30), 2, 3.0, 16),
    "full": ClaimBudget(5000, 800, (5, 10, 20, 40), (200, 300, 800, 1000), 5, 180.0, 100),
}


def kan_solver(b: ClaimBudget) -> dict[str, Any]:
    """The paper's recipe: ``[2, 10, 1]``, one L-BFGS stage per grid size, knots spread
    uniformly over the range of the activations before each (``grid_eps = 1``); the PDE
    residual weighted 1e-4 (its source ~ 2 pi^2 dwarfs the boundary misfit)."""
    return {"engine": "jet", "dtype": "float64", "seed": 0,
            "model": {"kind": "kan", "widths": [KAN_ARCH["width"]], "grid_size": b.grids[0],
                      "spline_order": 3, "grid_range": [-1.0, 1.0], "normalize_inputs": True},
            "sampling": {"interior": b.interior, "boundary": b.boundary, "method": "sobol"},
            "weighting": {"kind": "fixed", "weights": {"residuals": 1e-4}},
            "evaluation": {"every": 100}, "checkpoint": {"every": 200},
            "stages": [{"optimizer": "lbfgs", "steps": steps, "history_size": 50,
                        "grid_update": True, "grid_eps": 1.0,
                        **({"grid_extend": grid} if i else {})}
                       for i, (grid, steps) in enumerate(zip(b.grids, b.lbfgs_steps,
                                                             strict=True))]}


def deepxde_recipe(budget: str) -> dict[str, Any]:
    """DeepXDE's recipe for the paper's MLP (4 hidden layers; narrower in ``quick``)."""
    width = CLAIM_BUDGETS[budget].mlp_width
    return {**budgets.DEEPXDE_RECIPE[budget], "widths": [width] * MLP_ARCH["depth"]}


def _solver_file(problems_dir: Path, name: str) -> dict[str, Any] | None:
    from kanpde.training.config import load_config

    path = problems_dir.parent / "solvers" / f"{name}.toml"
    return load_config(path).to_dict() if path.is_file() else None


def jobs(budget: str, seeds: Sequence[int], mlp_seeds: Sequence[int], path: Path, work: Path,
         quiet: bool = True) -> list[Job]:
    """Every kanpde run of the claim (tuning studies are run first when unfinished)."""
    from kanpde.cli.bench.tuned import tuned_jobs

    b = CLAIM_BUDGETS[budget]
    out = [Job(PROBLEM, "kan[10]-paper-recipe", kan_solver(b), s,
               {"family": "kan", "row": "KAN [2,10,1], the paper's recipe (L-BFGS, G 5->40)"})
           for s in seeds]
    if budget == "full":
        for name, family, row, ss in (
                ("kan_paper_lm", "kan", "KAN [2,10,1], Adam then Levenberg-Marquardt", seeds),
                ("mlp_paper_lm", "mlp", "MLP, Adam then Levenberg-Marquardt", mlp_seeds)):
            solver = _solver_file(path.parent, name)
            if solver is not None:
                out += [Job(PROBLEM, name, solver, s, {"family": family, "row": row})
                        for s in ss]
    width = b.mlp_width
    arch = f"[2,{','.join([str(width)] * MLP_ARCH['depth'])},1]"
    out += [Job(PROBLEM, "mlp4x100-deepxde-recipe",
                budgets.deepxde_solver(deepxde_recipe(budget)), s,
                {"family": "mlp", "row": f"MLP {arch}, DeepXDE's recipe, run by kanpde"})
            for s in mlp_seeds]
    effort = {"trials": b.trials, "time_per_trial": b.time_per_trial, "quiet": quiet}
    mlp_fixed = {**MLP_ARCH, "width": width}
    for family, label, fixed, cap, ss, row in (
            ("kan", "kan[10]-tuned", KAN_ARCH, None, seeds, "KAN [2,10,1], tuned"),
            ("mlp", "mlp4x100-tuned", mlp_fixed, None, mlp_seeds, f"MLP {arch}, tuned"),
            ("kan", "kan-tuned", None, MLP_PARAMS, seeds,
             f"KAN of any size <= {MLP_PARAMS} params, tuned"),
            ("mlp", "mlp-tuned", None, MLP_PARAMS, mlp_seeds,
             f"MLP of any size <= {MLP_PARAMS} params, tuned")):
        out += tuned_jobs(PROBLEM, path, family, budget, work, ss, label=label, fixed=fixed,
                          max_params=cap, tags={"row": row}, **effort)
    return out


def anchor_records(budget: str, mlp_seeds: Sequence[int], path: Path,
                   work: Path) -> list[dict[str, Any]]:
    """DeepXDE's own run of its recipe for the paper's MLP (a "missing" row without it)."""
    from kanpde.cli.bench.anchors import anchor_record

    recipe = deepxde_recipe(budget)
    out = []
    for s in mlp_seeds:
        rec = anchor_record(PROBLEM, path, "deepxde", recipe, s, work / "anchors")
        out.append({**rec, "label": "mlp4x100-deepxde", "family": "mlp",
                    "row": "same MLP and recipe, run by DeepXDE 1.15"})
    return out


def rows(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per label (median [min–max] over seeds); the paper-recipe KAN also at every
    grid size it passes."""
    out = []
    paper = [r for r in records if r["label"] == "kan[10]-paper-recipe"]
    stages: dict[int, list[dict[str, Any]]] = {}
    for r in paper:
        for pt in report.stage_points(r)[:-1]:
            stages.setdefault(pt["grid"], []).append(pt)
    for grid, pts in sorted(stages.items()):
        out.append({"label": f"kan[10]-paper-recipe@G{grid}", "family": "kan",
                    "model": f"  same KAN after its G = {grid} stage",
                    "n_params": pts[0]["n_params"], "seeds": len(pts),
                    "status": ["ok"], "mse": spread([p["mse"] for p in pts]),
                    "h1_mse": spread([]), "l2_rel": spread([p["l2_rel"] for p in pts]),
                    "wall_time_s": spread([p["elapsed_s"] for p in pts]),
                    "cpu_time_s": spread([])})
    for label in dict.fromkeys(r["label"] for r in records):
        runs = [r for r in records if r["label"] == label]
        ok = [r for r in runs if r.get("status") in ("ok", "max_time")]
        out.append({"label": label, "family": runs[0].get("family"),
                    "model": runs[0].get("row", label),
                    "n_params": next((r.get("n_params") for r in ok), None),
                    "seeds": len(runs), "status": sorted({str(r.get("status")) for r in runs}),
                    "tuning": runs[0].get("tuning"),
                    **{k: spread([r.get(k) for r in ok])
                       for k in ("mse", "h1_mse", "l2_rel", "wall_time_s", "cpu_time_s")}})
    return out


PAIRS = (
    ("the paper's models, each with its community's recipe", "kan[10]-paper-recipe",
     "mlp4x100-deepxde-recipe"),
    ("the paper's models, both tuned with the same effort", "kan[10]-tuned",
     "mlp4x100-tuned"),
    ("the best of each family up to the MLP's size, tuned with the same effort", "kan-tuned",
     "mlp-tuned"),
    ("second-order recipes", "kan_paper_lm", "mlp_paper_lm"),
)


def verdict(table: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """For each pair of :data:`PAIRS` present: MLP/KAN ratios of MSE, parameters and time,
    and which is more accurate (by the medians)."""
    by = {r["label"]: r for r in table}
    out = []
    for what, kan_label, mlp_label in PAIRS:
        kan, mlp = by.get(kan_label), by.get(mlp_label)
        if not kan or not mlp or kan["mse"]["median"] is None or mlp["mse"]["median"] is None:
            continue
        ek, em = kan["mse"]["median"], mlp["mse"]["median"]
        clock, tk, tm = _times(kan, mlp)
        out.append({"pair": what, "kan": kan["model"], "mlp": mlp["model"],
                    "mse_ratio_mlp_over_kan": em / ek if ek else None,
                    "params_ratio_mlp_over_kan": (mlp["n_params"] / kan["n_params"]
                                                  if kan["n_params"] else None),
                    "time_ratio_kan_over_mlp": tk / tm if tk and tm else None,
                    "clock": clock, "more_accurate": "KAN" if ek < em else "MLP"})
    anchor, mine = by.get("mlp4x100-deepxde"), by.get("mlp4x100-deepxde-recipe")
    if anchor and mine and anchor["mse"]["median"] and mine["mse"]["median"]:
        clock, ta, tm = _times(anchor, mine)
        out.append({"pair": "DeepXDE's own run over kanpde's run of its recipe",
                    "mse_ratio_deepxde_over_kanpde": anchor["mse"]["median"]
                    / mine["mse"]["median"],
                    "time_ratio_deepxde_over_kanpde": ta / tm if ta and tm else None,
                    "clock": clock})
    return out


def _times(a: Mapping[str, Any], b: Mapping[str, Any]) -> tuple[str, Any, Any]:
    """The median times of two rows on the CPU clock when both have it (runs beside other
    jobs slow the wall clock unevenly), else on the wall clock."""
    ca, cb = a["cpu_time_s"]["median"], b["cpu_time_s"]["median"]
    if ca and cb:
        return "CPU", ca, cb
    return "wall", a["wall_time_s"]["median"], b["wall_time_s"]["median"]


def markdown(table: Sequence[Mapping[str, Any]], v: Sequence[Mapping[str, Any]], budget: str,
             command: str) -> str:
    """``claim.md``."""
    b = CLAIM_BUDGETS[budget]
    lines = [
        "# The KAN paper's §3.4 Poisson claim, with fair baselines", "",
        f"Command: `{command}`", "",
        f"Problem `{PROBLEM}`, float64, forward jets. The paper's KAN recipe: {b.interior} "
        f"interior points, {b.boundary} per condition, residual weight 1e-4, L-BFGS stages of "
        f"{', '.join(map(str, b.lbfgs_steps))} iterations at G = "
        f"{', '.join(map(str, b.grids))}. DeepXDE's recipe: its points "
        f"({budgets.DEEPXDE_RECIPE[budget]['interior']} + "
        f"{budgets.DEEPXDE_RECIPE[budget]['boundary']}), PDE weight 0.01, Adam lr 1e-3 then "
        f"L-BFGS. Tuned rows: {b.trials} `kanpde tune` trials of {b.time_per_trial:g} s each "
        f"per row (search space '{budgets.TUNE_BUDGETS[budget]['space']}' of "
        "`kanpde.tune.budgets.SEARCH_SPACES`, the "
        "architecture held where the row names it), selected by the PINN loss on fresh "
        "validation points, then trained with every seed for the steps the selected trial "
        "ran. mse = squared L2 error, h1_mse = squared H1 error (means over the evaluation "
        "grid); median [min–max] over seeds.", "",
        report.machine_line(), "",
    ]
    lines.append(common.markdown_table(
        ["model", "params", "seeds", "mse (L2^2)", "h1_mse (H1^2)", "l2_rel", "wall time s",
         "CPU time s", "status"],
        [[r["model"], r["n_params"] if r["n_params"] is not None else "n/a", r["seeds"],
          spread_cell(r["mse"]), spread_cell(r["h1_mse"]), spread_cell(r["l2_rel"]),
          spread_cell(r["wall_time_s"], ".0f"), spread_cell(r["cpu_time_s"], ".0f"),
          "; ".join(r["status"])] for r in table]))
    lines += ["", "## The claim, pair by pair", ""]
    for p in v:
        if "mse_ratio_deepxde_over_kanpde" in p:
            t = p["time_ratio_deepxde_over_kanpde"]
            lines.append(f"- {p['pair']}: DeepXDE's MSE is "
                         f"{p['mse_ratio_deepxde_over_kanpde']:.3g}x kanpde's"
                         + (f"; it took {t:.3g}x kanpde's {p['clock']} time." if t else "."))
            continue
        lines.append(
            f"- {p['pair']}: the **{p['more_accurate']}** is more accurate. The MLP's "
            f"squared L2 error is {p['mse_ratio_mlp_over_kan']:.3g}x the KAN's; the MLP has "
            f"{p['params_ratio_mlp_over_kan']:.3g}x the KAN's parameters; the KAN took "
            + (f"{p['time_ratio_kan_over_mlp']:.3g}x" if p["time_ratio_kan_over_mlp"]
               else "n/a") + f" the MLP's {p['clock']} time.")
    return "\n".join(lines) + "\n"


def figure(table: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """Squared L2 error against parameters and against wall time, one marker per row."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10.5, 4.6), layout="constrained")
    axes = fig.subplots(1, 2)
    colours = {"kan": "tab:blue", "mlp": "tab:red"}
    markers = "osD^v<>p*hX"
    for i, r in enumerate(x for x in table if x["mse"]["median"]):
        for ax, key in zip(axes, ("n_params", "wall_time_s"), strict=True):
            xv = r[key] if key == "n_params" else r[key]["median"]
            if not xv:
                continue
            ax.loglog([xv], [r["mse"]["median"]], marker=markers[i % len(markers)], ls="none",
                      color=colours.get(r["family"], "k"), ms=7, mec="k", mew=0.5,
                      label=r["model"].strip() if ax is axes[0] else None)
    for ax, label in zip(axes, ("trainable parameters", "wall time [s]"), strict=True):
        ax.set(xlabel=label, ylabel="squared L2 error (mse)")
        ax.grid(True, which="both", alpha=0.3)
    fig.suptitle(f"{PROBLEM}: KAN paper §3.4 with fair baselines (blue KAN, red MLP)")
    fig.legend(loc="outside lower center", ncols=2, fontsize=7, frameon=False)
    return report.save_figure(fig, path)


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    report.add_common_arguments(parser, problems=False)
    parser.add_argument("--mlp-seeds", nargs="+", type=common.seed, default=[0], metavar="SEED",
                        help="seeds of the MLPs (default 0; --seeds applies to the KANs)")


def run(args: argparse.Namespace) -> int:
    """Run (or continue) the comparison and write its table; returns the exit status."""
    budget = check_budget(args.budget)
    problems = resolve_problems([PROBLEM], args.problems_dir)
    if not args.seeds or not args.mlp_seeds:
        raise ValueError("--seeds and --mlp-seeds need at least one seed each")
    work = Path(args.work) / f"claim-{budget}"
    path = problems[PROBLEM]
    todo = jobs(budget, args.seeds, args.mlp_seeds, path, work, quiet=not args.progress)
    records = run_jobs(todo, problems, work, quiet=not args.progress)
    records += anchor_records(budget, args.mlp_seeds, path, work)
    table = rows(records)
    v = verdict(table)
    command = report.command_line("claim", args, options=["--mlp-seeds", *map(
        str, args.mlp_seeds)] if args.mlp_seeds != [0] else [])
    text = markdown(table, v, budget, command)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "claim.md").write_text(text)
    report.write_json(out / "claim.json", {"problem": PROBLEM, "budget": budget,
                                           "rows": table, "verdict": v})
    figure(table, out / "figures" / f"claim_{PROBLEM}.png")
    print(text)
    print(f"wrote {out / 'claim.md'}, {out / 'claim.json'} and "
          f"{out / 'figures' / f'claim_{PROBLEM}.png'}")
    return 0


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``kanpde bench claim``."""
    return common.add_subcommand(subparsers, "claim", "the KAN paper's §3.4 Poisson claim "
                                 "with fair baselines", __doc__, _add_arguments, run)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m kanpde.cli.bench.claim [options]``."""
    return common.standalone_main("claim", __doc__, _add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
