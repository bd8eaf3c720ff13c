"""Search spaces of ``kanpde tune``: optuna trial -> solver configuration.

The knobs and their ranges are data (:data:`kanpde.tune.budgets.SEARCH_SPACES`); this module turns
one set of values into a TOML-like solver dict that :func:`kanpde.training.config.config_from_dict`
accepts. Both families share the training knobs: the Adam learning rate and schedule, the split of
the trial's time between Adam and the following stage(s), the residual and condition loss weights
and the number of collocation points. The MLP adds depth, width and activation; the KAN adds depth
and width, the grid schedule (initial ``G`` and the number of doublings ``G -> 2G``, one stage each,
the knots moved to the activations before each) with its ``grid_eps``, and the spline order.

A trial of ``T`` seconds gets an Adam stage capped at ``adam_fraction * T`` and, after it,
L-BFGS stage(s) sharing the rest; step counts are generous caps, so time decides. The
learning-rate schedules are constant or exponential (a decade every 5000 steps): schedules
that need the stage's length in advance (cosine) do not fit a time cap. The parameter count
of a configuration is that of its final model (after grid extensions).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from typing import Any

from kanpde.tune.budgets import SEARCH_SPACES

FAMILIES = ("kan", "mlp")
MAX_STEPS = 1_000_000
"""Step cap of a time-capped stage (the time cap ends it first)."""


def space(name: str, family: str) -> dict[str, tuple]:
    """The knobs of ``family`` in the search space ``name`` (shared knobs first).

    Raises:
        ValueError: unknown space or family (one line naming both choices).
    """
    if name not in SEARCH_SPACES:
        raise ValueError(f"--space: unknown search space {name!r}; choose one of "
                         f"{', '.join(SEARCH_SPACES)}")
    if family not in FAMILIES:
        raise ValueError(f"--family: unknown model family {family!r}; choose one of "
                         f"{', '.join(FAMILIES)}")
    s = SEARCH_SPACES[name]
    return {**s["both"], **s[family]}


def suggest(trial: Any, knobs: Mapping[str, tuple]) -> dict[str, Any]:
    """Draw one value per knob from an optuna ``trial``."""
    values: dict[str, Any] = {}
    for key, (kind, *args) in knobs.items():
        if kind == "log":
            values[key] = trial.suggest_float(key, args[0], args[1], log=True)
        elif kind == "int":
            values[key] = trial.suggest_int(key, args[0], args[1])
        elif kind == "choice":
            values[key] = trial.suggest_categorical(key, list(args[0]))
        else:
            raise ValueError(f"search space knob {key!r}: unknown kind {kind!r}")
    if "architecture" in values:  # a capped study's one architecture knob
        values.update(decode_architecture(values.pop("architecture")))
    return values


ARCHITECTURE = ("depth", "width", "grid_size", "extensions", "spline_order")
"""The knobs that set a model's parameter count."""


def architectures(knobs: Mapping[str, tuple]) -> list[dict[str, Any]]:
    """Every combination of the :data:`ARCHITECTURE` knobs of a space (``int`` ranges and
    ``choice`` lists), as knob values."""
    names = [k for k in ARCHITECTURE if k in knobs]
    options = []
    for key in names:
        kind, *args = knobs[key]
        if kind == "int":
            options.append(list(range(int(args[0]), int(args[1]) + 1)))
        elif kind == "choice":
            options.append(list(args[0]))
        else:
            raise ValueError(f"search space knob {key!r}: a {kind!r} knob cannot set the "
                             "architecture (use int or choice)")
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*options)]


def restrict_architectures(knobs: Mapping[str, tuple], allowed: list[dict[str, Any]]
                           ) -> dict[str, tuple]:
    """``knobs`` with its architecture knobs replaced by one ``"architecture"`` choice among
    ``allowed`` (those under a parameter cap): a capped study draws only models it may
    train, uniformly over them, instead of discarding the draws above the cap.
    :func:`suggest` turns the choice back into the knob values."""
    out = {k: v for k, v in knobs.items() if k not in ARCHITECTURE}
    out["architecture"] = ("choice", [", ".join(f"{k}={v}" for k, v in a.items())
                                      for a in allowed])
    return out


