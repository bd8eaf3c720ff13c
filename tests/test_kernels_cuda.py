"""Compiled fused KAN-layer jet kernels on CUDA against the PyTorch jet path.

Runs only where ``torch.cuda.is_available()`` (the module is skipped otherwise, with the reason
shown by ``-ra``). The default suite checks the same kernels under the Triton interpreter
(``tests/test_kernels.py``); this file checks the *compiled* kernels: one layer
(:func:`kanpde.kernels.kan_layer_jet` against :func:`kanpde.nn.kan_layer.spline_layer_jet` on CUDA
tensors, forward and every cotangent) and whole KANs (engine ``"jet-triton"`` against
``"jet-torch"``, values, gradients, channels and parameter gradients), in float64 to 1e-10 and
in float32 against float64, at the test sizes of ``tests/test_kernels.py`` and at
``N = 65536``, ``[3, 64, 64, 64, 1]``; and that engine ``"jet"`` on CUDA uses the kernels.

``kanpde.kernels.spline_jet`` fixes compiled vs interpreted when it is first imported. If
another module of the same pytest run imported it under ``TRITON_INTERPRET=1`` (as
``tests/test_kernels.py`` does), a module-scoped fixture imports a compiled copy for these
tests and puts the interpreted one back afterwards. TF32 is switched off for every test by a
fixture that restores the previous flags.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Iterator
from types import ModuleType

import pytest
import torch
from torch import Tensor

if not torch.cuda.is_available():
    pytest.skip("needs a CUDA GPU (torch.cuda.is_available() is False): compiled Triton "
                "kernels", allow_module_level=True)
pytest.importorskip("triton", reason="triton is not installed (pip install 'kanpde[gpu]')")

import kanpde.kernels  # noqa: E402  (after the skips: nothing to import without CUDA)
from kanpde import KAN  # noqa: E402
from kanpde.core.engines import compute_jet
from kanpde.kernels import kan_layer_jet  # noqa: E402
from kanpde.nn.kan_layer import spline_layer_jet  # noqa: E402

F64, F32 = torch.float64, torch.float32
CUDA = torch.device("cuda")
DIFF = ("v", "g", "S", "q", "C", "w")
MODULE = "kanpde.kernels.spline_jet"


@pytest.fixture(scope="module", autouse=True)
def compiled_kernels() -> Iterator[ModuleType]:
    """``kanpde.kernels.spline_jet`` imported without ``TRITON_INTERPRET`` (compiled)."""
    previous = sys.modules.get(MODULE)
    swap = previous is not None and previous.is_interpreted()
    env = os.environ.pop("TRITON_INTERPRET", None)
    try:
        if swap:
            del sys.modules[MODULE]
            delattr(kanpde.kernels, "spline_jet")
        module = importlib.import_module(MODULE)
        assert not module.is_interpreted()
        yield module
    finally:
        if swap:
            sys.modules[MODULE] = previous
            kanpde.kernels.spline_jet = previous
        if env is not None:
            os.environ["TRITON_INTERPRET"] = env


@pytest.fixture(autouse=True)
def no_tf32() -> Iterator[None]:
    """Full-precision float32 matrix products in the PyTorch path; restores the flags."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def poison_allocator(n_bytes: int = 1 << 28) -> None:
    """Fill ``n_bytes`` of the caching allocator's free memory with NaN, so that an output
    element a kernel forgets to write shows up as NaN instead of an old, plausible value."""
    torch.full((n_bytes // 4,), float("nan"), dtype=F32, device=CUDA)


def rel_err(a: Tensor, b: Tensor) -> float:
    """``max |a - b| / max |b|`` (in float64); NaN in ``a`` gives ``inf``."""
    assert a.shape == b.shape, f"shape {tuple(a.shape)} != {tuple(b.shape)}"
    if b.numel() == 0:
        return 0.0
    err = (a.to(F64) - b.to(F64)).abs().max().item()
    if err != err:  # NaN
        return float("inf")
    return err / max(b.abs().max().item(), 1e-300)


# ----------------------------------------------------------------------------------------------
# one layer
# ----------------------------------------------------------------------------------------------


def make_layer_case(n_pts: int, n_in: int, n_out: int, d: int, R: int, grid_size: int, k: int,
                    seed: int = 0) -> dict[str, Tensor]:
    """Random float64 layer inputs on CUDA: points inside the grid and up to 2h off either
    end (polynomial extrapolation), random grids, jets, coefficients and SiLU weights."""
    gen = torch.Generator().manual_seed(seed)

    def rand(*shape: int) -> Tensor:
        return torch.rand(*shape, generator=gen, dtype=F64)

    lo = -1.0 - rand(n_in)  # (n,)
    h = (0.5 + rand(n_in)) * 2.0 / grid_size  # (n,)
    v = lo + h * (grid_size + 4) * rand(n_pts, n_in) - 2 * h  # (N, n): [lo - 2h, hi + 2h)
    return {
        "v": v,
        "g": torch.randn(n_pts, d, n_in, generator=gen, dtype=F64),  # (N, d, n)
        "S": torch.randn(n_pts, R, n_in, generator=gen, dtype=F64),  # (N, R, n)
        "q": torch.randn(n_pts, R, n_in, generator=gen, dtype=F64),  # (N, R, n)
        "lo": lo,
        "h": h,
        "C": torch.randn(n_in, grid_size + k, n_out, generator=gen, dtype=F64),  # (n, G+k, m)
        "w": torch.randn(n_in, n_out, generator=gen, dtype=F64),  # (n, m)
    }


def torch_layer(v: Tensor, g: Tensor, S: Tensor, q: Tensor, lo: Tensor, h: Tensor,
                grid_size: int, k: int, C: Tensor, w: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The PyTorch jet path with the kernel's argument convention (uniform knots from lo, h)."""
    steps = torch.arange(-k, grid_size + k + 1, dtype=v.dtype, device=v.device)
    knots = lo[:, None] + steps[None, :] * h[:, None]  # (n, G+2k+1)
    return spline_layer_jet(v, g, S, q, knots, k, True, C, w)


def run_layer(fn: Callable[..., tuple[Tensor, Tensor, Tensor]], case: dict[str, Tensor],
              grid_size: int, k: int, dtype: torch.dtype, seed: int = 1
              ) -> tuple[tuple[Tensor, ...], tuple[Tensor, ...]]:
    """Outputs ``(y, gy, Sy)`` and the gradients of ``sum <out, cot>`` w.r.t. ``DIFF``."""
    t = {name: x.to(device=CUDA, dtype=dtype) for name, x in case.items()}
    for name in DIFF:
        t[name].requires_grad_(True)
    poison_allocator()
    out = fn(t["v"], t["g"], t["S"], t["q"], t["lo"], t["h"], grid_size, k, t["C"], t["w"])
    gen = torch.Generator().manual_seed(seed)
    cots = [torch.randn(o.shape, generator=gen, dtype=F32).to(device=CUDA, dtype=dtype)
            for o in out]  # float32 values: the same cotangents in either dtype
    loss = sum((o * c).sum() for o, c in zip(out, cots, strict=True))
    inputs = [t[name] for name in DIFF]
    # allow_unused: the PyTorch path does not touch S and q when R = 0 (their cotangent is 0)
    grads = torch.autograd.grad(loss, inputs, allow_unused=True)
    grads = tuple(torch.zeros_like(x) if gr is None else gr
                  for x, gr in zip(inputs, grads, strict=True))
    return tuple(o.detach() for o in out), grads


def check_layer(case: dict[str, Tensor], grid_size: int, k: int, dtype: torch.dtype = F64,
                tol: float = 1e-10) -> None:
    """Kernel in ``dtype`` against the PyTorch path in float64: outputs and all cotangents.

    The inputs are rounded to ``dtype`` first, so the comparison measures arithmetic only.
    """
    case = {name: x.to(dtype).to(F64) for name, x in case.items()}
    out_ref, grads_ref = run_layer(torch_layer, case, grid_size, k, F64)
    out, grads = run_layer(kan_layer_jet, case, grid_size, k, dtype)
    assert all(o.dtype == dtype and o.device.type == CUDA.type for o in out + grads)
    names = ("y", "gy", "Sy") + tuple(f"d{n}" for n in DIFF)
    for name, a, b in zip(names, out + grads, out_ref + grads_ref, strict=True):
        err = rel_err(a, b)
        assert err <= tol, f"{dtype} {name}: relative error {err:.3e} > {tol:.0e}"


FAST = [(1, 5), (2, 1), (2, 10), (3, 5), (3, 10), (4, 1), (4, 10), (5, 5)]


@pytest.mark.parametrize(("k", "grid_size"), FAST)
def test_layer_float64(k: int, grid_size: int) -> None:
    """n_in=3, n_out=5, d=2, R=2, N=37 (as tests/test_kernels.py)."""
    check_layer(make_layer_case(37, 3, 5, 2, 2, grid_size, k, seed=k + grid_size), grid_size, k)


def test_layer_multiple_blocks() -> None:
    """N, n_out and G+k+1 larger than one tile."""
    check_layer(make_layer_case(40, 1, 33, 3, 1, 30, 3, seed=5), 30, 3)


# (d, R) = (0, R > 0), which tests/test_kernels.py covers, is left out: spline_layer_jet
# derives its derivative order from d alone and fails there (not reachable from KAN.jet).
@pytest.mark.parametrize(("d", "R"), [(0, 0), (3, 0), (1, 3)])
def test_layer_missing_channels(d: int, R: int) -> None:
    """No channels, no jet at all, and partial channel blocks (R = 3 in a block of 4)."""
    check_layer(make_layer_case(21, 3, 2, d, R, 5, 2, seed=7), 5, 2)


def needs_gpu_memory(gib: float) -> None:
    """Skip unless the GPU has ``gib`` GiB (the large cases hold the dense PyTorch reference)."""
    total = torch.cuda.get_device_properties(CUDA).total_memory / 2**30
    if total < gib:
        pytest.skip(f"needs {gib:g} GiB of GPU memory, the GPU has {total:.0f} GiB")


def test_layer_large_float64() -> None:
    """N = 65536, 64 -> 64, d = 3, R = 1, G = 50, k = 3: many point, output and coefficient
    blocks and several chunks in the two-stage parameter reduction."""
    needs_gpu_memory(40)
    check_layer(make_layer_case(65536, 64, 64, 3, 1, 50, 3, seed=11), 50, 3)


# Float32 against float64 at the layer level. Unit roundoff is 6e-8; a layer output is a sum
# of n_in (k + 2) products and the parameter cotangents sums over N points, whose rounding
# grows like sqrt(length) u (3e-6 at N = 37 times the ratio of the absolute sum to the sum).
# tests/test_kernels.py observes < 2e-5 under the interpreter for these sizes; the same bound
# here. Random points are almost surely not within a float32 ulp of a knot, where the third
# derivative (in the input cotangent) may jump.
@pytest.mark.parametrize(("k", "grid_size"), [(3, 5), (3, 10), (5, 5)])
def test_layer_float32(k: int, grid_size: int) -> None:
    case = make_layer_case(37, 3, 5, 2, 2, grid_size, k, seed=13 + k)
    check_layer(case, grid_size, k, dtype=F32, tol=2e-5)


# ----------------------------------------------------------------------------------------------
# whole KANs through the engines
# ----------------------------------------------------------------------------------------------


def kan_step(model: KAN, x: Tensor, engine: str) -> list[Tensor]:
    """Value, gradient, Laplacian and the parameter gradients of a PINN-like loss."""
    w = torch.eye(x.shape[1], dtype=x.dtype, device=x.device)[None]  # (1, d, d)
    jet = compute_jet(model, x, w, engine=engine)
    loss = (jet.value.square().mean() + jet.grad.square().sum(1).mean()
            + jet.second.square().mean())
    grads = torch.autograd.grad(loss, list(model.parameters()))
    return [jet.value.detach(), jet.grad.detach(), jet.second.detach(), *grads]


def kan_points(n_pts: int, dim: int, dtype: torch.dtype, seed: int = 0) -> Tensor:
    gen = torch.Generator().manual_seed(seed)
    return ((torch.rand(n_pts, dim, generator=gen, dtype=F64) * 2.4 - 1.2)
            .to(dtype=dtype, device=CUDA))


def test_kan_small_float64() -> None:
    model = KAN([2, 3, 2], grid_size=4, spline_order=3, seed=1, device=CUDA)
    x = kan_points(9, 2, F64)
    fused, ref = kan_step(model, x, "jet-triton"), kan_step(model, x, "jet-torch")
    for a, b in zip(fused, ref, strict=True):
        assert rel_err(a, b) <= 1e-10


def test_kan_large_float64() -> None:
    """N = 65536, [3, 64, 64, 64, 1], G = 50, k = 3: the benchmark's largest size."""
    needs_gpu_memory(64)
    model = KAN([3, 64, 64, 64, 1], grid_size=50, spline_order=3, seed=2, device=CUDA)
    x = kan_points(65536, 3, F64, seed=3)
    names = ["value", "grad", "second"] + [n for n, _ in model.named_parameters()]
    fused, ref = kan_step(model, x, "jet-triton"), kan_step(model, x, "jet-torch")
    for name, a, b in zip(names, fused, ref, strict=True):
        err = rel_err(a, b)
        assert err <= 1e-10, f"{name}: relative error {err:.3e}"


# Float32 KAN against float64. Spline order k = 4 on purpose: a cubic spline's third derivative
# jumps at knots, and the backward of a Laplacian loss uses it (d phi''/dv). In float32 a
# hidden activation within an ulp of a knot (thousands of evaluations per layer at N = 65536,
# G = 50) lands on either side depending on rounding, which moves a few parameter-gradient
# entries by up to ~1e-2 relative in *any* float32 implementation (measured with the PyTorch
# path on CPU: 2e-2 at k = 3, G = 50, N = 8192; 5e-5 at k = 4). With k = 4 the third
# derivative is continuous and the float32 errors are plain rounding: the PyTorch path showed
# <= 5e-5 for value, gradient, Laplacian and parameter gradients (N = 8192). Bounds: 2e-4 for
# the forward quantities and 1e-3 for parameter gradients, which the kernel accumulates
# sequentially over N/chunks points in float32 (error ~ sqrt(N) u times the cancellation in
# the sum). TF32 (10-bit mantissa, u = 5e-4) would not be plain float32: it is off (fixture).
@pytest.mark.parametrize("engine", ["jet-triton", "jet-torch"])
def test_kan_large_float32(engine: str) -> None:
    assert not torch.backends.cuda.matmul.allow_tf32
    needs_gpu_memory(64)
    model32 = KAN([3, 64, 64, 64, 1], grid_size=50, spline_order=4, seed=4, dtype=F32,
                  device=CUDA)
    model64 = KAN([3, 64, 64, 64, 1], grid_size=50, spline_order=4, seed=4, device=CUDA)
    with torch.no_grad():
        for p64, p32 in zip(model64.parameters(), model32.parameters(), strict=True):
            p64.copy_(p32.to(F64))  # the same (float32-representable) parameters
    x32 = kan_points(65536, 3, F32, seed=5)
    ref = kan_step(model64, x32.to(F64), "jet-torch")
    got = kan_step(model32, x32, engine)
    names = ["value", "grad", "second"] + [n for n, _ in model32.named_parameters()]
    for i, (name, a, b) in enumerate(zip(names, got, ref, strict=True)):
        assert a.dtype == F32
        tol = 2e-4 if i < 3 else 1e-3
        err = rel_err(a, b)
        assert err <= tol, f"{engine} float32 {name}: relative error {err:.3e} > {tol:.0e}"


def test_jet_engine_dispatches_to_kernels_on_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    """Engine "jet" on CUDA tensors calls the fused kernels once per layer; "jet-torch" never."""
    calls = []
    original = kanpde.kernels.kan_layer_jet

    def counting(*args, **kwargs):
        calls.append(args[0].shape)
        return original(*args, **kwargs)

    monkeypatch.setattr(kanpde.kernels, "kan_layer_jet", counting)
    model = KAN([2, 5, 3, 1], grid_size=6, spline_order=3, seed=6, device=CUDA)
    x = kan_points(50, 2, F64, seed=7)
    auto = kan_step(model, x, "jet")
    assert len(calls) == 3 and all(shape[0] == 50 for shape in calls)
    ref = kan_step(model, x, "jet-torch")
    assert len(calls) == 3
    for a, b in zip(auto, ref, strict=True):
        assert rel_err(a, b) <= 1e-10
