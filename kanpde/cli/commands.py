"""The ``kanpde`` subcommands that train and read runs: solve, compare, plot, export, predict,
explain.

Each ``cmd_*`` takes the parsed arguments and returns an exit status; bad input raises a
``ValueError`` (or subclass) whose first line the CLI prints.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from kanpde.io.aggregate import aggregate
from kanpde.training.config import OVERRIDE_KEYS

EXIT_DIVERGED = 3
EXIT_NO_METRICS = 4
EXIT_INTERRUPTED = 130


def _positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {k: getattr(args, k) for k in OVERRIDE_KEYS if getattr(args, k, None) is not None}


DEFAULT_SOLVER = "solvers/kan_default.toml"


def default_solver_path() -> str | None:
    """``solvers/kan_default.toml`` in the working directory or beside the package."""
    for base in (Path.cwd(), Path(__file__).resolve().parents[2]):
        if (base / DEFAULT_SOLVER).is_file():
            return str(base / DEFAULT_SOLVER)
    return None


def _solver_config(path: str | None):
    from kanpde.training.config import load_config

    path = path if path is not None else default_solver_path()
    if path is None:
        raise FileNotFoundError(f"no --solver given and {DEFAULT_SOLVER} was not found; "
                                "pass --solver FILE.toml")
    return load_config(path)


def _status_code(summary: dict[str, Any]) -> int:
    status = summary.get("status")
    if status == "interrupted":
        return EXIT_INTERRUPTED
    if status == "diverged":
        return EXIT_DIVERGED
    if status == "no_metrics":
        return EXIT_NO_METRICS
    return 0


def _checkpoint_config(run_dir: Path):
    """The solver configuration a stopped run was started with (from its checkpoint)."""
    from kanpde.training.checkpoint import checkpoint_path, load_checkpoint
    from kanpde.training.config import config_from_dict

    data = load_checkpoint(run_dir)
    return config_from_dict(data["config"], source=str(checkpoint_path(run_dir)))


def _run_one(problem, config, out: Path, *, overrides: dict[str, Any], resume: bool,
             quiet: bool, force: bool = False) -> dict[str, Any]:
    """Train one (problem, solver config) into ``out``; returns the summary (rank 0
    writes). The command line's overrides replace the config's values first."""
    from kanpde.io.results import save_result
    from kanpde.training.distributed import is_main_process
    from kanpde.training.solve import solve

    result = solve(problem, config.with_overrides(overrides),
                   checkpoint_dir=out, resume=out if resume else None, progress=not quiet,
                   force=force, log=_logger(quiet) if is_main_process() else None)
    result.summary.setdefault("solver", config.name)
    if is_main_process():
        save_result(result, out)
    return result.summary


def _logger(quiet: bool):
    """Prints the one-line notes of a run to stderr: all of them, or with ``--quiet`` only
    the one saying that a resumed run continues on another device or dtype."""
    def note(line: str) -> None:
        if not quiet or line.startswith("resuming "):
            print(f"kanpde: note: {line}", file=sys.stderr)
    return note


def _check_out_dir(out: Path, resume: bool) -> None:
    from kanpde.io.rundir import check_free

    check_free(out, resume=resume, flag="--resume" if resume else "--out",
               check_lock=_is_main())


def cmd_solve(args: argparse.Namespace) -> int:
    """``kanpde solve PROBLEM.py [--solver S.toml] [--out DIR] ...``."""
    from kanpde.io.rundir import claim, safe_name
    from kanpde.problem import load_problem
    from kanpde.problem.exactcheck import check_solution, no_metrics

    resuming = args.resume is not None
    if resuming and args.out is not None and \
            Path(args.out).resolve() != Path(args.resume).resolve():
        raise ValueError(f"--out {args.out}: a resumed run continues in its own directory "
                         f"({args.resume}); leave out --out")
    problem = load_problem(args.problem)
    if resuming and args.solver is None:  # a run resumes with the solver it started with
        _check_out_dir(Path(args.resume), True)
        config = _checkpoint_config(Path(args.resume))
    else:
        config = _solver_config(args.solver)
    seed = args.seed if args.seed is not None else config.seed
    if resuming:
        out = Path(args.resume)
    elif args.out is not None:
        out = Path(args.out)
    else:
        out = Path("runs") / safe_name(f"{problem.name}-{config.name}-seed{seed}")
    _check_out_dir(out, resuming)
    warning = check_solution(problem)
    if no_metrics(warning):
        raise ValueError(f"problem file '{args.problem}': {warning}; the error metrics "
                         "could not be computed")
    if warning and _is_main():
        print(f"kanpde: warning: {args.problem}: {warning}", file=sys.stderr)
    flag = "--resume" if resuming else "--out"
    with claim(out, resume=resuming, flag=flag, active=_is_main()):
        try:
            with _processes(config, args):  # several under torchrun/srun: one run
                summary = _run_one(problem, config, out, overrides=_overrides(args),
                                   resume=resuming, quiet=args.quiet, force=args.force)
                if not _is_main():
                    return _status_code(summary)
        except KeyboardInterrupt:  # outside the training loop, e.g. writing the result
            _print_resume(args.problem, out)
            return EXIT_INTERRUPTED
    print(_summary_line(summary))
    print(f"wrote {out / 'summary.json'} and {out / 'result.h5'}")
    _print_status(args.problem, summary)
    if summary.get("status") == "interrupted":
        _print_resume(args.problem, out)
    return _status_code(summary)


def _print_status(problem_path: str, summary: dict[str, Any]) -> None:
    """Why a run is not ``ok``, and the stages that made no progress (stderr)."""
    if summary.get("resumed_on_edited_problem"):
        print(f"kanpde: warning: {problem_path}: the run was continued (--force) on a problem "
              "file edited since it started", file=sys.stderr)
    for st in summary.get("stages") or []:
        if st.get("stopped") in ("no_progress", "stalled"):
            print(f"kanpde: warning: stage {st.get('index')} ({st.get('optimizer')}) "
                  f"{st.get('reason')}", file=sys.stderr)
    reason = summary.get("status_reason")
    if reason and summary.get("status") not in ("ok", "interrupted"):
        print(f"kanpde: error: {problem_path}: {summary.get('status')}: {reason}",
              file=sys.stderr)


def _print_resume(problem_path: str, out: Path) -> None:
    """The command that continues the stopped run in ``out`` (stderr)."""
    import shlex

    if (out / "checkpoint.pt").is_file():
        print(f"interrupted: continue with  kanpde solve {shlex.quote(str(problem_path))} "
              f"--resume {shlex.quote(str(out))}", file=sys.stderr)
    else:
        print(f"interrupted before the first checkpoint: nothing to resume; {out} holds no "
              "run, so the same command starts it again", file=sys.stderr)


def _processes(config, args: argparse.Namespace):
    """The process group of a data-parallel launch (a no-op for one process)."""
    from kanpde.training.distributed import process_group

    dd = config.distributed
    return process_group(args.device or config.device, dd.backend, dd.timeout_s)


def _is_main() -> bool:
    from kanpde.training.distributed import is_main_process

    return is_main_process()


def _summary_line(s: dict[str, Any]) -> str:
    def g(key: str, fmt: str) -> str:
        v = s.get(key)
        return "n/a" if v is None else format(v, fmt)

    from kanpde.io.aggregate import error_text, status_text

    head = (f"{s.get('problem')} | {s.get('solver')} ({s.get('model')}, {s.get('n_params')} "
            f"params) | status {status_text(s)} | ")
    return head + f"{error_text(s)} | {s.get('steps')} steps | {g('wall_time_s', '.1f')} s"


def _load(run_dir: Path):
    """A finished run's :class:`~kanpde.io.results.Result` (``None`` when it cannot be read)."""
    from kanpde.io.results import load_result

    try:
        return load_result(run_dir)
    except (OSError, ValueError):
        return None


