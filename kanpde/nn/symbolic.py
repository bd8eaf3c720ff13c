"""Symbolic edge functions: a library of primitives with value, first and second derivative.

A symbolic KAN edge is ``phi(x) = c f(a x + b) + d`` for a primitive ``f`` of
:data:`PRIMITIVES` and four trainable constants ``(a, b, c, d)``. With ``z = a x + b``::

    phi(x)   = c f(z) + d
    phi'(x)  = c a f'(z)
    phi''(x) = c a^2 f''(z)

so a symbolic edge enters the jet forward exactly like any pointwise map
(:meth:`kanpde.core.jet.Jet.pointwise`). Compositions of two library entries, ``"f(g)"``
(for example ``"sin(x^2)"``: ``phi(x) = c sin((a x + b)^2) + d``), are primitives too
(:data:`COMPOSED`, looked up by :func:`primitive`; :data:`OUTER` and :data:`INNER` the
functions allowed outside and inside): an edge that stands for a path of two edges
through a hidden node, as the factor ``sin(pi y^2)`` of a separable solution needs. Every
primitive carries its PyTorch derivative triple, a NumPy value function (for fitting) and
its SymPy form (for the composed formula), and a domain predicate: a primitive is
*singular* on an input range where ``z`` leaves its domain (``1/x`` across 0, ``log`` and
``sqrt`` of non-positive arguments).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from kanpde.core.activations import Triple, cos_derivatives, sin_derivatives, tanh_derivatives


def _poly(n: int) -> Callable[[Tensor], Triple]:
    def f(z: Tensor) -> Triple:
        return z**n, n * z ** (n - 1), n * (n - 1) * z ** (n - 2) if n > 1 else torch.zeros_like(z)
    return f


def _identity(z: Tensor) -> Triple:
    return z, torch.ones_like(z), torch.zeros_like(z)


def _zero(z: Tensor) -> Triple:
    zero = torch.zeros_like(z)
    return zero, zero, zero


def _inverse(z: Tensor) -> Triple:
    r = 1.0 / z
    return r, -r * r, 2.0 * r * r * r


def _sqrt(z: Tensor) -> Triple:
    s = torch.sqrt(z)
    return s, 0.5 / s, -0.25 / (s * z)


def _exp(z: Tensor) -> Triple:
    e = torch.exp(z)
    return e, e, e


def _log(z: Tensor) -> Triple:
    r = 1.0 / z
    return torch.log(z), r, -r * r


def _abs(z: Tensor) -> Triple:
    return z.abs(), torch.sign(z), torch.zeros_like(z)


def _gaussian(z: Tensor) -> Triple:
    g = torch.exp(-z * z)
    return g, -2.0 * z * g, (4.0 * z * z - 2.0) * g


def _sympy(name: str):
    import sympy as sp

    return {
        "0": lambda z: sp.Integer(0) * z, "x": lambda z: z, "x^2": lambda z: z**2,
        "x^3": lambda z: z**3, "x^4": lambda z: z**4, "1/x": lambda z: 1 / z,
        "sqrt": sp.sqrt, "exp": sp.exp, "log": sp.log, "sin": sp.sin, "cos": sp.cos,
        "tanh": sp.tanh, "abs": sp.Abs, "gaussian": lambda z: sp.exp(-z**2),
    }[name]


@dataclass(frozen=True)
class Primitive:
    """One library entry ``f``.

    Attributes:
        name: library name (``"sin"``, ``"x^2"``, ...).
        torch_fn: ``z -> (f(z), f'(z), f''(z))`` for a tensor ``z``.
        numpy_fn: ``z -> f(z)`` for an array (used by the fits).
        complexity: simplicity rank; fits prefer simpler primitives at equal quality.
        domain: ``z (..., N) -> (...) bool``: rows of arguments on which ``f`` is finite and
            smooth (``None``: everywhere).
        parts: ``(outer, inner)`` names of a composition ``"f(g)"`` (``None``: an entry).
    """

    name: str
    torch_fn: Callable[[Tensor], Triple]
    numpy_fn: Callable[[np.ndarray], np.ndarray]
    complexity: int
    domain: Callable[[np.ndarray], np.ndarray] | None = None
    parts: tuple[str, str] | None = None

    def sympy(self, z):
        """``f(z)`` as a SymPy expression of the SymPy expression ``z``."""
        if self.parts is not None:
            return _sympy(self.parts[0])(_sympy(self.parts[1])(z))
        return _sympy(self.name)(z)

    def valid(self, z: np.ndarray) -> bool:
        """Whether ``f`` is regular at every argument in ``z``."""
        return bool(np.all(self.valid_rows(np.asarray(z))))

    def valid_rows(self, z: np.ndarray) -> np.ndarray:
        """``(...)`` whether ``f`` is regular on every argument of each row ``z[..., :]``."""
        if self.domain is None:
            return np.ones(z.shape[:-1], dtype=bool)
        return self.domain(z)


def _away_from_zero(z: np.ndarray) -> np.ndarray:
    """1/x: per row, all arguments on one side of 0 and not within 1e-3 max|z| of it."""
    side = (z.min(-1) > 0) | (z.max(-1) < 0)
    absz = np.abs(z)
    return side & (absz.min(-1) > 1e-3 * np.maximum(absz.max(-1), 1e-300))


def _positive(z: np.ndarray) -> np.ndarray:
    """log, sqrt: per row, every argument > 1e-8."""
    return z.min(-1) > 1e-8


PRIMITIVES: dict[str, Primitive] = {p.name: p for p in (
    Primitive("0", _zero, np.zeros_like, 0),
    Primitive("x", _identity, lambda z: z, 1),
    Primitive("x^2", _poly(2), np.square, 2),
    Primitive("sin", sin_derivatives, np.sin, 2),
    Primitive("cos", cos_derivatives, np.cos, 2),
    Primitive("exp", _exp, np.exp, 2),
    Primitive("x^3", _poly(3), lambda z: z**3, 3),
    Primitive("x^4", _poly(4), lambda z: z**4, 3),
    Primitive("1/x", _inverse, lambda z: 1.0 / z, 3, _away_from_zero),
    Primitive("sqrt", _sqrt, np.sqrt, 3, _positive),
    Primitive("log", _log, np.log, 3, _positive),
    Primitive("abs", _abs, np.abs, 3),
    Primitive("tanh", tanh_derivatives, np.tanh, 3),
    Primitive("gaussian", _gaussian, lambda z: np.exp(-z * z), 3),
)}
"""The library, simplest first."""


INNER = ("x^2", "x^3")
"""Inner functions ``g`` of the compositions ``"f(g)"``."""
OUTER = ("sin", "cos", "exp", "tanh", "gaussian")
"""Outer functions ``f`` of the compositions ``"f(g)"`` (:func:`compositions`)."""


def compositions(outer: tuple[str, ...] = OUTER, inner: tuple[str, ...] = INNER) -> list[str]:
    """The names ``"f(g)"`` of the compositions tried when no single primitive fits."""
    return [f"{f}({g})" for f in outer for g in inner]


def _compose(f: Primitive, g: Primitive) -> Primitive:
    """``f(g(z))``: value, ``f'(g) g'`` and ``f''(g) g'^2 + f'(g) g''``."""
    def torch_fn(z: Tensor) -> Triple:
        gz, dg, d2g = g.torch_fn(z)
        fz, df, d2f = f.torch_fn(gz)
        return fz, df * dg, d2f * dg * dg + df * d2g

    def numpy_fn(z: np.ndarray) -> np.ndarray:
        return f.numpy_fn(g.numpy_fn(z))

    def domain(z: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"):
            return g.valid_rows(z) & f.valid_rows(g.numpy_fn(z))

    return Primitive(f"{f.name}({g.name})", torch_fn, numpy_fn, f.complexity + g.complexity,
                     domain, parts=(f.name, g.name))


COMPOSED: dict[str, Primitive] = {
    f"{f}({g})": _compose(PRIMITIVES[f], PRIMITIVES[g]) for f in OUTER for g in INNER}
"""The compositions ``"f(g)"``, built once (edges look them up on every evaluation)."""


def primitive(name: str) -> Primitive:
    """The library entry ``name``, or the composition ``"f(g)"`` (``f`` in :data:`OUTER`,
    ``g`` in :data:`INNER`).

    Raises:
        ValueError: unknown name (the message lists the library).
    """
    found = PRIMITIVES.get(name) or COMPOSED.get(name)
    if found is not None:
        return found
    raise ValueError(f"unknown symbolic function {name!r} (library: "
                     f"{', '.join(PRIMITIVES)}, and f(g) with f in {', '.join(OUTER)} and g "
                     f"in {', '.join(INNER)})")


def edge_triple(name: str, x: Tensor, params: Tensor) -> Triple:
    """``phi, phi', phi''`` of symbolic edges ``c f(a x + b) + d`` sharing the primitive ``f``.

    Args:
        name: primitive name.
        x: ``(N, E)`` inputs of ``E`` edges.
        params: ``(E, 4)`` constants ``(a, b, c, d)`` per edge.

    Returns:
        Three ``(N, E)`` tensors.
    """
    a, b, c, d = params.unbind(-1)  # (E,) each
    f, df, d2f = primitive(name).torch_fn(a * x + b)
    return c * f + d, c * a * df, c * a * a * d2f
