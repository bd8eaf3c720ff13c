"""``kanpde bench suite``: KAN vs MLP on every problem of the suite at a matched budget.

For each problem a ``[d, 10, m]`` KAN (cubic splines, grid G = 5 -> 10 -> 20 by extension in
the ``full`` budget) and a ``[d, 32, 32, m]`` tanh MLP are trained on the same points with the
same optimiser stages and step counts (:mod:`kanpde.tune.budgets`), over several seeds.
Beside this fixed recipe, each family is tuned with the same effort (the same number of
``kanpde tune`` trials of the same wall time, selected by validation loss; see
:mod:`kanpde.cli.bench.tuned`) and the selected configuration is trained with every seed; the
tuned KAN against the tuned MLP is the comparison the tables lead with.
Writes ``OUT/suite.md`` (problem, model, parameters, l2_rel median [min–max], max error, wall
time, steps), ``OUT/suite.json`` (every run's summary) and ``OUT/figures/suite_<problem>.png``
(error against time and parameters, one marker per run). Finished runs are kept in ``--work``
and not rerun: an interrupted suite continues where it stopped.

Example::

    kanpde bench suite --budget full --out results
    kanpde bench suite --problems poisson2d_paper heat1d --budget quick --out /tmp/bench
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from kanpde.cli.bench import common, report
from kanpde.cli.bench.runner import Job, check_budget, resolve_problems, run_jobs
from kanpde.io.aggregate import aggregate, spread_cell
from kanpde.tune import budgets

SECOND_ORDER_ROWS = {"lm": "lm", "gauss_newton": "gn"}
"""The second-order methods of the suite's extra rows and their label suffixes."""


def jobs(problems: Sequence[str], budget: str, seeds: Sequence[int],
         second_order: Sequence[str] = tuple(SECOND_ORDER_ROWS)) -> list[Job]:
    """The suite's runs: every problem x {KAN, MLP} x seed, and the same KAN and MLP with
    each method of ``second_order`` (``"lm"``: Levenberg-Marquardt, ``"gauss_newton"``)
    instead of L-BFGS, with the first seed."""
    sched = budgets.SCHEDULES["suite"][budget]
    kw, mw = budgets.SUITE_KAN_WIDTHS, budgets.SUITE_MLP_WIDTHS
    rows = [(budgets.kan_label(kw), budgets.kan_solver(sched, kw), "kan", seeds),
            (budgets.mlp_label(mw), budgets.mlp_solver(sched, mw), "mlp", seeds)]
    steps = budgets.SECOND_ORDER_STEPS[budget]
    for opt, tag in SECOND_ORDER_ROWS.items():
        if opt in second_order:
            rows += [(f"{budgets.kan_label(kw)}-{tag}",
                      budgets.kan_solver(sched, kw, optimizer=opt, steps=steps[opt]), "kan",
                      seeds[:1]),
                     (f"{budgets.mlp_label(mw)}-{tag}",
                      budgets.mlp_solver(sched, mw, optimizer=opt, steps=steps[opt]), "mlp",
                      seeds[:1])]
    return [Job(p, label, solver, seed, {"family": family})
            for p in problems for label, solver, family, ss in rows for seed in ss]


def tuned(problems: Mapping[str, Path], budget: str, seeds: Sequence[int], work: Path,
          quiet: bool = True) -> list[Job]:
    """The tuned runs: per problem and family, the configuration a study of the budget's
    effort selected (by validation loss), trained with every seed."""
    from kanpde.cli.bench.tuned import tuned_jobs

    return [job for name, path in problems.items() for family in ("kan", "mlp")
            for job in tuned_jobs(name, path, family, budget, work, seeds, quiet=quiet)]


