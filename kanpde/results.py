"""The value a solve returns, and its files.

A :class:`Result` holds everything a finished (or stopped) run produced: the summary
numbers, the histories, the fields on the evaluation set, the trained model's state and
the specification needed to rebuild it, the resolved configuration and the versions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: keys every summary has (the contract of ``summary.json``)
SUMMARY_KEYS = (
    "problem", "solver", "model", "n_params", "l2_rel", "max_abs_err", "mse", "steps",
    "wall_time_s", "final_loss", "status", "engine", "dtype", "device", "seed",
)


@dataclass
class Result:
    """Everything a run produced.

    Attributes:
        summary: the scalar record, at least :data:`SUMMARY_KEYS` (``status`` is ``"ok"``,
            ``"diverged"``, ``"interrupted"`` or ``"max_time"``), plus e.g. ``h1_rel``,
            ``unknowns``, per-stage notes (``stages``: list of dicts with ``optimizer``,
            ``steps_planned``, ``steps_run``, ``stopped`` = ``"budget"|"converged"|...``).
        history: named 1-D arrays of equal length per group: ``step``, ``loss``,
            ``loss/<term>``, ``lr``, ``time_s``; and the evaluation history ``eval_step``,
            ``eval_l2_rel``, ``eval_max_abs_err``.
        points: ``(M, d)`` evaluation points.
        prediction: ``(M, m)`` model values there.
        reference: ``(M, m)`` exact or reference values there.
        model_spec: how to rebuild the model (``kind``, widths, grid sizes, ...).
        model_state: the model's ``state_dict`` as numpy arrays.
        config: the resolved solver configuration (plain dict, TOML-like).
        problem_path: the problem file the run used.
        versions: ``kanpde``, ``torch``, ``python``, ... versions.
    """

    summary: dict[str, Any]
    history: dict[str, np.ndarray] = field(default_factory=dict)
    points: np.ndarray | None = None
    prediction: np.ndarray | None = None
    reference: np.ndarray | None = None
    model_spec: dict[str, Any] = field(default_factory=dict)
    model_state: dict[str, np.ndarray] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    problem_path: str = ""
    versions: dict[str, str] = field(default_factory=dict)

    @property
    def error(self) -> np.ndarray | None:
        """``(M, m)`` pointwise error ``prediction - reference``."""
        if self.prediction is None or self.reference is None:
            return None
        return self.prediction - self.reference
