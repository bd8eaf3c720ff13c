"""Solver configurations of the evidence benchmarks, at a *matched budget*.

A KAN and an MLP of one benchmark share everything but the model: the same collocation and
boundary points (same sampler, same seed), the same optimiser stages with the same step
counts, the same loss weights, dtype (float64) and derivative engine (forward jets). The KAN's
stages additionally carry its grid events (extension G -> G', knots moved to the
activations), which change the model between stages, not the number of steps.

Two budgets: ``quick`` (a smoke check of the whole pipeline, minutes on 2 CPU cores) and
``full`` (the committed numbers). Everything here is a plain TOML-like ``dict``, turned into a
:class:`~kanpde.training.config.SolverConfig` by
:func:`kanpde.training.config.config_from_dict` when a job runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Schedule:
    """Points and optimiser steps of one benchmark at one budget.

    Attributes:
        interior: interior collocation points.
        boundary: points per boundary/initial condition.
        adam_steps: steps of the Adam warm-up stage (learning rate 1e-2).
        lbfgs_steps: L-BFGS iterations of each following stage.
        grids: KAN grid size per L-BFGS stage (the first is the initial grid; the Adam stage
            uses it too); MLPs run the same stages without grid events.
        residual_weight: weight of the PDE residual terms (the boundary terms weigh 1).
    """

    interior: int
    boundary: int
    adam_steps: int
    lbfgs_steps: int
    grids: tuple[int, ...]
    residual_weight: float = 0.01

    @property
    def steps(self) -> int:
        return self.adam_steps + self.lbfgs_steps * len(self.grids)


SCHEDULES: dict[str, dict[str, Schedule]] = {
    # the KAN-vs-MLP suite: every problem, [d, 10, m] KAN vs [d, 32, 32, m] tanh MLP
    "suite": {"quick": Schedule(300, 60, 60, 30, (3, 5)),
              "full": Schedule(1500, 300, 300, 300, (5, 10, 20))},
    # the matched views: a small sweep of sizes per problem
    "matched": {"quick": Schedule(300, 60, 40, 20, (3, 5)),
                "full": Schedule(600, 150, 200, 200, (3, 5, 10, 20))},
    # scaling laws: error against size, KAN by grid extension, MLP by width and depth
    "scaling": {"quick": Schedule(400, 80, 40, 30, (3, 5, 10)),
                "full": Schedule(2000, 400, 200, 250, (3, 5, 10, 20, 40))},
}

SUITE_KAN_WIDTHS = (10,)
SUITE_MLP_WIDTHS = (32, 32)
MATCHED_KAN_WIDTHS = ((5,), (10,))
MATCHED_MLP_WIDTHS = ((8, 8), (16, 16), (32, 32), (64, 64))
SCALING_KAN_WIDTHS = ((5,), (10,))
SCALING_MLP_WIDTHS = ((8, 8), (16, 16), (32, 32), (64, 64), (128, 128),
                      (16, 16, 16, 16), (32, 32, 32, 32), (64, 64, 64, 64))


def _base(schedule: Schedule, model: dict[str, Any]) -> dict[str, Any]:
    return {
        "engine": "jet", "dtype": "float64", "seed": 0,
        "model": model,
        "sampling": {"interior": schedule.interior, "boundary": schedule.boundary,
                     "method": "sobol"},
        "weighting": {"kind": "fixed", "weights": {"residuals": schedule.residual_weight}},
        "evaluation": {"every": max(schedule.steps // 10, 10)},
        "checkpoint": {"every": 500},
    }


SECOND_ORDER_STEPS: dict[str, dict[str, int]] = {
    # iterations per post-Adam stage of the suite's second-order rows (one Jacobian or one
    # CG solve each: far costlier than an L-BFGS iteration, so far fewer)
    "quick": {"lm": 5, "gauss_newton": 5},
    "full": {"lm": 40, "gauss_newton": 80},
}
"""Iterations per stage of the Levenberg-Marquardt and Gauss-Newton rows of the suite."""


def _second(optimizer: str, steps: int) -> dict[str, Any]:
    stage: dict[str, Any] = {"optimizer": optimizer, "steps": steps}
    if optimizer in ("lm", "gauss_newton"):
        stage["tolerance_change"] = 1e-10  # relative: a stage ends at its error floor
    return stage


def kan_solver(schedule: Schedule, widths: Sequence[int], *, spline_order: int = 3,
               grid_eps: float = 1.0, optimizer: str = "lbfgs",
               steps: int | None = None) -> dict[str, Any]:
    """A KAN ``[d, *widths, m]`` trained by ``schedule``: Adam, then one ``optimizer`` stage
    (L-BFGS; or ``"lm"``, ``"gauss_newton"`` for ``steps`` iterations) per grid size, the grid
    extended (nested, exact transfer) and moved to the activations (``grid_eps`` = 1: uniform
    over their range) at the start of each."""
    model = {"kind": "kan", "widths": list(widths), "grid_size": schedule.grids[0],
             "spline_order": spline_order, "grid_range": [-1.0, 1.0],
             "normalize_inputs": True}
    solver = _base(schedule, model)
    stages: list[dict[str, Any]] = [{"optimizer": "adam", "steps": schedule.adam_steps,
                                     "lr": 0.01}]
    for i, grid in enumerate(schedule.grids):
        stage: dict[str, Any] = {**_second(optimizer, steps or schedule.lbfgs_steps),
                                 "grid_update": True, "grid_eps": grid_eps}
        if i > 0:
            stage["grid_extend"] = grid
        stages.append(stage)
    solver["stages"] = stages
    return solver


def mlp_solver(schedule: Schedule, widths: Sequence[int], *, activation: str = "tanh",
               optimizer: str = "lbfgs", steps: int | None = None) -> dict[str, Any]:
    """An MLP ``[d, *widths, m]`` on the same points and stages as :func:`kan_solver`."""
    model = {"kind": "mlp", "widths": list(widths), "activation": activation,
             "normalize_inputs": True}
    solver = _base(schedule, model)
    solver["stages"] = ([{"optimizer": "adam", "steps": schedule.adam_steps, "lr": 0.01}]
                        + [_second(optimizer, steps or schedule.lbfgs_steps)
                           for _ in schedule.grids])
    return solver


def kan_label(widths: Sequence[int], grid: int | None = None) -> str:
    """``kan[10]`` or, for a stage of it, ``kan[10]G20``."""
    return f"kan[{','.join(map(str, widths))}]" + ("" if grid is None else f"G{grid}")


def mlp_label(widths: Sequence[int]) -> str:
    """``mlp[32,32]``."""
    return f"mlp[{','.join(map(str, widths))}]"


# ------------------------------------------------------------------ external recipes ---

DEEPXDE_RECIPE: dict[str, dict[str, Any]] = {
    # DeepXDE's ordinary PINN recipe (its Poisson examples): a Glorot-normal tanh MLP, the
    # PDE term weighted 0.01 against the conditions, Adam (lr 1e-3) then L-BFGS with
    # DeepXDE's options (history 100, gtol 1e-8, ftol 0, strong-Wolfe line search)
    "full": {"widths": [20, 20], "activation": "tanh", "interior": 2601, "boundary": 204,
             "residual_weight": 0.01, "adam_steps": 3000, "adam_lr": 1e-3,
             "lbfgs_steps": 1000, "history_size": 100, "eval_every": 100},
    "quick": {"widths": [20, 20], "activation": "tanh", "interior": 400, "boundary": 80,
              "residual_weight": 0.01, "adam_steps": 200, "adam_lr": 1e-3,
              "lbfgs_steps": 60, "history_size": 100, "eval_every": 20},
}
"""DeepXDE's recipe per budget (the anchor in :mod:`kanpde.cli.bench.anchor_deepxde`)."""

