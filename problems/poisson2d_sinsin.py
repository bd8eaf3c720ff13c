"""Poisson on the square with a product-of-sines solution (the pykan PDE tutorial problem).

PDE:         u_xx + u_yy = -2 pi^2 sin(pi x) sin(pi y)
Domain:      (x, y) in [-1, 1]^2
Conditions:  u = 0 on all four sides (Dirichlet)
Exact:       u = sin(pi x) sin(pi y)
Source:      pykan tutorial "PDE solving" (Liu et al. 2024, arXiv 2404.19756).
"""

from math import pi

import torch
from torch import Tensor

from kanpde import Dirichlet, Problem, Scope
from kanpde.problem.geometry import Box


def exact(x: Tensor) -> Tensor:
    """``(N, 2) -> (N,)``: ``sin(pi x) sin(pi y)``."""
    return torch.sin(pi * x[:, 0]) * torch.sin(pi * x[:, 1])


def pde(s: Scope) -> Tensor:
    """``u_xx + u_yy + 2 pi^2 sin(pi x) sin(pi y)``."""
    return s.u.laplacian() + 2 * pi**2 * torch.sin(pi * s.x) * torch.sin(pi * s.y)


problem = Problem(
    name="poisson2d_sinsin",
    coords=("x", "y"),
    domain=Box([-1.0, -1.0], [1.0, 1.0], coord_names=("x", "y")),
    residuals={"pde": pde},
    conditions=[Dirichlet(on="boundary", value=0.0)],
    exact=exact,
)
