"""The ``kanpde`` command: a thin shell over the library; the only module that reads argv.

Bad input ends with one line ``kanpde: error: ...`` and exit status 2; ``--debug`` shows the
traceback instead.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import torch

from kanpde import __version__

EXIT_BAD_INPUT = 2


class InputError(ValueError):
    """Bad input from the command line; reported as one line."""


def _check(args: argparse.Namespace) -> int:
    """``kanpde check PROBLEM.py``: load, validate and describe a problem file."""
    from kanpde.problem import SolutionField, load_problem

    problem = load_problem(args.problem)
    print(f"problem      {problem.name}  ({args.problem})")
    print(f"coordinates  {', '.join(problem.coords)}"
          + (f"  (time: {problem.time})" if problem.time else ""))
    print(f"fields       {', '.join(problem.fields)}")
    print(f"domain       {problem.domain!r}")
    print(f"residuals    {', '.join(problem.residuals)}")
    print("conditions   " + ", ".join(f"{c.label(i)} ({type(c).__name__} on {c.field})"
                                      for i, c in enumerate(problem.conditions)))
    keys = ", ".join(f"{kind}({','.join(names)})" for kind, names in problem.channel_keys)
    print(f"channels     {keys or 'none (first order only)'}")
    if problem.constants:
        print("constants    " + ", ".join(f"{k}={v:g}" for k, v in problem.constants.items()))
    if problem.unknowns:
        print("unknowns     " + ", ".join(f"{k} (initial {v:g})"
                                          for k, v in problem.unknowns.items()))
    print(f"evaluation   {problem.evaluation_points().shape[0]} points")
    if problem.exact is None:
        print("solution     reference data (no exact function): residual check skipped")
        return 0
    gen = torch.Generator().manual_seed(args.seed)
    x = problem.domain.sample_interior(args.points, gen)
    truth = {k: torch.tensor(float(v), dtype=x.dtype) for k, v in problem.true_unknowns.items()}
    unknowns = truth if problem.unknowns else None
    model = SolutionField(problem)
    worst = 0.0
    for engine in ("jet", "autograd"):
        res = problem.residual_values(model, x, engine=engine, unknowns=unknowns)
        for name, r in res.items():
            value = float(r.detach().abs().max())
            worst = max(worst, value)
            print(f"exact solution: max |{name}| = {value:.2e} ({engine} engine)")
    for i, cond in enumerate(problem.conditions):
        pts = cond.sample(problem.domain, args.points, gen)
        r = problem.condition_values(cond, model, pts, unknowns=unknowns)
        print(f"exact solution: max |{cond.label(i)}| = {float(r.detach().abs().max()):.2e}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``kanpde`` command."""
    parser = argparse.ArgumentParser(
        prog="kanpde",
        description="Physics-informed KANs vs MLPs for PDEs, with forward derivative jets.")
    parser.add_argument("--version", action="version", version=f"kanpde {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show full tracebacks instead of one-line errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    check = sub.add_parser("check", help="load and validate a problem file",
                           description="Load a problem file, describe it, and check that its "
                                       "exact solution satisfies its residuals and conditions "
                                       "on both derivative engines.")
    check.add_argument("problem", help="problem file (.py)")
    check.add_argument("--points", type=int, default=256, help="check points (default 256)")
    check.add_argument("--seed", type=int, default=0)
    check.set_defaults(func=_check)

    from kanpde import bench
    from kanpde.commands import add_commands

    add_commands(sub)
    from kanpde.tune.command import add_parser as add_tune

    add_tune(sub)
    bench.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``kanpde`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("kanpde: interrupted", file=sys.stderr)
        return 130
    except (ValueError, TypeError, FileNotFoundError, OSError, RuntimeError) as err:
        if args.debug:
            raise
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        print(f"kanpde: error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
