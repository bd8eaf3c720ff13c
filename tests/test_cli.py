"""The kanpde command end to end on tiny budgets: solve, resume, compare, plot, export,
predict, and one-line errors for bad input."""

import json
from pathlib import Path

import numpy as np
import pytest

from kanpde.cli.main import main

ROOT = Path(__file__).resolve().parents[1]
PROBLEM = str(ROOT / "problems" / "poisson2d_sinsin.py")

TINY_KAN = """
name = "kan_micro"
[model]
kind = "kan"
widths = [3]
grid_size = 3
[sampling]
interior = 64
boundary = 16
[[stages]]
optimizer = "adam"
steps = 6
lr = 0.02
[[stages]]
optimizer = "lbfgs"
steps = 3
grid_extend = 6
[evaluation]
every = 3
"""

TINY_MLP = """
name = "mlp_micro"
[model]
kind = "mlp"
widths = [8]
activation = "tanh"
[sampling]
interior = 64
boundary = 16
[[stages]]
optimizer = "adam"
steps = 6
lr = 0.01
[evaluation]
every = 3
"""


@pytest.fixture
def solvers(tmp_path):
    kan, mlp = tmp_path / "kan.toml", tmp_path / "mlp.toml"
    kan.write_text(TINY_KAN)
    mlp.write_text(TINY_MLP)
    return str(kan), str(mlp)


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("kanpde: error: ")
    return err[0]


