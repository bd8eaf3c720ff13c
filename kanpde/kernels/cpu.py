"""Compiled CPU loops for KAN layers: the local (``k + 1``-sparse) spline contractions.

A KAN layer touches, per point ``p`` and input ``i``, only the ``K = k + 1`` coefficient rows
``w[i, idx[p, i] + r, :]``, ``r = 0..k``. Two families of loops use only those rows:

* the generic bilinear maps of :mod:`kanpde.kernels.contract` (source
  :mod:`kanpde.kernels._csrc_rows`), which make the value forward and all its derivatives::

      gather:   out[p, c, :]    = sum_{i, r} a[p, c, i, r] w[i, idx[p, i] + r, :]
      sampled:  da[p, c, i, r]  = sum_j g[p, c, j] w[i, idx[p, i] + r, j]
      scatter:  dw[i, m, :]     = sum_{p, c, r : idx[p, i] + r = m} a[p, c, i, r] g[p, c, :]

* the fused jet of a layer (:func:`jet_forward`, :func:`jet_backward`; source
  :mod:`kanpde.kernels._csrc_jet`), which builds the local weights of the value, gradient and
  channel rows on the fly from the bases and never stores them.

They are plain C (OpenMP over points, 32-byte vectors of the GCC/Clang vector extension),
compiled on first use with the system C compiler (``$CC``, else ``cc``, ``gcc``, ``clang``)
into a per-user cache directory (``$KANPDE_CACHE_DIR``, else ``$XDG_CACHE_HOME/kanpde``, else
``~/.cache/kanpde``) keyed by a hash of source, flags and machine. That takes about a second
and needs no torch headers (``torch.utils.cpp_extension`` needs tens of seconds for the
headers alone); the library is called through ``ctypes``, which releases the GIL. Without a
working compiler, or with ``KANPDE_NO_COMPILE=1``, :func:`available` is false and the
pure-PyTorch contraction of :mod:`kanpde.kernels.contract` runs instead.

Determinism: every output element is summed by one thread in a fixed order, and coefficient
cotangents are summed over :data:`SCATTER_BLOCKS` fixed blocks of points reduced in block
order, so results do not depend on the thread count.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

import torch
from torch import Tensor

from kanpde.kernels import _csrc_jet, _csrc_rows

#: blocks of points whose partial sums ``scatter`` reduces in order (fixed: bit-reproducible)
SCATTER_BLOCKS = 8

_PRELUDE = r"""
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* exp(x) for -708 <= x <= 0 (clamped), vectorisable: x = k ln2 + r with |r| <= ln2 / 2
   (Cody-Waite split of ln2), exp(r) by its Taylor polynomial of degree 13 (truncation below
   1e-17 relative), times 2^k built in the exponent bits. */
static inline double kan_exp_neg(double x)
{
    x = x < -708.0 ? -708.0 : (x > 0.0 ? 0.0 : x);
    const double kf = floor(x * 1.44269504088896338700 + 0.5);
    const double r = (x - kf * 6.93147180369123816490e-01) - kf * 1.90821492927058770002e-10;
    double p = 1.0 / 6227020800.0;
    const double inv_fact[13] = {1.0 / 479001600.0, 1.0 / 39916800.0, 1.0 / 3628800.0,
                                 1.0 / 362880.0, 1.0 / 40320.0, 1.0 / 5040.0, 1.0 / 720.0,
                                 1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0};
    for (int n = 0; n < 13; ++n) p = p * r + inv_fact[n];
    const double m = kf + 6755399441055744.0; /* 1.5 2^52: k in the low mantissa bits */
    int64_t bits;
    memcpy(&bits, &m, sizeof bits);
    bits = (bits - 0x4338000000000000LL + 1023) << 52;
    double scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}
