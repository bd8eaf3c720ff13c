"""``solve(problem, config, model=...)``: a network of the user's own trains like kanpde's.

A module with a ``jet(x, second=...)`` method is differentiated by the jet engine, one
without by nested autograd; both give the same training trajectory as the autograd engine on
the same network.
"""

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from kanpde import load_problem, solve
from kanpde.core.jet import Jet, make_channels
from kanpde.io.results import Status
from kanpde.training.config import config_from_dict

ROOT = Path(__file__).resolve().parents[1]


class SineNet(nn.Module):
    """``u(x) = W_2 sin(W_1 x + b_1) + b_2`` with its own jet (value, gradient, channels)."""

    def __init__(self, d: int = 2, width: int = 16, m: int = 1, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.inner = nn.Linear(d, width, dtype=torch.float64)
        self.outer = nn.Linear(width, m, dtype=torch.float64)

    def forward(self, x):
        return self.outer(torch.sin(self.inner(x)))

    def jet(self, x, second=None):
        jet = Jet.identity(x, make_channels(second, x))
        jet = jet.linear(self.inner.weight.T, self.inner.bias)
        jet = jet.map(lambda h: (torch.sin(h), torch.cos(h), -torch.sin(h)))
        return jet.linear(self.outer.weight.T, self.outer.bias)


class Plain(nn.Module):
    """The same network without a ``jet`` method."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x)


@pytest.fixture(scope="module")
def sinsin():
    p = load_problem(ROOT / "problems" / "poisson2d_sinsin.py")
    return dataclasses.replace(p, eval_resolution=21)


def _config(engine: str = "jet"):
    return config_from_dict({
        "name": "own", "engine": engine,
        "sampling": {"interior": 150, "boundary": 40, "method": "sobol"},
        "stages": [{"optimizer": "adam", "steps": 10, "lr": 0.02},
                   {"optimizer": "lbfgs", "steps": 20}],
        "evaluation": {"every": 10}, "checkpoint": {"every": 0}})


def test_a_model_of_ones_own_trains_through_solve(sinsin):
    jet = solve(sinsin, _config(), model=SineNet())
    auto = solve(sinsin, _config("autograd"), model=SineNet())
    plain = solve(sinsin, _config(), model=Plain(SineNet()))
    s = jet.summary
    assert s["engine"] == "jet" and auto.summary["engine"] == "autograd"
    assert plain.summary["engine"] == "autograd"  # no jet method: nested autograd
    assert s["model"] == "custom" and s["n_params"] == 2 * 16 + 16 + 16 + 1
    assert jet.status is Status.OK and s["status"] == "ok" and s["steps"] == 30
    loss = np.asarray(jet.history["loss"])
    assert loss[-1] < 0.05 * loss[0]
    # the same trajectory: to round-off over the Adam steps, which L-BFGS then amplifies
    np.testing.assert_allclose(loss[:10], auto.history["loss"][:10], rtol=1e-12)
    np.testing.assert_allclose(loss, auto.history["loss"], rtol=1e-6)
    np.testing.assert_allclose(plain.history["loss"], auto.history["loss"], rtol=1e-12)
    x = sinsin.evaluation_points()[:7]
    np.testing.assert_allclose(jet.predict(x), jet.model(x).detach().numpy(), rtol=0, atol=0)
    assert jet.model_spec["kind"] == "custom"
