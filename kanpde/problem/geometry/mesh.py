"""Domains given by meshes (read with meshio), held as triangles in 2-D and tetrahedra in 3-D.

Files may mix every linear Gmsh cell type: triangles and quadrilaterals in 2-D; tetrahedra,
hexahedra, prisms (``wedge``) and pyramids in 3-D. Non-simplicial cells are split into
simplices conformingly (:mod:`kanpde.problem.geometry._cells`), so no cell is dropped and the faces
between cells of different types stay interior. Any other cell type, second-order cells
included, is refused with one line naming it and the file.

The boundary is the set of facets (edges in 2-D, triangles in 3-D) that belong to exactly one
cell; each facet's outward normal points away from the opposite vertex of its cell.

Named boundary parts come from integer facet tags (``cell_data["gmsh:physical"]`` on the
facet blocks: lines in 2-D, triangles and quads in 3-D; named through ``field_data`` as Gmsh
writes them, or through ``boundary_names``; an unnamed tag ``7`` becomes part ``"tag7"``)
and from meshio ``cell_sets`` on facet blocks. Tagged facets that are not boundary facets
(interfaces) are ignored. Boundary facets covered by no group form the part ``"boundary"``;
when every facet is covered, ``"boundary"`` is instead an alias for all parts (accepted by
``parts=`` and ``on_boundary(part=...)``, but not listed in ``boundary_parts``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path

import meshio
import numpy as np
import torch
from torch import Tensor

from kanpde.problem.geometry._cells import CELL_DIM, mesh_dimension, split_facets, to_simplices
from kanpde.problem.geometry._locate import CellLocator, simplex_volume
from kanpde.problem.geometry._simplex import (
    chunked,
    point_segment_distance,
    point_triangle_distance,
    tetra_from_unit,
    triangle_from_unit,
)
from kanpde.problem.geometry.base import Domain, PieceSet, select_by_measure

__all__ = ["MeshDomain"]

_F64 = torch.float64
_CELL = {2: ("triangle", "line"), 3: ("tetra", "triangle")}


def _boundary_facets(cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Boundary facets ``(F, d)`` and the opposite vertex of their cell ``(F,)``."""
    n_loc = cells.shape[1]
    faces, opposite = [], []
    for j in range(n_loc):
        faces.append(np.delete(cells, j, axis=1))
        opposite.append(cells[:, j])
    faces_a, opp_a = np.concatenate(faces), np.concatenate(opposite)
    _, inverse, counts = np.unique(
        np.sort(faces_a, axis=1), axis=0, return_inverse=True, return_counts=True
    )
    once = counts[inverse.reshape(-1)] == 1
    return faces_a[once], opp_a[once]


