"""Tuned baselines for the evidence benchmarks: the same search effort for every family.

:func:`tuned_jobs` runs (or continues) a ``kanpde tune`` study for one (problem, family)
in the benchmark's work directory, with the trial count, time cap and search space of the
benchmark's budget (:data:`kanpde.tune.budgets.TUNE_BUDGETS`), and returns the jobs that
train the selected configuration with every requested seed. Both families get the same
number of trials and the same time per trial; selection is by the validation loss, never by
the error (see :mod:`kanpde.tune`).
"""

from __future__ import annotations

import sys
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from kanpde.cli.bench.runner import Job
from kanpde.tune import budgets


def study_dir(work: Path, problem: str, label: str) -> Path:
    """Where the study of one (problem, label) lives."""
    return work / "tune" / problem / label


def tuned_solver(problem_name: str, problem_path: Path, family: str, budget: str,
                 work: Path, *, label: str | None = None, fixed: Mapping[str, Any] | None = None,
                 max_params: int | None = None, time_per_trial: float | None = None,
                 trials: int | None = None, quiet: bool = True
                 ) -> tuple[dict[str, Any], dict[str, Any]]:
    """The selected solver dict of a (resumed) study, and a description of the study.

    Args:
        problem_name, problem_path: the problem.
        family: ``"kan"`` or ``"mlp"``.
        budget: ``"quick"`` or ``"full"`` (:data:`kanpde.tune.budgets.TUNE_BUDGETS`).
        work: the benchmark's work directory.
        label: the study's name (default ``family``).
        fixed: knobs held at given values (e.g. an architecture).
        max_params: parameter cap.
        time_per_trial: overrides the budget's time cap.
        trials: overrides the budget's number of trials.
        quiet: no per-trial lines on stderr.
    """
    from kanpde.problem import load_problem
    from kanpde.tune import tune

    tb = budgets.TUNE_BUDGETS[budget]
    label = label or family
    out = study_dir(work, problem_name, label)
    seconds = float(time_per_trial or tb["time_per_trial"])
    n_trials = int(trials or tb["trials"])

    def log(line: str) -> None:
        if not quiet:
            print(f"{problem_name} {label}: {line}", file=sys.stderr, flush=True)

    res = tune(load_problem(problem_path), family, n_trials, out,
               time_per_trial=seconds, max_params=max_params, seed=0,
               search_space=tb["space"], fixed=fixed,
               clock=tb.get("clock", "wall"), log=log)
    if res.interrupted:
        raise KeyboardInterrupt
    if res.best is None:
        raise RuntimeError(f"tuning {family} on {problem_name}: no trial finished "
                           f"(see {out / 'trials.csv'})")
    with (out / "best.toml").open("rb") as fh:
        solver = tomllib.load(fh)
    info = {"study": str(out), "trials": n_trials, "time_per_trial_s": seconds,
            "clock": tb.get("clock", "wall"),
            "space": tb["space"], "fixed": dict(fixed or {}), "max_params": max_params,
            "selected_trial": res.best["trial"],
            "validation_loss": res.best["validation_loss"], "params": res.best["params"]}
    return solver, info


def tuned_jobs(problem_name: str, problem_path: Path, family: str, budget: str, work: Path,
               seeds: Sequence[int], *, label: str | None = None,
               fixed: Mapping[str, Any] | None = None, max_params: int | None = None,
               time_per_trial: float | None = None, trials: int | None = None,
               tags: Mapping[str, Any] | None = None, quiet: bool = True) -> list[Job]:
    """Jobs training the selected configuration of a study with each seed (the study is
    run first when it is not finished)."""
    label = label or f"{family}-tuned"
    solver, info = tuned_solver(problem_name, problem_path, family, budget, work,
                                label=label, fixed=fixed, max_params=max_params,
                                time_per_trial=time_per_trial, trials=trials, quiet=quiet)
    return [Job(problem_name, label, solver, s,
                {"family": family, "tuned": True, "tuning": info, **dict(tags or {})})
            for s in seeds]


__all__ = ["study_dir", "tuned_solver", "tuned_jobs"]
