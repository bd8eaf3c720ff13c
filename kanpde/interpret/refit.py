"""The run's training loss for a given model, and short optimisation loops on it.

Used after pruning (fine-tuning) and after symbolic fixing (refitting the constants). The
loss is the run's :class:`~kanpde.training.loss.PinnLoss` (the trainer's loss: causal
weighting and the sparsity penalty included when the run used them) at the interior
collocation points and the condition points drawn as the run first drew them (the run's
sampling section and seed), weighted with the run's final weights; unknowns of inverse
problems are held at their trained values. :func:`polish_symbolic` is a
Levenberg-Marquardt stage (:mod:`kanpde.training.second_order`) on the constants of the
symbolic edges.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from kanpde.core.engines import Engine
from kanpde.nn.kan import KAN
from kanpde.nn.parts import network
from kanpde.training.config import SolverConfig, StageConfig
from kanpde.training.jacobian import Jacobian, Parameters
from kanpde.training.loss import PinnLoss
from kanpde.training.metrics import Evaluator
from kanpde.training.points import TrainingPoints, sample_points
from kanpde.training.scaling import solver_term_scales
from kanpde.training.second_order import LeastSquares, LevenbergMarquardt
from kanpde.training.weighting import LossWeights


class ProblemLoss:
    """``model -> L`` of a run's :class:`~kanpde.training.loss.PinnLoss` on fixed points.

    Args:
        problem: the problem.
        config: the run's solver config (sampling, weighting, regularization, seed, engine).
        weights: final term weights of the run (default: from ``config``).
        unknowns: values of the problem's unknowns (inverse problems).
        engine: derivative engine (default: the config's).
        dtype, device: of the points.
    """

    def __init__(self, problem, config: SolverConfig, *,
                 weights: Mapping[str, float] | None = None,
                 unknowns: Mapping[str, float] | None = None,
                 engine: str | Engine | None = None,
                 dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu"):
        self.problem, self.engine = problem, engine or config.derivative_engine
        res = list(problem.residuals)
        cond = [c.label(i) for i, c in enumerate(problem.conditions)]
        defaults = {c.label(i): float(c.weight) for i, c in enumerate(problem.conditions)}
        lw = LossWeights(res, cond, defaults, config.weighting)
        if config.regularization.active:  # as the trainer: the penalty with weight 1
            lw.weights["regularization"] = 1.0
        lw.weights = {k: float((weights or {}).get(k, v)) for k, v in lw.weights.items()}
        #: the term weights in use
        self.weights = lw.weights
        gen = torch.Generator().manual_seed(config.seed)
        self.points: TrainingPoints = sample_points(problem, config.sampling, gen, dtype,
                                                    torch.device(device))
        self.unknowns = None if not unknowns else {
            k: torch.tensor(float(v), dtype=dtype, device=device) for k, v in unknowns.items()}
        #: the loss object itself
        self.pinn = PinnLoss(problem, lw, weighting=config.weighting,
                             regularization=config.regularization, engine=self.engine,
                             unknowns=self.unknowns,
                             term_scales=solver_term_scales(problem, config))

    def terms(self, model: nn.Module) -> dict[str, Tensor]:
        """``{term: L_t}``."""
        return self.pinn.terms(model, self.points)

    def residual_vector(self, model: nn.Module) -> Tensor:
        """``(M,)`` the residual vector: its squared norm is the loss."""
        return self.pinn.residuals(model, self.points).rows

    def __call__(self, model: nn.Module) -> Tensor:
        """The weighted total (a scalar with a graph to the model's parameters)."""
        return self.pinn(model, self.points)


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


def polish_symbolic(model: nn.Module, loss: ProblemLoss, max_constants: int = 64,
                    max_nfev: int = 30) -> tuple[float, float]:
    """Levenberg-Marquardt on the constants ``(a, b, c, d)`` of the symbolic edges.

    L-BFGS stalls on the redundant constants of a composed formula (``c (a x + b) + d``
    feeding ``cos(a' h + b')`` can trade scale and shift freely); a damped Gauss-Newton
    solve on the residual vector does not. This is an ``optimizer = "lm"`` stage
    (:class:`~kanpde.training.second_order.LevenbergMarquardt`, Jacobian through the jet
    engine) over the symbolic constants only; other parameters are held. Skipped (returning
    the unchanged loss twice) when there are no or more than ``max_constants`` constants.
    At most ``max_nfev`` iterations (one Jacobian each, plus the trial evaluations of its
    damped steps); only decreasing steps are taken.

    Returns:
        The loss before and after.
    """
    net = network(model)
    slots = [(layer, i, j) for layer in getattr(net, "layers", [])
             for (i, j) in sorted(layer.symbolic)]
    before = float(loss(model).detach())
    if not slots or 4 * len(slots) > max_constants or max_nfev <= 0:
        return before, before
    layers = list(dict.fromkeys(layer for layer, _, _ in slots))
    params = Parameters(model, only=[layer.sym_params for layer in layers])
    offsets, offset = {}, 0
    for layer in layers:
        offsets[id(layer)] = offset
        offset += layer.sym_params.numel()
    columns = torch.tensor([offsets[id(layer)] + (i * layer.n_out + j) * 4 + q
                            for layer, i, j in slots for q in range(4)])
    stage = StageConfig(optimizer="lm", steps=max_nfev, tolerance_grad=0.0,
                        tolerance_change=0.0)
    lm = LevenbergMarquardt(stage, columns=columns)
    system = LeastSquares(loss.pinn, model, loss.points, params, Jacobian(model, params))
    with torch.enable_grad():
        for _ in range(max_nfev):
            try:
                if lm.step(system).stop is not None:
                    break
            except ArithmeticError:  # a non-finite loss: keep what was reached
                break
    after = float(loss(model).detach())
    return before, after


def l2_error(model: nn.Module, problem, dtype: torch.dtype = torch.float64) -> float:
    """Relative L2 error of ``model`` against the problem's solution on its evaluation set."""
    device = next(model.parameters()).device
    return float(Evaluator(problem, dtype, device)(model, h1=False)["l2_rel"])
