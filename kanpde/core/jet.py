"""Second-order forward jets: a field, its gradient and declared second-derivative channels.

For a field ``h: R^d -> R^n`` sampled at ``N`` points a :class:`Jet` carries

* ``value``  ``(N, n)``: ``h``;
* ``grad``   ``(N, d, n)``: ``dh_i / dx_a``;
* ``second`` ``(N, R, n)``: ``S_ri = <W_r, Hess h_i> = sum_ab W_r[a, b] d^2 h_i / dx_a dx_b``

for ``R`` constant symmetric channel matrices ``W_r`` (:class:`Channels`): ``W = I`` is the
Laplacian, ``e_x e_x^T`` is ``u_xx``, ``(e_x e_y^T + e_y e_x^T) / 2`` is ``u_xy``.

Jets are pushed through the two kinds of maps a network is made of, exactly:

* linear maps ``y = h A + b``: every part is multiplied by ``A``; ``b`` enters the value only;
* pointwise maps ``y_i = f(h_i)``::

      y_i = f(h_i)
      grad y_i = f'(h_i) grad h_i
      S_ri(y) = f''(h_i) q_ri + f'(h_i) S_ri(h),     q_ri = grad h_i^T W_r grad h_i.

Only first-order autograd is needed to differentiate a loss built from a jet.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor


class Channels:
    """A set of ``R`` symmetric second-order channel matrices ``W`` of shape ``(R, d, d)``.

    Diagonal sets (Laplacians, pure second derivatives) use a cheaper quadratic form.
    """

    def __init__(self, matrices: Tensor, *, name: str = "second"):
        if not isinstance(matrices, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor of shape (R, d, d), "
                            f"got {type(matrices).__name__}")
        if matrices.ndim != 3 or matrices.shape[1] != matrices.shape[2]:
            raise ValueError(f"{name} must have shape (R, d, d), got {tuple(matrices.shape)}")
        if not matrices.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got {matrices.dtype}")
        scale = float(matrices.abs().amax()) if matrices.numel() else 0.0
        if not torch.allclose(matrices, matrices.transpose(1, 2), rtol=0.0,
                              atol=1e-12 * (1.0 + scale)):
            raise ValueError(f"{name} must be symmetric: W[r] == W[r].T for every channel r")
        self.matrices = matrices  # (R, d, d)
        off_diagonal = matrices - torch.diag_embed(torch.diagonal(matrices, dim1=1, dim2=2))
        self.is_diagonal = bool((off_diagonal == 0).all())
        self.diagonal = torch.diagonal(matrices, dim1=1, dim2=2)  # (R, d)

    @property
    def count(self) -> int:
        """Number of channels ``R``."""
        return self.matrices.shape[0]

    @property
    def dim(self) -> int:
        """Coordinate dimension ``d``."""
        return self.matrices.shape[1]

    def to(self, like: Tensor) -> Channels:
        """The same channels with ``like``'s dtype and device."""
        if self.matrices.dtype == like.dtype and self.matrices.device == like.device:
            return self
        return Channels(self.matrices.to(dtype=like.dtype, device=like.device))

    def quad(self, grad: Tensor) -> Tensor:
        """Quadratic forms ``q[n, r, i] = grad[n, :, i]^T W_r grad[n, :, i]``.

        Args:
            grad: ``(N, d, n)``.

        Returns:
            ``(N, R, n)``.
        """
        if self.is_diagonal:
            return torch.einsum("ra,Nai->Nri", self.diagonal, grad * grad)
        w_grad = torch.einsum("rab,Nbi->Nrai", self.matrices, grad)  # (N, R, d, n)
        return (w_grad * grad[:, None]).sum(2)

    @staticmethod
    def empty(dim: int, like: Tensor) -> Channels:
        """No second-order channels: ``W`` of shape ``(0, d, d)``."""
        return Channels(like.new_zeros(0, dim, dim))


