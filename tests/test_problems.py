"""The problem suite: every file in problems/ loads, is self-consistent, and its exact or
reference solution satisfies its residuals and conditions.

Every ``problems/*.py`` is checked automatically (the tests are parametrised over the glob):

* it loads, and names, fields, dimensions and solution shapes agree;
* with an exact solution: the residuals of the exact solution vanish to round-off on both
  derivative engines, and so do the conditions at their sampled points;
* with stored reference data: the conditions hold to the data's interpolation accuracy and
  the residual, evaluated by finite differences of the interpolant, is small relative to the
  size of its terms;
* perturbing the problem's constants breaks the residual (the constants are wired in).

Malformed problem files must fail with a one-line :class:`ProblemError` naming the file.

**How "small" is measured.** A residual ``r`` is a sum of terms (``u_t``, ``u u_x``,
``nu u_xx``, a source ...). Its size scale at a point is ``S = sum_q |q dr/dq|`` over the
jet entries ``q`` (value, gradient and second-order channels of every field) it reads: for
a linear residual ``q dr/dq`` is exactly a term, so ``S`` is the sum of the term magnitudes
(and bounds the source, which equals minus their sum); for ``u u_x`` both factors
contribute ``|u u_x|``. It is computed by autograd through the problem's own residual
function, so no test re-derives a PDE. A check passes when ``max|r| <= rtol * max S``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from pathlib import Path

import pytest
import sympy as sp
import torch
from torch import Tensor, nn

from kanpde import Periodic, Problem, load_problem
from kanpde.core.jet import Channels, Jet, make_channels
from kanpde.problem.conditions import Condition, ConditionPoints
from kanpde.problem.problem import SolutionField
from kanpde.problem.reference import Reference
from kanpde.problem.scope import ProblemError

PROBLEMS_DIR = Path(__file__).resolve().parents[1] / "problems"
PROBLEM_FILES = sorted(PROBLEMS_DIR.glob("*.py"))
ENGINES = ("jet", "autograd")
F64 = torch.float64

N_INTERIOR = 200
N_CONDITION = 64

EXACT_RTOL = 1e-9
"""Residual of an exact solution relative to its term scale. In float64 the exact solution,
its derivatives (``torch.func`` or nested autograd through closed-form expressions) and the
residual's few arithmetic operations each carry a relative error of a few ulps (~1e-15), so
the cancelling sum is at the 1e-14 level (measured: below 1e-15 everywhere); 1e-9 leaves a
wide margin for either engine, while any modelling error (a wrong coefficient, sign or factor
of pi) shows up at 1e-2 or above."""

CONDITION_ATOL = 1e-11
"""Condition residuals of an exact solution, relative to ``max(1, |u|, |grad u|)`` at the
condition points: these are plain evaluations without cancelling derivative terms, and the
only error is round-off in data such as ``sin(k pi) = O(k 1e-16)``."""

REFERENCE_VALUE_FACTOR = 10.0
"""Value conditions (initial, Dirichlet, periodic values) on stored reference data must hold
to this multiple of the data's own accuracy ``interp_error_max_abs + error_estimate`` (the
attributes the generator measured and stored in the file: about 2e-7 for Burgers, 1.5e-5 for
Allen-Cahn). Measured: 2.4e-8 (Burgers initial data), below 1e-12 for the rest."""

REFERENCE_RESIDUAL_RTOL = 1e-3
"""The residual of the stored data (tensor-product cubic spline interpolant, derivatives by
finite differences) relative to its term scale. This measures the interpolant's derivative
error, not round-off: the spline's second derivative is accurate to O(h^2) only, and the
Burgers front (width ~nu / |u| = 3e-3, about 10 grid cells at x = 0) and the Allen-Cahn
interfaces (width ~sqrt(eps / gamma) = 4.5e-3, 4-5 cells) are barely resolved. Measured:
1.2e-4 (Burgers, in the front at t ~ 0.4-0.6) and 5e-5 (Allen-Cahn); a 10% change of any
constant gives 2e-2 or more."""

REFERENCE_FD_STEP = 1e-5
"""Finite-difference step relative to each axis' extent: far below the grid spacing (the
stencil sees the smooth cubic pieces; the spline is C^2), while rounding (eps / h^2 ~ 2e-6
on second derivatives, multiplied by small diffusion coefficients) stays negligible."""

PERIODIC_DERIVATIVE_T_MIN = 0.1
PERIODIC_DERIVATIVE_ATOL = 1e-2
"""Derivative part of a periodic condition on reference data: the Allen-Cahn initial data
have a kink in their periodic extension (u_x = 2 at x = -1, -2 at x = 1), so the condition
holds only for t > 0, once diffusion has smoothed the kink over sqrt(eps t); the stored
grid (dx ~ 1e-3) resolves that layer from t ~ 0.1 (sqrt(eps t) = 3e-3). Measured mismatch of
u_x for t >= 0.1: 2e-3 (against the initial jump of 4); at t ~ 0.01 it is still 6e-2."""

ALL_COORDS = ("*",)
"""Stands for all of a problem's coordinates (poisson_nd's DIM is configurable)."""

EXPECTED_CHANNELS: dict[str, set[tuple]] = {
    "poisson2d_sinsin": {("lap", ("x", "y"))},
    "poisson2d_paper": {("lap", ("x", "y"))},
    "helmholtz2d": {("lap", ("x", "y"))},
    "burgers1d": {("d", ("x", "x"))},
    "heat1d": {("d", ("x", "x"))},
    "wave1d": {("d", ("x", "x")), ("d", ("t", "t"))},
    "advection1d": set(),
    "allen_cahn1d": {("d", ("x", "x"))},
    "kovasznay": {("lap", ("x", "y"))},
    "stokes2d": {("lap", ("x", "y"))},
    "poisson_mesh": {("lap", ("x", "y"))},
    "poisson_nd": {("lap", ALL_COORDS)},
    "poisson_inverse": {("lap", ("x", "y"))},
    "oscillator_ode": {("d", ("t", "t"))},
}
"""The second-order channels each PDE needs, and no more (each channel costs a jet pass)."""


# ---------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module", params=PROBLEM_FILES, ids=[p.stem for p in PROBLEM_FILES])
def loaded(request: pytest.FixtureRequest) -> tuple[Path, Problem]:
    return request.param, load_problem(request.param)


def _true_unknowns(problem: Problem) -> dict[str, Tensor]:
    missing = set(problem.unknowns) - set(problem.true_unknowns)
    assert not missing, f"unknowns without true values: {sorted(missing)}"
    return {k: torch.tensor(float(problem.true_unknowns[k]), dtype=F64)
            for k in problem.unknowns}


def _interior(problem: Problem, n: int = N_INTERIOR, seed: int = 0) -> Tensor:
    return problem.domain.sample_interior(n, torch.Generator().manual_seed(seed)).to(F64)


class _LeafJet(nn.Module):
    """Wraps a model so that its jet entries are autograd leaves (for the term scale)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.leaves: list[Tensor] = []

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)

    def jet(self, x: Tensor, second: Tensor | Channels | None = None) -> Jet:
        jet = self.model.jet(x, second=second)
        self.leaves = [t.detach().requires_grad_(True) for t in (jet.value, jet.grad, jet.second)]
        return Jet(*self.leaves, jet.channels)


