"""The jet of one KAN layer from the ``k + 1`` local bases: composed and fused forms.

For inputs ``h`` ``(N, n_in)`` with gradients ``grad`` ``(N, d, n_in)``, channels ``S``
``(N, R, n_in)`` and quadratic forms ``q`` ``(N, R, n_in)``, and edge functions
``phi_ij(x) = w_b[i, j] silu(x) + sum_m c[i, m, j] B_m(x)``::

    y[p, j]       = sum_i phi_ij(h_pi)
    gy[p, a, j]   = sum_i phi'_ij(h_pi) grad[p, a, i]
    Sy[p, s, j]   = sum_i phi''_ij(h_pi) q[p, s, i] + phi'_ij(h_pi) S[p, s, i]

Stacking the ``C = 1 + d + R`` rows, the local weights of input ``i`` are the non-zero bases
times each row's chain-rule factor, ``a[p, c, i, r]`` (:func:`composed_layer_jet`), and the
output is ``local_contract(a, idx, c) + f @ w_b`` (:mod:`kanpde.kernels.contract`, ``f`` the same
factors for ``silu``).

Two implementations give the same numbers:

* :func:`composed_layer_jet`: PyTorch ops around the three local contractions; differentiable
  to any order and through ``torch.func`` transforms. It is the reference, the path for
  value-only forwards (nested autograd runs through it) and for devices without the kernels.
* :class:`FusedLayerJet`: one compiled CPU loop forward and one backward
  (:func:`kanpde.kernels.cpu.jet_forward` / ``jet_backward``) that evaluate ``silu``, the
  bases (on uniform grids) and ``a`` on the fly and never store them; the backward returns the
  cotangent of ``h`` directly from one more derivative order of the bases
  (``d f^(q) / dh = f^(q+1)``). With diagonal channels (Laplacians, ``u_xx``) the quadratic
  forms ``q[p, s, i] = sum_a diag[s, a] grad[p, a, i]^2`` are formed and differentiated inside
  as well (``quad=None``, ``diag`` given). Its backward with ``create_graph=True``, its
  ``vmap`` rule and its ``jvp`` fall back to :func:`composed_layer_jet` (by
  ``torch.func.vjp`` / ``vmap`` / ``jvp``), so higher derivatives and ``torch.func`` work
  there too.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.func import jvp, vjp, vmap

from kanpde.core import spline
from kanpde.core.activations import silu_derivatives
from kanpde.kernels import cpu
from kanpde.kernels.contract import has_storage, local_contract


def _orders(dim: int, n_ch: int) -> int:
    """Derivative orders of the bases the rows need: 1 (value), 2 (gradient), 3 (channels)."""
    return 3 if n_ch else (2 if dim else 1)


def composed_layer_jet(value: Tensor, grad: Tensor, second: Tensor, quad: Tensor | None,
                       coef: Tensor, base_weight: Tensor, knots: Tensor, diag: Tensor | None,
                       k: int, uniform: bool, backend: str = "auto") -> Tensor:
    """Stacked jet rows ``(N, 1 + d + R, n_out)`` of one layer (shapes in the module doc).

    Args:
        quad: ``(N, R, n_in)``, or ``None`` for diagonal channels given by ``diag``.
        coef: ``(n_in, G + k, n_out)`` effective spline coefficients.
        base_weight: ``(n_in, n_out)``.
        knots: ``(n_in, G + 2k + 1)``.
        diag: ``(R, d)``: ``quad[p, s, i] = sum_a diag[s, a] grad[p, a, i]^2`` when ``quad`` is
            ``None``.
        k: spline order; uniform: equally spaced knots.
        backend: of the local contraction (:func:`kanpde.kernels.contract.local_contract`).
    """
    if quad is None:
        quad = diagonal_quad(grad, diag)  # (N, R, n_in)
    dim, n_ch = grad.shape[1], second.shape[1]
    n_deriv = _orders(dim, n_ch) - 1
    idx, basis = spline.local_basis(value, knots, k, n_deriv, uniform)  # (q, N, n_in, k+1)
    if n_deriv == 0:
        base = torch.nn.functional.silu(value)[None]  # (1, N, n_in)
    else:
        base = torch.stack(silu_derivatives(value)[: n_deriv + 1])  # (q, N, n_in)
    local = [basis[0][:, None]]  # value rows (N, 1, n_in, k+1)
    factors = [base[0][:, None]]  # (N, 1, n_in)
    if dim:
        local.append(basis[1][:, None] * grad[..., None])  # (N, d, n_in, k+1)
        factors.append(base[1][:, None] * grad)  # (N, d, n_in)
    if n_ch:
        local.append(basis[2][:, None] * quad[..., None] + basis[1][:, None] * second[..., None])
        factors.append(base[2][:, None] * quad + base[1][:, None] * second)  # (N, R, n_in)
    a = torch.cat(local, dim=1) if len(local) > 1 else local[0]  # (N, 1+d+R, n_in, k+1)
    f = torch.cat(factors, dim=1) if len(factors) > 1 else factors[0]  # (N, 1+d+R, n_in)
    return local_contract(a, idx, coef, backend) + f @ base_weight  # (N, 1+d+R, n_out)


def diagonal_quad(grad: Tensor, diag: Tensor) -> Tensor:
    """``(N, R, n_in)`` quadratic forms ``sum_a diag[s, a] grad[p, a, i]^2`` of diagonal
    channels ``diag`` ``(R, d)`` (``grad`` ``(N, d, n_in)``)."""
    return torch.einsum("ra,Nai->Nri", diag.to(grad.dtype), grad * grad)


@torch.no_grad()
def _features(value: Tensor, knots: Tensor, k: int, uniform: bool, n_orders: int
              ) -> cpu.Features:
    """``n_orders`` derivative orders of the local bases of ``value`` for the kernels, without
    graph (the kernels differentiate them): from the grid in the kernels when it is uniform,
    else precomputed here."""
    if uniform:
        lo = knots[:, k]  # (n_in,)
        inv_h = 1.0 / (knots[:, k + 1] - knots[:, k])  # (n_in,)
        return cpu.Features(k, n_orders, lo=lo, inv_h=inv_h,
                            grid_size=knots.shape[1] - 2 * k - 1)
    idx, basis = spline.local_basis(value, knots, k, n_orders - 1, uniform)  # (q, N, n_in, K)
    return cpu.Features(k, n_orders, idx=idx, basis=basis.permute(1, 0, 3, 2))  # (N,q,K,n_in)


class FusedLayerJet(torch.autograd.Function):
    """:func:`composed_layer_jet` by the compiled CPU kernels (same arguments, ``backend``
    excepted; float32/float64 CPU tensors; the inputs may be views of the previous layer's
    output rows)."""

    @staticmethod
    def forward(value: Tensor, grad: Tensor, second: Tensor, quad: Tensor | None, coef: Tensor,
                base_weight: Tensor, knots: Tensor, diag: Tensor | None, k: int, uniform: bool
                ) -> Tensor:
        features = _features(value, knots, k, uniform, _orders(grad.shape[1], second.shape[1]))
        w = torch.cat([base_weight[:, None], coef], dim=1)  # (n_in, G+k+1, n_out)
        return cpu.jet_forward(value, features, grad, second, quad, w, diag)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: Tensor) -> None:
        *tensors, ctx.k, ctx.uniform = inputs
        ctx.save_for_backward(*tensors)
        ctx.save_for_forward(*tensors)

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> tuple[Tensor | None, ...]:
        # value, grad, second, quad, coef, base_weight, knots, diag
        tensors = ctx.saved_tensors
        need = ctx.needs_input_grad[:6]
        if torch.is_grad_enabled() or not has_storage(g):
            # create_graph=True, torch.func or batched cotangents: the differentiable rule
            grads = _composed_vjp(tensors, ctx.k, ctx.uniform, g, need)
        else:
            value, grad, second, quad, coef, base_weight, knots, diag = tensors
            n_orders = _orders(grad.shape[1], second.shape[1]) + 1  # d f^(q)/dh = f^(q+1)
            features = _features(value, knots, ctx.k, ctx.uniform, n_orders)
            w = torch.cat([base_weight[:, None], coef], dim=1)  # (n_in, G+k+1, n_out)
            *grads, dw = cpu.jet_backward(value, features, grad, second, quad, w, g,
                                          need_w=need[4] or need[5], diag=diag)
            grads += [None, None] if dw is None else [dw[:, 1:], dw[:, 0]]
        return (*(t if n else None for t, n in zip(grads, need, strict=True)), None, None,
                None, None)

    @staticmethod
    def jvp(ctx: Any, *tangents: Tensor | None) -> Tensor:
        tensors = ctx.saved_tensors
        primals = [t for t, dt in zip(tensors[:6], tangents[:6], strict=True) if dt is not None]
        dots = [dt for dt in tangents[:6] if dt is not None]
        if not dots:
            return tensors[0].new_zeros(0)  # never reached: forward AD gives a tangent

        def partial(*args: Tensor) -> Tensor:
            it = iter(args)
            full = [next(it) if dt is not None else t
                    for t, dt in zip(tensors[:6], tangents[:6], strict=True)]
            return composed_layer_jet(*full, *tensors[6:], ctx.k, ctx.uniform)

        return jvp(partial, tuple(t.contiguous() for t in primals),  # no stride-0 duals
                   tuple(t.contiguous() for t in dots))[1]

    @staticmethod
    def vmap(info: Any, in_dims: tuple, *args: Any) -> tuple[Tensor, int]:
        return vmap(composed_layer_jet, in_dims=in_dims)(*args), 0


def _composed_vjp(tensors: tuple[Tensor, ...], k: int, uniform: bool, g: Tensor,
                  need: tuple[bool, ...]) -> list[Tensor | None]:
    """Cotangents of the first six inputs of :func:`composed_layer_jet` (differentiable)."""
    diff = [i for i, n in enumerate(need) if n]

    def partial(*args: Tensor) -> Tensor:
        full = list(tensors)
        for i, t in zip(diff, args, strict=True):
            full[i] = t
        return composed_layer_jet(*full, k, uniform)

    _, pullback = vjp(partial, *(tensors[i] for i in diff))
    out: list[Tensor | None] = [None] * 6
    for i, t in zip(diff, pullback(g), strict=True):
        out[i] = t
    return out


def fused_available(value: Tensor, backend: str) -> bool:
    """Whether :class:`FusedLayerJet` runs for ``value`` under contraction ``backend``."""
    return backend != "torch" and cpu.available(value)


def layer_jet(value: Tensor, grad: Tensor, second: Tensor, quad: Tensor | None, coef: Tensor,
              base_weight: Tensor, knots: Tensor, k: int, uniform: bool,
              backend: str = "auto", diag: Tensor | None = None) -> Tensor:
    """``(N, 1 + d + R, n_out)`` jet rows: the fused kernels for jets on CPU when they
    build (and ``backend`` allows), else :func:`composed_layer_jet` (arguments as there;
    ``quad`` ``None`` with diagonal channels ``diag``)."""
    if (quad is None) == (diag is None):
        raise ValueError("layer_jet: give exactly one of quad and diag")
    if (grad.shape[1] or second.shape[1]) and fused_available(value, backend):
        return FusedLayerJet.apply(value, grad, second, quad, coef, base_weight, knots, diag, k,
                                   uniform)
    return composed_layer_jet(value, grad, second, quad, coef, base_weight, knots, diag, k,
                              uniform, backend)
