"""The sparse (k+1-row) KAN layer against a dense-basis reference and nested autograd (float64).

The reference below is the dense formulation: scatter the ``k + 1`` local bases into a
``(N, 1+d+R, n_in, G+k+1)`` tensor and multiply by the stacked coefficients. Both the compiled
CPU kernels and the pure-PyTorch contraction are checked against it, and whole models against
nested autograd, to 1e-12 relative.
"""

import warnings

import pytest
import torch
from torch.func import functional_call, jacfwd, jacrev, vmap

from kanpde import KAN, autograd_jet
from kanpde.core import spline
from kanpde.core.activations import silu_derivatives
from kanpde.core.jet import Channels, Jet
from kanpde.kernels import cpu
from kanpde.kernels.contract import local_contract
from kanpde.nn.kan_layer import KANLayer, spline_layer_jet

DT = torch.float64
TOL = 1e-12
COMPILED = cpu.library() is not None
BACKENDS = ["torch", pytest.param("compiled", marks=pytest.mark.skipif(
    not COMPILED, reason="no working C compiler"))]


def _rel(a, b):
    a, b = a.detach(), b.detach()
    return float((a - b).abs().max() / (b.abs().max() + 1e-300))


def _zero(t):
    return t is None or t.numel() == 0 or float(t.detach().abs().max()) == 0.0


def dense_layer_jet(value, grad, second, quad, knots, k, uniform, coef, base_weight):
    """Dense-basis reference: ``(N, 1+d+R, n_in, G+k+1)`` features times all coefficients."""
    n_points, n_in = value.shape
    dim, n_ch = grad.shape[1], second.shape[1]
    n_deriv = 2 if n_ch else (1 if dim else 0)
    idx, basis = spline.local_basis(value, knots, k, n_deriv, uniform)  # (q, N, n_in, k+1)
    base = torch.stack(silu_derivatives(value)[: n_deriv + 1])  # (q, N, n_in)
    local = torch.cat([base[..., None], basis], dim=-1).unbind(0)  # q x (N, n_in, k+2)
    rows = [local[0][:, None]]
    if dim:
        rows.append(local[1][:, None] * grad[..., None])
    if n_ch:
        rows.append(local[2][:, None] * quad[..., None] + local[1][:, None] * second[..., None])
    stacked = torch.cat(rows, dim=1)  # (N, 1+d+R, n_in, k+2)
    n_basis = coef.shape[1]
    cols = torch.cat([torch.zeros_like(idx[..., None]),
                      idx[..., None] + 1 + torch.arange(k + 1)], dim=-1)
    dense = torch.zeros(*stacked.shape[:-1], n_basis + 1, dtype=value.dtype)
    dense = dense.scatter(-1, cols[:, None].expand(stacked.shape), stacked)
    weight = torch.cat([base_weight[:, None, :], coef], dim=1)  # (n_in, G+k+1, n_out)
    out = dense.reshape(-1, n_in * (n_basis + 1)) @ weight.reshape(n_in * (n_basis + 1), -1)
    out = out.reshape(n_points, 1 + dim + n_ch, -1)
    return out[:, 0], out[:, 1 : 1 + dim], out[:, 1 + dim :]


