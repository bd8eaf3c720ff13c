"""Meshes of every linear Gmsh cell type: mixed meshes keep their measure, their boundary parts
and their interior interfaces; cells that are not understood are refused in one line.

The meshes are built here with meshio (Gmsh 2.2 files with physical groups, and VTU files),
so that the exact measures are known: the unit square from triangles and quadrilaterals, and
the unit cube from hexahedra, prisms, pyramids and tetrahedra, with the interfaces between
cell types inside the domain.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import meshio
import numpy as np
import pytest
import torch

from kanpde.problem.geometry import MeshDomain

F64 = torch.float64
FACES = ("x_min", "x_max", "y_min", "y_max", "z_min", "z_max")


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def write_msh(path: Path, points: np.ndarray, blocks: list[tuple[str, np.ndarray, int]],
              names: dict[str, tuple[int, int]]) -> Path:
    """A Gmsh 2.2 file: ``blocks`` are (cell type, cells, physical tag)."""
    tags = [np.full(len(c), t, dtype=np.int64) for _, c, t in blocks]
    mesh = meshio.Mesh(
        points, [(k, np.asarray(c, dtype=np.int64)) for k, c, _ in blocks],
        cell_data={"gmsh:physical": tags, "gmsh:geometrical": tags},
        field_data={n: np.array(v) for n, v in names.items()})
    meshio.write(path, mesh, file_format="gmsh22", binary=False)
    return path


# ------------------------------------------------------------------------------- 2-D
def square_tri_quad(n: int = 4) -> tuple[np.ndarray, list[tuple[str, np.ndarray, int]]]:
    """Unit square on an ``n x n`` grid: triangles for x < 1/2, quadrilaterals for x > 1/2;
    boundary lines tagged 1..4 (bottom, right, top, left), the surface tagged 5."""
    xs = np.linspace(0.0, 1.0, n + 1)
    node = np.arange((n + 1) ** 2).reshape(n + 1, n + 1)  # node[i, j] at (xs[i], xs[j])
    gx, gy = np.meshgrid(xs, xs, indexing="ij")
    pts = np.stack([gx.ravel(), gy.ravel(), np.zeros(gx.size)], axis=1)
    tris, quads = [], []
    for i, j in itertools.product(range(n), range(n)):
        a, b, c, d = node[i, j], node[i + 1, j], node[i + 1, j + 1], node[i, j + 1]
        if i < n // 2:
            tris += [[a, b, c], [a, c, d]]
        else:
            quads.append([a, b, c, d])
    sides = {1: [(node[i, 0], node[i + 1, 0]) for i in range(n)],
             2: [(node[n, j], node[n, j + 1]) for j in range(n)],
             3: [(node[i + 1, n], node[i, n]) for i in range(n)],
             4: [(node[0, j + 1], node[0, j]) for j in range(n)]}
    lines = np.array([e for k in sides for e in sides[k]])
    line_tags = np.repeat(list(sides), n)
    blocks = [("triangle", np.array(tris), 5), ("quad", np.array(quads), 5)]
    return pts, blocks + [("line", lines[line_tags == k], k) for k in sides]


SQUARE_GROUPS = {"bottom": (1, 1), "right": (2, 1), "top": (3, 1), "left": (4, 1),
                 "domain": (5, 2)}


def check_square(dom: MeshDomain) -> None:
    assert dom.dim == 2
    assert dom.measure == pytest.approx(1.0, abs=1e-14)
    assert dom.boundary_measure == pytest.approx(4.0, abs=1e-14)
    assert set(dom.boundary_parts) == {"bottom", "right", "top", "left"}  # nothing untagged
    for part in dom.boundary_parts:
        assert dom.part_measure(part) == pytest.approx(1.0, abs=1e-14)
    # the line x = 1/2 between triangles and quadrilaterals is interior
    y = torch.linspace(0.05, 0.95, 19, dtype=F64)
    mid = torch.stack([torch.full_like(y, 0.5), y], dim=1)
    assert not bool(dom.on_boundary(mid).any())
    assert bool(dom.inside(mid).all())
    bs = dom.sample_boundary(4000, gen(1), "sobol")
    on_square = ((bs.points == 0) | (bs.points == 1)).any(dim=1)
    assert bool(on_square.all())
    x = torch.rand(4000, 2, generator=gen(2), dtype=F64) * 1.4 - 0.2
    assert torch.equal(dom.inside(x), ((x >= 0) & (x <= 1)).all(dim=1))
    xi = dom.sample_interior(20000, gen(3))
    frac = float((xi[:, 0] > 0.5).double().mean())  # uniform: half the points in the quads
    assert abs(frac - 0.5) < 4 * math.sqrt(0.25 / 20000)


def test_triangles_and_quads_msh(tmp_path: Path) -> None:
    pts, blocks = square_tri_quad()
    dom = MeshDomain.from_file(write_msh(tmp_path / "recombined.msh", pts, blocks,
                                         SQUARE_GROUPS))
    check_square(dom)
    assert dom.source_cells == {"triangle": 16, "quad": 8}
    assert dom.cells.shape == (32, 3)
    assert "8 quad" in repr(dom)


def test_triangles_and_quads_vtu(tmp_path: Path) -> None:
    pts, blocks = square_tri_quad()
    path = tmp_path / "recombined.vtu"
    tags = [np.full(len(c), t) for _, c, t in blocks]
    meshio.write(path, meshio.Mesh(pts, [(k, c) for k, c, _ in blocks],
                                   cell_data={"gmsh:physical": tags}))
    names = {v[0]: k for k, v in SQUARE_GROUPS.items() if v[1] == 1}
    check_square(MeshDomain.from_file(path, boundary_names=names))


def test_non_convex_quad_is_split_inside() -> None:
    """An arrowhead (reflex vertex at (1/2, 1/2)): only the diagonal through the reflex
    vertex keeps both triangles inside; the area is the shoelace area 2 - 1 = 1."""
    pts = np.array([[0.0, 0.0], [2.0, 0.0], [0.5, 0.5], [0.0, 2.0]])
    quad = np.array([[1, 2, 3, 0]])  # the diagonal (1, 3) would leave the quad
    dom = MeshDomain.from_meshio(meshio.Mesh(pts, [("quad", quad)]))
    shoelace = 0.5 * abs(sum(pts[i, 0] * pts[(i + 1) % 4, 1] - pts[(i + 1) % 4, 0] * pts[i, 1]
                             for i in range(4)))
    assert shoelace == pytest.approx(2.0 - 1.0)
    assert dom.measure == pytest.approx(shoelace, abs=1e-14)
    assert dom.boundary_measure == pytest.approx(2 * 2.0 + 2 * math.sqrt(2.5), abs=1e-12)


# ------------------------------------------------------------------------------- 3-D
def cube_all_types(n: int = 4) -> tuple[np.ndarray, list[tuple[str, np.ndarray, int]]]:
    """The unit cube on an ``n x n x n`` grid of small cubes (``n`` divisible by 4), filled
    by x-columns of hexahedra | prisms | a pyramid + 10 tetrahedra per cube | 6 Kuhn
    tetrahedra per cube. Every face split into triangles uses its (lo, lo)-(hi, hi) diagonal,
    so neighbours match. Boundary faces tagged 1..6 (x_min, x_max, ..., z_max) as triangle and
    quad facets; the volume tagged 7."""
    h = 1.0 / n
    xs = np.linspace(0.0, 1.0, n + 1)
    node = np.arange((n + 1) ** 3).reshape(n + 1, n + 1, n + 1)
    grid = np.stack(np.meshgrid(xs, xs, xs, indexing="ij"), axis=-1).reshape(-1, 3)
    centres: list[np.ndarray] = []
    cells: dict[str, list] = {"hexahedron": [], "wedge": [], "pyramid": [], "tetra": []}
    facets: dict[str, list] = {"triangle": [], "quad": []}
    facet_tags: dict[str, list] = {"triangle": [], "quad": []}
    for i, j, k in itertools.product(range(n), repeat=3):
        v = {c: node[i + c[0], j + c[1], k + c[2]] for c in itertools.product((0, 1), repeat=3)}
        col = 4 * i // n  # 0: hexahedra, 1: prisms, 2: pyramids + tets, 3: Kuhn tets
        face_quads = {}  # (axis, side) -> quad in cyclic order
        for axis, side in itertools.product(range(3), (0, 1)):
            a, b = [ax for ax in range(3) if ax != axis]
            corner = []
            for p, q in ((0, 0), (1, 0), (1, 1), (0, 1)):
                c = [0, 0, 0]
                c[axis], c[a], c[b] = side, p, q
                corner.append(v[tuple(c)])
            face_quads[axis, side] = corner  # corner[0] is (lo, lo), corner[2] is (hi, hi)

        def split(quad: list[int]) -> list[list[int]]:
            return [[quad[0], quad[1], quad[2]], [quad[0], quad[2], quad[3]]]

        if col == 0:
            cells["hexahedron"].append([v[0, 0, 0], v[1, 0, 0], v[1, 1, 0], v[0, 1, 0],
                                        v[0, 0, 1], v[1, 0, 1], v[1, 1, 1], v[0, 1, 1]])
            quad_faces = set(face_quads)
        elif col == 1:  # two prisms split by the plane x = y (in the cube)
            cells["wedge"].append([v[0, 0, 0], v[1, 0, 0], v[1, 1, 0],
                                   v[0, 0, 1], v[1, 0, 1], v[1, 1, 1]])
            cells["wedge"].append([v[0, 0, 0], v[1, 1, 0], v[0, 1, 0],
                                   v[0, 0, 1], v[1, 1, 1], v[0, 1, 1]])
            quad_faces = {(0, 0), (0, 1), (1, 0), (1, 1)}
        elif col == 2:  # pyramid over the x-lo face to the centre; the rest coned to it
            c_id = len(grid) + len(centres)
            centres.append(np.array([(i + 0.5) * h, (j + 0.5) * h, (k + 0.5) * h]))
            cells["pyramid"].append([*face_quads[0, 0], c_id])
            for key, quad in face_quads.items():
                if key != (0, 0):
                    cells["tetra"] += [[*t, c_id] for t in split(quad)]
            quad_faces = {(0, 0)}
        else:  # Kuhn: one tetrahedron per path 000 -> 111 along the axes
            for perm in itertools.permutations(range(3)):
                c, path = [0, 0, 0], [v[0, 0, 0]]
                for ax in perm:
                    c[ax] = 1
                    path.append(v[tuple(c)])
                cells["tetra"].append(path)
            quad_faces = set()
        ijk = (i, j, k)
        for (axis, side), quad in face_quads.items():
            if ijk[axis] != (0 if side == 0 else n - 1):
                continue
            tag = 1 + 2 * axis + side
            if (axis, side) in quad_faces:
                facets["quad"].append(quad)
                facet_tags["quad"].append(tag)
            else:
                facets["triangle"] += split(quad)
                facet_tags["triangle"] += [tag, tag]
    pts = np.concatenate([grid, np.array(centres)]) if centres else grid
    blocks = [(kind, np.array(c), 7) for kind, c in cells.items()]
    for kind in ("triangle", "quad"):
        f, t = np.array(facets[kind]), np.array(facet_tags[kind])
        blocks += [(kind, f[t == tag], tag) for tag in range(1, 7) if (t == tag).any()]
    return pts, blocks


CUBE_GROUPS = {**{name: (i + 1, 2) for i, name in enumerate(FACES)}, "domain": (7, 3)}


def test_cube_of_hexahedra_prisms_pyramids_and_tetrahedra(tmp_path: Path) -> None:
    n = 4
    pts, blocks = cube_all_types(n)
    dom = MeshDomain.from_file(write_msh(tmp_path / "mixed.msh", pts, blocks, CUBE_GROUPS))
    per_column = n * n
    assert dom.source_cells == {"hexahedron": per_column, "wedge": 2 * per_column,
                                "pyramid": per_column, "tetra": 16 * per_column}
    assert dom.dim == 3
    assert dom.measure == pytest.approx(1.0, abs=1e-13)
    assert dom.boundary_measure == pytest.approx(6.0, abs=1e-13)
    assert set(dom.boundary_parts) == set(FACES)  # no untagged (interior) facets
    for part in FACES:
        assert dom.part_measure(part) == pytest.approx(1.0, abs=1e-13)
    # the planes x = 1/4, 1/2, 3/4 between cell types are interior
    yz = torch.rand(300, 2, generator=gen(1), dtype=F64) * 0.9 + 0.05
    for x0 in (0.25, 0.5, 0.75):
        plane = torch.cat([torch.full((300, 1), x0, dtype=F64), yz], dim=1)
        assert not bool(dom.on_boundary(plane).any())
        assert bool(dom.inside(plane).all())
    bs = dom.sample_boundary(6000, gen(2), "sobol")
    axis = bs.normals.abs().argmax(dim=1)
    torch.testing.assert_close(bs.normals.abs().amax(dim=1), torch.ones(6000, dtype=F64))
    side = (bs.normals.gather(1, axis[:, None])[:, 0] > 0).double()
    assert float((bs.points.gather(1, axis[:, None])[:, 0] - side).abs().max()) < 1e-12
    names = [dom.boundary_parts[int(p)] for p in bs.part]
    assert all(FACES[2 * int(a) + int(s)] == nm for a, s, nm in zip(axis, side, names,
                                                                      strict=True))
    x = torch.rand(3000, 3, generator=gen(3), dtype=F64) * 1.4 - 0.2
    assert torch.equal(dom.inside(x), ((x >= 0) & (x <= 1)).all(dim=1))
    xi = dom.sample_interior(20000, gen(4))
    counts = torch.bincount((xi[:, 0] * 4).long().clamp(max=3), minlength=4).double()
    sd = math.sqrt(20000 * 0.25 * 0.75)  # each column holds a quarter of the volume
    assert float((counts - 5000).abs().max()) < 4 * sd


@pytest.mark.parametrize("kind", ["hexahedron", "wedge", "pyramid"])
def test_single_cells_have_their_exact_volume(kind: str) -> None:
    """A unit cube, a prism of volume 1/2 and a pyramid of volume 1/3 (base 1, height 1)."""
    cube = np.array(list(itertools.product((0.0, 1.0), repeat=3)))[:, ::-1]  # x fastest
    cells = {"hexahedron": [0, 1, 3, 2, 4, 5, 7, 6], "wedge": [0, 1, 3, 4, 5, 7],
             "pyramid": [0, 1, 3, 2, 8]}[kind]
    pts = np.concatenate([cube, [[0.5, 0.5, 1.0]]])
    dom = MeshDomain.from_meshio(meshio.Mesh(pts, [(kind, np.array([cells]))]))
    volume = {"hexahedron": 1.0, "wedge": 0.5, "pyramid": 1.0 / 3.0}[kind]
    area = {"hexahedron": 6.0, "wedge": 2 + math.sqrt(2) + 1.0,
            "pyramid": 1.0 + 4 * 0.5 * math.sqrt(1.25)}[kind]
    assert dom.measure == pytest.approx(volume, abs=1e-14)
    assert dom.boundary_measure == pytest.approx(area, abs=1e-13)


# ------------------------------------------------------------------------------- refusals
@pytest.mark.parametrize("kind, n_nodes, message", [
    ("triangle6", 6, "second-order cells 'triangle6'"),
    ("quad9", 9, "second-order cells 'quad9'"),
    ("tetra10", 10, "second-order cells 'tetra10'"),
    ("polygon", 5, "cell type 'polygon' is not supported"),
])
def test_cells_not_understood_are_refused(tmp_path: Path, kind: str, n_nodes: int,
                                          message: str) -> None:
    pts = np.random.default_rng(0).random((n_nodes, 3))
    mesh = meshio.Mesh(pts, [("triangle", np.array([[0, 1, 2]])),
                             (kind, np.arange(n_nodes)[None])])
    path = tmp_path / f"{kind}.vtu"
    meshio.write(path, mesh)
    with pytest.raises(ValueError) as info:
        MeshDomain.from_file(path)
    text = str(info.value)
    assert "\n" not in text and f"{kind}.vtu" in text and message in text, text


def test_second_order_gmsh_file_is_refused(tmp_path: Path) -> None:
    pts = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0.5, 0, 0], [0.5, 0.5, 0], [0, 0.5, 0.]])
    path = tmp_path / "curved.msh"
    tag = [np.array([1])]
    meshio.write(path, meshio.Mesh(pts, [("triangle6", np.arange(6)[None])],
                                   cell_data={"gmsh:physical": tag, "gmsh:geometrical": tag}),
                 file_format="gmsh22", binary=False)
    with pytest.raises(ValueError, match=r"curved\.msh.*second-order cells 'triangle6'"):
        MeshDomain.from_file(path)
