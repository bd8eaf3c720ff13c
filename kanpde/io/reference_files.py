"""Stored reference solutions: the HDF5 files read into and written from interpolants.

Layout (HDF5, read with h5py; suffix ``.h5`` or ``.hdf5``):

* grid form: datasets ``axes/0``, ``axes/1``, ..., ``axes/{d-1}`` (1-D, strictly increasing
  coordinate arrays, in coordinate order, time last) and ``values`` of shape
  ``(n_0, ..., n_{d-1}, m)`` with ``values[i_0, ..., i_{d-1}, f]`` the field ``f`` at the grid
  point ``(axes/0[i_0], ..., axes/{d-1}[i_{d-1}])``;
* scattered form: datasets ``points`` ``(M, d)`` and ``values`` ``(M, m)``;
* root attribute ``fields``: the ``m`` field names, comma-separated (``"u"`` or ``"u,v,p"``).
  Any other root attributes (PDE, parameters, method, resolution, error estimates, ...) are
  metadata and come back as ``reference.attrs``.

:func:`load_reference` returns a :class:`~kanpde.problem.reference.GridData` or
:class:`~kanpde.problem.reference.ScatteredData`; :func:`save_grid_reference` and
:func:`save_scattered_reference` write them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from kanpde.io.atomic import atomic_write
from kanpde.problem.reference import GridData, ScatteredData, as_fields

_HDF5_SUFFIXES = (".h5", ".hdf5")


def _attr_to_python(value: Any) -> Any:
    """Decode an HDF5 attribute value into plain Python."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "SO":
            return [v.decode() if isinstance(v, bytes) else v for v in value.tolist()]
        return value
    if isinstance(value, np.generic):
        return value.item()
    return value


def _attr_to_hdf5(key: str, value: Any) -> Any:
    """Encode a metadata value as something h5py stores (dicts and lists as JSON)."""
    if isinstance(value, str | int | float | bool | np.generic):
        return value
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
        return value
    try:
        return json.dumps(value)
    except TypeError as err:
        raise ValueError(f"attrs[{key!r}] of type {type(value).__name__} cannot be stored") from err


