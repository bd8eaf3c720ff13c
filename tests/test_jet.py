"""Forward jets through KANs and MLPs against nested autograd and torch.func (float64)."""

import pytest
import torch
from torch.func import hessian, jacrev, vmap

from kanpde import KAN, MLP, autograd_jet
from kanpde.core.engines import compute_jet
from kanpde.core.jet import Channels
from kanpde.nn import AffineMap, Chain, FourierFeatures, PeriodicEmbedding
from kanpde.nn.kan_layer import KANLayer

DT = torch.float64
RTOL = 1e-10


def _rel(a, b):
    return float((a - b).abs().max() / (b.abs().max() + 1e-300))


def _channels(d):
    eye = torch.eye(d, dtype=DT)
    xx = torch.zeros(d, d, dtype=DT)
    xx[0, 0] = 1.0
    xy = torch.zeros(d, d, dtype=DT)
    xy[0, 1] = xy[1, 0] = 0.5
    spatial = eye.clone()
    spatial[-1, -1] = 0.0  # Laplacian without the last (time) coordinate
    return torch.stack([eye, xx, xy, spatial])  # (4, d, d)


def _points(n, d, seed, spread=1.3):
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand(n, d, generator=gen, dtype=DT) * 2 - 1) * spread


def _assert_jets_equal(model, x, w):
    jet = model.jet(x, second=w)
    ref = autograd_jet(model, x, second=w)
    assert jet.value.shape == ref.value.shape
    assert jet.grad.shape == (x.shape[0], x.shape[1], ref.value.shape[1])
    assert jet.second.shape == (x.shape[0], w.shape[0], ref.value.shape[1])
    assert _rel(jet.value, ref.value) <= RTOL
    assert _rel(jet.grad, ref.grad) <= RTOL
    for r in range(w.shape[0]):
        assert _rel(jet.second[:, r], ref.second[:, r]) <= RTOL, f"channel {r}"
    return jet, ref


@pytest.mark.parametrize("k", [2, 3, 4])
@pytest.mark.parametrize("widths", [[2, 3, 1], [3, 5, 4, 2], [2, 4, 4, 4, 3]])
def test_kan_jet_equals_nested_autograd(k, widths):
    model = KAN(widths, grid_size=5, spline_order=k, seed=k)
    with torch.no_grad():  # make the spline part matter as much as the base part
        for layer in model.layers:
            layer.coef.normal_(generator=torch.Generator().manual_seed(7))
    x = _points(64, widths[0], seed=1)  # reaches outside the grid range [-1, 1]
    _assert_jets_equal(model, x, _channels(widths[0]))


def test_kan_jet_at_knots_and_far_outside_grid():
    model = KAN([2, 4, 2], grid_size=4, spline_order=3, seed=2)
    knots = model.layers[0].knots[0]
    grid_pts = torch.cartesian_prod(knots, knots)  # every knot, including extended ones
    far = torch.tensor([[-5.0, 3.0], [7.0, -2.5], [1e-14, -1e-14]], dtype=DT)
    x = torch.cat([grid_pts, grid_pts + 1e-12, far])
    _assert_jets_equal(model, x, _channels(2))


@pytest.mark.parametrize("activation", ["tanh", "sin", "silu", "gelu"])
def test_mlp_jet_equals_nested_autograd(activation):
    model = MLP([3, 16, 16, 2], activation=activation, seed=3)
    _assert_jets_equal(model, _points(50, 3, seed=2), _channels(3))


def test_autograd_reference_equals_torch_func():
    """The reference engine itself against torch.func (reverse-over-reverse Hessian)."""
    model = MLP([2, 7, 7, 1], activation="gelu", seed=4)
    x = _points(20, 2, seed=5)
    w = _channels(2)
    ref = autograd_jet(model, x, second=w)

    def scalar(p):
        return model(p[None])[0, 0]

    grad = vmap(jacrev(scalar))(x)  # (N, d)
    hess = vmap(hessian(scalar))(x)  # (N, d, d)
    assert _rel(ref.grad[..., 0], grad) <= 1e-12
    assert _rel(ref.second[..., 0], torch.einsum("rab,Nab->Nr", w, hess)) <= 1e-12


