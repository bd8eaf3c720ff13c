"""Derivative engines: the forward jet (default) and nested autograd (the reference).

Both return a :class:`~kanpde.jet.Jet` of the model's output field at the points: value
``(N, m)``, gradient ``(N, d, m)`` and channels ``<W_r, Hess u_j>`` ``(N, R, m)``. The
"autograd" engine builds them with ``torch.autograd.grad(create_graph=True)`` through the
model's plain forward, so a loss made from it can still be differentiated for training.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from kanpde.jet import Channels, Jet
from kanpde.nn.common import make_channels

ENGINES = ("jet", "autograd")


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
        grads = [torch.autograd.grad(value[:, j].sum(), x, create_graph=True)[0]
                 for j in range(n_out)]  # m x (N, d)
        grad = torch.stack(grads, dim=2)  # (N, d, m)
        w = channels.matrices  # (R, d, d)
        rows = [a for a in range(dim) if bool((w[:, a, :] != 0).any())]
        second_out = x.new_zeros(n_points, channels.count, n_out)  # (N, R, m)
        for j in range(n_out):
            for a in rows:
                hess_row = torch.autograd.grad(grads[j][:, a].sum(), x, create_graph=True,
                                               allow_unused=True)[0]  # (N, d)
                if hess_row is None:
                    continue
                contrib = hess_row @ w[:, a, :].T  # (N, R)
                second_out = second_out + torch.nn.functional.pad(
                    contrib[..., None], (j, n_out - j - 1))
    return Jet(value, grad, second_out, channels)


def compute_jet(model: nn.Module, x: Tensor, second: Tensor | Channels | None = None,
                engine: str = "jet") -> Jet:
    """The field's jet at ``x`` by the chosen engine (``"jet"`` or ``"autograd"``)."""
    if engine == "jet":
        return model.jet(x, second=second)
    if engine == "autograd":
        return autograd_jet(model, x, second=second)
    raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
