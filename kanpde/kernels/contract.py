"""Local spline contractions: a KAN layer touches only ``k + 1`` coefficient rows per input.

At a point in base interval ``idx`` exactly ``K = k + 1`` B-splines are non-zero (see
:mod:`kanpde.core.spline`), so contracting local weights ``a`` with coefficients ``w`` needs only
the rows ``w[i, idx[p, i] + r, :]``, ``r = 0..k``, never a dense ``(N, ..., G + k)`` basis.
Three bilinear maps do all the work, for every ``p`` (point), ``c`` (row of a jet: value,
gradient components, second-order channels), ``i`` (input), ``r`` (local basis), ``j``
(output) and ``m`` (coefficient row)::

    gather(a, w)[p, c, j]   = sum_{i, r} a[p, c, i, r] w[i, idx[p, i] + r, j]
    sampled(g, w)[p, c, i, r] = sum_j g[p, c, j] w[i, idx[p, i] + r, j]
    scatter(a, g)[i, m, j]  = sum_{p, c, r : idx[p, i] + r = m} a[p, c, i, r] g[p, c, j]

The set is closed under differentiation (``idx`` is piecewise constant, its derivative is
zero where it is defined), which gives backward, double backward and forward-mode rules
in terms of the same three maps::

    d gather  : da = sampled(g_out, w),   dw = scatter(a, g_out)
    d sampled : dg = gather(g_out, w),    dw = scatter(g_out, g)
    d scatter : da = sampled(g, g_out),   dg = gather(a, g_out)

so nested autograd (``create_graph=True``) runs through them to any order. Each map is a
``torch.autograd.Function`` with ``setup_context``, ``jvp`` and a ``vmap`` rule, so
``torch.func`` transforms (``grad``, ``vjp``, ``jacrev``, ``jacfwd``, ``vmap``) work too. The
``vmap`` rules fold a batch of ``a`` or ``g`` into the row dimension ``c`` and a batch of
``w`` or ``g`` into the output dimension ``j`` where the map is linear in it; other
combinations loop over the batch.

Implementations: compiled C loops on CPU (:mod:`kanpde.kernels.cpu`) when they build, else
plain PyTorch: for chunks of points, gather the rows (``(P, n_in, K, n_out)``) and contract
them with batched matrix products (``scatter`` accumulates with ``index_add``); all
out of place, so the legacy batching of ``autograd.grad(..., is_grads_batched=True)`` works.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from kanpde.kernels import cpu

BACKENDS = ("auto", "compiled", "torch")
#: elements of gathered rows per chunk of points in the PyTorch implementation (32 MiB f64)
CHUNK_ELEMENTS = 1 << 22


def has_storage(*tensors: Tensor) -> bool:
    """Whether every tensor has memory of its own (not a batched or functional wrapper of a
    ``torch.func`` transform or of ``autograd.grad(..., is_grads_batched=True)``)."""
    try:
        for t in tensors:
            t.data_ptr()
    except RuntimeError:
        return False
    return True


def _use_compiled(backend: str, t: Tensor, *others: Tensor) -> bool:
    """Whether to run the compiled loops on ``t`` and ``others`` (plain CPU tensors)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "torch":
        return False
    ok = cpu.available(t) and has_storage(t, *others)
    if backend == "compiled" and not ok:
        raise RuntimeError("backend='compiled' needs float32/float64 CPU tensors and a working "
                           "C compiler (see kanpde.kernels.cpu)")
    return ok


def _flat_rows(idx: Tensor, k1: int, n_rows: int) -> Tensor:
    """``(N, n_in, K)`` indices ``i M + idx[p, i] + r`` into ``w`` flattened to rows."""
    n_in = idx.shape[1]
    offsets = torch.arange(n_in, device=idx.device) * n_rows  # (n_in,)
    return (idx + offsets)[..., None] + torch.arange(k1, device=idx.device)


