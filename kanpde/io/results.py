"""The value a solve returns, and its files.

A :class:`Result` holds everything a finished (or stopped) run produced: the summary
numbers, the histories, the fields on the evaluation set, the trained model's state and
the specification needed to rebuild it, the resolved configuration and the versions.

:func:`save_result` writes a run directory, :func:`load_result` reads it back:

``summary.json``
    the summary dict as standard JSON (sorted keys, indent 2; numpy scalars become numbers,
    arrays lists, NaN and infinities ``null``).

``result.h5`` (HDF5, written with h5py)::

    /                       attrs: format = "kanpde-result", format_version = 2,
                                   problem_path (str: absolute, resolved)
    /problem_source         str dataset: the problem file's text when the run started
                            (absent when the problem was built in Python)
    /summary                str dataset: JSON of the summary (NaN/Infinity kept, as Python's
                            json module writes them, so the round trip is exact)
    /config                 str dataset: JSON of the resolved solver configuration
    /versions               str dataset: JSON {package: version}
    /fields/                attrs: coords, fields (JSON lists of names), time (name or ""),
                                   bounds (JSON [lo, hi]: the domain's bounding box; absent
                                   in results written before it was stored)
        points              (M, d)  evaluation points
        prediction          (M, m)  model values
        reference           (M, m)  exact/reference values
        error               (M, m)  prediction - reference, gauge fields less their mean
                                    (derived; ignored on load)
    /history/               one 1-D dataset per history key, in insertion order; the dataset
                            name is the key percent-encoded (``"loss/pde"`` ->
                            ``"loss%2Fpde"``, because ``"loss"`` is itself a dataset) and the
                            original key is kept in the dataset's ``key`` attribute
    /model/                 attrs: spec (JSON of the model specification: the resolved
                            constructor arguments, :mod:`kanpde.nn.spec`)
        state/              attrs: _kanpde_state_order (JSON list of all state_dict keys, in
                            order) and one attribute per non-array entry (e.g. a KAN layer's
                            ``layers.0._extra_state``) holding its JSON
            <key>           one dataset per array entry, dtype as stored (percent-encoded
                            name if the key contains ``/`` or ``%``)

Datasets are only written for arrays that are present (``points`` etc. may be ``None``).
Both files are written atomically (:mod:`kanpde.io.atomic`), so an interrupted write never
leaves a broken ``result.h5``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import numpy as np

from kanpde.io.atomic import atomic_write, atomic_write_text

#: keys every summary has (the contract of ``summary.json``)
SUMMARY_KEYS = (
    "problem", "solver", "model", "n_params", "l2_rel", "max_abs_err", "mse", "steps",
    "wall_time_s", "final_loss", "status", "engine", "dtype", "device", "seed",
)

#: value of the root ``format`` attribute of a kanpde ``result.h5``
FORMAT = "kanpde-result"
#: version of the HDF5 layout written by :func:`save_result` (2: the problem file's source
#: and a model spec of constructor arguments)
FORMAT_VERSION = 2
SUMMARY_FILE = "summary.json"
ORDER_ATTR = "_kanpde_state_order"
RESULT_FILE = "result.h5"


class Status(StrEnum):
    """How a run ended (``summary["status"]`` holds its value as a string)."""

    OK = "ok"
    """trained through all stages (or stopped by convergence tests)"""
    DIVERGED = "diverged"
    """three non-finite or exploding losses in a row"""
    INTERRUPTED = "interrupted"
    """stopped by Ctrl-C, SIGTERM or a callback; the checkpoint is written"""
    MAX_TIME = "max_time"
    """stopped at the run's time cap ``max_time_s``"""
    NO_METRICS = "no_metrics"
    """trained, but the error metrics could not be computed (e.g. a NaN exact solution)"""


