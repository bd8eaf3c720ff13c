"""Triton kernels for the jet forward and backward of one KAN layer on uniform grids.

This module imports ``triton`` at import time and decorates its kernels then; whether they
run compiled (CUDA) or under the Triton interpreter (CPU tensors) is fixed by the
``TRITON_INTERPRET`` environment variable *at the first import of this module*. Import it
lazily (``kanpde.kernels.autograd`` does) and never from package ``__init__`` files.

Notation (one layer, ``N`` points, ``n`` inputs, ``m`` outputs, ``d`` gradient coordinates,
``R`` second-order channels, spline order ``K``, ``G`` intervals). For an edge ``(i, j)`` at
``x = v[p, i]``::

    phi_ij(x) = w[i, j] silu(x) + sum_r C[i, idx + r, j] B_r(u),    r = 0..K
    s = (x - lo_i) / h_i,  idx = clamp(floor(s), 0, G - 1),  u = s - idx

with ``d^q B_r / dx^q = h_i^-q sum_e T[q, r, e] u^e`` (``T`` = :func:`basis_table`). Every
kernel gathers the ``K + 1`` coefficient rows ``C[i, idx + r, :]`` a point touches; no dense
``(N, n, G + K)`` basis tensor exists anywhere.

Kernels (all plain FMA reductions in the input dtype, float32 or float64; no ``tl.dot``):

* :func:`jet_forward` -- grid ``(cdiv(N, BN), cdiv(m, BJ))``; a program owns a ``(BN, BJ)``
  tile of outputs and loops over the inputs ``i`` accumulating ``y``, ``gy`` (``(BN, BD, BJ)``)
  and ``Sy`` (``(BN, BR, BJ)``) in registers: a reduction over ``i`` without atomics.
* :func:`jet_backward_inputs` -- grid ``(cdiv(N, BN), n)``; a program owns ``BN`` points of
  one input ``i`` and loops over output blocks, reducing over ``j`` in registers.
* :func:`jet_backward_params` -- grid ``(chunks, n, m_blocks * j_blocks)``; a program owns a
  chunk of points, one input ``i`` and a ``(BM, BJ)`` tile of the *extended* coefficient index
  ``e in [0, G + K]`` (``e = G + K`` is the SiLU weight ``w``). For each sub-block of ``BN``
  points it builds, in registers only, the ``(BM, BN)`` tiles ``E_q[e, p] = d^q B_e(x_p)/dx^q``
  (non-zero for ``idx_p <= e <= idx_p + K`` and the SiLU row) and accumulates
  ``sum_p E_q[e, p] a_q[p, j]``. Each program writes its partial sum to its own slot of a
  ``(chunks, n, G + K + 1, m)`` buffer (stage one); ``torch.sum(0)`` reduces the chunks
  (stage two). Deterministic, no atomics.
"""

from __future__ import annotations

from fractions import Fraction
from math import comb, factorial

import torch
import triton
import triton.language as tl
from torch import Tensor

MAX_DERIVATIVE = 3  # the basis table carries d^0 .. d^3


def basis_table(k: int, dtype: torch.dtype, device: torch.device | str = "cpu") -> Tensor:
    """Exact derivative coefficients of the ``k + 1`` local uniform B-spline pieces.

    With ``M[r, e] = C(k, e) / k! * sum_{j=0}^{k-r} (-1)^j C(k+1, j) (k-r-j)^(k-e)`` (the
    truncated-power form of the cardinal B-spline expanded in ``u``), the table is
    ``T[q, r, e] = M[r, e + q] (e + q)! / e!`` so that ``d^q B_{idx+r} / du^q = sum_e T[q, r, e]
    u^e``. Computed in exact rational arithmetic in pure Python (no torch ops, no
    synchronising copy: on CUDA the host tensor is pinned and copied asynchronously).

    Args:
        k: spline order, ``1 <= k <= 5``.
        dtype: floating dtype of the result.
        device: target device.

    Returns:
        ``(4, k+1, k+1)`` tensor ``T`` (rows ``q > k`` are zero).
    """
    m = [[Fraction(comb(k, e)) / factorial(k)
          * sum((-1) ** j * comb(k + 1, j) * (k - r - j) ** (k - e) for j in range(k - r + 1))
          for e in range(k + 1)] for r in range(k + 1)]
    table = [[[float(m[r][e + q] * factorial(e + q) / factorial(e)) if e + q <= k else 0.0
               for e in range(k + 1)] for r in range(k + 1)] for q in range(MAX_DERIVATIVE + 1)]
    host = torch.tensor(table, dtype=dtype)  # (4, k+1, k+1)
    device = torch.device(device)
    if device.type == "cuda":
        return host.pin_memory().to(device, non_blocking=True)
    return host.to(device)


