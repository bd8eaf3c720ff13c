r"""Allen–Cahn equation on the periodic interval [-1, 1) by Fourier spectral ETDRK4.

The problem (the PINN benchmark of Raissi et al. 2019):

    u_t - eps u_xx + gamma u^3 - gamma u = 0,   x in [-1, 1] periodic, t in [0, 1],
    u(x, 0) = x^2 cos(pi x),                      eps = 1e-4, gamma = 5.

Splitting. Written as u_t = L u + N(u) with the stiff linear part diagonal in Fourier space,

    L = eps d^2/dx^2         (symbol -eps k^2, k = pi m for the period 2),
    N(u) = gamma (u - u^3)   (evaluated pseudo-spectrally on the grid),

the reaction term +gamma u is kept in N, as in Kassam & Trefethen's Allen–Cahn example, so L is
non-positive. Time stepping is ETDRK4 (Cox & Matthews 2002, J. Comput. Phys. 176, 430–455):

    a = E2 v + Q N(v),        b = E2 v + Q N(a),       c = E2 a + Q (2 N(b) - N(v)),
    v <- E v + f1 N(v) + 2 f2 (N(a) + N(b)) + f3 N(c),

with E = exp(hL), E2 = exp(hL/2) and the phi-function coefficients Q, f1, f2, f3 evaluated by
the contour-integral mean of Kassam & Trefethen (2005, SIAM J. Sci. Comput. 26, 1214–1233) over
n_contour points on the upper half of the unit circle centred at each hL (real part taken, which
equals the full-circle mean because hL is real). The nonlinear term is not dealiased.

Accuracy. The periodic extension of the initial condition has a kink at x = ±1 (u_x jumps
from -2 to +2), so spatial convergence is algebraic (roughly O(n_x^-1..-2)), not spectral, at
early times; for smooth periodic data it is spectral. The error sits at x = ±1 and decays like
exp(-10 t), u = -1 being a stable state there: at t <= 0.003 it is about 5e-4 (n_x = 1024),
2e-4 (2048), 1.3e-5 (8192), at t = 0.05 about 1e-6 for n_x = 8192; away from x = ±1 it is below
1e-8 already for n_x = 2048. Time stepping is fourth order: at n_x = 2048, t = 1, the error is
9e-8 (dt = 1e-2) and 1e-11 (dt = 1e-3).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from kanpde.io.reference_files import save_grid_reference
from kanpde.problem.reference import GridData

__all__ = ["allen_cahn_etdrk4", "allen_cahn_time_grid", "etdrk4_coefficients",
           "make_allen_cahn_reference"]


def _initial_condition(x: np.ndarray) -> np.ndarray:
    """u(x, 0) = x^2 cos(pi x)."""
    return x**2 * np.cos(np.pi * x)


def etdrk4_coefficients(
    lin: np.ndarray, h: float, n_contour: int = 32
) -> tuple[np.ndarray, ...]:
    """ETDRK4 coefficients for the diagonal linear operator ``lin`` and step ``h``.

    With z = h L and phi-type functions evaluated as means over the contour z + exp(i theta_j),
    theta_j = pi (j - 1/2) / n_contour, j = 1..n_contour (Kassam & Trefethen 2005):

        Q  = h mean((e^{z/2} - 1) / z)
        f1 = h mean((-4 - z + e^z (4 - 3z + z^2)) / z^3)
        f2 = h mean((2 + z + e^z (z - 2)) / z^3)
        f3 = h mean((-4 - 3z - z^2 + e^z (4 - z)) / z^3)

    Args:
        lin: ``(K,)`` real eigenvalues of L.
        h: time step.
        n_contour: contour points on the upper half circle.

    Returns:
        ``(E, E2, Q, f1, f2, f3)``, each ``(K,)`` float64.
    """
    z = h * np.asarray(lin, dtype=np.float64)
    roots = np.exp(1j * np.pi * (np.arange(1, n_contour + 1) - 0.5) / n_contour)
    zr = z[:, None] + roots[None, :]
    ez = np.exp(zr)

    def mean(values: np.ndarray) -> np.ndarray:
        return h * np.real(values.mean(axis=1))

    q = mean((np.exp(zr / 2) - 1.0) / zr)
    f1 = mean((-4.0 - zr + ez * (4.0 - 3.0 * zr + zr**2)) / zr**3)
    f2 = mean((2.0 + zr + ez * (zr - 2.0)) / zr**3)
    f3 = mean((-4.0 - 3.0 * zr - zr**2 + ez * (4.0 - zr)) / zr**3)
    return np.exp(z), np.exp(z / 2), q, f1, f2, f3


def allen_cahn_etdrk4(
    n_x: int = 512,
    dt: float = 1e-3,
    t_end: float = 1.0,
    t_save: np.ndarray | None = None,
    eps: float = 1e-4,
    gamma: float = 5.0,
    n_contour: int = 32,
    u0: Callable[[np.ndarray], np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Solve u_t = eps u_xx + gamma (u - u^3) on [-1, 1) periodic by Fourier ETDRK4.

    Each interval between consecutive save times is split into the fewest equal steps
    h <= dt, so every save time is hit exactly.

    Args:
        n_x: grid points (even), x_j = -1 + 2 j / n_x.
        dt: largest time step.
        t_end: final time; the default save times are 101 uniform times on [0, t_end].
        t_save: ``(n_t,)`` non-decreasing save times in [0, t_end].
        eps: diffusion coefficient.
        gamma: reaction coefficient.
        n_contour: contour points for the ETDRK4 coefficients.
        u0: initial condition (vectorised on x); default x^2 cos(pi x).

    Returns:
        ``(x (n_x,), t (n_t,), u (n_t, n_x))`` in float64.
    """
    if n_x < 4 or n_x % 2:
        raise ValueError(f"n_x must be an even integer >= 4, got {n_x}")
    if not (dt > 0 and t_end >= 0):
        raise ValueError(f"dt must be positive and t_end non-negative, got {dt}, {t_end}")
    times = np.linspace(0.0, t_end, 101) if t_save is None else np.asarray(t_save, np.float64)
    if times.ndim != 1 or times.size == 0 or not np.all(np.isfinite(times)):
        raise ValueError("t_save must be a non-empty 1-D array of finite times")
    if times[0] < 0 or np.any(np.diff(times) < 0) or times[-1] > t_end * (1 + 1e-12):
        raise ValueError(f"t_save must be non-decreasing within [0, t_end={t_end}]")

    x = -1.0 + 2.0 * np.arange(n_x) / n_x
    u_init = (u0 or _initial_condition)(x)
    v = np.fft.rfft(np.asarray(u_init, dtype=np.float64))
    lin = -eps * (np.pi * np.arange(n_x // 2 + 1)) ** 2

    def nonlinear(v_hat: np.ndarray) -> np.ndarray:
        u = np.fft.irfft(v_hat, n_x)
        return gamma * np.fft.rfft(u * (1.0 - u * u))

    out = np.empty((times.size, n_x))
    coefficients: dict[float, tuple[np.ndarray, ...]] = {}
    t_now = 0.0
    for j, t_next in enumerate(times):
        span = t_next - t_now
        if span > 0:
            n_steps = int(np.ceil(span / dt - 1e-9))
            # h rounded to 12 significant digits so that intervals of (nearly) equal length
            # share one coefficient set; the time error is at most ~1e-12 * span.
            h = float(f"{span / n_steps:.11e}")
            if h not in coefficients:
                coefficients[h] = etdrk4_coefficients(lin, h, n_contour)
            e, e2, q, f1, f2, f3 = coefficients[h]
            for _ in range(n_steps):
                nv = nonlinear(v)
                a = e2 * v + q * nv
                na = nonlinear(a)
                b = e2 * v + q * na
                nb = nonlinear(b)
                c = e2 * a + q * (2.0 * nb - nv)
                nc = nonlinear(c)
                v = e * v + f1 * nv + 2.0 * f2 * (na + nb) + f3 * nc
            t_now = float(t_next)
        out[j] = np.fft.irfft(v, n_x)
    return x, times, out


def _fourier_refine(u: np.ndarray, factor: int) -> np.ndarray:
    """Trigonometric interpolant of periodic grid data ``(..., n)`` sampled on the ``factor``
    times finer grid ``(..., factor n)`` (zero-padding of the spectrum; exact up to round-off).
    The Nyquist mode of the coarse grid is split evenly between +-n/2."""
    n = u.shape[-1]
    spectrum = np.fft.rfft(u, axis=-1)
    spectrum[..., -1] *= 0.5
    return np.fft.irfft(spectrum, factor * n, axis=-1) * factor


def allen_cahn_time_grid(n_t: int = 101, power: float = 1.5, quantum: float = 1e-3) -> np.ndarray:
    """Storage times t_j = (j / (n_t - 1))^power on [0, 1], graded toward t = 0, rounded to
    multiples of ``quantum``.

    The grading resolves the sqrt(t) onset of the smoothing of the kink at x = ±1; the rounding
    lets a solver with step ``quantum`` (or a divisor of it) hit every time with one step size.

    Returns:
        ``(n_t,)`` strictly increasing times with t_0 = 0 and t_{n_t - 1} = 1.
    """
    if n_t < 4 or power < 1 or not 0 < quantum <= 1.0 / (n_t - 1):
        raise ValueError(f"need n_t >= 4, power >= 1, 0 < quantum <= 1/(n_t-1), got {n_t}, "
                         f"{power}, {quantum}")
    t = np.round(np.linspace(0.0, 1.0, n_t) ** power / quantum) * quantum
    if np.any(np.diff(t) <= 0):
        raise ValueError(f"quantum={quantum} is too coarse for n_t={n_t}, power={power}")
    return t


def make_allen_cahn_reference(
    path: str | Path,
    n_x: int = 8192,
    dt: float = 1e-3,
    store_every: int = 4,
    n_t: int = 101,
    t_power: float = 1.5,
    n_check_times: int = 400,
    n_check_x: int = 25,
    seed: int = 0,
    command: str = "python -m kanpde.classical --out problems/data",
) -> dict[str, float]:
    """Compute the Allen–Cahn reference and store it in the grid layout.

    Stored grid: x = every ``store_every``-th point of the n_x grid plus x = 1 (the x = -1
    column repeated, by periodicity); t from :func:`allen_cahn_time_grid`.

    Error estimates written as attributes: spatial, max |u(n_x) - u(2 n_x)| on the stored
    nodes; temporal, max |u(dt) - u(2 dt)| / 15 (Richardson, fourth order); and the error of
    cubic interpolation from the stored grid at ``n_check_times * n_check_x`` random points
    (times drawn without replacement from the multiples of dt not on the stored grid, x uniform)
    against the 2 n_x solution there (exact trigonometric interpolation in x onto a grid 8 times
    finer, random nodes of which are the check x; times hit exactly).

    Args:
        path: output ``.h5`` file.
        n_x: Fourier grid points of the computation.
        dt: largest time step.
        store_every: stride from the computational to the stored x grid.
        n_t, t_power: stored times, see :func:`allen_cahn_time_grid` (rounded to multiples
            of ``dt``).
        n_check_times, n_check_x: random check points (times, and x per time).
        seed: seed of the check points' generator.
        command: the command recorded as provenance.

    Returns:
        The error estimates written to the file.
    """
    if n_x % store_every:
        raise ValueError(f"store_every={store_every} must divide n_x={n_x}")
    t_store = allen_cahn_time_grid(n_t, t_power, quantum=dt)
    x, _, u = allen_cahn_etdrk4(n_x, dt, 1.0, t_store)
    x_store = np.append(x[::store_every], 1.0)
    u_store = np.concatenate([u[:, ::store_every], u[:, :1]], axis=1)  # (n_t, n_xs)

    # Check times: random multiples of dt (so the runs keep one step size) off the stored grid.
    rng = np.random.default_rng(seed)
    lattice = np.setdiff1d(np.arange(1, int(round(1.0 / dt))), np.round(t_store / dt))
    t_rand = np.sort(rng.choice(lattice, size=min(n_check_times, lattice.size), replace=False))
    t_rand = t_rand * dt
    t_all, inverse = np.unique(np.concatenate([t_store, t_rand]), return_inverse=True)
    _, _, u_fine = allen_cahn_etdrk4(2 * n_x, dt, 1.0, t_all)
    u_fine_store = u_fine[inverse[:n_t]][:, :: 2 * store_every]
    err_space = float(np.abs(u_fine_store - u[:, ::store_every]).max())
    _, _, u_coarse_dt = allen_cahn_etdrk4(n_x, 2 * dt, 1.0, t_store)
    err_time = float(np.abs(u_coarse_dt - u).max() / 15.0)

    grid = GridData((x_store, t_store), u_store.T[..., None], ("u",), method="cubic")
    # Exact trigonometric interpolation of the 2 n_x solution onto a grid 8 times finer still;
    # the check x are random nodes of that grid (spacing 2 / (16 n_x)).
    fine = _fourier_refine(u_fine[inverse[n_t:]], 8)  # (n_check, 16 n_x)
    cols = rng.integers(0, fine.shape[1], size=(t_rand.size, n_check_x))
    exact_v = np.take_along_axis(fine, cols, axis=1).ravel()
    points_v = np.column_stack([-1.0 + 2.0 * cols.ravel() / fine.shape[1],
                                np.repeat(t_rand, n_check_x)])
    interp = grid.evaluate_numpy(points_v)[:, 0]
    errors = {
        "error_estimate": max(err_space, err_time),
        "error_estimate_space": err_space,
        "error_estimate_time": err_time,
        "interp_error_rel_l2": float(np.linalg.norm(interp - exact_v) / np.linalg.norm(exact_v)),
        "interp_error_max_abs": float(np.abs(interp - exact_v).max()),
    }
    attrs = {
        "pde": "u_t - eps u_xx + gamma u^3 - gamma u = 0, x in [-1, 1] periodic, t in [0, 1]; "
        "u(x, 0) = x^2 cos(pi x)",
        "parameters": {"eps": 1e-4, "gamma": 5.0},
        "coordinates": "x,t",
        "layout": "values[i, j, 0] = u(axes/0[i], axes/1[j]); axes/0 includes x = 1 "
        "(periodic copy of x = -1)",
        "method": f"Fourier pseudo-spectral in x (n_x={n_x}, no dealiasing), ETDRK4 in time "
        f"(Cox-Matthews 2002; Kassam-Trefethen 2005 contour coefficients, 32 points), "
        f"dt <= {dt}, L = eps u_xx, N = gamma (u - u^3) "
        "(kanpde.classical.allen_cahn.allen_cahn_etdrk4)",
        "resolution": f"x: {x_store.size} uniform points on [-1, 1] (every {store_every}th of "
        f"the n_x={n_x} grid, plus x = 1); t: {n_t} points t_j = (j/{n_t - 1})^{t_power} "
        f"rounded to multiples of {dt}",
        "command": command,
        "error_estimate_method": f"max over stored nodes of the larger of |u(n_x={n_x}) - "
        f"u(n_x={2 * n_x})| (space) and |u(dt) - u(2 dt)|/15 (time); the spatial error comes "
        "from the kink of the periodic initial data at x = +-1, is largest at t < 0.05 and "
        "decays like exp(-10 t)",
        "interp_error_method": f"cubic GridData from the stored grid vs the n_x={2 * n_x} "
        f"solution (exact trigonometric interpolation in x) at {t_rand.size} random times "
        f"(multiples of dt off the stored grid) x {n_check_x} random x (nodes of a grid of "
        f"spacing 1/{8 * n_x}) (seed {seed})",
        "reference": "Raissi, Perdikaris, Karniadakis, J. Comput. Phys. 378 (2019) 686-707; "
        "Kassam & Trefethen, SIAM J. Sci. Comput. 26 (2005) 1214-1233",
        **errors,
    }
    save_grid_reference(path, (x_store, t_store), u_store.T[..., None], ("u",), attrs)
    return errors
