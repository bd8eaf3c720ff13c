"""Heat equation on the unit interval with a two-mode decaying solution.

PDE:         u_t = alpha u_xx,  alpha = 0.1
Domain:      x in [0, 1], t in [0, 1]; coordinates (x, t), time last
Conditions:  u(0, t) = u(1, t) = 0 (Dirichlet); u(x, 0) = sin(pi x) + sin(2 pi x) (Initial)
Exact:       u = exp(-alpha pi^2 t) sin(pi x) + exp(-4 alpha pi^2 t) sin(2 pi x)
             (two separated Fourier modes; the second decays four times faster, so by t = 1
             the solution is dominated by the first mode: exp(-0.99) vs exp(-3.95)).
Source:      textbook separation of variables (e.g. Evans, PDE, §2.3).
"""

from math import pi

import torch
from torch import Tensor

from kanpde import Dirichlet, Initial, Problem, Scope
from kanpde.problem.geometry import Interval, SpaceTime

ALPHA = 0.1
"""Diffusivity alpha."""


def exact(x: Tensor) -> Tensor:
    """``(N, 2) -> (N,)`` with columns ``(x, t)``."""
    xs, t = x[:, 0], x[:, 1]
    return (torch.exp(-ALPHA * pi**2 * t) * torch.sin(pi * xs)
            + torch.exp(-4 * ALPHA * pi**2 * t) * torch.sin(2 * pi * xs))


def pde(s: Scope) -> Tensor:
    """``u_t - alpha u_xx``."""
    return s.u.d("t") - s.alpha * s.u.d("x", "x")


def initial(s: Scope) -> Tensor:
    """``u(x, 0) = sin(pi x) + sin(2 pi x)``."""
    return torch.sin(pi * s.x) + torch.sin(2 * pi * s.x)


problem = Problem(
    name="heat1d",
    coords=("x", "t"),
    domain=SpaceTime(Interval(0.0, 1.0), 0.0, 1.0),
    residuals={"pde": pde},
    conditions=[
        Initial(value=initial, name="initial"),
        Dirichlet(on=("left", "right"), value=0.0, name="boundary"),
    ],
    constants={"alpha": ALPHA},
    exact=exact,
    time="t",
)
