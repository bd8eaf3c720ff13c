"""Errors that mean something for systems: per-field metrics, gauge fields, evaluation
regions, references matched to fields by name, problems without a solution, and compare
tables of finished runs only (float64)."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from kanpde import KAN, Dirichlet, Problem, load_problem
from kanpde.io.aggregate import aggregate, error_text, status_text
from kanpde.io.compare_report import markdown, split_finished
from kanpde.io.reference_files import load_reference, save_grid_reference
from kanpde.io.results import load_result, save_result
from kanpde.problem.exactcheck import check_data, check_exact, check_solution
from kanpde.problem.geometry import Box
from kanpde.problem.reference import GridData
from kanpde.problem.scope import ProblemError
from kanpde.training.config import config_from_dict
from kanpde.training.metrics import Evaluator
from kanpde.training.solve import solve

ROOT = Path(__file__).resolve().parents[1]
DT = torch.float64
CPU = torch.device("cpu")


def _problem(name: str, **kw) -> Problem:
    p = load_problem(ROOT / "problems" / f"{name}.py")
    return dataclasses.replace(p, eval_resolution=21, **kw)


class Perturbed(nn.Module):
    """A problem's exact solution plus ``shift_j + scale_j sin(3 x0 + x1)`` in field ``j``."""

    def __init__(self, problem: Problem, shift=None, scale=None):
        super().__init__()
        m = len(problem.fields)
        self.problem = problem
        self.shift = torch.tensor(shift or [0.0] * m, dtype=DT)
        self.scale = torch.tensor(scale or [0.0] * m, dtype=DT)

    def forward(self, x):
        bump = torch.sin(3 * x[:, :1] + x[:, 1:2])
        return self.problem.solution(x) + self.shift + self.scale * bump


def _tiny(steps: int = 2, kind: str = "kan") -> dict:
    return {"name": f"tiny_{kind}", "seed": 0, "dtype": "float64",
            "model": ({"kind": "kan", "widths": [4], "grid_size": 3} if kind == "kan"
                      else {"kind": "mlp", "widths": [8]}),
            "sampling": {"interior": 48, "boundary": 12},
            "stages": [{"optimizer": "adam", "steps": steps, "lr": 0.01}],
            "evaluation": {"every": 1}, "checkpoint": {"every": 0}}


# ------------------------------------------------------------------ per-field metrics -----

def test_single_field_aggregate_is_the_old_value_exactly():
    prob = _problem("poisson2d_sinsin")
    model = KAN([2, 4, 1], grid_size=3, seed=0).to(DT)
    ev = Evaluator(prob, DT, CPU)
    m = ev(model, h1=True)
    err = ev.predict(model) - ev.reference  # the definition before per-field metrics
    assert m["l2_rel"] == math.sqrt(float(err.square().sum()) / float(ev.reference.square().sum()))
    assert m["mse"] == float(err.square().mean())
    assert m["max_abs_err"] == float(err.abs().max())
    for k in ("l2_rel", "mse", "max_abs_err", "h1_rel", "h1_mse"):
        assert m[f"{k}/u"] == m[k]
    g = model.jet(ev.points).grad.detach()
    den = float(ev.reference.square().sum()) + float(ev.reference_grad.square().sum())
    h1 = math.sqrt((float(err.square().sum()) + float((g - ev.reference_grad).square().sum()))
                   / den)
    assert m["h1_rel"] == pytest.approx(h1, rel=1e-13)


def test_system_errors_per_field_and_their_mean():
    prob = _problem("kovasznay")
    model = Perturbed(prob, scale=[1e-3, 2e-2, 0.5])
    ev = Evaluator(prob, DT, CPU)
    m = ev(model, h1=True)
    pred, ref = ev.predict(model), ev.reference
    rel = []
    for j, f in enumerate(prob.fields):
        e = pred[:, j] - ref[:, j]
        rel.append(float(e.norm() / ref[:, j].norm()))
        assert m[f"l2_rel/{f}"] == pytest.approx(rel[-1], rel=1e-14)
        assert m[f"max_abs_err/{f}"] == pytest.approx(float(e.abs().max()), rel=1e-14)
        assert m[f"mse/{f}"] == pytest.approx(float(e.square().mean()), rel=1e-14)
        assert math.isfinite(m[f"h1_rel/{f}"])
    assert m["l2_rel"] == pytest.approx(sum(rel) / 3, rel=1e-14)  # mean, not a joint norm
    assert m["mse"] == pytest.approx(sum(m[f"mse/{f}"] for f in prob.fields) / 3, rel=1e-14)
    assert m["max_abs_err"] == max(m[f"max_abs_err/{f}"] for f in prob.fields)