def test_solve_plot_export_predict(tmp_path, solvers, capsys):
    out = tmp_path / "run"
    assert main(["solve", PROBLEM, "--solver", solvers[0], "--out", str(out), "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    for key in ("problem", "solver", "model", "n_params", "l2_rel", "max_abs_err", "mse",
                "steps", "wall_time_s", "final_loss", "status", "engine", "dtype", "device",
                "seed"):
        assert key in summary, key
    assert summary["model"] == "kan" and summary["status"] == "ok"
    assert summary["steps"] == 9 and summary["problem"] == "poisson2d_sinsin"
    assert (out / "result.h5").is_file()
    assert main(["plot", str(out)]) == 0
    assert (out / "solution.png").stat().st_size > 10_000
    assert main(["export", str(out), "--format", "vtu"]) == 0
    pts = tmp_path / "pts.npy"
    np.save(pts, np.array([[0.5, 0.5], [0.0, 0.1]]))
    assert main(["predict", str(out), str(pts), "--out", str(tmp_path / "pred.csv")]) == 0
    lines = (tmp_path / "pred.csv").read_text().strip().splitlines()
    assert lines[0].split(",")[-1].strip() == "u" and len(lines) == 3  # header + 2 rows
    # the run directory is never overwritten
    capsys.readouterr()
    assert main(["solve", PROBLEM, "--solver", solvers[0], "--out", str(out)]) == 2
    assert "already holds a run" in _error_line(capsys)


def test_compare_writes_table_and_keeps_finished_runs(tmp_path, solvers, capsys):
    out = tmp_path / "cmp"
    args = ["compare", PROBLEM, "--solvers", *solvers, "--seeds", "0", "1", "--out", str(out),
            "--quiet"]
    assert main(args) == 0
    doc = json.loads((out / "compare.json").read_text())
    assert [r["solver"] for r in doc["solvers"]] == ["kan_micro", "mlp_micro"]
    assert len(doc["runs"]) == 4
    assert "kan_micro" in (out / "compare.md").read_text()
    assert (out / "compare.png").stat().st_size > 10_000
    stamp = (out / "kan_micro-seed0" / "summary.json").stat().st_mtime_ns
    assert main(args) == 0  # finished runs are kept, not redone
    assert (out / "kan_micro-seed0" / "summary.json").stat().st_mtime_ns == stamp


@pytest.mark.parametrize("argv, match", [
    (["check", "nope.py"], "not found"),
    (["solve", "nope.py"], "not found"),
    (["solve", PROBLEM, "--solver", "nope.toml"], "nope.toml"),
    (["solve", PROBLEM, "--device", "cuda:7"], "device"),
    (["solve", PROBLEM, "--engine", "magic"], "engine"),
    (["plot", "no-such-run"], "no-such-run"),
])
def test_bad_input_is_one_line(argv, match, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert match in _error_line(capsys)


def test_unknown_solver_key(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("[model]\nkind = 'kan'\ngrid_sise = 5\n")
    assert main(["solve", PROBLEM, "--solver", str(bad), "--out", str(tmp_path / "o")]) == 2
    line = _error_line(capsys)
    assert "bad.toml" in line and "grid_sise" in line
    assert not (tmp_path / "o").exists()


def test_default_solver_is_the_shipped_kan_default():
    from kanpde.cli.commands import _solver_config

    assert _solver_config(None).name == "kan_default"


def test_a_run_outlives_its_problem_file(tmp_path, solvers, capsys):
    """A run directory is self-contained: predict and export work after the problem file is
    deleted, explain loads the problem from the copy stored in result.h5 and says so."""
    import shutil

    from kanpde.io.run import load_run

    problem = tmp_path / "elsewhere" / "sinsin.py"
    problem.parent.mkdir()
    shutil.copy(PROBLEM, problem)
    out = tmp_path / "run"
    assert main(["solve", str(problem), "--solver", solvers[0], "--out", str(out),
                 "--quiet"]) == 0
    run = load_run(out)
    assert run.result.problem_path == str(problem.resolve())
    assert run.result.problem_source == problem.read_text()
    assert run.result.model_spec["grid_size"] == [6, 6] and run.problem_note is None
    pts = np.random.default_rng(1).uniform(-1, 1, (9, 2))
    np.save(tmp_path / "pts.npy", pts)
    expected = run.result.predict(pts)
    problem.write_text(problem.read_text() + "\n# edited\n")
    assert "changed since run" in load_run(out).problem_note
    problem.unlink()
    capsys.readouterr()
    assert main(["predict", str(out), str(tmp_path / "pts.npy"), "--out",
                 str(tmp_path / "values.npy")]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "values.npy"),
                                  np.concatenate([pts, expected], axis=1))
    assert main(["export", str(out)]) == 0
    assert (out / "fields.vtu").is_file()
    assert main(["explain", str(out), "--out", str(tmp_path / "explained")]) == 0
    printed = capsys.readouterr().out
    assert "is gone; using the copy stored in its result.h5" in printed
    assert (tmp_path / "explained" / "explain.json").is_file()


@pytest.mark.parametrize("debug", [[], ["--debug"]])
def test_debug_keeps_the_exit_status(tmp_path, debug):
    """``--debug`` shows the traceback instead of the one line; the process exits with the
    same status (2, bad input) either way."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "kanpde", *debug, "check",
                           str(tmp_path / "nope.py")], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 2, proc.stderr
    if debug:
        assert "Traceback (most recent call last)" in proc.stderr
        assert "nope.py" in proc.stderr and "kanpde: error:" not in proc.stderr
    else:
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("kanpde: error: ") \
            and "nope.py" in lines[0]


def test_run_files_get_the_users_umask(tmp_path, solvers, capsys):
    """Under umask 022 every file of a run (checkpoints, result, summary, figures, exports,
    predictions) is 0644 and every directory 0755, so collaborators can read them."""
    import os
    import stat

    out = tmp_path / "run"
    previous = os.umask(0o022)
    try:
        assert main(["solve", PROBLEM, "--solver", solvers[0], "--out", str(out),
                     "--quiet"]) == 0
        assert main(["plot", str(out)]) == 0
        assert main(["export", str(out), "--format", "xdmf"]) == 0
        np.save(tmp_path / "pts.npy", np.array([[0.5, 0.5]]))
        assert main(["predict", str(out), str(tmp_path / "pts.npy")]) == 0
    finally:
        os.umask(previous)
    names = {p.name for p in out.rglob("*")}
    assert {"checkpoint.pt", "result.h5", "summary.json", "solution.png", "history.png",
            "fields.xdmf", "fields.h5", "predictions.npy"} <= names, names
    for path in out.rglob("*"):
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o755 if path.is_dir() else 0o644), (path, oct(mode))


@pytest.fixture(scope="module")
def heat_run(tmp_path_factory) -> Path:
    """A tiny MLP run of the shipped 1-D + time problem heat1d."""
    out = tmp_path_factory.mktemp("heat") / "run"
    assert main(["solve", str(ROOT / "problems" / "heat1d.py"), "--solver",
                 str(ROOT / "solvers" / "mlp_tiny.toml"), "--out", str(out), "--quiet"]) == 0
    return out


def test_predict_names_its_columns_and_warns_outside_the_domain(tmp_path, heat_run, capsys):
    """predict writes coordinates and values under the problem's names (x,t,u on a space-time
    problem) in every format, and warns in one line, with a count, about points outside the
    domain's bounding box, where the model extrapolates."""
    import h5py

    from kanpde.io.run import load_run

    out = heat_run
    result = load_run(out).result
    lo, hi = result.domain_box()
    assert result.bounds is not None and result.coord_names() == ("x", "t")
    inside = lo + np.random.default_rng(0).uniform(0, 1, (5, 2)) * (hi - lo)
    pts = np.concatenate([inside, [[0.5 * (lo[0] + hi[0]), lo[1] - 1.0],
                                   [hi[0] + 0.5, hi[1]]], [lo, hi]])
    np.save(tmp_path / "pts.npy", pts)
    expected = result.predict(pts)
    capsys.readouterr()
    for name in ("v.csv", "v.npy", "v.h5"):
        assert main(["predict", str(out), str(tmp_path / "pts.npy"), "--out",
                     str(tmp_path / name)]) == 0
        captured = capsys.readouterr()
        warning = captured.err.strip().splitlines()
        assert len(warning) == 1 and warning[0].startswith("kanpde: warning: ")
        assert "2 of 9 points lie outside the domain's bounding box" in warning[0]
        assert "x in [" in warning[0] and "t in [" in warning[0]
        assert "columns x,t,u" in captured.out
    lines = (tmp_path / "v.csv").read_text().splitlines()
    assert lines[0] == "x,t,u" and len(lines) == 10
    table = np.array([[float(v) for v in ln.split(",")] for ln in lines[1:]])
    np.testing.assert_array_equal(table, np.concatenate([pts, expected], axis=1))
    np.testing.assert_array_equal(np.load(tmp_path / "v.npy"), table)
    with h5py.File(tmp_path / "v.h5") as f:
        assert list(f.attrs["coords"]) == ["x", "t"] and list(f.attrs["fields"]) == ["u"]
        np.testing.assert_array_equal(f["points"][()], pts)
        np.testing.assert_array_equal(f["prediction"][()], expected)
    np.save(tmp_path / "in.npy", inside)  # inside only: no warning
    assert main(["predict", str(out), str(tmp_path / "in.npy"), "--out",
                 str(tmp_path / "w.csv")]) == 0
    assert capsys.readouterr().err == ""


def test_compare_reuses_only_runs_of_the_same_problem_and_solver(tmp_path, solvers, capsys):
    """compare reuses a finished run only when its problem source and resolved solver
    configuration are the ones it would use now (saying so per run); after the solver file
    or the problem file is edited it refuses in one line, and --rerun trains the changed runs
    again, keeping the old directories as DIR.stale-N."""
    import shutil

    problem = tmp_path / "sinsin.py"
    shutil.copy(PROBLEM, problem)
    out = tmp_path / "cmp"
    kan_dir, mlp_dir = out / "kan_micro-seed0", out / "mlp_micro-seed0"
    args = ["compare", str(problem), "--solvers", *solvers, "--out", str(out), "--quiet"]
    assert main(args) == 0
    stamps = {d: (d / "summary.json").stat().st_mtime_ns for d in (kan_dir, mlp_dir)}
    capsys.readouterr()

    assert main(args) == 0  # nothing changed: both reused, one line each
    printed = capsys.readouterr().out
    for d in (kan_dir, mlp_dir):
        assert f"reused {d} (same problem and solver)" in printed
        assert (d / "summary.json").stat().st_mtime_ns == stamps[d]

    kan = Path(solvers[0])  # edit the KAN's solver file: its run is stale
    kan.write_text(kan.read_text().replace("steps = 6", "steps = 7"))
    assert main(args) == 2
    line = _error_line(capsys)
    assert f"compare: {kan_dir} was made with another problem or solver" in line
    assert "stages[0].steps" in line and "use a new --out, or --rerun" in line
    assert (kan_dir / "summary.json").stat().st_mtime_ns == stamps[kan_dir]

    assert main([*args, "--rerun"]) == 0
    printed = capsys.readouterr().out
    assert f"moved {kan_dir} aside to {out / 'kan_micro-seed0.stale-1'}" in printed
    assert f"reused {mlp_dir} (same problem and solver)" in printed
    assert f"reused {kan_dir}" not in printed
    assert json.loads((kan_dir / "summary.json").read_text())["steps"] == 10
    old = json.loads((out / "kan_micro-seed0.stale-1" / "summary.json").read_text())
    assert old["steps"] == 9  # the old run is kept, untouched
    assert main(args) == 0 and f"reused {kan_dir}" in capsys.readouterr().out

    problem.write_text(problem.read_text() + "\n# edited\n")  # edit the problem: all stale
    assert main(args) == 2
    line = _error_line(capsys)
    assert "the problem file" in line and "changed" in line and "1 more run" in line
    assert main([*args, "--rerun"]) == 0
    printed = capsys.readouterr().out
    assert f"aside to {out / 'kan_micro-seed0.stale-2'}" in printed
    assert f"aside to {out / 'mlp_micro-seed0.stale-1'}" in printed
    assert "reused" not in printed
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == [
        "kan_micro-seed0", "kan_micro-seed0.stale-1", "kan_micro-seed0.stale-2",
        "mlp_micro-seed0", "mlp_micro-seed0.stale-1"]


def test_export_time_series_has_one_step_per_time_slice(tmp_path, heat_run, capsys):
    """A space-time run (heat1d, x and t) exports as one file with t as a second axis, or with
    --time-series as an XDMF time series or a PVD collection: one step per time value of the
    evaluation set, each holding the model's values on the spatial points at that time."""
    import re
    import shutil

    import meshio

    from kanpde.io.run import load_run

    out = tmp_path / "heat"
    shutil.copytree(heat_run, out)
    result = load_run(out).result
    pts = result.points
    times = np.unique(pts[:, 1])
    assert times.size > 2 and result.coord_names() == ("x", "t")

    def check_step(t: float, mesh_points: np.ndarray, values: np.ndarray) -> None:
        x = mesh_points[:, 0]
        assert np.all(mesh_points[:, 1:] == 0.0)  # space only: t is the step, not an axis
        np.testing.assert_allclose(values, result.predict(np.c_[x, np.full_like(x, t)])[:, 0],
                                   rtol=1e-12, atol=1e-12)
        assert x.size == np.count_nonzero(pts[:, 1] == t)

    capsys.readouterr()
    assert main(["export", str(out), "--format", "xdmf", "--time-series"]) == 0
    assert "XDMF time series" in capsys.readouterr().out
    with meshio.xdmf.TimeSeriesReader(out / "fields_series.xdmf") as reader:
        mesh_points, cells = reader.read_points_cells()
        assert reader.num_steps == times.size and cells[0].type == "line"
        for k in (0, times.size // 2, times.size - 1):
            t, data, _ = reader.read_data(k)
            assert t == times[k] and {"u", "u_reference", "u_error"} <= set(data)
            check_step(t, mesh_points, data["u"])

    assert main(["export", str(out), "--format", "vtu", "--time-series"]) == 0
    assert f"PVD collection of {times.size} VTU files" in capsys.readouterr().out
    pvd = (out / "fields_series.pvd").read_text()
    steps = re.findall(r'timestep="([^"]+)" group="" part="0" file="([^"]+)"', pvd)
    assert [float(t) for t, _ in steps] == times.tolist()
    for k in (0, times.size - 1):
        mesh = meshio.read(out / steps[k][1])
        check_step(times[k], mesh.points, mesh.point_data["u"])

    assert main(["export", str(out)]) == 0  # one file: time is the second axis
    mesh = meshio.read(out / "fields.vtu")
    assert mesh.points.shape[0] == pts.shape[0] and np.ptp(mesh.points[:, 1]) > 0
    capsys.readouterr()
    assert main(["export", str(out.parent / "no-time"), "--time-series"]) == 2  # no such run
    capsys.readouterr()


def test_export_time_series_refuses_a_run_without_time(tmp_path, solvers, capsys):
    out = tmp_path / "run"
    assert main(["solve", PROBLEM, "--solver", solvers[1], "--out", str(out), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["export", str(out), "--time-series"]) == 2
    line = _error_line(capsys)
    assert line.startswith(f"kanpde: error: export --time-series: run {out}: ")
    assert "no time coordinate" in line


def test_a_stopped_runs_key_comes_from_its_checkpoint(tmp_path, solvers):
    """A run stopped before it finished (a checkpoint, no result) is keyed by the
    configuration and problem digest its checkpoint holds."""
    import shutil

    from kanpde.cli.reuse import stale_reason
    from kanpde.problem import load_problem
    from kanpde.training.config import load_config

    problem_file = tmp_path / "sinsin.py"
    shutil.copy(PROBLEM, problem_file)
    out = tmp_path / "run"
    assert main(["solve", str(problem_file), "--solver", solvers[0], "--out", str(out),
                 "--quiet"]) == 0
    (out / "result.h5").unlink()
    (out / "summary.json").unlink()
    assert (out / "checkpoint.pt").is_file()
    config = load_config(solvers[0]).to_dict()
    problem = load_problem(problem_file)
    assert stale_reason(out, config, problem) is None
    assert stale_reason(tmp_path / "nothing-here", config, problem) is None
    changed = {**config, "stages": [{**config["stages"][0], "lr": 0.5}, config["stages"][1]]}
    assert stale_reason(out, changed, problem) == \
        "the solver configuration differs in stages[0].lr"
    problem_file.write_text(problem_file.read_text() + "\n# edited\n")
    assert stale_reason(out, config, load_problem(problem_file)) == \
        f"the problem file {problem_file.resolve()} changed"
