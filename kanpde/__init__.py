"""kanpde: physics-informed Kolmogorov–Arnold Networks, with forward derivative jets.

The names here are what the README's workflows use; each is imported on first use, so
``import kanpde; kanpde.KAN`` loads the networks and nothing of training, results or the
command line::

    from kanpde import KAN, MLP, autograd_jet                 # networks and their jets
    from kanpde import Problem, Dirichlet, Scope, load_problem  # what to solve
    from kanpde import solve, load_config, SolverConfig        # how to solve it
    from kanpde import Result, load_result, load_run           # what a run produced
"""

from __future__ import annotations

import importlib
from typing import Any

from kanpde._version import __version__

#: public name -> the module that defines it
_EXPORTS = {
    "KAN": "kanpde.nn.kan",
    "MLP": "kanpde.nn.mlp",
    "autograd_jet": "kanpde.core.engines",
    "Problem": "kanpde.problem.problem",
    "load_problem": "kanpde.problem.load",
    "Scope": "kanpde.problem.scope",
    "Dirichlet": "kanpde.problem.conditions",
    "Neumann": "kanpde.problem.conditions",
    "Robin": "kanpde.problem.conditions",
    "Periodic": "kanpde.problem.conditions",
    "Initial": "kanpde.problem.conditions",
    "InitialRate": "kanpde.problem.conditions",
    "Observations": "kanpde.problem.conditions",
    "solve": "kanpde.training.solve",
    "load_config": "kanpde.training.config",
    "SolverConfig": "kanpde.training.config",
    "Result": "kanpde.io.results",
    "load_result": "kanpde.io.results",
    "load_run": "kanpde.io.run",
}

__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str) -> Any:
    """Import a public name's module on first use (PEP 562)."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'kanpde' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