def test_three_field_problem_with_a_pinned_pressure_measures_it_up_to_a_constant():
    prob = _problem("stokes2d")  # pressure pinned by one observation, declared a gauge field
    assert prob.gauge == ("p",)
    model = Perturbed(prob, shift=[0.0, 0.0, 5.0])  # the right pressure, another constant
    m = Evaluator(prob, DT, CPU)(model, h1=True)
    assert m["l2_rel/p"] < 1e-14 and m["max_abs_err/p"] < 1e-13 and m["h1_rel/p"] < 1e-14
    assert m["l2_rel/u"] == 0.0 and m["l2_rel/v"] == 0.0 and m["l2_rel"] < 1e-14
    plain = Evaluator(dataclasses.replace(prob, gauge=()), DT, CPU)(model, h1=False)
    assert plain["max_abs_err/p"] == pytest.approx(5.0, rel=1e-12) and plain["l2_rel/p"] > 1
    # a shape error in p is still an error: removing the mean does not hide it
    bumped = Evaluator(prob, DT, CPU)(Perturbed(prob, scale=[0.0, 0.0, 0.1]), h1=False)
    assert bumped["l2_rel/p"] > 1e-2


def test_check_accepts_a_gauge_field_pinned_to_another_constant():
    prob = _problem("stokes2d")
    pin = dataclasses.replace(prob.conditions[2], values=3.0)  # exact p(0, 0) is 1
    moved = dataclasses.replace(prob, conditions=[*prob.conditions[:2], pin])
    terms = check_exact(moved, 16, torch.Generator().manual_seed(0), engines=("jet",))
    assert all(t.ok for t in terms), [t.problem for t in terms]
    assert "up to a constant" in terms[-1].name
    strict = check_exact(dataclasses.replace(moved, gauge=()), 16,
                         torch.Generator().manual_seed(0), engines=("jet",))
    assert not strict[-1].ok


def test_region_restricts_the_metrics_and_says_so():
    prob = _problem("poisson2d_sinsin", region=lambda x: x[:, 0] < 0.5)

    class OffOutside(nn.Module):
        def forward(self, x):
            return prob.solution(x) + (x[:, :1] >= 0.5).to(x.dtype)

    ev = Evaluator(prob, DT, CPU)
    m = ev(OffOutside(), h1=False)
    assert m["max_abs_err"] == 0.0 and m["l2_rel"] == 0.0
    inside = int((ev.points[:, 0] < 0.5).sum())
    assert ev.region_note == (f"errors on the problem's region: {inside} of "
                              f"{ev.points.shape[0]} evaluation points")
    rec = {**_record(0, "ok", 0.1), "region": ev.region_note}
    assert f"({ev.region_note})" in markdown("p", aggregate([rec]))
    assert "[on its region]" in error_text(rec)
    # a solution that is not finite outside the region does not stop the metrics
    nan_out = dataclasses.replace(prob, exact=lambda x: torch.where(
        x[:, 0] < 0.5, torch.sin(x[:, 0]), torch.full_like(x[:, 0], math.nan)))
    assert check_solution(nan_out) == ""
    nowhere = dataclasses.replace(prob, region=lambda x: x[:, 0] > 5.0)
    assert check_solution(nowhere) == f"the region keeps none of the {ev.points.shape[0]} " \
                                      "evaluation points"
    with pytest.raises(ProblemError, match="region keeps none of the"):
        Evaluator(nowhere, DT, CPU)
    # a region must say in or out: numbers are refused, not read as "non-zero is in"
    weights = dataclasses.replace(prob, region=lambda x: x[:, 0] * 2.0)
    with pytest.raises(ProblemError, match="expected a bool tensor"):
        weights.region_mask(ev.points)


def test_kovasznay_reports_per_field_errors_in_summary_and_compare_table():
    prob = _problem("kovasznay")
    r = solve(prob, config_from_dict(_tiny(2)), progress=False)
    s = json.loads(json.dumps(r.summary, sort_keys=True))  # as summary.json holds it
    assert s["field_names"] == ["u", "v", "p"] and "gauge" not in s
    per = [s["fields"][f]["l2_rel"] for f in ("u", "v", "p")]
    assert s["l2_rel"] == pytest.approx(sum(per) / 3, rel=1e-12)
    assert set(s["fields"]["p"]) == {"l2_rel", "max_abs_err", "mse", "h1_rel", "h1_mse"}
    assert f"(u {per[0]:.3e}, v {per[1]:.3e}, p {per[2]:.3e})" in error_text(s)
    assert any(k == "eval_l2_rel/p" for k in r.history)
    table = markdown(prob.name, aggregate([{**s, "solver": "tiny"}]))
    assert "| solver | u: relative L2 error | v: relative L2 error | p: relative L2 error |" \
        in table and "l2_rel (mean over fields)" in table
    assert f"| tiny | {per[0]:.3e} | {per[1]:.3e} | {per[2]:.3e} |" in table


