"""The training loop behind :func:`kanpde.training.solve.solve`.

One :class:`Trainer` runs one solve: optimiser stages in sequence, grid events between them,
resampling and residual-adaptive refinement, loss weighting, the NaN guard, evaluations and
checkpoints. Everything it changes is one :class:`~kanpde.training.state.TrainState`, which a
checkpoint saves whole, so a resumed run continues the same trajectory; data-parallel
decisions go through its :class:`~kanpde.training.sharding.Sharding` strategy.

Order of one iteration (``global_step = g``)::

    snapshot -> loss and gradients at the current parameters (history entry g)
    -> NaN guard / L-BFGS convergence checks -> optimiser update -> g + 1
    -> evaluation, resampling, adaptive refinement, checkpoint (each when due)

The NaN guard: a non-finite loss or gradient, or an exploding loss (finite, but over
``1e8`` times the stage's best; :mod:`kanpde.training.divergence`), rolls the state back to
the last iteration whose loss was finite, halves the learning rate (for L-BFGS also clearing
its memory) and tries again; three failures in a row end the run with status
``"diverged"``, keeping all that came before. An L-BFGS iteration whose line search finds no
lower loss ends its stage as ``"no_progress"``; one that meets a tolerance while its loss,
each term measured in its characteristic magnitude, is still above half of its value at the
start of the run ends it as ``"stalled"``, not ``"converged"``.

First-order optimisers see the loss divided by the run's initial loss (``scaling.loss``; see
:attr:`Trainer.loss_scale`), so their tolerances are relative; residuals and conditions are
divided by characteristic magnitudes and the network predicts fields divided by their scales
(``scaling.residuals``, ``scaling.outputs``; :mod:`kanpde.training.scaling`).
"""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

from kanpde.core.dtypes import as_dtype
from kanpde.core.engines import Engine
from kanpde.nn.parts import grid_sizes, network, trainable_parameters
from kanpde.training import divergence, least_squares, second_order
from kanpde.training.checkpoint import checkpoint_path, save_checkpoint
from kanpde.training.config import SolverConfig, StageConfig, stage_option
from kanpde.training.distributed import DistributedError, point_seed, rank_device
from kanpde.training.distributed import context as dist_context
from kanpde.training.jacobian import Jacobian, Parameters
from kanpde.training.loss import NonFiniteError, PinnLoss
from kanpde.training.metrics import Evaluator
from kanpde.training.model import build_model, check_model, resolve_device
from kanpde.training.optim import (
    CachedClosure,
    continue_memory,
    grads_finite,
    lbfgs_memory,
    lbfgs_step_size,
    learning_rate,
    make_optimizer,
    max_abs_grad,
    set_lr,
)
from kanpde.training.points import TrainingPoints, sample_points
from kanpde.training.scaling import characteristic_scales, term_scales
from kanpde.training.sharding import Sharding
from kanpde.training.state import RunClock, Snapshot, TrainState
from kanpde.training.weighting import LossWeights, check_terms

MAX_FAILURES = 3
_EVAL_CLOCK = ("eval_step", "eval_time_s", "eval_cpu_s")  # evaluation-history columns
#: a tolerance met above this fraction of the initial loss is a stall, not convergence
STALLED = 0.5
#: ... as is one met with a term above STALLED of its own start that still holds this
#: fraction of the initial loss (the dimensionless loss of :meth:`Trainer._converged`)
STALLED_SHARE = 0.01
__all__ = ["Trainer", "NonFiniteError", "MAX_FAILURES"]


