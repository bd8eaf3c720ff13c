"""Fused KAN-layer jet kernels against an independent pure-PyTorch reference.

The kernels run under the Triton interpreter on CPU tensors. Triton (3.9) reads
``TRITON_INTERPRET`` when ``@triton.jit`` decorates a function, i.e. when
``kanpde.kernels.spline_jet`` is first imported, not when triton itself is imported. So this
file sets ``TRITON_INTERPRET=1`` around that first import (``import kanpde.kernels`` does not
import triton), restores the previous value so that other test modules do not see it, and sets
it again per test with ``monkeypatch`` (``available`` and ``kan_layer_jet`` check it).

The reference builds the dense basis by Cox-de Boor (``local_basis(..., uniform=False)`` +
``dense_basis``), SiLU derivatives by nested autograd, and the backward by autograd.
"""

import os
from types import ModuleType

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from kanpde.core.spline import dense_basis, local_basis, uniform_derivative_matrices
from kanpde.kernels import KANLayerJetFunction, available, kan_layer_jet  # no triton import


def _import_interpreted_kernels() -> ModuleType:
    """Import ``kanpde.kernels.spline_jet`` with ``TRITON_INTERPRET=1``, then restore the env."""
    previous = os.environ.get("TRITON_INTERPRET")
    os.environ["TRITON_INTERPRET"] = "1"
    try:
        pytest.importorskip("triton", reason="triton is not installed (pip install 'kanpde[gpu]')")
        from kanpde.kernels import spline_jet
    finally:
        if previous is None:
            del os.environ["TRITON_INTERPRET"]
        else:
            os.environ["TRITON_INTERPRET"] = previous
    if not spline_jet.is_interpreted():
        pytest.skip("kanpde.kernels.spline_jet was imported before TRITON_INTERPRET=1 was set, "
                    "so its kernels are compiled and cannot run on CPU tensors",
                    allow_module_level=True)
    return spline_jet


spline_jet = _import_interpreted_kernels()

F64 = torch.float64


@pytest.fixture(autouse=True)
def _interpret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRITON_INTERPRET", "1")


