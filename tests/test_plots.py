"""Figures: solution and history PNGs for 2-D, 1+1-D space-time, 1-D, higher-dimensional
and multi-field results, and the comparison figure. Files must exist and be valid PNGs of a
sensible size; no pyplot state may be touched."""

from __future__ import annotations

import dataclasses
import struct
import sys
from pathlib import Path

import numpy as np
import pytest

from kanpde import load_problem
from kanpde.io.compare_figure import plot_comparison
from kanpde.io.plots import plot_result
from kanpde.io.results import Result

PROBLEMS = Path(__file__).resolve().parent.parent / "problems"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and data[12:16] == b"IHDR", f"{path} is not a PNG"
    assert data.rstrip()[-8:-4] == b"IEND" or b"IEND" in data[-16:]
    return struct.unpack(">II", data[16:24])


def _history(n: int = 200, stages: bool = True) -> tuple[dict, list]:
    step = np.arange(n)
    hist = {"step": step, "loss": 1.0 / (1 + step), "loss/pde": 0.7 / (1 + step),
            "loss/boundary": 0.3 / (1 + step) ** 1.5, "lr": np.full(n, 1e-3),
            "eval_step": step[::20], "eval_l2_rel": 0.5 / (1 + step[::20]),
            "eval_max_abs_err": 1.0 / (1 + step[::20])}
    hist["loss/boundary"][5] = 0.0  # not drawable on a log scale: skipped, not an error
    st = [{"optimizer": "adam", "steps_planned": 150, "steps_run": 150, "stopped": "budget"},
          {"optimizer": "lbfgs", "steps_planned": 100, "steps_run": 50,
           "stopped": "converged"}] if stages else []
    return hist, st


def _result(name: str, noise: float = 0.02, resolution: int = 61) -> Result:
    problem = load_problem(PROBLEMS / f"{name}.py")
    x = dataclasses.replace(problem, eval_resolution=resolution).evaluation_points()
    ref = problem.solution(x).numpy()
    pred = ref + noise * np.sin(5 * x.numpy().sum(axis=1, keepdims=True))
    hist, stages = _history()
    events = [{"stage": 1, "step": 150, "event": "extend", "grid_size": [10, 10]}]
    return Result(summary={"problem": name, "solver": "kan_test", "stages": stages,
                           "grid_events": events},
                  history=hist, points=x.numpy(), prediction=pred, reference=ref,
                  coords=problem.coords, fields=problem.fields, time=problem.time)


def _check(paths: list[Path], names: list[str], min_px: int = 300) -> None:
    assert [p.name for p in paths] == names
    for p in paths:
        w, h = _png_size(p)
        assert min_px <= w <= 4000 and min_px <= h <= 4000, (p, w, h)
        assert p.stat().st_size > 10_000


@pytest.mark.parametrize("name", ["heat1d", "poisson_mesh"])  # box 2-D: kovasznay below
def test_plot_2d_and_space_time(tmp_path, name):
    before = "matplotlib.pyplot" in sys.modules
    paths = plot_result(_result(name), tmp_path)
    _check(paths, ["solution.png", "history.png"])
    assert before or "matplotlib.pyplot" not in sys.modules  # no pyplot state


def test_plot_system_1d_and_high_dim(tmp_path):
    res = _result("kovasznay", resolution=31)  # three fields: three rows
    paths = plot_result(res, tmp_path / "kov")
    _check(paths, ["solution.png", "history.png"])

    x = np.linspace(-1, 1, 501)[:, None]
    hist, _ = _history(stages=False)
    res1 = Result(summary={"problem": "line"}, history=hist, points=x,
                  prediction=np.sin(np.pi * x) + 1e-3 * x, reference=np.sin(np.pi * x))
    one = plot_result(res1, tmp_path / "one")
    _check(one, ["solution.png", "history.png"])
    assert _png_size(paths[0])[1] > 2 * _png_size(one[0])[1]  # one row per field

    rng = np.random.default_rng(0)
    pts = rng.uniform(-1, 1, size=(2000, 5))
    ref = np.sin(pts).sum(1, keepdims=True)
    res5 = Result(summary={}, points=pts, prediction=ref + 1e-2 * rng.normal(size=ref.shape),
                  reference=ref)
    _check(plot_result(res5, tmp_path / "five"), ["solution.png"])  # no history: no figure


def test_plot_survives_nan_and_no_history(tmp_path):
    res = _result("poisson2d_sinsin")
    res.prediction[::7] = np.nan  # a diverged run
    res.history = {"step": np.arange(3), "loss": np.array([1.0, np.nan, np.inf])}
    res.summary["stages"] = [{"optimizer": "adam", "start_step": 0},
                             {"optimizer": "lbfgs", "start_step": 2}]
    _check(plot_result(res, tmp_path), ["solution.png", "history.png"])
    assert plot_result(Result(summary={}), tmp_path / "empty") == []


def test_plot_comparison(tmp_path):
    records = []
    rng = np.random.default_rng(0)
    for solver, model, n in (("kan_g5", "kan", 400), ("kan_g10", "kan", 700),
                             ("mlp_small", "mlp", 900), ("mlp_big", "mlp", 5000)):
        for seed in range(3):
            records.append({"solver": solver, "model": model, "n_params": n, "seed": seed,
                            "l2_rel": float(10 ** rng.uniform(-4, -2)),
                            "wall_time_s": float(rng.uniform(5, 60))})
    records.append({"solver": "mlp_big", "model": "mlp", "n_params": 5000, "seed": 3,
                    "l2_rel": None, "wall_time_s": 3.0})  # diverged: omitted
    path = plot_comparison(records, tmp_path / "sub" / "compare.png", title="poisson2d")
    assert path == tmp_path / "sub" / "compare.png"
    _check([path], ["compare.png"])
