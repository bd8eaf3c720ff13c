"""B-splines as pure functions: knots, local bases and their derivatives, least-squares fits.

Throughout kanpde, ``spline_order`` is ``k``, the **polynomial degree** of the spline pieces
(pykan's convention: ``k = 3`` is cubic, with ``k + 1 = 4`` coefficients per piece), not the
order ``k + 1`` of de Boor's convention.

A spline of degree ``k`` on ``G`` intervals of a base range ``[a, b]`` uses the extended
knot vector ``t_0 < t_1 < ... < t_{G+2k}`` with ``t_k = a`` and ``t_{G+k} = b`` (``k``
extra knots on each side, as in pykan) and has ``G + k`` basis functions ``B_0 ... B_{G+k-1}``.
On ``[a, b]`` the bases form a partition of unity. At a point in base interval ``i``
(``t_{k+i} <= x < t_{k+i+1}``, ``0 <= i < G``) exactly ``k + 1`` bases are non-zero:
``B_i, ..., B_{i+k}``; they are returned as a *local* block ``(..., k+1)`` together with ``i``.

Outside ``[a, b]`` a spline continues as the polynomial of its first or last interval
(polynomial extrapolation, as ``scipy.interpolate.BSpline(extrapolate=True)``): the interval
index is clamped to ``[0, G-1]`` and the local polynomials are evaluated beyond their interval.
The spline part of a KAN edge therefore never silently vanishes off the grid.

Two evaluators give the same numbers:

* uniform grids: closed form. With ``s = (x - a) / h``, ``i = clamp(floor(s), 0, G-1)`` and
  ``u = s - i``, ``B_{i+r}(x) = sum_p M[r, p] u^p`` for a constant ``(k+1, k+1)`` matrix ``M``,
  and ``d^n B / dx^n = h^{-n} sum_p M[r, p] p!/(p-n)! u^{p-n}``;
* general knots: the Cox–de Boor triangle with derivatives (Piegl & Tiller, *The NURBS Book*,
  algorithm A2.3), evaluated on the span of the clamped interval.
"""

from __future__ import annotations

import functools
import math

import torch
from torch import Tensor

MAX_ORDER = 5
MAX_DERIVATIVE = 3


def check_order(k: int, name: str = "spline_order") -> None:
    """Raise ``ValueError`` unless ``1 <= k <= MAX_ORDER``."""
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= MAX_ORDER:
        raise ValueError(f"{name} must be an integer in 1..{MAX_ORDER}, got {k!r}")


def check_grid_size(grid_size: int, name: str = "grid_size") -> None:
    """Raise ``ValueError`` unless ``grid_size`` is a positive integer."""
    if not isinstance(grid_size, int) or isinstance(grid_size, bool) or grid_size < 1:
        raise ValueError(f"{name} must be a positive integer, got {grid_size!r}")


def uniform_knots(lo: Tensor, hi: Tensor, grid_size: int, k: int) -> Tensor:
    """Extended uniform knot vectors, one row per input.

    Args:
        lo, hi: ``(n,)`` base-range ends, ``lo < hi``.
        grid_size: number ``G`` of base intervals.
        k: spline order.

    Returns:
        ``(n, G + 2k + 1)`` knots ``t_j = lo + (j - k) h`` with ``h = (hi - lo) / G``.
    """
    check_grid_size(grid_size)
    check_order(k)
    steps = torch.arange(-k, grid_size + k + 1, dtype=lo.dtype, device=lo.device)
    h = (hi - lo) / grid_size
    return lo[:, None] + steps[None, :] * h[:, None]


def extend_knots(inner: Tensor, k: int) -> Tensor:
    """Add ``k`` knots on each side of ``(n, G + 1)`` base knots, spaced like the end intervals.

    The extension uses the mean spacing ``(b - a) / G`` of the base knots (as pykan).

    Returns:
        ``(n, G + 2k + 1)`` extended knots.
    """
    grid_size = inner.shape[-1] - 1
    h = (inner[:, -1] - inner[:, 0]) / grid_size
    steps = torch.arange(1, k + 1, dtype=inner.dtype, device=inner.device)
    left = inner[:, :1] - steps.flip(0)[None, :] * h[:, None]
    right = inner[:, -1:] + steps[None, :] * h[:, None]
    return torch.cat([left, inner, right], dim=1)


