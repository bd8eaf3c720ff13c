"""Harmonic oscillator: a second-order ODE in time alone (a small-angle pendulum).

PDE:         y'' + omega^2 y = 0,  omega = 1  (an ODE: the only coordinate is time t)
Domain:      t in [0, 2 pi]; coordinates (t,), time t
Conditions:  y(0) = pi/4 (Initial);  y'(0) = 0 (InitialRate)
Exact:       y = (pi/4) cos(omega t)
Derivation:  y = A cos(omega t) + B sin(omega t) solves the ODE; y(0) = A = pi/4 and
             y'(0) = omega B = 0 give B = 0.
"""

from math import pi

import torch
from torch import Tensor

from kanpde import Initial, InitialRate, Problem, Scope
from kanpde.problem.geometry import Interval

OMEGA = 1.0
"""Angular frequency omega."""

Y0 = pi / 4
"""Initial displacement y(0) (a 45 degree pendulum, linearised)."""


def exact(x: Tensor) -> Tensor:
    """``(N, 1) -> (N,)``: ``y = y0 cos(omega t)``."""
    return Y0 * torch.cos(OMEGA * x[:, 0])


def ode(s: Scope) -> Tensor:
    """``y'' + omega^2 y``."""
    return s.y.d("t", "t") + s.omega**2 * s.y.value


problem = Problem(
    name="oscillator_ode",
    coords=("t",),
    domain=Interval(0.0, 2 * pi),
    residuals={"ode": ode},
    conditions=[
        Initial(field="y", value=Y0, name="initial"),
        InitialRate(field="y", value=0.0, name="initial_rate"),
    ],
    fields=("y",),
    constants={"omega": OMEGA},
    exact=exact,
    time="t",
)
