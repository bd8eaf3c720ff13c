"""Vectorised simplex helpers: point–segment/triangle distances and uniform simplex maps."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "chunked",
    "point_segment_distance",
    "point_triangle_distance",
    "tetra_from_unit",
    "triangle_from_unit",
]


def point_segment_distance(x: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """Distances from points to segments.

    Args:
        x: points ``(N, d)``.
        a: segment starts ``(F, d)``.
        b: segment ends ``(F, d)``.

    Returns:
        ``(N, F)`` Euclidean distances.
    """
    ab = b - a  # (F, d)
    ax = x[:, None, :] - a[None]  # (N, F, d)
    t = (ax * ab).sum(-1) / (ab * ab).sum(-1).clamp_min(1e-300)
    t = t.clamp(0.0, 1.0)
    return (ax - t[..., None] * ab).norm(dim=-1)


def point_triangle_distance(x: Tensor, a: Tensor, b: Tensor, c: Tensor) -> Tensor:
    """Distances from points to triangles in 3-D.

    Args:
        x: points ``(N, 3)``.
        a, b, c: triangle vertices, each ``(F, 3)``.

    Returns:
        ``(N, F)`` Euclidean distances (plane distance where the projection falls inside the
        triangle, otherwise the distance to the nearest edge).
    """
    v0, v1 = b - a, c - a
    nrm = torch.linalg.cross(v0, v1)
    nrm = nrm / nrm.norm(dim=-1, keepdim=True).clamp_min(1e-300)
    ax = x[:, None, :] - a[None]  # (N, F, 3)
    h = (ax * nrm).sum(-1)  # signed plane distance
    v2 = ax - h[..., None] * nrm
    d00, d01, d11 = (v0 * v0).sum(-1), (v0 * v1).sum(-1), (v1 * v1).sum(-1)
    d20, d21 = (v2 * v0).sum(-1), (v2 * v1).sum(-1)
    den = (d00 * d11 - d01 * d01).clamp_min(1e-300)
    v = (d11 * d20 - d01 * d21) / den
    w = (d00 * d21 - d01 * d20) / den
    inside = (v >= 0) & (w >= 0) & (v + w <= 1)
    edge = torch.minimum(
        torch.minimum(point_segment_distance(x, a, b), point_segment_distance(x, b, c)),
        point_segment_distance(x, c, a),
    )
    return torch.where(inside, h.abs(), edge)


def chunked(fn, x: Tensor, per_row: int, budget: int = 4_000_000) -> Tensor:
    """Apply ``fn`` to row chunks of ``x`` so that ``rows * per_row <= budget``."""
    step = max(1, budget // max(per_row, 1))
    if x.shape[0] <= step:
        return fn(x)
    return torch.cat([fn(x[i : i + step]) for i in range(0, x.shape[0], step)])


def triangle_from_unit(a: Tensor, b: Tensor, c: Tensor, s: Tensor) -> Tensor:
    """Uniform points in triangles from ``s`` uniform in ``[0, 1)^2`` (square-root map).

    ``p = (1 - sqrt(s0)) a + sqrt(s0) (1 - s1) b + sqrt(s0) s1 c``; continuous, so QMC
    structure is preserved.
    """
    r = torch.sqrt(s[:, :1])
    return (1.0 - r) * a + r * (1.0 - s[:, 1:2]) * b + r * s[:, 1:2] * c


def tetra_from_unit(v: Tensor, s: Tensor) -> Tensor:
    """Uniform points in tetrahedra: barycentric weights are the spacings of sorted uniforms.

    Args:
        v: vertices ``(n, 4, 3)``.
        s: uniforms ``(n, 3)``.

    Returns:
        ``(n, 3)`` points (Dirichlet(1, 1, 1, 1) barycentric coordinates).
    """
    srt = torch.sort(s[:, :3], dim=1).values
    zeros, ones = torch.zeros_like(srt[:, :1]), torch.ones_like(srt[:, :1])
    lam = torch.diff(torch.cat([zeros, srt, ones], dim=1), dim=1)  # (n, 4)
    return (lam[:, :, None] * v).sum(dim=1)
