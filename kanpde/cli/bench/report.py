"""Tables, JSON and shared arguments of the training benchmarks (suite, matched, scaling,
claim)."""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from kanpde.cli.bench.common import machine_info, seed

RUN_KEYS = ("problem", "label", "model", "seed", "n_params", "l2_rel", "max_abs_err", "mse",
            "h1_rel", "h1_mse", "wall_time_s", "steps", "final_loss", "status", "grid_size",
            "points", "run_dir")
"""What the benchmark JSON files keep of each run's summary (the rest stays in the run
directory)."""


def slim(record: Mapping[str, Any], extra: Sequence[str] = ()) -> dict[str, Any]:
    """The :data:`RUN_KEYS` (and ``extra``) of one run's record."""
    return {k: record.get(k) for k in (*RUN_KEYS, *extra)}


def add_common_arguments(parser: argparse.ArgumentParser, *, problems: bool = True,
                         seeds: Sequence[int] | None = (0, 1, 2)) -> None:
    """``--budget``, ``--seeds`` (default ``seeds``; none when ``None``), ``--out``, ``--work``,
    ``--problems-dir``, ``--progress`` (+ ``--problems``)."""
    if problems:
        parser.add_argument("--problems", nargs="+", metavar="NAME", default=None,
                            help="problem names (files in --problems-dir) or problem files; "
                                 "default: the whole suite")
    parser.add_argument("--budget", default="quick",
                        help="quick (a smoke check, minutes) or full (the committed numbers); "
                             "default quick")
    if seeds is not None:
        parser.add_argument("--seeds", nargs="+", type=seed, default=list(seeds),
                            metavar="SEED",
                            help="seeds of every configuration (default "
                                 f"{' '.join(map(str, seeds))})")
        parser.set_defaults(default_seeds=list(seeds))
    parser.add_argument("--out", default="results", metavar="DIR",
                        help="where tables, JSON and figures go (default results/)")
    parser.add_argument("--work", default="runs/bench", metavar="DIR",
                        help="run directories (resumable; default runs/bench)")
    parser.add_argument("--problems-dir", default="problems", metavar="DIR",
                        help="where problem names are looked up (default problems/)")
    parser.add_argument("--progress", action="store_true", help="progress bar for every run")


def command_line(name: str, args: argparse.Namespace, positional: Sequence[str] = (),
                 options: Sequence[str] = ()) -> str:
    """The ``kanpde bench NAME ...`` command that reproduces a run with these arguments:
    ``positional`` (problem names) after the name, the shared options, then the
    benchmark's own ``options`` that differ from their defaults."""
    parts = ["kanpde bench", name, *positional]
    if getattr(args, "problems", None):
        parts += ["--problems", *args.problems]
    parts += ["--budget", args.budget]
    if list(args.seeds) != list(args.default_seeds):
        parts += ["--seeds", *map(str, args.seeds)]
    parts += [*options, "--out", str(args.out)]
    return " ".join(parts)


def fmt(value: Any, spec: str = ".2e") -> str:
    return "n/a" if value is None or (isinstance(value, float) and not math.isfinite(value)) \
        else format(value, spec)


def write_json(path: Path, doc: Mapping[str, Any]) -> None:
    """``doc`` plus the machine description, as indented JSON (NaN written as null)."""
    from kanpde.io.results import to_jsonable

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(to_jsonable({**doc, "machine": machine_info()}), indent=1,
                               allow_nan=False) + "\n")


def machine_line() -> str:
    """One markdown line naming the machine, torch and the thread count."""
    m = machine_info()
    load = m.get("load_average")
    load_text = "?" if not load else ", ".join(f"{v:.2f}" for v in load)
    return (f"Machine: {m['cpu_model']}, {m['usable_cpus']} usable CPUs, torch "
            f"{m['torch_version']}, {m['torch_default_threads']} torch threads per run, "
            f"load average {load_text} when the table was written"
            + (f", GPU {m['cuda_device']}" if m.get("cuda_device") else "") + ".")


def save_figure(fig: Any, path: Path) -> Path:
    """Write a matplotlib ``Figure`` as PNG (parents created); returns ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def stage_points(record: Mapping[str, Any], optimizer: str = "lbfgs") -> list[dict[str, Any]]:
    """The model as each ``optimizer`` stage of a run left it: grid size, parameters, errors
    and elapsed time (for KAN runs with grid extension: one point per grid size)."""
    out = []
    for st in record.get("stages") or []:
        metrics = st.get("metrics") or {}
        if st.get("optimizer") != optimizer or metrics.get("l2_rel") is None:
            continue
        grid = st.get("grid_size")
        out.append({"grid": grid[0] if grid else None, "n_params": st.get("n_params"),
                    "l2_rel": metrics.get("l2_rel"), "mse": metrics.get("mse"),
                    "max_abs_err": metrics.get("max_abs_err"),
                    "elapsed_s": st.get("elapsed_s"),
                    "steps": st.get("start_step", 0) + st.get("steps_run", 0)})
    return out


__all__ = ["RUN_KEYS", "slim", "add_common_arguments", "command_line", "fmt",
           "write_json", "machine_line", "save_figure", "stage_points"]
