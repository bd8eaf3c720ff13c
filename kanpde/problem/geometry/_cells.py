"""Linear mesh cells of every kind as simplices, and the refusal of everything else.

Supported (meshio names of the linear Gmsh/VTK cells): ``triangle`` and ``quad`` in 2-D;
``tetra``, ``hexahedron``, ``wedge`` (Gmsh's prism) and ``pyramid`` in 3-D. Lower-dimensional
cells are facets (``line`` in 2-D; ``triangle`` and ``quad`` in 3-D), which carry boundary
tags, or are ignored (``vertex``; ``line`` in 3-D), since they bound nothing. Any other cell
type (second-order ``triangle6``, ``tetra10``, ...; ``polygon``, ...) is refused with one
line naming it.

Splitting (cell volumes and boundary are kept exactly for planar faces):

* a 2-D quadrilateral ``(a, b, c, d)`` becomes ``(a, b, c), (a, c, d)``, or
  ``(a, b, d), (b, c, d)`` when only that diagonal lies inside (a non-convex quad);
* a quadrilateral *face* in 3-D is split along the diagonal through its vertex of smallest
  global index. The choice depends on the face alone, so the two cells sharing a face, and a
  quad boundary facet with its tag, split it the same way and the triangulations conform
  (Dompierre, Labbé, Vallet & Camarero, "How to subdivide pyramids, prisms and hexahedra into
  tetrahedra", 8th International Meshing Roundtable, 1999);
* a pyramid becomes the 2 tetrahedra over its split base with the apex;
* hexahedra and prisms become cones from an added centroid vertex over their triangulated
  faces (12 and 8 tetrahedra), valid for every star-shaped cell, whatever the diagonals.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

__all__ = ["CELL_DIM", "mesh_dimension", "split_facets", "to_simplices"]

CELL_DIM = {
    "vertex": 0,
    "line": 1,
    "triangle": 2,
    "quad": 2,
    "tetra": 3,
    "hexahedron": 3,
    "wedge": 3,
    "pyramid": 3,
}
"""The linear cell types understood, with their dimensions."""

_HIGHER_ORDER = re.compile(r"^(line|triangle|quad|tetra|hexahedron|wedge|pyramid)\d+$")

_FACES = {
    "hexahedron": ((0, 3, 2, 1), (4, 5, 6, 7), (0, 1, 5, 4), (1, 2, 6, 5), (2, 3, 7, 6),
                   (3, 0, 4, 7)),
    "wedge": ((0, 2, 1), (3, 4, 5), (0, 1, 4, 3), (1, 2, 5, 4), (2, 0, 3, 5)),
}
"""Faces of the cells coned from their centroid (local vertex numbers, meshio/VTK order)."""


def mesh_dimension(types: Sequence[str], where: str) -> int:
    """The dimension (2 or 3) of a mesh with cell blocks of ``types``.

    Raises:
        ValueError: a cell type that is not a linear cell (one line naming it and
            ``where``), or no 2-D/3-D cells at all.
    """
    for t in types:
        if t in CELL_DIM:
            continue
        if _HIGHER_ORDER.match(t):
            raise ValueError(f"{where}: second-order cells {t!r} are not supported; write a "
                             "first-order mesh (Gmsh: Mesh.ElementOrder = 1)")
        raise ValueError(f"{where}: cell type {t!r} is not supported (linear cells: "
                         f"{', '.join(CELL_DIM)})")
    dim = max((CELL_DIM[t] for t in types), default=0)
    if dim < 2:
        found = ", ".join(sorted(set(types))) or "none"
        raise ValueError(f"{where}: no triangle, quad, tetra, hexahedron, wedge or pyramid "
                         f"cells (found: {found})")
    return dim


def split_quads(quads: np.ndarray) -> np.ndarray:
    """Quadrilaterals ``(n, 4)`` (cyclic vertex order) as triangles ``(n, 2, 3)``, split along
    the diagonal through the vertex of smallest index."""
    k = np.argmin(quads, axis=1)
    roll = np.take_along_axis(quads, (k[:, None] + np.arange(4)) % 4, axis=1)
    return np.stack([roll[:, [0, 1, 2]], roll[:, [0, 2, 3]]], axis=1)


def _split_planar_quads(points: np.ndarray, quads: np.ndarray) -> np.ndarray:
    """2-D quadrilaterals ``(n, 4)`` as triangles ``(2n, 3)``, each inside its quad."""
    p = points[quads]  # (n, 4, 2)

    def area(i: int, j: int, k: int) -> np.ndarray:
        u, v = p[:, j] - p[:, i], p[:, k] - p[:, i]
        return u[:, 0] * v[:, 1] - u[:, 1] * v[:, 0]

    sign = np.sign(area(0, 1, 2) + area(0, 2, 3))
    first = (np.sign(area(0, 1, 2)) == sign) & (np.sign(area(0, 2, 3)) == sign)
    a = np.stack([quads[:, [0, 1, 2]], quads[:, [0, 2, 3]]], axis=1)
    b = np.stack([quads[:, [0, 1, 3]], quads[:, [1, 2, 3]]], axis=1)
    return np.where(first[:, None, None], a, b).reshape(-1, 3)


def _cone(points: np.ndarray, cells: np.ndarray, faces: Sequence[Sequence[int]],
          first_new: int) -> tuple[np.ndarray, np.ndarray]:
    """Tetrahedra from the centroid of each cell over its triangulated faces.

    Returns:
        The centroids ``(n, 3)`` (new vertices numbered from ``first_new``) and the
        tetrahedra ``(n * T, 4)``.
    """
    n = cells.shape[0]
    tris = []
    for face in faces:
        fv = cells[:, list(face)]
        tris.append(fv[:, None, :] if len(face) == 3 else split_quads(fv))
    tri = np.concatenate(tris, axis=1)  # (n, T, 3)
    apex = np.broadcast_to((first_new + np.arange(n))[:, None, None], (*tri.shape[:2], 1))
    tets = np.concatenate([tri, apex], axis=2).reshape(-1, 4)
    return points[cells].mean(axis=1), tets


def to_simplices(points: np.ndarray, blocks: Sequence[tuple[str, np.ndarray]],
                 dim: int) -> tuple[np.ndarray, np.ndarray]:
    """The cells of dimension ``dim`` as simplices over the points (plus added centroids).

    Args:
        points: vertex coordinates ``(P, dim)``.
        blocks: ``(cell type, vertex indices (n, k))`` pairs; blocks of lower dimension are
            skipped (they are facets or bound nothing).
        dim: 2 or 3.

    Returns:
        ``points (P + K, dim)`` with ``K`` added centroids (hexahedra and prisms), and
        ``cells (C, dim + 1)``.
    """
    pts, extra, out = np.asarray(points, dtype=np.float64), [], []
    n_points = pts.shape[0]
    for kind, data in blocks:
        data = np.asarray(data, dtype=np.int64)
        if CELL_DIM[kind] != dim or data.shape[0] == 0:
            continue
        if kind in ("triangle", "tetra"):
            out.append(data)
        elif kind == "quad":
            out.append(_split_planar_quads(pts, data))
        elif kind == "pyramid":
            base = split_quads(data[:, :4])  # (n, 2, 3)
            apex = np.broadcast_to(data[:, None, 4:5], (data.shape[0], 2, 1))
            out.append(np.concatenate([base, apex], axis=2).reshape(-1, 4))
        else:
            centroids, tets = _cone(pts, data, _FACES[kind], n_points)
            n_points += centroids.shape[0]
            extra.append(centroids)
            out.append(tets)
    cells = np.concatenate(out) if out else np.zeros((0, dim + 1), dtype=np.int64)
    return np.concatenate([pts, *extra]) if extra else pts, cells


def split_facets(kind: str, data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Facet cells as simplicial facets, split like the faces of the volume cells.

    Args:
        kind: ``"line"``, ``"triangle"`` or ``"quad"``.
        data: vertex indices ``(n, k)``.

    Returns:
        ``facets (F, k')`` and, for each, the row of ``data`` it came from ``(F,)``.
    """
    data = np.asarray(data, dtype=np.int64)
    if kind != "quad":
        return data, np.arange(data.shape[0])
    return split_quads(data).reshape(-1, 3), np.repeat(np.arange(data.shape[0]), 2)
