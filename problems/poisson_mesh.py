"""Poisson on an L-shaped domain given as a triangle mesh file (smooth manufactured solution).

PDE:         -(u_xx + u_yy) = f,  f = 2 pi^2 sin(pi x) sin(pi y)
Domain:      the L-shape [-1, 1]^2 minus (0, 1] x [-1, 0) (re-entrant corner at the origin),
             read from data/poisson_mesh.msh (Gmsh 2.2, 1536 triangles, boundary groups
             "outer" and "reentrant"; regenerate with data/make_poisson_mesh.py)
Conditions:  u = exact solution on the whole boundary (Dirichlet)
Exact:       u = sin(pi x) sin(pi y) + x y     (x y is harmonic, so it adds boundary data
             but no source; the solution is smooth, without the corner singularity)
Source:      manufactured; the L-shape is the classical test of mesh-defined geometry.
"""

from math import pi
from pathlib import Path

import torch
from torch import Tensor

from kanpde import Dirichlet, Problem, Scope
from kanpde.problem.geometry import MeshDomain

MESH = Path(__file__).parent / "data" / "poisson_mesh.msh"
"""Mesh of the L-shaped domain."""


def exact(x: Tensor) -> Tensor:
    """``(N, 2) -> (N,)``: ``sin(pi x) sin(pi y) + x y``."""
    xs, ys = x[:, 0], x[:, 1]
    return torch.sin(pi * xs) * torch.sin(pi * ys) + xs * ys


def pde(s: Scope) -> Tensor:
    """``-(u_xx + u_yy) - f``."""
    return -s.u.laplacian() - 2 * pi**2 * torch.sin(pi * s.x) * torch.sin(pi * s.y)


problem = Problem(
    name="poisson_mesh",
    coords=("x", "y"),
    domain=MeshDomain.from_file(MESH),
    residuals={"pde": pde},
    conditions=[Dirichlet(on="boundary", value=lambda s: exact(s.points))],
    exact=exact,
)
