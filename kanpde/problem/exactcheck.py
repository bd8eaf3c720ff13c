"""Does a problem's exact solution solve it? The test behind ``kanpde check``.

For every residual and every condition, the exact solution ``u`` is put in as the model
(:class:`~kanpde.problem.SolutionField`) on both derivative engines, and the largest residual
``max_i |r(u)(x_i)|`` must be small relative to the size of the residual's terms::

    max_i |r(u)(x_i)|  <=  RTOL * S,     S = max(max_i |r(0)(x_i)|,
                                             max_i |r(u)(x_i) - r(0)(x_i)|,  F)

``r(0)`` is the residual of the zero field (the forcing and boundary data), ``r(u) - r(0)`` the
part that depends on the field (its differential operator applied to ``u``), and ``F`` the
term's response ``max_i |r(P)(x_i) - r(0)(x_i)|`` to a smooth probe field ``P`` of the exact
solution's size varying over the domain (:class:`~kanpde.problem.probe.ProbeField`), so
that a homogeneous equation, whose parts cancel, is still measured against the size its
terms have in the problem's units (``u''`` on ``[0, 1000]`` is 1e-6 of ``u``). Where the
probe cannot be evaluated, ``F`` is the largest value, first or second derivative of ``u``.
A residual or condition that is not finite at some point fails, as does an empty evaluation
set or a solution that is not finite on it. A value condition on a gauge field
(``Problem(gauge=...)``, a field determined only up to a constant) is checked up to a
constant: its residual less its mean.

A problem without an exact solution or reference is checked for what it states
(:func:`check_data`): every residual and condition evaluates to a finite vector of the
right shape on the zero field (its forcing and its data) and on a small random network.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from kanpde.core.jet import Jet
from kanpde.problem import Problem, SolutionField
from kanpde.problem.probe import ProbeField, probe_condition, probe_residuals

#: relative tolerance of the exact-solution check
RTOL = 1e-6


@dataclass(frozen=True)
class TermCheck:
    """The check of one residual or condition on one engine.

    Attributes:
        name: ``"residual 'pde'"`` or ``"condition 0 'dirichlet0' (Dirichlet on boundary)"``.
        engine: the derivative engine.
        max_abs: ``max |r(u)|`` (NaN when some value is not finite).
        scale: ``S``, the size of the term's parts.
        tol: ``RTOL * S``.
        problem: why it fails (one line), or ``""`` when it passes.
    """

    name: str
    engine: str
    max_abs: float
    scale: float
    tol: float
    problem: str = ""

    @property
    def ok(self) -> bool:
        return not self.problem

    def line(self) -> str:
        """``max |r| = ... <= tolerance ...`` (or why it fails) for the report."""
        if self.problem:
            return self.problem
        return f"{self.name}: {_bound(self.max_abs, '<=', self.scale, self.engine)}"


def _bound(max_abs: float, rel: str, scale: float, engine: str) -> str:
    return (f"max |r| = {max_abs:.2e} {rel} tolerance {RTOL * scale:.2e} ({RTOL:g} x "
            f"{scale:.2e}, the size of its terms; {engine} engine)")


class _ZeroField(nn.Module):
    """The zero field with ``m`` outputs (value, gradient and channels all zero)."""

    def __init__(self, m: int):
        super().__init__()
        self.m = m

    def forward(self, x: Tensor) -> Tensor:
        return x.new_zeros(x.shape[0], self.m)

    def jet(self, x: Tensor, second=None) -> Jet:
        from kanpde.core.jet import make_channels

        ch = make_channels(second, x)
        n, d = x.shape
        return Jet(x.new_zeros(n, self.m), x.new_zeros(n, d, self.m),
                   x.new_zeros(n, ch.count, self.m), ch)


def _where(x: Tensor, bad: Tensor, coords: Sequence[str]) -> str:
    i = int(bad.nonzero()[0, 0])
    return ", ".join(f"{c}={v:.4g}" for c, v in zip(coords, x[i].tolist(), strict=False))


def _field_scale(field: SolutionField, x: Tensor, problem: Problem) -> float:
    jet = field.jet(x, second=problem.channels(x))
    parts = [jet.value, jet.grad, jet.second]
    values = torch.cat([p.detach().reshape(-1) for p in parts])
    values = values[values.isfinite()]
    return float(values.abs().max()) if values.numel() else 0.0


def _probe(problem: Problem, field: SolutionField, x: Tensor) -> ProbeField:
    """The probe field with the exact solution's amplitudes (1 for a field that is zero)."""
    with torch.no_grad():
        u = field(x).detach()
    amps = []
    for j in range(u.shape[1]):
        col = u[:, j][u[:, j].isfinite()]
        a = float(col.abs().max()) if col.numel() else 0.0
        amps.append(a if a > 0 and math.isfinite(a) else 1.0)
    lo, hi = (t.to(x.dtype) for t in problem.domain.bbox)
    return ProbeField(lo, hi, amps)


