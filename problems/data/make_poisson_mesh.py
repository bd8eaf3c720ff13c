"""Regenerate ``poisson_mesh.msh``: the L-shaped domain [-1, 1]^2 \\ (0, 1] x [-1, 0).

The mesh is the structured triangulation of :func:`kanpde.problem.geometry.l_shape_mesh` with mesh
size ``H = 1/16`` (32 cells per side of the square, 1536 triangles), written as ASCII Gmsh 2.2
with the boundary groups ``"outer"`` and ``"reentrant"`` (the two edges meeting at the
re-entrant corner, the origin). The output is deterministic::

    python problems/data/make_poisson_mesh.py            # writes problems/data/poisson_mesh.msh
    python problems/data/make_poisson_mesh.py OUT.msh    # writes OUT.msh
"""

from __future__ import annotations

import sys
from pathlib import Path

import meshio

from kanpde.problem.geometry import l_shape_mesh

H = 1.0 / 16.0
"""Target mesh size of the structured L-shape mesh."""


def write_mesh(path: str | Path) -> Path:
    """Write the L-shape mesh to ``path`` (Gmsh 2.2 ASCII) and return the path."""
    path = Path(path)
    meshio.write(path, l_shape_mesh(H), file_format="gmsh22", binary=False)
    return path


if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else Path(__file__).with_name("poisson_mesh.msh")
    print(write_mesh(out))
