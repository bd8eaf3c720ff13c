"""Derivative engines: the forward jet (default) and nested autograd (the reference).

The vocabulary lives here: :data:`ENGINES` names the derivative method (``"jet"``: push jets
forward through the model's ``jet`` method; ``"autograd"``: nested reverse mode through its
plain forward) and :data:`KERNELS` the implementation of the KAN layers inside a jet
(``"auto"``: fused Triton kernels for CUDA tensors on uniform grids when available, else
PyTorch; ``"torch"``; ``"triton"``). The former engine names ``"jet-torch"`` and
``"jet-triton"`` are accepted as :data:`ENGINE_ALIASES`: engine ``"jet"`` with that kernel.

Both engines return a :class:`~kanpde.core.jet.Jet` of the model's output field at the points: value
``(N, m)``, gradient ``(N, d, m)`` and channels ``<W_r, Hess u_j>`` ``(N, R, m)``. The
"autograd" engine builds them with ``torch.autograd.grad(create_graph=True)`` through the
model's plain forward, so a loss made from it can still be differentiated for training.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from kanpde.core.jet import Channels, Jet, make_channels

ENGINES = ("jet", "autograd")
"""Derivative methods."""
KERNELS = ("auto", "torch", "triton")
"""Implementations of a KAN layer's jet."""
ENGINE_ALIASES = {"jet-torch": "torch", "jet-triton": "triton"}
"""Former engine names: engine ``"jet"`` with this kernel."""


@dataclass(frozen=True)
class Engine:
    """A derivative method and the KAN layer implementation it uses.

    Attributes:
        name: one of :data:`ENGINES`.
        kernel: one of :data:`KERNELS` (used by models whose ``jet`` takes ``kernel``).
    """

    name: str = "jet"
    kernel: str = "auto"


def resolve_engine(engine: str | Engine, kernel: str = "auto") -> Engine:
    """The :class:`Engine` that ``engine`` names (an alias sets the kernel).

    Raises:
        ValueError: an unknown engine or kernel, or an alias whose kernel contradicts
            ``kernel``.
    """
    if isinstance(engine, Engine):
        return engine
    if engine in ENGINE_ALIASES:
        alias = ENGINE_ALIASES[engine]
        if kernel not in ("auto", alias):
            raise ValueError(f"engine {engine!r} means kernel {alias!r}, but kernel is "
                             f"{kernel!r}")
        engine, kernel = "jet", alias
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES} (or {tuple(ENGINE_ALIASES)}), got "
                         f"{engine!r}")
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
    return Engine(engine, kernel)


def takes_kernel(jet: Callable[..., Jet]) -> bool:
    """Whether a ``jet`` method accepts ``kernel=`` (by name or through ``**kwargs``)."""
    try:
        params = inspect.signature(jet).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "kernel" or p.kind is p.VAR_KEYWORD for p in params)


def model_jet(model: nn.Module, x: Tensor, second: Tensor | Channels | None = None,
              kernel: str = "auto") -> Jet:
    """``model.jet(x, second=second)``, with ``kernel=`` when it is not ``"auto"`` and the
    model's ``jet`` takes it (an MLP has no KAN layers and ignores the kernel)."""
    if kernel != "auto" and takes_kernel(model.jet):
        return model.jet(x, second=second, kernel=kernel)
    return model.jet(x, second=second)


def autograd_jet(model: nn.Module, x: Tensor, second: Tensor | Channels | None = None) -> Jet:
    """Value, gradient and channels of ``model`` at ``x`` by nested reverse-mode autograd.

    Only the Hessian rows ``a`` that some ``W_r[a, :]`` touches are computed:
    ``S_rj = sum_a sum_b W_r[a, b] d/dx_b (du_j/dx_a)``.

    Args:
        model: maps ``(N, d)`` to ``(N, m)``; points must not interact (no batch statistics).
        x: ``(N, d)`` points.
        second: ``(R, d, d)`` symmetric channel matrices, or ``None``.
    """
    channels = make_channels(second, x)
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        value = model(x)  # (N, m)
        n_points, dim = x.shape
        n_out = value.shape[1]
        grads = [_grad(value[:, j].sum(), x) for j in range(n_out)]  # m x (N, d)
        grad = torch.stack(grads, dim=2)  # (N, d, m)
        w = channels.matrices  # (R, d, d)
        rows = [a for a in range(dim) if bool((w[:, a, :] != 0).any())]
        columns = []
        for j in range(n_out):
            col = x.new_zeros(n_points, channels.count)  # (N, R)
            for a in rows:
                hess_row = _grad(grads[j][:, a].sum(), x)  # (N, d) row a of the Hessian
                col = col + hess_row @ w[:, a, :].T
            columns.append(col)
        second_out = torch.stack(columns, dim=2)  # (N, R, m)
    return Jet(value, grad, second_out, channels)


def _grad(out: Tensor, x: Tensor) -> Tensor:
    """``d out / dx`` with a graph for further differentiation; zero if ``out`` is constant."""
    if not out.requires_grad:
        return torch.zeros_like(x)
    grad = torch.autograd.grad(out, x, create_graph=True, allow_unused=True)[0]
    return torch.zeros_like(x) if grad is None else grad


def compute_jet(model: nn.Module, x: Tensor, second: Tensor | Channels | None = None,
                engine: str | Engine = "jet") -> Jet:
    """The field's jet at ``x`` by the chosen engine.

    Args:
        model: ``(N, d) -> (N, m)``; the ``"jet"`` engine needs its ``jet`` method.
        x: ``(N, d)`` points.
        second: ``(R, d, d)`` channel matrices, or ``None``.
        engine: an :class:`Engine`, or a name of :data:`ENGINES` or :data:`ENGINE_ALIASES`.
    """
    eng = resolve_engine(engine)
    if eng.name == "autograd":
        return autograd_jet(model, x, second=second)
    return model_jet(model, x, second, eng.kernel)