def _chunks(n: int, per_point: int) -> list[tuple[int, int]]:
    step = max(1, CHUNK_ELEMENTS // max(per_point, 1))
    return [(s, min(s + step, n)) for s in range(0, n, step)]


def _gather_torch(a: Tensor, idx: Tensor, w: Tensor) -> Tensor:
    n, nc, n_in, k1 = a.shape
    n_rows, n_out = w.shape[1:]
    rows = _flat_rows(idx, k1, n_rows).reshape(n, n_in * k1)  # (N, n_in K)
    flat_w = w.reshape(n_in * n_rows, n_out)
    parts = [torch.bmm(a[s:e].reshape(e - s, nc, n_in * k1), flat_w[rows[s:e]])
             for s, e in _chunks(n, n_in * k1 * n_out)]  # (P, C, n_out) each
    return torch.cat(parts) if len(parts) != 1 else parts[0]


def _sampled_torch(g: Tensor, idx: Tensor, w: Tensor, k1: int) -> Tensor:
    n, nc, n_out = g.shape
    n_in, n_rows = w.shape[:2]
    rows = _flat_rows(idx, k1, n_rows).reshape(n, n_in * k1)
    flat_w = w.reshape(n_in * n_rows, n_out)
    parts = [torch.bmm(g[s:e], flat_w[rows[s:e]].transpose(1, 2))
             for s, e in _chunks(n, n_in * k1 * n_out)]  # (P, C, n_in K) each
    out = torch.cat(parts) if len(parts) != 1 else parts[0]
    return out.reshape(n, nc, n_in, k1)


def _scatter_torch(a: Tensor, idx: Tensor, g: Tensor, n_rows: int) -> Tensor:
    n, nc, n_in, k1 = a.shape
    n_out = g.shape[2]
    rows = _flat_rows(idx, k1, n_rows).reshape(n, n_in * k1)
    out = a.new_zeros(n_in * n_rows, n_out)
    for s, e in _chunks(n, n_in * k1 * n_out):
        local = a[s:e].reshape(e - s, nc, n_in * k1).transpose(1, 2)  # (P, n_in K, C)
        out = out.index_add(0, rows[s:e].reshape(-1), torch.bmm(local, g[s:e]).reshape(-1, n_out))
    return out.reshape(n_in, n_rows, n_out)


def _loop(fn: Callable[..., Tensor], size: int, in_dims: Sequence[int | None],
          args: Sequence[Any]) -> tuple[Tensor, int]:
    """A ``vmap`` rule of last resort: ``fn`` on every batch entry, stacked."""
    outs = [fn(*[x.select(d, b) if d is not None else x for x, d in zip(args, in_dims,
                                                                       strict=True)])
            for b in range(size)]
    return torch.stack(outs), 0


def _fold_rows(t: Tensor, dim: int) -> tuple[Tensor, int]:
    """Move batch ``dim`` of ``(N, C, ...)``-shaped ``t`` next to ``C`` and merge them."""
    t = t.movedim(dim, 1)  # (N, B, C, ...)
    return t.reshape(t.shape[0], t.shape[1] * t.shape[2], *t.shape[3:]), t.shape[1]


def _fold_outputs(t: Tensor, dim: int) -> tuple[Tensor, int]:
    """Move batch ``dim`` of ``(..., n_out)``-shaped ``t`` before ``n_out`` and merge them."""
    t = t.movedim(dim, -2)  # (..., B, n_out)
    return t.reshape(*t.shape[:-2], t.shape[-2] * t.shape[-1]), t.shape[-2]


class Gather(torch.autograd.Function):
    """``out[p, c, j] = sum_{i, r} a[p, c, i, r] w[i, idx[p, i] + r, j]``."""

    @staticmethod
    def forward(a: Tensor, idx: Tensor, w: Tensor, backend: str) -> Tensor:
        if _use_compiled(backend, a, w):
            return cpu.gather(a, idx, w)
        return _gather_torch(a, idx, w)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: Tensor) -> None:
        a, idx, w, ctx.backend = inputs
        ctx.save_for_backward(a, idx, w)
        ctx.save_for_forward(a, idx, w)

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> tuple[Tensor | None, None, Tensor | None, None]:
        a, idx, w = ctx.saved_tensors
        da = Sampled.apply(g, idx, w, a.shape[-1], ctx.backend) \
            if ctx.needs_input_grad[0] else None
        dw = Scatter.apply(a, idx, g, w.shape[1], ctx.backend) \
            if ctx.needs_input_grad[2] else None
        return da, None, dw, None

    @staticmethod
    def jvp(ctx: Any, ta: Tensor | None, _: Any, tw: Tensor | None, __: Any) -> Tensor:
        a, idx, w = ctx.saved_tensors
        parts = ([Gather.apply(ta, idx, w, ctx.backend)] if ta is not None else []) + \
                ([Gather.apply(a, idx, tw, ctx.backend)] if tw is not None else [])
        return sum(parts[1:], parts[0]) if parts else a.new_zeros(
            a.shape[0], a.shape[1], w.shape[2])

    @staticmethod
    def vmap(info: Any, in_dims: tuple, a: Tensor, idx: Tensor, w: Tensor,
             backend: str) -> tuple[Tensor, int]:
        da, di, dw, _ = in_dims
        if di is None and dw is None:  # batch of a: more rows c
            folded, size = _fold_rows(a, da)
            out = Gather.apply(folded, idx, w, backend)  # (N, B C, n_out)
            return out.reshape(out.shape[0], size, -1, out.shape[2]), 1
        if di is None and da is None:  # batch of w: more outputs j
            folded, size = _fold_outputs(w, dw)
            out = Gather.apply(a, idx, folded, backend)  # (N, C, B n_out)
            return out.reshape(*out.shape[:2], size, -1), 2
        return _loop(lambda x, y, z, b: Gather.apply(x, y, z, b), info.batch_size, in_dims,
                     (a, idx, w, backend))