def test_stokes_compare_writes_per_field_errors(tmp_path, capsys):
    from kanpde.cli.main import main

    solver = tmp_path / "tiny.toml"
    solver.write_text('name = "tiny"\ndtype = "float64"\n[model]\nkind = "mlp"\nwidths = [4]\n'
                      '[sampling]\ninterior = 32\nboundary = 8\n'
                      '[[stages]]\noptimizer = "adam"\nsteps = 2\n')
    out = tmp_path / "cmp"
    assert main(["compare", str(ROOT / "problems" / "stokes2d.py"), "--solvers", str(solver),
                 "--seeds", "0", "--out", str(out), "--quiet"]) == 0
    s = json.loads((out / "tiny-seed0" / "summary.json").read_text())
    assert s["gauge"] == ["p"] and set(s["fields"]) == {"u", "v", "p"}
    table = (out / "compare.md").read_text()
    assert "| solver | u: max abs error | v: max abs error | p: max abs error |" in table
    assert "Gauge fields (p) are measured up to a constant" in table
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("stokes2d"))
    assert "l2_rel" in line and "(u " in line


# ------------------------------------------------------------------ references by name ----

def _uv_problem(reference) -> Problem:
    box = Box([-1.0, -1.0], [1.0, 1.0], coord_names=("x", "y"))
    return Problem(name="uv", coords=("x", "y"), fields=("u", "v"), domain=box,
                   residuals={"a": lambda s: s.u.d("x") - 1.0, "b": lambda s: s.v.d("y") - 1.0},
                   conditions=[Dirichlet(field="u", value=lambda s: s.x),
                               Dirichlet(field="v", value=lambda s: s.y)],
                   reference=reference, eval_resolution=21)


def test_reference_with_reordered_fields_gives_the_same_errors(tmp_path):
    axes = [np.linspace(-1, 1, 9), np.linspace(-1, 1, 7)]
    gx, gy = np.meshgrid(*axes, indexing="ij")
    in_order = GridData(axes, np.stack([gx, gy], -1), ("u", "v"), method="linear")
    path = save_grid_reference(tmp_path / "vu.h5", axes, np.stack([gy, gx], -1), "v,u")
    reordered = load_reference(path, method="linear")
    assert reordered.fields == ("v", "u")

    class NearlyXY(nn.Module):  # u = x, v = y, learned almost exactly
        def forward(self, x):
            return x + 1e-3 * torch.sin(x)

    a = Evaluator(_uv_problem(in_order), DT, CPU)(NearlyXY(), h1=False)
    b = Evaluator(_uv_problem(reordered), DT, CPU)(NearlyXY(), h1=False)
    assert a == b and a["l2_rel"] < 2e-3 and a["max_abs_err"] < 1e-3


def test_reference_missing_a_field_is_refused_naming_what_it_holds():
    axes = [np.linspace(-1, 1, 5), np.linspace(-1, 1, 5)]
    ref = GridData(axes, np.zeros((5, 5, 2)), ("u", "w"), method="linear")
    with pytest.raises(ProblemError, match=r"^the reference has no field\(s\) v; it holds u, w$"):
        _uv_problem(ref)


# ------------------------------------------------------------------ without a solution ----

def test_problem_without_a_solution_solves_and_reports_diagnostics(tmp_path):
    prob = _problem("poisson2d_sinsin", exact=None)
    assert not prob.has_solution
    r = solve(prob, config_from_dict(_tiny(3)), progress=False)
    s = r.summary
    assert s["status"] == "ok" and s["steps"] == 3 and s["reference"] == "none"
    assert s["l2_rel"] is None and s["mse"] is None and s["max_abs_err"] is None
    assert "fields" not in s and not any(k.startswith("eval_") for k in r.history)
    v = s["validation"]
    assert math.isfinite(v["loss"]) and v["residual_rms"]["pde"] > 0
    assert set(v["condition_rms"]) == {"dirichlet0"} and v["field_rms"]["u"] >= 0
    # the validation loss is the PINN loss with the problem's weights: its terms' squares
    total = v["residual_rms"]["pde"] ** 2 + v["condition_rms"]["dirichlet0"] ** 2
    assert v["loss"] == pytest.approx(total, rel=1e-12)
    assert error_text(s) == f"no reference | validation loss {v['loss']:.3e}"
    save_result(r, tmp_path / "run")
    back = load_result(tmp_path / "run")
    assert back.reference is None and back.summary["reference"] == "none"


