"""The score of a tuning trial: the PINN loss on fresh validation points.

A user tuning a PINN does not have the solution, so a configuration is chosen by what can
be computed without it: the residuals and condition misfits of the trained model on
collocation and condition points that no trial trained on. The validation points are drawn
once per study (uniform random, from the study's own seed) and kept, so every trial is
scored on the same points. The score uses the problem's own weights (1 for each residual,
each condition's ``weight``), not the trial's tuned loss weights, so that trials with
different weights are compared on one scale:

    L_val = sum_r mean_i r(x_i)^2 + sum_c weight_c mean_j c(y_j)^2.

The error against an exact or reference solution is computed for the record only; it never
enters the selection.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from kanpde.training.config import SamplingConfig
from kanpde.training.points import TrainingPoints, sample_points

VALIDATION_SEED_OFFSET = 104_729
"""Added to the study's seed for the validation points (fresh, never a trial's points)."""


def validation_points(problem, seed: int, interior: int = 2000, boundary: int = 400,
                      dtype: torch.dtype = torch.float64) -> TrainingPoints:
    """The study's validation points: ``interior`` collocation points and ``boundary``
    points per condition, uniform random from ``seed + VALIDATION_SEED_OFFSET``."""
    gen = torch.Generator().manual_seed(int(seed) + VALIDATION_SEED_OFFSET)
    cfg = SamplingConfig(interior=interior, boundary=boundary, method="uniform")
    return sample_points(problem, cfg, gen, dtype, torch.device("cpu"))


def validation_loss(problem, model: nn.Module, points: TrainingPoints,
                    unknowns: Mapping[str, float] | None = None,
                    engine: str = "jet") -> dict[str, float]:
    """Per-term mean squared residuals on ``points`` and their weighted ``total``.

    The terms are those of the training loss (:class:`~kanpde.training.loss.PinnLoss`) with
    the problem's own weights, no causal weighting and no sparsity penalty.

    Args:
        problem: the problem.
        model: the trained model (float64).
        points: from :func:`validation_points`.
        unknowns: trained values of the problem's unknown parameters.
        engine: derivative engine (``"autograd"`` for a model without ``jet``).

    Returns:
        ``{term: mean square, ..., "total": L_val}``; NaN when the model gives non-finite
        values.
    """
    from kanpde.training.config import RegularizationConfig, WeightingConfig
    from kanpde.training.loss import PinnLoss
    from kanpde.training.weighting import LossWeights

    unk = None if not unknowns else {
        k: torch.tensor(float(v), dtype=torch.float64) for k, v in unknowns.items()}
    conds = [c.label(i) for i, c in enumerate(problem.conditions)]
    defaults = {c.label(i): float(c.weight) for i, c in enumerate(problem.conditions)}
    weights = LossWeights(list(problem.residuals), conds, defaults, WeightingConfig())
    loss = PinnLoss(problem, weights, weighting=WeightingConfig(),
                    regularization=RegularizationConfig(), unknowns=unk, engine=engine)
    with torch.no_grad() if engine != "autograd" else torch.enable_grad():
        terms = loss.terms(model, points)
        out = {k: float(v.detach()) for k, v in terms.items()}
        out["total"] = float(loss.objective(terms).detach())
    return out


__all__ = ["VALIDATION_SEED_OFFSET", "validation_points", "validation_loss"]
