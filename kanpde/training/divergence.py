"""When training failed: divergence from the loss history, L-BFGS stages that made no
progress, and what to tell the user about either.

**Divergence.** A loss is *exploding* when it is finite but more than :data:`FACTOR`
(``1e8``) times the best loss of the same stage so far::

    L_g > FACTOR * min{L_j : j < g, stage(j) = stage(g)}

The trainer treats an exploding loss exactly like a non-finite one (the NaN guard): roll back
to the last good iteration, halve the learning rate, try again, and end the run as
``"diverged"`` after three failures in a row. Eight orders of magnitude is far above
anything a working optimiser does within one stage (loss spikes of Adam, resampling and
residual-adaptive points change the loss by a few orders at most), and far below what a
step size that is too large does (Adam with ``lr = 1e6`` reaches ``1e96``). The best loss is
taken per stage because grid events and weight changes between stages change the
objective.

**No progress.** An L-BFGS iteration whose strong-Wolfe line search returns the step size
``t = 0`` found no point along its direction that lowers the loss (typically: the initial
step ``lr`` is so large that every trial overflows or is rejected). The stage then stops as
``"no_progress"``, not as ``"converged"``, and its reason says why.

**Why a run diverged.** :func:`explain_divergence` evaluates every residual and condition at
the parameters the run was rolled back to and names the first non-finite one: how many of
its points and one example coordinate; otherwise it reports the exploding loss.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from kanpde.core.engines import Engine

FACTOR = 1e8
DIVERGED_REASON = (f"non-finite loss, or a loss over {FACTOR:.0e} times the stage's best, "
                   "3 times in a row")


class DivergenceRule:
    """The exploding-loss test, with the stage's best loss kept incrementally.

    The best loss is derived from the history alone (``history["loss"]`` and
    ``history["stage"]``), so it is the same after a rollback or a resume; the cache is only
    a shortcut and is rebuilt whenever the history was cut back.
    """

    def __init__(self, factor: float = FACTOR):
        self.factor = factor
        self._key: tuple[int | None, int, float] | None = None  # (stage, length, last loss)
        self._best = math.inf
        #: ``(loss, best)`` of the last exploding loss seen (for the divergence reason)
        self.last: tuple[float, float] | None = None

    def best(self, history: Mapping[str, Sequence[float]], stage: int) -> float:
        """Smallest loss recorded in ``stage`` (``inf`` when none)."""
        losses = history.get("loss", [])
        stages = history.get("stage", [])
        n = len(losses)
        key = self._key
        start = 0
        if key is not None and key[0] == stage and 0 < key[1] <= n \
                and losses[key[1] - 1] == key[2]:
            start = key[1]
        else:
            self._best = math.inf
        for j in range(start, n):
            if (not stages or stages[j] == stage) and losses[j] < self._best:
                self._best = float(losses[j])
        self._key = (stage, n, float(losses[-1])) if n else None
        return self._best

    def exploded(self, loss: float, history: Mapping[str, Sequence[float]],
                 stage: int) -> bool:
        """Whether ``loss`` (finite) is more than ``factor`` times the stage's best."""
        best = self.best(history, stage)
        if 0 < best < math.inf and loss > self.factor * best:
            self.last = (loss, best)
            return True
        return False


def lbfgs_took_no_step(optimizer: torch.optim.Optimizer) -> bool:
    """Whether the last ``torch.optim.LBFGS`` iteration's line search returned ``t = 0``."""
    params = optimizer.param_groups[0]["params"]
    state = optimizer.state.get(params[0], {}) if params else {}
    t = state.get("t")
    return t is not None and float(t) == 0.0


def no_progress_reason(lr: float, iterations: int) -> str:
    """Why an L-BFGS stage stopped without progress at its ``iterations``-th iteration."""
    done = "made no progress" if iterations <= 1 else \
        f"stopped making progress after {iterations - 1} iteration(s)"
    return (f"{done}: the line search found no step that lowers the loss (initial step "
            f"lr = {lr:.3g}); a smaller lr usually helps")