"""

#: the kernels once, for ``REAL`` = double (suffix ``f64``) and float (``f32``)
_BODY = _csrc_rows.SOURCE + _csrc_jet.SOURCE

_SOURCE = _PRELUDE + "".join(_BODY.replace("REAL", real).replace("SFX", sfx)
                             for real, sfx in (("double", "f64"), ("float", "f32")))

#: tried in order until one compiles (no -march=native, then no OpenMP: serial loops)
_FLAG_SETS = (
    ["-O3", "-march=native", "-fopenmp"],
    ["-O3", "-fopenmp"],
    ["-O3"],
)
_COMMON_FLAGS = ["-std=gnu11", "-ffp-contract=fast", "-fno-trapping-math", "-fno-math-errno",
                 "-shared", "-fPIC"]
#: set to 1 to skip the compiled kernels (the pure-PyTorch contraction runs instead)
ENV_DISABLE = "KANPDE_NO_COMPILE"
_SUFFIX = {torch.float64: "f64", torch.float32: "f32"}


def _cache_dir() -> Path:
    explicit = os.environ.get("KANPDE_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "kanpde"


def _compiler() -> str | None:
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return name
    return None


def _machine_key() -> str:
    """What ``-march=native`` depends on: the CPU model and feature flags when readable."""
    try:
        with open("/proc/cpuinfo") as f:
            lines = [ln for ln in f if ln.startswith(("model name", "flags"))][:2]
    except OSError:
        lines = []
    return platform.machine() + platform.processor() + "".join(lines)


def _compile(cc: str, flags: list[str], target: Path) -> bool:
    """Compile the source with ``flags`` into ``target`` (atomically); True on success."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        src = Path(tmp) / "kan_local.c"
        src.write_text(_SOURCE)
        out = Path(tmp) / target.name
        cmd = [cc, *flags, *_COMMON_FLAGS, str(src), "-o", str(out), "-lm"]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        except (OSError, subprocess.TimeoutExpired):
            return False
        if proc.returncode != 0 or not out.exists():
            return False
        os.replace(out, target)  # atomic: concurrent builders leave one complete file
    return True


def _load(path: Path) -> ctypes.CDLL:
    lib = ctypes.CDLL(str(path))
    ptr, i64, nt = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int
    signatures = {"gather": [ptr] * 4 + [i64] * 6, "sampled": [ptr] * 4 + [i64] * 6,
                  "scatter": [ptr] * 5 + [i64] * 7, "jet_forward": [ptr] * 13 + [i64] * 9,
                  "jet_backward": [ptr] * 19 + [i64] * 10}
    for suffix in _SUFFIX.values():
        for name, args in signatures.items():
            fn = getattr(lib, f"kan_{name}_{suffix}")
            fn.argtypes = [*args, nt]
            fn.restype = None
    return lib


@functools.cache
def library() -> ctypes.CDLL | None:
    """The compiled kernels, built on the first call of the process; ``None`` if no compiler
    works (a warning says why once). Like an import, the loaded library lives as long as the
    process."""
    if os.environ.get(ENV_DISABLE, "0") not in ("", "0"):
        return None
    cc = _compiler()
    if cc is None:
        warnings.warn("kanpde: no C compiler found ($CC, cc, gcc, clang): KAN layers use the "
                      "slower pure-PyTorch sparse contraction on CPU", stacklevel=2)
        return None
    try:
        cache = _cache_dir()
        cache.mkdir(parents=True, exist_ok=True)
    except OSError:  # no writable cache: a private directory for this process
        cache = Path(tempfile.mkdtemp(prefix="kanpde-kernels-"))
    for flags in _FLAG_SETS:
        key = "\n".join([_SOURCE, cc, *flags, *_COMMON_FLAGS, _machine_key()])
        target = cache / f"kan_local_{hashlib.sha256(key.encode()).hexdigest()[:16]}.so"
        try:
            if target.exists() or _compile(cc, flags, target):
                return _load(target)
        except OSError:
            continue
    warnings.warn(f"kanpde: compiling the CPU spline kernels with {cc} failed: KAN layers use "
                  "the slower pure-PyTorch sparse contraction on CPU", stacklevel=2)
    return None


def available(t: Tensor) -> bool:
    """Whether the compiled kernels can run on ``t`` (a float32/float64 CPU tensor)."""
    return t.device.type == "cpu" and t.dtype in _SUFFIX and library() is not None


def _ptr(t: Tensor) -> int:
    return t.data_ptr()


def gather(a: Tensor, idx: Tensor, w: Tensor) -> Tensor:
    """``out[p, c, :] = sum_{i, r} a[p, c, i, r] w[i, idx[p, i] + r, :]``.

    Args:
        a: ``(N, C, n_in, K)`` weights of the local rows.
        idx: ``(N, n_in)`` int64 first row, ``0 <= idx <= M - K``.
        w: ``(n_in, M, n_out)`` rows.

    Returns:
        ``(N, C, n_out)``.
    """
    n, nc, nin, k1 = a.shape
    a, idx, w = a.contiguous(), idx.contiguous(), w.contiguous()
    out = a.new_empty(n, nc, w.shape[2])
    getattr(library(), f"kan_gather_{_SUFFIX[a.dtype]}")(
        _ptr(a), _ptr(idx), _ptr(w), _ptr(out), n, nc, nin, k1, w.shape[1], w.shape[2],
        torch.get_num_threads())
    return out


