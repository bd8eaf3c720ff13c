"""The :class:`Domain` interface shared by all geometries, and its sampling machinery.

A domain is a closed set in ``R^d`` with named boundary parts. Points are tensors of shape
``(n_points, d)``; internal geometry is float64 on the CPU, and samples are cast to the
requested ``dtype``/``device`` at the end.

Boundary sampling works on *pieces*: every domain describes its boundary (or, for CSG, a
superset of it) as a list of :class:`PieceSet` groups of parametrised pieces, each with a
measure (length/area; 1 for an endpoint of an interval), a part index and a map from
``[0, 1)^p`` that is uniform by measure. A point of the unit cube ``u`` picks a piece with
its first coordinate (``u_0`` falls into the piece's sub-interval of ``[0, 1)``, whose length
is proportional to the piece's measure) and that coordinate, rescaled to ``[0, 1)`` inside
the sub-interval, becomes the piece's first parameter; ``u_1, u_2, ...`` are the remaining
parameters. Curves in 2-D thus get ``"grid"`` points equispaced by arclength and a 1-D QMC
sequence spread along the whole boundary. Domains whose pieces over-cover the boundary (CSG)
keep only the candidates that lie on the actual boundary, in sequence order, until ``n``
points are kept.

Interior sampling: ``"uniform"`` uses an exact measure-preserving map from the unit cube
when the domain has one (box, ball, polygon and mesh via their cells), otherwise
acceptance–rejection from the bounding box. Quasi-random methods on non-box domains draw one
sequence over the bounding box in rounds and keep the inside points in sequence order, so
the kept set stays well spread. ``"grid"`` on a non-box domain returns the points of a
cell-centred bounding-box grid that lie inside, with the grid resolution chosen so that about
``n`` points are kept (the count is the grid's, not exactly ``n``).
"""

from __future__ import annotations

import numbers
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from kanpde.problem.geometry._pieces import (
    PieceSet,
    grid_filtered,
    map_pieces,
    rejection,
    rejection_tuple,
    select_by_measure,
)
from kanpde.problem.sampling import SAMPLERS, UnitCubeStream, unit_cube

__all__ = ["BoundarySample", "Domain", "PieceSet", "select_by_measure"]

_F64 = torch.float64


@dataclass(frozen=True)
class BoundarySample:
    """Points on a domain boundary.

    Attributes:
        points: boundary points, shape ``(n, d)``.
        normals: outward unit normals at the points, shape ``(n, d)``.
        part: index of each point's part in the domain's ``boundary_parts``, shape ``(n,)``.
    """

    points: Tensor
    normals: Tensor
    part: Tensor

    def __len__(self) -> int:
        return int(self.points.shape[0])


def _as_points(x: Tensor, dim: int) -> Tensor:
    if not isinstance(x, Tensor):
        x = torch.as_tensor(x, dtype=_F64)
    if x.dim() == 1 and dim == 1:
        x = x[:, None]
    if x.dim() != 2 or x.shape[1] != dim:
        raise ValueError(f"x must have shape (n_points, {dim}), got {tuple(x.shape)}")
    if not x.is_floating_point():
        x = x.to(_F64)
    return x