class Sampled(torch.autograd.Function):
    """``da[p, c, i, r] = sum_j g[p, c, j] w[i, idx[p, i] + r, j]`` (``K`` local rows)."""

    @staticmethod
    def forward(g: Tensor, idx: Tensor, w: Tensor, k1: int, backend: str) -> Tensor:
        if _use_compiled(backend, g, w):
            return cpu.sampled(g, idx, w, k1)
        return _sampled_torch(g, idx, w, k1)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: Tensor) -> None:
        g, idx, w, ctx.k1, ctx.backend = inputs
        ctx.save_for_backward(g, idx, w)
        ctx.save_for_forward(g, idx, w)

    @staticmethod
    def backward(ctx: Any, gout: Tensor) -> tuple[Tensor | None, None, Tensor | None, None,
                                                  None]:
        g, idx, w = ctx.saved_tensors
        dg = Gather.apply(gout, idx, w, ctx.backend) if ctx.needs_input_grad[0] else None
        dw = Scatter.apply(gout, idx, g, w.shape[1], ctx.backend) \
            if ctx.needs_input_grad[2] else None
        return dg, None, dw, None, None

    @staticmethod
    def jvp(ctx: Any, tg: Tensor | None, _: Any, tw: Tensor | None, *__: Any) -> Tensor:
        g, idx, w = ctx.saved_tensors
        parts = ([Sampled.apply(tg, idx, w, ctx.k1, ctx.backend)] if tg is not None else []) + \
                ([Sampled.apply(g, idx, tw, ctx.k1, ctx.backend)] if tw is not None else [])
        return sum(parts[1:], parts[0]) if parts else g.new_zeros(
            g.shape[0], g.shape[1], idx.shape[1], ctx.k1)

    @staticmethod
    def vmap(info: Any, in_dims: tuple, g: Tensor, idx: Tensor, w: Tensor, k1: int,
             backend: str) -> tuple[Tensor, int]:
        dg, di, dw = in_dims[:3]
        if di is None and dw is None:  # batch of g: more rows c
            folded, size = _fold_rows(g, dg)
            out = Sampled.apply(folded, idx, w, k1, backend)  # (N, B C, n_in, K)
            return out.reshape(out.shape[0], size, -1, *out.shape[2:]), 1
        return _loop(lambda x, y, z, k, b: Sampled.apply(x, y, z, k, b), info.batch_size,
                     in_dims, (g, idx, w, k1, backend))


