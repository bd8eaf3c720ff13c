"""Space-time cylinders ``Ω x [t0, t1]`` with time as the last coordinate."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from kanpde.problem.geometry.base import BoundarySample, Domain, PieceSet, _check_method, _check_n
from kanpde.problem.geometry.box import Box

__all__ = ["SpaceTime"]

_F64 = torch.float64


class SpaceTime(Domain):
    """The cylinder ``space x [t0, t1]``; points are ``(x_0, ..., x_{d-1}, t)``.

    Boundary parts: ``"initial"`` (``t = t0``, normal ``(0, ..., 0, -1)``), ``"final"``
    (``t = t1``, normal ``(0, ..., 0, +1)``), then every part of ``space`` (the lateral
    boundary, normal ``(n_x, 0)``). At the rim where the lateral boundary meets an end the
    normal of the first nearest part in that order is returned.

    Interior sampling: for a box ``space`` every method maps one ``(d+1)``-dimensional point
    set affinely (``"grid"``: the full tensor grid). Otherwise ``"uniform"`` samples space
    (exactly, when it has a volume map) and time independently, QMC methods draw one
    ``(d+1)``-dimensional sequence over the bounding box and keep the points whose spatial
    part is in ``space`` (joint spread), and ``"grid"`` filters a bounding-box grid. Boundary
    sampling parametrises the end faces by the space's volume map and the lateral surface by
    the space's boundary pieces plus one time coordinate (candidates are filtered when the
    space has no volume map or is a CSG domain).

    When the time coordinate is named (``time``, or by a problem through
    :meth:`with_coords`), ``"<time>_min"`` and ``"<time>_max"`` are aliases of ``"initial"``
    and ``"final"``.

    Args:
        space: the spatial domain.
        t0: initial time.
        t1: final time, ``t1 > t0``.
        time: name of the time coordinate, or ``None``.
    """

    def __init__(self, space: Domain, t0: float, t1: float, *, time: str | None = None) -> None:
        if not isinstance(space, Domain):
            raise ValueError(f"space must be a Domain, got {type(space).__name__}")
        t0, t1 = float(t0), float(t1)
        if not (math.isfinite(t0) and math.isfinite(t1) and t1 > t0):
            raise ValueError(f"need finite t0 < t1, got t0={t0}, t1={t1}")
        clash = {"initial", "final"} & set(space.boundary_parts)
        if clash:
            raise ValueError(f"space has boundary parts named {sorted(clash)}, which are reserved")
        self.space, self.t0, self.t1 = space, t0, t1
        self.dim = space.dim + 1
        lo, hi = space.bbox
        self.bbox = (torch.cat([lo, lo.new_tensor([t0])]), torch.cat([hi, hi.new_tensor([t1])]))
        self.boundary_parts = ("initial", "final", *space.boundary_parts)
        self._part_aliases = {
            k: v for k, v in space._part_aliases.items() if k not in ("initial", "final")
        }
        self.time = time
        if time is not None:
            for side, part in (("min", "initial"), ("max", "final")):
                if f"{time}_{side}" not in self.boundary_parts:
                    self._part_aliases[f"{time}_{side}"] = (part,)
        self._is_box = isinstance(space, Box)
        self._filtered = space._filtered or space._interior_map() is None

    @property
    def measure(self) -> float:
        """``|space| * (t1 - t0)``."""
        return self.space.measure * (self.t1 - self.t0)

    def _inside(self, x: Tensor) -> Tensor:
        t = x[:, -1]
        return self.space._inside(x[:, :-1]) & (t >= self.t0) & (t <= self.t1)

    def _part_distance(self, x: Tensor, tol: float) -> Tensor:
        xs, t = x[:, :-1], x[:, -1]
        ds = self.space._part_distance(xs, tol)  # (N, P)
        out_s = torch.where(self.space._inside(xs), 0.0, ds.amin(dim=1))
        dt_out = torch.relu(self.t0 - t) + torch.relu(t - self.t1)
        d0 = torch.sqrt(out_s**2 + (t - self.t0) ** 2)
        d1 = torch.sqrt(out_s**2 + (t - self.t1) ** 2)
        lateral = torch.sqrt(ds**2 + dt_out[:, None] ** 2)
        return torch.cat([d0[:, None], d1[:, None], lateral], dim=1)

    def normal(self, x: Tensor) -> Tensor:
        """Outward unit normal of the nearest part, ``(N, d+1) -> (N, d+1)``."""
        k = self._part_distance(x, 1e-9).argmin(dim=1)
        n = torch.zeros_like(x)
        n[:, :-1] = self.space.normal(x[:, :-1])
        n[:, -1] = 0.0
        n[k == 0] = 0.0
        n[k == 1] = 0.0
        n[k == 0, -1] = -1.0
        n[k == 1, -1] = 1.0
        return n

    def _time(self, s: Tensor) -> Tensor:
        return self.t0 + (self.t1 - self.t0) * s

    def _interior_map(self) -> tuple[int, Callable[[Tensor], Tensor]] | None:
        smap = self.space._interior_map()
        if smap is None:
            return None
        q, f = smap
        return q + 1, lambda u: torch.cat([f(u[:, :q]), self._time(u[:, q : q + 1])], dim=1)

    def _end_pieces(self) -> list[PieceSet]:
        smap = self.space._interior_map()
        if smap is None:  # the bounding box of space, filtered by membership
            lo, hi = self.space.bbox
            q, measure = self.space.dim, float(torch.prod(hi - lo))

            def f(u: Tensor) -> Tensor:
                return lo + u[:, : self.space.dim] * (hi - lo)
        else:
            q, f = smap
            measure = self.space.measure
        d = self.dim

        def mapper(k: Tensor, s: Tensor) -> tuple[Tensor, Tensor]:
            t = torch.where(k == 0, self.t0, self.t1).to(_F64)
            pts = torch.cat([f(s), t[:, None]], dim=1)
            nrm = torch.zeros(k.shape[0], d, dtype=_F64)
            nrm[:, -1] = torch.where(k == 0, -1.0, 1.0)
            return pts, nrm

        return [
            PieceSet(torch.tensor([measure, measure], dtype=_F64), torch.tensor([0, 1]), q, mapper)
        ]

    def _pieces(self) -> list[PieceSet]:
        out = self._end_pieces()
        dt = self.t1 - self.t0
        for ps in self.space._pieces():
            out.append(self._lateral(ps, dt))
        return out

    def _lateral(self, ps: PieceSet, dt: float) -> PieceSet:
        p = ps.n_params

        def mapper(k: Tensor, s: Tensor) -> tuple[Tensor, Tensor]:
            pts, nrm = ps.mapper(k, s[:, :p])
            t = self._time(s[:, p : p + 1])
            return torch.cat([pts, t], dim=1), torch.cat([nrm, torch.zeros_like(t)], dim=1)

        return PieceSet(ps.measure * dt, ps.part + 2, p + 1, mapper, ps.flip)

    def with_coords(self, coords: Sequence[str], time: str | None = None) -> SpaceTime:
        """This cylinder with the space named by ``coords[:-1]`` and time by ``coords[-1]``.

        Raises:
            ValueError: the space names its coordinates differently.
        """
        coords = tuple(coords)
        if len(coords) != self.dim:
            raise ValueError(f"{self!r} has dimension {self.dim} but {len(coords)} "
                             f"coordinates are named ({', '.join(coords)})")
        name = coords[-1]
        for given in (time, self.time):
            if given not in (None, name):
                raise ValueError(f"{self!r}: time {given!r} must be the last coordinate "
                                 f"(coordinates: {', '.join(coords)})")
        space = self.space.with_coords(coords[:-1], None)
        if space is self.space and name == self.time:
            return self
        return SpaceTime(space, self.t0, self.t1, time=name)

    # ------------------------------------------------------------ conveniences
    def sample_initial(
        self,
        n: int,
        generator: torch.Generator,
        method: str = "uniform",
        *,
        dtype: torch.dtype = _F64,
        device: torch.device | str | None = None,
    ) -> Tensor:
        """Points ``(x, t0)`` with ``x`` sampled in ``space``; shape ``(n, d+1)``.

        Args:
            n: number of points (about ``n`` for ``"grid"`` on non-box spaces).
            generator: source of randomness.
            method: one of :data:`kanpde.problem.sampling.SAMPLERS`.
            dtype: floating dtype of the result.
            device: device of the result.
        """
        _check_n(n)
        _check_method(method)
        xs = self.space.sample_interior(n, generator, method)
        t = torch.full((xs.shape[0], 1), self.t0, dtype=_F64)
        return torch.cat([xs, t], dim=1).to(dtype=dtype, device=device)

    def sample_lateral(
        self,
        n: int,
        generator: torch.Generator,
        method: str = "uniform",
        parts: list[str] | str | None = None,
        *,
        dtype: torch.dtype = _F64,
        device: torch.device | str | None = None,
    ) -> BoundarySample:
        """Points on the lateral boundary ``∂space x [t0, t1]``.

        Args:
            n: number of points.
            generator: source of randomness.
            method: one of :data:`kanpde.problem.sampling.SAMPLERS`.
            parts: spatial part names (``None``: all of them).
            dtype: floating dtype of points and normals.
            device: device of the result.

        Returns:
            A :class:`BoundarySample`; ``part`` indexes this domain's ``boundary_parts``.
        """
        if parts is None:
            parts = list(self.space.boundary_parts)
        elif isinstance(parts, str):
            parts = [parts]
        bad = [p for p in parts if p in ("initial", "final")]
        if bad:
            raise ValueError(f"parts: {bad} are not lateral parts")
        return self.sample_boundary(n, generator, method, parts, dtype=dtype, device=device)

    def __repr__(self) -> str:
        return f"SpaceTime({self.space!r}, {self.t0}, {self.t1})"
