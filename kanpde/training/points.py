"""Collocation sets: sampling, resampling and residual-adaptive refinement (RAD, RAR-D).

All randomness comes from one :class:`torch.Generator` (seeded from the solver's ``seed``),
whose state a checkpoint saves, so a resumed run draws the same points.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from kanpde.core.chunking import map_chunks, points_per_chunk
from kanpde.problem.conditions import ConditionPoints, Initial, InitialRate
from kanpde.problem.sampling import rad_sample, rar_d_add
from kanpde.training.config import SamplingConfig


@dataclass
class TrainingPoints:
    """The current point sets.

    Attributes:
        interior: ``(N, d)`` collocation points of the residuals.
        conditions: one :class:`ConditionPoints` per problem condition, in order.
    """

    interior: Tensor
    conditions: list[ConditionPoints]

    def state_dict(self) -> dict:
        """Plain tensors for a checkpoint (CPU)."""
        return {"interior": self.interior.detach().cpu(),
                "conditions": [{"points": c.points.detach().cpu(),
                                "normals": None if c.normals is None
                                else c.normals.detach().cpu()} for c in self.conditions]}

    @staticmethod
    def from_state(state: dict, dtype: torch.dtype, device: torch.device) -> TrainingPoints:
        """Inverse of :meth:`state_dict`."""
        def put(t: Tensor | None) -> Tensor | None:
            return None if t is None else t.to(dtype=dtype, device=device)
        return TrainingPoints(put(state["interior"]),  # type: ignore[arg-type]
                              [ConditionPoints(put(c["points"]), put(c["normals"]))
                               for c in state["conditions"]])

    def counts(self) -> dict[str, int]:
        """Number of points per set."""
        out = {"interior": int(self.interior.shape[0])}
        for i, c in enumerate(self.conditions):
            out[f"condition{i}"] = int(c.points.shape[0])
        return out


def condition_count(condition, config: SamplingConfig) -> int:
    """Points requested for one condition (initial conditions use ``initial``)."""
    if isinstance(condition, Initial | InitialRate):
        return config.initial_count
    return config.boundary


def sample_points(problem, config: SamplingConfig, generator: torch.Generator,
                  dtype: torch.dtype, device: torch.device) -> TrainingPoints:
    """Draw interior points and the points of every condition.

    Args:
        problem: a :class:`kanpde.problem.Problem`.
        config: the ``[sampling]`` section.
        generator: the run's point generator (advanced).
        dtype, device: of the returned tensors.
    """
    interior = problem.domain.sample_interior(config.interior, generator, config.method)
    conds = []
    for cond in problem.conditions:
        pts = cond.sample(problem.domain, condition_count(cond, config), generator,
                          config.method)
        conds.append(ConditionPoints(
            pts.points.to(dtype=dtype, device=device),
            None if pts.normals is None else pts.normals.to(dtype=dtype, device=device)))
    return TrainingPoints(interior.to(dtype=dtype, device=device), conds)


def residual_magnitude(residuals: Callable[[Tensor], dict[str, Tensor]], x: Tensor,
                       weights: dict[str, float], chunk: int | None = None) -> Tensor:
    """``(M,)`` combined residual ``sqrt(sum_t lambda_t r_t^2)`` at ``x``, without a graph,
    in chunks of ``chunk`` points (``None``: from the memory budget,
    :mod:`kanpde.core.chunking`)."""

    def magnitude(part: Tensor) -> Tensor:
        res = residuals(part)
        sq = sum(weights.get(k, 1.0) * r.detach() ** 2 for k, r in res.items())
        return torch.sqrt(sq)  # type: ignore[arg-type]

    return map_chunks(magnitude, x, chunk or points_per_chunk(itemsize=x.element_size()))


def refine(kind: str, points: TrainingPoints, problem, config: SamplingConfig,
           generator: torch.Generator, residuals: Callable[[Tensor], dict[str, Tensor]],
           weights: dict[str, float],
           magnitude: Callable[[Tensor], Tensor] | None = None) -> TrainingPoints:
    """One residual-adaptive event on the interior points.

    ``"rad"`` replaces the interior set by ``config.interior`` points drawn from
    ``config.adaptive_candidates`` fresh candidates with density
    ``|r|^k / mean(|r|^k) + c``; ``"rar-d"`` adds ``config.rar_add`` such points.

    Args:
        kind: ``"rad"`` or ``"rar-d"``.
        residuals: ``x -> {name: (M,) residual}`` of the current model.
        weights: term weights used to combine several residuals.
        magnitude: ``(M, d) -> (M,)`` combined residual of the candidates (default
            :func:`residual_magnitude` of ``residuals``; data-parallel runs pass one that
            shares the work between processes and gathers the result).
    """
    x = points.interior
    cand = problem.domain.sample_interior(config.adaptive_candidates, generator, config.method)
    cand = cand.to(dtype=x.dtype, device=x.device)
    r = magnitude(cand) if magnitude is not None else \
        residual_magnitude(residuals, cand, weights)
    if not bool(torch.isfinite(r).all()):
        return points  # the NaN guard deals with the model; keep the points
    if kind == "rad":
        new = rad_sample(cand, r, config.interior, generator, config.rad_k, config.rad_c)
    else:
        new = rar_d_add(x, cand, r, config.rar_add, generator, config.rad_k, config.rad_c)
    return TrainingPoints(new, points.conditions)
