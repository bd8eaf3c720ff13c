"""The residual API: what a residual or condition function sees.

A residual receives a :class:`Scope` ``s``: coordinates by name (``s.x``), fields as
:class:`FieldView` s with derivatives by coordinate name (``s.u.d("x", "y")``,
``s.u.laplacian()``), constants and unknown parameters (``s.nu``). Behind a field view is a
derivative source: a :class:`DerivativeRecorder` (the probe run that finds which
second-order channels a problem needs, turned into matrices by
:func:`kanpde.core.jet.channel_matrices`) or :class:`JetDerivatives` (values read off a
computed :class:`~kanpde.core.jet.Jet` whose channels follow the recorded keys).
"""

from __future__ import annotations

import torch
from torch import Tensor

from kanpde.core.jet import Jet


class ProblemError(ValueError):
    """A problem definition is inconsistent (unknown name, wrong shape, unsupported order)."""


def _unwrap(obj):
    if isinstance(obj, FieldView):
        return obj.value
    if isinstance(obj, (list, tuple)):
        return type(obj)(_unwrap(o) for o in obj)
    if isinstance(obj, dict):
        return {k: _unwrap(v) for k, v in obj.items()}
    return obj


class FieldView:
    """One output field at ``N`` points, with derivatives by coordinate name.

    Behaves as its value tensor ``(N,)`` in arithmetic and ``torch`` functions
    (``u * u.d("x")``, ``torch.sin(u)``), and offers:

    * ``u.d("x")``: first derivative ``du/dx`` ``(N,)``;
    * ``u.d("x", "y")``: second derivative ``d^2u/dxdy`` ``(N,)``;
    * ``u.laplacian()``: sum of ``d^2u/dx_a^2`` over the spatial coordinates (all coordinates
      but time), or over ``coords`` when given;
    * ``u.grad()``: ``(N, d)`` all first derivatives, coordinates in problem order.
    """

    def __init__(self, name: str, value: Tensor, scope: _DerivativeSource):
        self.name = name
        self.value = value  # (N,)
        self._source = scope

    def d(self, *coords: str) -> Tensor:
        """``d^n u / dx_{c_1} ... dx_{c_n}`` for ``n = 1, 2``."""
        return self._source.derivative(self.name, coords)

    def laplacian(self, coords: tuple[str, ...] | list[str] | None = None) -> Tensor:
        """Sum of pure second derivatives over ``coords`` (default: the spatial coordinates)."""
        return self._source.laplacian(self.name, None if coords is None else tuple(coords))

    def grad(self) -> Tensor:
        """``(N, d)`` gradient in problem coordinate order."""
        return torch.stack([self.d(c) for c in self._source.coords], dim=1)

    @property
    def shape(self) -> torch.Size:
        return self.value.shape

    def __repr__(self) -> str:
        return f"FieldView({self.name!r}, N={self.value.shape[0]})"

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        return func(*_unwrap(args), **_unwrap(kwargs or {}))

    def __add__(self, o): return self.value + _unwrap(o)  # noqa: E704
    def __radd__(self, o): return _unwrap(o) + self.value  # noqa: E704
    def __sub__(self, o): return self.value - _unwrap(o)  # noqa: E704
    def __rsub__(self, o): return _unwrap(o) - self.value  # noqa: E704
    def __mul__(self, o): return self.value * _unwrap(o)  # noqa: E704
    def __rmul__(self, o): return _unwrap(o) * self.value  # noqa: E704
    def __truediv__(self, o): return self.value / _unwrap(o)  # noqa: E704
    def __rtruediv__(self, o): return _unwrap(o) / self.value  # noqa: E704
    def __pow__(self, o): return self.value ** _unwrap(o)  # noqa: E704
    def __neg__(self): return -self.value  # noqa: E704


class _DerivativeSource:
    """Answers derivative requests for a :class:`FieldView` (from a jet, or as a probe)."""

    def __init__(self, coords: tuple[str, ...], time: str | None):
        self.coords = coords
        self.time = time

    def _index(self, coord: str) -> int:
        if coord not in self.coords:
            raise ProblemError(f"unknown coordinate {coord!r} in a derivative "
                               f"(coordinates: {', '.join(self.coords)})")
        return self.coords.index(coord)

    def spatial(self) -> tuple[str, ...]:
        return tuple(c for c in self.coords if c != self.time)

    def derivative(self, field: str, coords: tuple[str, ...]) -> Tensor:
        raise NotImplementedError

    def laplacian(self, field: str, coords: tuple[str, ...] | None) -> Tensor:
        raise NotImplementedError


