"""Input maps shared by both model families, each with a value and a jet forward.

* :class:`AffineMap`: the domain's bounding box onto a target range (the KAN grid range),
  ``z = a + (x - lo) (b - a) / (hi - lo)``;
* :class:`FourierFeatures`: ``z = [cos(2 pi x B), sin(2 pi x B)]`` with a fixed Gaussian ``B``;
* :class:`PeriodicEmbedding`: exact periodicity in chosen coordinates,
  ``x_c -> [cos(2 pi n x_c / P_c), sin(2 pi n x_c / P_c)]_{n=1..H}``, others passed through;
* :class:`Chain`: several maps in sequence.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from kanpde.core.activations import cos_derivatives, sin_derivatives
from kanpde.core.jet import Jet


class AffineMap(nn.Module):
    """Map the box ``[lo, hi]`` onto ``[a, b]^d`` coordinatewise.

    Args:
        lo, hi: ``(d,)`` box corners, ``lo < hi``.
        target: ``(a, b)``.
    """

    def __init__(self, lo: Sequence[float], hi: Sequence[float],
                 target: tuple[float, float] = (-1.0, 1.0), *,
                 dtype: torch.dtype = torch.float64, device: torch.device | str | None = None):
        super().__init__()
        lo_t = torch.as_tensor(lo, dtype=dtype, device=device).reshape(-1)
        hi_t = torch.as_tensor(hi, dtype=dtype, device=device).reshape(-1)
        if lo_t.shape != hi_t.shape or not bool((hi_t > lo_t).all()):
            raise ValueError(f"AffineMap needs lo < hi of equal length, got lo={list(lo)}, "
                             f"hi={list(hi)}")
        a, b = target
        #: the constructor arguments (:mod:`kanpde.nn.spec` records them)
        self.box = ([float(v) for v in lo_t.tolist()], [float(v) for v in hi_t.tolist()])
        self.target = (float(a), float(b))
        scale = (b - a) / (hi_t - lo_t)  # (d,)
        self.register_buffer("scale", scale)
        self.register_buffer("shift", a - lo_t * scale)
        self.in_dim = self.out_dim = lo_t.numel()

    def forward(self, x: Tensor) -> Tensor:
        """``(N, d) -> (N, d)``."""
        return x * self.scale + self.shift

    def jet(self, jet: Jet) -> Jet:
        return Jet(jet.value * self.scale + self.shift, jet.grad * self.scale,
                   jet.second * self.scale, jet.channels)


class FourierFeatures(nn.Module):
    """Random Fourier features ``[cos(2 pi x B), sin(2 pi x B)]``, ``B ~ N(0, sigma^2)``.

    Args:
        in_dim: ``d``.
        n_features: number of frequencies ``F``; the output has ``2F`` components.
        sigma: standard deviation of the frequencies.
        keep_input: also pass ``x`` through (output ``d + 2F``).
        seed: seed of the generator for ``B``.
    """

    def __init__(self, in_dim: int, n_features: int, sigma: float = 1.0, *,
                 keep_input: bool = False, seed: int = 0, dtype: torch.dtype = torch.float64,
                 device: torch.device | str | None = None):
        super().__init__()
        if n_features < 1 or sigma <= 0:
            raise ValueError(f"FourierFeatures needs n_features >= 1 and sigma > 0, got "
                             f"{n_features}, {sigma}")
        #: the constructor arguments (:mod:`kanpde.nn.spec` records them)
        self.n_features, self.sigma, self.seed = int(n_features), float(sigma), int(seed)
        gen = torch.Generator().manual_seed(seed)
        freq = torch.randn(in_dim, n_features, generator=gen, dtype=dtype) * sigma
        self.register_buffer("projection", (2 * math.pi * freq).to(device))  # (d, F)
        self.keep_input = keep_input
        self.in_dim = in_dim
        self.out_dim = 2 * n_features + (in_dim if keep_input else 0)

    def forward(self, x: Tensor) -> Tensor:
        """``(N, d) -> (N, out_dim)``."""
        z = x @ self.projection  # (N, F)
        parts = [x] if self.keep_input else []
        return torch.cat(parts + [torch.cos(z), torch.sin(z)], dim=1)

    def jet(self, jet: Jet) -> Jet:
        z = jet.linear(self.projection)
        parts = [jet] if self.keep_input else []
        return Jet.cat(parts + [z.map(cos_derivatives), z.map(sin_derivatives)])


class PeriodicEmbedding(nn.Module):
    """Exactly periodic inputs: ``x_c -> cos, sin(2 pi n x_c / P_c)`` for ``n = 1..harmonics``.

    Args:
        in_dim: ``d``.
        periods: ``{coordinate index: period}``.
        harmonics: number ``H`` of harmonics per periodic coordinate.

    The output holds the non-periodic coordinates first (in order), then ``2H`` features per
    periodic coordinate.
    """

    def __init__(self, in_dim: int, periods: Mapping[int, float], harmonics: int = 1, *,
                 dtype: torch.dtype = torch.float64, device: torch.device | str | None = None):
        super().__init__()
        if not periods or any(not 0 <= c < in_dim for c in periods):
            raise ValueError(f"periods must map coordinate indices in 0..{in_dim - 1} to "
                             f"periods, got {dict(periods)}")
        if any(p <= 0 for p in periods.values()) or harmonics < 1:
            raise ValueError("periods must be positive and harmonics >= 1")
        self.in_dim = in_dim
        #: the constructor arguments (:mod:`kanpde.nn.spec` records them)
        self.periods = {int(c): float(p) for c, p in periods.items()}
        self.harmonics = int(harmonics)
        self.keep = [c for c in range(in_dim) if c not in periods]
        cols = []
        for c, period in sorted(periods.items()):
            for n in range(1, harmonics + 1):
                col = torch.zeros(in_dim, dtype=dtype)
                col[c] = 2 * math.pi * n / period
                cols.append(col)
        self.register_buffer("projection", torch.stack(cols, 1).to(device))  # (d, P*H)
        self.out_dim = len(self.keep) + 2 * len(cols)

    def forward(self, x: Tensor) -> Tensor:
        """``(N, d) -> (N, out_dim)``."""
        z = x @ self.projection
        return torch.cat([x[:, self.keep], torch.cos(z), torch.sin(z)], dim=1)

    def jet(self, jet: Jet) -> Jet:
        z = jet.linear(self.projection)
        return Jet.cat([jet.select(self.keep), z.map(cos_derivatives), z.map(sin_derivatives)])


class Chain(nn.Module):
    """Apply input maps in sequence."""

    def __init__(self, *maps: nn.Module):
        super().__init__()
        for a, b in zip(maps[:-1], maps[1:], strict=True):
            if a.out_dim != b.in_dim:
                raise ValueError(f"Chain: {type(a).__name__} gives {a.out_dim} components but "
                                 f"{type(b).__name__} expects {b.in_dim}")
        self.maps = nn.ModuleList(maps)
        self.in_dim = maps[0].in_dim
        self.out_dim = maps[-1].out_dim

    def forward(self, x: Tensor) -> Tensor:
        for m in self.maps:
            x = m(x)
        return x

    def jet(self, jet: Jet) -> Jet:
        for m in self.maps:
            jet = m.jet(jet)
        return jet
