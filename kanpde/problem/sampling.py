"""Point sets on the unit cube and residual-adaptive refinement.

Everything random takes an explicit :class:`torch.Generator`; nothing here touches global
random state. Points are float64 by default and shaped ``(n_points, d)``.

Samplers (``SAMPLERS``):

* ``"uniform"`` – i.i.d. uniform points drawn with the generator.
* ``"grid"`` – the full cell-centred tensor grid with ``m = round(n ** (1/d))`` points per
  axis, i.e. ``m**d`` points (not necessarily ``n``); no point lies on the cube boundary.
* ``"lhs"`` – Latin hypercube (one point in each of the ``n`` strata of every axis).
* ``"sobol"`` – scrambled Sobol' sequence (any ``n``; the power-of-two balance warning is
  silenced).
* ``"halton"`` – scrambled Halton sequence.

The quasi-random engines come from :mod:`scipy.stats.qmc` and are seeded with an integer drawn
from the torch generator, so equal generator states give equal point sets.

Residual-adaptive sampling follows Wu et al. (2023), "A comprehensive study of non-adaptive
and residual-based adaptive sampling for physics-informed neural networks":
the density over candidate points is

    p(x) ∝ |r(x)|^k / mean(|r|^k) + c,

used by :func:`rad_sample` (RAD: replace the whole set) and :func:`rar_d_add` (RAR-D: add
points to the current set).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
from scipy.stats import qmc
from torch import Tensor

__all__ = ["SAMPLERS", "UnitCubeStream", "rad_sample", "rar_d_add", "unit_cube"]

SAMPLERS: tuple[str, ...] = ("uniform", "grid", "lhs", "sobol", "halton")
_QMC = ("lhs", "sobol", "halton")


def _check_generator(generator: object) -> torch.Generator:
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    return generator


def _check_method(method: str) -> str:
    if method not in SAMPLERS:
        raise ValueError(f"method {method!r} is not a sampler; valid: {', '.join(SAMPLERS)}")
    return method


def _check_count(value: object, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _draw_seed(generator: torch.Generator) -> int:
    """An integer seed for a scipy engine, drawn from ``generator``."""
    return int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device))


def _qmc_engine(method: str, d: int, seed: int) -> qmc.QMCEngine:
    cls = {"lhs": qmc.LatinHypercube, "sobol": qmc.Sobol, "halton": qmc.Halton}[method]
    kwargs = {} if method == "lhs" else {"scramble": True}
    try:
        return cls(d, rng=np.random.default_rng(seed), **kwargs)
    except TypeError:  # scipy < 1.15 names the argument `seed`
        return cls(d, seed=np.random.default_rng(seed), **kwargs)


def _engine_draw(engine: qmc.QMCEngine, n: int) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*balance properties.*")
        return engine.random(n)


def _grid(n: int, d: int) -> Tensor:
    m = max(1, round(n ** (1.0 / d)))
    axis = (torch.arange(m, dtype=torch.float64) + 0.5) / m
    mesh = torch.meshgrid(*([axis] * d), indexing="ij")
    return torch.stack([g.reshape(-1) for g in mesh], dim=1)


def unit_cube(
    n: int,
    d: int,
    method: str,
    generator: torch.Generator,
    *,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> Tensor:
    """Points in the unit cube ``[0, 1)^d``.

    Args:
        n: number of points (for ``"grid"`` the grid has ``round(n ** (1/d)) ** d`` points).
        d: dimension.
        method: one of :data:`SAMPLERS`.
        generator: source of randomness (also seeds the scipy QMC engines).
        dtype: floating dtype of the result.
        device: device of the result; ``None`` means the generator's device.

    Returns:
        Tensor of shape ``(n, d)`` (``(m**d, d)`` for ``"grid"``, axis 0 varying slowest).

    Raises:
        ValueError: unknown ``method`` or non-positive ``n``/``d``.
    """
    n = _check_count(n, "n")
    d = _check_count(d, "d")
    _check_method(method)
    _check_generator(generator)
    device = generator.device if device is None else device
    if method == "uniform":
        pts = torch.rand(n, d, generator=generator, device=generator.device, dtype=torch.float64)
    elif method == "grid":
        pts = _grid(n, d)
    else:
        pts = torch.from_numpy(_engine_draw(_qmc_engine(method, d, _draw_seed(generator)), n))
    return pts.to(device=device, dtype=dtype)


class UnitCubeStream:
    """Successive chunks of one point sequence in ``[0, 1)^d`` (for rejection sampling).

    For ``"sobol"`` and ``"halton"`` the chunks continue one scrambled sequence, so any prefix
    of the concatenation is well spread; for ``"lhs"`` every chunk is a fresh Latin
    hypercube; for ``"uniform"`` chunks are i.i.d. draws. ``"grid"`` cannot be streamed.

    Args:
        d: dimension.
        method: ``"uniform"``, ``"lhs"``, ``"sobol"`` or ``"halton"``.
        generator: source of randomness; the QMC engine is seeded once from it here.
    """

    def __init__(self, d: int, method: str, generator: torch.Generator) -> None:
        self.d = _check_count(d, "d")
        self.method = _check_method(method)
        if method == "grid":
            raise ValueError("method 'grid' cannot be streamed; use unit_cube")
        self.generator = _check_generator(generator)
        self._engine = None
        if method in ("sobol", "halton"):
            self._engine = _qmc_engine(method, self.d, _draw_seed(generator))

    def draw(self, n: int) -> Tensor:
        """The next ``n`` points, float64 on the CPU, shape ``(n, d)``."""
        n = _check_count(n, "n")
        if self._engine is not None:
            return torch.from_numpy(_engine_draw(self._engine, n))
        return unit_cube(n, self.d, self.method, self.generator, device="cpu")


def _density(residual: Tensor, m: int, k: float, c: float) -> Tensor:
    """Normalised sampling density ``|r|^k / mean(|r|^k) + c`` over ``m`` candidates."""
    r = residual.detach()
    if r.dim() == 2 and r.shape[1] == 1:
        r = r[:, 0]
    if r.dim() != 1 or r.shape[0] != m:
        raise ValueError(f"residual must have shape ({m},), got {tuple(residual.shape)}")
    if not bool(torch.isfinite(r).all()):
        raise ValueError("residual contains non-finite values")
    if not (math.isfinite(k) and k >= 0.0):
        raise ValueError(f"k must be finite and >= 0, got {k}")
    if not (math.isfinite(c) and c >= 0.0):
        raise ValueError(f"c must be finite and >= 0, got {c}")
    w = r.abs().to(torch.float64) ** k
    mean = w.mean()
    w = w / mean if mean > 0 else torch.ones_like(w)
    p = w + c
    # A negligible floor keeps sampling without replacement possible when fewer than n
    # candidates carry positive density.
    p = p + 1e-12 * p.max()
    return p / p.sum()


def _draw_indices(p: Tensor, n: int, generator: torch.Generator) -> Tensor:
    idx = torch.multinomial(p.to(generator.device), n, replacement=False, generator=generator)
    return idx.to(p.device)


def _check_points(x: Tensor, name: str) -> Tensor:
    if not isinstance(x, Tensor) or x.dim() != 2:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"{name} must be a 2-D tensor (n_points, d), got {shape}")
    return x


def rad_sample(
    candidates: Tensor,
    residual: Tensor,
    n: int,
    generator: torch.Generator,
    k: float = 1.0,
    c: float = 1.0,
) -> Tensor:
    """Residual-based adaptive distribution (RAD): draw a new collocation set.

    ``n`` candidates are drawn without replacement with probability
    ``p_i ∝ |r_i|^k / mean(|r|^k) + c`` (an all-zero residual gives a uniform choice).

    Args:
        candidates: candidate points, shape ``(M, d)``.
        residual: PDE residual at the candidates, shape ``(M,)`` (or ``(M, 1)``).
        n: number of points to keep, ``1 <= n <= M``.
        generator: source of randomness.
        k: residual exponent (``k = 0`` gives uniform sampling).
        c: additive constant of the density (relative to the mean of ``|r|^k``).

    Returns:
        The selected candidates, shape ``(n, d)``.

    Raises:
        ValueError: bad shapes, ``n`` out of range, negative ``k``/``c``, non-finite residual.
    """
    _check_generator(generator)
    candidates = _check_points(candidates, "candidates")
    m = candidates.shape[0]
    n = _check_count(n, "n")
    if n > m:
        raise ValueError(f"n = {n} exceeds the number of candidates ({m})")
    p = _density(residual, m, k, c).to(candidates.device)
    return candidates[_draw_indices(p, n, generator)]


def rar_d_add(
    points: Tensor,
    candidates: Tensor,
    residual: Tensor,
    n_add: int,
    generator: torch.Generator,
    k: float = 2.0,
    c: float = 0.0,
) -> Tensor:
    """Residual-based adaptive refinement with distribution (RAR-D): grow a point set.

    ``n_add`` candidates are drawn without replacement with the RAD density
    ``p_i ∝ |r_i|^k / mean(|r|^k) + c`` and appended to ``points``.

    Args:
        points: current collocation points, shape ``(N, d)``.
        candidates: candidate points, shape ``(M, d)``.
        residual: PDE residual at the candidates, shape ``(M,)`` (or ``(M, 1)``).
        n_add: number of points to add, ``0 <= n_add <= M``.
        generator: source of randomness.
        k: residual exponent.
        c: additive constant of the density.

    Returns:
        ``points`` followed by the added candidates, shape ``(N + n_add, d)``.

    Raises:
        ValueError: bad shapes, ``n_add`` out of range, negative ``k``/``c``.
    """
    _check_generator(generator)
    points = _check_points(points, "points")
    candidates = _check_points(candidates, "candidates")
    if points.shape[1] != candidates.shape[1]:
        raise ValueError(
            f"points have d = {points.shape[1]} but candidates have d = {candidates.shape[1]}"
        )
    m = candidates.shape[0]
    n_add = _check_count(n_add, "n_add", minimum=0)
    if n_add > m:
        raise ValueError(f"n_add = {n_add} exceeds the number of candidates ({m})")
    p = _density(residual, m, k, c).to(candidates.device)
    if n_add == 0:
        return points.clone()
    added = candidates[_draw_indices(p, n_add, generator)]
    return torch.cat([points, added.to(device=points.device, dtype=points.dtype)], dim=0)
