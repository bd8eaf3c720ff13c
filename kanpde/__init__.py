"""kanpde: physics-informed Kolmogorov–Arnold Networks, with forward derivative jets."""

from kanpde.conditions import (
    Dirichlet,
    Initial,
    InitialRate,
    Neumann,
    Observations,
    Periodic,
    Robin,
)
from kanpde.derivatives import ENGINES, ProblemError, autograd_jet, compute_jet
from kanpde.jet import Channels, Jet
from kanpde.nn import KAN, MLP
from kanpde.problem import Problem, SolutionField, load_problem
from kanpde.train import solve

__version__ = "0.1.0"

__all__ = [
    "KAN", "MLP", "Jet", "Channels", "autograd_jet", "compute_jet", "ENGINES", "Problem",
    "ProblemError", "SolutionField", "load_problem", "Dirichlet", "Neumann", "Robin",
    "Periodic", "Initial", "InitialRate", "Observations", "solve", "__version__",
]
