"""Constructive solid geometry: union, difference and intersection of two domains.

Membership follows boolean logic on the closed operands. The boundary of the result is
made of operand boundary points:

* ``A | B``: points of ``∂A`` not strictly inside ``B``, and of ``∂B`` not strictly inside ``A``;
* ``A - B``: points of ``∂A`` not strictly inside ``B``, and of ``∂B`` inside (closed) ``A``,
  the latter with ``B``'s normals reversed (they point into ``B``);
* ``A & B``: points of ``∂A`` inside (closed) ``B``, and of ``∂B`` inside (closed) ``A``.

("Strictly inside" means inside and farther than ``tol`` from the boundary.) A candidate
is kept only where the result is one-sided there: it lies on the inner side of the point
along the outward normal and not on the outer side (probed at :data:`PROBE` times the
bounding box's diameter). So where operand boundaries coincide the shared piece is
boundary only where the result lies on one side of it: ``square - quarter`` (an L-shape
whose cut-out quarter shares two edges with the square) has no boundary on those edges,
and two boxes joined by a face have none on the face. Boundary sampling draws candidates
on both operands' boundaries by their measure and keeps those on the result's boundary, in
rounds, until ``n`` are kept (see :mod:`kanpde.problem.geometry.base`).

Boundary parts are ``A``'s parts followed by ``B``'s; a name present in both operands is
prefixed with the operand's label, ``"<label>_<name>"`` (labels ``names=("a", "b")`` by
default). ``measure`` is not available (``NotImplementedError``). ``normal`` returns the
normal of the nearest operand boundary that belongs to the result's boundary.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import Tensor

from kanpde.problem.geometry.base import Domain, PieceSet

__all__ = ["Difference", "Intersection", "Union"]

_INF = float("inf")
#: probe distance of the one-sidedness test, relative to the bounding box's diameter
PROBE = 1e-6


class _Boolean(Domain):
    """Common machinery of the boolean operations (abstract)."""

    _filtered = True
    _flip_b = False

    def __init__(self, a: Domain, b: Domain, names: tuple[str, str] = ("a", "b")) -> None:
        if not isinstance(a, Domain) or not isinstance(b, Domain):
            raise ValueError(
                f"{type(self).__name__} operands must be Domains, got "
                f"{type(a).__name__} and {type(b).__name__}"
            )
        if a.dim != b.dim:
            raise ValueError(f"{type(self).__name__}: operands have dimensions {a.dim} and {b.dim}")
        if len(names) != 2 or names[0] == names[1]:
            raise ValueError(f"names must be two distinct labels, got {names!r}")
        self.a, self.b, self.dim = a, b, a.dim
        common = set(a.boundary_parts) & set(b.boundary_parts)
        pa = tuple(f"{names[0]}_{p}" if p in common else p for p in a.boundary_parts)
        pb = tuple(f"{names[1]}_{p}" if p in common else p for p in b.boundary_parts)
        if len(set(pa + pb)) != len(pa) + len(pb):
            raise ValueError(
                f"{type(self).__name__}: boundary part names collide after prefixing: {pa + pb}"
            )
        self.boundary_parts = pa + pb
        self._part_aliases = {}
        self._n_a = len(pa)
        self.bbox = self._make_bbox()

    def _make_bbox(self) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def _valid(self, x: Tensor, tol: float) -> tuple[Tensor, Tensor]:
        """Whether ``∂A`` and ``∂B`` at ``x`` belong to the result's boundary, each ``(N,)``."""
        raise NotImplementedError

    def _one_sided(self, x: Tensor, n: Tensor) -> Tensor:
        """Whether the result lies on the inner side of ``x`` along the outward normal ``n``
        and not on its outer side (probes at ``PROBE`` times the bounding box's diameter),
        ``(N,)``."""
        lo, hi = self.bbox
        eps = PROBE * float((hi - lo).norm())
        return self._inside(x - eps * n) & ~self._inside(x + eps * n)

    def _part_distance(self, x: Tensor, tol: float) -> Tensor:
        va, vb = self._valid(x, tol)
        nb = self.b.normal(x)
        va = va & self._one_sided(x, self.a.normal(x))
        vb = vb & self._one_sided(x, -nb if self._flip_b else nb)
        da = torch.where(va[:, None], self.a._part_distance(x, tol), _INF)
        db = torch.where(vb[:, None], self.b._part_distance(x, tol), _INF)
        return torch.cat([da, db], dim=1)

    def normal(self, x: Tensor, tol: float = 1e-9) -> Tensor:
        """Outward unit normal, ``(N, d) -> (N, d)``.

        Uses the nearest operand boundary that belongs to the result's boundary at tolerance
        ``tol`` (or the nearest operand boundary if none does).
        """
        dist = self._part_distance(x, tol)
        raw = torch.cat([self.a._part_distance(x, tol), self.b._part_distance(x, tol)], dim=1)
        dist = torch.where(torch.isinf(dist).all(dim=1, keepdim=True), raw, dist)
        from_a = dist.argmin(dim=1) < self._n_a
        nb = self.b.normal(x)
        if self._flip_b:
            nb = -nb
        return torch.where(from_a[:, None], self.a.normal(x), nb)

    def _pieces(self) -> list[PieceSet]:
        out = list(self.a._pieces())
        for ps in self.b._pieces():
            out.append(replace(ps, part=ps.part + self._n_a, flip=ps.flip != self._flip_b))
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.a!r}, {self.b!r})"


