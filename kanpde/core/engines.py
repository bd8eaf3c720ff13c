"""Derivative engines: the forward jet (default) and nested autograd (the reference).

Both return a :class:`~kanpde.core.jet.Jet` of the model's output field at the points: value
``(N, m)``, gradient ``(N, d, m)`` and channels ``<W_r, Hess u_j>`` ``(N, R, m)``. The
"autograd" engine builds them with ``torch.autograd.grad(create_graph=True)`` through the
model's plain forward, so a loss made from it can still be differentiated for training.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from kanpde.core.jet import Channels, Jet, make_channels

ENGINES = ("jet", "jet-torch", "jet-triton", "autograd")


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
                engine: str = "jet") -> Jet:
    """The field's jet at ``x`` by the chosen engine.

    ``"jet"`` pushes jets forward (fused Triton kernels for KAN layers on CUDA when available),
    ``"jet-torch"`` and ``"jet-triton"`` force the KAN layer implementation, ``"autograd"`` is
    nested reverse mode (the reference).
    """
    if engine in ("jet-torch", "jet-triton"):
        kernel = engine.split("-")[1]
        if hasattr(model, "layers") and hasattr(model.layers[0], "knots"):
            return model.jet(x, second=second, kernel=kernel)
        return model.jet(x, second=second)
    if engine == "jet":
        return model.jet(x, second=second)
    if engine == "autograd":
        return autograd_jet(model, x, second=second)
    raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