def _layer(k, grid_size=5, n_in=3, n_out=4, seed=0, uniform=True):
    layer = KANLayer(n_in, n_out, grid_size, k, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        layer.coef.normal_(generator=torch.Generator().manual_seed(seed + 1))
    if not uniform:
        gen = torch.Generator().manual_seed(seed + 2)
        layer.update_grid(torch.randn(300, n_in, generator=gen, dtype=DT) ** 3, grid_eps=0.1)
        assert not layer.uniform
    return layer


def _inputs(n, n_in, d, r, seed=0, spread=1.6):
    """A layer input jet whose values reach outside the grid range [-1, 1]."""
    gen = torch.Generator().manual_seed(seed)
    value = (torch.rand(n, n_in, generator=gen, dtype=DT) * 2 - 1) * spread
    grad = torch.randn(n, d, n_in, generator=gen, dtype=DT)
    second = torch.randn(n, r, n_in, generator=gen, dtype=DT)
    quad = torch.randn(n, r, n_in, generator=gen, dtype=DT)
    return [t.requires_grad_(True) for t in (value, grad, second, quad)]


def _layer_args(layer):
    coef = layer.effective_coef().detach().clone().requires_grad_(True)
    base = layer.base_weight.detach().clone().requires_grad_(True)
    return layer.knots, layer.k, layer.uniform, coef, base


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("uniform", [True, False])
@pytest.mark.parametrize("k", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("d, r", [(0, 0), (2, 0), (2, 3), (0, 2)])
def test_layer_equals_dense_reference(backend, uniform, k, d, r):
    layer = _layer(k, uniform=uniform, seed=k)
    inputs = _inputs(37, 3, d, r, seed=k + d + r)
    knots, _, _, coef, base = _layer_args(layer)
    args = (*inputs, knots, k, layer.uniform, coef, base)
    out = spline_layer_jet(*args, backend=backend)
    ref = dense_layer_jet(*args)
    for a, b in zip(out, ref, strict=True):
        assert a.shape == b.shape
        if b.numel():
            assert _rel(a, b) <= TOL
    # cotangents of inputs and parameters for a loss that uses every output
    weights = [torch.randn(t.shape, generator=torch.Generator().manual_seed(3), dtype=DT)
               for t in ref]
    diff = [*inputs, coef, base]
    g_out = torch.autograd.grad(sum((w * t).sum() for w, t in zip(weights, out, strict=True)),
                                diff, allow_unused=True)
    g_ref = torch.autograd.grad(sum((w * t).sum() for w, t in zip(weights, ref, strict=True)),
                                diff, allow_unused=True)
    for a, b in zip(g_out, g_ref, strict=True):
        if b is None:
            assert _zero(a)
        elif b.numel():
            assert _rel(a, b) <= TOL


@pytest.mark.parametrize("backend", BACKENDS)
def test_layer_double_backward_equals_dense_reference(backend):
    """create_graph=True through the jet (the fused kernel falls back to its composed rule)."""
    layer = _layer(3, seed=4)
    inputs = _inputs(21, 3, 2, 1, seed=5)
    knots, k, uniform, coef, base = _layer_args(layer)
    results = []
    for fn in (lambda *a: spline_layer_jet(*a, backend=backend), dense_layer_jet):
        out = fn(*inputs, knots, k, uniform, coef, base)
        loss = sum(t.square().sum() for t in out)
        first = torch.autograd.grad(loss, [inputs[0], coef], create_graph=True)
        results.append(torch.autograd.grad(first[0].sin().sum() + first[1].square().sum(),
                                           [inputs[0], inputs[1], coef, base]))
    for a, b in zip(*results, strict=True):
        assert _rel(a, b) <= TOL


def _model(k, seed=0):
    model = KAN([2, 4, 3, 2], grid_size=6, spline_order=k, seed=seed)
    with torch.no_grad():
        for layer in model.layers:
            layer.coef.normal_(generator=torch.Generator().manual_seed(seed + 7))
    return model


def _channels():
    eye = torch.eye(2, dtype=DT)
    xy = torch.tensor([[0.0, 0.5], [0.5, 0.0]], dtype=DT)
    return torch.stack([eye, xy])  # (2, 2, 2)


def _points(n=48, seed=1, spread=1.4):
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 2, generator=gen, dtype=DT) * 2 - 1) * spread


def _assert_model_matches_autograd(model, x):
    w = _channels()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # k = 1: second derivatives of splines are zero
        jet = model.jet(x, second=w)
    ref = autograd_jet(model, x, second=w)
    assert _rel(jet.value, ref.value) <= TOL
    assert _rel(jet.grad, ref.grad) <= TOL
    assert _rel(jet.second, ref.second) <= TOL

    def loss(j):
        return (j.second[:, 0] - j.value).square().mean() + j.grad.sin().mean()

    params = list(model.parameters())
    g_jet = torch.autograd.grad(loss(jet), params, allow_unused=True)
    g_ref = torch.autograd.grad(loss(ref), params, allow_unused=True)
    for a, b in zip(g_jet, g_ref, strict=True):
        if b is None or a is None:
            assert _zero(a) and _zero(b)
        else:
            assert _rel(a, b) <= TOL


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5])
def test_model_equals_nested_autograd(k):
    _assert_model_matches_autograd(_model(k, seed=k), _points())


