"""Viscous Burgers equation with a steep front (the PINN benchmark of Raissi et al. 2019).

PDE:         u_t + u u_x = nu u_xx,  nu = 0.01 / pi
Domain:      x in [-1, 1], t in [0, 1]; coordinates (x, t), time last
Conditions:  u(x, 0) = -sin(pi x) (Initial); u(-1, t) = u(1, t) = 0 (Dirichlet)
Reference:   data/burgers1d.h5, the Cole-Hopf solution by Gauss-Hermite quadrature
             (kanpde.classical.burgers) on a 513 x 201 grid refined towards x = 0,
             interpolated by a tensor-product cubic spline (max interpolation error about
             2e-7). No closed form: the front at x = 0 reaches |u_x| = 152 at t = 0.51.
Source:      Basdevant et al., Comput. Fluids 14 (1986) 23-41; Raissi, Perdikaris &
             Karniadakis, J. Comput. Phys. 378 (2019) 686-707.
"""

from math import pi
from pathlib import Path

import torch
from torch import Tensor

from kanpde import Dirichlet, Initial, Problem, Scope
from kanpde.io.reference_files import load_reference
from kanpde.problem.geometry import Interval, SpaceTime

NU = 0.01 / pi
"""Viscosity nu."""
REFERENCE = Path(__file__).parent / "data" / "burgers1d.h5"
"""Stored reference solution (grid layout, coordinates (x, t))."""


def pde(s: Scope) -> Tensor:
    """``u_t + u u_x - nu u_xx``."""
    return s.u.d("t") + s.u * s.u.d("x") - s.nu * s.u.d("x", "x")


def initial(s: Scope) -> Tensor:
    """``u(x, 0) = -sin(pi x)``."""
    return -torch.sin(pi * s.x)


problem = Problem(
    name="burgers1d",
    coords=("x", "t"),
    domain=SpaceTime(Interval(-1.0, 1.0), 0.0, 1.0),
    residuals={"pde": pde},
    conditions=[
        Initial(value=initial, name="initial"),
        Dirichlet(on=("left", "right"), value=0.0, name="boundary"),
    ],
    constants={"nu": NU},
    reference=load_reference(REFERENCE),
    time="t",
)
