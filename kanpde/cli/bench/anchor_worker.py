"""One external-library anchor run, in its own process.

:func:`run_anchor` (called in a fresh process by :func:`kanpde.cli.bench.common.run_worker`)
trains the problem of a spec
with DeepXDE (an MLP) or pykan (a KAN) on exactly the collocation and condition points a
kanpde run with the same sampling section and seed draws, evaluates it on the problem's
evaluation set every ``eval_every`` steps (timed like kanpde's own evaluations: inside the
run), and writes a record in kanpde's summary vocabulary (``mse``, ``l2_rel``,
``wall_time_s``, ``cpu_time_s``, ``steps``, ``n_params``, ``status``, ``history``).

The libraries are used as their users use them: their networks, their derivative code (DeepXDE's
``dde.grad``, pykan's ``batch_jacobian`` of its PDE tutorial), their optimisers and loops. kanpde
contributes only the problem: residual and condition functions are evaluated on a
:class:`~kanpde.problem.scope.Scope` built from the library's derivatives
(:class:`~kanpde.cli.bench.anchor_field.LibraryField`). A problem the library cannot express
(unknown parameters, a hard constraint) gives ``status = "not supported: ..."``; a library that is
not installed gives ``status = "missing: ..."``. Each run is a separate process because both
libraries set global state (seeds, default dtype, backend).
"""

from __future__ import annotations

import math
import time
import traceback
from pathlib import Path
from typing import Any

import torch
from torch import nn


class Recorder:
    """Evaluation history of an anchor run, on kanpde's evaluation set and clocks."""

    def __init__(self, evaluator):
        self.evaluator = evaluator
        self.history: dict[str, list[float]] = {}
        self.t0 = time.perf_counter()
        self.c0 = time.process_time()

    def elapsed(self) -> tuple[float, float]:
        """Wall and process CPU seconds since the start."""
        return time.perf_counter() - self.t0, time.process_time() - self.c0

    def __call__(self, model: nn.Module, step: int) -> dict[str, float]:
        wall, cpu = self.elapsed()
        m = self.evaluator(model, h1=False)
        row = {"eval_step": step, "eval_time_s": wall, "eval_cpu_s": cpu,
               "eval_l2_rel": m["l2_rel"], "eval_mse": m["mse"],
               "eval_max_abs_err": m["max_abs_err"]}
        for k, v in row.items():
            self.history.setdefault(k, []).append(float(v))
        return m


def unsupported(problem) -> str | None:
    """Why an anchor library cannot express ``problem`` (``None`` when it can)."""
    if problem.unknowns:
        return "unknown parameters (inverse problem)"
    if problem.hard_constraint is not None:
        return "hard constraint around the network"
    return None


def run(spec: dict[str, Any]) -> dict[str, Any]:
    """Train one anchor described by ``spec`` (see :mod:`kanpde.cli.bench.anchors`)."""
    from kanpde.problem import load_problem
    from kanpde.training.config import SamplingConfig
    from kanpde.training.metrics import Evaluator
    from kanpde.training.points import sample_points

    torch.set_num_threads(1)
    problem = load_problem(spec["problem_path"])
    base = {"problem": problem.name, "solver": spec["label"], "model": spec["family"],
            "library": spec["library"], "seed": spec["seed"]}
    why = unsupported(problem)
    if why is not None:
        return {**base, "status": f"not supported: {why}"}
    dtype = torch.float64
    gen = torch.Generator().manual_seed(int(spec["seed"]))
    points = sample_points(problem, SamplingConfig(**spec["sampling"]), gen, dtype,
                           torch.device("cpu"))
    recorder = Recorder(Evaluator(problem, dtype, torch.device("cpu")))
    if spec["library"] == "deepxde":
        from kanpde.cli.bench.anchor_deepxde import train
    elif spec["library"] == "pykan":
        from kanpde.cli.bench.anchor_pykan import train
    else:
        raise ValueError(f"unknown anchor library {spec['library']!r}")
    model, info = train(problem, points, spec["recipe"], int(spec["seed"]), recorder,
                        Path(spec["workdir"]))
    wall, cpu = recorder.elapsed()
    final = recorder.history["eval_step"][-1] if recorder.history else -1
    if final != info["steps"]:
        recorder(model, info["steps"])
    wall, cpu = recorder.elapsed()
    h = recorder.history
    ok = math.isfinite(h["eval_mse"][-1])
    return {**base, **info, "status": "ok" if ok else "diverged",
            "mse": h["eval_mse"][-1], "l2_rel": h["eval_l2_rel"][-1],
            "max_abs_err": h["eval_max_abs_err"][-1], "wall_time_s": wall,
            "cpu_time_s": cpu, "history": h,
            "points": {k: int(v) for k, v in points.counts().items()}}


def run_anchor(spec: dict[str, Any]) -> dict[str, Any]:
    """:func:`run`, with a failure of the library turned into the record's status (the
    entry point of :func:`kanpde.cli.bench.common.run_worker`)."""
    base = {"solver": spec.get("label"), "library": spec.get("library"),
            "model": spec.get("family"), "seed": spec.get("seed")}
    try:
        return run(spec)
    except ImportError as err:
        return {**base, "status": f"missing: {err}"}
    except Exception as err:  # the library failed on this problem: say so, keep going
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        return {**base, "status": f"failed: {type(err).__name__}" + (f": {first}" if first
                                                                      else ""),
                "traceback": traceback.format_exc()}