def cmd_compare(args: argparse.Namespace) -> int:
    """``kanpde compare PROBLEM.py --solvers A.toml B.toml ... [--seeds ...] --out DIR``."""
    from kanpde.io.compare_figure import plot_comparison
    from kanpde.io.compare_report import (
        markdown,
        matched_budgets,
        resume_command,
        split_finished,
    )
    from kanpde.io.plots import plot_result, shared_scales
    from kanpde.io.results import load_summary
    from kanpde.io.rundir import claim, safe_name
    from kanpde.problem import load_problem
    from kanpde.training.config import load_config

    problem = load_problem(args.problem)
    configs = [load_config(path) for path in args.solvers]  # validates every file first
    names = [c.name for c in configs]
    if len(set(names)) != len(names):
        raise ValueError(f"--solvers: solver names must differ, got {', '.join(names)}")
    out = Path(args.out)
    overrides = {seed: {**_overrides(args), "seed": seed} for seed in args.seeds}
    _set_aside_stale_runs(problem, configs, args, out, overrides)
    records = []
    code = 0
    for config, name in zip(configs, names, strict=True):
        for seed in args.seeds:
            run_dir = out / safe_name(f"{name}-seed{seed}")
            done = run_dir / "summary.json"
            if done.is_file() and load_summary(run_dir).get("status") == "ok":
                summary = load_summary(run_dir)  # same problem and solver (checked above)
                if _is_main():
                    print(f"reused {run_dir} (same problem and solver)")
            else:
                resume = (run_dir / "checkpoint.pt").is_file()
                with claim(run_dir, resume=resume, flag="compare: run directory",
                           active=_is_main()):
                    summary = _run_one(problem, config, run_dir, overrides=overrides[seed],
                                       resume=resume, quiet=args.quiet)
            summary.setdefault("solver", name)
            records.append({**summary, "run_dir": str(run_dir)})
            if _is_main():
                print(_summary_line(summary))
            code = max(code, _status_code(summary))
            if summary.get("status") == "interrupted":
                if _is_main():
                    print("interrupted: the same kanpde compare command continues it",
                          file=sys.stderr)
                break
        if code == EXIT_INTERRUPTED:
            break
    if not _is_main():  # data-parallel launch: rank 0 writes the comparison
        return code
    records, unfinished = split_finished(records)  # statistics of finished runs only
    rows = aggregate(records)
    results = [_load(Path(r["run_dir"])) for r in records]
    runs = [{"summary": r, "history": res.history if res is not None else {}}
            for r, res in zip(records, results, strict=True)]
    matched = matched_budgets(runs)
    out.mkdir(parents=True, exist_ok=True)
    (out / "compare.json").write_text(json.dumps(
        {"problem": problem.name, "solvers": rows, "matched": matched, "runs": records,
         "unfinished": [{**u, "resume": resume_command(args.problem, u["run_dir"])}
                        for u in unfinished]},
        indent=2, default=str))
    table = markdown(problem.name, rows, matched, unfinished, args.problem)
    (out / "compare.md").write_text(table)
    plot_comparison(records, out / "compare.png", histories=[r["history"] for r in runs],
                    title=problem.name)
    readable = [(r, res) for r, res in zip(records, results, strict=True) if res is not None]
    scales = shared_scales([res for _, res in readable])
    for r, res in readable:  # every run's maps on the comparison's colour scales
        plot_result(res, r["run_dir"], scales=scales)
    print(table)
    print(f"wrote {out / 'compare.json'}, {out / 'compare.md'}, {out / 'compare.png'} and "
          "each run's solution.png and history.png (one colour scale for all runs)")
    return code