PYKAN_RECIPE: dict[str, dict[str, Any]] = {
    # pykan's PDE tutorial ("Example 6: Solving PDE") at the KAN paper's width: KAN [d, 10, m],
    # cubic splines, G 5 -> 10 -> 20, per grid 100 L-BFGS steps of 20 iterations (history
    # 10), knots moved to the activations every 5 steps during the first 50 (grid_eps 1 on
    # the first grid, pykan's default 0.02 on the refined ones), residual weight 0.01
    "full": {"widths": [10], "grids": [5, 10, 20], "k": 3, "grid_eps": 1.0,
             "noise_scale": 0.25, "alpha": 0.01, "steps": 100, "iterations_per_step": 20,
             "history_size": 10, "update_every": 5, "update_until": 50,
             "interior": 2601, "boundary": 204, "eval_every": 100},
    "quick": {"widths": [10], "grids": [5, 10], "k": 3, "grid_eps": 1.0,
              "noise_scale": 0.25, "alpha": 0.01, "steps": 4, "iterations_per_step": 20,
              "history_size": 10, "update_every": 2, "update_until": 2,
              "interior": 300, "boundary": 60, "eval_every": 20},
}
"""pykan's PDE recipe per budget (the anchor in :mod:`kanpde.cli.bench.anchor_pykan`)."""


