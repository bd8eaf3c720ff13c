"""Small structured triangle meshes with tagged boundaries, pure Python.

The meshes are :class:`meshio.Mesh` objects carrying Gmsh physical groups: the triangles
form the 2-D group ``"domain"`` and the boundary edges are ``line`` cells in named 1-D groups
(``cell_data["gmsh:physical"]`` plus ``field_data``), so that::

    meshio.write("l_shape.msh", l_shape_mesh(0.1), file_format="gmsh22", binary=False)

produces a file that :meth:`kanpde.problem.geometry.MeshDomain.from_file` reads with named parts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import meshio
import numpy as np

__all__ = ["l_shape_mesh", "rectangle_mesh", "tagged_triangle_mesh"]


def _grid_triangles(
    xs: np.ndarray, ys: np.ndarray, keep: Callable[[float, float], bool]
) -> tuple[np.ndarray, np.ndarray]:
    """Triangulate the grid squares whose centre passes ``keep``; unused nodes are dropped."""
    nx, ny = len(xs), len(ys)
    node = np.arange(nx * ny).reshape(nx, ny)
    tris = []
    for i in range(nx - 1):
        for j in range(ny - 1):
            if not keep(0.5 * (xs[i] + xs[i + 1]), 0.5 * (ys[j] + ys[j + 1])):
                continue
            a, b, c, d = node[i, j], node[i + 1, j], node[i + 1, j + 1], node[i, j + 1]
            if (i + j) % 2 == 0:  # alternate diagonals for a symmetric pattern
                tris += [[a, b, c], [a, c, d]]
            else:
                tris += [[a, b, d], [b, c, d]]
    tri = np.array(tris, dtype=np.int64)
    gx, gy = np.meshgrid(xs, ys, indexing="ij")
    pts = np.stack([gx.reshape(-1), gy.reshape(-1)], axis=1)
    used, tri = np.unique(tri, return_inverse=True)
    return pts[used], tri.reshape(-1, 3)


def tagged_triangle_mesh(
    points: np.ndarray,
    triangles: np.ndarray,
    classify: Callable[[np.ndarray], Sequence[str]],
) -> meshio.Mesh:
    """Attach boundary ``line`` cells, tagged by name, to a triangle mesh.

    Args:
        points: ``(P, 2)`` coordinates.
        triangles: ``(T, 3)`` vertex indices.
        classify: maps edge midpoints ``(F, 2)`` to one group name per boundary edge.

    Returns:
        A mesh with ``triangle`` and ``line`` blocks, Gmsh physical tags (1-D groups numbered
        from 1 in order of first appearance, then the 2-D group ``"domain"``) and
        ``field_data`` names.
    """
    edges = np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]])
    _, inverse, counts = np.unique(
        np.sort(edges, axis=1), axis=0, return_inverse=True, return_counts=True
    )
    lines = edges[counts[inverse.reshape(-1)] == 1]
    names = list(classify(points[lines].mean(axis=1)))
    groups = list(dict.fromkeys(names))
    line_tag = np.array([groups.index(s) + 1 for s in names], dtype=np.int64)
    dom_tag = len(groups) + 1
    tri_tag = np.full(len(triangles), dom_tag, dtype=np.int64)
    field_data = {s: np.array([i + 1, 1]) for i, s in enumerate(groups)}
    field_data["domain"] = np.array([dom_tag, 2])
    return meshio.Mesh(
        points,
        [("triangle", triangles), ("line", lines)],
        cell_data={"gmsh:physical": [tri_tag, line_tag], "gmsh:geometrical": [tri_tag, line_tag]},
        field_data=field_data,
    )


def rectangle_mesh(
    nx: int, ny: int, lo: Sequence[float] = (0.0, 0.0), hi: Sequence[float] = (1.0, 1.0)
) -> meshio.Mesh:
    """Structured triangle mesh of a rectangle with groups ``left, right, bottom, top``.

    Args:
        nx: number of cells along x (``>= 1``).
        ny: number of cells along y (``>= 1``).
        lo: lower-left corner.
        hi: upper-right corner.
    """
    if nx < 1 or ny < 1:
        raise ValueError(f"nx and ny must be >= 1, got nx={nx}, ny={ny}")
    xs, ys = np.linspace(lo[0], hi[0], nx + 1), np.linspace(lo[1], hi[1], ny + 1)
    pts, tri = _grid_triangles(xs, ys, lambda x, y: True)
    hx, hy = 1e-9 * (hi[0] - lo[0]), 1e-9 * (hi[1] - lo[1])

    def classify(mid: np.ndarray) -> list[str]:
        out = []
        for x, y in mid:
            if abs(x - lo[0]) < hx:
                out.append("left")
            elif abs(x - hi[0]) < hx:
                out.append("right")
            elif abs(y - lo[1]) < hy:
                out.append("bottom")
            else:
                out.append("top")
        return out

    return tagged_triangle_mesh(pts, tri, classify)


def l_shape_mesh(h: float) -> meshio.Mesh:
    """Structured mesh of the L-shape ``[-1, 1]^2 \\ (0, 1] x [-1, 0)``.

    The re-entrant corner is the origin. Boundary groups: ``"reentrant"`` (the two edges
    meeting at the origin, ``x = 0, y <= 0`` and ``y = 0, x >= 0``) and ``"outer"`` (the
    other six). Area 3, boundary length 8.

    Args:
        h: target mesh size; the grid uses ``2 * max(1, round(1 / h))`` cells per side.
    """
    if not h > 0:
        raise ValueError(f"h must be positive, got {h!r}")
    m = 2 * max(1, round(1.0 / h))
    xs = np.linspace(-1.0, 1.0, m + 1)
    pts, tri = _grid_triangles(xs, xs, lambda x, y: not (x > 0 and y < 0))

    def classify(mid: np.ndarray) -> list[str]:
        eps = 1e-9
        re = ((np.abs(mid[:, 0]) < eps) & (mid[:, 1] < 0)) | (
            (np.abs(mid[:, 1]) < eps) & (mid[:, 0] > 0)
        )
        return ["reentrant" if r else "outer" for r in re]

    return tagged_triangle_mesh(pts, tri, classify)
