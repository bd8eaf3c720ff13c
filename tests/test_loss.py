"""The one PINN loss: term values, objective and residual vector agree with each other, with
the trainer and with the explain refit, causal weighting and the sparsity penalty included
(float64)."""

import dataclasses
from pathlib import Path

import pytest
import torch

from kanpde import load_problem
from kanpde.interpret.refit import ProblemLoss
from kanpde.training.config import config_from_dict
from kanpde.training.jacobian import Jacobian, Parameters
from kanpde.training.loss import PinnLoss, sqrt0
from kanpde.training.sharding import SINGLE_PROCESS
from kanpde.training.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]


def _config(**extra) -> dict:
    d = {"name": "t", "seed": 1,
         "model": {"kind": "kan", "widths": [3], "grid_size": 4},
         "sampling": {"interior": 60, "boundary": 12, "method": "sobol"},
         "weighting": {"weights": {"residuals": 0.3}, "causal": True, "causal_eps": 5.0,
                       "causal_bins": 4},
         "regularization": {"l1": 0.02, "entropy": 0.05},
         "stages": [{"optimizer": "adam", "steps": 3, "lr": 0.05}],
         "evaluation": {"every": 0}, "checkpoint": {"every": 0}}
    d.update(extra)
    return d


@pytest.fixture(scope="module")
def heat():
    p = load_problem(ROOT / "problems" / "heat1d.py")
    return dataclasses.replace(p, eval_resolution=11)


@pytest.fixture(scope="module")
def trained(heat):
    """A trainer after 3 Adam steps with causal weights and the sparsity penalty."""
    tr = Trainer(heat, config_from_dict(_config()), progress=False)
    tr.run()
    return tr


def test_residual_vector_norm_is_the_trainers_objective(trained):
    loss, terms = trained.loss_value()
    res = trained.loss.residuals(trained.state.model, trained.state.points)
    assert "regularization" in terms and trained.causal_min < 1.0  # both are really on
    assert float(res.rows.detach().square().sum()) == pytest.approx(loss, rel=1e-13, abs=0)
    for k, v in res.terms.items():
        assert float(v.detach()) == pytest.approx(terms[k], rel=1e-13, abs=0), k


def test_gauss_newton_gradient_is_the_objectives_gradient(trained):
    """``2 J^T rho`` (Jacobian path, penalty rows included) equals autograd's gradient of
    the objective: the square-root rows of the penalty are exact to first order."""
    model, pts = trained.state.model, trained.state.points
    params = Parameters(model)
    with torch.no_grad():
        res = trained.loss.residuals(model, pts, blocks=True)
    a, g = Jacobian(model, params).normal_equations(res.blocks)
    obj = trained.loss(model, pts)
    grads = torch.autograd.grad(obj, params.tensors)
    ref = torch.cat([t.reshape(-1) for t in grads])
    assert torch.allclose(2 * g, ref, rtol=1e-10, atol=1e-12 * float(ref.abs().max()))
    assert torch.allclose(a, a.T) and float(torch.linalg.eigvalsh(a)[0]) > -1e-10


def test_refit_loss_is_the_trainers_loss(heat, trained):
    """The explain refit evaluates the run's loss: causal weights and penalty included."""
    cfg = config_from_dict(_config())
    tr = Trainer(heat, cfg, progress=False)  # points as a run first draws them
    refit = ProblemLoss(heat, cfg, weights=dict(tr.state.weights.weights))
    assert isinstance(refit.pinn, PinnLoss)
    model = trained.state.model
    assert torch.equal(refit.points.interior, tr.state.points.interior)
    expected = float(tr.loss(model, tr.state.points))
    assert float(refit(model)) == pytest.approx(expected, rel=1e-13)
    assert float(refit.residual_vector(model).square().sum()) == pytest.approx(expected,
                                                                               rel=1e-13)
    plain = ProblemLoss(heat, config_from_dict(_config(regularization={}, weighting={})))
    assert "regularization" not in plain.terms(model)


def test_frozen_scales_reproduce_the_rows(trained):
    model, pts = trained.state.model, trained.state.points
    with torch.no_grad():
        first = trained.loss.residuals(model, pts)
        again = trained.loss.residuals(model, pts, scales=first.scales)
    assert torch.equal(first.rows, again.rows)
    # causal scales: sqrt(lambda w_b / (B c_b)); their squares sum to lambda * sum_b w_b / B
    s = first.scales["interior"]
    assert s.shape == (pts.interior.shape[0], 1) and bool((s > 0).all())


def test_single_process_sharding_is_the_identity(trained):
    pts = trained.state.points
    assert SINGLE_PROCESS.local(pts) is pts
    sq = torch.arange(6.0, dtype=torch.float64).reshape(3, 2)
    assert SINGLE_PROCESS.mean(sq, 3) == sq.mean()
    assert SINGLE_PROCESS.count(sq, 3) == 6
    assert SINGLE_PROCESS.sum([sq])[0] is sq


def test_sqrt0_has_zero_gradient_at_zero():
    v = torch.tensor([0.0, 4.0, -1e-18], dtype=torch.float64, requires_grad=True)
    out = sqrt0(v)
    (g,) = torch.autograd.grad(out.sum(), v)
    assert out.tolist() == [0.0, 2.0, 0.0] and g.tolist() == [0.0, 0.25, 0.0]
