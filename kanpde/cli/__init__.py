"""The ``kanpde`` command: :mod:`~kanpde.cli.main` (the parser and entry point, the only
module that reads argv), :mod:`~kanpde.cli.commands` (solve, compare, plot, export, predict,
explain), :mod:`~kanpde.cli.tune`, :mod:`~kanpde.cli.signals` and the benchmarks
(:mod:`kanpde.cli.bench`)."""
