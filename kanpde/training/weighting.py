"""Loss weighting: fixed weights, grad-norm annealing and causal weights in time.

Terms are named: PDE residuals by their key in ``problem.residuals``, conditions by
``condition.label(i)``. The loss is ``sum_t lambda_t L_t`` with ``L_t = mean(r_t^2)``.

**Fixed.** ``lambda_t`` is ``[weighting].weights[t]`` when the term is named there; else the
default (1 for residuals, the condition's own ``weight``) times the group weight
``weights.residuals`` or ``weights.conditions`` when given (so a solver file can weight all
conditions without knowing their names).

**Grad-norm** (Wang, Teng, Perdikaris, "Understanding and mitigating gradient flow
pathologies in physics-informed neural networks", SIAM J. Sci. Comput. 2021, Algorithm 1,
learning-rate annealing). Every ``update_every`` steps of an Adam stage, for every condition
term ``c``::

    lambda_hat_c = max_theta |grad_theta sum_r lambda_r L_r| / mean_theta |grad_theta L_c|
    lambda_c    <- alpha lambda_c + (1 - alpha) lambda_hat_c

over the network parameters ``theta`` (not the unknowns); residual weights stay fixed.
This is the max/mean ratio of the paper (not a norm ratio). L-BFGS stages keep the weights
frozen: changing the objective would invalidate the curvature memory.

**Causal** (Wang, Sankaran, Perdikaris, "Respecting causality is all you need for training
physics-informed neural networks", 2022). Interior points are sorted into ``causal_bins``
equal time bins; with ``L_j = sum_r lambda_r mean_{bin j}(r_r^2)`` the bin weights are
``w_j = exp(-epsilon sum_{k<j} L_k)`` (no gradient through ``w``) and each residual term
becomes ``mean_j w_j mean_{bin j}(r^2)`` over the non-empty bins.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor, nn

from kanpde.training.config import ConfigError, WeightingConfig


class LossWeights:
    """The current weight of every loss term, and its grad-norm updates.

    Args:
        residual_names: PDE residual terms.
        condition_names: condition terms.
        defaults: default weight per term (1 for residuals, the condition's ``weight``).
        config: the ``[weighting]`` section.
    """

    def __init__(self, residual_names: Sequence[str], condition_names: Sequence[str],
                 defaults: Mapping[str, float], config: WeightingConfig):
        self.residual_names = list(residual_names)
        self.condition_names = list(condition_names)
        self.config = config
        given = config.weight_map
        self.weights = {}
        for group, names in (("residuals", self.residual_names),
                             ("conditions", self.condition_names)):
            for t in names:
                base = float(defaults.get(t, 1.0))
                self.weights[t] = float(given[t]) if t in given else \
                    base * float(given.get(group, 1.0))
        self.updates = 0
        #: sums gradients over processes in data-parallel runs (``None``: one process)
        self.reduce: Callable[[list[Tensor]], list[Tensor]] | None = None

    @property
    def adaptive(self) -> bool:
        """Whether grad-norm updates are on."""
        return self.config.kind == "gradnorm" and bool(self.condition_names)

    def due(self, step: int) -> bool:
        """Whether a grad-norm update is due at global ``step``."""
        return self.adaptive and step % self.config.update_every == 0

    def total(self, terms: Mapping[str, Tensor]) -> Tensor:
        """``sum_t lambda_t L_t``."""
        return sum(self.weights[t] * v for t, v in terms.items())  # type: ignore[return-value]

    def update_gradnorm(self, terms: Mapping[str, Tensor], params: Sequence[nn.Parameter]) -> None:
        """One annealing update from the term losses (their graphs are kept)."""
        params = [p for p in params if p.requires_grad]
        res = sum(self.weights[t] * terms[t] for t in self.residual_names)
        g_res = self._reduced(_grads(res, params))
        top = max(float(g.abs().max()) for g in g_res) if g_res else 0.0
        a = self.config.alpha
        for c in self.condition_names:
            g_c = self._reduced(_grads(terms[c], params))
            numel = sum(g.numel() for g in g_c)
            mean = sum(float(g.abs().sum()) for g in g_c) / max(numel, 1)
            if mean > 0.0 and top > 0.0:
                lam_hat = top / mean
                self.weights[c] = a * self.weights[c] + (1.0 - a) * lam_hat
        self.updates += 1

    def _reduced(self, grads: list[Tensor]) -> list[Tensor]:
        return grads if self.reduce is None else self.reduce(grads)

    def state_dict(self) -> dict:
        return {"weights": dict(self.weights), "updates": self.updates}

    def load_state_dict(self, state: Mapping) -> None:
        self.weights = {k: float(v) for k, v in state["weights"].items()}
        self.updates = int(state["updates"])


def _grads(out: Tensor, params: Sequence[Tensor]) -> list[Tensor]:
    if not isinstance(out, Tensor) or not out.requires_grad:
        return [torch.zeros_like(p) for p in params]
    gs = torch.autograd.grad(out, params, retain_graph=True, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, gs, strict=True)]


def time_bins(t: Tensor, t0: float, t1: float, n_bins: int) -> Tensor:
    """``(N,)`` bin index in ``0..n_bins-1`` of times ``t`` on ``[t0, t1]``."""
    frac = (t.detach() - t0) / max(t1 - t0, 1e-300)
    return (frac * n_bins).floor().clamp(0, n_bins - 1).long()


def causal_terms(squares: Mapping[str, Tensor], bins: Tensor, n_bins: int,
                 weights: Mapping[str, float], eps: float) -> tuple[dict[str, Tensor], Tensor]:
    """Causally weighted residual terms.

    Args:
        squares: ``{residual name: (N,) r^2}``.
        bins: ``(N,)`` time-bin index per point.
        n_bins: number of bins.
        weights: term weights ``lambda``.
        eps: causality parameter ``epsilon``.

    Returns:
        ``{name: scalar}`` weighted terms and the ``(n_bins,)`` causal weights (detached).
    """
    first = next(iter(squares.values()))
    counts = torch.zeros(n_bins, dtype=first.dtype, device=first.device)
    counts.index_add_(0, bins, torch.ones_like(first))
    filled = counts > 0
    per_bin = {}
    for name, sq in squares.items():
        sums = torch.zeros(n_bins, dtype=sq.dtype, device=sq.device).index_add(0, bins, sq)
        per_bin[name] = sums / counts.clamp_min(1.0)  # (n_bins,)
    combined = sum(weights[n] * v.detach() for n, v in per_bin.items())
    before = torch.cumsum(combined, 0) - combined  # sum over earlier bins
    w = torch.exp(-eps * before)  # (n_bins,)
    n_filled = filled.sum().clamp_min(1)
    terms = {n: (w * v * filled).sum() / n_filled for n, v in per_bin.items()}
    return terms, w


def check_terms(problem, config) -> None:
    """Refuse loss terms named twice, weights for terms the problem does not have, and causal
    weights without a time coordinate.

    Args:
        problem: the problem (its residual names and condition labels).
        config: the solver config (its ``[weighting]`` section and source).

    Raises:
        ValueError: a name used twice (one line).
        ConfigError: a bad ``weighting`` key (one line naming it).
    """
    res = list(problem.residuals)
    names = res + [c.label(i) for i, c in enumerate(problem.conditions)]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"problem {problem.name!r}: loss terms named twice "
                         f"(residuals and condition labels): {', '.join(dupes)}")
    src = config.source
    for name, _ in config.weighting.weights:
        if name not in names and name not in ("residuals", "conditions"):
            raise ConfigError(f"{src}: weighting.weights.{name}: no such term in problem "
                              f"{problem.name!r} (terms: {', '.join(names)}; groups: "
                              "residuals, conditions)")
    if config.weighting.causal and problem.time is None:
        raise ConfigError(f"{src}: weighting.causal: problem {problem.name!r} has "
                          "no time coordinate")
