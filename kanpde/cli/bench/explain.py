"""``kanpde bench explain``: closed forms read back from trained KANs, problems x seeds.

For every (problem, seed) the shipped recipe of :data:`CASES` is trained (``kanpde solve``
with that solver file and seed), then ``kanpde explain --symbolic`` (with the case's pruning
threshold) reads the formula; nothing is tuned per seed. Each case is checked against the
exact solution for the record only (the explain run never sees it):

* ``formula_l2_rel``: relative L2 error of the formula against the exact solution on
  ``10^4`` uniform random points of the domain's bounding box (problems without a closed
  form: against the reference on the evaluation points, as explain reports it);
* ``equivalent``: ``sympy.simplify(formula - exact) == 0`` (in a child process with a time
  limit; ``None`` when it did not finish);
* ``recovered``: no spline edge left, the formula claimed by explain (its validation loss
  within :data:`kanpde.interpret.explain.CLAIM_FACTOR` of the trained network's), and
  ``equivalent`` or ``formula_l2_rel <= 1e-10``.

Writes ``OUT/interpretability.json`` (a list of cases with the keys ``problem``, ``seed``,
``formula`` (SymPy-parsable, in the problem's coordinate names), ``formula_l2_rel``,
``spline_edges``, ``trained_l2_rel``, ``time_s`` (wall time of the explain run),
``cpu_s`` (its CPU time), ``load_average`` (1-minute load as it started and ended),
``solve_time_s`` and ``solve_cpu_s`` (of the training),
``recovered``, ``equivalent``, ``exact``, ``chosen``, ``notes``) and
``OUT/interpretability.md``. Finished cases are reused from the work directory
(``WORK/explain/PROBLEM/seedS``), so an interrupted bench continues where it stopped.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kanpde.cli.bench import common, report

ROOT = Path(__file__).resolve().parents[3]

CASES: dict[str, dict[str, Any]] = {
    "poisson2d_sinsin": {"solver": "kan_explain_mult.toml", "prune": 0.05,
                         "exact": "sin(pi*x)*sin(pi*y)"},
    "poisson2d_paper": {"solver": "kan_explain_xy.toml", "prune": 0.05,
                        "exact": "sin(pi*x)*sin(pi*y**2)"},
    "advection1d": {"solver": "kan_explain_xt.toml", "prune": 0.05, "exact": "sin(x - t)"},
    "heat1d": {"solver": "kan_explain_xt.toml", "prune": 0.05,
               "exact": "exp(-pi**2*t/10)*sin(pi*x) + exp(-2*pi**2*t/5)*sin(2*pi*x)"},
    "burgers1d": {"solver": "kan_explain.toml", "prune": 0.05, "exact": None},
}
"""Per problem: shipped solver file, explain's pruning threshold, exact solution (SymPy
text in the coordinate names; ``None``: no closed form)."""

RECOVERED_L2 = 1e-10
N_CHECK = 10_000


def check_formula(text: str, exact: str | None, problem, timeout: float = 30.0
                  ) -> dict[str, Any]:
    """``formula_l2_rel`` on ``N_CHECK`` random points and sympy equivalence (module
    docstring); ``text`` is ``"u = ..."`` or the bare expression."""
    import numpy as np
    import sympy as sp

    from kanpde.interpret.closed_form import sympy_call
    from kanpde.interpret.formula import lambdify_formula, relative_l2

    syms = {c: sp.Symbol(c, real=True) for c in problem.coords}
    rhs = text.split("=", 1)[1] if "=" in text else text
    expr = sp.sympify(rhs, locals=syms)
    if exact is None:
        return {"formula_l2_rel": None, "equivalent": None, "expr": expr}
    ref = sp.sympify(exact, locals=syms)
    lo, hi = (np.asarray(b, dtype=np.float64) for b in problem.domain.bbox)
    pts = np.random.default_rng(12345).uniform(lo, hi, size=(N_CHECK, len(lo)))
    order = [syms[c] for c in problem.coords]
    f = lambdify_formula([expr], order)(pts)
    g = lambdify_formula([ref], order)(pts)
    err = relative_l2(f, g) if np.all(np.isfinite(f)) else math.inf
    diff, note = sympy_call("simplify", expr - ref, timeout)
    return {"formula_l2_rel": err, "equivalent": None if note else bool(diff == 0),
            "expr": expr}


def run_case(problem_name: str, seed: int, work: Path, problems_dir: Path,
             simplify_timeout: float, quiet: bool) -> dict[str, Any]:
    """Solve and explain one case (or reuse a finished one); returns its record."""
    from kanpde.cli.main import main as cli
    from kanpde.cli.reuse import stale_reason
    from kanpde.interpret.explain import ExplainOptions, explain_run
    from kanpde.problem import load_problem
    from kanpde.training.config import load_config

    case = CASES[problem_name]
    where = work / problem_name / f"seed{seed}"
    record_file = where / "case.json"
    path = problems_dir / f"{problem_name}.py"
    run_dir, out = where / "run", where / "explain"
    # the run of this case (finished or not) must be this recipe's, as `kanpde solve` below
    # would make it: else neither the run nor its explain record is reused
    config = load_config(ROOT / "solvers" / case["solver"]).with_overrides(
        {"seed": seed, "threads": 1})
    problem = load_problem(path)
    stale = stale_reason(run_dir, config.to_dict(), problem)
    if stale:
        raise RuntimeError(f"{run_dir}: a run made with another configuration or problem "
                           f"({stale}); use another --work directory")
    if record_file.exists():
        rec = json.loads(record_file.read_text())
        if "claimed" not in rec:  # a record written before explain stated its claim
            from kanpde.interpret.explain import CLAIM_FACTOR

            sym = json.loads((where / "explain" / "explain.json").read_text())["symbolic"]
            v, v0 = sym.get("formula_loss_validation"), sym.get("loss_validation_start")
            rec["claimed"] = bool(not sym.get("spline_edges") and v is not None
                                  and v0 is not None and v <= CLAIM_FACTOR * v0)
            rec["recovered"] = bool(rec["recovered"] and rec["claimed"])
        return rec
    t0 = time.perf_counter()
    if not (run_dir / "result.h5").exists():
        code = cli(["solve", str(path), "--solver", str(ROOT / "solvers" / case["solver"]),
                    "--seed", str(seed), "--out", str(run_dir), "--threads", "1",
                    *(["--quiet"] if quiet else [])])
        if code:
            raise RuntimeError(f"kanpde solve {problem_name} seed {seed}: exit {code}")
    summary = json.loads((run_dir / "summary.json").read_text())
    solve_s = float(summary.get("wall_time_s", time.perf_counter() - t0))
    t1, c1, load0 = time.perf_counter(), time.process_time(), _load()
    explained = explain_run(run_dir, ExplainOptions(prune=case["prune"], symbolic=True,
                                                 simplify_timeout=simplify_timeout),
                         out_dir=out, log=(lambda s: None) if quiet else print)
    explain_s, explain_cpu = time.perf_counter() - t1, time.process_time() - c1
    load = [load0, _load()]  # 1-minute load average as explain started and ended
    sym = explained.get("symbolic", {})
    text = (sym.get("formula") or [""])[0]
    splines = len(sym.get("spline_edges", []))
    rec: dict[str, Any] = {
        "problem": problem_name, "seed": seed, "solver": case["solver"],
        "formula": text.split("=", 1)[1].strip() if "=" in text else None,
        "formula_l2_rel": sym.get("formula_l2_rel"), "spline_edges": splines,
        "trained_l2_rel": explained["l2_rel"], "time_s": explain_s, "cpu_s": explain_cpu,
        "load_average": load, "solve_time_s": solve_s,
        "solve_cpu_s": summary.get("cpu_time_s"),
        "exact": case["exact"], "equivalent": None, "chosen": sym.get("chosen"),
        "formula_loss_validation": sym.get("formula_loss_validation"),
        "notes": sym.get("notes", [])}
    if rec["formula"] is not None and "phi_" not in rec["formula"] and case["exact"]:
        check = check_formula(text, case["exact"], problem, simplify_timeout)
        rec["formula_l2_rel"], rec["equivalent"] = check["formula_l2_rel"], check["equivalent"]
    err = rec["formula_l2_rel"]
    rec["claimed"] = bool(sym.get("claimed", False))
    rec["recovered"] = bool(case["exact"] is not None and splines == 0 and rec["claimed"]
                            and rec["formula"] is not None
                            and (rec["equivalent"] or (err is not None and err <= RECOVERED_L2)))
    where.mkdir(parents=True, exist_ok=True)
    record_file.write_text(json.dumps(rec, indent=1) + "\n")
    return rec


def _load() -> float | None:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def _fmt(v: Any) -> str:
    return "-" if v is None else f"{v:.2e}" if isinstance(v, float) else str(v)


def _short(text: str, limit: int = 100) -> str:
    """A formula cut to ``limit`` characters for the table (the JSON keeps it whole)."""
    return text if len(text) <= limit else text[:limit] + " ..."


def markdown(cases: Sequence[dict[str, Any]], command: str) -> str:
    """The results table and a per-problem count of recovered seeds."""
    rows = [[c["problem"], c["seed"], c["solver"], _fmt(c["trained_l2_rel"]),
             "`" + _short(c["formula"] or "-").replace("|", "\\|") + "`",
             _fmt(c["formula_l2_rel"]),
             c["spline_edges"], {True: "yes", False: "no", None: "-"}[c["equivalent"]],
             "yes" if c["recovered"] else ("no closed form" if c["exact"] is None else "no"),
             f"{c['solve_time_s']:.0f}", f"{c['time_s']:.0f}",
             "-" if c.get("cpu_s") is None else f"{c['cpu_s']:.0f}",
             "-" if not c.get("load_average") or None in c["load_average"] else
             "–".join(f"{v:.1f}" for v in c["load_average"])] for c in cases]
    table = common.markdown_table(
        ["problem", "seed", "recipe", "trained l2_rel", "formula", "formula l2_rel",
         "spline edges", "sympy-equal", "recovered", "solve s", "explain s",
         "explain CPU s", "load"], rows)
    per: dict[str, list[dict[str, Any]]] = {}
    for c in cases:
        per.setdefault(c["problem"], []).append(c)
    summary = [f"- `{p}`: " + ("no closed form; a formula claimed on "
                               f"{sum(bool(c.get('claimed')) for c in cs)} of {len(cs)} seeds"
                               if cs[0]["exact"] is None else
                               f"recovered on {sum(c['recovered'] for c in cs)} of "
                               f"{len(cs)} seeds run")
               for p, cs in per.items()]
    return "\n".join([
        "# Interpretability: closed forms read back from trained KANs", "",
        f"Written by `{command}`.", "",
        "Each case trains the problem's shipped recipe with the seed, then runs `kanpde "
        "explain --prune T --symbolic`; the formula is selected by the PDE loss on fresh "
        "validation points, never by the exact solution. \"Recovered\": no spline edge left "
        "and the formula equals the exact solution in SymPy or has a relative L2 error "
        f"<= {RECOVERED_L2:g} on {N_CHECK} random points.", "",
        "Formulas longer than 100 characters are cut in the table; "
        "`interpretability.json` and each case's `formula.txt` hold them whole. Times: "
        "wall seconds of the training (`kanpde solve`, one torch thread) and of the explain "
        "run, the explain run's CPU seconds (this process; SymPy's time-limited child "
        "processes not counted), and the 1-minute load average as explain started and "
        "ended.", "", report.machine_line(), "",
        table, "", *summary, ""])


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--problems", nargs="+", choices=list(CASES), default=list(CASES),
                        help="problems (default: all of them)")
    parser.add_argument("--seeds", nargs="+", type=common.seed, default=[0, 1, 2],
                        help="seeds (default 0 1 2)")
    parser.add_argument("--problems-dir", default=str(ROOT / "problems"),
                        help="where the problem files are")
    parser.add_argument("--work", default="bench_work",
                        help="work directory: runs and finished cases are kept and reused")
    parser.add_argument("--out", default="results", help="where to write the md and json")
    parser.add_argument("--simplify-timeout", type=float, default=20.0,
                        help="seconds per SymPy call")
    parser.add_argument("--progress", action="store_true", help="training and explain logs")
    parser.add_argument("--finished-only", action="store_true",
                        help="run nothing: report the finished cases of the work directory "
                             "and list the others as not run")


def run(args: argparse.Namespace) -> int:
    """Run (or reuse) every case and write ``interpretability.{md,json}``."""
    import torch

    torch.set_num_threads(1)
    work = Path(args.work) / "explain"
    cases, not_run = [], []
    for name in args.problems:
        for seed in args.seeds:
            if args.finished_only and not (work / name / f"seed{seed}" / "case.json").exists():
                not_run.append(f"{name} seed {seed}")
                continue
            rec = run_case(name, seed, work, Path(args.problems_dir), args.simplify_timeout,
                           quiet=not args.progress)
            print(f"{name} seed {seed}: {rec['formula']} (formula l2_rel "
                  f"{_fmt(rec['formula_l2_rel'])}, {rec['spline_edges']} spline edges, "
                  f"recovered: {rec['recovered']})", file=sys.stderr, flush=True)
            cases.append(rec)
    command = ("kanpde bench explain --problems " + " ".join(args.problems) + " --seeds "
               + " ".join(map(str, args.seeds))
               + (" --finished-only" if args.finished_only else ""))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "interpretability.json").write_text(json.dumps(cases, indent=1) + "\n")
    text = markdown(cases, command)
    if not_run:
        text += "\nNot run: " + ", ".join(not_run) + ".\n"
    (out / "interpretability.md").write_text(text)
    print(text)
    print(f"wrote {out / 'interpretability.md'} and {out / 'interpretability.json'}")
    return 0


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``kanpde bench explain``."""
    return common.add_subcommand(subparsers, "explain", "closed forms read back from "
                                 "trained KANs: problems x seeds", __doc__, _add_arguments, run)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m kanpde.cli.bench.explain [options]``."""
    return common.standalone_main("explain", __doc__, _add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
