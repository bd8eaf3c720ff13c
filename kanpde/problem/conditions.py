"""Boundary, initial and data conditions of a problem.

Every condition says where its points are (a boundary part, a predicate, the initial time,
given data points) and what must vanish there, as a function of a
:class:`~kanpde.problem.scope.Scope` ``s`` over those points:

=================  =====================================================================
``Dirichlet``      ``u - g = 0``
``Neumann``        ``du/dn - g = 0`` (outward normal derivative)
``Robin``          ``alpha u + beta du/dn - g = 0``
``Periodic``       ``u(x_lo) - u(x_hi) = 0`` (and ``du/dx`` too) across a coordinate
``Initial``        ``u(x, t0) - g(x) = 0``
``InitialRate``    ``u_t(x, t0) - g(x) = 0``
``Observations``   ``u(x_i) - y_i = 0`` at given points
=================  =====================================================================

Every coefficient (``value`` g, Robin's ``alpha`` and ``beta``, the observed ``values``) is a
number or a callable ``g(s) -> (N,)`` of the scope (``s.x``, ``s.t``, ``s.nu``, ``s.normals``
...). A callable may return a tensor of shape ``(N,)`` or ``(N, 1)``, or a number; anything
else, and any exception it raises, becomes a one-line :class:`ProblemError` naming the
coefficient (and, through :func:`kanpde.problem.check_problem`, the condition and the file).
On a space-time domain ``on="boundary"`` means the spatial boundary at all times (the lateral
boundary), never the initial or final time. ``Initial`` and ``InitialRate`` work on every
domain with an initial time: a space-time cylinder, a box whose last coordinate is the
problem's time, and a time-only interval (an ODE).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from kanpde.problem.scope import FieldView, ProblemError, Scope
from kanpde.problem.usercode import call_user

Value = float | Callable[[Scope], Tensor]
Where = str | Sequence[str] | Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class ConditionPoints:
    """Points of one condition: ``points (n, d)``, ``normals (n, d)`` or ``None``."""

    points: Tensor
    normals: Tensor | None = None


def _constant(value: object, what: str) -> float | Callable | None:
    """A finite float from a number (or a 0-d tensor/array), the callable itself, or ``None``
    when ``value`` is neither."""
    if callable(value):
        return value
    if isinstance(value, Tensor | np.ndarray) and value.ndim == 0:
        value = value.item()
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        if not math.isfinite(float(value)):
            raise ProblemError(f"{what} must be finite, got {value!r}")
        return float(value)
    return None


def _as_values(out: object, n: int, what: str, like: Tensor) -> Tensor | float:
    """Check a coefficient's output: a number, or a tensor of shape ``(n,)``/``(n, 1)``."""
    if isinstance(out, FieldView):
        out = out.value
    if isinstance(out, bool) or not isinstance(out, Tensor | numbers.Real | np.ndarray):
        raise ProblemError(f"{what} returned {type(out).__name__}, expected a tensor of "
                           f"shape ({n},) or a number")
    if isinstance(out, numbers.Real):
        return float(out)
    if isinstance(out, np.ndarray):
        out = torch.as_tensor(out, dtype=like.dtype, device=like.device)
    if out.ndim == 0:
        return out
    if out.shape == (n, 1):
        out = out[:, 0]
    if out.shape != (n,):
        raise ProblemError(f"{what} returned shape {tuple(out.shape)}, expected ({n},) or a "
                           "number")
    return out


def _boundary(domain, n: int, generator: torch.Generator, method: str, on: Where):
    """``n`` boundary points (and normals) on parts ``on`` or where predicate ``on`` holds."""
    if callable(on):
        pts, nrm, total = [], [], 0
        for _ in range(100):
            sample = domain.sample_boundary(max(2 * n, 64), generator, method=method)
            keep = torch.as_tensor(call_user(on, "boundary predicate 'on'", sample.points)
                                   ).to(torch.bool)
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
    try:
        sample = domain.sample_boundary(n, generator, method=method, parts=parts)
    except ValueError as err:
        raise ProblemError(str(err)) from err
    return ConditionPoints(sample.points, sample.normals)


def _initial(domain, n: int, generator: torch.Generator, method: str, what: str):
    """Points at the initial time of ``domain`` (its ``"initial"`` part or alias)."""
    parts = tuple(domain.boundary_parts) + tuple(getattr(domain, "_part_aliases", {}))
    if "initial" not in parts:
        raise ProblemError(f"{what}: {domain!r} has no initial time; declare the problem's "
                           "time coordinate (Problem(time=...), last) on an Interval, a Box "
                           "or a SpaceTime")
    return _boundary(domain, n, generator, method, "initial")