class DerivativeRecorder(_DerivativeSource):
    """Probe: records which derivatives a residual asks for and returns zeros.

    After a probe run, :func:`channel_matrices` of ``keys`` gives the channel matrices.
    """

    def __init__(self, coords: tuple[str, ...], time: str | None, n_points: int,
                 like: Tensor):
        super().__init__(coords, time)
        self.keys: list[tuple] = []
        self.first_order = False
        self._zeros = like.new_zeros(n_points)

    def _add(self, key: tuple) -> None:
        if key not in self.keys:
            self.keys.append(key)

    def derivative(self, field: str, coords: tuple[str, ...]) -> Tensor:
        for c in coords:
            self._index(c)
        if len(coords) == 1:
            self.first_order = True
        elif len(coords) == 2:
            self.first_order = True
            self._add(("d", tuple(sorted(coords, key=self.coords.index))))
        else:
            raise ProblemError(f"derivative of order {len(coords)} requested "
                               f"(u.d{coords}); only orders 1 and 2 are supported")
        return self._zeros

    def laplacian(self, field: str, coords: tuple[str, ...] | None) -> Tensor:
        coords = self.spatial() if coords is None else coords
        for c in coords:
            self._index(c)
        self.first_order = True
        self._add(("lap", tuple(sorted(set(coords), key=self.coords.index))))
        return self._zeros


class JetDerivatives(_DerivativeSource):
    """Derivatives read off a computed :class:`Jet` whose channels follow ``keys``."""

    def __init__(self, coords: tuple[str, ...], time: str | None, fields: tuple[str, ...],
                 jet: Jet, keys: list[tuple]):
        super().__init__(coords, time)
        self.jet = jet
        self.fields = fields
        self.keys = keys

    def _channel(self, key: tuple) -> int:
        if key not in self.keys:
            raise ProblemError(f"second derivative {key[1]} was not declared by the probe run; "
                               "residuals must request the same derivatives on every call")
        return self.keys.index(key)

    def derivative(self, field: str, coords: tuple[str, ...]) -> Tensor:
        j = self.fields.index(field)
        if len(coords) == 1:
            return self.jet.grad[:, self._index(coords[0]), j]
        if len(coords) == 2:
            for c in coords:
                self._index(c)
            key = ("d", tuple(sorted(coords, key=self.coords.index)))
            return self.jet.second[:, self._channel(key), j]
        raise ProblemError(f"derivative of order {len(coords)} requested; only 1 and 2 "
                           "are supported")

    def laplacian(self, field: str, coords: tuple[str, ...] | None) -> Tensor:
        coords = self.spatial() if coords is None else coords
        key = ("lap", tuple(sorted(set(coords), key=self.coords.index)))
        return self.jet.second[:, self._channel(key), self.fields.index(field)]


class Scope:
    """What a residual or condition function receives: coordinates, fields and parameters.

    ``s.x`` is the coordinate ``x`` ``(N,)``; ``s.u`` the field ``u`` (a :class:`FieldView`);
    ``s.nu`` a constant or unknown parameter; ``s.points`` the ``(N, d)`` points;
    ``s.normals`` the ``(N, d)`` outward normals on boundary conditions.
    """

    def __init__(self, points: Tensor, coords: tuple[str, ...], fields: dict[str, FieldView],
                 params: dict[str, Tensor | float], normals: Tensor | None = None):
        self.points = points
        self.normals = normals
        self._coords = coords
        self._fields = fields
        self._params = params

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        if name in self._fields:
            return self._fields[name]
        if name in self._coords:
            return self.points[:, self._coords.index(name)]
        if name in self._params:
            return self._params[name]
        raise ProblemError(
            f"unknown name {name!r} (coordinates: {', '.join(self._coords)}; fields: "
            f"{', '.join(self._fields)}; parameters: {', '.join(self._params) or 'none'})")

    def __getitem__(self, name: str):
        return self.__getattr__(name)
