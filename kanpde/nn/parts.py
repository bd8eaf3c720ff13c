"""What a (possibly wrapped) model is made of: the KAN or MLP inside it, the grid sizes of its
KAN layers and its number of trainable parameters."""

from __future__ import annotations

from torch import nn

from kanpde.nn.kan import KAN
from kanpde.nn.mlp import MLP


def network(model: nn.Module) -> nn.Module:
    """The KAN or MLP inside a (possibly) wrapped model (a hard constraint keeps its network
    in ``model.model``); ``model`` itself when there is none."""
    seen = 0
    while not isinstance(model, KAN | MLP) and hasattr(model, "model") and seen < 8:
        model = model.model
        seen += 1
    return model


def grid_sizes(model: nn.Module) -> list[int] | None:
    """The grid size ``G`` of every KAN layer of ``model`` (``None`` when it has no KAN)."""
    net = network(model)
    return [layer.grid_size for layer in net.layers] if isinstance(net, KAN) else None


def layer_parameters(layer) -> int:
    """Trainable numbers a KAN layer really uses: ``G + k + 2`` per spline edge
    (coefficients, base and spline weight), 4 per symbolic edge ``(a, b, c, d)``, 0 per
    masked edge."""
    per_spline = layer.coef.shape[1] + 2
    n_sym = len(layer.symbolic)
    n_spline = (layer.n_in * layer.n_out if layer.edge_mask is None
                else int(layer.edge_mask.sum()))
    return n_spline * per_spline + 4 * n_sym


def trainable_parameters(model: nn.Module) -> int:
    """Number of scalars in the parameters that require gradients, a KAN's edges counted by
    :func:`layer_parameters` (masked edges are fixed at zero, symbolic edges have four
    constants); the plain count for every other model and for a pure-spline KAN."""
    net = network(model)
    if not isinstance(net, KAN):
        return sum(p.numel() for p in model.parameters() if p.requires_grad)
    kan_ids = {id(p) for p in net.layers.parameters()}
    other = sum(p.numel() for p in model.parameters() if p.requires_grad and id(p) not in kan_ids)
    return other + sum(layer_parameters(layer) for layer in net.layers)
