"""Tests for kanpde.problem.geometry: membership, sampling, normals, measures, meshes."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import meshio
import numpy as np
import pytest
import torch

from kanpde.problem.geometry import (
    Ball,
    BoundarySample,
    Box,
    Difference,
    Disk,
    Domain,
    Intersection,
    Interval,
    MeshDomain,
    Polygon,
    SpaceTime,
    Union,
    l_shape_mesh,
    rectangle_mesh,
)

N = 20000
F64 = torch.float64


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def assert_fraction(mask: torch.Tensor, p: float, n_sd: float = 4.0) -> None:
    """The fraction of True in ``mask`` is ``p`` within ``n_sd`` binomial standard deviations."""
    n = mask.numel()
    frac = float(mask.double().mean())
    sd = math.sqrt(p * (1 - p) / n)
    assert abs(frac - p) <= n_sd * sd + 1e-12, (frac, p, sd)


def assert_divergence(dom: Domain, bs: BoundarySample, volume: float, area: float) -> None:
    """Monte-Carlo Gauss check: mean(x . n) * |boundary| = d * |domain|."""
    xn = (bs.points * bs.normals).sum(dim=1)
    est = float(xn.mean()) * area
    sd = float(xn.std()) / math.sqrt(xn.numel()) * area
    assert abs(est - dom.dim * volume) <= 4 * sd + 1e-9 * area, (est, dom.dim * volume, sd)


def assert_outward(dom: Domain, bs: BoundarySample, eps: float = 1e-6) -> None:
    norms = bs.normals.norm(dim=1)
    torch.testing.assert_close(norms, torch.ones_like(norms))
    assert not bool(dom.inside(bs.points + eps * bs.normals).any())
    assert bool(dom.inside(bs.points - eps * bs.normals).all())


# --------------------------------------------------------------------------- interval, box
def test_interval() -> None:
    iv = Interval(-1.0, 2.0)
    assert iv.dim == 1 and iv.boundary_parts == ("left", "right")
    assert iv.measure == pytest.approx(3.0)
    x = torch.tensor([[-1.5], [-1.0], [0.3], [2.0], [2.1]], dtype=F64)
    assert iv.inside(x).tolist() == [False, True, True, True, False]
    bs = iv.sample_boundary(100, gen(), "sobol")
    left = bs.part == 0
    assert int(left.sum()) == 50
    assert bool((bs.points[left] == -1.0).all()) and bool((bs.points[~left] == 2.0).all())
    assert bool((bs.normals[left] == -1.0).all()) and bool((bs.normals[~left] == 1.0).all())
    only = iv.sample_boundary(10, gen(), parts=["x_max"])  # alias of "right"
    assert bool((only.part == 1).all()) and bool((only.points == 2.0).all())
    xi = iv.sample_interior(1000, gen(), "uniform")
    assert xi.shape == (1000, 1) and bool(iv.inside(xi).all())
    assert iv.on_boundary(torch.tensor([[-1.0], [0.0]], dtype=F64)).tolist() == [True, False]


def test_interval_part_names_follow_the_coordinate() -> None:
    t = Interval(0.0, 15.0, time="t")
    assert t.boundary_parts == ("t_min", "t_max")
    assert t.part_index("initial") == 0 and t.part_index("final") == 1
    assert t.part_index("left") == 0 and t.part_index("t_max") == 1
    start = t.sample_boundary(8, gen(), parts="initial")
    assert bool((start.points == 0.0).all()) and bool((start.normals == -1.0).all())
    assert t.part_measure("final") == 1.0
    s = Interval(-1.0, 1.0, coord_names=("s",))
    assert s.boundary_parts == ("s_min", "s_max") and s.part_index("right") == 1
    with pytest.raises(ValueError, match="unknown boundary part 'initial'.*valid: s_min"):
        s.sample_boundary(4, gen(), parts="initial")
    assert Interval(0.0, 1.0).boundary_parts == ("left", "right")  # x keeps its names
    named = Interval(0.0, 15.0).with_coords(("t",), "t")
    assert named.boundary_parts == ("t_min", "t_max") and named.part_index("initial") == 0
    assert named.with_coords(("t",), "t") is named
    x = Interval(0.0, 1.0)
    assert x.with_coords(("x",)) is x
    with pytest.raises(ValueError, match=r"names its coordinates \(s\).*\(x\)"):
        s.with_coords(("x",))
    with pytest.raises(ValueError, match="time 'x' is not the interval's coordinate 't'"):
        Interval(0.0, 1.0, coord_names=("t",), time="x")


def test_box_with_coords_names_parts_and_makes_time_a_cylinder() -> None:
    box = Box([0, 0], [1, 2]).with_coords(("x", "y"))
    assert box.boundary_parts == ("x_min", "x_max", "y_min", "y_max")
    assert box.part_index("x1_max") == 3  # positional names stay accepted
    named = Box([0, 0], [1, 1], coord_names=("x", "y"))
    assert named.with_coords(("x", "y")) is named
    with pytest.raises(ValueError, match="names its coordinates"):
        named.with_coords(("a", "b"))
    st = Box([0.0, 0.0], [1.0, 2.0]).with_coords(("x", "t"), "t")
    assert isinstance(st, SpaceTime) and (st.t0, st.t1) == (0.0, 2.0)
    assert st.boundary_parts == ("initial", "final", "x_min", "x_max")
    assert st.part_index("t_min") == 0 and st.part_index("t_max") == 1
    assert st.measure == pytest.approx(2.0)
    lateral = st.sample_lateral(100, gen())  # "boundary" of a cylinder: never t0 or t1
    assert bool((lateral.points[:, 0] * (1 - lateral.points[:, 0]) == 0).all())
    ode = Box([0.0], [3.0]).with_coords(("t",), "t")
    assert isinstance(ode, Interval) and ode.part_index("initial") == 0
    cyl = SpaceTime(Interval(0.0, 1.0), 0.0, 1.0).with_coords(("x", "tau"), "tau")
    assert cyl.boundary_parts == ("initial", "final", "left", "right")
    assert cyl.part_index("tau_max") == 1 and cyl.part_index("x_min") == 2


def test_box_2d_parts_inside_and_boundary() -> None:
    box = Box([0.0, -1.0], [2.0, 1.0], coord_names=("x", "y"))
    assert box.boundary_parts == ("x_min", "x_max", "y_min", "y_max")
    assert Box([0, 0], [1, 1]).boundary_parts == ("x0_min", "x0_max", "x1_min", "x1_max")
    assert box.measure == pytest.approx(4.0)
    assert box.boundary_measure == pytest.approx(8.0)
    x = torch.rand(5000, 2, generator=gen(1), dtype=F64) * 4 - 1.5
    expected = (x[:, 0] >= 0) & (x[:, 0] <= 2) & (x[:, 1] >= -1) & (x[:, 1] <= 1)
    assert torch.equal(box.inside(x), expected)

    bs = box.sample_boundary(N, gen(2))
    coord = {0: (0, 0.0), 1: (0, 2.0), 2: (1, -1.0), 3: (1, 1.0)}
    for k, (axis, value) in coord.items():
        pk = bs.points[bs.part == k]
        assert bool((pk[:, axis] == value).all())
        assert bool(box.on_boundary(pk, part=box.boundary_parts[k]).all())
    for k, length in enumerate([2.0, 2.0, 2.0, 2.0]):
        assert_fraction(bs.part == k, length / 8.0)
    assert_outward(box, bs)
    assert_divergence(box, bs, 4.0, 8.0)
    torch.testing.assert_close(box.normal(bs.points), bs.normals)
    sel = box.sample_boundary(100, gen(), parts=["y_max"])
    assert bool((sel.points[:, 1] == 1.0).all()) and bool((sel.normals[:, 1] == 1.0).all())


def test_box_boundary_parts_proportional_to_measure() -> None:
    box = Box([0.0, 0.0, 0.0], [1.0, 2.0, 3.0])
    faces = torch.tensor([6.0, 6.0, 3.0, 3.0, 2.0, 2.0], dtype=F64)
    assert box.boundary_measure == pytest.approx(float(faces.sum()))
    bs = box.sample_boundary(N, gen(3))
    for k in range(6):
        assert_fraction(bs.part == k, float(faces[k] / faces.sum()))
    assert_divergence(box, bs, 6.0, 22.0)
    qs = box.sample_boundary(2200, gen(3), "sobol")
    counts = torch.bincount(qs.part, minlength=6).double()
    torch.testing.assert_close(counts, faces * 100, atol=2, rtol=0)


def test_box_interior_uniform_and_grid() -> None:
    box = Box([0.0, 0.0], [2.0, 1.0])
    x = box.sample_interior(N, gen(4))
    assert x.shape == (N, 2) and bool(box.inside(x).all())
    assert_fraction((x[:, 0] < 0.5) & (x[:, 1] > 0.5), 0.125)
    g = box.sample_interior(16, gen(), "grid")
    axis = torch.tensor([0.125, 0.375, 0.625, 0.875], dtype=F64)
    torch.testing.assert_close(g, torch.cartesian_prod(2 * axis, axis))
    s = box.sample_interior(64, gen(), "sobol", dtype=torch.float32)
    assert s.dtype == torch.float32 and s.shape == (64, 2)


def test_box_errors() -> None:
    with pytest.raises(ValueError, match="hi must exceed lo"):
        Box([0, 0], [1, 0])
    with pytest.raises(ValueError, match="coord_names"):
        Box([0, 0], [1, 1], coord_names=("x", "x"))
    box = Box([0, 0], [1, 1])
    with pytest.raises(ValueError, match="unknown boundary part 'inlet'"):
        box.sample_boundary(10, gen(), parts=["inlet"])
    with pytest.raises(ValueError, match="not a sampler"):
        box.sample_interior(10, gen(), "random")
    with pytest.raises(ValueError, match="shape"):
        box.inside(torch.zeros(3, 3, dtype=F64))


# --------------------------------------------------------------------------- ball
@pytest.mark.parametrize("d", [2, 3, 4])
def test_ball(d: int) -> None:
    c = torch.linspace(-0.5, 0.5, d, dtype=F64)
    r = 1.5
    ball = Ball(c, r)
    vol = math.pi ** (d / 2) / math.gamma(d / 2 + 1) * r**d
    area = d * vol / r
    assert ball.measure == pytest.approx(vol) and ball.boundary_measure == pytest.approx(area)
    x = c + (torch.rand(5000, d, generator=gen(1), dtype=F64) * 2 - 1) * 2
    assert torch.equal(ball.inside(x), (x - c).norm(dim=1) <= r)
    for method in ("uniform", "sobol"):
        xi = ball.sample_interior(N, gen(2), method)
        assert xi.shape == (N, d) and bool(ball.inside(xi).all())
        assert_fraction((xi - c).norm(dim=1) < r / 2, 0.5**d)
        assert_fraction(xi[:, 0] > c[0], 0.5)
    bs = ball.sample_boundary(N, gen(3))
    torch.testing.assert_close((bs.points - c).norm(dim=1), torch.full((N,), r, dtype=F64))
    torch.testing.assert_close(bs.normals, (bs.points - c) / r)
    assert bool((bs.part == 0).all()) and ball.boundary_parts == ("boundary",)
    assert_outward(ball, bs)
    assert_divergence(ball, bs, vol, area)
    assert_fraction(bs.points[:, -1] > c[-1], 0.5)


def test_disk_alias_and_errors() -> None:
    disk = Disk([1.0, 2.0], 0.5)
    assert isinstance(disk, Ball) and disk.dim == 2
    assert disk.measure == pytest.approx(math.pi * 0.25)
    with pytest.raises(ValueError, match="2-D"):
        Disk([0.0, 0.0, 0.0], 1.0)
    with pytest.raises(ValueError, match="radius"):
        Ball([0.0, 0.0], -1.0)


# --------------------------------------------------------------------------- polygon
L_VERTS = [[0.0, 0.0], [2.0, 0.0], [2.0, 1.0], [1.0, 1.0], [1.0, 2.0], [0.0, 2.0]]


def l_inside(x: torch.Tensor) -> torch.Tensor:
    in_sq = (x >= 0).all(dim=1) & (x <= 2).all(dim=1)
    return in_sq & ~((x[:, 0] > 1) & (x[:, 1] > 1))


@pytest.mark.parametrize("clockwise", [False, True])
def test_polygon_l_shape(clockwise: bool) -> None:
    verts = L_VERTS[::-1] if clockwise else L_VERTS
    poly = Polygon(verts)
    assert poly.measure == pytest.approx(3.0)
    assert poly.boundary_measure == pytest.approx(8.0)
    assert len(poly.boundary_parts) == 6
    x = torch.rand(5000, 2, generator=gen(1), dtype=F64) * 3 - 0.5
    assert torch.equal(poly.inside(x), l_inside(x))
    for method in ("uniform", "halton"):
        xi = poly.sample_interior(N, gen(2), method)
        assert xi.shape == (N, 2) and bool(l_inside(xi).all())
        assert_fraction((xi[:, 0] < 1) & (xi[:, 1] < 1), 1 / 3)
    bs = poly.sample_boundary(N, gen(3))
    assert_outward(poly, bs)
    assert_divergence(poly, bs, 3.0, 8.0)
    # points of part k lie on the k-th user edge
    v = torch.tensor(verts, dtype=F64)
    for k in range(6):
        a, b = v[k], v[(k + 1) % 6]
        pk = bs.points[bs.part == k]
        cross = (b[0] - a[0]) * (pk[:, 1] - a[1]) - (b[1] - a[1]) * (pk[:, 0] - a[0])
        assert float(cross.abs().max()) < 1e-12
        assert_fraction(bs.part == k, float((b - a).norm()) / 8.0)


def test_polygon_edge_names_group_parts() -> None:
    names = ["wall", "outlet", "wall", "wall", "wall", "inlet"]
    poly = Polygon(L_VERTS, edge_names=names)
    assert poly.boundary_parts == ("wall", "outlet", "inlet")
    bs = poly.sample_boundary(N, gen(4), parts=["inlet", "outlet"])
    inlet = bs.part == poly.part_index("inlet")
    assert bool((bs.points[inlet, 0] == 0.0).all())
    assert bool((bs.points[~inlet, 0] == 2.0).all())
    assert_fraction(inlet, 2.0 / 3.0)
    assert bool(poly.on_boundary(bs.points[inlet], part="inlet").all())
    assert not bool(poly.on_boundary(bs.points[inlet], part="wall").any())


def test_polygon_errors() -> None:
    with pytest.raises(ValueError, match="not simple"):
        Polygon([[0, 0], [1, 1], [1, 0], [0, 1]])  # bow tie
    with pytest.raises(ValueError, match="shape"):
        Polygon([[0, 0], [1, 1]])
    with pytest.raises(ValueError, match="edge_names"):
        Polygon(L_VERTS, edge_names=["a", "b"])


# --------------------------------------------------------------------------- CSG
def test_square_minus_disk() -> None:
    sq, disk = Box([0.0, 0.0], [1.0, 1.0]), Disk([0.5, 0.5], 0.25)
    dom = sq - disk
    assert isinstance(dom, Difference)
    assert dom.boundary_parts == ("x0_min", "x0_max", "x1_min", "x1_max", "boundary")
    x = torch.rand(5000, 2, generator=gen(1), dtype=F64) * 1.4 - 0.2
    expected = sq.inside(x) & ((x - 0.5).norm(dim=1) >= 0.25)
    assert torch.equal(dom.inside(x), expected)
    xi = dom.sample_interior(N, gen(2), "sobol")
    assert xi.shape == (N, 2)
    assert bool(((xi - 0.5).norm(dim=1) >= 0.25).all()) and bool(sq.inside(xi).all())
    assert_fraction(xi[:, 0] < 0.25, 0.25 / (1 - math.pi / 16), n_sd=6)
    bs = dom.sample_boundary(N, gen(3))
    circle = bs.part == 4
    rad = (bs.points[circle] - 0.5).norm(dim=1)
    torch.testing.assert_close(rad, torch.full_like(rad, 0.25))
    # normals on the circle point into the disk
    torch.testing.assert_close(bs.normals[circle], -(bs.points[circle] - 0.5) / 0.25)
    edge = bs.points[~circle]
    on_edge = (edge == 0) | (edge == 1)
    assert bool(on_edge.any(dim=1).all())
    perimeter = 4.0 + 2 * math.pi * 0.25
    assert_fraction(circle, 2 * math.pi * 0.25 / perimeter)
    assert_outward(dom, bs)
    assert_divergence(dom, bs, 1 - math.pi / 16, perimeter)
    torch.testing.assert_close(dom.normal(bs.points), bs.normals)
    with pytest.raises(NotImplementedError):
        _ = dom.measure


def test_union_and_intersection() -> None:
    a, b = Disk([0.0, 0.0], 1.0), Disk([1.0, 0.0], 1.0)
    uni, inter = a | b, a & b
    assert isinstance(uni, Union) and isinstance(inter, Intersection)
    assert uni.boundary_parts == ("a_boundary", "b_boundary")
    x = torch.rand(4000, 2, generator=gen(1), dtype=F64) * 4 - 1.5
    ia, ib = x.norm(dim=1) <= 1, (x - torch.tensor([1.0, 0.0], dtype=F64)).norm(dim=1) <= 1
    assert torch.equal(uni.inside(x), ia | ib)
    assert torch.equal(inter.inside(x), ia & ib)
    for dom, keep_other_inside in ((uni, False), (inter, True)):
        bs = dom.sample_boundary(4000, gen(2), "sobol")
        on_a = bs.part == 0
        other_b = (bs.points[on_a] - torch.tensor([1.0, 0.0], dtype=F64)).norm(dim=1)
        other_a = bs.points[~on_a].norm(dim=1)
        if keep_other_inside:
            assert bool((other_b <= 1 + 1e-9).all()) and bool((other_a <= 1 + 1e-9).all())
        else:
            assert bool((other_b >= 1 - 1e-9).all()) and bool((other_a >= 1 - 1e-9).all())
        # symmetric lens/union: both arcs equally long
        assert abs(int(on_a.sum()) - 2000) < 20
        assert_outward(dom, bs)
    xi = inter.sample_interior(2000, gen(3))
    assert bool((xi.norm(dim=1) <= 1).all()) and bool(
        ((xi[:, 0] - 1) ** 2 + xi[:, 1] ** 2 <= 1).all()
    )
    with pytest.raises(ValueError, match="dimensions"):
        Union(Disk([0, 0], 1), Ball([0, 0, 0], 1))


# --------------------------------------------------------------------------- space-time
def test_spacetime_parts_normals_time_last() -> None:
    st = SpaceTime(Disk([0.0, 0.0], 1.0), 0.0, 2.0)
    assert st.dim == 3 and st.boundary_parts == ("initial", "final", "boundary")
    assert st.measure == pytest.approx(2 * math.pi)
    x = st.sample_interior(N, gen(1))
    assert bool((x[:, :2].norm(dim=1) <= 1).all())
    assert bool((x[:, 2] >= 0).all()) and bool((x[:, 2] <= 2).all())
    assert_fraction(x[:, 2] < 0.5, 0.25)
    bs = st.sample_boundary(N, gen(2))
    area = 2 * math.pi + 2 * math.pi * 2.0
    assert st.boundary_measure == pytest.approx(area)
    ini, fin, lat = bs.part == 0, bs.part == 1, bs.part == 2
    assert bool((bs.points[ini, 2] == 0).all()) and bool((bs.points[fin, 2] == 2).all())
    torch.testing.assert_close(
        bs.normals[ini], torch.tensor([0.0, 0.0, -1.0]).double().expand(int(ini.sum()), 3)
    )
    assert bool((bs.normals[lat, 2] == 0).all())
    torch.testing.assert_close(bs.normals[lat, :2], bs.points[lat, :2])
    assert_fraction(ini, math.pi / area)
    assert_outward(st, bs)
    assert_divergence(st, bs, st.measure, area)
    torch.testing.assert_close(st.normal(bs.points), bs.normals)
    x0 = st.sample_initial(100, gen(3), "sobol")
    assert x0.shape == (100, 3) and bool((x0[:, 2] == 0).all())
    assert bool((x0[:, :2].norm(dim=1) <= 1).all())
    lateral = st.sample_lateral(100, gen(4))
    assert bool((lateral.part == 2).all())
    with pytest.raises(ValueError, match="not lateral"):
        st.sample_lateral(10, gen(), parts=["initial"])


def test_spacetime_box_joint_qmc_and_interval() -> None:
    st = SpaceTime(Interval(0.0, 1.0), 0.0, 1.0)
    assert st.boundary_parts == ("initial", "final", "left", "right")
    x = st.sample_interior(256, gen(1), "sobol")
    strata = torch.floor(x * 16).long()
    cells = torch.bincount(strata[:, 0] * 16 + strata[:, 1], minlength=256)
    assert int(cells.max()) <= 3  # jointly well spread (i.i.d. points would give ~6)
    bs = st.sample_boundary(400, gen(2), "sobol")
    counts = torch.bincount(bs.part, minlength=4)
    assert torch.equal(counts, torch.tensor([100, 100, 100, 100]))
    left = bs.part == 2
    assert bool((bs.points[left, 0] == 0).all()) and bool((bs.normals[left, 0] == -1).all())
    g = st.sample_interior(100, gen(), "grid")
    assert g.shape == (100, 2)


def test_spacetime_over_csg() -> None:
    st = SpaceTime(Box([0.0, 0.0], [1.0, 1.0]) - Disk([0.5, 0.5], 0.25), 0.0, 1.0)
    bs = st.sample_boundary(4000, gen(1))
    assert bs.points.shape == (4000, 3)
    assert bool(st.on_boundary(bs.points).all())
    hole = bs.part == st.boundary_parts.index("boundary")
    rad = (bs.points[hole, :2] - 0.5).norm(dim=1)
    torch.testing.assert_close(rad, torch.full_like(rad, 0.25))
    ini = bs.points[bs.part == 0]
    assert bool(((ini[:, :2] - 0.5).norm(dim=1) >= 0.25).all())
    assert_outward(st, bs)


# --------------------------------------------------------------------------- meshes
SQUARE_PTS = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [0.5, 0.5, 0]], dtype=float)
SQUARE_TRI = np.array([[0, 1, 4], [1, 2, 4], [2, 3, 4], [3, 0, 4]])
SQUARE_LINES = np.array([[0, 1], [1, 2], [2, 3], [3, 0]])
SQUARE_NAMES = {1: "bottom", 2: "right", 3: "top", 4: "left"}


def square_mesh() -> meshio.Mesh:
    tags = np.array([1, 2, 3, 4])
    return meshio.Mesh(
        SQUARE_PTS,
        [("triangle", SQUARE_TRI), ("line", SQUARE_LINES)],
        cell_data={
            "gmsh:physical": [np.full(4, 10), tags],
            "gmsh:geometrical": [np.full(4, 1), tags],
        },
        field_data={
            **{v: np.array([k, 1]) for k, v in SQUARE_NAMES.items()},
            "domain": np.array([10, 2]),
        },
    )


def check_unit_square(dom: MeshDomain) -> None:
    assert dom.dim == 2
    assert dom.measure == pytest.approx(1.0)
    assert dom.boundary_measure == pytest.approx(4.0)
    assert set(dom.boundary_parts) == {"bottom", "right", "top", "left"}
    x = torch.rand(4000, 2, generator=gen(1), dtype=F64) * 1.4 - 0.2
    assert torch.equal(dom.inside(x), ((x >= 0) & (x <= 1)).all(dim=1))
    bs = dom.sample_boundary(4000, gen(2))
    expected = {
        "bottom": (1, 0.0, [0, -1]),
        "right": (0, 1.0, [1, 0]),
        "top": (1, 1.0, [0, 1]),
        "left": (0, 0.0, [-1, 0]),
    }
    for name, (axis, value, nrm) in expected.items():
        sel = bs.part == dom.part_index(name)
        assert bool((bs.points[sel, axis] - value).abs().max() < 1e-12)
        torch.testing.assert_close(
            bs.normals[sel], torch.tensor(nrm, dtype=F64).expand(int(sel.sum()), 2)
        )
    assert_outward(dom, bs)
    assert_divergence(dom, bs, 1.0, 4.0)
    xi = dom.sample_interior(N, gen(3))
    assert bool(dom.inside(xi).all())
    assert_fraction((xi[:, 0] < 0.3) & (xi[:, 1] < 0.5), 0.15)


@pytest.mark.parametrize("ext", ["msh", "vtu", "xdmf"])
def test_mesh_roundtrip_formats(tmp_path: Path, ext: str) -> None:
    path = tmp_path / f"square.{ext}"
    if ext == "msh":
        meshio.write(path, square_mesh(), file_format="gmsh22", binary=False)
        dom = MeshDomain.from_file(path)
    else:
        meshio.write(path, square_mesh())
        unnamed = MeshDomain.from_file(path)  # these formats drop the physical names
        assert set(unnamed.boundary_parts) == {"tag1", "tag2", "tag3", "tag4"}
        dom = MeshDomain.from_file(path, boundary_names=SQUARE_NAMES)
    check_unit_square(dom)
    assert "boundary" not in dom.boundary_parts
    everything = dom.sample_boundary(100, gen(), parts=["boundary"])  # alias of all parts
    assert torch.unique(everything.part).numel() == 4
    assert dom.mesh.points.shape == (5, 2) and dom.mesh.cells[0].data.shape == (4, 3)


def test_mesh_untagged_facets_form_boundary_part() -> None:
    dom = MeshDomain(SQUARE_PTS[:, :2], SQUARE_TRI, {"inlet": SQUARE_LINES[3:]})
    assert dom.boundary_parts == ("inlet", "boundary")
    bs = dom.sample_boundary(N, gen(1))
    assert_fraction(bs.part == 0, 0.25)
    assert bool((bs.points[bs.part == 0, 0] == 0).all())
    plain = MeshDomain(SQUARE_PTS[:, :2], SQUARE_TRI)
    assert plain.boundary_parts == ("boundary",)


def test_l_shape_meshgen(tmp_path: Path) -> None:
    mesh = l_shape_mesh(0.2)
    path = tmp_path / "l_shape.msh"
    meshio.write(path, mesh, file_format="gmsh22", binary=False)
    back = meshio.read(path)
    assert {"outer", "reentrant"} <= set(back.field_data)
    dom = MeshDomain.from_file(path)
    assert set(dom.boundary_parts) == {"outer", "reentrant"}
    assert dom.measure == pytest.approx(3.0)
    assert dom.boundary_measure == pytest.approx(8.0)
    bs = dom.sample_boundary(N, gen(1))
    re = bs.part == dom.part_index("reentrant")
    assert_fraction(re, 2.0 / 8.0)
    pre = bs.points[re]
    on_x0 = (pre[:, 0].abs() < 1e-12) & (pre[:, 1] <= 0)
    on_y0 = (pre[:, 1].abs() < 1e-12) & (pre[:, 0] >= 0)
    assert bool((on_x0 | on_y0).all())
    assert_outward(dom, bs)
    assert_divergence(dom, bs, 3.0, 8.0)
    x = torch.rand(4000, 2, generator=gen(2), dtype=F64) * 2.4 - 1.2
    expected = (x.abs() <= 1).all(dim=1) & ~((x[:, 0] > 0) & (x[:, 1] < 0))
    assert torch.equal(dom.inside(x), expected)
    for method in ("uniform", "sobol"):
        xi = dom.sample_interior(N, gen(3), method)
        assert xi.shape == (N, 2) and bool(dom.inside(xi).all())
        assert_fraction((xi[:, 0] < 0) & (xi[:, 1] < 0), 1 / 3)


def test_rectangle_meshgen() -> None:
    dom = MeshDomain.from_meshio(rectangle_mesh(4, 3, (0.0, 0.0), (2.0, 1.0)))
    assert set(dom.boundary_parts) == {"left", "right", "bottom", "top"}
    assert dom.measure == pytest.approx(2.0)
    bs = dom.sample_boundary(1000, gen(), "sobol", parts=["right"])
    assert bool(((bs.points[:, 0] - 2.0).abs() < 1e-12).all())


def kuhn_cube() -> tuple[np.ndarray, np.ndarray]:
    pts = np.array(list(itertools.product([0.0, 1.0], repeat=3)))
    index = {tuple(p): i for i, p in enumerate(pts.astype(int).tolist())}
    tets = []
    for perm in itertools.permutations(range(3)):
        v = [0, 0, 0]
        ids = [index[tuple(v)]]
        for axis in perm:
            v[axis] = 1
            ids.append(index[tuple(v)])
        tets.append(ids)
    return pts, np.array(tets)


def test_tetra_cube(tmp_path: Path) -> None:
    pts, tets = kuhn_cube()
    path = tmp_path / "cube.vtu"
    meshio.write(path, meshio.Mesh(pts, [("tetra", tets)]))
    dom = MeshDomain.from_file(path)
    assert dom.dim == 3 and dom.boundary_parts == ("boundary",)
    assert dom.measure == pytest.approx(1.0)
    assert dom.boundary_measure == pytest.approx(6.0)
    x = torch.rand(3000, 3, generator=gen(1), dtype=F64) * 1.4 - 0.2
    assert torch.equal(dom.inside(x), ((x >= 0) & (x <= 1)).all(dim=1))
    bs = dom.sample_boundary(N, gen(2))
    # normals are the outward axis directions of the face each point lies on
    axis = bs.normals.abs().argmax(dim=1)
    torch.testing.assert_close(bs.normals.abs().amax(dim=1), torch.ones(N, dtype=F64))
    face_value = (bs.normals.gather(1, axis[:, None])[:, 0] > 0).double()
    assert float((bs.points.gather(1, axis[:, None])[:, 0] - face_value).abs().max()) < 1e-12
    assert_fraction(bs.normals[:, 2] == 1.0, 1 / 6)
    assert_outward(dom, bs)
    assert_divergence(dom, bs, 1.0, 6.0)
    xi = dom.sample_interior(N, gen(3))
    assert bool(dom.inside(xi).all())
    assert_fraction((xi < 0.5).all(dim=1), 0.125)


def test_mesh_errors(tmp_path: Path) -> None:
    missing = tmp_path / "nope.msh"
    with pytest.raises(FileNotFoundError, match="nope.msh"):
        MeshDomain.from_file(missing)
    garbage = tmp_path / "garbage.msh"
    garbage.write_text("this is not a mesh\n")
    with pytest.raises(ValueError, match=r"garbage\.msh.*cannot read"):
        MeshDomain.from_file(garbage)
    lines = tmp_path / "lines.vtu"
    meshio.write(lines, meshio.Mesh(SQUARE_PTS, [("line", SQUARE_LINES)]))
    with pytest.raises(ValueError, match=r"lines\.vtu.*no triangle, quad, tetra.*line"):
        MeshDomain.from_file(lines)
    with pytest.raises(ValueError, match="degenerate"):
        MeshDomain(np.array([[0, 0], [1, 0], [2, 0]], dtype=float), np.array([[0, 1, 2]]))


def test_difference_drops_the_edges_it_cuts_away_from_the_outer_boundary():
    """``square - quarter`` is an L whose cut-out quarter shares two edges with the square:
    those edges are not boundary (the L lies on neither side of them), every boundary
    point lies on the L's six edges with the polygon's normal, and the edges are sampled by
    length (x = 1 over -1 < y < 0 is 1/8 of the perimeter 8)."""
    g = torch.Generator().manual_seed(0)
    cut = Box([-1.0, -1.0], [1.0, 1.0]) - Box([0.0, 0.0], [1.0, 1.0])
    poly = Polygon([[-1, -1], [1, -1], [1, 0], [0, 0], [0, 1], [-1, 1]])
    b = cut.sample_boundary(4000, g)
    x = b.points
    assert bool(poly.on_boundary(x, tol=1e-12).all())
    assert torch.allclose(b.normals, poly.normal(x), atol=1e-12)
    assert not bool(((x[:, 0] > 1e-9) & (x[:, 1] > 1e-9)).any())  # nothing on the quarter
    share = float(((x[:, 0] - 1).abs() < 1e-12).double().mean())
    assert abs(share - 1 / 8) < 0.03  # 5.8 binomial standard deviations


def test_union_of_boxes_joined_by_a_face_has_no_boundary_on_the_face():
    g = torch.Generator().manual_seed(1)
    joined = Box([0.0, 0.0], [1.0, 1.0]) | Box([1.0, 0.0], [2.0, 1.0])
    x = joined.sample_boundary(3000, g).points
    on_face = ((x[:, 0] - 1).abs() < 1e-9) & (x[:, 1] > 1e-9) & (x[:, 1] < 1 - 1e-9)
    assert not bool(on_face.any())
    assert bool(Box([0.0, 0.0], [2.0, 1.0]).on_boundary(x, tol=1e-12).all())