# ----------------------------------------------------------------------------------------------
# device helpers
# ----------------------------------------------------------------------------------------------


@triton.jit
def _silu_derivs(x):
    """``silu(x)`` and its first three derivatives, stable for large ``|x|``."""
    z = tl.exp(-tl.abs(x))
    inv = 1.0 / (1.0 + z)
    pos = x >= 0.0
    sig = tl.where(pos, inv, z * inv)  # sigma(x)
    sigc = tl.where(pos, z * inv, inv)  # 1 - sigma(x), without cancellation
    s1 = sig * sigc  # sigma'
    dd = sigc - sig  # 1 - 2 sigma
    s2 = s1 * dd  # sigma''
    s3 = s1 * (dd * dd - 2.0 * s1)  # sigma'''
    return x * sig, sig + x * s1, 2.0 * s1 + x * s2, 3.0 * s2 + x * s3


@triton.jit
def _local_bases(tab_ptr, x, lo, h, G, K: tl.constexpr, KP: tl.constexpr):
    """Interval index and the non-zero bases with their first three x-derivatives.

    ``s = (x - lo) / h``, ``idx = clamp(floor(s), 0, G-1)``, ``u = s - idx`` (not clamped:
    polynomial extension off the grid); tile ``q`` holds ``d^q B_{idx+r} / dx^q
    = h^-q sum_e T[q, r, e] u^e`` in column ``r`` (zero for ``r > K``).

    Returns:
        ``idx (BN,)`` int32 and four ``(BN, KP)`` tiles for ``q = 0..3``.
    """
    s = (x - lo) / h  # (BN,)
    fl = tl.minimum(tl.maximum(tl.floor(s), 0.0), G - 1.0)  # (BN,)
    u = s - fl  # (BN,)
    offs = tl.arange(0, KP)  # (KP,)
    pw = tl.zeros_like(x)[:, None] + tl.zeros((1, KP), dtype=x.dtype)  # (BN, KP) u^e
    p = tl.zeros_like(x) + 1.0  # (BN,) u^0
    for e in tl.static_range(K + 1):
        pw = tl.where(offs[None, :] == e, p[:, None], pw)
        p = p * u
    tab_ptrs = tab_ptr + offs[:, None] * (K + 1) + offs[None, :]  # (KP, KP) [r, e]
    tab_mask = (offs[:, None] <= K) & (offs[None, :] <= K)  # (KP, KP)
    inv_h = 1.0 / h
    t0 = tl.load(tab_ptrs, mask=tab_mask, other=0.0)  # (KP, KP)
    t1 = tl.load(tab_ptrs + (K + 1) * (K + 1), mask=tab_mask, other=0.0)  # (KP, KP)
    t2 = tl.load(tab_ptrs + 2 * (K + 1) * (K + 1), mask=tab_mask, other=0.0)  # (KP, KP)
    t3 = tl.load(tab_ptrs + 3 * (K + 1) * (K + 1), mask=tab_mask, other=0.0)  # (KP, KP)
    b0 = tl.sum(pw[:, None, :] * t0[None, :, :], axis=2)  # (BN, KP)
    b1 = tl.sum(pw[:, None, :] * t1[None, :, :], axis=2) * inv_h  # (BN, KP)
    b2 = tl.sum(pw[:, None, :] * t2[None, :, :], axis=2) * (inv_h * inv_h)  # (BN, KP)
    b3 = tl.sum(pw[:, None, :] * t3[None, :, :], axis=2) * (inv_h * inv_h * inv_h)  # (BN, KP)
    return fl.to(tl.int32), b0, b1, b2, b3


# ----------------------------------------------------------------------------------------------
# forward
# ----------------------------------------------------------------------------------------------


