"""The DeepXDE anchor: an MLP trained with DeepXDE's own recipe, on kanpde's points.

DeepXDE (Lu et al., SIAM Review 63(1), 2021; version 1.15, PyTorch backend, float64) gets
the problem as its users write one: ``dde.data.PDE`` with the collocation points as
``anchors`` (no points of its own), one ``dde.icbc.PointSetOperatorBC`` per condition on the
condition's points, ``dde.nn.FNN`` with Glorot-normal initialisation, ``model.compile("adam",
lr, loss_weights)`` then ``model.compile("L-BFGS")``. Derivatives come from ``dde.grad``
(its cached reverse-mode Jacobians and Hessians); kanpde only evaluates the residual and
condition expressions on them (:class:`~kanpde.cli.bench.anchor_field.LibraryField`).

L-BFGS runs in calls of ``eval_every`` iterations (DeepXDE's ``iter_per_step``) so that the
error can be recorded along the way; the optimiser state carries over between calls, as in
DeepXDE's own loop.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from kanpde.cli.bench.anchor_field import LibraryField


def _geometry(dde, domain):
    lo, hi = (np.asarray(v, dtype=np.float64) for v in domain.bbox)
    if lo.size == 1:
        return dde.geometry.Interval(float(lo[0]), float(hi[0]))
    if lo.size == 2:
        return dde.geometry.Rectangle(lo, hi)
    return dde.geometry.Hypercube(lo, hi)


def _derivatives(dde, y: Tensor, x: Tensor, rows: list[int]):
    """``dde.grad`` derivatives of ``y (N, m)`` at ``x (N, d)``: the gradient and the Hessian
    rows ``a in rows`` (the entries any channel matrix touches), zero elsewhere."""
    m, d = y.shape[1], x.shape[1]

    def derivatives(_x: Tensor, _v: Tensor, need_second: bool):
        grad = torch.stack([dde.grad.jacobian(y, x, i=j) for j in range(m)], dim=2)
        if not need_second:
            return grad, None
        hess = x.new_zeros(x.shape[0], m, d, d)
        for j in range(m):
            for a in rows:
                for b in range(d):
                    h = dde.grad.hessian(y, x, component=j, i=a, j=b)[:, 0]
                    hess = hess.index_put((torch.arange(x.shape[0]), torch.tensor(j),
                                           torch.tensor(a), torch.tensor(b)), h)
        return grad, hess
    return derivatives


def train(problem, points, recipe: dict[str, Any], seed: int, recorder, workdir: Path):
    """Train the DeepXDE recipe; returns ``(model, info)`` (see the module docstring)."""
    os.environ.setdefault("DDE_BACKEND", "pytorch")
    import deepxde as dde

    if dde.backend.backend_name != "pytorch":
        raise RuntimeError(f"DeepXDE runs on backend {dde.backend.backend_name!r}; the anchor "
                           "needs DDE_BACKEND=pytorch")
    dde.config.set_default_float("float64")
    dde.config.set_random_seed(seed)
    torch.set_default_dtype(torch.float64)
    channels = problem.channels(points.interior)
    rows = [a for a in range(len(problem.coords))
            if bool((channels.matrices[:, a, :] != 0).any())]
    blocks, start = [], 0
    for cp in points.conditions:
        blocks.append((start, start + cp.points.shape[0]))
        start += cp.points.shape[0]

    def jet(x: Tensor, y: Tensor, order: int):
        field = LibraryField(lambda _x: y, _derivatives(dde, y, x, rows))
        if order == 0:
            return y
        return field.jet(x, channels if order == 2 else None)

    def pde(x: Tensor, y: Tensor):
        s = problem.scope_of(x, jet(x, y, 2))
        return [problem._check_output(fn(s), x.shape[0], f"residual {k!r}")[:, None]
                for k, fn in problem.residuals.items()]

    def condition(i: int):
        cond, (beg, end) = problem.conditions[i], blocks[i]
        normals = points.conditions[i].normals

        def func(x: Tensor, y: Tensor, _x_np) -> Tensor:
            j = jet(x, y, cond.order)
            if cond.order == 0:
                part = j[beg:end]
            else:
                part = type(j)(j.value[beg:end], j.grad[beg:end], j.second[beg:end],
                               j.channels)
            s = problem.scope_of(x[beg:end], part, normals=normals)
            r = cond.residual(s)
            r = r.value if hasattr(r, "value") and not isinstance(r, Tensor) else r
            out = x.new_zeros(x.shape[0], 1)
            return out.index_put((torch.arange(beg, end),), r.reshape(-1, 1))
        return func

    bcs = [dde.icbc.PointSetOperatorBC(cp.points.numpy(), np.zeros((cp.points.shape[0], 1)),
                                       condition(i))
           for i, cp in enumerate(points.conditions)]
    data = dde.data.PDE(_geometry(dde, problem.domain), pde, bcs, num_domain=0,
                        num_boundary=0, anchors=points.interior.numpy())
    d, m = len(problem.coords), len(problem.fields)
    net = dde.nn.FNN([d, *recipe["widths"], m], recipe["activation"], "Glorot normal")
    model = dde.Model(data, net)
    weights = ([recipe["residual_weight"]] * len(problem.residuals)
               + [1.0] * len(problem.conditions))
    every = int(recipe["eval_every"])
    field = LibraryField(net, lambda *a: (None, None))
    net.eval()

    class Record(dde.callbacks.Callback):
        def on_epoch_end(self):
            step = int(self.model.train_state.step)
            if step % every == 0 or step == total[0]:
                recorder(field, step)

    total = [int(recipe["adam_steps"])]
    recorder(field, 0)
    t0 = recorder.elapsed()[0]
    model.compile("adam", lr=recipe["adam_lr"], loss_weights=weights)
    model.train(iterations=recipe["adam_steps"], display_every=10**9, verbose=0,
                callbacks=[Record()])
    t1 = recorder.elapsed()[0]
    dde.optimizers.config.set_LBFGS_options(maxiter=int(recipe["lbfgs_steps"]))
    opts = dde.optimizers.config.LBFGS_options
    opts["iter_per_step"] = min(every, int(recipe["lbfgs_steps"]))
    opts["fun_per_step"] = opts["maxfun"] * opts["iter_per_step"] // opts["maxiter"]
    total[0] = int(recipe["adam_steps"]) + int(recipe["lbfgs_steps"])
    model.compile("L-BFGS", loss_weights=weights)
    model.train(display_every=10**9, verbose=0, callbacks=[Record()])
    t2 = recorder.elapsed()[0]
    steps = int(model.train_state.step)
    lbfgs_state = model.opt.state.get(model.opt.param_groups[0]["params"][0], {})
    lbfgs_steps = steps - int(recipe["adam_steps"])
    info = {"steps": steps, "n_params": sum(p.numel() for p in net.parameters()),
            "stage_times": {"adam": t1 - t0, "lbfgs": t2 - t1},
            "stage_steps": {"adam": int(recipe["adam_steps"]), "lbfgs": lbfgs_steps},
            "final_loss": float(np.sum(model.train_state.loss_train)),
            "lbfgs_evaluations": int(lbfgs_state.get("func_evals", 0))}
    return field, info