def interval_index(x: Tensor, knots: Tensor, k: int) -> Tensor:
    """Clamped base-interval index of each point.

    Args:
        x: ``(N, n)`` points, column ``i`` evaluated on knot row ``i``.
        knots: ``(n, G + 2k + 1)`` extended knots.

    Returns:
        ``(N, n)`` long tensor with values in ``[0, G-1]``.
    """
    grid_size = knots.shape[-1] - 2 * k - 1
    inner = knots[:, k : grid_size + k + 1]  # (n, G+1)
    # searchsorted over the interior breakpoints t_{k+1} .. t_{G+k-1}
    breaks = inner[:, 1:-1].contiguous()  # (n, G-1)
    idx = torch.searchsorted(breaks, x.detach().T.contiguous(), right=True).T  # (N, n)
    return idx.clamp(0, grid_size - 1)


def uniform_basis_matrix(k: int, dtype: torch.dtype = torch.float64) -> Tensor:
    """Polynomial coefficients of the ``k + 1`` local uniform B-spline pieces.

    Returns:
        ``(k+1, k+1)`` matrix ``M`` with ``B_{i+r}(x) = sum_p M[r, p] u^p`` where ``u`` is the
        position inside base interval ``i`` in units of the knot spacing.
    """
    check_order(k)
    knots = torch.arange(-k, k + 2, dtype=torch.float64)[None, :]  # one interval, G = 1
    x = torch.zeros(1, 1, dtype=torch.float64)
    idx = torch.zeros(1, 1, dtype=torch.long)
    ders = _cox_de_boor_local(x, idx, knots, k, k)  # (k+1, 1, 1, k+1): d^p B_r at u = 0
    fact = torch.tensor([math.factorial(p) for p in range(k + 1)], dtype=torch.float64)
    return (ders[:, 0, 0, :].T / fact[None, :]).to(dtype)


def uniform_derivative_matrices(k: int, n_deriv: int, dtype: torch.dtype = torch.float64) -> Tensor:
    """Stack of local coefficient matrices for the basis and its derivatives.

    Returns:
        ``(n_deriv+1, k+1, k+1)`` tensor ``D`` with ``d^n B_{i+r}/du^n = sum_p D[n, r, p] u^p``.
    """
    return torch.tensor(_derivative_table(k, n_deriv), dtype=dtype)


@functools.lru_cache(maxsize=32)
def _derivative_table(k: int, n_deriv: int) -> tuple:
    """The constant numbers of :func:`uniform_derivative_matrices` as nested tuples.

    Memoised because every layer evaluation needs them and deriving them costs ~1 ms; the
    table is a mathematical constant of ``(k, n_deriv)``, so the memo holds no state.
    """
    m = uniform_basis_matrix(k, torch.float64)
    out = torch.zeros(n_deriv + 1, k + 1, k + 1, dtype=torch.float64)
    for n in range(n_deriv + 1):
        for p in range(k + 1 - n):
            out[n, :, p] = m[:, p + n] * (math.factorial(p + n) / math.factorial(p))
    return tuple(tuple(tuple(row) for row in mat) for mat in out.tolist())


