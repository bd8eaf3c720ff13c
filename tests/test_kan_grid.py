"""KAN grid extension, grid update and out-of-range behaviour (float64)."""

import warnings

import pytest
import torch

from kanpde import KAN, MLP
from kanpde.nn import AffineMap, Chain, PeriodicEmbedding
from kanpde.nn.kan_layer import KANLayer

DT = torch.float64


def _layer(grid_size=5, k=3, seed=0, n_in=2, n_out=3):
    layer = KANLayer(n_in, n_out, grid_size, k, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        layer.coef.normal_(generator=torch.Generator().manual_seed(seed + 1))
    return layer


def _points(n, d, lo=-1.0, hi=1.0, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return lo + (hi - lo) * torch.rand(n, d, generator=gen, dtype=DT)


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("factor", [2, 3])
def test_nested_extension_reproduces_layer_exactly(k, factor):
    layer = _layer(4, k)
    x = torch.cat([_points(300, 2, -1.5, 1.5), layer.knots.T])  # beyond the grid and at knots
    with torch.no_grad():
        before = layer(x)
        d_before = layer.spline_values(x, n_deriv=min(k, 3))
        layer.extend_grid(4 * factor)
        after = layer(x)
    assert layer.grid_size == 4 * factor and layer.coef.shape == (2, 4 * factor + k, 3)
    # relative to the size of the function: far out (x = +-3.5 for k = 5) the polynomial
    # continuation reaches |phi| ~ 1e3 and absolute round-off grows with it
    assert float((after - before).abs().max() / before.abs().max()) <= 1e-10
    assert float((after[:300] - before[:300]).abs().max()) <= 1e-10
    # derivatives below the order are continuous: check them away from knots
    d_after = layer.spline_values(x[:300], n_deriv=min(k, 3))
    assert float((d_after[: k] - d_before[: k, :300]).abs().max()) <= 1e-8


def test_non_nested_extension_is_a_close_least_squares_transfer():
    layer = _layer(5, 3)
    x = _points(500, 2)
    with torch.no_grad():
        before = layer(x)
        layer.extend_grid(7)
        err = float((layer(x) - before).abs().max() / before.abs().max())
    assert err < 0.05  # 7 is not a multiple of 5: the old spline is not in the new space
    assert err > 1e-12


def test_extension_of_adapted_grid_is_exact_when_nested():
    layer = _layer(4, 3)
    layer.update_grid(_points(400, 2, -0.5, 0.9, seed=3) ** 3, grid_eps=0.3)
    assert not layer.uniform
    x = _points(300, 2, -0.6, 1.0)
    with torch.no_grad():
        before = layer(x)
        layer.extend_grid(8)
        assert float((layer(x) - before).abs().max()) <= 1e-10


@pytest.mark.parametrize("grid_eps", [0.0, 0.02, 0.5, 1.0])
def test_update_grid_keeps_polynomial_splines_exactly(grid_eps):
    """A spline that is a cubic polynomial lies in every cubic spline space."""
    layer = _layer(6, 3)
    x_fit = _points(200, 2, -1, 1, seed=1)
    cubic = torch.stack([x_fit**3 - x_fit, 0.5 * x_fit**2 + 1, -x_fit], dim=-1)  # (S, 2, 3)
    from kanpde.core import spline
    with torch.no_grad():
        layer.coef.copy_(spline.fit_coefficients(x_fit, cubic, layer.knots, 3))
    samples = _points(1000, 2, -0.3, 2.0, seed=2) ** 2
    x = _points(400, 2, -1.0, 3.0, seed=4)
    with torch.no_grad():
        before = layer(x)
    layer.update_grid(samples, grid_eps=grid_eps)
    assert layer.uniform == (grid_eps == 1.0)
    lo, hi = layer.knots[:, 3], layer.knots[:, -4]
    torch.testing.assert_close(lo, samples.min(0).values, rtol=0, atol=1e-14)
    torch.testing.assert_close(hi, samples.max(0).values, rtol=0, atol=1e-14)
    with torch.no_grad():
        err = float((layer(x) - before).abs().max() / before.abs().max())
    assert err <= 1e-10


def test_update_grid_places_knots_at_quantiles():
    layer = _layer(4, 3, n_in=1, n_out=1)
    samples = torch.linspace(0, 1, 1001, dtype=DT)[:, None] ** 2
    layer.update_grid(samples, grid_eps=0.0)
    inner = layer.knots[0, 3:-3]
    expected = torch.linspace(0, 1, 5, dtype=DT) ** 2
    torch.testing.assert_close(inner, expected, rtol=0, atol=1e-12)


def test_kan_update_grid_follows_activations_and_keeps_the_function():
    model = KAN([2, 5, 1], grid_size=10, spline_order=3, seed=3)
    x = _points(2000, 2, -3.0, 3.0)  # far outside the first layer's grid [-1, 1]
    fractions = model.range_fraction(x)
    assert float(fractions[0].min()) > 0.5
    with torch.no_grad():
        before = model(x)
    model.update_grid(x, grid_eps=0.02)
    # layer 1 sees layer 0's refitted (not bit-identical) outputs: allow 1 point in 1000
    assert all(float(f.max()) <= 1e-3 for f in model.range_fraction(x))
    assert float(model.range_fraction(x)[0].max()) == 0.0
    with torch.no_grad():
        rel = float((model(x) - before).norm() / before.norm())
    # the refit is a least-squares transfer onto new knots; with G = 10 it is accurate
    # but not exact (the old breakpoints are not knots of the new grid)
    assert rel < 1e-2


def _deep_kan(seed=0):
    """A KAN [2, 16, 16, 3] with random non-trivial spline coefficients."""
    model = KAN([2, 16, 16, 3], grid_size=5, spline_order=3, seed=seed)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for layer in model.layers:
            layer.coef.normal_(generator=gen).mul_(0.3)
    return model


@pytest.mark.parametrize("grid_eps", [0.0, 0.02, 1.0])
def test_deep_kan_update_keeps_values_and_derivatives(grid_eps):
    """Every layer refitted from the updated network's own activations keeps the network on
    all point sets (interior and boundary) to 1e-6 relative, derivatives included; the
    plain least-squares transfer onto the pykan knots does not."""
    model = _deep_kan()
    interior = _points(800, 2, -0.5, 1.0, seed=1)
    edge = _points(200, 2, -0.5, 1.0, seed=2)
    edge[:100, 0] = -0.5
    edge[100:, 1] = 1.0
    x = torch.cat([interior, edge])
    w = torch.eye(2, dtype=DT)[None]
    with torch.no_grad():
        before = model.jet(x, second=w)
    plain = _deep_kan()
    plain.update_grid([interior, edge], grid_eps=grid_eps, tol=None)
    with torch.no_grad():
        assert float((plain(x) - before.value).abs().max()
                     / before.value.abs().max()) > 1e-4
    report = model.update_grid([interior, edge], grid_eps=grid_eps)
    with torch.no_grad():
        after = model.jet(x, second=w)
    for part in ("value", "grad", "second"):
        ref = getattr(before, part)
        assert float((getattr(after, part) - ref).abs().max() / ref.abs().max()) <= 1e-6
    assert report["max_change"] <= 1e-6
    # the knots moved: every layer's range covers its activations with the margin (exactly
    # so unless grid_eps = 1 put them on a uniform lattice through the old knots)
    for layer, h in zip(model.layers, model.layer_inputs(x), strict=True):
        lo, hi = h.min(0).values, h.max(0).values
        pad = 0.01 * (hi - lo)
        if grid_eps < 1.0:
            torch.testing.assert_close(layer.knots[:, 3], lo - pad, rtol=0, atol=1e-9)
            torch.testing.assert_close(layer.knots[:, -4], hi + pad, rtol=0, atol=1e-9)
        assert bool((layer.knots[:, 3] <= lo - pad + 1e-9).all())
        assert bool((layer.knots[:, -4] >= hi + pad - 1e-9).all())
    assert all(layer.uniform for layer in model.layers) == (grid_eps == 1.0)
    assert all(float(f.max()) == 0.0 for f in model.range_fraction(x))
    counts = [(r["moved"], r["kept_breakpoints"], r["unchanged"]) for r in report["layers"]]
    assert [sum(c) for c in counts] == [2, 16, 16]


def test_uniform_update_keeps_a_uniform_grid_through_the_old_knots():
    """grid_eps = 1 on a uniform grid: the refit lands on a finer uniform lattice through
    the old knots when the activations fit in G of its intervals (exact, kernel-friendly)."""
    layer = _layer(5, 3, n_in=1, n_out=2)
    samples = _points(500, 1, -0.3, 0.3, seed=5)
    x = _points(300, 1, -0.3, 0.3, seed=6)
    with torch.no_grad():
        before = layer(x)
    report = layer.update_grid(samples, grid_eps=1.0, tol=1e-9)
    assert report["kept_breakpoints"] == 1 and layer.uniform
    inner = layer.knots[0, 3:-3]
    step = float(inner[1] - inner[0])
    assert step == pytest.approx(0.4 / 3, rel=1e-12)  # finest h / q whose 5 intervals fit
    assert float(inner[0]) <= float(samples.min()) and float(inner[-1]) >= float(samples.max())
    assert float(((inner + 1) / step - ((inner + 1) / step).round()).abs().max()) <= 1e-9
    with torch.no_grad():
        assert float((layer(x) - before).abs().max() / before.abs().max()) <= 1e-12


def test_update_on_a_narrow_activation_range_keeps_the_function():
    """Samples spread over 1e-9 of the grid spacing: the lattice search stays short."""
    layer = _layer(5, 3, n_in=2, n_out=2)
    samples = 0.1 + 1e-9 * _points(200, 2, 0.0, 1.0, seed=7)
    with torch.no_grad():
        before = layer(samples)
    report = layer.update_grid(samples, grid_eps=1.0, tol=1e-9)
    assert report["unchanged"] == 0 and report["max_change"] <= 1e-9
    with torch.no_grad():
        assert float((layer(samples) - before).abs().max() / before.abs().max()) <= 1e-9


def test_spline_part_continues_outside_the_grid():
    layer = _layer(5, 3, n_in=1, n_out=1)
    with torch.no_grad():
        layer.base_weight.zero_()
    x = torch.tensor([[-3.0], [-1.5], [1.5], [3.0]], dtype=DT)
    assert bool((layer(x).abs() > 1e-8).all())


def test_k1_second_channels_warn():
    model = KAN([2, 3, 1], grid_size=4, spline_order=1)
    x = _points(5, 2)
    with pytest.warns(UserWarning, match="zero second derivative"):
        model.jet(x, second=torch.eye(2, dtype=DT)[None])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.jet(x)  # no channels: no warning


def test_per_layer_settings():
    model = KAN([2, 4, 3, 1], grid_size=[5, 7, 9], spline_order=[2, 3, 4],
                grid_range=[(-1, 1), (-2, 2), (0, 1)])
    assert [layer.grid_size for layer in model.layers] == [5, 7, 9]
    assert [layer.k for layer in model.layers] == [2, 3, 4]
    assert float(model.layers[1].knots[0, 3]) == -2.0
    assert sum(p.numel() for p in model.parameters()) == (
        2 * 4 * (5 + 2 + 2) + 4 * 3 * (7 + 3 + 2) + 3 * 1 * (9 + 4 + 2))


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: KAN([2, 3, 1], grid_size=0), "grid_size"),
        (lambda: KAN([2, 3, 1], spline_order=0), "spline_order"),
        (lambda: KAN([2, 3, 1], spline_order=6), "spline_order"),
        (lambda: KAN([2], grid_size=3), "widths"),
        (lambda: KAN([2, 0, 1]), "widths"),
        (lambda: KAN([2, 3, 1], grid_size=[3, 4, 5]), "grid_size"),
        (lambda: KAN([2, 3, 1], grid_range=(1, -1)), "grid_range"),
        (lambda: MLP([2, 3, 1], activation="relu6"), "activation"),
        (lambda: KAN([3, 4, 1], embedding=AffineMap([0, 0], [1, 1])), "embedding expects 2"),
        (lambda: MLP([3, 4, 1], embedding=AffineMap([0, 0], [1, 1])), "embedding expects 2"),
        (lambda: Chain(AffineMap([0, 0], [1, 1]), PeriodicEmbedding(3, {0: 1.0})), "Chain"),
    ],
)
def test_bad_construction(build, match):
    with pytest.raises(ValueError, match=match):
        build()


