"""Results that do not depend on units: domain size, output size and loss size.

The 1-D Poisson problem ``u'' = -A (pi/L)^2 sin(pi x / L)``, ``u(0) = u(L) = 0``, exact
``u = A sin(pi x / L)``, solved by one small KAN solver (float64, Adam then L-BFGS) for
``L = 1e-3, 1, 1e3`` and ``A = 1e-3, 1e3`` gives the ``L = A = 1`` error within a factor 3;
the loss multiplied by ``1e-12`` (through the weights) gives the same error to 2 digits. With
input, output and residual scaling the scaled problems are the same training problem, so the
errors agree far more closely than the factor asked. Without scaling the same solver fails at
``L = 1e3`` (l2_rel about 1), which the tests also show, so they would catch a regression.
"""

import copy
import dataclasses
import math

import numpy as np
import pytest
import torch

from kanpde import Dirichlet, Initial, Problem, autograd_jet, solve
from kanpde.io.results import save_result
from kanpde.io.run import load_run
from kanpde.nn import KAN, MLP
from kanpde.nn.output_scale import OutputScale
from kanpde.nn.spec import model_from_spec, model_spec
from kanpde.problem.geometry import Interval
from kanpde.problem.scope import ProblemError
from kanpde.training.config import ConfigError, config_from_dict
from kanpde.training.scaling import characteristic_scales, power_of_ten

SOLVER = {"name": "scaled_kan", "dtype": "float64", "seed": 0,
          "model": {"kind": "kan", "widths": [5], "grid_size": 5},
          "sampling": {"interior": 64, "boundary": 2},
          "stages": [{"optimizer": "adam", "steps": 30, "lr": 0.02},
                     {"optimizer": "lbfgs", "steps": 40}],
          "scaling": {"outputs": "auto", "residuals": "auto", "loss": "initial"},
          "evaluation": {"every": 0}, "checkpoint": {"every": 0}}
UNSCALED = {"outputs": "none", "residuals": "none", "loss": "none"}


def poisson(length: float = 1.0, amplitude: float = 1.0, **kw) -> Problem:
    """``u'' = -A (pi/L)^2 sin(pi x/L)`` on ``[0, L]``, ``u = 0`` at both ends."""
    k = math.pi / length

    def pde(s):
        return s.u.d("x", "x") + amplitude * k**2 * torch.sin(k * s.x)

    return Problem(name="poisson1d", coords=("x",), domain=Interval(0.0, length),
                   residuals={"pde": pde}, conditions=[Dirichlet(on="boundary", value=0.0)],
                   exact=lambda x: amplitude * torch.sin(k * x[:, 0]), eval_resolution=201,
                   **kw)


def solver(**changes) -> dict:
    d = copy.deepcopy(SOLVER)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(d.get(key), dict):
            d[key] = {**d[key], **value}
        else:
            d[key] = value
    return d


@pytest.fixture(scope="module")
def reference():
    """The ``L = A = 1`` run."""
    return solve(poisson(), SOLVER)


def test_the_unit_problem_is_solved(reference):
    assert reference.status == "ok"
    assert reference.summary["l2_rel"] < 2e-3
    assert [st["stopped"] for st in reference.summary["stages"]] == ["budget", "budget"]


@pytest.mark.parametrize("length, amplitude", [(1e-3, 1.0), (1e3, 1.0), (1.0, 1e-3),
                                               (1.0, 1e3)])
def test_the_error_does_not_depend_on_units(reference, length, amplitude):
    r = solve(poisson(length, amplitude), SOLVER)
    ref = reference.summary["l2_rel"]
    assert ref / 3 <= r.summary["l2_rel"] <= 3 * ref, (r.summary["l2_rel"], ref)
    # input, output and residual scaling make it the same training problem
    assert r.summary["l2_rel"] == pytest.approx(ref, rel=1e-3)
    scales = r.summary["scales"]
    assert scales["fields"] == {"u": power_of_ten(amplitude)}
    assert scales["origins"] == {"u": "data"}
    k2 = (math.pi / length) ** 2
    assert scales["terms"]["pde"] == power_of_ten(amplitude * k2)  # |u''| ~ A (pi/L)^2
    assert scales["terms"]["dirichlet0"] == power_of_ten(amplitude)


