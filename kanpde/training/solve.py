"""``solve``: train a physics-informed KAN or MLP on a problem and return a :class:`Result`.

The loss is ``sum_t lambda_t mean(r_t^2)`` over the PDE residuals (at the interior points)
and the conditions (at their points), with derivatives from the solver's engine. Optimiser
stages (Adam with a learning-rate schedule, L-BFGS with an honest iteration budget,
Levenberg-Marquardt and Gauss-Newton on the residual vector) run in sequence; KAN grid
extension and grid update happen between stages, after which the optimiser is rebuilt.
Unknown parameters of inverse problems are ``nn.Parameter`` s trained with the network.
See :mod:`kanpde.training` for the pieces:

* :mod:`kanpde.training.model`: model from config (embeddings, hard constraint), and back
  from a result's ``model_spec``;
* :mod:`kanpde.training.trainer`: the loop, NaN guard, grid events, resampling, evaluation;
* :mod:`kanpde.training.parallel`: sharding and rank-consistent decisions of data-parallel
  runs (:mod:`kanpde.training.distributed`);
* :mod:`kanpde.training.loss`: the one PINN loss (terms, weighted objective, residual
  vector), with :mod:`kanpde.training.sharding` for data-parallel runs;
* :mod:`kanpde.training.optim`: schedules, L-BFGS driven one iteration at a time;
* :mod:`kanpde.training.second_order`: Levenberg-Marquardt and matrix-free Gauss-Newton
  stages on the residual vector (:mod:`kanpde.training.jacobian`,
  :mod:`kanpde.training.least_squares`);
* :mod:`kanpde.training.weighting`: fixed, grad-norm and causal weights;
* :mod:`kanpde.training.points`: collocation sets, RAD and RAR-D;
* :mod:`kanpde.training.checkpoint`: atomic checkpoints and resume checks;
* :mod:`kanpde.training.metrics`: ``l2_rel``, ``max_abs_err``, ``mse``, ``h1_rel``.

Launched with several processes (``torchrun``, ``srun``), one solve trains one model
data-parallel; see :mod:`kanpde.training.distributed`.

Example:
    >>> from kanpde import load_problem
    >>> from kanpde.training.config import load_config
    >>> result = solve(load_problem("problems/poisson2d_sinsin.py"),
    ...                load_config("solvers/kan_tiny.toml"), progress=False)
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

from kanpde.io.results import Result
from kanpde.nn.parts import grid_sizes, trainable_parameters
from kanpde.problem.exactcheck import EMPTY_EVALUATION
from kanpde.problem.scope import ProblemError
from kanpde.training import checkpoint as ckpt
from kanpde.training.config import ConfigError, SolverConfig, config_from_dict, load_config
from kanpde.training.divergence import explain_divergence
from kanpde.training.model import (
    build_model,
    build_model_from_spec,
    model_spec,
    model_state_numpy,
    resolve_device,
)
from kanpde.training.threads import apply_threads, current_threads
from kanpde.training.trainer import Trainer

__all__ = ["solve", "build_model", "build_model_from_spec"]


def solve(problem, config: SolverConfig | Mapping | str | Path, *,
          out_dir: str | Path | None = None, resume: str | Path | None = None,
          progress: bool = True, problem_path: str = "",
          overrides: Mapping[str, Any] | None = None,
          callback: Callable[[dict], None] | None = None, force: bool = False) -> Result:
    """Train the solver ``config`` on ``problem``.

    Args:
        problem: a :class:`~kanpde.problem.Problem` (or a problem file path).
        config: a :class:`~kanpde.training.config.SolverConfig`, a TOML-like dict or a solver file.
        out_dir: run directory for ``checkpoint.pt`` (written every ``checkpoint.every``
            steps, at stage ends and on interrupt); ``None`` writes nothing (unless
            resuming: then the resume directory).
        resume: a run directory (or checkpoint file) to continue from. It must come from the
            same problem (name and, for a problem file, its exact contents) and the same
            resolved solver config, and its checksum must match.
        progress: tqdm progress bar on stderr.
        problem_path: recorded in the result.
        overrides: ``{"engine", "dtype", "device", "seed", "threads"}`` replacing the
            config's values before anything is built. The CPU thread count (``threads``, or
            the cores that are free, :mod:`kanpde.training.threads`) is applied to this process.
        callback: called after every step with ``{"stage", "step", "global_step", "loss",
            "model"}``; raising ``KeyboardInterrupt`` there stops the run like Ctrl-C.
        force: resume even though the problem file changed since the checkpoint.

    Returns:
        The :class:`~kanpde.io.results.Result`; ``summary["status"]`` is ``"ok"``,
        ``"diverged"`` (three non-finite or exploding losses in a row; see
        :mod:`kanpde.training.divergence`), ``"interrupted"`` (``KeyboardInterrupt``; the
        checkpoint is written), ``"max_time"`` or ``"no_metrics"`` (trained, but the error
        metrics are not finite, e.g. a NaN exact solution). Unless it is ``"ok"``,
        ``summary["status_reason"]`` says why in one line.

    Raises:
        ConfigError: bad config or overrides, unavailable device, bad term names in
            ``weighting.weights``, or a checkpoint from another problem or solver, an
            edited problem file (without ``force``), or a damaged or incomplete checkpoint.
        ProblemError: the problem's evaluation set is empty, or its functions fail (one
            line naming the problem file and the function).
    """
    if isinstance(problem, str | Path):
        from kanpde.problem import load_problem

        problem_path = problem_path or str(problem)
        problem = load_problem(problem)
    if isinstance(config, str | Path):
        config = load_config(config)
    elif isinstance(config, Mapping):
        config = config_from_dict(config)
    config = config.with_overrides(overrides)
    resolve_device(config.device)
    apply_threads(config.threads)
    data, edited = None, False
    if resume is not None:
        data = ckpt.load_checkpoint(resume)
        ckpt.check_compatible(data, problem.name, config.to_dict())
        edited = ckpt.check_problem_source(data, problem, force)
        if out_dir is None:
            out_dir = Path(data["path"]).parent
    if problem.evaluation_points().shape[0] == 0:
        raise ProblemError(problem.what(f"{EMPTY_EVALUATION}; the error metrics could not "
                                        "be computed"))
    trainer = Trainer(problem, config, out_dir=out_dir, progress=progress, callback=callback)
    if data is not None:
        try:
            trainer.load(data)
        except KeyError as err:
            raise ConfigError(f"resume: {data['path']}: incomplete checkpoint (missing "
                              f"{err})") from err
    trainer.run()
    result = _result(trainer, problem_path)
    if edited:  # continued knowingly (force) on an edited problem file
        result.summary["resumed_on_edited_problem"] = True
    return result


def _versions() -> dict[str, str]:
    import scipy
    import torch

    from kanpde._version import __version__

    return {"kanpde": __version__, "torch": torch.__version__,
            "numpy": np.__version__, "scipy": scipy.__version__,
            "python": sys.version.split()[0], "platform": platform.platform()}


def _finite_or_none(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _status(trainer: Trainer, metrics: Mapping[str, float]) -> tuple[str, str | None]:
    """The run's status, and why when it is not ``"ok"`` (one line)."""
    if trainer.status == "diverged":
        return "diverged", explain_divergence(trainer)
    if trainer.status == "interrupted":
        return "interrupted", "stopped by an interrupt (Ctrl-C or SIGTERM); the checkpoint " \
                              "is written, resume continues the run"
    if trainer.status == "max_time":
        return "max_time", "stopped at the wall-time cap max_time_s"
    bad = [k for k in ("l2_rel", "max_abs_err", "mse") if not math.isfinite(metrics[k])]
    if not bad:
        return trainer.status, None
    ev = trainer.evaluator
    ref = ev.reference.reshape(ev.reference.shape[0], -1)
    wrong = ~ref.isfinite().all(dim=1)
    source = "exact solution" if trainer.problem.exact is not None else "reference solution"
    if bool(wrong.any()):
        i = int(wrong.nonzero()[0, 0])
        at = ", ".join(f"{c}={v:.4g}" for c, v in zip(trainer.problem.coords,
                                                       ev.points[i].tolist(), strict=False))
        why = (f"the {source} is not finite at {int(wrong.sum())} of {ref.shape[0]} "
               f"evaluation points (e.g. {at})")
    else:
        why = "the model's prediction is not finite on the evaluation points"
    return "no_metrics", (f"{', '.join(bad)} could not be computed: {why}; the trained model "
                          "is saved")


