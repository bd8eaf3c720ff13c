"""Output scaling: a network that predicts dimensionless fields, times their scales.

``OutputScale(net, scale)`` computes ``u_j(x) = U_j N_j(x)``: the network ``N`` works on fields
of unit size whatever the units of the problem, and ``U_j`` (a fixed buffer, not trained)
carries field ``j``'s characteristic magnitude. Its jet is the network's jet times ``U``
(value, gradient and every second-order channel are linear in the output), so it works on
the ``"jet"`` and ``"autograd"`` engines alike. :mod:`kanpde.training.scaling` chooses ``U``;
:mod:`kanpde.nn.spec` stores it with the model, so a loaded run predicts the same values.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from kanpde.core.engines import model_jet
from kanpde.core.jet import Channels, Jet


class OutputScale(nn.Module):
    """``u = U * N(x)`` column by column.

    Args:
        model: the network ``N``, ``(N, d) -> (N, m)`` (a ``jet`` method is used when it
            has one).
        scale: ``(m,)`` positive finite scales ``U`` (one per output field).

    Raises:
        ValueError: a scale that is not positive and finite.
    """

    def __init__(self, model: nn.Module, scale: Sequence[float]):
        super().__init__()
        values = [float(s) for s in scale]
        bad = [s for s in values if not (s > 0.0 and math.isfinite(s))]
        if bad or not values:
            raise ValueError(f"output scales must be positive and finite, got {values}")
        self.model = model
        like = next((t for t in list(model.parameters()) + list(model.buffers())
                     if t.is_floating_point()), None)
        kw = {} if like is None else {"dtype": like.dtype, "device": like.device}
        self.register_buffer("scale", torch.tensor(values, **kw))  # (m,)
        self.in_dim = getattr(model, "in_dim", None)
        self.out_dim = getattr(model, "out_dim", None)

    @property
    def scales(self) -> list[float]:
        """``U`` as numbers."""
        return [float(s) for s in self.scale]

    def forward(self, x: Tensor) -> Tensor:
        """``(N, d) -> (N, m)``."""
        return self.model(x) * self.scale

    def jet(self, x: Tensor, second: Tensor | Channels | None = None,
            kernel: str = "auto") -> Jet:
        """The network's jet times ``U`` (``kernel`` goes to the network)."""
        if not hasattr(self.model, "jet"):
            from kanpde.core.engines import autograd_jet

            net = autograd_jet(self.model, x, second)
        else:
            net = model_jet(self.model, x, second, kernel)
        return Jet(net.value * self.scale, net.grad * self.scale, net.second * self.scale,
                   net.channels)


def output_scales(model: nn.Module) -> list[float] | None:
    """The scales ``U`` of the :class:`OutputScale` inside ``model`` (also under a hard
    constraint), ``None`` when there is none."""
    seen = 0
    while seen < 8:
        if isinstance(model, OutputScale):
            return model.scales
        if not hasattr(model, "model"):
            return None
        model = model.model
        seen += 1
    return None
