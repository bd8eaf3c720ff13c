r"""Viscous Burgers equation on [-1, 1] by the Cole–Hopf transform (exact up to quadrature).

The problem (Basdevant et al. 1986; the PINN benchmark of Raissi et al. 2019):

    u_t + u u_x = nu u_xx,   x in [-1, 1], t in [0, 1],
    u(x, 0) = -sin(pi x),    u(-1, t) = u(1, t) = 0,      nu = 0.01 / pi.

Since the initial data extend to an odd, 2-periodic function on the real line, the solution on
[-1, 1] is that of the Cauchy problem, which the Cole–Hopf transform u = -2 nu phi_x / phi turns
into the heat equation. With f(y) = exp(-cos(pi y) / (2 pi nu)),

    u(x, t) = - ∫ sin(pi (x - eta)) f(x - eta) exp(-eta^2 / (4 nu t)) d eta
                / ∫ f(x - eta) exp(-eta^2 / (4 nu t)) d eta.

Substituting eta = sqrt(4 nu t) s turns both integrals into ∫ g(s) exp(-s^2) ds, evaluated with
n-point Gauss–Hermite quadrature (nodes s_i, weights w_i from ``scipy.special.roots_hermite``,
which, unlike ``numpy.polynomial.hermite.hermgauss``, stays finite for n > 150). The exponent
-cos(pi y) / (2 pi nu) spans ±50, so it is shifted by its maximum over the nodes, per point,
before exponentiating; the shift cancels in the ratio.

Accuracy (checked in tests/test_reference.py and by the generator): for t in (0, 1] the
difference between n_quad = 100 and 200 nodes is below 1e-14 everywhere; the default 300 is
converged to round-off. At x = 0 the slope reaches its known extreme
u_x(0, 1.6037/pi) = -152.00516 (Basdevant et al. 1986), reproduced to 1e-6.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.special import roots_hermite

from kanpde.io.reference_files import save_grid_reference
from kanpde.problem.reference import GridData

__all__ = ["BURGERS_NU", "burgers_cole_hopf", "burgers_cole_hopf_ux", "burgers_grid",
           "make_burgers_reference"]

BURGERS_NU = 0.01 / np.pi
"""The benchmark viscosity nu = 0.01 / pi."""


def _quadrature(
    x: np.ndarray, t: np.ndarray, nu: float, n_quad: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Validate the arguments; return ``x``, ``t`` broadcast to one shape and the
    Gauss–Hermite nodes ``s (n_quad,)`` and weights ``w (n_quad,)`` for the weight exp(-s^2)."""
    if not nu > 0:
        raise ValueError(f"nu must be positive, got {nu}")
    if n_quad < 2:
        raise ValueError(f"n_quad must be at least 2, got {n_quad}")
    x, t = np.broadcast_arrays(np.asarray(x, dtype=np.float64), np.asarray(t, dtype=np.float64))
    if np.any(t < 0) or not (np.all(np.isfinite(t)) and np.all(np.isfinite(x))):
        raise ValueError("t must be finite and non-negative and x finite")
    return x, t, *roots_hermite(n_quad)


