"""Checkpoints: one file ``checkpoint.pt`` per run directory, written atomically.

A checkpoint holds everything needed to continue a run exactly where it stopped: the model
state (KAN layers load states of another grid size), the optimiser state, the stage index
and the step within it, the points, the generator state, the history, the weighting state,
the unknowns, the NaN-guard learning-rate scale, the resolved config dict, the problem
name and the SHA-256 of the problem file. Only tensors, numbers, strings, lists and dicts are
stored. The file carries a checksum and the previous one is kept as ``checkpoint.prev.pt``
(:mod:`kanpde.training.checkpoint_file`); a resume refuses a damaged file, an incomplete one,
and an edited problem file unless told to go on (:func:`check_problem_source`).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from kanpde.nn.parts import grid_sizes
from kanpde.training.checkpoint_file import check_complete, read_checkpoint, write_checkpoint
from kanpde.training.config import ConfigError, config_from_dict, diff_configs
from kanpde.training.points import TrainingPoints

FILENAME = "checkpoint.pt"
FORMAT = 1
#: keys every checkpoint holds (checked before a resume touches any of them)
REQUIRED = ("format", "problem", "config", "model", "optimizer", "stage", "step_in_stage",
            "global_step", "events_done", "points", "generator", "history", "eval_history",
            "weights", "unknowns", "lr_scale", "failures", "rollbacks", "replaying",
            "prev_loss", "stage_records", "grid_events", "elapsed", "stage_elapsed")


def checkpoint_path(where: str | Path) -> Path:
    """``where`` itself if it is a file, else ``where/checkpoint.pt``."""
    where = Path(where)
    return where if where.suffix == ".pt" else where / FILENAME


def save_checkpoint(where: str | Path, payload: Mapping[str, Any]) -> Path:
    """Write ``payload`` to ``where/checkpoint.pt`` atomically, with its checksum, keeping
    the checkpoint it replaces as ``checkpoint.prev.pt``."""
    return write_checkpoint(checkpoint_path(where), {"format": FORMAT, **payload})


def load_checkpoint(where: str | Path) -> dict[str, Any]:
    """Read a checkpoint (a run directory or the ``.pt`` file).

    Raises:
        ConfigError: no checkpoint there, or a damaged, incomplete or foreign one (one line
            naming the file).
    """
    path = checkpoint_path(where)
    data = read_checkpoint(path)
    if data.get("format") != FORMAT:
        raise ConfigError(f"resume: {path}: not a kanpde checkpoint (format "
                          f"{data.get('format')!r})")
    check_complete(data, REQUIRED, str(path))
    data["path"] = str(path)
    return data


def check_problem_source(data: Mapping[str, Any], problem, force: bool = False) -> bool:
    """Raise unless the checkpoint was written for the same problem *file contents*.

    Both digests must be known (a problem built in Python has none) for the check to apply.

    Returns:
        Whether the problem file changed (only possible with ``force``).

    Raises:
        ConfigError: the file changed and ``force`` is false (one line, naming the file).
    """
    then, now = data.get("problem_sha256") or "", getattr(problem, "source_sha256", "")
    if not then or not now or then == now:
        return False
    if not force:
        raise ConfigError(f"resume: {data.get('path', 'checkpoint')}: the problem file "
                          f"'{problem.source_path}' changed since this run started (sha256 "
                          f"{then[:12]}... then, {now[:12]}... now); restore it, or pass "
                          "--force to continue the run on the edited problem")
    return True


def check_compatible(data: Mapping[str, Any], problem_name: str,
                     config: Mapping[str, Any]) -> None:
    """Raise unless the checkpoint was written for this problem and this solver config.

    Raises:
        ConfigError: naming both problems or both solvers and the differing keys.
    """
    path = data.get("path", "checkpoint")
    if data["problem"] != problem_name:
        raise ConfigError(f"resume: {path} is from problem {data['problem']!r} "
                          f"(solver {data['config'].get('name')!r}), not problem "
                          f"{problem_name!r}")
    then = config_from_dict(data["config"], source=f"{path}: config").to_dict()  # canonical
    diff = diff_configs(then, config)
    if diff:
        shown = ", ".join(diff[:5]) + (", ..." if len(diff) > 5 else "")
        raise ConfigError(f"resume: {path} was written with solver "
                          f"{data['config'].get('name')!r}, not solver {config.get('name')!r} "
                          f"(differs in {shown})")


# ----------------------------------------------------------------- trainer state -------


def copy_optimizer_state(optimizer: torch.optim.Optimizer) -> dict:
    """An independent copy of ``optimizer.state_dict()``, made cheaply for every iteration.

    Tensors are cloned; lists (L-BFGS's curvature pairs ``old_dirs``, ``old_stps``, ``ro``,
    ``al``) are copied shallowly, because the optimisers append, drop and reassign their
    entries but never change an entry's tensor in place. A deep copy of the L-BFGS memory
    costs more than a loss evaluation of a small network; this costs a few list copies.
    """
    sd = optimizer.state_dict()
    if "state" not in sd:  # a second-order stage: damping and counts
        return copy.deepcopy(sd)

    def dup(v: Any) -> Any:
        if isinstance(v, Tensor):
            return v.clone()
        if isinstance(v, list):
            return list(v)
        return copy.deepcopy(v)

    return {"state": {k: {n: dup(v) for n, v in st.items()} for k, st in sd["state"].items()},
            "param_groups": copy.deepcopy(sd["param_groups"])}


def snapshot(tr) -> dict:
    """In-memory copy of a :class:`~kanpde.training.trainer.Trainer`'s state (NaN guard,
    interrupts); points are kept by reference (they are replaced, never modified)."""
    return {
        "model": {k: v.detach().clone() if isinstance(v, Tensor) else copy.deepcopy(v)
                  for k, v in tr.model.state_dict().items()},
        "optimizer": None if tr.optimizer is None else copy_optimizer_state(tr.optimizer),
        "unknowns": {k: v.detach().clone() for k, v in tr.unknowns.items()},
        "points": tr.points, "generator": tr.generator.get_state(),
        "weights": copy.deepcopy(tr.weights.state_dict()),
        "history": {k: len(v) for k, v in tr.history.items()},
        "eval_history": {k: len(v) for k, v in tr.eval_history.items()},
        "counters": (tr.step_in_stage, tr.global_step, tr.prev_loss, tr.events_done),
        "n_grid_events": len(tr.grid_events),
    }


def restore(tr, snap: dict, keep_optimizer: bool = True) -> None:
    """Put a trainer back into the state of a :func:`snapshot` (optionally with a fresh
    optimiser)."""
    tr.model.load_state_dict(snap["model"])
    with torch.no_grad():
        for k, v in snap["unknowns"].items():
            tr.unknowns[k].copy_(v)
    tr.points = snap["points"]
    tr.generator.set_state(snap["generator"])
    tr.weights.load_state_dict(copy.deepcopy(snap["weights"]))
    for name, hist in (("history", tr.history), ("eval_history", tr.eval_history)):
        for k in list(hist):
            del hist[k][snap[name].get(k, 0):]
    tr.step_in_stage, tr.global_step, tr.prev_loss, tr.events_done = snap["counters"]
    del tr.grid_events[snap["n_grid_events"]:]
    if tr.optimizer is not None:
        if keep_optimizer and snap["optimizer"] is not None:
            tr.optimizer.load_state_dict(copy.deepcopy(snap["optimizer"]))
        else:
            tr._new_optimizer()
    if tr.closure is not None:
        tr.closure.clear()


def payload(tr) -> dict[str, Any]:
    """What a checkpoint of the trainer holds."""
    return {
        "problem": tr.problem.name, "config": tr.config.to_dict(),
        "problem_sha256": getattr(tr.problem, "source_sha256", ""),
        "model": {k: v.detach().cpu() if isinstance(v, Tensor) else v
                  for k, v in tr.model.state_dict().items()},
        "grid_size": grid_sizes(tr.model),
        "optimizer": None if tr.optimizer is None else tr.optimizer.state_dict(),
        "stage": tr.stage, "step_in_stage": tr.step_in_stage,
        "global_step": tr.global_step, "events_done": tr.events_done,
        "points": tr.points.state_dict(), "generator": tr.generator.get_state(),
        "history": tr.history, "eval_history": tr.eval_history,
        "weights": tr.weights.state_dict(),
        "unknowns": {k: v.detach().cpu() for k, v in tr.unknowns.items()},
        "lr_scale": tr.lr_scale, "failures": tr.failures, "rollbacks": tr.rollbacks,
        "replaying": tr.replaying, "prev_loss": tr.prev_loss,
        "stage_records": tr.stage_records, "grid_events": tr.grid_events,
        "elapsed": tr.elapsed(), "cpu_elapsed": tr.cpu_elapsed(),
        "stage_elapsed": tr.stage_elapsed(), "stage_cpu_elapsed": tr.stage_cpu(),
    }


def load_state(tr, data: dict) -> None:
    """Continue a trainer from a checkpoint (already checked for compatibility)."""
    tr.model.load_state_dict(data["model"])
    tr.model.to(tr.device)
    with torch.no_grad():
        for k, v in data["unknowns"].items():
            tr.unknowns[k].copy_(v)
    tr.points = TrainingPoints.from_state(data["points"], tr.dtype, tr.device)
    tr.generator.set_state(data["generator"])
    tr.weights.load_state_dict(data["weights"])
    tr.history = {k: list(v) for k, v in data["history"].items()}
    tr.eval_history = {k: list(v) for k, v in data["eval_history"].items()}
    for key in ("stage", "step_in_stage", "global_step", "events_done", "lr_scale",
                "failures", "rollbacks", "replaying", "prev_loss"):
        setattr(tr, key, data[key])
    tr.stage_records = list(data["stage_records"])
    tr.grid_events = list(data["grid_events"])
    tr.elapsed_before = float(data["elapsed"])
    tr.cpu_before = float(data.get("cpu_elapsed", 0.0))
    tr.stage_elapsed_before = float(data["stage_elapsed"])
    tr.stage_cpu_before = float(data.get("stage_cpu_elapsed", 0.0))
    if tr.events_done and tr.stage < len(tr.config.stages):
        tr._new_optimizer()
        if data["optimizer"] is not None:
            tr.optimizer.load_state_dict(data["optimizer"])  # type: ignore[union-attr]
    tr.resumed_from = data.get("path")
