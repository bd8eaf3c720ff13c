"""Manufactured solutions: source terms derived from the exact solution (float64), and
initial conditions that take the time coordinate from the problem."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from kanpde import KAN, InitialRate, load_problem
from kanpde.problem import manufactured
from kanpde.problem.problem import SolutionField
from kanpde.problem.scope import ProblemError
from kanpde.training.config import config_from_dict
from kanpde.training.solve import solve

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str):
    return load_problem(ROOT / "problems" / f"{name}.py")


@pytest.mark.parametrize("engine", ["jet", "autograd"])
def test_manufactured_source_equals_the_hand_written_one_on_poisson2d_sinsin(engine):
    hand = _load("poisson2d_sinsin")  # u_xx + u_yy + 2 pi^2 sin(pi x) sin(pi y)
    made = dataclasses.replace(hand, residuals={"pde": manufactured(lambda s: s.u.laplacian())})
    net = KAN([2, 5, 1], grid_size=4, seed=1).to(torch.float64)
    x = hand.domain.sample_interior(64, torch.Generator().manual_seed(0))
    a = hand.residual_values(net, x, engine=engine)["pde"].detach()
    b = made.residual_values(net, x, engine=engine)["pde"].detach()
    assert a.abs().max() > 1.0
    torch.testing.assert_close(b, a, rtol=0, atol=1e-12)
    again = made.residual_values(net, x, engine=engine)["pde"].detach()  # cached source
    torch.testing.assert_close(again, b, rtol=0, atol=0)
    exact = made.residual_values(SolutionField(made), x, engine=engine)["pde"].detach()
    assert exact.abs().max() < 1e-12


def test_manufactured_nonlinear_system_with_constants():
    ns = _load("kovasznay")  # an exact solution of the homogeneous equations: source zero
    made = dataclasses.replace(ns, residuals={k: manufactured(fn)
                                              for k, fn in ns.residuals.items()})
    net = KAN([2, 4, 3], grid_size=3, seed=2).to(torch.float64)
    x = ns.domain.sample_interior(32, torch.Generator().manual_seed(1))
    a, b = ns.residual_values(net, x), made.residual_values(net, x)
    for k in ns.residuals:
        torch.testing.assert_close(b[k].detach(), a[k].detach(), rtol=0, atol=1e-11)


def test_manufactured_trains_and_needs_an_exact_solution():
    hand = _load("poisson2d_sinsin")
    made = dataclasses.replace(hand, residuals={"pde": manufactured(lambda s: s.u.laplacian())},
                               eval_resolution=11)
    cfg = {"name": "t", "dtype": "float64", "model": {"kind": "kan", "widths": [3],
                                                       "grid_size": 3},
           "sampling": {"interior": 32, "boundary": 8},
           "stages": [{"optimizer": "adam", "steps": 2}], "checkpoint": {"every": 0}}
    assert solve(made, config_from_dict(cfg)).summary["status"] == "ok"
    with pytest.raises(ProblemError, match="residual 'pde' is manufactured, which needs an "
                                           "exact solution"):
        dataclasses.replace(made, exact=None)
    with pytest.raises(ProblemError, match="operator must be a function"):
        manufactured(1.0)


def test_initial_rate_takes_the_time_from_the_problem_and_keeps_an_explicit_one():
    wave = _load("wave1d")  # InitialRate(value=0.0) without time=...
    rate = wave.conditions[1]
    assert isinstance(rate, InitialRate) and rate.time == "t"
    explicit = dataclasses.replace(wave, conditions=[wave.conditions[0],
                                                     InitialRate(value=0.0, time="t"),
                                                     wave.conditions[2]])
    assert explicit.conditions[1].time == "t"
    with pytest.raises(ProblemError, match="unknown time coordinate 'tau'"):
        dataclasses.replace(wave, conditions=[InitialRate(value=0.0, time="tau")])
