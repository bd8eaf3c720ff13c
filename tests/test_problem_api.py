"""Problem machinery: channel discovery, scopes, conditions, hard constraints (float64)."""

from math import pi

import pytest
import torch

from kanpde import KAN, MLP, Dirichlet, InitialRate, Neumann, Periodic, Problem, Robin, autograd_jet
from kanpde.core.jet import Channels, Jet
from kanpde.nn.hard_constraint import HardConstraint
from kanpde.problem.geometry import Box, Interval, SpaceTime
from kanpde.problem.problem import SolutionField
from kanpde.problem.scope import ProblemError

DT = torch.float64
SQUARE = Box([-1.0, -1.0], [1.0, 1.0], coord_names=("x", "y"))


def _problem(residual, **kw):
    base = dict(name="t", coords=("x", "y"), domain=SQUARE, residuals={"pde": residual},
                conditions=[Dirichlet()], exact=lambda x: x[:, 0] * x[:, 1])
    base.update(kw)
    return Problem(**base)


def test_channel_discovery_dedupes_and_orders():
    p = _problem(lambda s: s.u.d("y", "x") + s.u.d("x", "y") + s.u.laplacian() + s.u.d("x"))
    assert p.channel_keys == [("d", ("x", "y")), ("lap", ("x", "y"))]
    w = p.channels(torch.zeros(1, dtype=DT)).matrices
    torch.testing.assert_close(w[0], torch.tensor([[0, 0.5], [0.5, 0]], dtype=DT))
    torch.testing.assert_close(w[1], torch.eye(2, dtype=DT))


def test_spatial_laplacian_excludes_time():
    dom = SpaceTime(Interval(0.0, 1.0), 0.0, 1.0)
    p = Problem(name="heat", coords=("x", "t"), domain=dom, time="t",
                residuals={"pde": lambda s: s.u.d("t") - s.u.laplacian()},
                conditions=[Dirichlet()], exact=lambda x: x[:, 0])
    assert p.channel_keys == [("lap", ("x",))]


def test_residual_values_equal_on_both_engines_for_networks():
    p = _problem(lambda s: s.u * s.u.d("x") - 0.1 * s.u.d("x", "x") + torch.sin(s.u)
                 + s.u.d("x", "y") * s.y)
    x = SQUARE.sample_interior(50, torch.Generator().manual_seed(0))
    for model in (KAN([2, 4, 1], grid_size=5), MLP([2, 8, 1], activation="tanh")):
        a = p.residual_values(model, x, engine="jet")["pde"]
        b = p.residual_values(model, x, engine="autograd")["pde"]
        assert float((a - b).abs().max() / b.abs().max()) <= 1e-10


def test_exact_solution_field_jet_matches_autograd():
    p = _problem(lambda s: s.u.laplacian(), exact=lambda x: torch.sin(pi * x[:, 0]) * x[:, 1]**2)
    sol = SolutionField(p)
    x = SQUARE.sample_interior(30, torch.Generator().manual_seed(1))
    w = p.channels(x)
    a, b = sol.jet(x, w), autograd_jet(sol, x, w)
    torch.testing.assert_close(a.second, b.second, rtol=0, atol=1e-12)
    torch.testing.assert_close(a.grad, b.grad, rtol=0, atol=1e-13)


def test_conditions_on_an_exact_solution():
    def exact(x):
        return torch.sin(pi * x[:, 0]) * torch.cos(pi * x[:, 1])

    p = _problem(lambda s: s.u.laplacian() + 2 * pi**2 * s.u, exact=exact, conditions=[
        Dirichlet(on=["x_min", "x_max"], value=0.0),
        Neumann(on=["y_min", "y_max"], value=0.0),
        Robin(on="x_max", alpha=2.0, beta=1.0,
              value=lambda s: -pi * torch.cos(pi * s.y)),
        Dirichlet(on=lambda pts: pts[:, 1] > 0.5, value=lambda s: exact(s.points)),
    ])
    sol = SolutionField(p)
    gen = torch.Generator().manual_seed(2)
    for cond in p.conditions:
        pts = cond.sample(p.domain, 40, gen)
        assert pts.points.shape[0] == 40
        r = p.condition_values(cond, sol, pts)
        assert float(r.abs().max()) <= 1e-12, type(cond).__name__
    # a wrong boundary value is detected
    wrong = Dirichlet(on="y_min", value=1.0)
    pts = wrong.sample(p.domain, 10, gen)
    assert float(p.condition_values(wrong, sol, pts).abs().mean()) > 0.5


