"""Fitting KAN edges to a library of primitives: ``phi(x) ~ c f(a x + b) + d``.

For every primitive ``f`` of :data:`kanpde.nn.symbolic.PRIMITIVES`:

1. grid search over ``(a, b)``: for each pair the best ``(c, d)`` is a linear least-squares
   fit, whose coefficient of determination is ``R^2 = corr(f(a x + b), y)^2``; the grid is
   zoomed around the best pair a few times;
2. local refinement of all four constants with :func:`scipy.optimize.least_squares`
   (kept only when it improves the fit and stays inside ``f``'s domain);
3. pairs where ``a x + b`` leaves ``f``'s domain on the data (``1/x`` across 0, ``log`` and
   ``sqrt`` of non-positive arguments) are skipped; a primitive with no valid pair is
   reported as skipped, never as a failure.

``R^2 = 1 - sum (y - yhat)^2 / sum (y - mean y)^2``. :func:`choose` prefers the simplest
primitive among those whose ``1 - R^2`` is within a factor of the best one's.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from kanpde.nn.kan import KAN
from kanpde.nn.symbolic import (
    COMPOSED,
    INNER,
    OUTER,
    PRIMITIVES,
    Primitive,
    compositions,
    primitive,
)

EVEN = ("x^2", "x^4", "abs", "gaussian")
COMPOSED_GRID = 61
"""Grid points per range of ``(a, b)`` for the compositions ``f(g(a x + b))``."""
ODD = ("x", "x^3", "tanh")


@dataclass(frozen=True)
class EdgeFit:
    """One fitted primitive.

    Attributes:
        name: primitive name.
        params: ``(a, b, c, d)``.
        r2: coefficient of determination on the fitted samples.
        complexity: the primitive's simplicity rank.
    """

    name: str
    params: tuple[float, float, float, float]
    r2: float
    complexity: int

    def to_dict(self) -> dict:
        """Plain dict for JSON."""
        return {"name": self.name, "params": list(self.params), "r2": self.r2}


def _r2(y: np.ndarray, yhat: np.ndarray) -> float:
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    ss_res = float(np.sum((y - yhat) ** 2))
    if ss_tot <= 1e-300:
        return 1.0 if ss_res <= 1e-300 else -math.inf
    return 1.0 - ss_res / ss_tot


def _grid_r2(prim: Primitive, x: np.ndarray, y_c: np.ndarray, ss_tot: float,
             a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(len(a), len(b))`` best ``R^2`` over ``(c, d)`` for each ``(a, b)`` (-inf: invalid)."""
    z = a[:, None, None] * x + b[None, :, None]  # (A, B, N)
    with np.errstate(all="ignore"):
        fz = prim.numpy_fn(z)
    ok = np.all(np.isfinite(fz), axis=-1) & prim.valid_rows(z)
    fz = np.where(ok[..., None], fz, 0.0)
    with np.errstate(all="ignore"):  # overflowing rows give inf/nan scores: not chosen
        fz_c = fz - fz.mean(-1, keepdims=True)
        var = np.sum(fz_c**2, -1)
        cov = fz_c @ y_c
        r2 = cov**2 / (var * ss_tot)
        good = ok & (var > 1e-12 * np.sum(fz**2, -1) + 1e-300)  # constant f(z): no fit
    return np.where(good & np.isfinite(r2), r2, -np.inf)


