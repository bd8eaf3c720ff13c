"""Wave equation on the unit interval with a two-mode standing wave (multi-scale in time).

PDE:         u_tt = c^2 u_xx,  c = 2
Domain:      x in [0, 1], t in [0, 1]; coordinates (x, t), time last
Conditions:  u(0, t) = u(1, t) = 0 (Dirichlet);
             u(x, 0) = sin(pi x) + 1/2 sin(4 pi x) (Initial);  u_t(x, 0) = 0 (InitialRate)
Exact:       u = sin(pi x) cos(2 pi t) + 1/2 sin(4 pi x) cos(8 pi t)
Source:      Wang, Yu & Perdikaris, "When and why PINNs fail to train: a neural tangent
             kernel perspective" (J. Comput. Phys. 449, 2022).
"""

from math import pi

import torch
from torch import Tensor

from kanpde import Dirichlet, Initial, InitialRate, Problem, Scope
from kanpde.problem.geometry import Interval, SpaceTime

C = 2.0
"""Wave speed c."""


def exact(x: Tensor) -> Tensor:
    """``(N, 2) -> (N,)`` with columns ``(x, t)``."""
    xs, t = x[:, 0], x[:, 1]
    return (torch.sin(pi * xs) * torch.cos(C * pi * t)
            + 0.5 * torch.sin(4 * pi * xs) * torch.cos(4 * C * pi * t))


def pde(s: Scope) -> Tensor:
    """``u_tt - c^2 u_xx``."""
    return s.u.d("t", "t") - s.c**2 * s.u.d("x", "x")


def initial(s: Scope) -> Tensor:
    """``u(x, 0) = sin(pi x) + 1/2 sin(4 pi x)``."""
    return torch.sin(pi * s.x) + 0.5 * torch.sin(4 * pi * s.x)


problem = Problem(
    name="wave1d",
    coords=("x", "t"),
    domain=SpaceTime(Interval(0.0, 1.0), 0.0, 1.0),
    residuals={"pde": pde},
    conditions=[
        Initial(value=initial, name="initial"),
        InitialRate(value=0.0, name="initial_rate"),  # time: the problem's
        Dirichlet(on=("left", "right"), value=0.0, name="boundary"),
    ],
    constants={"c": C},
    exact=exact,
    time="t",
)