def _weighted_terms(
    x: np.ndarray, t: np.ndarray, nu: float, nodes: np.ndarray, weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``y (..., n)``, ``sin(pi y)`` and the weighted, max-shifted ``w f(y)`` at every node."""
    y = x[..., None] - np.sqrt(4.0 * nu * t)[..., None] * nodes
    exponent = -np.cos(np.pi * y) / (2.0 * np.pi * nu)
    exponent -= exponent.max(axis=-1, keepdims=True)
    return y, np.sin(np.pi * y), weights * np.exp(exponent)


def burgers_cole_hopf(
    x: np.ndarray | float,
    t: np.ndarray | float,
    nu: float = BURGERS_NU,
    n_quad: int = 300,
) -> np.ndarray:
    """Exact Burgers solution u(x, t) with u(x, 0) = -sin(pi x), by Cole–Hopf quadrature.

    Args:
        x: positions (any shape, broadcast against ``t``); the formula holds for all real x,
            the benchmark domain is [-1, 1].
        t: times, ``t >= 0``; at ``t = 0`` the initial condition is returned.
        nu: viscosity.
        n_quad: Gauss–Hermite nodes (300 is converged to round-off for t <= 1, nu = 0.01/pi).

    Returns:
        float64 array of the broadcast shape of ``x`` and ``t``.
    """
    x, t, nodes, weights = _quadrature(x, t, nu, n_quad)
    _, sin_y, wf = _weighted_terms(x, t, nu, nodes, weights)
    u = -(sin_y * wf).sum(axis=-1) / wf.sum(axis=-1)
    return np.where(t > 0, u, -np.sin(np.pi * x))


def burgers_cole_hopf_ux(
    x: np.ndarray | float,
    t: np.ndarray | float,
    nu: float = BURGERS_NU,
    n_quad: int = 300,
) -> np.ndarray:
    """The slope u_x(x, t), by differentiating the Cole–Hopf quadrature formula exactly.

    With N = Σ w sin(pi y) f(y), D = Σ w f(y) and f'(y) = f(y) sin(pi y) / (2 nu):
    u = -N / D and u_x = -(N_x D - N D_x) / D^2, where
    N_x = Σ w f(y) (pi cos(pi y) + sin(pi y)^2 / (2 nu)) and D_x = N / (2 nu).

    Args:
        x: positions, broadcast against ``t``.
        t: times, ``t >= 0`` (``t = 0`` gives -pi cos(pi x)).
        nu: viscosity.
        n_quad: Gauss–Hermite nodes.

    Returns:
        float64 array of the broadcast shape.
    """
    x, t, nodes, weights = _quadrature(x, t, nu, n_quad)
    y, sin_y, wf = _weighted_terms(x, t, nu, nodes, weights)
    num = (sin_y * wf).sum(axis=-1)
    den = wf.sum(axis=-1)
    num_x = (wf * (np.pi * np.cos(np.pi * y) + sin_y**2 / (2.0 * nu))).sum(axis=-1)
    ux = -(num_x * den - num * num / (2.0 * nu)) / den**2
    return np.where(t > 0, ux, -np.pi * np.cos(np.pi * x))


def burgers_grid(n_x: int = 513, n_t: int = 201, stretch: float = 5.0) -> tuple[np.ndarray,
                                                                                np.ndarray]:
    """The storage grid: x clustered at the front x = 0, t uniform.

    x_i = sinh(stretch * xi_i) / sinh(stretch) with xi uniform on [-1, 1] (spacing at x = 0 is
    about 2 stretch / ((n_x - 1) sinh(stretch)), cosh(stretch) times finer than at the ends);
    t_j = j / (n_t - 1).

    Args:
        n_x: points in x (odd keeps x = 0 a grid point).
        n_t: points in t.
        stretch: clustering strength (0 gives a uniform grid).

    Returns:
        ``(x (n_x,), t (n_t,))``, both including the end points exactly.
    """
    if n_x < 4 or n_t < 4:
        raise ValueError(f"n_x and n_t must be at least 4, got {n_x}, {n_t}")
    if stretch < 0:
        raise ValueError(f"stretch must be non-negative, got {stretch}")
    xi = np.linspace(-1.0, 1.0, n_x)
    x = np.sinh(stretch * xi) / np.sinh(stretch) if stretch > 0 else xi
    x[0], x[-1] = -1.0, 1.0
    return x, np.linspace(0.0, 1.0, n_t)


def make_burgers_reference(
    path: str | Path,
    n_x: int = 513,
    n_t: int = 201,
    stretch: float = 5.0,
    n_quad: int = 300,
    n_check: int = 20000,
    seed: int = 0,
    command: str = "python -m kanpde.classical --out problems/data",
) -> dict[str, float]:
    """Compute the Burgers reference on :func:`burgers_grid` and store it (grid layout).

    Also estimates and records (as HDF5 attributes) the quadrature error at the nodes,
    max |u(n_quad) - u(2 n_quad)|, and the error of cubic interpolation from the stored grid at
    ``n_check`` uniformly random points of [-1, 1] x [0, 1] against direct evaluation.

    Args:
        path: output ``.h5`` file.
        n_x, n_t, stretch: grid, see :func:`burgers_grid`.
        n_quad: Gauss–Hermite nodes.
        n_check: random points for the interpolation check.
        seed: seed of the check points' generator.
        command: the command recorded as provenance.

    Returns:
        The error estimates written to the file.
    """
    x, t = burgers_grid(n_x, n_t, stretch)
    u = burgers_cole_hopf(x[:, None], t[None, :], BURGERS_NU, n_quad)
    quad_err = float(np.abs(u - burgers_cole_hopf(x[:, None], t[None, :], BURGERS_NU,
                                                  2 * n_quad)).max())
    rng = np.random.default_rng(seed)
    pts = np.column_stack([rng.uniform(-1.0, 1.0, n_check), rng.uniform(0.0, 1.0, n_check)])
    exact = burgers_cole_hopf(pts[:, 0], pts[:, 1], BURGERS_NU, n_quad)
    interp = GridData((x, t), u[..., None], ("u",), method="cubic").evaluate_numpy(pts)[:, 0]
    errors = {
        "error_estimate": quad_err,
        "interp_error_rel_l2": float(np.linalg.norm(interp - exact) / np.linalg.norm(exact)),
        "interp_error_max_abs": float(np.abs(interp - exact).max()),
    }
    attrs = {
        "pde": "u_t + u u_x = nu u_xx, x in [-1, 1], t in [0, 1]; u(x, 0) = -sin(pi x), "
        "u(-1, t) = u(1, t) = 0",
        "parameters": {"nu": BURGERS_NU},
        "coordinates": "x,t",
        "layout": "values[i, j, 0] = u(axes/0[i], axes/1[j])",
        "method": f"Cole-Hopf transform, Gauss-Hermite quadrature with n_quad={n_quad} nodes "
        "(kanpde.classical.burgers.burgers_cole_hopf); exact up to quadrature and "
        "round-off",
        "resolution": f"x: {n_x} points x_i = sinh({stretch} xi_i)/sinh({stretch}), xi uniform "
        f"on [-1, 1]; t: {n_t} uniform points on [0, 1]",
        "command": command,
        "error_estimate_method": f"max |u(n_quad={n_quad}) - u(n_quad={2 * n_quad})| over the "
        "stored grid",
        "interp_error_method": f"cubic GridData from the stored grid vs direct Cole-Hopf "
        f"evaluation at {n_check} uniform random points of [-1, 1] x [0, 1] (seed {seed})",
        "reference": "Basdevant et al., Comput. Fluids 14 (1986) 23-41; Raissi, Perdikaris, "
        "Karniadakis, J. Comput. Phys. 378 (2019) 686-707",
        **errors,
    }
    save_grid_reference(path, (x, t), u[..., None], ("u",), attrs)
    return errors
