"""Inverse Poisson problem: recover a constant conductivity from interior observations.

PDE:         -div(kappa grad u) = f, kappa an unknown constant, so -kappa (u_xx + u_yy) = f
             f = 2 kappa_true pi^2 sin(pi x) sin(pi y),  kappa_true = 2
Domain:      (x, y) in [0, 1]^2
Conditions:  u = 0 on all four sides (Dirichlet);
             u observed (noise-free) at 100 interior points drawn uniformly in (0, 1)^2 by a
             torch.Generator seeded with OBS_SEED (Observations)
Unknowns:    kappa, initial guess 0.5, true value 2
Exact:       u = sin(pi x) sin(pi y)
Source:      manufactured; the PINN parameter-identification set-up of Raissi et al.,
             J. Comput. Phys. 378 (2019) 686-707.
"""

from math import pi

import torch
from torch import Tensor

from kanpde import Dirichlet, Observations, Problem, Scope
from kanpde.problem.geometry import Box

KAPPA_TRUE = 2.0
"""True conductivity (used for the source and for reporting)."""
KAPPA_GUESS = 0.5
"""Initial guess of the unknown conductivity."""
N_OBS = 100
"""Number of interior observations."""
OBS_SEED = 1234
"""Seed of the generator that places the observations."""


def exact(x: Tensor) -> Tensor:
    """``(N, 2) -> (N,)``: ``sin(pi x) sin(pi y)``."""
    return torch.sin(pi * x[:, 0]) * torch.sin(pi * x[:, 1])


def pde(s: Scope) -> Tensor:
    """``-kappa (u_xx + u_yy) - f`` with ``kappa`` the unknown."""
    f = 2 * KAPPA_TRUE * pi**2 * torch.sin(pi * s.x) * torch.sin(pi * s.y)
    return -s.kappa * s.u.laplacian() - f


OBS_POINTS = torch.rand(N_OBS, 2, generator=torch.Generator().manual_seed(OBS_SEED),
                        dtype=torch.float64)
"""``(N_OBS, 2)`` observation points, uniform in the open unit square."""

problem = Problem(
    name="poisson_inverse",
    coords=("x", "y"),
    domain=Box([0.0, 0.0], [1.0, 1.0], coord_names=("x", "y")),
    residuals={"pde": pde},
    conditions=[
        Dirichlet(on="boundary", value=0.0, name="boundary"),
        Observations(points=OBS_POINTS, values=exact(OBS_POINTS), name="observations"),
    ],
    unknowns={"kappa": KAPPA_GUESS},
    true_unknowns={"kappa": KAPPA_TRUE},
    exact=exact,
)