def sampled(g: Tensor, idx: Tensor, w: Tensor, k1: int) -> Tensor:
    """``da[p, c, i, r] = sum_j g[p, c, j] w[i, idx[p, i] + r, j]``.

    Args:
        g: ``(N, C, n_out)``.
        idx: ``(N, n_in)`` int64.
        w: ``(n_in, M, n_out)``.
        k1: ``K``, rows per point and input.

    Returns:
        ``(N, C, n_in, K)``.
    """
    n, nc, nout = g.shape
    nin = idx.shape[1]
    g, idx, w = g.contiguous(), idx.contiguous(), w.contiguous()
    out = g.new_empty(n, nc, nin, k1)
    getattr(library(), f"kan_sampled_{_SUFFIX[g.dtype]}")(
        _ptr(g), _ptr(idx), _ptr(w), _ptr(out), n, nc, nin, k1, w.shape[1], nout,
        torch.get_num_threads())
    return out


def scatter(a: Tensor, idx: Tensor, g: Tensor, n_rows: int) -> Tensor:
    """``dw[i, m, :] = sum_{p, c, r : idx[p, i] + r = m} a[p, c, i, r] g[p, c, :]``.

    Args:
        a: ``(N, C, n_in, K)``.
        idx: ``(N, n_in)`` int64.
        g: ``(N, C, n_out)``.
        n_rows: ``M``.

    Returns:
        ``(n_in, M, n_out)``.
    """
    n, nc, nin, k1 = a.shape
    nout = g.shape[2]
    a, idx, g = a.contiguous(), idx.contiguous(), g.contiguous()
    out = a.new_empty(nin, n_rows, nout)
    blocks = max(1, min(SCATTER_BLOCKS, n))
    part = a.new_empty(blocks, nin, n_rows, nout)
    getattr(library(), f"kan_scatter_{_SUFFIX[a.dtype]}")(
        _ptr(a), _ptr(idx), _ptr(g), _ptr(out), _ptr(part), blocks, n, nc, nin, k1, n_rows,
        nout, torch.get_num_threads())
    return out


class Features:
    """The local bases of one layer's inputs for the jet kernels, ``orders`` derivative
    orders (1..4; the kernels evaluate ``silu`` and its derivatives themselves).

    Either a uniform grid: ``lo``, ``inv_h`` ``(n_in,)``, ``grid_size`` and spline order ``k``
    (the kernels evaluate the bases too), or precomputed ``idx`` ``(N, n_in)`` and ``basis``
    ``(N, orders, k+1, n_in)`` (general knots).
    """

    def __init__(self, k: int, orders: int, *, lo: Tensor | None = None,
                 inv_h: Tensor | None = None, grid_size: int = 0, idx: Tensor | None = None,
                 basis: Tensor | None = None):
        if not 1 <= orders <= 4 or (basis is not None and basis.shape[1] != orders):
            raise ValueError(f"Features: 1..4 derivative orders, as many as the precomputed "
                             f"bases have; got {orders}")
        self.k, self.orders, self.lo, self.inv_h = k, orders, lo, inv_h
        self.grid_size, self.idx, self.basis = grid_size, idx, basis

    def pointers(self, value: Tensor) -> tuple[list[Tensor], list[int | None]]:
        """Tensors to keep alive and the pointers ``x, lo, ih, tab, b, idx``."""
        if self.basis is None:
            from kanpde.core.spline import uniform_derivative_matrices

            table = uniform_derivative_matrices(self.k, 3, value.dtype)  # (4, k+1, k+1)
            keep = [_unit(value), *(t.contiguous() for t in (self.lo, self.inv_h, table))]
            return keep, [_ptr(t) for t in keep] + [None, None]
        keep = [_unit(value), *(t.contiguous() for t in (self.basis, self.idx))]
        return keep, [_ptr(keep[0]), None, None, None] + [_ptr(t) for t in keep[1:]]


def _unit(t: Tensor) -> Tensor:
    """``t`` if its last dimension is contiguous (other strides are passed on), else a copy."""
    return t if t.shape[-1] <= 1 or t.stride(-1) == 1 else t.contiguous()


def _jet_inputs(value: Tensor, grad: Tensor, second: Tensor, quad: Tensor | None,
                diag: Tensor | None) -> tuple[list[Tensor | None], list[int | None]]:
    """Tensors to keep alive and the pointers ``grad, sec, quad, st, diag`` of the jet
    kernels: inputs with unit last stride, their element strides ``st`` ``(7,)`` int64
    ``[h_p, grad_p, grad_a, sec_p, sec_s, quad_p, quad_s]`` (the kernels read strided views,
    e.g. rows of the previous layer's output) and, without ``quad``, the ``(R, d)`` diagonal
    channel weights it is computed from."""
    if (quad is None) == (diag is None):
        raise ValueError("give exactly one of quad and diag")
    rows = [None if t is None else _unit(t) for t in (grad, second, quad)]
    strides = [value.stride(0)]
    for t in rows:
        strides += [0, 0] if t is None else [t.stride(0), t.stride(1)]
    keep = [*rows, torch.tensor(strides, dtype=torch.int64),
            None if diag is None else diag.to(value.dtype).contiguous()]
    return keep, [None if t is None else _ptr(t) for t in keep]


