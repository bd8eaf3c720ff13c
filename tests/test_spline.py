"""B-spline bases and fits against scipy.interpolate.BSpline (float64)."""

import numpy as np
import pytest
import torch
from scipy.interpolate import BSpline

from kanpde.core import spline

DT = torch.float64


def _knots(grid_size, k, lo=(-1.0, 0.5), hi=(1.0, 2.0)):
    return spline.uniform_knots(torch.tensor(lo, dtype=DT), torch.tensor(hi, dtype=DT),
                                grid_size, k)


def _nonuniform_knots(grid_size, k, seed=0):
    gen = torch.Generator().manual_seed(seed)
    gaps = torch.rand(2, grid_size, generator=gen, dtype=DT) + 0.2
    inner = torch.cat([torch.zeros(2, 1, dtype=DT), gaps.cumsum(1)], 1)
    inner = inner / inner[:, -1:] * 2.0 - 1.0
    return spline.extend_knots(inner, k)


def _points(knots, k):
    """Points spanning beyond the grid on both sides, including every knot exactly."""
    cols = []
    for row in knots:
        lo, hi = float(row[k]), float(row[-k - 1])
        span = hi - lo
        grid = torch.linspace(lo - 0.3 * span, hi + 0.3 * span, 97, dtype=DT)
        cols.append(torch.cat([grid, row, row + 1e-13, row - 1e-13]))
    return torch.stack(cols, 1)


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("uniform", [True, False])
def test_values_and_derivatives_match_scipy(k, uniform):
    grid_size = 6
    knots = _knots(grid_size, k) if uniform else _nonuniform_knots(grid_size, k)
    gen = torch.Generator().manual_seed(k)
    coef = torch.randn(2, grid_size + k, 3, generator=gen, dtype=DT)
    x = _points(knots, k)
    out = spline.evaluate(x, knots, coef, k, n_deriv=3, uniform=uniform)  # (4, N, 2, 3)
    for i in range(2):
        for j in range(3):
            ref = BSpline(knots[i].numpy(), coef[i, :, j].numpy(), k, extrapolate=True)
            for q in range(4):
                expected = ref.derivative(q)(x[:, i].numpy()) if q <= k else 0.0 * x[:, i].numpy()
                got = out[q, :, i, j].numpy()
                # derivatives of order >= k jump at knots; compare away from them
                mask = np.ones_like(got, dtype=bool)
                if q >= k:
                    dist = np.abs(x[:, i].numpy()[:, None] - knots[i].numpy()[None, :]).min(1)
                    mask = dist > 1e-9
                scale = 1.0 + np.abs(expected).max()
                assert np.abs(got - expected)[mask].max() <= 1e-12 * scale, (k, q, uniform)


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5])
def test_uniform_closed_form_equals_cox_de_boor(k):
    knots = _knots(9, k)
    x = _points(knots, k)
    idx_u, b_u = spline.local_basis(x, knots, k, 3, uniform=True)
    idx_g, b_g = spline.local_basis(x, knots, k, 3, uniform=False)
    inside_knot = (x[..., None] - knots[None]).abs().min(-1).values > 1e-9
    assert torch.equal(idx_u[inside_knot], idx_g[inside_knot])
    diff = (b_u - b_g).abs()[:, inside_knot]
    assert float(diff.max()) <= 1e-10


def test_partition_of_unity_and_locality():
    k, grid_size = 3, 8
    knots = _knots(grid_size, k)
    x = torch.stack([torch.linspace(-1, 1, 201, dtype=DT), torch.linspace(0.5, 2, 201,
                                                                         dtype=DT)], 1)
    idx, basis = spline.local_basis(x, knots, k, 1, uniform=True)
    torch.testing.assert_close(basis[0].sum(-1), torch.ones_like(x), rtol=0, atol=1e-14)
    torch.testing.assert_close(basis[1].sum(-1), torch.zeros_like(x), rtol=0, atol=1e-12)
    assert int(idx.min()) == 0 and int(idx.max()) == grid_size - 1


def test_uniform_basis_matrix_cubic():
    expected = torch.tensor([[1, -3, 3, -1], [4, 0, -6, 3], [1, 3, 3, -3], [0, 0, 0, 1]],
                            dtype=DT) / 6
    torch.testing.assert_close(spline.uniform_basis_matrix(3), expected, rtol=0, atol=1e-15)


def test_least_squares_fit_reproduces_splines_and_polynomials():
    k, grid_size = 3, 7
    knots = _nonuniform_knots(grid_size, k, seed=3)
    gen = torch.Generator().manual_seed(5)
    coef = torch.randn(2, grid_size + k, 2, generator=gen, dtype=DT)
    x = torch.rand(400, 2, generator=gen, dtype=DT) * 2 - 1
    y = spline.evaluate(x, knots, coef, k)[0]
    fitted = spline.fit_coefficients(x, y, knots, k)
    torch.testing.assert_close(fitted, coef, rtol=0, atol=1e-10)
    cubic = (x**3 - 0.5 * x)[..., None]
    fit_c = spline.fit_coefficients(x, cubic, knots, k)
    far = torch.linspace(-3, 3, 50, dtype=DT)[:, None].expand(50, 2)
    torch.testing.assert_close(spline.evaluate(far, knots, fit_c, k)[0],
                               (far**3 - 0.5 * far)[..., None], rtol=0, atol=1e-9)


def test_bad_arguments():
    with pytest.raises(ValueError, match="spline_order"):
        spline.check_order(0)
    with pytest.raises(ValueError, match="spline_order"):
        spline.check_order(6)
    with pytest.raises(ValueError, match="grid_size"):
        spline.check_grid_size(0)
    with pytest.raises(ValueError, match="n_deriv"):
        spline.local_basis(torch.zeros(3, 2, dtype=DT), _knots(3, 3), 3, n_deriv=4)
