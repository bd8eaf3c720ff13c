"""The data-parallel part of the :class:`~kanpde.training.trainer.Trainer`.

:class:`DataParallel` is a mixin: its methods read the trainer's ``dist`` (a
:class:`kanpde.training.distributed.Context`), ``points``, ``config``, ``problem``, ``model``,
``generator``, ``weights``, ``sharding`` and ``device``. With one process every method is the
identity or the plain single-process computation; with several, the point sets are the
global ones on every rank, each rank evaluates its shard (through
:class:`~kanpde.training.sharding.Sharding`), and decisions are taken from gathered or
summed quantities (see :mod:`kanpde.training.distributed` for the scheme).
"""

from __future__ import annotations

from torch import Tensor

from kanpde.problem.conditions import ConditionPoints
from kanpde.training.config import ConfigError, StageConfig
from kanpde.training.points import TrainingPoints, refine, residual_magnitude, sample_points


class DataParallel:
    """Sharding, reductions and rank-consistent decisions of one training run."""

    def _check_world(self) -> None:
        d, src = self.dist, self.config.source
        if not d.active:
            return
        self.weights.reduce = lambda grads: d.all_reduce_flat(grads, "grad-norm weighting")
        few = {k: n for k, n in self.points.counts().items() if n < d.world_size}
        if few:
            k, n = next(iter(few.items()))
            raise ConfigError(f"{src}: sampling: {d.world_size} processes but only {n} "
                              f"{k} points; every process needs at least one point of every "
                              "set (use fewer processes or more points)")
        if self.config.weighting.causal:
            raise ConfigError(f"{src}: weighting.causal: not available with several "
                              f"processes (world size {d.world_size}); run it in one")


    def _draw_points(self) -> TrainingPoints:
        """Draw the point sets (this process's own set in weak scaling) and share them."""
        pts = sample_points(self.problem, self.config.sampling, self.generator, self.dtype,
                            self.device)
        return self._share_points(pts)

    def _share_points(self, pts: TrainingPoints, interior_only: bool = False
                      ) -> TrainingPoints:
        """The global point sets, equal on every process: weak scaling concatenates the
        processes' own sets in rank order, strong scaling takes rank 0's
        (``interior_only``: only the interior set is new; the conditions stay as they are)."""
        d = self.dist
        if not d.active:
            return pts
        if d.scaling == "weak":
            def cat(t: Tensor | None) -> Tensor | None:
                return None if t is None else d.all_gather_cat(t, "point exchange")
            conds = self.points.conditions if interior_only else [
                ConditionPoints(cat(c.points), cat(c.normals)) for c in pts.conditions]
            return TrainingPoints(cat(pts.interior), conds)  # type: ignore[arg-type]
        tensors = [pts.interior] if interior_only else [
            pts.interior, *(t for c in pts.conditions for t in (c.points, c.normals)
                            if t is not None)]
        for t in tensors:
            d.broadcast_(t, what="point broadcast")
        return pts

    def _local_points(self) -> TrainingPoints:
        """This process's shard of the point sets (all of them in a one-process run)."""
        return self.sharding.local(self.points)

    def _mean(self, sq: Tensor, n_global: int) -> Tensor:
        """This process's part of ``mean(sq)`` over the global set (see
        :meth:`kanpde.training.sharding.Sharding.mean`)."""
        return self.sharding.mean(sq, n_global)

    def _reduce(self, terms: dict[str, Tensor], grads: list[Tensor] | None = None,
                what: str = "loss all-reduce") -> dict[str, Tensor]:
        """Sum the term values (and, in place, ``grads``) over processes (one all-reduce)."""
        return self.sharding.reduce_terms(terms, grads, what)

    def _sync_model(self) -> None:
        """Overwrite every process's model state with rank 0's."""
        if self.dist.active:
            for t in self.model.state_dict().values():
                if isinstance(t, Tensor):
                    self.dist.broadcast_(t, what="model broadcast")

    def _refine(self) -> TrainingPoints:
        """One adaptive event with the same outcome on every process."""
        s, w, d = self.config.sampling, self.weights.weights, self.dist
        if not d.active:
            return refine(s.adaptive, self.points, self.problem, s, self.generator,
                          self._residuals, w)
        if d.scaling == "weak":  # each process refines its own set
            local = self._local_points()
            new = refine(s.adaptive, local, self.problem, s, self.generator,
                         self._residuals, w)
            if d.any(new is local, self.device, "adaptive sampling"):
                return self.points  # some process met non-finite residuals: keep all sets
            return self._share_points(new, interior_only=True)

        def magnitude(cand: Tensor) -> Tensor:  # candidates split, residuals gathered
            part = residual_magnitude(self._residuals, d.shard(cand), w)  # type: ignore[arg-type]
            return d.all_gather_cat(part, "adaptive sampling")

        new = refine(s.adaptive, self.points, self.problem, s, self.generator,
                     self._residuals, w, magnitude=magnitude)
        return new if new is self.points else self._share_points(new, interior_only=True)

    def _distributed_state(self) -> dict:
        """What a checkpoint records about the processes (collective in weak scaling)."""
        d = self.dist
        if not d.active:
            return {}
        info: dict = {"world_size": d.world_size, "scaling": d.scaling}
        if d.scaling == "weak":
            info["generators"] = d.all_gather_object(self.generator.get_state(),
                                                     "checkpoint")
        return {"distributed": info}

    def _load_distributed(self, data: dict) -> None:
        info = data.get("distributed") or {"world_size": 1, "scaling": "strong"}
        d = self.dist
        if d.scaling != "weak" or (d.world_size == 1 and info["world_size"] == 1):
            return  # strong scaling: the global sets and their generator do not depend on W
        if info["world_size"] != d.world_size:
            raise ConfigError(f"resume: {data.get('path', 'checkpoint')} was written by "
                              f"{info['world_size']} process(es) with weak scaling; resume it "
                              f"with the same number, not {d.world_size} (each process owns "
                              "its own points)")
        self.generator.set_state(info["generators"][d.rank])

    def _clock(self, st: StageConfig) -> tuple[float, float]:
        """Stage and run times on the config's ``time_clock`` (wall or process CPU time),
        rank 0's on every process when a time cap applies."""
        times = ((self.stage_cpu(), self.cpu_elapsed()) if self.config.time_clock == "cpu"
                 else (self.stage_elapsed(), self.elapsed()))
        if self.dist.active and (st.max_time_s is not None
                                 or self.config.max_time_s is not None):
            times = self.dist.broadcast_object(times, what="time check")
        return times
