"""A separated basis read as primitives: the factors of a sum of products, unmixed.

A KAN whose first hidden layer holds ``K`` multiplication nodes with separated factors
(``[model] factors`` naming one coordinate per factor; factors that see several coordinates
are left to the other hypotheses) and whose output edges are linear
represents ``u(x, t) = sum_k c_k X_k(x) T_k(t) + d``, a separation of variables. That form
is unique only up to an invertible mixing ``X -> X M``, ``T -> T M^-T``: training returns
some basis of the span of ``{X_k}``, and in general its functions are mixtures
(``0.8 sin(pi x) + 0.3 sin(2 pi x)``) that no single primitive fits, although the span holds
primitives (``sin(pi x)`` and ``sin(2 pi x)``).

:func:`span_fits` finds ``K`` independent primitives in the span: greedily, the primitive
``f(a x + b)`` (grid search over ``(a, b)`` with zooms on the layer's normalised input, as
:mod:`kanpde.interpret.symbolic` does) whose part outside the primitives already chosen is
best explained by the span (``R^2`` of that part), among candidates with such a part of at
least ``MIN_NEW`` of their variance. :func:`set_span_basis` makes the factor edges those
primitives; the other factors, refitted on the PDE loss, then absorb the mixing (for a
linear PDE, with one side's factors and the output weights held, the loss is quadratic in
the other side's spline coefficients; otherwise the refit is a local search like any
other).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from kanpde.interpret.symbolic import EdgeFit, canonical, thin_samples, zoom_search
from kanpde.nn.kan import KAN
from kanpde.nn.symbolic import PRIMITIVES, primitive

MIN_NEW = 0.05
"""A candidate must add at least this fraction of its variance outside the chosen ones."""
SPAN_GRID = 61
"""Grid points per range of ``(a, b)``."""


def factor_groups(net: KAN) -> dict[int, list[int]]:
    """``{input i: [factor subnodes of layer 0 fed only by input i]}`` for a KAN whose first
    hidden layer has multiplication nodes; inputs feeding no such factor are left out.
    Empty when the first layer has no multiplication nodes."""
    if not net.mult or not net.mult[0]:
        return {}
    first = net.layers[0]
    start = first.n_out - 2 * net.mult[0]
    groups: dict[int, list[int]] = {}
    for j in range(start, first.n_out):
        live = [i for i in range(first.n_in) if first.edge_kind(i, j) != "pruned"]
        if len(live) == 1 and first.edge_kind(live[0], j) == "spline":
            groups.setdefault(live[0], []).append(j)
    return groups


def _project(q: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Projection of ``z (..., N)`` on the orthonormal columns of ``q (N, r)``."""
    return (z @ q) @ q.T


def _orthonormal(cols: np.ndarray) -> np.ndarray:
    """Orthonormal basis ``(N, r)`` of the columns of ``cols (N, m)`` (rank-revealing)."""
    u, s, _ = np.linalg.svd(cols, full_matrices=False)
    keep = s > 1e-10 * max(float(s[0]), 1e-300)
    return u[:, keep]


def _score(prim, x: np.ndarray, a: np.ndarray, b: np.ndarray, q_span: np.ndarray,
           q_chosen: np.ndarray) -> np.ndarray:
    """``(A, B)``: ``R^2`` of the new part of ``f(a x + b)`` in the span (-inf: invalid or
    not new)."""
    z = a[:, None, None] * x + b[None, :, None]  # (A, B, N)
    with np.errstate(all="ignore"):
        fz = prim.numpy_fn(z)
    ok = np.all(np.isfinite(fz), axis=-1) & prim.valid_rows(z)
    fz = np.where(ok[..., None], fz, 0.0)
    total = np.sum((fz - fz.mean(-1, keepdims=True)) ** 2, -1)
    new = fz - _project(q_chosen, fz)  # the part outside the chosen ones (and constants)
    new_var = np.sum(new**2, -1)
    miss = np.sum((new - _project(q_span, new)) ** 2, -1)
    with np.errstate(all="ignore"):
        r2 = 1.0 - miss / new_var
    good = ok & (new_var >= MIN_NEW * total) & (total > 1e-24)
    return np.where(good & np.isfinite(r2), r2, -np.inf)


