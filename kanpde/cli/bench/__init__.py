"""``kanpde bench``: benchmarks whose tables and JSON go into ``results/``.

Subcommands (each module offers ``add_parser(subparsers)`` and ``run(args) -> int``):

* ``derivatives``: cost of one training step with second derivatives, KAN jet vs nested
  autograd vs an efficient-kan–style KAN vs MLP (:mod:`kanpde.cli.bench.derivatives`).
* ``kernels``: the fused Triton KAN-layer jets vs the PyTorch jet path vs nested autograd vs
  efficient-kan: time, peak memory, achieved FLOP/s (:mod:`kanpde.cli.bench.kernels`).
* ``suite``: KAN vs MLP on every problem at a matched budget over seeds
  (:mod:`kanpde.cli.bench.suite`); ``matched``: the smallest KAN and MLP reaching a target error
  (:mod:`kanpde.cli.bench.matched`); ``scaling``: error against parameters with fitted exponents
  (:mod:`kanpde.cli.bench.scaling`); ``claim``: the KAN paper's §3.4 Poisson comparison
  (:mod:`kanpde.cli.bench.claim`); ``all``: all of them (:mod:`kanpde.cli.bench.everything`).
  Their solver settings are in :mod:`kanpde.tune.budgets`, their resumable runner in
  :mod:`kanpde.cli.bench.runner`.
* ``second-order``: Levenberg-Marquardt against L-BFGS, accuracy targets and the cost of an
  LM iteration (:mod:`kanpde.cli.bench.second_order`).
* ``anchors``: kanpde beside DeepXDE and pykan on the same problem, points and recipe
  (:mod:`kanpde.cli.bench.anchors`); ``speed``: their times to accuracy on ``poisson2d_paper``
  (:mod:`kanpde.cli.bench.speed`).
* ``explain``: closed forms read back from trained KANs by ``kanpde explain --symbolic``,
  problems x seeds (:mod:`kanpde.cli.bench.explain`).

Shared timing, memory and machine helpers live in :mod:`kanpde.cli.bench.common`. Submodules are
imported when :func:`register` runs, so importing this package stays cheap.
"""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``bench`` command, with its own subcommands, to an argparse ``subparsers``.

    Each subcommand sets ``func`` (``args.func(args) -> int``) through ``set_defaults``.

    Args:
        subparsers: the object returned by ``ArgumentParser.add_subparsers()``.

    Returns:
        The ``bench`` parser.
    """
    from kanpde.cli.bench import (
        anchors,
        claim,
        derivatives,
        distributed,
        everything,
        explain,
        kernels,
        matched,
        scaling,
        second_order,
        speed,
        suite,
    )

    parser = subparsers.add_parser(
        "bench", help="benchmarks: derivative cost, KAN vs MLP suite, scaling, ...",
        description="kanpde benchmarks")
    commands = parser.add_subparsers(dest="bench_command", metavar="BENCHMARK", required=True)
    derivatives.add_parser(commands)
    kernels.add_parser(commands)
    suite.add_parser(commands)
    matched.add_parser(commands)
    scaling.add_parser(commands)
    claim.add_parser(commands)
    everything.add_parser(commands)
    distributed.add_parser(commands)
    anchors.add_parser(commands)
    second_order.add_parser(commands)
    speed.add_parser(commands)
    explain.add_parser(commands)
    return parser


__all__ = ["register"]
