"""Reference solutions: exact functions and stored data, interpolated onto evaluation points.

A :class:`Reference` maps evaluation points ``(N, d)`` (coordinates in the problem's documented
order, time last) to the values ``(N, m)`` of its ``m`` named output fields, in float64 and on
the points' device. Three kinds exist:

* :class:`ExactSolution` wraps a closed-form callable.
* :class:`GridData` interpolates data given on a tensor-product grid (linear or cubic).
* :class:`ScatteredData` interpolates data given at scattered points (piecewise linear).

Stored references (HDF5 files) are read and written by :mod:`kanpde.io.reference_files`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from scipy.interpolate import (
    LinearNDInterpolator,
    NdBSpline,
    RegularGridInterpolator,
    make_interp_spline,
)

__all__ = [
    "ExactSolution",
    "GridData",
    "Reference",
    "ScatteredData",
]

_BOUNDS_RTOL = 1e-12


def as_fields(fields: str | Sequence[str]) -> tuple[str, ...]:
    """Normalise field names: a comma-separated string or a sequence of non-empty names."""
    names = fields.split(",") if isinstance(fields, str) else list(fields)
    names = [str(name).strip() for name in names]
    if not names or any(not name for name in names):
        raise ValueError(f"fields must be non-empty names, got {fields!r}")
    if len(set(names)) != len(names):
        raise ValueError(f"fields must be distinct, got {fields!r}")
    return tuple(names)


def _points_to_numpy(points: torch.Tensor | np.ndarray, dim: int | None) -> np.ndarray:
    """Validate evaluation points and return them as a float64 ``(N, d)`` NumPy array."""
    if isinstance(points, torch.Tensor):
        array = points.detach().to(device="cpu", dtype=torch.float64).numpy()
    else:
        array = np.asarray(points, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"points must have shape (N, d), got shape {tuple(array.shape)}")
    if dim is not None and array.shape[1] != dim:
        raise ValueError(
            f"points have {array.shape[1]} coordinates per row but the reference is "
            f"{dim}-dimensional"
        )
    if not np.all(np.isfinite(array)):
        raise ValueError("points contain NaN or infinite coordinates")
    return array


def _to_output(values: np.ndarray, like: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Wrap ``(N, m)`` float64 values as a tensor on the device of ``like`` (CPU for arrays)."""
    device = like.device if isinstance(like, torch.Tensor) else torch.device("cpu")
    return torch.from_numpy(np.ascontiguousarray(values, dtype=np.float64)).to(device)


class Reference(ABC):
    """A reference solution: values of named output fields at evaluation points.

    Attributes:
        fields: names of the ``m`` output fields, in column order of the values.
        attrs: metadata (e.g. read from a stored file); empty if none.
    """

    fields: tuple[str, ...]
    attrs: dict[str, Any]

    @property
    def n_fields(self) -> int:
        """Number ``m`` of output fields."""
        return len(self.fields)

    @abstractmethod
    def __call__(self, points: torch.Tensor) -> torch.Tensor:
        """Evaluate the reference.

        Args:
            points: ``(N, d)`` evaluation points, coordinates in the problem's order (time last).

        Returns:
            ``(N, m)`` float64 values of the ``m`` fields, on the device of ``points``.
        """


class _NumpyReference(Reference):
    """A reference evaluated by a NumPy routine on a ``(N, d)`` float64 array."""

    dim: int

    def __call__(self, points: torch.Tensor) -> torch.Tensor:
        array = _points_to_numpy(points, self.dim)
        return _to_output(self._evaluate(array), points)

    def evaluate_numpy(self, points: np.ndarray) -> np.ndarray:
        """Evaluate on a NumPy ``(N, d)`` array; returns ``(N, m)`` float64."""
        return self._evaluate(_points_to_numpy(points, self.dim))

    @abstractmethod
    def _evaluate(self, points: np.ndarray) -> np.ndarray:
        """Values ``(N, m)`` at validated float64 points ``(N, d)``."""


