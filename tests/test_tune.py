"""kanpde tune: equal-effort search per family, selection by validation loss, resume."""

import csv
import hashlib
import json
from pathlib import Path

import pytest

from kanpde.cli.main import main
from kanpde.problem import load_problem
from kanpde.training.config import load_config
from kanpde.tune import TuneError, tune
from kanpde.tune.study import _best

ROOT = Path(__file__).resolve().parents[1]
SINSIN = str(ROOT / "problems" / "poisson2d_sinsin.py")
PAPER = str(ROOT / "problems" / "poisson2d_paper.py")


def _rows(out: Path) -> list[dict]:
    with (out / "trials.csv").open() as fh:
        return list(csv.DictReader(fh))


def test_tune_two_trials_writes_a_solver_that_repeats_the_selected_trial(tmp_path, capsys):
    out = tmp_path / "study"
    args = ["tune", SINSIN, "--family", "mlp", "--trials", "2", "--time-per-trial", "2",
            "--space", "tiny", "--out", str(out)]
    assert main(args) == 0
    rows = _rows(out)
    assert [r["state"] for r in rows] == ["complete", "complete"]
    best = min(rows, key=lambda r: float(r["validation_loss"]))
    doc = json.loads((out / "tune.json").read_text())
    assert doc["best"]["trial"] == int(best["trial"])
    # the selected solver file repeats the trial's training exactly (steps, seed, points)
    from kanpde.training.solve import solve

    config = load_config(out / "best.toml")
    again = solve(load_problem(SINSIN), config, progress=False)
    assert again.summary["l2_rel"] == pytest.approx(float(best["l2_rel"]), rel=1e-10)
    assert again.summary["steps"] == int(best["steps"])
    # rerunning with more trials resumes the study: one more trial, the first two kept
    args[args.index("--trials") + 1] = "3"
    assert main(args) == 0
    rows3 = _rows(out)
    assert len(rows3) == 3 and rows3[:2] == rows
    assert "selected trial" in capsys.readouterr().out


def test_selection_uses_the_validation_loss_not_the_error():
    rows = [{"trial": 0, "state": "complete", "validation_loss": 1e-3, "l2_rel": 1e-6},
            {"trial": 1, "state": "complete", "validation_loss": 1e-4, "l2_rel": 1e-2},
            {"trial": 2, "state": "fail", "validation_loss": None, "l2_rel": 1e-9}]
    assert _best(rows)["trial"] == 1


def test_over_cap_configurations_are_skipped_and_failures_recorded(tmp_path, monkeypatch):
    import kanpde.training.solve as train

    calls = []
    real = train.solve

    def flaky(problem, config, **kw):  # the second trained trial diverges
        res = real(problem, config, **kw)
        calls.append(config.name)
        if len(calls) == 2:
            res.summary["status"] = "diverged"
        return res

    monkeypatch.setattr(train, "solve", flaky)
    problem = load_problem(SINSIN)
    res = tune(problem, "kan", 3, tmp_path / "s", time_per_trial=1.0, max_params=150,
               search_space="tiny")
    states = [r["state"] for r in res.trials]
    trained = [r for r in res.trials if r["state"] != "pruned"]
    assert len(trained) == 3 and len(calls) == 3
    assert all(r["n_params"] <= 150 for r in trained)
    assert all(r["n_params"] > 150 and "max-params" in r["reason"]
               for r in res.trials if r["state"] == "pruned")
    failed = [r for r in res.trials if r["state"] == "fail"]
    assert len(failed) == 1 and failed[0]["reason"].startswith("diverged")
    assert res.best is not None and res.best["state"] == "complete"
    assert states.count("complete") == 2


