"""The state of a training run: one value that a checkpoint saves and a resume restores.

:class:`TrainState` holds everything that changes while a run trains and that the rest of the
run depends on: the model and the unknown parameters, the optimiser, the collocation points
and their generator, the loss weights, the counters (stage, step, NaN-guard bookkeeping), the
clocks and the histories. The :class:`~kanpde.training.trainer.Trainer` changes it step by
step; :meth:`TrainState.snapshot` and :meth:`TrainState.restore` roll it back (NaN guard,
interrupts); :meth:`TrainState.state_dict` and :meth:`TrainState.load_state_dict` are what a
checkpoint stores (:mod:`kanpde.training.checkpoint`). Only tensors, numbers, strings, lists
and dicts are stored.

:class:`RunClock` measures wall and process CPU time of the run and of its current stage,
across resumes; its time sources are arguments, so a test can run it on a clock of its own.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from kanpde.training.points import TrainingPoints
from kanpde.training.weighting import LossWeights

#: the counters a checkpoint stores under their own names
COUNTERS = ("stage", "step_in_stage", "global_step", "events_done", "lr_scale", "failures",
            "rollbacks", "replaying", "prev_loss")


class RunClock:
    """Wall and process CPU time of a run and of its current stage, across resumes.

    Args:
        wall: seconds of a monotonic wall clock (default :func:`time.perf_counter`).
        cpu: seconds of process CPU time, user + system (default :func:`time.process_time`).
    """

    def __init__(self, wall: Callable[[], float] = time.perf_counter,
                 cpu: Callable[[], float] = time.process_time):
        self.wall, self.cpu = wall, cpu
        #: times of the sessions before this one (a resumed run)
        self.before = {"elapsed": 0.0, "cpu_elapsed": 0.0, "stage_elapsed": 0.0,
                       "stage_cpu_elapsed": 0.0}
        self._t0, self._c0 = wall(), cpu()
        self._stage_t0, self._stage_c0 = self._t0, self._c0

    def new_stage(self) -> None:
        """A stage starts from zero (its events are about to run)."""
        self.before["stage_elapsed"] = self.before["stage_cpu_elapsed"] = 0.0

    def resume_stage(self) -> None:
        """The stage's clocks run from now on (at every start of the stage loop)."""
        self._stage_t0, self._stage_c0 = self.wall(), self.cpu()

    def elapsed(self) -> float:
        """Wall time of the run so far."""
        return self.before["elapsed"] + self.wall() - self._t0

    def cpu_elapsed(self) -> float:
        """Process CPU time (all threads) of the run so far. Unlike wall time it hardly
        depends on other jobs sharing the machine."""
        return self.before["cpu_elapsed"] + self.cpu() - self._c0

    def stage_elapsed(self) -> float:
        """Wall time of the current stage so far."""
        return self.before["stage_elapsed"] + self.wall() - self._stage_t0

    def stage_cpu(self) -> float:
        """Process CPU time of the current stage so far."""
        return self.before["stage_cpu_elapsed"] + self.cpu() - self._stage_c0

    def state_dict(self) -> dict[str, float]:
        """The four times now, as a checkpoint stores them."""
        return {"elapsed": self.elapsed(), "cpu_elapsed": self.cpu_elapsed(),
                "stage_elapsed": self.stage_elapsed(), "stage_cpu_elapsed": self.stage_cpu()}

    def load_state_dict(self, data: dict[str, Any]) -> None:
        """Continue from the times of a checkpoint (CPU times default to 0 when absent)."""
        self.before = {k: float(data.get(k, 0.0)) for k in self.before}


def copy_optimizer_state(optimizer: Any) -> dict:
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


@dataclass
class Snapshot:
    """An in-memory copy of a :class:`TrainState` (points by reference: they are replaced,
    never changed in place; histories by length: they only grow)."""

    model: dict[str, Any]
    optimizer: dict | None
    unknowns: dict[str, Tensor]
    points: TrainingPoints
    generator: Tensor
    weights: dict[str, Any]
    history: dict[str, int]
    eval_history: dict[str, int]
    counters: tuple[int, int, float | None, bool]
    n_grid_events: int


