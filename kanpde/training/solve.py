"""``solve``: train a physics-informed network on a problem and return a :class:`Result`.

One entry point, objects in, a value out (like diffrax's ``diffeqsolve``): a
:class:`~kanpde.problem.Problem`, a :class:`~kanpde.training.config.SolverConfig` (the
default one when ``None``) and optionally a model of the caller's own. The loss is
``sum_t lambda_t mean(r_t^2)`` over the PDE residuals (at the interior points) and the
conditions (at their points), with derivatives from the solver's engine. Optimiser stages
(Adam with a learning-rate schedule, L-BFGS with an honest iteration budget,
Levenberg-Marquardt and Gauss-Newton on the residual vector) run in sequence; KAN grid
extension and grid update happen between stages, after which the optimiser is rebuilt.
Unknown parameters of inverse problems are ``nn.Parameter`` s trained with the network.
See :mod:`kanpde.training` for the pieces:

* :mod:`kanpde.training.model`: the model a config describes (embeddings, hard constraint);
* :mod:`kanpde.training.trainer`: the loop, NaN guard, grid events, resampling, evaluation,
  over one :class:`~kanpde.training.state.TrainState`;
* :mod:`kanpde.training.loss`: the one PINN loss (terms, weighted objective, residual
  vector), with :mod:`kanpde.training.sharding` for data-parallel runs
  (:mod:`kanpde.training.distributed`);
* :mod:`kanpde.training.optim`: schedules, L-BFGS driven one iteration at a time;
* :mod:`kanpde.training.second_order`: Levenberg-Marquardt and matrix-free Gauss-Newton
  stages on the residual vector (:mod:`kanpde.training.jacobian`,
  :mod:`kanpde.training.least_squares`);
* :mod:`kanpde.training.weighting`: fixed, grad-norm and causal weights;
* :mod:`kanpde.training.points`: collocation sets, RAD and RAR-D;
* :mod:`kanpde.training.checkpoint`: atomic checkpoints and resume checks;
* :mod:`kanpde.training.metrics`: ``l2_rel``, ``max_abs_err``, ``mse``, ``h1_rel``, each
  also per field (``summary["fields"]``);
* :mod:`kanpde.training.diagnostics`: residual diagnostics on fresh validation points
  (``summary["validation"]``), what a problem without a solution reports.

Launched with several processes (``torchrun``, ``srun``), one solve trains one model
data-parallel; see :mod:`kanpde.training.distributed`.

Example:
    >>> from kanpde import load_config, load_problem, solve
    >>> result = solve(load_problem("problems/poisson2d_sinsin.py"),
    ...                load_config("solvers/kan_tiny.toml"))
    >>> result.summary["l2_rel"]  # doctest: +SKIP
"""

from __future__ import annotations

import math
import platform
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from kanpde.core.engines import Engine
from kanpde.io.results import Result
from kanpde.nn.kan import KAN
from kanpde.nn.mlp import MLP
from kanpde.nn.parts import grid_sizes, network, trainable_parameters
from kanpde.nn.spec import model_spec
from kanpde.problem.exactcheck import EMPTY_EVALUATION
from kanpde.problem.scope import ProblemError
from kanpde.training.checkpoint import (
    check_compatible,
    check_problem_source,
    describe_overrides,
    load_checkpoint,
)
from kanpde.training.config import ConfigError, SolverConfig, config_from_dict
from kanpde.training.diagnostics import run_diagnostics
from kanpde.training.distributed import Context
from kanpde.training.divergence import DivergenceRule, explain_divergence
from kanpde.training.metrics import Evaluator, per_field
from kanpde.training.model import model_state_numpy, resolve_device
from kanpde.training.state import RunClock, TrainState
from kanpde.training.threads import apply_threads, current_threads
from kanpde.training.trainer import Trainer

__all__ = ["solve"]


