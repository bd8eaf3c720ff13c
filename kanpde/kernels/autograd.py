"""Autograd wrapper and dispatch for the fused KAN-layer jet kernels.

Public API:

* :func:`available` -- can the kernels run for tensors on ``device``?
* :func:`kan_layer_jet` -- jet forward of one KAN layer on uniform grids, differentiable once.
* :class:`KANLayerJetFunction` -- the underlying ``torch.autograd.Function``.

Math (``y_j = sum_i phi_ij(h_i)``, ``phi_ij(x) = w[i,j] silu(x) + sum_m C[i,m,j] B_m(x)``)::

    y[p, j]     = sum_i phi_ij(v[p, i])
    gy[p, a, j] = sum_i phi'_ij(v[p, i]) g[p, a, i]
    Sy[p, r, j] = sum_i phi''_ij(v[p, i]) q[p, r, i] + phi'_ij(v[p, i]) S[p, r, i]

with ``q[p, r, i] = grad h_i^T W_r grad h_i`` computed by the caller. The backward gives
cotangents of ``v, g, S, q, C, w``; ``lo``, ``h`` (grid buffers) get none. Double backward is
not supported: a backward with ``create_graph=True`` through the function raises (rather than
silently returning gradients that are constant in the inputs).

Integration notes (for ``kanpde/nn/kan.py`` and the jet engine):

* Dispatch with ``x.is_cuda and available(x.device)`` and a *uniform* grid; keep the
  plain-PyTorch jet path for CPU. (Under ``TRITON_INTERPRET=1`` the kernels also run on CPU
  tensors, very slowly: that is for tests, not for training.)
* Per layer, pass ``v`` = the layer's input values ``(N, n_in)``, ``g`` their gradients
  ``(N, d, n_in)``, ``S`` its second-order channels ``(N, R, n_in)``, ``q[p, r, i] =
  einsum("pai,rab,pbi->pri", g, W, g)`` ``(N, R, n_in)``, ``lo = knots[:, k]`` and
  ``h = knots[:, k+1] - knots[:, k]`` ``(n_in,)``, the effective coefficients
  ``C = spline_scale[:, None, :] * coef`` ``(n_in, G+k, n_out)`` and ``w = base weight``
  ``(n_in, n_out)``. Any bias is added outside. Value-only forward: ``d = R = 0``
  (``g = v.new_zeros(N, 0, n_in)``, ``S = q = v.new_zeros(N, 0, n_in)``), or use the
  returned ``y`` only.
* Gradients flow to ``C`` and ``w`` (hence to ``coef``, ``spline_scale`` and the base weight
  through autograd), and to ``v, g, S, q`` (hence to earlier layers and the input map).
* ``TRITON_INTERPRET`` is read when ``kanpde.kernels.spline_jet`` is first imported (Triton
  decides compiled vs. interpreted at decoration time). This module imports it lazily, on
  the first kernel call, and ``kanpde.kernels`` never imports triton at package import.
* Dtypes: float32 and float64 (all inputs the same dtype). Reductions are plain FMA in that
  dtype; no ``tl.dot`` and no TF32.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import FunctionCtx

_FLOATS = (torch.float32, torch.float64)


def available(device: torch.device | str) -> bool:
    """Whether the fused kernels can run for tensors on ``device``.

    True when triton imports and either ``device`` is CUDA or ``TRITON_INTERPRET=1`` is set
    (then CPU tensors run under the Triton interpreter).
    """
    try:
        import triton  # noqa: F401
    except Exception:  # absent or broken install
        return False
    if torch.device(device).type == "cuda":
        return True
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def _check(v: Tensor, g: Tensor, S: Tensor, q: Tensor, lo: Tensor, h: Tensor,
           grid_size: int, k: int, C: Tensor, w: Tensor) -> None:
    """Raise ``ValueError`` on inconsistent shapes, dtypes or devices."""
    from kanpde.core.spline import check_grid_size, check_order

    check_grid_size(grid_size)
    check_order(k)
    if v.ndim != 2:
        raise ValueError(f"kan_layer_jet: v must be (N, n_in), got {tuple(v.shape)}")
    n_pts, n_in = v.shape
    if C.ndim != 3 or C.shape[:2] != (n_in, grid_size + k):
        raise ValueError(f"kan_layer_jet: C must be (n_in, G+k, n_out) = ({n_in}, "
                         f"{grid_size + k}, n_out), got {tuple(C.shape)}")
    n_out = C.shape[2]
    expect = {"g": (g, 3), "S": (S, 3), "q": (q, 3)}
    for name, (t, nd) in expect.items():
        if t.ndim != nd or t.shape[0] != n_pts or t.shape[2] != n_in:
            raise ValueError(f"kan_layer_jet: {name} must be (N, ., n_in) = ({n_pts}, ., {n_in}),"
                             f" got {tuple(t.shape)}")
    if S.shape != q.shape:
        raise ValueError(f"kan_layer_jet: S and q must have the same shape (N, R, n_in), got "
                         f"{tuple(S.shape)} and {tuple(q.shape)}")
    if lo.shape != (n_in,) or h.shape != (n_in,):
        raise ValueError(f"kan_layer_jet: lo and h must be ({n_in},), got {tuple(lo.shape)} "
                         f"and {tuple(h.shape)}")
    if w.shape != (n_in, n_out):
        raise ValueError(f"kan_layer_jet: w must be ({n_in}, {n_out}), got {tuple(w.shape)}")
    tensors = {"v": v, "g": g, "S": S, "q": q, "lo": lo, "h": h, "C": C, "w": w}
    if v.dtype not in _FLOATS:
        raise ValueError(f"kan_layer_jet: dtype must be float32 or float64, got {v.dtype}")
    for name, t in tensors.items():
        if t.dtype != v.dtype or t.device != v.device:
            raise ValueError(f"kan_layer_jet: {name} is {t.dtype} on {t.device}, expected "
                             f"{v.dtype} on {v.device} like v")


def _kernels() -> Any:
    """Import the triton kernels module lazily (this decorates the kernels on first use)."""
    try:
        from kanpde.kernels import spline_jet
    except ImportError as err:  # pragma: no cover - exercised only without triton
        raise RuntimeError("kan_layer_jet needs triton (pip install 'kanpde[gpu]')") from err
    return spline_jet


def _on_device(t: Tensor) -> contextlib.AbstractContextManager[Any]:
    """Make ``t``'s CUDA device current for the launches (a no-op on CPU)."""
    return torch.cuda.device(t.device) if t.is_cuda else contextlib.nullcontext()


