"""``kanpde bench anchors``: kanpde beside DeepXDE and pykan, on the same problem and points.

A comparison of KANs and MLPs is only as good as its baselines. This benchmark shows that
kanpde's are as good as the originals: it trains each problem

* with DeepXDE (its ordinary MLP recipe: Glorot-normal tanh ``[d, 20, 20, m]``, PDE weight
  0.01, Adam lr 1e-3 for 3000 steps, then L-BFGS for 1000 iterations) and with kanpde's MLP
  on the same recipe;
* with pykan (its PDE tutorial's recipe at the paper's width: KAN ``[d, 10, m]``,
  G 5 -> 10 -> 20, L-BFGS with grid updates) and with kanpde's KAN on the same recipe,

all four on exactly the same collocation and condition points (kanpde's sampler and seed;
the libraries get them as anchors / input tensors), one torch thread per run, each library
run in its own process. It reports the squared L2 error (MSE), the relative L2 error, wall
and CPU time, time per optimiser step, the time to reach MSE 1e-4 ... 1e-7, and the
anchor/kanpde ratio of each, measured in the same run (recipes:
:data:`kanpde.tune.budgets.DEEPXDE_RECIPE`, :data:`kanpde.tune.budgets.PYKAN_RECIPE`).

The libraries are the optional extra ``pip install -e ".[anchors]"`` (DeepXDE 1.15, pykan
0.2.8); without it the benchmark says so in its table and still runs kanpde's rows. A
problem a library cannot express (unknown parameters, a hard constraint) gets a "not
supported" row. Anchor records are kept in ``WORK/anchors-<budget>/`` and kanpde runs in
run directories beside them, so an interrupted benchmark continues where it stopped.

Example::

    kanpde bench anchors --budget full --seeds 0 1 2 --pykan-seeds 0 --out results
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import statistics
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from kanpde.cli.bench import common, report
from kanpde.cli.bench.runner import Job, check_budget, resolve_problems, run_jobs
from kanpde.io.aggregate import spread, spread_cell
from kanpde.io.curves import error_curve, time_to
from kanpde.tune import budgets

MSE_LEVELS = (1e-4, 1e-5, 1e-6, 1e-7)
"""Squared L2 error levels of the time-to-level table."""

LIBRARIES: dict[str, dict[str, Any]] = {
    "deepxde": {"family": "mlp", "module": "deepxde", "recipes": budgets.DEEPXDE_RECIPE,
                "solver": budgets.deepxde_solver, "name": "DeepXDE 1.15"},
    "pykan": {"family": "kan", "module": "kan", "recipes": budgets.PYKAN_RECIPE,
              "solver": budgets.pykan_solver, "name": "pykan 0.2.8"},
}
INSTALL_HINT = "pip install -e \".[anchors]\""


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _sampling(recipe: Mapping[str, Any]) -> dict[str, Any]:
    return {"interior": recipe["interior"], "boundary": recipe["boundary"], "method": "sobol"}


def anchor_record(problem: str, path: Path, library: str, recipe: Mapping[str, Any],
                  seed: int, work: Path) -> dict[str, Any]:
    """The record of one library run (read from ``work`` when it finished earlier)."""
    lib = LIBRARIES[library]
    label = f"{library}"
    out = work / problem / f"{label}-seed{seed}.json"
    base = {"problem": problem, "solver": label, "recipe": library, "library": library,
            "model": lib["family"], "seed": seed}
    if out.is_file():
        return {**base, **json.loads(out.read_text())}
    if not _installed(lib["module"]):
        return {**base, "status": f"missing: {lib['name']} is not installed ({INSTALL_HINT})"}
    spec = {"problem_path": str(path), "library": library, "label": label,
            "family": lib["family"], "seed": seed, "recipe": dict(recipe),
            "sampling": _sampling(recipe), "workdir": str(out.parent / f"{label}-seed{seed}")}
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "DDE_BACKEND": "pytorch"}
    record = common.run_worker("kanpde.cli.bench.anchor_worker:run_anchor", spec, env=env)
    status = str(record.get("status", ""))
    if status == "ok" or status.startswith("not supported"):
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(record, indent=1))
    print(f"{problem:18s} {label:10s} seed {seed}: mse {report.fmt(record.get('mse'))}  "
          f"{report.fmt(record.get('wall_time_s'), '.1f')} s  ({status})", file=sys.stderr,
          flush=True)
    return {**base, **record}


def kanpde_jobs(problem: str, library: str, recipe: Mapping[str, Any],
                seeds: Sequence[int]) -> list[Job]:
    """kanpde's runs of a library's recipe."""
    config = LIBRARIES[library]["solver"](dict(recipe))
    return [Job(problem, f"kanpde-{library}-recipe", config, seed,
                tags={"recipe": library, "library": "kanpde"}) for seed in seeds]


def _history(record: Mapping[str, Any]) -> Mapping[str, Any]:
    if "history" in record:
        return record["history"]
    from kanpde.io.results import load_result

    return load_result(record["run_dir"]).history


def _per_step(record: Mapping[str, Any]) -> dict[str, float]:
    """Seconds per step of each optimiser ("adam", "lbfgs")."""
    if "stage_times" in record and "stage_steps" in record:
        return {k: record["stage_times"][k] / n for k, n in record["stage_steps"].items() if n}
    if "stage_times" in record:  # pykan: L-BFGS only
        t = sum(v for k, v in record["stage_times"].items() if k.startswith("G="))
        return {"lbfgs": t / record["steps"]} if record.get("steps") else {}
    out: dict[str, list[float]] = {}
    for st in record.get("stages") or []:
        out.setdefault(st["optimizer"], [0.0, 0.0])
        out[st["optimizer"]][0] += st["wall_time_s"]
        out[st["optimizer"]][1] += st["steps_run"]
    return {k: t / n for k, (t, n) in out.items() if n}


def _median(values: Sequence[float | None]) -> float | None:
    ok = [v for v in values if v is not None and math.isfinite(v)]
    return statistics.median(ok) if ok else None


def summarize(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per (problem, recipe, implementation) with medians over seeds."""
    rows = []
    keys = dict.fromkeys((r["problem"], r["recipe"], r["library"]) for r in records)
    for problem, recipe, library in keys:
        runs = [r for r in records if (r["problem"], r["recipe"], r["library"])
                == (problem, recipe, library)]
        ok = [r for r in runs if r.get("status") == "ok"]
        curves = [error_curve(_history(r), "wall", "mse") for r in ok]
        steps = [_per_step(r) for r in ok]
        rows.append({
            "problem": problem, "recipe": recipe, "library": library,
            "model": runs[0].get("model"), "n_params": ok[0].get("n_params") if ok else None,
            "seeds": [r.get("seed") for r in runs],
            "status": sorted({str(r.get("status")) for r in runs}),
            **{k: spread(r.get(k) for r in ok) for k in ("mse", "l2_rel", "wall_time_s",
                                                        "cpu_time_s")},
            "s_per_step": {opt: _median([s.get(opt) for s in steps])
                           for opt in ("adam", "lbfgs")},
            "time_to_mse": {f"{lv:g}": _median_never([time_to(c, lv) for c in curves])
                            for lv in MSE_LEVELS},
        })
    return rows


