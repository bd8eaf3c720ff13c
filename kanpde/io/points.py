"""Point files: reading points, predicting a trained model there, writing the predictions.

:func:`read_points` reads ``(N, d)`` points from ``.npy``, ``.csv`` or ``.h5`` files;
:func:`predict` evaluates a model in batches without gradients; :func:`predict_points`
combines the two; :func:`outside_box` finds points outside a domain's bounding box (where a
model extrapolates); :func:`write_predictions` writes the points and values together as
``.npy``, ``.csv`` or ``.h5``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

POINT_FORMATS = (".npy", ".csv", ".h5", ".hdf5")


def as_columns(arr: np.ndarray | None) -> np.ndarray | None:
    """``arr`` as a 2-D array of columns: ``(N,)`` becomes ``(N, 1)``; ``None`` stays."""
    if arr is None:
        return None
    arr = np.asarray(arr)
    return arr[:, None] if arr.ndim == 1 else arr


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
    ``None`` chooses the batches from the memory budget (:mod:`kanpde.core.chunking`).
    """
    import torch

    from kanpde.core.chunking import points_per_chunk

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


def outside_box(points: np.ndarray, lo: Sequence[float], hi: Sequence[float], *,
                rtol: float = 1e-9) -> np.ndarray:
    """``(N,)`` bool: which of ``points`` ``(N, d)`` lie outside the box ``[lo, hi]``, with a
    tolerance of ``rtol`` times the box's extent per coordinate (points on the boundary, up to
    round-off, are inside)."""
    pts = as_columns(np.asarray(points, dtype=np.float64))
    lo, hi = np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)
    tol = rtol * np.maximum(hi - lo, 1.0)
    return ((pts < lo - tol) | (pts > hi + tol)).any(axis=1)


def write_predictions(values: np.ndarray, out_path: str | os.PathLike, *,
                      points: np.ndarray | None = None, coords: Sequence[str] | None = None,
                      fields: Sequence[str] | None = None) -> Path:
    """Write predicted values ``(N, m)`` together with their points ``(N, d)`` (when given).

    By extension, with the same columns in every format (coordinates then fields):
    ``.csv``: a header row of names (e.g. ``x,t,u``; defaults ``x0..``, ``u``/``u0..``) and
    one row per point, full precision; ``.npy``: the ``(N, d + m)`` array of those columns
    (``(N, m)`` without points); ``.h5``/``.hdf5``: datasets ``points`` and ``prediction``
    with the names as ``coords``/``fields`` attributes.

    Raises:
        ValueError: unknown extension, or shapes that do not match.
    """
    from kanpde.io.rundir import check_output_name

    path = check_output_name(out_path, "output")
    vals = as_columns(np.asarray(values, dtype=np.float64))
    pts = as_columns(None if points is None else np.asarray(points, dtype=np.float64))
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
    table = vals if pts is None else np.concatenate([pts, vals], axis=1)
    if suffix == ".npy":
        np.save(path, table)
    elif suffix == ".csv":
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
