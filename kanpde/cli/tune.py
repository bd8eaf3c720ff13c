"""``kanpde tune PROBLEM.py --family kan|mlp --trials N --out DIR``: the command."""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any

EXIT_INTERRUPTED = 130


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    return value


def cmd_tune(args: argparse.Namespace) -> int:
    """Run (or continue) a study and report the selected configuration."""
    from kanpde.problem import load_problem
    from kanpde.tune.space import FAMILIES
    from kanpde.tune.study import TuneError, tune

    if args.family not in FAMILIES:
        raise TuneError(f"--family: unknown model family {args.family!r}; choose one of "
                        f"{', '.join(FAMILIES)}")
    if args.trials < 1:
        raise TuneError(f"--trials: must be >= 1, got {args.trials}")
    if not (args.time_per_trial > 0 and math.isfinite(args.time_per_trial)):
        raise TuneError(f"--time-per-trial: must be > 0 seconds, got {args.time_per_trial}")
    if args.max_params is not None and args.max_params < 1:
        raise TuneError(f"--max-params: must be >= 1, got {args.max_params}")
    problem = load_problem(args.problem)
    res = tune(problem, args.family, args.trials, args.out,
               time_per_trial=args.time_per_trial, max_params=args.max_params,
               seed=args.seed, search_space=args.space, clock=args.clock,
               log=lambda line: print(line, flush=True))
    best = res.best
    if best is None:
        print(f"no trial finished; see {res.out / 'trials.csv'}")
    else:
        print(f"selected trial {best['trial']} of {len(res.trials)}: {best['n_params']} "
              f"params, validation loss {best['validation_loss']:.3e}; its error against the "
              f"solution: l2_rel {_fmt(best.get('l2_rel'))}, mse {_fmt(best.get('mse'))}")
        print(f"wrote {res.out / 'best.toml'}, {res.out / 'trials.csv'}, "
              f"{res.out / 'tune.json'}")
        print(f"reproduce:  kanpde solve {args.problem} --solver {res.out / 'best.toml'}")
    if res.interrupted:
        print(f"interrupted: continue with the same command (the study in {res.out} "
              "resumes)", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


def _fmt(v: Any) -> str:
    return "n/a" if v is None else f"{v:.3e}"


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register ``kanpde tune``."""
    p = sub.add_parser(
        "tune", help="equal-effort hyperparameter search for one model family",
        description="Search a model family's hyperparameters on a problem with optuna (TPE), "
                    "each trial capped by wall time (and parameters), selected by its PINN "
                    "loss on fresh validation points, never by its error against the "
                    "solution. Writes DIR/trials.csv, DIR/best.toml (a solver file that "
                    "repeats the selected trial), DIR/tune.json and DIR/study.db (an "
                    "interrupted search resumes when rerun).")
    p.add_argument("problem", help="problem file (.py)")
    p.add_argument("--family", required=True, help="kan or mlp")
    p.add_argument("--trials", type=int, required=True, help="trained trials (N >= 1)")
    p.add_argument("--time-per-trial", type=_positive_float, default=60.0, metavar="S",
                   help="wall-time cap of each trial in seconds (default 60)")
    p.add_argument("--clock", default="wall",
                   help="what --time-per-trial counts: wall (default) or cpu (process CPU "
                        "time, for a shared machine)")
    p.add_argument("--max-params", type=int, default=None, metavar="P",
                   help="largest number of trainable parameters a configuration may have")
    p.add_argument("--space", default="default",
                   help="search space: default, or tiny (small models, smoke tests)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the sampler, the trials and the validation points")
    p.add_argument("--out", required=True, metavar="DIR", help="study directory")
    p.set_defaults(func=cmd_tune)
    return p
