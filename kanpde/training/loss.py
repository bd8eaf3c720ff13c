"""The PINN loss, written once: term values, the weighted objective and the residual vector.

For PDE residuals ``r_k`` at the ``N`` interior points and condition residuals ``r_c`` at
theirs, with term weights ``lambda_t`` (:class:`~kanpde.training.weighting.LossWeights`)::

    L_k = mean_i r_k(x_i)^2                     (causal: sum_i w_b(i) r_k(x_i)^2 / (B c_b(i)))
    L   = sum_t lambda_t L_t + R(theta)          (R: the KAN sparsity penalty, weight 1)

where, with causal weighting (Wang, Sankaran, Perdikaris 2022), point ``i`` lies in time bin
``b(i)`` holding ``c_b`` points, ``B`` bins are non-empty and ``w_b`` is the bin's causal weight
(a constant: no gradient flows through it). The **residual vector** stacks

    rho = sqrt(lambda_k / N_k) r_k(x_i)        (causal: sqrt(lambda_k w_b(i) / (B c_b(i))) r_k)

for every residual, condition and point, so that ``||rho||^2 = L`` and ``grad L = 2 J^T rho``
with ``J = d rho / d theta``: the least-squares form the Levenberg-Marquardt and
Gauss-Newton stages (:mod:`kanpde.training.second_order`) work on.

With residual scaling (``[scaling] residuals = "auto"``, :mod:`kanpde.training.scaling`)
every ``r_t`` above is ``r_t / S_t``, its value divided by the term's characteristic
magnitude ``S_t`` (``1`` without it), in the terms, the objective and the residual vector
alike; term values ``L_t`` are then dimensionless.

**The sparsity penalty** (Liu et al. 2024, §2.5.1; :mod:`kanpde.training.regularization`)
``R = l1 sum_l sum_ij |phi_ij|_1 + entropy sum_l S_l`` is not a mean of pointwise squares, but
both parts are non-negative, so it enters the residual vector *exactly* as square roots:
one row ``sqrt(l1 |phi_ij|_1)`` per edge and one row ``sqrt(entropy S_l)`` per layer. The
value and the gradient ``2 J^T rho`` are those of ``R``; the Gauss-Newton curvature of such a
row, ``(grad f . d)^2 / (4 f)``, is a positive semi-definite stand-in for the true Hessian of
``f`` (an iteratively-reweighted-least-squares model of the L1 norm), which grows without
bound as an edge's norm goes to zero; a zero norm (pruned edge) gives a zero row and a zero
Jacobian row. These rows use the global interior set and belong to the first process.

Data-parallel runs (:class:`~kanpde.training.sharding.Sharding`) evaluate this process's
shard of every point set; term values, gradients and Gauss-Newton quantities are sums of the
processes' parts.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from kanpde.core.engines import Engine
from kanpde.nn.parts import network
from kanpde.training.config import RegularizationConfig, WeightingConfig
from kanpde.training.points import TrainingPoints
from kanpde.training.sharding import SINGLE_PROCESS, Sharding
from kanpde.training.weighting import LossWeights, causal_terms, time_bins


class NonFiniteError(ArithmeticError):
    """The loss could not be evaluated because of non-finite values (handled by the NaN
    guard of the trainer)."""


@dataclass
class RowBlock:
    """Rows of the residual vector that share one point set.

    Attributes:
        name: ``"interior"``, a condition label or ``"regularization"``.
        inputs: per-point tensors ``(n, ...)`` (points, normals, row scales) sliced together
            when the block is evaluated on a subset of its points.
        fn: ``fn(model, unknowns, *inputs) -> (n * c,)`` scaled rows with a graph to the
            parameters (``c`` rows per point, point-major).
        rows: ``(n * c,)`` the block's rows at the current parameters (no graph).
        per_point: rows per point ``c`` (``0``: the rows do not belong to points).
    """

    name: str
    inputs: tuple[Tensor | None, ...]
    fn: Callable[..., Tensor]
    rows: Tensor
    per_point: int

    @property
    def n_points(self) -> int:
        """Points of the block (0 when the rows do not belong to points)."""
        return 0 if not self.per_point else int(self.inputs[0].shape[0])  # type: ignore


@dataclass
class Residuals:
    """The residual vector of this process at one parameter value.

    Attributes:
        rows: ``(M,)`` scaled residuals (``||rows||^2`` summed over processes is the loss).
        terms: this process's part of every term value ``L_t`` (unweighted).
        scales: the row scales used (causal weights included), reused for trial points.
        blocks: the rows by point set (for Jacobians).
    """

    rows: Tensor
    terms: dict[str, Tensor]
    scales: dict[str, Tensor]
    blocks: list[RowBlock] = field(default_factory=list)


def sqrt0(v: Tensor) -> Tensor:
    """``sqrt(v)`` for ``v > 0``, 0 (with a zero gradient) elsewhere."""
    pos = v > 0
    return torch.where(pos, torch.sqrt(torch.where(pos, v, torch.ones_like(v))),
                       torch.zeros_like(v))


class PinnLoss:
    """The loss of one problem (see the module docstring).

    Args:
        problem: the :class:`~kanpde.problem.Problem`.
        weights: the term weights (read at every call, so grad-norm updates are seen).
        weighting: the ``[weighting]`` section (causal settings).
        regularization: the ``[regularization]`` section (the KAN sparsity penalty).
        engine: derivative engine.
        sharding: data-parallel strategy (default: one process).
        unknowns: parameters of an inverse problem by name (``None``: none).
        term_scales: ``{term: S_t}``: every residual and condition is divided by its
            characteristic magnitude (terms left out, or ``None``: ``1``).
    """

    def __init__(self, problem, weights: LossWeights, *, weighting: WeightingConfig,
                 regularization: RegularizationConfig, engine: str | Engine = "jet",
                 sharding: Sharding = SINGLE_PROCESS,
                 unknowns: Mapping[str, Tensor] | None = None,
                 term_scales: Mapping[str, float] | None = None):
        self.problem, self.weights, self.engine = problem, weights, engine
        self.weighting, self.regularization, self.sharding = weighting, regularization, sharding
        self.unknowns = dict(unknowns) if unknowns else {}
        self.res_names = list(problem.residuals)
        self.cond_names = [c.label(i) for i, c in enumerate(problem.conditions)]
        #: ``{term: S_t}`` for every residual and condition
        self.term_scales = {k: float((term_scales or {}).get(k, 1.0))
                            for k in self.res_names + self.cond_names}
        #: smallest causal weight of the last evaluation (NaN without causal weighting)
        self.causal_min = math.nan

    # ------------------------------------------------------------------ values ----------

    def terms(self, model: nn.Module, points: TrainingPoints) -> dict[str, Tensor]:
        """``{term: L_t}``: this process's part of every term, with a graph to the parameters
        (residual terms causally weighted if asked; ``"regularization"`` when the penalty
        is on)."""
        pts = self.sharding.local(points)
        res = self._interior(model, pts.interior)
        terms = self._interior_terms(res, pts.interior, points.interior.shape[0])
        for i, r in enumerate(self._conditions(model, pts)):
            terms[self.cond_names[i]] = self.sharding.mean(
                r.square(), points.conditions[i].points.shape[0])
        if self.regularization.active:
            from kanpde.training.regularization import sparsity_penalty

            reg = self.regularization
            # not a mean of pointwise terms: every process takes 1/W of the global value
            terms["regularization"] = sparsity_penalty(
                network(model), points.interior, reg.l1, reg.entropy) / self.sharding.world_size
        return terms

    def objective(self, terms: Mapping[str, Tensor]) -> Tensor:
        """``sum_t lambda_t L_t`` of term values."""
        return self.weights.total(terms)

    def __call__(self, model: nn.Module, points: TrainingPoints) -> Tensor:
        """The weighted objective (this process's part) with a graph to the parameters."""
        return self.objective(self.terms(model, points))

    # ------------------------------------------------------------------ residual vector -

    def residuals(self, model: nn.Module, points: TrainingPoints,
                  scales: Mapping[str, Tensor] | None = None,
                  blocks: bool = False) -> Residuals:
        """The residual vector of this process at the current parameters.

        Args:
            model: the model.
            points: the global point sets.
            scales: row scales of an earlier call (frozen causal weights: trial points of
                a second-order step); ``None``: computed here.
            blocks: also return the :class:`RowBlock` s (for Jacobians).

        Returns:
            The :class:`Residuals` (rows without a graph unless gradients are enabled).
        """
        pts = self.sharding.local(points)
        x = pts.interior
        res = self._interior(model, x)
        terms = self._interior_terms(res, x, points.interior.shape[0])
        new = dict(scales) if scales is not None else self._interior_scales(
            res, x, points.interior.shape[0])
        raw = torch.stack([res[k] for k in self.res_names], 1)  # (n, T)
        parts = [(raw * new["interior"]).reshape(-1)]
        out_blocks = [RowBlock("interior", (x, new["interior"]), self._interior_fn(x),
                               parts[0].detach(), len(self.res_names))] if blocks else []
        for i, r in enumerate(self._conditions(model, pts)):
            name, n = self.cond_names[i], points.conditions[i].points.shape[0]
            terms[name] = self.sharding.mean(r.square(), n)
            if scales is None:
                count = self.sharding.count(r, n)
                new[name] = r.new_tensor(math.sqrt(self.weights.weights[name] / count))
            parts.append((r * new[name]).reshape(-1))
            if blocks:
                out_blocks.append(self._condition_block(i, pts, new[name], parts[-1]))
        if self.regularization.active:
            reg_rows, value = self._regularization_rows(model, points.interior)
            terms["regularization"] = value / self.sharding.world_size
            if self.sharding.is_main:
                parts.append(reg_rows)
                if blocks:
                    out_blocks.append(RowBlock(
                        "regularization", (points.interior,),
                        lambda m, unk, xg: self._regularization_rows(m, xg)[0],
                        reg_rows.detach(), 0))
        return Residuals(torch.cat(parts), terms, new, out_blocks)

    # ------------------------------------------------------------------ pieces ----------

    def _unknowns(self, unknowns: Mapping[str, Tensor] | None = None
                  ) -> Mapping[str, Tensor] | None:
        unk = self.unknowns if unknowns is None else unknowns
        return unk or None

    def _scaled(self, name: str, r: Tensor) -> Tensor:
        """``r / S_t`` of term ``name``."""
        scale = self.term_scales[name]
        return r if scale == 1.0 else r / scale

    def _interior(self, model: nn.Module, x: Tensor) -> dict[str, Tensor]:
        res = self.problem.residual_values(model, x, engine=self.engine,
                                           unknowns=self._unknowns())
        return {k: self._scaled(k, r) for k, r in res.items()}

    def _conditions(self, model: nn.Module, pts: TrainingPoints) -> list[Tensor]:
        return [self._scaled(self.cond_names[i], self.problem.condition_values(
                    cond, model, pts.conditions[i], engine=self.engine,
                    unknowns=self._unknowns()))
                for i, cond in enumerate(self.problem.conditions)]

    def _bins(self, x: Tensor) -> Tensor:
        t0, t1 = (float(b[-1]) for b in self.problem.domain.bbox)
        return time_bins(x[:, -1], t0, t1, self.weighting.causal_bins)

    def _interior_terms(self, res: dict[str, Tensor], x: Tensor, n_global: int
                        ) -> dict[str, Tensor]:
        w = self.weighting
        if w.causal:
            terms, cw = causal_terms({k: r.square() for k, r in res.items()}, self._bins(x),
                                     w.causal_bins, self.weights.weights, w.causal_eps)
            self.causal_min = float(cw.min())
            return terms
        return {k: self.sharding.mean(r.square(), n_global) for k, r in res.items()}

    def _interior_scales(self, res: dict[str, Tensor], x: Tensor, n_global: int
                         ) -> dict[str, Tensor]:
        """``{"interior": (n, T)}`` row scales of the PDE residuals."""
        lam = x.new_tensor([self.weights.weights[k] for k in self.res_names])  # (T,)
        first = res[self.res_names[0]]
        w = self.weighting
        if not w.causal:
            counts = x.new_tensor([self.sharding.count(res[k], n_global)
                                   for k in self.res_names])
            return {"interior": torch.sqrt(lam / counts).expand(first.shape[0], -1)}
        bins = self._bins(x)
        squares = {k: r.detach().square() for k, r in res.items()}
        _, cw = causal_terms(squares, bins, w.causal_bins, self.weights.weights, w.causal_eps)
        counts = torch.zeros(w.causal_bins, dtype=x.dtype, device=x.device)
        counts.index_add_(0, bins, torch.ones_like(first.detach()))
        n_filled = (counts > 0).sum().clamp_min(1)
        per_point = cw[bins] / (n_filled * counts[bins])  # (n,)
        return {"interior": torch.sqrt(per_point[:, None] * lam)}

    def _interior_fn(self, x: Tensor) -> Callable[..., Tensor]:
        channels = self.problem.channels(x[:1])
        names, problem, engine = self.res_names, self.problem, self.engine

        def fn(model: nn.Module, unknowns, xs: Tensor, scale: Tensor) -> Tensor:
            s = problem.scope(model, xs, engine=engine, channels=channels,
                              unknowns=self._unknowns(unknowns))
            raw = torch.stack([self._scaled(k, problem._check_output(
                problem.residuals[k](s), xs.shape[0], f"residual {k!r}")) for k in names], 1)
            return (raw * scale).reshape(-1)
        return fn

    def _condition_block(self, i: int, pts: TrainingPoints, scale: Tensor,
                         rows: Tensor) -> RowBlock:
        cond, cp = self.problem.conditions[i], pts.conditions[i]
        problem, engine = self.problem, self.engine

        def fn(model: nn.Module, unknowns, xs: Tensor, normals: Tensor | None) -> Tensor:
            r = problem.condition_values(cond, model, type(cp)(xs, normals), engine=engine,
                                         unknowns=self._unknowns(unknowns))
            return (self._scaled(self.cond_names[i], r) * scale).reshape(-1)
        per_point = rows.numel() // max(cp.points.shape[0], 1) \
            if rows.numel() % max(cp.points.shape[0], 1) == 0 else 0
        return RowBlock(self.cond_names[i], (cp.points, cp.normals), fn, rows.detach(),
                        per_point)

    def _regularization_rows(self, model: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
        """Rows ``sqrt(w l1 |phi_ij|_1)`` and ``sqrt(w entropy S_l)`` (``w``: the term's
        weight) and the penalty ``R`` itself, on the global interior set ``x``."""
        from kanpde.training.regularization import edge_l1, layer_entropy

        reg = self.regularization
        weight = self.weights.weights.get("regularization", 1.0)
        rows, value = [], x.new_zeros(())
        for norms in edge_l1(network(model), x):
            if reg.l1:
                rows.append(sqrt0(weight * reg.l1 * norms.reshape(-1)))
                value = value + reg.l1 * norms.sum()
            if reg.entropy:
                s = layer_entropy(norms)
                rows.append(sqrt0(weight * reg.entropy * s).reshape(1))
                value = value + reg.entropy * s
        return (torch.cat(rows) if rows else x.new_zeros(0)), value
