"""The closed-form expression of a KAN with symbolic edges (SymPy).

Layer by layer, node ``j`` of the next layer is ``sum_i phi_ij(h_i)`` (multiplication nodes:
the product of their two subnodes, see :mod:`kanpde.nn.kan`) with
``phi_ij(h) = c f(a h + b) + d`` for symbolic edges, ``0`` for pruned ones and an undefined
function ``phi_l_i_j(h)`` for edges that are still splines (evaluated numerically by
:func:`lambdify_formula`). The input map (the affine map of the domain onto the grid range)
is included. :func:`simplify_formula` expands the expression, then replaces each floating
constant by a rational or rational multiple of pi (or 0) within a relative 1e-6 of it
whenever that does not increase the relative L2 error against the reference, and finally tries
:func:`sympy.simplify` under the same rule.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import sympy as sp
import torch
from torch import nn

from kanpde.nn.embed import AffineMap
from kanpde.nn.kan import KAN
from kanpde.nn.kan_layer import KANLayer
from kanpde.nn.symbolic import primitive


@dataclass
class Formula:
    """The expression of every output field.

    Attributes:
        outputs: one SymPy expression per output.
        symbols: the coordinate symbols, in the problem's order.
        splines: names ``phi_l_i_j`` of the edges that are still splines.
        functions: ``name -> numpy callable`` for those edges.
    """

    outputs: list[sp.Expr]
    symbols: list[sp.Symbol]
    splines: list[str] = field(default_factory=list)
    functions: dict[str, Callable[[np.ndarray], np.ndarray]] = field(default_factory=dict)

    def evaluate(self, points: np.ndarray) -> np.ndarray:
        """``(M, m)`` values of the outputs at ``points`` ``(M, d)``."""
        return lambdify_formula(self.outputs, self.symbols, self.functions)(points)


def _spline_edge(layer: KANLayer, i: int, j: int) -> Callable[[np.ndarray], np.ndarray]:
    def fn(h: np.ndarray) -> np.ndarray:
        h = np.asarray(h, dtype=np.float64)
        flat = torch.from_numpy(np.ascontiguousarray(h.reshape(-1))).to(layer.knots)
        x = flat.new_zeros(flat.shape[0], layer.n_in)
        x[:, i] = flat
        with torch.no_grad():
            out = layer.edge_values(x)[:, i, j]
        return out.cpu().numpy().reshape(h.shape)
    return fn


def _input_map(net: KAN, symbols: Sequence[sp.Symbol]) -> list[sp.Expr]:
    emb = net.embedding
    if emb is None:
        return list(symbols)
    if isinstance(emb, AffineMap):
        return [sp.Float(float(s)) * x + sp.Float(float(t))
                for x, s, t in zip(symbols, emb.scale, emb.shift, strict=True)]
    raise ValueError(f"formula: the input embedding {type(emb).__name__} has no closed form "
                     "here (only the affine input map is supported)")


def _mult(net: KAN, l_: int) -> int:
    """Multiplication nodes after layer ``l_`` (see :mod:`kanpde.nn.kan`)."""
    mult = getattr(net, "mult", [])
    return mult[l_] if l_ < len(mult) else 0


def kan_formula(model: nn.Module, coords: Sequence[str]) -> Formula:
    """The expression of a KAN whose edges are symbolic, pruned or splines.

    Args:
        model: a bare :class:`~kanpde.nn.kan.KAN`, or one inside an
            :class:`~kanpde.nn.output_scale.OutputScale` (the outputs are multiplied by its
            scales); other wrappers, e.g. a hard constraint, are not supported.
        coords: coordinate names (the symbols).

    Raises:
        ValueError: not a bare KAN, or an embedding other than the affine input map.
    """
    from kanpde.nn.output_scale import OutputScale

    scales = None
    if isinstance(model, OutputScale):  # u = U N(x): the KAN's formula times U
        scales, model = model.scales, model.model
    if not isinstance(model, KAN):
        raise ValueError(f"formula: needs a bare KAN, got {type(model).__name__} (models with "
                         "a hard constraint are not supported)")
    symbols = [sp.Symbol(c, real=True) for c in coords]
    h = _input_map(model, symbols)
    splines, functions = [], {}
    for l_, layer in enumerate(model.layers):
        params = None if layer.sym_params is None else layer.sym_params.detach().cpu().tolist()
        out = []
        for j in range(layer.n_out):
            terms = []
            for i in range(layer.n_in):
                kind = layer.edge_kind(i, j)
                if kind == "pruned":
                    continue
                if kind == "spline":
                    name = f"phi_{l_}_{i}_{j}"
                    splines.append(name)
                    functions[name] = _spline_edge(layer, i, j)
                    terms.append(sp.Function(name)(h[i]))
                    continue
                a, b, c, d = (sp.Float(v) for v in params[i][j])  # type: ignore[index]
                terms.append(c * primitive(kind).sympy(a * h[i] + b) + d)
            out.append(sp.Add(*terms))
        n_add, n_mult = model.layers[l_].n_out - 2 * _mult(model, l_), _mult(model, l_)
        h = out[:n_add] + [out[n_add + 2 * m] * out[n_add + 2 * m + 1] for m in range(n_mult)]
    if scales is not None:
        h = [sp.nsimplify(u) * e if u != 1.0 else e for u, e in zip(scales, h, strict=True)]
    return Formula(h, symbols, splines, functions)


def lambdify_formula(outputs: Sequence[sp.Expr], symbols: Sequence[sp.Symbol],
                     functions: dict[str, Callable] | None = None
                     ) -> Callable[[np.ndarray], np.ndarray]:
    """``points (M, d) -> (M, m)`` evaluating the expressions with NumPy."""
    fns = [sp.lambdify(symbols, e, modules=[functions or {}, "numpy"]) for e in outputs]

    def run(points: np.ndarray) -> np.ndarray:
        cols = [np.asarray(points[:, k], dtype=np.float64) for k in range(points.shape[1])]
        vals = [np.broadcast_to(np.asarray(f(*cols), dtype=np.float64), (points.shape[0],))
                for f in fns]
        return np.stack(vals, axis=1)
    return run


def relative_l2(values: np.ndarray, reference: np.ndarray) -> float:
    """``||values - reference|| / ||reference||`` (absolute when the reference is zero)."""
    ref = float(np.sqrt(np.sum(reference**2)))
    err = float(np.sqrt(np.sum((values - reference) ** 2)))
    return err / ref if ref > 0 else err


MAX_CONSTANT_OPS = 4
"""Most sympy operations a rounded constant may have (``3*pi/4`` has 2)."""
MAX_CONSTANT_INT = 100
"""Largest numerator or denominator (or integer under a root) in a rounded constant."""


def constant_candidates(v: float) -> list[sp.Expr]:
    """Short exact forms within a relative ``1e-6`` of ``v``: ``0``, ``p/q``, ``p pi/q``,
    ``p pi^2/q`` (``q`` up to 24; decay rates of diffusion are ``pi^2`` multiples), and what
    :func:`sympy.nsimplify` finds with ``pi``."""
    out: list[sp.Expr] = []
    if abs(v) < 1e-6:
        out.append(sp.Integer(0))
    for denom in (4, 12, 24):
        out.append(sp.Rational(v).limit_denominator(denom))
        out.append(sp.Rational(v / math.pi).limit_denominator(denom) * sp.pi)
        out.append(sp.Rational(v / math.pi**2).limit_denominator(denom) * sp.pi**2)
    try:
        out.append(sp.nsimplify(v, [sp.pi], tolerance=1e-8 * max(1.0, abs(v)), rational=False))
    except (ValueError, TypeError, RecursionError):  # pragma: no cover - sympy corner cases
        pass
    seen, unique = set(), []
    for c in out:
        near = abs(float(c) - v) <= 1e-6 * max(1.0, abs(v))  # round, never refit
        # only short forms (p/q, p pi/q, sqrt(2)/2, ...): nsimplify also finds long algebraic
        # expressions that match any float to 1e-6 and mean nothing
        simple = sp.count_ops(c) <= MAX_CONSTANT_OPS and all(
            abs(r.p) <= MAX_CONSTANT_INT and r.q <= MAX_CONSTANT_INT
            for r in c.atoms(sp.Rational))
        if c not in seen and c.is_number and math.isfinite(float(c)) and near and simple:
            seen.add(c)
            unique.append(c)
    return unique


def formula_error(formula: Formula, points: np.ndarray, reference: np.ndarray) -> float:
    """Relative L2 error of ``formula`` against ``reference`` ``(M, m)`` at ``points``
    (``inf`` when it cannot be evaluated or is not finite)."""
    try:
        vals = lambdify_formula(formula.outputs, formula.symbols, formula.functions)(points)
    except (ValueError, TypeError, ZeroDivisionError, OverflowError, NameError):
        return math.inf
    return relative_l2(vals, reference) if np.all(np.isfinite(vals)) else math.inf


def simplify_formula(formula: Formula, points: np.ndarray, reference: np.ndarray,
                     slack: float = 1e-13) -> tuple[Formula, float, float]:
    """Round constants and simplify while the error against ``reference`` does not grow.

    Args:
        formula: the raw formula.
        points: ``(M, d)`` evaluation points.
        reference: ``(M, m)`` reference values there.
        slack: a change is accepted when the relative L2 error stays
            ``<= error_before + slack`` (floating-point ties).

    Returns:
        The simplified formula, its error, and the error of the raw formula.
    """
    def error(outputs: Sequence[sp.Expr]) -> float:
        try:
            vals = lambdify_formula(outputs, formula.symbols, formula.functions)(points)
        except (ValueError, TypeError, ZeroDivisionError, OverflowError):
            return math.inf
        return relative_l2(vals, reference) if np.all(np.isfinite(vals)) else math.inf

    raw = error(formula.outputs)
    outs = [sp.expand(e, trig=False) for e in formula.outputs]
    best = error(outs)
    if best > raw + slack:
        outs, best = list(formula.outputs), raw
    for k in range(len(outs)):
        for _ in range(2):  # a second sweep sees constants merged by the first
            floats = sorted(outs[k].atoms(sp.Float), key=lambda f: abs(float(f)))
            for f in floats:
                if f not in outs[k].atoms(sp.Float):
                    continue
                for cand in constant_candidates(float(f)):
                    trial = outs[:k] + [outs[k].xreplace({f: cand})] + outs[k + 1:]
                    err = error(trial)
                    if err <= best + slack:
                        outs, best = trial, min(err, best)
                        break
        if sp.count_ops(outs[k]) <= 80:
            for simp in (sp.simplify, sp.trigsimp):
                trial = outs[:k] + [simp(outs[k])] + outs[k + 1:]
                err = error(trial)
                if err <= best + slack and sp.count_ops(trial[k]) <= sp.count_ops(outs[k]):
                    outs, best = trial, min(err, best)
    return Formula(outs, formula.symbols, formula.splines, formula.functions), best, raw
