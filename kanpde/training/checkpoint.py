"""Checkpoints: one file ``checkpoint.pt`` per run directory, written atomically.

A checkpoint holds everything needed to continue a run exactly where it stopped: the run's
:class:`~kanpde.training.state.TrainState` (its
:meth:`~kanpde.training.state.TrainState.state_dict`: model, optimiser, counters, points, generator,
weights, unknowns, clocks, histories), the resolved config dict, the problem name and the SHA-256 of
the problem file. Only tensors, numbers, strings, lists and dicts are stored. The file carries a
checksum and the previous one is kept as ``checkpoint.prev.pt``
(:mod:`kanpde.training.checkpoint_file`); a resume refuses a damaged file, an incomplete one, and an
edited problem file unless told to go on (:func:`check_problem_source`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kanpde.training.checkpoint_file import check_complete, read_checkpoint, write_checkpoint
from kanpde.training.config import ConfigError, config_from_dict, diff_configs

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


#: top-level config keys a resume may change: where and in what precision the run continues
#: (the model, optimiser state and points are moved and cast when loaded)
RESUME_OVERRIDES = ("device", "dtype")


def check_compatible(data: Mapping[str, Any], problem_name: str,
                     config: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Raise unless the checkpoint was written for this problem and this solver config, up
    to the keys of :data:`RESUME_OVERRIDES`.

    Returns:
        ``{key: (value then, value now)}`` for every key of :data:`RESUME_OVERRIDES` that
        differs (a run moved to another device or precision); empty when none does.

    Raises:
        ConfigError: naming both problems, or every differing key with both of its values
            (``differs in stages[0].lr (0.01 then, 0.02 now)``).
    """
    path = data.get("path", "checkpoint")
    if data["problem"] != problem_name:
        raise ConfigError(f"resume: {path} is from problem {data['problem']!r} "
                          f"(solver {data['config'].get('name')!r}), not problem "
                          f"{problem_name!r}")
    then = config_from_dict(data["config"], source=f"{path}: config").to_dict()  # canonical
    diff = diff_configs(then, config)
    moved = {k: (then.get(k), config.get(k)) for k in diff if k in RESUME_OVERRIDES}
    diff = [k for k in diff if k not in RESUME_OVERRIDES]
    if diff:
        shown = ", ".join(f"{k} ({_at(then, k)!r} then, {_at(config, k)!r} now)"
                          for k in diff[:5]) + (", ..." if len(diff) > 5 else "")
        name, now = data["config"].get("name"), config.get("name")
        which = f"solver {name!r}, not solver {now!r}" if name != now else \
            f"solver {name!r} and a different configuration"
        raise ConfigError(f"resume: {path} was written with {which} (differs in {shown})")
    return moved


def describe_overrides(moved: Mapping[str, tuple[Any, Any]]) -> str:
    """``"device 'cpu' (written with 'cuda'), dtype 'float32' (written with 'float64')"``."""
    return ", ".join(f"{k} {now!r} (written with {then!r})" for k, (then, now) in moved.items())


def _at(config: Mapping[str, Any], dotted: str) -> Any:
    """The value at a dotted key of :func:`diff_configs` (``stages[0].lr``); ``None`` when
    absent."""
    node: Any = config
    for part in dotted.split("."):
        name, _, rest = part.partition("[")
        node = node.get(name) if isinstance(node, Mapping) else None
        for index in rest.rstrip("]").split("][") if rest else ():
            node = node[int(index)] if isinstance(node, list) and int(index) < len(node) \
                else None
    return node
