"""Error metrics of a model against the problem's solution on its evaluation points.

Every metric is computed **per field** and then aggregated. With prediction ``P`` and
solution ``U`` ``(M, m)`` on the ``M`` evaluation points (those inside the problem's
``region`` when it gives one), and ``e_j = P_j - U_j`` the error of field ``j``, less its mean
over the points when ``j`` is a gauge field (``Problem(gauge=...)``: determined up to a
constant):

* ``l2_rel/j = ||e_j|| / ||U_j||`` (``||e_j||`` when ``U_j`` is zero);
* ``max_abs_err/j = max |e_j|``;
* ``mse/j = mean(e_j^2)`` (the squared L2 error of the KAN paper);
* ``h1_rel/j = sqrt(||e_j||^2 + ||grad e_j||^2) / sqrt(||U_j||^2 + ||grad U_j||^2)`` and
  ``h1_mse/j = mean(e_j^2 + |grad e_j|^2)`` where the problem has an exact solution (its
  gradient by autograd through :class:`kanpde.problem.SolutionField`, the model's by the jet
  engine); computed for the final evaluation only (it costs a jet over all evaluation
  points).

The aggregates (the keys without ``/``) are, over the ``m`` fields:

* ``l2_rel`` and ``h1_rel``: the **mean of the per-field relative errors**, never one norm
  over fields of different scale (a pressure of size 10 would otherwise drown velocities
  of size 1);
* ``max_abs_err``: the largest per-field value;
* ``mse`` and ``h1_mse``: the mean of the per-field values (absolute errors: they carry the
  fields' scales; read the per-field values for systems).

For one field each aggregate is that field's value, computed exactly as before per-field
metrics existed. :func:`per_field` turns the flat ``"metric/field"`` keys into the
``{"field": {"metric": value}}`` mapping of ``summary["fields"]``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from kanpde.core.chunking import map_chunks, points_per_chunk
from kanpde.core.engines import autograd_jet, compute_jet
from kanpde.problem import SolutionField

METRICS = ("l2_rel", "max_abs_err", "mse", "h1_rel", "h1_mse")
"""The error metrics, each also per field as ``"metric/field"``."""


def per_field(metrics: dict[str, float], fields) -> dict[str, dict[str, float | None]]:
    """``{field: {metric: value}}`` from the flat ``"metric/field"`` keys of an
    :class:`Evaluator` result (non-finite values become ``None``)."""
    out: dict[str, dict[str, float | None]] = {}
    for f in fields:
        row = {}
        for k in METRICS:
            v = metrics.get(f"{k}/{f}")
            if v is not None:
                row[k] = float(v) if math.isfinite(v) else None
        out[f] = row
    return out


class Evaluator:
    """Evaluation points, reference values (and gradients), computed once.

    Args:
        problem: the problem.
        dtype, device: of the model.
        chunk: points per model evaluation (``None``: from the memory budget, see
            :mod:`kanpde.core.chunking`).
        memory_budget: bytes for that choice (``None``: the default budget).

    Attributes:
        points: ``(M, d)`` evaluation points (all of them, also outside the region).
        reference: ``(M, m)`` solution there, or ``None`` when the problem has no exact
            solution or reference (then every metric is NaN).
        mask: ``(M,)`` bool, the points inside the problem's region, or ``None``.

    Raises:
        ProblemError: the solution or the region function fails, or the region keeps no
            evaluation point (one line).
    """

    def __init__(self, problem, dtype: torch.dtype, device: torch.device,
                 chunk: int | None = None, memory_budget: int | None = None):
        self.problem = problem
        self.chunk, self.memory_budget = chunk, memory_budget
        self.points = problem.evaluation_points(dtype=dtype, device=device)  # (M, d)
        self.has_reference = bool(problem.has_solution)
        self.reference = problem.solution(self.points).detach() if self.has_reference \
            else None  # (M, m)
        self.mask = problem.region_mask(self.points)
        if self.mask is not None and self.points.shape[0] and not bool(self.mask.any()):
            from kanpde.problem.scope import ProblemError

            raise ProblemError(problem.what(f"region keeps none of the {self.points.shape[0]} "
                                            "evaluation points"))
        self.fields = tuple(problem.fields)
        self.gauge = [j for j, f in enumerate(self.fields) if f in problem.gauge]
        self._reference_grad: Tensor | None = None  # (M', d, m), computed on first use
        self._grad_failed = problem.exact is None

    @property
    def region_note(self) -> str | None:
        """``"errors on the problem's region: M' of M evaluation points"`` (``None`` without
        a region)."""
        if self.mask is None:
            return None
        return (f"errors on the problem's region: {int(self.mask.sum())} of "
                f"{self.mask.shape[0]} evaluation points")

    def _measured(self, x: Tensor) -> Tensor:
        return x if self.mask is None else x[self.mask]

    @property
    def reference_grad(self) -> Tensor | None:
        """``(M', d, m)`` gradient of the exact solution at the measured points (``None``
        without one)."""
        if self._reference_grad is None and not self._grad_failed:
            try:
                # SolutionField is pointwise, so first-order autograd gives the gradient
                field = SolutionField(self.problem)
                pts = self._measured(self.points)
                self._reference_grad = map_chunks(
                    lambda x: autograd_jet(field, x).grad.detach(), pts,
                    self._chunk(None, pts.shape[1]))
            except Exception:  # an exact function autograd cannot differentiate
                self._grad_failed = True
        return self._reference_grad

    def _chunk(self, model: nn.Module | None, dim: int = 0) -> int:
        """Points per evaluation: ``chunk``, else from the budget for ``model`` carrying
        gradients in ``dim`` coordinates."""
        return self.chunk or points_per_chunk(model, dim, 0, self.points.element_size(),
                                              self.memory_budget)

    @torch.no_grad()
    def predict(self, model: nn.Module) -> Tensor:
        """``(M, m)`` model values at the evaluation points."""
        return map_chunks(model, self.points, self._chunk(model))

    def errors(self, prediction: Tensor) -> Tensor:
        """``(M', m)`` errors ``P - U`` of a prediction ``(M, m)`` at the measured points,
        gauge fields less their mean error.

        Raises:
            ValueError: the problem has no solution to measure against.
        """
        if self.reference is None:
            raise ValueError("the problem has no exact solution or reference")
        err = self._measured(prediction) - self._measured(self.reference)
        if self.gauge:
            err = err.clone()
            for j in self.gauge:
                err[:, j] -= err[:, j].mean()
        return err

    def __call__(self, model: nn.Module, h1: bool = True) -> dict[str, float]:
        """The metrics of the module docstring: the aggregates ``l2_rel``, ``max_abs_err``,
        ``mse`` and, when ``h1``, ``h1_rel`` and ``h1_mse`` (NaN without an exact
        solution), and the same per field as ``"metric/field"``. Without a solution every
        aggregate is NaN and there are no per-field keys."""
        nan = {"l2_rel": math.nan, "max_abs_err": math.nan, "mse": math.nan,
               "h1_rel": math.nan, "h1_mse": math.nan}
        if self.reference is None:
            return nan
        err = self.errors(self.predict(model))
        ref = self._measured(self.reference)
        m = err.shape[1]
        cols = range(m)
        ref_sq = [float(ref[:, j].square().sum()) for j in cols]
        err_sq = [float(err[:, j].square().sum()) for j in cols]
        l2 = [math.sqrt(e / r) if r > 0 else math.sqrt(e) for e, r in zip(err_sq, ref_sq,
                                                                           strict=True)]
        out = dict(nan)
        out.update({
            "l2_rel": l2[0] if m == 1 else sum(l2) / m,
            "max_abs_err": float(err.abs().max()),
            "mse": float(err.square().mean()),
        })
        for j, f in enumerate(self.fields):
            out[f"l2_rel/{f}"] = l2[j]
            out[f"max_abs_err/{f}"] = float(err[:, j].abs().max())
            out[f"mse/{f}"] = float(err[:, j].square().mean())
        ref_grad = self.reference_grad if h1 else None
        if ref_grad is not None:
            pts = self._measured(self.points)
            grad_err_sq = [0.0] * m
            chunk = self._chunk(model, pts.shape[1])
            for s in range(0, pts.shape[0], chunk):
                x = pts[s:s + chunk]
                if hasattr(model, "jet"):
                    with torch.no_grad():
                        g = compute_jet(model, x, None, "jet").grad
                else:  # a model without jets: its gradient by autograd
                    g = autograd_jet(model, x).grad.detach()
                diff = g - ref_grad[s:s + chunk]  # (n, d, m)
                for j in cols:
                    grad_err_sq[j] += float(diff[..., j].square().sum())
            h1_rel, h1_mse = [], []
            for j, f in enumerate(self.fields):
                den = ref_sq[j] + float(ref_grad[..., j].square().sum())
                h1_rel.append(math.sqrt((err_sq[j] + grad_err_sq[j]) / den) if den > 0
                              else math.nan)
                h1_mse.append((err_sq[j] + grad_err_sq[j]) / err.shape[0])
                out[f"h1_rel/{f}"], out[f"h1_mse/{f}"] = h1_rel[j], h1_mse[j]
            out["h1_rel"] = h1_rel[0] if m == 1 else sum(h1_rel) / m
            out["h1_mse"] = (sum(err_sq) + sum(grad_err_sq)) / err.numel()
        return out