def _median_never(values: Sequence[float | None]) -> float | None:
    if not values:
        return None
    keyed = sorted(math.inf if v is None else v for v in values)
    med = statistics.median(keyed)
    return None if math.isinf(med) else med


def ratios(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """anchor / kanpde ratios per (problem, recipe): MSE, wall and CPU time, time per step,
    time to each MSE level both reached (above 1: kanpde is better or faster)."""
    out = []
    for anchor in (r for r in rows if r["library"] != "kanpde"):
        mine = next((r for r in rows if r["library"] == "kanpde"
                     and (r["problem"], r["recipe"]) == (anchor["problem"], anchor["recipe"])),
                    None)
        if mine is None:
            continue

        def ratio(a: float | None, b: float | None) -> float | None:
            return a / b if a is not None and b and math.isfinite(a) else None

        out.append({
            "problem": anchor["problem"], "recipe": anchor["recipe"],
            "mse": ratio(anchor["mse"]["median"], mine["mse"]["median"]),
            "wall_time": ratio(anchor["wall_time_s"]["median"], mine["wall_time_s"]["median"]),
            "cpu_time": ratio(anchor["cpu_time_s"]["median"], mine["cpu_time_s"]["median"]),
            "s_per_step": {k: ratio(anchor["s_per_step"].get(k), mine["s_per_step"].get(k))
                           for k in ("adam", "lbfgs")},
            "time_to_mse": {k: ratio(anchor["time_to_mse"][k], mine["time_to_mse"][k])
                            for k in anchor["time_to_mse"]},
        })
    return out


def markdown(rows: Sequence[Mapping[str, Any]], rat: Sequence[Mapping[str, Any]],
             budget: str, command: str) -> str:
    """``anchors.md``."""
    lv = [f"{x:g}" for x in MSE_LEVELS]
    f = report.fmt
    lines = ["# kanpde beside DeepXDE and pykan", "",
             f"Budget `{budget}`; command: `{command}`.", "", report.machine_line(), "",
             "Each recipe runs through its own library and through kanpde, on the same "
             "points, one torch thread per run, float64. Medians [min–max] over seeds; "
             "times to an MSE level are medians over seeds (never: not reached by half of "
             "them).", "",
             "| problem | recipe | run by | model | params | seeds | MSE | l2_rel | wall s "
             "| CPU s | s/step Adam | s/step L-BFGS | "
             + " | ".join(f"s to MSE {x}" for x in lv) + " | status |",
             "|:---|:---|:---|:---|---:|---:|---:|---:|---:|---:|---:|---:|"
             + "---:|" * len(lv) + ":---|"]
    for r in rows:
        ttm = [f(r["time_to_mse"][x], ".3g") if r["time_to_mse"][x] is not None else "never"
               for x in lv]
        who = LIBRARIES[r["library"]]["name"] if r["library"] in LIBRARIES else "kanpde"
        lines.append(
            f"| {r['problem']} | {r['recipe']} | {who} | {r['model']} | "
            f"{r['n_params'] if r['n_params'] is not None else 'n/a'} | {len(r['seeds'])} | "
            f"{spread_cell(r['mse'])} | {spread_cell(r['l2_rel'])} | "
            f"{spread_cell(r['wall_time_s'], '.1f')} | {spread_cell(r['cpu_time_s'], '.1f')} | "
            f"{f(r['s_per_step']['adam'], '.3g')} | {f(r['s_per_step']['lbfgs'], '.3g')} | "
            + " | ".join(ttm) + f" | {'; '.join(r['status'])} |")
    if rat:
        lines += ["", "## anchor / kanpde, same run (above 1: kanpde more accurate or faster)",
                  "", "| problem | recipe | MSE | wall time | CPU time | s/step Adam "
                      "| s/step L-BFGS | " + " | ".join(f"time to MSE {x}" for x in lv) + " |",
                  "|:---|:---|---:|---:|---:|---:|---:|" + "---:|" * len(lv)]
        for q in rat:
            lines.append(
                f"| {q['problem']} | {q['recipe']} | {f(q['mse'], '.3g')} | "
                f"{f(q['wall_time'], '.3g')} | {f(q['cpu_time'], '.3g')} | "
                f"{f(q['s_per_step']['adam'], '.3g')} | {f(q['s_per_step']['lbfgs'], '.3g')} | "
                + " | ".join(f(q["time_to_mse"][x], ".3g") for x in lv) + " |")
    missing = sorted({s for r in rows for s in r["status"] if s.startswith("missing")})
    if missing:
        lines += ["", "Not run: " + "; ".join(missing) + "."]
    return "\n".join(lines) + "\n"


def figure(records: Sequence[Mapping[str, Any]], problem: str, path: Path) -> Path:
    """MSE against wall time, one line per run, the four implementations in four colours."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.2), layout="constrained")
    ax = fig.subplots()
    colours = {("deepxde", "deepxde"): "tab:red", ("deepxde", "kanpde"): "tab:orange",
               ("pykan", "pykan"): "tab:blue", ("pykan", "kanpde"): "tab:cyan"}
    seen = set()
    for r in records:
        if r["problem"] != problem or r.get("status") != "ok":
            continue
        t, e = error_curve(_history(r), "wall", "mse")
        keep = (t > 0) & (e > 0)
        key = (r["recipe"], r["library"])
        label = None if key in seen else f"{r['recipe']} recipe via {r['library']}"
        seen.add(key)
        ax.step(t[keep], e[keep], where="post", color=colours.get(key, "k"), lw=1.2,
                label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set(xlabel="wall time [s]", ylabel="MSE (squared L2 error)",
           title=f"{problem}: best MSE so far")
    ax.grid(True, which="both", alpha=0.3)
    if seen:
        ax.legend(fontsize="small")
    return report.save_figure(fig, path)


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("problems_pos", nargs="*", metavar="PROBLEM",
                        help="problem names or files (default: poisson2d_paper)")
    report.add_common_arguments(parser, problems=False)
    parser.add_argument("--pykan-seeds", nargs="+", type=common.seed, default=[0], metavar="SEED",
                        help="seeds of the pykan recipe (default 0; about an hour per seed "
                             "through pykan on one CPU thread at the full budget)")
    parser.add_argument("--libraries", nargs="+", choices=sorted(LIBRARIES),
                        default=sorted(LIBRARIES), help="which recipes to run (default both)")


def run(args: argparse.Namespace) -> int:
    """Run (or continue) the anchors benchmark and write its tables."""
    import torch

    budget = check_budget(args.budget)
    problems = resolve_problems(args.problems_pos or ["poisson2d_paper"], args.problems_dir)
    if not args.seeds or not args.pykan_seeds:
        raise ValueError("--seeds/--pykan-seeds: give at least one seed")
    torch.set_num_threads(1)
    work = Path(args.work) / f"anchors-{budget}"
    records: list[dict[str, Any]] = []
    for name, path in problems.items():
        for library in args.libraries:
            recipe = LIBRARIES[library]["recipes"][budget]
            seeds = args.seeds if library == "deepxde" else args.pykan_seeds
            for seed in seeds:
                records.append(anchor_record(name, path, library, recipe, seed, work))
            records += run_jobs(kanpde_jobs(name, library, recipe, seeds), problems,
                                work / "kanpde", quiet=not args.progress)
    rows = summarize(records)
    rat = ratios(rows)
    text = markdown(rows, rat, budget, report.command_line(
        "anchors", args, args.problems_pos, ["--pykan-seeds", *map(str, args.pykan_seeds)]))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "anchors.md").write_text(text)
    slim = [{k: v for k, v in r.items() if k not in ("history", "traceback")} for r in records]
    report.write_json(out / "anchors.json", {"budget": budget, "rows": rows, "ratios": rat,
                                             "runs": slim})
    for name in problems:
        figure(records, name, out / "figures" / f"anchors_{name}.png")
    print(text)
    print(f"wrote {out / 'anchors.md'}, {out / 'anchors.json'} and "
          f"{out / 'figures'}/anchors_*.png")
    return 0


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``kanpde bench anchors``."""
    return common.add_subcommand(subparsers, "anchors", "kanpde beside DeepXDE and pykan on "
                                 "the same problem, points and recipe", __doc__,
                                 _add_arguments, run)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m kanpde.cli.bench.anchors [options]``."""
    return common.standalone_main("anchors", __doc__, _add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
