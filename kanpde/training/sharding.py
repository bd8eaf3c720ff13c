"""Data-parallel sharding of the PINN loss: which rows a process evaluates, and how the
processes' parts add up.

Every process holds the *global* point sets; :class:`Sharding` gives this process's
contiguous shard of each (:meth:`kanpde.training.distributed.Context.shard`), turns a mean over the
global set into this process's part of it, and sums parts over processes (one all-reduce of
their concatenation). With one process every method is the identity or the plain
single-process computation, so a one-process run does exactly what it did before sharding
existed.

The loss (:class:`kanpde.training.loss.PinnLoss`) calls it for term values and gradients
(first-order stages) and for the normal equations ``J^T J``, ``J^T r`` or the products
``J^T (J v)`` of the second-order stages, which are sums over residual rows and hence over
processes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from kanpde.problem.conditions import ConditionPoints
from kanpde.training.distributed import SINGLE, Context
from kanpde.training.points import TrainingPoints


class Sharding:
    """The strategy of one run (the identity for one process).

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


SINGLE_PROCESS = Sharding()
"""The strategy of a one-process run."""