def solve(problem, config: SolverConfig | Mapping[str, Any] | None = None, *,
          model: nn.Module | None = None, callback: Callable[[dict], None] | None = None,
          checkpoint_dir: str | Path | None = None, resume: str | Path | None = None,
          progress: bool = False, force: bool = False, clock: RunClock | None = None,
          log: Callable[[str], None] | None = None) -> Result:
    """Train a model on ``problem`` with the solver ``config``.

    Args:
        problem: the :class:`~kanpde.problem.Problem`.
        config: a :class:`~kanpde.training.config.SolverConfig` or a TOML-like dict of one;
            ``None`` is the default solver (every key at its default: a small KAN, Adam).
        model: the model to train instead of the one ``config.model`` describes: any
            ``nn.Module`` mapping ``(N, d)`` points to ``(N, m)`` fields. One with a
            ``jet(x, second=...)`` method (the protocol of :class:`~kanpde.nn.KAN`) is
            differentiated by the config's engine, one without by nested autograd
            (``summary["engine"]`` says which). It is moved to the config's dtype and
            device and trained in place; it predicts the fields themselves (no output
            scaling; residual and loss scaling apply as configured).
        callback: called after every step with ``{"stage", "step", "global_step", "loss",
            "model"}``; raising ``KeyboardInterrupt`` there stops the run like Ctrl-C.
        checkpoint_dir: where ``checkpoint.pt`` is written (every ``checkpoint.every``
            steps, at stage ends and on interrupt); ``None`` writes none (unless resuming:
            then the resume directory).
        resume: a run directory (or checkpoint file) to continue from. It must come from the
            same problem (name and, for a problem file, its exact contents) and the same
            resolved solver config, except ``device`` and ``dtype``: a run may continue on
            another device or in another precision (the state is moved and cast, ``log``
            says so and ``summary["resumed_with"]`` records both values); its checksum
            must match.
        progress: a tqdm progress bar on stderr.
        force: resume even though the problem file changed since the checkpoint.
        clock: the run's clock (default: this process's wall and CPU time).
        log: receives one-line messages about the run as it starts (the characteristic
            scales in use; a resume on another device or dtype); ``None``: not shown.

    Returns:
        The :class:`~kanpde.io.results.Result`. Its :attr:`~kanpde.io.results.Result.status`
        is ``ok``, ``diverged`` (three non-finite or exploding losses in a row; see
        :mod:`kanpde.training.divergence`), ``interrupted`` (``KeyboardInterrupt``; the
        checkpoint is written), ``max_time`` or ``no_metrics`` (trained, but the error
        metrics are not finite, e.g. a NaN exact solution). Unless it is ``ok``,
        ``summary["status_reason"]`` says why in one line.

    Raises:
        ConfigError: bad config, unavailable device, bad term names in
            ``weighting.weights``, or a checkpoint from another problem or solver, an
            edited problem file (without ``force``), or a damaged or incomplete checkpoint.
        ProblemError: the problem's evaluation set is empty, or its functions fail (one
            line naming the problem file and the function).
    """
    if config is None:
        config = SolverConfig()
    elif isinstance(config, Mapping):
        config = config_from_dict(config)
    resolve_device(config.device)
    apply_threads(config.threads)
    data, edited, moved = None, False, {}
    if resume is not None:
        data = load_checkpoint(resume)
        moved = check_compatible(data, problem.name, config.to_dict())
        edited = check_problem_source(data, problem, force)
        if moved and log is not None:
            log(f"resuming {data['path']} with {describe_overrides(moved)}")
        if checkpoint_dir is None:
            checkpoint_dir = Path(data["path"]).parent
    if problem.evaluation_points().shape[0] == 0:
        raise ProblemError(problem.what(f"{EMPTY_EVALUATION}; the error metrics could not "
                                        "be computed"))
    trainer = Trainer(problem, config, model=model, out_dir=checkpoint_dir, progress=progress,
                      callback=callback, clock=clock)
    if log is not None:
        log(trainer.scales.line())
    if data is not None:
        try:
            trainer.load(data)
        except KeyError as err:
            raise ConfigError(f"resume: {data['path']}: incomplete checkpoint (missing "
                              f"{err})") from err
    state = trainer.run()
    metrics = trainer.metrics_now(h1=True)
    final_loss, final_terms = trainer.loss_value()
    ev = trainer.evaluator
    status, reason = _outcome(problem, state, metrics, ev, trainer.engine, trainer.divergence)
    summary = _summary(problem, config, state, metrics, final_loss, final_terms,
                       trainer.engine, trainer.dist)
    prediction = ev.predict(state.model).detach()
    summary.update(_error_record(problem, ev, metrics))
    summary["validation"] = run_diagnostics(problem, state.model, prediction,
                                            seed=config.seed, engine=trainer.engine,
                                            unknowns=state.unknowns or None)
    summary["status"] = status
    summary["scales"] = {**trainer.scales.record(), "initial_loss": trainer.loss_scale
                         if config.scaling.loss == "initial" else None}
    if reason:
        summary["status_reason"] = reason
    if edited:  # continued knowingly (force) on an edited problem file
        summary["resumed_on_edited_problem"] = True
    if moved:  # continued on another device or in another precision
        summary["resumed_with"] = {k: {"then": a, "now": b} for k, (a, b) in moved.items()}
    history = {k: np.asarray(v, dtype=np.int64 if k in ("step", "stage", "eval_step")
                             else np.float64)
               for k, v in {**state.history, **state.eval_history}.items()}
    return Result(
        summary=summary, history=history,
        points=ev.points.detach().cpu().numpy(),
        prediction=prediction.cpu().numpy(),
        reference=None if ev.reference is None else ev.reference.detach().cpu().numpy(),
        model_spec=model_spec(state.model), model_state=model_state_numpy(state.model),
        config=config.to_dict(), problem_path=_absolute(problem.source_path),
        problem_source=problem.source, versions=_versions(),
        coords=tuple(problem.coords), fields=tuple(problem.fields), time=problem.time,
        bounds=tuple(tuple(float(v) for v in side) for side in problem.domain.bbox),
        model=state.model)


def model_kind(model: nn.Module) -> str:
    """``"kan"`` or ``"mlp"`` for kanpde's networks (also inside a hard constraint), else
    ``"custom"``."""
    net = network(model)
    return "kan" if isinstance(net, KAN) else "mlp" if isinstance(net, MLP) else "custom"