@dataclass(frozen=True)
class Jet:
    """Value, gradient and second-order channels of an ``n``-component field at ``N`` points.

    Attributes:
        value: ``(N, n)``.
        grad: ``(N, d, n)``.
        second: ``(N, R, n)``, ``<W_r, Hess value_i>``.
        channels: the ``R`` channel matrices.
    """

    value: Tensor
    grad: Tensor
    second: Tensor
    channels: Channels

    @staticmethod
    def identity(x: Tensor, channels: Channels) -> Jet:
        """The jet of the coordinates themselves: grad = I, second = 0.

        Args:
            x: ``(N, d)`` points.
            channels: ``R`` channel matrices of size ``d``.
        """
        n_points, dim = x.shape
        eye = torch.eye(dim, dtype=x.dtype, device=x.device)
        grad = eye.expand(n_points, dim, dim)  # (N, d, d)
        second = x.new_zeros(n_points, channels.count, dim)  # (N, R, d)
        return Jet(x, grad, second, channels)

    @property
    def width(self) -> int:
        """Number of components ``n``."""
        return self.value.shape[1]

    def quad(self) -> Tensor:
        """``(N, R, n)`` quadratic forms ``grad_i^T W_r grad_i`` (see :meth:`Channels.quad`)."""
        return self.channels.quad(self.grad)

    def linear(self, weight: Tensor, bias: Tensor | None = None) -> Jet:
        """Push through ``y = h @ weight + bias``.

        Args:
            weight: ``(n, m)``.
            bias: ``(m,)`` or ``None``.
        """
        value = self.value @ weight  # (N, m)
        if bias is not None:
            value = value + bias
        return Jet(value, self.grad @ weight, self.second @ weight, self.channels)

    def pointwise(self, f: Tensor, df: Tensor, d2f: Tensor) -> Jet:
        """Push through a componentwise map given its value and derivatives at ``value``.

        Args:
            f, df, d2f: ``(N, n)`` each: ``f(h)``, ``f'(h)``, ``f''(h)``.
        """
        grad = df[:, None] * self.grad  # (N, d, n)
        second = d2f[:, None] * self.quad() + df[:, None] * self.second  # (N, R, n)
        return Jet(f, grad, second, self.channels)

    def map(self, fn: Callable[[Tensor], tuple[Tensor, Tensor, Tensor]]) -> Jet:
        """Push through ``fn``, which returns ``f(h), f'(h), f''(h)`` for a tensor ``h``."""
        return self.pointwise(*fn(self.value))

    def select(self, columns: Sequence[int] | slice) -> Jet:
        """The jet of a subset of components."""
        return Jet(self.value[:, columns], self.grad[..., columns], self.second[..., columns],
                   self.channels)

    def __add__(self, other: Jet) -> Jet:
        return Jet(self.value + other.value, self.grad + other.grad,
                   self.second + other.second, self.channels)

    def __mul__(self, other: Jet) -> Jet:
        """Product rule: ``<W, Hess(ab)> = a <W, Hess b> + b <W, Hess a> + 2 grad a^T W grad b``.

        Components broadcast: an ``other`` of width 1 multiplies every component.
        """
        w = self.channels.matrices  # (R, d, d)
        grad_a, grad_b = torch.broadcast_tensors(self.grad, other.grad)  # (N, d, n) each
        cross = torch.einsum("Nai,rab,Nbi->Nri", grad_a, w, grad_b)  # (N, R, n)
        value = self.value * other.value
        grad = self.grad * other.value[:, None] + other.grad * self.value[:, None]
        second = (self.second * other.value[:, None] + other.second * self.value[:, None]
                  + 2.0 * cross)
        return Jet(value, grad, second, self.channels)

    @staticmethod
    def cat(jets: Sequence[Jet]) -> Jet:
        """Concatenate components of jets that share points and channels."""
        return Jet(torch.cat([j.value for j in jets], 1), torch.cat([j.grad for j in jets], 2),
                   torch.cat([j.second for j in jets], 2), jets[0].channels)


def make_channels(second: Tensor | Channels | None, x: Tensor) -> Channels:
    """Channels for the argument ``second`` of ``jet``: ``None`` means no channels.

    Args:
        second: ``(R, d, d)`` symmetric channel matrices, a :class:`Channels`, or ``None``.
        x: ``(N, d)`` points (their ``d``, dtype and device).
    """
    if second is None:
        return Channels.empty(x.shape[1], x)
    channels = second if isinstance(second, Channels) else Channels(second, name="second")
    if channels.dim != x.shape[1]:
        raise ValueError(f"second must have shape (R, {x.shape[1]}, {x.shape[1]}) for points "
                         f"of dimension {x.shape[1]}, got {tuple(channels.matrices.shape)}")
    return channels.to(x)


def channel_matrices(keys: list[tuple], coords: tuple[str, ...], like: Tensor) -> Tensor:
    """``(R, d, d)`` channel matrices for recorded second-order requests ``keys``.

    ``("lap", names)`` gives the diagonal with ones on ``names``; ``("d", (a, b))`` gives
    ``(e_a e_b^T + e_b e_a^T) / 2`` (``e_a e_a^T`` for a pure derivative).
    """
    d = len(coords)
    mats = []
    for kind, names in keys:
        w = like.new_zeros(d, d)
        idx = [coords.index(c) for c in names]
        if kind == "lap":
            for i in idx:
                w[i, i] = 1.0
        else:
            w[idx[0], idx[1]] += 0.5
            w[idx[1], idx[0]] += 0.5
        mats.append(w)
    return torch.stack(mats) if mats else like.new_zeros(0, d, d)
