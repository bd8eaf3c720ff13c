"""An efficient-kan–style KAN: the dense-basis baseline the derivative benchmark compares with.

This re-implements the design of the public ``efficient-kan`` package (the KAN most users
train today) so that the benchmark measures the baseline without depending on it. Each layer
evaluates *all* ``G + k`` B-splines of every input by the Cox–de Boor recursion on a dense
tensor and contracts them with the coefficients in one matrix product::

    y = silu(x) W_b^T + B(x) (W_s * s)^T,

with ``B(x)`` of shape ``(N, n_in (G + k))``. Derivatives are only available through nested
autograd (``kanpde.autograd_jet`` works on any module), which is how such models are
differentiated in PINN codes.

Order-0 bases are the indicators of the half-open knot intervals ``[t_j, t_{j+1})``; level
``p = 1..k`` of the recursion is::

    B_{j,p}(x) = (x - t_j) / (t_{j+p} - t_j) B_{j,p-1}(x)
               + (t_{j+p+1} - x) / (t_{j+p+1} - t_{j+1}) B_{j+1,p-1}(x).

Unlike :class:`kanpde.KAN` the spline part vanishes outside the extended knot range.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class KANLinear(nn.Module):
    """One efficient-kan–style layer with ``n_in * n_out`` edge functions.

    Parameters are laid out as in efficient-kan: ``base_weight (n_out, n_in)``,
    ``spline_weight (n_out, n_in, G + k)`` and ``spline_scaler (n_out, n_in)``; the
    ``grid`` buffer ``(n_in, G + 2k + 1)`` holds uniform extended knots on ``grid_range``.

    Args:
        in_features: ``n_in``.
        out_features: ``n_out``.
        grid_size: number ``G`` of base intervals.
        spline_order: ``k``.
        grid_range: base range ``(a, b)``.
        scale_noise: initial spline coefficients are ``U(-1/2, 1/2) * scale_noise / G``.
        generator: source of the initial random numbers (default: seeded with 0).
        dtype: parameter dtype.
        device: parameter device.
    """

    def __init__(self, in_features: int, out_features: int, grid_size: int = 5,
                 spline_order: int = 3, grid_range: tuple[float, float] = (-1.0, 1.0), *,
                 scale_noise: float = 0.1, generator: torch.Generator | None = None,
                 dtype: torch.dtype = torch.float64, device: torch.device | str | None = None):
        super().__init__()
        if grid_size < 1 or spline_order < 0:
            raise ValueError(f"need grid_size >= 1 and spline_order >= 0, got {grid_size}, "
                             f"{spline_order}")
        self.in_features, self.out_features = in_features, out_features
        self.grid_size, self.spline_order = grid_size, spline_order
        lo, hi = (float(v) for v in grid_range)
        step = (hi - lo) / grid_size
        offsets = torch.arange(-spline_order, grid_size + spline_order + 1, dtype=dtype)
        knots = lo + step * offsets  # (G + 2k + 1,)
        self.register_buffer("grid", knots.expand(in_features, -1).contiguous().to(device))
        gen = generator if generator is not None else torch.Generator().manual_seed(0)
        bound = in_features**-0.5

        def uniform(*shape: int) -> Tensor:
            return torch.rand(*shape, generator=gen, dtype=dtype)

        self.base_weight = nn.Parameter(
            ((2 * uniform(out_features, in_features) - 1) * bound).to(device))
        noise = uniform(out_features, in_features, grid_size + spline_order) - 0.5
        self.spline_weight = nn.Parameter((noise * scale_noise / grid_size).to(device))
        self.spline_scaler = nn.Parameter(
            ((2 * uniform(out_features, in_features) - 1) * bound).to(device))

    def extra_repr(self) -> str:
        return (f"{self.in_features} -> {self.out_features}, G={self.grid_size}, "
                f"k={self.spline_order}")

    def b_splines(self, x: Tensor) -> Tensor:
        """All B-spline bases of every input by the Cox–de Boor recursion.

        Args:
            x: ``(N, n_in)``.

        Returns:
            ``(N, n_in, G + k)`` basis values ``B_m(x_i)``.
        """
        t = self.grid  # (n_in, G + 2k + 1)
        x = x[..., None]  # (N, n_in, 1)
        bases = ((x >= t[:, :-1]) & (x < t[:, 1:])).to(x.dtype)  # (N, n_in, G + 2k)
        for p in range(1, self.spline_order + 1):
            rising = (x - t[:, : -(p + 1)]) / (t[:, p:-1] - t[:, : -(p + 1)])
            falling = (t[:, p + 1 :] - x) / (t[:, p + 1 :] - t[:, 1:-p])
            bases = rising * bases[..., :-1] + falling * bases[..., 1:]  # (N, n_in, G+2k-p)
        return bases

    def scaled_spline_weight(self) -> Tensor:
        """``(n_out, n_in, G + k)`` coefficients ``spline_weight * spline_scaler``."""
        return self.spline_weight * self.spline_scaler[..., None]

    def forward(self, x: Tensor) -> Tensor:
        """``(N, n_in) -> (N, n_out)``."""
        n_points = x.shape[0]
        base = F.linear(F.silu(x), self.base_weight)
        spline = F.linear(self.b_splines(x).reshape(n_points, -1),
                          self.scaled_spline_weight().reshape(self.out_features, -1))
        return base + spline


class EfficientKAN(nn.Module):
    """A stack of :class:`KANLinear` layers (efficient-kan's ``KAN``).

    Args:
        widths: ``[d, n_1, ..., m]``.
        grid_size: ``G`` of every layer.
        spline_order: ``k`` of every layer.
        grid_range: base range of every layer.
        seed: seed of the generator for the initial parameters.
        dtype: parameter dtype (float64 by default).
        device: parameter device.

    Example:
        >>> model = EfficientKAN([2, 8, 1], grid_size=5)
        >>> model(torch.zeros(4, 2, dtype=torch.float64)).shape
        torch.Size([4, 1])
    """

    def __init__(self, widths: Sequence[int], grid_size: int = 5, spline_order: int = 3,
                 grid_range: tuple[float, float] = (-1.0, 1.0), *, seed: int = 0,
                 dtype: torch.dtype = torch.float64, device: torch.device | str | None = None):
        super().__init__()
        if len(widths) < 2:
            raise ValueError(f"widths must be [d, ..., m] with at least two entries, "
                             f"got {widths!r}")
        self.widths = list(widths)
        gen = torch.Generator().manual_seed(seed)
        self.layers = nn.ModuleList(
            KANLinear(n_in, n_out, grid_size, spline_order, grid_range, generator=gen,
                      dtype=dtype, device=device)
            for n_in, n_out in zip(widths[:-1], widths[1:], strict=True))

    @property
    def in_dim(self) -> int:
        return self.widths[0]

    @property
    def out_dim(self) -> int:
        return self.widths[-1]

    def forward(self, x: Tensor) -> Tensor:
        """``(N, d) -> (N, m)``."""
        for layer in self.layers:
            x = layer(x)
        return x