@triton.jit
def _jet_forward_kernel(
    v_ptr, g_ptr, s_ptr, q_ptr, lo_ptr, h_ptr, c_ptr, w_ptr, tab_ptr,
    y_ptr, gy_ptr, sy_ptr,
    N, n_in, n_out, n_grad, n_sec, G,
    s_vn, s_vi, s_gn, s_ga, s_gi, s_sn, s_sr, s_si, s_qn, s_qr, s_qi,
    s_lo, s_h, s_ci, s_cm, s_cj, s_wi, s_wj,
    s_yn, s_yj, s_gyn, s_gya, s_gyj, s_syn, s_syr, s_syj,
    K: tl.constexpr, KP: tl.constexpr, HAS_GRAD: tl.constexpr, HAS_SECOND: tl.constexpr,
    HAS_TANGENT: tl.constexpr,
    BN: tl.constexpr, BJ: tl.constexpr, BD: tl.constexpr, BR: tl.constexpr,
):
    pid_n = tl.program_id(0)
    pid_j = tl.program_id(1)
    offs_k = tl.arange(0, KP)  # (KP,) local basis index r
    rows = (pid_n * BN + tl.arange(0, BN)).to(tl.int64)  # (BN,) point indices
    cols = pid_j * BJ + tl.arange(0, BJ)  # (BJ,) output indices
    mask_n = rows < N
    mask_j = cols < n_out
    mask_nj = mask_n[:, None] & mask_j[None, :]  # (BN, BJ)
    offs_a = tl.arange(0, BD)  # (BD,) gradient coordinates
    offs_r = tl.arange(0, BR)  # (BR,) second-order channels
    mask_na = mask_n[:, None] & (offs_a < n_grad)[None, :]  # (BN, BD)
    mask_nr = mask_n[:, None] & (offs_r < n_sec)[None, :]  # (BN, BR)
    mask_nkj = mask_n[:, None, None] & (offs_k <= K)[None, :, None] & mask_j[None, None, :]
    dt = v_ptr.dtype.element_ty

    acc_y = tl.zeros((BN, BJ), dtype=dt)  # (BN, BJ)
    acc_g = tl.zeros((BN, BD, BJ), dtype=dt)  # (BN, BD, BJ)
    acc_s = tl.zeros((BN, BR, BJ), dtype=dt)  # (BN, BR, BJ)
    for i in range(0, n_in):
        x = tl.load(v_ptr + rows * s_vn + i * s_vi, mask=mask_n, other=0.0)  # (BN,)
        lo = tl.load(lo_ptr + i * s_lo)
        h = tl.load(h_ptr + i * s_h)
        idx, b0, b1, b2, _b3 = _local_bases(tab_ptr, x, lo, h, G, K, KP)  # (BN,), 3 x (BN, KP)
        silu, silu1, silu2, _silu3 = _silu_derivs(x)  # (BN,) each
        wv = tl.load(w_ptr + i * s_wi + cols * s_wj, mask=mask_j, other=0.0)  # (BJ,)
        c_ptrs = c_ptr + i * s_ci + (idx[:, None] + offs_k[None, :])[:, :, None] * s_cm \
            + cols[None, None, :] * s_cj  # (BN, KP, BJ): the K+1 rows C[i, idx+r, :]
        cg = tl.load(c_ptrs, mask=mask_nkj, other=0.0)  # (BN, KP, BJ)
        f0 = silu[:, None] * wv[None, :] + tl.sum(b0[:, :, None] * cg, axis=1)  # (BN, BJ) phi
        acc_y += f0
        if HAS_TANGENT:
            f1 = silu1[:, None] * wv[None, :] + tl.sum(b1[:, :, None] * cg, axis=1)  # phi'
        if HAS_GRAD:
            gi = tl.load(g_ptr + rows[:, None] * s_gn + offs_a[None, :] * s_ga + i * s_gi,
                         mask=mask_na, other=0.0)  # (BN, BD)
            acc_g += gi[:, :, None] * f1[:, None, :]
        if HAS_SECOND:
            f2 = silu2[:, None] * wv[None, :] + tl.sum(b2[:, :, None] * cg, axis=1)  # phi''
            si = tl.load(s_ptr + rows[:, None] * s_sn + offs_r[None, :] * s_sr + i * s_si,
                         mask=mask_nr, other=0.0)  # (BN, BR)
            qi = tl.load(q_ptr + rows[:, None] * s_qn + offs_r[None, :] * s_qr + i * s_qi,
                         mask=mask_nr, other=0.0)  # (BN, BR)
            acc_s += qi[:, :, None] * f2[:, None, :] + si[:, :, None] * f1[:, None, :]

    tl.store(y_ptr + rows[:, None] * s_yn + cols[None, :] * s_yj, acc_y, mask=mask_nj)
    if HAS_GRAD:
        gy_ptrs = gy_ptr + rows[:, None, None] * s_gyn + offs_a[None, :, None] * s_gya \
            + cols[None, None, :] * s_gyj  # (BN, BD, BJ)
        tl.store(gy_ptrs, acc_g, mask=mask_na[:, :, None] & mask_j[None, None, :])
    if HAS_SECOND:
        sy_ptrs = sy_ptr + rows[:, None, None] * s_syn + offs_r[None, :, None] * s_syr \
            + cols[None, None, :] * s_syj  # (BN, BR, BJ)
        tl.store(sy_ptrs, acc_s, mask=mask_nr[:, :, None] & mask_j[None, None, :])