@pytest.mark.parametrize("model", [KAN([2, 3, 1]), MLP([2, 3, 1])])
def test_bad_jet_arguments(model):
    x = _points(4, 2)
    with pytest.raises(ValueError, match=r"x must have shape \(N, 2\)"):
        model.jet(_points(4, 3))
    with pytest.raises(TypeError, match="dtype"):
        model.jet(x.float())
    with pytest.raises(ValueError, match=r"second must have shape \(R, d, d\)"):
        model.jet(x, second=torch.eye(2, dtype=DT))
    with pytest.raises(ValueError, match=r"second must have shape \(R, 2, 2\)"):
        model.jet(x, second=torch.eye(3, dtype=DT)[None])
    with pytest.raises(ValueError, match="symmetric"):
        model.jet(x, second=torch.tensor([[[0.0, 1.0], [0.0, 0.0]]], dtype=DT))
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        model.jet([[0.0, 0.0]])


def test_state_dict_round_trip_after_grid_changes():
    model = KAN([2, 4, 1], grid_size=5, seed=0)
    x = _points(300, 2, -1.2, 1.2)
    model.extend_grid(10)
    model.update_grid(x)
    fresh = KAN([2, 4, 1], grid_size=5, seed=1)
    fresh.load_state_dict(model.state_dict())
    assert [layer.grid_size for layer in fresh.layers] == [10, 10]
    assert not fresh.layers[0].uniform
    with torch.no_grad():
        torch.testing.assert_close(fresh(x), model(x), rtol=0, atol=0)


def test_nan_inputs_give_nan_outputs_not_an_index_error():
    model = KAN([2, 3, 1], grid_size=4)
    x = torch.tensor([[float("nan"), 0.0], [0.1, 0.2]], dtype=DT)
    with torch.no_grad():
        out = model(x)
        jet = model.jet(x, second=torch.eye(2, dtype=DT)[None])
    assert bool(out[0].isnan().all()) and bool(out[1].isfinite().all())
    assert bool(jet.second[0].isnan().all()) and bool(jet.second[1].isfinite().all())
