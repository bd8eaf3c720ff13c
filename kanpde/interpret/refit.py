"""The problem's training loss for a given model, and short optimisation loops on it.

Used after pruning (fine-tuning) and after symbolic fixing (refitting the constants). The
loss is the solver's ``sum_t lambda_t mean(r_t^2)`` over the PDE residuals at the interior
collocation points and the conditions at theirs, drawn as the run drew them (the run's
sampling section and seed) and weighted with the run's final weights. Causal weighting is
not applied here (plain means); unknowns of inverse problems are held at their trained values.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import torch
from torch import Tensor, nn

from kanpde.config import SolverConfig
from kanpde.nn.kan import KAN
from kanpde.training.metrics import Evaluator
from kanpde.training.model import network
from kanpde.training.points import TrainingPoints, sample_points
from kanpde.training.weighting import LossWeights


class ProblemLoss:
    """``model -> sum_t lambda_t mean(r_t^2)`` on fixed collocation points.

    Args:
        problem: the problem.
        config: the run's solver config (sampling, weighting, seed, engine).
        weights: final term weights of the run (default: from ``config``).
        unknowns: values of the problem's unknowns (inverse problems).
        engine: derivative engine (default: the config's).
        dtype, device: of the points.
    """

    def __init__(self, problem, config: SolverConfig, *,
                 weights: Mapping[str, float] | None = None,
                 unknowns: Mapping[str, float] | None = None, engine: str | None = None,
                 dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu"):
        self.problem, self.engine = problem, engine or config.engine
        res = list(problem.residuals)
        cond = [c.label(i) for i, c in enumerate(problem.conditions)]
        defaults = {c.label(i): float(c.weight) for i, c in enumerate(problem.conditions)}
        lw = LossWeights(res, cond, defaults, config.weighting)
        self.weights = {k: float((weights or {}).get(k, v)) for k, v in lw.weights.items()}
        gen = torch.Generator().manual_seed(config.seed)
        self.points: TrainingPoints = sample_points(problem, config.sampling, gen, dtype,
                                                    torch.device(device))
        self.unknowns = None if not unknowns else {
            k: torch.tensor(float(v), dtype=dtype, device=device) for k, v in unknowns.items()}

    def terms(self, model: nn.Module) -> dict[str, Tensor]:
        """``{term: mean squared residual}``."""
        x = self.points.interior
        res = self.problem.residual_values(model, x, engine=self.engine, unknowns=self.unknowns)
        out = {k: r.square().mean() for k, r in res.items()}
        for i, cond in enumerate(self.problem.conditions):
            r = self.problem.condition_values(cond, model, self.points.conditions[i],
                                              engine=self.engine, unknowns=self.unknowns)
            out[cond.label(i)] = r.square().mean()
        return out

    def residual_vector(self, model: nn.Module) -> Tensor:
        """``(M,)`` all residuals scaled by ``sqrt(lambda_t / N_t)``: its squared norm is
        the loss."""
        parts = [torch.sqrt(torch.tensor(self.weights[k] / r.numel(), dtype=r.dtype)) * r
                 for k, r in self._raw(model).items()]
        return torch.cat([r.reshape(-1) for r in parts])

    def _raw(self, model: nn.Module) -> dict[str, Tensor]:
        x = self.points.interior
        out = dict(self.problem.residual_values(model, x, engine=self.engine,
                                                unknowns=self.unknowns))
        for i, cond in enumerate(self.problem.conditions):
            out[cond.label(i)] = self.problem.condition_values(
                cond, model, self.points.conditions[i], engine=self.engine,
                unknowns=self.unknowns)
        return out

    def __call__(self, model: nn.Module) -> Tensor:
        """The weighted total (a scalar with a graph to the model's parameters)."""
        return sum(self.weights[k] * v for k, v in self.terms(model).items())  # type: ignore


def to_float64(model: nn.Module) -> nn.Module:
    """``model`` in float64 (in place), KAN edge masks included."""
    model.to(torch.float64)
    net = network(model)
    if isinstance(net, KAN):
        for layer in net.layers:
            if layer.edge_mask is not None:
                layer.edge_mask = layer.edge_mask.to(torch.float64)
    return model


def lbfgs(model: nn.Module, loss_fn, steps: int, *, history_size: int = 100) -> list[float]:
    """Minimise ``loss_fn(model)`` over the model's parameters with strong-Wolfe L-BFGS.

    Non-finite losses roll back to the best parameters seen. Returns the loss per
    iteration (the last entry is the final loss).
    """
    params = [p for p in model.parameters() if p.requires_grad]
    if steps <= 0 or not params:
        return [float(loss_fn(model).detach())]
    opt = torch.optim.LBFGS(params, lr=1.0, max_iter=steps, max_eval=steps * 5 // 4 + 20,
                            history_size=history_size, line_search_fn="strong_wolfe",
                            tolerance_grad=0.0, tolerance_change=0.0)
    history: list[float] = []
    best = (math.inf, [p.detach().clone() for p in params])

    def closure() -> Tensor:
        nonlocal best
        opt.zero_grad()
        loss = loss_fn(model)
        value = float(loss.detach())
        if math.isfinite(value):
            loss.backward()
            if value < best[0]:
                best = (value, [p.detach().clone() for p in params])
        else:  # make the line search back off
            loss = loss.detach().new_tensor(1e300)
            for p in params:
                p.grad = torch.zeros_like(p)
        history.append(value)
        return loss

    opt.step(closure)
    with torch.no_grad():
        for p, b in zip(params, best[1], strict=True):
            p.copy_(b)
    final = float(loss_fn(model).detach())
    history.append(final)
    return history


class _Budget(Exception):
    """The residual-evaluation budget of :func:`polish_symbolic` is spent."""


def polish_symbolic(model: nn.Module, loss: ProblemLoss, max_constants: int = 64,
                    max_nfev: int = 30) -> tuple[float, float]:
    """Levenberg-Marquardt on the constants ``(a, b, c, d)`` of the symbolic edges.

    L-BFGS stalls on the redundant constants of a composed formula (``c (a x + b) + d``
    feeding ``cos(a' h + b')`` can trade scale and shift freely); a damped Gauss-Newton
    solve on the residual vector (:meth:`ProblemLoss.residual_vector`, Jacobian by central
    differences) does not. Other parameters are held. Skipped (returning the unchanged loss
    twice) when there are no or more than ``max_constants`` constants. At most
    ``max_nfev (2 n + 1)`` residual evaluations for ``n`` constants, Jacobians included
    (counted here, not by SciPy, whose count for ``method="lm"`` excludes finite-difference
    Jacobians in recent versions); when the budget is spent the best point seen is kept.

    Returns:
        The loss before and after.
    """
    from scipy.optimize import least_squares

    net = network(model)
    slots = [(layer, i, j) for layer in getattr(net, "layers", [])
             for (i, j) in sorted(layer.symbolic)]
    if not slots or 4 * len(slots) > max_constants:
        value = float(loss(model).detach())
        return value, value
    start = torch.cat([layer.sym_params[i, j].detach() for layer, i, j in slots])

    def assign(v) -> None:
        t = torch.as_tensor(v, dtype=start.dtype, device=start.device).reshape(-1, 4)
        with torch.no_grad():
            for (layer, i, j), row in zip(slots, t, strict=True):
                layer.sym_params[i, j] = row

    x0 = start.cpu().numpy()
    budget = [max_nfev * (2 * x0.size + 1)]
    calls = [0]
    best = [math.inf, x0.copy()]

    def residual(v):
        if calls[0] >= budget[0]:
            raise _Budget
        calls[0] += 1
        assign(v)
        with torch.set_grad_enabled(loss.engine == "autograd"):
            r = loss.residual_vector(model).detach()
        out = r.cpu().numpy()
        out = np.where(np.isfinite(out), out, 1e150)
        value = float(np.sum(out**2))
        if value < best[0]:
            best[0], best[1] = value, np.array(v, dtype=np.float64, copy=True)
        return out

    def jacobian(v):
        v = np.asarray(v, dtype=np.float64)
        steps = np.finfo(np.float64).eps ** (1 / 3) * np.maximum(1.0, np.abs(v))
        cols = []
        for k in range(v.size):
            e = np.zeros_like(v)
            e[k] = steps[k]
            cols.append((residual(v + e) - residual(v - e)) / (2 * steps[k]))
        return np.stack(cols, 1)

    before = float(np.sum(residual(x0) ** 2))
    try:
        sol = least_squares(residual, x0, jac=jacobian, method="lm", xtol=1e-15,
                            ftol=1e-15, gtol=1e-15, max_nfev=max_nfev)
        end = sol.x
    except _Budget:
        end = best[1]
    budget[0] = math.inf  # the final evaluation is outside the budget
    after = float(np.sum(residual(end) ** 2))
    if not after <= before:  # keep the better end
        assign(x0)
        return before, before
    assign(end)
    return before, after


def adam(model: nn.Module, loss_fn, steps: int, lr: float = 1e-3) -> list[float]:
    """``steps`` Adam steps on ``loss_fn(model)``; returns the loss per step."""
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr)
    history = []
    for _ in range(steps):
        opt.zero_grad()
        loss = loss_fn(model)
        if not torch.isfinite(loss):
            break
        loss.backward()
        opt.step()
        history.append(float(loss.detach()))
    return history


def l2_error(model: nn.Module, problem, dtype: torch.dtype = torch.float64) -> float:
    """Relative L2 error of ``model`` against the problem's solution on its evaluation set."""
    device = next(model.parameters()).device
    return float(Evaluator(problem, dtype, device)(model, h1=False)["l2_rel"])
