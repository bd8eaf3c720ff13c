"""Field export for ParaView (meshio) and prediction on user-supplied points.

:func:`export_fields` writes a run's fields on the evaluation set as a ``.vtu`` or ``.xdmf``
file with point data, per field ``f``: ``f`` (the prediction), ``f_reference`` and
``f_error`` (prediction minus reference). The geometry is chosen from the points:

* mesh domains (:class:`~kanpde.geometry.MeshDomain`) whose evaluation points are the mesh
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

:func:`read_points`, :func:`predict`, :func:`predict_points` and :func:`write_predictions`
evaluate a trained model on points read from ``.npy``, ``.csv`` or ``.h5`` files.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from kanpde.results import Result

FORMATS = ("vtu", "xdmf")
POINT_FORMATS = (".npy", ".csv", ".h5", ".hdf5")

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
    from kanpde.geometry import MeshDomain

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
                reference: np.ndarray | None) -> dict[str, np.ndarray]:
    data: dict[str, np.ndarray] = {}
    for j, name in enumerate(fields):
        if prediction is not None:
            data[name] = np.ascontiguousarray(prediction[:, j])
        if reference is not None:
            data[f"{name}_reference"] = np.ascontiguousarray(reference[:, j])
        if prediction is not None and reference is not None:
            data[f"{name}_error"] = np.ascontiguousarray(prediction[:, j] - reference[:, j])
    return data


def _write_mesh(path: Path, points: np.ndarray, cells: tuple[str, np.ndarray],
                data: dict[str, np.ndarray]) -> list[Path]:
    import meshio

    from kanpde.rundir import check_output_name

    check_output_name(path, "export")
    if path.suffix == ".xdmf":
        check_output_name(path.with_suffix(".h5"), "export")
    mesh = meshio.Mesh(_pad3(points), [cells], point_data=data)
    meshio.write(path, mesh)
    written = [path]
    if path.suffix == ".xdmf":  # meshio stores the heavy data next to it
        written.append(path.with_suffix(".h5"))
    return written


def _as_2d(arr: np.ndarray | None) -> np.ndarray | None:
    if arr is None:
        return None
    arr = np.asarray(arr)
    return arr[:, None] if arr.ndim == 1 else arr


def export_fields(result: Result, problem=None, out_dir: str | os.PathLike = ".",
                  fmt: str = "vtu", *, model=None, name: str = "fields") -> list[Path]:
    """Write the fields of ``result`` on its evaluation points for ParaView.

    Args:
        result: a run's :class:`~kanpde.results.Result` with ``points`` ``(M, d)`` and
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
    points = _as_2d(result.points).astype(np.float64)
    prediction, reference = _as_2d(result.prediction), _as_2d(result.reference)
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

    data = _point_data(fields, prediction, reference)
    if points.shape[1] > 3 or time:
        for i, c in enumerate(coords):
            if points.shape[1] > 3 or c == time:
                data.setdefault(c, np.ascontiguousarray(points[:, i]))
    written = _write_mesh(out / f"{name}.{fmt}", points, cells, data)

    if model is not None and mesh_domain is not None:
        import torch

        verts = np.asarray(mesh_domain.mesh.points, dtype=np.float64)
        pred = predict(model, verts)
        ref = problem.solution(torch.as_tensor(verts, dtype=torch.float64)).numpy()
        mesh_cells = (mesh_domain.mesh.cells[0].type, np.asarray(mesh_domain.mesh.cells[0].data))
        written += _write_mesh(out / f"{name}_mesh.{fmt}", verts, mesh_cells,
                               _point_data(fields, pred, ref))
    return written


# ------------------------------------------------------------------------- prediction ------