class Trainer:
    """The loop of one solve over one :class:`~kanpde.training.state.TrainState` (see the
    module docstring).

    Args:
        problem: the problem.
        config: the resolved solver config (overrides applied).
        model: the model to train (``None``: built from ``config.model``); it is moved to
            the config's dtype and device and trained in place. A model without a ``jet``
            method is differentiated by the ``"autograd"`` engine.
        out_dir: where checkpoints go (``None``: none are written).
        progress: show a tqdm bar on stderr.
        callback: called after every step with ``{"stage", "step", "global_step", "loss",
            "model"}``; may raise ``KeyboardInterrupt`` to stop the run as Ctrl-C would.
        clock: the run's clock (default: wall and process CPU time of this process).
    """

    def __init__(self, problem, config: SolverConfig, *, model: nn.Module | None = None,
                 out_dir: str | Path | None = None, progress: bool = False,
                 callback: Callable[[dict], None] | None = None, clock: RunClock | None = None):
        self.problem, self.config = problem, config
        self.dtype, self.device = as_dtype(config.dtype), resolve_device(config.device)
        dc = config.distributed
        self.dist = dist_context(dc.scaling, self.device, dc.backend, dc.timeout_s)
        self.device = rank_device(self.device, self.dist.local_rank)
        self.out_dir = None if out_dir is None else Path(out_dir)
        self.progress, self.callback = progress, callback
        given = model is not None
        sc = config.scaling
        #: the characteristic scales (:mod:`kanpde.training.scaling`)
        self.scales = dataclasses.replace(characteristic_scales(
            problem, outputs=sc.outputs == "auto", residuals=True,
            scale_network=not given and problem.hard_constraint is None),
            residuals=sc.residuals == "auto")
        if model is None:
            model = build_model(problem, config.model, self.dtype, self.device, config.seed,
                                output_scale=[self.scales.fields[f] for f in problem.fields]
                                if self.scales.outputs else None, source=config.source)
        else:
            model = model.to(device=self.device, dtype=self.dtype)
        #: the derivative engine: the config's, or nested autograd for a model without jets
        self.engine = config.derivative_engine if hasattr(model, "jet") else \
            Engine("autograd", config.kernel)
        unknowns = {k: nn.Parameter(torch.tensor(float(v), dtype=self.dtype, device=self.device))
                    for k, v in problem.unknowns.items()}
        check_terms(problem, config)
        check_model(model, config)
        defaults = {c.label(i): float(c.weight) for i, c in enumerate(problem.conditions)}
        weights = LossWeights(list(problem.residuals), list(defaults), defaults,
                              config.weighting)
        if config.regularization.active:  # the KAN sparsity penalty enters with weight 1
            weights.weights["regularization"] = 1.0
        self.sharding = Sharding(self.dist)
        #: the one PINN loss: terms, objective and residual vector
        self.loss = PinnLoss(problem, weights, weighting=config.weighting,
                             regularization=config.regularization, engine=self.engine,
                             sharding=self.sharding, unknowns=unknowns,
                             term_scales=term_scales(self.scales))
        least_squares.check_dense_limit(problem, config, len(unknowns),
                                        model=model if given else None)
        self.second_order_columns = any(s.optimizer in second_order.SECOND_ORDER
                                        for s in config.stages)
        weak = self.dist.active and dc.scaling == "weak"
        generator = torch.Generator().manual_seed(
            point_seed(config.seed, self.dist.rank) if weak else config.seed)
        points = self._draw_points(generator)
        self.sharding.attach(weights)
        self.sharding.check_world(points.counts(), config.weighting.causal, config.source)
        self.evaluator = Evaluator(problem, self.dtype, self.device)
        #: everything the run changes (what a checkpoint holds)
        self.state = TrainState(model, unknowns, points, generator, weights,
                                clock=clock or RunClock())
        #: the exploding-loss test of the NaN guard (:mod:`kanpde.training.divergence`)
        self.divergence = divergence.DivergenceRule()
        self.closure: CachedClosure | None = None
        self._gradnorm_now = False
        self._snap: Snapshot | None = None
        self._good: Snapshot | None = None
        self._dirty = False
        self._stall: list[str] = []  # why the last tolerance met was a stall (_converged)
        self._last_l2 = math.nan
        self._last_l2_fields = ""  # per-field l2_rel for the progress line (systems)

    # ----------------------------------------------------------------- loss ----------------

    @property
    def causal_min(self) -> float:
        """Smallest causal weight of the last loss evaluation (NaN without causal weights)."""
        return self.loss.causal_min

    def _evaluate(self) -> tuple[Tensor, dict]:
        """Loss with gradients set on all parameters (the closure body): the loss divided by
        :attr:`loss_scale`, and the gradients of that quotient; the terms as they are.

        Raises:
            NonFiniteError: the model could not be evaluated because of non-finite values.
        """
        s = self.state
        params = s.params()
        for p in params:
            p.grad = None
        failed = ""
        try:
            terms = self.loss.terms(s.model, s.points)
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
            s.weights.update_gradnorm(terms, list(s.model.parameters()))
            if self.dist.active:
                s.weights.weights = self.dist.broadcast_object(s.weights.weights)
        loss = s.weights.total(terms)
        loss.backward()
        if self.dist.active:  # global loss and gradient: sums of the processes' parts
            terms = self.sharding.reduce_terms(
                terms, [p.grad for p in params if p.grad is not None], "gradient all-reduce")
            loss = s.weights.total(terms)
        if s.loss_scale is None and self.config.scaling.loss == "initial":
            first = float(loss.detach())
            if math.isfinite(first) and first > 0.0:  # the first finite loss of the run
                s.loss_scale = first
        scale = self.loss_scale
        if scale != 1.0:
            for p in params:
                if p.grad is not None:
                    p.grad.div_(scale)
        return loss.detach() / scale, {k: float(v.detach()) for k, v in terms.items()}

    @property
    def loss_scale(self) -> float:
        """What the optimisers' loss is divided by: the loss at the start of the run with
        ``scaling.loss = "initial"``, else 1.

        ``L_0`` is the first finite loss the run evaluates (kept by checkpoints). Every
        first-order optimiser sees ``L / L_0`` and its gradient. Dividing the objective is the one
        change that makes all of their scale-dependent constants relative at once:
        L-BFGS's ``tolerance_grad`` and ``tolerance_change``, the curvature test of
        ``torch.optim.LBFGS`` (which skips pairs with ``y^T s <= 1e-10``, an absolute
        number) and its first step ``min(1, 1/|g|_1)``, and Adam's ``eps`` against
        ``sqrt(v)``. Patching the tolerances one by one would miss the constants inside
        torch. The history, summary and stage records keep ``L`` itself.
        """
        return self.state.loss_scale or 1.0

    def loss_value(self) -> tuple[float, dict[str, float]]:
        """Loss and terms at the current parameters, without gradients."""
        s = self.state
        with torch.no_grad():
            terms = self.loss.terms(s.model, s.points)
            if self.dist.active:
                terms = self.sharding.reduce_terms(terms)
            return float(s.weights.total(terms)), {k: float(v) for k, v in terms.items()}

    def _residuals(self, x: Tensor) -> dict[str, Tensor]:
        with torch.no_grad():
            return self.problem.residual_values(self.state.model, x, engine=self.engine,
                                                unknowns=self.state.unknowns or None)

    # ----------------------------------------------------------------- points --------------

    def _draw_points(self, generator: torch.Generator) -> TrainingPoints:
        """Draw the point sets (this process's own set in weak scaling) and share them."""
        pts = sample_points(self.problem, self.config.sampling, generator, self.dtype,
                            self.device)
        return self.sharding.share_points(pts)

    def _refine(self) -> TrainingPoints:
        s = self.state
        return self.sharding.refine(s.points, self.problem, self.config.sampling, s.generator,
                                    self._residuals, s.weights.weights, self.device)

    # ----------------------------------------------------------------- state ---------------

    def _restore(self, snap: Snapshot, keep_optimizer: bool = True) -> None:
        if not self.state.restore(snap, keep_optimizer) and self.state.optimizer is not None:
            self._new_optimizer()
        if self.closure is not None:
            self.closure.clear()

    def _new_optimizer(self) -> None:
        s = self.state
        st = self.config.stages[s.stage]
        if st.optimizer in second_order.SECOND_ORDER:  # damping and counts, no torch state
            old, self.closure = s.optimizer, None
            s.optimizer = second_order.make_stage(st, s.lr_scale)
            if isinstance(old, type(s.optimizer)):  # a rollback keeps the counts
                s.optimizer.totals = dict(old.totals)
            return
        s.optimizer = make_optimizer(st, s.params(), s.lr_scale)
        self.closure = CachedClosure(s.params(), self._evaluate) \
            if st.optimizer == "lbfgs" else None

    def save(self) -> None:
        """Write the checkpoint (no-op without ``out_dir``; only rank 0 writes)."""
        if self.out_dir is None:
            return
        s = self.state
        extra = self.sharding.state_dict(s.generator)  # collective in weak scaling
        if self.sharding.is_main:
            save_checkpoint(self.out_dir, {
                "problem": self.problem.name, "config": self.config.to_dict(),
                "problem_sha256": getattr(self.problem, "source_sha256", ""),
                "grid_size": grid_sizes(s.model), **s.state_dict(), **extra})

    def load(self, data: dict) -> None:
        """Continue from a checkpoint (already checked for compatibility)."""
        s = self.state
        optimizer_state = s.load_state_dict(data, self.dtype, self.device)
        if s.events_done and s.stage < len(self.config.stages):
            self._new_optimizer()
            if optimizer_state is not None:
                s.optimizer.load_state_dict(optimizer_state)
        self.sharding.load_state_dict(data, s.generator)

    # ----------------------------------------------------------------- loop ----------------

    def run(self) -> TrainState:
        """Train through all stages; the state's ``status`` says how it ended."""
        from tqdm.auto import tqdm

        s = self.state
        total = sum(st.steps for st in self.config.stages)
        self.bar = tqdm(total=total, initial=s.global_step, file=sys.stderr,
                        disable=not (self.progress and self.dist.is_main),
                        dynamic_ncols=True, desc=self.config.name)
        try:
            if s.global_step == 0 and not s.eval_history:
                self.record_eval()
            while s.stage < len(self.config.stages) and s.status == "ok":
                self._run_stage()
        except KeyboardInterrupt:
            if self._dirty and self._snap is not None:
                self._restore(self._snap)
            self._dirty = False
            s.status = "interrupted"
            self.save()
        except DistributedError as err:
            where = ("no checkpoint is written" if self.out_dir is None else
                     f"the last checkpoint {checkpoint_path(self.out_dir)} is intact")
            raise DistributedError(f"{err}; {where}") from err
        finally:
            self.bar.close()
        return s

    def _grid_events(self, st: StageConfig) -> None:
        """The stage's grid extension and update, each recorded in ``grid_events``.

        An update moves the knots to the activations of every point set (interior and
        conditions; :meth:`KAN.update_grid`, which keeps the function there). One that
        still multiplies the loss by more than ``grid_update_max_ratio`` is rolled back:
        the old knots and coefficients are restored (no optimiser exists between stages)
        and the event records the rejected loss and why.
        """
        s = self.state
        net = network(s.model)
        for kind in ("extend", "update"):
            if (kind == "extend" and st.grid_extend is None) or (kind == "update"
                                                                 and not st.grid_update):
                continue
            before = self.loss_value()[0]
            extra: dict = {}
            if kind == "extend":
                net.extend_grid(st.grid_extend)
            else:
                saved = {k: v.detach().clone() if isinstance(v, Tensor) else v
                         for k, v in net.state_dict().items()}
                # the global point sets (equal on every process), then rank 0's knots
                sets = [s.points.interior] + [c.points for c in s.points.conditions]
                report = net.update_grid([p.detach() for p in sets], grid_eps=st.grid_eps,
                                         tol=st.grid_update_tol)
                self.sharding.sync_model(s.model)
                if isinstance(report, dict):
                    extra["max_change"] = report["max_change"]
                    extra["inputs"] = {key: sum(r[key] for r in report["layers"])
                                       for key in ("moved", "kept_breakpoints", "unchanged")}
            after = self.loss_value()[0]
            if kind == "update" and not after <= st.grid_update_max_ratio * before:
                net.load_state_dict(saved)
                self.sharding.sync_model(s.model)
                ratio = after / before if before > 0 else math.inf
                extra.update(rolled_back=(
                    f"the update multiplied the loss by {ratio:.3g} "
                    f"(> grid_update_max_ratio = {st.grid_update_max_ratio:g}); "
                    "old grid kept"), loss_rejected=after)
                after = self.loss_value()[0]
            s.grid_events.append({
                "stage": s.stage, "step": s.global_step, "event": kind,
                "grid_size": grid_sizes(net), "loss_before": before, "loss_after": after,
                **extra})

    def _clock(self, st: StageConfig) -> tuple[float, float]:
        """Stage and run times on the config's ``time_clock`` (wall or process CPU time),
        rank 0's on every process when a time cap applies."""
        c = self.state.clock
        times = ((c.stage_cpu(), c.cpu_elapsed()) if self.config.time_clock == "cpu"
                 else (c.stage_elapsed(), c.elapsed()))
        if st.max_time_s is not None or self.config.max_time_s is not None:
            times = self.sharding.agree(times, "time check")
        return times

    def _run_stage(self) -> None:
        s = self.state
        st = self.config.stages[s.stage]
        if not s.events_done:
            self._snap, self._dirty = s.snapshot(), True
            s.optimizer = None
            self._grid_events(st)
            s.events_done = True
            s.clock.new_stage()
            self._new_optimizer()
            # the previous L-BFGS stage's memory, if asked for and the shapes held
            s.memory_continued = st.keep_memory and continue_memory(
                s.optimizer, s.carried_memory, s.params())
            s.carried_memory = None
            self._dirty = False
            self.dist.check_in_sync(s.params(), f"start of stage {s.stage}")
        s.clock.resume_stage()
        self._good = None
        stopped, converged_at = "budget", None
        while s.step_in_stage < st.steps:
            stage_time, run_time = self._clock(st)
            if st.max_time_s is not None and stage_time >= st.max_time_s:
                stopped = "max_time"
                break
            if self.config.max_time_s is not None and run_time >= self.config.max_time_s:
                stopped = s.status = "max_time"
                break
            stopped = self._second_order_iteration(st) \
                if st.optimizer in second_order.SECOND_ORDER else self._iteration(st)
            if stopped != "continue":
                converged_at = s.step_in_stage if stopped in ("converged", "stalled") \
                    else None
                break
            stopped = "budget"
        self._finish_stage(st, stopped, converged_at)

    def _iteration(self, st: StageConfig) -> str:
        """One first-order iteration; returns "continue", "converged", "no_progress" or
        "diverged"."""
        s = self.state
        self._snap, self._dirty = s.snapshot(), True
        lbfgs = st.optimizer == "lbfgs"
        lr = learning_rate(st, s.step_in_stage, s.lr_scale)
        set_lr(s.optimizer, lr)
        if not all(bool(torch.isfinite(p).all()) for p in s.params()):
            return self._nan_guard()
        try:
            if lbfgs:
                loss_t = self.closure()  # type: ignore[misc]
                terms = self.closure.extra  # type: ignore[union-attr]
            else:
                self._gradnorm_now = s.weights.due(s.global_step)
                loss_t, terms = self._evaluate()
        except NonFiniteError:
            return self._nan_guard()
        relative = float(loss_t)  # L / L_0: the optimiser's loss
        loss = relative * self.loss_scale
        if not math.isfinite(loss) or not grads_finite(s.params()) \
                or self.divergence.exploded(loss, s.history, s.stage):
            return self._nan_guard()
        self._accepted()
        if lbfgs and max_abs_grad(s.params()) <= st.tolerance_grad:
            self._dirty = False
            return self._converged(terms)  # a stationary point, unless it is a stall
        if lbfgs and s.prev_loss is not None and \
                abs(relative - s.prev_loss) < st.tolerance_change:
            self._dirty = False
            return self._converged(terms)
        self._record(loss, terms, lr)
        if lbfgs:
            try:
                s.optimizer.step(self.closure)
            except NonFiniteError:  # a line-search trial broke down: roll back
                return self._nan_guard()
            s.prev_loss = relative
        else:
            s.optimizer.step()
        small_step = lbfgs and lbfgs_step_size(s.optimizer) <= st.tolerance_change
        stuck = lbfgs and divergence.lbfgs_took_no_step(s.optimizer)
        self._advance(loss)
        if stuck:
            return "no_progress"
        if small_step and s.step_in_stage < st.steps:
            return self._converged(terms)
        return "continue"

    def dimensionless_terms(self, terms: dict[str, float]) -> dict[str, float]:
        """``lambda_t L_t / S_t^2`` per term: each term measured in its own characteristic
        magnitude ``S_t`` (:mod:`kanpde.training.scaling`), whether or not residual scaling
        divides the terms in training."""
        w, sc = self.state.weights.weights, self.scales
        return {k: w.get(k, 1.0) * v / (1.0 if sc.residuals else sc.terms.get(k, 1.0) ** 2)
                for k, v in terms.items()}

    def _not_reduced(self, terms: dict[str, float]) -> list[str] | None:
        """The reasons a tolerance met with these loss terms is a stall, not convergence
        (empty: converged; None: no test, see :meth:`_converged`)."""
        h = self.state.history
        start = {k[5:]: float(v[0]) for k, v in h.items() if k.startswith("loss/") and v}
        if self.config.scaling.loss != "initial" or not start or set(start) != set(terms):
            return None
        d0, d = self.dimensionless_terms(start), self.dimensionless_terms(terms)
        first, now = sum(d0.values()), sum(d.values())
        if not math.isfinite(first) or first <= 0:
            return None
        out = []
        if now > STALLED * first:
            out.append(f"the loss, each term in its characteristic magnitude, still at "
                       f"{now / first:.2g} of its initial value")
        out += [f"term '{k}' still at {d[k] / d0[k]:.2g} of its initial value and "
                f"{d[k] / first:.2g} of the initial loss" for k in d
                if d0[k] > 0 and d[k] > STALLED * d0[k] and d[k] > STALLED_SHARE * first]
        return out

    def _converged(self, terms: dict[str, float]) -> str:
        """After ``tolerance_grad`` or ``tolerance_change`` (a small gradient, loss change
        or step) was met: ``"converged"``, or ``"stalled"`` when, each term measured in its
        characteristic magnitude (:meth:`dimensionless_terms`), the loss is still above
        :data:`STALLED` of its value at the start of the run, or one term is still above
        :data:`STALLED` of its own start and above :data:`STALLED_SHARE` of the initial
        loss. A loss tiny in absolute terms whose terms were never reduced relative to their
        own size is not converged (a gradient that is small only because a term is small in
        the problem's units is such a case). Only with ``scaling.loss = "initial"``, whose
        tolerances are relative to the start of the run."""
        self._stall = self._not_reduced(terms) or []
        return "stalled" if self._stall else "converged"

    def _second_order_iteration(self, st: StageConfig) -> str:
        """One ``lm``/``gauss_newton`` iteration with the contract of every stage (snapshot,
        NaN guard, history entry with the damping and evaluation counts, evaluation,
        checkpoint, progress); returns "continue", "converged" or "diverged"."""
        s = self.state
        self._snap, self._dirty = s.snapshot(), True
        if not all(bool(torch.isfinite(p).all()) for p in s.params()):
            return self._nan_guard()
        opt = s.optimizer
        params = Parameters(s.model, s.unknowns)
        jac = Jacobian(s.model, params, stage_option(st, "jacobian"),
                       int(stage_option(st, "chunk_size")), found=opt.path,
                       pointwise=opt.pointwise)
        try:
            out = opt.step(least_squares.LeastSquares(self.loss, s.model, s.points, params,
                                                      jac))
        except NonFiniteError:
            return self._nan_guard()
        opt.path = jac.path or opt.path
        self._accepted()
        if out.stop == "gradient":  # met before a step: nothing done, nothing recorded
            self._dirty = False
            return "converged"
        self._record(out.loss, out.terms, out.step, extra=least_squares.history_row(out))
        self._advance(out.loss)
        if out.stop is not None and s.step_in_stage < st.steps:
            return self._converged(out.terms)
        return "continue"

    def _accepted(self) -> None:
        """The iteration's loss was finite: it counts as good."""
        s = self.state
        if not s.replaying:
            s.failures = 0
        s.replaying = False
        self._good = self._snap

    def _advance(self, loss: float) -> None:
        """After an optimiser step: count it, then what is due after a step."""
        s = self.state
        s.step_in_stage += 1
        s.global_step += 1
        self._after_step()
        self._dirty = False
        self._report(loss)

    def _nan_guard(self) -> str:
        s = self.state
        s.failures += 1
        s.rollbacks += 1
        target = self._good if self._good is not None else self._snap
        if s.failures >= MAX_FAILURES:
            self._restore(target)  # type: ignore[arg-type]
            self._dirty = False
            s.status = "diverged"
            return "diverged"
        s.lr_scale *= 0.5
        self._restore(target, keep_optimizer=  # type: ignore[arg-type]
                      self.config.stages[s.stage].optimizer == "adam")
        s.replaying = True
        self._dirty = False
        return "continue"

    def _record(self, loss: float, terms: dict[str, float], lr: float,
                extra: dict[str, float] | None = None) -> None:
        s = self.state
        row = {"step": s.global_step, "stage": s.stage, "loss": loss, "lr": lr,
               "time_s": s.clock.elapsed(), "cpu_s": s.clock.cpu_elapsed()}
        row.update({f"loss/{k}": v for k, v in terms.items()})
        if s.weights.adaptive:
            row.update({f"weight/{k}": v for k, v in s.weights.weights.items()})
        if self.config.weighting.causal:
            row["causal_min_weight"] = self.causal_min
        if self.second_order_columns:  # damping and evaluation counts (NaN: first-order)
            row.update(extra or least_squares.history_row())
        row.update({f"unknown/{k}": float(v.detach()) for k, v in s.unknowns.items()})
        for k, v in row.items():
            s.history.setdefault(k, []).append(v)

    def metrics_now(self, h1: bool = False) -> dict[str, float]:
        """The error metrics at the current step: the evaluation history's last row when it
        was taken at this step (a new evaluation with ``h1``, not recorded), else a new
        evaluation that is recorded."""
        ev, s = self.state.eval_history, self.state
        if ev.get("eval_step") and ev["eval_step"][-1] == s.global_step:
            if h1:
                return self.evaluator(s.model, h1=True)
            return {k[5:]: v[-1] for k, v in ev.items()
                    if k.startswith("eval_") and k not in _EVAL_CLOCK}
        return self.record_eval(h1=h1) if h1 else self.evaluator(s.model, h1=False)

    def record_eval(self, h1: bool = False) -> dict[str, float]:
        """Evaluate the errors now and append them to the evaluation history (``h1_rel``
        only when ``h1``; it is not part of the history). Without a solution to measure
        against, the metrics are NaN and nothing is recorded."""
        s = self.state
        m = self.evaluator(s.model, h1=h1)
        if not self.evaluator.has_reference:  # nothing to measure against: no history
            return m
        row = {"eval_step": s.global_step, "eval_time_s": s.clock.elapsed(),
               "eval_cpu_s": s.clock.cpu_elapsed(),
               **{f"eval_{k}": v for k, v in m.items()
                  if k.split("/")[0] not in ("h1_rel", "h1_mse")}}
        for k, v in row.items():
            s.eval_history.setdefault(k, []).append(v)
        self._last_l2 = m["l2_rel"]
        fields = self.problem.fields if len(self.problem.fields) > 1 else ()
        self._last_l2_fields = " ".join(f"{f} {m[f'l2_rel/{f}']:.1e}" for f in fields)
        return m

    def _after_step(self) -> None:
        s, sampling = self.state, self.config.sampling
        g = s.global_step
        every = self.config.evaluation.every
        if every and g % every == 0:
            self.record_eval()
        changed = False
        if sampling.resample_every and g % sampling.resample_every == 0:
            s.points = self._draw_points(s.generator)
            changed = True
        if sampling.adaptive != "none" and g % sampling.adaptive_every == 0:
            s.points = self._refine()
            changed = True
        if changed:
            s.prev_loss = None
            if self.closure is not None:  # L-BFGS memory belongs to the old objective
                self._new_optimizer()
        ck = self.config.checkpoint.every
        if ck and g % ck == 0:
            self.save()

    def _report(self, loss: float) -> None:
        s = self.state
        self.bar.update(1)
        if s.step_in_stage % 10 == 0 or s.step_in_stage == 1:
            per = f" ({self._last_l2_fields})" if self._last_l2_fields else ""
            l2 = f" l2 {self._last_l2:.2e}{per}" if self.evaluator.has_reference else ""
            self.bar.set_postfix_str(f"stage {s.stage} loss {loss:.3e}{l2}", refresh=False)
        if self.callback is not None:
            self.callback({"stage": s.stage, "step": s.step_in_stage,
                           "global_step": s.global_step, "loss": loss, "model": s.model})

    def _finish_stage(self, st: StageConfig, stopped: str, converged_at: int | None) -> None:
        s = self.state
        reason = {"budget": "ran all planned steps",
                  "converged": "met tolerance_grad or tolerance_change",
                  "max_time": "wall-time cap", "diverged": divergence.DIVERGED_REASON,
                  "stalled": "",
                  "no_progress": divergence.no_progress_reason(
                      st.lr * s.lr_scale, s.step_in_stage)}
        if stopped == "stalled":
            reason["stalled"] = (f"met its tolerance with {'; '.join(self._stall)}: "
                                 "not converged")
        s.stage_records.append({
            "index": s.stage, "optimizer": st.optimizer, "steps_planned": st.steps,
            "start_step": s.global_step - s.step_in_stage,
            "steps_run": s.step_in_stage, "stopped": stopped, "reason": reason[stopped],
            "converged_at": converged_at, "lr": st.lr, "lr_scale": s.lr_scale,
            "grid_size": grid_sizes(s.model),
            "wall_time_s": s.clock.stage_elapsed(), "elapsed_s": s.clock.elapsed(),
            "final_loss": self.loss_value()[0],
            "n_params": trainable_parameters(s.model),
            **({"second_order": s.optimizer.record()}
               if st.optimizer in second_order.SECOND_ORDER else {}),
            **({"memory_continued": s.memory_continued} if st.keep_memory else {}),
            # the error of the model as this stage leaves it (scaling studies read these)
            "metrics": self.metrics_now(),
        })
        self.dist.check_in_sync(s.params(), f"end of stage {s.stage}")
        if s.status in ("diverged", "max_time"):
            self.save()
            return
        stages = self.config.stages
        s.carried_memory = lbfgs_memory(s.optimizer, s.params()) \
            if st.optimizer == "lbfgs" and s.stage + 1 < len(stages) \
            and stages[s.stage + 1].keep_memory else None
        s.stage += 1
        s.step_in_stage = 0
        s.events_done = False
        s.prev_loss = None
        s.lr_scale, s.failures = 1.0, 0
        s.optimizer, self.closure = None, None
        self.save()