@dataclass(frozen=True)
class Condition:
    """Base of all conditions: ``field`` it constrains, ``weight`` in the loss, ``name``.

    Subclasses list their coefficient fields in ``coefficients``; each is checked on
    construction (a finite number or a callable of the scope) and evaluated with
    :meth:`coefficient`.
    """

    field: str = "u"
    weight: float = 1.0
    name: str | None = None
    #: highest derivative order the condition needs (0: value, 1: gradient)
    order: ClassVar[int] = 0
    #: names of the fields that are coefficients (numbers or callables of the scope)
    coefficients: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        what = self.describe()
        if not isinstance(self.field, str) or not self.field:
            raise ProblemError(f"{what}: field must be a field name, got {self.field!r}")
        if self.name is not None and (not isinstance(self.name, str) or not self.name):
            raise ProblemError(f"{what}: name must be a non-empty string, got {self.name!r}")
        weight = _constant(self.weight, f"{what}: weight")
        if weight is None or callable(weight) or weight < 0:
            raise ProblemError(f"{what}: weight must be a finite number >= 0, got "
                               f"{self.weight!r}")
        object.__setattr__(self, "weight", weight)
        for key in self.coefficients:
            raw = getattr(self, key)
            value = _constant(raw, f"{what}: {key}")
            if value is None:
                raise ProblemError(f"{what}: {key} must be a number or a callable of the scope "
                                   f"s -> (N,), got {type(raw).__name__}")
            object.__setattr__(self, key, value)

    def describe(self) -> str:
        """``"Robin"`` or ``"Robin 'outflow'"``: the condition in error messages."""
        return type(self).__name__ + (f" {self.name!r}" if isinstance(self.name, str) else "")

    def bind(self, coords: tuple[str, ...], time: str | None) -> Condition:
        """This condition for a problem with coordinates ``coords`` and time ``time``."""
        return self

    def coefficient(self, key: str, s: Scope) -> Tensor | float:
        """Coefficient ``key`` at the scope's points: a number or a tensor ``(N,)``.

        Raises:
            ProblemError: the callable failed or returned something else (one line).
        """
        value = getattr(self, key)
        if not callable(value):
            return value
        try:
            out = value(s)
        except ProblemError as err:
            raise ProblemError(f"{key}: {err}") from err
        except Exception as err:  # the user's callable failed: say which coefficient
            raise ProblemError(f"{key} raised {type(err).__name__}: {err}") from err
        return _as_values(out, s.points.shape[0], key, s.points)

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
    coefficients: ClassVar[tuple[str, ...]] = ("value",)

    def sample(self, domain, n, generator, method="uniform"):
        return _boundary(domain, n, generator, method, self.on)

    def residual(self, s: Scope) -> Tensor:
        return s[self.field].value - self.coefficient("value", s)


@dataclass(frozen=True)
class Neumann(Condition):
    """``du/dn = value`` (outward normal derivative) on ``on``."""

    on: Where = "boundary"
    value: Value = 0.0
    order: ClassVar[int] = 1
    coefficients: ClassVar[tuple[str, ...]] = ("value",)

    def sample(self, domain, n, generator, method="uniform"):
        return _boundary(domain, n, generator, method, self.on)

    def residual(self, s: Scope) -> Tensor:
        dudn = (s[self.field].grad() * s.normals).sum(1)
        return dudn - self.coefficient("value", s)


@dataclass(frozen=True)
class Robin(Condition):
    """``alpha u + beta du/dn = value`` on ``on``; each coefficient a number or callable."""

    on: Where = "boundary"
    alpha: Value = 1.0
    beta: Value = 1.0
    value: Value = 0.0
    order: ClassVar[int] = 1
    coefficients: ClassVar[tuple[str, ...]] = ("alpha", "beta", "value")

    def sample(self, domain, n, generator, method="uniform"):
        return _boundary(domain, n, generator, method, self.on)

    def residual(self, s: Scope) -> Tensor:
        u = s[self.field]
        dudn = (u.grad() * s.normals).sum(1)
        return (self.coefficient("alpha", s) * u.value + self.coefficient("beta", s) * dudn
                - self.coefficient("value", s))