def read_points(path: str | os.PathLike, dim: int | None = None) -> np.ndarray:
    """Read points ``(N, d)`` (float64) from ``.npy``, ``.csv`` or ``.h5``.

    ``.npy``: an ``(N, d)`` array (``(N,)`` is read as ``d = 1``). ``.csv``: comma-separated
    floats, one point per row, with an optional header row: the first row is a header only
    when none of its fields is a number (so a typo in the first data row is reported, not
    taken for a header). ``.h5``/``.hdf5``: dataset ``points``.

    Args:
        path: the file.
        dim: expected ``d``, checked when given.

    Raises:
        FileNotFoundError: no such file (named).
        ValueError: unknown extension, unreadable contents, wrong shape or non-finite
            values (the file is named).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"points file '{path}' not found")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            pts = np.load(path, allow_pickle=False)
        elif suffix == ".csv":
            pts = _read_csv(path)
        elif suffix in (".h5", ".hdf5"):
            import h5py

            with h5py.File(path, "r") as f:
                if "points" not in f:
                    raise ValueError("no dataset 'points'")
                pts = f["points"][()]
        else:
            raise ValueError(f"unknown extension (expected one of {', '.join(POINT_FORMATS)})")
        pts = np.asarray(pts, dtype=np.float64)
    except (ValueError, OSError, EOFError, TypeError) as err:  # EOFError: a truncated .npy
        text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if path.stat().st_size == 0:
            text = "the file is empty"
        raise ValueError(f"points file '{path}': {text}") from err
    if pts.ndim == 1:
        pts = pts[:, None]
    if pts.ndim != 2 or pts.shape[0] == 0:
        raise ValueError(f"points file '{path}': expected an (N, d) array of points, got shape "
                         f"{pts.shape}")
    if dim is not None and pts.shape[1] != dim:
        raise ValueError(f"points file '{path}': points have {pts.shape[1]} coordinates, the "
                         f"model expects {dim}")
    if not np.isfinite(pts).all():
        raise ValueError(f"points file '{path}': points must be finite")
    return pts


def _is_number(field: str) -> bool:
    try:
        float(field)
    except ValueError:
        return False
    return True


def _read_csv(path: Path) -> np.ndarray:
    with path.open(encoding="utf-8") as fh:  # UnicodeDecodeError is a ValueError
        lines = [(n, ln.strip()) for n, ln in enumerate(fh, start=1)
                 if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise ValueError("no rows")
    if not any(_is_number(v) for v in lines[0][1].split(",")):
        lines = lines[1:]  # a header: no field of it is a number
    rows = []
    for i, (n, line) in enumerate(lines):
        fields = line.split(",")
        bad = next((v for v in fields if not _is_number(v)), None)
        if bad is not None:
            hint = " (a header row holds only names, no numbers)" if i == 0 else ""
            raise ValueError(f"line {n}: {bad.strip()!r} is not a number{hint}")
        rows.append([float(v) for v in fields])
    if not rows:
        raise ValueError("no data rows")
    if len({len(r) for r in rows}) != 1:
        raise ValueError("rows have different numbers of columns")
    return np.array(rows, dtype=np.float64)


def predict(model, points: np.ndarray, *, batch_size: int | None = None) -> np.ndarray:
    """Model values ``(N, m)`` at ``points`` ``(N, d)``, in batches, without gradients.

    Points are cast to the dtype and device of the model's parameters. ``batch_size``
    ``None`` chooses the batches from the memory budget (:mod:`kanpde.chunking`).
    """
    import torch

    from kanpde.chunking import points_per_chunk

    tensors = list(model.parameters()) + list(model.buffers())
    dtype = next((t.dtype for t in tensors if t.is_floating_point()), torch.float64)
    device = tensors[0].device if tensors else torch.device("cpu")
    x = torch.as_tensor(np.asarray(points), dtype=dtype)
    batch_size = batch_size or points_per_chunk(model, itemsize=x.element_size())
    outs = []
    with torch.no_grad():
        for start in range(0, x.shape[0], batch_size):
            out = model(x[start : start + batch_size].to(device))
            outs.append(out.detach().cpu().to(torch.float64).reshape(out.shape[0], -1))
    return torch.cat(outs).numpy() if outs else np.zeros((0, getattr(model, "out_dim", 1)))


def predict_points(model, points_path: str | os.PathLike, *,
                   batch_size: int | None = None) -> np.ndarray:
    """Read points from ``points_path`` (see :func:`read_points`) and return the model's
    values there, ``(N, m)`` float64. The number of coordinates is checked against the
    model's ``in_dim`` when it has one."""
    pts = read_points(points_path, getattr(model, "in_dim", None))
    return predict(model, pts, batch_size=batch_size)


def write_predictions(values: np.ndarray, out_path: str | os.PathLike, *,
                      points: np.ndarray | None = None, coords: Sequence[str] | None = None,
                      fields: Sequence[str] | None = None) -> Path:
    """Write predicted values ``(N, m)`` (and optionally their points ``(N, d)``).

    By extension: ``.npy``: the values only (``(N, m)``); ``.csv``: a header row of names
    (coordinates then fields; defaults ``x0..``, ``u``/``u0..``) and one row per point,
    full precision; ``.h5``/``.hdf5``: datasets ``prediction`` (and ``points``) with
    ``coords``/``fields`` attributes.

    Raises:
        ValueError: unknown extension, or shapes that do not match.
    """
    from kanpde.rundir import check_output_name

    path = check_output_name(out_path, "output")
    vals = _as_2d(np.asarray(values, dtype=np.float64))
    pts = _as_2d(None if points is None else np.asarray(points, dtype=np.float64))
    if pts is not None and pts.shape[0] != vals.shape[0]:
        raise ValueError(f"{pts.shape[0]} points but {vals.shape[0]} values")
    m = vals.shape[1]
    fields = list(fields) if fields else (["u"] if m == 1 else [f"u{j}" for j in range(m)])
    if len(fields) != m:
        raise ValueError(f"{len(fields)} field names for {m} value columns")
    d = 0 if pts is None else pts.shape[1]
    coords = list(coords) if coords else [f"x{i}" for i in range(d)]
    if pts is not None and len(coords) != d:
        raise ValueError(f"{len(coords)} coordinate names for {d} point columns")
    suffix = path.suffix.lower()
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".npy":
        np.save(path, vals)
    elif suffix == ".csv":
        table = vals if pts is None else np.concatenate([pts, vals], axis=1)
        header = ",".join((coords if pts is not None else []) + fields)
        np.savetxt(path, table, delimiter=",", header=header, comments="", fmt="%.17g")
    elif suffix in (".h5", ".hdf5"):
        import h5py

        with h5py.File(path, "w") as f:
            f.create_dataset("prediction", data=vals)
            f.attrs["fields"] = fields
            if pts is not None:
                f.create_dataset("points", data=pts)
                f.attrs["coords"] = coords
    else:
        raise ValueError(f"output '{path}': unknown extension (expected .npy, .csv or .h5)")
    return path