def span_fits(x: np.ndarray | Tensor, basis: np.ndarray | Tensor,
              library: Sequence[str] | None = None, *, a_range=(-10.0, 10.0),
              b_range=(-10.0, 10.0), n_grid: int = SPAN_GRID, zooms: int = 4,
              max_samples: int = 400) -> list[EdgeFit]:
    """``K`` independent primitives ``c f(a x + b) + d`` in the span of ``basis``.

    Args:
        x: ``(N,)`` the coordinate.
        basis: ``(N, K)`` the factor values at ``x``.
        library: primitive names (default: all but ``0``).
        a_range, b_range, n_grid, zooms: the grid search (module docstring).
        max_samples: ``x`` thinned to this many quantiles.

    Returns:
        Up to ``K`` fits, in the order chosen; ``params = (a, b, c, d)`` with ``d`` making
        ``c f(a x + b) + d`` lie in the span of the columns of ``basis`` (no constant
        column) and ``|c|`` scaled so that ``c f`` has the standard deviation of the
        widest column (the sign as :func:`~kanpde.interpret.symbolic.canonical` leaves it);
        ``r2`` the fraction of the new part explained.
    """
    x = np.asarray(x.detach().cpu() if isinstance(x, Tensor) else x, np.float64).ravel()
    basis = np.asarray(basis.detach().cpu() if isinstance(basis, Tensor) else basis,
                       np.float64).reshape(x.size, -1)
    x, basis = thin_samples(x, basis, max_samples=max_samples)
    ones = np.ones((x.size, 1))
    q_span = _orthonormal(np.hstack([basis, ones]))
    names = [n for n in (library if library is not None else PRIMITIVES) if n != "0"]
    chosen: list[EdgeFit] = []
    cols = [ones]
    for _ in range(basis.shape[1]):
        q_chosen = _orthonormal(np.hstack(cols))
        best: tuple[float, str, float, float] | None = None
        for name in names:
            prim = primitive(name)
            line = name == "x"  # no (a, b) to search: the line itself
            top = zoom_search(
                lambda a, b, prim=prim, q=q_chosen: _score(prim, x, a, b, q_span, q),
                (1.0, 1.0) if line else a_range, (0.0, 0.0) if line else b_range,
                1 if line else n_grid, zooms)
            if top is not None and (best is None or top[0] > best[0] + 1e-12 or (
                    abs(top[0] - best[0]) <= 1e-12
                    and prim.complexity < primitive(best[1]).complexity)):
                best = (top[0], name, top[1], top[2])
        if best is None:
            break
        r2, name, a_, b_ = best
        fz = primitive(name).numpy_fn(a_ * x + b_)
        coef = np.linalg.lstsq(np.hstack([basis, ones]), fz, rcond=None)[0]
        d = -float(coef[-1])  # f + d is in the span of the basis columns alone
        c = float(basis.std(0).max() / max(fz.std(), 1e-300))  # the factors' magnitude
        chosen.append(EdgeFit(name, canonical(name, (a_, b_, c, c * d)), r2,
                              primitive(name).complexity))
        cols.append(fz[:, None])
    return chosen


@torch.no_grad()
def set_span_basis(net: KAN, x: Tensor, i: int, library: Sequence[str] | None = None,
                   r2: float = 0.999) -> list[dict]:
    """Make the layer-0 factor edges fed by input ``i`` the primitives of
    :func:`span_fits` (in place) when every one has ``R^2 >= r2``.

    Args:
        net: the KAN (its first hidden layer with multiplication nodes).
        x: ``(N, d)`` samples.
        i: the input whose factor group (:func:`factor_groups`) is read.
        library: primitive names.
        r2: the least ``R^2`` accepted for each primitive.

    Returns:
        One record per edge (as :func:`kanpde.interpret.symbolic.auto_symbolic`), kind
        ``"spline"`` for all of them when no full basis of primitives was found.
    """
    members = factor_groups(net).get(i, [])
    if not members:
        return []
    first = net.layers[0]
    h = net.layer_inputs(x)[0]  # (N, d)
    phi = first.edge_values(h)  # (N, d, n_sub)
    fits = span_fits(h[:, i], phi[:, i, members], library)
    ok = len(fits) == len(members) and all(f.r2 >= r2 for f in fits)
    records = []
    for k, j in enumerate(members):
        fit = fits[k] if k < len(fits) else None
        if ok:
            first.set_symbolic(i, j, fit.name, fit.params)
        records.append({"layer": 0, "i": i, "j": j, "kind": fit.name if ok else "spline",
                        "chosen": None if fit is None else fit.to_dict(),
                        "candidates": [f.to_dict() for f in fits], "span_basis": True})
    return records
