"""Kovasznay flow: an exact steady solution of the incompressible Navier-Stokes equations.

PDE:         u u_x + v u_y + p_x - nu (u_xx + u_yy) = 0     (momentum_x)
             u v_x + v v_y + p_y - nu (v_xx + v_yy) = 0     (momentum_y)
             u_x + v_y = 0                                  (continuity)
             nu = 1 / Re, Re = 20
Domain:      (x, y) in [-0.5, 1] x [-0.5, 1.5]
Fields:      velocity (u, v) and pressure p
Conditions:  u and v equal the exact solution on the whole boundary (Dirichlet);
             p = (1 - exp(2 lambda)) / 2 on the outflow side x = 1 (Dirichlet). The pressure
             is determined by the velocity only up to a constant; fixing it on one side
             (where the exact p does not depend on y) removes that constant.
Exact:       lambda = 1 / (2 nu) - sqrt(1 / (4 nu^2) + 4 pi^2)   (= -1.8102 for Re = 20)
             u = 1 - exp(lambda x) cos(2 pi y)
             v = lambda / (2 pi) exp(lambda x) sin(2 pi y)
             p = (1 - exp(2 lambda x)) / 2
Source:      Kovasznay, Proc. Camb. Phil. Soc. 44 (1948) 58-62; the PINN set-up of
             Jin et al., "NSFnets" (J. Comput. Phys. 426, 2021).
"""

from math import exp, pi, sqrt

import torch
from torch import Tensor

from kanpde import Dirichlet, Problem, Scope
from kanpde.problem.geometry import Box

RE = 20.0
"""Reynolds number."""
NU = 1.0 / RE
"""Kinematic viscosity nu = 1 / Re."""
LAM = 1.0 / (2.0 * NU) - sqrt(1.0 / (4.0 * NU**2) + 4.0 * pi**2)
"""The Kovasznay decay rate lambda."""


def velocity_u(x: Tensor, y: Tensor) -> Tensor:
    """``u = 1 - exp(lambda x) cos(2 pi y)``."""
    return 1.0 - torch.exp(LAM * x) * torch.cos(2 * pi * y)


def velocity_v(x: Tensor, y: Tensor) -> Tensor:
    """``v = lambda / (2 pi) exp(lambda x) sin(2 pi y)``."""
    return LAM / (2 * pi) * torch.exp(LAM * x) * torch.sin(2 * pi * y)


def pressure(x: Tensor) -> Tensor:
    """``p = (1 - exp(2 lambda x)) / 2``."""
    return 0.5 * (1.0 - torch.exp(2 * LAM * x))


def exact(x: Tensor) -> Tensor:
    """``(N, 2) -> (N, 3)``: columns ``(u, v, p)``."""
    xs, ys = x[:, 0], x[:, 1]
    return torch.stack([velocity_u(xs, ys), velocity_v(xs, ys), pressure(xs)], dim=1)


def momentum_x(s: Scope) -> Tensor:
    return s.u * s.u.d("x") + s.v * s.u.d("y") + s.p.d("x") - s.nu * s.u.laplacian()


def momentum_y(s: Scope) -> Tensor:
    return s.u * s.v.d("x") + s.v * s.v.d("y") + s.p.d("y") - s.nu * s.v.laplacian()


def continuity(s: Scope) -> Tensor:
    return s.u.d("x") + s.v.d("y")


problem = Problem(
    name="kovasznay",
    coords=("x", "y"),
    fields=("u", "v", "p"),
    domain=Box([-0.5, -0.5], [1.0, 1.5], coord_names=("x", "y")),
    residuals={"momentum_x": momentum_x, "momentum_y": momentum_y, "continuity": continuity},
    conditions=[
        Dirichlet(field="u", on="boundary", value=lambda s: velocity_u(s.x, s.y), name="u_wall"),
        Dirichlet(field="v", on="boundary", value=lambda s: velocity_v(s.x, s.y), name="v_wall"),
        Dirichlet(field="p", on="x_max", value=0.5 * (1.0 - exp(2 * LAM)), name="p_outflow"),
    ],
    constants={"nu": NU},
    exact=exact,
)
