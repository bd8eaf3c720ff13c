"""What a run can say about itself without a solution: residual diagnostics.

Every run records, in ``summary["validation"]``:

* ``loss``: the PINN loss on fresh validation points with the problem's own weights (the
  score of :mod:`kanpde.tune.validation`: ``sum_r mean r^2 + sum_c weight_c mean c^2``),
  the number ``kanpde compare`` ranks by when a problem has no solution to measure against;
* ``residual_rms``: ``sqrt(mean r^2)`` of every PDE residual on those points;
* ``condition_rms``: ``sqrt(mean c^2)`` of every condition's misfit on its points;
* ``field_rms``: ``sqrt(mean u_j^2)`` of every predicted field on the evaluation points (the
  scale each residual and error is to be read against; for systems the fields' scales
  differ).

The validation points are drawn from the run's seed plus
:data:`~kanpde.tune.validation.VALIDATION_SEED_OFFSET` (2000 interior points and 400 per
condition), so they are never the training points.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn

VALIDATION_INTERIOR = 2000
"""Interior validation points."""
VALIDATION_BOUNDARY = 400
"""Validation points per condition."""


def _rms(mean_square: float) -> float | None:
    return math.sqrt(mean_square) if math.isfinite(mean_square) and mean_square >= 0 else None


def run_diagnostics(problem, model: nn.Module, prediction: Tensor, *, seed: int,
                    engine: Any = "jet",
                    unknowns: Mapping[str, Tensor] | None = None) -> dict[str, Any]:
    """The ``summary["validation"]`` record of the module docstring.

    Args:
        problem: the problem.
        model: the trained model.
        prediction: ``(M, m)`` the model's values at the evaluation points.
        seed: the run's seed.
        engine: its derivative engine (name or :class:`~kanpde.core.engines.Engine`).
        unknowns: trained unknown parameters by name.

    Returns:
        ``{"loss", "residual_rms", "condition_rms", "field_rms", "points"}``; a value that
        is not finite is ``None``.
    """
    from kanpde.tune.validation import validation_loss, validation_points

    param = next(iter(model.parameters()), None)
    dtype = param.dtype if param is not None else prediction.dtype
    device = param.device if param is not None else prediction.device
    pts = validation_points(problem, seed, VALIDATION_INTERIOR, VALIDATION_BOUNDARY,
                            dtype=dtype, device=device)
    unk = {k: float(v.detach()) for k, v in (unknowns or {}).items()}
    terms = validation_loss(problem, model, pts, unk or None, engine=engine)
    conds = [c.label(i) for i, c in enumerate(problem.conditions)]
    total = terms.get("total", math.nan)
    rms = prediction.detach().square().mean(dim=0).sqrt() if prediction.shape[0] \
        else prediction.new_full((prediction.shape[1],), math.nan)
    return {
        "loss": total if math.isfinite(total) else None,
        "residual_rms": {k: _rms(terms[k]) for k in problem.residuals},
        "condition_rms": {k: _rms(terms[k]) for k in conds},
        "field_rms": {f: _rms(float(rms[j]) ** 2) for j, f in enumerate(problem.fields)},
        "points": {"interior": VALIDATION_INTERIOR, "per_condition": VALIDATION_BOUNDARY},
    }


__all__ = ["run_diagnostics", "VALIDATION_INTERIOR", "VALIDATION_BOUNDARY"]