@dataclass
class TrainState:
    """Everything a run changes while it trains (see the module docstring).

    Attributes:
        model: the model being trained.
        unknowns: the unknown scalar parameters of an inverse problem.
        points: the global collocation and condition point sets.
        generator: the point generator (this process's stream in weak scaling).
        weights: the loss weights (fixed, grad-norm or causal).
        clock: wall and CPU time of the run and its stage.
        optimizer: the current stage's optimiser (``None`` between stages).
        carried_memory: between an L-BFGS stage and a following ``keep_memory`` stage, the
            first one's curvature memory (:func:`kanpde.training.optim.lbfgs_memory`).
        memory_continued: the current ``keep_memory`` stage took that memory (the
            parameter shapes had not changed).
        stage, step_in_stage, global_step: where the run is.
        events_done: the current stage's grid events have run.
        lr_scale: the NaN guard's learning-rate factor in this stage.
        failures, rollbacks: NaN-guard failures in a row, and rollbacks in total.
        replaying: the next iteration repeats one the NaN guard rolled back.
        prev_loss: the last L-BFGS loss divided by ``loss_scale`` (its ``tolerance_change``
            test).
        loss_scale: what the optimisers' loss is divided by (the initial loss; ``None``
            until the run starts).
        status: ``"ok"``, ``"diverged"``, ``"interrupted"`` or ``"max_time"``.
        history: one row per iteration (loss, terms, weights, ...).
        eval_history: one row per evaluation of the error metrics.
        stage_records: one record per finished stage.
        grid_events: one record per grid extension or update.
        resumed_from: the checkpoint the run continued from.
    """

    model: nn.Module
    unknowns: dict[str, nn.Parameter]
    points: TrainingPoints
    generator: torch.Generator
    weights: LossWeights
    clock: RunClock = field(default_factory=RunClock)
    optimizer: Any = None
    carried_memory: dict | None = None
    memory_continued: bool = False
    stage: int = 0
    step_in_stage: int = 0
    global_step: int = 0
    events_done: bool = False
    lr_scale: float = 1.0
    failures: int = 0
    rollbacks: int = 0
    replaying: bool = False
    prev_loss: float | None = None
    loss_scale: float | None = None
    status: str = "ok"
    history: dict[str, list] = field(default_factory=dict)
    eval_history: dict[str, list] = field(default_factory=dict)
    stage_records: list[dict] = field(default_factory=list)
    grid_events: list[dict] = field(default_factory=list)
    resumed_from: str | None = None

    def params(self) -> list[nn.Parameter]:
        """The optimised tensors: model parameters, then the unknowns."""
        return list(self.model.parameters()) + list(self.unknowns.values())

    def snapshot(self) -> Snapshot:
        """An in-memory copy to :meth:`restore` later."""
        return Snapshot(
            model={k: v.detach().clone() if isinstance(v, Tensor) else copy.deepcopy(v)
                   for k, v in self.model.state_dict().items()},
            optimizer=None if self.optimizer is None else copy_optimizer_state(self.optimizer),
            unknowns={k: v.detach().clone() for k, v in self.unknowns.items()},
            points=self.points, generator=self.generator.get_state(),
            weights=copy.deepcopy(self.weights.state_dict()),
            history={k: len(v) for k, v in self.history.items()},
            eval_history={k: len(v) for k, v in self.eval_history.items()},
            counters=(self.step_in_stage, self.global_step, self.prev_loss, self.events_done),
            n_grid_events=len(self.grid_events))

    def restore(self, snap: Snapshot, keep_optimizer: bool = True) -> bool:
        """Go back to ``snap``.

        Returns:
            Whether the optimiser state was restored too; ``False`` when the caller must
            build a fresh optimiser (``keep_optimizer`` false, or none was saved).
        """
        self.model.load_state_dict(snap.model)
        with torch.no_grad():
            for k, v in snap.unknowns.items():
                self.unknowns[k].copy_(v)
        self.points = snap.points
        self.generator.set_state(snap.generator)
        self.weights.load_state_dict(copy.deepcopy(snap.weights))
        for hist, lengths in ((self.history, snap.history),
                              (self.eval_history, snap.eval_history)):
            for k in list(hist):
                del hist[k][lengths.get(k, 0):]
        self.step_in_stage, self.global_step, self.prev_loss, self.events_done = snap.counters
        del self.grid_events[snap.n_grid_events:]
        if self.optimizer is None or not keep_optimizer or snap.optimizer is None:
            return False
        self.optimizer.load_state_dict(copy.deepcopy(snap.optimizer))
        return True

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint stores of the run (on the CPU)."""
        return {
            "model": {k: v.detach().cpu() if isinstance(v, Tensor) else v
                      for k, v in self.model.state_dict().items()},
            "optimizer": None if self.optimizer is None else self.optimizer.state_dict(),
            "carried_memory": self.carried_memory, "memory_continued": self.memory_continued,
            **{k: getattr(self, k) for k in COUNTERS},
            "points": self.points.state_dict(), "generator": self.generator.get_state(),
            "history": self.history, "eval_history": self.eval_history,
            "weights": self.weights.state_dict(),
            "unknowns": {k: v.detach().cpu() for k, v in self.unknowns.items()},
            "stage_records": self.stage_records, "grid_events": self.grid_events,
            "loss_scale": self.loss_scale, **self.clock.state_dict(),
        }

    def load_state_dict(self, data: dict[str, Any], dtype: torch.dtype,
                        device: torch.device) -> dict | None:
        """Continue from a checkpoint's :meth:`state_dict` (already checked for
        compatibility).

        Returns:
            The saved optimiser state, for the optimiser the caller builds for the stage
            (``None`` when there was none).
        """
        self.model.load_state_dict(data["model"])
        self.model.to(device)
        with torch.no_grad():
            for k, v in data["unknowns"].items():
                self.unknowns[k].copy_(v)
        self.points = TrainingPoints.from_state(data["points"], dtype, device)
        self.generator.set_state(data["generator"])
        self.weights.load_state_dict(data["weights"])
        self.history = {k: list(v) for k, v in data["history"].items()}
        self.eval_history = {k: list(v) for k, v in data["eval_history"].items()}
        for key in COUNTERS:
            setattr(self, key, data[key])
        self.stage_records = list(data["stage_records"])
        self.grid_events = list(data["grid_events"])
        self.loss_scale = data.get("loss_scale")  # absent in earlier checkpoints
        self.carried_memory = data.get("carried_memory")
        self.memory_continued = bool(data.get("memory_continued", False))
        self.clock.load_state_dict(data)
        self.resumed_from = data.get("path")
        return data["optimizer"]
