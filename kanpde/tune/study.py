"""Equal-effort hyperparameter search per model family (optuna TPE), selected by validation.

:func:`tune` runs a seeded optuna study (TPE sampler; Bergstra et al., NeurIPS 2011) over a
family's search space (:mod:`kanpde.tune.space`). Every trial trains one configuration with
:func:`kanpde.training.solve.solve` within the same wall-time cap and is scored by its PINN loss on
the study's validation points (:mod:`kanpde.tune.validation`); the error against the
exact or reference solution is recorded beside it but never used to select. A configuration
whose final model has more parameters than ``max_params`` is not trained (it is recorded as
skipped and does not count as a trial). A trial that diverges or fails is recorded with its
reason and the search goes on.

The study lives in ``OUT/study.db`` (SQLite), so an interrupted search continues when the
same command is run again; a study made for another problem, family or search space is
refused and left untouched. ``OUT`` receives:

* ``trials.csv``: one row per trial: number, state, reason, parameters, validation loss,
  error (``l2_rel``, ``mse``), wall and CPU time, steps, and the knob values;
* ``best.toml``: the selected configuration as a solver file whose stages run the steps
  the trial ran (no time caps), so ``kanpde solve PROBLEM --solver OUT/best.toml`` repeats
  its training;
* ``tune.json``: the study's description, the search space and the selected trial;
* ``trials/NNNN/``: each trial's run directory (``summary.json``, ``result.h5``).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kanpde.io.atomic import atomic_write_text
from kanpde.training.config import SECOND_ORDER_DEFAULTS
from kanpde.tune import space as spaces
from kanpde.tune.validation import validation_loss, validation_points

STUDY_NAME = "kanpde-tune"
LM_DENSE_LIMIT = int(SECOND_ORDER_DEFAULTS["max_params"])
"""Above this many parameters a trial's ``lm`` stages become ``gauss_newton`` (the dense
``J^T J`` default limit)."""
SKIP_LIMIT = 20
"""A study gives up after ``SKIP_LIMIT * trials`` configurations above the parameter cap."""


class TuneError(ValueError):
    """Bad tuning input (one line naming the flag or the directory)."""


@dataclass(frozen=True)
class TuneResult:
    """What :func:`tune` returns: the selected trial and where its files are."""

    best: dict[str, Any]
    trials: list[dict[str, Any]]
    out: Path
    interrupted: bool = False


def _n_params(problem, config) -> int:
    from kanpde.nn.parts import trainable_parameters
    from kanpde.training.model import build_model

    grid = None
    if config.model.kind == "kan":
        grid = next((s.grid_extend for s in reversed(config.stages)
                     if s.grid_extend is not None), config.model.grid_size)
    return trainable_parameters(build_model(problem, config.model, "float64", "cpu",
                                            config.seed, grid_size=grid,
                                            source=config.source))


def _check_study(study, identity: Mapping[str, Any], out: Path) -> None:
    attrs = study.user_attrs
    if not attrs:
        for k, v in identity.items():
            study.set_user_attr(k, v)
        return
    differ = [k for k, v in identity.items() if attrs.get(k) != v]
    if differ:
        what = ", ".join(f"{k} {attrs.get(k)!r} (not {identity[k]!r})" for k in differ)
        raise TuneError(f"--out {out}: holds a study with another {what}; choose another "
                        "--out (the study there is left untouched)")


def tune(problem, family: str, trials: int, out: str | Path, *,
         time_per_trial: float = 60.0, max_params: int | None = None, seed: int = 0,
         search_space: str = "default", fixed: Mapping[str, Any] | None = None, clock: str = "wall",
         log: Callable[[str], None] | None = None) -> TuneResult:
    """Search ``family``'s space on ``problem`` for ``trials`` trained trials.

    Args:
        problem: the :class:`~kanpde.problem.Problem`.
        family: ``"kan"`` or ``"mlp"``.
        trials: number of trained trials (skipped over-cap configurations not counted).
        out: the study directory (created; resumed when it holds this study).
        time_per_trial: time cap of each trial in seconds (of ``clock``).
        max_params: parameter cap of a configuration's final model (``None``: none); a
            capped study draws only among the architectures under it (listed in
            ``tune.json`` as ``architectures_under_cap``).
        seed: seed of the sampler, of every trial's training and (offset) of the
            validation points.
        search_space: ``"default"`` or ``"tiny"`` (smoke tests).
        fixed: knobs held at given values instead of searched (e.g. an architecture:
            ``{"depth": 4, "width": 100, "activation": "tanh"}``).
        clock: ``"wall"`` (wall time) or ``"cpu"`` (process CPU time: trials made while
            other jobs load the machine get the same computing time).
        log: receives one line per trial.

    Returns:
        The :class:`TuneResult`.

    Raises:
        TuneError: bad arguments, a parameter cap below the smallest model of the space, or
            ``out`` holding another study.
    """
    import optuna

    knobs = spaces.space(search_space, family)
    fixed = dict(fixed or {})
    unknown = [k for k in fixed if k not in knobs]
    if unknown:
        raise TuneError(f"fixed knobs {', '.join(unknown)}: not in the {family} search space "
                        f"(knobs: {', '.join(knobs)})")
    knobs = {k: v for k, v in knobs.items() if k not in fixed}
    if not isinstance(trials, int) or trials < 1:
        raise TuneError(f"--trials: must be an integer >= 1, got {trials!r}")
    if not time_per_trial > 0 or not math.isfinite(time_per_trial):
        raise TuneError(f"--time-per-trial: must be > 0 seconds, got {time_per_trial!r}")
    if clock not in ("wall", "cpu"):
        raise TuneError(f"--clock: must be wall or cpu, got {clock!r}")
    from kanpde.training.config import config_from_dict

    smallest_cfg = config_from_dict(spaces.solver(family, {**spaces.smallest(knobs), **fixed},
                                                  time_per_trial, seed))
    floor = _n_params(problem, smallest_cfg)
    if max_params is not None and max_params < floor:
        raise TuneError(f"--max-params: {max_params} is below the smallest {family} of the "
                        f"'{search_space}' search space ({floor} parameters)")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    log = log or (lambda line: None)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.RDBStorage(f"sqlite:///{out.resolve() / 'study.db'}")
    study = optuna.create_study(study_name=STUDY_NAME, storage=storage, direction="minimize",
                                sampler=optuna.samplers.TPESampler(seed=seed),
                                load_if_exists=True)
    identity = {"problem": problem.name, "problem_source": problem.source_sha256[:16],
                "family": family, "search_space": search_space, "seed": seed,
                "time_per_trial": float(time_per_trial), "clock": clock,
                "max_params": max_params,
                "knobs": json.loads(json.dumps(knobs)), "fixed": json.loads(json.dumps(fixed))}
    _check_study(study, identity, out)
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        # a trial that was running when its process was killed: it failed, uncounted
        study.tell(t.number, state=optuna.trial.TrialState.FAIL)
    val = validation_points(problem, seed)
    if max_params is not None:  # draw only the architectures under the cap
        fits = [a for a in spaces.architectures(knobs) if _n_params(problem, config_from_dict(
            spaces.solver(family, {**spaces.smallest(knobs), **fixed, **a}, time_per_trial,
                          seed))) <= max_params]
        knobs = spaces.restrict_architectures(knobs, fits)
        study.set_user_attr("architectures_under_cap", knobs["architecture"][1])  # tune.json
    objective = _Objective(problem, family, knobs, fixed, time_per_trial, max_params, seed,
                           val, out, log, clock)
    interrupted = False
    while _trained(study) < trials:
        if _skipped(study) > SKIP_LIMIT * trials:
            raise TuneError(f"--max-params: {_skipped(study)} configurations drawn were above "
                            f"{max_params} parameters; raise the cap")
        try:
            study.optimize(objective, n_trials=1, catch=(Exception,))
        except KeyboardInterrupt:
            interrupted = True
            break
        write_files(study, out, problem, family, search_space)
    rows = write_files(study, out, problem, family, search_space)
    best = _best(rows)
    return TuneResult(best=best, trials=rows, out=out, interrupted=interrupted)


def _trained(study) -> int:
    from optuna.trial import TrialState

    return sum(t.state == TrialState.COMPLETE or (
        t.state == TrialState.FAIL and t.user_attrs.get("status") not in (None, "interrupted"))
        for t in study.get_trials(deepcopy=False))


def _skipped(study) -> int:
    from optuna.trial import TrialState

    return sum(t.state == TrialState.PRUNED for t in study.get_trials(deepcopy=False))


class _Objective:
    """One trial: configuration -> (cap check) -> solve -> validation loss."""

    def __init__(self, problem, family, knobs, fixed, time_s, max_params, seed, val, out,
                 log, clock):
        self.problem, self.family, self.knobs, self.fixed = problem, family, knobs, fixed
        self.clock = clock
        self.time_s, self.max_params, self.seed = time_s, max_params, seed
        self.val, self.out, self.log = val, out, log

    def __call__(self, trial) -> float:
        import optuna

        from kanpde.io.results import save_result
        from kanpde.training.config import config_from_dict
        from kanpde.training.solve import solve

        values = {**spaces.suggest(trial, self.knobs), **self.fixed}
        solver = spaces.solver(self.family, values, self.time_s, self.seed,
                               name=f"{self.family}-trial{trial.number}", clock=self.clock)
        config = config_from_dict(solver, source=f"trial {trial.number}")
        n_params = _n_params(self.problem, config)
        if values.get("second_stage") == "lm" and n_params > LM_DENSE_LIMIT:
            # above the dense Levenberg-Marquardt limit its matrix-free form takes over
            values["second_stage"] = "gauss_newton"
            solver = spaces.solver(self.family, values, self.time_s, self.seed,
                                   name=f"{self.family}-trial{trial.number}",
                                   clock=self.clock)
            config = config_from_dict(solver, source=f"trial {trial.number}")
        trial.set_user_attr("second_stage", values.get("second_stage"))
        trial.set_user_attr("n_params", n_params)
        if self.max_params is not None and n_params > self.max_params:
            trial.set_user_attr("reason", f"{n_params} parameters > --max-params "
                                          f"{self.max_params}")
            raise optuna.TrialPruned()
        run_dir = self.out / "trials" / f"{trial.number:04d}"
        result = solve(self.problem, config, progress=False)
        save_result(result, run_dir)
        s = result.summary
        for key in ("l2_rel", "mse", "wall_time_s", "cpu_time_s", "steps", "status"):
            trial.set_user_attr(key, s.get(key))
        trial.set_user_attr("solver", spaces.reproducible(solver, s.get("stages") or []))
        if s.get("status") == "interrupted":
            trial.set_user_attr("reason", "interrupted")
            raise KeyboardInterrupt
        model = result.model
        unknowns = {k: v["value"] for k, v in (s.get("unknowns") or {}).items()}
        try:
            loss = validation_loss(self.problem, model, self.val, unknowns)
        except (RuntimeError, ValueError) as err:  # e.g. non-finite activations
            loss = {"total": math.nan, "error": str(err).splitlines()[0] if str(err) else ""}
        trial.set_user_attr("validation_terms", {k: v for k, v in loss.items()
                                                 if k != "total"})
        value = loss["total"]
        if s.get("status") == "diverged" or not math.isfinite(value):
            reason = ("diverged (non-finite loss three times in a row)"
                      if s.get("status") == "diverged" else "non-finite validation loss")
            trial.set_user_attr("reason", reason)
            self.log(f"trial {trial.number}: {n_params} params: failed: {reason}")
            return math.nan
        self.log(f"trial {trial.number}: {n_params} params, validation loss {value:.3e}, "
                 f"{s.get('wall_time_s', 0):.0f} s ({s.get('status')})")
        return value


def _knob_values(params: Mapping[str, Any]) -> dict[str, Any]:
    """A trial's knob values, a capped study's architecture choice spelt out."""
    out = {k: v for k, v in params.items() if k != "architecture"}
    if "architecture" in params:
        out.update(spaces.decode_architecture(params["architecture"]))
    return out


def write_files(study, out: Path, problem, family: str, search_space: str
                ) -> list[dict[str, Any]]:
    """Rewrite ``trials.csv``, ``best.toml`` and ``tune.json`` from the study; returns the
    trial rows."""
    import tomli_w

    rows = []
    for t in study.get_trials(deepcopy=False):
        a = t.user_attrs
        reason = a.get("reason", "")
        if t.state.name == "FAIL" and not reason:
            reason = "interrupted" if a.get("status") is None else "failed"
        rows.append({"trial": t.number, "state": t.state.name.lower(), "reason": reason,
                     "n_params": a.get("n_params"),
                     "validation_loss": t.value if t.value is not None and
                     math.isfinite(t.value) else None,
                     "l2_rel": a.get("l2_rel"), "mse": a.get("mse"),
                     "wall_time_s": a.get("wall_time_s"), "cpu_time_s": a.get("cpu_time_s"),
                     "steps": a.get("steps"), "status": a.get("status"),
                     "params": _knob_values(t.params), "solver": a.get("solver"),
                     "validation_terms": a.get("validation_terms")})
    knob_names = list(dict.fromkeys(k for r in rows for k in r["params"]))
    buf = io.StringIO()
    cols = ["trial", "state", "reason", "n_params", "validation_loss", "l2_rel", "mse",
            "wall_time_s", "cpu_time_s", "steps", "status"]
    writer = csv.writer(buf)
    writer.writerow(cols + knob_names)
    for r in rows:
        writer.writerow([("" if r[c] is None else r[c]) for c in cols]
                        + [r["params"].get(k, "") for k in knob_names])
    atomic_write_text(out / "trials.csv", buf.getvalue())
    best = _best(rows)
    if best is not None and best.get("solver"):
        solver = {**best["solver"], "name": f"{problem.name}_{family}_tuned"}
        header = (f"# Selected by `kanpde tune` ({family}, search space '{search_space}') on "
                  f"problem {problem.name}:\n# trial {best['trial']}, validation loss "
                  f"{best['validation_loss']:.6e} on fresh points (not the error against the "
                  "solution).\n# The stages run the steps that trial ran, so `kanpde solve` "
                  "repeats its training.\n")
        atomic_write_text(out / "best.toml", header + tomli_w.dumps(solver))
    doc = {"problem": problem.name, "family": family, "search_space": search_space,
           "study": dict(study.user_attrs), "trials": len(rows),
           "best": None if best is None else {k: best[k] for k in best if k != "solver"}}
    atomic_write_text(out / "tune.json", json.dumps(doc, indent=1, default=str))
    return rows


def _best(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    done = [r for r in rows if r["state"] == "complete" and r["validation_loss"] is not None]
    return min(done, key=lambda r: r["validation_loss"]) if done else None


__all__ = ["tune", "TuneResult", "TuneError", "write_files"]
