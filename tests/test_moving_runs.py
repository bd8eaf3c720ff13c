"""Runs and checkpoints that move: a run made with a relative problem path is read from
another working directory, and a checkpoint resumes on another device or in another dtype.

Tiny MLP runs on an 11 x 11 evaluation grid (the problem and solver of ``test_faults``).
"""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from test_faults import (  # noqa: F401  (stopped: a fixture)
    error_lines,
    one_error,
    solve,
    stopped,
    write_problem,
    write_solver,
)

from kanpde.cli.main import main
from kanpde.io.run import load_run
from kanpde.training.checkpoint import check_compatible
from kanpde.training.checkpoint_file import read_checkpoint, write_checkpoint
from kanpde.training.config import ConfigError, config_from_dict


def test_a_run_made_with_a_relative_problem_path_is_read_from_elsewhere(
        tmp_path, monkeypatch, capsys):
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    work.mkdir()
    elsewhere.mkdir()
    write_problem(work)
    write_solver(work)
    monkeypatch.chdir(work)
    assert solve("p.py", "s.toml", Path("run")) == 0
    capsys.readouterr()
    run_dir = work / "run"
    monkeypatch.chdir(elsewhere)
    run = load_run(run_dir)
    assert run.result.problem_path == str((work / "p.py").resolve())
    assert run.problem_note is None  # the file is there, unchanged
    assert run.problem.name == "p"
    # predict from another directory: the stored model gives the stored prediction
    points = run.result.points[:7]
    np.save(elsewhere / "pts.npy", points)
    assert main(["predict", str(run_dir), "pts.npy", "--out", "v.npy"]) == 0
    np.testing.assert_allclose(np.load(elsewhere / "v.npy")[:, -1:], run.result.prediction[:7],
                               rtol=0, atol=1e-12)
    assert main(["export", str(run_dir), "--format", "vtu"]) == 0
    err = capsys.readouterr().err
    assert "not there any more" not in err and "is gone" not in err and "note" not in err
    # gone for real: said so, and the stored copy still serves
    (work / "p.py").unlink()
    gone = load_run(run_dir)
    assert "is gone; using the copy stored" in gone.problem_note
    assert gone.problem.name == "p"


def test_a_relative_path_of_an_older_result_is_named_as_relative(tmp_path, monkeypatch):
    """Results written before paths were resolved hold the path as given: a lookup from
    another directory says the path is relative instead of calling the file gone."""
    run_dir = tmp_path / "run"
    write_problem(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert solve("p.py", write_solver(tmp_path), run_dir) == 0
    run = load_run(run_dir)
    run.result.problem_path, run.result.problem_source = "p.py", ""
    monkeypatch.chdir(tmp_path.parent)
    with pytest.raises(FileNotFoundError, match=r"'p\.py' is a path relative to the "
                                                r"directory the run was made in"):
        _ = run.problem


def _as_if_written_on(out: Path, device: str) -> Path:
    """Store ``device`` in the solver config of a checkpoint (as if written there)."""
    path = out / "checkpoint.pt"
    data = read_checkpoint(path)
    data["config"]["device"] = device
    write_checkpoint(path, data)
    return path


def test_a_cuda_checkpoint_resumes_on_the_cpu_and_in_another_dtype(
        stopped, tmp_path, capsys):  # noqa: F811
    problem, solver, out = stopped
    assert solve(problem, solver, out) == 143  # SIGTERM after a few steps: a checkpoint
    path = _as_if_written_on(out, "cuda")
    capsys.readouterr()
    assert main(["solve", problem, "--resume", str(out), "--device", "cpu", "--quiet"]) == 0
    assert error_lines(capsys) == [f"kanpde: note: resuming {path} with device 'cpu' "
                                   "(written with 'cuda')"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["resumed_with"] == {"device": {"then": "cuda", "now": "cpu"}}
    assert summary["device"] == "cpu" and summary["steps"] == 6
    # the moved run is the uninterrupted one (the stopping residual fires only once)
    assert solve(problem, solver, tmp_path / "whole") == 0
    whole = json.loads((tmp_path / "whole" / "summary.json").read_text())
    assert summary["final_loss"] == pytest.approx(whole["final_loss"], rel=1e-10, abs=0)

    # and in another dtype: the state is cast, the run continues in float32
    (tmp_path / "stopped.marker").unlink()
    again = tmp_path / "again"
    assert solve(problem, solver, again) == 143
    path = _as_if_written_on(again, "cuda")
    capsys.readouterr()
    assert main(["solve", problem, "--resume", str(again), "--device", "cpu",
                 "--dtype", "float32", "--quiet"]) == 0
    assert error_lines(capsys) == [
        f"kanpde: note: resuming {path} with device 'cpu' (written with 'cuda'), "
        "dtype 'float32' (written with 'float64')"]
    summary = json.loads((again / "summary.json").read_text())
    assert summary["dtype"] == "float32" and summary["steps"] == 6
    assert summary["resumed_with"]["dtype"] == {"then": "float64", "now": "float32"}
    assert summary["final_loss"] == pytest.approx(whole["final_loss"], rel=1e-4)
    state = read_checkpoint(path)
    assert state["config"]["device"] == "cpu" and state["config"]["dtype"] == "float32"
    assert all(v.dtype == torch.float32 for v in state["model"].values()
               if isinstance(v, torch.Tensor) and v.is_floating_point())


def test_a_refused_resume_names_each_differing_key_with_both_values(tmp_path, capsys):
    old = config_from_dict({"name": "s", "seed": 0, "stages": [{"lr": 0.01}]}).to_dict()
    now = config_from_dict({"name": "s", "seed": 3, "stages": [{"lr": 0.02}],
                            "device": "cpu"}).to_dict()
    data = {"problem": "p", "config": {**old, "device": "cuda"}, "path": "c.pt"}
    with pytest.raises(ConfigError) as err:
        check_compatible(data, "p", now)
    assert str(err.value) == ("resume: c.pt was written with solver 's' and a different "
                              "configuration (differs in seed (0 then, 3 now), "
                              "stages[0].lr (0.01 then, 0.02 now))")
    assert check_compatible(data, "p", {**now, "seed": 0, "stages": old["stages"]}) == {
        "device": ("cuda", "cpu")}
    # through the command line: one line, the problem file untouched
    problem, solver = write_problem(tmp_path), write_solver(tmp_path)
    assert solve(problem, solver, tmp_path / "run") == 0
    capsys.readouterr()
    (tmp_path / "run" / "result.h5").unlink()
    (tmp_path / "run" / "summary.json").unlink()
    assert main(["solve", problem, "--resume", str(tmp_path / "run"), "--seed", "5",
                 "--quiet"]) == 2
    assert "differs in seed (0 then, 5 now)" in one_error(capsys)