def reference_jet(v: Tensor, g: Tensor, S: Tensor, q: Tensor, lo: Tensor, h: Tensor,
                  grid_size: int, k: int, C: Tensor, w: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Dense pure-PyTorch jet of one KAN layer; ``v`` must require grad (nested autograd)."""
    steps = torch.arange(-k, grid_size + k + 1, dtype=v.dtype)  # (G+2k+1,)
    knots = lo[:, None] + steps[None, :] * h[:, None]  # (n, G+2k+1)
    idx, basis = local_basis(v, knots, k, 2, uniform=False)  # (N, n), (3, N, n, k+1)
    dense = dense_basis(idx, basis, grid_size + k)  # (3, N, n, G+k)
    spline = torch.einsum("qpim,imj->qpij", dense, C)  # (3, N, n, m)
    s0 = F.silu(v)  # (N, n)
    (s1,) = torch.autograd.grad(s0.sum(), v, create_graph=True)  # (N, n)
    (s2,) = torch.autograd.grad(s1.sum(), v, create_graph=True)  # (N, n)
    phi = [spline[t] + s[..., None] * w for t, s in enumerate((s0, s1, s2))]  # 3 x (N, n, m)
    y = phi[0].sum(1)  # (N, m)
    gy = torch.einsum("pij,pai->paj", phi[1], g)  # (N, d, m)
    sy = torch.einsum("pij,pri->prj", phi[2], q) + torch.einsum("pij,pri->prj", phi[1], S)
    return y, gy, sy


def grid_points(lo: Tensor, h: Tensor, grid_size: int, k: int, n_pts: int,
                gen: torch.Generator, on_knots: bool = True) -> Tensor:
    """``(N, n)`` points per input: on every extended knot, 1e-9 h either side of knots (unless
    ``on_knots`` is false), off the grid on both sides, and uniform inside; shuffled."""
    cols = []
    for lo_i, h_i in zip(lo.tolist(), h.tolist(), strict=True):
        knots = lo_i + h_i * torch.arange(-k, grid_size + k + 1, dtype=F64)  # (G+2k+1,)
        near = torch.cat([knots[::2] + 1e-9 * h_i, knots[1::2] - 1e-9 * h_i])
        hi_i = lo_i + grid_size * h_i
        off = torch.tensor([lo_i - 1.3 * h_i, lo_i - 0.4 * h_i, hi_i + 0.7 * h_i,
                            hi_i + 1.9 * h_i], dtype=F64)
        inside = lo_i + grid_size * h_i * torch.rand(n_pts, dtype=F64, generator=gen)
        pool = torch.cat([off, knots, near, inside] if on_knots else [off, inside])
        perm = torch.randperm(pool.numel() - 4, generator=gen)[: n_pts - 4] + 4
        col = torch.cat([pool[:4], pool[perm]])  # off-grid points always included
        cols.append(col[torch.randperm(n_pts, generator=gen)])
    return torch.stack(cols, dim=1)


def make_case(n_pts: int, n_in: int, n_out: int, d: int, R: int, grid_size: int, k: int,
              seed: int = 0, dyadic: bool = True, on_knots: bool = True) -> dict[str, Tensor]:
    """Random float64 layer inputs; dyadic grids make knot points exactly representable."""
    gen = torch.Generator().manual_seed(seed)
    if dyadic:
        lo = torch.tensor([-1.0, -0.5, 0.25, 2.0, -3.0], dtype=F64)[:n_in]  # (n,)
        h = torch.tensor([0.25, 0.125, 0.5, 0.0625, 1.0], dtype=F64)[:n_in]  # (n,)
    else:
        lo = -0.7 - 0.3 * torch.rand(n_in, dtype=F64, generator=gen)  # (n,)
        h = (0.3 + torch.rand(n_in, dtype=F64, generator=gen)) / grid_size  # (n,)
    return {
        "v": grid_points(lo, h, grid_size, k, n_pts, gen, on_knots),  # (N, n)
        "g": torch.randn(n_pts, d, n_in, dtype=F64, generator=gen),  # (N, d, n)
        "S": torch.randn(n_pts, R, n_in, dtype=F64, generator=gen),  # (N, R, n)
        "q": torch.randn(n_pts, R, n_in, dtype=F64, generator=gen),  # (N, R, n)
        "lo": lo,
        "h": h,
        "C": torch.randn(n_in, grid_size + k, n_out, dtype=F64, generator=gen),  # (n, G+k, m)
        "w": torch.randn(n_in, n_out, dtype=F64, generator=gen),  # (n, m)
    }


DIFF = ("v", "g", "S", "q", "C", "w")


def run(fn, case: dict[str, Tensor], grid_size: int, k: int, cots: list[Tensor] | None,
        dtype: torch.dtype = F64) -> tuple[tuple[Tensor, ...], tuple[Tensor, ...], list[Tensor]]:
    """Forward outputs, the gradients of ``sum <out, cot>`` w.r.t. ``DIFF``, and the cots."""
    t = {name: x.to(dtype) for name, x in case.items()}
    for name in DIFF:
        t[name].requires_grad_(True)
    out = fn(t["v"], t["g"], t["S"], t["q"], t["lo"], t["h"], grid_size, k, t["C"], t["w"])
    if cots is None:
        gen = torch.Generator().manual_seed(1)
        cots = [torch.randn(o.shape, dtype=F64, generator=gen) for o in out]
    loss = sum((o * c.to(dtype)).sum() for o, c in zip(out, cots, strict=True))
    grads = torch.autograd.grad(loss, [t[name] for name in DIFF])
    return tuple(o.detach() for o in out), grads, cots


def assert_rel(a: Tensor, b: Tensor, tol: float, what: str) -> None:
    """``max |a - b| <= tol * max(|b|)`` (norm-wise relative), shapes equal."""
    assert a.shape == b.shape, f"{what}: shape {tuple(a.shape)} != {tuple(b.shape)}"
    scale = b.abs().max().item() if b.numel() else 0.0
    err = (a.to(b.dtype) - b).abs().max().item() if b.numel() else 0.0
    assert err <= tol * max(scale, 1e-300), f"{what}: error {err:.3e} vs scale {scale:.3e}"


def check_against_reference(case: dict[str, Tensor], grid_size: int, k: int) -> None:
    out_ref, grad_ref, cots = run(reference_jet, case, grid_size, k, None)
    out, grads, _ = run(kan_layer_jet, case, grid_size, k, cots)
    for name, a, b in zip(("y", "gy", "Sy"), out, out_ref, strict=True):
        assert_rel(a, b, 1e-10, name)
    for name, a, b in zip(DIFF, grads, grad_ref, strict=True):
        assert_rel(a, b, 1e-10, f"d{name}")


def test_basis_table_matches_spline_module() -> None:
    for k in range(1, 6):
        table = spline_jet.basis_table(k, F64)  # (4, k+1, k+1)
        expect = uniform_derivative_matrices(k, 3)  # (4, k+1, k+1)
        torch.testing.assert_close(table, expect, rtol=1e-13, atol=1e-13)


FAST = [(1, 5), (2, 1), (2, 10), (3, 5), (3, 10), (4, 1), (4, 10), (5, 5)]
ORDERS_GRIDS = [
    pytest.param(k, grid, marks=() if (k, grid) in FAST else pytest.mark.slow)
    for k in (1, 2, 3, 4, 5) for grid in (1, 5, 10)
]


@pytest.mark.parametrize(("k", "grid_size"), ORDERS_GRIDS)
def test_matches_reference(k: int, grid_size: int) -> None:
    """n_in=3, n_out=5, d=2, R=2, N=37; knots, near-knots and off-grid points."""
    check_against_reference(make_case(37, 3, 5, 2, 2, grid_size, k, seed=k + grid_size),
                            grid_size, k)


def test_non_dyadic_grid_random_points() -> None:
    check_against_reference(make_case(29, 4, 3, 3, 1, 7, 3, seed=3, dyadic=False), 7, 3)


def test_multiple_blocks_in_every_dimension() -> None:
    """N, n_out and G+k+1 larger than one tile: masks, output and coefficient blocks, chunks."""
    check_against_reference(make_case(40, 1, 33, 3, 1, 30, 3, seed=5), 30, 3)


@pytest.mark.parametrize(("d", "R"), [(0, 0), (3, 0), (0, 1)])
def test_missing_channels(d: int, R: int) -> None:
    check_against_reference(make_case(21, 3, 2, d, R, 5, 2, seed=7), 5, 2)


def test_value_only_with_none() -> None:
    case = make_case(19, 3, 4, 0, 0, 5, 4, seed=11)
    v = case["v"].clone().requires_grad_(True)
    C = case["C"].clone().requires_grad_(True)
    w = case["w"].clone().requires_grad_(True)
    y, gy, sy = kan_layer_jet(v, None, None, None, case["lo"], case["h"], 5, 4, C, w)
    assert gy.shape == (19, 0, 4) and sy.shape == (19, 0, 4)
    y_ref = reference_jet(v, case["g"], case["S"], case["q"], case["lo"], case["h"], 5, 4, C,
                          w)[0]
    assert_rel(y, y_ref, 1e-10, "y")
    grads = torch.autograd.grad(y.square().sum(), (v, C, w))
    grads_ref = torch.autograd.grad(y_ref.square().sum(), (v, C, w))
    for name, a, b in zip("vCw", grads, grads_ref, strict=True):
        assert_rel(a, b, 1e-10, f"d{name}")


def test_strided_inputs_and_expanded_cotangents() -> None:
    """Non-contiguous g, S and stride-0 cotangents (``.sum()`` of an output)."""
    case = make_case(23, 3, 5, 2, 2, 5, 3, seed=13)
    for name in ("g", "S", "q"):
        case[name] = case[name].transpose(1, 2).contiguous().transpose(1, 2)  # (N, ., n) view
    assert not case["g"].is_contiguous()
    t = {name: x.clone().requires_grad_(name in DIFF) for name, x in case.items()}
    args = (t["v"], t["g"], t["S"], t["q"], t["lo"], t["h"], 5, 3, t["C"], t["w"])
    grads = torch.autograd.grad(sum(o.sum() for o in kan_layer_jet(*args)), [t[n] for n in DIFF])
    grads_ref = torch.autograd.grad(sum(o.sum() for o in reference_jet(*args)),
                                    [t[n] for n in DIFF])
    for name, a, b in zip(DIFF, grads, grads_ref, strict=True):
        assert_rel(a, b, 1e-10, f"d{name}")


def test_float32_agrees_with_float64() -> None:
    """Away from knots: the third derivative jumps there, and float32 may pick either side."""
    case = make_case(37, 3, 5, 2, 2, 5, 3, seed=17, on_knots=False)
    out64, grads64, cots = run(kan_layer_jet, case, 5, 3, None, F64)
    out32, grads32, _ = run(kan_layer_jet, case, 5, 3, cots, torch.float32)
    assert all(o.dtype == torch.float32 for o in out32 + grads32)
    for name, a, b in zip(("y", "gy", "Sy") + DIFF, out32 + grads32, out64 + grads64,
                          strict=True):
        assert_rel(a, b, 2e-5, f"float32 {name}")


def test_parameter_gradients_independent_of_chunking() -> None:
    """The two-stage reduction gives the same C, w cotangents for 1 chunk and many."""
    case = make_case(50, 2, 3, 1, 1, 5, 2, seed=19)
    gen = torch.Generator().manual_seed(2)
    yb = torch.randn(50, 3, dtype=F64, generator=gen)  # (N, m)
    gyb = torch.randn(50, 1, 3, dtype=F64, generator=gen)  # (N, d, m)
    syb = torch.randn(50, 1, 3, dtype=F64, generator=gen)  # (N, R, m)
    args = (case["v"], case["g"], case["S"], case["q"], case["lo"], case["h"], 5, 2, 3,
            spline_jet.basis_table(2, F64), yb, gyb, syb)
    one = spline_jet.jet_backward_params(*args, max_chunks=1)
    many = spline_jet.jet_backward_params(*args, max_chunks=4)
    for a, b in zip(one, many, strict=True):
        assert_rel(a, b, 1e-13, "chunking")


def test_double_backward_raises() -> None:
    case = make_case(5, 2, 2, 1, 1, 3, 2, seed=23)
    v = case["v"].clone().requires_grad_(True)
    y, gy, _ = kan_layer_jet(v, case["g"], case["S"], case["q"], case["lo"], case["h"], 3, 2,
                             case["C"], case["w"])
    with pytest.raises(RuntimeError, match="first-order backward only"):
        torch.autograd.grad(gy.sum(), v, create_graph=True)


def test_bad_inputs_raise() -> None:
    case = make_case(5, 2, 2, 1, 1, 3, 2, seed=29)
    args = [case["v"], case["g"], case["S"], case["q"], case["lo"], case["h"], 3, 2, case["C"],
            case["w"]]
    with pytest.raises(ValueError, match="C must be"):
        kan_layer_jet(*args[:6], 4, *args[7:])  # wrong grid size for C
    with pytest.raises(ValueError, match="expected torch.float64"):
        kan_layer_jet(*args[:8], case["C"].float(), case["w"])
    with pytest.raises(ValueError, match="S and q"):
        kan_layer_jet(args[0], args[1], args[2], None, *args[4:])
    with pytest.raises(ValueError, match="spline_order"):
        kan_layer_jet(*args[:7], 6, *args[8:])


def test_available(monkeypatch: pytest.MonkeyPatch) -> None:
    assert available("cpu")
    assert available(torch.device("cuda"))
    monkeypatch.delenv("TRITON_INTERPRET")
    assert not available("cpu")
    case = make_case(3, 1, 1, 0, 0, 2, 1)
    with pytest.raises(RuntimeError, match="unavailable on cpu"):
        kan_layer_jet(case["v"], None, None, None, case["lo"], case["h"], 2, 1, case["C"],
                      case["w"])
    assert issubclass(KANLayerJetFunction, torch.autograd.Function)


def test_kan_model_dispatches_to_kernels_and_matches_torch_path() -> None:
    """The whole KAN through ``kernel="triton"`` (interpreted) equals the PyTorch jet path,
    values, channels and parameter gradients, in float64."""
    from kanpde import KAN
    from kanpde.core.engines import compute_jet

    model = KAN([2, 3, 2], grid_size=4, spline_order=3, seed=1)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(9, 2, generator=gen, dtype=F64) * 2.4 - 1.2
    w = torch.stack([torch.eye(2, dtype=F64), torch.tensor([[0, 0.5], [0.5, 0]], dtype=F64)])
    a = compute_jet(model, x, w, engine="jet-triton")
    b = compute_jet(model, x, w, engine="jet-torch")
    for part in ("value", "grad", "second"):
        ref = getattr(b, part)
        assert float((getattr(a, part) - ref).abs().max()) <= 1e-10 * float(ref.abs().max())
    params = list(model.parameters())
    ga = torch.autograd.grad(a.second.square().sum() + a.value.sum(), params)
    gb = torch.autograd.grad(b.second.square().sum() + b.value.sum(), params)
    for u, v in zip(ga, gb, strict=True):
        assert float((u - v).abs().max()) <= 1e-10 * float(v.abs().max())
    model.update_grid(x)
    with pytest.raises(RuntimeError, match="not uniform"):
        compute_jet(model, x, w, engine="jet-triton")


def test_hard_constraint_passes_the_kernel_to_its_network() -> None:
    """``kernel="triton"`` reaches the KAN inside a hard constraint: the same jet as the
    PyTorch path, and the same refusal on a non-uniform grid (no silent fallback)."""
    from kanpde import KAN
    from kanpde.core.engines import compute_jet
    from kanpde.nn.hard_constraint import HardConstraint

    model = HardConstraint(KAN([2, 3, 1], grid_size=4, spline_order=3, seed=1),
                           lambda p: (1 - p[:, 0] ** 2) * (1 - p[:, 1] ** 2))
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(9, 2, generator=gen, dtype=F64) * 2 - 1
    w = torch.eye(2, dtype=F64)[None]
    a = compute_jet(model, x, w, engine="jet-triton")
    b = compute_jet(model, x, w, engine="jet-torch")
    for part in ("value", "grad", "second"):
        ref = getattr(b, part)
        assert float((getattr(a, part) - ref).abs().max()) <= 1e-10 * float(ref.abs().max())
    model.model.update_grid(x)
    with pytest.raises(RuntimeError, match="not uniform"):
        compute_jet(model, x, w, engine="jet-triton")
