"""An external library's network seen through kanpde's jet protocol (for the anchors)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from kanpde.core.jet import Channels, Jet


class LibraryField(nn.Module):
    """A library's network seen through kanpde's jet protocol.

    Args:
        forward: ``(N, d) -> (N, m)`` the network.
        derivatives: ``(x, value, need_second) -> (grad (N, d, m), hessian (N, m, d, d) or
            None)``, computed with the library's own autograd code.
    """

    def __init__(self, forward: Callable[[Tensor], Tensor],
                 derivatives: Callable[[Tensor, Tensor, bool], tuple[Tensor, Tensor | None]]):
        super().__init__()
        self._forward = forward
        self._derivatives = derivatives

    def forward(self, x: Tensor) -> Tensor:
        out = self._forward(x)
        return out if out.ndim == 2 else out[:, None]

    def jet(self, x: Tensor, second: Tensor | Channels | None = None) -> Jet:
        """Value ``(N, m)``, gradient ``(N, d, m)`` and channels ``(N, R, m)`` at ``x``."""
        channels = second if isinstance(second, Channels) else Channels(
            second if second is not None else x.new_zeros(0, x.shape[1], x.shape[1]))
        value = self.forward(x)
        grad, hess = self._derivatives(x, value, channels.count > 0)
        if channels.count:
            sec = torch.einsum("rab,Njab->Nrj", channels.matrices.to(x), hess)  # (N, R, m)
        else:
            sec = x.new_zeros(x.shape[0], 0, value.shape[1])
        return Jet(value, grad, sec, channels)