def _set_aside_stale_runs(problem, configs, args: argparse.Namespace, out: Path,
                          overrides: dict[int, dict[str, Any]]) -> None:
    """Refuse (or, with ``--rerun``, move aside to ``DIR.stale-N``) every run directory under
    ``out`` made with another problem source or resolved configuration than the one
    ``compare`` would make now (:mod:`kanpde.cli.reuse`); before anything is trained."""
    from kanpde.cli.reuse import move_aside, stale_reason
    from kanpde.io.rundir import LOCK_FILE, safe_name

    stale = []
    for config in configs:
        for seed in args.seeds:
            run_dir = out / safe_name(f"{config.name}-seed{seed}")
            reason = stale_reason(run_dir, config.with_overrides(overrides[seed]).to_dict(),
                                  problem)
            if reason is not None:
                stale.append((run_dir, reason))
    if not stale:
        return
    run_dir, reason = stale[0]
    more = f" (and {len(stale) - 1} more run(s))" if len(stale) > 1 else ""
    if not args.rerun:
        raise ValueError(f"compare: {run_dir} was made with another problem or solver: "
                         f"{reason}{more}; use a new --out, or --rerun to train the changed "
                         "runs again (the old directories are kept as DIR.stale-N)")
    if not _is_main():  # rank 0 moves them
        return
    for run_dir, reason in stale:
        if (run_dir / LOCK_FILE).exists():
            raise ValueError(f"compare: {run_dir} is in use ({run_dir / LOCK_FILE}); "
                             "--rerun moves only runs that no process holds")
        moved = move_aside(run_dir)
        print(f"moved {run_dir} aside to {moved} ({reason}); training it again")