class ExactSolution(Reference):
    """A closed-form reference ``u(x)``.

    Args:
        fn: callable taking a float64 ``(N, d)`` tensor and returning ``(N,)`` (one field) or
            ``(N, m)`` values (a tensor or anything ``torch.as_tensor`` accepts).
        fields: names of the ``m`` output fields.
        attrs: optional metadata.

    Example:
        >>> ref = ExactSolution(lambda p: torch.sin(torch.pi * p[:, 0]) * torch.exp(-p[:, 1]))
    """

    def __init__(
        self,
        fn: Callable[[torch.Tensor], Any],
        fields: str | Sequence[str] = ("u",),
        attrs: Mapping[str, Any] | None = None,
    ) -> None:
        if not callable(fn):
            raise ValueError(f"fn must be callable, got {type(fn).__name__}")
        self.fn = fn
        self.fields = as_fields(fields)
        self.attrs = dict(attrs or {})

    def __call__(self, points: torch.Tensor) -> torch.Tensor:
        if not isinstance(points, torch.Tensor):
            points = torch.as_tensor(np.asarray(points, dtype=np.float64))
        if points.ndim != 2:
            raise ValueError(f"points must have shape (N, d), got shape {tuple(points.shape)}")
        x = points.to(torch.float64)
        out = torch.as_tensor(self.fn(x), dtype=torch.float64, device=points.device)
        n, m = x.shape[0], self.n_fields
        if out.ndim == 1 and m == 1 and out.shape[0] == n:
            out = out.unsqueeze(1)
        if out.shape != (n, m):
            raise ValueError(
                f"exact solution for {m} field(s) {self.fields} must return shape ({n}, {m})"
                + (f" or ({n},)" if m == 1 else "")
                + f" for {n} points, got shape {tuple(out.shape)}"
            )
        return out


class GridData(_NumpyReference):
    """Data on a tensor-product grid, interpolated onto evaluation points.

    The interpolant is

    * ``"linear"``: piecewise multilinear, :class:`scipy.interpolate.RegularGridInterpolator`;
    * ``"cubic"``: the tensor-product cubic spline with not-a-knot ends that
      ``RegularGridInterpolator(method="cubic")`` defines, but with its coefficients found by
      exact banded 1-D solves axis by axis (``make_interp_spline``) rather than that class's
      default iterative solver (whose ``atol=1e-6`` would cap the accuracy). The error is
      ``O(h^4)`` for smooth data; cubic data is reproduced to round-off.

    Points outside the grid box (beyond a relative tolerance of 1e-12 of each axis' extent,
    which absorbs round-off at the faces) raise a ValueError.

    Args:
        axes: ``d`` strictly increasing 1-D coordinate arrays, ``axes[k]`` of length ``n_k``
            (at least 2 points for linear, 4 for cubic).
        values: ``(n_0, ..., n_{d-1}, m)`` field values at the grid points; ``(n_0, ...,
            n_{d-1})`` is accepted for a single field.
        fields: the ``m`` field names.
        method: ``"linear"`` or ``"cubic"``.
        attrs: optional metadata.
    """

    def __init__(
        self,
        axes: Sequence[np.ndarray],
        values: np.ndarray,
        fields: str | Sequence[str] = ("u",),
        method: str = "cubic",
        attrs: Mapping[str, Any] | None = None,
    ) -> None:
        if method not in ("linear", "cubic"):
            raise ValueError(f"method must be 'linear' or 'cubic', got {method!r}")
        self.fields = as_fields(fields)
        self.attrs = dict(attrs or {})
        self.method = method
        if len(axes) == 0:
            raise ValueError("axes must hold at least one coordinate array")
        min_points = 2 if method == "linear" else 4
        self.axes = tuple(np.array(axis, dtype=np.float64) for axis in axes)
        for k, axis in enumerate(self.axes):
            if axis.ndim != 1 or axis.size < min_points:
                raise ValueError(
                    f"axes[{k}] must be 1-D with at least {min_points} points for method "
                    f"{method!r}, got shape {axis.shape}"
                )
            if not np.all(np.isfinite(axis)) or np.any(np.diff(axis) <= 0):
                raise ValueError(f"axes[{k}] must be finite and strictly increasing")
        self.dim = len(self.axes)
        grid_shape = tuple(axis.size for axis in self.axes)
        vals = np.array(values, dtype=np.float64)
        if vals.shape == grid_shape and self.n_fields == 1:
            vals = vals[..., None]
        if vals.shape != (*grid_shape, self.n_fields):
            raise ValueError(
                f"values must have shape {(*grid_shape, self.n_fields)} (grid shape from axes, "
                f"then {self.n_fields} field(s) {self.fields}), got {vals.shape}"
            )
        if not np.all(np.isfinite(vals)):
            raise ValueError("values contain NaN or infinite entries")
        self.values = vals
        self.bounds = np.array([[axis[0], axis[-1]] for axis in self.axes])
        if method == "linear":
            self._interp: Callable[[np.ndarray], np.ndarray] = RegularGridInterpolator(
                self.axes, vals, method="linear", bounds_error=False, fill_value=None
            )
        else:
            self._interp = _tensor_cubic_spline(self.axes, vals)

    def _evaluate(self, points: np.ndarray) -> np.ndarray:
        lo, hi = self.bounds[:, 0], self.bounds[:, 1]
        tol = _BOUNDS_RTOL * np.maximum(hi - lo, np.maximum(np.abs(lo), np.abs(hi)))
        outside = np.any((points < lo - tol) | (points > hi + tol), axis=1)
        if np.any(outside):
            box = " x ".join(f"[{a:.6g}, {b:.6g}]" for a, b in self.bounds)
            raise ValueError(
                f"{int(outside.sum())} of {points.shape[0]} points lie outside the grid {box}"
            )
        clipped = np.clip(points, lo, hi)
        return np.asarray(self._interp(clipped), dtype=np.float64).reshape(-1, self.n_fields)


