"""Whether ``kanpde compare`` may reuse a run directory it finds under ``--out``.

A run is keyed by :func:`run_key`: a SHA-256 of the resolved solver configuration (the solver
file with the command line's overrides and the run's seed; runtime-only keys such as
``threads`` left out) and of the problem file's source. :func:`stale_reason` compares the key
of the run a directory holds (from its ``result.h5``, or from its checkpoint when the run was
stopped) with the key of the run ``compare`` is about to make, and says in a few words what
changed. A changed run is never reused: ``compare`` refuses, or with ``--rerun`` moves the old
directory aside with :func:`move_aside` (to ``DIR.stale-N``) and trains it again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

#: the suffix of a directory moved aside by ``kanpde compare --rerun``: ``DIR.stale-N``
STALE_SUFFIX = ".stale-"


def _canonical(config: Mapping[str, Any]) -> dict[str, Any]:
    """A config dict as a solver file would resolve it, without runtime-only keys."""
    from kanpde.training.config import RUNTIME_KEYS, config_from_dict

    d = config_from_dict(json.loads(json.dumps(dict(config), default=str)),
                         source="stored configuration").to_dict()
    return {k: v for k, v in d.items() if k not in RUNTIME_KEYS}


def source_sha256(text: str) -> str:
    """SHA-256 (hex) of a problem file's text as UTF-8."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def run_key(config: Mapping[str, Any], problem_sha256: str) -> str:
    """The key of a run: SHA-256 (hex) of its resolved configuration and problem source."""
    doc = json.dumps({"config": _canonical(config), "problem": problem_sha256},
                     sort_keys=True, default=str)
    return hashlib.sha256(doc.encode("utf-8")).hexdigest()


def _stored(run_dir: Path) -> tuple[dict[str, Any], str] | None:
    """``(config, problem sha256)`` of the run in ``run_dir`` (``None``: no run there).

    Raises:
        ValueError: the directory holds a run whose files cannot be read (named).
    """
    from kanpde.io.results import RESULT_FILE, SUMMARY_FILE, load_result

    if (run_dir / SUMMARY_FILE).is_file() or (run_dir / RESULT_FILE).is_file():
        result = load_result(run_dir)
        return result.config, source_sha256(result.problem_source) \
            if result.problem_source else ""
    if (run_dir / "checkpoint.pt").is_file():  # stopped before it finished
        from kanpde.training.checkpoint import load_checkpoint

        data = load_checkpoint(run_dir)
        return data["config"], data.get("problem_sha256") or ""
    return None


def stale_reason(run_dir: Path, config: Mapping[str, Any], problem) -> str | None:
    """What changed since the run in ``run_dir`` was made, in a few words; ``None`` when the
    directory holds no run or a run of this configuration and problem source.

    Args:
        run_dir: a run directory of ``compare``.
        config: the resolved configuration of the run about to be made (a dict).
        problem: the loaded problem (its ``source`` and ``source_sha256`` are compared; a
            problem without a source, built in Python, is not).
    """
    from kanpde.io.results import RESULT_FILE, SUMMARY_FILE
    from kanpde.training.config import diff_configs

    try:
        stored = _stored(run_dir)
    except (OSError, ValueError) as err:
        text = str(err).strip().splitlines()
        return f"its files cannot be read: {text[0] if text else type(err).__name__}"
    if stored is None:
        return None
    then_config, then_problem = stored
    from_checkpoint = not (run_dir / SUMMARY_FILE).is_file() \
        and not (run_dir / RESULT_FILE).is_file()
    now_problem = (getattr(problem, "source_sha256", "") if from_checkpoint
                   else source_sha256(problem.source) if getattr(problem, "source", "")
                   else "")
    if not then_problem or not now_problem:  # unknown on one side: the config alone decides
        then_problem = now_problem = ""
    try:
        then = _canonical(then_config)
    except ValueError as err:
        return f"its stored configuration is not valid any more ({str(err).splitlines()[0]})"
    if run_key(then, then_problem) == run_key(config, now_problem):
        return None
    reasons = []
    if then_problem != now_problem:
        path = getattr(problem, "source_path", "") or ""
        reasons.append(f"the problem file {path} changed" if path
                       else "the problem file changed")
    diff = diff_configs(then, _canonical(config))
    if diff:
        shown = ", ".join(diff[:3]) + (", ..." if len(diff) > 3 else "")
        reasons.append(f"the solver configuration differs in {shown}")
    return " and ".join(reasons) or "the configuration changed"


def move_aside(run_dir: Path) -> Path:
    """Rename ``run_dir`` to the first free ``run_dir.stale-N`` (N = 1, 2, ...) beside it;
    returns the new path. Nothing is deleted."""
    n = 1
    while (target := run_dir.with_name(f"{run_dir.name}{STALE_SUFFIX}{n}")).exists():
        n += 1
    run_dir.rename(target)
    return target
