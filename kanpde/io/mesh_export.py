"""Field export for ParaView (meshio): a run's fields as ``.vtu`` or ``.xdmf`` files.

:func:`export_fields` writes a run's fields on the evaluation set as a ``.vtu`` or ``.xdmf``
file with point data, per field ``f``: ``f`` (the prediction), ``f_reference`` and
``f_error`` (prediction minus reference). The geometry is chosen from the points:

* mesh domains (:class:`~kanpde.problem.geometry.MeshDomain`) whose evaluation points are the mesh
  vertices (in any order): the mesh's own triangles/tetrahedra;
* 1-D points: ``line`` cells joining neighbours in ``x``;
* 2-D points on a tensor grid (possibly masked, as :meth:`Problem.evaluation_points` makes
  them for ``d <= 2``): a structured triangulation, see :func:`structured_cells`. This covers
  2-D space, 1+1-D space-time (``t`` is the second coordinate: one file, not a time series)
  and mesh domains evaluated on a grid;
* anything else (``d >= 3``, scattered points): a cloud of ``vertex`` cells.

Points are padded with zeros to three coordinates; for ``d > 3`` the first three coordinates
are the geometry and every coordinate is also written as point data under its name (as is
the time coordinate of space-time problems, so ParaView can colour by it).

With ``model=`` and a mesh-domain problem, the model and the problem's solution are also
evaluated on the mesh vertices and written on the mesh (``<name>_mesh.<fmt>``).

:func:`export_time_series` writes a space-time run instead as a time series over its spatial
domain, one step per time value of the evaluation set: an XDMF time series
(``<name>_series.xdmf`` + ``.h5``, meshio's ``TimeSeriesWriter``) or a ParaView collection
(``<name>_series.pvd`` naming one ``.vtu`` per step in ``<name>_series/``).

Point files (reading points, writing predictions) are :mod:`kanpde.io.points`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from kanpde.io.points import as_columns, predict
from kanpde.io.results import Result

FORMATS = ("vtu", "xdmf")
#: the time-series file each format gives (:func:`export_time_series`)
SERIES_FORMATS = {"xdmf": "XDMF time series", "vtu": "PVD collection of VTU files"}

Inside = Callable[[np.ndarray], np.ndarray]


# ------------------------------------------------------------------------- geometry --------

def grid_axes(points: np.ndarray, max_fill: float = 8.0
              ) -> tuple[list[np.ndarray], np.ndarray] | None:
    """Recognise ``points`` ``(M, d)`` as (a subset of) a tensor grid.

    Returns:
        ``(axes, index)``: the sorted distinct values per coordinate and the ``(M, d)``
        integer grid index of every point; ``None`` when the points repeat, an axis has
        fewer than 2 values, or the grid has more than ``max_fill * M`` nodes (scattered
        points).
    """
    pts = np.asarray(points)
    if pts.ndim != 2 or pts.shape[0] < 2:
        return None
    axes, index = [], []
    n_nodes = 1.0
    for i in range(pts.shape[1]):
        values, inverse = np.unique(pts[:, i], return_inverse=True)
        if values.size < 2:
            return None
        axes.append(values)
        index.append(inverse.reshape(-1))
        n_nodes *= values.size
    if n_nodes > max_fill * pts.shape[0]:
        return None
    idx = np.stack(index, axis=1)
    if np.unique(idx, axis=0).shape[0] != pts.shape[0]:
        return None
    return axes, idx


def structured_cells(points: np.ndarray, inside: Inside | None = None
                     ) -> tuple[str, np.ndarray] | None:
    """meshio cells over the points, when they form a line or a 2-D (masked) grid.

    1-D: ``("line", (M-1, 2))`` joining neighbours in sorted order. 2-D grid (see
    :func:`grid_axes`): ``("triangle", (T, 3))``; every grid quad with all four corners
    present is split into two triangles, a quad with three corners present gives the one
    triangle of those corners (so curved boundaries are followed to within a cell). With
    ``inside`` (``(K, d) -> (K,)`` bool), segments/triangles whose midpoint/centroid lies
    outside the domain are dropped (gaps between intervals, re-entrant corners, holes).

    Returns:
        ``(cell_type, cells)`` or ``None`` (not a line or 2-D grid, or no cells).
    """
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[0] < 2:
        return None
    if pts.shape[1] == 1:
        order = np.argsort(pts[:, 0], kind="stable")
        cells = np.stack([order[:-1], order[1:]], axis=1)
        kind = "line"
    elif pts.shape[1] == 2:
        grid = grid_axes(pts)
        if grid is None:
            return None
        cells = _grid_triangles(grid[1], (grid[0][0].size, grid[0][1].size))
        kind = "triangle"
    else:
        return None
    if inside is not None and cells.shape[0]:
        cells = cells[np.asarray(inside(pts[cells].mean(axis=1)), dtype=bool)]
    return (kind, cells) if cells.shape[0] else None


def _grid_triangles(idx: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Triangles ``(T, 3)`` over points with grid indices ``idx`` ``(M, 2)``."""
    n0, n1 = shape
    node = np.full((n0, n1), -1, dtype=np.int64)
    node[idx[:, 0], idx[:, 1]] = np.arange(idx.shape[0])
    a, b = node[:-1, :-1].ravel(), node[1:, :-1].ravel()  # (i, j), (i+1, j)
    c, d = node[1:, 1:].ravel(), node[:-1, 1:].ravel()  # (i+1, j+1), (i, j+1)
    have = np.stack([a, b, c, d]) >= 0  # (4, Q)
    full = have.all(0)
    tris = [np.stack([a, b, c], 1)[full], np.stack([a, c, d], 1)[full]]
    three = have.sum(0) == 3
    # the triangle of the three present corners, counter-clockwise
    for missing, tri in ((0, (b, c, d)), (1, (a, c, d)), (2, (a, b, d)), (3, (a, b, c))):
        sel = three & ~have[missing]
        tris.append(np.stack(tri, 1)[sel])
    return np.concatenate(tris).astype(np.int64)


