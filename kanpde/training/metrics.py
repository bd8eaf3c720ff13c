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

from kanpde.derivatives import autograd_jet, compute_jet
from kanpde.problem import SolutionField


class Evaluator:
    """Evaluation points, reference values (and gradients), computed once.

    Args:
        problem: the problem.
        dtype, device: of the model.
        chunk: points per model evaluation.
    """

    def __init__(self, problem, dtype: torch.dtype, device: torch.device, chunk: int = 8192):
        self.problem = problem
        self.chunk = chunk
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
                self._reference_grad = torch.cat([
                    autograd_jet(field, self.points[s:s + self.chunk]).grad.detach()
                    for s in range(0, self.points.shape[0], self.chunk)])
            except Exception:  # an exact function autograd cannot differentiate
                self._grad_failed = True
        return self._reference_grad

    @torch.no_grad()
    def predict(self, model: nn.Module) -> Tensor:
        """``(M, m)`` model values at the evaluation points."""
        return torch.cat([model(self.points[s:s + self.chunk])
                          for s in range(0, self.points.shape[0], self.chunk)])

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
            for s in range(0, self.points.shape[0], self.chunk):
                x = self.points[s:s + self.chunk]
                with torch.no_grad():
                    g = compute_jet(model, x, None, "jet").grad
                grad_err_sq += float((g - ref_grad[s:s + self.chunk]).square().sum())
            den = ref_sq + float(ref_grad.square().sum())
            out["h1_rel"] = math.sqrt((err_sq + grad_err_sq) / den) if den > 0 else math.nan
            out["h1_mse"] = (err_sq + grad_err_sq) / err.numel()
        return out
