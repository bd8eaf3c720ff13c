"""Multilayer perceptrons with a value forward and a second-order jet forward.

``h_{l+1} = sigma(h_l A_l + b_l)`` with a fixed activation ``sigma`` on hidden layers and a
linear output layer. The jet forward uses the same rules as the KAN (linear map, then a
pointwise function), so both families are differentiated the same way.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from kanpde.core.activations import ACTIVATION_VALUES, ACTIVATIONS
from kanpde.core.jet import Channels, Jet, make_channels
from kanpde.nn._checks import check_points, check_widths


class MLP(nn.Module):
    """Fully connected network with Glorot-normal weights and zero biases.

    Args:
        widths: ``[d, n_1, ..., m]``.
        activation: one of ``"tanh"``, ``"sin"``, ``"silu"``, ``"gelu"``.
        embedding: optional input module (see :mod:`kanpde.nn.embed`).
        seed: seed of the generator for the initial weights.
    """

    def __init__(self, widths: Sequence[int], activation: str = "tanh", *,
                 embedding: nn.Module | None = None, seed: int = 0,
                 dtype: torch.dtype = torch.float64, device: torch.device | str | None = None):
        super().__init__()
        check_widths(widths)
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, "
                             f"got {activation!r}")
        self.widths = list(widths)
        self.activation = activation
        self.embedding = embedding
        first = widths[0]
        if embedding is not None:
            if getattr(embedding, "in_dim", first) != first:
                raise ValueError(f"embedding expects {embedding.in_dim} coordinates but "
                                 f"widths[0] = {first}")
            first = embedding.out_dim
        dims = [first] + list(widths[1:])
        gen = torch.Generator().manual_seed(seed)
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for n_in, n_out in zip(dims[:-1], dims[1:], strict=True):
            std = (2.0 / (n_in + n_out)) ** 0.5
            w = torch.randn(n_in, n_out, generator=gen, dtype=dtype) * std  # (n_in, n_out)
            self.weights.append(nn.Parameter(w.to(device)))
            self.biases.append(nn.Parameter(torch.zeros(n_out, dtype=dtype, device=device)))

    @property
    def in_dim(self) -> int:
        return self.widths[0]

    @property
    def out_dim(self) -> int:
        return self.widths[-1]

    def forward(self, x: Tensor) -> Tensor:
        """``(N, d) -> (N, m)`` field values."""
        check_points(x, self.in_dim, self.weights[0].dtype)
        sigma = ACTIVATION_VALUES[self.activation]
        h = self.embedding(x) if self.embedding is not None else x
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = h @ w + b
            if i < last:
                h = sigma(h)
        return h

    def jet(self, x: Tensor, second: Tensor | Channels | None = None) -> Jet:
        """Value, gradient and second-order channels at ``x`` ``(N, d)``; see ``KAN.jet``."""
        check_points(x, self.in_dim, self.weights[0].dtype)
        jet = Jet.identity(x, make_channels(second, x))
        if self.embedding is not None:
            jet = self.embedding.jet(jet)
        sigma = ACTIVATIONS[self.activation]
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            jet = jet.linear(w, b)
            if i < last:
                jet = jet.map(sigma)
        return jet
