"""Simple polygons in the plane."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from kanpde.problem.geometry._simplex import chunked, point_segment_distance, triangle_from_unit
from kanpde.problem.geometry.base import Domain, PieceSet, select_by_measure

__all__ = ["Polygon"]

_F64 = torch.float64


def _cross(o: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a[..., 0] - o[..., 0]) * (b[..., 1] - o[..., 1]) - (a[..., 1] - o[..., 1]) * (
        b[..., 0] - o[..., 0]
    )


def _self_intersects(v: np.ndarray) -> bool:
    """Whether two non-adjacent edges of the closed polygon ``v (V, 2)`` touch or cross."""
    a, b = v, np.roll(v, -1, axis=0)
    n = len(v)
    ai, bi, aj, bj = a[:, None], b[:, None], a[None], b[None]
    o1, o2 = _cross(ai, bi, aj), _cross(ai, bi, bj)
    o3, o4 = _cross(aj, bj, ai), _cross(aj, bj, bi)
    overlap = (
        (np.minimum(ai[..., 0], bi[..., 0]) <= np.maximum(aj[..., 0], bj[..., 0]))
        & (np.minimum(aj[..., 0], bj[..., 0]) <= np.maximum(ai[..., 0], bi[..., 0]))
        & (np.minimum(ai[..., 1], bi[..., 1]) <= np.maximum(aj[..., 1], bj[..., 1]))
        & (np.minimum(aj[..., 1], bj[..., 1]) <= np.maximum(ai[..., 1], bi[..., 1]))
    )
    hit = (o1 * o2 <= 0) & (o3 * o4 <= 0) & overlap
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    adjacent = (i == j) | ((i + 1) % n == j) | ((j + 1) % n == i)
    return bool((hit & ~adjacent).any())


def _ear_clip(v: np.ndarray) -> np.ndarray:
    """Triangulate a simple counter-clockwise polygon ``v (V, 2)``; returns ``(V-2, 3)`` ids."""
    idx = list(range(len(v)))
    tris: list[list[int]] = []
    while len(idx) > 3:
        m = len(idx)
        for i in range(m):
            p, c, q = idx[i - 1], idx[i], idx[(i + 1) % m]
            if _cross(v[p], v[c], v[q]) <= 0:
                continue
            others = np.array([j for j in idx if j not in (p, c, q)])
            pts = v[others]
            inside = (
                (_cross(v[p], v[c], pts) >= 0)
                & (_cross(v[c], v[q], pts) >= 0)
                & (_cross(v[q], v[p], pts) >= 0)
            )
            if not inside.any():
                tris.append([p, c, q])
                idx.pop(i)
                break
        else:  # no ear: drop a collinear vertex (zero-area triangle) if there is one
            flat = [
                i for i in range(m) if _cross(v[idx[i - 1]], v[idx[i]], v[idx[(i + 1) % m]]) == 0
            ]
            if not flat:
                raise ValueError("vertices: polygon could not be triangulated (is it simple?)")
            idx.pop(flat[0])
    if _cross(v[idx[0]], v[idx[1]], v[idx[2]]) > 0:
        tris.append(idx)
    return np.array(tris, dtype=np.int64).reshape(-1, 3)


class Polygon(Domain):
    """A simple polygon (no self-intersections), vertices in either orientation.

    Vertices are stored counter-clockwise in ``vertices``. Edge ``i`` joins the user's vertex
    ``i`` to vertex ``i + 1`` (cyclically); its part name is ``edge_names[i]`` (default
    ``"edge{i}"``). Names may repeat to group edges into one part; ``boundary_parts`` lists
    the distinct names in order of first appearance. ``measure`` is the area (shoelace).
    Uniform interior sampling uses an ear-clipping triangulation (triangle chosen by area,
    then a uniform point in it); QMC methods use rejection from the bounding box. At a vertex
    ``normal`` returns the normal of the lower-numbered nearest edge.

    Args:
        vertices: ``(V, 2)`` vertex coordinates, ``V >= 3`` (a repeated closing vertex is
            dropped).
        edge_names: optional ``V`` part names, one per edge.
    """

    def __init__(
        self, vertices: Sequence[Sequence[float]] | Tensor, edge_names: Sequence[str] | None = None
    ) -> None:
        v = torch.as_tensor(vertices, dtype=_F64).detach().cpu().clone()
        if v.dim() != 2 or v.shape[1] != 2 or v.shape[0] < 3:
            raise ValueError(f"vertices must have shape (V >= 3, 2), got {tuple(v.shape)}")
        if not bool(torch.isfinite(v).all()):
            raise ValueError("vertices must be finite")
        if v.shape[0] > 3 and bool((v[0] == v[-1]).all()):
            v = v[:-1]
        n_v = v.shape[0]
        a, b = v, torch.roll(v, -1, dims=0)
        length = (b - a).norm(dim=1)
        if bool((length == 0).any()):
            raise ValueError("vertices: polygon has repeated consecutive vertices")
        signed = 0.5 * float((a[:, 0] * b[:, 1] - b[:, 0] * a[:, 1]).sum())
        if signed == 0.0 or _self_intersects(v.numpy()):
            raise ValueError("vertices: polygon is not simple (zero area or crossing edges)")
        if signed < 0:
            a, b = b, a  # run every edge counter-clockwise
        names = [f"edge{i}" for i in range(n_v)] if edge_names is None else list(edge_names)
        if len(names) != n_v or not all(isinstance(s, str) and s for s in names):
            raise ValueError(f"edge_names must be {n_v} non-empty strings, got {edge_names!r}")
        self.dim = 2
        self.vertices = v if signed > 0 else v.flip(0)
        self.bbox = (v.min(dim=0).values, v.max(dim=0).values)
        self.boundary_parts = tuple(dict.fromkeys(names))
        self._part_aliases = {}
        self._a, self._b, self._length = a, b, length
        self._edge_part = torch.tensor([self.boundary_parts.index(s) for s in names])
        t = (b - a) / length[:, None]
        self._normals = torch.stack([t[:, 1], -t[:, 0]], dim=1)
        self._area = abs(signed)
        tri = torch.from_numpy(_ear_clip(self.vertices.numpy()))
        self._tri = self.vertices[tri]  # (T, 3, 2)
        e1, e2 = self._tri[:, 1] - self._tri[:, 0], self._tri[:, 2] - self._tri[:, 0]
        self._tri_area = 0.5 * (e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]).abs()

    @property
    def measure(self) -> float:
        """Area (shoelace formula)."""
        return self._area

    def _inside(self, x: Tensor) -> Tensor:
        a, b = self._a.to(x), self._b.to(x)

        def crossings(xc: Tensor) -> Tensor:
            px, py = xc[:, 0:1], xc[:, 1:2]
            straddle = (a[:, 1] > py) != (b[:, 1] > py)
            dy = torch.where(straddle, b[:, 1] - a[:, 1], torch.ones_like(py))
            xint = a[:, 0] + (py - a[:, 1]) * (b[:, 0] - a[:, 0]) / dy
            return ((straddle & (px < xint)).sum(dim=1) % 2) == 1

        return chunked(crossings, x, a.shape[0])

    def _edge_distance(self, x: Tensor) -> Tensor:
        a, b = self._a.to(x), self._b.to(x)
        return chunked(lambda xc: point_segment_distance(xc, a, b), x, 3 * a.shape[0])

    def _part_distance(self, x: Tensor, tol: float) -> Tensor:
        dist = self._edge_distance(x)
        out = torch.full(
            (x.shape[0], len(self.boundary_parts)), float("inf"), dtype=x.dtype, device=x.device
        )
        idx = self._edge_part.to(x.device).expand(x.shape[0], -1)
        return out.scatter_reduce(1, idx, dist, reduce="amin")

    def normal(self, x: Tensor) -> Tensor:
        """Outward unit normal of the nearest edge, ``(N, 2) -> (N, 2)``."""
        return self._normals.to(x)[self._edge_distance(x).argmin(dim=1)]

    def _pieces(self) -> list[PieceSet]:
        def mapper(k: Tensor, s: Tensor) -> tuple[Tensor, Tensor]:
            return self._a[k] + s[:, :1] * (self._b[k] - self._a[k]), self._normals[k]

        return [PieceSet(self._length.clone(), self._edge_part.clone(), 1, mapper)]

    def _interior_map(self) -> tuple[int, Callable[[Tensor], Tensor]]:
        def f(u: Tensor) -> Tensor:
            k, s0 = select_by_measure(self._tri_area, u[:, 0])
            t = self._tri[k]
            return triangle_from_unit(t[:, 0], t[:, 1], t[:, 2], torch.stack([s0, u[:, 1]], 1))

        return 2, f

    def __repr__(self) -> str:
        return f"Polygon({self.vertices.shape[0]} vertices)"
