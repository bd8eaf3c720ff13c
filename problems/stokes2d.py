"""Stokes flow with a manufactured solution: three fields, the pressure pinned at one point.

PDE:         -(u_xx + u_yy) + p_x = f_x                     (momentum_x)
             -(v_xx + v_yy) + p_y = f_y                     (momentum_y)
             u_x + v_y = 0                                  (continuity)
Domain:      (x, y) in [0, 1]^2
Fields:      velocity (u, v) and pressure p
Conditions:  u = v = 0 on the whole boundary (no slip); p(0, 0) = 1 by one observation. The
             pressure is determined by the velocity only up to a constant: it is declared a
             gauge field, so its error is measured up to a constant (the mean difference is
             removed) and the pin only selects which constant the network learns.
Exact:       u =  pi sin^2(pi x) sin(2 pi y)
             v = -pi sin(2 pi x) sin^2(pi y)
             p =  cos(pi x) cos(pi y)
             (divergence-free; f = -lap(u, v) + grad p, written out below)
Source:      the classical manufactured Stokes test (e.g. the deal.II and FEniCS Stokes
             benchmarks use this velocity).
"""

from math import pi

import numpy as np
import torch
from torch import Tensor

from kanpde import Dirichlet, Observations, Problem, Scope
from kanpde.problem.geometry import Box


def exact(x: Tensor) -> Tensor:
    """``(N, 2) -> (N, 3)``: columns ``(u, v, p)``."""
    xs, ys = x[:, 0], x[:, 1]
    u = pi * torch.sin(pi * xs) ** 2 * torch.sin(2 * pi * ys)
    v = -pi * torch.sin(2 * pi * xs) * torch.sin(pi * ys) ** 2
    p = torch.cos(pi * xs) * torch.cos(pi * ys)
    return torch.stack([u, v, p], dim=1)


def force_x(s: Scope) -> Tensor:
    sx, sy = torch.sin(pi * s.x), torch.sin(pi * s.y)
    return pi * (16 * pi**2 * sx**2 * sy - sx - 4 * pi**2 * sy) * torch.cos(pi * s.y)


def force_y(s: Scope) -> Tensor:
    sx, sy = torch.sin(pi * s.x), torch.sin(pi * s.y)
    return pi * (-16 * pi**2 * sx * sy**2 + 4 * pi**2 * sx - sy) * torch.cos(pi * s.x)


problem = Problem(
    name="stokes2d",
    coords=("x", "y"),
    fields=("u", "v", "p"),
    domain=Box([0.0, 0.0], [1.0, 1.0], coord_names=("x", "y")),
    residuals={
        "momentum_x": lambda s: -s.u.laplacian() + s.p.d("x") - force_x(s),
        "momentum_y": lambda s: -s.v.laplacian() + s.p.d("y") - force_y(s),
        "continuity": lambda s: s.u.d("x") + s.v.d("y"),
    },
    conditions=[
        Dirichlet(field="u", on="boundary", value=0.0, name="u_wall"),
        Dirichlet(field="v", on="boundary", value=0.0, name="v_wall"),
        Observations(field="p", points=np.array([[0.0, 0.0]]), values=1.0, name="p_pin"),
    ],
    gauge=("p",),
    exact=exact,
)
