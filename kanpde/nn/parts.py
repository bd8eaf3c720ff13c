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


def trainable_parameters(model: nn.Module) -> int:
    """Number of scalars in the parameters that require gradients."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