@pytest.mark.parametrize("kind", ["kan", "mlp"])
def test_parameter_gradients_of_mixed_loss_agree(kind):
    d = 3
    if kind == "kan":
        model = KAN([d, 5, 2], grid_size=6, spline_order=3, seed=9)
    else:
        model = MLP([d, 12, 12, 2], activation="tanh", seed=9)
    x = _points(40, d, seed=3)
    w = _channels(d)

    def loss(jet):
        u = jet.value
        return ((jet.second[:, 0] + u**3).square().mean() + jet.grad[:, 1, 0].square().mean()
                + (jet.second[:, 2] * jet.second[:, 3]).mean() + jet.second[:, 1].sin().sum())

    params = list(model.parameters())
    g_jet = torch.autograd.grad(loss(model.jet(x, second=w)), params)
    g_ref = torch.autograd.grad(loss(autograd_jet(model, x, second=w)), params)
    for a, b in zip(g_jet, g_ref, strict=True):
        assert _rel(a, b) <= RTOL


def test_value_only_and_gradient_only_jets():
    model = KAN([2, 4, 1], grid_size=5, seed=1)
    x = _points(30, 2, seed=7)
    jet = model.jet(x)
    assert jet.second.shape == (30, 0, 1)
    torch.testing.assert_close(jet.value, model(x), rtol=0, atol=1e-14)
    assert _rel(jet.grad, autograd_jet(model, x).grad) <= RTOL


def test_engine_switch():
    model = MLP([2, 8, 1], seed=0)
    x = _points(10, 2, seed=0)
    w = _channels(2)
    a = compute_jet(model, x, w, engine="jet")
    b = compute_jet(model, x, w, engine="autograd")
    assert _rel(a.second, b.second) <= RTOL
    with pytest.raises(ValueError, match="engine"):
        compute_jet(model, x, w, engine="finite-differences")


@pytest.mark.parametrize("embedding", ["affine", "fourier", "periodic", "chain"])
@pytest.mark.parametrize("kind", ["kan", "mlp"])
def test_embeddings_in_jets(embedding, kind):
    d = 2
    if embedding == "affine":
        emb = AffineMap([0.0, -2.0], [1.0, 3.0])
    elif embedding == "fourier":
        emb = FourierFeatures(d, 3, sigma=0.7, keep_input=True, seed=2)
    elif embedding == "periodic":
        emb = PeriodicEmbedding(d, {0: 2.0}, harmonics=2)
    else:
        emb = Chain(AffineMap([0.0, -2.0], [1.0, 3.0]), PeriodicEmbedding(d, {1: 1.5}))
    width = [d, 4, 2]
    model = (KAN(width, grid_size=4, embedding=emb, seed=1) if kind == "kan"
             else MLP(width, activation="sin", embedding=emb, seed=1))
    _assert_jets_equal(model, _points(25, d, seed=4), _channels(d))


def test_periodic_embedding_is_exactly_periodic():
    model = KAN([2, 4, 1], grid_size=4, embedding=PeriodicEmbedding(2, {0: 2.0}), seed=0)
    x = _points(20, 2, seed=8)
    shifted = x + torch.tensor([2.0, 0.0], dtype=DT)
    a, b = model.jet(x, _channels(2)), model.jet(shifted, _channels(2))
    torch.testing.assert_close(a.value, b.value, rtol=0, atol=1e-13)
    torch.testing.assert_close(a.second, b.second, rtol=0, atol=1e-11)


def test_kan_layer_gradcheck():
    layer = KANLayer(3, 2, grid_size=4, spline_order=3, generator=torch.Generator().manual_seed(0))
    w = Channels(_channels(3)[:2])
    gen = torch.Generator().manual_seed(1)
    value = torch.rand(6, 3, generator=gen, dtype=DT, requires_grad=True)
    grad = torch.rand(6, 3, 3, generator=gen, dtype=DT, requires_grad=True)
    second = torch.rand(6, 2, 3, generator=gen, dtype=DT, requires_grad=True)
    from kanpde.core.jet import Jet

    def fn(v, g, s, coef, base):
        with torch.no_grad():
            layer.coef.copy_(coef)
            layer.base_weight.copy_(base)
        jet = layer.jet(Jet(v, g, s, w))
        return jet.value, jet.grad, jet.second

    def fn_params(v, g, s, coef, base):
        from kanpde.nn.kan_layer import spline_layer_jet
        quad = w.quad(g)
        return spline_layer_jet(v, g, s, quad, layer.knots, layer.k, layer.uniform,
                                layer.spline_scale[:, None, :].detach() * coef, base)

    coef = layer.coef.detach().clone().requires_grad_(True)
    base = layer.base_weight.detach().clone().requires_grad_(True)
    assert torch.autograd.gradcheck(fn_params, (value, grad, second, coef, base))
    out = fn(value, grad, second, coef.detach(), base.detach())
    assert all(o.isfinite().all() for o in out)


