"""kanpde: physics-informed Kolmogorov–Arnold Networks, with forward derivative jets."""

from kanpde._version import __version__
from kanpde.core.engines import ENGINES, autograd_jet, compute_jet
from kanpde.core.jet import Channels, Jet
from kanpde.nn import KAN, MLP
from kanpde.problem import (
    Dirichlet,
    Initial,
    InitialRate,
    Neumann,
    Observations,
    Periodic,
    Problem,
    ProblemError,
    Robin,
    Scope,
    SolutionField,
    load_problem,
)
from kanpde.training.solve import solve

__all__ = [
    "KAN", "MLP", "Jet", "Channels", "autograd_jet", "compute_jet", "ENGINES", "Problem",
    "ProblemError", "Scope", "SolutionField", "load_problem", "Dirichlet", "Neumann", "Robin",
    "Periodic", "Initial", "InitialRate", "Observations", "solve", "__version__",
]
