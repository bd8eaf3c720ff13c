"""Characteristic scales: a solve made dimensionless, whatever units the problem is written in.

Three scalings make the same problem give the same training in any units:

* **inputs**: ``model.normalize_inputs`` maps the domain's bounding box onto the network's
  input range (:mod:`kanpde.training.model`);
* **outputs**: the network predicts ``u_j / U_j``; :class:`~kanpde.nn.output_scale.OutputScale`
  multiplies by the field scale ``U_j``;
* **residuals**: every PDE residual and condition ``r_t`` enters the loss as ``r_t / S_t``,
  ``S_t`` a characteristic magnitude of its terms at those scales.

``U`` and ``S`` are measured with a *probe field*, a smooth function of unit size that varies
over the bounding box (length ``L_i`` along coordinate ``i``)::

    phi_j(x) = prod_i sqrt(2) sin(pi (x_i - lo_i) / L_i + pi/4 + 0.6 j)

(its value, first and second derivatives have root-mean-square sizes ``1``, ``pi/L_i`` and
``(pi/L_i)^2`` along each axis, and it is non-zero on every boundary). For each residual or
condition ``t`` and field ``j``, with ``rms`` over a fixed sample of the term's points (the
zero field in every other field, unknown parameters at their initial guesses)::

    b_t    = rms r_t(0)                        the term's data: forcing, boundary values
    a_tj   = rms (r_t(phi_j) - r_t(0))         its response to field j of unit size

* ``U_j`` is the problem's ``scales[j]`` when given; else the geometric mean over the terms
  of ``b_t / a_tj`` (the size field ``j`` must have to balance the term's data: a
  Dirichlet value ``g`` gives ``rms g``, a source ``f`` of ``u'' = f`` gives
  ``rms f L^2 / pi^2``); a field without data of its own (``v`` of ``u' = v / 100``) is then
  sized by the geometric mean over the terms of ``max_i a_ti U_i / a_tj``, the largest
  contribution of the fields already sized; else ``1``. A source that varies faster than
  the probe gives too large a ``U`` (``helmholtz2d``'s ``sin(4 pi y)``: 10 times); give
  ``scales`` then;
* ``S_t = max(b_t, max_j rms (r_t(U_j phi_j) - r_t(0)))``, the larger of the term's data and
  its response to each field at its scale, as ``kanpde check`` measures the size of a term's
  parts (:mod:`kanpde.problem.exactcheck`); ``1`` when that is zero or not finite.

Every scale is rounded to a power of ten: a field already of unit size keeps exactly the
network it had (no scaling layer), and with residual scaling a problem in other units
(``L = 10^k``, ``U = 10^k``) becomes exactly the same training problem. A term whose probe
evaluation fails or is not finite keeps the scale ``1`` (the training itself then reports
the fault). With a hard constraint the network is not scaled (``U`` would also have to
absorb the distance function's units); the residual scales still apply.

Sources: non-dimensionalisation as the first step of PINN training is recommended by
S. Wang, S. Sankaran, H. Wang and P. Perdikaris, "An expert's guide to training
physics-informed neural networks", arXiv:2308.08468 (2023); the probe estimates of ``U`` and
``S`` are kanpde's own.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from kanpde.problem.probe import ProbeField, probe_condition, probe_residuals

#: points of the probe sample (interior, and per condition)
PROBE_POINTS = 256
#: term scales this far apart are named in the start line when residual scaling is off
SPREAD = 1e2


@dataclass(frozen=True)
class Scales:
    """The characteristic scales of one solve.

    Attributes:
        fields: ``{field: U}`` (in the field's units).
        origins: ``{field: how U was found}``: ``"given"`` (the problem's ``scales``),
            ``"data"`` (conditions and source terms), ``"coupling"`` (other fields through
            the residuals), ``"default"`` (nothing to go by: 1).
        terms: ``{term: S}`` (residual and condition labels; ``1`` each when they were not
            measured). The trainer measures them always: they also decide whether a stage
            stalled.
        outputs: whether the network predicts ``u / U``.
        residuals: whether the terms are divided by ``S``.
    """

    fields: dict[str, float]
    origins: dict[str, str]
    terms: dict[str, float]
    outputs: bool = True
    residuals: bool = True

    def record(self) -> dict[str, Any]:
        """The JSON-able record of ``summary["scales"]`` (the solve adds ``initial_loss``,
        what the optimisers' loss was divided by)."""
        return {"fields": dict(self.fields), "origins": dict(self.origins),
                "terms": dict(self.terms), "outputs": self.outputs,
                "residuals": self.residuals}

    def line(self) -> str:
        """One line for the start of a run, e.g. ``scales: u = 1e+03 (data); residuals
        divided by pde 1e+01, dirichlet0 1e+03``."""
        fields = ", ".join(f"{k} = {v:.0e} ({self.origins[k]})" for k, v in self.fields.items())
        out = f"scales: {fields}" + ("" if self.outputs else " (outputs not scaled)")
        if self.residuals:
            out += "; residuals divided by " + ", ".join(f"{k} {v:.0e}"
                                                          for k, v in self.terms.items())
        elif self.terms and max(self.terms.values()) >= SPREAD * min(self.terms.values()):
            out += ("; the terms differ in size (" + ", ".join(
                f"{k} {v:.0e}" for k, v in self.terms.items()) + "): consider [scaling] "
                "residuals = \"auto\"")
        return out


def power_of_ten(value: float) -> float:
    """``10^round(log10 value)`` (``1`` for a value that is not positive and finite)."""
    if not (math.isfinite(value) and value > 0):
        return 1.0
    return float(10.0 ** round(math.log10(value)))


def _rms(v: Tensor) -> float:
    v = v.detach().reshape(-1)
    if not v.numel() or not bool(v.isfinite().all()):
        return math.nan
    return float(v.square().mean().sqrt())


class _Sample:
    """The probe points of every term and their residuals for a given probe field."""

    def __init__(self, problem, dtype: torch.dtype = torch.float64):
        gen = torch.Generator().manual_seed(20240611)
        self.problem = problem
        lo, hi = (t.to(dtype) for t in problem.domain.bbox)
        self.lo, self.hi = lo, hi
        self.x = problem.domain.sample_interior(PROBE_POINTS, gen).to(dtype)
        self.conditions = []
        for cond in problem.conditions:
            self.conditions.append(cond.sample(problem.domain, PROBE_POINTS, gen))
        self.names = list(problem.residuals) + [c.label(i)
                                                 for i, c in enumerate(problem.conditions)]

    def residuals(self, amplitudes: list[float]) -> dict[str, Tensor | None]:
        """``{term: r_t}`` of the probe field with these amplitudes (``None``: failed)."""
        p, out = self.problem, {}
        probe = ProbeField(self.lo, self.hi, amplitudes)
        res = probe_residuals(p, probe, self.x)
        for k in p.residuals:
            out[k] = res.get(k)
        for i, cond in enumerate(p.conditions):
            out[cond.label(i)] = probe_condition(p, cond, probe, self.conditions[i])
        return out


def characteristic_scales(problem, *, outputs: bool = True, residuals: bool = True,
                          scale_network: bool = True) -> Scales:
    """The field scales ``U`` and term scales ``S`` of ``problem`` (module docstring).

    Args:
        problem: the :class:`~kanpde.problem.Problem`.
        outputs: estimate ``U`` (else every ``U`` is ``1`` unless given).
        residuals: compute ``S`` (else every ``S`` is ``1``).
        scale_network: whether the network will predict ``u / U`` (recorded; ``False`` for
            a hard constraint or a model given by the caller).

    Returns:
        The :class:`Scales` (float64 numbers, powers of ten).
    """
    fields = list(problem.fields)
    m = len(fields)
    given = {k: power_of_ten(v) for k, v in problem.scales.items()}
    if not outputs and not residuals:
        return Scales({f: given.get(f, 1.0) for f in fields},
                      {f: "given" if f in given else "default" for f in fields},
                      {}, outputs=False, residuals=False)
    with torch.no_grad():
        sample = _Sample(problem)
    zero = sample.residuals([0.0] * m)
    b = {t: _rms(r) if r is not None else math.nan for t, r in zero.items()}

    def response(j: int, amplitude: float) -> dict[str, float]:
        amps = [0.0] * m
        amps[j] = amplitude
        res = sample.residuals(amps)
        return {t: _rms(r - zero[t]) if r is not None and zero[t] is not None else math.nan
                for t, r in res.items()}

    unit = [response(j, 1.0) for j in range(m)]
    scales: dict[str, float] = {}
    origins: dict[str, str] = {}
    for j, f in enumerate(fields):
        if f in given:
            scales[f], origins[f] = given[f], "given"
            continue
        if not outputs:
            scales[f], origins[f] = 1.0, "default"
            continue
        est = [b[t] / unit[j][t] for t in sample.names if _positive(b[t])
               and _positive(unit[j][t])]
        if est:
            scales[f], origins[f] = power_of_ten(_geometric_mean(est)), "data"
    for j, f in enumerate(fields):  # fields without data of their own: by coupling
        if f in scales:
            continue
        est = []
        for t in sample.names:
            known = [unit[i][t] * scales[g] for i, g in enumerate(fields)
                     if g in scales and _positive(unit[i][t])]
            if known and _positive(unit[j][t]):
                est.append(max(known) / unit[j][t])
        if est:
            scales[f], origins[f] = power_of_ten(_geometric_mean(est)), "coupling"
        else:
            scales[f], origins[f] = 1.0, "default"
    scales = {f: scales[f] for f in fields}
    terms = {t: 1.0 for t in sample.names}
    if residuals:
        at_scale = [response(j, scales[f]) for j, f in enumerate(fields)]
        for t in sample.names:
            parts = [b[t]] + [r[t] for r in at_scale]
            parts = [v for v in parts if _positive(v)]
            terms[t] = power_of_ten(max(parts)) if parts else 1.0
    return Scales(scales, {f: origins[f] for f in fields}, terms,
                  outputs=outputs and scale_network, residuals=residuals)


def _positive(v: float) -> bool:
    return math.isfinite(v) and v > 0.0


def _geometric_mean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


def term_scales(scales: Scales) -> Mapping[str, float]:
    """``{term: S}`` the loss divides by (empty without residual scaling: all ``1``)."""
    return dict(scales.terms) if scales.residuals else {}


def solver_term_scales(problem, config) -> Mapping[str, float]:
    """``{term: S}`` a solve of ``problem`` with the solver ``config`` divides by (empty
    with ``scaling.residuals = "none"``): for code that rebuilds a run's loss."""
    if config.scaling.residuals != "auto":
        return {}
    return term_scales(characteristic_scales(problem, outputs=config.scaling.outputs == "auto"))
