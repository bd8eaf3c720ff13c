"""Allen-Cahn equation with periodic boundaries (the PINN benchmark of Raissi et al. 2019).

PDE:         u_t - eps u_xx + gamma u^3 - gamma u = 0,  eps = 1e-4, gamma = 5
Domain:      x in [-1, 1] periodic, t in [0, 1]; coordinates (x, t), time last
Conditions:  u(-1, t) = u(1, t) and u_x(-1, t) = u_x(1, t) (Periodic in x);
             u(x, 0) = x^2 cos(pi x) (Initial)
Reference:   data/allen_cahn1d.h5: Fourier pseudo-spectral in x (8192 modes) with ETDRK4 in
             time (kanpde.classical.allen_cahn), stored on 2049 x 101 points and
             interpolated by a tensor-product cubic spline (max interpolation error about
             2e-6). No closed form: the solution develops metastable interfaces of width about
             sqrt(eps / gamma) = 4.5e-3. The initial data have a kink at x = +-1 in the
             periodic extension (u_x(-1, 0) = 2, u_x(1, 0) = -2), which diffusion smooths at
             once; the reference is even in x, so u_x(+-1, t) = 0 for t > 0.
Source:      Raissi, Perdikaris & Karniadakis, J. Comput. Phys. 378 (2019) 686-707.
"""

from math import pi
from pathlib import Path

import torch
from torch import Tensor

from kanpde import Initial, Periodic, Problem, Scope
from kanpde.io.reference_files import load_reference
from kanpde.problem.geometry import Interval, SpaceTime

EPS = 1e-4
"""Diffusion coefficient eps."""
GAMMA = 5.0
"""Reaction coefficient gamma."""
REFERENCE = Path(__file__).parent / "data" / "allen_cahn1d.h5"
"""Stored reference solution (grid layout, coordinates (x, t))."""


def pde(s: Scope) -> Tensor:
    """``u_t - eps u_xx + gamma u^3 - gamma u``."""
    return s.u.d("t") - s.eps * s.u.d("x", "x") + s.gamma * s.u**3 - s.gamma * s.u


def initial(s: Scope) -> Tensor:
    """``u(x, 0) = x^2 cos(pi x)``."""
    return s.x**2 * torch.cos(pi * s.x)


problem = Problem(
    name="allen_cahn1d",
    coords=("x", "t"),
    domain=SpaceTime(Interval(-1.0, 1.0), 0.0, 1.0),
    residuals={"pde": pde},
    conditions=[
        Initial(value=initial, name="initial"),
        Periodic(coord="x", name="periodic"),
    ],
    constants={"eps": EPS, "gamma": GAMMA},
    reference=load_reference(REFERENCE),
    time="t",
)
