"""Floating-point types by name: the one registry the models, the solver files and the
benchmarks share. float64 is the default for PDE solving."""

from __future__ import annotations

import torch

DTYPES: dict[str, torch.dtype] = {"float64": torch.float64, "float32": torch.float32}
"""Names of the floating-point types a model can have, and the torch types."""


def as_dtype(dtype: torch.dtype | str) -> torch.dtype:
    """The torch dtype named ``dtype`` (``"float64"``, ``"float32"``), or ``dtype`` itself.

    Raises:
        ValueError: an unknown name.
    """
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise ValueError(f"dtype: must be one of {', '.join(DTYPES)}, got {dtype!r}")
    return DTYPES[dtype]


def dtype_name(dtype: torch.dtype) -> str:
    """``"float64"`` for ``torch.float64``: the name :func:`as_dtype` reads back."""
    return str(dtype).removeprefix("torch.")
