"""kanpde: physics-informed Kolmogorov–Arnold Networks, with forward derivative jets."""

from kanpde.derivatives import ENGINES, autograd_jet, compute_jet
from kanpde.jet import Channels, Jet
from kanpde.nn import KAN, MLP

__version__ = "0.1.0"

__all__ = ["KAN", "MLP", "Jet", "Channels", "autograd_jet", "compute_jet", "ENGINES",
           "__version__"]
