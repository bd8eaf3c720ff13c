"""Levenberg-Marquardt and Gauss-Newton stages on the PINN residual vector.

The loss ``L(theta) = ||rho(theta)||^2`` of :class:`~kanpde.training.loss.PinnLoss` is a
sum of squares, so with ``J = d rho / d theta`` and ``g = J^T rho`` (half the gradient) the
Gauss-Newton model of ``L(theta + delta)`` is ``||rho + J delta||^2``.

**Levenberg-Marquardt** (``optimizer = "lm"``; Levenberg 1944, Marquardt 1963; the gain-ratio
control of Madsen, Nielsen & Tingleff, "Methods for non-linear least squares problems",
2004, §3.2). Each iteration forms ``J^T J`` and ``g`` once (float64, :mod:`jacobian`) and
solves the damped normal equations

    (J^T J + lambda D) delta = -g,     D = diag(J^T J) ("diag") or I ("identity")

by Cholesky, falling back to a least-squares solve when the factorisation fails. A trial
``theta + delta`` is accepted when it lowers the loss; the gain ratio
``rho = (L - L_trial) / (L - ||rho + J delta||^2)`` then lowers ``lambda`` (by
``damping_down`` when ``rho > 3/4``) or raises it (by ``damping_up`` when ``rho < 1/4``). A
rejected trial raises ``lambda`` by ``damping_up`` and solves again with the same ``J``, until
a trial is accepted or ``lambda`` exceeds :data:`LAMBDA_MAX` (the stage then stops:
no decrease can be found).

**Gauss-Newton** (``optimizer = "gauss_newton"``): the same step, matrix-free. Conjugate
gradients (at most ``cg_steps``) solve ``(J^T J + lambda I) delta = -g`` with products
``J^T (J v)`` (:class:`~kanpde.training.jacobian.Products`), then a backtracking
(Armijo) line search from the step length ``lr`` picks ``t``; ``lambda`` follows the gain
ratio as above. For least-squares PINN losses this is the energy natural gradient of
Müller & Zeinhofer, "Achieving High Accuracy with PINNs via Energy Natural Gradients",
ICML 2023 (there: the Gram matrix solved by least squares and a line search over step
lengths), made matrix-free in the way of Martens' Hessian-free optimisation (ICML 2010).

Both stop (status "converged") on ``max |grad L| <= tolerance_grad`` before a step, on a
relative loss change ``(L - L_new) / L <= tolerance_change`` or a relative step
``||delta|| <= tolerance_change (||theta|| + tolerance_change)`` after one, or when no
decrease is found; otherwise they run their ``steps`` iterations (one Jacobian, or one CG
solve, each). Their state (``lambda`` and the evaluation counts) is what a checkpoint keeps.
With several processes ``J^T J``, ``g`` and the products are sums over the processes' rows
(:class:`~kanpde.training.sharding.Sharding`), so every process takes the same step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from kanpde.training.config import SECOND_ORDER, StageConfig, stage_option
from kanpde.training.least_squares import LeastSquares, Linearization

__all__ = ["SECOND_ORDER", "LevenbergMarquardt", "GaussNewton", "StepResult", "make_stage",
           "solve_damped", "conjugate_gradients", "LeastSquares", "Linearization"]

#: above this damping no decrease is sought any more (the stage stops)
LAMBDA_MAX = 1e16
#: a rejected step raises a zero damping to at least this (times ``damping_up``)
LAMBDA_FLOOR = 1e-12
#: Armijo constant and halvings of the Gauss-Newton line search
ARMIJO, MAX_BACKTRACK = 1e-4, 20
#: what a stop of a second-order stage means
STOP_REASONS = {"gradient": "max |grad L| <= tolerance_grad",
                "change": "relative loss change <= tolerance_change",
                "step": "relative step <= tolerance_change",
                "damping": f"no decrease found with damping up to {LAMBDA_MAX:g}"}
COUNTERS = ("residual_evals", "jacobian_evals", "cg_steps", "rejected", "solve_fallbacks")


@dataclass
class StepResult:
    """What one second-order iteration did.

    Attributes:
        loss: ``L`` at the start of the iteration (the history's loss).
        terms: term values there.
        step: step length taken (1 or the line-search ``t``; 0 when nothing was accepted).
        stop: ``None``, or why the stage should stop ("gradient", "change", "step",
            "damping"); with ``step == 0`` and ``stop == "gradient"`` nothing was done.
        counts: evaluations of this iteration (:data:`COUNTERS`).
        damping: ``lambda`` after the iteration.
    """

    loss: float
    terms: dict[str, float]
    step: float
    stop: str | None
    counts: dict[str, int] = field(default_factory=dict)
    damping: float = math.nan


def solve_damped(a: Tensor, g: Tensor, lam: float, d: Tensor) -> tuple[Tensor, bool]:
    """``delta`` with ``(a + lam diag(d)) delta = -g`` by Cholesky, else by least squares
    (non-finite entries taken as zero).

    Args:
        a: ``(P, P)`` symmetric positive semi-definite.
        g: ``(P,)``.
        lam: damping ``>= 0``.
        d: ``(P,)`` positive scaling.

    Returns:
        ``delta`` and whether the least-squares fallback was used.
    """
    m = a + torch.diag(lam * d)
    chol, info = torch.linalg.cholesky_ex(m)
    if int(info) == 0 and bool(torch.isfinite(chol).all()):
        return torch.cholesky_solve(-g[:, None], chol)[:, 0], False
    m, g = (torch.nan_to_num(t, nan=0.0, posinf=0.0, neginf=0.0) for t in (m, g))
    if m.device.type == "cpu":
        sol = torch.linalg.lstsq(m, -g[:, None], driver="gelsd").solution[:, 0]
    else:
        sol = torch.linalg.pinv(m, hermitian=True) @ -g
    return torch.nan_to_num(sol, nan=0.0, posinf=0.0, neginf=0.0), True


class _Stage:
    """State shared by both methods: ``lambda`` and the evaluation counts.

    Args:
        stage: the stage's settings.
        scale: the NaN guard's factor (the initial damping is divided by it).
        columns: optimise only these entries of ``theta`` (``None``: all).
    """

    kind = ""

    def __init__(self, stage: StageConfig, scale: float = 1.0, columns: Tensor | None = None):
        self.stage, self.columns = stage, columns
        self.damping = float(stage_option(stage, "damping")) / scale
        self.up = float(stage_option(stage, "damping_up"))
        self.down = float(stage_option(stage, "damping_down"))
        self.totals = dict.fromkeys(COUNTERS, 0)
        #: why the last iteration asked to stop (``None``: it did not)
        self.stop: str | None = None
        #: the Jacobian path found to work (kept for the stage), and pointwise blocks
        self.path: str | None = None
        self.pointwise: dict[str, bool] = {}

    def state_dict(self) -> dict:
        return {"kind": self.kind, "damping": self.damping, **self.totals}

    def load_state_dict(self, state: dict) -> None:
        self.damping = float(state["damping"])
        self.totals = {k: int(state.get(k, 0)) for k in COUNTERS}

    def record(self) -> dict:
        """The stage record's view of the state."""
        return {"method": self.kind, "damping": self.damping, "stop": self.stop,
                "stop_reason": STOP_REASONS.get(self.stop or ""), "jacobian_path": self.path,
                **self.totals}

    def _adapt(self, ratio: float) -> None:
        if ratio > 0.75:
            self.damping /= self.down
        elif ratio < 0.25:
            self.damping = max(self.damping, LAMBDA_FLOOR) * self.up

    def _moved(self, theta: Tensor, delta: Tensor) -> Tensor:
        if self.columns is None:
            return theta + delta.to(theta.dtype)
        out = theta.clone()
        out[self.columns] += delta.to(theta.dtype)
        return out

    def _reject(self) -> None:
        self.damping = max(self.damping, LAMBDA_FLOOR) * self.up

    def _stop_after(self, before: float, after: float, delta: Tensor, theta: Tensor
                    ) -> str | None:
        tol = self.stage.tolerance_change
        if before - after <= tol * before:
            return "change"
        if float(delta.norm()) <= tol * (float(theta.norm()) + tol):
            return "step"
        return None

    def _result(self, lin: Linearization, step: float, stop: str | None,
                counts: dict[str, int]) -> StepResult:
        for k, v in counts.items():
            self.totals[k] += v
        self.stop = stop
        return StepResult(lin.loss, lin.terms, step, stop, counts, self.damping)


class LevenbergMarquardt(_Stage):
    """One ``optimizer = "lm"`` stage (see the module docstring)."""

    kind = "lm"

    def step(self, system: LeastSquares) -> StepResult:
        """One iteration: one Jacobian, then damped solves until a trial is accepted."""
        lin = system.linearize(dense=True)
        counts = {"residual_evals": 1, "jacobian_evals": 1, "rejected": 0,
                  "solve_fallbacks": 0, "cg_steps": 0}
        a, g = torch.nan_to_num(lin.a), torch.nan_to_num(lin.g)  # type: ignore[arg-type]
        cols = self.columns
        if cols is not None:
            a, g = a[cols][:, cols], g[cols]
        if 2.0 * float(g.abs().max()) <= self.stage.tolerance_grad:
            return self._result(lin, 0.0, "gradient", counts)
        if stage_option(self.stage, "damping_scaling") == "diag":
            diag = a.diagonal()
            d = diag.clamp_min(max(float(diag.max()), 1e-300) * 1e-12)
        else:
            d = torch.ones_like(g)
        theta = system.params.flat()
        while True:
            delta, fallback = solve_damped(a, g, self.damping, d)
            counts["solve_fallbacks"] += int(fallback)
            predicted = -float(2.0 * (g @ delta) + delta @ (a @ delta))
            system.params.assign(self._moved(theta, delta))
            trial = system.value()
            counts["residual_evals"] += 1
            if trial < lin.loss:
                self._adapt((lin.loss - trial) / max(predicted, 1e-300))
                return self._result(lin, 1.0, self._stop_after(
                    lin.loss, trial, delta, theta if cols is None else theta[cols]), counts)
            system.params.assign(theta)
            counts["rejected"] += 1
            self._reject()
            if self.damping > LAMBDA_MAX:
                return self._result(lin, 0.0, "damping", counts)


class GaussNewton(_Stage):
    """One ``optimizer = "gauss_newton"`` stage (see the module docstring)."""

    kind = "gauss_newton"

    def step(self, system: LeastSquares) -> StepResult:
        """One iteration: CG on the damped Gauss-Newton system, then a line search."""
        lin = system.linearize(dense=False)
        counts = {"residual_evals": 1, "jacobian_evals": 0, "rejected": 0,
                  "solve_fallbacks": 0, "cg_steps": 0}
        g = torch.nan_to_num(lin.g)
        if 2.0 * float(g.abs().max()) <= self.stage.tolerance_grad:
            return self._result(lin, 0.0, "gradient", counts)
        products = lin.products
        assert products is not None

        def gram(v: Tensor) -> Tensor:
            counts["jacobian_evals"] += 1  # one J v and one J^T u
            return torch.nan_to_num(system.gram(products, v))

        delta, counts["cg_steps"], curvature = conjugate_gradients(
            gram, g, self.damping, int(stage_option(self.stage, "cg_steps")))
        slope = 2.0 * float(g @ delta)
        theta = system.params.flat()
        t = self.stage.lr
        for _ in range(MAX_BACKTRACK):
            system.params.assign(theta + t * delta)
            trial = system.value()
            counts["residual_evals"] += 1
            if trial <= lin.loss + ARMIJO * t * slope and trial < lin.loss:
                predicted = -(t * slope + t * t * curvature)
                self._adapt((lin.loss - trial) / max(predicted, 1e-300))
                return self._result(lin, t, self._stop_after(lin.loss, trial, t * delta,
                                                             theta), counts)
            t *= 0.5
        system.params.assign(theta)
        counts["rejected"] += 1
        self._reject()
        return self._result(lin, 0.0, "damping" if self.damping > LAMBDA_MAX else None, counts)


def conjugate_gradients(gram, g: Tensor, lam: float, max_steps: int,
                        rtol: float = 1e-12) -> tuple[Tensor, int, float]:
    """Solve ``(G + lam I) delta = -g`` by at most ``max_steps`` CG steps from 0.

    Args:
        gram: ``v -> G v`` for a symmetric positive semi-definite ``G``.
        g: ``(P,)`` right-hand side (negated).
        lam: damping ``>= 0``.
        max_steps: the CG budget.
        rtol: stop when the residual norm is below ``rtol ||g||``.

    Returns:
        ``delta``, the steps taken, and ``delta^T G delta`` (for the predicted decrease).
    """
    x = torch.zeros_like(g)
    r = -g.clone()
    p = r.clone()
    rr = float(r @ r)
    stop = rtol * math.sqrt(rr)
    steps = 0
    gx = torch.zeros_like(g)  # G x, kept for the curvature
    for steps in range(1, max_steps + 1):  # noqa: B007
        gp = gram(p)
        ap = gp + lam * p
        pap = float(p @ ap)
        if not pap > 0.0:
            steps -= 1
            break
        alpha = rr / pap
        x = x + alpha * p
        gx = gx + alpha * gp
        r = r - alpha * ap
        rr_new = float(r @ r)
        if math.sqrt(rr_new) <= stop:
            break
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x, steps, float(x @ gx)


def make_stage(stage: StageConfig, scale: float = 1.0) -> _Stage:
    """The optimiser object of a second-order stage (``scale``: the NaN guard's factor,
    dividing the initial damping)."""
    return (LevenbergMarquardt if stage.optimizer == "lm" else GaussNewton)(stage, scale)