def _example(x: Tensor, bad: Tensor, coords: Sequence[str]) -> str:
    i = int(torch.nonzero(bad)[0, 0])
    return ", ".join(f"{c}={float(v):.4g}" for c, v in zip(coords, x[i].tolist(), strict=False))


def _describe(name: str, r: Tensor, x: Tensor, coords: Sequence[str]) -> str | None:
    r = r.detach()
    if r.ndim > 1:
        r = r.reshape(r.shape[0], -1)
        bad = ~torch.isfinite(r).all(dim=1)
    else:
        bad = ~torch.isfinite(r)
    n_bad = int(bad.sum())
    if not n_bad:
        return None
    kind = "NaN" if bool(torch.isnan(r[bad]).any()) else "infinite"
    rows = min(x.shape[0], bad.shape[0])
    where = _example(x[:rows], bad[:rows], coords) if bool(bad[:rows].any()) else "?"
    return f"{name} is {kind} at {n_bad} of {bad.shape[0]} points (e.g. {where})"


def nonfinite_terms(problem, model, points, *, engine: str | Engine = "jet",
                    unknowns: Mapping[str, Tensor] | None = None) -> list[str]:
    """One line per residual or condition that is not finite at the training points.

    Args:
        problem: the :class:`~kanpde.problem.Problem`.
        model: the model (its current parameters).
        points: the :class:`~kanpde.training.points.TrainingPoints`.
        engine: the derivative engine.
        unknowns: the current unknown parameters, if any.
    """
    out: list[str] = []
    if not all(bool(torch.isfinite(p).all()) for p in model.parameters()):
        out.append("the model's parameters are not finite")
        return out
    x = points.interior
    try:
        res = problem.residual_values(model, x, engine=engine, unknowns=unknowns)
    except (RuntimeError, ArithmeticError) as err:
        return [f"the model cannot be evaluated at the interior points ({err})"]
    for name, r in res.items():
        line = _describe(f"residual {name!r}", r, x, problem.coords)
        if line:
            out.append(line)
    for i, cond in enumerate(problem.conditions):
        pts = points.conditions[i]
        try:
            r = problem.condition_values(cond, model, pts, engine=engine, unknowns=unknowns)
        except (RuntimeError, ArithmeticError):
            continue
        line = _describe(f"condition {cond.label(i)!r}", r, pts.points, problem.coords)
        if line:
            out.append(line)
    return out


def explain_divergence(problem, model, points, *, engine: str | Engine, unknowns, step: int,
                       lr_scale: float, rule: DivergenceRule | None = None) -> str:
    """Why a run ended as ``"diverged"`` (one line), from the state it was rolled back to.

    Args:
        problem, model, points: the run's problem, model and point sets.
        engine: the derivative engine.
        unknowns: the current unknown parameters, if any.
        step: the global step reached.
        lr_scale: the NaN guard's learning-rate factor reached.
        rule: the exploding-loss test (its last explosion, if any, is reported).
    """
    with torch.enable_grad():
        found = nonfinite_terms(problem, model, points, engine=engine, unknowns=unknowns)
    when = "before the first step" if step == 0 else f"at step {step}"
    if found:
        return f"{found[0]} {when}" + (f" (and {len(found) - 1} more term(s))"
                                       if len(found) > 1 else "")
    if rule is not None and rule.last is not None:
        loss, best = rule.last
        return (f"the loss grew to {loss:.3g}, over {rule.factor:.0e} times its best in the "
                f"stage ({best:.3g}), 3 times in a row after step {step} "
                f"(the learning rate was multiplied by {lr_scale:g}); a smaller lr usually helps")
    return (f"non-finite loss or gradient 3 times in a row after step {step} "
            f"(the learning rate was multiplied by {lr_scale:g})")