class MeshDomain(Domain):
    """A domain given by a conforming triangle (2-D) or tetrahedron (3-D) mesh.

    ``measure`` is the sum of cell volumes. Uniform interior sampling picks a cell in
    proportion to its volume and a uniform point in it (square-root map for triangles,
    sorted-uniform spacings for tetrahedra); QMC methods use rejection from the bounding box.
    Boundary sampling picks facets by area. ``inside`` locates points in cells through a
    bucket grid. ``normal`` returns the normal of the nearest boundary facet. The ``mesh``
    attribute is a :class:`meshio.Mesh` with the points ``(P, d)`` and simplices, for
    exporting fields on the mesh; ``source_cells`` counts the cells of the source mesh by type
    (:meth:`from_meshio` splits quads, hexahedra, prisms and pyramids, adding a centroid
    vertex to each hexahedron and prism).

    Args:
        points: vertex coordinates ``(P, d)``, ``d`` in ``{2, 3}``.
        cells: vertex indices ``(C, d+1)`` of the triangles/tetrahedra.
        boundary_tags: optional mapping part name -> facets ``(F_k, d)`` (vertex indices).
        source: label used in error messages (the file name when read from a file).
    """

    def __init__(
        self,
        points: np.ndarray | Tensor,
        cells: np.ndarray | Tensor,
        boundary_tags: Mapping[str, np.ndarray] | None = None,
        *,
        source: str | None = None,
    ) -> None:
        where = "mesh" if source is None else f"mesh file '{source}'"
        pts = np.asarray(points, dtype=np.float64)
        cel = np.asarray(cells, dtype=np.int64)
        if pts.ndim != 2 or pts.shape[1] not in (2, 3):
            raise ValueError(f"{where}: points must have shape (P, 2 or 3), got {pts.shape}")
        d = pts.shape[1]
        if cel.ndim != 2 or cel.shape[1] != d + 1 or cel.shape[0] == 0:
            raise ValueError(f"{where}: cells must have shape (C >= 1, {d + 1}), got {cel.shape}")
        if cel.min() < 0 or cel.max() >= pts.shape[0]:
            raise ValueError(f"{where}: cell vertex indices out of range [0, {pts.shape[0]})")
        if not np.isfinite(pts).all():
            raise ValueError(f"{where}: points must be finite")
        self.dim = d
        self.source = source
        self.points = torch.from_numpy(pts.copy())
        self.cells = torch.from_numpy(cel.copy())
        self.mesh = meshio.Mesh(pts.copy(), [(_CELL[d][0], cel.copy())])
        #: cells of the source mesh by type, before splitting into simplices
        self.source_cells: dict[str, int] = {_CELL[d][0]: int(cel.shape[0])}
        used = self.points[torch.unique(self.cells)]
        self.bbox = (used.min(dim=0).values, used.max(dim=0).values)
        verts = self.points[self.cells]  # (C, d+1, d)
        vol = simplex_volume(verts)
        scale = float((self.bbox[1] - self.bbox[0]).max())
        bad = int((vol <= 1e-14 * scale**d).sum())
        if bad:
            raise ValueError(f"{where}: {bad} degenerate (zero-volume) cells")
        self._verts, self._vol = verts, vol
        self._locator = CellLocator(verts)
        self._init_boundary(boundary_tags or {})

    def _init_boundary(self, tags: Mapping[str, np.ndarray]) -> None:
        d = self.dim
        facets, opp = _boundary_facets(self.cells.numpy())
        fv = self.points[torch.from_numpy(facets)]  # (F, d, d)
        po = self.points[torch.from_numpy(opp)]  # (F, d)
        if d == 2:
            e = fv[:, 1] - fv[:, 0]
            nrm = torch.stack([e[:, 1], -e[:, 0]], dim=1)
            area = e.norm(dim=1)
        else:
            nrm = torch.linalg.cross(fv[:, 1] - fv[:, 0], fv[:, 2] - fv[:, 0])
            area = 0.5 * nrm.norm(dim=1)
        nrm = nrm / nrm.norm(dim=1, keepdim=True)
        flip = ((po - fv[:, 0]) * nrm).sum(dim=1) > 0
        self._fv, self._fnormal, self._farea = fv, torch.where(flip[:, None], -nrm, nrm), area
        self.boundary_facets = torch.from_numpy(facets)
        key = {tuple(sorted(f)): i for i, f in enumerate(facets.tolist())}
        part = np.full(len(facets), -1, dtype=np.int64)
        names: list[str] = []
        for name, arr in tags.items():
            rows = np.asarray(arr, dtype=np.int64).reshape(-1, d)
            hits = [key.get(tuple(sorted(f))) for f in rows.tolist()]
            hits = [i for i in hits if i is not None and part[i] < 0]
            if hits:
                if name not in names:
                    names.append(name)
                part[hits] = names.index(name)
        self._part_aliases = {}
        if (part < 0).any():
            if "boundary" not in names:
                names.append("boundary")
            part[part < 0] = names.index("boundary")
        elif "boundary" not in names:
            self._part_aliases = {"boundary": tuple(names)}
        self.boundary_parts = tuple(names)
        self._fpart = torch.from_numpy(part)

    # ------------------------------------------------------------ construction from files
    @classmethod
    def from_meshio(
        cls,
        mesh: meshio.Mesh,
        boundary_names: Mapping[int, str] | None = None,
        *,
        tag_data: str = "gmsh:physical",
        source: str | None = None,
    ) -> MeshDomain:
        """Build from a :class:`meshio.Mesh`.

        Args:
            mesh: the mesh; 3-D cells (tetra, hexahedron, wedge, pyramid) make a 3-D domain,
                otherwise 2-D cells (triangle, quad) a 2-D one (a zero third coordinate is
                dropped). Quads, hexahedra, prisms and pyramids are split into simplices.
            boundary_names: names of integer facet tags, overriding ``field_data`` names.
            tag_data: name of the integer cell data that tags facets.
            source: file name for error messages.

        Raises:
            ValueError: a cell type that is not a linear cell (second-order cells included),
                no 2-D/3-D cells, or 2-D cells off the plane.
        """
        where = "mesh" if source is None else f"mesh file '{source}'"
        d = mesh_dimension([c.type for c in mesh.cells], where)
        pts = np.asarray(mesh.points, dtype=np.float64)
        if pts.shape[1] < d:
            raise ValueError(f"{where}: points have {pts.shape[1]} coordinates, need {d}")
        if pts.shape[1] > d:
            extra = np.abs(pts[:, d:]).max()
            if extra > 1e-12 * max(1.0, float(np.abs(pts[:, :d]).max())):
                raise ValueError(
                    f"{where}: 2-D cells with non-zero extra coordinates "
                    "(surface meshes are not supported)"
                )
            pts = pts[:, :d]
        blocks = [(c.type, np.asarray(c.data)) for c in mesh.cells]
        pts, cells = to_simplices(pts, blocks, d)
        counts = {}
        for kind, data in blocks:
            if CELL_DIM[kind] == d:
                counts[kind] = counts.get(kind, 0) + int(data.shape[0])
        names: dict[int, str] = {}
        for name, val in (mesh.field_data or {}).items():
            val = np.asarray(val).reshape(-1)
            if val.size >= 2 and int(val[1]) == d - 1:
                names[int(val[0])] = str(name)
        names.update({int(k): str(v) for k, v in (boundary_names or {}).items()})
        tags: dict[str, list[np.ndarray]] = {}
        for b, block in enumerate(mesh.cells):
            if CELL_DIM[block.type] != d - 1 or tag_data not in mesh.cell_data:
                continue
            facets, row = split_facets(block.type, block.data)
            values = np.asarray(mesh.cell_data[tag_data][b]).reshape(-1).astype(np.int64)[row]
            for tag in np.unique(values):
                tags.setdefault(names.get(int(tag), f"tag{tag}"), []).append(
                    facets[values == tag]
                )
        for set_name, per_block in (mesh.cell_sets or {}).items():
            if set_name.startswith("gmsh:"):
                continue
            for block, idx in zip(mesh.cells, per_block, strict=False):
                if CELL_DIM[block.type] == d - 1 and idx is not None and len(idx):
                    facets, _ = split_facets(block.type, np.asarray(block.data)[np.asarray(idx)])
                    tags.setdefault(str(set_name), []).append(facets)
        merged = {k: np.concatenate(v) for k, v in tags.items()}
        dom = cls(pts, cells, merged, source=source)
        dom.source_cells = counts
        return dom

    @classmethod
    def from_file(
        cls,
        path: str | Path,
        boundary_names: Mapping[int, str] | None = None,
        *,
        tag_data: str = "gmsh:physical",
    ) -> MeshDomain:
        """Read a mesh file (Gmsh ``.msh``, ``.vtu``, ``.xdmf``, ... via meshio).

        Args:
            path: the file.
            boundary_names: names of integer facet tags (needed for formats without Gmsh's
                ``$PhysicalNames``, e.g. ``{1: "wall", 2: "inlet"}``).
            tag_data: name of the integer cell data that tags facets.

        Raises:
            FileNotFoundError: the file does not exist.
            ValueError: the file cannot be read, has a cell type that is not understood, or
                has no 2-D/3-D cells.
        """
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"mesh file '{path}': not found")
        try:
            fmt = "gmsh" if p.suffix.lower() == ".msh" else None  # not the ansys reader
            mesh = meshio.read(p, file_format=fmt)
        except (Exception, SystemExit) as exc:  # meshio calls sys.exit on some parse errors
            reason = str(exc) if isinstance(exc, Exception) else "meshio could not parse it"
            raise ValueError(f"mesh file '{path}': cannot read ({reason})") from None
        return cls.from_meshio(mesh, boundary_names, tag_data=tag_data, source=str(path))

    # ------------------------------------------------------------ geometry
    @property
    def measure(self) -> float:
        """Sum of cell volumes (areas in 2-D)."""
        return float(self._vol.sum())

    def _inside(self, x: Tensor) -> Tensor:
        return self._locator.locate(x) >= 0

    def _facet_distance(self, x: Tensor) -> Tensor:
        fv = self._fv.to(x)

        def fn(xc: Tensor) -> Tensor:
            if self.dim == 2:
                return point_segment_distance(xc, fv[:, 0], fv[:, 1])
            return point_triangle_distance(xc, fv[:, 0], fv[:, 1], fv[:, 2])

        return chunked(fn, x, 12 * fv.shape[0])

    def _part_distance(self, x: Tensor, tol: float) -> Tensor:
        dist = self._facet_distance(x)
        out = torch.full(
            (x.shape[0], len(self.boundary_parts)), math.inf, dtype=x.dtype, device=x.device
        )
        idx = self._fpart.to(x.device).expand(x.shape[0], -1)
        return out.scatter_reduce(1, idx, dist, reduce="amin")

    def normal(self, x: Tensor) -> Tensor:
        """Outward unit normal of the nearest boundary facet, ``(N, d) -> (N, d)``."""
        return self._fnormal.to(x)[self._facet_distance(x).argmin(dim=1)]

    def _pieces(self) -> list[PieceSet]:
        def mapper(k: Tensor, s: Tensor) -> tuple[Tensor, Tensor]:
            v = self._fv[k]
            if self.dim == 2:
                pts = v[:, 0] + s[:, :1] * (v[:, 1] - v[:, 0])
            else:
                pts = triangle_from_unit(v[:, 0], v[:, 1], v[:, 2], s)
            return pts, self._fnormal[k]

        return [PieceSet(self._farea.clone(), self._fpart.clone(), self.dim - 1, mapper)]

    def _interior_map(self) -> tuple[int, Callable[[Tensor], Tensor]]:
        def f(u: Tensor) -> Tensor:
            k, s0 = select_by_measure(self._vol, u[:, 0])
            s = torch.cat([s0[:, None], u[:, 1:]], dim=1)
            v = self._verts[k]
            if self.dim == 2:
                return triangle_from_unit(v[:, 0], v[:, 1], v[:, 2], s)
            return tetra_from_unit(v, s)

        return self.dim, f

    def __repr__(self) -> str:
        src = "" if self.source is None else f"'{self.source}', "
        kinds = " + ".join(f"{n} {k}" for k, n in self.source_cells.items())
        split = "" if set(self.source_cells) == {_CELL[self.dim][0]} else f" from {kinds}"
        return f"MeshDomain({src}{self.cells.shape[0]} cells{split}, dim={self.dim})"