class KANLayerJetFunction(torch.autograd.Function):
    """``(v, g, S, q, lo, h, G, k, C, w) -> (y, gy, Sy)`` with first-order backward.

    See :func:`kan_layer_jet` for shapes. ``lo``, ``h``, ``G`` and ``k`` get no gradient.
    """

    @staticmethod
    def forward(ctx: FunctionCtx, v: Tensor, g: Tensor, S: Tensor, q: Tensor, lo: Tensor,
                h: Tensor, grid_size: int, k: int, C: Tensor, w: Tensor
                ) -> tuple[Tensor, Tensor, Tensor]:
        kern = _kernels()
        table = kern.basis_table(k, v.dtype, v.device)  # (4, k+1, k+1)
        with _on_device(v):
            y, gy, sy = kern.jet_forward(v, g, S, q, lo, h, grid_size, k, C, w, table)
        ctx.save_for_backward(v, g, S, q, lo, h, C, w, table)
        ctx.grid_size, ctx.k = grid_size, k
        return y, gy, sy

    @staticmethod
    def backward(ctx: FunctionCtx, yb: Tensor, gyb: Tensor, syb: Tensor
                 ) -> tuple[Tensor | None, ...]:
        if torch.is_grad_enabled():  # create_graph=True: the result would not be differentiable
            raise RuntimeError("kan_layer_jet supports first-order backward only: "
                               "create_graph=True / double backward through the fused kernels "
                               "is not implemented; use the PyTorch jet path instead")
        v, g, S, q, lo, h, C, w, table = ctx.saved_tensors
        kern = _kernels()
        need = ctx.needs_input_grad
        grads: list[Tensor | None] = [None] * 10
        # cotangents may be None for unused outputs and stride-0 expansions: both are handled
        yb = v.new_zeros(v.shape[0], C.shape[2]) if yb is None else yb  # (N, m)
        gyb = v.new_zeros(g.shape[0], g.shape[1], C.shape[2]) if gyb is None else gyb
        syb = v.new_zeros(S.shape[0], S.shape[1], C.shape[2]) if syb is None else syb
        with _on_device(v):
            if any(need[:4]):
                vb, gb, sb, qb = kern.jet_backward_inputs(
                    v, g, S, q, lo, h, ctx.grid_size, ctx.k, C, w, table, yb, gyb, syb)
                grads[:4] = [t if n else None for t, n in zip((vb, gb, sb, qb), need[:4],
                                                              strict=True)]
            if need[8] or need[9]:
                cb, wb = kern.jet_backward_params(
                    v, g, S, q, lo, h, ctx.grid_size, ctx.k, C.shape[2], table, yb, gyb, syb)
                grads[8] = cb if need[8] else None
                grads[9] = wb if need[9] else None
        return tuple(grads)


