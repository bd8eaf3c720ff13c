"""Balls (disks) in ``d >= 2`` dimensions."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from kanpde.problem.geometry.base import Domain, PieceSet
from kanpde.problem.geometry.box import as_vector

__all__ = ["Ball", "Disk"]

_F64 = torch.float64
_EPS = 1e-15


def _directions(u: Tensor, d: int) -> Tensor:
    """Unit vectors uniform on the sphere ``S^{d-1}`` from ``u`` uniform in the unit cube.

    ``d = 2``: angle ``2 pi u_0`` (1 coordinate). ``d = 3``: Archimedes' map ``z = 1 - 2 u_0``,
    azimuth ``2 pi u_1`` (2 coordinates). ``d >= 4``: normalised inverse-normal-CDF image of
    ``d`` coordinates.
    """
    if d == 2:
        phi = 2.0 * math.pi * u[:, 0]
        return torch.stack([torch.cos(phi), torch.sin(phi)], dim=1)
    if d == 3:
        z = 1.0 - 2.0 * u[:, 0]
        rho = torch.sqrt((1.0 - z * z).clamp_min(0.0))
        phi = 2.0 * math.pi * u[:, 1]
        return torch.stack([rho * torch.cos(phi), rho * torch.sin(phi), z], dim=1)
    g = torch.special.ndtri(u[:, :d].clamp(_EPS, 1.0 - _EPS))
    return g / g.norm(dim=1, keepdim=True)


def _n_direction_params(d: int) -> int:
    return d - 1 if d <= 3 else d


class Ball(Domain):
    """The closed ball ``|x - center| <= radius`` in ``d >= 2`` dimensions.

    The boundary is the sphere, one part ``"boundary"``. ``"uniform"`` interior sampling is
    exact (uniform direction times ``radius * u^(1/d)``); QMC methods use rejection from the
    bounding box.

    Args:
        center: centre, length ``d >= 2``.
        radius: positive radius.
    """

    def __init__(self, center: Sequence[float] | Tensor, radius: float) -> None:
        c = as_vector(center, "center")
        if c.numel() < 2:
            raise ValueError("center must have at least 2 entries (use Interval in 1-D)")
        r = float(radius)
        if not (math.isfinite(r) and r > 0):
            raise ValueError(f"radius must be positive and finite, got {radius!r}")
        self.center, self.radius, self.dim = c, r, c.numel()
        self.bbox = (c - r, c + r)
        self.boundary_parts = ("boundary",)
        self._part_aliases = {}

    @property
    def measure(self) -> float:
        """Volume ``pi^(d/2) / Gamma(d/2 + 1) * r^d``."""
        d = self.dim
        return math.pi ** (d / 2) / math.gamma(d / 2 + 1) * self.radius**d

    @property
    def boundary_measure(self) -> float:
        """Sphere area ``2 pi^(d/2) / Gamma(d/2) * r^(d-1)``."""
        d = self.dim
        return 2.0 * math.pi ** (d / 2) / math.gamma(d / 2) * self.radius ** (d - 1)

    def _inside(self, x: Tensor) -> Tensor:
        return (x - self.center.to(x)).norm(dim=1) <= self.radius

    def _part_distance(self, x: Tensor, tol: float) -> Tensor:
        return ((x - self.center.to(x)).norm(dim=1) - self.radius).abs()[:, None]

    def normal(self, x: Tensor) -> Tensor:
        """Radial unit vector ``(x - center) / |x - center|``, ``(N, d) -> (N, d)``."""
        v = x - self.center.to(x)
        return v / v.norm(dim=1, keepdim=True).clamp_min(1e-300)

    def _pieces(self) -> list[PieceSet]:
        def mapper(k: Tensor, s: Tensor) -> tuple[Tensor, Tensor]:
            nrm = _directions(s, self.dim)
            return self.center + self.radius * nrm, nrm

        area = torch.tensor([self.boundary_measure], dtype=_F64)
        return [
            PieceSet(area, torch.zeros(1, dtype=torch.long), _n_direction_params(self.dim), mapper)
        ]

    def _interior_map(self) -> tuple[int, Callable[[Tensor], Tensor]]:
        d = self.dim

        def f(u: Tensor) -> Tensor:
            rad = self.radius * u[:, 0:1] ** (1.0 / d)
            return self.center + rad * _directions(u[:, 1:], d)

        return 1 + _n_direction_params(d), f

    def __repr__(self) -> str:
        return f"Ball(center={self.center.tolist()}, radius={self.radius})"


class Disk(Ball):
    """A 2-D :class:`Ball`.

    Args:
        center: centre, length 2.
        radius: positive radius.
    """

    def __init__(self, center: Sequence[float] | Tensor, radius: float) -> None:
        super().__init__(center, radius)
        if self.dim != 2:
            raise ValueError(f"Disk needs a 2-D center, got {self.dim} entries (use Ball)")

    def __repr__(self) -> str:
        return f"Disk(center={self.center.tolist()}, radius={self.radius})"