def _match_vertices(points: np.ndarray, vertices: np.ndarray) -> np.ndarray | None:
    """``perm`` with ``points[perm] == vertices`` (to round-off), or ``None``."""
    if points.shape != vertices.shape:
        return None
    scale = max(float(np.abs(vertices).max(initial=0.0)), 1.0)
    tol = 1e-9 * scale
    if np.allclose(points, vertices, rtol=0.0, atol=tol):
        return np.arange(points.shape[0])
    key_p = np.lexsort(points.T[::-1])
    key_v = np.lexsort(vertices.T[::-1])
    if not np.allclose(points[key_p], vertices[key_v], rtol=0.0, atol=tol):
        return None
    perm = np.empty_like(key_p)
    perm[key_v] = key_p
    return perm


def _mesh_domain(problem) -> object | None:
    from kanpde.problem.geometry import MeshDomain

    domain = getattr(problem, "domain", None)
    return domain if isinstance(domain, MeshDomain) else None


def _inside_fn(problem) -> Inside | None:
    domain = getattr(problem, "domain", None)
    if domain is None or not hasattr(domain, "inside"):
        return None

    def inside(x: np.ndarray) -> np.ndarray:
        import torch

        return domain.inside(torch.as_tensor(x, dtype=torch.float64)).numpy()

    return inside


def _pad3(points: np.ndarray) -> np.ndarray:
    pts = np.asarray(points, dtype=np.float64)
    if pts.shape[1] >= 3:
        return np.ascontiguousarray(pts[:, :3])
    return np.concatenate([pts, np.zeros((pts.shape[0], 3 - pts.shape[1]))], axis=1)


# ------------------------------------------------------------------------- export ----------