def _response(rp: Tensor | None, r0: Tensor, fallback: float) -> float:
    """``F`` of the module docstring: ``max |r(P) - r(0)|``, or ``fallback`` when the probe
    gave nothing usable."""
    if rp is None:
        return fallback
    d = (rp.detach() - r0.detach()).reshape(-1)
    if not d.numel() or not bool(d.isfinite().all()):
        return fallback
    f = float(d.abs().max())
    return f if f > 0 else fallback


def _term(name: str, engine: str, r: Tensor, r0: Tensor, x: Tensor, field_scale: float,
          coords: Sequence[str]) -> TermCheck:
    r, r0 = r.detach().reshape(r.shape[0], -1), r0.detach().reshape(r0.shape[0], -1)
    bad = ~r.isfinite().all(dim=1)
    if bool(bad.any()):
        kind = "NaN" if bool(r.isnan().any()) else "infinite"
        rows = min(int(bad.shape[0]), x.shape[0])
        at = _where(x[:rows], bad[:rows], coords) if bool(bad[:rows].any()) else "?"
        return TermCheck(name, engine, math.nan, math.nan, math.nan,
                         f"{name}: the exact solution makes it {kind} at {int(bad.sum())} "
                         f"of {bad.shape[0]} points (e.g. {at}; {engine} engine)")
    max_abs = float(r.abs().max()) if r.numel() else 0.0
    finite0 = r0.isfinite()
    diff = (r - r0)[finite0]
    scale = max(float(r0[finite0].abs().max()) if finite0.any() else 0.0,
                float(diff.abs().max()) if diff.numel() else 0.0, field_scale)
    tol = RTOL * scale
    fault = "" if max_abs <= tol else \
        f"{name}: the exact solution leaves {_bound(max_abs, '>', scale, engine)}"
    return TermCheck(name, engine, max_abs, scale, tol, fault)


def check_exact(problem: Problem, points: int, generator: torch.Generator, *,
                unknowns: Mapping[str, Tensor] | None = None,
                engines: Sequence[str] = ("jet", "autograd")) -> list[TermCheck]:
    """Check the exact solution against every residual and condition (see the module
    docstring); one :class:`TermCheck` per term and engine.

    Args:
        problem: a problem with an exact solution.
        points: interior points (and points per condition), ``>= 1``.
        generator: draws the points.
        unknowns: the true values of the unknown parameters, if any.
        engines: derivative engines to check on.
    """
    field, zero = SolutionField(problem), _ZeroField(len(problem.fields))
    x = problem.domain.sample_interior(points, generator)
    fscale = _field_scale(field, x, problem)
    probe = _probe(problem, field, x)
    res0 = problem.residual_values(zero, x, engine="jet", unknowns=unknowns)
    resp = probe_residuals(problem, probe, x, unknowns)
    out: list[TermCheck] = []
    for engine in engines:
        res = problem.residual_values(field, x, engine=engine, unknowns=unknowns)
        for name, r in res.items():
            scale = _response(resp.get(name), res0[name], fscale)
            out.append(_term(f"residual {name!r}", engine, r, res0[name], x, scale,
                             problem.coords))
    for cond in problem.conditions:
        pts = cond.sample(problem.domain, points, generator)
        r = problem.condition_values(cond, field, pts, unknowns=unknowns)
        r0 = problem.condition_values(cond, zero, pts, unknowns=unknowns)
        rp = probe_condition(problem, cond, probe, pts, unknowns)
        scale = _response(rp, r0, _field_scale(field, pts.points, problem))
        title = problem.condition_title(cond)
        if cond.field in problem.gauge and cond.order == 0 and r.numel():
            r = r - r.detach().mean()  # the exact gauge field may differ by a constant
            title += f" (up to a constant: {cond.field} is a gauge field)"
        out.append(_term(title, "jet", r, r0, pts.points, scale, problem.coords))
    return out