def cmd_plot(args: argparse.Namespace) -> int:
    """``kanpde plot DIR``."""
    from kanpde.io.plots import plot_result
    from kanpde.io.results import load_result

    for path in plot_result(load_result(args.run), args.run):
        print(f"wrote {path}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """``kanpde export DIR --format vtu|xdmf [--time-series]``: the fields of a run for
    ParaView, with the mesh or domain of its problem when that can be loaded (from the copy in
    the run); with ``--time-series`` a space-time run as one step per time value."""
    from kanpde.io.mesh_export import export_fields, export_time_series
    from kanpde.io.run import load_run
    from kanpde.problem.scope import ProblemError

    run = load_run(args.run)
    try:
        problem = run.problem
    except (ProblemError, FileNotFoundError) as err:  # the fields alone can be exported
        print(f"kanpde: note: {str(err).splitlines()[0]}; exporting without the problem's "
              "mesh and domain", file=sys.stderr)
        problem = None
    if args.time_series:
        try:
            written = export_time_series(run.result, problem, args.run, fmt=args.format)
        except ValueError as err:
            raise ValueError(f"export --time-series: run {args.run}: {err}") from err
        what = "XDMF time series" if args.format == "xdmf" else \
            f"PVD collection of {len(written) - 1} VTU files"
        print(f"wrote {written[0]} ({what})")
        return 0
    for path in export_fields(run.result, problem, args.run, fmt=args.format):
        print(f"wrote {path}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    """``kanpde predict DIR POINTS [--out FILE]``: the trained model at new points (needs
    neither the problem nor the solver file). Writes the points and the values together,
    named by the problem's coordinates and fields, and warns (one line, with a count) when
    points lie outside the domain's bounding box, where the model extrapolates."""
    from kanpde.io.points import outside_box, predict, read_points, write_predictions
    from kanpde.io.run import load_run
    from kanpde.io.rundir import check_output_name

    run = load_run(args.run)
    out = check_output_name(args.out, "--out") if args.out else \
        Path(args.run) / "predictions.npy"
    points = read_points(args.points, getattr(run.model, "in_dim", None))
    values = predict(run.model, points)
    box = run.result.domain_box()
    if box is not None and box[0].size == points.shape[1]:
        outside = int(outside_box(points, *box).sum())
        if outside:
            ranges = ", ".join(f"{c} in [{lo:g}, {hi:g}]" for c, lo, hi
                               in zip(run.result.coord_names(), *box, strict=True))
            print(f"kanpde: warning: {args.points}: {outside} of {points.shape[0]} points lie "
                  f"outside the domain's bounding box ({ranges}); the model extrapolates "
                  "there", file=sys.stderr)
    write_predictions(values, out, points=points, coords=run.result.coord_names(),
                      fields=run.result.field_names())
    names = ",".join((*run.result.coord_names(), *run.result.field_names()))
    print(f"wrote {out} ({values.shape[0]} points x {values.shape[1]} fields; columns "
          f"{names})")
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    """``kanpde explain DIR [--prune T] [--symbolic] [--fine-tune-steps N] [--out OUT]``."""
    from kanpde.interpret.explain import ExplainOptions, explain_run

    if args.prune is not None and not 0.0 <= args.prune < 1.0:
        raise ValueError(f"--prune: threshold must be in [0, 1), got {args.prune}")
    for name in ("fine_tune_steps", "refit_steps"):
        if getattr(args, name) < 0:
            raise ValueError(f"--{name.replace('_', '-')}: must be >= 0, got "
                             f"{getattr(args, name)}")
    if not 0.0 < args.r2 <= 1.0:
        raise ValueError(f"--r2: must be in (0, 1], got {args.r2}")
    if args.library:
        from kanpde.nn.symbolic import primitive

        for name in args.library:
            try:
                primitive(name)
            except ValueError as err:
                raise ValueError(f"--library: {err}") from None
    options = ExplainOptions(prune=args.prune, symbolic=args.symbolic,
                             fine_tune_steps=args.fine_tune_steps,
                             refit_steps=args.refit_steps, r2=args.r2, method=args.method,
                             library=args.library, engine=args.engine,
                             simplify_timeout=args.simplify_timeout)
    explain_run(args.run, options, out_dir=args.out)
    return 0


def add_commands(sub: Any) -> None:
    """Register solve, compare, plot, export and predict on the CLI's subparsers."""
    def overrides(p: argparse.ArgumentParser) -> None:
        p.add_argument("--seed", type=int, help="override the solver's seed")
        p.add_argument("--device", help="override the solver's device (cpu, cuda, cuda:1)")
        p.add_argument("--engine", help="override the derivative engine (jet, autograd; "
                                        "jet-torch, jet-triton: jet with that KAN kernel)")
        p.add_argument("--dtype", help="override the dtype (float64, float32)")
        p.add_argument("--threads", type=_positive_int,
                       help="CPU threads of torch (default: the solver's 'threads', else the "
                            "cores that are free: affinity minus the 1-minute load)")
        p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = sub.add_parser("solve", help="train one solver on a problem",
                       description="Train a KAN or MLP on a problem file; writes "
                                   "DIR/summary.json and DIR/result.h5.")
    p.add_argument("problem", help="problem file (.py)")
    p.add_argument("--solver", help=f"solver file (.toml); default: {DEFAULT_SOLVER}")
    p.add_argument("--out", help="run directory (default runs/PROBLEM-SOLVER-seedN)")
    p.add_argument("--resume", metavar="DIR", help="continue the stopped run in DIR (with the "
                                                   "solver it was started with)")
    p.add_argument("--force", action="store_true",
                   help="with --resume: continue even though the problem file changed since "
                        "the run started")
    overrides(p)
    p.set_defaults(func=cmd_solve)

    p = sub.add_parser("compare", help="several solvers x seeds on one problem",
                       description="Train every solver with every seed; writes one run "
                                   "directory each plus compare.json, compare.md and "
                                   "compare.png. A finished run of the same problem source "
                                   "and resolved solver configuration is reused (one line "
                                   "says so); one made with another is refused unless "
                                   "--rerun.")
    p.add_argument("problem")
    p.add_argument("--solvers", nargs="+", required=True, metavar="SOLVER.toml")
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--out", required=True)
    p.add_argument("--rerun", action="store_true",
                   help="train again the runs under --out whose problem file or solver "
                        "configuration changed; their old directories are renamed "
                        "DIR.stale-N (nothing is deleted)")
    overrides(p)
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("plot", help="figures of a finished run")
    p.add_argument("run", metavar="DIR")
    p.set_defaults(func=cmd_plot)

    p = sub.add_parser("export", help="fields for ParaView (meshio)",
                       description="Write a run's fields on its evaluation points for "
                                   "ParaView: DIR/fields.vtu or DIR/fields.xdmf (time, if "
                                   "any, is one more axis of one file), or with "
                                   "--time-series one step per time value.")
    p.add_argument("run", metavar="DIR")
    p.add_argument("--format", choices=("vtu", "xdmf"), default="vtu")
    p.add_argument("--time-series", action="store_true",
                   help="space-time runs: one step per time value over the spatial domain: "
                        "DIR/fields_series.xdmf (+ .h5) with --format xdmf, "
                        "DIR/fields_series.pvd with one VTU per step with --format vtu")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("predict", help="evaluate a trained model on new points")
    p.add_argument("run", metavar="DIR")
    p.add_argument("points", help="points file: .npy, .csv or .h5 (dataset 'points')")
    p.add_argument("--out", help="output file (.csv, .npy, .h5): the points' coordinates then "
                                 "the fields, named by the problem (e.g. x,t,u); default "
                                 "DIR/predictions.npy")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("explain", help="importance, pruning and formula of a KAN run",
                       description="Draw a finished KAN run's network (edge opacity by "
                                   "importance), write importance scores to explain.json, "
                                   "optionally prune and fine-tune it, and fit its edges to "
                                   "symbolic functions to write its closed form to "
                                   "formula.txt.")
    p.add_argument("run", metavar="DIR", help="run directory written by kanpde solve")
    p.add_argument("--prune", type=float, metavar="THRESHOLD",
                   help="mask edges and remove hidden nodes whose score, relative to the "
                        "largest of their layer, is below THRESHOLD (e.g. 0.05)")
    p.add_argument("--symbolic", action="store_true",
                   help="fit edges to primitives, refit the constants, write formula.txt")
    p.add_argument("--fine-tune-steps", type=int, default=50, metavar="N",
                   help="L-BFGS iterations after pruning (default 50)")
    p.add_argument("--refit-steps", type=int, default=300, metavar="N",
                   help="L-BFGS iterations refitting the symbolic constants (default 300)")
    p.add_argument("--r2", type=float, default=0.999,
                   help="edges whose best symbolic fit has a lower R^2 stay splines "
                        "(default 0.999)")
    p.add_argument("--method", choices=("l1", "std"), default="l1",
                   help="edge score: mean |phi| (l1, default) or std of phi")
    p.add_argument("--library", nargs="+", metavar="NAME",
                   help="primitives to try (default: all: 0 x x^2 x^3 x^4 1/x sqrt exp log "
                        "sin cos tanh abs gaussian)")
    p.add_argument("--engine", help="derivative engine of fine-tuning and refit "
                                    "(default: the run's)")
    p.add_argument("--simplify-timeout", type=float, default=20.0, metavar="SECONDS",
                   help="time limit of each SymPy expand/simplify; past it the formula is "
                        "written unsimplified, with a note (default 20)")
    p.add_argument("--out", metavar="OUTDIR", help="where to write (default: DIR)")
    p.set_defaults(func=cmd_explain)
