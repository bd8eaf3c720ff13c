"""Parametrised boundary pieces and the rejection/grid loops used by :mod:`.base`."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = [
    "PieceSet",
    "grid_filtered",
    "map_pieces",
    "rejection",
    "rejection_tuple",
    "select_by_measure",
]

_F64 = torch.float64
Mapper = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]


@dataclass(frozen=True)
class PieceSet:
    """A group of boundary pieces sharing one parametrisation.

    Attributes:
        measure: measure of each piece, shape ``(K,)`` float64.
        part: part index of each piece (into the owning domain's parts), shape ``(K,)`` long.
        n_params: number of unit-cube coordinates the map consumes.
        mapper: ``(k (n,), s (n, n_params)) -> (points (n, d), normals (n, d))``; uniform by
            measure on piece ``k`` for ``s`` uniform in ``[0, 1)^n_params``.
        flip: whether normals are reversed (the inner boundary of a CSG difference).
    """

    measure: Tensor
    part: Tensor
    n_params: int
    mapper: Mapper
    flip: bool = False


def select_by_measure(measure: Tensor, u0: Tensor) -> tuple[Tensor, Tensor]:
    """Pick pieces in proportion to their measure and rescale the picking coordinate.

    Args:
        measure: non-negative measures with a positive sum, shape ``(K,)``.
        u0: coordinates in ``[0, 1)``, shape ``(n,)``.

    Returns:
        ``(k, s)``: chosen piece indices ``(n,)`` (never a zero-measure piece) and the
        position of ``u0`` inside the chosen piece's sub-interval, rescaled to ``[0, 1)``,
        shape ``(n,)``.
    """
    cum = torch.cumsum(measure, 0)
    total = cum[-1]
    v = u0 * total
    k = torch.searchsorted(cum, v, right=True)
    last = int(torch.nonzero(measure > 0)[-1])
    k = torch.where(k >= measure.shape[0], torch.full_like(k, last), k)
    start = cum[k] - measure[k]
    s = ((v - start) / measure[k]).clamp(0.0, 1.0 - 2.0**-53)
    return k, s


def map_pieces(pieces: list[PieceSet], u: Tensor, dim: int) -> tuple[Tensor, Tensor, Tensor]:
    """Map unit-cube points ``u (n, q)`` to boundary points, normals and part indices."""
    measure = torch.cat([p.measure for p in pieces])
    group = torch.cat([torch.full((p.measure.shape[0],), g) for g, p in enumerate(pieces)])
    offset = torch.cumsum(torch.tensor([0] + [p.measure.shape[0] for p in pieces]), 0)
    k, s0 = select_by_measure(measure, u[:, 0])
    s = torch.cat([s0[:, None], u[:, 1:]], dim=1)
    n = u.shape[0]
    pts = torch.empty(n, dim, dtype=_F64)
    nrm = torch.empty(n, dim, dtype=_F64)
    part = torch.empty(n, dtype=torch.long)
    for g, ps in enumerate(pieces):
        rows = torch.nonzero(group[k] == g)[:, 0]
        if rows.numel() == 0:
            continue
        local = k[rows] - offset[g]
        p, nv = ps.mapper(local, s[rows, : ps.n_params])
        pts[rows] = p
        nrm[rows] = -nv if ps.flip else nv
        part[rows] = ps.part[local]
    return pts, nrm, part


def rejection(
    draw: Callable[[int], Tensor],
    keep: Callable[[Tensor], Tensor],
    n: int,
    acceptance: float,
    name: str,
) -> Tensor:
    return rejection_tuple(
        lambda m: (draw(m),), lambda c: keep(c[0]), n, name, acceptance=acceptance
    )[0]


def rejection_tuple(
    draw: Callable[[int], tuple[Tensor, ...]],
    keep: Callable[[tuple[Tensor, ...]], Tensor],
    n: int,
    name: str,
    acceptance: float = 0.5,
) -> tuple[Tensor, ...]:
    """Draw candidates in rounds and keep accepted ones in order until ``n`` are kept."""
    kept: list[tuple[Tensor, ...]] = []
    have = drawn = accepted = 0
    while have < n:
        need = n - have
        m = min(int(math.ceil(need / acceptance * 1.2)) + 16, 2_000_000)
        cand = draw(m)
        mask = keep(cand)
        kept.append(tuple(c[mask] for c in cand))
        got = int(mask.sum())
        have, drawn, accepted = have + got, drawn + m, accepted + got
        acceptance = max(accepted / drawn, 1e-4)
        if accepted == 0 and drawn >= 1_000_000:
            raise ValueError(f"{name}: rejection sampling found no points; is it empty?")
    return tuple(torch.cat(parts)[:n] for parts in zip(*kept, strict=True))


def grid_filtered(
    grid: Callable[[int], tuple[Tensor, ...]],
    keep: Callable[[tuple[Tensor, ...]], Tensor],
    n: int,
    q: int,
) -> tuple[Tensor, ...]:
    """A filtered grid whose resolution is tuned so that about ``n`` points survive."""
    size = n
    for _ in range(3):
        cand = grid(size)
        mask = keep(cand)
        total = cand[0].shape[0]
        frac = max(int(mask.sum()), 1) / total
        new_size = max(1, round((n / frac) ** (1.0 / q))) ** q
        if new_size == total:
            break
        size = new_size
    cand = grid(size)
    mask = keep(cand)
    return tuple(c[mask] for c in cand)
