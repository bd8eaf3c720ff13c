"""A smooth probe field of given amplitudes over a domain's bounding box.

``u_j(x) = A_j prod_a sqrt(2) sin(pi xi_a + pi/4 + 0.6 j)`` with ``xi`` the coordinates mapped
onto ``[0, 1]`` by the bounding box: every field varies by about its amplitude over the
domain, with derivatives of the sizes ``A_j / length^k`` that the domain's units give them.
The response of a residual to it measures the size of that residual's terms for fields of
size ``A`` (:mod:`kanpde.training.scaling` divides the loss terms by it,
:mod:`kanpde.problem.exactcheck` makes its tolerances relative to it).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from kanpde.problem.scope import ProblemError

PHASE = 0.6
"""Phase shift between the probe's fields, so that no two fields are the same function."""

PROBE_ERRORS = (ProblemError, ArithmeticError, RuntimeError, ValueError, TypeError)
"""What a residual may raise on a probe field outside its valid range (``log`` of a
negative value, say): the probe then gives no scale for that term."""


class ProbeField(nn.Module):
    """``u_j = A_j phi_j(x)`` (see the module docstring): ``(N, d) -> (N, m)``.

    Args:
        lo, hi: ``(d,)`` the bounding box.
        amplitudes: ``(m,)`` the amplitudes ``A_j`` (0: that field is zero).
    """

    def __init__(self, lo: Tensor, hi: Tensor, amplitudes: list[float]):
        super().__init__()
        self.lo, self.length = lo, (hi - lo).clamp_min(torch.finfo(lo.dtype).tiny)
        self.amplitudes = amplitudes

    def forward(self, x: Tensor) -> Tensor:
        xi = (x - self.lo) / self.length  # (N, d) in [0, 1]
        cols = []
        for j, a in enumerate(self.amplitudes):
            phase = math.pi / 4 + PHASE * j
            cols.append(a * torch.prod(math.sqrt(2.0) * torch.sin(math.pi * xi + phase), 1))
        return torch.stack(cols, 1)


def probe_residuals(problem, probe: nn.Module, x: Tensor,
                    unknowns: Mapping[str, Tensor] | None = None) -> dict[str, Tensor]:
    """``{name: (N,)}`` PDE residuals of ``probe`` at ``x`` (autograd engine); ``{}`` when
    a residual cannot take the probe (:data:`PROBE_ERRORS`)."""
    try:
        return problem.residual_values(probe, x, engine="autograd", unknowns=unknowns)
    except PROBE_ERRORS:
        return {}


def probe_condition(problem, condition, probe: nn.Module, points,
                    unknowns: Mapping[str, Tensor] | None = None) -> Tensor | None:
    """The residual ``(n,)`` of one condition for ``probe`` at its ``points``; ``None`` when
    it cannot take the probe (:data:`PROBE_ERRORS`)."""
    try:
        return problem.condition_values(condition, probe, points, engine="autograd",
                                        unknowns=unknowns)
    except PROBE_ERRORS:
        return None
