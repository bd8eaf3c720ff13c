"""Tests of reference solutions: interpolation, file I/O, and the classical solvers behind the
stored Burgers and Allen–Cahn data (checked against exact solutions, known values and
convergence rates)."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.sparse.linalg as ssl
import torch
from scipy.interpolate import RegularGridInterpolator

from kanpde.classical import (
    BURGERS_NU,
    allen_cahn_etdrk4,
    allen_cahn_time_grid,
    burgers_cole_hopf,
    burgers_cole_hopf_ux,
    make_allen_cahn_reference,
    make_burgers_reference,
)
from kanpde.io.reference_files import load_reference, save_grid_reference, save_scattered_reference
from kanpde.problem.reference import ExactSolution, GridData, ScatteredData

DATA = Path(__file__).resolve().parents[1] / "problems" / "data"


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _box_points(rng: np.random.Generator, lo: list[float], hi: list[float], n: int) -> np.ndarray:
    return rng.uniform(lo, hi, size=(n, len(lo)))


def _nonuniform(lo: float, hi: float, n: int, rng: np.random.Generator) -> np.ndarray:
    inner = np.sort(rng.uniform(lo, hi, n - 2))
    return np.concatenate([[lo], inner, [hi]])


# ------------------------------------------------------------------------------ interpolation


def test_grid_linear_reproduces_multilinear_functions() -> None:
    rng = _rng(1)
    axes = [_nonuniform(-1.0, 2.0, 7, rng), _nonuniform(0.0, 1.0, 5, rng),
            _nonuniform(-2.0, -1.0, 4, rng)]
    x, y, t = np.meshgrid(*axes, indexing="ij")

    def f(x, y, t):
        return np.stack([1 + 2 * x - 3 * y + 0.5 * t + 4 * x * y * t,
                         -x + x * t - 2 * y * t], axis=-1)

    ref = GridData(axes, f(x, y, t), ("u", "v"), method="linear")
    pts = _box_points(rng, [-1, 0, -2], [2, 1, -1], 500)
    out = ref(torch.from_numpy(pts))
    assert out.shape == (500, 2) and out.dtype == torch.float64
    np.testing.assert_allclose(out.numpy(), f(*pts.T), rtol=0, atol=1e-13)


def test_grid_cubic_reproduces_cubics_and_matches_scipy() -> None:
    rng = _rng(2)
    axes = [_nonuniform(-1.0, 1.0, 40, rng), _nonuniform(0.0, 1.0, 30, rng)]
    x, t = np.meshgrid(*axes, indexing="ij")

    def f(x, t):
        return x**3 - 2 * x**2 * t + 0.5 * x * t**2 - t**3 + x**3 * t**3 + 1.0

    ref = GridData(axes, f(x, t), "u", method="cubic")
    pts = _box_points(rng, [-1, 0], [1, 1], 2000)
    np.testing.assert_allclose(ref.evaluate_numpy(pts)[:, 0], f(*pts.T), rtol=0, atol=1e-10)
    # Same interpolant as RegularGridInterpolator's "cubic" solved exactly (sparse LU).
    smooth = np.sin(3 * x) * np.exp(t)
    scipy_cubic = RegularGridInterpolator(axes, smooth, method="cubic", solver=ssl.spsolve)
    ours = GridData(axes, smooth, "u").evaluate_numpy(pts)[:, 0]
    np.testing.assert_allclose(ours, scipy_cubic(pts), rtol=0, atol=1e-12)


def test_grid_cubic_converges_at_fourth_order() -> None:
    rng = _rng(3)
    pts = _box_points(rng, [0, 0], [1, 1], 2000)
    errors = []
    sizes = np.array([11, 21, 41, 81])
    for n in sizes:
        ax = np.linspace(0.0, 1.0, n)
        x, t = np.meshgrid(ax, ax, indexing="ij")
        ref = GridData([ax, ax], np.sin(4 * x) * np.cos(3 * t), "u")
        exact = np.sin(4 * pts[:, 0]) * np.cos(3 * pts[:, 1])
        errors.append(np.abs(ref.evaluate_numpy(pts)[:, 0] - exact).max())
    slope = -np.polyfit(np.log(sizes - 1), np.log(errors), 1)[0]
    assert 3.5 < slope < 4.5, (errors, slope)


def test_grid_out_of_range_error_and_boundary_tolerance() -> None:
    ax0, ax1 = np.linspace(-1, 1, 9), np.linspace(0, 1, 6)
    ref = GridData([ax0, ax1], np.zeros((9, 6, 1)), "u", method="linear")
    on_faces = np.array([[-1.0 - 1e-14, 0.0], [1.0, 1.0 + 1e-14], [0.3, 0.5]])
    assert ref(torch.from_numpy(on_faces)).shape == (3, 1)
    bad = np.array([[0.0, 0.5], [1.1, 0.5], [0.0, -0.2], [0.0, 0.0]])
    message = r"2 of 4 points lie outside the grid \[-1, 1\] x \[0, 1\]"
    with pytest.raises(ValueError, match=message):
        ref(torch.from_numpy(bad))
    with pytest.raises(ValueError, match="3 coordinates per row but the reference is 2-dim"):
        ref(torch.zeros(3, 3, dtype=torch.float64))


def test_grid_shapes_devices_and_validation() -> None:
    ax = np.linspace(0, 1, 11)
    one_d = GridData([ax], np.stack([ax**2, ax], axis=-1), ("a", "b"))
    pts32 = torch.rand(7, 1, dtype=torch.float32, generator=torch.Generator().manual_seed(0))
    out = one_d(pts32)
    assert out.shape == (7, 2) and out.dtype == torch.float64 and out.device == pts32.device
    np.testing.assert_allclose(out[:, 0].numpy(), pts32[:, 0].double().numpy() ** 2, atol=1e-14)
    assert one_d.fields == ("a", "b") and one_d.n_fields == 2 and one_d.dim == 1
    with pytest.raises(ValueError, match=r"values must have shape \(11, 3\)"):
        GridData([ax], np.zeros((11, 2)), ("a", "b", "c"))
    with pytest.raises(ValueError, match="strictly increasing"):
        GridData([ax[::-1]], ax, "u")
    with pytest.raises(ValueError, match="method must be"):
        GridData([ax], ax, "u", method="quintic")


def test_scattered_data_linear_exact_and_hull_error() -> None:
    rng = _rng(4)
    sites = np.concatenate([[[0, 0], [1, 0], [0, 1], [1, 1]], rng.uniform(0, 1, (60, 2))])

    def f(p):
        return np.stack([2 - p[:, 0] + 3 * p[:, 1], 0.5 * p[:, 0]], axis=1)

    ref = ScatteredData(sites, f(sites), ("u", "v"))
    pts = rng.uniform(0, 1, (300, 2))
    np.testing.assert_allclose(ref(torch.from_numpy(pts)).numpy(), f(pts), atol=1e-13)
    with pytest.raises(ValueError, match="1 of 2 points lie outside the convex hull"):
        ref(torch.tensor([[0.5, 0.5], [1.5, 0.5]], dtype=torch.float64))
    line = ScatteredData(np.array([0.0, 2.0, 1.0]), np.array([1.0, 5.0, 3.0]), "u")
    np.testing.assert_allclose(line(torch.tensor([[0.5], [1.5]])).numpy()[:, 0], [2.0, 4.0])
    with pytest.raises(ValueError, match=r"1 of 1 points lie outside the data range \[0, 2\]"):
        line(torch.tensor([[2.5]]))


def test_exact_solution_shapes_and_errors() -> None:
    pts = torch.rand(5, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    single = ExactSolution(lambda p: torch.sin(p[:, 0]) * p[:, 1])
    assert single(pts).shape == (5, 1) and single(pts).dtype == torch.float64
    torch.testing.assert_close(single(pts)[:, 0], torch.sin(pts[:, 0]) * pts[:, 1])
    pair = ExactSolution(lambda p: torch.stack([p[:, 0], p[:, 1]], dim=1), fields=("u", "v"))
    torch.testing.assert_close(pair(pts), pts)
    wrong = ExactSolution(lambda p: p[:, 0], fields=("u", "v"))
    with pytest.raises(ValueError, match=r"2 field\(s\) \('u', 'v'\) must return shape \(5, 2\)"):
        wrong(pts)


# -------------------------------------------------------------------------------- file I/O


@pytest.mark.parametrize("suffix", [".h5", ".hdf5"])
def test_grid_round_trip(tmp_path: Path, suffix: str) -> None:
    rng = _rng(5)
    axes = [_nonuniform(-1, 1, 12, rng), np.linspace(0, 1, 7)]
    values = rng.normal(size=(12, 7, 2))
    path = save_grid_reference(tmp_path / f"ref{suffix}", axes, values, ("u", "p"),
                               {"pde": "test", "parameters": {"nu": 0.1}, "n": 3})
    ref = load_reference(path)
    assert isinstance(ref, GridData) and ref.fields == ("u", "p")
    np.testing.assert_array_equal(ref.values, values)
    for a, b in zip(ref.axes, axes, strict=True):
        np.testing.assert_array_equal(a, b)
    assert ref.attrs["pde"] == "test" and ref.attrs["n"] == 3
    only_p = load_reference(path, fields=["p"], method="linear")
    np.testing.assert_array_equal(only_p.values[..., 0], values[..., 1])
    nodes = np.column_stack([axes[0][[0, 5, 11]], axes[1][[6, 2, 0]]])
    np.testing.assert_allclose(ref.evaluate_numpy(nodes), values[[0, 5, 11], [6, 2, 0]],
                               atol=1e-13)
    with pytest.raises(ValueError, match=r"no field\(s\) \['q'\]"):
        load_reference(path, fields="q")


@pytest.mark.parametrize("suffix", [".h5", ".hdf5"])
def test_scattered_round_trip(tmp_path: Path, suffix: str) -> None:
    rng = _rng(6)
    pts, vals = rng.uniform(0, 1, (40, 2)), rng.normal(size=(40, 1))
    path = save_scattered_reference(tmp_path / f"s{suffix}", pts, vals, "u", {"source": "x"})
    ref = load_reference(path)
    assert isinstance(ref, ScatteredData) and ref.attrs["source"] == "x"
    np.testing.assert_allclose(ref.evaluate_numpy(pts[:5]), vals[:5], atol=1e-13)


def test_load_errors_name_file_and_fault(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nothere.h5"):
        load_reference(tmp_path / "nothere.h5")
    bad = tmp_path / "bad.h5"
    with h5py.File(bad, "w") as h5:
        h5.attrs["fields"] = "u"
        h5["axes/0"] = np.linspace(0, 1, 5)
    with pytest.raises(ValueError, match=r"bad\.h5: missing dataset 'values'"):
        load_reference(bad)
    gap = tmp_path / "gap.h5"
    with h5py.File(gap, "w") as h5:
        h5.attrs["fields"] = "u"
        h5["axes/0"] = np.linspace(0, 1, 5)
        h5["axes/2"] = np.linspace(0, 1, 5)
        h5["values"] = np.zeros((5, 5, 5, 1))
    with pytest.raises(ValueError, match=r"gap\.h5: missing dataset\(s\) \['axes/1'\]"):
        load_reference(gap)
    nofields = tmp_path / "nofields.h5"
    with h5py.File(nofields, "w") as h5:
        h5["points"], h5["values"] = np.zeros((3, 2)), np.zeros((3, 1))
    with pytest.raises(ValueError, match=r"nofields\.h5: missing root attribute 'fields'"):
        load_reference(nofields)
    shape = tmp_path / "shape.h5"
    with h5py.File(shape, "w") as h5:
        h5.attrs["fields"] = "u"
        h5["axes/0"], h5["values"] = np.linspace(0, 1, 5), np.zeros((4, 1))
    with pytest.raises(ValueError, match=r"shape\.h5: values must have shape \(5, 1\)"):
        load_reference(shape)
    with pytest.raises(ValueError, match=r"odd\.txt: unknown reference format"):
        (tmp_path / "odd.txt").write_text("x")
        load_reference(tmp_path / "odd.txt")


# --------------------------------------------------------------------------------- Burgers


def test_burgers_initial_and_boundary_conditions() -> None:
    x = np.linspace(-1, 1, 41)
    np.testing.assert_array_equal(burgers_cole_hopf(x, 0.0), -np.sin(np.pi * x))
    # Continuity at t = 0+: |u(x, t) - u(x, 0)| <= t max|u_t| with |u_t| <= pi + nu pi^2.
    np.testing.assert_allclose(burgers_cole_hopf(x, 1e-9), -np.sin(np.pi * x), atol=1e-8)
    t = np.linspace(0, 1, 21)
    edges = burgers_cole_hopf(np.array([[-1.0], [1.0]]), t[None, :])
    assert np.abs(edges).max() < 1e-13


def test_burgers_pde_residual_second_order() -> None:
    """Central differences of the Cole-Hopf solution satisfy the PDE up to O(h^2)."""
    x, t = (a.ravel() for a in np.meshgrid([-0.7, -0.4, -0.1, 0.05, 0.3, 0.8],
                                            [0.15, 0.4, 0.7, 0.95]))

    def u(xx, tt):
        return burgers_cole_hopf(xx, tt, n_quad=120)

    steps = np.array([8e-3, 4e-3, 2e-3, 1e-3])
    residuals = []
    for h in steps:
        u0 = u(x, t)
        ut = (u(x, t + h) - u(x, t - h)) / (2 * h)
        ux = (u(x + h, t) - u(x - h, t)) / (2 * h)
        uxx = (u(x + h, t) - 2 * u0 + u(x - h, t)) / h**2
        residuals.append(np.abs(ut + u0 * ux - BURGERS_NU * uxx).max())
    slope = np.polyfit(np.log(steps), np.log(residuals), 1)[0]
    assert 1.8 < slope < 2.2, (residuals, slope)
    assert residuals[-1] < 2e-4


def test_burgers_quadrature_convergence_and_known_slope() -> None:
    x = np.concatenate([np.linspace(-1, 1, 201), np.linspace(-0.02, 0.02, 81)])
    t = np.array([1e-3, 0.1, 0.3, 1.6037 / np.pi, 0.75, 1.0])
    u100, u200, u400 = (burgers_cole_hopf(x[:, None], t[None, :], n_quad=n)
                        for n in (100, 200, 400))
    assert np.abs(u100 - u400).max() < 1e-12 and np.abs(u200 - u400).max() < 1e-12
    # Basdevant et al. (1986): min_t u_x(0, t) = -152.00516 at t = 1.6037 / pi.
    assert abs(burgers_cole_hopf_ux(0.0, 1.6037 / np.pi) + 152.00516) < 5e-6
    # The analytic slope agrees with differences of u (Richardson-extrapolated, O(h^4)).
    xs, ts = np.array([-0.5, 0.0, 0.01, 0.3]), np.array([0.3, 0.6, 0.9, 0.5])

    def central(h):
        return (burgers_cole_hopf(xs + h, ts) - burgers_cole_hopf(xs - h, ts)) / (2 * h)

    fd = (4 * central(5e-5) - central(1e-4)) / 3
    np.testing.assert_allclose(burgers_cole_hopf_ux(xs, ts), fd, rtol=1e-7)


def test_burgers_stored_file_matches_fresh_computation() -> None:
    path = DATA / "burgers1d.h5"
    with h5py.File(path, "r") as h5:
        x, t, values = h5["axes/0"][()], h5["axes/1"][()], h5["values"][()]
        attrs = dict(h5.attrs)
    assert values.shape == (x.size, t.size, 1) and attrs["fields"] == "u"
    for key in ("pde", "parameters", "method", "resolution", "command", "error_estimate"):
        assert key in attrs
    assert x[0] == -1 and x[-1] == 1 and t[0] == 0 and t[-1] == 1
    rng = _rng(7)
    i, j = rng.integers(0, x.size, 200), rng.integers(0, t.size, 200)
    fresh = burgers_cole_hopf(x[i], t[j], n_quad=120)
    np.testing.assert_allclose(values[i, j, 0], fresh, rtol=0, atol=1e-8)
    # Cubic interpolation from the stored grid measures errors far below 1e-5 (relative L2).
    ref = load_reference(path)
    pts = _box_points(rng, [-1, 0], [1, 1], 4000)
    exact = burgers_cole_hopf(pts[:, 0], pts[:, 1], n_quad=120)
    err = ref(torch.from_numpy(pts)).numpy()[:, 0] - exact
    assert np.linalg.norm(err) / np.linalg.norm(exact) < 1e-7 and np.abs(err).max() < 1e-5


def test_burgers_generator_layout(tmp_path: Path) -> None:
    errors = make_burgers_reference(tmp_path / "b.h5", n_x=65, n_t=21, n_quad=100, n_check=500)
    ref = load_reference(tmp_path / "b.h5")
    assert ref.values.shape == (65, 21, 1) and ref.attrs["error_estimate"] < 1e-12
    assert errors["interp_error_rel_l2"] == ref.attrs["interp_error_rel_l2"]


# ----------------------------------------------------------------------------- Allen-Cahn


def test_etdrk4_exact_for_linear_problem_and_rk4_for_ode() -> None:
    # gamma = 0: u_t = eps u_xx; ETD integrates each Fourier mode exactly.
    eps = 0.05
    x, t, u = allen_cahn_etdrk4(64, 0.1, 1.0, np.array([0.0, 0.5, 1.0]), eps=eps, gamma=0.0,
                                u0=lambda x: np.cos(np.pi * x) + 0.3 * np.sin(5 * np.pi * x))
    exact = (np.exp(-eps * np.pi**2 * t)[:, None] * np.cos(np.pi * x)
             + 0.3 * np.exp(-eps * 25 * np.pi**2 * t)[:, None] * np.sin(5 * np.pi * x))
    np.testing.assert_allclose(u, exact, rtol=0, atol=1e-13)
    # eps = 0, constant data: u' = gamma (u - u^3), u(t) = u0 e^{gt} / sqrt(1 + u0^2 (e^{2gt}-1)).
    errors = []
    steps = np.array([0.1, 0.05, 0.025])
    for dt in steps:
        _, _, u = allen_cahn_etdrk4(8, dt, 1.0, np.array([1.0]), u0=lambda x: 0.1 + 0 * x)
        g = np.exp(5.0)
        errors.append(abs(u[0, 0] - 0.1 * g / np.sqrt(1 + 0.01 * (g * g - 1))))
    slope = np.polyfit(np.log(steps), np.log(errors), 1)[0]
    assert 3.5 < slope < 4.5, (errors, slope)


def test_allen_cahn_temporal_order_four() -> None:
    t_end = 0.05
    _, _, ref = allen_cahn_etdrk4(128, t_end / 256, t_end, np.array([t_end]))
    steps = t_end / np.array([2, 4, 8, 16])
    errors = [np.abs(allen_cahn_etdrk4(128, dt, t_end, np.array([t_end]))[2] - ref).max()
              for dt in steps]
    slope = np.polyfit(np.log(steps), np.log(errors), 1)[0]
    assert 3.5 < slope < 4.5, (errors, slope)
    assert errors[-1] < 1e-9


def test_allen_cahn_spatial_convergence() -> None:
    """Algebraic convergence for the benchmark data (kinked at x = +-1), spectral for smooth."""
    times = np.array([0.1])
    sols = {n: allen_cahn_etdrk4(n, 5e-3, 0.1, times)[2][0] for n in (256, 512, 1024, 2048)}
    diffs = [np.abs(sols[n] - sols[2 * n][::2]).max() for n in (256, 512, 1024)]
    assert diffs[0] > 3 * diffs[1] > 9 * diffs[2] and diffs[2] < 1e-4, diffs

    def smooth(x):
        return 0.5 * np.sin(np.pi * x) + 0.2 * np.cos(2 * np.pi * x)

    u64 = allen_cahn_etdrk4(64, 5e-3, 0.1, times, u0=smooth)[2][0]
    u128 = allen_cahn_etdrk4(128, 5e-3, 0.1, times, u0=smooth)[2][0]
    assert np.abs(u64 - u128[::2]).max() < 1e-12


def test_allen_cahn_sanity() -> None:
    x, t, u = allen_cahn_etdrk4(512, 1e-2, 1.0)
    assert u.shape == (101, 512) and t[-1] == 1.0
    np.testing.assert_allclose(u[0], x**2 * np.cos(np.pi * x), rtol=0, atol=1e-15)
    assert np.abs(u).max() <= 1.01
    assert u[-1].max() > 0.95 and u[-1].min() < -0.99  # the two phases have formed by t = 1


def test_allen_cahn_stored_file_matches_fresh_coarse_run() -> None:
    path = DATA / "allen_cahn1d.h5"
    with h5py.File(path, "r") as h5:
        x, t, values = h5["axes/0"][()], h5["axes/1"][()], h5["values"][()][..., 0]
        attrs = dict(h5.attrs)
    assert values.shape == (2049, t.size) and attrs["fields"] == "u"
    for key in ("pde", "parameters", "method", "resolution", "command", "error_estimate"):
        assert key in attrs
    np.testing.assert_array_equal(values[-1], values[0])  # periodic wrap: x = 1 copies x = -1
    np.testing.assert_array_equal(t, allen_cahn_time_grid(t.size, 1.5, 1e-3))
    xc, _, uc = allen_cahn_etdrk4(2048, 5e-3, 1.0, t)
    np.testing.assert_array_equal(x[:-1], xc)
    diff = np.abs(values[:-1].T - uc)  # (n_t, 2048)
    # Tolerances from the measured convergence of the n_x = 2048 run (the stored run is 8192).
    # Its error is spatial and sits at the kink of the periodic initial data at x = +-1:
    # 2.3e-4 at t <= 0.003 (4.8e-4 for n_x = 1024, 5.6e-5 for 4096: roughly O(n_x^-1..-2)),
    # decaying like exp(-10 t). Away from the kink (|x| <= 0.9) it is ~7e-9, and the temporal
    # error at dt = 5e-3 is ~6e-9 at t = 1 (fourth order from 9e-8 at dt = 1e-2).
    assert diff.max() < 5e-4
    assert diff[:, np.abs(xc) <= 0.9].max() < 1e-7
    assert diff[t >= 0.5].max() < 1e-6
    rng = _rng(8)
    i, j = rng.integers(0, 2048, 200), rng.integers(0, t.size, 200)
    interior = np.abs(xc[i]) <= 0.9
    np.testing.assert_allclose(values[i[interior], j[interior]], uc[j[interior], i[interior]],
                               rtol=0, atol=1e-7)


def test_allen_cahn_generator_layout(tmp_path: Path) -> None:
    errors = make_allen_cahn_reference(tmp_path / "ac.h5", n_x=256, dt=1e-2, store_every=2,
                                       n_t=11, n_check_times=20, n_check_x=5)
    ref = load_reference(tmp_path / "ac.h5")
    assert ref.values.shape == (129, 11, 1)
    assert ref.axes[0][-1] == 1.0 and ref.axes[1][-1] == 1.0
    np.testing.assert_array_equal(ref.values[0], ref.values[-1])
    assert 0 < errors["error_estimate"] == ref.attrs["error_estimate"] < 1e-2


@pytest.mark.slow
def test_generator_reproduces_stored_files(tmp_path: Path) -> None:
    from kanpde.classical.__main__ import main

    assert main(["--out", str(tmp_path)]) == 0
    for name in ("burgers1d.h5", "allen_cahn1d.h5"):
        with h5py.File(tmp_path / name, "r") as new, h5py.File(DATA / name, "r") as old:
            for key in ("axes/0", "axes/1", "values"):
                np.testing.assert_array_equal(new[key][()], old[key][()])
