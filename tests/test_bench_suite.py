"""The training benchmarks: suite end to end on a tiny budget, resumability, bad input, and
the analysis functions (fits, matched views, the §3.4 verdict) on known inputs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from kanpde.cli.bench import claim, matched, scaling, suite
from kanpde.cli.bench.runner import BenchInputError, Job, resolve_problems, run_jobs
from kanpde.cli.main import main
from kanpde.tune import budgets

ROOT = Path(__file__).resolve().parents[1]
PROBLEMS = ROOT / "problems"


@pytest.fixture
def test_sized(monkeypatch: pytest.MonkeyPatch) -> None:
    """The ``quick`` budget cut to a test-sized schedule and tuning effort: the pipeline runs
    whole, in seconds."""
    monkeypatch.setitem(budgets.SCHEDULES["suite"], "quick",
                        budgets.Schedule(100, 20, 15, 8, (3, 5)))
    monkeypatch.setitem(budgets.TUNE_BUDGETS, "quick",
                        {**budgets.TUNE_BUDGETS["quick"], "time_per_trial": 0.5})
    monkeypatch.setitem(budgets.SECOND_ORDER_STEPS, "quick", {"lm": 2, "gauss_newton": 2})


def _bench(tmp_path: Path, *args: str) -> int:
    return main(["bench", *args, "--out", str(tmp_path / "res"), "--work",
                 str(tmp_path / "runs"), "--problems-dir", str(PROBLEMS)])


def test_suite_command_tiny_budget(tmp_path: Path, capsys: pytest.CaptureFixture,
                                   test_sized: None) -> None:
    code = _bench(tmp_path, "suite", "--problems", "poisson2d_sinsin", "--budget", "quick",
                  "--seeds", "0", "1", "--no-tuned", "--no-second-order")
    assert code == 0
    res = tmp_path / "res"
    doc = json.loads((res / "suite.json").read_text())
    assert {r["label"] for r in doc["rows"]} == {"kan[10]", "mlp[32,32]"}
    assert len(doc["runs"]) == 4
    sched = budgets.SCHEDULES["suite"]["quick"]
    for run in doc["runs"]:
        assert run["status"] == "ok"
        assert run["steps"] == sched.steps  # matched budget: the same steps for both
        assert run["points"] == doc["runs"][0]["points"]  # and the same points
        assert 0 < run["l2_rel"] < 1.5
    kan = next(r for r in doc["runs"] if r["model"] == "kan")
    assert kan["grid_size"] == [sched.grids[-1]] * 2
    text = (res / "suite.md").read_text()
    assert "| poisson2d_sinsin | kan[10] | " in text and "lower error" in text
    # the command line written with the table reproduces the run, its own options included
    assert ("Command: `kanpde bench suite --problems poisson2d_sinsin --budget quick --seeds "
            f"0 1 --no-tuned --no-second-order --out {res}`") in text
    assert (res / "figures" / "suite_poisson2d_sinsin.png").stat().st_size > 1000
    # medians in the table are the medians of the runs
    row = next(r for r in doc["rows"] if r["label"] == "kan[10]")
    assert row["l2_rel"]["median"] == pytest.approx(
        float(np.median([r["l2_rel"] for r in doc["runs"] if r["label"] == "kan[10]"])))

    # a second call reuses every finished run: nothing is trained again
    capsys.readouterr()
    assert _bench(tmp_path, "suite", "--problems", "poisson2d_sinsin", "--budget", "quick",
                  "--seeds", "0", "1", "--no-tuned", "--no-second-order") == 0
    assert "params" not in capsys.readouterr().err  # no per-run training line


def test_suite_tunes_both_families_with_equal_effort(tmp_path: Path, test_sized: None) -> None:
    import csv

    assert _bench(tmp_path, "suite", "--problems", "poisson2d_sinsin", "--budget", "quick",
                  "--seeds", "0") == 0
    doc = json.loads((tmp_path / "res" / "suite.json").read_text())
    tuned = {r["label"]: r for r in doc["rows"] if r["label"].endswith("-tuned")}
    assert set(tuned) == {"kan-tuned", "mlp-tuned"}
    effort = budgets.TUNE_BUDGETS["quick"]
    studies = tmp_path / "runs" / "suite-quick" / "tune" / "poisson2d_sinsin"
    for label in tuned:
        with (studies / label / "trials.csv").open() as fh:
            trials = list(csv.DictReader(fh))
        assert len(trials) == effort["trials"]  # the same number of trials per family
        info = json.loads((studies / label / "tune.json").read_text())["study"]
        assert info["time_per_trial"] == effort["time_per_trial"]  # and the same time each
    (v,) = doc["tuned_verdicts"]
    assert v["lower_error"] in ("KAN", "MLP", "overlap")
    # the same KAN and MLP with second-order stages instead of L-BFGS
    for label, opt in (("kan[10]-lm", "lm"), ("mlp[32,32]-gn", "gauss_newton")):
        run = next(r for r in doc["runs"] if r["label"] == label)
        summary = json.loads((Path(run["run_dir"]) / "summary.json").read_text())
        assert [st["optimizer"] for st in summary["stages"]][1:] == [opt] * 2
    assert "Tuned KAN vs tuned MLP" in (tmp_path / "res" / "suite.md").read_text()


def test_suite_second_order_rows_are_chosen_by_method() -> None:
    from kanpde.cli.bench.suite import jobs

    def labels(methods):
        return sorted({j.label for j in jobs(["heat1d"], "quick", [0, 1], methods)})
    assert labels(["lm"]) == ["kan[10]", "kan[10]-lm", "mlp[32,32]", "mlp[32,32]-lm"]
    assert labels([]) == ["kan[10]", "mlp[32,32]"]
    assert len(labels(["lm", "gauss_newton"])) == 6
    lm = [j for j in jobs(["heat1d"], "quick", [0, 1], ["lm"]) if j.label.endswith("-lm")]
    assert [j.seed for j in lm] == [0, 0]  # the first seed only
    assert {st["optimizer"] for j in lm for st in j.config["stages"][1:]} == {"lm"}


def test_interrupted_bench_keeps_finished_runs_and_continues(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import kanpde.training.solve

    problems = resolve_problems(["poisson2d_sinsin"], PROBLEMS)
    sched = budgets.Schedule(100, 20, 5, 5, (3,))
    jobs = [Job("poisson2d_sinsin", "mlp[8]", budgets.mlp_solver(sched, [8]), s)
            for s in (0, 1)]
    real = kanpde.training.solve.solve
    calls = []

    def stop_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(kanpde.training.solve, "solve", stop_second)
    with pytest.raises(KeyboardInterrupt):
        run_jobs(jobs, problems, tmp_path)
    assert (tmp_path / "poisson2d_sinsin" / "mlp[8]-seed0" / "summary.json").is_file()
    monkeypatch.setattr(kanpde.training.solve, "solve", real)
    lines: list[str] = []
    records = run_jobs(jobs, problems, tmp_path, log=lines.append)
    assert len(lines) == 1 and "seed 1" in lines[0]  # only the unfinished run trains
    assert [r["seed"] for r in records] == [0, 1]
    assert all(r["status"] == "ok" for r in records)


def test_a_finished_run_of_another_configuration_is_neither_reused_nor_overwritten(
        tmp_path: Path) -> None:
    problems = resolve_problems(["poisson2d_sinsin"], PROBLEMS)
    sched = budgets.Schedule(100, 20, 5, 5, (3,))
    job = Job("poisson2d_sinsin", "mlp[8]", budgets.mlp_solver(sched, [8]), 0)
    (first,) = run_jobs([job], problems, tmp_path, log=lambda line: None)
    lines: list[str] = []
    assert run_jobs([job], problems, tmp_path, log=lines.append)[0]["mse"] == first["mse"]
    assert not lines  # the same configuration: reused, nothing trained
    edited = budgets.mlp_solver(sched, [8])
    edited["stages"][0]["lr"] = 0.02
    with pytest.raises(BenchInputError, match=r"another configuration .*stages\[0\]\.lr"):
        run_jobs([Job("poisson2d_sinsin", "mlp[8]", edited, 0)], problems, tmp_path)
    summary = json.loads((Path(first["run_dir"]) / "summary.json").read_text())
    assert summary["mse"] == first["mse"]  # the earlier run is untouched


@pytest.mark.parametrize("args, message", [
    (["suite", "--seeds", "-1"], "argument --seeds: invalid seed -1: must be >= 0"),
    (["claim", "--problems", "x"], "unrecognized arguments: --problems x"),  # not --problems-dir
])
def test_bad_arguments_are_refused_before_anything_runs(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture,
                                                        args: list[str], message: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        _bench(tmp_path, *args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("args, message", [
    (["suite", "--problems", "no_such_problem"], "unknown problem 'no_such_problem'"),
    (["suite", "--budget", "huge"], "unknown budget 'huge'"),
    (["scaling", "nope"], "unknown problem 'nope'"),
    (["matched", "--targets", "0"], "--targets must be positive"),
    (["speed", "--budget", "nonsense"], "unknown budget 'nonsense'"),
])
def test_bad_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture,
                               args: list[str], message: str) -> None:
    assert _bench(tmp_path, *args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert err.startswith(f"kanpde: error: bench {args[0]}: ")  # names the benchmark
    if "unknown problem" in message:
        assert "poisson2d_paper" in err and "heat1d" in err  # lists what exists
    if "budget" in message:
        assert "quick" in err and "full" in err
    assert not (tmp_path / "runs").exists()  # nothing trained


def test_resolve_problems_accepts_paths_and_rejects_missing(tmp_path: Path) -> None:
    path = PROBLEMS / "heat1d.py"
    assert resolve_problems([str(path)], tmp_path) == {"heat1d": path}
    with pytest.raises(BenchInputError, match="no such problem file"):
        resolve_problems([str(tmp_path / "x.py")], PROBLEMS)
    assert list(resolve_problems(None, PROBLEMS)) == list(
        __import__("kanpde.cli.bench.runner", fromlist=["x"]).SUITE_PROBLEMS)


def test_scaling_fit_recovers_known_exponents() -> None:
    rng = np.random.default_rng(0)
    grids = [3, 5, 10, 20, 40]
    # a KAN series: N = 30 (G + 5), error = 2 G^-4 exactly
    pts = [{"n_params": 30 * (g + 5), "l2_rel": 2.0 * g ** -4.0, "grid": g} for g in grids]
    f = scaling.fit(pts, "kan")
    assert f["alpha_grid"] == pytest.approx(4.0, abs=1e-12)
    n = np.log([p["n_params"] for p in pts])
    e = np.log([p["l2_rel"] for p in pts])
    assert f["alpha"] == pytest.approx(-np.polyfit(n, e, 1)[0], rel=1e-12)
    # an MLP series with noise around N^-1.5
    sizes = np.geomspace(100, 1e5, 8)
    noisy = [{"n_params": int(s), "l2_rel": float(s ** -1.5 * math.exp(rng.normal(0, 0.01))),
              "grid": None} for s in sizes]
    assert scaling.fit(noisy, "mlp")["alpha"] == pytest.approx(1.5, abs=0.05)
    assert scaling.fit(noisy[:1], "mlp") == {"alpha": None, "alpha_grid": None}


def _kan_record(problem: str, label: str, seed: int, stages: list[tuple[int, int, float]]):
    return {"problem": problem, "label": label, "model": "kan", "seed": seed,
            "stages": [{"optimizer": "lbfgs", "grid_size": [g, g], "n_params": n,
                        "metrics": {"l2_rel": e, "mse": e * e}, "elapsed_s": 1.0 + i,
                        "start_step": 10 * i, "steps_run": 10}
                       for i, (g, n, e) in enumerate(stages)]}


def test_matched_views_pick_the_smallest_model_reaching_the_target() -> None:
    records = [
        _kan_record("p", "kan[5]", 0, [(3, 120, 5e-2), (5, 150, 4e-3), (10, 225, 5e-4)]),
        _kan_record("p", "kan[5]", 1, [(3, 120, 6e-2), (5, 150, 2e-2), (10, 225, 7e-4)]),
        *[{"problem": "p", "label": f"mlp[{w},{w}]", "model": "mlp", "seed": s,
           "n_params": n, "l2_rel": e, "wall_time_s": 3.0, "steps": 40}
          for w, n, e in ((8, 105, 3e-2), (32, 1185, 5e-3), (64, 4417, 8e-3)) for s in (0, 1)],
    ]
    rows = matched.views(records, ["p"], [1e-2, 1e-3, 1e-5])
    r2, r3, r5 = rows
    # G=5: median of 4e-3 and 2e-2 is 1.2e-2 > 1e-2, so the smallest reaching 1e-2 is G=10
    assert r2["kan"]["label"] == "kan[5]G10" and r2["kan"]["n_params"] == 225
    assert r2["mlp"]["label"] == "mlp[32,32]"
    assert r2["params_ratio_mlp_over_kan"] == pytest.approx(1185 / 225)
    assert r3["kan"]["label"] == "kan[5]G10" and r3["mlp"] is None
    assert r5["kan"] is None and r5["best_kan"]["label"] == "kan[5]G10"
    text = matched.markdown(rows, "quick", "cmd")
    assert "not reached (best 6.00e-04, kan[5]G10)" in text


def test_claim_rows_and_verdict_pairs() -> None:
    kan = [{**_kan_record("poisson2d_paper", "kan[10]-paper-recipe", s,
                          [(5, 300, 1e-2), (40, 1350, 1e-4)]),
            "n_params": 1350, "mse": m, "h1_mse": 10 * m, "l2_rel": 1e-4,
            "wall_time_s": 100.0, "cpu_time_s": 90.0, "grid_size": [40, 40], "status": "ok",
            "family": "kan", "row": "KAN paper recipe"}
           for s, m in ((0, 1e-8), (1, 3e-8), (2, 2e-8))]
    mlp = [{"problem": "poisson2d_paper", "label": label, "model": "mlp", "family": "mlp",
            "seed": 0, "n_params": n, "mse": m, "h1_mse": 10 * m, "l2_rel": 1e-2,
            "wall_time_s": t, "cpu_time_s": t, "status": "ok", "row": label}
           for label, n, m, t in (("mlp4x100-deepxde-recipe", 30701, 2e-6, 50.0),
                                  ("mlp4x100-deepxde", 30701, 4e-6, 200.0))]
    tuned = [{"problem": "poisson2d_paper", "label": label, "model": fam, "family": fam,
              "seed": 0, "n_params": n, "mse": m, "l2_rel": 1e-3, "wall_time_s": 300.0,
              "cpu_time_s": 290.0, "status": "ok", "row": label}
             for label, fam, n, m in (("kan[10]-tuned", "kan", 600, 1e-9),
                                      ("mlp4x100-tuned", "mlp", 30701, 1e-10))]
    table = claim.rows(kan + mlp + tuned)
    assert table[0]["label"] == "kan[10]-paper-recipe@G5" and table[0]["seeds"] == 3
    by = {r["label"]: r for r in table}
    assert by["kan[10]-paper-recipe"]["mse"]["median"] == pytest.approx(2e-8)
    v = {p["pair"]: p for p in claim.verdict(table)}
    paper = v["the paper's models, each with its community's recipe"]
    assert paper["more_accurate"] == "KAN"
    assert paper["mse_ratio_mlp_over_kan"] == pytest.approx(100.0)
    assert paper["params_ratio_mlp_over_kan"] == pytest.approx(30701 / 1350)
    # CPU times when both rows have them (90 s against 50 s), not wall times (100 / 50)
    assert paper["time_ratio_kan_over_mlp"] == pytest.approx(1.8) and paper["clock"] == "CPU"
    equal = v["the paper's models, both tuned with the same effort"]
    assert equal["more_accurate"] == "MLP"
    assert equal["mse_ratio_mlp_over_kan"] == pytest.approx(0.1)
    anchor = v["DeepXDE's own run over kanpde's run of its recipe"]
    assert anchor["mse_ratio_deepxde_over_kanpde"] == pytest.approx(2.0)
    assert anchor["time_ratio_deepxde_over_kanpde"] == pytest.approx(4.0)
    text = claim.markdown(table, list(v.values()), "quick", "cmd")
    assert "the **MLP** is more accurate" in text and "DeepXDE's MSE is 2x kanpde's" in text
    assert "took 1.8x the MLP's CPU time" in text
    # a row without CPU time (a library run that did not record it): both on the wall clock
    no_cpu = [{**r, "cpu_time_s": None} if r["label"] == "mlp4x100-deepxde" else r
              for r in kan + mlp + tuned]
    anchor = {p["pair"]: p for p in claim.verdict(claim.rows(no_cpu))}[
        "DeepXDE's own run over kanpde's run of its recipe"]
    assert anchor["clock"] == "wall" and anchor["time_ratio_deepxde_over_kanpde"] == 4.0


def test_suite_verdicts_need_non_overlapping_ranges() -> None:
    rows = [
        {"problem": "p", "model": "kan", "l2_rel": {"median": 1e-3, "min": 5e-4, "max": 2e-3},
         "wall_time_s": {"median": 20.0}},
        {"problem": "p", "model": "mlp", "l2_rel": {"median": 1e-2, "min": 1e-3, "max": 2e-2},
         "wall_time_s": {"median": 10.0}},
    ]
    (v,) = suite.verdicts(rows)
    assert v["lower_error"] == "overlap" and v["time_ratio_kan_over_mlp"] == 2.0
    rows[1]["l2_rel"]["min"] = 3e-3
    assert suite.verdicts(rows)[0]["lower_error"] == "KAN"
