"""Axis-aligned boxes and intervals."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from kanpde.problem.geometry.base import Domain, PieceSet

__all__ = ["Box", "Interval", "as_vector"]

_F64 = torch.float64


def as_vector(value: object, name: str) -> Tensor:
    """A finite float64 CPU vector ``(d,)`` from a sequence, array or tensor."""
    try:
        v = torch.as_tensor(value, dtype=_F64).detach().cpu().reshape(-1).clone()
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ValueError(f"{name} must be a sequence of numbers ({exc})") from exc
    if v.numel() == 0 or not bool(torch.isfinite(v).all()):
        raise ValueError(f"{name} must be a non-empty vector of finite numbers, got {value!r}")
    return v


class Box(Domain):
    """The axis-aligned box ``[lo_0, hi_0] x ... x [lo_{d-1}, hi_{d-1}]``, any ``d >= 1``.

    Boundary parts are the faces, two per axis in axis order: ``"<c>_min", "<c>_max"`` where
    ``c`` is the axis' coordinate name (``x0, x1, ...`` by default, or ``coord_names``). At
    edges and corners ``normal`` returns the normal of the face listed first among the nearest
    ones.

    Args:
        lo: lower corner, length ``d``.
        hi: upper corner, length ``d``, with ``hi > lo`` on every axis.
        coord_names: optional names of the ``d`` coordinates (used for the part names).
    """

    _is_box = True

    def __init__(
        self,
        lo: Sequence[float] | Tensor,
        hi: Sequence[float] | Tensor,
        coord_names: Sequence[str] | None = None,
    ) -> None:
        lo_t, hi_t = as_vector(lo, "lo"), as_vector(hi, "hi")
        if lo_t.shape != hi_t.shape:
            raise ValueError(f"lo has {lo_t.numel()} entries but hi has {hi_t.numel()}")
        if not bool((hi_t > lo_t).all()):
            raise ValueError(
                f"hi must exceed lo on every axis, got lo={lo_t.tolist()}, hi={hi_t.tolist()}"
            )
        d = lo_t.numel()
        if coord_names is None:
            names = tuple(f"x{i}" for i in range(d))
            self.coord_names: tuple[str, ...] | None = None
        else:
            names = tuple(coord_names)
            if (
                len(names) != d
                or len(set(names)) != d
                or not all(isinstance(c, str) and c for c in names)
            ):
                raise ValueError(
                    f"coord_names must be {d} distinct non-empty strings, got {coord_names!r}"
                )
            self.coord_names = names
        self.dim = d
        self.lo, self.hi = lo_t, hi_t
        self.bbox = (lo_t.clone(), hi_t.clone())
        self.boundary_parts = tuple(f"{c}_{side}" for c in names for side in ("min", "max"))
        self._part_aliases = {}
        ext = hi_t - lo_t
        self._ext = ext
        self._axis = torch.arange(2 * d) // 2
        self._side = torch.arange(2 * d) % 2
        self._others = torch.stack(
            [torch.tensor([j for j in range(d) if j != i], dtype=torch.long) for i in range(d)]
        )[self._axis]  # (2d, d-1)
        self._face_measure = torch.prod(ext[self._others], dim=1)  # empty product -> 1
        normals = torch.zeros(2 * d, d, dtype=_F64)
        normals[torch.arange(2 * d), self._axis] = torch.where(self._side == 1, 1.0, -1.0).to(_F64)
        self._normals = normals

    @property
    def measure(self) -> float:
        """Volume ``prod(hi - lo)``."""
        return float(torch.prod(self._ext))

    def _inside(self, x: Tensor) -> Tensor:
        lo, hi = self.lo.to(x), self.hi.to(x)
        return ((x >= lo) & (x <= hi)).all(dim=1)

    def _part_distance(self, x: Tensor, tol: float) -> Tensor:
        lo, hi = self.lo.to(x), self.hi.to(x)
        out2 = (torch.relu(lo - x) + torch.relu(x - hi)) ** 2  # (N, d)
        total = out2.sum(dim=1, keepdim=True)
        axis = self._axis.to(x.device)
        face = torch.where(self._side.to(x.device) == 1, hi[axis], lo[axis])  # (2d,)
        d2 = (x[:, axis] - face) ** 2 + total - out2[:, axis]
        return torch.sqrt(d2.clamp_min(0.0))

    def normal(self, x: Tensor) -> Tensor:
        """Outward unit normal of the nearest face, ``(N, d) -> (N, d)``."""
        k = self._part_distance(x, 0.0).argmin(dim=1)
        return self._normals.to(x)[k]

    def _pieces(self) -> list[PieceSet]:
        return [
            PieceSet(
                self._face_measure.clone(),
                torch.arange(2 * self.dim),
                self.dim - 1,
                self._map_faces,
            )
        ]

    def _map_faces(self, k: Tensor, s: Tensor) -> tuple[Tensor, Tensor]:
        n, d = k.shape[0], self.dim
        pts = self.lo.expand(n, d).clone()
        if d > 1:
            oth = self._others[k]
            pts.scatter_(1, oth, self.lo[oth] + s * self._ext[oth])
        ax = self._axis[k]
        pts[torch.arange(n), ax] = torch.where(self._side[k] == 1, self.hi[ax], self.lo[ax])
        return pts, self._normals[k]

    def _interior_map(self) -> tuple[int, Callable[[Tensor], Tensor]]:
        return self.dim, lambda u: self.lo + u * self._ext

    def with_coords(self, coords: Sequence[str], time: str | None = None) -> Domain:
        """This box with part names ``"<c>_min", "<c>_max"`` from ``coords``.

        A box whose last coordinate is the time ``time`` becomes the space-time cylinder
        ``Box(space) x [t0, t1]`` (:class:`~kanpde.problem.geometry.SpaceTime`, parts ``"initial"``,
        ``"final"`` and the spatial faces, ``"<time>_min"``/``"<time>_max"`` as aliases); a
        one-dimensional box in time becomes an :class:`Interval` in time. An unnamed box keeps
        its positional names ``"x0_min", ...`` as aliases.

        Raises:
            ValueError: the box names its coordinates differently from ``coords``.
        """
        coords = _check_coords(self, coords, time)
        if time is not None:
            lo, hi = self.lo.tolist(), self.hi.tolist()
            if self.dim == 1:
                return Interval(lo[0], hi[0], coords, time=time)
            from kanpde.problem.geometry.spacetime import SpaceTime

            return SpaceTime(Box(lo[:-1], hi[:-1], coords[:-1]), lo[-1], hi[-1], time=time)
        if self.coord_names == coords:
            return self
        named = Box(self.lo, self.hi, coords)
        named._part_aliases = {
            f"x{i}_{side}": (f"{c}_{side}",)
            for i, c in enumerate(coords)
            for side in ("min", "max")
            if f"x{i}_{side}" not in named.boundary_parts
        }
        return named

    def __repr__(self) -> str:
        return f"Box(lo={self.lo.tolist()}, hi={self.hi.tolist()})"


def _check_coords(dom: Box, coords: Sequence[str], time: str | None) -> tuple[str, ...]:
    """``coords`` as a tuple, checked against the dimension and names of ``dom``."""
    coords = tuple(coords)
    if len(coords) != dom.dim:
        raise ValueError(f"{dom!r} has dimension {dom.dim} but {len(coords)} coordinates "
                         f"are named ({', '.join(coords)})")
    if dom.coord_names is not None and dom.coord_names != coords:
        raise ValueError(f"{dom!r} names its coordinates ({', '.join(dom.coord_names)}) but "
                         f"the problem's are ({', '.join(coords)})")
    if time is not None and coords[-1] != time:
        raise ValueError(f"time coordinate {time!r} must be the last coordinate "
                         f"(coordinates: {', '.join(coords)})")
    return coords


class Interval(Box):
    """The interval ``[a, b]`` (``d = 1``) of the coordinate ``c``.

    Its boundary is the two endpoints, each of boundary measure 1 (boundary sampling returns
    them in equal proportion), normals ``-1`` and ``+1``. Part names follow the coordinate:

    =====================  ==============================  ===============================
    coordinate             parts                           aliases
    =====================  ==============================  ===============================
    ``x`` (the default)    ``"left"``, ``"right"``         ``"x_min"``, ``"x_max"``
    any other ``c``        ``"c_min"``, ``"c_max"``        ``"left"``, ``"right"``
    the time ``t``         ``"t_min"``, ``"t_max"``        ``"initial"``, ``"final"``,
                                                           ``"left"``, ``"right"``
    =====================  ==============================  ===============================

    A time-only interval is the domain of an ODE in time: ``Initial`` and ``InitialRate``
    conditions sample its ``"initial"`` end. A :class:`~kanpde.problem.Problem` renames an
    unnamed interval after its coordinate (and marks it as time when it is the problem's
    ``time``) through :meth:`with_coords`.

    Args:
        a: left end.
        b: right end, ``b > a``.
        coord_names: the coordinate's name as a 1-tuple (default ``("x",)``, or ``(time,)``).
        time: the coordinate's name when it is time (adds ``"initial"``/``"final"``).
    """

    def __init__(
        self,
        a: float,
        b: float,
        coord_names: Sequence[str] | None = None,
        *,
        time: str | None = None,
    ) -> None:
        if coord_names is not None and (isinstance(coord_names, str) or len(coord_names) != 1):
            raise ValueError(f"coord_names of an interval must be one name in a tuple, "
                             f"e.g. ('t',), got {coord_names!r}")
        name = coord_names[0] if coord_names is not None else (time or "x")
        if time is not None and time != name:
            raise ValueError(f"time {time!r} is not the interval's coordinate {name!r}")
        super().__init__([a], [b], coord_names=(name,))
        self.a, self.b = float(a), float(b)
        self.coord_names = None if coord_names is None and time is None else (name,)
        self.time = time
        if name == "x":
            self.boundary_parts = ("left", "right")
            aliases = {"x_min": ("left",), "x_max": ("right",)}
        else:
            lo, hi = f"{name}_min", f"{name}_max"
            self.boundary_parts = (lo, hi)
            aliases = {"left": (lo,), "right": (hi,)}
        if time is not None:
            aliases = {"initial": (self.boundary_parts[0],),
                       "final": (self.boundary_parts[1],), **aliases}
        self._part_aliases = aliases

    def with_coords(self, coords: Sequence[str], time: str | None = None) -> Interval:
        """This interval named after ``coords[0]``, in time when it is ``time``."""
        coords = _check_coords(self, coords, time)
        time = time if time is not None else self.time
        if (self.coord_names or ("x",)) == coords and self.time == time:
            return self
        return Interval(self.a, self.b, coords, time=time)

    def __repr__(self) -> str:
        if self.coord_names is None:
            return f"Interval({self.a}, {self.b})"
        when = "" if self.time is None else f", time={self.time!r}"
        return f"Interval({self.a}, {self.b}, coord_names={self.coord_names!r}{when})"