def _summary(problem, config: SolverConfig, state: TrainState, metrics: Mapping[str, float],
             final_loss: float, final_terms: dict[str, float], engine: Engine,
             dist: Context) -> dict[str, Any]:
    """The scalar record of a finished (or stopped) run, from its final state."""
    unknowns = {}
    for k, v in state.unknowns.items():
        value, true = float(v.detach()), problem.true_unknowns.get(k)
        unknowns[k] = {"value": value, "initial": float(problem.unknowns[k]),
                       "true": None if true is None else float(true),
                       "abs_err": None if true is None else abs(value - float(true))}
    h1 = metrics.get("h1_rel", math.nan)
    summary: dict[str, Any] = {
        "problem": problem.name, "solver": config.name, "model": model_kind(state.model),
        "n_params": int(trainable_parameters(state.model)), "l2_rel": metrics["l2_rel"],
        "max_abs_err": metrics["max_abs_err"], "mse": metrics["mse"],
        "steps": state.global_step, "wall_time_s": state.clock.elapsed(),
        "cpu_time_s": state.clock.cpu_elapsed(),
        "final_loss": final_loss, "status": state.status, "engine": engine.name,
        "kernel": engine.kernel, "dtype": config.dtype, "device": config.device,
        "seed": config.seed, "threads": current_threads(),
        "h1_rel": None if h1 is None or math.isnan(h1) else h1,
        "h1_mse": _finite_or_none(metrics.get("h1_mse")),
        "loss_terms": final_terms, "weights": dict(state.weights.weights),
        "stages": state.stage_records, "grid_events": state.grid_events,
        "grid_size": grid_sizes(state.model),
        "unknowns": unknowns, "nan_rollbacks": state.rollbacks,
        "points": state.points.counts(), "resumed_from": state.resumed_from,
    }
    if dist.active:
        summary["distributed"] = {"world_size": dist.world_size, "scaling": dist.scaling}
    return summary


def _error_record(problem, evaluator: Evaluator, metrics: Mapping[str, float]
                  ) -> dict[str, Any]:
    """The summary's per-field errors (``fields``; ``field_names`` keeps the problem's
    order, which ``summary.json``'s sorted keys lose), and what they were measured on
    (``region``, ``gauge``); without a solution the error keys are ``None`` and
    ``reference`` is ``"none"``."""
    if not evaluator.has_reference:
        return {"l2_rel": None, "max_abs_err": None, "mse": None, "h1_rel": None,
                "h1_mse": None, "reference": "none"}
    out: dict[str, Any] = {"fields": per_field(dict(metrics), problem.fields),
                           "field_names": list(problem.fields)}
    if evaluator.region_note:
        out["region"] = evaluator.region_note
    if problem.gauge:
        out["gauge"] = list(problem.gauge)
    return out


def _outcome(problem, state: TrainState, metrics: Mapping[str, float], evaluator: Evaluator,
             engine: Engine, rule: DivergenceRule) -> tuple[str, str | None]:
    """The run's status, and why when it is not ``"ok"`` (one line), given its final
    error ``metrics``, its evaluation set and its exploding-loss test ``rule``."""
    if state.status == "diverged":
        return "diverged", explain_divergence(
            problem, state.model, state.points, engine=engine,
            unknowns=state.unknowns or None, step=state.global_step,
            lr_scale=state.lr_scale, rule=rule)
    if state.status == "interrupted":
        return "interrupted", "stopped by an interrupt (Ctrl-C or SIGTERM); the " \
                              "checkpoint is written, resume continues the run"
    if state.status == "max_time":
        return "max_time", "stopped at the wall-time cap max_time_s"
    bad = [k for k in ("l2_rel", "max_abs_err", "mse") if not math.isfinite(metrics[k])]
    if not bad or evaluator.reference is None:
        return state.status, None
    ref = evaluator.reference.reshape(evaluator.reference.shape[0], -1)
    wrong = ~ref.isfinite().all(dim=1)
    if evaluator.mask is not None:
        wrong &= evaluator.mask
    source = "exact solution" if problem.exact is not None else "reference solution"
    if bool(wrong.any()):
        i = int(wrong.nonzero()[0, 0])
        at = ", ".join(f"{c}={v:.4g}" for c, v in zip(problem.coords,
                                                       evaluator.points[i].tolist(),
                                                       strict=False))
        why = (f"the {source} is not finite at {int(wrong.sum())} of {ref.shape[0]} "
               f"evaluation points (e.g. {at})")
    else:
        why = "the model's prediction is not finite on the evaluation points"
    return "no_metrics", (f"{', '.join(bad)} could not be computed: {why}; the trained "
                          "model is saved")


def _absolute(path: str) -> str:
    """``path`` absolute and resolved ("" stays "")."""
    return str(Path(path).resolve()) if path else ""


def _versions() -> dict[str, str]:
    import scipy
    import torch

    from kanpde._version import __version__

    return {"kanpde": __version__, "torch": torch.__version__,
            "numpy": np.__version__, "scipy": scipy.__version__,
            "python": sys.version.split()[0], "platform": platform.platform()}


def _finite_or_none(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)