@dataclass(frozen=True)
class Periodic(Condition):
    """``u`` (and ``du/d coord`` when ``derivative``) equal on the two faces ``coord = lo, hi``.

    Points are drawn in the domain and projected onto the face ``coord = lo`` of the
    bounding box; each is paired with its translate on ``coord = hi``. The condition has no
    coefficients; ``coords`` is filled in by the problem.
    """

    coord: str = "x"
    derivative: bool = True
    coords: tuple[str, ...] = ()

    order: ClassVar[int] = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.coord, str):
            raise ProblemError(f"{self.describe()}: coord must be a coordinate name, got "
                               f"{self.coord!r}")
        if not isinstance(self.derivative, bool):
            raise ProblemError(f"{self.describe()}: derivative must be True or False, got "
                               f"{self.derivative!r}")

    def bind(self, coords: tuple[str, ...], time: str | None) -> Periodic:
        if self.coord not in coords:
            raise ProblemError(f"{self.describe()}: unknown coordinate {self.coord!r} "
                               f"(coordinates: {', '.join(coords)})")
        return dataclasses.replace(self, coords=tuple(coords))

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
    """``u(x, t0) = value`` at the initial time (space-time cylinder, or time-only ODE)."""

    value: Value = 0.0
    coefficients: ClassVar[tuple[str, ...]] = ("value",)

    def sample(self, domain, n, generator, method="uniform"):
        return _initial(domain, n, generator, method, self.describe())

    def residual(self, s: Scope) -> Tensor:
        return s[self.field].value - self.coefficient("value", s)


@dataclass(frozen=True)
class InitialRate(Condition):
    """``u_t(x, t0) = value`` at the initial time.

    ``time`` names the time coordinate; by default the problem's ``time`` (or ``"t"`` when
    the problem declares none and has a coordinate ``t``).
    """

    value: Value = 0.0
    time: str | None = None
    order: ClassVar[int] = 1
    coefficients: ClassVar[tuple[str, ...]] = ("value",)

    def bind(self, coords: tuple[str, ...], time: str | None) -> InitialRate:
        name = self.time or time or ("t" if "t" in coords else None)
        if name is None:
            raise ProblemError(f"{self.describe()}: the problem declares no time coordinate "
                               "(Problem(time=...))")
        if name not in coords:
            raise ProblemError(f"{self.describe()}: unknown time coordinate {name!r} "
                               f"(coordinates: {', '.join(coords)})")
        return self if name == self.time else dataclasses.replace(self, time=name)

    def sample(self, domain, n, generator, method="uniform"):
        return _initial(domain, n, generator, method, self.describe())

    def residual(self, s: Scope) -> Tensor:
        return s[self.field].d(self.time or "t") - self.coefficient("value", s)


@dataclass(frozen=True)
class Observations(Condition):
    """``u(x_i) = y_i`` at given points ``(M, d)``.

    ``values`` are the data ``(M,)``, or a number or callable of the scope at the points
    (e.g. ``lambda s: exact(s.points)``).
    """

    points: Tensor | np.ndarray | None = None
    values: Tensor | np.ndarray | Value | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        what = self.describe()
        if self.points is None or self.values is None:
            raise ProblemError(f"{what}: needs points (M, d) and values (M,)")
        try:
            pts = torch.as_tensor(self.points, dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError) as err:
            raise ProblemError(f"{what}: points must be an array (M, d) ({err})") from err
        if pts.ndim != 2 or pts.shape[0] == 0:
            raise ProblemError(f"{what}: points must be (M >= 1, d), got {tuple(pts.shape)}")
        constant = _constant(self.values, f"{what}: values")
        if constant is not None:
            object.__setattr__(self, "values", constant)
            return
        try:
            vals = torch.as_tensor(self.values, dtype=torch.float64).reshape(-1)
        except (TypeError, ValueError, RuntimeError) as err:
            raise ProblemError(f"{what}: values must be an array (M,), a number or a callable "
                               f"of the scope ({err})") from err
        if vals.shape[0] != pts.shape[0]:
            raise ProblemError(f"{what}: points must be (M, d) and values (M,), got "
                               f"{tuple(pts.shape)} and {tuple(vals.shape)}")

    def bind(self, coords: tuple[str, ...], time: str | None) -> Observations:
        d = np.shape(self.points)[1]
        if d != len(coords):
            raise ProblemError(f"{self.describe()}: points have {d} columns but the problem "
                               f"has {len(coords)} coordinates ({', '.join(coords)})")
        return self

    def sample(self, domain, n, generator, method="uniform"):
        return ConditionPoints(torch.as_tensor(self.points, dtype=domain.bbox[0].dtype))

    def residual(self, s: Scope) -> Tensor:
        u = s[self.field].value
        if callable(self.values) or isinstance(self.values, float):
            return u - self.coefficient("values", s)
        vals = torch.as_tensor(self.values, dtype=u.dtype, device=u.device).reshape(-1)
        if vals.shape[0] != u.shape[0]:
            raise ProblemError(f"{self.describe()}: {u.shape[0]} points but {vals.shape[0]} "
                               "values")
        return u - vals
