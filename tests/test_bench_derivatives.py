"""The derivative benchmark: the efficient-kan baseline against scipy, and an end-to-end run."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch
from scipy.interpolate import BSpline

from kanpde import KAN, MLP, autograd_jet
from kanpde.cli.bench import register
from kanpde.cli.bench.common import profile_call, text_table, time_calls
from kanpde.cli.bench.derivatives import (
    VARIANTS,
    kan_param_count,
    matching_mlp_widths,
    mlp_param_count,
)
from kanpde.cli.bench.efficient_kan import EfficientKAN, KANLinear


def _points(n: int, dim: int, seed: int, lo: float = -1.0, hi: float = 1.0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return lo + (hi - lo) * torch.rand(n, dim, generator=gen, dtype=torch.float64)


@pytest.mark.parametrize("grid_size", [3, 10])
@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_efficient_kan_basis_matches_scipy(grid_size: int, order: int) -> None:
    layer = KANLinear(2, 1, grid_size, order)
    x = _points(200, 2, seed=1)
    interior_knots = torch.linspace(-1.0, 1.0, grid_size + 1, dtype=torch.float64)[:-1]
    x = torch.cat([x, interior_knots[:, None].expand(-1, 2)])
    bases = layer.b_splines(x)  # (N, 2, G + k)
    assert bases.shape == (x.shape[0], 2, grid_size + order)
    for i in range(2):
        t = layer.grid[i].numpy()
        expected = BSpline.design_matrix(x[:, i].numpy(), t, order).toarray()
        np.testing.assert_allclose(bases[:, i].numpy(), expected, rtol=0.0, atol=1e-12)


def _silu_jet(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    s = 1.0 / (1.0 + np.exp(-x))
    return x * s, s * (1.0 + x * (1.0 - s)), s * (1.0 - s) * (2.0 + x * (1.0 - 2.0 * s))


def test_efficient_kan_autograd_laplacian_matches_scipy() -> None:
    """One layer R^2 -> R: value, gradient and Laplacian from scipy spline derivatives."""
    k = 3
    model = EfficientKAN([2, 1], grid_size=7, spline_order=k, seed=3)
    (layer,) = model.layers
    x = _points(300, 2, seed=2, lo=-0.999, hi=0.999)
    jet = autograd_jet(model, x, second=torch.eye(2, dtype=torch.float64)[None])
    xn = x.numpy()
    base_w = layer.base_weight.detach().numpy()[0]  # (2,)
    coef = layer.scaled_spline_weight().detach().numpy()[0]  # (2, G + k)
    value = np.zeros(len(xn))
    grad = np.zeros((len(xn), 2))
    lap = np.zeros(len(xn))
    for i in range(2):
        spl = BSpline(layer.grid[i].numpy(), coef[i], k)
        f, df, d2f = _silu_jet(xn[:, i])
        value += base_w[i] * f + spl(xn[:, i])
        grad[:, i] = base_w[i] * df + spl(xn[:, i], nu=1)
        lap += base_w[i] * d2f + spl(xn[:, i], nu=2)
    np.testing.assert_allclose(jet.value[:, 0].detach().numpy(), value, rtol=0, atol=1e-12)
    np.testing.assert_allclose(jet.grad[:, :, 0].detach().numpy(), grad, rtol=0, atol=1e-11)
    np.testing.assert_allclose(jet.second[:, 0, 0].detach().numpy(), lap, rtol=0, atol=1e-10)


def test_param_counts() -> None:
    widths = [2, 8, 5, 1]
    expected = kan_param_count(widths, 6, 3)
    assert sum(p.numel() for p in KAN(widths, grid_size=6).parameters()) == expected
    assert sum(p.numel() for p in EfficientKAN(widths, grid_size=6).parameters()) == expected
    mlp_widths = matching_mlp_widths(16800, 2, 1, 2)
    assert mlp_widths == [2, 127, 127, 1]  # 127^2 + 5*127 + 1 = 16765
    assert sum(p.numel() for p in MLP(mlp_widths).parameters()) == mlp_param_count(mlp_widths)


def test_benchmark_end_to_end(tmp_path) -> None:
    parser = argparse.ArgumentParser(prog="kanpde")
    register(parser.add_subparsers(dest="command"))
    out, md = tmp_path / "bench.json", tmp_path / "bench.md"
    args = parser.parse_args(["bench", "derivatives", "--points", "64", "--grid-sizes", "3",
                              "--repeats", "1", "--threads", "1", "--jobs", "2",
                              "--no-profile",  # profiler start-up is ~2 s per worker
                              "--json", str(out), "--markdown", str(md)])
    assert args.func(args) == 0
    doc = json.loads(out.read_text())
    assert {"cpu_model", "logical_cpus", "torch_version"} <= set(doc["machine"])
    records = doc["records"]
    assert sorted(r["variant"] for r in records) == sorted(VARIANTS)
    for r in records:
        assert {"variant", "grid_size", "n_params", "time_median_s", "time_min_s",
                "time_max_s", "peak_memory_bytes", "minor_faults_per_step"} <= set(r)
        assert 0 < r["time_min_s"] <= r["time_median_s"] <= r["time_max_s"]
        assert r["peak_memory_bytes"] >= 0 and r["peak_memory_method"] == "rss_increase"
        assert r["n_params"] > 0 and r["threads"] == 1
        assert r["grid_size"] == (3 if r["variant"].endswith("kan-jet")
                                  or "kan-autograd" in r["variant"] else None)
    by = {r["variant"]: r for r in records}
    # same model, same points: the two engines give the same loss
    assert by["kan-jet"]["loss"] == pytest.approx(by["kan-autograd"]["loss"], rel=1e-12)
    assert by["mlp-jet"]["loss"] == pytest.approx(by["mlp-autograd"]["loss"], rel=1e-12)
    assert {(q["numerator"], q["grid_size"]) for q in doc["ratios"]} == {
        ("efficient-kan-autograd", 3), ("kan-autograd", 3), ("mlp-autograd", None)}
    assert all(q["time_median"] > 0 and q["allocator_peak"] is None for q in doc["ratios"])
    assert "efficient-kan-autograd" in md.read_text()


def test_profile_call_replays_allocations() -> None:
    """Two 8 MB tensors alive at once, then one freed and a third made: peak is 16 MB."""
    def work() -> None:
        a = torch.ones(1_000_000, dtype=torch.float64)
        b = a * 2.0
        del a
        c = b + 1.0
        del b, c

    prof = profile_call(work)
    assert 16_000_000 <= prof["allocator_peak_bytes"] < 16_100_000
    names = {op["name"] for op in prof["top_ops"]}
    assert {"aten::mul", "aten::add"} <= names
    assert 0 < prof["alloc_fill_s"] < prof["total_self_s"]


def test_time_calls_and_table() -> None:
    calls = []
    stats = time_calls(lambda: calls.append(1), repeats=3, warmup=2)
    assert len(calls) == 5 and len(stats.samples) == 3
    assert 0 < stats.min <= stats.median <= stats.max
    lines = text_table(["a", "bb"], [["x", "1"], ["yyy", "22"]]).splitlines()
    assert len(lines) == 4 and len({len(line) for line in lines}) == 1