@pytest.mark.parametrize("k", [2, 3, 5])
def test_model_after_update_grid_equals_nested_autograd(k):
    model = _model(k, seed=k)
    model.update_grid(_points(400, seed=2, spread=1.2) ** 3, grid_eps=0.05)
    assert not any(layer.uniform for layer in model.layers)
    _assert_model_matches_autograd(model, _points(seed=3, spread=1.5))


def test_model_with_symbolic_and_masked_edges_equals_nested_autograd():
    model = _model(3, seed=2)
    model.layers[0].set_symbolic(0, 1, "sin", (1.5, 0.2, 0.7, -0.1))
    model.layers[1].mask_edge(2, 0)
    model.layers[1].set_symbolic(1, 2, "x^2")
    model.layers[2].mask_edge(0, 1)
    _assert_model_matches_autograd(model, _points(seed=4))


def test_value_forward_equals_jet_value_and_dense_reference():
    model = _model(3, seed=5)
    x = _points(seed=6, spread=1.5)
    with torch.no_grad():
        value = model(x)
        jet = model.jet(x)
    assert _rel(jet.value, value) <= TOL
    h = x
    for layer in model.layers:
        knots, k, uniform, coef, base = _layer_args(layer)
        empty = h.new_zeros(h.shape[0], 0, h.shape[1])
        h = dense_layer_jet(h, empty, empty, empty, knots, k, uniform, coef, base)[0]
    assert _rel(value, h) <= TOL


@pytest.mark.parametrize("backend", BACKENDS)
def test_contraction_gradgradcheck(backend):
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(5, 2, 3, 4, generator=gen, dtype=DT, requires_grad=True)
    w = torch.randn(3, 7, 2, generator=gen, dtype=DT, requires_grad=True)
    idx = torch.randint(0, 4, (5, 3), generator=gen)

    def fn(a, w):
        return local_contract(a, idx, w, backend)

    assert torch.autograd.gradcheck(fn, (a, w))
    assert torch.autograd.gradgradcheck(fn, (a, w))


@pytest.mark.parametrize("backend", BACKENDS)
def test_contraction_under_vmap_and_jacobians(backend):
    gen = torch.Generator().manual_seed(1)
    a = torch.randn(6, 2, 3, 4, generator=gen, dtype=DT)
    w = torch.randn(3, 8, 5, generator=gen, dtype=DT)
    idx = torch.randint(0, 5, (6, 3), generator=gen)
    rows = idx[..., None] + torch.arange(4)  # (6, 3, 4)
    gathered = w[torch.arange(3)[None, :, None], rows]  # (6, 3, 4, 5)

    def ref(a, w):
        return torch.einsum("pcir,pirj->pcj", a, w[torch.arange(3)[None, :, None], rows])

    out = local_contract(a, idx, w, backend)
    assert _rel(out, torch.einsum("pcir,pirj->pcj", a, gathered)) <= TOL
    batch_a = torch.randn(3, *a.shape, generator=gen, dtype=DT)
    batch_w = torch.randn(2, *w.shape, generator=gen, dtype=DT)
    got = vmap(lambda t: local_contract(t, idx, w, backend))(batch_a)
    assert _rel(got, torch.stack([ref(t, w) for t in batch_a])) <= TOL
    got = vmap(lambda t: local_contract(a, idx, t, backend))(batch_w)
    assert _rel(got, torch.stack([ref(a, t) for t in batch_w])) <= TOL
    got = vmap(lambda s, t: local_contract(s, idx, t, backend))(batch_a[:2], batch_w)
    assert _rel(got, torch.stack([ref(s, t) for s, t in zip(batch_a[:2], batch_w,
                                                              strict=True)])) <= TOL
    for jac in (jacrev, jacfwd):
        got = jac(lambda t: local_contract(t, idx, w, backend).square())(a)
        assert _rel(got, jac(lambda t: ref(t, w).square())(a)) <= TOL
        got = jac(lambda t: local_contract(a, idx, t, backend).sin())(w)
        assert _rel(got, jac(lambda t: ref(a, t).sin())(w)) <= TOL