def test_periodic_and_initial_rate_conditions():
    dom = SpaceTime(Interval(0.0, 2 * pi), 0.0, 1.0)
    p = Problem(name="adv", coords=("x", "t"), domain=dom, time="t",
                residuals={"pde": lambda s: s.u.d("t") + s.u.d("x")},
                conditions=[Periodic(coord="x"), InitialRate(value=lambda s: -torch.cos(s.x))],
                exact=lambda x: torch.sin(x[:, 0] - x[:, 1]))
    sol = SolutionField(p)
    gen = torch.Generator().manual_seed(3)
    for cond in p.conditions:
        pts = cond.sample(p.domain, 32, gen)
        assert float(p.condition_values(cond, sol, pts).abs().max()) <= 1e-12
    not_periodic = Problem(name="x", coords=("x", "t"), domain=dom, time="t",
                           residuals={"pde": lambda s: s.u.d("t")},
                           conditions=[Periodic(coord="x")], exact=lambda x: x[:, 0])
    cond = not_periodic.conditions[0]
    pts = cond.sample(dom, 8, gen)
    r = not_periodic.condition_values(cond, SolutionField(not_periodic), pts)
    assert float(r[:8].abs().min()) > 6.0  # u(0) - u(2 pi) = -2 pi


@pytest.mark.parametrize("residual, match", [
    (lambda s: s.u.d("z"), "unknown coordinate 'z'"),
    (lambda s: s.w, "unknown name 'w'"),
    (lambda s: s.u.d("x", "x", "y"), "order 3"),
    (lambda s: torch.stack([s.u.value, s.u.value], 1), "shape"),
    (lambda s: 1.0, "expected a tensor"),
])
def test_bad_residuals(residual, match):
    with pytest.raises(ProblemError, match=match):
        _problem(residual)


def test_bad_problem_definitions():
    with pytest.raises(ProblemError, match="no conditions"):
        _problem(lambda s: s.u.laplacian(), conditions=[])
    with pytest.raises(ProblemError, match="unknown field"):
        _problem(lambda s: s.u.laplacian(), conditions=[Dirichlet(field="v")])
    with pytest.raises(ProblemError, match="dimension"):
        _problem(lambda s: s.u.laplacian(), coords=("x", "y", "z"))
    with pytest.raises(ProblemError, match="twice"):
        _problem(lambda s: s.u.laplacian(), constants={"x": 1.0})
    with pytest.raises(ProblemError, match="gauge names unknown field"):
        _problem(lambda s: s.u.laplacian(), gauge=("p",))
    with pytest.raises(ProblemError, match="region must be a function"):
        _problem(lambda s: s.u.laplacian(), region=0.5)
    assert not _problem(lambda s: s.u.laplacian(), exact=None).has_solution  # accepted


def test_jet_product_rule():
    gen = torch.Generator().manual_seed(4)
    x = torch.rand(20, 3, generator=gen, dtype=DT)
    w = torch.stack([torch.eye(3, dtype=DT), torch.tensor([[0, 1, 0], [1, 0, 0], [0, 0, 2.0]],
                                                          dtype=DT)])
    a_model, b_model = MLP([3, 5, 2], "sin", seed=1), MLP([3, 5, 1], "tanh", seed=2)

    class Product(torch.nn.Module):
        def forward(self, p):
            return a_model(p) * b_model(p)

    jet = a_model.jet(x, w) * b_model.jet(x, w)
    ref = autograd_jet(Product(), x, w)
    for part in ("value", "grad", "second"):
        torch.testing.assert_close(getattr(jet, part), getattr(ref, part), rtol=1e-12, atol=1e-13)
    assert isinstance(jet, Jet) and isinstance(jet.channels, Channels)


@pytest.mark.parametrize("kind", ["kan", "mlp"])
def test_hard_constraint_holds_and_jets_agree(kind):
    net = KAN([2, 4, 1], grid_size=4) if kind == "kan" else MLP([2, 6, 1], "tanh")
    model = HardConstraint(net, distance=lambda x: (1 - x[:, 0]**2) * (1 - x[:, 1]**2),
                           particular=lambda x: torch.sin(x[:, 0]) + x[:, 1])
    bnd = SQUARE.sample_boundary(40, torch.Generator().manual_seed(5)).points
    target = torch.sin(bnd[:, 0]) + bnd[:, 1]
    assert float((model(bnd)[:, 0] - target).abs().max()) <= 1e-14
    x = SQUARE.sample_interior(25, torch.Generator().manual_seed(6))
    w = torch.stack([torch.eye(2, dtype=DT), torch.tensor([[0, 0.5], [0.5, 0]], dtype=DT)])
    a, b = model.jet(x, w), autograd_jet(model, x, w)
    for part in ("value", "grad", "second"):
        torch.testing.assert_close(getattr(a, part), getattr(b, part), rtol=1e-11, atol=1e-13)
    params = list(net.parameters())
    ga = torch.autograd.grad(a.second.square().sum(), params)
    gb = torch.autograd.grad(b.second.square().sum(), params)
    for u, v in zip(ga, gb, strict=True):
        torch.testing.assert_close(u, v, rtol=1e-10, atol=1e-12)


def test_boundary_on_space_time_is_the_lateral_boundary():
    dom = SpaceTime(Interval(0.0, 1.0), 0.0, 2.0)
    pts = Dirichlet(on="boundary").sample(dom, 200, torch.Generator().manual_seed(7))
    x = pts.points
    assert bool(((x[:, 0] == 0.0) | (x[:, 0] == 1.0)).all())
    assert float(x[:, 1].min()) > 0.0 and float(x[:, 1].max()) < 2.0
    torch.testing.assert_close(pts.normals[:, 1], torch.zeros(200, dtype=DT))
