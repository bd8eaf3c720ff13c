"""Training runs for the evidence benchmarks: many (problem, solver, seed) jobs, resumable.

Every job trains into its own run directory ``WORK/<bench>/<problem>/<label>-seed<seed>``
exactly as ``kanpde solve`` would (``summary.json``, ``result.h5``, ``checkpoint.pt``). A job
whose directory already holds a finished summary is not run again, and one that holds only a
checkpoint continues from it, so an interrupted benchmark picks up where it stopped: rerun
the same command. Tables are always built from the summaries on disk.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kanpde.io.rundir import safe_name

SUITE_PROBLEMS = ("poisson2d_sinsin", "poisson2d_paper", "helmholtz2d", "poisson_mesh",
                  "poisson_nd", "poisson_inverse", "kovasznay", "heat1d", "advection1d",
                  "wave1d", "burgers1d", "allen_cahn1d")
"""The problem suite, in the order tables list it (elliptic first, then time-dependent)."""

BUDGETS = ("quick", "full")


class BenchInputError(ValueError):
    """A bad benchmark argument (unknown problem, budget, ...)."""


def check_budget(budget: str) -> str:
    """``budget`` if it is a known budget name; otherwise a :class:`BenchInputError`."""
    if budget not in BUDGETS:
        raise BenchInputError(f"--budget: unknown budget {budget!r}; choose one of "
                              f"{', '.join(BUDGETS)}")
    return budget


def available_problems(problems_dir: str | Path) -> dict[str, Path]:
    """``{name: path}`` of the problem files (``*.py`` not starting with ``_``/``make_``)."""
    root = Path(problems_dir)
    if not root.is_dir():
        raise BenchInputError(f"--problems-dir {root}: no such directory")
    return {p.stem: p for p in sorted(root.glob("*.py"))
            if not p.name.startswith(("_", "make_"))}


def resolve_problems(names: Sequence[str] | None, problems_dir: str | Path,
                     default: Sequence[str] = SUITE_PROBLEMS) -> dict[str, Path]:
    """Map problem names (or ``.py`` paths) to files; unknown names list what exists.

    Args:
        names: names such as ``"poisson2d_paper"`` or paths to problem files; ``None`` or
            empty means ``default``.
        problems_dir: where names are looked up.
        default: the names used when ``names`` is empty.

    Returns:
        ``{name: path}`` in the order given.
    """
    names = list(names or default)
    known = available_problems(problems_dir) if any(not n.endswith(".py") for n in names) \
        else {}
    out: dict[str, Path] = {}
    for name in names:
        if name.endswith(".py"):
            path = Path(name)
            if not path.is_file():
                raise BenchInputError(f"--problems: no such problem file {name}")
            out[path.stem] = path
        elif name in known:
            out[name] = known[name]
        else:
            raise BenchInputError(f"--problems: unknown problem {name!r}; known problems in "
                                  f"{problems_dir}: {', '.join(known) or '(none)'}")
    return out


@dataclass(frozen=True)
class Job:
    """One training run of a benchmark.

    Attributes:
        problem: the problem's name (a key of the resolved problems).
        label: the solver's name in tables, e.g. ``"kan[10]"``.
        config: the solver configuration as a TOML-like dict (its ``seed`` is replaced).
        seed: the seed of this run.
        tags: extra values copied into the run's record (model size, family, ...).
    """

    problem: str
    label: str
    config: Mapping[str, Any]
    seed: int
    tags: Mapping[str, Any] = field(default_factory=dict)

    def run_dir(self, root: Path) -> Path:
        return root / safe_name(self.problem) / safe_name(f"{self.label}-seed{self.seed}")


def _finished(run_dir: Path, config: Any, problem: Any) -> dict[str, Any] | None:
    """The summary of the finished run in ``run_dir`` (``None``: none, or unfinished).

    Raises:
        BenchInputError: the finished run was made with another solver configuration than
            ``config`` (a :class:`~kanpde.training.config.SolverConfig`) or another version
            of the problem file (:func:`kanpde.cli.reuse.stale_reason`): its numbers are not
            this job's, and are neither reused nor overwritten.
    """
    from kanpde.cli.reuse import stale_reason
    from kanpde.io.results import load_summary

    if not (run_dir / "summary.json").is_file():
        return None
    summary = load_summary(run_dir)
    if summary.get("status") not in ("ok", "diverged", "max_time", "no_metrics"):
        return None
    reason = stale_reason(run_dir, config.to_dict(), problem)
    if reason:
        raise BenchInputError(f"{run_dir}: a finished run made with another configuration or "
                              f"problem ({reason}); move it away or give another --work")
    return summary


def run_jobs(jobs: Iterable[Job], problems: Mapping[str, Path], root: str | Path, *,
             quiet: bool = True, log: Callable[[str], None] | None = None
             ) -> list[dict[str, Any]]:
    """Run every job not finished yet; return one record per job (its summary + tags).

    A ``KeyboardInterrupt`` writes the interrupted run's checkpoint and propagates, after
    which rerunning the same jobs continues where they stopped.

    Args:
        jobs: what to run.
        problems: ``{name: path}`` of the problem files the jobs name.
        root: the benchmark's work directory (one sub-directory per problem and job).
        quiet: no progress bars.
        log: receives one line per finished job (default: print to stderr).
    """
    from kanpde.cli.bench.report import fmt
    from kanpde.io.results import save_result
    from kanpde.io.rundir import claim
    from kanpde.problem import load_problem
    from kanpde.training.config import config_from_dict
    from kanpde.training.solve import solve

    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    root = Path(root)
    loaded: dict[str, Any] = {}
    records = []
    for job in jobs:
        run_dir = job.run_dir(root)
        config = config_from_dict({**job.config, "name": job.label, "seed": job.seed},
                                  source=f"{job.label}")
        if job.problem not in loaded:
            loaded[job.problem] = load_problem(problems[job.problem])
        summary = _finished(run_dir, config, loaded[job.problem])
        if summary is None:
            resume = run_dir if (run_dir / "checkpoint.pt").is_file() else None
            start = time.perf_counter()
            with claim(run_dir, resume=resume is not None, flag="bench: run directory"):
                result = solve(loaded[job.problem], config, checkpoint_dir=run_dir,
                               resume=resume, progress=not quiet)
                save_result(result, run_dir)
            summary = result.summary
            if summary.get("status") == "interrupted":
                raise KeyboardInterrupt
            log(f"{job.problem:18s} {job.label:14s} seed {job.seed}: l2_rel "
                f"{fmt(summary.get('l2_rel'), '.3e')}  {summary.get('n_params')} params  "
                f"{time.perf_counter() - start:6.1f} s  ({summary.get('status')})")
        records.append({**summary, "label": job.label, "run_dir": str(run_dir),
                        **dict(job.tags)})
    return records


__all__ = ["SUITE_PROBLEMS", "BUDGETS", "BenchInputError", "Job", "run_jobs",
           "available_problems", "resolve_problems", "check_budget"]