def residual_and_scale(problem: Problem, model: nn.Module, x: Tensor,
                       unknowns: Mapping[str, Tensor] | None = None
                       ) -> dict[str, tuple[Tensor, Tensor]]:
    """``{name: (r (N,), S (N,))}``: residuals of ``model`` (jet engine) and their term scale
    ``S = sum_q |q dr/dq|`` over the jet entries ``q`` (see the module docstring)."""
    leaf = _LeafJet(model)
    out = {}
    for name, r in problem.residual_values(leaf, x, engine="jet", unknowns=unknowns).items():
        grads = torch.autograd.grad(r.sum(), leaf.leaves, allow_unused=True, retain_graph=True)
        scale = torch.zeros_like(r)
        for g, q in zip(grads, leaf.leaves, strict=True):
            if g is not None:
                scale = scale + (g * q).abs().flatten(1).sum(1)
        out[name] = (r.detach(), scale.detach())
    return out


def relative_residual(r: Tensor, scale: Tensor) -> float:
    """``max|r| / max S`` (0 when both vanish)."""
    top, err = float(scale.detach().abs().max()), float(r.detach().abs().max())
    return err / top if top > 0 else err


class ReferenceFD(nn.Module):
    """Stored reference data as a model: values from its interpolant, jets by finite
    differences of the interpolant (central inside, second-order one-sided within two steps of
    a face of ``bbox``; second derivatives central only)."""

    def __init__(self, reference: Reference, bbox: tuple[Tensor, Tensor]):
        super().__init__()
        self.reference = reference
        self.lo, self.hi = (b.to(F64) for b in bbox)
        self.step = REFERENCE_FD_STEP * (self.hi - self.lo)

    def forward(self, x: Tensor) -> Tensor:
        return self.reference(x)

    def jet(self, x: Tensor, second: Tensor | Channels | None = None) -> Jet:
        channels = make_channels(second, x)
        f = self.reference
        n, d = x.shape
        h = self.step
        e = torch.diag(h)  # (d, d): row a is the step along axis a
        value = f(x)
        grad = x.new_zeros(n, d, value.shape[1])
        for a in range(d):
            up = (x[:, a] + 2 * h[a] <= self.hi[a])[:, None]
            down = (x[:, a] - 2 * h[a] >= self.lo[a])[:, None]
            both = up & down

            def shifted(k: int, ok: Tensor, a: int = a) -> Tensor:
                return f(torch.where(ok, x + k * e[a], x))

            central = (shifted(1, both) - shifted(-1, both)) / (2 * h[a])
            forward = (-3 * value + 4 * shifted(1, up) - shifted(2, up)) / (2 * h[a])
            backward = (3 * value - 4 * shifted(-1, down) + shifted(-2, down)) / (2 * h[a])
            grad[:, a] = torch.where(both, central, torch.where(up, forward, backward))
        hess = x.new_zeros(n, d, d, value.shape[1])
        if channels.count:
            inside = ((x - 2 * h >= self.lo) & (x + 2 * h <= self.hi)).all()
            assert bool(inside), "second derivatives need points two steps inside the grid"
            for a in range(d):
                hess[:, a, a] = (f(x + e[a]) - 2 * value + f(x - e[a])) / h[a] ** 2
                for b in range(a + 1, d):
                    hess[:, a, b] = hess[:, b, a] = (
                        f(x + e[a] + e[b]) - f(x + e[a] - e[b]) - f(x - e[a] + e[b])
                        + f(x - e[a] - e[b])) / (4 * h[a] * h[b])
        second_out = torch.einsum("rab,Nabm->Nrm", channels.matrices.to(x), hess)
        return Jet(value, grad, second_out, channels)