def _point_data(fields: Sequence[str], prediction: np.ndarray | None,
                reference: np.ndarray | None,
                error: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Point data ``<field>``, ``<field>_reference`` and ``<field>_error`` (``error``
    ``(M, m)`` when given, e.g. gauge fields less their mean; else prediction - reference)."""
    data: dict[str, np.ndarray] = {}
    for j, name in enumerate(fields):
        if prediction is not None:
            data[name] = np.ascontiguousarray(prediction[:, j])
        if reference is not None:
            data[f"{name}_reference"] = np.ascontiguousarray(reference[:, j])
        if error is not None:
            data[f"{name}_error"] = np.ascontiguousarray(error[:, j])
        elif prediction is not None and reference is not None:
            data[f"{name}_error"] = np.ascontiguousarray(prediction[:, j] - reference[:, j])
    return data


def _write_mesh(path: Path, points: np.ndarray, cells: tuple[str, np.ndarray],
                data: dict[str, np.ndarray]) -> list[Path]:
    import meshio

    from kanpde.io.rundir import check_output_name

    check_output_name(path, "export")
    if path.suffix == ".xdmf":
        check_output_name(path.with_suffix(".h5"), "export")
    mesh = meshio.Mesh(_pad3(points), [cells], point_data=data)
    meshio.write(path, mesh)
    written = [path]
    if path.suffix == ".xdmf":  # meshio stores the heavy data next to it
        written.append(path.with_suffix(".h5"))
    return written


def export_fields(result: Result, problem=None, out_dir: str | os.PathLike = ".",
                  fmt: str = "vtu", *, model=None, name: str = "fields") -> list[Path]:
    """Write the fields of ``result`` on its evaluation points for ParaView.

    Args:
        result: a run's :class:`~kanpde.io.results.Result` with ``points`` ``(M, d)`` and
            ``prediction``/``reference`` ``(M, m)``.
        problem: the run's :class:`~kanpde.problem.Problem`, or ``None``. It supplies the
            mesh of mesh domains, the inside test that trims the triangulation, and names.
        out_dir: directory (created if needed).
        fmt: ``"vtu"`` or ``"xdmf"`` (XDMF writes ``<name>.xdmf`` plus ``<name>.h5``).
        model: optional trained model; with a mesh-domain problem it is evaluated on the
            mesh vertices, written as ``<name>_mesh.<fmt>``.
        name: file stem.

    Returns:
        The paths written.

    Raises:
        ValueError: unknown ``fmt``, or the result holds no points or fields.
    """
    if fmt not in FORMATS:
        raise ValueError(f"export format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if result.points is None or (result.prediction is None and result.reference is None):
        raise ValueError("result holds no fields on evaluation points: nothing to export")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    points = as_columns(result.points).astype(np.float64)
    prediction, reference = as_columns(result.prediction), as_columns(result.reference)
    coords = result.coord_names()
    fields = result.field_names()
    if problem is not None:
        coords = tuple(problem.coords) if not result.coords else coords
        fields = tuple(problem.fields) if not result.fields else fields
    time = result.time or (getattr(problem, "time", None) if problem is not None else None)

    mesh_domain = _mesh_domain(problem)
    cells = None
    if mesh_domain is not None:
        mesh = mesh_domain.mesh
        perm = _match_vertices(points, np.asarray(mesh.points)[:, : points.shape[1]])
        if perm is not None:
            points = points[perm]
            prediction = None if prediction is None else prediction[perm]
            reference = None if reference is None else reference[perm]
            cells = (mesh.cells[0].type, np.asarray(mesh.cells[0].data))
    if cells is None:
        cells = structured_cells(points, _inside_fn(problem))
    if cells is None:
        cells = ("vertex", np.arange(points.shape[0])[:, None])

    error = result.error
    data = _point_data(fields, prediction, reference,
                       None if error is None else as_columns(error))
    if points.shape[1] > 3 or time:
        for i, c in enumerate(coords):
            if points.shape[1] > 3 or c == time:
                data.setdefault(c, np.ascontiguousarray(points[:, i]))
    written = _write_mesh(out / f"{name}.{fmt}", points, cells, data)

    if model is not None and mesh_domain is not None:
        import torch

        verts = np.asarray(mesh_domain.mesh.points, dtype=np.float64)
        pred = predict(model, verts)
        ref = problem.solution(torch.as_tensor(verts, dtype=torch.float64)).numpy() \
            if getattr(problem, "has_solution", True) else None  # none to compare with
        mesh_cells = (mesh_domain.mesh.cells[0].type, np.asarray(mesh_domain.mesh.cells[0].data))
        written += _write_mesh(out / f"{name}_mesh.{fmt}", verts, mesh_cells,
                               _point_data(fields, pred, ref))
    return written


# ------------------------------------------------------------------------- time series -----

def time_slices(points: np.ndarray, time_index: int
                ) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Split space-time points ``(M, d)`` into slices of equal time.

    Returns:
        ``(times, space, rows)``: the sorted distinct time values ``(K,)``, the spatial
        points ``(P, d - 1)`` shared by every slice (sorted lexicographically), and per time
        the ``(P,)`` row indices into ``points`` of the slice, in the order of ``space``.

    Raises:
        ValueError: the slices do not share their spatial points (scattered points, not a
            grid in time), or there is only one time value.
    """
    pts = np.asarray(points, dtype=np.float64)
    times, inverse = np.unique(pts[:, time_index], return_inverse=True)
    if times.size < 2:
        raise ValueError("the evaluation points have a single time value: no time series")
    spatial = np.delete(pts, time_index, axis=1)
    space, rows = None, []
    for k in range(times.size):
        idx = np.flatnonzero(inverse.reshape(-1) == k)
        idx = idx[np.lexsort(spatial[idx].T[::-1])]
        if space is None:
            space = spatial[idx]
        elif spatial[idx].shape != space.shape or not np.array_equal(spatial[idx], space):
            raise ValueError("the evaluation points are not the same spatial points at every "
                             "time (scattered points, as for d > 2): no time series; export "
                             "them as one file instead")
        rows.append(idx)
    return times, space, rows


def _write_pvd(path: Path, steps: Sequence[tuple[float, str]]) -> None:
    """A ParaView collection ``path`` of ``(time, relative file)`` steps."""
    from kanpde.io.atomic import atomic_write_text

    lines = ['<?xml version="1.0"?>',
             '<VTKFile type="Collection" version="0.1" byte_order="LittleEndian">',
             "  <Collection>"]
    lines += [f'    <DataSet timestep="{t!r}" group="" part="0" file="{f}"/>'
              for t, f in steps]
    lines += ["  </Collection>", "</VTKFile>", ""]
    atomic_write_text(path, "\n".join(lines))


def export_time_series(result: Result, problem=None, out_dir: str | os.PathLike = ".",
                       fmt: str = "xdmf", *, name: str = "fields") -> list[Path]:
    """Write a space-time run's fields as a time series over its spatial domain.

    One step per distinct value of the time coordinate on the evaluation points; every step
    holds the fields (prediction ``f``, ``f_reference``, ``f_error``) on the same spatial
    points, with cells as :func:`structured_cells` makes them for the spatial coordinates
    (lines in 1-D, triangles on a 2-D grid, else vertices).

    Args:
        result: a run's result with ``points`` ``(M, d)`` including the time coordinate.
        problem: the run's problem or ``None`` (its inside test trims the cells).
        out_dir: directory (created if needed).
        fmt: ``"xdmf"``: ``<name>_series.xdmf`` and ``<name>_series.h5`` (meshio's
            ``TimeSeriesWriter``); ``"vtu"``: ``<name>_series.pvd`` and one
            ``<name>_series/step_NNNN.vtu`` per step.
        name: file stem.

    Returns:
        The paths written (the series file first).

    Raises:
        ValueError: no time coordinate, an unknown ``fmt``, no fields, or evaluation points
            that are not the same spatial points at every time (see :func:`time_slices`).
    """
    import meshio

    from kanpde.io.rundir import check_output_name

    if fmt not in SERIES_FORMATS:
        raise ValueError(f"time-series format must be one of {', '.join(SERIES_FORMATS)}, "
                         f"got {fmt!r}")
    time = result.time or (getattr(problem, "time", None) if problem is not None else None)
    coords = list(result.coord_names())
    if not time or time not in coords:
        raise ValueError("the run's problem has no time coordinate: no time series (export "
                         "it as one file)")
    if result.points is None or (result.prediction is None and result.reference is None):
        raise ValueError("result holds no fields on evaluation points: nothing to export")
    ti = coords.index(time)
    points = as_columns(result.points).astype(np.float64)
    prediction, reference = as_columns(result.prediction), as_columns(result.reference)
    fields = result.field_names()
    times, space, rows = time_slices(points, ti)
    inside = _inside_fn(problem)

    def inside_space(x: np.ndarray) -> np.ndarray:  # at the first time: the spatial domain
        return inside(np.insert(x, ti, times[0], axis=1))

    cells = structured_cells(space, inside_space if inside is not None else None) \
        or ("vertex", np.arange(space.shape[0])[:, None])
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    def step_data(idx: np.ndarray) -> dict[str, np.ndarray]:
        return _point_data(fields, None if prediction is None else prediction[idx],
                           None if reference is None else reference[idx])

    if fmt == "xdmf":
        path = check_output_name(out / f"{name}_series.xdmf", "export")
        heavy = check_output_name(path.with_suffix(".h5"), "export")
        # meshio 5.3 opens the .h5 by its bare name, in the working directory: write there
        with contextlib.chdir(out), meshio.xdmf.TimeSeriesWriter(path.name) as writer:
            writer.write_points_cells(_pad3(space), [cells])
            for t, idx in zip(times, rows, strict=True):
                writer.write_data(float(t), point_data=step_data(idx))
        return [path, heavy]
    path = check_output_name(out / f"{name}_series.pvd", "export")
    folder = out / f"{name}_series"
    folder.mkdir(exist_ok=True)
    written, steps = [path], []
    for k, (t, idx) in enumerate(zip(times, rows, strict=True)):
        step = folder / f"step_{k:04d}.vtu"
        meshio.write(step, meshio.Mesh(_pad3(space), [cells], point_data=step_data(idx)))
        steps.append((float(t), f"{folder.name}/{step.name}"))
        written.append(step)
    _write_pvd(path, steps)
    return written
