"""Condition coefficients: every coefficient is a number or a callable of the scope, gives the
same residual either way, and fails in one line naming the file, the condition and the
coefficient (float64)."""

from __future__ import annotations

from math import pi
from pathlib import Path

import numpy as np
import pytest
import torch

from kanpde import (
    KAN,
    Dirichlet,
    Initial,
    InitialRate,
    Neumann,
    Observations,
    Periodic,
    Problem,
    Robin,
    autograd_jet,
    load_problem,
)
from kanpde.problem.geometry import Box, Interval, SpaceTime
from kanpde.problem.problem import SolutionField
from kanpde.problem.scope import ProblemError

F64 = torch.float64
SQUARE = Box([0.0, 0.0], [1.0, 1.0], coord_names=("x", "y"))


def square_problem(*conditions, **kw) -> Problem:
    base = dict(name="c", coords=("x", "y"), domain=SQUARE,
                residuals={"pde": lambda s: s.u.laplacian()}, conditions=list(conditions),
                exact=lambda x: x[:, 0] * x[:, 1])
    base.update(kw)
    return Problem(**base)


def model() -> KAN:
    torch.manual_seed(0)
    return KAN([2, 4, 1], grid_size=4)


def values(problem: Problem, net, seed: int = 0, n: int = 32) -> list[torch.Tensor]:
    """Each condition's residual at its sampled points (same points for equal seeds)."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for cond in problem.conditions:
        pts = cond.sample(problem.domain, n, gen)
        out.append(problem.condition_values(cond, net, pts).detach())
    return out


# ------------------------------------------------------------------------- same residual
CONSTANT_VS_CALLABLE = {
    "robin_alpha": (Robin(on="x_max", alpha=2.5, beta=1.0, value=0.3),
                    Robin(on="x_max", alpha=lambda s: torch.full_like(s.x, 2.5), beta=1.0,
                          value=0.3)),
    "robin_beta": (Robin(on="y_min", alpha=1.0, beta=-0.5, value=0.0),
                   Robin(on="y_min", alpha=1.0, beta=lambda s: -0.5, value=0.0)),
    "robin_value": (Robin(on="boundary", alpha=1.0, beta=2.0, value=0.7),
                    Robin(on="boundary", alpha=1.0, beta=2.0,
                          value=lambda s: 0.7 + 0 * s.y[:, None])),
    "neumann_value": (Neumann(on="x_min", value=-1.5),
                      Neumann(on="x_min", value=lambda s: torch.tensor(-1.5, dtype=F64))),
    "dirichlet_value": (Dirichlet(value=0.25), Dirichlet(value=lambda s: 0.25 + 0 * s.x)),
}


@pytest.mark.parametrize("case", sorted(CONSTANT_VS_CALLABLE))
def test_callable_coefficient_equals_constant(case: str) -> None:
    constant, function = CONSTANT_VS_CALLABLE[case]
    net = model()
    (a,) = values(square_problem(constant), net)
    (b,) = values(square_problem(function), net)
    assert a.shape == (32,)
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_robin_with_varying_coefficients_against_autograd() -> None:
    """``alpha(y) u + beta(y) du/dn = g(y)`` on x = 1 (normal +x), checked against the
    nested-autograd jet of the same network."""
    cond = Robin(on="x_max", alpha=lambda s: 1.0 + s.y**2, beta=lambda s: torch.cos(s.y),
                 value=lambda s: torch.sin(pi * s.y))
    p = square_problem(cond)
    net = model()
    pts = cond.sample(p.domain, 40, torch.Generator().manual_seed(4))
    got = p.condition_values(cond, net, pts).detach()
    jet = autograd_jet(net, pts.points)
    y = pts.points[:, 1]
    want = (1 + y**2) * jet.value[:, 0] + torch.cos(y) * jet.grad[:, 0, 0] - torch.sin(pi * y)
    torch.testing.assert_close(got, want.detach(), rtol=1e-12, atol=1e-12)


def test_coefficient_with_an_unknown_parameter() -> None:
    """A Robin coefficient that is an unknown of an inverse problem: a 0-d tensor that keeps
    its gradient."""
    cond = Robin(on="x_max", alpha=lambda s: s.k, beta=0.0, value=0.0)
    p = square_problem(cond, unknowns={"k": 0.5})
    net = model()
    pts = cond.sample(p.domain, 8, torch.Generator().manual_seed(0))
    k = torch.tensor(3.0, dtype=F64, requires_grad=True)
    r = p.condition_values(cond, net, pts, unknowns={"k": k})
    torch.testing.assert_close(r.detach(), 3.0 * net(pts.points)[:, 0].detach())
    (grad,) = torch.autograd.grad(r.sum(), k)
    torch.testing.assert_close(grad, net(pts.points)[:, 0].sum().detach())


def test_initial_rate_and_initial_callables() -> None:
    dom = SpaceTime(Interval(0.0, 1.0), 0.0, 1.0)
    exact = lambda x: torch.sin(pi * x[:, 0]) * torch.cos(2 * x[:, 1]) + x[:, 1] * x[:, 0]  # noqa: E731
    p = Problem(name="w", coords=("x", "t"), domain=dom, time="t",
                residuals={"pde": lambda s: s.u.d("t", "t")},
                conditions=[Initial(value=lambda s: torch.sin(pi * s.x)),
                            InitialRate(value=lambda s: s.x),
                            InitialRate(value=0.0)],
                exact=exact)
    sol = SolutionField(p)
    init, rate, _ = values(p, sol)
    assert float(init.abs().max()) <= 1e-15 and float(rate.abs().max()) <= 1e-15
    wrong = p.conditions[2]
    pts = wrong.sample(dom, 32, torch.Generator().manual_seed(0))
    r = p.condition_values(wrong, sol, pts).detach()
    torch.testing.assert_close(r, pts.points[:, 0], rtol=0, atol=1e-15)  # u_t(x, 0) = x


def test_observations_values_as_data_or_callable() -> None:
    pts = torch.rand(20, 2, generator=torch.Generator().manual_seed(1), dtype=F64)
    data = pts[:, 0] * pts[:, 1]
    by_data = Observations(points=pts, values=data.numpy())
    by_function = Observations(points=pts.numpy(), values=lambda s: s.x * s.y)
    constant = Observations(points=pts, values=np.float64(0.5))
    net = model()
    a, b, c = values(square_problem(by_data, by_function, constant), net)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-15)
    torch.testing.assert_close(c, net(pts)[:, 0].detach() - 0.5)


# ------------------------------------------------------------------------- construction
@pytest.mark.parametrize("make, match", [
    (lambda: Robin(alpha="2"), r"Robin: alpha must be a number or a callable.*got str"),
    (lambda: Robin(beta=[1.0, 2.0]), r"Robin: beta must be a number or a callable.*list"),
    (lambda: Robin(value=float("nan"), name="outflow"), r"Robin 'outflow': value must be finite"),
    (lambda: Neumann(value=None), r"Neumann: value must be a number.*NoneType"),
    (lambda: Dirichlet(value=True), r"Dirichlet: value must be a number.*bool"),
    (lambda: Initial(value="sin"), r"Initial: value must be a number"),
    (lambda: InitialRate(value=object()), r"InitialRate: value must be a number"),
    (lambda: Dirichlet(weight=-1.0), r"Dirichlet: weight must be a finite number >= 0"),
    (lambda: Periodic(coord=0), r"Periodic: coord must be a coordinate name"),
    (lambda: Observations(points=torch.zeros(3, 2)), r"Observations: needs points"),
    (lambda: Observations(points=torch.zeros(3, 2), values=torch.zeros(4)),
     r"points must be \(M, d\) and values \(M,\), got \(3, 2\) and \(4,\)"),
    (lambda: Observations(points=torch.zeros(3), values=torch.zeros(3)),
     r"points must be \(M >= 1, d\)"),
])
def test_bad_coefficients_fail_on_construction(make, match: str) -> None:
    with pytest.raises(ProblemError, match=match):
        make()


def test_conditions_checked_against_the_problem() -> None:
    with pytest.raises(ProblemError, match=r"Periodic: unknown coordinate 'z' \(coordinates: x, y"):
        square_problem(Periodic(coord="z"))
    with pytest.raises(ProblemError, match=r"Observations: points have 3 columns.*\(x, y\)"):
        square_problem(Observations(points=torch.zeros(2, 3), values=torch.zeros(2)))
    # integers and 0-d tensors are constants too
    r = Robin(alpha=2, beta=torch.tensor(0.5, dtype=F64))
    assert r.alpha == 2.0 and isinstance(r.beta, float)


# ------------------------------------------------------------------------- problem files
_FILE = '''\
"""A problem file with a faulty condition coefficient."""
import torch

from kanpde import Dirichlet, Neumann, Problem, Robin
from kanpde.problem.geometry import Box

problem = Problem(
    name="bad",
    coords=("x", "y"),
    domain=Box([0, 0], [1, 1], coord_names=("x", "y")),
    residuals={{"pde": lambda s: s.u.laplacian()}},
    conditions=[Dirichlet(on="x_min"), {condition}],
    exact=lambda x: x[:, 0] * x[:, 1],
)
'''

BAD_FILES = {
    "alpha_shape": ('Robin(on="x_max", alpha=lambda s: s.points)',
                    "condition 1 'robin1' (Robin on x_max): alpha returned shape (8, 2), "
                    "expected (8,)"),
    "alpha_raises": ('Robin(on="x_max", alpha=lambda s: 1 / 0)',
                     "condition 1 'robin1' (Robin on x_max): alpha raised ZeroDivisionError: "
                     "division by zero"),
    "beta_unknown_name": ('Robin(on="x_max", beta=lambda s: s.kappa)',
                          "condition 1 'robin1' (Robin on x_max): beta: unknown name 'kappa'"),
    "value_type": ('Neumann(on="y_max", value=lambda s: "one", name="lid")',
                   "condition 1 'lid' (Neumann on y_max): value returned str, expected a tensor"),
    "alpha_constant_type": ('Robin(on="x_max", alpha="2")',
                            "Robin: alpha must be a number or a callable of the scope"),
    "value_shape": ('Dirichlet(on="y_min", value=lambda s: torch.zeros(3))',
                    "condition 1 'dirichlet1' (Dirichlet on y_min): value returned shape (3,), "
                    "expected (8,)"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_coefficient_in_a_problem_file(tmp_path: Path, case: str) -> None:
    condition, fragment = BAD_FILES[case]
    path = tmp_path / f"{case}.py"
    path.write_text(_FILE.format(condition=condition))
    with pytest.raises(ProblemError) as info:
        load_problem(path)
    message = str(info.value)
    assert "\n" not in message, message
    assert message.startswith(f"problem file '{path}'"), message
    assert fragment in message, message


def test_callable_alpha_in_a_problem_file(tmp_path: Path) -> None:
    """The issue's failing case: a callable Robin alpha loads and matches the constant one."""
    path = tmp_path / "robin.py"
    path.write_text(_FILE.format(condition='Robin(on="x_max", alpha=lambda s: 2.0 + 0 * s.y)'))
    p = load_problem(path)
    q = square_problem(Dirichlet(on="x_min"), Robin(on="x_max", alpha=2.0))
    net = model()
    for a, b in zip(values(p, net), values(q, net), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
