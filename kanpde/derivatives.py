"""Derivative engines: the forward jet (default) and nested autograd (the reference).

Both return a :class:`~kanpde.jet.Jet` of the model's output field at the points: value
``(N, m)``, gradient ``(N, d, m)`` and channels ``<W_r, Hess u_j>`` ``(N, R, m)``. The
"autograd" engine builds them with ``torch.autograd.grad(create_graph=True)`` through the
model's plain forward, so a loss made from it can still be differentiated for training.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from kanpde.jet import Channels, Jet
from kanpde.nn.common import make_channels

ENGINES = ("jet", "jet-torch", "jet-triton", "autograd")


def autograd_jet(model: nn.Module, x: Tensor, second: Tensor | Channels | None = None) -> Jet:
    """Value, gradient and channels of ``model`` at ``x`` by nested reverse-mode autograd.

    Only the Hessian rows ``a`` that some ``W_r[a, :]`` touches are computed:
    ``S_rj = sum_a sum_b W_r[a, b] d/dx_b (du_j/dx_a)``.

    Args:
        model: maps ``(N, d)`` to ``(N, m)``; points must not interact (no batch statistics).
        x: ``(N, d)`` points.
        second: ``(R, d, d)`` symmetric channel matrices, or ``None``.
    """
    channels = make_channels(second, x)
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        value = model(x)  # (N, m)
        n_points, dim = x.shape
        n_out = value.shape[1]
        grads = [_grad(value[:, j].sum(), x) for j in range(n_out)]  # m x (N, d)
        grad = torch.stack(grads, dim=2)  # (N, d, m)
        w = channels.matrices  # (R, d, d)
        rows = [a for a in range(dim) if bool((w[:, a, :] != 0).any())]
        columns = []
        for j in range(n_out):
            col = x.new_zeros(n_points, channels.count)  # (N, R)
            for a in rows:
                hess_row = _grad(grads[j][:, a].sum(), x)  # (N, d) row a of the Hessian
                col = col + hess_row @ w[:, a, :].T
            columns.append(col)
        second_out = torch.stack(columns, dim=2)  # (N, R, m)
    return Jet(value, grad, second_out, channels)


def _grad(out: Tensor, x: Tensor) -> Tensor:
    """``d out / dx`` with a graph for further differentiation; zero if ``out`` is constant."""
    if not out.requires_grad:
        return torch.zeros_like(x)
    grad = torch.autograd.grad(out, x, create_graph=True, allow_unused=True)[0]
    return torch.zeros_like(x) if grad is None else grad


def compute_jet(model: nn.Module, x: Tensor, second: Tensor | Channels | None = None,
                engine: str = "jet") -> Jet:
    """The field's jet at ``x`` by the chosen engine.

    ``"jet"`` pushes jets forward (fused Triton kernels for KAN layers on CUDA when available),
    ``"jet-torch"`` and ``"jet-triton"`` force the KAN layer implementation, ``"autograd"`` is
    nested reverse mode (the reference).
    """
    if engine in ("jet-torch", "jet-triton"):
        kernel = engine.split("-")[1]
        if hasattr(model, "layers") and hasattr(model.layers[0], "knots"):
            return model.jet(x, second=second, kernel=kernel)
        return model.jet(x, second=second)
    if engine == "jet":
        return model.jet(x, second=second)
    if engine == "autograd":
        return autograd_jet(model, x, second=second)
    raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")


# --------------------------------------------------------------------------------------------
# What a residual sees: fields and their derivatives by coordinate name
# --------------------------------------------------------------------------------------------


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


def channel_matrices(keys: list[tuple], coords: tuple[str, ...], like: Tensor) -> Tensor:
    """``(R, d, d)`` channel matrices for recorded second-order requests ``keys``.

    ``("lap", names)`` gives the diagonal with ones on ``names``; ``("d", (a, b))`` gives
    ``(e_a e_b^T + e_b e_a^T) / 2`` (``e_a e_a^T`` for a pure derivative).
    """
    d = len(coords)
    mats = []
    for kind, names in keys:
        w = like.new_zeros(d, d)
        idx = [coords.index(c) for c in names]
        if kind == "lap":
            for i in idx:
                w[i, i] = 1.0
        else:
            w[idx[0], idx[1]] += 0.5
            w[idx[1], idx[0]] += 0.5
        mats.append(w)
    return torch.stack(mats) if mats else like.new_zeros(0, d, d)


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
