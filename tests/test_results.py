"""Result files: save/load round trip (exact arrays, model state into a fresh model), error
handling, atomic writes; field export for ParaView (read back with meshio); predictions on
points read from files."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import meshio
import numpy as np
import pytest
import torch

from kanpde import KAN, MLP, load_problem
from kanpde.io import results as results_mod
from kanpde.io.mesh_export import export_fields, grid_axes, structured_cells
from kanpde.io.points import predict, predict_points, read_points, write_predictions
from kanpde.io.results import (
    SUMMARY_KEYS,
    Result,
    load_result,
    load_summary,
    model_state_to_torch,
    save_result,
    to_jsonable,
)
from kanpde.training.model import model_state_numpy

PROBLEMS = Path(__file__).resolve().parent.parent / "problems"


def _summary(**extra) -> dict:
    base = {k: None for k in SUMMARY_KEYS}
    base.update(problem="poisson2d_sinsin", solver="kan_small", model="kan", n_params=np.int64(42),
                l2_rel=np.float64(1.5e-3), max_abs_err=float("nan"), mse=np.float32(2.5),
                steps=100, wall_time_s=1.25, final_loss=float("inf"), status="ok",
                engine="jet", dtype="float64", device="cpu", seed=0,
                stages=[{"optimizer": "adam", "steps_planned": 60, "steps_run": 60,
                         "stopped": "budget"},
                        {"optimizer": "lbfgs", "steps_planned": 40, "steps_run": 40,
                         "stopped": "converged"}])
    base.update(extra)
    return base


def _kan_result(grid_size: int = 5, dtype=torch.float64) -> tuple[Result, KAN]:
    model = KAN([2, 4, 1], grid_size=grid_size, seed=3, dtype=dtype)
    gen = torch.Generator().manual_seed(1)
    model.update_grid(torch.rand(64, 2, generator=gen, dtype=dtype) * 2 - 1)  # non-uniform
    pts = np.random.default_rng(0).uniform(-1, 1, size=(50, 2))
    with torch.no_grad():
        pred = model(torch.as_tensor(pts, dtype=dtype)).numpy()
    steps = np.arange(10)
    history = {"step": steps, "loss": np.linspace(1, 0.1, 10), "loss/pde": np.linspace(1, .2, 10),
               "loss/bc%1": np.full(10, 0.5), "lr": np.full(10, 1e-3),
               "eval_step": np.array([0, 5, 9]), "eval_l2_rel": np.array([1.0, 0.1, 0.01])}
    result = Result(
        summary=_summary(), history=history, points=pts, prediction=pred,
        reference=np.sin(pts[:, :1]), model_spec={"kind": "kan", "widths": [2, 4, 1],
                                                   "grid_size": grid_size, "seed": 3},
        model_state=model_state_numpy(model),
        config={"model": {"kind": "kan", "grid_size": grid_size},
                "stages": [{"optimizer": "adam", "lr": 1e-3}]},
        problem_path="problems/poisson2d_sinsin.py",
        versions={"kanpde": "0.1.0", "torch": torch.__version__},
        coords=("x", "y"), fields=("u",))
    return result, model


# ------------------------------------------------------------------------------ results ----

def test_round_trip_exact(tmp_path):
    result, _ = _kan_result()
    save_result(result, tmp_path / "run")
    back = load_result(tmp_path / "run")
    for name in ("points", "prediction", "reference"):
        a, b = getattr(result, name), getattr(back, name)
        assert b.dtype == a.dtype and np.array_equal(a, b)
    assert list(back.history) == list(result.history)  # order kept, "/" and "%" keys intact
    for key, arr in result.history.items():
        assert back.history[key].dtype == arr.dtype and np.array_equal(back.history[key], arr)
    assert list(back.model_state) == list(result.model_state)
    for key, value in result.model_state.items():
        if isinstance(value, np.ndarray):
            assert np.array_equal(back.model_state[key], value)
            assert back.model_state[key].dtype == value.dtype
        else:
            assert back.model_state[key] == value  # _extra_state dicts
    assert back.model_spec == result.model_spec
    assert back.config == result.config
    assert back.versions == result.versions
    assert back.problem_path == result.problem_path
    assert back.coords == ("x", "y") and back.fields == ("u",) and back.time is None
    assert back.summary["n_params"] == 42 and back.summary["l2_rel"] == 1.5e-3
    assert np.isnan(back.summary["max_abs_err"]) and back.summary["final_loss"] == np.inf
    assert back.summary["stages"] == result.summary["stages"]
    np.testing.assert_array_equal(back.error, result.error)
    with h5py.File(tmp_path / "run" / "result.h5") as f:  # documented layout
        assert f.attrs["format"] == "kanpde-result"
        assert f["history/loss%2Fpde"].attrs["key"] == "loss/pde"
        assert np.array_equal(f["fields/error"][()], result.error)
        assert json.loads(f["model/state"].attrs["layers.0._extra_state"]) == {
            "uniform": False, "k": 3}
        assert json.loads(f["model"].attrs["spec"])["kind"] == "kan"


def test_summary_json_is_strict_sorted(tmp_path):
    result, _ = _kan_result()
    save_result(result, tmp_path)
    text = (tmp_path / "summary.json").read_text()

    def reject(name):
        raise AssertionError(f"non-standard JSON constant {name}")

    summary = json.loads(text, parse_constant=reject)
    assert list(summary) == sorted(summary)
    assert set(SUMMARY_KEYS) <= set(summary)
    assert summary["max_abs_err"] is None and summary["final_loss"] is None  # NaN, inf
    assert summary["mse"] == 2.5 and isinstance(summary["n_params"], int)
    assert text.startswith('{\n  "')  # indent 2
    assert load_summary(tmp_path) == summary


def test_state_into_model_of_other_grid_size(tmp_path):
    result, model = _kan_result(grid_size=5)
    save_result(result, tmp_path)
    fresh = KAN([2, 4, 1], grid_size=9, seed=11)  # other G, other initial values
    fresh.load_state_dict(model_state_to_torch(load_result(tmp_path)))
    assert fresh.layers[0].grid_size == 5 and not fresh.layers[0].uniform
    x = torch.rand(200, 2, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    x = 2.4 * x - 1.2  # also outside the grid
    with torch.no_grad():
        assert torch.equal(fresh(x), model(x))
    state = model_state_to_torch(load_result(tmp_path))
    assert state["layers.0.coef"].dtype == torch.float64
    assert state["layers.0._extra_state"] == {"uniform": False, "k": 3}


def test_float32_mlp_state(tmp_path):
    model = MLP([3, 8, 2], activation="sin", dtype=torch.float32, seed=2)
    model.register_buffer("scalar", torch.tensor(0.25, dtype=torch.float32))  # a 0-d entry
    result = Result(summary=_summary(model="mlp"), model_state=model_state_numpy(model))
    save_result(result, tmp_path)
    assert load_result(tmp_path).model_state["scalar"].shape == ()
    state = model_state_to_torch(load_result(tmp_path))
    assert all(v.dtype == torch.float32 for v in state.values())
    assert state["scalar"].shape == () and float(state["scalar"]) == 0.25
    fresh = MLP([3, 8, 2], activation="sin", dtype=torch.float32, seed=9)
    fresh.register_buffer("scalar", torch.tensor(0.0, dtype=torch.float32))
    fresh.load_state_dict(state)
    x = torch.rand(16, 3)
    assert torch.equal(fresh(x), model(x))


def test_minimal_result(tmp_path):
    save_result(Result(summary={"status": "diverged", "l2_rel": float("nan")}), tmp_path)
    back = load_result(tmp_path)
    assert back.points is None and back.prediction is None and back.history == {}
    assert back.model_state == {} and back.summary["status"] == "diverged"
    assert np.isnan(back.summary["l2_rel"])
    assert back.coord_names() == () and back.field_names() == ()


def test_missing_and_foreign_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_result(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="result.h5"):
        load_result(tmp_path)
    (tmp_path / "result.h5").write_text("not hdf5")
    with pytest.raises(ValueError, match="result.h5.*not a kanpde result"):
        load_result(tmp_path)
    with h5py.File(tmp_path / "result.h5", "w") as f:
        f["x"] = 1.0
    with pytest.raises(ValueError, match="not a kanpde result"):
        load_result(tmp_path)
    with pytest.raises(FileNotFoundError, match="summary.json"):
        load_summary(tmp_path)


def test_interrupted_write_keeps_old_file(tmp_path, monkeypatch):
    result, _ = _kan_result()
    save_result(result, tmp_path)
    before = (tmp_path / "result.h5").read_bytes()

    def broken(res, path):
        with h5py.File(path, "w") as f:
            f["partial"] = 1
        raise KeyboardInterrupt

    monkeypatch.setattr(results_mod, "_write_h5", broken)
    with pytest.raises(KeyboardInterrupt):
        save_result(result, tmp_path)
    assert (tmp_path / "result.h5").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.h5", "summary.json"]


def test_unstorable_values_named():
    with pytest.raises(TypeError, match=r"summary\['bad'\]"):
        to_jsonable({"ok": 1, "bad": object()}, where="summary")
    assert to_jsonable({"a": (np.float32(0.5), torch.tensor([1, 2]))}) == {"a": [0.5, [1, 2]]}


# ------------------------------------------------------------------------------ export -----

def _areas(p: np.ndarray) -> np.ndarray:
    """Signed areas ``(T,)`` of triangles ``(T, 3, 2)``."""
    u, v = p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]
    return 0.5 * (u[:, 0] * v[:, 1] - u[:, 1] * v[:, 0])


def _problem_result(name: str, points: np.ndarray | None = None) -> tuple[Result, object]:
    problem = load_problem(PROBLEMS / f"{name}.py")
    x = problem.evaluation_points() if points is None else torch.as_tensor(points)
    ref = problem.solution(x).numpy()
    pred = ref + 0.01 * np.cos(3 * x.numpy().sum(axis=1, keepdims=True))
    result = Result(summary=_summary(problem=name), points=x.numpy(), prediction=pred,
                    reference=ref, coords=problem.coords, fields=problem.fields,
                    time=problem.time)
    return result, problem


@pytest.mark.parametrize("fmt", ["vtu", "xdmf"])
def test_export_grid_round_trip(tmp_path, fmt):
    result, problem = _problem_result("kovasznay")
    paths = export_fields(result, problem, tmp_path, fmt=fmt)
    assert paths[0] == tmp_path / f"fields.{fmt}" and all(p.is_file() for p in paths)
    mesh = meshio.read(paths[0])
    np.testing.assert_array_equal(mesh.points[:, :2], result.points)
    assert np.all(mesh.points[:, 2] == 0)
    tri = mesh.cells_dict["triangle"]
    assert tri.shape[0] == 2 * 100 * 100  # full 101 x 101 grid: two triangles per quad
    for j, f in enumerate(problem.fields):
        np.testing.assert_array_equal(mesh.point_data[f], result.prediction[:, j])
        np.testing.assert_array_equal(mesh.point_data[f"{f}_reference"], result.reference[:, j])
        np.testing.assert_array_equal(mesh.point_data[f"{f}_error"], result.error[:, j])
    # triangles are counter-clockwise and tile the box
    p = mesh.points[tri][..., :2]
    area = _areas(p)
    assert np.all(area > 0) and area.sum() == pytest.approx(1.5 * 2.0)


def test_export_space_time_and_1d(tmp_path):
    result, problem = _problem_result("heat1d")
    path = export_fields(result, problem, tmp_path / "st")[0]
    mesh = meshio.read(path)
    assert "triangle" in mesh.cells_dict
    np.testing.assert_array_equal(mesh.point_data["t"], result.points[:, 1])
    x = np.linspace(0, 1, 33)[::-1, None]
    res1 = Result(summary={}, points=x, prediction=x**2, reference=x**2 + 1e-3)
    path = export_fields(res1, None, tmp_path / "line", fmt="xdmf")[0]
    mesh = meshio.read(path)
    lines = mesh.cells_dict["line"]
    assert lines.shape == (32, 2)
    assert np.all(np.abs(np.diff(mesh.points[lines][..., 0], axis=1)) == pytest.approx(1 / 32))
    np.testing.assert_allclose(mesh.point_data["u_error"], -1e-3)


def test_export_mesh_domain(tmp_path):
    # evaluation grid on the L-shape: triangulated grid, trimmed at the re-entrant corner
    result, problem = _problem_result("poisson_mesh")
    mesh = meshio.read(export_fields(result, problem, tmp_path / "grid")[0])
    tri = mesh.cells_dict["triangle"]
    centroids = mesh.points[tri].mean(axis=1)
    assert not np.any((centroids[:, 0] > 1e-9) & (centroids[:, 1] < -1e-9))
    p = mesh.points[tri][..., :2]
    area = _areas(p)
    assert area.sum() == pytest.approx(3.0)
    # evaluation points = the mesh vertices, shuffled: the mesh's own cells
    verts = np.asarray(problem.domain.mesh.points)
    perm = np.random.default_rng(0).permutation(verts.shape[0])
    res_v, _ = _problem_result("poisson_mesh", verts[perm])
    mesh = meshio.read(export_fields(res_v, problem, tmp_path / "verts")[0])
    np.testing.assert_array_equal(mesh.cells_dict["triangle"],
                                  np.asarray(problem.domain.mesh.cells[0].data))
    np.testing.assert_array_equal(mesh.points[:, :2], verts)
    np.testing.assert_array_equal(mesh.point_data["u"], res_v.prediction[np.argsort(perm), 0])
    # with a model: also written on the mesh vertices
    model = KAN([2, 3, 1], grid_size=3)
    paths = export_fields(result, problem, tmp_path / "m", model=model)
    mesh = meshio.read(paths[-1])
    assert paths[-1].name == "fields_mesh.vtu"
    np.testing.assert_allclose(mesh.point_data["u"], predict(model, verts)[:, 0])


def test_export_scattered_and_high_dim(tmp_path):
    rng = np.random.default_rng(0)
    pts = rng.uniform(size=(300, 5))
    res = Result(summary={}, points=pts, prediction=pts[:, :1], reference=pts[:, :1] * 0,
                 coords=("a", "b", "c", "d", "e"))
    mesh = meshio.read(export_fields(res, None, tmp_path)[0])
    assert mesh.cells_dict["vertex"].shape == (300, 1)
    np.testing.assert_array_equal(mesh.points, pts[:, :3])
    np.testing.assert_array_equal(mesh.point_data["e"], pts[:, 4])
    with pytest.raises(ValueError, match="format"):
        export_fields(res, None, tmp_path, fmt="vtk")
    assert grid_axes(rng.uniform(size=(50, 2))) is None
    assert structured_cells(rng.uniform(size=(50, 3))) is None


def test_grid_triangles_follow_disk():
    g = np.linspace(-1, 1, 41)
    pts = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    pts = pts[(pts**2).sum(1) <= 1]
    kind, tri = structured_cells(pts)
    p = pts[tri]
    area = _areas(p)
    assert kind == "triangle" and np.all(area > 0)
    assert 0 < np.pi - area.sum() < 2 * np.pi * 0.05  # inside the disk, within one cell
    gx, gy = np.meshgrid(g, g, indexing="ij")
    inside = gx**2 + gy**2 <= 1
    full = (inside[:-1, :-1] & inside[1:, :-1] & inside[1:, 1:] & inside[:-1, 1:]).sum()
    three = (inside[:-1, :-1].astype(int) + inside[1:, :-1] + inside[1:, 1:]
             + inside[:-1, 1:] == 3).sum()
    assert len(tri) == 2 * full + three > 2 * full  # rim cells with three corners add one


# ------------------------------------------------------------------------------ predict ----

def test_predict_points_formats(tmp_path):
    model = KAN([2, 3, 2], grid_size=4)
    pts = np.random.default_rng(1).uniform(-1, 1, size=(20, 2))
    want = predict(model, pts)
    with torch.no_grad():
        np.testing.assert_array_equal(want, model(torch.as_tensor(pts)).numpy())
    np.testing.assert_allclose(predict(model, pts, batch_size=7), want, rtol=1e-13, atol=1e-15)
    np.save(tmp_path / "p.npy", pts)
    np.savetxt(tmp_path / "p.csv", pts, delimiter=",", header="x,y", comments="", fmt="%.17g")
    np.savetxt(tmp_path / "q.csv", pts, delimiter=",", fmt="%.17g")
    with h5py.File(tmp_path / "p.h5", "w") as f:
        f["points"] = pts
    for name in ("p.npy", "p.csv", "q.csv", "p.h5"):
        np.testing.assert_array_equal(predict_points(model, tmp_path / name), want)
    for name in ("out.npy", "out.csv", "out.h5"):
        path = write_predictions(want, tmp_path / name, points=pts, coords=["x", "y"],
                                 fields=["u", "v"])
        if name.endswith(".npy"):  # the CSV's columns: coordinates, then fields
            table = np.load(path)
        elif name.endswith(".csv"):
            assert path.read_text().splitlines()[0] == "x,y,u,v"
            table = read_points(path)
        else:
            with h5py.File(path) as f:
                table = np.concatenate([f["points"][()], f["prediction"][()]], axis=1)
                assert list(f.attrs["fields"]) == ["u", "v"]
                assert list(f.attrs["coords"]) == ["x", "y"]
        np.testing.assert_array_equal(table, np.concatenate([pts, want], axis=1))
    # without points only the values: (N, m)
    np.testing.assert_array_equal(np.load(write_predictions(want, tmp_path / "v.npy")), want)


def test_outside_box_counts_points_beyond_the_bounds_not_on_them():
    from kanpde.io.points import outside_box

    pts = np.array([[0.0, 0.0], [1.0, 1.0 + 1e-14], [0.5, -1.0], [1.5, 0.5], [0.2, 0.3]])
    assert outside_box(pts, [0.0, 0.0], [1.0, 1.0]).tolist() == [False, False, True, True,
                                                                  False]


def test_read_points_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.npy"):
        read_points(tmp_path / "missing.npy")
    np.save(tmp_path / "bad.npy", np.zeros((4, 3)))
    with pytest.raises(ValueError, match="bad.npy.*3 coordinates.*expects 2"):
        predict_points(KAN([2, 3, 1]), tmp_path / "bad.npy")
    np.save(tmp_path / "cube.npy", np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="cube.npy.*shape"):
        read_points(tmp_path / "cube.npy")
    (tmp_path / "ragged.csv").write_text("x,y\n1,2\n3\n")
    with pytest.raises(ValueError, match="ragged.csv"):
        read_points(tmp_path / "ragged.csv")
    with h5py.File(tmp_path / "nopts.h5", "w") as f:
        f["x"] = np.zeros((3, 2))
    with pytest.raises(ValueError, match="nopts.h5.*points"):
        read_points(tmp_path / "nopts.h5")
    (tmp_path / "p.txt").write_text("1,2\n")
    with pytest.raises(ValueError, match="p.txt.*extension"):
        read_points(tmp_path / "p.txt")
    with pytest.raises(ValueError, match="extension"):
        write_predictions(np.zeros((2, 1)), tmp_path / "o.txt")


def test_atomic_writes_get_the_permissions_of_an_ordinary_file(tmp_path):
    """Results and checkpoints are written through temporary files, yet end up with the
    permissions ``open(path, "w")`` would give them (0o666 less the umask), not 0o600."""
    import os
    import stat

    from kanpde.io.atomic import atomic_write_text
    from kanpde.training.checkpoint_file import write_checkpoint

    previous = os.umask(0o027)
    try:
        text = atomic_write_text(tmp_path / "a.txt", "x")
        save_result(Result(summary=_summary()), tmp_path / "run")
        ckpt = write_checkpoint(tmp_path / "run" / "checkpoint.pt", {"a": 1})
        ckpt = write_checkpoint(ckpt, {"a": 2})
    finally:
        os.umask(previous)
    for path in (text, tmp_path / "run" / "result.h5", tmp_path / "run" / "summary.json", ckpt,
                 tmp_path / "run" / "checkpoint.prev.pt"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o640, path
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [
        "checkpoint.prev.pt", "checkpoint.pt", "result.h5", "summary.json"]
