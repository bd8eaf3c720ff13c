"""Axis-aligned boxes and intervals."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from kanpde.geometry.base import Domain, PieceSet

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

    def __repr__(self) -> str:
        return f"Box(lo={self.lo.tolist()}, hi={self.hi.tolist()})"


class Interval(Box):
    """The interval ``[a, b]`` (``d = 1``).

    Its boundary is the two endpoints, parts ``"left"`` (normal ``-1``) and ``"right"``
    (normal ``+1``); ``"x_min"``/``"x_max"`` are accepted as aliases. Each endpoint has
    boundary measure 1, so boundary sampling returns the endpoints in equal proportion.

    Args:
        a: left end.
        b: right end, ``b > a``.
    """

    def __init__(self, a: float, b: float) -> None:
        super().__init__([a], [b], coord_names=("x",))
        self.a, self.b = float(a), float(b)
        self.boundary_parts = ("left", "right")
        self._part_aliases = {"x_min": ("left",), "x_max": ("right",)}

    def __repr__(self) -> str:
        return f"Interval({self.a}, {self.b})"