def _tensor_cubic_spline(axes: Sequence[np.ndarray], values: np.ndarray) -> NdBSpline:
    """Not-a-knot tensor-product cubic interpolating spline of ``values`` ``(*grid, m)``.

    The coefficient tensor solves ``(A_0 ⊗ ... ⊗ A_{d-1}) c = values`` with ``A_k`` the 1-D
    collocation matrices; it is found by one exact 1-D spline solve per axis in turn.
    """
    coef = values
    knots = []
    for k, axis in enumerate(axes):
        spline = make_interp_spline(axis, np.moveaxis(coef, k, 0), k=3, axis=0)
        coef = np.moveaxis(spline.c, 0, k)
        knots.append(spline.t)
    return NdBSpline(tuple(knots), coef, 3)


class ScatteredData(_NumpyReference):
    """Data at scattered points, interpolated piecewise linearly.

    For ``d >= 2`` the interpolant is linear on the Delaunay triangulation
    (:class:`scipy.interpolate.LinearNDInterpolator`); points outside the convex hull of the data
    raise a ValueError. For ``d = 1`` it is the piecewise-linear interpolant (``np.interp``);
    points outside ``[min, max]`` (relative tolerance 1e-12) raise a ValueError.

    Args:
        points: ``(M, d)`` data sites (``(M,)`` accepted for ``d = 1``).
        values: ``(M, m)`` field values (``(M,)`` accepted for one field).
        fields: the ``m`` field names.
        attrs: optional metadata.
    """

    def __init__(
        self,
        points: np.ndarray,
        values: np.ndarray,
        fields: str | Sequence[str] = ("u",),
        attrs: Mapping[str, Any] | None = None,
    ) -> None:
        self.fields = as_fields(fields)
        self.attrs = dict(attrs or {})
        pts = np.array(points, dtype=np.float64)
        if pts.ndim == 1:
            pts = pts[:, None]
        if pts.ndim != 2 or pts.shape[0] == 0:
            raise ValueError(f"points must have shape (M, d), got {np.shape(points)}")
        vals = np.array(values, dtype=np.float64)
        if vals.ndim == 1 and self.n_fields == 1:
            vals = vals[:, None]
        if vals.shape != (pts.shape[0], self.n_fields):
            raise ValueError(
                f"values must have shape ({pts.shape[0]}, {self.n_fields}) for {pts.shape[0]} "
                f"points and {self.n_fields} field(s) {self.fields}, got {vals.shape}"
            )
        if not (np.all(np.isfinite(pts)) and np.all(np.isfinite(vals))):
            raise ValueError("points or values contain NaN or infinite entries")
        self.dim = pts.shape[1]
        if self.dim == 1:
            order = np.argsort(pts[:, 0], kind="stable")
            pts, vals = pts[order], vals[order]
            if pts.shape[0] < 2 or np.any(np.diff(pts[:, 0]) <= 0):
                raise ValueError("1-D scattered data needs at least 2 distinct points")
        else:
            self._interp = LinearNDInterpolator(pts, vals)
        self.points, self.values = pts, vals

    def _evaluate(self, points: np.ndarray) -> np.ndarray:
        if self.dim == 1:
            sites = self.points[:, 0]
            lo, hi = sites[0], sites[-1]
            tol = _BOUNDS_RTOL * max(hi - lo, abs(lo), abs(hi))
            x = points[:, 0]
            outside = (x < lo - tol) | (x > hi + tol)
            if np.any(outside):
                raise ValueError(
                    f"{int(outside.sum())} of {x.size} points lie outside the data range "
                    f"[{lo:.6g}, {hi:.6g}]"
                )
            return np.stack([np.interp(x, sites, v) for v in self.values.T], axis=1)
        out = np.asarray(self._interp(points), dtype=np.float64).reshape(-1, self.n_fields)
        outside = np.any(np.isnan(out), axis=1)
        if np.any(outside):
            lo, hi = self.points.min(axis=0), self.points.max(axis=0)
            box = " x ".join(f"[{a:.6g}, {b:.6g}]" for a, b in zip(lo, hi, strict=True))
            raise ValueError(
                f"{int(outside.sum())} of {points.shape[0]} points lie outside the convex hull "
                f"of the data (bounding box {box})"
            )
        return out