def _linear(fz: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    mat = np.stack([fz, np.ones_like(fz)], 1)
    (c, d), *_ = np.linalg.lstsq(mat, y, rcond=None)
    return float(c), float(d)


def canonical(name: str, params: Sequence[float]) -> tuple[float, float, float, float]:
    """Equivalent constants in a canonical form: ``a > 0`` where a sign flip allows it,
    ``b`` in ``(-pi, pi]`` and ``c > 0`` for ``sin``/``cos``, ``b = 0`` for ``exp``."""
    a, b, c, d = (float(v) for v in params)
    parts = primitive(name).parts
    if parts is not None:  # f(g): an even g takes the sign of a x + b
        if parts[1] in EVEN and a < 0:
            a, b = -a, -b
        return a, b, c, d
    if name == "exp" and math.isfinite(c * math.exp(b)) and c * math.exp(b) != 0.0:
        return a, 0.0, c * math.exp(b), d  # c e^(a x + b) = (c e^b) e^(a x)
    if name in ("sin", "cos"):
        if a < 0:
            a, b, c = -a, -b, (-c if name == "sin" else c)
        if c < 0:
            b, c = b + math.pi, -c
        b = math.remainder(b, 2 * math.pi)
        if b <= -math.pi:
            b += 2 * math.pi
    elif name in EVEN and a < 0:
        a, b = -a, -b
    elif name in ODD and a < 0:
        a, b, c = -a, -b, -c
    return a, b, c, d


def zoom_search(score: Callable[[np.ndarray, np.ndarray], np.ndarray],
                a_range: tuple[float, float], b_range: tuple[float, float], n_grid: int,
                zooms: int) -> tuple[float, float, float] | None:
    """Grid search of ``score(a, b) -> (A, B)`` (``-inf``: invalid) over ``n_grid`` points per
    range, then ``zooms`` times on a grid of one old step around the best pair; a range of
    one point (``(v, v)`` with ``n_grid = 1``) is searched once.

    Returns:
        ``(score, a, b)`` of the best pair, or ``None`` when no pair is valid.
    """
    a = np.linspace(*a_range, n_grid)
    b = np.linspace(*b_range, n_grid)
    best = None
    for _ in range(zooms + 1):
        r2 = score(a, b)
        if not np.isfinite(r2).any():
            break
        ia, ib = np.unravel_index(int(np.argmax(r2)), r2.shape)
        best = (float(r2[ia, ib]), float(a[ia]), float(b[ib]))
        if a.size == 1 and b.size == 1:
            break
        da, db = (a[1] - a[0]) if a.size > 1 else 1.0, (b[1] - b[0]) if b.size > 1 else 1.0
        a = np.linspace(best[1] - da, best[1] + da, n_grid)
        b = np.linspace(best[2] - db, best[2] + db, n_grid)
    return best


def thin_samples(x: np.ndarray, *ys: np.ndarray, max_samples: int
                 ) -> tuple[np.ndarray, ...]:
    """``x`` sorted and thinned to ``max_samples`` quantiles, with the rows of each ``y``
    that go with them."""
    order = np.argsort(x)
    if x.size > max_samples:
        order = order[np.linspace(0, x.size - 1, max_samples).round().astype(int)]
    return (x[order], *(y[order] for y in ys))


def _fit_one(prim: Primitive, x: np.ndarray, y: np.ndarray, a_range: tuple[float, float],
             b_range: tuple[float, float], n_grid: int, zooms: int,
             refine: bool) -> EdgeFit | None:
    name = prim.name
    if name == "0":
        return EdgeFit(name, (0.0, 0.0, 0.0, 0.0), _r2(y, np.zeros_like(y)), prim.complexity)
    if name == "x":
        c, d = _linear(x, y)
        return EdgeFit(name, (1.0, 0.0, c, d), _r2(y, c * x + d), prim.complexity)
    y_c = y - y.mean()
    ss_tot = float(np.sum(y_c**2))
    found = zoom_search(lambda a, b: _grid_r2(prim, x, y_c, max(ss_tot, 1e-300), a, b),
                        a_range, b_range, n_grid, zooms)
    if found is None:
        return None
    best = found[1:]
    fz = prim.numpy_fn(best[0] * x + best[1])
    c, d = _linear(fz, y)
    params = (best[0], best[1], c, d)
    score = _r2(y, c * fz + d)
    if refine:
        params, score = _refine(prim, x, y, params, score)
    return EdgeFit(name, canonical(name, params), score, prim.complexity)


def _refine(prim: Primitive, x: np.ndarray, y: np.ndarray,
            params: tuple[float, float, float, float], score: float
            ) -> tuple[tuple[float, float, float, float], float]:
    from scipy.optimize import least_squares

    def resid(p: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"):
            r = p[2] * prim.numpy_fn(p[0] * x + p[1]) + p[3] - y
        return np.where(np.isfinite(r), r, 1e150)

    try:
        sol = least_squares(resid, np.asarray(params), method="lm", xtol=1e-15, ftol=1e-15,
                            gtol=1e-15, max_nfev=400)
    except (ValueError, FloatingPointError):
        return params, score
    p = tuple(float(v) for v in sol.x)
    z = p[0] * x + p[1]
    if not prim.valid(z):
        return params, score
    with np.errstate(all="ignore"):
        new = _r2(y, p[2] * prim.numpy_fn(z) + p[3])
    if math.isfinite(new) and new > score:
        return p, new  # type: ignore[return-value]
    return params, score


def fit_edge(x: np.ndarray | Tensor, y: np.ndarray | Tensor,
             library: Sequence[str] | None = None, *, a_range: tuple[float, float] = (-10, 10),
             b_range: tuple[float, float] = (-10, 10), n_grid: int = 41, zooms: int = 3,
             refine: bool = True, max_samples: int = 400) -> list[EdgeFit]:
    """Fit ``y ~ c f(a x + b) + d`` for every primitive of ``library``.

    Args:
        x, y: ``(N,)`` samples of one edge function.
        library: primitive names (default: all of :data:`PRIMITIVES`).
        a_range, b_range: initial grid ranges of ``a`` and ``b``.
        n_grid: grid points per range.
        zooms: grid refinements around the best pair.
        refine: polish all four constants by least squares.
        max_samples: the samples are thinned to this many quantiles of ``x``.

    Returns:
        The fits, best ``R^2`` first; primitives singular on the data are left out.
    """
    x = np.asarray(x.detach().cpu() if isinstance(x, Tensor) else x, dtype=np.float64).ravel()
    y = np.asarray(y.detach().cpu() if isinstance(y, Tensor) else y, dtype=np.float64).ravel()
    if x.shape != y.shape or x.size < 2:
        raise ValueError(f"fit_edge needs x and y of equal length >= 2, got {x.shape}, "
                         f"{y.shape}")
    x, y = thin_samples(x, y, max_samples=max_samples)
    fits = []
    for name in (library if library is not None else PRIMITIVES):
        fit = _fit_one(primitive(name), x, y, a_range, b_range, n_grid, zooms, refine)
        if fit is not None and math.isfinite(fit.r2):
            fits.append(fit)
    return sorted(fits, key=lambda f: -f.r2)


def choose(fits: Sequence[EdgeFit], factor: float = 10.0, floor: float = 1e-10) -> EdgeFit:
    """The simplest fit whose ``1 - R^2`` is at most ``max(factor (1 - R^2_best), floor)``
    (ties of complexity: the better ``R^2``; ties of ``R^2`` within ``floor``: library
    order)."""
    if not fits:
        raise ValueError("no symbolic fit to choose from")
    best = max(f.r2 for f in fits)
    tol = max(factor * (1.0 - best), floor)
    order = {name: k for k, name in enumerate([*PRIMITIVES, *COMPOSED])}
    ok = [f for f in fits if 1.0 - f.r2 <= tol]
    return min(ok, key=lambda f: (f.complexity, round((1.0 - f.r2) / floor),
                                   order.get(f.name, len(order))))


def _cached(cache: dict | None, x: Tensor, y: Tensor, library: Sequence[str] | None,
            n_grid: int = 41) -> list[EdgeFit]:
    """:func:`fit_edge`, looked up in ``cache`` first (key: library and the samples)."""
    if cache is None:
        return fit_edge(x, y, library, n_grid=n_grid)
    key = (None if library is None else tuple(library), n_grid,
           x.detach().cpu().numpy().tobytes(), y.detach().cpu().numpy().tobytes())
    if key not in cache:
        cache[key] = fit_edge(x, y, library, n_grid=n_grid)
    return cache[key]


@torch.no_grad()
def auto_symbolic(net: KAN, x: Tensor, r2_threshold: float = 0.999,
                  library: Sequence[str] | None = None, top: int = 3,
                  layers: Sequence[int] | None = None,
                  compose_below: float | None = None,
                  cache: dict | None = None) -> list[dict]:
    """Fit every spline edge and fix it to its chosen primitive when ``R^2 >= r2_threshold``.

    With ``compose_below``, an edge whose best single primitive has ``R^2`` below it is
    also fitted by the compositions ``"f(g)"`` (:func:`kanpde.nn.symbolic.compositions`,
    ``f`` and ``g`` from ``library``), and the choice (:func:`choose`) is among all fits.

    Layers are done in order; each layer's edges are fitted on its inputs as computed with
    the layers before it already symbolic. Fixing replaces the spline: rebuild any optimiser.

    Args:
        net: the KAN (changed in place).
        x: ``(N, d)`` samples (evaluation or collocation points).
        r2_threshold: edges whose chosen fit is worse stay splines.
        library: primitive names (default: all).
        top: candidates reported per edge.
        layers: indices of the layers to fit (default: all).
        compose_below: ``R^2`` below which compositions are tried (``None``: never).
        cache: fits already made, by library and edge samples (filled as fits are made):
            the same edge function is not fitted twice.

    Returns:
        One record per edge: ``layer, i, j, kind`` (primitive name or ``"spline"``),
        ``chosen`` and ``candidates`` (top fits as dicts).
    """
    records = []
    for l_, layer in enumerate(net.layers):
        if layers is not None and l_ not in layers:
            continue
        h = net.layer_inputs(x)[l_]
        phi = layer.edge_values(h)  # (N, n_in, n_out)
        for i in range(layer.n_in):
            for j in range(layer.n_out):
                if layer.edge_kind(i, j) != "spline":
                    continue
                xi, yi = h[:, i], phi[:, i, j]
                fits = _cached(cache, xi, yi, library)
                if compose_below is not None and (not fits or fits[0].r2 < compose_below):
                    lib = set(library if library is not None else PRIMITIVES)
                    pairs = compositions(tuple(f for f in OUTER if f in lib),
                                         tuple(g for g in INNER if g in lib))
                    if pairs:  # f(g(a x + b)) varies faster in a: a finer grid
                        fits = sorted([*fits, *_cached(cache, xi, yi, pairs, COMPOSED_GRID)],
                                      key=lambda f: -f.r2)
                chosen = choose(fits) if fits else None
                fixed = chosen is not None and chosen.r2 >= r2_threshold
                if fixed:
                    layer.set_symbolic(i, j, chosen.name, chosen.params)
                records.append({
                    "layer": l_, "i": i, "j": j,
                    "kind": chosen.name if fixed else "spline",
                    "chosen": None if chosen is None else chosen.to_dict(),
                    "candidates": [f.to_dict() for f in fits[:top]]})
    return records