# ----------------------------------------------------------------------------------------------
# backward: cotangents of the inputs v, g, S, q
# ----------------------------------------------------------------------------------------------


@triton.jit
def _jet_backward_inputs_kernel(
    v_ptr, g_ptr, s_ptr, q_ptr, lo_ptr, h_ptr, c_ptr, w_ptr, tab_ptr,
    yb_ptr, gyb_ptr, syb_ptr,
    vb_ptr, gb_ptr, sb_ptr, qb_ptr,
    N, n_out, n_grad, n_sec, G,
    s_vn, s_vi, s_gn, s_ga, s_gi, s_sn, s_sr, s_si, s_qn, s_qr, s_qi,
    s_lo, s_h, s_ci, s_cm, s_cj, s_wi, s_wj,
    s_ybn, s_ybj, s_gybn, s_gyba, s_gybj, s_sybn, s_sybr, s_sybj,
    K: tl.constexpr, KP: tl.constexpr, HAS_GRAD: tl.constexpr, HAS_SECOND: tl.constexpr,
    HAS_TANGENT: tl.constexpr,
    BN: tl.constexpr, BJ: tl.constexpr, BD: tl.constexpr, BR: tl.constexpr,
):
    pid_n = tl.program_id(0)
    i = tl.program_id(1)
    offs_k = tl.arange(0, KP)  # (KP,) local basis index r
    rows = (pid_n * BN + tl.arange(0, BN)).to(tl.int64)  # (BN,)
    mask_n = rows < N
    offs_a = tl.arange(0, BD)  # (BD,)
    offs_r = tl.arange(0, BR)  # (BR,)
    mask_a = offs_a < n_grad
    mask_r = offs_r < n_sec
    mask_na = mask_n[:, None] & mask_a[None, :]  # (BN, BD)
    mask_nr = mask_n[:, None] & mask_r[None, :]  # (BN, BR)
    dt = v_ptr.dtype.element_ty

    x = tl.load(v_ptr + rows * s_vn + i * s_vi, mask=mask_n, other=0.0)  # (BN,)
    lo = tl.load(lo_ptr + i * s_lo)
    h = tl.load(h_ptr + i * s_h)
    idx, _b0, b1, b2, b3 = _local_bases(tab_ptr, x, lo, h, G, K, KP)  # (BN,), 3 x (BN, KP)
    _silu0, silu1, silu2, silu3 = _silu_derivs(x)  # (BN,)
    if HAS_GRAD:
        gi = tl.load(g_ptr + rows[:, None] * s_gn + offs_a[None, :] * s_ga + i * s_gi,
                     mask=mask_na, other=0.0)  # (BN, BD)
    if HAS_SECOND:
        si = tl.load(s_ptr + rows[:, None] * s_sn + offs_r[None, :] * s_sr + i * s_si,
                     mask=mask_nr, other=0.0)  # (BN, BR)
        qi = tl.load(q_ptr + rows[:, None] * s_qn + offs_r[None, :] * s_qr + i * s_qi,
                     mask=mask_nr, other=0.0)  # (BN, BR)

    acc_v = tl.zeros((BN,), dtype=dt)  # (BN,)
    acc_g = tl.zeros((BN, BD), dtype=dt)  # (BN, BD)
    acc_s = tl.zeros((BN, BR), dtype=dt)  # (BN, BR)
    acc_q = tl.zeros((BN, BR), dtype=dt)  # (BN, BR)
    for j0 in range(0, n_out, BJ):
        cols = j0 + tl.arange(0, BJ)  # (BJ,)
        mask_j = cols < n_out
        mask_nj = mask_n[:, None] & mask_j[None, :]  # (BN, BJ)
        wv = tl.load(w_ptr + i * s_wi + cols * s_wj, mask=mask_j, other=0.0)  # (BJ,)
        c_ptrs = c_ptr + i * s_ci + (idx[:, None] + offs_k[None, :])[:, :, None] * s_cm \
            + cols[None, None, :] * s_cj  # (BN, KP, BJ): the K+1 rows C[i, idx+r, :]
        mask_nkj = mask_nj[:, None, :] & (offs_k <= K)[None, :, None]  # (BN, KP, BJ)
        cg = tl.load(c_ptrs, mask=mask_nkj, other=0.0)  # (BN, KP, BJ)
        f1 = silu1[:, None] * wv[None, :] + tl.sum(b1[:, :, None] * cg, axis=1)  # phi'
        f2 = silu2[:, None] * wv[None, :] + tl.sum(b2[:, :, None] * cg, axis=1)  # phi''
        f3 = silu3[:, None] * wv[None, :] + tl.sum(b3[:, :, None] * cg, axis=1)  # phi'''
        yb = tl.load(yb_ptr + rows[:, None] * s_ybn + cols[None, :] * s_ybj,
                     mask=mask_nj, other=0.0)  # (BN, BJ)
        t = yb * f1  # (BN, BJ) d/dv of the value term
        if HAS_GRAD:
            gyb_ptrs = gyb_ptr + rows[:, None, None] * s_gybn + offs_a[None, :, None] * s_gyba \
                + cols[None, None, :] * s_gybj  # (BN, BD, BJ)
            gyb = tl.load(gyb_ptrs, mask=mask_na[:, :, None] & mask_j[None, None, :], other=0.0)
            t += tl.sum(gyb * gi[:, :, None], axis=1) * f2  # a1 phi''
            acc_g += tl.sum(gyb * f1[:, None, :], axis=2)
        if HAS_SECOND:
            syb_ptrs = syb_ptr + rows[:, None, None] * s_sybn + offs_r[None, :, None] * s_sybr \
                + cols[None, None, :] * s_sybj  # (BN, BR, BJ)
            syb = tl.load(syb_ptrs, mask=mask_nr[:, :, None] & mask_j[None, None, :], other=0.0)
            t += tl.sum(syb * si[:, :, None], axis=1) * f2  # S part of a1, times phi''
            t += tl.sum(syb * qi[:, :, None], axis=1) * f3  # a2 phi'''
            acc_s += tl.sum(syb * f1[:, None, :], axis=2)
            acc_q += tl.sum(syb * f2[:, None, :], axis=2)
        acc_v += tl.sum(t, axis=1)

    tl.store(vb_ptr + rows * s_vn + i * s_vi, acc_v, mask=mask_n)
    if HAS_GRAD:
        tl.store(gb_ptr + rows[:, None] * s_gn + offs_a[None, :] * s_ga + i * s_gi, acc_g,
                 mask=mask_na)
    if HAS_SECOND:
        tl.store(sb_ptr + rows[:, None] * s_sn + offs_r[None, :] * s_sr + i * s_si, acc_s,
                 mask=mask_nr)
        tl.store(qb_ptr + rows[:, None] * s_qn + offs_r[None, :] * s_qr + i * s_qi, acc_q,
                 mask=mask_nr)