def test_check_data_of_a_problem_without_a_solution():
    prob = _problem("poisson2d_sinsin", exact=None)
    terms = check_data(prob, 32, torch.Generator().manual_seed(0))
    assert [t.name for t in terms][0] == "residual 'pde'" and all(t.ok for t in terms)
    assert terms[0].max_abs > 0  # the forcing's size
    bad = dataclasses.replace(prob, residuals={
        "pde": lambda s: s.u.laplacian() + torch.log(s.x)})  # NaN where x < 0
    fault = check_data(bad, 32, torch.Generator().manual_seed(0))[0].problem
    assert fault.startswith("residual 'pde': not finite for its data (the zero field) at ")


# ------------------------------------------------------------------ compare statistics ----

def _record(seed, status, l2, stages=()):
    return {"solver": "kan", "model": "kan", "n_params": 10, "seed": seed, "status": status,
            "l2_rel": l2, "max_abs_err": l2, "mse": l2 * l2, "wall_time_s": 1.0,
            "cpu_time_s": 1.0, "steps": 5, "stages": list(stages),
            "run_dir": f"runs/c/kan-seed{seed}"}


def test_compare_statistics_hold_finished_runs_only():
    recs = [_record(0, "ok", 0.019), _record(1, "interrupted", 1.5)]
    finished, unfinished = split_finished(recs)
    rows = aggregate(finished)
    assert rows[0]["l2_rel"] == {"median": 0.019, "min": 0.019, "max": 0.019}
    assert rows[0]["status"] == ["ok"]
    table = markdown("p", rows, None, unfinished, "problems/p.py")
    assert "## Unfinished runs (not in the statistics above)" in table
    assert "`kanpde solve problems/p.py --resume runs/c/kan-seed1` |" in table
    assert "1.500e+00" not in table and "interrupted, ok" not in table


def test_stage_stopped_by_its_time_cap_shows_in_the_status():
    capped = {"index": 3, "stopped": "max_time", "steps_run": 1131, "steps_planned": 2000}
    rec = _record(0, "ok", 0.1, [{"index": 2, "stopped": "budget"}, capped])
    assert status_text(rec) == "ok (stage 3 stopped by its time cap at 1131/2000)"
    assert "ok (stage 3 stopped by its time cap at 1131/2000)" in markdown("p", aggregate([rec]))
    assert status_text({**rec, "status": "max_time"}) == "max_time"  # the run's own cap


def test_a_run_that_ends_on_a_stall_says_so_in_its_status():
    stalled = {"index": 1, "stopped": "stalled"}
    rec = _record(0, "ok", 0.1, [{"index": 0, "stopped": "budget"}, stalled])
    assert status_text(rec) == "ok (last stage 1 stalled: not converged)"
    assert "ok (last stage 1 stalled: not converged)" in markdown("p", aggregate([rec]))
    # a stall followed by more training is not how the run ended
    assert status_text(_record(0, "ok", 0.1, [stalled, {"index": 2, "stopped": "budget"}])
                       ) == "ok"


def test_stored_error_field_of_a_gauge_field_is_up_to_a_constant(tmp_path):
    import meshio

    from kanpde.io.mesh_export import export_fields
    from kanpde.io.results import Result

    x = np.linspace(0.0, 1.0, 11)[:, None]
    ref = np.hstack([x, x**2])
    pred = ref + np.array([0.0, 4.0]) + 1e-3 * np.hstack([x, x])
    r = Result(summary={"gauge": ["p"]}, points=x, prediction=pred, reference=ref,
               coords=("x",), fields=("u", "p"))
    np.testing.assert_allclose(r.error[:, 0], 1e-3 * x[:, 0], rtol=0, atol=1e-15)
    np.testing.assert_allclose(r.error[:, 1], 1e-3 * (x[:, 0] - 0.5), rtol=0, atol=1e-14)
    mesh = meshio.read(export_fields(r, None, tmp_path)[0])
    np.testing.assert_array_equal(mesh.point_data["p_error"], r.error[:, 1])
