"""Linear advection with periodic boundaries (the "convection" failure-mode problem).

PDE:         u_t + c u_x = 0,  c = 1
Domain:      x in [0, 2 pi) periodic, t in [0, 1]; coordinates (x, t), time last
Conditions:  u(0, t) = u(2 pi, t) and u_x(0, t) = u_x(2 pi, t) (Periodic in x);
             u(x, 0) = sin(x) (Initial)
Exact:       u = sin(x - c t)
Source:      Krishnapriyan et al., "Characterizing possible failure modes in physics-informed
             neural networks" (NeurIPS 2021), where c is called beta: plain PINNs train well
             for beta = 1 and fail from beta of about 10 (beta = 30, 40 in the paper). Change
             the module constant C to study that regime (it sets both the PDE and the exact
             solution).
"""

from math import pi

import torch
from torch import Tensor

from kanpde import Initial, Periodic, Problem, Scope
from kanpde.problem.geometry import Interval, SpaceTime

C = 1.0
"""Advection speed c (beta in Krishnapriyan et al.)."""


def exact(x: Tensor) -> Tensor:
    """``(N, 2) -> (N,)`` with columns ``(x, t)``: ``sin(x - c t)``."""
    return torch.sin(x[:, 0] - C * x[:, 1])


def pde(s: Scope) -> Tensor:
    """``u_t + c u_x``."""
    return s.u.d("t") + s.c * s.u.d("x")


def initial(s: Scope) -> Tensor:
    """``u(x, 0) = sin(x)``."""
    return torch.sin(s.x)


problem = Problem(
    name="advection1d",
    coords=("x", "t"),
    domain=SpaceTime(Interval(0.0, 2 * pi), 0.0, 1.0),
    residuals={"pde": pde},
    conditions=[
        Initial(value=initial, name="initial"),
        Periodic(coord="x", name="periodic"),
    ],
    constants={"c": C},
    exact=exact,
    time="t",
)