class Union(_Boolean):
    """``A ∪ B`` (also ``a | b``).

    Args:
        a: first operand.
        b: second operand (same dimension).
        names: labels prefixed to colliding part names.
    """

    def _make_bbox(self) -> tuple[Tensor, Tensor]:
        (la, ha), (lb, hb) = self.a.bbox, self.b.bbox
        return torch.minimum(la, lb), torch.maximum(ha, hb)

    def _inside(self, x: Tensor) -> Tensor:
        return self.a._inside(x) | self.b._inside(x)

    def _valid(self, x: Tensor, tol: float) -> tuple[Tensor, Tensor]:
        return ~self.b._strictly_inside(x, tol), ~self.a._strictly_inside(x, tol)


class Difference(_Boolean):
    """``A \\ B`` (also ``a - b``); normals on ``∂B`` point into ``B``.

    Args:
        a: domain to cut from.
        b: domain removed (same dimension).
        names: labels prefixed to colliding part names.
    """

    _flip_b = True

    def _make_bbox(self) -> tuple[Tensor, Tensor]:
        return self.a.bbox[0].clone(), self.a.bbox[1].clone()

    def _inside(self, x: Tensor) -> Tensor:
        return self.a._inside(x) & ~self.b._strictly_inside(x, 0.0)

    def _valid(self, x: Tensor, tol: float) -> tuple[Tensor, Tensor]:
        return ~self.b._strictly_inside(x, tol), self.a.inside(x, tol)


class Intersection(_Boolean):
    """``A ∩ B`` (also ``a & b``).

    Args:
        a: first operand.
        b: second operand (same dimension).
        names: labels prefixed to colliding part names.

    Raises:
        ValueError: if the bounding boxes do not overlap.
    """

    def _make_bbox(self) -> tuple[Tensor, Tensor]:
        (la, ha), (lb, hb) = self.a.bbox, self.b.bbox
        lo, hi = torch.maximum(la, lb), torch.minimum(ha, hb)
        if not bool((hi > lo).all()):
            raise ValueError("Intersection: the operands' bounding boxes do not overlap")
        return lo, hi

    def _inside(self, x: Tensor) -> Tensor:
        return self.a._inside(x) & self.b._inside(x)

    def _valid(self, x: Tensor, tol: float) -> tuple[Tensor, Tensor]:
        return self.b.inside(x, tol), self.a.inside(x, tol)
