"""Hard constraints: ``u = g(x) + D(x) * N(x)`` around any model.

``g`` (the particular solution) satisfies the boundary/initial data and ``D`` (the distance
function) vanishes where it holds, so the constrained field satisfies the constraint exactly
for every network ``N``. ``g`` and ``D`` are fixed analytic functions; their jets come from
nested autograd (they have no parameters), the network's from the network's own ``jet``,
combined by the product rule. The KAN layer implementation (``kernel``) is passed to the
network.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from kanpde.core.engines import autograd_jet, model_jet
from kanpde.core.jet import Channels, Jet, make_channels

FieldFn = Callable[[Tensor], Tensor]


class FieldFunction(nn.Module):
    """A fixed function of the points as a module: ``(N, d) -> (N, width)``.

    Args:
        fn: ``(N, d) -> (N,)``, ``(N, w)`` or a scalar.
        width: the least number of output columns.
    """

    def __init__(self, fn: FieldFn, width: int = 1):
        super().__init__()
        self.fn = fn
        self.width = width

    def forward(self, x: Tensor) -> Tensor:
        out = torch.as_tensor(self.fn(x), dtype=x.dtype, device=x.device)
        if out.ndim == 0:
            out = out.expand(x.shape[0])
        if out.ndim == 1:
            out = out[:, None]
        return out.expand(x.shape[0], max(out.shape[1], self.width))


class HardConstraint(nn.Module):
    """``u(x) = g(x) + D(x) * N(x)``.

    Args:
        model: the network ``N`` (``KAN``, ``MLP`` or any module with ``jet``),
            ``(N, d) -> (N, m)``.
        distance: ``D(x)``: ``(N, d) -> (N,)`` or ``(N, m)``, zero on the constrained set.
        particular: ``g(x)``: ``(N, d) -> (N,)`` or ``(N, m)``; ``None`` for zero.
    """

    def __init__(self, model: nn.Module, distance: FieldFn, particular: FieldFn | None = None):
        super().__init__()
        self.model = model
        self.distance = FieldFunction(distance)
        self.particular = None if particular is None else FieldFunction(particular)
        self.in_dim = getattr(model, "in_dim", None)
        self.out_dim = getattr(model, "out_dim", None)

    def forward(self, x: Tensor) -> Tensor:
        out = self.distance(x) * self.model(x)
        if self.particular is not None:
            out = out + self.particular(x)
        return out

    def jet(self, x: Tensor, second: Tensor | Channels | None = None,
            kernel: str = "auto") -> Jet:
        """The constrained field's jet by the product rule; ``kernel`` goes to the network
        (:func:`kanpde.core.engines.model_jet`)."""
        channels = make_channels(second, x)
        net = model_jet(self.model, x, channels, kernel)
        out = _detached(autograd_jet(self.distance, x, channels)) * net
        if self.particular is not None:
            out = out + _detached(autograd_jet(self.particular, x, channels))
        return out


def _detached(jet: Jet) -> Jet:
    return Jet(jet.value.detach(), jet.grad.detach(), jet.second.detach(), jet.channels)
