"""Chunked evaluation over many points equals one evaluation, and chunk sizes follow the
memory budget."""

import numpy as np
import pytest
import torch

from kanpde import KAN, MLP, load_problem
from kanpde.core.chunking import (
    DEFAULT_BUDGET,
    DEFAULT_POINT_BYTES,
    ENV_BUDGET,
    MIN_CHUNK,
    map_chunks,
    memory_budget,
    point_bytes,
    points_per_chunk,
)
from kanpde.io.points import predict
from kanpde.training.metrics import Evaluator
from kanpde.training.points import residual_magnitude

DT = torch.float64
PROBLEM = "problems/poisson2d_sinsin.py"


def _points(n, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(n, 2, generator=gen, dtype=DT) * 2 - 1


def _close(a, b):
    assert float((a - b).abs().max()) <= 1e-13 * (1.0 + float(b.abs().max()))


@pytest.mark.parametrize("chunk", [1, 7, 100, 1000])
def test_map_chunks_equals_one_call(chunk):
    model = KAN([2, 5, 2], grid_size=6, seed=1)
    x = _points(257)
    with torch.no_grad():
        _close(map_chunks(model, x, chunk), model(x))

    def several(x):
        jet = model.jet(x, second=torch.eye(2, dtype=DT)[None])
        return {"u": jet.value, "parts": (jet.grad, jet.second)}

    with torch.no_grad():
        got, ref = map_chunks(several, x, chunk), several(x)
    _close(got["u"], ref["u"])
    for a, b in zip(got["parts"], ref["parts"], strict=True):
        _close(a, b)


def test_map_chunks_rejects_bad_chunks():
    with pytest.raises(ValueError, match="chunk"):
        map_chunks(lambda x: x, _points(3), 0)
    with pytest.raises(TypeError, match="concatenate"):
        map_chunks(lambda x: 1.0, _points(3), 1)


def test_chunk_size_follows_budget_and_model():
    kan = KAN([2, 32, 32, 1], grid_size=10)
    small = MLP([2, 8, 1])
    per_point = point_bytes(kan, dim=2, channels=1)
    assert per_point > point_bytes(kan, dim=0) > point_bytes(small, dim=0)
    assert points_per_chunk(kan, 2, 1, budget=2**30) == 2**30 // per_point
    assert points_per_chunk(kan, 2, 1, budget=1) == MIN_CHUNK
    assert points_per_chunk(None, budget=DEFAULT_BUDGET) == DEFAULT_BUDGET // DEFAULT_POINT_BYTES
    assert points_per_chunk(kan, itemsize=4) > points_per_chunk(kan, itemsize=8)


def test_budget_from_environment(monkeypatch):
    monkeypatch.delenv(ENV_BUDGET, raising=False)
    assert memory_budget() == DEFAULT_BUDGET
    monkeypatch.setenv(ENV_BUDGET, "64")
    assert memory_budget() == 64 * 2**20
    assert memory_budget(1000) == 1000
    monkeypatch.setenv(ENV_BUDGET, "lots")
    with pytest.raises(ValueError, match=ENV_BUDGET):
        memory_budget()
    with pytest.raises(ValueError, match="positive"):
        memory_budget(0)


def test_evaluator_chunked_equals_unchunked():
    problem = load_problem(PROBLEM)
    model = KAN([2, 6, 1], grid_size=5, seed=3)
    whole = Evaluator(problem, DT, torch.device("cpu"), chunk=10**9)
    parts = Evaluator(problem, DT, torch.device("cpu"), chunk=97)
    auto = Evaluator(problem, DT, torch.device("cpu"), memory_budget=1)  # MIN_CHUNK points
    assert whole.points.shape[0] > MIN_CHUNK
    _close(parts.predict(model), whole.predict(model))
    _close(auto.predict(model), whole.predict(model))
    a, b = parts(model), whole(model)
    for key in ("l2_rel", "max_abs_err", "mse", "h1_rel", "h1_mse"):
        assert a[key] == pytest.approx(b[key], rel=1e-12, abs=0.0)


def test_residual_magnitudes_chunked_equal_unchunked():
    problem = load_problem(PROBLEM)
    model = KAN([2, 6, 1], grid_size=5, seed=4)
    x = _points(1000, seed=5)

    def residuals(x):
        with torch.no_grad():
            return problem.residual_values(model, x)

    weights = {name: 2.0 for name in problem.residuals}
    ref = residual_magnitude(residuals, x, weights, chunk=10**9)
    _close(residual_magnitude(residuals, x, weights, chunk=33), ref)
    _close(residual_magnitude(residuals, x, weights), ref)


def test_predict_batches_equal_one_batch():
    model = KAN([2, 4, 3], grid_size=5, seed=6)
    pts = _points(600, seed=7).numpy()
    ref = predict(model, pts, batch_size=10**9)
    np.testing.assert_allclose(predict(model, pts, batch_size=64), ref, rtol=1e-13, atol=0)
    np.testing.assert_allclose(predict(model, pts), ref, rtol=1e-13, atol=0)
    assert predict(model, pts[:0]).shape == (0, 3)