def _result(trainer: Trainer, problem_path: str) -> Result:
    """Collect the :class:`Result` of a finished (or stopped) run."""
    cfg, problem, model = trainer.config, trainer.problem, trainer.model
    ev = trainer.eval_history
    if ev.get("eval_step") and ev["eval_step"][-1] == trainer.global_step:
        metrics = trainer.evaluator(model, h1=True)
    else:
        metrics = trainer.record_eval(h1=True)
    final_loss, final_terms = trainer.loss_value()
    unknowns = {}
    for k, v in trainer.unknowns.items():
        value, true = float(v.detach()), problem.true_unknowns.get(k)
        unknowns[k] = {"value": value, "initial": float(problem.unknowns[k]),
                       "true": None if true is None else float(true),
                       "abs_err": None if true is None else abs(value - float(true))}
    n_params = trainable_parameters(model)
    h1 = metrics.get("h1_rel", math.nan)
    summary: dict[str, Any] = {
        "problem": problem.name, "solver": cfg.name, "model": cfg.model.kind,
        "n_params": int(n_params), "l2_rel": metrics["l2_rel"],
        "max_abs_err": metrics["max_abs_err"], "mse": metrics["mse"],
        "steps": trainer.global_step, "wall_time_s": trainer.elapsed(),
        "cpu_time_s": trainer.cpu_elapsed(),
        "final_loss": final_loss, "status": trainer.status, "engine": cfg.engine,
        "kernel": cfg.kernel, "dtype": cfg.dtype, "device": cfg.device, "seed": cfg.seed,
        "threads": current_threads(),
        "h1_rel": None if h1 is None or math.isnan(h1) else h1,
        "h1_mse": _finite_or_none(metrics.get("h1_mse")),
        "loss_terms": final_terms, "weights": dict(trainer.weights.weights),
        "stages": trainer.stage_records, "grid_events": trainer.grid_events,
        "grid_size": grid_sizes(model),
        "unknowns": unknowns, "nan_rollbacks": trainer.rollbacks,
        "points": trainer.points.counts(), "resumed_from": trainer.resumed_from,
    }
    status, reason = _status(trainer, metrics)
    summary["status"] = status
    if reason:
        summary["status_reason"] = reason
    if trainer.dist.active:
        summary["distributed"] = {"world_size": trainer.dist.world_size,
                                  "scaling": trainer.dist.scaling}
    history = {k: np.asarray(v, dtype=np.int64 if k in ("step", "stage", "eval_step")
                             else np.float64)
               for k, v in {**trainer.history, **trainer.eval_history}.items()}
    ev_pts = trainer.evaluator
    return Result(
        summary=summary, history=history,
        points=ev_pts.points.detach().cpu().numpy(),
        prediction=ev_pts.predict(model).detach().cpu().numpy(),
        reference=ev_pts.reference.detach().cpu().numpy(),
        model_spec=model_spec(model, problem, cfg.model, trainer.dtype, cfg.seed),
        model_state=model_state_numpy(model), config=cfg.to_dict(),
        problem_path=str(problem_path), versions=_versions(),
        coords=tuple(problem.coords), fields=tuple(problem.fields), time=problem.time)
