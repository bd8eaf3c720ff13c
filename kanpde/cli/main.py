"""The ``kanpde`` command: a thin shell over the library; the only module that reads argv.

Bad input, including any failure of a function in a problem file, ends with one line
``kanpde: error: <file or flag>: <fault>``; ``--debug`` shows the traceback instead (the exit
status is the same).

Exit status (:data:`EXIT_CODES`): 0 success; 1 ``kanpde check`` found a fault; 2 bad input;
3 the run diverged; 4 the run finished but its error metrics could not be computed;
130 interrupted (Ctrl-C); 143 terminated (SIGTERM, handled like Ctrl-C: the run writes
its checkpoint and the command that resumes it is printed).
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import torch

from kanpde._version import __version__

EXIT_CHECK_FAILED = 1
EXIT_BAD_INPUT = 2
#: every exit status of the command and its meaning
EXIT_CODES = {
    0: "success",
    1: "kanpde check: the problem's exact solution or evaluation set is at fault",
    2: "bad input (a file, a flag, or a function in the problem file); nothing was lost",
    3: "the run diverged (non-finite or exploding loss); the result and checkpoint are kept",
    4: "the run finished but its error metrics could not be computed (e.g. a NaN exact "
       "solution); the result is kept",
    130: "interrupted (Ctrl-C); the checkpoint is written and the resume command printed",
    143: "terminated (SIGTERM), handled like Ctrl-C",
}


def _check(args: argparse.Namespace) -> int:
    """``kanpde check PROBLEM.py``: load, validate and describe a problem file, and check
    that its exact solution solves it (:mod:`kanpde.problem.exactcheck`); exit status 1 when not."""
    from kanpde.problem import load_problem
    from kanpde.problem.exactcheck import RTOL, check_data, check_exact, check_solution

    if args.points < 1:
        raise ValueError(f"--points: must be >= 1, got {args.points}")
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
    if problem.gauge:
        print(f"gauge        {', '.join(problem.gauge)} (determined up to a constant; errors "
              "after removing the mean difference)")
    x_eval = problem.evaluation_points()
    mask = problem.region_mask(x_eval)
    print(f"evaluation   {x_eval.shape[0]} points"
          + ("" if mask is None else f"; errors on the problem's region: {int(mask.sum())} "
             f"of them"))
    faults = []
    if not problem.has_solution:
        print("solution     none (no exact solution or reference): runs report residual "
              "diagnostics, and compare ranks by validation loss")
        gen = torch.Generator().manual_seed(args.seed)
        for term in check_data(problem, args.points, gen):
            if term.ok:
                print(f"data: {term.name}: finite, shape (n,); max |r(0)| = "
                      f"{term.max_abs:.2e} (the size of its forcing or data)")
            else:
                print(f"data: {term.problem}")
                faults.append(term.problem)
        for fault in faults:
            print(f"kanpde: error: {args.problem}: {fault}", file=sys.stderr)
        if faults:
            return EXIT_CHECK_FAILED
        print("ok: every residual and condition is finite and of the right shape (nothing to "
              "check a solution against)")
        return 0
    if problem.exact is None:
        print("solution     reference data (no exact function): residual check skipped")
    else:
        gen = torch.Generator().manual_seed(args.seed)
        dtype = torch.float64
        truth = {k: torch.tensor(float(v), dtype=dtype) for k, v in problem.true_unknowns.items()}
        failed: set[str] = set()
        for term in check_exact(problem, args.points, gen,
                                unknowns=truth if problem.unknowns else None):
            print("exact solution: " + term.line())
            if not term.ok and term.name not in failed:  # one line per failing term
                failed.add(term.name)
                faults.append(term.problem)
    fault = check_solution(problem)
    if fault:
        faults.append(fault)
    for fault in faults:
        print(f"kanpde: error: {args.problem}: {fault}", file=sys.stderr)
    if faults:
        return EXIT_CHECK_FAILED
    if problem.exact is not None:
        print(f"ok: the exact solution solves every residual and condition to a relative "
              f"tolerance of {RTOL:g}")
    return 0


def _unlock(args: argparse.Namespace) -> int:
    """``kanpde unlock DIR``: remove the stale lock a killed run left in DIR."""
    from kanpde.io.rundir import unlock

    print(unlock(Path(args.run), force=args.force))
    return 0


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, ``kanpde: error: <command>: <fault>``
    (exit status 2), with ``--help`` for the usage."""

    def error(self, message: str) -> NoReturn:
        where = self.prog.split(maxsplit=1)[1] + ": " if " " in self.prog else ""
        self.exit(EXIT_BAD_INPUT, f"kanpde: error: {where}{message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``kanpde`` command."""
    parser = _Parser(
        prog="kanpde",
        description="Physics-informed KANs vs MLPs for PDEs, with forward derivative jets.",
        epilog="exit status: " + "; ".join(f"{k} {v}" for k, v in EXIT_CODES.items()))
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

    unlock = sub.add_parser("unlock", help="clear the stale lock of a killed run",
                            description="Remove DIR/.kanpde.lock left behind by a run that was "
                                        "killed (kill -9, a crashed node). Refused while the "
                                        "holding process still runs on this host.")
    unlock.add_argument("run", metavar="DIR", help="run directory")
    unlock.add_argument("--force", action="store_true",
                        help="also remove a lock taken on another host (whose process cannot "
                             "be checked from here)")
    unlock.set_defaults(func=_unlock)

    from kanpde.cli import bench
    from kanpde.cli.commands import add_commands

    add_commands(sub)
    from kanpde.cli.tune import add_parser as add_tune

    add_tune(sub)
    bench.register(sub)
    for command in sub.choices.values():  # --debug also after the command's name
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                             help="show full tracebacks instead of one-line errors")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``kanpde`` console script."""
    from kanpde.cli.signals import EXIT_INTERRUPTED, EXIT_TERMINATED, stop_signals

    parser = build_parser()
    args = parser.parse_args(argv)
    with stop_signals() as stop:  # SIGTERM stops a run like Ctrl-C
        try:
            code = int(args.func(args) or 0)
        except KeyboardInterrupt:
            print(f"kanpde: {'terminated' if stop.signal == 'SIGTERM' else 'interrupted'}",
                  file=sys.stderr)
            code = EXIT_INTERRUPTED
        except (ValueError, TypeError, FileNotFoundError, OSError, RuntimeError) as err:
            if args.debug:  # the traceback instead of the one line; the same exit status
                traceback.print_exc(file=sys.stderr)
            else:
                text = str(err).strip()
                message = text.splitlines()[0] if text else type(err).__name__
                if getattr(args, "bench_command", None):  # as argparse names the command
                    message = f"bench {args.bench_command}: {message}"
                print(f"kanpde: error: {message}", file=sys.stderr)
            code = EXIT_BAD_INPUT
    return EXIT_TERMINATED if code == EXIT_INTERRUPTED and stop.signal == "SIGTERM" else code


if __name__ == "__main__":
    sys.exit(main())