def local_basis(
    x: Tensor, knots: Tensor, k: int, n_deriv: int = 0, uniform: bool = False
) -> tuple[Tensor, Tensor]:
    """Non-zero B-spline bases (and derivatives) at every point.

    Args:
        x: ``(N, n)`` points; column ``i`` uses knot row ``i``.
        knots: ``(n, G + 2k + 1)`` extended knots (strictly increasing rows).
        k: spline order, ``1 <= k <= 5``.
        n_deriv: highest derivative returned, ``0 <= n_deriv <= 3``.
        uniform: use the closed form (rows of ``knots`` must be equally spaced).

    Returns:
        ``idx`` ``(N, n)``: base interval index ``i``, the bases are ``B_i .. B_{i+k}``;
        ``basis`` ``(n_deriv+1, N, n, k+1)``: ``basis[q, ..., r] = d^q B_{i+r} / dx^q``.
    """
    if not 0 <= n_deriv <= MAX_DERIVATIVE:
        raise ValueError(f"n_deriv must be in 0..{MAX_DERIVATIVE}, got {n_deriv}")
    if uniform:
        return _uniform_local(x, knots, k, n_deriv)
    idx = interval_index(x, knots, k)
    return idx, _cox_de_boor_local(x, idx, knots, k, n_deriv)


def _uniform_local(x: Tensor, knots: Tensor, k: int, n_deriv: int) -> tuple[Tensor, Tensor]:
    grid_size = knots.shape[-1] - 2 * k - 1
    lo = knots[:, k]  # (n,)
    inv_h = 1.0 / (knots[:, k + 1] - knots[:, k])  # (n,)
    s = (x - lo) * inv_h  # (N, n)
    # NaN inputs get interval 0 (their outputs stay NaN) instead of an invalid index
    idx = torch.nan_to_num(torch.floor(s.detach()), nan=0.0).clamp(0, grid_size - 1).long()
    u = s - idx.to(s.dtype)  # (N, n), outside [0, 1] only off the grid
    powers = [torch.ones_like(u), u]
    for _ in range(2, k + 1):
        powers.append(powers[-1] * u)
    powers_t = torch.stack(powers[: k + 1], dim=-1)  # (N, n, k+1)
    mats = uniform_derivative_matrices(k, n_deriv, x.dtype).to(x.device)  # (q, k+1, k+1)
    flat = powers_t.reshape(-1, k + 1) @ mats.reshape(-1, k + 1).T  # (N n, q (k+1))
    basis = flat.reshape(*x.shape, n_deriv + 1, k + 1).movedim(2, 0)  # (q, N, n, k+1)
    if n_deriv == 0:
        return idx, basis
    scale = torch.stack([inv_h**q for q in range(n_deriv + 1)])  # (q, n)
    return idx, basis * scale[:, None, :, None]


def _cox_de_boor_local(x: Tensor, idx: Tensor, knots: Tensor, k: int, n_deriv: int) -> Tensor:
    """Algorithm A2.3 of *The NURBS Book*, vectorised over points; returns ``(q, N, n, k+1)``."""
    span = idx + k  # (N, n) knot span s with t_s <= x < t_{s+1} inside the grid
    n_knots = knots.shape[-1]
    rows = knots.expand(x.shape[0], -1, -1)  # (N, n, K)

    def knot(offset: int) -> Tensor:
        return torch.gather(rows, 2, (span + offset).clamp(0, n_knots - 1)[..., None])[..., 0]

    left = [None] + [x - knot(1 - j) for j in range(1, k + 1)]
    right = [None] + [knot(j) - x for j in range(1, k + 1)]
    ndu: list[list[Tensor | None]] = [[None] * (k + 1) for _ in range(k + 1)]
    ndu[0][0] = torch.ones_like(x)
    for j in range(1, k + 1):
        saved = torch.zeros_like(x)
        for r in range(j):
            ndu[j][r] = right[r + 1] + left[j - r]  # knot differences (lower triangle)
            temp = ndu[r][j - 1] / ndu[j][r]
            ndu[r][j] = saved + right[r + 1] * temp
            saved = left[j - r] * temp
        ndu[j][j] = saved

    ders: list[list[Tensor]] = [[ndu[r][k] for r in range(k + 1)]]
    zero = torch.zeros_like(x)
    for _ in range(n_deriv):
        ders.append([zero] * (k + 1))
    for r in range(k + 1):
        a_prev: list[Tensor] = [torch.ones_like(x)] + [zero] * k
        for q in range(1, min(n_deriv, k) + 1):
            a_next: list[Tensor] = [zero] * (k + 1)
            d = zero
            rk, pk = r - q, k - q
            if r >= q:
                a_next[0] = a_prev[0] / ndu[pk + 1][rk]
                d = a_next[0] * ndu[rk][pk]
            j1 = 1 if rk >= -1 else -rk
            j2 = q - 1 if r - 1 <= pk else k - r
            for j in range(j1, j2 + 1):
                a_next[j] = (a_prev[j] - a_prev[j - 1]) / ndu[pk + 1][rk + j]
                d = d + a_next[j] * ndu[rk + j][pk]
            if r <= pk:
                a_next[q] = -a_prev[q - 1] / ndu[pk + 1][r]
                d = d + a_next[q] * ndu[r][pk]
            ders[q][r] = d
            a_prev = a_next
    factor = 1.0
    out = []
    for q in range(n_deriv + 1):
        out.append(torch.stack(ders[q], dim=-1) * factor)  # (N, n, k+1)
        factor *= k - q
    return torch.stack(out)


