"""Jacobians of the residual vector through the jet engine, and the Gauss-Newton products.

``J = d rho / d theta`` (``M`` rows: residuals; ``P`` columns: the optimised parameters) of the
residual vector of :class:`~kanpde.training.loss.PinnLoss`. The residual at a point depends
only on the model at that point, so the rows of a chunk of ``c`` points need only a forward
pass on those points; three paths exploit this:

``"vmap"``
    per-point Jacobians with ``torch.func``: ``vmap`` over chunks of points of ``jacrev``
    of the chunk's rows. One vectorised call per group of points; needs a model that
    ``torch.func`` can transform.
``"reverse"``
    per chunk of points, one forward pass and one batched reverse pass with the identity as
    cotangents (``torch.autograd.grad(..., is_grads_batched=True)``): ``c`` vector-Jacobian
    products for the price of one vectorised backward over ``c`` points.
``"loop"``
    per chunk of points, one forward pass and one plain reverse pass per row (any model
    that supports first-order autograd).

``"auto"`` takes the first of these that works for the model (tried on the first chunk;
the choice depends only on what the model supports, so it is the same in every run and
every process). Forward mode over parameter tangents (``P`` passes over all points) is not
offered: for the benchmark shapes (``M`` = 5800 residuals, KAN [2,10,1] G = 20 with
``P`` = 750, MLP [2,20,20,1] with ``P`` = 501) it measured 30-60x slower than ``"reverse"``,
as expected while ``P`` exceeds the chunk size.

Blocks whose rows do not belong to single points (a periodic condition pairs points, data
conditions index their values by position, the sparsity penalty sums over all points) are
found by a probe (rows of a sub-chunk against the block's rows) and differentiated as a
whole: ``jacrev`` of the block, else batched reverse passes over chunks of its rows, else one
reverse pass per row.

Matrix-free Gauss-Newton needs only ``J v`` and ``J^T u``: :class:`Products` builds the rows
once with their graph; ``J^T u`` is one reverse pass, ``J v`` the reverse pass of the
(linear in ``u``) graph of ``J^T u`` (double backward).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

if TYPE_CHECKING:
    from kanpde.training.loss import RowBlock

PATHS = ("auto", "vmap", "reverse", "loop")
#: points per chunk by path when ``chunk_size = 0``
DEFAULT_CHUNK = {"vmap": 4, "reverse": 32, "loop": 32}
#: points per group: Jacobian rows are formed and accumulated this many points at a time
GROUP_POINTS = 1024


class Parameters:
    """The optimised tensors: the model's parameters that require gradients, then the
    unknowns (in that order, flattened into ``theta``).

    Args:
        model: the model.
        unknowns: parameters of an inverse problem by name.
        only: optimise only these model tensors (default: all that require gradients).
    """

    def __init__(self, model: nn.Module, unknowns: Mapping[str, Tensor] | None = None,
                 only: Sequence[Tensor] | None = None):
        keep = None if only is None else {id(t) for t in only}
        self.model_names, self.model_tensors = [], []
        for name, p in model.named_parameters():
            if p.requires_grad and (keep is None or id(p) in keep):
                self.model_names.append(name)
                self.model_tensors.append(p)
        unknowns = dict(unknowns or {})
        self.unknown_names = list(unknowns) if only is None else []
        self.unknown_tensors = [unknowns[k] for k in self.unknown_names]

    @property
    def tensors(self) -> list[Tensor]:
        """All optimised tensors in ``theta`` order."""
        return self.model_tensors + self.unknown_tensors

    @property
    def numel(self) -> int:
        """``P``."""
        return sum(t.numel() for t in self.tensors)

    def flat(self) -> Tensor:
        """``(P,)`` a copy of ``theta``."""
        return torch.cat([t.detach().reshape(-1) for t in self.tensors])

    @torch.no_grad()
    def assign(self, theta: Tensor) -> None:
        """Set ``theta`` ``(P,)`` (cast to the tensors' dtype)."""
        offset = 0
        for t in self.tensors:
            n = t.numel()
            t.copy_(theta[offset:offset + n].reshape(t.shape).to(t.dtype))
            offset += n

    def columns(self, grads: Sequence[Tensor | None], rows: int) -> Tensor:
        """``(rows, P)`` from per-tensor gradients ``(rows, *shape)`` (``None``: zeros)."""
        return torch.cat([torch.zeros(rows, t.numel(), dtype=t.dtype, device=t.device)
                          if g is None else g.reshape(rows, -1)
                          for g, t in zip(grads, self.tensors, strict=True)], 1)


class _Call(nn.Module):
    """``fn(model, unknowns, *inputs)`` as a module call (for ``functional_call``)."""

    def __init__(self, model: nn.Module, fn):
        super().__init__()
        self.model, self.fn = model, fn

    def forward(self, unknowns, *inputs):
        return self.fn(self.model, unknowns, *inputs)


def _slice(inputs: Sequence[Tensor | None], start: int, stop: int) -> tuple:
    return tuple(None if t is None else t[start:stop] for t in inputs)


class Jacobian:
    """Rows of ``J`` for the blocks of a residual vector, by the path of the module docstring.

    Args:
        model: the model.
        params: the optimised tensors.
        path: ``"auto"``, ``"vmap"``, ``"reverse"`` or ``"loop"``.
        chunk: points per chunk (``0``: by path, :data:`DEFAULT_CHUNK`).
        found: for ``"auto"``, the path to start from.
        pointwise: probe results by block name, shared between engines of a stage.
    """

    def __init__(self, model: nn.Module, params: Parameters, path: str = "auto",
                 chunk: int = 0, found: str | None = None,
                 pointwise: dict[str, bool] | None = None):
        if path not in PATHS:
            raise ValueError(f"path must be one of {PATHS}, got {path!r}")
        self.model, self.params, self.requested, self.chunk_size = model, params, path, chunk
        #: the path in use (``None`` until the first pointwise block was differentiated;
        #: ``found``: the one an earlier engine of the same stage settled on)
        self.path: str | None = found if path == "auto" else path
        self._pointwise: dict[str, bool] = {} if pointwise is None else pointwise

    def chunk(self, path: str) -> int:
        """Points per chunk on ``path``."""
        return self.chunk_size or DEFAULT_CHUNK[path]

    # ------------------------------------------------------------------ public -----------

    def groups(self, blocks: Sequence[RowBlock]) -> Iterator[tuple[Tensor, Tensor]]:
        """``(rows (m,), J (m, P))`` group by group, covering every row of ``blocks`` once,
        in the order of the residual vector."""
        for block in blocks:
            if self.is_pointwise(block):
                n = block.n_points
                for s in range(0, n, GROUP_POINTS):
                    e = min(s + GROUP_POINTS, n)
                    c = block.per_point
                    yield block.rows[s * c:e * c], self._pointwise_rows(block, s, e)
            elif block.rows.numel():
                yield block.rows, self._block_rows(block)

    def matrix(self, blocks: Sequence[RowBlock]) -> Tensor:
        """``(M, P)`` the whole Jacobian (tests and small problems)."""
        parts = [j for _, j in self.groups(blocks)]
        return torch.cat(parts) if parts else torch.zeros(0, self.params.numel)

    def normal_equations(self, blocks: Sequence[RowBlock]) -> tuple[Tensor, Tensor]:
        """``J^T J`` ``(P, P)`` and ``J^T rho`` ``(P,)`` of this process's rows, in float64."""
        p = self.params.numel
        dev = self.params.tensors[0].device
        a = torch.zeros(p, p, dtype=torch.float64, device=dev)
        g = torch.zeros(p, dtype=torch.float64, device=dev)
        for rows, jac in self.groups(blocks):
            j64 = jac.detach().to(torch.float64)
            a.addmm_(j64.T, j64)
            g.addmv_(j64.T, rows.detach().to(torch.float64))
        return a, g

    def is_pointwise(self, block: RowBlock) -> bool:
        """Whether a chunk of the block's points gives the block's rows of those points
        (probed once per block name)."""
        if block.name not in self._pointwise:
            self._pointwise[block.name] = self._probe(block)
        return self._pointwise[block.name]

    # ------------------------------------------------------------------ paths -----------

    def _probe(self, block: RowBlock) -> bool:
        n, c = block.n_points, block.per_point
        if not c or n < 2:
            return bool(c)
        m = min(n // 2, 64)
        try:
            with torch.no_grad():
                part = block.fn(self.model, None, *_slice(block.inputs, 0, m))
        except (RuntimeError, ValueError, IndexError):
            return False
        ref = block.rows[: m * c]
        if part.shape != ref.shape:
            return False
        scale = float(block.rows.abs().max()) if block.rows.numel() else 0.0
        return bool(((part - ref).abs() <= 1e-9 * scale + 1e-300).all())

    def _pointwise_rows(self, block: RowBlock, start: int, stop: int) -> Tensor:
        """Rows of points ``start:stop``; ``"auto"`` moves on to the next path in
        :data:`PATHS` when the current one fails (and keeps the one that works)."""
        if self.requested != "auto":
            return self._run(self.requested, block, start, stop)
        order = PATHS[1:]
        first = order.index(self.path) if self.path is not None else 0
        for path in order[first:]:
            try:
                out = self._run(path, block, start, stop)
            except (RuntimeError, NotImplementedError, ValueError, TypeError):
                if path == order[-1]:
                    raise
                continue
            self.path = path
            return out
        raise AssertionError("unreachable")

    def _run(self, path: str, block: RowBlock, start: int, stop: int) -> Tensor:
        c = self.chunk(path)
        if path == "vmap":
            return self._vmap(block, start, stop, c)
        parts = []
        for s in range(start, stop, c):
            inputs = _slice(block.inputs, s, min(s + c, stop))
            rows = block.fn(self.model, None, *inputs)
            parts.append(self._reverse(rows) if path == "reverse" else self._loop(rows))
        return torch.cat(parts)

    def _reverse(self, rows: Tensor, retain: bool = False) -> Tensor:
        """``(m, P)`` rows of ``J`` by one batched reverse pass."""
        m = rows.numel()
        eye = torch.eye(m, dtype=rows.dtype, device=rows.device)
        grads = torch.autograd.grad(rows, self.params.tensors, eye, retain_graph=retain,
                                    is_grads_batched=True, allow_unused=True)
        return self.params.columns(grads, m)

    def _loop(self, rows: Tensor) -> Tensor:
        """``(m, P)`` rows of ``J`` by one reverse pass per row."""
        return self._loop_rows(rows, 0, rows.numel())

    def _functional(self, block: RowBlock):
        """``rows_of(model values, unknown values, *inputs)`` and the current values."""
        from torch.func import functional_call

        call = _Call(self.model, block.fn)
        names = ["model." + n for n in self.params.model_names]
        unames = self.params.unknown_names

        def rows_of(pvals, uvals, *inputs):
            unknowns = dict(zip(unames, uvals, strict=True))
            return functional_call(call, dict(zip(names, pvals, strict=True)),
                                   (unknowns or None, *inputs))

        return (rows_of, tuple(t.detach() for t in self.params.model_tensors),
                tuple(t.detach() for t in self.params.unknown_tensors))

    def _vmap(self, block: RowBlock, start: int, stop: int, c: int) -> Tensor:
        from torch.func import jacrev, vmap

        rows_of, pvals, uvals = self._functional(block)
        n_full = (stop - start) // c * c
        spans = [(start, start + n_full, c)] if n_full else []
        if n_full < stop - start:  # the remainder: one more (shorter) chunk
            spans.append((start + n_full, stop, stop - start - n_full))
        parts = []
        for s, e, size in spans:
            batched = tuple(None if t is None else t[s:e].reshape(-1, size, *t.shape[1:])
                            for t in block.inputs)
            dims = (None, None, *(None if t is None else 0 for t in batched))
            jac = vmap(jacrev(rows_of, argnums=(0, 1)), in_dims=dims)(pvals, uvals, *batched)
            rows = (e - s) * block.per_point
            parts.append(self.params.columns(
                [g.reshape(rows, *g.shape[2:]) for g in (*jac[0], *jac[1])], rows))
        return torch.cat(parts)

    def _block_rows(self, block: RowBlock) -> Tensor:
        """All rows of a block that is not pointwise, differentiated as a whole: by
        ``jacrev`` (``"vmap"``), batched reverse passes over row chunks (``"reverse"``) or
        one reverse pass per row (``"loop"``); ``"auto"`` takes the first that works."""
        order = PATHS[1:] if self.requested == "auto" else (self.requested,)
        for path in order:
            try:
                if path == "vmap":
                    return self._block_vmap(block)
                rows = block.fn(self.model, None, *block.inputs)
                step = max(self.chunk("reverse"), 1)
                parts = [(self._cotangent_rows if path == "reverse" else self._loop_rows)(
                    rows, s, min(s + step, rows.numel())) for s in range(0, rows.numel(), step)]
                return torch.cat(parts)
            except (RuntimeError, NotImplementedError, ValueError, TypeError):
                if path == order[-1]:
                    raise
        raise AssertionError("unreachable")

    def _block_vmap(self, block: RowBlock) -> Tensor:
        from torch.func import jacrev

        rows_of, pvals, uvals = self._functional(block)
        jac = jacrev(rows_of, argnums=(0, 1), chunk_size=max(self.chunk("reverse"), 1))(
            pvals, uvals, *block.inputs)
        m = block.rows.numel()
        return self.params.columns([g.reshape(m, *g.shape[1:]) for g in (*jac[0], *jac[1])],
                                   m)

    def _cotangent_rows(self, rows: Tensor, start: int, stop: int) -> Tensor:
        m = stop - start
        cot = torch.zeros(m, rows.numel(), dtype=rows.dtype, device=rows.device)
        cot[torch.arange(m), torch.arange(start, stop)] = 1.0
        grads = torch.autograd.grad(rows, self.params.tensors, cot, retain_graph=True,
                                    is_grads_batched=True, allow_unused=True)
        return self.params.columns(grads, m)

    def _loop_rows(self, rows: Tensor, start: int, stop: int) -> Tensor:
        """Rows ``start:stop`` of ``J`` by one reverse pass each."""
        out = [self.params.columns([None] * len(self.params.tensors), 0)]
        for i in range(start, stop):
            grads = torch.autograd.grad(rows[i], self.params.tensors, retain_graph=True,
                                        allow_unused=True)
            out.append(self.params.columns([None if g is None else g[None] for g in grads],
                                           1))
        return torch.cat(out)


class Products:
    """``J v`` and ``J^T u`` of this process's rows at the current parameters.

    Args:
        blocks: the residual vector's blocks (their ``fn`` are evaluated once, with graph).
        model: the model.
        params: the optimised tensors.
    """

    def __init__(self, blocks: Sequence[RowBlock], model: nn.Module, params: Parameters):
        self.params = params
        parts = [b.fn(model, None, *b.inputs) for b in blocks if b.rows.numel()]
        self.rows = torch.cat(parts) if parts else torch.zeros(0)
        self._u = torch.zeros_like(self.rows, requires_grad=True)
        grads = torch.autograd.grad(self.rows, params.tensors, self._u, create_graph=True,
                                    allow_unused=True)
        self._jt = [(g, t) for g, t in zip(grads, params.tensors, strict=True)
                    if g is not None]
        self._used = [g is not None for g in grads]

    def jt(self, u: Tensor) -> Tensor:
        """``J^T u`` ``(P,)`` for ``u`` ``(M,)``."""
        grads = torch.autograd.grad(self.rows, self.params.tensors, u.to(self.rows.dtype),
                                    retain_graph=True, allow_unused=True)
        return torch.cat([torch.zeros(t.numel(), dtype=t.dtype, device=t.device) if g is None
                          else g.reshape(-1) for g, t in zip(grads, self.params.tensors,
                                                             strict=True)])

    def j(self, v: Tensor) -> Tensor:
        """``J v`` ``(M,)`` for ``v`` ``(P,)``."""
        pieces, offset = [], 0
        for used, t in zip(self._used, self.params.tensors, strict=True):
            n = t.numel()
            if used:
                pieces.append(v[offset:offset + n].reshape(t.shape).to(t.dtype))
            offset += n
        if not pieces:
            return torch.zeros_like(self.rows)
        (out,) = torch.autograd.grad([g for g, _ in self._jt], self._u, pieces,
                                     retain_graph=True, allow_unused=True)
        return torch.zeros_like(self.rows) if out is None else out
