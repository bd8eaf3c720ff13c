"""Poisson in the unit box of DIM = 5 dimensions (a curse-of-dimensionality test).

PDE:         -(u_x1x1 + ... + u_xdxd) = f,  f = (pi^2 / 4) sum_i sin(pi x_i / 2)
Domain:      (x1, ..., xd) in [0, 1]^d, d = DIM (module constant, default 5)
Conditions:  u = exact solution on the whole boundary (Dirichlet)
Exact:       u = sum_i sin(pi x_i / 2)    (smooth, one quarter period per axis, so every face
             carries different non-zero data)
Source:      manufactured; cf. the high-dimensional Poisson tests of the Deep Ritz method
             (E & Yu, Commun. Math. Stat. 6, 2018).
"""

from math import pi

import torch
from torch import Tensor

from kanpde import Dirichlet, Problem, Scope
from kanpde.problem.geometry import Box

DIM = 5
"""Number of space dimensions d; coordinates are named x1, ..., xd."""
COORDS = tuple(f"x{i + 1}" for i in range(DIM))
"""Coordinate names in column order."""


def exact(x: Tensor) -> Tensor:
    """``(N, d) -> (N,)``: ``sum_i sin(pi x_i / 2)``."""
    return torch.sin(0.5 * pi * x).sum(dim=1)


def pde(s: Scope) -> Tensor:
    """``-laplacian(u) - f``."""
    return -s.u.laplacian() - 0.25 * pi**2 * torch.sin(0.5 * pi * s.points).sum(dim=1)


problem = Problem(
    name="poisson_nd",
    coords=COORDS,
    domain=Box([0.0] * DIM, [1.0] * DIM, coord_names=COORDS),
    residuals={"pde": pde},
    conditions=[Dirichlet(on="boundary", value=lambda s: exact(s.points))],
    exact=exact,
)
