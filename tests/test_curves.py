"""Error against cost (kanpde.io.curves) and the matched-budget tables of compare."""

import math

import numpy as np
import pytest

from kanpde.io.compare_report import markdown, matched_budgets
from kanpde.io.curves import budgets, error_at, error_curve, pareto_front, time_to


def _history(times, errors, cpu=None):
    h = {"eval_step": np.arange(len(times)) * 10, "eval_time_s": np.asarray(times, float),
         "eval_l2_rel": np.asarray(errors, float)}
    if cpu is not None:
        h["eval_cpu_s"] = np.asarray(cpu, float)
    return h


def test_curve_is_the_running_minimum_and_skips_non_finite_errors():
    t, err = error_curve(_history([0, 1, 2, 3, 4], [1.0, 0.1, 0.5, math.nan, 0.01]))
    assert t.tolist() == [0, 1, 2, 4]
    assert err.tolist() == [1.0, 0.1, 0.1, 0.01]


def test_error_at_and_time_to_read_the_curve():
    curve = error_curve(_history([0, 1, 2, 4], [1.0, 1e-2, 5e-3, 1e-4]))
    assert math.isnan(error_at(curve, -1.0))
    assert error_at(curve, 0.5) == 1.0
    assert error_at(curve, 2.0) == 5e-3
    assert error_at(curve, 100.0) == 1e-4
    assert time_to(curve, 1e-2) == 1.0
    assert time_to(curve, 2e-4) == 4.0
    assert time_to(curve, 1e-6) is None


def test_cpu_clock_and_fallback_to_step_times():
    h = _history([0, 10, 20], [1.0, 0.5, 0.1], cpu=[0, 1, 2])
    assert error_curve(h, "cpu")[0].tolist() == [0, 1, 2]
    # an older run: no evaluation times, the step history's times at the evaluation steps
    old = {"eval_step": np.array([0, 2, 4]), "eval_l2_rel": np.array([1.0, 0.5, 0.2]),
           "step": np.arange(5), "time_s": np.array([0.1, 0.2, 0.3, 0.4, 0.5])}
    assert error_curve(old)[0].tolist() == [0.0, 0.3, 0.5]
    with pytest.raises(ValueError, match="clock"):
        error_curve(h, "gpu")


def test_pareto_front_keeps_only_undominated_points():
    pts = [(100, 1e-2), (50, 1e-1), (200, 1e-2), (300, 1e-4), (60, 1e-1), (10, math.nan)]
    assert pareto_front(pts) == [1, 0, 3]


def test_budgets_are_fractions_of_the_shortest_run():
    assert budgets([100.0, 40.0, math.nan]) == [2.5, 10.0, 40.0]
    assert budgets([math.nan, None]) == []


def test_matched_tables_compare_at_equal_time_not_equal_steps():
    # a fast model (MLP-like) and a slow model that ends better: at the shortest run's
    # time the fast one is ahead, at its end the slow one reaches levels the fast never does
    fast = {"summary": {"solver": "fast", "model": "mlp", "seed": 0, "n_params": 1000,
                        "l2_rel": 1e-2},
            "history": _history([0, 1, 2, 10], [1.0, 1e-1, 3e-2, 1e-2])}
    slow = {"summary": {"solver": "slow", "model": "kan", "seed": 0, "n_params": 300,
                        "l2_rel": 1e-4},
            "history": _history([0, 5, 20, 40], [1.0, 5e-1, 1e-3, 1e-4])}
    m = matched_budgets([fast, slow])
    assert m["wall"]["budgets"] == [10 / 16, 10 / 4, 10.0]
    at_end = {s: v["error_at"][-1]["median"] for s, v in m["wall"]["solvers"].items()}
    assert at_end == {"fast": 1e-2, "slow": 5e-1}
    assert m["wall"]["solvers"]["slow"]["time_to"]["0.001"] == 20.0
    assert m["wall"]["solvers"]["fast"]["time_to"]["0.001"] is None
    assert [p["solver"] for p in m["pareto"]] == ["slow"]
    text = markdown("p", [], m)
    assert "equal wall time" in text and "never" in text and "Pareto" in text