# ----------------------------------------------------------------------------------------------
# backward: per-chunk partial cotangents of C and w
# ----------------------------------------------------------------------------------------------


@triton.jit
def _jet_backward_params_kernel(
    v_ptr, g_ptr, s_ptr, q_ptr, lo_ptr, h_ptr, tab_ptr,
    yb_ptr, gyb_ptr, syb_ptr, part_ptr,
    N, n_out, n_grad, n_sec, G, n_jblocks, sub_per_chunk,
    s_vn, s_vi, s_gn, s_ga, s_gi, s_sn, s_sr, s_si, s_qn, s_qr, s_qi, s_lo, s_h,
    s_ybn, s_ybj, s_gybn, s_gyba, s_gybj, s_sybn, s_sybr, s_sybj,
    s_pc, s_pi, s_pe, s_pj,
    K: tl.constexpr, KP: tl.constexpr, HAS_GRAD: tl.constexpr, HAS_SECOND: tl.constexpr,
    HAS_TANGENT: tl.constexpr,
    BN: tl.constexpr, BM: tl.constexpr, BJ: tl.constexpr, BD: tl.constexpr, BR: tl.constexpr,
):
    pid_c = tl.program_id(0)
    i = tl.program_id(1)
    pid_t = tl.program_id(2)
    pid_m = pid_t // n_jblocks
    pid_j = pid_t % n_jblocks
    n_ext = G + K + 1  # extended coefficient index: G + K spline bases, then the SiLU weight
    offs_e = pid_m * BM + tl.arange(0, BM)  # (BM,)
    cols = pid_j * BJ + tl.arange(0, BJ)  # (BJ,)
    mask_j = cols < n_out
    offs_a = tl.arange(0, BD)  # (BD,)
    offs_r = tl.arange(0, BR)  # (BR,)
    is_silu = (offs_e == G + K)[:, None]  # (BM, 1)
    offs_k = tl.arange(0, KP)[None, None, :]  # (1, 1, KP) local basis index r
    dt = v_ptr.dtype.element_ty

    lo = tl.load(lo_ptr + i * s_lo)
    h = tl.load(h_ptr + i * s_h)
    acc = tl.zeros((BM, BJ), dtype=dt)  # (BM, BJ)
    for sb in range(0, sub_per_chunk):
        rows = ((pid_c * sub_per_chunk + sb) * BN + tl.arange(0, BN)).to(tl.int64)  # (BN,)
        mask_n = rows < N
        mask_nj = mask_n[:, None] & mask_j[None, :]  # (BN, BJ)
        x = tl.load(v_ptr + rows * s_vn + i * s_vi, mask=mask_n, other=0.0)  # (BN,)
        idx, b0, b1, b2, _b3 = _local_bases(tab_ptr, x, lo, h, G, K, KP)  # (BN,), 3 x (BN, KP)
        silu, silu1, silu2, _silu3 = _silu_derivs(x)  # (BN,)
        hit = (offs_e[:, None] - idx[None, :])[:, :, None] == offs_k  # (BM, BN, KP): e = idx+r
        a0 = tl.load(yb_ptr + rows[:, None] * s_ybn + cols[None, :] * s_ybj,
                     mask=mask_nj, other=0.0)  # (BN, BJ) weight of phi
        e0 = tl.sum(tl.where(hit, b0[None, :, :], 0.0), axis=2)  # (BM, BN) B_e(x_p)
        e0 = tl.where(is_silu, silu[None, :], e0)
        prod = e0[:, :, None] * a0[None, :, :]  # (BM, BN, BJ)
        if HAS_TANGENT:
            a1 = tl.zeros((BN, BJ), dtype=dt)  # (BN, BJ) weight of phi'
            if HAS_GRAD:
                gi = tl.load(g_ptr + rows[:, None] * s_gn + offs_a[None, :] * s_ga + i * s_gi,
                             mask=mask_n[:, None] & (offs_a < n_grad)[None, :], other=0.0)
                gyb_ptrs = gyb_ptr + rows[:, None, None] * s_gybn \
                    + offs_a[None, :, None] * s_gyba + cols[None, None, :] * s_gybj  # (BN, BD, BJ)
                gyb = tl.load(gyb_ptrs, mask=mask_nj[:, None, :] & (offs_a < n_grad)[None, :, None],
                              other=0.0)
                a1 += tl.sum(gyb * gi[:, :, None], axis=1)
            if HAS_SECOND:
                mask_nr = mask_n[:, None] & (offs_r < n_sec)[None, :]  # (BN, BR)
                si = tl.load(s_ptr + rows[:, None] * s_sn + offs_r[None, :] * s_sr + i * s_si,
                             mask=mask_nr, other=0.0)  # (BN, BR)
                qi = tl.load(q_ptr + rows[:, None] * s_qn + offs_r[None, :] * s_qr + i * s_qi,
                             mask=mask_nr, other=0.0)  # (BN, BR)
                syb_ptrs = syb_ptr + rows[:, None, None] * s_sybn \
                    + offs_r[None, :, None] * s_sybr + cols[None, None, :] * s_sybj  # (BN, BR, BJ)
                syb = tl.load(syb_ptrs, mask=mask_nj[:, None, :] & (offs_r < n_sec)[None, :, None],
                              other=0.0)
                a1 += tl.sum(syb * si[:, :, None], axis=1)
                a2 = tl.sum(syb * qi[:, :, None], axis=1)  # (BN, BJ) weight of phi''
                e2 = tl.sum(tl.where(hit, b2[None, :, :], 0.0), axis=2)  # (BM, BN) B''_e(x_p)
                e2 = tl.where(is_silu, silu2[None, :], e2)
                prod += e2[:, :, None] * a2[None, :, :]
            e1 = tl.sum(tl.where(hit, b1[None, :, :], 0.0), axis=2)  # (BM, BN) B'_e(x_p)
            e1 = tl.where(is_silu, silu1[None, :], e1)
            prod += e1[:, :, None] * a1[None, :, :]
        acc += tl.sum(prod, axis=1)

    part_ptrs = part_ptr + pid_c * s_pc + i * s_pi + offs_e[:, None] * s_pe \
        + cols[None, :] * s_pj  # (BM, BJ)
    tl.store(part_ptrs, acc, mask=(offs_e < n_ext)[:, None] & mask_j[None, :])