def test_the_loss_multiplied_by_1e_minus_12_changes_nothing(reference):
    tiny = solve(poisson(), solver(weighting={"weights": {"residuals": 1e-12,
                                                           "conditions": 1e-12}}))
    assert f"{tiny.summary['l2_rel']:.1e}" == f"{reference.summary['l2_rel']:.1e}"
    assert tiny.summary["final_loss"] == pytest.approx(1e-12 * reference.summary["final_loss"],
                                                       rel=1e-3)


def test_without_scaling_the_large_domain_fails_and_is_not_called_converged():
    """The fault the scalings remove: at L = 1e3 the PDE term is 1e-12 of the boundary term;
    L-BFGS meets its tolerance with u near 0. With the loss relative to its start that stage
    is reported as stalled, not converged."""
    r = solve(poisson(1e3), solver(scaling={**UNSCALED, "loss": "initial"}))
    assert r.summary["l2_rel"] > 0.5
    last = r.summary["stages"][-1]
    assert last["stopped"] == "stalled", last
    assert "not converged" in last["reason"]


def test_a_term_never_reduced_is_a_stall_even_when_the_loss_fell():
    """An MLP with the weights of the old default solvers (PDE term 0.01) at L = 1e3: the
    boundary term falls to 1e-21 while the PDE term, measured in its own magnitude
    (|u''| ~ (pi/L)^2), stays where it started; L-BFGS then meets tolerance_grad because that
    term's gradient is tiny in the problem's units. The loss as a whole fell below half its
    start, but the PDE term was never reduced: stalled, and the reason names it."""
    d = solver(model={"kind": "mlp", "widths": [32, 32], "activation": "tanh"},
               weighting={"weights": {"residuals": 0.01}},
               stages=[{"optimizer": "adam", "steps": 30, "lr": 0.01},
                       {"optimizer": "lbfgs", "steps": 100}],
               scaling={"outputs": "auto", "residuals": "none", "loss": "initial"})
    r = solve(poisson(1e3), d)
    assert r.summary["l2_rel"] > 0.5
    last = r.summary["stages"][-1]
    assert last["stopped"] == "stalled", last
    assert "term 'pde' still at" in last["reason"] and "not converged" in last["reason"]


@pytest.mark.slow
@pytest.mark.parametrize("name, factor", [("kan_default", 3.0), ("mlp_default", 3.0)])
def test_the_shipped_default_solvers_do_not_depend_on_units(name, factor):
    """The issue's test with shipped solvers (about 5 min for the KAN, 3 for the MLP on one
    thread): L = 1e-3, 1e3 and A = 1e-3, 1e3 within a factor 3 of the L = A = 1 error
    (measured: at most 1.9 for kan_default, whose grid updates place knots slightly
    differently at each scale, and 1.0 for mlp_default)."""
    from pathlib import Path

    from kanpde.training.config import load_config

    cfg = load_config(Path(__file__).parents[1] / "solvers" / f"{name}.toml").to_dict()
    cfg.update(evaluation={"every": 0}, checkpoint={"every": 0})
    ref = solve(poisson(), cfg).summary["l2_rel"]
    assert ref < 1e-4
    for length, amplitude in [(1e-3, 1.0), (1e3, 1.0), (1.0, 1e-3), (1.0, 1e3)]:
        r = solve(poisson(length, amplitude), cfg)
        assert ref / factor <= r.summary["l2_rel"] <= factor * ref, (length, amplitude,
                                                                     r.summary["l2_rel"])