def dense_basis(idx: Tensor, local: Tensor, n_basis: int) -> Tensor:
    """Scatter local bases into the full basis.

    Args:
        idx: ``(N, n)`` base-interval indices.
        local: ``(..., N, n, k+1)`` local bases (leading dimensions allowed).
        n_basis: ``G + k``.

    Returns:
        ``(..., N, n, G + k)`` with ``out[..., i + r] = local[..., r]``.
    """
    k1 = local.shape[-1]
    cols = idx[..., None] + torch.arange(k1, device=idx.device)  # (N, n, k+1)
    cols = cols.expand(local.shape)
    out = local.new_zeros(*local.shape[:-1], n_basis)
    return out.scatter(-1, cols, local)


def evaluate(x: Tensor, knots: Tensor, coef: Tensor, k: int, n_deriv: int = 0,
             uniform: bool = False) -> Tensor:
    """Evaluate splines ``s_ij(x) = sum_m coef[i, m, j] B_m(x)`` and derivatives.

    Args:
        x: ``(N, n)`` points.
        knots: ``(n, G + 2k + 1)``.
        coef: ``(n, G + k, m)`` coefficients (``m`` splines per input row).

    Returns:
        ``(n_deriv+1, N, n, m)`` values and derivatives.
    """
    idx, basis = local_basis(x, knots, k, n_deriv, uniform)
    dense = dense_basis(idx, basis, coef.shape[1])  # (q, N, n, G+k)
    return torch.einsum("qNim,imj->qNij", dense, coef)


def fit_coefficients(x: Tensor, y: Tensor, knots: Tensor, k: int, uniform: bool = False,
                     ridge: float = 0.0) -> Tensor:
    """Least-squares spline coefficients for samples, per input row.

    Solves ``min_c sum_s (sum_m c[i, m, j] B_m(x[s, i]) - y[s, i, j])^2 + ridge |c|^2`` for every
    input ``i`` and output ``j``.

    Args:
        x: ``(S, n)`` sample locations.
        y: ``(S, n, m)`` target values.
        knots: ``(n, G + 2k + 1)``.

    Returns:
        ``(n, G + k, m)`` coefficients.
    """
    if x.ndim != 2 or y.ndim != 3 or y.shape[:2] != x.shape:
        raise ValueError(f"fit_coefficients: x must be (S, n) and y (S, n, m); got "
                         f"{tuple(x.shape)} and {tuple(y.shape)}")
    n_basis = knots.shape[-1] - k - 1
    idx, basis = local_basis(x, knots, k, 0, uniform)
    a = dense_basis(idx, basis[0], n_basis).permute(1, 0, 2)  # (n, S, G+k)
    b = y.permute(1, 0, 2)  # (n, S, m)
    if ridge > 0.0 or a.device.type != "cpu":
        eye = torch.eye(n_basis, dtype=a.dtype, device=a.device)
        lhs = a.transpose(1, 2) @ a + max(ridge, 1e-14 * float(a.abs().max()) ** 2) * eye
        return torch.linalg.solve(lhs, a.transpose(1, 2) @ b)
    return torch.linalg.lstsq(a, b, driver="gelsd").solution
