"""Tests for kanpde.problem.sampling: unit-cube point sets and residual-adaptive sampling."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from scipy.stats import qmc

from kanpde.problem.sampling import SAMPLERS, UnitCubeStream, rad_sample, rar_d_add, unit_cube


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("method", SAMPLERS)
@pytest.mark.parametrize("d", [1, 2, 3])
def test_shape_dtype_and_range(method: str, d: int) -> None:
    x = unit_cube(64, d, method, gen(0))
    m = round(64 ** (1 / d))
    expected = m**d if method == "grid" else 64
    assert x.shape == (expected, d)
    assert x.dtype == torch.float64
    assert bool((x >= 0).all()) and bool((x < 1).all())
    x32 = unit_cube(64, d, method, gen(0), dtype=torch.float32)
    assert x32.dtype == torch.float32
    torch.testing.assert_close(x32, x.float())


@pytest.mark.parametrize("method", ["uniform", "lhs", "sobol", "halton"])
def test_seed_determinism(method: str) -> None:
    a = unit_cube(100, 3, method, gen(7))
    b = unit_cube(100, 3, method, gen(7))
    c = unit_cube(100, 3, method, gen(8))
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_generator_advances() -> None:
    g = gen(1)
    a = unit_cube(50, 2, "sobol", g)
    b = unit_cube(50, 2, "sobol", g)
    assert not torch.allclose(a, b)


def test_lhs_stratification() -> None:
    n, d = 97, 4
    x = unit_cube(n, d, "lhs", gen(3))
    strata = torch.floor(x * n).long()
    for j in range(d):
        assert torch.equal(torch.sort(strata[:, j]).values, torch.arange(n))


@pytest.mark.parametrize("method", ["sobol", "halton"])
def test_qmc_discrepancy_beats_uniform(method: str) -> None:
    n, d = 256, 2
    disc_q = [qmc.discrepancy(unit_cube(n, d, method, gen(s)).numpy()) for s in range(3)]
    disc_u = [qmc.discrepancy(unit_cube(n, d, "uniform", gen(s)).numpy()) for s in range(3)]
    assert max(disc_q) < min(disc_u)
    assert np.mean(disc_q) < 0.2 * np.mean(disc_u)


def test_sobol_non_power_of_two_does_not_warn() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        x = unit_cube(100, 2, "sobol", gen(0))
    assert x.shape == (100, 2)


def test_grid_exact_positions() -> None:
    x = unit_cube(10, 2, "grid", gen(0))  # round(sqrt(10)) = 3 points per axis
    axis = torch.tensor([1 / 6, 1 / 2, 5 / 6], dtype=torch.float64)
    expected = torch.cartesian_prod(axis, axis)
    torch.testing.assert_close(x, expected)
    y = unit_cube(4, 1, "grid", gen(0))
    torch.testing.assert_close(y[:, 0], torch.tensor([0.125, 0.375, 0.625, 0.875]).double())


def test_stream_continues_one_sequence() -> None:
    s = UnitCubeStream(2, "sobol", gen(5))
    chunks = torch.cat([s.draw(100), s.draw(156)])
    whole = unit_cube(256, 2, "sobol", gen(5))
    torch.testing.assert_close(chunks, whole)
    with pytest.raises(ValueError, match="grid"):
        UnitCubeStream(2, "grid", gen(0))


def test_unit_cube_errors() -> None:
    with pytest.raises(ValueError, match="uniform, grid, lhs, sobol, halton"):
        unit_cube(10, 2, "random", gen(0))
    with pytest.raises(ValueError, match="n must"):
        unit_cube(0, 2, "uniform", gen(0))
    with pytest.raises(ValueError, match="d must"):
        unit_cube(10, 0, "uniform", gen(0))
    with pytest.raises(TypeError, match="generator"):
        unit_cube(10, 2, "uniform", 0)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- adaptive
def _peaked_residual(x: torch.Tensor) -> torch.Tensor:
    """A residual concentrated in a small disk around (0.8, 0.8)."""
    return torch.exp(-((x - 0.8) ** 2).sum(dim=1) / 0.002)


def _near_peak(x: torch.Tensor) -> torch.Tensor:
    return ((x - 0.8) ** 2).sum(dim=1) < 0.15**2


def test_rad_concentrates_on_large_residual() -> None:
    cand = unit_cube(20000, 2, "uniform", gen(0))
    res = _peaked_residual(cand)
    x = rad_sample(cand, res, 500, gen(1), k=1.0, c=0.0)
    assert x.shape == (500, 2)
    assert float(_near_peak(x).double().mean()) > 0.95
    # the chosen points are distinct candidates
    assert torch.unique(x, dim=0).shape[0] == 500
    # k = 0 is uniform: the fraction near the peak matches its area fraction
    y = rad_sample(cand, res, 5000, gen(2), k=0.0, c=0.0)
    area = float(_near_peak(cand).double().mean())
    assert abs(float(_near_peak(y).double().mean()) - area) < 4 * (area / 5000) ** 0.5 + 0.01


def test_rad_constant_mixes_uniform() -> None:
    cand = unit_cube(20000, 2, "uniform", gen(0))
    res = _peaked_residual(cand)
    focused = rad_sample(cand, res, 1000, gen(1), k=1.0, c=0.0)
    mixed = rad_sample(cand, res, 1000, gen(1), k=1.0, c=1.0)
    f_focused = float(_near_peak(focused).double().mean())
    f_mixed = float(_near_peak(mixed).double().mean())
    assert f_mixed < f_focused - 0.2
    assert f_mixed > 0.3  # still well above the ~7% area fraction


def test_rad_deterministic_and_zero_residual() -> None:
    cand = unit_cube(1000, 2, "uniform", gen(0))
    res = _peaked_residual(cand)
    a = rad_sample(cand, res, 100, gen(9))
    b = rad_sample(cand, res, 100, gen(9))
    assert torch.equal(a, b)
    z = rad_sample(cand, torch.zeros(1000, dtype=torch.float64), 1000, gen(3), c=0.0)
    assert torch.equal(torch.sort(z[:, 0]).values, torch.sort(cand[:, 0]).values)


def test_rad_errors() -> None:
    cand = unit_cube(100, 2, "uniform", gen(0))
    res = torch.ones(100, dtype=torch.float64)
    with pytest.raises(ValueError, match="exceeds"):
        rad_sample(cand, res, 101, gen(0))
    with pytest.raises(ValueError, match="residual must have shape"):
        rad_sample(cand, res[:50], 10, gen(0))
    with pytest.raises(ValueError, match="candidates must be a 2-D"):
        rad_sample(cand[:, 0], res, 10, gen(0))
    with pytest.raises(ValueError, match="k must"):
        rad_sample(cand, res, 10, gen(0), k=-1.0)
    with pytest.raises(ValueError, match="c must"):
        rad_sample(cand, res, 10, gen(0), c=-0.5)
    with pytest.raises(ValueError, match="non-finite"):
        rad_sample(cand, torch.full((100,), float("nan"), dtype=torch.float64), 10, gen(0))
    with pytest.raises(ValueError, match="n must"):
        rad_sample(cand, res, 0, gen(0))


def test_rar_d_adds_points_where_residual_is_large() -> None:
    pts = unit_cube(200, 2, "sobol", gen(0))
    cand = unit_cube(20000, 2, "uniform", gen(1))
    out = rar_d_add(pts, cand, _peaked_residual(cand), 300, gen(2))
    assert out.shape == (500, 2)
    assert torch.equal(out[:200], pts)
    added = out[200:]
    assert float(_near_peak(added).double().mean()) > 0.95
    # every added point is one of the candidates
    dist = (added[:, None, :] - cand[None]).abs().sum(dim=-1).amin(dim=1)
    assert float(dist.max()) == 0.0
    same = rar_d_add(pts, cand, _peaked_residual(cand), 0, gen(2))
    assert torch.equal(same, pts)


def test_rar_d_errors() -> None:
    pts = unit_cube(10, 2, "uniform", gen(0))
    cand = unit_cube(50, 3, "uniform", gen(1))
    with pytest.raises(ValueError, match="d = 2 but candidates have d = 3"):
        rar_d_add(pts, cand, torch.ones(50), 5, gen(0))
    cand2 = unit_cube(50, 2, "uniform", gen(1))
    with pytest.raises(ValueError, match="n_add"):
        rar_d_add(pts, cand2, torch.ones(50), 51, gen(0))
    with pytest.raises(ValueError, match="n_add"):
        rar_d_add(pts, cand2, torch.ones(50), -1, gen(0))