def test_multi_output_second_channels_are_per_output():
    model = MLP([2, 6, 3], activation="tanh", seed=5)
    x = _points(15, 2, seed=9)
    jet = model.jet(x, second=torch.eye(2, dtype=DT)[None])
    for j in range(3):
        def comp(p, j=j):
            return model(p[None])[0, j]
        lap = vmap(hessian(comp))(x).diagonal(dim1=1, dim2=2).sum(-1)
        assert _rel(jet.second[:, 0, j], lap) <= RTOL


# ------------------------------------------------------------ multiplication nodes ---------


def _mult_kan(seed=3):
    """[3, 4 (2 multiplication nodes), 3 (1), 2] with a symbolic edge on a product path."""
    model = KAN([3, 4, 3, 2], grid_size=5, spline_order=3, mult=[2, 1], seed=seed)
    with torch.no_grad():
        for layer in model.layers:
            layer.coef.normal_(generator=torch.Generator().manual_seed(seed))
    model.layers[0].set_symbolic(1, 3, "sin", (1.2, 0.3, 0.9, 0.1))
    model.layers[1].set_symbolic(2, 3, "exp", (0.5, -0.2, 0.7, 0.0))
    return model


def test_multiplication_nodes_shapes_and_values():
    model = _mult_kan()
    assert [(la.n_in, la.n_out) for la in model.layers] == [(3, 6), (4, 4), (3, 2)]
    x = _points(20, 3, seed=5)
    sub = model.layers[0](x)
    h = model.layer_inputs(x)[1]
    torch.testing.assert_close(h[:, :2], sub[:, :2], rtol=0, atol=0)
    torch.testing.assert_close(h[:, 2], sub[:, 2] * sub[:, 3], rtol=0, atol=0)
    torch.testing.assert_close(h[:, 3], sub[:, 4] * sub[:, 5], rtol=0, atol=0)
    with pytest.raises(ValueError, match="mult"):
        KAN([2, 2, 1], mult=[3])
    with pytest.raises(ValueError, match="mult"):
        KAN([2, 2, 1], mult=[1, 1])


@pytest.mark.parametrize("d", [2, 3])
def test_multiplication_node_jet_equals_nested_autograd(d):
    """Product rule in every channel (u_xy and the partial Laplacian included)."""
    model = KAN([d, 3, 1], grid_size=5, spline_order=3, mult=[2], seed=d)
    with torch.no_grad():
        for layer in model.layers:
            layer.coef.normal_(generator=torch.Generator().manual_seed(11))
    _assert_jets_equal(model, _points(48, d, seed=2), _channels(d))
    if d == 3:
        _assert_jets_equal(_mult_kan(), _points(48, 3, seed=4), _channels(3))


def test_multiplication_node_parameter_gradients_agree():
    model = _mult_kan(seed=8)
    x, w = _points(40, 3, seed=6), _channels(3)

    def loss(jet):
        return ((jet.second[:, 0] + jet.value**2).square().mean()
                + (jet.grad[:, 2] * jet.second[:, 2]).mean())

    params = [p for p in model.parameters() if p.requires_grad]
    g_jet = torch.autograd.grad(loss(model.jet(x, second=w)), params)
    g_ref = torch.autograd.grad(loss(autograd_jet(model, x, second=w)), params)
    for a, b in zip(g_jet, g_ref, strict=True):
        assert _rel(a, b) <= RTOL


def test_multiplication_nodes_round_trip_through_the_spec():
    from kanpde.nn.parts import trainable_parameters
    from kanpde.nn.spec import model_from_spec, model_spec

    model = _mult_kan()
    spec = model_spec(model)
    assert spec["mult"] == [2, 1]
    back = model_from_spec(spec, model.state_dict())
    x = _points(16, 3, seed=9)
    torch.testing.assert_close(back(x), model(x), rtol=0, atol=0)
    # subnode edges are counted: 3*6 + 4*4 + 3*2 edges, two of them symbolic (4 constants)
    per_spline = 5 + 3 + 2
    assert trainable_parameters(model) == (3 * 6 + 4 * 4 + 3 * 2 - 2) * per_spline + 2 * 4
    assert "mult" not in model_spec(KAN([2, 3, 1]))
