"""``kanpde bench second-order``: its runs are valid solvers, its equal-time comparison and
targets read the curves right, and the LM cost split measures what it says (small sizes)."""

import json
import math
from pathlib import Path

import pytest

from kanpde.cli.bench import second_order as bench
from kanpde.training.config import config_from_dict

ROOT = Path(__file__).resolve().parents[1]


def test_jobs_are_valid_solvers_with_equal_time_caps():
    jobs = bench.jobs("quick", [0, 1], ROOT)
    assert len(jobs) == 2 * (1 + 2 + len(bench.COMPARE) * 4)
    for job in jobs:
        cfg = config_from_dict({**job.config, "seed": job.seed}, source=job.label)
        if job.tags["part"] == "compare":
            caps = [st.max_time_s for st in cfg.stages[1:]]
            assert caps == [bench.BUDGETS["quick"]["stage_s"]] * 3
            assert {st.optimizer for st in cfg.stages[1:]} == {job.tags["optimizer"]}
    lm_kan = next(j for j in jobs if j.label == "kan-lm")
    assert [st.get("grid_extend") for st in lm_kan.config["stages"]] == [None, None, 10, 20]
    full = bench.jobs("full", [0], ROOT)
    assert config_from_dict(full[0].config).sampling.interior == 5000  # the solver file
    # fewer seeds for the (long) equal-time comparison than for the accuracy targets
    some = bench.jobs("full", [0, 1, 2], ROOT, compare_seeds=[0])
    assert {j.seed for j in some if j.tags["part"] != "compare"} == {0, 1, 2}
    assert {j.seed for j in some if j.tags["part"] == "compare"} == {0}
    assert len(some) == 3 * 3 + len(bench.COMPARE) * 4


def _curve(times, errs):
    return {"time_s": list(times), "l2_rel": list(errs), "mse": [e * e for e in errs]}


def test_equal_time_comparison_and_targets():
    c = _curve([0, 10, 20, 30], [1e-1, 1e-3, 1e-5, 1e-6])
    assert bench.error_at(c, 25) == 1e-5 and math.isnan(bench.error_at(c, -1))
    assert bench.time_to(c, 1e-9) == 20 and bench.time_to(c, 1e-20) is None
    recs = [{"problem": "heat1d", "family": "kan", "seed": 0, "part": "compare",
             "optimizer": "lm", "curve": c, "n_params": 450},
            {"problem": "heat1d", "family": "kan", "seed": 0, "part": "compare",
             "optimizer": "lbfgs", "curve": _curve([0, 10, 20], [1e-1, 1e-2, 1e-3])}]
    (row,) = bench.compare_rows(recs)
    assert row["time_s"] == 20 and row["l2_lm"] == 1e-5 and row["l2_lbfgs"] == 1e-3
    assert row["ratio_lbfgs_over_lm"] == pytest.approx(100.0)
    paper = bench._paper_rows([{"part": "paper", "seed": 0, "mse": 1e-12, "l2_rel": 1e-6,
                                "wall_time_s": 30, "cpu_time_s": 29, "curve": c}])
    assert paper[0]["time_to_target_s"] == 30 and paper[0]["met"]


def test_cost_split_and_report(tmp_path):
    split = bench.cost_split(ROOT, interior=60, boundary=16, grid=5, repeats=1)
    assert split["residuals"] == 76 and split["parameters"] == (2 * 10 + 10) * (5 + 3 + 2)
    assert split["jacobian_path"] in split["jacobian_paths"]
    for key in ("residual_s", "jacobian_s", "normal_equations_s", "solve_s"):
        assert split[key] > 0, key
    c = _curve([0, 1], [1e-2, 1e-4])
    recs = [{"problem": p, "family": f, "seed": 0, "part": "compare", "optimizer": o,
             "curve": c} for p in bench.COMPARE for f in ("kan", "mlp")
            for o in ("lm", "lbfgs")]
    doc = {"command": "kanpde bench second-order", "paper": [], "sinsin": [],
           "compare": bench.compare_rows(recs), "cost_split": split}
    text = bench.markdown(doc)
    assert "One LM iteration" in text and text.count("| heat1d |") == 2
    assert bench.figure(recs, tmp_path / "f.png").stat().st_size > 0
    json.dumps(split)