class Domain(ABC):
    """A closed domain in ``R^d`` with named boundary parts (abstract).

    Subclasses set ``dim``, ``bbox`` (``(lo, hi)``, float64 tensors of shape ``(d,)``) and
    ``boundary_parts`` in their constructor, and implement ``_inside``, ``_part_distance``,
    ``normal`` and ``_pieces``. ``_part_aliases`` maps extra accepted names to tuples of
    parts (e.g. ``"boundary"`` for a mesh whose facets are all named).
    """

    dim: int
    bbox: tuple[Tensor, Tensor]
    boundary_parts: tuple[str, ...]
    _part_aliases: dict[str, tuple[str, ...]] = {}
    #: whether the boundary pieces over-cover the boundary and candidates must be filtered
    _filtered: bool = False
    #: whether the domain is an axis-aligned box (interior = affine image of the unit cube)
    _is_box: bool = False

    # ----------------------------------------------------------------- to implement
    @abstractmethod
    def _inside(self, x: Tensor) -> Tensor:
        """Membership without tolerance, ``(N, d) -> (N,)`` bool (boundary may go either way)."""

    @abstractmethod
    def _part_distance(self, x: Tensor, tol: float) -> Tensor:
        """Distance from each point to each boundary part, shape ``(N, P)``.

        ``tol`` is only used by composite domains, which report ``inf`` for parts of their
        operands that do not belong to the composite boundary at ``x``.
        """

    @abstractmethod
    def normal(self, x: Tensor) -> Tensor:
        """Outward unit normal at boundary points ``(N, d) -> (N, d)``."""

    @abstractmethod
    def _pieces(self) -> list[PieceSet]:
        """The parametrised boundary pieces (see the module docstring)."""

    def _interior_map(self) -> tuple[int, Callable[[Tensor], Tensor]] | None:
        """``(q, f)`` with ``f: [0,1)^q -> domain`` uniform by volume, or ``None``."""
        return None

    # ----------------------------------------------------------------- measures
    @property
    def measure(self) -> float:
        """Volume (length, area) of the domain."""
        raise NotImplementedError(f"{type(self).__name__}: measure is not available")

    @property
    def boundary_measure(self) -> float:
        """Measure of the whole boundary (an interval's endpoints count 1 each)."""
        if self._filtered:
            raise NotImplementedError(f"{type(self).__name__}: boundary measure is not available")
        return float(sum(float(p.measure.sum()) for p in self._pieces()))

    def part_measure(self, parts: Sequence[str] | str) -> float:
        """Measure (length, area) of the named boundary parts (aliases allowed).

        Args:
            parts: a part name or names, as for :meth:`sample_boundary`.
        """
        if self._filtered:
            raise NotImplementedError(f"{type(self).__name__}: part measures are not available")
        selected = torch.tensor(self._resolve_parts(parts), dtype=torch.long)
        return float(sum(float(p.measure[torch.isin(p.part, selected)].sum())
                         for p in self._pieces()))

    # ----------------------------------------------------------------- parts
    def part_index(self, name: str) -> int:
        """Index of boundary part ``name`` (or of the one part an alias names)."""
        idx = self._resolve_parts([name])
        if len(idx) != 1:
            raise ValueError(f"{name!r} is an alias of several parts of {self!r}")
        return idx[0]

    # ----------------------------------------------------------------- coordinates
    def with_coords(self, coords: Sequence[str], time: str | None = None) -> Domain:
        """This domain as seen by a problem with coordinates ``coords`` (time last, ``time``).

        Domains whose part names come from coordinate names (boxes, intervals, space-time
        cylinders) return a copy whose part names follow ``coords``; the others return
        ``self``. :class:`~kanpde.problem.Problem` calls this with its own coordinates.

        Args:
            coords: the problem's coordinate names, ``len(coords) == dim``.
            time: the name of the time coordinate (the last one), or ``None``.

        Raises:
            ValueError: the domain names its coordinates differently.
        """
        return self

    def _resolve_parts(self, parts: Sequence[str] | str | None) -> list[int]:
        if parts is None:
            return list(range(len(self.boundary_parts)))
        if isinstance(parts, str):
            parts = [parts]
        out: list[int] = []
        for name in parts:
            names = self._part_aliases.get(name, (name,))
            for nm in names:
                if nm not in self.boundary_parts:
                    valid = ", ".join(self.boundary_parts + tuple(self._part_aliases))
                    raise ValueError(f"unknown boundary part {name!r} of {self!r}; valid: {valid}")
                i = self.boundary_parts.index(nm)
                if i not in out:
                    out.append(i)
        if not out:
            raise ValueError(f"parts selects no boundary part of {self!r}")
        return sorted(out)

    # ----------------------------------------------------------------- queries
    def inside(self, x: Tensor, tol: float = 1e-9) -> Tensor:
        """Membership of the closed domain.

        Args:
            x: points, shape ``(N, d)``.
            tol: absolute distance within which boundary points count as inside.

        Returns:
            Bool tensor of shape ``(N,)``.
        """
        x = _as_points(x, self.dim)
        res = self._inside(x)
        rest = torch.nonzero(~res)[:, 0]
        if rest.numel():
            res[rest] = self._part_distance(x[rest], tol).amin(dim=1) <= tol
        return res

    def on_boundary(self, x: Tensor, part: str | None = None, tol: float = 1e-9) -> Tensor:
        """Whether points lie on the boundary (or on the named part).

        Args:
            x: points, shape ``(N, d)``.
            part: a name from ``boundary_parts`` (or an alias); ``None`` for the whole boundary.
            tol: absolute distance tolerance.

        Returns:
            Bool tensor of shape ``(N,)``.
        """
        x = _as_points(x, self.dim)
        cols = self._resolve_parts(None if part is None else [part])
        dist = self._part_distance(x, tol)[:, cols]
        return dist.amin(dim=1) <= tol

    def _strictly_inside(self, x: Tensor, tol: float) -> Tensor:
        return self._inside(x) & (self._part_distance(x, tol).amin(dim=1) > tol)

    # ----------------------------------------------------------------- sampling
    def sample_interior(
        self,
        n: int,
        generator: torch.Generator,
        method: str = "uniform",
        *,
        dtype: torch.dtype = _F64,
        device: torch.device | str | None = None,
    ) -> Tensor:
        """Points in the domain.

        Args:
            n: number of points (``"grid"`` returns a full grid of about ``n`` points).
            generator: source of randomness.
            method: one of :data:`kanpde.problem.sampling.SAMPLERS`.
            dtype: floating dtype of the result.
            device: device of the result (``None``: CPU).

        Returns:
            Tensor of shape ``(n, d)``.
        """
        n = _check_n(n)
        _check_method(method)
        imap = self._interior_map()
        if method == "grid":
            if imap is not None and self._is_box:
                pts = imap[1](unit_cube(n, imap[0], "grid", generator, device="cpu"))
            else:
                pts = self._grid_interior(n)
        elif imap is not None and (method == "uniform" or self._is_box):
            pts = imap[1](unit_cube(n, imap[0], method, generator, device="cpu"))
        else:
            lo, hi = self.bbox
            stream = UnitCubeStream(self.dim, method, generator)
            pts = rejection(
                lambda m: lo + stream.draw(m) * (hi - lo),
                self._inside,
                n,
                self._acceptance_guess(),
                repr(self),
            )
        return pts.to(dtype=dtype, device=device)

    def sample_boundary(
        self,
        n: int,
        generator: torch.Generator,
        method: str = "uniform",
        parts: Sequence[str] | str | None = None,
        *,
        dtype: torch.dtype = _F64,
        device: torch.device | str | None = None,
    ) -> BoundarySample:
        """Points on the boundary, uniform by boundary measure over the selected parts.

        Args:
            n: number of points (``"grid"``: a grid in the piece parameter space, see the
                module docstring).
            generator: source of randomness.
            method: one of :data:`kanpde.problem.sampling.SAMPLERS`.
            parts: names of the parts to sample (aliases allowed); ``None`` for all.
            dtype: floating dtype of points and normals.
            device: device of the result (``None``: CPU).

        Returns:
            A :class:`BoundarySample` with ``points``/``normals`` ``(n, d)`` and ``part``
            ``(n,)``.
        """
        n = _check_n(n)
        _check_method(method)
        selected = torch.tensor(self._resolve_parts(parts), dtype=torch.long)
        pieces = []
        for ps in self._pieces():
            keep = torch.isin(ps.part, selected)
            pieces.append(replace(ps, measure=torch.where(keep, ps.measure, 0.0)))
        total = sum(float(p.measure.sum()) for p in pieces)
        if not total > 0:
            raise ValueError(f"the selected boundary parts of {self!r} have zero measure")
        q = max([1, *(p.n_params for p in pieces)])

        def candidates(u: Tensor) -> tuple[Tensor, Tensor, Tensor]:
            return map_pieces(pieces, u, self.dim)

        if not self._filtered:
            pts, nrm, part = candidates(unit_cube(n, q, method, generator, device="cpu"))
        else:

            def keep_fn(c: tuple[Tensor, Tensor, Tensor]) -> Tensor:
                dist = self._part_distance(c[0], 1e-9)
                return dist.gather(1, c[2][:, None])[:, 0] <= 1e-9

            if method == "grid":
                pts, nrm, part = grid_filtered(
                    lambda m: candidates(unit_cube(m, q, "grid", generator, device="cpu")),
                    keep_fn,
                    n,
                    q,
                )
            else:
                stream = UnitCubeStream(q, method, generator)
                pts, nrm, part = rejection_tuple(
                    lambda m: candidates(stream.draw(m)), keep_fn, n, repr(self)
                )
        return BoundarySample(
            pts.to(dtype=dtype, device=device),
            nrm.to(dtype=dtype, device=device),
            part.to(device=device),
        )

    # ----------------------------------------------------------------- helpers
    def _acceptance_guess(self) -> float:
        lo, hi = self.bbox
        try:
            return max(min(self.measure / float(torch.prod(hi - lo)), 1.0), 1e-3)
        except NotImplementedError:
            return 0.5

    def _grid_interior(self, n: int) -> Tensor:
        lo, hi = self.bbox

        def grid(m: int) -> tuple[Tensor]:
            return (lo + unit_cube(m, self.dim, "grid", torch.Generator()) * (hi - lo),)

        return grid_filtered(grid, lambda c: self._inside(c[0]), n, self.dim)[0]

    # ----------------------------------------------------------------- CSG operators
    def __or__(self, other: Domain) -> Domain:
        from kanpde.problem.geometry.csg import Union

        return Union(self, other)

    def __and__(self, other: Domain) -> Domain:
        from kanpde.problem.geometry.csg import Intersection

        return Intersection(self, other)

    def __sub__(self, other: Domain) -> Domain:
        from kanpde.problem.geometry.csg import Difference

        return Difference(self, other)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(dim={self.dim})"


# --------------------------------------------------------------------------- internals
def _check_n(n: object) -> int:
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    return int(n)


def _check_method(method: str) -> None:
    if method not in SAMPLERS:
        raise ValueError(f"method {method!r} is not a sampler; valid: {', '.join(SAMPLERS)}")
