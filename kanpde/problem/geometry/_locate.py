"""Point location in simplicial meshes with a uniform bucket grid."""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["CellLocator", "simplex_volume"]

_EPS = 1e-12


class CellLocator:
    """Finds the simplex containing each query point.

    Every cell is registered in the buckets of a uniform grid that its bounding box
    overlaps; a query tests (by barycentric coordinates) only the cells of its bucket.

    Args:
        verts: cell vertices, shape ``(C, d+1, d)`` float64.
    """

    def __init__(self, verts: Tensor) -> None:
        n_cells, _, d = verts.shape
        self.d = d
        self._v0 = verts[:, 0].clone()
        edges = (verts[:, 1:] - verts[:, :1]).transpose(1, 2)  # (C, d, d), columns are edges
        self._inv = torch.linalg.inv(edges)
        lo_c, hi_c = verts.min(dim=1).values, verts.max(dim=1).values
        self.lo, self.hi = lo_c.min(dim=0).values, hi_c.max(dim=0).values
        self.nb = max(1, round(n_cells ** (1.0 / d)))
        self.h = ((self.hi - self.lo) / self.nb).clamp_min(1e-300)
        i0, i1 = self._bucket(lo_c), self._bucket(hi_c)
        span = i1 - i0 + 1
        s_max = int(span.max())
        offsets = torch.cartesian_prod(*([torch.arange(s_max)] * d)).reshape(-1, d)
        cand = i0[:, None, :] + offsets[None]  # (C, S^d, d)
        valid = (offsets[None] < span[:, None, :]).all(dim=-1)
        bucket = self._ravel(cand)[valid]
        cell = torch.arange(n_cells)[:, None].expand_as(valid)[valid]
        order = torch.argsort(bucket, stable=True)
        bucket, cell = bucket[order], cell[order]
        n_buckets = self.nb**d
        counts = torch.bincount(bucket, minlength=n_buckets)
        start = torch.cumsum(counts, 0) - counts
        width = max(1, int(counts.max()))
        self._table = torch.full((n_buckets, width), -1, dtype=torch.long)
        self._table[bucket, torch.arange(bucket.shape[0]) - start[bucket]] = cell

    def _bucket(self, x: Tensor) -> Tensor:
        idx = torch.floor((x - self.lo.to(x)) / self.h.to(x)).long()
        return idx.clamp(0, self.nb - 1)

    def _ravel(self, idx: Tensor) -> Tensor:
        flat = torch.zeros(idx.shape[:-1], dtype=torch.long, device=idx.device)
        for j in range(self.d):
            flat = flat * self.nb + idx[..., j]
        return flat

    def locate(self, x: Tensor) -> Tensor:
        """Index of a cell containing each point, ``-1`` where none does.

        Args:
            x: points ``(N, d)``.

        Returns:
            ``(N,)`` long tensor.
        """
        x64 = x.detach().to(dtype=torch.float64, device="cpu")
        width = self._table.shape[1]
        step = max(1, 2_000_000 // (width * (self.d + 1) * self.d))
        out = [self._locate(x64[i : i + step]) for i in range(0, x64.shape[0], step)]
        res = torch.cat(out) if out else torch.empty(0, dtype=torch.long)
        return res.to(x.device)

    def _locate(self, x: Tensor) -> Tensor:
        tol = 1e-9 * float((self.hi - self.lo).max())
        in_box = ((x >= self.lo - tol) & (x <= self.hi + tol)).all(dim=1)
        cand = self._table[self._ravel(self._bucket(x))]  # (n, K)
        cc = cand.clamp_min(0)
        rel = x[:, None, :] - self._v0[cc]  # (n, K, d)
        lam = torch.einsum("nkij,nkj->nki", self._inv[cc], rel)
        lam0 = 1.0 - lam.sum(dim=-1)
        ok = (cand >= 0) & (lam >= -_EPS).all(dim=-1) & (lam0 >= -_EPS) & in_box[:, None]
        first = torch.argmax(ok.to(torch.int8), dim=1)
        found = ok.any(dim=1)
        return torch.where(found, cand.gather(1, first[:, None])[:, 0], -1)


def simplex_volume(verts: Tensor) -> Tensor:
    """Volumes of simplices ``(C, d+1, d) -> (C,)``: ``|det(edges)| / d!``."""
    d = verts.shape[-1]
    edges = verts[:, 1:] - verts[:, :1]
    return torch.linalg.det(edges).abs() / math.factorial(d)