# ----------------------------------------------------------------------------------------------
# launchers
# ----------------------------------------------------------------------------------------------


def _pow2(n: int, cap: int | None = None) -> int:
    """Smallest power of two ``>= max(n, 1)``, at most ``cap``."""
    p = triton.next_power_of_2(max(n, 1))
    return p if cap is None else min(p, cap)


def _constants(k: int, n_grad: int, n_sec: int) -> dict[str, int | bool]:
    """Compile-time arguments shared by the three kernels (``BD``/``BR`` cover all of d/R)."""
    return {"K": k, "KP": _pow2(k + 1), "HAS_GRAD": n_grad > 0, "HAS_SECOND": n_sec > 0,
            "HAS_TANGENT": n_grad + n_sec > 0, "BD": _pow2(n_grad), "BR": _pow2(n_sec)}


def is_interpreted() -> bool:
    """True when this module's kernels were built for the Triton interpreter."""
    return not isinstance(_jet_forward_kernel, triton.runtime.jit.JITFunction)


def jet_forward(v: Tensor, g: Tensor, S: Tensor, q: Tensor, lo: Tensor, h: Tensor,
                grid_size: int, k: int, C: Tensor, w: Tensor, table: Tensor
                ) -> tuple[Tensor, Tensor, Tensor]:
    """Launch the fused forward kernel (inputs already validated, all on one device/dtype).

    Args:
        v: ``(N, n)``; g: ``(N, d, n)``; S, q: ``(N, R, n)``; lo, h: ``(n,)``;
        C: ``(n, G+k, m)``; w: ``(n, m)``; table: ``(4, k+1, k+1)`` (:func:`basis_table`).

    Returns:
        ``y (N, m)``, ``gy (N, d, m)``, ``Sy (N, R, m)``.
    """
    n_pts, n_in = v.shape
    n_grad, n_sec, n_out = g.shape[1], S.shape[1], C.shape[2]
    y = v.new_empty(n_pts, n_out)  # (N, m)
    gy = v.new_empty(n_pts, n_grad, n_out)  # (N, d, m)
    sy = v.new_empty(n_pts, n_sec, n_out)  # (N, R, m)
    if n_pts == 0 or n_out == 0:
        return y, gy, sy
    bn, bj = 32, _pow2(n_out, 32)
    grid = (triton.cdiv(n_pts, bn), triton.cdiv(n_out, bj))
    _jet_forward_kernel[grid](
        v, g, S, q, lo, h, C, w, table, y, gy, sy,
        n_pts, n_in, n_out, n_grad, n_sec, grid_size,
        *v.stride(), *g.stride(), *S.stride(), *q.stride(),
        lo.stride(0), h.stride(0), *C.stride(), *w.stride(),
        *y.stride(), *gy.stride(), *sy.stride(),
        BN=bn, BJ=bj, num_warps=4, **_constants(k, n_grad, n_sec),
    )
    return y, gy, sy