class _Residual(torch.nn.Module):
    """``lap u - u^2`` at fixed points, a function of the model's parameters."""

    def __init__(self, model, x):
        super().__init__()
        self.model, self.x = model, x

    def forward(self):
        jet = self.model.jet(self.x, second=torch.eye(2, dtype=DT)[None])
        return jet.second[:, 0, 0] - jet.value[:, 0] ** 2


def _residual_jacobian(model, x, transform):
    """Jacobian of the residuals with respect to every parameter, by a ``torch.func``
    transform, and the residual function."""
    wrapper = _Residual(model, x)
    params = {k: v.detach() for k, v in wrapper.named_parameters()}

    def residual(p):
        return functional_call(wrapper, p, ())

    return transform(residual)(params), residual


@pytest.mark.parametrize("transform", [jacrev, jacfwd])
def test_torch_func_jacobian_of_residuals(transform):
    model = _model(3, seed=8)
    x = _points(9, seed=9)
    jac, residual = _residual_jacobian(model, x, transform)
    params = {"model." + k: v for k, v in model.named_parameters()}
    r = residual(params)
    for n in range(x.shape[0]):
        rows = torch.autograd.grad(r[n], list(params.values()), retain_graph=True,
                                   allow_unused=True)
        for (name, _), g in zip(params.items(), rows, strict=True):
            expect = torch.zeros_like(jac[name][n]) if g is None else g
            assert _rel(jac[name][n], expect) <= TOL or (_zero(expect) and _zero(jac[name][n]))


def test_vmap_over_points_of_the_jet():
    model = _model(3, seed=10)
    x = _points(11, seed=11)
    w = _channels()
    per_point = vmap(lambda p: model.jet(p[None], second=w).second[0])(x)
    assert _rel(per_point, model.jet(x, second=w).second) <= TOL


@pytest.mark.skipif(not COMPILED, reason="no working C compiler")
def test_compiled_kernels_do_not_depend_on_thread_count():
    layer = _layer(3, grid_size=7, n_in=5, n_out=9, seed=12)
    inputs = [t.detach() for t in _inputs(301, 5, 2, 2, seed=13)]
    knots, k, uniform, coef, base = _layer_args(layer)
    previous = torch.get_num_threads()
    results = []
    try:
        for threads in (1, 2, 3):
            torch.set_num_threads(threads)
            args = [t.clone().requires_grad_(True) for t in inputs]
            c, b = coef.detach().clone().requires_grad_(True), base.detach().clone()
            out = spline_layer_jet(*args, knots, k, uniform, c, b.requires_grad_(True))
            grads = torch.autograd.grad(sum(t.sum() for t in out), [*args, c, b])
            results.append([t.detach() for t in (*out, *grads)])
    finally:
        torch.set_num_threads(previous)
    for other in results[1:]:
        for a, b in zip(results[0], other, strict=True):
            assert torch.equal(a, b)


@pytest.mark.parametrize("backend", BACKENDS)
def test_float32_layer(backend):
    layer = _layer(3, seed=14)
    inputs = [t.detach().float() for t in _inputs(40, 3, 2, 1, seed=15)]
    knots, k, uniform, coef, base = _layer_args(layer)
    out = spline_layer_jet(*inputs, knots.float(), k, uniform, coef.detach().float(),
                           base.detach().float(), backend=backend)
    ref = dense_layer_jet(*[t.double() for t in inputs], knots, k, uniform, coef.detach(),
                          base.detach())
    for a, b in zip(out, ref, strict=True):
        assert a.dtype == torch.float32
        assert _rel(a.double(), b) <= 1e-5


