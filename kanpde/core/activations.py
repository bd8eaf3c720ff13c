"""Pointwise functions with their first two derivatives: the triples jets are pushed through.

A triple ``f(x) -> (f(x), f'(x), f''(x))`` is what :meth:`kanpde.core.jet.Jet.pointwise`
needs for a pointwise map. This module is the one place for them: the MLP activations
(:data:`ACTIVATIONS`, their plain forms :data:`ACTIVATION_VALUES`), the KAN base function
``silu`` and the ``sin``/``cos`` of the embeddings; the symbolic edges
(:mod:`kanpde.nn.symbolic`) reuse ``sin``, ``cos`` and ``tanh``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

Triple = tuple[Tensor, Tensor, Tensor]
"""``(f(x), f'(x), f''(x))``, each shaped like ``x``."""


def silu_derivatives(x: Tensor) -> Triple:
    """``silu(x) = x sigma(x)`` and its first two derivatives."""
    s = torch.sigmoid(x)
    ds = s * (1.0 - s)
    return x * s, s + x * ds, ds * (2.0 + x * (1.0 - 2.0 * s))


def tanh_derivatives(x: Tensor) -> Triple:
    """``tanh`` and its first two derivatives."""
    t = torch.tanh(x)
    dt = 1.0 - t * t
    return t, dt, -2.0 * t * dt


def sin_derivatives(x: Tensor) -> Triple:
    """``sin`` and its first two derivatives."""
    s = torch.sin(x)
    return s, torch.cos(x), -s


def cos_derivatives(x: Tensor) -> Triple:
    """``cos`` and its first two derivatives."""
    c = torch.cos(x)
    return c, -torch.sin(x), -c


def gelu_derivatives(x: Tensor) -> Triple:
    """Exact (erf) GELU ``x Phi(x)`` and its first two derivatives."""
    cdf = 0.5 * (1.0 + torch.erf(x * 0.7071067811865476))
    pdf = torch.exp(-0.5 * x * x) * 0.3989422804014327
    return x * cdf, cdf + x * pdf, pdf * (2.0 - x * x)


ACTIVATIONS: dict[str, Callable[[Tensor], Triple]] = {
    "tanh": tanh_derivatives,
    "sin": sin_derivatives,
    "silu": silu_derivatives,
    "gelu": gelu_derivatives,
}

#: the plain forward of each activation (what ``MLP.forward`` applies)
ACTIVATION_VALUES: dict[str, Callable[[Tensor], Tensor]] = {
    "tanh": torch.tanh,
    "sin": torch.sin,
    "silu": nn.functional.silu,
    "gelu": nn.functional.gelu,
}
