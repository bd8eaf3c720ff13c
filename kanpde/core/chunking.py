"""Evaluations over many points in chunks whose size follows a memory budget.

Residuals and fields over ``10^5 .. 10^6`` points do not fit in memory at once (a jet carries
``1 + d + R`` rows per point through every layer). Points never interact, so evaluating them in
chunks and concatenating gives the same numbers (up to round-off of blocked matrix products).

The chunk size is ``budget // bytes_per_point`` (at least :data:`MIN_CHUNK`), with the working
memory per point estimated from the model: for ``rows = 1 + d + R`` jet rows and the widest
layer, ``2 * rows * width * itemsize`` where a KAN layer's width counts its local weights
(``3 (k + 2) n_in + 2 n_out``) and any other layer ``3 (n_in + n_out)``. Without a model a
generic :data:`DEFAULT_POINT_BYTES` is used.

The budget is :data:`DEFAULT_BUDGET` bytes (256 MiB) unless the caller passes one or the
environment sets ``KANPDE_MEMORY_BUDGET_MB`` (mebibytes).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

import torch
from torch import Tensor, nn

DEFAULT_BUDGET = 256 * 2**20
DEFAULT_POINT_BYTES = 64 * 2**10
MIN_CHUNK = 256
ENV_BUDGET = "KANPDE_MEMORY_BUDGET_MB"

T = TypeVar("T")


def memory_budget(budget: int | None = None) -> int:
    """``budget`` if given, else ``$KANPDE_MEMORY_BUDGET_MB`` MiB, else :data:`DEFAULT_BUDGET`.

    Raises:
        ValueError: a non-positive budget or an unreadable environment value.
    """
    if budget is None:
        raw = os.environ.get(ENV_BUDGET)
        if raw is None or not raw.strip():
            return DEFAULT_BUDGET
        try:
            budget = int(float(raw) * 2**20)
        except ValueError as err:
            raise ValueError(f"{ENV_BUDGET} must be a number of MiB, got {raw!r}") from err
    if budget <= 0:
        raise ValueError(f"memory budget must be positive, got {budget}")
    return int(budget)


def point_bytes(model: nn.Module | None, dim: int, channels: int = 0,
                itemsize: int = 8) -> int:
    """Estimated working memory of one point in a (no-grad) evaluation of ``model``.

    Args:
        model: the network (``None``: :data:`DEFAULT_POINT_BYTES`).
        dim: coordinates ``d`` whose gradient the evaluation carries (0: values only).
        channels: second-order channels ``R``.
        itemsize: bytes per number (8 for float64).
    """
    if model is None:
        return DEFAULT_POINT_BYTES
    widest = 64
    for module in model.modules():
        if hasattr(module, "knots") and hasattr(module, "n_in") and hasattr(module, "k"):
            widest = max(widest, 3 * (module.k + 2) * module.n_in + 2 * module.n_out)
            continue
        for p in module.parameters(recurse=False):
            if p.ndim == 2:
                widest = max(widest, 3 * (p.shape[0] + p.shape[1]))
    return 2 * (1 + dim + channels) * widest * itemsize


def points_per_chunk(model: nn.Module | None = None, dim: int = 0, channels: int = 0,
                     itemsize: int = 8, budget: int | None = None) -> int:
    """Chunk size ``max(MIN_CHUNK, budget // point_bytes(...))`` (see :func:`point_bytes`)."""
    return max(MIN_CHUNK, memory_budget(budget) // point_bytes(model, dim, channels, itemsize))


def map_chunks(fn: Callable[[Tensor], T], x: Tensor, chunk: int) -> T:
    """``fn(x)`` evaluated on consecutive chunks of ``chunk`` rows of ``x`` and concatenated.

    Args:
        fn: maps ``(n, ...)`` points to a tensor, a tuple/list of tensors or a dict of
            tensors, each with ``n`` leading rows.
        x: ``(M, ...)`` points.
        chunk: rows per call (``>= 1``).

    Returns:
        What ``fn(x)`` returns, with every tensor concatenated along dimension 0.
    """
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    if x.shape[0] <= chunk:
        return fn(x)
    parts = [fn(x[s:s + chunk]) for s in range(0, x.shape[0], chunk)]
    return _concat(parts)


def _concat(parts: list[Any]) -> Any:
    first = parts[0]
    if isinstance(first, Tensor):
        return torch.cat(parts)
    if isinstance(first, dict):
        return {k: _concat([p[k] for p in parts]) for k in first}
    if isinstance(first, tuple | list):
        return type(first)(_concat([p[i] for p in parts]) for i in range(len(first)))
    raise TypeError(f"map_chunks: cannot concatenate results of type {type(first).__name__}")