def test_a_capped_study_draws_only_architectures_under_the_cap(tmp_path):
    """Under a tight cap the default space's KAN draws are restricted to the architectures
    that fit (every one that fits is offered, none that does not), instead of being drawn
    and discarded until the study gives up."""
    from kanpde.training.config import config_from_dict
    from kanpde.tune import space as spaces
    from kanpde.tune.study import _n_params

    problem = load_problem(PAPER)
    knobs = spaces.space("default", "kan")
    size = {}
    for arch in spaces.architectures(knobs):
        cfg = config_from_dict(spaces.solver("kan", {**spaces.smallest(knobs), **arch}, 1.0, 0))
        size[", ".join(f"{k}={v}" for k, v in arch.items())] = _n_params(problem, cfg)
    assert len(size) == 2 * 4 * 3 * 4 * 3 and min(size.values()) <= 200 < max(size.values())
    allowed = [spaces.decode_architecture(a) for a in size if size[a] <= 200]
    (kind, offered), = [v for k, v in spaces.restrict_architectures(knobs, allowed).items()
                        if k == "architecture"]
    assert kind == "choice" and sorted(offered) == sorted(a for a in size if size[a] <= 200)
    res = tune(problem, "kan", 2, tmp_path / "s", time_per_trial=0.5, max_params=200,
               search_space="default", clock="cpu")
    assert [r["state"] for r in res.trials] == ["complete", "complete"]  # nothing discarded
    doc = json.loads((tmp_path / "s" / "tune.json").read_text())
    assert sorted(doc["study"]["architectures_under_cap"]) == sorted(offered)
    rows = _rows(tmp_path / "s")
    for row in rows:
        arch = ", ".join(f"{k}={row[k]}" for k in spaces.ARCHITECTURE)
        assert size[arch] == int(row["n_params"]) <= 200  # knob columns spelt out


@pytest.mark.parametrize("flags, message", [
    (["--family", "gp"], "--family: unknown model family 'gp'"),
    (["--family", "mlp", "--trials", "0"], "--trials: must be >= 1"),
    (["--family", "mlp", "--time-per-trial", "0"], "--time-per-trial: must be > 0"),
    (["--family", "kan", "--max-params", "20"], "--max-params: 20 is below the smallest kan"),
])
def test_bad_input_is_one_line_naming_the_flag(tmp_path, capsys, flags, message):
    base = {"--trials": "1", "--time-per-trial": "1"}
    args = ["tune", SINSIN, "--space", "tiny", "--out", str(tmp_path / "o"), *flags]
    for k, v in base.items():
        if k not in flags:
            args += [k, v]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err


def test_a_study_for_another_problem_is_refused_and_left_untouched(tmp_path, capsys):
    out = tmp_path / "study"
    assert main(["tune", SINSIN, "--family", "mlp", "--trials", "1", "--time-per-trial", "1",
                 "--space", "tiny", "--out", str(out)]) == 0
    before = hashlib.sha256((out / "study.db").read_bytes()).hexdigest()
    capsys.readouterr()
    assert main(["tune", PAPER, "--family", "mlp", "--trials", "1", "--time-per-trial", "1",
                 "--space", "tiny", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "holds a study with another problem 'poisson2d_sinsin'" in err
    assert hashlib.sha256((out / "study.db").read_bytes()).hexdigest() == before
    with pytest.raises(TuneError, match="family"):
        tune(load_problem(SINSIN), "kan", 1, out, time_per_trial=1.0, search_space="tiny")


def test_second_order_stages_in_the_search(tmp_path):
    problem = load_problem(SINSIN)
    res = tune(problem, "mlp", 1, tmp_path / "lm", time_per_trial=2.0, search_space="tiny",
               fixed={"second_stage": "lm"})
    (trial,) = res.trials
    assert trial["state"] == "complete"
    assert [s["optimizer"] for s in trial["solver"]["stages"]][-1] == "lm"
    # above the dense limit the matrix-free form takes the place of Levenberg-Marquardt
    big = tune(problem, "mlp", 1, tmp_path / "gn", time_per_trial=2.0, search_space="tiny",
               fixed={"second_stage": "lm", "depth": 2, "width": 100})
    (trial,) = big.trials
    assert trial["n_params"] > 5000 and trial["state"] == "complete"
    assert trial["solver"]["stages"][-1]["optimizer"] == "gauss_newton"
