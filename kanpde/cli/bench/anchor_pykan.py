"""The pykan anchor: a KAN trained with pykan's PDE recipe, on kanpde's points.

pykan (Liu et al. 2024, arXiv 2404.19756; version 0.2.8) is used as its PDE tutorial
("Example 6: Solving Partial Differential Equation") uses it: ``KAN(width, grid, k=3,
grid_eps=1.0, noise_scale=0.25)``, its own ``LBFGS`` (``history_size=10``, strong-Wolfe line
search, tolerances 1e-32, 20 iterations per ``step``), ``steps`` steps per grid size with
``update_grid_from_samples`` on the interior points every 5 steps for the first 50, then a
new model on the finer grid made by ``initialize_from_another_model``. Derivatives are the
tutorial's: nested ``torch.autograd.functional.jacobian`` (pykan's ``batch_jacobian``). The
loss is ``alpha * (weighted residual terms) + (condition terms)``, means of squares.

The model runs in pykan's documented speed mode (``model.speed()``: no symbolic branch, no
saved activations), the fastest way pykan offers to train; checkpoints that pykan would
write to ``./model`` go to the run's work directory and are not kept.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from kanpde.cli.bench.anchor_field import LibraryField


def _derivatives(model, batch_jacobian):
    """The tutorial's derivatives: gradient rows by ``batch_jacobian(model)`` and the Hessian
    by ``batch_jacobian`` of the gradient, per output field."""

    def derivatives(x: Tensor, value: Tensor, need_second: bool):
        m = value.shape[1]
        grads, hessians = [], []
        for j in range(m):
            def d1(p: Tensor, j: int = j) -> Tensor:
                return batch_jacobian(model, p, create_graph=True, mode="vector")[:, j, :]
            grads.append(d1(x))  # (N, d)
            if need_second:
                hessians.append(batch_jacobian(d1, x, create_graph=True, mode="vector"))
        grad = torch.stack(grads, dim=2)  # (N, d, m)
        return grad, (torch.stack(hessians, dim=1) if need_second else None)  # (N, m, d, d)
    return derivatives


def _iterations(optimizer) -> int:
    """L-BFGS iterations taken so far by ``optimizer`` (pykan counts them like torch)."""
    state = optimizer.state.get(optimizer.param_groups[0]["params"][0], {})
    return int(state.get("n_iter", 0))


def _closure(optimizer, problem, field: LibraryField, points, alpha: float):
    """The tutorial's closure: ``alpha * residual terms + condition terms`` (means of
    squares), backward included."""

    def closure() -> Tensor:
        optimizer.zero_grad()
        res = problem.residual_values(field, points.interior, engine="jet")
        loss = alpha * sum(r.square().mean() for r in res.values())
        for i, cond in enumerate(problem.conditions):
            r = problem.condition_values(cond, field, points.conditions[i], engine="jet")
            loss = loss + float(cond.weight) * r.square().mean()
        loss.backward()
        return loss
    return closure


def train(problem, points, recipe: dict[str, Any], seed: int, recorder, workdir: Path):
    """Train the pykan recipe; returns ``(model, info)`` (see the module docstring)."""
    from kan import KAN, LBFGS
    from kan.utils import batch_jacobian

    torch.set_default_dtype(torch.float64)
    workdir.mkdir(parents=True, exist_ok=True)
    d, m = len(problem.coords), len(problem.fields)
    width = [d, *recipe["widths"], m]
    x_i = points.interior
    alpha = float(recipe["alpha"])
    every = int(recipe["eval_every"])
    step = 0
    model = None
    stage_times: dict[str, float] = {}
    final_loss = math.nan
    recorder_field = None
    for g_index, grid in enumerate(recipe["grids"]):
        kw = {"seed": seed, "auto_save": False, "ckpt_path": str(workdir / "model")}
        if model is None:
            model = KAN(width=width, grid=grid, k=recipe["k"], grid_eps=recipe["grid_eps"],
                        noise_scale=recipe["noise_scale"], **kw)
        else:  # the transfer reads the coarse model's saved activations
            model.save_act = True
            model = KAN(width=width, grid=grid, k=recipe["k"], **kw
                        ).initialize_from_another_model(model, x_i)
        model = model.speed()
        field = LibraryField(model, _derivatives(model, batch_jacobian))
        if recorder_field is None:
            recorder(field, 0)
        recorder_field = field
        optimizer = LBFGS(model.parameters(), lr=1, history_size=recipe["history_size"],
                          line_search_fn="strong_wolfe", tolerance_grad=1e-32,
                          tolerance_change=1e-32, tolerance_ys=1e-32)
        t_start = recorder.elapsed()[0]

        closure = _closure(optimizer, problem, field, points, alpha)
        for k in range(recipe["steps"]):
            if k % recipe["update_every"] == 0 and k < recipe["update_until"]:
                model.update_grid_from_samples(x_i)
            before = _iterations(optimizer)
            loss = optimizer.step(closure)
            final_loss = float(loss.detach())
            step += _iterations(optimizer) - before
            if (k + 1) * recipe["iterations_per_step"] % every == 0 or k == recipe["steps"] - 1:
                recorder(field, step)
        stage_times[f"G={grid}"] = recorder.elapsed()[0] - t_start
        if g_index == 0:
            stage_times["first"] = stage_times[f"G={grid}"]
    # the symbolic branch's affine constants are parameters even in speed mode, where they
    # do not enter the output: they are not counted
    n_params = sum(p.numel() for name, p in model.named_parameters()
                   if p.requires_grad and "symbolic_fun" not in name)
    info = {"steps": step, "n_params": int(n_params), "stage_times": stage_times,
            "final_loss": final_loss}
    return recorder_field, info