def test_kan_layer_jet_uses_channels_object():
    layer = _layer(2, seed=16)
    value, grad, second, _ = (t.detach() for t in _inputs(10, 3, 2, 2, seed=17))
    channels = Channels(torch.stack([torch.eye(2, dtype=DT), torch.ones(2, 2, dtype=DT)]))
    out = layer.jet(Jet(value, grad, second, channels))
    ref = dense_layer_jet(value, grad, second, channels.quad(grad), layer.knots, layer.k,
                          layer.uniform, layer.effective_coef().detach(),
                          layer.base_weight.detach())
    assert _rel(out.second, ref[2]) <= TOL


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("uniform", [True, False])
def test_diagonal_channels_formed_inside_equal_dense_reference(backend, uniform):
    """``quad=None`` with diagonal weights: the quadratic forms are built (and differentiated)
    inside the layer."""
    layer = _layer(3, uniform=uniform, seed=18)
    value, grad, second, _ = _inputs(29, 3, 2, 2, seed=19)
    diag = torch.tensor([[1.0, 1.0], [0.5, -2.0]], dtype=DT)  # (R, d)
    knots, k, uniform, coef, base = _layer_args(layer)
    out = spline_layer_jet(value, grad, second, None, knots, k, uniform, coef, base,
                           backend=backend, diag=diag)
    quad = torch.einsum("ra,Nai->Nri", diag, grad * grad)
    ref = dense_layer_jet(value, grad, second, quad, knots, k, uniform, coef, base)
    for a, b in zip(out, ref, strict=True):
        assert _rel(a, b) <= TOL
    diff = [value, grad, second, coef, base]
    loss = [sum((t * t.detach().cos()).sum() for t in o) for o in (out, ref)]
    for a, b in zip(torch.autograd.grad(loss[0], diff), torch.autograd.grad(loss[1], diff),
                    strict=True):
        assert _rel(a, b) <= TOL
    with pytest.raises(ValueError, match="quad and diag"):
        spline_layer_jet(value, grad, second, quad, knots, k, uniform, coef, base, diag=diag)


@pytest.mark.parametrize("update", [False, True])
def test_model_with_diagonal_channels_equals_nested_autograd(update):
    model = _model(4, seed=20)
    if update:
        model.update_grid(_points(300, seed=21) ** 3, grid_eps=0.1)
    spatial = torch.diag(torch.tensor([1.0, 0.0], dtype=DT))
    w = torch.stack([torch.eye(2, dtype=DT), spatial])  # diagonal: fused quadratic forms
    x = _points(seed=22)
    jet, ref = model.jet(x, second=w), autograd_jet(model, x, second=w)
    for a, b in ((jet.value, ref.value), (jet.grad, ref.grad), (jet.second, ref.second)):
        assert _rel(a, b) <= TOL
    params = list(model.parameters())
    g_jet = torch.autograd.grad(jet.second.square().mean() + jet.grad.mean(), params)
    g_ref = torch.autograd.grad(ref.second.square().mean() + ref.grad.mean(), params)
    for a, b in zip(g_jet, g_ref, strict=True):
        assert _rel(a, b) <= TOL


@pytest.mark.parametrize("backend", ["auto", "torch"])
def test_batched_cotangents_through_the_jet(backend, monkeypatch):
    """``autograd.grad(..., is_grads_batched=True)`` (rows of a residual Jacobian at once)."""
    if backend == "torch":
        monkeypatch.setenv(cpu.ENV_DISABLE, "1")
        cpu.library.cache_clear()
    try:
        model = _model(3, seed=23)
        x = _points(7, seed=24)
        jet = model.jet(x, second=torch.eye(2, dtype=DT)[None])
        r = jet.second[:, 0, 0] - jet.value[:, 0] ** 2
        params = list(model.parameters())
        rows = torch.autograd.grad(r, params, torch.eye(7, dtype=DT), is_grads_batched=True,
                                   retain_graph=True)
        for n in range(7):
            for a, b in zip(rows, torch.autograd.grad(r[n], params, retain_graph=True),
                            strict=True):
                assert _rel(a[n], b) <= TOL
    finally:
        cpu.library.cache_clear()
