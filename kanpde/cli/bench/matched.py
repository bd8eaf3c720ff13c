"""``kanpde bench matched``: the smallest KAN and the smallest MLP that reach a target error.

The KAN paper's "100x fewer parameters" claim, tested problem by problem. For each problem a
small sweep is trained at one matched budget (:mod:`kanpde.tune.budgets`): KANs ``[d, 5, m]``
and ``[d, 10, m]`` whose grid is extended G = 3 -> 5 -> 10 -> 20 between L-BFGS stages (the
model as each stage leaves it is one candidate size, with the steps and time spent up to
then), and tanh MLPs ``[d, 8, 8, m]`` ... ``[d, 64, 64, m]`` trained for the same total steps.
For every target error the table names the smallest candidate of each family whose median
l2_rel over the seeds reaches it, its parameters and time, and the parameter ratio.
Beside this fixed sweep, each family is tuned under each parameter cap of
:data:`kanpde.tune.budgets.MATCHED_TUNING` with the same effort (``kanpde tune`` trials of the
same wall time, selected by validation loss), and each selected model is a candidate too, so
the smallest model of a family reaching a target is the smallest of its tuned and untuned
candidates. Writes ``OUT/matched.md`` and ``OUT/matched.json``; runs and studies are kept in
``--work`` (resumable).

Example::

    kanpde bench matched --budget full --out results
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from kanpde.cli.bench import common, report
from kanpde.cli.bench.runner import Job, check_budget, resolve_problems, run_jobs
from kanpde.io.aggregate import spread
from kanpde.tune import budgets

DEFAULT_TARGETS = (1e-2, 1e-3)
"""Target relative L2 errors of the views when ``--targets`` is not given."""


def jobs(problems: Sequence[str], budget: str, seeds: Sequence[int]) -> list[Job]:
    """Every problem x sweep size x seed."""
    sched = budgets.SCHEDULES["matched"][budget]
    out = []
    for p in problems:
        for widths in budgets.MATCHED_KAN_WIDTHS:
            out += [Job(p, budgets.kan_label(widths), budgets.kan_solver(sched, widths), s,
                        {"family": "kan"}) for s in seeds]
        for widths in budgets.MATCHED_MLP_WIDTHS:
            out += [Job(p, budgets.mlp_label(widths), budgets.mlp_solver(sched, widths), s,
                        {"family": "mlp"}) for s in seeds]
    return out


def tuned(problems: Mapping[str, Path], budget: str, seeds: Sequence[int], work: Path,
          quiet: bool = True) -> list[Job]:
    """Every problem x family x parameter cap: the configuration a study under the cap
    selected, trained with every seed."""
    from kanpde.cli.bench.tuned import tuned_jobs

    mt = budgets.MATCHED_TUNING[budget]
    return [job for name, path in problems.items() for family in ("kan", "mlp")
            for cap in mt["caps"]
            for job in tuned_jobs(name, path, family, budget, work, seeds,
                                  label=f"{family}-tuned-cap{cap}", max_params=cap,
                                  trials=mt["trials"], time_per_trial=mt["time_per_trial"],
                                  quiet=quiet)]


def candidates(records: Sequence[Mapping[str, Any]], problem: str) -> list[dict[str, Any]]:
    """Sizes of one problem with their median error and time over seeds.

    A KAN run contributes one candidate per L-BFGS stage (one per grid size); an MLP run one
    (its final model).
    """
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in records:
        if r["problem"] != problem:
            continue
        if r.get("model") == "kan" and not r.get("tuned"):
            for pt in report.stage_points(r):
                label = f"{r['label']}G{pt['grid']}"
                groups.setdefault(("kan", label), []).append(
                    {"n_params": pt["n_params"], "l2_rel": pt["l2_rel"],
                     "time_s": pt["elapsed_s"], "steps": pt["steps"]})
        else:
            groups.setdefault((str(r.get("model")), r["label"]), []).append(
                {"n_params": r.get("n_params"), "l2_rel": r.get("l2_rel"),
                 "time_s": r.get("wall_time_s"), "steps": r.get("steps")})
    out = []
    for (family, label), runs in groups.items():
        l2 = spread([g["l2_rel"] for g in runs])
        times = [g["time_s"] for g in runs if g["time_s"] is not None]
        out.append({"family": family, "label": label, "n_params": runs[0]["n_params"],
                    "l2_rel": l2, "time_s": statistics.median(times) if times else None,
                    "steps": runs[0]["steps"], "seeds": len(runs)})
    return sorted(out, key=lambda c: (c["family"], c["n_params"] or 0))


def smallest(cands: Sequence[Mapping[str, Any]], family: str,
             target: float) -> Mapping[str, Any] | None:
    """The candidate of ``family`` with the fewest parameters whose median l2_rel <= target."""
    ok = [c for c in cands if c["family"] == family and c["l2_rel"]["median"] is not None
          and c["l2_rel"]["median"] <= target]
    return min(ok, key=lambda c: c["n_params"], default=None)


def best(cands: Sequence[Mapping[str, Any]], family: str) -> Mapping[str, Any] | None:
    """The candidate of ``family`` with the lowest median l2_rel."""
    ok = [c for c in cands if c["family"] == family and c["l2_rel"]["median"] is not None]
    return min(ok, key=lambda c: c["l2_rel"]["median"], default=None)


def views(records: Sequence[Mapping[str, Any]], problems: Sequence[str],
          targets: Sequence[float]) -> list[dict[str, Any]]:
    """One row per (problem, target): the smallest KAN and MLP reaching it."""
    rows = []
    for p in problems:
        cands = candidates(records, p)
        for t in targets:
            kan, mlp = smallest(cands, "kan", t), smallest(cands, "mlp", t)
            ratio = (mlp["n_params"] / kan["n_params"]) if kan and mlp else None
            rows.append({"problem": p, "target": t, "kan": kan, "mlp": mlp,
                         "params_ratio_mlp_over_kan": ratio,
                         "best_kan": best(cands, "kan"), "best_mlp": best(cands, "mlp")})
    return rows


def _who(c: Mapping[str, Any] | None, fallback: Mapping[str, Any] | None) -> list[str]:
    if c is None:
        note = ("not reached" if fallback is None else
                f"not reached (best {report.fmt(fallback['l2_rel']['median'])}, "
                f"{fallback['label']})")
        return [note, "", "", ""]
    return [c["label"], str(c["n_params"]), report.fmt(c["l2_rel"]["median"]),
            report.fmt(c["time_s"], ".1f")]


def markdown(rows: Sequence[Mapping[str, Any]], budget: str, command: str) -> str:
    """``matched.md``."""
    sched = budgets.SCHEDULES["matched"][budget]
    kans = ", ".join(budgets.kan_label(w) for w in budgets.MATCHED_KAN_WIDTHS)
    lines = [
        "# Matched views: the smallest KAN and MLP that reach a target error", "",
        f"Command: `{command}`", "",
        f"Budget `{budget}`: {sched.interior} interior points, {sched.boundary} per condition, "
        f"Adam {sched.adam_steps} steps then {len(sched.grids)} L-BFGS stages of "
        f"{sched.lbfgs_steps}; KANs {kans}"
        f" with G = {' -> '.join(map(str, sched.grids))} (the model after each stage is a "
        "candidate; its time and steps are those spent up to that stage), MLPs "
        f"{', '.join(budgets.mlp_label(w) for w in budgets.MATCHED_MLP_WIDTHS)} (tanh) trained "
        f"for all {sched.steps} steps. Tuned candidates (`*-tuned-capP`): each family tuned "
        f"under each parameter cap P in {list(budgets.MATCHED_TUNING[budget]['caps'])} with "
        f"{budgets.MATCHED_TUNING[budget]['trials']} trials of "
        f"{budgets.MATCHED_TUNING[budget]['time_per_trial']:g} s, selected by validation loss. "
        "Median l2_rel over seeds.", "",
        report.machine_line(), "",
    ]
    table = [[r["problem"], f"{r['target']:.0e}", *_who(r["kan"], r["best_kan"]),
              *_who(r["mlp"], r["best_mlp"]), report.fmt(r["params_ratio_mlp_over_kan"], ".1f")]
             for r in rows]
    lines.append(common.markdown_table(
        ["problem", "target", "KAN", "params", "l2_rel", "time s", "MLP", "params", "l2_rel",
         "time s", "MLP/KAN params"], table))
    return "\n".join(lines) + "\n"


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    report.add_common_arguments(parser, seeds=(0,))
    parser.add_argument("--targets", nargs="+", type=float, default=list(DEFAULT_TARGETS),
                        metavar="L2", help="target relative L2 errors (default 1e-2 1e-3)")
    parser.add_argument("--no-tuned", dest="tuned", action="store_false",
                        help="the fixed sweep only (no tuned candidates)")


def run(args: argparse.Namespace) -> int:
    """Run (or continue) the sweep and write the matched views; returns the exit status."""
    budget = check_budget(args.budget)
    problems = resolve_problems(args.problems, args.problems_dir)
    if not args.seeds:
        raise ValueError("--seeds: give at least one seed")
    if any(not t > 0 for t in args.targets):
        raise ValueError(f"--targets must be positive, got {args.targets}")
    work = Path(args.work) / f"matched-{budget}"
    todo = jobs(list(problems), budget, args.seeds)
    if args.tuned:
        todo += tuned(problems, budget, args.seeds, work, quiet=not args.progress)
    records = run_jobs(todo, problems, work, quiet=not args.progress)
    rows = views(records, list(problems), args.targets)
    options = [] if args.tuned else ["--no-tuned"]
    if list(args.targets) != list(DEFAULT_TARGETS):
        options += ["--targets", *(f"{t:g}" for t in args.targets)]
    text = markdown(rows, budget, report.command_line("matched", args, options=options))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "matched.md").write_text(text)
    report.write_json(out / "matched.json", {
        "budget": budget, "targets": args.targets, "views": rows,
        "candidates": {p: candidates(records, p) for p in problems},
        "runs": [report.slim(r) for r in records]})
    print(text)
    print(f"wrote {out / 'matched.md'} and {out / 'matched.json'}")
    return 0


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``kanpde bench matched``."""
    return common.add_subcommand(subparsers, "matched", "the smallest KAN and MLP reaching a "
                                 "target error, per problem", __doc__, _add_arguments, run)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m kanpde.cli.bench.matched [options]``."""
    return common.standalone_main("matched", __doc__, _add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
