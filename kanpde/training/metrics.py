"""Error metrics of a model against the problem's solution on its evaluation points.

With prediction ``P`` and reference ``U`` ``(M, m)`` (all fields together):

* ``l2_rel = ||P - U||_F / ||U||_F``;
* ``max_abs_err = max |P - U|``;
* ``mse = mean((P - U)^2)`` over points and fields (the squared L2 error of the KAN paper);
* ``h1_mse = mean((P - U)^2 + |grad P - grad U|^2)`` over points and fields (its squared H1
  error; needs an exact solution, as ``h1_rel``);
* ``h1_rel = sqrt(||P - U||^2 + ||grad P - grad U||^2) / sqrt(||U||^2 + ||grad U||^2)``
  where the problem has an exact solution (its gradient by autograd through
  :class:`kanpde.problem.SolutionField`, the model's by the jet engine); computed for the
  final evaluation only (it costs a jet over all evaluation points).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from kanpde.core.chunking import map_chunks, points_per_chunk
from kanpde.core.engines import autograd_jet, compute_jet
from kanpde.problem import SolutionField


class Evaluator:
    """Evaluation points, reference values (and gradients), computed once.

    Args:
        problem: the problem.
        dtype, device: of the model.
        chunk: points per model evaluation (``None``: from the memory budget, see
            :mod:`kanpde.core.chunking`).
        memory_budget: bytes for that choice (``None``: the default budget).
    """

    def __init__(self, problem, dtype: torch.dtype, device: torch.device,
                 chunk: int | None = None, memory_budget: int | None = None):
        self.problem = problem
        self.chunk, self.memory_budget = chunk, memory_budget
        self.points = problem.evaluation_points(dtype=dtype, device=device)  # (M, d)
        self.reference = problem.solution(self.points).detach()  # (M, m)
        self._reference_grad: Tensor | None = None  # (M, d, m), computed on first use
        self._grad_failed = problem.exact is None

    @property
    def reference_grad(self) -> Tensor | None:
        """``(M, d, m)`` gradient of the exact solution (``None`` without one)."""
        if self._reference_grad is None and not self._grad_failed:
            try:
                # SolutionField is pointwise, so first-order autograd gives the gradient
                field = SolutionField(self.problem)
                self._reference_grad = map_chunks(
                    lambda x: autograd_jet(field, x).grad.detach(), self.points,
                    self._chunk(None, self.points.shape[1]))
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

    def __call__(self, model: nn.Module, h1: bool = True) -> dict[str, float]:
        """``l2_rel``, ``max_abs_err``, ``mse`` and, when ``h1``, ``h1_rel`` and ``h1_mse``
        (NaN without an exact solution)."""
        pred = self.predict(model)
        err = pred - self.reference
        ref_sq = float(self.reference.square().sum())
        err_sq = float(err.square().sum())
        out = {
            "l2_rel": math.sqrt(err_sq / ref_sq) if ref_sq > 0 else math.sqrt(err_sq),
            "max_abs_err": float(err.abs().max()),
            "mse": float(err.square().mean()),
            "h1_rel": math.nan,
            "h1_mse": math.nan,
        }
        ref_grad = self.reference_grad if h1 else None
        if ref_grad is not None:
            grad_err_sq = 0.0
            chunk = self._chunk(model, self.points.shape[1])
            for s in range(0, self.points.shape[0], chunk):
                x = self.points[s:s + chunk]
                if hasattr(model, "jet"):
                    with torch.no_grad():
                        g = compute_jet(model, x, None, "jet").grad
                else:  # a model without jets: its gradient by autograd
                    g = autograd_jet(model, x).grad.detach()
                grad_err_sq += float((g - ref_grad[s:s + chunk]).square().sum())
            den = ref_sq + float(ref_grad.square().sum())
            out["h1_rel"] = math.sqrt((err_sq + grad_err_sq) / den) if den > 0 else math.nan
            out["h1_mse"] = (err_sq + grad_err_sq) / err.numel()
        return out