def jet_backward_inputs(v: Tensor, g: Tensor, S: Tensor, q: Tensor, lo: Tensor, h: Tensor,
                        grid_size: int, k: int, C: Tensor, w: Tensor, table: Tensor,
                        yb: Tensor, gyb: Tensor, syb: Tensor
                        ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Cotangents of ``v, g, S, q`` given those of ``y (N, m), gy (N, d, m), Sy (N, R, m)``.

    ``vb[p,i] = sum_j yb phi' + a1 phi'' + a2 phi'''`` with ``a1 = sum_a gyb[p,a,j] g[p,a,i]
    + sum_r syb[p,r,j] S[p,r,i]`` and ``a2 = sum_r syb[p,r,j] q[p,r,i]``;
    ``gb[p,a,i] = sum_j phi' gyb[p,a,j]``, ``Sb[p,r,i] = sum_j phi' syb[p,r,j]``,
    ``qb[p,r,i] = sum_j phi'' syb[p,r,j]``.

    Returns:
        ``vb (N, n)``, ``gb (N, d, n)``, ``Sb (N, R, n)``, ``qb (N, R, n)`` (contiguous).
    """
    n_pts, n_in = v.shape
    n_grad, n_sec, n_out = g.shape[1], S.shape[1], C.shape[2]
    vb = torch.zeros_like(v, memory_format=torch.contiguous_format)  # (N, n)
    gb = torch.zeros_like(g, memory_format=torch.contiguous_format)  # (N, d, n)
    sb = torch.zeros_like(S, memory_format=torch.contiguous_format)  # (N, R, n)
    qb = torch.zeros_like(q, memory_format=torch.contiguous_format)  # (N, R, n)
    if n_pts == 0 or n_in == 0 or n_out == 0:
        return vb, gb, sb, qb
    # the kernel addresses vb/gb/sb/qb with the strides of v/g/S/q: give them equal strides
    v, g, S, q = (t.contiguous() for t in (v, g, S, q))
    bn = 32
    grid = (triton.cdiv(n_pts, bn), n_in)
    _jet_backward_inputs_kernel[grid](
        v, g, S, q, lo, h, C, w, table, yb, gyb, syb, vb, gb, sb, qb,
        n_pts, n_out, n_grad, n_sec, grid_size,
        *v.stride(), *g.stride(), *S.stride(), *q.stride(),
        lo.stride(0), h.stride(0), *C.stride(), *w.stride(),
        *yb.stride(), *gyb.stride(), *syb.stride(),
        BN=bn, BJ=_pow2(n_out, 32), num_warps=4, **_constants(k, n_grad, n_sec),
    )
    return vb, gb, sb, qb


def jet_backward_params(v: Tensor, g: Tensor, S: Tensor, q: Tensor, lo: Tensor, h: Tensor,
                        grid_size: int, k: int, n_out: int, table: Tensor,
                        yb: Tensor, gyb: Tensor, syb: Tensor,
                        max_chunks: int | None = None) -> tuple[Tensor, Tensor]:
    """Cotangents of ``C`` and ``w``, reduced over points in two stages.

    ``Cb[i,e,j] = sum_p [idx_p <= e <= idx_p + k] (yb B_e + a1 B'_e + a2 B''_e)`` and
    ``wb[i,j] = sum_p yb silu + a1 silu' + a2 silu''`` (``a1, a2`` as in
    :func:`jet_backward_inputs`). Stage one writes one partial sum per chunk of points into a
    ``(chunks, n, G+k+1, m)`` buffer; stage two is ``sum(0)``.

    Args:
        max_chunks: cap on the number of point chunks (default: enough programs to fill the
            GPU, 2 under the interpreter).

    Returns:
        ``Cb (n, G+k, m)``, ``wb (n, m)``.
    """
    n_pts, n_in = v.shape
    n_grad, n_sec = g.shape[1], S.shape[1]
    n_ext = grid_size + k + 1
    bn, bm, bj = 16, _pow2(n_ext, 32), _pow2(n_out, 16)
    n_mblocks, n_jblocks = triton.cdiv(n_ext, bm), triton.cdiv(n_out, bj)
    n_sub = max(triton.cdiv(n_pts, bn), 1)
    if max_chunks is None:
        if v.device.type == "cuda" and not is_interpreted():
            sms = torch.cuda.get_device_properties(v.device).multi_processor_count
            max_chunks = triton.cdiv(4 * sms, max(n_in * n_mblocks * n_jblocks, 1))
        else:
            max_chunks = 2
    sub_per_chunk = triton.cdiv(n_sub, max(min(max_chunks, n_sub), 1))
    n_chunks = triton.cdiv(n_sub, sub_per_chunk)
    part = v.new_zeros(n_chunks, n_in, n_ext, n_out)  # (chunks, n, G+k+1, m)
    if n_pts > 0 and n_in > 0 and n_out > 0:
        grid = (n_chunks, n_in, n_mblocks * n_jblocks)
        _jet_backward_params_kernel[grid](
            v, g, S, q, lo, h, table, yb, gyb, syb, part,
            n_pts, n_out, n_grad, n_sec, grid_size, n_jblocks, sub_per_chunk,
            *v.stride(), *g.stride(), *S.stride(), *q.stride(), lo.stride(0), h.stride(0),
            *yb.stride(), *gyb.stride(), *syb.stride(), *part.stride(),
            BN=bn, BM=bm, BJ=bj, num_warps=4, **_constants(k, n_grad, n_sec),
        )
    total = part.sum(0)  # (n, G+k+1, m)
    return total[:, :-1].contiguous(), total[:, -1].contiguous()