def test_an_oscillator_whose_fields_differ_by_100():
    """u' = v/100, v' = -100 u, u(0) = 1, v(0) = 0 on [0, 2 pi]: u = cos t, v = -100 sin t.
    v has no data of its own; its scale comes from the coupling."""
    problem = Problem(
        name="oscillator2", coords=("t",), time="t", domain=Interval(0.0, 2 * math.pi),
        fields=("u", "v"),
        residuals={"a": lambda s: s.u.d("t") - s.v.value / 100,
                   "b": lambda s: s.v.d("t") + 100 * s.u.value},
        conditions=[Initial(field="u", value=1.0), Initial(field="v", value=0.0)],
        exact=lambda x: torch.stack([torch.cos(x[:, 0]), -100 * torch.sin(x[:, 0])], 1),
        eval_resolution=201)
    sc = characteristic_scales(problem)
    assert sc.fields == {"u": 1.0, "v": 100.0}
    assert sc.origins == {"u": "data", "v": "coupling"}
    d = solver(model={"kind": "kan", "widths": [6], "grid_size": 6},
               sampling={"interior": 64, "boundary": 1},
               stages=[{"optimizer": "adam", "steps": 30, "lr": 0.01},
                       {"optimizer": "lbfgs", "steps": 60}])
    scaled = solve(problem, d)
    plain = solve(problem, solver(**{k: v for k, v in d.items() if k != "scaling"},
                                  scaling=UNSCALED))
    assert scaled.summary["l2_rel"] < 2e-2
    assert plain.summary["l2_rel"] > 0.5


def test_given_scales_are_used_and_checked():
    r = solve(poisson(amplitude=1e3, scales={"u": 2e3}),
              solver(stages=[{"optimizer": "adam", "steps": 2}]))
    assert r.summary["scales"]["fields"] == {"u": 1e3}  # a power of ten
    assert r.summary["scales"]["origins"] == {"u": "given"}
    with pytest.raises(ProblemError, match=r"^scales: 'w' is not a field \(fields: u\)$"):
        poisson(scales={"w": 1.0})
    with pytest.raises(ProblemError, match=r"^scales: 'u': must be a positive finite number, "
                                           r"got -1\.0$"):
        poisson(scales={"u": -1.0})
    with pytest.raises(ConfigError, match=r"^s\.toml: scaling\.outputs: must be one of"):
        config_from_dict({"scaling": {"outputs": "yes"}}, source="s.toml")


def test_the_scales_are_reported_in_one_line_and_in_the_summary():
    lines = []
    r = solve(poisson(1e3, 1e3), solver(stages=[{"optimizer": "adam", "steps": 2}]),
              log=lines.append)
    assert lines == ["scales: u = 1e+03 (data); residuals divided by pde 1e-02, "
                     "dirichlet0 1e+03"]
    sc = r.summary["scales"]
    assert sc["outputs"] and sc["residuals"] and sc["initial_loss"] > 0
    assert r.summary["loss_terms"]["dirichlet0"] < 10  # terms are dimensionless


