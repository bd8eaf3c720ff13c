"""Poisson on the square with a chirped solution (the KAN paper's PDE example, §3.4).

PDE:         u_xx + u_yy = f
             f = -pi^2 (1 + 4 y^2) sin(pi x) sin(pi y^2) + 2 pi sin(pi x) cos(pi y^2)
Domain:      (x, y) in [-1, 1]^2
Conditions:  u = 0 on all four sides (Dirichlet; sin(pi y^2) vanishes at y = +-1)
Exact:       u = sin(pi x) sin(pi y^2)
Source:      Liu et al., "KAN: Kolmogorov-Arnold Networks" (arXiv 2404.19756), §3.4.
             The source f is the Laplacian of the exact solution (checked with sympy in
             tests/test_problems.py).
"""

from math import pi

import torch
from torch import Tensor

from kanpde import Dirichlet, Problem, Scope
from kanpde.problem.geometry import Box


def exact(x: Tensor) -> Tensor:
    """``(N, 2) -> (N,)``: ``sin(pi x) sin(pi y^2)``."""
    return torch.sin(pi * x[:, 0]) * torch.sin(pi * x[:, 1] ** 2)


def source(x: Tensor, y: Tensor) -> Tensor:
    """``f(x, y) = -pi^2 (1 + 4 y^2) sin(pi x) sin(pi y^2) + 2 pi sin(pi x) cos(pi y^2)``."""
    sx = torch.sin(pi * x)
    return (-(pi**2) * (1 + 4 * y**2) * sx * torch.sin(pi * y**2)
            + 2 * pi * sx * torch.cos(pi * y**2))


def pde(s: Scope) -> Tensor:
    """``u_xx + u_yy - f``."""
    return s.u.laplacian() - source(s.x, s.y)


problem = Problem(
    name="poisson2d_paper",
    coords=("x", "y"),
    domain=Box([-1.0, -1.0], [1.0, 1.0], coord_names=("x", "y")),
    residuals={"pde": pde},
    conditions=[Dirichlet(on="boundary", value=0.0)],
    exact=exact,
)
