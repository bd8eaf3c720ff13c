"""The KAN sparsity penalty (Liu et al. 2024, "KAN: Kolmogorov-Arnold Networks", §2.5.1).

For layer ``l`` with edge functions ``phi_ij`` evaluated at the layer inputs ``h`` of the
``N`` interior collocation points::

    |phi_ij|_1 = (1/N) sum_n |phi_ij(h_i(n))|
    |Phi_l|_1  = sum_ij |phi_ij|_1
    S(Phi_l)   = -sum_ij p_ij log p_ij,     p_ij = |phi_ij|_1 / |Phi_l|_1

and the penalty is ``l1 sum_l |Phi_l|_1 + entropy sum_l S(Phi_l)`` (the paper's
``lambda (sum |Phi|_1 + mu sum S)`` with ``lambda = l1``, ``mu = entropy / l1``). Edges with
``|phi|_1 = 0`` (pruned) contribute ``0 log 0 = 0``. Everything is differentiable in the
edge parameters (``|.|`` almost everywhere).
"""

from __future__ import annotations

import torch
from torch import Tensor

from kanpde.nn.kan import KAN


def edge_l1(net: KAN, x: Tensor) -> list[Tensor]:
    """Per layer, the ``(n_in, n_out)`` norms ``|phi_ij|_1`` at the points ``x`` ``(N, d)``."""
    return [layer.edge_values(h).abs().mean(0)
            for layer, h in zip(net.layers, net.layer_inputs(x), strict=True)]


def layer_entropy(norms: Tensor) -> Tensor:
    """``S = -sum p log p`` of ``p = norms / sum(norms)`` (zeros contribute 0).

    Args:
        norms: ``(n_in, n_out)`` non-negative ``|phi_ij|_1``.
    """
    total = norms.sum()
    p = norms / total.clamp_min(torch.finfo(norms.dtype).tiny)
    positive = p > 0
    safe = torch.where(positive, p, torch.ones_like(p))
    return -(torch.where(positive, p * torch.log(safe), torch.zeros_like(p))).sum()


def sparsity_penalty(net: KAN, x: Tensor, l1: float = 0.0, entropy: float = 0.0) -> Tensor:
    """``l1 sum_l |Phi_l|_1 + entropy sum_l S(Phi_l)`` at the points ``x``.

    Args:
        net: the KAN (not a wrapper around it).
        x: ``(N, d)`` collocation points.
        l1, entropy: the two weights (``>= 0``).

    Returns:
        A scalar tensor with a graph to the KAN's parameters.

    Raises:
        ValueError: ``net`` is not a :class:`~kanpde.nn.kan.KAN` or a weight is negative.
    """
    if not isinstance(net, KAN):
        raise ValueError(f"the sparsity penalty needs a KAN, got {type(net).__name__}")
    if l1 < 0 or entropy < 0:
        raise ValueError(f"penalty weights must be >= 0, got l1={l1}, entropy={entropy}")
    norms = edge_l1(net, x)
    out = x.new_zeros(())
    for n in norms:
        if l1:
            out = out + l1 * n.sum()
        if entropy:
            out = out + entropy * layer_entropy(n)
    return out
