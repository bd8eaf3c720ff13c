"""Data-parallel sharding of a run: which rows a process evaluates, how the processes' parts
add up, and the decisions all processes must take alike.

Every process holds the *global* point sets; :class:`Sharding` gives this process's
contiguous shard of each (:meth:`kanpde.training.distributed.Context.shard`), turns a mean
over the global set into this process's part of it, and sums parts over processes (one
all-reduce of their concatenation). Point sets are shared (weak scaling: the processes' own
sets joined in rank order; strong scaling: rank 0's), adaptive refinement is decided from
gathered residuals, the model is synchronised after a grid update, and time caps use rank 0's
clock. With one process every method is the identity or the plain single-process
computation, so a one-process run does exactly what it would without sharding.

The loss (:class:`kanpde.training.loss.PinnLoss`) calls it for term values and gradients
(first-order stages) and for the normal equations ``J^T J``, ``J^T r`` or the products
``J^T (J v)`` of the second-order stages, which are sums over residual rows and hence over
processes; the :class:`~kanpde.training.trainer.Trainer` calls it for points, refinement,
model synchronisation, checkpoints and clocks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from kanpde.problem.conditions import ConditionPoints
from kanpde.training.config import ConfigError, SamplingConfig
from kanpde.training.distributed import SINGLE, Context
from kanpde.training.points import TrainingPoints, refine, residual_magnitude
from kanpde.training.weighting import LossWeights

Residuals = Callable[[Tensor], dict[str, Tensor]]


class Sharding:
    """The data-parallel strategy of one run (the identity for one process).

    Args:
        context: the process group as the run sees it.
    """

    def __init__(self, context: Context = SINGLE):
        self.context = context

    @property
    def active(self) -> bool:
        """Whether there is more than one process."""
        return self.context.active

    @property
    def world_size(self) -> int:
        """Number of processes."""
        return self.context.world_size

    @property
    def is_main(self) -> bool:
        """Whether this process owns the rows that are not split (rank 0)."""
        return self.context.is_main

    # ------------------------------------------------------------------ loss terms ------

    def local(self, points: TrainingPoints) -> TrainingPoints:
        """This process's shard of the point sets (all of them in a one-process run)."""
        d = self.context
        if not d.active:
            return points
        return TrainingPoints(d.shard(points.interior),  # type: ignore[arg-type]
                              [ConditionPoints(d.shard(c.points), d.shard(c.normals))
                               for c in points.conditions])

    def mean(self, sq: Tensor, n_global: int) -> Tensor:
        """``mean(sq)`` over the global set of ``n_global`` rows; with several processes this
        process's part ``sum(shard) / (n_global * fields)`` (the parts add up to the mean).

        Args:
            sq: ``(n_local, ...)`` squared residuals of this process's rows.
            n_global: rows of the global set.
        """
        if not self.context.active:
            return sq.mean()
        return sq.sum() / (n_global * (sq.numel() // max(sq.shape[0], 1) if sq.dim() else 1))

    def count(self, rows: Tensor, n_global: int) -> int:
        """The global number of entries ``N`` that :meth:`mean` divides by."""
        if not self.context.active:
            return rows.numel()
        return n_global * (rows.numel() // max(rows.shape[0], 1) if rows.dim() else 1)

    def sum(self, tensors: Sequence[Tensor], what: str = "all-reduce") -> list[Tensor]:
        """Sums over processes of ``tensors`` (new tensors; copies with one process)."""
        if not self.context.active:
            return list(tensors)
        return self.context.all_reduce_flat(list(tensors), what)

    def reduce_terms(self, terms: dict[str, Tensor], grads: list[Tensor] | None = None,
                     what: str = "loss all-reduce") -> dict[str, Tensor]:
        """Sum the term values (and, in place, ``grads``) over processes (one all-reduce)."""
        names = list(terms)
        vals = torch.stack([terms[k].detach().reshape(()) for k in names])
        out = self.context.all_reduce_flat([vals, *(grads or [])], what)
        for g, new in zip(grads or [], out[1:], strict=True):
            g.copy_(new)
        return {k: out[0][i] for i, k in enumerate(names)}

    # ------------------------------------------------------------------ the run ---------

    def check_world(self, counts: dict[str, int], causal: bool, source: str) -> None:
        """Refuse a data-parallel run that cannot work: a point set smaller than the number of
        processes, or causal weights.

        Args:
            counts: the sizes of the point sets by name.
            causal: whether the run uses causal weights.
            source: the solver file, for messages.

        Raises:
            ConfigError: one line naming the key.
        """
        d = self.context
        if not d.active:
            return
        few = {k: n for k, n in counts.items() if n < d.world_size}
        if few:
            k, n = next(iter(few.items()))
            raise ConfigError(f"{source}: sampling: {d.world_size} processes but only {n} "
                              f"{k} points; every process needs at least one point of every "
                              "set (use fewer processes or more points)")
        if causal:
            raise ConfigError(f"{source}: weighting.causal: not available with several "
                              f"processes (world size {d.world_size}); run it in one")

    def attach(self, weights: LossWeights) -> None:
        """Let grad-norm weights sum their gradient norms over processes."""
        d = self.context
        if d.active:
            weights.reduce = lambda grads: d.all_reduce_flat(grads, "grad-norm weighting")

    def share_points(self, new: TrainingPoints, current: TrainingPoints | None = None,
                     interior_only: bool = False) -> TrainingPoints:
        """The global point sets, equal on every process: weak scaling concatenates the
        processes' own sets in rank order, strong scaling takes rank 0's.

        Args:
            new: this process's new sets.
            current: the sets in use (their conditions are kept when ``interior_only``).
            interior_only: only the interior set is new.
        """
        d = self.context
        if not d.active:
            return new
        if d.scaling == "weak":
            def cat(t: Tensor | None) -> Tensor | None:
                return None if t is None else d.all_gather_cat(t, "point exchange")
            conds = current.conditions if interior_only and current is not None else [
                ConditionPoints(cat(c.points), cat(c.normals)) for c in new.conditions]
            return TrainingPoints(cat(new.interior), conds)  # type: ignore[arg-type]
        tensors = [new.interior] if interior_only else [
            new.interior, *(t for c in new.conditions for t in (c.points, c.normals)
                            if t is not None)]
        for t in tensors:
            d.broadcast_(t, what="point broadcast")
        return new

    def sync_model(self, model: nn.Module) -> None:
        """Overwrite every process's model state with rank 0's."""
        if self.context.active:
            for t in model.state_dict().values():
                if isinstance(t, Tensor):
                    self.context.broadcast_(t, what="model broadcast")

    def refine(self, points: TrainingPoints, problem, config: SamplingConfig,
               generator: torch.Generator, residuals: Residuals,
               weights: dict[str, float], device: torch.device) -> TrainingPoints:
        """One adaptive event (RAD or RAR-D) with the same outcome on every process.

        Args:
            points: the global point sets.
            problem: the problem.
            config: the ``[sampling]`` section.
            generator: the point generator.
            residuals: ``x -> {name: (N,)}`` residuals of the current model.
            weights: the current loss weights.
            device: this process's device (for the collective).
        """
        d, kind = self.context, config.adaptive
        if not d.active:
            return refine(kind, points, problem, config, generator, residuals, weights)
        if d.scaling == "weak":  # each process refines its own set
            local = self.local(points)
            new = refine(kind, local, problem, config, generator, residuals, weights)
            if d.any(new is local, device, "adaptive sampling"):
                return points  # some process met non-finite residuals: keep all sets
            return self.share_points(new, points, interior_only=True)

        def magnitude(cand: Tensor) -> Tensor:  # candidates split, residuals gathered
            part = residual_magnitude(residuals, d.shard(cand), weights)  # type: ignore[arg-type]
            return d.all_gather_cat(part, "adaptive sampling")

        new = refine(kind, points, problem, config, generator, residuals, weights,
                     magnitude=magnitude)
        return new if new is points else self.share_points(new, points, interior_only=True)

    def state_dict(self, generator: torch.Generator) -> dict[str, Any]:
        """What a checkpoint records about the processes (collective in weak scaling)."""
        d = self.context
        if not d.active:
            return {}
        info: dict[str, Any] = {"world_size": d.world_size, "scaling": d.scaling}
        if d.scaling == "weak":
            info["generators"] = d.all_gather_object(generator.get_state(), "checkpoint")
        return {"distributed": info}

    def load_state_dict(self, data: dict[str, Any], generator: torch.Generator) -> None:
        """This process's generator from a checkpoint of a weak-scaling run.

        Raises:
            ConfigError: the checkpoint was written by another number of processes with weak
                scaling.
        """
        info = data.get("distributed") or {"world_size": 1, "scaling": "strong"}
        d = self.context
        if d.scaling != "weak" or (d.world_size == 1 and info["world_size"] == 1):
            return  # strong scaling: the global sets and their generator do not depend on W
        if info["world_size"] != d.world_size:
            raise ConfigError(f"resume: {data.get('path', 'checkpoint')} was written by "
                              f"{info['world_size']} process(es) with weak scaling; resume it "
                              f"with the same number, not {d.world_size} (each process owns "
                              "its own points)")
        generator.set_state(info["generators"][d.rank])

    def agree(self, value: Any, what: str) -> Any:
        """Rank 0's ``value`` on every process (e.g. the clock a time cap reads)."""
        return self.context.broadcast_object(value, what=what) if self.context.active \
            else value


SINGLE_PROCESS = Sharding()
"""The strategy of a one-process run."""