@pytest.mark.parametrize("kind", ["kan", "mlp"])
def test_output_scale_jets_on_both_engines(kind):
    torch.manual_seed(0)
    net = (KAN([2, 4, 2], grid_size=4) if kind == "kan" else MLP([2, 8, 2], "tanh"))
    model = OutputScale(net, [1e3, 1e-2])
    x = torch.rand(20, 2, dtype=torch.float64) * 2 - 1
    second = torch.stack([torch.eye(2), torch.tensor([[1.0, 0.0], [0.0, 0.0]])]).double()
    jet, ref, plain = model.jet(x, second=second), autograd_jet(model, x, second), \
        net.jet(x, second=second)
    u = torch.tensor([1e3, 1e-2], dtype=torch.float64)
    for a, b, c in ((jet.value, ref.value, plain.value), (jet.grad, ref.grad, plain.grad),
                    (jet.second, ref.second, plain.second)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(a, c * u, rtol=1e-14, atol=0)
    spec = model_spec(model)
    assert spec["output_scale"] == [1e3, 1e-2] and spec["kind"] == kind
    again = model_from_spec(spec, model.state_dict())
    torch.testing.assert_close(again(x), model(x), rtol=0, atol=0)
    with pytest.raises(ValueError, match="positive and finite"):
        OutputScale(net, [1.0, 0.0])


@pytest.mark.parametrize("engine, kind", [("jet", "mlp"), ("autograd", "kan")])
def test_a_scaled_run_predicts_the_same_after_loading(tmp_path, engine, kind):
    model = {"kind": "mlp", "widths": [8], "activation": "tanh"} if kind == "mlp" else \
        SOLVER["model"]
    r = solve(poisson(amplitude=1e3), solver(engine=engine, model=model,
                                             stages=[{"optimizer": "adam", "steps": 3}]))
    assert r.summary["engine"] == engine
    assert model_spec(r.model)["output_scale"] == [1e3]
    save_result(r, tmp_path / "run")
    run = load_run(tmp_path / "run")
    x = torch.from_numpy(r.points)
    np.testing.assert_array_equal(run.model(x).detach().numpy(), r.prediction)
    assert np.abs(r.prediction).max() > 0  # the values in the problem's units


def test_unit_problems_keep_their_model():
    """A problem of unit size gets no scaling layer (its scales are 1)."""
    r = solve(poisson(), solver(stages=[{"optimizer": "adam", "steps": 1}]))
    assert model_spec(r.model)["output_scale"] is None


def test_a_scaled_run_resumes_to_the_uninterrupted_result(tmp_path):
    """The output scale (a buffer of the model) and the initial loss the optimisers divide by
    are part of the checkpoint: a run stopped in its L-BFGS stage continues exactly."""
    problem = poisson(1e3, 1e3)
    d = solver(stages=[{"optimizer": "adam", "steps": 4, "lr": 0.02},
                       {"optimizer": "lbfgs", "steps": 6}], checkpoint={"every": 1})
    whole = solve(problem, d)

    def stop(info):
        if info["global_step"] == 7:
            raise KeyboardInterrupt

    part = solve(problem, d, checkpoint_dir=tmp_path, callback=stop)
    assert part.status == "interrupted"
    again = solve(problem, d, resume=tmp_path)
    assert again.summary["steps"] == whole.summary["steps"] == 10
    assert again.summary["scales"] == whole.summary["scales"]
    np.testing.assert_allclose(again.history["loss"], whole.history["loss"], rtol=1e-10)
    assert again.summary["l2_rel"] == pytest.approx(whole.summary["l2_rel"], rel=1e-8)


@pytest.mark.parametrize("length", [1e-3, 1.0, 1e3])
def test_check_catches_a_wrong_source_whatever_the_units(length):
    """``kanpde check``'s tolerance is relative to the size of each term in the problem's
    units: a source 5% off is a fault on [0, 1e3] (where u'' is 1e-5 of u) as on [0, 1]."""
    from kanpde.problem.exactcheck import check_exact

    k = math.pi / length

    def wrong(s):
        return s.u.d("x", "x") + 0.95 * k**2 * torch.sin(k * s.x)

    good = check_exact(poisson(length), 64, torch.Generator().manual_seed(0))
    assert all(c.ok for c in good), [c.problem for c in good if not c.ok]
    bad_problem = dataclasses.replace(poisson(length), residuals={"pde": wrong})
    bad = check_exact(bad_problem, 64, torch.Generator().manual_seed(0))
    faults = [c for c in bad if not c.ok]
    assert {c.engine for c in faults} == {"jet", "autograd"}
    assert all(c.name == "residual 'pde'" for c in faults)
    # the term scale is that of u'' in these units, not the size of u
    assert faults[0].scale == pytest.approx(k**2, rel=0.5)