@dataclass
class Result:
    """Everything a run produced.

    Attributes:
        summary: the scalar record, at least :data:`SUMMARY_KEYS` (``status`` is the value
            of a :class:`Status`), plus e.g. ``h1_rel``,
            ``unknowns``, per-stage notes (``stages``: list of dicts with ``optimizer``,
            ``steps_planned``, ``steps_run``, ``stopped`` = ``"budget"|"converged"|...``,
            and optionally ``start_step``, the global step at which the stage began).
        history: named 1-D arrays of equal length per group: ``step``, ``loss``,
            ``loss/<term>``, ``lr``, ``time_s``; and the evaluation history ``eval_step``,
            ``eval_l2_rel``, ``eval_max_abs_err``, ``eval_mse`` and the same per field
            (``eval_l2_rel/<field>``, ...; none without a solution to measure against).
        points: ``(M, d)`` evaluation points.
        prediction: ``(M, m)`` model values there.
        reference: ``(M, m)`` exact or reference values there (``None`` when the problem has
            neither).
        model_spec: how to rebuild the model (``kind``, widths, grid sizes, ...).
        model_state: the model's ``state_dict`` as numpy arrays (see
            :func:`kanpde.training.model.model_state_numpy`); non-tensor entries such as a
            KAN layer's ``_extra_state`` dict are kept as they are.
        config: the resolved solver configuration (plain dict, TOML-like).
        problem_path: the problem file the run used (absolute, resolved).
        problem_source: that file's text when the run started ("" when the problem was built
            in Python).
        versions: ``kanpde``, ``torch``, ``python``, ... versions.
        coords: coordinate names of the columns of ``points`` (the problem's ``coords``,
            time last); empty when unknown (readers then use ``x0, x1, ...``).
        fields: field names of the columns of ``prediction`` (the problem's ``fields``);
            empty when unknown (readers then use ``u0, u1, ...``, or ``u`` for one field).
        time: name of the time coordinate, or ``None``.
        bounds: the domain's bounding box ``(lo, hi)``, one number per coordinate, or
            ``None`` when unknown (see :meth:`domain_box`).
        model: the trained model itself, when the result comes from
            :func:`kanpde.solve` in this process (not stored in ``result.h5``; a loaded
            result rebuilds kanpde's networks from ``model_spec`` and ``model_state``).
    """

    summary: dict[str, Any]
    history: dict[str, np.ndarray] = field(default_factory=dict)
    points: np.ndarray | None = None
    prediction: np.ndarray | None = None
    reference: np.ndarray | None = None
    model_spec: dict[str, Any] = field(default_factory=dict)
    model_state: dict[str, np.ndarray] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    problem_path: str = ""
    problem_source: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    coords: tuple[str, ...] = ()
    fields: tuple[str, ...] = ()
    time: str | None = None
    bounds: tuple[tuple[float, ...], tuple[float, ...]] | None = None
    model: Any = field(default=None, repr=False, compare=False)

    @property
    def status(self) -> Status | None:
        """How the run ended (``None`` when the summary names no known status)."""
        try:
            return Status(self.summary.get("status"))
        except ValueError:
            return None

    def predict(self, x: Any, *, batch_size: int | None = None) -> np.ndarray:
        """The trained model's values ``(N, m)`` (float64) at points ``x`` ``(N, d)`` (an
        array or a tensor; coordinates in the problem's order), in batches, without
        gradients.

        Raises:
            ValueError: no model in memory and none can be rebuilt from the result.
        """
        from kanpde.io.points import predict

        if self.model is None:
            self.model = self.rebuild_model()
        if hasattr(x, "detach"):
            x = x.detach().cpu().numpy()
        return predict(self.model, np.asarray(x, dtype=np.float64), batch_size=batch_size)

    def rebuild_model(self, hard_constraint=None):
        """The trained model, rebuilt from ``model_spec`` and ``model_state``
        (:func:`kanpde.nn.spec.model_from_spec`).

        Args:
            hard_constraint: ``net -> model`` of the run's problem, needed when the model
                has a hard constraint (:func:`kanpde.io.run.load_run` supplies it).

        Raises:
            ValueError: the spec does not describe a model kanpde can rebuild (a model of the
                caller's own class, an earlier spec format) or has a hard constraint and
                none is given.
        """
        from kanpde.nn.spec import model_from_spec

        return model_from_spec(self.model_spec, self.model_state,
                               hard_constraint=hard_constraint)

    @property
    def error(self) -> np.ndarray | None:
        """``(M, m)`` pointwise error ``prediction - reference``; a gauge field's
        (``summary["gauge"]``: determined up to a constant) less its mean, as its metrics
        measure it."""
        if self.prediction is None or self.reference is None:
            return None
        err = self.prediction - self.reference
        gauge = [j for j, f in enumerate(self.field_names()) if f in
                 (self.summary.get("gauge") or ())]
        if gauge and err.ndim == 2 and err.shape[0]:
            err = err.copy()
            err[:, gauge] -= err[:, gauge].mean(axis=0)
        return err

    def domain_box(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The domain's bounding box ``(lo, hi)`` (float64 arrays of length ``d``): the stored
        :attr:`bounds`, else the box of the evaluation points (results written before the
        bounds were stored), else ``None``."""
        if self.bounds is not None:
            lo, hi = self.bounds
            return np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)
        if self.points is None or np.asarray(self.points).size == 0:
            return None
        pts = np.asarray(self.points, dtype=np.float64)
        pts = pts[:, None] if pts.ndim == 1 else pts
        return pts.min(axis=0), pts.max(axis=0)

    def coord_names(self) -> tuple[str, ...]:
        """Names of the ``d`` coordinates: :attr:`coords`, else ``("x0", "x1", ...)``."""
        d = 0 if self.points is None else _columns(self.points)
        if self.coords and (d == 0 or len(self.coords) == d):
            return tuple(self.coords)
        return tuple(f"x{i}" for i in range(d))

    def field_names(self) -> tuple[str, ...]:
        """Names of the ``m`` fields: :attr:`fields`, else ``("u",)`` or ``("u0", ...)``."""
        arr = self.prediction if self.prediction is not None else self.reference
        m = 0 if arr is None else _columns(arr)
        if self.fields and (m == 0 or len(self.fields) == m):
            return tuple(self.fields)
        return ("u",) if m == 1 else tuple(f"u{j}" for j in range(m))


def _columns(arr: np.ndarray) -> int:
    arr = np.asarray(arr)
    return 1 if arr.ndim < 2 else int(arr.shape[1])


# ------------------------------------------------------------------------------ JSON -------

def to_jsonable(obj: Any, *, nan: bool = False, where: str = "value") -> Any:
    """A plain-JSON copy of ``obj``.

    Numpy and torch scalars become Python numbers, arrays/tensors (nested) lists, tuples
    lists, paths strings, mapping keys strings. Non-finite floats become ``None`` unless
    ``nan`` is true (then they stay floats, for Python's non-standard ``NaN``/``Infinity``).

    Raises:
        TypeError: for objects with no JSON form, naming where (``where`` is the root's name).
    """
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        value = float(obj)
        return value if (nan or math.isfinite(value)) else None
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v, nan=nan, where=f"{where}[{k!r}]") for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v, nan=nan, where=f"{where}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if hasattr(obj, "detach") and hasattr(obj, "cpu"):  # torch tensor
        obj = obj.detach().cpu().numpy()
    if isinstance(obj, (np.ndarray, np.generic)):
        return to_jsonable(obj.tolist(), nan=nan, where=where)
    raise TypeError(f"{where}: cannot store {type(obj).__name__} as JSON")


def _dumps(obj: Any, where: str) -> str:
    """JSON text of ``obj`` for the HDF5 file (non-finite floats kept as NaN/Infinity)."""
    return json.dumps(to_jsonable(obj, nan=True, where=where), sort_keys=True)


# ------------------------------------------------------------------------------ state ------

def model_state_to_torch(result: Result) -> dict[str, Any]:
    """The model's ``state_dict`` for ``model.load_state_dict(...)``.

    Arrays become CPU tensors of the stored dtype (float64 stays float64, float32 stays
    float32); non-array entries (``_extra_state`` dicts) are returned as they are.
    """
    import torch

    state: dict[str, Any] = {}
    for key, value in result.model_state.items():
        if isinstance(value, np.ndarray):
            state[key] = torch.from_numpy(np.array(value, copy=True))
        elif isinstance(value, np.generic):
            state[key] = torch.from_numpy(np.asarray(value).copy())
        else:
            state[key] = value
    return state


# ------------------------------------------------------------------------------ files ------

def _h5_name(key: str) -> str:
    """An HDF5-safe link name for ``key``: percent-encoded (``"loss/pde"`` ->
    ``"loss%2Fpde"``), ``"."`` and ``".."`` encoded too."""
    if not key:
        raise ValueError("empty names cannot be stored in HDF5")
    name = quote(key, safe="")
    return name.replace(".", "%2E") if name in (".", "..") else name


def _str_dataset(group, name: str, text: str) -> None:
    import h5py

    group.create_dataset(name, data=text, dtype=h5py.string_dtype("utf-8"))


def _read_str(group, name: str, default: str = "null") -> str:
    if name not in group:
        return default
    value = group[name][()]
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _write_h5(result: Result, path: Path) -> None:
    import h5py

    with h5py.File(path, "w", track_order=True) as f:
        f.attrs["format"] = FORMAT
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["problem_path"] = str(result.problem_path)
        if result.problem_source:
            _str_dataset(f, "problem_source", result.problem_source)
        _str_dataset(f, "summary", _dumps(result.summary, "summary"))
        _str_dataset(f, "config", _dumps(result.config, "config"))
        _str_dataset(f, "versions", _dumps(result.versions, "versions"))

        fields = f.create_group("fields")
        fields.attrs["coords"] = json.dumps(list(result.coords))
        fields.attrs["fields"] = json.dumps(list(result.fields))
        fields.attrs["time"] = result.time or ""
        if result.bounds is not None:
            fields.attrs["bounds"] = json.dumps([[float(v) for v in side]
                                                 for side in result.bounds])
        arrays = {"points": result.points, "prediction": result.prediction,
                  "reference": result.reference, "error": result.error}
        for name, arr in arrays.items():
            if arr is not None:
                fields.create_dataset(name, data=np.asarray(arr))

        history = f.create_group("history", track_order=True)
        for key, arr in result.history.items():
            ds = history.create_dataset(_h5_name(key), data=np.asarray(arr))
            ds.attrs["key"] = key

        model = f.create_group("model")
        model.attrs["spec"] = _dumps(result.model_spec, "model_spec")
        state = model.create_group("state", track_order=True)
        state.attrs[ORDER_ATTR] = json.dumps(list(result.model_state))
        for key, value in result.model_state.items():
            if hasattr(value, "detach") and hasattr(value, "cpu"):  # a tensor slipped in
                value = value.detach().cpu().numpy()
            if isinstance(value, (np.ndarray, np.generic)):
                state.create_dataset(_h5_name(key), data=np.asarray(value))
            else:
                state.attrs[key] = _dumps(value, f"model_state[{key!r}]")


def save_result(result: Result, out_dir: str | os.PathLike) -> None:
    """Write ``out_dir/summary.json`` and ``out_dir/result.h5`` (created if needed).

    Both files are written atomically (temporary file in ``out_dir``, then
    :func:`os.replace`); see the module docstring for the HDF5 layout.

    Raises:
        TypeError: a summary, config, spec or extra-state entry has no JSON form.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary_text = json.dumps(to_jsonable(result.summary, where="summary"), sort_keys=True,
                              indent=2, allow_nan=False) + "\n"
    atomic_write(out / RESULT_FILE, lambda p: _write_h5(result, p))
    atomic_write_text(out / SUMMARY_FILE, summary_text)


def _result_path(out_dir: str | os.PathLike) -> Path:
    path = Path(out_dir)
    if path.suffix == ".h5" and not path.is_dir():
        if not path.is_file():
            raise FileNotFoundError(f"result file '{path}' not found")
        return path
    if not path.is_dir():
        raise FileNotFoundError(f"result directory '{path}' not found")
    file = path / RESULT_FILE
    if not file.is_file():
        raise FileNotFoundError(f"result file '{file}' not found (not a kanpde run directory?)")
    return file


def load_result(out_dir: str | os.PathLike) -> Result:
    """Read a run directory written by :func:`save_result` (or its ``result.h5`` directly).

    Arrays come back exactly as saved (values and dtypes).

    Raises:
        FileNotFoundError: the directory or its ``result.h5`` does not exist (named).
        ValueError: the file is not a readable kanpde result (named).
    """
    import h5py

    path = _result_path(out_dir)
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise ValueError(f"'{path}' is not a kanpde result (not an HDF5 file: {err})") from err
    with f:
        if f.attrs.get("format") != FORMAT:
            raise ValueError(f"'{path}' is not a kanpde result (no format='{FORMAT}' "
                             "attribute)")
        version = int(f.attrs.get("format_version", 0))
        if version > FORMAT_VERSION:
            raise ValueError(f"'{path}': result format version {version} is newer than "
                             f"this kanpde reads ({FORMAT_VERSION})")
        try:
            return _read_h5(f)
        except (KeyError, json.JSONDecodeError) as err:
            raise ValueError(f"'{path}': damaged kanpde result ({err})") from err


def _read_h5(f) -> Result:
    fields = f["fields"]

    def arr(name: str) -> np.ndarray | None:
        return fields[name][()] if name in fields else None

    history = {}
    for name, ds in f["history"].items():
        history[str(ds.attrs.get("key", unquote(name)))] = ds[()]

    model = f["model"]
    state_group = model["state"]
    order = json.loads(state_group.attrs.get(ORDER_ATTR, "[]"))
    state: dict[str, Any] = {}
    for key in order:
        name = _h5_name(key)
        if name in state_group:
            state[key] = np.asarray(state_group[name][()])  # 0-d stays an array
        else:
            state[key] = json.loads(state_group.attrs[key])
    for name, ds in state_group.items():  # datasets missing from the order list (hand edits)
        state.setdefault(unquote(name), np.asarray(ds[()]))
    time = str(fields.attrs.get("time", ""))
    bounds = json.loads(fields.attrs["bounds"]) if "bounds" in fields.attrs else None
    return Result(
        summary=json.loads(_read_str(f, "summary", "{}")),
        history=history,
        points=arr("points"),
        prediction=arr("prediction"),
        reference=arr("reference"),
        model_spec=json.loads(model.attrs.get("spec", "{}")),
        model_state=state,
        config=json.loads(_read_str(f, "config", "{}")),
        problem_path=str(f.attrs.get("problem_path", "")),
        problem_source=_read_str(f, "problem_source", ""),
        versions=json.loads(_read_str(f, "versions", "{}")),
        coords=tuple(json.loads(fields.attrs.get("coords", "[]"))),
        fields=tuple(json.loads(fields.attrs.get("fields", "[]"))),
        time=time or None,
        bounds=None if bounds is None else (tuple(bounds[0]), tuple(bounds[1])),
    )


def load_summary(out_dir: str | os.PathLike) -> dict[str, Any]:
    """The ``summary.json`` of a run directory (cheap: does not open ``result.h5``).

    Raises:
        FileNotFoundError: no ``summary.json`` there (named).
        ValueError: it is not valid JSON (named).
    """
    path = Path(out_dir) / SUMMARY_FILE
    if not path.is_file():
        raise FileNotFoundError(f"summary file '{path}' not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"'{path}' is not valid JSON: {err}") from err