def decode_architecture(text: str) -> dict[str, int]:
    """``"depth=2, width=16"`` -> ``{"depth": 2, "width": 16}``."""
    return {k.strip(): int(v) for k, v in (part.split("=") for part in text.split(","))}


def smallest(knobs: Mapping[str, tuple]) -> dict[str, Any]:
    """The values giving the smallest model of a space (lowest depth, width, grid)."""
    out: dict[str, Any] = {}
    for key, (kind, *args) in knobs.items():
        if kind == "choice":
            opts = list(args[0])
            out[key] = min(opts) if all(isinstance(o, int | float) for o in opts) else opts[0]
        else:
            out[key] = args[0]
    return out


def final_grid(values: Mapping[str, Any]) -> int:
    """The KAN grid size after the grid extensions of ``values``."""
    return int(values["grid_size"]) * 2 ** int(values.get("extensions", 0))


def solver(family: str, values: Mapping[str, Any], time_s: float, seed: int,
           name: str = "tuned", clock: str = "wall") -> dict[str, Any]:
    """The solver dict of one set of knob values, for a trial of ``time_s`` seconds of the
    ``clock`` (``"wall"`` or ``"cpu"``, see ``time_clock`` of
    :class:`~kanpde.training.config.SolverConfig`)."""
    interior = int(values["interior"])
    if family == "mlp":
        model = {"kind": "mlp", "widths": [int(values["width"])] * int(values["depth"]),
                 "activation": values["activation"], "normalize_inputs": True}
    else:
        model = {"kind": "kan", "widths": [int(values["width"])] * int(values["depth"]),
                 "grid_size": int(values["grid_size"]),
                 "spline_order": int(values["spline_order"]), "grid_range": [-1.0, 1.0],
                 "normalize_inputs": True}
    frac = float(values["adam_fraction"])
    stages: list[dict[str, Any]] = []
    if frac > 0:
        adam: dict[str, Any] = {"optimizer": "adam", "steps": MAX_STEPS,
                                "lr": float(values["adam_lr"]), "schedule": values["schedule"],
                                "max_time_s": frac * time_s}
        if values["schedule"] == "exponential":  # a decade of decay every 5000 steps
            adam["gamma"] = 10 ** (-1 / 5000)
        stages.append(adam)
    n_second = 1 + int(values.get("extensions", 0)) if family == "kan" else 1
    for i in range(n_second):
        stage: dict[str, Any] = {"optimizer": values["second_stage"], "steps": MAX_STEPS,
                                 "max_time_s": (1 - frac) * time_s / n_second}
        if family == "kan":
            stage.update(grid_update=True, grid_eps=float(values["grid_eps"]))
            if i > 0:
                stage["grid_extend"] = int(values["grid_size"]) * 2**i
        stages.append(stage)
    cond = float(values["condition_weight"])
    return {
        "name": name, "engine": "jet", "dtype": "float64", "seed": int(seed),
        "max_time_s": time_s * 1.05 + 5.0, "time_clock": clock,
        "model": model,
        "sampling": {"interior": interior, "boundary": max(interior // 5, 20),
                     "method": "sobol"},
        "weighting": {"kind": "fixed",
                      "weights": {"residuals": float(values["residual_weight"]),
                                  "conditions": cond}},
        "stages": stages,
        "evaluation": {"every": 0},
        "checkpoint": {"every": 0},
    }


def reproducible(config: Mapping[str, Any], stages_run: list[Mapping[str, Any]]) -> dict:
    """A trial's solver with the steps its stages actually ran instead of time caps, so that
    ``kanpde solve`` with it repeats the trial's training (a stage that ran no step keeps one:
    its grid events still happen)."""
    out = {k: v for k, v in config.items() if k not in ("max_time_s", "time_clock")}
    stages = []
    for st, rec in zip(config["stages"], stages_run, strict=False):
        st = {k: v for k, v in st.items() if k != "max_time_s"}
        st["steps"] = max(int(rec.get("steps_run", 0)), 1)
        stages.append(st)
    out["stages"] = stages or config["stages"]
    out["evaluation"] = {"every": max(sum(s["steps"] for s in stages) // 20, 1)}
    return out


def is_finite_number(v: Any) -> bool:
    """Whether ``v`` is a finite int or float."""
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


__all__ = ["FAMILIES", "space", "suggest", "smallest", "final_grid", "solver",
           "reproducible"]