def deepxde_solver(recipe: dict[str, Any]) -> dict[str, Any]:
    """DeepXDE's recipe as a kanpde solver: the same network, loss weights, optimiser stages
    and L-BFGS options; no input normalisation (DeepXDE has none)."""
    return {
        "engine": "jet", "dtype": "float64", "seed": 0,
        "model": {"kind": "mlp", "widths": list(recipe["widths"]),
                  "activation": recipe["activation"], "normalize_inputs": False},
        "sampling": {"interior": recipe["interior"], "boundary": recipe["boundary"],
                     "method": "sobol"},
        "weighting": {"kind": "fixed", "weights": {"residuals": recipe["residual_weight"]}},
        "stages": [{"optimizer": "adam", "steps": recipe["adam_steps"],
                    "lr": recipe["adam_lr"]},
                   {"optimizer": "lbfgs", "steps": recipe["lbfgs_steps"],
                    "history_size": recipe["history_size"], "tolerance_grad": 1e-8,
                    "tolerance_change": 0.0}],
        "evaluation": {"every": recipe["eval_every"]}, "checkpoint": {"every": 1000},
    }


def pykan_solver(recipe: dict[str, Any]) -> dict[str, Any]:
    """pykan's PDE recipe as a kanpde solver. pykan moves the knots inside its L-BFGS loop;
    kanpde moves them between stages, so each grid is ``update_until / update_every`` stages
    of ``update_every * iterations_per_step`` iterations that each start with a grid update,
    then one stage for the remaining iterations (the same iterations, updates at the same
    iteration counts). The L-BFGS memory carries over the updates within one grid
    (``keep_memory``), as pykan's one optimiser per grid does, and starts afresh on each new
    grid. The updates follow pykan's rule (knots moved, the function refitted by least
    squares, never rolled back), not kanpde's function-preserving default."""
    per_update = recipe["update_every"] * recipe["iterations_per_step"]
    rest = (recipe["steps"] - recipe["update_until"]) * recipe["iterations_per_step"]
    stages: list[dict[str, Any]] = []
    for g_index, grid in enumerate(recipe["grids"]):
        eps = recipe["grid_eps"] if g_index == 0 else 0.02
        for u in range(recipe["update_until"] // recipe["update_every"]):
            stage: dict[str, Any] = {"optimizer": "lbfgs", "steps": per_update,
                                     "history_size": recipe["history_size"],
                                     "tolerance_grad": 0.0, "tolerance_change": 0.0,
                                     "grid_update": True, "grid_eps": eps,
                                     # pykan's update: knots move, nothing rolled back
                                     "grid_update_tol": 1.0, "grid_update_max_ratio": 1e300}
            if g_index > 0 and u == 0:
                stage["grid_extend"] = grid
            if u > 0:  # pykan's optimiser lives through the updates of one grid
                stage["keep_memory"] = True
            stages.append(stage)
        if rest > 0:
            stages.append({"optimizer": "lbfgs", "steps": rest,
                           "history_size": recipe["history_size"], "tolerance_grad": 0.0,
                           "tolerance_change": 0.0, "keep_memory": True})
    return {
        "engine": "jet", "dtype": "float64", "seed": 0,
        "model": {"kind": "kan", "widths": list(recipe["widths"]),
                  "grid_size": recipe["grids"][0], "spline_order": recipe["k"],
                  "grid_range": [-1.0, 1.0], "noise_scale": recipe["noise_scale"],
                  "normalize_inputs": False},
        "sampling": {"interior": recipe["interior"], "boundary": recipe["boundary"],
                     "method": "sobol"},
        "weighting": {"kind": "fixed", "weights": {"residuals": recipe["alpha"]}},
        "stages": stages,
        "evaluation": {"every": recipe["eval_every"]}, "checkpoint": {"every": 1000},
    }


# ------------------------------------------------------------------ tuning search spaces ---
# Each knob: ("log", lo, hi) a log-uniform float, ("int", lo, hi) an integer, ("choice",
# [...]) one of the listed values. "both" applies to every family; each family adds the
# knobs its practitioners turn. A trial's time (--time-per-trial) is split between an Adam
# stage (adam_fraction of it) and the following stage(s); the step counts are caps only.
# The following stages are L-BFGS or Levenberg-Marquardt ("lm"; above the dense limit of
# 5000 parameters its matrix-free form, Gauss-Newton, takes its place).

SEARCH_SPACES: dict[str, dict[str, dict[str, tuple]]] = {
    "default": {
        "both": {
            "adam_lr": ("log", 1e-4, 3e-2),
            "schedule": ("choice", ["constant", "exponential"]),
            "adam_fraction": ("choice", [0.0, 0.1, 0.25, 0.5, 0.75]),
            "second_stage": ("choice", ["lbfgs", "lm"]),
            "residual_weight": ("log", 1e-4, 1.0),
            "condition_weight": ("log", 0.1, 10.0),
            "interior": ("choice", [500, 1000, 2000, 4000]),
        },
        "mlp": {
            "depth": ("int", 1, 5),
            "width": ("choice", [16, 32, 64, 100, 128]),
            "activation": ("choice", ["tanh", "sin", "silu"]),
        },
        "kan": {
            "depth": ("int", 1, 2),
            "width": ("choice", [5, 8, 10, 16]),
            "grid_size": ("choice", [3, 5, 10]),
            "extensions": ("int", 0, 3),
            "grid_eps": ("choice", [0.02, 0.5, 1.0]),
            "spline_order": ("choice", [2, 3, 4]),
        },
    },
    # smoke tests: small models and few points (seconds per trial)
    "tiny": {
        "both": {
            "adam_lr": ("log", 1e-3, 3e-2),
            "schedule": ("choice", ["constant", "exponential"]),
            "adam_fraction": ("choice", [0.25, 0.5]),
            "second_stage": ("choice", ["lbfgs"]),
            "residual_weight": ("log", 1e-3, 1e-1),
            "condition_weight": ("log", 0.5, 2.0),
            "interior": ("choice", [100, 200]),
        },
        "mlp": {"depth": ("int", 1, 2), "width": ("choice", [8, 16]),
                "activation": ("choice", ["tanh", "sin"])},
        "kan": {"depth": ("int", 1, 1), "width": ("choice", [3, 5]),
                "grid_size": ("choice", [3, 5]), "extensions": ("int", 0, 1),
                "grid_eps": ("choice", [1.0]), "spline_order": ("choice", [3])},
    },
}
"""Hyperparameter search spaces of ``kanpde tune`` (see :mod:`kanpde.tune.space`)."""


TUNE_BUDGETS: dict[str, dict[str, Any]] = {
    # every family gets the same trials and the same time per trial; the benchmarks count
    # process CPU time, so trials made while other jobs load the machine get the same work
    "quick": {"trials": 2, "time_per_trial": 3.0, "space": "tiny", "clock": "cpu"},
    "full": {"trials": 5, "time_per_trial": 30.0, "space": "default", "clock": "cpu"},
}
"""Tuning effort of the evidence benchmarks per budget (see :mod:`kanpde.cli.bench.tuned`)."""

MATCHED_TUNING: dict[str, dict[str, Any]] = {
    # kanpde bench matched: each family tuned under each parameter cap, same effort
    "quick": {"caps": (150,), "trials": 2, "time_per_trial": 3.0},
    "full": {"caps": (200, 600, 2000), "trials": 4, "time_per_trial": 20.0},
}
"""Parameter caps and tuning effort of the matched views (see :mod:`kanpde.cli.bench.matched`)."""


__all__ = ["SECOND_ORDER_STEPS", "SEARCH_SPACES", "TUNE_BUDGETS", "MATCHED_TUNING",
           "Schedule", "SCHEDULES", "kan_solver", "mlp_solver", "kan_label", "mlp_label",
           "DEEPXDE_RECIPE", "PYKAN_RECIPE", "deepxde_solver", "pykan_solver"]
