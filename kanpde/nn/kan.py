"""Kolmogorov–Arnold Networks: a stack of :class:`~kanpde.nn.kan_layer.KANLayer` s behind an
optional input embedding, with a value forward and a second-order jet forward.

The layers' edge functions, their jets, grid extension and grid update, and symbolic or
pruned edges are :mod:`kanpde.nn.kan_layer`; ``spline_order`` is the polynomial degree ``k``
of the B-splines (:mod:`kanpde.core.spline`).

Multiplication nodes (pykan's ``MultKAN``, Liu et al., "KAN 2.0", arXiv 2408.10205, §2.1):
a hidden node layer of width ``n = n_add + n_mult`` may end in ``n_mult`` nodes that multiply
two inputs instead of summing. The layer before it then has ``n_add + 2 n_mult`` outputs
("subnodes"); node ``j < n_add`` is subnode ``j`` and multiplication node ``m`` is the product
of subnodes ``n_add + 2m`` and ``n_add + 2m + 1``. Products of functions of different
variables (``e^{-t} sin(pi x)``, the separable solutions of linear PDEs) are then exact in a
one-hidden-layer KAN. Jets go through the product rule (:meth:`kanpde.core.jet.Jet.__mul__`:
``S_r(ab) = a S_r(b) + b S_r(a) + 2 grad a^T W_r grad b``); the autograd engine
differentiates the tensor product.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from kanpde.core.jet import Channels, Jet, make_channels
from kanpde.nn._checks import check_points, check_widths
from kanpde.nn.kan_layer import KANLayer


def _per_layer(value, n_layers: int, name: str) -> list:
    if isinstance(value, (list, tuple)) and not (
        name == "grid_range" and len(value) == 2 and not isinstance(value[0], (list, tuple))
    ):
        if len(value) != n_layers:
            raise ValueError(f"{name}: expected one entry per layer ({n_layers}), "
                             f"got {len(value)}")
        return list(value)
    return [value] * n_layers


class KAN(nn.Module):
    """A stack of :class:`KANLayer` s, optionally behind an input embedding.

    Args:
        widths: ``[d, n_1, ..., m]``: input dimension, hidden widths, outputs.
        grid_size: ``G`` for every layer, or one per layer.
        spline_order: ``k`` for every layer, or one per layer.
        grid_range: base range ``(a, b)`` for every layer, or one per layer.
        embedding: module mapping ``(N, d)`` coordinates to the first layer's inputs
            (see :mod:`kanpde.nn.embed`); it must offer ``forward``, ``jet`` and ``out_dim``.
        mult: per hidden node layer, how many of its ``widths[l]`` nodes are
            multiplication nodes (the last ones; default none, see the module docstring).
        seed: seed of the generator for the initial parameters.

    Example:
        >>> model = KAN([2, 10, 1], grid_size=10, spline_order=3)
        >>> jet = model.jet(torch.rand(8, 2, dtype=torch.float64), second=torch.eye(2)[None])
    """

    def __init__(self, widths: Sequence[int], grid_size: int | Sequence[int] = 5,
                 spline_order: int | Sequence[int] = 3,
                 grid_range: tuple[float, float] | Sequence[tuple[float, float]] = (-1.0, 1.0),
                 *, embedding: nn.Module | None = None, mult: Sequence[int] | None = None,
                 noise_scale: float = 0.5, seed: int = 0,
                 dtype: torch.dtype = torch.float64, device: torch.device | str | None = None):
        super().__init__()
        check_widths(widths)
        self.widths = list(widths)
        self.embedding = embedding
        first = widths[0]
        if embedding is not None:
            if getattr(embedding, "in_dim", first) != first:
                raise ValueError(f"embedding expects {embedding.in_dim} coordinates but "
                                 f"widths[0] = {first}")
            first = embedding.out_dim
        n_layers = len(widths) - 1
        mult = [0] * (n_layers - 1) if mult is None else [int(m) for m in mult]
        if len(mult) != n_layers - 1 or any(not 0 <= m <= w for m, w in
                                             zip(mult, widths[1:-1], strict=False)):
            raise ValueError(f"mult: one count per hidden layer ({n_layers - 1}), each between "
                             f"0 and the layer's width {list(widths[1:-1])}, got {mult}")
        #: multiplication nodes per hidden node layer (the last ``mult[l]`` of ``widths[l+1]``)
        self.mult = mult
        sizes = _per_layer(grid_size, n_layers, "grid_size")
        orders = _per_layer(spline_order, n_layers, "spline_order")
        ranges = _per_layer(grid_range, n_layers, "grid_range")
        gen = torch.Generator().manual_seed(seed)
        dims = [first] + list(widths[1:])
        outs = [w + m for w, m in zip(dims[1:], [*mult, 0], strict=True)]  # subnodes
        self.layers = nn.ModuleList(
            KANLayer(dims[i], outs[i], sizes[i], orders[i], tuple(ranges[i]),
                     noise_scale=noise_scale, generator=gen, dtype=dtype, device=device)
            for i in range(n_layers))

    @property
    def in_dim(self) -> int:
        return self.widths[0]

    @property
    def out_dim(self) -> int:
        return self.widths[-1]

    def forward(self, x: Tensor) -> Tensor:
        """``(N, d) -> (N, m)`` field values."""
        check_points(x, self.in_dim, self.layers[0].knots.dtype)
        h = self.embedding(x) if self.embedding is not None else x
        for l_, layer in enumerate(self.layers):
            h = self.nodes(l_, layer(h))
        return h

    def _split(self, l_: int) -> tuple[int, int]:
        """``(n_add, n_mult)`` of the node layer after layer ``l_``."""
        m = self.mult[l_] if l_ < len(self.mult) else 0
        return self.layers[l_].n_out - 2 * m, m

    def nodes(self, l_: int, sub: Tensor) -> Tensor:
        """Node values ``(N, widths[l_+1])`` from the subnodes ``(N, n_out)`` of layer ``l_``
        (the identity without multiplication nodes)."""
        n_add, m = self._split(l_)
        if not m:
            return sub
        return torch.cat([sub[:, :n_add], sub[:, n_add::2] * sub[:, n_add + 1::2]], 1)

    def nodes_jet(self, l_: int, sub: Jet) -> Jet:
        """:meth:`nodes` for a jet (product rule on the multiplication nodes)."""
        n_add, m = self._split(l_)
        if not m:
            return sub
        n = sub.width
        prod = sub.select(slice(n_add, n, 2)) * sub.select(slice(n_add + 1, n, 2))
        return Jet.cat([sub.select(slice(0, n_add)), prod])

    def jet(self, x: Tensor, second: Tensor | Channels | None = None,
            kernel: str = "auto") -> Jet:
        """Value, gradient and second-order channels of the field at ``x``.

        Args:
            x: ``(N, d)`` points.
            second: ``(R, d, d)`` symmetric channel matrices, or ``None``.
            kernel: layer implementation, see :meth:`KANLayer.jet`.

        Returns:
            A :class:`~kanpde.core.jet.Jet` with ``value (N, m)``, ``grad (N, d, m)`` and
            ``second (N, R, m)``.
        """
        check_points(x, self.in_dim, self.layers[0].knots.dtype)
        channels = make_channels(second, x)
        if channels.count and any(layer.k == 1 for layer in self.layers):
            warnings.warn("second-order channels requested on a KAN with spline_order=1: "
                          "the spline part of its edges has zero second derivative",
                          stacklevel=2)
        jet = Jet.identity(x, channels)
        if self.embedding is not None:
            jet = self.embedding.jet(jet)
        for l_, layer in enumerate(self.layers):
            jet = self.nodes_jet(l_, layer.jet(jet, kernel))
        return jet

    def layer_inputs(self, x: Tensor) -> list[Tensor]:
        """The inputs ``(N, n_in)`` of every layer at the points ``x``."""
        h = self.embedding(x) if self.embedding is not None else x
        inputs = []
        for l_, layer in enumerate(self.layers):
            inputs.append(h)
            h = self.nodes(l_, layer(h))
        return inputs

    @torch.no_grad()
    def update_grid(self, x: Tensor | Sequence[Tensor], grid_eps: float = 0.02, *,
                    margin: float = 0.01, tol: float | None = 1e-9) -> dict:
        """Move every layer's knots to its activations at the points ``x``, keeping the
        function there.

        pykan's ``update_grid_from_samples`` (Liu et al., "KAN", 2024, §2.5) applied layer by
        layer: layer ``l``'s knots are placed from its inputs computed through the already
        updated layers ``0 .. l-1`` (the updated network's own activations), over their range
        widened by ``margin`` of it on each side, and its coefficients are refitted there
        (:meth:`KANLayer.update_grid`). With ``tol`` each layer keeps its outputs at those
        inputs to ``tol`` relative to their largest magnitude (inputs whose moved knots
        cannot hold the function keep their old breakpoints, which is exact); the network's
        values at ``x`` then move by at most about ``tol`` times the layers' amplification,
        in practice by round-off (``max_change`` ~1e-15 on a trained KAN [2, 16, 16, 3]).

        Args:
            x: ``(S, d)`` points, or several such sets (interior and condition points), all
                of whose activations the new grids cover.
            grid_eps: uniform fraction of the new knots (1: uniform, 0: sample quantiles).
            margin: fraction of each activation range added on both sides.
            tol: per-layer tolerance, or ``None`` for pykan's plain least-squares transfer.

        Returns:
            ``{"layers": [per-layer report of KANLayer.update_grid], "max_change": r}`` with
            ``r = max |f_new(x) - f_old(x)| / max |f_old(x)|`` over the network outputs.
            Rebuild any optimiser afterwards (coefficients are new parameters).
        """
        if not isinstance(x, Tensor):
            x = torch.cat([torch.as_tensor(p) for p in x], dim=0)
        check_points(x, self.in_dim, self.layers[0].knots.dtype)
        before = self(x)
        h = self.embedding(x) if self.embedding is not None else x
        layers = []
        for l_, layer in enumerate(self.layers):
            layers.append(layer.update_grid(h, grid_eps, margin=margin, tol=tol))
            h = self.nodes(l_, layer(h))
        scale = float(before.abs().max())
        change = float((h - before).abs().max()) / scale if scale > 0 else 0.0
        return {"layers": layers, "max_change": change}

    def extend_grid(self, grid_size: int | Sequence[int]) -> None:
        """Refine every layer's grid to ``grid_size`` intervals (least-squares transfer)."""
        for layer, size in zip(self.layers, _per_layer(grid_size, len(self.layers),
                                                       "grid_size"), strict=True):
            layer.extend_grid(size)

    @torch.no_grad()
    def range_fraction(self, x: Tensor) -> list[Tensor]:
        """Per layer, the fraction ``(n_in,)`` of activations outside the grid range."""
        return [layer.range_fraction(h) for layer, h in zip(self.layers, self.layer_inputs(x),
                                                            strict=True)]
