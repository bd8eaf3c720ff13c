"""Training: loss and error go down, honest L-BFGS budgets, grid events, NaN guard,
checkpoints and resume, engines, inverse problems, resampling and adaptive points (float64)."""

import copy
import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from kanpde import load_problem
from kanpde.io.results import SUMMARY_KEYS
from kanpde.nn.hard_constraint import HardConstraint
from kanpde.nn.spec import model_from_spec
from kanpde.training.config import ConfigError, config_from_dict, load_config
from kanpde.training.model import build_model
from kanpde.training.solve import solve
from kanpde.training.state import RunClock

ROOT = Path(__file__).parent.parent


@pytest.fixture(scope="module")
def sinsin():
    """poisson2d_sinsin with a coarse evaluation grid (21 x 21) to keep tests fast."""
    p = load_problem(ROOT / "problems" / "poisson2d_sinsin.py")
    return dataclasses.replace(p, eval_resolution=21)


def tiny(kind="kan", stages=None, **sections) -> dict:
    """A small solver dict: sections given as keyword dicts update the defaults."""
    d = {
        "name": f"test_{kind}", "seed": 0,
        "model": ({"kind": "kan", "widths": [5], "grid_size": 5} if kind == "kan"
                  else {"kind": "mlp", "widths": [16], "activation": "tanh"}),
        "sampling": {"interior": 150, "boundary": 40, "method": "sobol"},
        "stages": stages or [{"optimizer": "adam", "steps": 5, "lr": 0.01}],
        "evaluation": {"every": 0},
        "checkpoint": {"every": 0},
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(d.get(key), dict):
            d[key] = {**d[key], **value}
        else:
            d[key] = value
    return d


def run(problem, d, overrides=None, **kw):
    return solve(problem, config_from_dict(d).with_overrides(overrides), progress=False, **kw)


@pytest.mark.parametrize("kind, weights, steps", [("kan", {"pde": 0.01}, 50),
                                                  ("mlp", {"dirichlet0": 10.0}, 80)])
def test_training_reduces_loss_and_error(sinsin, kind, weights, steps):
    d = tiny(kind, [{"optimizer": "lbfgs", "steps": steps}], weighting={"weights": weights},
             evaluation={"every": steps // 2})
    r = run(sinsin, d)
    s = r.summary
    assert set(SUMMARY_KEYS) <= set(s) and s["status"] == "ok"
    l2 = r.history["eval_l2_rel"]
    assert r.history["eval_step"].tolist() == [0, steps // 2, steps]
    assert l2[-1] < l2[0] / 4, l2
    assert s["final_loss"] < r.history["loss"][0] / 10
    assert s["l2_rel"] == pytest.approx(l2[-1], rel=1e-12)
    assert s["h1_rel"] is not None and s["h1_rel"] >= 0
    err = r.prediction - r.reference
    assert s["mse"] == pytest.approx(float(np.mean(err**2)), rel=1e-10)
    assert s["max_abs_err"] == pytest.approx(float(np.abs(err).max()), rel=1e-10)
    assert s["model"] == kind and s["steps"] == steps
    n_params = {"kan": (2 * 5 + 5 * 1) * (5 + 3 + 2), "mlp": 2 * 16 + 16 + 16 * 1 + 1}
    assert s["n_params"] == n_params[kind]
    json.dumps(s)  # the summary is JSON-serialisable


def test_lbfgs_honest_budget(sinsin):
    r = run(sinsin, tiny("kan", [{"optimizer": "lbfgs", "steps": 12}]))
    st = r.summary["stages"][0]
    assert (st["steps_planned"], st["steps_run"], st["stopped"]) == (12, 12, "budget")
    assert st["converged_at"] is None
    assert len(r.history["loss"]) == 12 and r.history["step"].tolist() == list(range(12))
    # a tolerance that is met: the stage says so and at which iteration; history matches.
    # Met after 3 Adam steps, with the loss still near its start: a stall, not convergence
    r = run(sinsin, tiny("kan", [{"optimizer": "adam", "steps": 3},
                                 {"optimizer": "lbfgs", "steps": 12, "tolerance_grad": 1e6},
                                 {"optimizer": "adam", "steps": 2}]))
    st = r.summary["stages"][1]
    assert st["stopped"] == "stalled" and st["steps_run"] == 0 and st["converged_at"] == 0
    assert "not converged" in st["reason"]
    assert r.summary["steps"] == 5 and len(r.history["loss"]) == 5
    assert r.history["stage"].tolist() == [0, 0, 0, 2, 2]
    assert [s["start_step"] for s in r.summary["stages"]] == [0, 3, 3]


def test_lbfgs_counts_each_iteration_once(sinsin):
    """One history entry per iteration; evaluations = iterations + line-search trials."""
    r = run(sinsin, tiny("mlp", [{"optimizer": "lbfgs", "steps": 8}]))
    loss = r.history["loss"]
    assert len(loss) == 8 and np.all(np.diff(loss) < 0)  # strong Wolfe: monotone decrease


def test_grid_extension_keeps_the_loss(sinsin):
    d = tiny("kan", [{"optimizer": "adam", "steps": 6, "lr": 0.02},
                     {"optimizer": "adam", "steps": 2, "grid_extend": 10},
                     {"optimizer": "adam", "steps": 2, "grid_extend": 20},
                     {"optimizer": "adam", "steps": 2, "grid_update": True}])
    r = run(sinsin, d)
    ev = r.summary["grid_events"]
    assert [e["event"] for e in ev] == ["extend", "extend", "update"]
    assert [e["grid_size"] for e in ev] == [[10, 10], [20, 20], [20, 20]]
    for e in ev[:2]:  # nested grids: exact transfer
        assert abs(e["loss_after"] - e["loss_before"]) <= 1e-8 * e["loss_before"]
    assert math.isfinite(ev[2]["loss_after"])
    assert r.summary["grid_size"] == [20, 20]
    assert [s["grid_size"] for s in r.summary["stages"]] == [[5, 5], [10, 10], [20, 20],
                                                             [20, 20]]
    # the first loss of a stage is the loss right after its grid event
    first = [r.history["loss"][r.history["stage"] == i][0] for i in (1, 2)]
    assert first == pytest.approx([ev[0]["loss_after"], ev[1]["loss_after"]], rel=1e-12)


def _system_problems():
    """The shipped problems with more than one field."""
    out = [load_problem(path) for path in sorted((ROOT / "problems").glob("*.py"))]
    return [dataclasses.replace(p, eval_resolution=11) for p in out if len(p.fields) > 1]


def test_grid_updates_keep_the_loss_on_every_system_problem():
    """A deep KAN [d, 16, 16, m], trained a little, through two grid updates (uniform and
    quantile knots): the network moves by <= 1e-6 relative on the fitting points (interior
    and condition points) and the loss by less than 2x, with no rollback."""
    systems = _system_problems()
    assert "kovasznay" in [p.name for p in systems]
    for problem in systems:
        d = tiny("kan", [{"optimizer": "adam", "steps": 15, "lr": 0.01},
                         {"optimizer": "adam", "steps": 1, "grid_update": True,
                          "grid_eps": 1.0},
                         {"optimizer": "adam", "steps": 1, "grid_update": True,
                          "grid_eps": 0.02, "grid_extend": 10}],
                 model={"widths": [16, 16]}, sampling={"interior": 120, "boundary": 30})
        ev = [e for e in run(problem, d).summary["grid_events"] if e["event"] == "update"]
        assert len(ev) == 2, problem.name
        for e in ev:
            assert "rolled_back" not in e, (problem.name, e)
            assert e["max_change"] <= 1e-6, (problem.name, e)
            assert e["loss_after"] <= 2.0 * e["loss_before"], (problem.name, e)
            assert e["loss_after"] == pytest.approx(e["loss_before"], rel=1e-6)


def test_grid_update_tol_lets_the_knots_move_as_pykan(sinsin):
    """grid_update_tol = 1: every input takes pykan's knots (the function moves a little);
    the default keeps it to round-off."""
    events = []
    for tol in (1.0, None):
        update = {"optimizer": "adam", "steps": 1, "grid_update": True, "grid_eps": 0.02}
        if tol is not None:
            update["grid_update_tol"] = tol
        r = run(sinsin, tiny("kan", [{"optimizer": "adam", "steps": 6, "lr": 0.02}, update]))
        (e,) = r.summary["grid_events"]
        events.append(e)
    loose, default = events
    assert loose["inputs"] == {"moved": 7, "kept_breakpoints": 0, "unchanged": 0}
    assert loose["max_change"] > 1e-6
    assert default["max_change"] <= 1e-12 and default["inputs"]["moved"] < 7


def _lbfgs(steps, **kw):
    return {"optimizer": "lbfgs", "steps": steps, "tolerance_grad": 0.0,
            "tolerance_change": 0.0, **kw}


def test_keep_memory_continues_lbfgs_across_stages(sinsin):
    """Two L-BFGS stages, the second keeping the first's memory, follow one stage of the
    same iterations; without keep_memory the second restarts from steepest descent."""
    one = run(sinsin, tiny("kan", [_lbfgs(10)]))
    kept = run(sinsin, tiny("kan", [_lbfgs(4), _lbfgs(6, keep_memory=True)]))
    fresh = run(sinsin, tiny("kan", [_lbfgs(4), _lbfgs(6)]))
    np.testing.assert_allclose(kept.history["loss"], one.history["loss"], rtol=1e-12)
    np.testing.assert_allclose(fresh.history["loss"][:5], one.history["loss"][:5], rtol=1e-12)
    assert abs(fresh.history["loss"][5] / one.history["loss"][5] - 1) > 1e-6
    # a grid extension changes the parameter shapes: the memory starts afresh
    ext = [_lbfgs(4), _lbfgs(6, grid_extend=10, keep_memory=True)]
    ext_fresh = [_lbfgs(4), _lbfgs(6, grid_extend=10)]
    np.testing.assert_allclose(run(sinsin, tiny("kan", ext)).history["loss"],
                               run(sinsin, tiny("kan", ext_fresh)).history["loss"], rtol=1e-12)


def test_keep_memory_survives_an_interrupt_between_stages(sinsin, tmp_path, monkeypatch):
    """Interrupted in the grid update that starts the second stage, the run resumes with
    the first stage's memory, as if never stopped."""
    from kanpde.nn.kan import KAN

    d = tiny("kan", [_lbfgs(4), _lbfgs(5, grid_update=True, grid_eps=1.0,
                                        grid_update_tol=1.0, keep_memory=True)])
    full = run(sinsin, d)
    real = KAN.update_grid

    def interrupted(self, *a, **kw):
        raise KeyboardInterrupt
    monkeypatch.setattr(KAN, "update_grid", interrupted)
    part = run(sinsin, d, checkpoint_dir=tmp_path / "part")
    assert part.summary["status"] == "interrupted" and part.summary["steps"] == 4
    monkeypatch.setattr(KAN, "update_grid", real)
    resumed = run(sinsin, d, resume=tmp_path / "part")
    _assert_same_run(full, resumed)


def test_keep_memory_takes_the_memory_not_the_settings(sinsin, monkeypatch):
    """The continued stage keeps its own history_size and tolerances; the pairs beyond its
    history_size are dropped; the stage record says the memory was continued."""
    from kanpde.training import optim

    seen = []
    real = optim.continue_memory

    def spy(optimizer, memory, params):
        done = real(optimizer, memory, params)
        st = optimizer.state[optimizer.param_groups[0]["params"][0]]
        seen.append((done, dict(optimizer.param_groups[0]), len(st["old_dirs"])))
        return done
    import kanpde.training.trainer as trainer
    monkeypatch.setattr(trainer, "continue_memory", spy)
    r = run(sinsin, tiny("kan", [_lbfgs(8, history_size=20),
                                 _lbfgs(3, history_size=3, tolerance_grad=1e-30,
                                        keep_memory=True)]))
    ((done, group, pairs),) = seen
    assert done and group["history_size"] == 3 and group["tolerance_grad"] == 1e-30
    assert pairs == 3  # 7 pairs after 8 iterations, the oldest 4 dropped
    assert r.summary["stages"][1]["memory_continued"] is True
    assert "memory_continued" not in r.summary["stages"][0]


@pytest.mark.parametrize("stages, fault", [
    ([{"optimizer": "adam", "steps": 2, "keep_memory": True}], r"only used with .*lbfgs"),
    ([_lbfgs(2, keep_memory=True)], "there is none"),
    ([{"optimizer": "adam", "steps": 2}, _lbfgs(2, keep_memory=True)], "stages\\[0\\] is 'adam'"),
])
def test_keep_memory_needs_a_previous_lbfgs_stage(stages, fault):
    with pytest.raises(ConfigError, match=r"stages\[\d\]\.keep_memory: .*" + fault):
        config_from_dict(tiny("kan", stages))


def test_a_grid_update_that_raises_the_loss_is_rolled_back(sinsin, monkeypatch):
    """The guard: an update that multiplies the loss by more than grid_update_max_ratio is
    undone (old knots and coefficients), recorded with its loss and why, and the run goes on
    from the old grid."""
    from kanpde.nn.kan import KAN

    good = KAN.update_grid

    def bad_update(self, x, grid_eps=0.02, **kw):
        report = good(self, x, grid_eps, **kw)
        with torch.no_grad():
            self.layers[-1].coef.mul_(50.0)  # a refit gone wrong
        return report

    stages = [{"optimizer": "adam", "steps": 6, "lr": 0.02},
              {"optimizer": "adam", "steps": 2, "grid_update": True, "grid_eps": 1.0}]
    ref = run(sinsin, tiny("kan", stages[:1]))
    monkeypatch.setattr(KAN, "update_grid", bad_update)
    r = run(sinsin, tiny("kan", stages))
    (e,) = r.summary["grid_events"]
    assert e["loss_rejected"] > 2.0 * e["loss_before"]
    assert "grid_update_max_ratio = 2" in e["rolled_back"]
    assert e["loss_after"] == pytest.approx(e["loss_before"], rel=1e-12)
    # the stage starts from the old grid: its first loss is the loss before the update
    assert r.history["loss"][r.history["stage"] == 1][0] == pytest.approx(e["loss_before"],
                                                                          rel=1e-12)
    knots = [name for name in ref.model_state if name.endswith("knots")]
    assert knots
    for name in knots:  # the knots of stage 0
        np.testing.assert_array_equal(r.model_state[name], ref.model_state[name])
    assert r.status == "ok" and len(r.history["loss"]) == 8
    # a looser guard lets the same update through
    r = run(sinsin, tiny("kan", [stages[0], {**stages[1], "grid_update_max_ratio": 1e12}]))
    (e,) = r.summary["grid_events"]
    assert "rolled_back" not in e and e["loss_after"] > 2.0 * e["loss_before"]


def _nan_problem(problem, bad_calls):
    """The problem with a residual that is NaN on the given (0-based) calls."""
    calls = [0]
    pde = problem.residuals["pde"]

    def residual(s):
        out = pde(s)
        if s.points.shape[0] == 150:  # training points only (not the probe)
            if bad_calls(calls[0]):
                out = out * float("nan")
            calls[0] += 1
        return out

    return dataclasses.replace(problem, residuals={"pde": residual})


def test_nan_guard_recovers_from_a_transient_nan(sinsin):
    prob = _nan_problem(sinsin, lambda i: i == 4)
    r = run(prob, tiny("kan", [{"optimizer": "adam", "steps": 8, "lr": 0.01}]))
    s = r.summary
    assert s["status"] == "ok" and s["nan_rollbacks"] == 1 and s["steps"] == 8
    assert s["stages"][0]["steps_run"] == 8 and s["stages"][0]["lr_scale"] == 0.5
    assert np.all(np.isfinite(r.history["loss"])) and len(r.history["loss"]) == 8
    assert r.history["step"].tolist() == list(range(8))
    assert r.history["lr"].tolist() == [0.01] * 3 + [0.005] * 5  # step 3 led to the NaN


@pytest.mark.parametrize("optimizer", ["adam", "lbfgs"])
def test_nan_guard_rolls_back_corrupted_parameters(sinsin, optimizer):
    """An 'lr explosion': the parameters become NaN after step 3 (once)."""
    fired = []

    def corrupt(info):
        if info["global_step"] == 3 and not fired:
            fired.append(True)
            with torch.no_grad():
                next(info["model"].parameters()).fill_(float("nan"))

    r = run(sinsin, tiny("kan", [{"optimizer": optimizer, "steps": 8}]), callback=corrupt)
    s = r.summary
    assert s["status"] == "ok" and s["nan_rollbacks"] == 1 and s["steps"] == 8
    assert s["stages"][0]["steps_run"] == 8 and s["stages"][0]["lr_scale"] == 0.5
    assert np.all(np.isfinite(r.history["loss"])) and len(r.history["loss"]) == 8
    assert r.history["step"].tolist() == list(range(8))


def test_nan_guard_gives_up_after_three_failures(sinsin):
    prob = _nan_problem(sinsin, lambda i: i >= 5)
    r = run(prob, tiny("kan", [{"optimizer": "adam", "steps": 20},
                               {"optimizer": "lbfgs", "steps": 5}]))
    s = r.summary
    assert s["status"] == "diverged" and s["nan_rollbacks"] == 3
    assert len(s["stages"]) == 1 and s["stages"][0]["stopped"] == "diverged"
    assert s["steps"] == 4 and len(r.history["loss"]) == 4  # the good steps are kept
    assert np.all(np.isfinite(r.history["loss"]))
    assert np.all(np.isfinite(r.prediction))  # rolled back to the last good parameters


def _two_stage(**kw):
    return tiny("kan", [{"optimizer": "adam", "steps": 10, "lr": 0.02,
                         "schedule": "exponential", "gamma": 0.95},
                        {"optimizer": "lbfgs", "steps": 8, "grid_extend": 10}],
                sampling={"resample_every": 4}, checkpoint={"every": 3},
                evaluation={"every": 5}, **kw)


def _stop_at(n):
    def callback(info):
        if info["global_step"] == n:
            raise KeyboardInterrupt
    return callback


def _assert_same_run(a, b):
    assert a.summary["steps"] == b.summary["steps"]
    clocks = ("time_s", "cpu_s", "eval_time_s", "eval_cpu_s")  # measured, not computed
    for k in a.history:
        np.testing.assert_allclose(b.history[k], a.history[k], rtol=1e-12, atol=0,
                                   err_msg=k) if k not in clocks else None
    assert b.summary["final_loss"] == pytest.approx(a.summary["final_loss"], rel=1e-12)
    for k, v in a.model_state.items():
        if isinstance(v, np.ndarray):
            np.testing.assert_allclose(b.model_state[k], v, rtol=1e-12, atol=1e-14,
                                       err_msg=k)


@pytest.mark.parametrize("stop", [7, 13])
def test_interrupt_and_resume_reach_the_uninterrupted_result(sinsin, tmp_path, stop):
    d = _two_stage()
    full = run(sinsin, d, checkpoint_dir=tmp_path / "full")
    assert (tmp_path / "full" / "checkpoint.pt").is_file()
    part = run(sinsin, d, checkpoint_dir=tmp_path / "part", callback=_stop_at(stop))
    assert part.summary["status"] == "interrupted" and part.summary["steps"] == stop
    assert (tmp_path / "part" / "checkpoint.pt").is_file()
    assert not list((tmp_path / "part").glob(".checkpoint-*"))  # no temp files left
    resumed = run(sinsin, d, resume=tmp_path / "part")
    assert resumed.summary["status"] == "ok"
    assert resumed.summary["resumed_from"].endswith("checkpoint.pt")
    _assert_same_run(full, resumed)
    assert [s["steps_run"] for s in resumed.summary["stages"]] == [10, 8]


@pytest.mark.parametrize("call", [5, 20])
def test_interrupt_inside_an_iteration_rolls_back_to_a_consistent_state(sinsin, tmp_path, call):
    """Ctrl-C inside the loss (an Adam step, an L-BFGS line search): the checkpoint holds
    the state at the start of that iteration and the resumed run is the uninterrupted one."""
    calls = [0]
    pde = sinsin.residuals["pde"]

    def residual(s):
        if s.points.shape[0] == 150:
            calls[0] += 1
            if calls[0] == call:
                raise KeyboardInterrupt
        return pde(s)

    d = _two_stage()
    full = run(sinsin, d)
    stopped = dataclasses.replace(sinsin, residuals={"pde": residual})
    part = run(stopped, d, checkpoint_dir=tmp_path)
    assert part.summary["status"] == "interrupted"
    assert len(part.history["loss"]) == part.summary["steps"]
    resumed = run(sinsin, d, resume=tmp_path)
    _assert_same_run(full, resumed)


def test_resume_rejects_other_problem_or_solver(sinsin, tmp_path):
    d = tiny("kan", [{"optimizer": "adam", "steps": 3}])
    run(sinsin, d, checkpoint_dir=tmp_path)
    other = load_problem(ROOT / "problems" / "poisson2d_paper.py")
    with pytest.raises(ConfigError, match="poisson2d_sinsin.*poisson2d_paper"):
        run(other, d, resume=tmp_path)
    d2 = {**d, "name": "other_solver", "seed": 1}
    with pytest.raises(ConfigError, match=r"solver 'test_kan', not solver 'other_solver' "
                                          r"\(differs in name \('test_kan' then, "
                                          r"'other_solver' now\), seed \(0 then, 1 now\)\)"):
        run(sinsin, d2, resume=tmp_path)
    with pytest.raises(ConfigError, match="no checkpoint found"):
        run(sinsin, d, resume=tmp_path / "nowhere")


@pytest.mark.parametrize("kind", ["kan", "mlp"])
def test_jet_and_autograd_engines_give_the_same_trajectory(sinsin, kind):
    d = tiny(kind, [{"optimizer": "adam", "steps": 4, "lr": 0.01},
                    {"optimizer": "lbfgs", "steps": 2}])
    a = run(sinsin, d)
    b = run(sinsin, d, overrides={"engine": "autograd"})
    assert b.summary["engine"] == "autograd"
    np.testing.assert_allclose(b.history["loss"], a.history["loss"], rtol=1e-10)
    for k, v in a.model_state.items():
        if isinstance(v, np.ndarray):
            np.testing.assert_allclose(b.model_state[k], v, rtol=1e-8, atol=1e-12)


def test_inverse_problem_moves_the_unknown_toward_the_truth():
    prob = load_problem(ROOT / "problems" / "poisson_inverse.py")
    prob = dataclasses.replace(prob, eval_resolution=11)
    d = tiny("kan", [{"optimizer": "adam", "steps": 30, "lr": 0.05}])
    r = run(prob, d)
    k = r.summary["unknowns"]["kappa"]
    assert k["initial"] == 0.5 and k["true"] == 2.0
    assert abs(k["value"] - 2.0) < 1.5 - 0.1  # moved toward 2
    assert r.history["unknown/kappa"][0] == 0.5
    assert "loss/observations" in r.history


def test_resampling_rad_and_rar_d(sinsin):
    d = tiny("kan", [{"optimizer": "adam", "steps": 6}],
             sampling={"resample_every": 2, "adaptive": "rad", "adaptive_every": 3,
                       "adaptive_candidates": 400})
    r = run(sinsin, d)
    assert r.summary["status"] == "ok" and r.summary["points"]["interior"] == 150
    d = tiny("mlp", [{"optimizer": "adam", "steps": 6}, {"optimizer": "lbfgs", "steps": 3}],
             sampling={"adaptive": "rar-d", "adaptive_every": 2, "adaptive_candidates": 300,
                       "rar_add": 10})
    r = run(sinsin, d)
    assert r.summary["status"] == "ok" and r.summary["points"]["interior"] == 150 + 4 * 10


def test_gradnorm_updates_condition_weights(sinsin):
    d = tiny("kan", [{"optimizer": "adam", "steps": 6}],
             weighting={"kind": "gradnorm", "update_every": 2, "alpha": 0.5})
    r = run(sinsin, d)
    w = r.history["weight/dirichlet0"]
    assert w[0] != 1.0 and len(set(w.tolist())) == 3  # updates at steps 0, 2, 4
    assert np.all(r.history["weight/pde"] == 1.0)
    assert r.summary["weights"]["dirichlet0"] == w[-1]


def test_causal_weighting_on_a_time_dependent_problem(sinsin):
    heat = load_problem(ROOT / "problems" / "heat1d.py")
    heat = dataclasses.replace(heat, eval_resolution=11)
    d = tiny("kan", [{"optimizer": "adam", "steps": 4}],
             weighting={"causal": True, "causal_bins": 8, "causal_eps": 1.0},
             sampling={"initial": 30})
    r = run(heat, d)
    w = r.history["causal_min_weight"]
    assert r.summary["status"] == "ok" and np.all((w > 0) & (w <= 1))
    with pytest.raises(ConfigError, match="weighting.causal: problem 'poisson2d_sinsin' has no "
                                          "time coordinate"):
        run(sinsin, d)


def test_config_errors_at_solve_time(sinsin):
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError) as info:
            run(sinsin, tiny("kan", device="cuda"))
        assert str(info.value) == ("device 'cuda': not available "
                                   "(torch.cuda.is_available() is False)")
        with pytest.raises(ConfigError, match="device 'cuda:1': not available"):
            run(sinsin, tiny("kan"), overrides={"device": "cuda:1"})
    with pytest.raises(ConfigError, match=r"weighting\.weights\.bc: no such term in problem "
                                          r"'poisson2d_sinsin' \(terms: pde, dirichlet0"):
        run(sinsin, tiny("kan", weighting={"weights": {"bc": 2.0}}))
    with pytest.raises(ConfigError, match=r"model\.periodic: unknown coordinate 'z'"):
        run(sinsin, tiny("kan", model={"embedding": "periodic", "periodic": ["z"]}))


def test_overrides_seed_and_float32(sinsin):
    r = run(sinsin, tiny("mlp"), overrides={"seed": 3, "dtype": "float32"})
    assert (r.summary["seed"], r.summary["dtype"]) == (3, "float32")
    assert r.prediction.dtype == np.float32 and r.config["seed"] == 3


def test_model_spec_rebuilds_the_trained_model(sinsin):
    d = tiny("kan", [{"optimizer": "adam", "steps": 3},
                     {"optimizer": "adam", "steps": 2, "grid_extend": 10, "grid_update": True}],
             model={"embedding": "fourier", "fourier_features": 3})
    r = run(sinsin, d)
    spec = r.model_spec
    assert spec["kind"] == "kan" and spec["widths"] == [2, 5, 1]
    assert spec["grid_size"] == [10, 10] and spec["in_dim"] == 2 and spec["out_dim"] == 1
    assert any(k.endswith("_extra_state") and isinstance(v, dict)
               for k, v in r.model_state.items())
    model = model_from_spec(copy.deepcopy(spec), state=r.model_state)
    with torch.no_grad():
        pred = model(torch.from_numpy(r.points)).numpy()
    np.testing.assert_allclose(pred, r.prediction, rtol=1e-13, atol=1e-14)
    mlp = run(sinsin, tiny("mlp"))
    again = model_from_spec(mlp.model_spec, state=mlp.model_state)
    with torch.no_grad():
        np.testing.assert_allclose(again(torch.from_numpy(mlp.points)).numpy(),
                                   mlp.prediction, rtol=1e-13, atol=1e-14)


def test_hard_constraint_transform(sinsin):
    def distance(x):
        return (1 - x[:, 0] ** 2) * (1 - x[:, 1] ** 2)

    prob = dataclasses.replace(sinsin, hard_constraint={"distance": distance})
    model = build_model(prob, config_from_dict(tiny("kan")).model)
    assert isinstance(model, HardConstraint)
    prob2 = dataclasses.replace(sinsin, hard_constraint=lambda net: HardConstraint(net, distance))
    assert isinstance(build_model(prob2, config_from_dict(tiny("mlp")).model), HardConstraint)
    r = run(prob, tiny("kan", [{"optimizer": "adam", "steps": 3}]))
    on_boundary = np.isclose(np.abs(r.points).max(1), 1.0)
    assert np.abs(r.prediction[on_boundary]).max() <= 1e-14
    assert r.model_spec["hard_constraint"] is True


class _Ticks:
    """A clock that advances 10 ms at every reading: time caps independent of the machine."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 0.01
        return self.now


def _ticking() -> RunClock:
    return RunClock(wall=_Ticks(), cpu=_Ticks())


def test_stage_time_cap(sinsin):
    r = run(sinsin, tiny("kan", [{"optimizer": "adam", "steps": 10_000, "max_time_s": 0.5},
                                 {"optimizer": "adam", "steps": 2}]), clock=_ticking())
    st = r.summary["stages"]
    assert st[0]["stopped"] == "max_time" and st[0]["steps_run"] < 10_000
    assert st[1]["steps_run"] == 2 and r.summary["status"] == "ok"
    r = run(sinsin, tiny("kan", [{"optimizer": "adam", "steps": 10_000}], max_time_s=0.5),
            clock=_ticking())
    assert r.summary["status"] == "max_time"


def test_time_caps_on_the_cpu_clock(sinsin):
    r = run(sinsin, tiny("kan", [{"optimizer": "adam", "steps": 10_000, "max_time_s": 0.3},
                                 {"optimizer": "adam", "steps": 2}], time_clock="cpu"))
    st = r.summary["stages"]
    assert st[0]["stopped"] == "max_time" and st[0]["steps_run"] < 10_000
    cpu = r.history["cpu_s"]
    stage0 = cpu[np.asarray(r.history["stage"]) == 0]
    span = stage0[-1] - stage0[0]  # CPU seconds between the stage's first and last steps
    assert 0.2 <= span <= 0.6  # the cap (0.3 s of CPU time) within a few steps
    assert r.summary["status"] == "ok"
    with pytest.raises(ConfigError, match="time_clock"):
        run(sinsin, tiny("kan", [{"optimizer": "adam", "steps": 2}], time_clock="gpu"))


@pytest.mark.slow
@pytest.mark.parametrize("solver", ["kan_default", "mlp_default"])
def test_default_solvers_on_poisson2d_sinsin(solver):
    prob = load_problem(ROOT / "problems" / "poisson2d_sinsin.py")
    r = solve(prob, load_config(ROOT / "solvers" / f"{solver}.toml"), progress=False)
    assert r.summary["status"] == "ok" and r.summary["l2_rel"] < 1e-2


@pytest.mark.parametrize("problem_name", ["heat1d", "advection1d", "kovasznay", "poisson_mesh",
                                          "poisson_nd", "burgers1d"])
def test_tiny_solvers_run_on_the_suite(problem_name):
    """The shipped tiny solvers (with a cut budget) run on problems of every kind."""

    prob = load_problem(ROOT / "problems" / f"{problem_name}.py")
    prob = dataclasses.replace(prob, eval_resolution=11, eval_points=200)
    for solver in ("kan_tiny", "mlp_tiny"):
        d = load_config(ROOT / "solvers" / f"{solver}.toml").to_dict()
        d["stages"] = [{**s, "steps": 2} for s in d["stages"]]
        d["sampling"].update(interior=64, boundary=16)
        r = solve(prob, config_from_dict(d), progress=False)
        assert r.summary["status"] == "ok" and r.summary["steps"] == 4
        assert r.prediction.shape == r.reference.shape == (r.points.shape[0],
                                                           len(prob.fields))
        assert math.isfinite(r.summary["l2_rel"])


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kan_paper_reaches_mse_1e_7_on_poisson2d_paper_with_every_seed(seed):
    """The paper's claim, robustly: MSE <= 1e-7 in float64 with every seed (about 15-20 min
    per seed on 2 CPU cores; the best seeds reach 1e-8, the median is near it)."""
    prob = load_problem(ROOT / "problems" / "poisson2d_paper.py")
    config = load_config(ROOT / "solvers" / "kan_paper.toml").with_overrides({"seed": seed})
    r = solve(prob, config, progress=False)
    s = r.summary
    assert s["status"] == "ok" and s["mse"] <= 1e-7, s["mse"]
    assert [st["grid_size"] for st in s["stages"]] == [[5, 5], [10, 10], [20, 20], [40, 40]]
