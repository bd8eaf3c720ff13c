"""Boundary, initial and data conditions of a problem.

Every condition says where its points are (a boundary part, a predicate, the initial time,
given data points) and what must vanish there, as a function of a
:class:`~kanpde.derivatives.Scope` ``s`` over those points:

=================  =====================================================================
``Dirichlet``      ``u - g = 0``
``Neumann``        ``du/dn - g = 0`` (outward normal derivative)
``Robin``          ``a u + b du/dn - g = 0``
``Periodic``       ``u(x_lo) - u(x_hi) = 0`` (and ``du/dx`` too) across a coordinate
``Initial``        ``u(x, t0) - g(x) = 0``
``InitialRate``    ``u_t(x, t0) - g(x) = 0``
``Observations``   ``u(x_i) - y_i = 0`` at given points
=================  =====================================================================

Values ``g`` are numbers or callables ``g(s) -> (N,)`` of the scope (``s.x``, ``s.t``, ...).
On a space-time domain ``on="boundary"`` means the spatial boundary at all times (the lateral
boundary), never the initial or final time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from kanpde.derivatives import ProblemError, Scope

Value = float | Callable[[Scope], Tensor]
Where = str | Sequence[str] | Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class ConditionPoints:
    """Points of one condition: ``points (n, d)``, ``normals (n, d)`` or ``None``."""

    points: Tensor
    normals: Tensor | None = None


def _value(value: Value, s: Scope) -> Tensor | float:
    return value(s) if callable(value) else value


def _boundary(domain, n: int, generator: torch.Generator, method: str, on: Where):
    """``n`` boundary points (and normals) on parts ``on`` or where predicate ``on`` holds."""
    if callable(on):
        pts, nrm, total = [], [], 0
        for _ in range(100):
            sample = domain.sample_boundary(max(2 * n, 64), generator, method=method)
            keep = on(sample.points).to(torch.bool)
            pts.append(sample.points[keep])
            nrm.append(sample.normals[keep])
            total += int(keep.sum())
            if total >= n:
                return ConditionPoints(torch.cat(pts)[:n], torch.cat(nrm)[:n])
        raise ProblemError("boundary predicate selects (almost) no boundary points")
    parts = None if on == "boundary" else ([on] if isinstance(on, str) else list(on))
    if parts is not None and "boundary" in parts:
        parts = None
    if parts is None and hasattr(domain, "sample_lateral"):
        # space-time: "boundary" is the spatial boundary for all times, never t = t0 or t1
        sample = domain.sample_lateral(n, generator, method=method)
        return ConditionPoints(sample.points, sample.normals)
    sample = domain.sample_boundary(n, generator, method=method, parts=parts)
    return ConditionPoints(sample.points, sample.normals)


@dataclass(frozen=True)
class Condition:
    """Base of all conditions: ``field`` it constrains, ``weight`` in the loss, ``name``."""

    field: str = "u"
    weight: float = 1.0
    name: str | None = None
    #: highest derivative order the condition needs (0: value, 1: gradient)
    order: ClassVar[int] = 0

    def sample(self, domain, n: int, generator: torch.Generator,
               method: str = "uniform") -> ConditionPoints:
        raise NotImplementedError

    def residual(self, s: Scope) -> Tensor:
        raise NotImplementedError

    def label(self, index: int) -> str:
        return self.name or f"{type(self).__name__.lower()}{index}"


@dataclass(frozen=True)
class Dirichlet(Condition):
    """``u = value`` on the boundary parts (or predicate) ``on``."""

    on: Where = "boundary"
    value: Value = 0.0

    def sample(self, domain, n, generator, method="uniform"):
        return _boundary(domain, n, generator, method, self.on)

    def residual(self, s: Scope) -> Tensor:
        return s[self.field].value - _value(self.value, s)


@dataclass(frozen=True)
class Neumann(Condition):
    """``du/dn = value`` (outward normal derivative) on ``on``."""

    on: Where = "boundary"
    value: Value = 0.0
    order: ClassVar[int] = 1

    def sample(self, domain, n, generator, method="uniform"):
        return _boundary(domain, n, generator, method, self.on)

    def residual(self, s: Scope) -> Tensor:
        dudn = (s[self.field].grad() * s.normals).sum(1)
        return dudn - _value(self.value, s)


@dataclass(frozen=True)
class Robin(Condition):
    """``alpha u + beta du/dn = value`` on ``on``."""

    on: Where = "boundary"
    alpha: float = 1.0
    beta: float = 1.0
    value: Value = 0.0
    order: ClassVar[int] = 1

    def sample(self, domain, n, generator, method="uniform"):
        return _boundary(domain, n, generator, method, self.on)

    def residual(self, s: Scope) -> Tensor:
        u = s[self.field]
        dudn = (u.grad() * s.normals).sum(1)
        return self.alpha * u.value + self.beta * dudn - _value(self.value, s)


@dataclass(frozen=True)
class Periodic(Condition):
    """``u`` (and ``du/d coord`` when ``derivative``) equal on the two faces ``coord = lo, hi``.

    Points are drawn in the domain and projected onto the face ``coord = lo`` of the
    bounding box; each is paired with its translate on ``coord = hi``.
    """

    coord: str = "x"
    derivative: bool = True
    coords: tuple[str, ...] = ()

    order: ClassVar[int] = 1

    def sample(self, domain, n, generator, method="uniform"):
        if self.coord not in self.coords:
            raise ProblemError(f"Periodic: unknown coordinate {self.coord!r}")
        c = self.coords.index(self.coord)
        lo, hi = domain.bbox
        x = domain.sample_interior(n, generator, method=method)
        a, b = x.clone(), x.clone()
        a[:, c], b[:, c] = lo[c], hi[c]
        return ConditionPoints(torch.cat([a, b]))

    def residual(self, s: Scope) -> Tensor:
        u = s[self.field]
        n = u.value.shape[0] // 2
        out = u.value[:n] - u.value[n:]
        if self.derivative:
            du = u.d(self.coord)
            out = torch.cat([out, du[:n] - du[n:]])
        return out


@dataclass(frozen=True)
class Initial(Condition):
    """``u(x, t0) = value`` on the initial face of a space-time domain."""

    value: Value = 0.0

    def sample(self, domain, n, generator, method="uniform"):
        return _boundary(domain, n, generator, method, "initial")

    def residual(self, s: Scope) -> Tensor:
        return s[self.field].value - _value(self.value, s)


@dataclass(frozen=True)
class InitialRate(Condition):
    """``u_t(x, t0) = value`` on the initial face; ``time`` names the time coordinate."""

    value: Value = 0.0
    time: str = "t"
    order: ClassVar[int] = 1

    def sample(self, domain, n, generator, method="uniform"):
        return _boundary(domain, n, generator, method, "initial")

    def residual(self, s: Scope) -> Tensor:
        return s[self.field].d(self.time) - _value(self.value, s)


@dataclass(frozen=True)
class Observations(Condition):
    """``u(x_i) = y_i`` at given points ``(M, d)`` with values ``(M,)``."""

    points: Tensor | np.ndarray | None = None
    values: Tensor | np.ndarray | None = None

    def _data(self, like_dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        if self.points is None or self.values is None:
            raise ProblemError("Observations needs points (M, d) and values (M,)")
        pts = torch.as_tensor(self.points, dtype=like_dtype)
        vals = torch.as_tensor(self.values, dtype=like_dtype).reshape(-1)
        if pts.ndim != 2 or vals.shape[0] != pts.shape[0]:
            raise ProblemError(f"Observations: points must be (M, d) and values (M,), got "
                               f"{tuple(pts.shape)} and {tuple(vals.shape)}")
        return pts, vals

    def sample(self, domain, n, generator, method="uniform"):
        return ConditionPoints(self._data(domain.bbox[0].dtype)[0])

    def residual(self, s: Scope) -> Tensor:
        vals = self._data(s.points.dtype)[1].to(s.points.device)
        return s[self.field].value - vals
