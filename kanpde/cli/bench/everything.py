"""``kanpde bench all``: every evidence benchmark in one command, into one directory.

Runs, in order: the derivative-cost benchmark (``derivatives.md/json``), the KAN-vs-MLP suite
(``suite.*``), the matched views (``matched.*``), the scaling laws on ``poisson2d_paper`` and
``heat1d`` (``scaling_*``) and the KAN paper's §3.4 comparison (``claim.*``). Every training
run is kept in ``--work``, so an interrupted ``all`` continues where it stopped when rerun.

Example::

    kanpde bench all --budget full --out results      # the committed numbers
    kanpde bench all --budget quick --out /tmp/bench  # a smoke check of everything
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kanpde.cli.bench import claim, common, derivatives, matched, report, scaling, suite
from kanpde.cli.bench.runner import check_budget

SCALING_PROBLEMS = ("poisson2d_paper", "heat1d")
QUICK_DERIVATIVES = ["--points", "2048", "--grid-sizes", "10", "--repeats", "3"]


def _sub_args(add_arguments: Any, argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    report.add_common_arguments(parser, problems=False, seeds=None)


def run(args: argparse.Namespace) -> int:
    """Run every benchmark; returns the first non-zero exit status (or 0)."""
    budget = check_budget(args.budget)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    shared = ["--budget", budget, "--out", str(out), "--work", args.work,
              "--problems-dir", args.problems_dir, *(["--progress"] if args.progress else [])]
    steps = [
        (derivatives, [*(QUICK_DERIVATIVES if budget == "quick" else []),
                       "--json", str(out / "derivatives.json"),
                       "--markdown", str(out / "derivatives.md")]),
        (suite, shared),
        (matched, shared),
        (scaling, [*SCALING_PROBLEMS, *shared]),
        (claim, shared),
    ]
    code = 0
    for module, argv in steps:
        name = module.__name__.rsplit(".", 1)[-1]
        print(f"== kanpde bench {name} ==", flush=True)
        status = module.run(_sub_args(module._add_arguments, argv))
        code = code or status
    print(f"wrote every benchmark's tables under {out}; {report.machine_line()}")
    return code


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``kanpde bench all``."""
    return common.add_subcommand(subparsers, "all", "every evidence benchmark (derivatives, "
                                 "suite, matched, scaling, claim) in one run", __doc__,
                                 _add_arguments, run)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m kanpde.cli.bench.everything [options]``."""
    return common.standalone_main("everything", __doc__, _add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