def summarize(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per (problem, model): medians and ranges over seeds."""
    return [{"problem": problem, "label": row["solver"], **row}
            for problem in dict.fromkeys(r["problem"] for r in records)
            for row in aggregate([r for r in records if r["problem"] == problem])]


def verdicts(rows: Sequence[Mapping[str, Any]], tuned: bool = False) -> list[dict[str, Any]]:
    """Per problem: median l2_rel of KAN over MLP, time of KAN over MLP, and which is lower
    (the tuned rows when ``tuned``, else the fixed-recipe rows)."""
    out = []

    def pick(problem: str, family: str) -> Mapping[str, Any] | None:
        def kind(r: Mapping[str, Any]) -> str:
            label = str(r.get("label", ""))
            return "tuned" if label.endswith("-tuned") else "second" if label.endswith(
                ("-lm", "-gn")) else "fixed"
        return next((r for r in rows if r["problem"] == problem and r["model"] == family
                     and kind(r) == ("tuned" if tuned else "fixed")), None)

    for problem in dict.fromkeys(r["problem"] for r in rows):
        kan, mlp = pick(problem, "kan"), pick(problem, "mlp")
        if kan is None or mlp is None:
            continue
        ek, em = kan["l2_rel"]["median"], mlp["l2_rel"]["median"]
        tk, tm = kan["wall_time_s"]["median"], mlp["wall_time_s"]["median"]
        ratio = ek / em if ek is not None and em else None
        # "lower" only when the ranges over seeds do not overlap; otherwise a tie
        if ek is None or em is None:
            better = "n/a"
        elif kan["l2_rel"]["max"] < mlp["l2_rel"]["min"]:
            better = "KAN"
        elif mlp["l2_rel"]["max"] < kan["l2_rel"]["min"]:
            better = "MLP"
        else:
            better = "overlap"
        out.append({"problem": problem, "l2_ratio_kan_over_mlp": ratio,
                    "time_ratio_kan_over_mlp": tk / tm if tk and tm else None,
                    "params_kan": kan.get("n_params"), "params_mlp": mlp.get("n_params"),
                    "lower_error": better})
    return out


def _verdict_table(vs: Sequence[Mapping[str, Any]]) -> str:
    return common.markdown_table(
        ["problem", "l2_rel KAN / MLP (medians)", "time KAN / MLP", "params KAN / MLP",
         "lower error"],
        [[v["problem"], report.fmt(v["l2_ratio_kan_over_mlp"]),
          report.fmt(v["time_ratio_kan_over_mlp"], ".2f"),
          f"{v['params_kan']} / {v['params_mlp']}", v["lower_error"]] for v in vs])


def markdown(rows: Sequence[Mapping[str, Any]], budget: str, command: str) -> str:
    """``suite.md``."""
    sched = budgets.SCHEDULES["suite"][budget]
    second = budgets.SECOND_ORDER_STEPS[budget]
    lines = [
        "# KAN vs MLP over the problem suite", "",
        f"Command: `{command}`", "",
        f"Budget `{budget}`: {sched.interior} interior points, {sched.boundary} per condition "
        f"(Sobol), Adam {sched.adam_steps} steps then {len(sched.grids)} L-BFGS stages of "
        f"{sched.lbfgs_steps} iterations ({sched.steps} steps); the KAN's grid is "
        f"{' -> '.join(map(str, sched.grids))} (extension + update between stages); "
        f"float64, forward-jet derivatives, residual weight {sched.residual_weight}. "
        "Errors on each problem's evaluation set against its exact or reference solution; "
        "median [min–max] over seeds. Rows ending in `-lm` (`-gn`): the same models, "
        "points and Adam stage, then Levenberg–Marquardt (Gauss–Newton) stages of "
        f"{second['lm']} ({second['gauss_newton']}) "
        "iterations instead of L-BFGS, first seed only.", "",
        report.machine_line(), "",
    ]
    table = [[r["problem"], r["label"], r["n_params"], len(r["seeds"]),
              spread_cell(r["l2_rel"]), spread_cell(r["max_abs_err"]),
              spread_cell(r["wall_time_s"], ".1f"), spread_cell(r["steps"], ".0f"),
              ", ".join(r["status"])] for r in rows]
    lines.append(common.markdown_table(
        ["problem", "model", "params", "seeds", "l2_rel", "max abs err", "wall time s",
         "steps", "status"], table))
    tb = budgets.TUNE_BUDGETS[budget]
    tuned_v = verdicts(rows, tuned=True)
    if tuned_v:
        lines += ["", "## Tuned KAN vs tuned MLP, per problem", "",
                  f"Each family's configuration was selected by `kanpde tune` ({tb['trials']} "
                  f"trials of {tb['time_per_trial']:g} s each per family and problem, search "
                  f"space '{tb['space']}' of `kanpde.tune.budgets.SEARCH_SPACES`), by its "
                  "PINN loss on fresh validation points; the selected configuration was then "
                  "trained with every seed for the steps its trial ran (about the same wall "
                  "time for both families).", ""]
        lines.append(_verdict_table(tuned_v))
    lines += ["", "## Fixed recipe (same points, stages and steps), per problem", ""]
    lines.append(_verdict_table(verdicts(rows)))
    lines += ["", "\"lower error\" names a model only when its worst seed beats the other's "
              "best; \"overlap\" otherwise.", ""]
    return "\n".join(lines)


def figures(records: Sequence[Mapping[str, Any]], out: Path) -> list[Path]:
    """One comparison figure per problem (``figures/suite_<problem>.png``)."""
    from kanpde.io.compare_figure import plot_comparison

    paths = []
    for problem in dict.fromkeys(r["problem"] for r in records):
        recs = [{**r, "solver": r["label"]} for r in records if r["problem"] == problem]
        paths.append(plot_comparison(recs, out / "figures" / f"suite_{problem}.png",
                                     title=f"{problem}: KAN vs MLP"))
    return paths


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    report.add_common_arguments(parser)
    parser.add_argument("--no-tuned", dest="tuned", action="store_false",
                        help="skip the tuned KAN and MLP")
    parser.add_argument("--second-order", nargs="*", choices=list(SECOND_ORDER_ROWS),
                        default=list(SECOND_ORDER_ROWS), metavar="METHOD",
                        help="second-order rows: lm (Levenberg-Marquardt) and/or "
                             "gauss_newton (default both)")
    parser.add_argument("--no-second-order", dest="second_order", action="store_const",
                        const=[], help="no second-order rows (as --second-order with none)")


def run(args: argparse.Namespace) -> int:
    """Run (or continue) the suite and write its tables; returns the exit status."""
    budget = check_budget(args.budget)
    problems = resolve_problems(args.problems, args.problems_dir)
    if not args.seeds:
        raise ValueError("--seeds: give at least one seed")
    work = Path(args.work) / f"suite-{budget}"
    todo = jobs(list(problems), budget, args.seeds, second_order=args.second_order)
    if args.tuned:
        todo += tuned(problems, budget, args.seeds, work, quiet=not args.progress)
    records = run_jobs(todo, problems, work, quiet=not args.progress)
    out = Path(args.out)
    rows = summarize(records)
    options = [] if args.tuned else ["--no-tuned"]
    if not args.second_order:
        options.append("--no-second-order")
    elif list(args.second_order) != list(SECOND_ORDER_ROWS):
        options += ["--second-order", *args.second_order]
    text = markdown(rows, budget, report.command_line("suite", args, options=options))
    out.mkdir(parents=True, exist_ok=True)
    (out / "suite.md").write_text(text)
    report.write_json(out / "suite.json", {"budget": budget, "rows": rows,
                                           "verdicts": verdicts(rows),
                                           "tuned_verdicts": verdicts(rows, tuned=True),
                                           "tuning": budgets.TUNE_BUDGETS[budget],
                                           "runs": [report.slim(r) for r in records]})
    figures(records, out)
    print(text)
    print(f"wrote {out / 'suite.md'}, {out / 'suite.json'} and {out / 'figures'}/suite_*.png")
    return 0


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``kanpde bench suite``."""
    return common.add_subcommand(subparsers, "suite", "KAN vs MLP over the problem suite at "
                                 "a matched budget", __doc__, _add_arguments, run)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m kanpde.cli.bench.suite [options]``."""
    return common.standalone_main("suite", __doc__, _add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
