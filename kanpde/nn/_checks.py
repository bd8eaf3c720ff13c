"""Argument checks shared by the model families."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def check_widths(widths: Sequence[int]) -> None:
    """Raise ``ValueError`` unless ``widths`` is ``[d, ..., m]`` of at least two positive ints."""
    if isinstance(widths, (str, bytes)) or not isinstance(widths, Sequence) or len(widths) < 2:
        raise ValueError(f"widths must be a list [d, hidden..., m] of at least two positive "
                         f"integers, got {widths!r}")
    for w in widths:
        if not isinstance(w, int) or isinstance(w, bool) or w < 1:
            raise ValueError(f"widths must be positive integers, got {widths!r}")


def check_points(x: Tensor, dim: int, dtype: torch.dtype) -> None:
    """Raise unless ``x`` is an ``(N, dim)`` tensor of the model's ``dtype``."""
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a torch.Tensor of shape (N, {dim}), got {type(x).__name__}")
    if x.ndim != 2 or x.shape[1] != dim:
        raise ValueError(f"x must have shape (N, {dim}), got {tuple(x.shape)}")
    if x.dtype != dtype:
        raise TypeError(f"x has dtype {x.dtype} but the model's parameters are {dtype}; "
                        f"convert with x.to({dtype}) or build the model with dtype={x.dtype}")
