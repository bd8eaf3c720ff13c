"""Hard constraints: an output transform ``u = g(x) + D(x) * N(x)`` around any model.

``g`` satisfies the boundary/initial data and ``D`` vanishes where it holds, so the
transformed field satisfies the constraint exactly for every network ``N``. ``g`` and ``D``
are fixed analytic functions; their jets come from nested autograd (they have no
parameters), the network's from whichever engine is in use, combined by the product rule.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from kanpde.derivatives import autograd_jet
from kanpde.jet import Channels, Jet
from kanpde.nn.common import make_channels
from kanpde.usercode import call_user

FieldFn = Callable[[Tensor], Tensor]


class _Function(nn.Module):
    def __init__(self, fn: FieldFn, width: int):
        super().__init__()
        self.fn = fn
        self.width = width

    def forward(self, x: Tensor) -> Tensor:
        name = getattr(self.fn, "__name__", type(self.fn).__name__)
        out = call_user(self.fn, f"hard-constraint function {name!r}", x)
        out = torch.as_tensor(out, dtype=x.dtype, device=x.device)
        if out.ndim == 0:
            out = out.expand(x.shape[0])
        if out.ndim == 1:
            out = out[:, None]
        return out.expand(x.shape[0], max(out.shape[1], 1))


class HardConstraint(nn.Module):
    """``u(x) = g(x) + D(x) * N(x)``.

    Args:
        model: the network ``N`` (``KAN`` or ``MLP``), ``(N, d) -> (N, m)``.
        particular: ``g(x)``: ``(N, d) -> (N,)`` or ``(N, m)``; ``None`` for zero.
        distance: ``D(x)``: ``(N, d) -> (N,)`` or ``(N, m)``, zero on the constrained set.
    """

    def __init__(self, model: nn.Module, distance: FieldFn, particular: FieldFn | None = None):
        super().__init__()
        self.model = model
        self.distance = _Function(distance, 1)
        self.particular = None if particular is None else _Function(particular, 1)
        self.in_dim = getattr(model, "in_dim", None)
        self.out_dim = getattr(model, "out_dim", None)

    def forward(self, x: Tensor) -> Tensor:
        out = self.distance(x) * self.model(x)
        if self.particular is not None:
            out = out + self.particular(x)
        return out

    def jet(self, x: Tensor, second: Tensor | Channels | None = None) -> Jet:
        channels = make_channels(second, x)
        net = self.model.jet(x, second=channels)
        out = _detached(autograd_jet(self.distance, x, channels)) * net
        if self.particular is not None:
            out = out + _detached(autograd_jet(self.particular, x, channels))
        return out


def _detached(jet: Jet) -> Jet:
    return Jet(jet.value.detach(), jet.grad.detach(), jet.second.detach(), jet.channels)
