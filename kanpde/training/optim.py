"""Optimiser stages: Adam with a learning-rate schedule, L-BFGS with an honest budget.

L-BFGS (``torch.optim.LBFGS`` with a strong-Wolfe line search) is driven one iteration per
``step(closure)`` call (``max_iter=1``), so a stage of ``steps`` iterations runs exactly that
many unless it meets a tolerance, and the history has one entry per iteration. The curvature
memory lives in the optimiser state and carries over from call to call. Convergence is
decided here (torch's own checks only end its inner loop, which ``max_iter=1`` ends anyway):

* ``max |grad| <= tolerance_grad`` at the start of an iteration;
* ``|loss_new - loss_old| < tolerance_change`` or ``max |t d| <= tolerance_change`` after one.

The loss and gradient every optimiser here sees are divided by the run's initial loss
(``[scaling] loss = "initial"``, the default; :attr:`kanpde.training.trainer.Trainer.loss_scale`),
so these tolerances, torch's curvature test ``y^T s > 1e-10`` and Adam's ``eps`` are relative
to the start of the run rather than to the units of the loss.

Each iteration's first closure call evaluates the loss at the point the previous line search
accepted; :class:`CachedClosure` returns that evaluation from a cache keyed by the exact
parameter values, so the budget is not spent twice on the same point.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from kanpde.training.config import StageConfig

#: function evaluations allowed in one strong-Wolfe line search (torch's default)
MAX_LINE_SEARCH = 25


def learning_rate(stage: StageConfig, step: int, scale: float = 1.0) -> float:
    """Learning rate at ``step`` (0-based) of a stage.

    ``constant``: ``lr``; ``exponential``: ``lr gamma^step``; ``cosine``:
    ``lr_min + (lr - lr_min) (1 + cos(pi step / steps)) / 2``. ``scale`` multiplies the result
    (the NaN guard halves it).
    """
    if stage.schedule == "exponential":
        lr = stage.lr * stage.gamma**step
    elif stage.schedule == "cosine":
        frac = min(step / max(stage.steps, 1), 1.0)
        lr = stage.lr_min + (stage.lr - stage.lr_min) * 0.5 * (1.0 + math.cos(math.pi * frac))
    else:
        lr = stage.lr
    return lr * scale


def make_optimizer(stage: StageConfig, params: Sequence[nn.Parameter],
                   scale: float = 1.0) -> torch.optim.Optimizer:
    """A fresh optimiser for a stage over ``params`` (one parameter group)."""
    lr = learning_rate(stage, 0, scale)
    if stage.optimizer == "adam":
        return torch.optim.Adam(list(params), lr=lr)
    # max_eval bounds the evaluations of one step() call: 1 + up to 25 in the line search
    return torch.optim.LBFGS(list(params), lr=lr, max_iter=1, max_eval=1 + MAX_LINE_SEARCH,
                             history_size=stage.history_size,
                             tolerance_grad=stage.tolerance_grad,
                             tolerance_change=stage.tolerance_change,
                             line_search_fn="strong_wolfe")


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set the learning rate of every parameter group."""
    for group in optimizer.param_groups:
        group["lr"] = lr


def lbfgs_step_size(optimizer: torch.optim.Optimizer) -> float:
    """``max |t d|`` of the last L-BFGS iteration (``inf`` before the first one)."""
    state = optimizer.state.get(optimizer.param_groups[0]["params"][0], {})
    d, t = state.get("d"), state.get("t")
    if d is None or t is None:
        return math.inf
    return float((d * t).abs().max())


def lbfgs_memory(optimizer: torch.optim.Optimizer, params: Sequence[Tensor]) -> dict:
    """The curvature memory of an L-BFGS optimiser, for a later stage to continue
    (:func:`continue_memory`): its state and the shapes of the parameters it belongs to."""
    return {"shapes": [list(p.shape) for p in params], "state": optimizer.state_dict()}


def continue_memory(optimizer: torch.optim.Optimizer, memory: dict | None,
                    params: Sequence[Tensor]) -> bool:
    """Load an earlier stage's :func:`lbfgs_memory` into a fresh L-BFGS ``optimizer`` over
    ``params``; returns whether it did (not when there is none or the shapes changed, as a
    grid extension changes them). Only the memory is taken (curvature pairs, last direction
    and step, iteration count): the settings (learning rate, ``history_size``, tolerances)
    stay the new stage's, and the pairs beyond its ``history_size`` are dropped, oldest
    first."""
    if memory is None or memory["shapes"] != [list(p.shape) for p in params]:
        return False
    group = {k: v for k, v in optimizer.param_groups[0].items() if k != "params"}
    optimizer.load_state_dict(memory["state"])
    optimizer.param_groups[0].update(group)
    state = optimizer.state[optimizer.param_groups[0]["params"][0]]
    for key in ("old_dirs", "old_stps", "ro"):
        if state.get(key) is not None:
            state[key] = list(state[key])[-group["history_size"]:]
    state.pop("al", None)  # a work list of the old history_size; rebuilt on the next step
    return True


def max_abs_grad(params: Sequence[Tensor]) -> float:
    """``max |grad|`` over parameters (0 for parameters without a gradient)."""
    out = 0.0
    for p in params:
        if p.grad is not None and p.grad.numel():
            out = max(out, float(p.grad.detach().abs().max()))
    return out


def grads_finite(params: Sequence[Tensor]) -> bool:
    """Whether every gradient is finite."""
    return all(p.grad is None or bool(torch.isfinite(p.grad).all()) for p in params)


class CachedClosure:
    """A loss closure that remembers its last evaluation by the exact parameter values.

    Args:
        params: the optimised parameters.
        evaluate: computes the loss with gradients set (``zero_grad`` + forward + backward)
            and returns ``(loss, extra)``.
    """

    def __init__(self, params: Sequence[Tensor], evaluate: Callable[[], tuple[Tensor, dict]]):
        self.params = list(params)
        self.evaluate = evaluate
        self._key: Tensor | None = None
        self._loss: Tensor | None = None
        self._grads: list[Tensor | None] = []
        self.extra: dict = {}
        self.evaluations = 0

    def clear(self) -> None:
        """Forget the cached evaluation (after the points, weights or model changed)."""
        self._key = None

    def _flat(self) -> Tensor:
        return torch.cat([p.detach().reshape(-1) for p in self.params])

    def __call__(self) -> Tensor:
        key = self._flat()
        if self._key is not None and torch.equal(key, self._key):
            for p, g in zip(self.params, self._grads, strict=True):
                p.grad = None if g is None else g.clone()
            return self._loss  # type: ignore[return-value]
        loss, extra = self.evaluate()
        self.evaluations += 1
        self._key = key.clone()
        self._loss = loss.detach()
        self._grads = [None if p.grad is None else p.grad.detach().clone() for p in self.params]
        self.extra = extra
        return self._loss
