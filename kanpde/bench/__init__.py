"""``kanpde bench``: benchmarks whose tables and JSON go into ``results/``.

Subcommands (each module offers ``add_parser(subparsers)`` and ``run(args) -> int``):

* ``derivatives``: cost of one training step with second derivatives, KAN jet vs nested
  autograd vs an efficient-kan–style KAN vs MLP (:mod:`kanpde.bench.derivatives`).
* ``kernels``: the fused Triton KAN-layer jets vs the PyTorch jet path vs nested autograd vs
  efficient-kan: time, peak memory, achieved FLOP/s (:mod:`kanpde.bench.kernels`).

Shared timing, memory and machine helpers live in :mod:`kanpde.bench.common`. Submodules are
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
    from kanpde.bench import derivatives, kernels

    parser = subparsers.add_parser("bench", help="benchmarks: derivative cost, ...",
                                   description="kanpde benchmarks")
    commands = parser.add_subparsers(dest="bench_command", metavar="BENCHMARK", required=True)
    derivatives.add_parser(commands)
    kernels.add_parser(commands)
    return parser


__all__ = ["register"]