def jet_forward(value: Tensor, features: Features, grad: Tensor, second: Tensor,
                quad: Tensor | None, w: Tensor, diag: Tensor | None = None) -> Tensor:
    """Fused jet of one KAN layer.

    With local features ``f[q] = [silu^(q)(h_i), B^(q)_{idx}(h_i) .. B^(q)_{idx+k}(h_i)]``
    and extended rows ``w[i, 0] =`` base weight, ``w[i, 1 + m] =`` spline coefficient ``m``::

        out[p, 0]         = sum_i sum_e f[0][e] w[i, row_e]
        out[p, 1 + a]     = sum_i sum_e grad[p, a, i] f[1][e] w[i, row_e]
        out[p, 1 + d + s] = sum_i sum_e (quad[p, s, i] f[2][e] + second[p, s, i] f[1][e])
                            w[i, row_e]

    with ``row_0 = 0`` and ``row_e = idx[p, i] + e`` for ``e = 1..k+1``.

    Args:
        value: ``(N, n_in)`` layer inputs ``h``.
        features: their local bases (:class:`Features`).
        grad: ``(N, d, n_in)``; second, quad: ``(N, R, n_in)``.
        w: ``(n_in, G + k + 1, n_out)`` base weights and coefficients.
        diag: ``(R, d)`` weights of diagonal channels, ``quad[p, s, i] = sum_a diag[s, a]
            grad[p, a, i]^2``, computed in the kernels (then ``quad`` is ``None``).

    Returns:
        ``(N, 1 + d + R, n_out)``.
    """
    n, n_in = value.shape
    nd, nr = grad.shape[1], second.shape[1]
    keep, ptrs = features.pointers(value)
    rows, row_ptrs = _jet_inputs(keep[0], grad, second, quad, diag)
    w = w.contiguous()
    out = value.new_empty(n, 1 + nd + nr, w.shape[2])
    getattr(library(), f"kan_jet_forward_{_SUFFIX[value.dtype]}")(
        *ptrs, *row_ptrs, _ptr(w), _ptr(out), n, n_in, features.orders,
        features.k + 1, nd, nr, w.shape[1], w.shape[2], features.grid_size,
        torch.get_num_threads())
    return out


def jet_backward(value: Tensor, features: Features, grad: Tensor, second: Tensor,
                 quad: Tensor | None, w: Tensor, g: Tensor, need_w: bool = True,
                 diag: Tensor | None = None
                 ) -> tuple[Tensor, Tensor, Tensor, Tensor | None, Tensor | None]:
    """Cotangents of :func:`jet_forward` for the output cotangent ``g`` ``(N, 1+d+R, n_out)``.

    The features must carry one derivative order more than the rows use: the cotangent of
    the layer input is ``sum_q sum_e df[q][e] f[q + 1][e]``.

    Returns:
        Cotangents of value ``(N, n_in)``, grad ``(N, d, n_in)`` (through ``quad`` too when
        it comes from ``diag``), second and quad ``(N, R, n_in)`` (``None`` with ``diag``)
        and, when ``need_w``, of ``w`` ``(n_in, G + k + 1, n_out)``.
    """
    n, n_in = value.shape
    nd, nr = grad.shape[1], second.shape[1]
    if features.orders < (3 if nr else 2 if nd else 1) + 1:
        raise ValueError("jet_backward needs one more derivative order of the bases")
    keep, ptrs = features.pointers(value)
    rows, row_ptrs = _jet_inputs(keep[0], grad, second, quad, diag)
    w, g = w.contiguous(), g.contiguous()
    dval = value.new_empty(n, n_in)
    dgrad, dsec = value.new_empty(grad.shape), value.new_empty(second.shape)  # contiguous
    dquad = None if quad is None else value.new_empty(quad.shape)
    blocks = max(1, min(SCATTER_BLOCKS, n))
    dw = torch.empty_like(w) if need_w else None
    part = w.new_empty(blocks, *w.shape) if need_w else None
    getattr(library(), f"kan_jet_backward_{_SUFFIX[value.dtype]}")(
        *ptrs, *row_ptrs, _ptr(w), _ptr(g), _ptr(dval), _ptr(dgrad), _ptr(dsec),
        None if dquad is None else _ptr(dquad),
        None if dw is None else _ptr(dw), None if part is None else _ptr(part), blocks, n,
        n_in, features.orders, features.k + 1, nd, nr, w.shape[1], w.shape[2],
        features.grid_size, torch.get_num_threads())
    return dval, dgrad, dsec, dquad, dw