def check_data(problem: Problem, points: int, generator: torch.Generator, *,
               unknowns: Mapping[str, Tensor] | None = None) -> list[TermCheck]:
    """Check a problem without a solution: every residual and condition, on the zero field
    (its forcing and data) and on a small random KAN, is a finite ``(n,)`` vector. One
    :class:`TermCheck` per term (``max_abs``: the largest ``|r(0)|``, the size of the
    forcing or data; ``scale`` and ``tol`` NaN)."""
    from kanpde.nn import KAN

    zero = _ZeroField(len(problem.fields))
    net = KAN([len(problem.coords), 4, len(problem.fields)], grid_size=3,
              seed=int(torch.randint(0, 2**31 - 1, (1,), generator=generator)))
    net = net.to(torch.float64)
    x = problem.domain.sample_interior(points, generator)
    terms: list[tuple[str, Tensor, Tensor, Tensor]] = []
    res0 = problem.residual_values(zero, x, engine="jet", unknowns=unknowns)
    resn = problem.residual_values(net, x, engine="jet", unknowns=unknowns)
    for name in problem.residuals:
        terms.append((f"residual {name!r}", res0[name], resn[name], x))
    for cond in problem.conditions:
        pts = cond.sample(problem.domain, points, generator)
        terms.append((problem.condition_title(cond),
                      problem.condition_values(cond, zero, pts, unknowns=unknowns),
                      problem.condition_values(cond, net, pts, unknowns=unknowns), pts.points))
    out = []
    for name, r0, rn, pts in terms:
        fault = ""
        for what, r in (("its data (the zero field)", r0), ("a random network", rn)):
            r = r.detach()
            if r.ndim != 1:
                fault = f"{name}: returned shape {tuple(r.shape)} for {what}, expected (n,)"
            elif not bool(r.isfinite().all()):
                bad = ~r.isfinite()
                rows = min(int(bad.shape[0]), pts.shape[0])
                at = _where(pts[:rows], bad[:rows], problem.coords) \
                    if bool(bad[:rows].any()) else "?"
                fault = (f"{name}: not finite for {what} at {int(bad.sum())} of "
                         f"{bad.shape[0]} points (e.g. {at})")
            if fault:
                break
        size = float(r0.detach().abs().max()) if r0.numel() and not fault else math.nan
        out.append(TermCheck(name, "jet", size, math.nan, math.nan, fault))
    return out


EMPTY_EVALUATION = "the evaluation set is empty (no evaluation point lies inside the domain)"
EMPTY_REGION = "the region keeps none of the {n} evaluation points"


def no_metrics(warning: str) -> bool:
    """Whether a :func:`check_solution` answer means that no error metric can be computed
    (an empty evaluation set or region), so that a run must be refused before training."""
    return warning == EMPTY_EVALUATION or warning.startswith(EMPTY_REGION.split("{")[0])


def check_solution(problem: Problem) -> str:
    """``""`` when the solution is finite on a non-empty evaluation set (or the problem has
    none), else why not (:data:`EMPTY_EVALUATION` for an empty one)."""
    x = problem.evaluation_points()
    if x.shape[0] == 0:
        return EMPTY_EVALUATION
    if not problem.has_solution:
        return ""
    u = problem.solution(x)
    bad = ~u.isfinite().all(dim=1)
    mask = problem.region_mask(x)
    if mask is not None:  # outside the region the solution is not used
        if not bool(mask.any()):
            return EMPTY_REGION.format(n=x.shape[0])
        bad &= mask
    if bool(bad.any()):
        source = "exact solution" if problem.exact is not None else "reference solution"
        return (f"the {source} is not finite at {int(bad.sum())} of {x.shape[0]} evaluation "
                f"points (e.g. {_where(x, bad, problem.coords)}); error metrics cannot be "
                "computed")
    return ""