class Scatter(torch.autograd.Function):
    """``dw[i, m, j] = sum_{p, c, r : idx[p, i] + r = m} a[p, c, i, r] g[p, c, j]``."""

    @staticmethod
    def forward(a: Tensor, idx: Tensor, g: Tensor, n_rows: int, backend: str) -> Tensor:
        if _use_compiled(backend, a, g):
            return cpu.scatter(a, idx, g, n_rows)
        return _scatter_torch(a, idx, g, n_rows)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: Tensor) -> None:
        a, idx, g, ctx.n_rows, ctx.backend = inputs
        ctx.save_for_backward(a, idx, g)
        ctx.save_for_forward(a, idx, g)

    @staticmethod
    def backward(ctx: Any, gout: Tensor) -> tuple[Tensor | None, None, Tensor | None, None,
                                                  None]:
        a, idx, g = ctx.saved_tensors
        da = Sampled.apply(g, idx, gout, a.shape[-1], ctx.backend) \
            if ctx.needs_input_grad[0] else None
        dg = Gather.apply(a, idx, gout, ctx.backend) if ctx.needs_input_grad[2] else None
        return da, None, dg, None, None

    @staticmethod
    def jvp(ctx: Any, ta: Tensor | None, _: Any, tg: Tensor | None, *__: Any) -> Tensor:
        a, idx, g = ctx.saved_tensors
        parts = ([Scatter.apply(ta, idx, g, ctx.n_rows, ctx.backend)] if ta is not None
                 else []) + \
                ([Scatter.apply(a, idx, tg, ctx.n_rows, ctx.backend)] if tg is not None
                 else [])
        return sum(parts[1:], parts[0]) if parts else a.new_zeros(
            a.shape[2], ctx.n_rows, g.shape[2])

    @staticmethod
    def vmap(info: Any, in_dims: tuple, a: Tensor, idx: Tensor, g: Tensor, n_rows: int,
             backend: str) -> tuple[Tensor, int]:
        da, di, dg = in_dims[:3]
        if di is None and da is None:  # batch of g: more outputs j
            folded, size = _fold_outputs(g, dg)
            out = Scatter.apply(a, idx, folded, n_rows, backend)  # (n_in, M, B n_out)
            return out.reshape(*out.shape[:2], size, -1), 2
        return _loop(lambda x, y, z, m, b: Scatter.apply(x, y, z, m, b), info.batch_size,
                     in_dims, (a, idx, g, n_rows, backend))


def local_contract(a: Tensor, idx: Tensor, w: Tensor, backend: str = "auto") -> Tensor:
    """``out[p, c, j] = sum_{i, r} a[p, c, i, r] w[i, idx[p, i] + r, j]``, differentiable to
    any order in ``a`` and ``w`` and through ``torch.func`` transforms.

    Args:
        a: ``(N, C, n_in, K)`` weights of the ``K`` local rows (the non-zero bases times the
            jet factors).
        idx: ``(N, n_in)`` int64 first local row, ``0 <= idx <= M - K``.
        w: ``(n_in, M, n_out)`` coefficient rows.
        backend: ``"auto"`` (compiled loops on CPU when they build, else PyTorch),
            ``"compiled"`` or ``"torch"``.

    Returns:
        ``(N, C, n_out)``.
    """
    return Gather.apply(a, idx, w, backend)