class _ZeroField(nn.Module):
    """The field u = 0 (every component), with its (zero) jet."""

    def __init__(self, width: int):
        super().__init__()
        self.width = width

    def forward(self, x: Tensor) -> Tensor:
        return x.new_zeros(x.shape[0], self.width)

    def jet(self, x: Tensor, second: Tensor | Channels | None = None) -> Jet:
        channels = make_channels(second, x)
        n, d = x.shape
        return Jet(self.forward(x), x.new_zeros(n, d, self.width),
                   x.new_zeros(n, channels.count, self.width), channels)


def _condition_points(problem: Problem, cond: Condition, seed: int) -> ConditionPoints:
    return cond.sample(problem.domain, N_CONDITION, torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------------------- structure


def test_suite_is_complete() -> None:
    stems = {p.stem for p in PROBLEM_FILES}
    assert set(EXPECTED_CHANNELS) <= stems, sorted(set(EXPECTED_CHANNELS) - stems)


def test_loads_consistently(loaded: tuple[Path, Problem]) -> None:
    path, problem = loaded
    assert problem.name == path.stem
    d = len(problem.coords)
    assert problem.domain.dim == d
    lo, hi = problem.domain.bbox
    assert lo.shape == hi.shape == (d,)
    assert len(set(problem.coords)) == d and len(set(problem.fields)) == len(problem.fields)
    if problem.time is not None:
        assert problem.coords[-1] == problem.time
    else:
        assert "t" not in problem.coords, "a coordinate named t must be declared as time"
    assert problem.description.strip(), "the file needs a docstring describing the problem"
    for key in ("PDE", "Domain", "Conditions"):
        assert key in problem.description, f"docstring lacks a {key!r} line"
    assert set(problem.true_unknowns) == set(problem.unknowns)
    assert problem.conditions, "every suite problem has conditions"
    x = _interior(problem, 50)
    assert bool(problem.domain.inside(x).all())
    u = problem.solution(x)
    assert u.shape == (50, len(problem.fields)) and u.dtype == F64
    assert bool(torch.isfinite(u).all())
    ev = problem.evaluation_points()
    assert ev.shape[1] == d and ev.shape[0] > 100
    assert bool(torch.isfinite(problem.solution(ev)).all())
    for name in problem.residuals:
        assert isinstance(name, str) and name
    if problem.reference is not None:
        ref = problem.reference
        assert tuple(ref.fields) == problem.fields
        attrs = getattr(ref, "attrs", {})
        if "coordinates" in attrs:
            assert tuple(attrs["coordinates"].split(",")) == problem.coords
        for k, v in json.loads(attrs.get("parameters", "{}")).items():
            assert math.isclose(problem.constants[k], v, rel_tol=1e-12), k


def test_channel_keys(loaded: tuple[Path, Problem]) -> None:
    path, problem = loaded
    if path.stem not in EXPECTED_CHANNELS:
        pytest.skip(f"no channel expectation recorded for {path.stem}")
    expected = {(kind, problem.coords if names == ALL_COORDS else names)
                for kind, names in EXPECTED_CHANNELS[path.stem]}
    keys = problem.channel_keys
    assert len(keys) == len(set(keys))
    assert set(keys) == expected
    if problem.time is not None:  # no second derivative in time sneaks into a Laplacian
        assert all(problem.time not in names for kind, names in keys if kind == "lap")


# ---------------------------------------------------------------------------- the solution


def _solution_model(problem: Problem, engine: str) -> nn.Module:
    """The exact solution as a model, or the reference data with finite-difference jets
    (jet engine only: stored data have no autograd graph)."""
    if problem.exact is not None:
        return SolutionField(problem)
    if engine != "jet":
        pytest.skip("reference data have no autograd graph; checked by finite differences "
                    "on the jet engine")
    return ReferenceFD(problem.reference, problem.domain.bbox)


def _residual_points(problem: Problem, model: nn.Module) -> Tensor:
    if isinstance(model, ReferenceFD):
        return _shrunk_interior(problem, model)
    return _interior(problem)


def _shrunk_interior(problem: Problem, model: ReferenceFD, n: int = 2 * N_INTERIOR) -> Tensor:
    """Interior points at least three FD steps away from the faces of the bounding box."""
    x = _interior(problem, n, seed=5)
    lo, hi, margin = model.lo, model.hi, 3 * model.step
    return lo + margin + (x - lo) * (hi - lo - 2 * margin) / (hi - lo)


@pytest.mark.parametrize("engine", ENGINES)
def test_solution_satisfies_residuals(loaded: tuple[Path, Problem], engine: str) -> None:
    """Exact solutions: to round-off on both engines. Reference data: to the interpolation
    accuracy, by finite differences of the interpolant."""
    _, problem = loaded
    model = _solution_model(problem, engine)
    x = _residual_points(problem, model)
    unknowns = _true_unknowns(problem)
    rtol = EXACT_RTOL if problem.exact is not None else REFERENCE_RESIDUAL_RTOL
    res = problem.residual_values(model, x, engine=engine, unknowns=unknowns)
    scales = residual_and_scale(problem, model, x, unknowns)
    assert set(res) == set(problem.residuals)
    for name, r in res.items():
        r = r.detach()
        assert r.shape == (x.shape[0],) and r.dtype == F64
        assert bool(torch.isfinite(r).all())
        scale = scales[name][1]
        assert float(scale.max()) > 0, f"residual {name!r} reads no field"
        rel = relative_residual(r, scale)
        assert rel <= rtol, f"{name}: max|r| / max S = {rel:.2e} on {engine}"


@pytest.mark.parametrize("engine", ENGINES)
def test_solution_satisfies_conditions(loaded: tuple[Path, Problem], engine: str) -> None:
    """Exact solutions: to round-off on both engines. Reference data: value conditions to the
    data's accuracy; periodic derivatives once the initial kink is smoothed."""
    _, problem = loaded
    model = _solution_model(problem, engine)
    unknowns = _true_unknowns(problem)
    for i, cond in enumerate(problem.conditions):
        pts = _condition_points(problem, cond, seed=10 + i)
        assert bool(problem.domain.inside(pts.points).all()), cond.label(i)
        out = problem.condition_values(cond, model, pts, engine=engine,
                                       unknowns=unknowns).detach()
        assert out.ndim == 1 and out.shape[0] >= pts.points.shape[0] > 0
        assert bool(torch.isfinite(out).all())
        if problem.exact is not None:
            jet = model.jet(pts.points)
            size = max(1.0, float(jet.value.abs().max()), float(jet.grad.abs().max()))
            err = float(out.abs().max())
            assert err <= CONDITION_ATOL * size, f"{cond.label(i)}: max residual {err:.2e}"
        else:
            _check_reference_condition(problem, cond, pts.points, out, cond.label(i))


def _check_reference_condition(problem: Problem, cond: Condition, points: Tensor, out: Tensor,
                               label: str) -> None:
    attrs = problem.reference.attrs
    accuracy = float(attrs["interp_error_max_abs"]) + float(attrs.get("error_estimate", 0.0))
    tol = REFERENCE_VALUE_FACTOR * accuracy
    if isinstance(cond, Periodic):
        n = points.shape[0] // 2
        err = float(out[:n].abs().max())
        assert err <= tol, f"{label} (values): {err:.2e} > {tol:.2e}"
        if cond.derivative:
            t = points[:n, -1]
            late = t >= PERIODIC_DERIVATIVE_T_MIN if problem.time else torch.ones_like(t).bool()
            assert int(late.sum()) > n // 2
            err = float(out[n:][late].abs().max())
            assert err <= PERIODIC_DERIVATIVE_ATOL, f"{label} (derivatives): {err:.2e}"
    else:
        assert cond.order == 0, "only value conditions are expected on reference data"
        err = float(out.abs().max())
        assert err <= tol, f"{label}: {err:.2e} > {tol:.2e}"


def test_parameters_matter(loaded: tuple[Path, Problem]) -> None:
    """The residual is wired to its parameters: scaling every constant by 1.1, or using the
    initial guesses of the unknowns instead of the true values, leaves a clear residual."""
    _, problem = loaded
    if not problem.constants and not problem.unknowns:
        pytest.skip("no constants or unknowns")
    model = _solution_model(problem, "jet")
    x = _residual_points(problem, model)
    floor = 10 * REFERENCE_RESIDUAL_RTOL
    if problem.constants:
        perturbed = dataclasses.replace(
            problem, constants={k: 1.1 * v for k, v in problem.constants.items()})
        worst = max(relative_residual(r, s) for r, s in
                    residual_and_scale(perturbed, model, x, _true_unknowns(problem)).values())
        assert worst > floor, f"constants x 1.1: relative residual only {worst:.2e}"
    if problem.unknowns:
        guesses = {k: torch.tensor(float(v), dtype=F64) for k, v in problem.unknowns.items()}
        worst = max(relative_residual(r, s)
                    for r, s in residual_and_scale(problem, model, x, guesses).values())
        assert worst > floor, f"initial guesses: relative residual only {worst:.2e}"


# ---------------------------------------------------------------------------- specific checks


def test_poisson2d_paper_source_is_the_laplacian() -> None:
    """The KAN paper's source term, derived symbolically, matches the file's."""
    x, y = sp.symbols("x y", real=True)
    u = sp.sin(sp.pi * x) * sp.sin(sp.pi * y**2)
    f_paper = (-sp.pi**2 * (1 + 4 * y**2) * sp.sin(sp.pi * x) * sp.sin(sp.pi * y**2)
               + 2 * sp.pi * sp.sin(sp.pi * x) * sp.cos(sp.pi * y**2))
    assert sp.simplify(sp.diff(u, x, 2) + sp.diff(u, y, 2) - f_paper) == 0
    for side in (-1, 1):  # homogeneous Dirichlet data on all four sides
        assert sp.simplify(u.subs(x, side)) == 0 and sp.simplify(u.subs(y, side)) == 0

    problem = load_problem(PROBLEMS_DIR / "poisson2d_paper.py")
    pts = _interior(problem)
    u_fn = sp.lambdify((x, y), u, "math")
    f_fn = sp.lambdify((x, y), f_paper, "math")
    u_sym = torch.tensor([u_fn(a, b) for a, b in pts.tolist()], dtype=F64)
    f_sym = torch.tensor([f_fn(a, b) for a, b in pts.tolist()], dtype=F64)
    torch.testing.assert_close(problem.solution(pts)[:, 0], u_sym, rtol=0, atol=1e-14)
    # the residual of u = 0 is minus the file's source term
    r0 = problem.residual_values(_ZeroField(1), pts)["pde"]
    torch.testing.assert_close(-r0, f_sym, rtol=0, atol=1e-12)


def test_kovasznay_pressure_is_pinned() -> None:
    """Velocity data alone fix p up to a constant; some condition must constrain p."""
    problem = load_problem(PROBLEMS_DIR / "kovasznay.py")
    assert {c.field for c in problem.conditions} == {"u", "v", "p"}


def test_inverse_observations_are_deterministic() -> None:
    a = load_problem(PROBLEMS_DIR / "poisson_inverse.py")
    b = load_problem(PROBLEMS_DIR / "poisson_inverse.py")
    (obs_a,) = [c for c in a.conditions if type(c).__name__ == "Observations"]
    (obs_b,) = [c for c in b.conditions if type(c).__name__ == "Observations"]
    assert obs_a.points.shape == (100, 2)
    assert torch.equal(obs_a.points, obs_b.points) and torch.equal(obs_a.values, obs_b.values)
    assert bool(((obs_a.points > 0) & (obs_a.points < 1)).all())


# ---------------------------------------------------------------------------- bad files

_TEMPLATE = '''\
"""A deliberately {what} problem file."""
from pathlib import Path

import torch

from kanpde import Dirichlet, Problem
from kanpde.problem.geometry import Box, MeshDomain

{prefix}
{target} = Problem(
    name="bad",
    coords=("x", "y"),
    domain={domain},
    residuals={{"pde": lambda s: {residual}}},
    conditions={conditions},
    exact=lambda x: x[:, 0] * x[:, 1],
)
'''

_GOOD = dict(prefix="", target="problem", domain='Box([0, 0], [1, 1], coord_names=("x", "y"))',
             residual="s.u.laplacian()", conditions="[Dirichlet(value=0.0)]")

BAD_FILES: dict[str, tuple[dict[str, str], str]] = {
    "raises_on_import": (dict(prefix='raise RuntimeError("boom")'),
                         "import raised RuntimeError: boom ("),
    "no_problem": (dict(target="prob"), "defines no `problem`"),
    "unknown_coordinate": (dict(residual='s.u.d("z")'), "unknown coordinate 'z'"),
    "unknown_field": (dict(residual='s.w.d("x")'), "unknown name 'w'"),
    "wrong_shape": (dict(residual="torch.stack([s.u.value, s.u.value], 1)"),
                    "expected ("),
    "no_conditions": (dict(conditions="[]"), "no conditions"),
    "third_order": (dict(residual='s.u.d("x", "x", "y")'), "order 3"),
    "missing_mesh": (dict(domain='MeshDomain.from_file(Path(__file__).parent / "gone.msh")'),
                     "gone.msh': not found"),
    "condition_on_unknown_field": (dict(conditions='[Dirichlet(field="w")]'),
                                   "unknown field 'w'"),
}


def _write(tmp_path: Path, what: str, **changes: str) -> Path:
    path = tmp_path / f"{what}.py"
    path.write_text(_TEMPLATE.format(what=what, **{**_GOOD, **changes}))
    return path


def test_template_file_is_valid(tmp_path: Path) -> None:
    problem = load_problem(_write(tmp_path, "valid"))
    assert problem.channel_keys == [("lap", ("x", "y"))]


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_problem_file(tmp_path: Path, case: str) -> None:
    changes, fragment = BAD_FILES[case]
    path = _write(tmp_path, case, **changes)
    with pytest.raises(ProblemError) as info:
        load_problem(path)
    message = str(info.value)
    assert "\n" not in message, message
    assert message.startswith(f"problem file '{path}'"), message
    assert fragment in message, message


def test_missing_problem_file(tmp_path: Path) -> None:
    with pytest.raises(ProblemError, match="not found"):
        load_problem(tmp_path / "nowhere.py")
