"""The training loop behind :func:`kanpde.training.solve.solve`.

One :class:`Trainer` runs one solve: optimiser stages in sequence, grid events between them,
resampling and residual-adaptive refinement, loss weighting, the NaN guard, evaluations and
checkpoints. Its state is exactly what a checkpoint holds, so a resumed run continues the
same trajectory.

Order of one iteration (``global_step = g``)::

    snapshot -> loss and gradients at the current parameters (history entry g)
    -> NaN guard / L-BFGS convergence checks -> optimiser update -> g + 1
    -> evaluation, resampling, adaptive refinement, checkpoint (each when due)

The NaN guard: a non-finite loss or gradient, or an exploding loss (finite, but over
``1e8`` times the stage's best; :mod:`kanpde.training.divergence`), rolls everything (model,
optimiser, unknowns, points, generator, weights, history) back to the last iteration whose
loss was finite, halves the learning rate (for L-BFGS also clearing its memory) and tries
again; three failures in a row end the run with status ``"diverged"``, keeping all that came
before. An L-BFGS iteration whose line search finds no lower loss ends its stage as
``"no_progress"``.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

from kanpde.core.dtypes import as_dtype
from kanpde.nn.parts import grid_sizes, network, trainable_parameters
from kanpde.training import checkpoint as ckpt
from kanpde.training import divergence, least_squares, second_order
from kanpde.training.config import ConfigError, SolverConfig, StageConfig
from kanpde.training.distributed import DistributedError, point_seed, rank_device
from kanpde.training.distributed import context as dist_context
from kanpde.training.loss import NonFiniteError, PinnLoss
from kanpde.training.metrics import Evaluator
from kanpde.training.model import build_model, resolve_device
from kanpde.training.optim import (
    CachedClosure,
    grads_finite,
    lbfgs_step_size,
    learning_rate,
    make_optimizer,
    max_abs_grad,
    set_lr,
)
from kanpde.training.parallel import DataParallel
from kanpde.training.sharding import Sharding
from kanpde.training.weighting import LossWeights

MAX_FAILURES = 3
__all__ = ["Trainer", "NonFiniteError", "MAX_FAILURES"]


class Trainer(DataParallel):
    """State and loop of one solve (see the module docstring).

    Args:
        problem: the problem.
        config: the resolved solver config (overrides applied).
        out_dir: where checkpoints go (``None``: none are written).
        progress: show a tqdm bar on stderr.
        callback: called after every step with ``{"stage", "step", "global_step", "loss",
            "model"}``; may raise ``KeyboardInterrupt`` to stop the run as Ctrl-C would.
    """

    def __init__(self, problem, config: SolverConfig, out_dir: str | Path | None = None,
                 progress: bool = True, callback: Callable[[dict], None] | None = None):
        self.problem, self.config = problem, config
        self.dtype, self.device = as_dtype(config.dtype), resolve_device(config.device)
        dc = config.distributed
        #: the process group as this run sees it (one process: rank 0 of 1)
        self.dist = dist_context(dc.scaling, self.device, dc.backend, dc.timeout_s)
        self.device = rank_device(self.device, self.dist.local_rank)
        self.out_dir = None if out_dir is None else Path(out_dir)
        self.progress, self.callback = progress, callback
        self.model = build_model(problem, config.model, self.dtype, self.device, config.seed)
        self.unknowns = {k: nn.Parameter(torch.tensor(float(v), dtype=self.dtype,
                                                      device=self.device))
                         for k, v in problem.unknowns.items()}
        self.res_names = list(problem.residuals)
        self.cond_names = [c.label(i) for i, c in enumerate(problem.conditions)]
        self._check_terms()
        defaults = {c.label(i): float(c.weight) for i, c in enumerate(problem.conditions)}
        self.weights = LossWeights(self.res_names, self.cond_names, defaults, config.weighting)
        if config.regularization.active:  # the KAN sparsity penalty enters with weight 1
            self.weights.weights["regularization"] = 1.0
        self.sharding = Sharding(self.dist)
        #: the one PINN loss: terms, objective and residual vector
        self.loss = PinnLoss(problem, self.weights, weighting=config.weighting,
                             regularization=config.regularization, engine=config.derivative_engine,
                             sharding=self.sharding, unknowns=self.unknowns)
        least_squares.check_dense_limit(problem, config, len(self.unknowns))
        self.second_order_columns = any(s.optimizer in second_order.SECOND_ORDER
                                        for s in config.stages)
        weak = self.dist.active and dc.scaling == "weak"
        self.generator = torch.Generator().manual_seed(
            point_seed(config.seed, self.dist.rank) if weak else config.seed)
        self.points = self._draw_points()
        self._check_world()
        self.evaluator = Evaluator(problem, self.dtype, self.device)
        self.history: dict[str, list] = {}
        self.eval_history: dict[str, list] = {}
        self.stage = self.step_in_stage = self.global_step = 0
        self.events_done = False
        self.lr_scale, self.failures, self.rollbacks, self.replaying = 1.0, 0, 0, False
        self.stage_records: list[dict] = []
        self.grid_events: list[dict] = []
        self.elapsed_before = self.stage_elapsed_before = 0.0
        self.cpu_before = self.stage_cpu_before = 0.0
        self.prev_loss: float | None = None
        self.status = "ok"
        #: the exploding-loss test of the NaN guard (:mod:`kanpde.training.divergence`)
        self.divergence = divergence.DivergenceRule()
        self.resumed_from: str | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.closure: CachedClosure | None = None
        self._gradnorm_now = False
        self._snap: dict | None = None
        self._good: dict | None = None
        self._dirty = False
        self._t0 = time.perf_counter()
        self._cpu0 = time.process_time()
        self._stage_t0, self._stage_c0 = self._t0, self._cpu0
        self._last_l2 = math.nan

    # ----------------------------------------------------------------- set-up checks ----

    def _check_terms(self) -> None:
        names = self.res_names + self.cond_names
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"problem {self.problem.name!r}: loss terms named twice "
                             f"(residuals and condition labels): {', '.join(dupes)}")
        src = self.config.source
        for name, _ in self.config.weighting.weights:
            if name not in names and name not in ("residuals", "conditions"):
                raise ConfigError(f"{src}: weighting.weights.{name}: no such term in problem "
                                  f"{self.problem.name!r} (terms: {', '.join(names)}; groups: "
                                  "residuals, conditions)")
        if self.config.weighting.causal and self.problem.time is None:
            raise ConfigError(f"{src}: weighting.causal: problem {self.problem.name!r} has "
                              "no time coordinate")

    # ----------------------------------------------------------------- loss ----------------

    def params(self) -> list[nn.Parameter]:
        """Model parameters, then the unknowns."""
        return list(self.model.parameters()) + list(self.unknowns.values())

    @property
    def causal_min(self) -> float:
        """Smallest causal weight of the last loss evaluation (NaN without causal weights)."""
        return self.loss.causal_min

    def _evaluate(self) -> tuple[Tensor, dict]:
        """Loss with gradients set on all parameters (the closure body).

        Raises:
            NonFiniteError: the model could not be evaluated because of non-finite values.
        """
        for p in self.params():
            p.grad = None
        failed = ""
        try:
            terms = self.loss.terms(self.model, self.points)
        except RuntimeError as err:
            # KAN layers fed non-finite activations fail in the spline interval index
            # ("index ... is out of bounds") instead of returning NaN
            if "out of bounds" not in str(err):
                raise
            if not self.dist.active:
                raise NonFiniteError(str(err)) from err
            failed = str(err)
        if self.dist.active and self.dist.any(bool(failed), self.device, "loss evaluation"):
            raise NonFiniteError(failed or "non-finite values in another process")
        if self._gradnorm_now:
            self._gradnorm_now = False
            self.weights.update_gradnorm(terms, list(self.model.parameters()))
            if self.dist.active:
                self.weights.weights = self.dist.broadcast_object(self.weights.weights)
        loss = self.weights.total(terms)
        loss.backward()
        if self.dist.active:  # global loss and gradient: sums of the processes' parts
            terms = self._reduce(terms, [p.grad for p in self.params() if p.grad is not None],
                                 "gradient all-reduce")
            loss = self.weights.total(terms)
        return loss.detach(), {k: float(v.detach()) for k, v in terms.items()}

    def loss_value(self) -> tuple[float, dict[str, float]]:
        """Loss and terms at the current parameters, without gradients."""
        with torch.no_grad():
            terms = self.loss.terms(self.model, self.points)
            if self.dist.active:
                terms = self._reduce(terms)
            return float(self.weights.total(terms)), {k: float(v) for k, v in terms.items()}

    def _residuals(self, x: Tensor) -> dict[str, Tensor]:
        with torch.no_grad():
            return self.problem.residual_values(self.model, x, engine=self.config.derivative_engine,
                                                unknowns=self.unknowns or None)

    # ----------------------------------------------------------------- state ---------------

    def _snapshot(self) -> dict:
        return ckpt.snapshot(self)

    def _restore(self, snap: dict, keep_optimizer: bool = True) -> None:
        ckpt.restore(self, snap, keep_optimizer)

    def _new_optimizer(self) -> None:
        st = self.config.stages[self.stage]
        if st.optimizer in second_order.SECOND_ORDER:  # damping and counts, no torch state
            old, self.closure = self.optimizer, None
            self.optimizer = second_order.make_stage(st, self.lr_scale)
            if isinstance(old, type(self.optimizer)):  # a rollback keeps the counts
                self.optimizer.totals = dict(old.totals)
            return
        self.optimizer = make_optimizer(st, self.params(), self.lr_scale)
        self.closure = CachedClosure(self.params(), self._evaluate) \
            if st.optimizer == "lbfgs" else None

    def stage_elapsed(self) -> float:
        """Wall time of the current stage so far, across resumes."""
        return time.perf_counter() - self._stage_t0 + self.stage_elapsed_before

    def stage_cpu(self) -> float:
        """Process CPU time of the current stage so far, across resumes."""
        return time.process_time() - self._stage_c0 + self.stage_cpu_before

    def elapsed(self) -> float:
        """Wall time of the run so far, across resumes."""
        return self.elapsed_before + time.perf_counter() - self._t0

    def cpu_elapsed(self) -> float:
        """Process CPU time (user + system, all threads) of the run so far, across resumes.

        Unlike wall time it hardly depends on other jobs sharing the machine; with several
        torch threads it counts every thread's time.
        """
        return self.cpu_before + time.process_time() - self._cpu0

    # ----------------------------------------------------------------- checkpoints ---------

    def save(self) -> None:
        """Write the checkpoint (no-op without ``out_dir``; only rank 0 writes)."""
        if self.out_dir is not None:
            extra = self._distributed_state()
            if self.dist.is_main:
                ckpt.save_checkpoint(self.out_dir, {**ckpt.payload(self), **extra})

    def load(self, data: dict) -> None:
        """Continue from a checkpoint (already checked for compatibility)."""
        ckpt.load_state(self, data)
        self._load_distributed(data)

    # ----------------------------------------------------------------- loop ----------------

    def run(self) -> None:
        """Train through all stages; ``self.status`` says how it ended."""
        from tqdm.auto import tqdm

        total = sum(s.steps for s in self.config.stages)
        self.bar = tqdm(total=total, initial=self.global_step, file=sys.stderr,
                        disable=not (self.progress and self.dist.is_main),
                        dynamic_ncols=True, desc=self.config.name)
        try:
            if self.global_step == 0 and not self.eval_history:
                self.record_eval()
            while self.stage < len(self.config.stages) and self.status == "ok":
                self._run_stage()
        except KeyboardInterrupt:
            if self._dirty and self._snap is not None:
                self._restore(self._snap)
            self._dirty = False
            self.status = "interrupted"
            self.save()
        except DistributedError as err:
            where = ("no checkpoint is written" if self.out_dir is None else
                     f"the last checkpoint {ckpt.checkpoint_path(self.out_dir)} is intact")
            raise DistributedError(f"{err}; {where}") from err
        finally:
            self.bar.close()

    def _grid_events(self, st: StageConfig) -> None:
        net = network(self.model)
        for kind in ("extend", "update"):
            if (kind == "extend" and st.grid_extend is None) or (kind == "update"
                                                                 and not st.grid_update):
                continue
            before = self.loss_value()[0]
            if kind == "extend":
                net.extend_grid(st.grid_extend)
            else:
                # the global interior set (equal on every process), then rank 0's knots
                net.update_grid(self.points.interior.detach(), grid_eps=st.grid_eps)
                self._sync_model()
            after = self.loss_value()[0]
            self.grid_events.append({
                "stage": self.stage, "step": self.global_step, "event": kind,
                "grid_size": grid_sizes(net),
                "loss_before": before, "loss_after": after})

    def _run_stage(self) -> None:
        st = self.config.stages[self.stage]
        if not self.events_done:
            self._snap, self._dirty = self._snapshot(), True
            self.optimizer = None
            self._grid_events(st)
            self.events_done = True
            self.stage_elapsed_before = self.stage_cpu_before = 0.0
            self._new_optimizer()
            self._dirty = False
            self.dist.check_in_sync(self.params(), f"start of stage {self.stage}")
        self._stage_t0, self._stage_c0 = time.perf_counter(), time.process_time()
        self._good = None
        stopped, converged_at = "budget", None
        while self.step_in_stage < st.steps:
            stage_time, run_time = self._clock(st)
            if st.max_time_s is not None and stage_time >= st.max_time_s:
                stopped = "max_time"
                break
            if self.config.max_time_s is not None and run_time >= self.config.max_time_s:
                stopped = self.status = "max_time"
                break
            stopped = self._iteration(st)
            if stopped != "continue":
                converged_at = self.step_in_stage if stopped == "converged" else None
                break
            stopped = "budget"
        self._finish_stage(st, stopped, converged_at)

    def _iteration(self, st: StageConfig) -> str:
        """One optimiser iteration; returns "continue", "converged", "no_progress" or
        "diverged"."""
        if st.optimizer in second_order.SECOND_ORDER:
            return least_squares.run_iteration(self, st)
        self._snap, self._dirty = self._snapshot(), True
        lbfgs = st.optimizer == "lbfgs"
        lr = learning_rate(st, self.step_in_stage, self.lr_scale)
        set_lr(self.optimizer, lr)  # type: ignore[arg-type]
        if not all(bool(torch.isfinite(p).all()) for p in self.params()):
            return self._nan_guard()
        try:
            if lbfgs:
                loss_t = self.closure()  # type: ignore[misc]
                terms = self.closure.extra  # type: ignore[union-attr]
            else:
                self._gradnorm_now = self.weights.due(self.global_step)
                loss_t, terms = self._evaluate()
        except NonFiniteError:
            return self._nan_guard()
        loss = float(loss_t)
        if not math.isfinite(loss) or not grads_finite(self.params()) \
                or self.divergence.exploded(loss, self.history, self.stage):
            return self._nan_guard()
        if not self.replaying:
            self.failures = 0
        self.replaying = False
        self._good = self._snap
        if lbfgs and (max_abs_grad(self.params()) <= st.tolerance_grad or (
                self.prev_loss is not None
                and abs(loss - self.prev_loss) < st.tolerance_change)):
            self._dirty = False
            return "converged"
        self._record(loss, terms, lr)
        if lbfgs:
            try:
                self.optimizer.step(self.closure)  # type: ignore[union-attr, arg-type]
            except NonFiniteError:  # a line-search trial broke down: roll back
                return self._nan_guard()
            self.prev_loss = loss
        else:
            self.optimizer.step()  # type: ignore[union-attr]
        self.step_in_stage += 1
        self.global_step += 1
        small_step = lbfgs and lbfgs_step_size(self.optimizer) <= st.tolerance_change
        stuck = lbfgs and divergence.lbfgs_took_no_step(self.optimizer)  # type: ignore[arg-type]
        self._after_step()
        self._dirty = False
        self._report(loss)
        if stuck:
            return "no_progress"
        if small_step and self.step_in_stage < st.steps:
            return "converged"
        return "continue"

    def _nan_guard(self) -> str:
        self.failures += 1
        self.rollbacks += 1
        target = self._good if self._good is not None else self._snap
        if self.failures >= MAX_FAILURES:
            self._restore(target)  # type: ignore[arg-type]
            self._dirty = False
            self.status = "diverged"
            return "diverged"
        self.lr_scale *= 0.5
        self._restore(target, keep_optimizer=  # type: ignore[arg-type]
                      self.config.stages[self.stage].optimizer == "adam")
        self.replaying = True
        self._dirty = False
        return "continue"

    def _record(self, loss: float, terms: dict[str, float], lr: float,
                extra: dict[str, float] | None = None) -> None:
        h = self.history
        row = {"step": self.global_step, "stage": self.stage, "loss": loss, "lr": lr,
               "time_s": self.elapsed(), "cpu_s": self.cpu_elapsed()}
        row.update({f"loss/{k}": v for k, v in terms.items()})
        if self.weights.adaptive:
            row.update({f"weight/{k}": v for k, v in self.weights.weights.items()})
        if self.config.weighting.causal:
            row["causal_min_weight"] = self.causal_min
        if self.second_order_columns:  # damping and evaluation counts (NaN: first-order)
            row.update(extra or least_squares.history_row())
        row.update({f"unknown/{k}": float(v.detach()) for k, v in self.unknowns.items()})
        for k, v in row.items():
            h.setdefault(k, []).append(v)

    def _metrics_now(self) -> dict[str, float]:
        """``l2_rel``, ``max_abs_err``, ``mse`` at the current step: the evaluation history's
        last row when it was taken at this step, else a new evaluation (not recorded)."""
        ev = self.eval_history
        if ev.get("eval_step") and ev["eval_step"][-1] == self.global_step:
            return {k: ev[f"eval_{k}"][-1] for k in ("l2_rel", "max_abs_err", "mse")}
        return self.evaluator(self.model, h1=False)

    def record_eval(self, h1: bool = False) -> dict[str, float]:
        """Evaluate the errors now and append them to the evaluation history (``h1_rel``
        only when ``h1``; it is not part of the history)."""
        m = self.evaluator(self.model, h1=h1)
        row = {"eval_step": self.global_step, "eval_time_s": self.elapsed(),
               "eval_cpu_s": self.cpu_elapsed(),
               **{f"eval_{k}": v for k, v in m.items() if k not in ("h1_rel", "h1_mse")}}
        for k, v in row.items():
            self.eval_history.setdefault(k, []).append(v)
        self._last_l2 = m["l2_rel"]
        return m

    def _after_step(self) -> None:
        g, s = self.global_step, self.config.sampling
        every = self.config.evaluation.every
        if every and g % every == 0:
            self.record_eval()
        changed = False
        if s.resample_every and g % s.resample_every == 0:
            self.points = self._draw_points()
            changed = True
        if s.adaptive != "none" and g % s.adaptive_every == 0:
            self.points = self._refine()
            changed = True
        if changed:
            self.prev_loss = None
            if self.closure is not None:  # L-BFGS memory belongs to the old objective
                self._new_optimizer()
        ck = self.config.checkpoint.every
        if ck and g % ck == 0:
            self.save()

    def _report(self, loss: float) -> None:
        self.bar.update(1)
        if self.step_in_stage % 10 == 0 or self.step_in_stage == 1:
            self.bar.set_postfix_str(f"stage {self.stage} loss {loss:.3e} "
                                     f"l2 {self._last_l2:.2e}", refresh=False)
        if self.callback is not None:
            self.callback({"stage": self.stage, "step": self.step_in_stage,
                           "global_step": self.global_step, "loss": loss,
                           "model": self.model})

    def _finish_stage(self, st: StageConfig, stopped: str, converged_at: int | None) -> None:
        net = network(self.model)
        reason = {"budget": "ran all planned steps",
                  "converged": "met tolerance_grad or tolerance_change",
                  "max_time": "wall-time cap", "diverged": divergence.DIVERGED_REASON,
                  "no_progress": divergence.no_progress_reason(
                      st.lr * self.lr_scale, self.step_in_stage)}
        self.stage_records.append({
            "index": self.stage, "optimizer": st.optimizer, "steps_planned": st.steps,
            "start_step": self.global_step - self.step_in_stage,
            "steps_run": self.step_in_stage, "stopped": stopped, "reason": reason[stopped],
            "converged_at": converged_at, "lr": st.lr, "lr_scale": self.lr_scale,
            "grid_size": grid_sizes(net),
            "wall_time_s": self.stage_elapsed(), "elapsed_s": self.elapsed(),
            "final_loss": self.loss_value()[0],
            "n_params": trainable_parameters(self.model),
            **({"second_order": self.optimizer.record()}
               if st.optimizer in second_order.SECOND_ORDER else {}),
            # the error of the model as this stage leaves it (scaling studies read these)
            "metrics": self._metrics_now(),
        })
        self.dist.check_in_sync(self.params(), f"end of stage {self.stage}")
        if self.status in ("diverged", "max_time"):
            self.save()
            return
        self.stage += 1
        self.step_in_stage = 0
        self.events_done = False
        self.prev_loss = None
        self.lr_scale, self.failures = 1.0, 0
        self.optimizer, self.closure = None, None
        self.save()
