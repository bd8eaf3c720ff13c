"""A closed-form formula as a model: its PDE loss, constant snapping and a final refit,
judged by the loss on fresh validation points, never by the error against a solution.

A formula of :mod:`kanpde.interpret.formula` without spline edges is an expression in the
coordinates with floating constants. :class:`FormulaModel` evaluates it with PyTorch, its
floating constants as trainable parameters, so the problem's loss
(:class:`~kanpde.training.loss.PinnLoss`, derivatives by nested autograd) is computed for it
like for any model. :func:`read_formula` then

1. expands the expression (constants of composed edges merge: ``c (a x + b)`` into
   ``ca x + cb``) and refits the merged constants by L-BFGS on the training loss;
2. snaps each constant, largest first, to ``0``, a short rational ``p/q`` or ``p pi/q``
   (:func:`kanpde.interpret.formula.constant_candidates`) when the validation loss
   (:func:`kanpde.tune.validation.validation_loss` on points no training used) does not
   grow beyond ``max(L_val (1 + rel), floor)``;
3. refits the constants left free and snaps again;
4. tries each constant still floating at ``0``, the nearest integer and the nearest
   multiple of ``pi/2`` with the other constants refitted (:func:`shift_candidates`):
   a formula with a free direction (``sin(x - t)`` as a sum of two products has a free
   phase) has simple constants only once that direction is fixed; kept under the same
   rule, each followed by a snap;
5. simplifies with SymPy under the same rule.

Every SymPy call that can take long (``expand``, ``simplify``) runs in a child process with
a time limit (:func:`sympy_call`); past it the unsimplified expression is kept and a note
says so. The history of every accepted and rejected change is returned.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import queue
from collections.abc import Callable, Sequence
from typing import Any

import sympy as sp
import torch
from torch import Tensor, nn

DT = torch.float64


def _num(fn: Callable[[Tensor], Tensor]) -> Callable[[Any], Tensor]:
    def call(v: Any) -> Tensor:
        return fn(v if isinstance(v, Tensor) else torch.tensor(float(v), dtype=DT))
    return call


TORCH_NAMES: dict[str, Any] = {
    "sin": _num(torch.sin), "cos": _num(torch.cos), "tan": _num(torch.tan),
    "exp": _num(torch.exp), "log": _num(torch.log), "sqrt": _num(torch.sqrt),
    "tanh": _num(torch.tanh), "Abs": _num(torch.abs), "sign": _num(torch.sign),
    "pi": math.pi, "E": math.e}
"""SymPy function names -> PyTorch, for :func:`sympy.lambdify`."""


class FormulaModel(nn.Module):
    """``(N, d) -> (N, m)``: expressions in the coordinates, floating constants trainable.

    Args:
        outputs: one SymPy expression per output field (no undefined functions).
        symbols: the ``d`` coordinate symbols, in the problem's order.

    Attributes:
        constants: ``(K,)`` the floating constants (a parameter).
        names: their placeholder symbols ``c_k``.
    """

    def __init__(self, outputs: Sequence[sp.Expr], symbols: Sequence[sp.Symbol]):
        super().__init__()
        floats = sorted({f for e in outputs for f in e.atoms(sp.Float)}, key=lambda f: -abs(f))
        self.names = [sp.Symbol(f"c_{k}") for k in range(len(floats))]
        sub = dict(zip(floats, self.names, strict=True))
        self.templates = [e.xreplace(sub) for e in outputs]
        self.symbols = list(symbols)
        self.constants = nn.Parameter(torch.tensor([float(f) for f in floats], dtype=DT))
        self._fns = [sp.lambdify([*self.symbols, *self.names], e, modules=[TORCH_NAMES])
                     for e in self.templates]

    def expressions(self, constants: Tensor | None = None) -> list[sp.Expr]:
        """The expressions with the current (or given) constant values as SymPy floats."""
        vals = self.constants.detach() if constants is None else constants
        sub = {n: sp.Float(float(v), 17) for n, v in zip(self.names, vals, strict=True)}
        return [e.xreplace(sub) for e in self.templates]

    def jet(self, x: Tensor, second: Tensor | None = None, kernel: str = "auto"):
        """Value, gradient and second-order channels by nested autograd (``kernel`` is
        ignored): the formula runs under either derivative engine."""
        from kanpde.core.engines import autograd_jet

        return autograd_jet(self, x, second=second)

    def forward(self, x: Tensor) -> Tensor:
        """``(N, d) -> (N, m)``."""
        cols = [x[:, i] for i in range(x.shape[1])]
        consts = list(self.constants.unbind(0)) if self.constants.numel() else []
        vals = [f(*cols, *consts) for f in self._fns]
        return torch.stack([v if isinstance(v, Tensor) and v.shape == cols[0].shape
                            else torch.as_tensor(v, dtype=DT).expand_as(cols[0]) + 0 * cols[0]
                            for v in vals], 1)


def _sympy_worker(name: str, text: str, out: Any) -> None:  # pragma: no cover - child
    try:
        expr = sp.sympify(text)
        fn = {"expand": lambda e: sp.expand(e, trig=False), "simplify": sp.simplify,
              "trigsimp": sp.trigsimp}[name]
        out.put(("ok", sp.srepr(fn(expr))))
    except Exception as err:  # noqa: BLE001 - reported to the parent as text
        out.put(("error", f"{type(err).__name__}: {err}"))


def sympy_call(name: str, expr: sp.Expr, timeout: float) -> tuple[sp.Expr, str | None]:
    """``expand``, ``simplify`` or ``trigsimp`` of ``expr`` in a child process.

    Returns:
        The result and ``None``, or ``expr`` unchanged and a note (time limit exceeded, or
        the error the call raised). The child is killed at the limit: never a hang.
    """
    ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context()
    out = ctx.Queue()
    proc = ctx.Process(target=_sympy_worker, args=(name, sp.srepr(expr), out), daemon=True)
    proc.start()
    try:
        status, text = out.get(timeout=timeout)
    except queue.Empty:
        status, text = "timeout", f"sympy {name} did not finish within {timeout:g} s"
    finally:
        if proc.is_alive():
            proc.kill()
        proc.join(5)
    if status != "ok":
        return expr, text if status == "timeout" else f"sympy {name} failed: {text}"
    return sp.sympify(text), None


def shift_candidates(v: float) -> list[sp.Expr]:
    """Simple values for a constant that a refit of the other constants may allow, however
    far from ``v``: ``0``, the nearest nonzero multiple of ``pi/2`` (phases) and the nearest
    nonzero integer, in this order."""
    out: list[sp.Expr] = [sp.Integer(0)]
    q = round(v / (math.pi / 2))
    if q:
        out.append(sp.Rational(q, 2) * sp.pi)
    k = round(v)
    if k:
        out.append(sp.Integer(k))
    return [c for c in dict.fromkeys(out) if float(c) != v]


def refit_constants(model: FormulaModel, loss_fn: Callable[[nn.Module], Tensor],
                    steps: int = 200) -> float:
    """L-BFGS on the free constants of ``model`` (in place); returns the final loss."""
    from kanpde.interpret.refit import lbfgs

    if not model.constants.numel():
        return float(loss_fn(model).detach())
    return lbfgs(model, loss_fn, steps)[-1]


def read_formula(outputs: Sequence[sp.Expr], symbols: Sequence[sp.Symbol],
                 train_loss: Callable[[nn.Module], Tensor],
                 val_loss: Callable[[nn.Module], float], *, floor: float,
                 rel: float = 1e-6, refit_steps: int = 200, timeout: float = 20.0,
                 shift: bool = True) -> dict[str, Any]:
    """Expand, refit, snap, refit, snap, simplify (module docstring).

    Args:
        outputs, symbols: the formula (no spline edges).
        train_loss: ``model -> L`` on the training points (a tensor with a graph).
        val_loss: ``model -> L_val`` on fresh validation points.
        floor: validation losses below this count as equal (round-off).
        rel: relative growth of the validation loss still counted as "not grown".
        refit_steps: L-BFGS iterations of each refit.
        timeout: seconds per SymPy call.
        shift: after the snaps, also try each constant left at the simple values of
            :func:`shift_candidates` with the other constants refitted.

    Returns:
        ``outputs`` (SymPy), ``loss_validation``, ``notes`` and ``history`` (one record per
        step: what was tried, the validation loss, accepted or not).
    """
    from kanpde.interpret.formula import constant_candidates

    notes: list[str] = []
    history: list[dict[str, Any]] = []
    exprs = []
    for e in outputs:
        out, note = sympy_call("expand", e, timeout)
        exprs.append(out)
        if note:
            notes.append(note)

    def evaluate(es: Sequence[sp.Expr]) -> tuple[FormulaModel | None, float]:
        try:
            m = FormulaModel(es, symbols)
            v = float(val_loss(m))
        except (TypeError, ValueError, RuntimeError, ZeroDivisionError, OverflowError):
            return None, math.inf
        return m, v if math.isfinite(v) else math.inf

    def ok(v: float, best: float) -> bool:
        return v <= max(best * (1.0 + rel), floor)

    model, best = evaluate(exprs)
    history.append({"step": "expand", "loss_validation": best, "accepted": True})
    if model is None:
        return {"outputs": exprs, "loss_validation": best, "notes": notes, "history": history}

    def refit(label: str) -> None:
        nonlocal exprs, best, model
        trial = FormulaModel(exprs, symbols)
        refit_constants(trial, train_loss, refit_steps)
        v = float(val_loss(trial))
        accepted = ok(v, best) or v < best
        history.append({"step": label, "constants": int(trial.constants.numel()),
                        "loss_validation": v, "accepted": accepted})
        if accepted:
            exprs, best, model = trial.expressions(), min(v, best) if v <= best else v, trial

    def snap(label: str) -> None:
        nonlocal exprs, best
        floats = sorted({f for e in exprs for f in e.atoms(sp.Float)}, key=lambda f: -abs(f))
        for f in floats:
            if not any(f in e.atoms(sp.Float) for e in exprs):
                continue
            for cand in constant_candidates(float(f)):
                trial = [e.xreplace({f: cand}) for e in exprs]
                _, v = evaluate(trial)
                accepted = ok(v, best)
                history.append({"step": label, "constant": float(f), "to": str(cand),
                                "loss_validation": v, "accepted": accepted})
                if accepted:
                    exprs, best = trial, min(v, best)
                    break

    def snap_refit(label: str) -> None:
        """Move a constant to a simple value far from it when a refit of the others keeps
        the loss: a formula with a free direction (a phase that the other terms absorb,
        sin(x - t) as a sum of two products) has no simple constants until one is fixed."""
        nonlocal exprs, best
        tried: set[int] = set()  # positions (largest first) already tried
        while True:
            floats = sorted({f for e in exprs for f in e.atoms(sp.Float)},
                            key=lambda f: -abs(f))
            todo = [k for k in range(len(floats)) if k not in tried]
            if not todo:
                return
            k = todo[0]
            tried.add(k)
            f = floats[k]
            for cand in shift_candidates(float(f)):
                trial = [e.xreplace({f: cand}) for e in exprs]
                try:
                    m = FormulaModel(trial, symbols)
                    refit_constants(m, train_loss, refit_steps)
                    v = float(val_loss(m))
                except (TypeError, ValueError, RuntimeError, ZeroDivisionError,
                        OverflowError):
                    v = math.inf
                v = v if math.isfinite(v) else math.inf
                accepted = ok(v, best)
                history.append({"step": label, "constant": float(f), "to": str(cand),
                                "loss_validation": v, "accepted": accepted})
                if accepted:  # the constants move: start again from the largest left
                    exprs, best = m.expressions(), min(v, best)
                    snap("snap after refit")
                    tried.clear()
                    break
            else:
                continue
            if len(history) > 40 * len(floats) + 40:  # pragma: no cover - a safety bound
                return

    refit("refit constants")
    snap("snap")
    refit("refit free constants")
    snap("snap again")
    if shift:
        snap_refit("snap with refit")
    for name in ("simplify", "trigsimp"):
        trial = []
        for e in exprs:
            out, note = sympy_call(name, e, timeout)
            trial.append(out)
            if note:
                notes.append(note + "; the unsimplified formula is kept")
        if trial == exprs:
            continue
        _, v = evaluate(trial)
        accepted = ok(v, best) and sum(map(sp.count_ops, trial)) <= sum(map(sp.count_ops, exprs))
        history.append({"step": name, "loss_validation": v, "accepted": accepted})
        if accepted:
            exprs, best = trial, min(v, best)
    trial = [_snap_coefficients(e, symbols) for e in exprs]
    if trial != exprs:
        _, v = evaluate(trial)
        accepted = ok(v, best)
        history.append({"step": "snap coefficients", "loss_validation": v,
                        "accepted": accepted})
        if accepted:
            exprs, best = trial, min(v, best)
    return {"outputs": exprs, "loss_validation": best, "notes": notes, "history": history}


def _snap_coefficients(expr: sp.Expr, symbols: Sequence[sp.Symbol]) -> sp.Expr:
    """``expr`` with the numeric factor of each additive term (``1.0998 sin(2)``, a float
    times an exact number after simplification) replaced by its simplest exact form when
    one is within the tolerance of :func:`kanpde.interpret.formula.constant_candidates`."""
    from kanpde.interpret.formula import constant_candidates

    terms = []
    for term in sp.Add.make_args(expr):
        coeff, rest = term.as_independent(*symbols, as_Add=False)
        if coeff.atoms(sp.Float) and coeff.is_number and coeff != 0:
            cands = constant_candidates(float(coeff))
            if cands:
                coeff = cands[0]
        terms.append(coeff * rest)
    return sp.Add(*terms)