def kan_layer_jet(v: Tensor, g: Tensor | None, S: Tensor | None, q: Tensor | None, lo: Tensor,
                  h: Tensor, grid_size: int, k: int, C: Tensor, w: Tensor
                  ) -> tuple[Tensor, Tensor, Tensor]:
    """Jet forward of one KAN layer with fused Triton kernels (uniform grids).

    For ``phi_ij(x) = w[i,j] silu(x) + sum_m C[i,m,j] B_m(x)`` with ``B_m`` the order-``k``
    B-splines on the extended uniform knots ``lo_i + (t - k) h_i``, ``t = 0..G+2k``
    (polynomial extrapolation outside ``[lo_i, lo_i + G h_i]``)::

        y[p,j]    = sum_i phi_ij(v[p,i])
        gy[p,a,j] = sum_i phi'_ij(v[p,i]) g[p,a,i]
        Sy[p,r,j] = sum_i phi''_ij(v[p,i]) q[p,r,i] + phi'_ij(v[p,i]) S[p,r,i]

    Args:
        v: ``(N, n_in)`` input values.
        g: ``(N, d, n_in)`` input gradients (``d`` may be 0; ``None`` means ``d = 0``).
        S: ``(N, R, n_in)`` input second-order channels (``R`` may be 0; ``None`` = ``R = 0``).
        q: ``(N, R, n_in)`` quadratic forms ``grad h_i^T W_r grad h_i`` (``None`` iff ``S`` is).
        lo: ``(n_in,)`` left end of each input's base grid.
        h: ``(n_in,)`` knot spacing of each input's grid.
        grid_size: number ``G`` of base intervals.
        k: spline order, ``1 <= k <= 5``.
        C: ``(n_in, G+k, n_out)`` effective spline coefficients.
        w: ``(n_in, n_out)`` SiLU (base) weights.

    Returns:
        ``y (N, n_out)``, ``gy (N, d, n_out)``, ``Sy (N, R, n_out)``; differentiable once with
        respect to ``v, g, S, q, C, w``.

    Raises:
        ValueError: inconsistent shapes, dtypes or devices.
        RuntimeError: triton missing, or CPU tensors without ``TRITON_INTERPRET=1`` set before
            the kernels module was first imported.
    """
    if (S is None) != (q is None):
        raise ValueError("kan_layer_jet: S and q must both be given or both be None")
    if g is None:
        g = v.new_zeros(v.shape[0], 0, v.shape[-1])  # (N, 0, n_in)
    if S is None or q is None:
        S = q = v.new_zeros(v.shape[0], 0, v.shape[-1])  # (N, 0, n_in)
    _check(v, g, S, q, lo, h, grid_size, k, C, w)
    if not available(v.device):
        raise RuntimeError(f"kan_layer_jet: kernels unavailable on {v.device} (need triton and "
                           "a CUDA device, or TRITON_INTERPRET=1 for CPU tensors)")
    if v.device.type != "cuda" and not _kernels().is_interpreted():
        raise RuntimeError("kan_layer_jet: CPU tensors need the Triton interpreter, but "
                           "kanpde.kernels.spline_jet was imported before TRITON_INTERPRET=1 "
                           "was set; set it before the first kernel call")
    return KANLayerJetFunction.apply(v, g, S, q, lo, h, grid_size, k, C, w)