def _check_writable(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in _HDF5_SUFFIXES:
        raise ValueError(f"{path}: unknown reference format; use .h5 or .hdf5")
    if not path.parent.exists():
        raise FileNotFoundError(f"{path}: directory {path.parent} does not exist")
    return suffix


def save_grid_reference(
    path: str | Path,
    axes: Sequence[np.ndarray],
    values: np.ndarray,
    fields: str | Sequence[str] = ("u",),
    attrs: Mapping[str, Any] | None = None,
) -> Path:
    """Write grid data in the layout :func:`load_reference` reads (see the module docstring).

    Args:
        path: target file, ``.h5``/``.hdf5``; replaced atomically if present.
        axes: ``d`` strictly increasing 1-D coordinate arrays (time last).
        values: ``(n_0, ..., n_{d-1}, m)`` float64 values (``(n_0, ..., n_{d-1})`` for m = 1).
        fields: the ``m`` field names.
        attrs: metadata (strings, numbers, numeric arrays; other values are stored as JSON).

    Returns:
        The path written.
    """
    path = Path(path)
    _check_writable(path)
    grid = GridData(axes, values, fields, method="linear")  # validates shapes
    names = ",".join(grid.fields)
    meta = dict(attrs or {})

    def write(tmp: Path) -> None:
        with h5py.File(tmp, "w", track_order=True) as h5:
            group = h5.create_group("axes")
            for k, axis in enumerate(grid.axes):
                group.create_dataset(str(k), data=axis, track_times=False)
            h5.create_dataset("values", data=grid.values, track_times=False)
            _write_attrs(h5, names, meta)

    return atomic_write(path, write)


def save_scattered_reference(
    path: str | Path,
    points: np.ndarray,
    values: np.ndarray,
    fields: str | Sequence[str] = ("u",),
    attrs: Mapping[str, Any] | None = None,
) -> Path:
    """Write scattered data (``points`` ``(M, d)``, ``values`` ``(M, m)``) for
    :func:`load_reference`; arguments as in :func:`save_grid_reference`."""
    path = Path(path)
    _check_writable(path)
    data = ScatteredData(points, values, fields)  # validates shapes
    names = ",".join(data.fields)
    meta = dict(attrs or {})

    def write(tmp: Path) -> None:
        with h5py.File(tmp, "w", track_order=True) as h5:
            h5.create_dataset("points", data=data.points, track_times=False)
            h5.create_dataset("values", data=data.values, track_times=False)
            _write_attrs(h5, names, meta)

    return atomic_write(path, write)


def _write_attrs(h5: h5py.File, names: str, meta: Mapping[str, Any]) -> None:
    """The root attributes: ``fields`` and the metadata."""
    h5.attrs["fields"] = names
    for key, value in meta.items():
        if key != "fields":
            h5.attrs[key] = _attr_to_hdf5(key, value)


def _select_fields(
    path: Path, stored: tuple[str, ...], values: np.ndarray, fields: Sequence[str] | str | None
) -> tuple[tuple[str, ...], np.ndarray]:
    """Keep the requested fields (in the requested order) of ``values`` ``(..., m)``."""
    if values.shape[-1] != len(stored):
        raise ValueError(
            f"{path}: attribute 'fields' names {len(stored)} field(s) {stored} but 'values' "
            f"has {values.shape[-1]} in its last axis"
        )
    if fields is None:
        return stored, values
    wanted = as_fields(fields)
    missing = [name for name in wanted if name not in stored]
    if missing:
        raise ValueError(f"{path}: no field(s) {missing}; stored fields are {stored}")
    return wanted, values[..., [stored.index(name) for name in wanted]]


def load_reference(
    path: str | Path, fields: Sequence[str] | str | None = None, method: str = "cubic"
) -> GridData | ScatteredData:
    """Read a stored reference (HDF5, layout in the module docstring).

    Args:
        path: the file.
        fields: names of the fields to keep, in the order wanted; all stored fields if None.
        method: interpolation for grid data, ``"cubic"`` or ``"linear"``.

    Returns:
        :class:`GridData` for grid files, :class:`ScatteredData` for scattered ones, with the
        file's metadata in ``.attrs``.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: unknown suffix, or a dataset/attribute is missing or malformed (the message
            names the file and the fault).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"reference file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix in _HDF5_SUFFIXES:
        return _load_hdf5(path, fields, method)
    raise ValueError(f"{path}: unknown reference format {suffix!r}; use .h5 or .hdf5")


def _load_hdf5(
    path: Path, fields: Sequence[str] | str | None, method: str
) -> GridData | ScatteredData:
    try:
        h5 = h5py.File(path, "r")
    except OSError as err:
        raise ValueError(f"{path}: not a readable HDF5 file ({err})") from err
    with h5:
        attrs = {key: _attr_to_python(h5.attrs[key]) for key in h5.attrs}
        if "fields" not in attrs:
            raise ValueError(f"{path}: missing root attribute 'fields' (comma-separated names)")
        stored = as_fields(attrs.pop("fields"))
        if "values" not in h5:
            raise ValueError(f"{path}: missing dataset 'values'")
        values = np.asarray(h5["values"][()], dtype=np.float64)
        if "axes" in h5:
            group = h5["axes"]
            if not isinstance(group, h5py.Group) or "0" not in group:
                raise ValueError(f"{path}: missing dataset 'axes/0'")
            d = len(group)
            missing = [f"axes/{k}" for k in range(d) if str(k) not in group]
            if missing:
                raise ValueError(f"{path}: missing dataset(s) {missing} (found {sorted(group)})")
            axes = [np.asarray(group[str(k)][()], dtype=np.float64) for k in range(d)]
            names, values = _select_fields(path, stored, values, fields)
            return _grid_or_raise(path, axes, values, names, method, attrs)
        if "points" in h5:
            points = np.asarray(h5["points"][()], dtype=np.float64)
            names, values = _select_fields(path, stored, values, fields)
            return _scattered_or_raise(path, points, values, names, attrs)
        raise ValueError(f"{path}: missing dataset 'axes/0' (grid form) or 'points' (scattered)")


def _grid_or_raise(
    path: Path,
    axes: list[np.ndarray],
    values: np.ndarray,
    names: tuple[str, ...],
    method: str,
    attrs: dict[str, Any],
) -> GridData:
    try:
        return GridData(axes, values, names, method=method, attrs=attrs)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err


def _scattered_or_raise(
    path: Path,
    points: np.ndarray,
    values: np.ndarray,
    names: tuple[str, ...],
    attrs: dict[str, Any],
) -> ScatteredData:
    try:
        return ScatteredData(points, values, names, attrs=attrs)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err
