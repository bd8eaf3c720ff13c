"""Helmholtz on the square with an anisotropic product-of-sines solution.

PDE:         u_xx + u_yy + k^2 u = q
             q = (k^2 - (a1 pi)^2 - (a2 pi)^2) sin(a1 pi x) sin(a2 pi y)
Domain:      (x, y) in [-1, 1]^2
Conditions:  u = 0 on all four sides (Dirichlet; a1, a2 are integers)
Exact:       u = sin(a1 pi x) sin(a2 pi y),  a1 = 1, a2 = 4, k = 1
Parameters:  constants k, a1, a2 (the source is written with them; the exact solution uses the
             module constants K, A1, A2, so change those, not ``problem.constants``).
Source:      the PINN Helmholtz benchmark of Wang, Teng & Perdikaris, "Understanding and
             mitigating gradient pathologies in physics-informed neural networks" (SIAM J.
             Sci. Comput. 43, 2021).
"""

from math import pi

import torch
from torch import Tensor

from kanpde import Dirichlet, Problem, Scope
from kanpde.problem.geometry import Box

K = 1.0
"""Wave number k."""
A1 = 1.0
"""Frequency (in units of pi) of the solution along x."""
A2 = 4.0
"""Frequency (in units of pi) of the solution along y."""


def exact(x: Tensor) -> Tensor:
    """``(N, 2) -> (N,)``: ``sin(a1 pi x) sin(a2 pi y)``."""
    return torch.sin(A1 * pi * x[:, 0]) * torch.sin(A2 * pi * x[:, 1])


def pde(s: Scope) -> Tensor:
    """``u_xx + u_yy + k^2 u - q``."""
    q = ((s.k**2 - (s.a1 * pi) ** 2 - (s.a2 * pi) ** 2)
         * torch.sin(s.a1 * pi * s.x) * torch.sin(s.a2 * pi * s.y))
    return s.u.laplacian() + s.k**2 * s.u - q


problem = Problem(
    name="helmholtz2d",
    coords=("x", "y"),
    domain=Box([-1.0, -1.0], [1.0, 1.0], coord_names=("x", "y")),
    residuals={"pde": pde},
    conditions=[Dirichlet(on="boundary", value=0.0)],
    constants={"k": K, "a1": A1, "a2": A2},
    exact=exact,
    # |u| <= 1. Estimated from the source alone the scale would come out 10: the source
    # varies four times faster along y than the smooth probe kanpde sizes fields with
    scales={"u": 1.0},
)
