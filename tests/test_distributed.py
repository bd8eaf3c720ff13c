"""Data-parallel training with 2 CPU processes (gloo) against single-process runs.

Two processes are started with the ``spawn`` method (each with a free port and a deadline, so
a hang fails the test instead of blocking). They find each other through the ``torchrun``
environment variables, run a list of jobs, and rank 0 stores the results; the independent
reference is the same solve in one process (this one), in float64.
"""

from __future__ import annotations

import json
import os
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from kanpde.problem import load_problem
from kanpde.problem.sampling import unit_cube
from kanpde.training import checkpoint as ckpt
from kanpde.training.config import ConfigError, config_from_dict, load_config
from kanpde.training.distributed import (
    AddressInUse,
    Context,
    detect,
    point_seed,
    spawn_local,
    tensor_hash,
)
from kanpde.training.points import sample_points
from kanpde.training.solve import solve

ROOT = Path(__file__).resolve().parents[1]
PROBLEM = ROOT / "problems" / "poisson2d_sinsin.py"
DEADLINE_S = 150.0
RTOL = 1e-10


def _config(name: str, **sections: dict) -> dict:
    d = load_config(ROOT / "solvers" / f"{name}.toml").to_dict()
    for key, value in sections.items():
        if isinstance(value, dict):
            d[key] = {**d.get(key, {}), **value}
        else:
            d[key] = value
    d["distributed"] = {**d.get("distributed", {}), "timeout_s": 60.0}
    return d


KAN = _config("kan_tiny")
MLP = _config("mlp_tiny")
# grad-norm weights, RAD resampling and a grid update: every decision must match
ADAPTIVE = _config(
    "kan_tiny",
    sampling={"interior": 120, "boundary": 20, "adaptive": "rad", "adaptive_every": 7,
              "adaptive_candidates": 300, "resample_every": 0},
    weighting={"kind": "gradnorm", "update_every": 4},
    stages=[{"optimizer": "adam", "steps": 12, "lr": 0.02},
            {"optimizer": "adam", "steps": 6, "lr": 0.01, "grid_update": True},
            {"optimizer": "lbfgs", "steps": 5}])
WEAK = _config("mlp_tiny", sampling={"interior": 60, "boundary": 10},
               stages=[{"optimizer": "adam", "steps": 6, "lr": 0.01},
                       {"optimizer": "lbfgs", "steps": 3}],
               distributed={"scaling": "weak"})
WEAK_RAR = _config("mlp_tiny", sampling={"interior": 40, "boundary": 6, "adaptive": "rar-d",
                                         "adaptive_every": 3, "adaptive_candidates": 50,
                                         "rar_add": 5, "resample_every": 4},
                   stages=[{"optimizer": "adam", "steps": 7, "lr": 0.01}],
                   distributed={"scaling": "weak"})
FEW = _config("mlp_tiny", sampling={"boundary": 1})
BENCH = {"problem": str(PROBLEM), "points": 64, "boundary": 8, "kan_widths": [4],
         "grid_size": 3, "mlp_widths": [8], "engine": "jet", "dtype": "float64",
         "device": "cpu", "threads": 1, "repeats": 2, "warmup": 1, "timeout_s": 60.0}


# ------------------------------------------------------------------ process side -------


class _Stop:
    """Callback at ``step``: Ctrl-C (every rank at the same step), or rank ``rank`` dies
    (``action="die"``) or nudges its parameters (``action="drift"``)."""

    def __init__(self, step: int, action: str = "interrupt", rank: int = 1):
        self.step, self.action, self.rank = step, action, rank

    def __call__(self, info: dict) -> None:
        if info["global_step"] != self.step:
            return
        if self.action == "interrupt":
            raise KeyboardInterrupt
        if detect().rank == self.rank:
            if self.action == "die":
                os._exit(3)
            with torch.no_grad():
                next(iter(info["model"].parameters())).add_(1e-12)


def _job(job: dict, problem) -> dict[str, Any]:
    if "bench" in job:
        from kanpde.cli.bench.distributed import _measure

        return _measure(job["bench"])
    cb = None if job.get("stop") is None else _Stop(job["stop"], job.get("action",
                                                                       "interrupt"))
    try:
        res = solve(problem, job["config"], checkpoint_dir=job.get("out"),
                    resume=job.get("resume"), progress=False, callback=cb)
    except AddressInUse:  # spawn_local starts the processes again on another port
        raise
    except Exception as err:  # reported to the test, which decides
        return {"error": f"{type(err).__name__}: {err}"}
    return {"state": {k: np.array(v) for k, v in res.model_state.items()},
            "final_loss": res.summary["final_loss"], "loss": list(res.history["loss"]),
            "l2_rel": res.summary["l2_rel"], "weights": res.summary["weights"],
            "status": res.summary["status"], "distributed": res.summary.get("distributed")}


def _worker(rank: int, world: int, port: int, jobs: list[dict], out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    try:
        problem = load_problem(PROBLEM)
        results = {job["name"]: _job(job, problem) for job in jobs}
        torch.save(results, Path(out) / f"rank{rank}.pt")
    except AddressInUse:
        raise
    except BaseException:
        (Path(out) / f"rank{rank}.err").write_text(traceback.format_exc())
        raise
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def _launch(jobs: list[dict], out: Path, world: int = 2) -> tuple[list[int | None], dict]:
    """Run ``jobs`` in ``world`` spawned processes; exit codes and every rank's results."""
    out.mkdir(parents=True, exist_ok=True)
    codes, hung = spawn_local(_worker, world, (jobs, str(out)), DEADLINE_S)
    errors = "\n".join(f.read_text() for f in sorted(out.glob("rank*.err")))
    assert not hung, f"processes still running after {DEADLINE_S} s\n{errors}"
    results = {r: torch.load(out / f"rank{r}.pt", weights_only=False)
               for r in range(world) if (out / f"rank{r}.pt").is_file()}
    return codes, {"results": results, "errors": errors}


# ------------------------------------------------------------------ references ---------


def _single(config: dict, **kw) -> dict[str, Any]:
    res = solve(load_problem(PROBLEM), config, progress=False, **kw)
    return {"state": dict(res.model_state), "final_loss": res.summary["final_loss"],
            "loss": list(res.history["loss"]), "weights": res.summary["weights"],
            "l2_rel": res.summary["l2_rel"]}


def _assert_states_close(got: dict, ref: dict) -> None:
    """Model states equal to ``RTOL`` relative (per tensor); non-tensor entries equal."""
    assert got.keys() == ref.keys()
    for k, v in ref.items():
        if isinstance(v, dict):
            assert got[k] == v, k
            continue
        v = np.asarray(v)
        scale = max(float(np.abs(v).max()), 1e-300)
        assert np.abs(np.asarray(got[k]) - v).max() <= RTOL * scale, k


def _assert_close(got: dict, ref: dict) -> None:
    assert "error" not in got, got.get("error")
    _assert_states_close(got["state"], ref["state"])
    assert got["final_loss"] == pytest.approx(ref["final_loss"], rel=RTOL)
    assert np.allclose(got["loss"], ref["loss"], rtol=RTOL, atol=0.0)
    assert got["l2_rel"] == pytest.approx(ref["l2_rel"], rel=1e-9)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Any]:
    """One 2-process launch for all jobs (one interpreter start-up instead of many)."""
    tmp = tmp_path_factory.mktemp("dist")
    torch.set_num_threads(1)
    # a 1-process run stopped during Adam, to be finished by 2 processes
    _single(KAN, checkpoint_dir=tmp / "r12", callback=_Stop(15))
    jobs = [
        {"name": "kan", "config": KAN},
        {"name": "mlp", "config": MLP},
        {"name": "adaptive", "config": ADAPTIVE},
        {"name": "r21", "config": KAN, "out": str(tmp / "r21"), "stop": 35},  # in L-BFGS
        {"name": "r12", "config": KAN, "resume": str(tmp / "r12")},
        {"name": "weak", "config": WEAK, "out": str(tmp / "weak")},
        {"name": "weak_rar", "config": WEAK_RAR, "out": str(tmp / "weak_rar")},
        {"name": "bench", "bench": {**BENCH, "model": "mlp", "scaling": "weak"}},
        {"name": "drift", "config": MLP, "stop": 3, "action": "drift"},
        {"name": "few", "config": FEW},
    ]
    codes, out = _launch(jobs, tmp / "launch")
    assert codes == [0, 0], out["errors"]
    return {"tmp": tmp, **out["results"][0], "rank1": out["results"][1]}


@pytest.fixture(scope="module")
def kan_ref() -> dict[str, Any]:
    return _single(KAN)


def test_kan_matches_one_process(runs, kan_ref):
    _assert_close(runs["kan"], kan_ref)
    assert runs["kan"]["distributed"] == {"world_size": 2, "scaling": "strong"}
    for k, v in runs["kan"]["state"].items():  # the ranks hold identical parameters
        assert np.array_equal(runs["rank1"]["kan"]["state"][k], v) if not isinstance(
            v, dict) else runs["rank1"]["kan"]["state"][k] == v


def test_mlp_matches_one_process(runs):
    _assert_close(runs["mlp"], _single(MLP))


def test_gradnorm_rad_and_grid_update_match_one_process(runs):
    ref = _single(ADAPTIVE)
    _assert_close(runs["adaptive"], ref)
    assert runs["adaptive"]["weights"] == pytest.approx(ref["weights"], rel=1e-9)
    assert ref["weights"]["dirichlet0"] != 1.0  # grad-norm did move the weight


def test_checkpoint_from_two_processes_resumes_in_one(runs, kan_ref):
    assert runs["r21"]["status"] == "interrupted"
    data = ckpt.load_checkpoint(runs["tmp"] / "r21")
    assert data["global_step"] == 35 and data["distributed"]["world_size"] == 2
    _assert_close(_single(KAN, resume=runs["tmp"] / "r21"), kan_ref)


def test_checkpoint_from_one_process_resumes_in_two(runs, kan_ref):
    _assert_close(runs["r12"], kan_ref)


def test_weak_scaling_points_and_training(runs):
    """Each rank draws its own stream; the run equals one process on the joined set."""
    from kanpde.training.trainer import Trainer

    problem = load_problem(PROBLEM)
    cfg = config_from_dict(WEAK)
    dtype = torch.float64
    parts = [sample_points(problem, cfg.sampling,
                           torch.Generator().manual_seed(point_seed(cfg.seed, r)), dtype,
                           torch.device("cpu")) for r in range(2)]
    data = ckpt.load_checkpoint(runs["tmp"] / "weak")
    assert torch.equal(data["points"]["interior"],
                       torch.cat([parts[0].interior, parts[1].interior]))
    assert not torch.equal(parts[0].interior, parts[1].interior)
    # reference: one process trained on the joined point sets
    tr = Trainer(problem, cfg, progress=False)
    tr.state.points = type(tr.state.points).from_state(data["points"], dtype,
                                                       torch.device("cpu"))
    tr.run()
    got = runs["weak"]
    assert "error" not in got, got["error"]
    _assert_states_close(got["state"], {k: v.numpy() if isinstance(v, torch.Tensor) else v
                                        for k, v in tr.state.model.state_dict().items()})
    # a different number of processes cannot continue a weak-scaling run
    with pytest.raises(ConfigError, match="written by 2 process"):
        solve(problem, WEAK, resume=runs["tmp"] / "weak", progress=False)


def test_ranks_that_drift_apart_stop_at_the_stage_boundary(runs):
    for rank in (runs, runs["rank1"]):
        err = rank["drift"]["error"]
        assert "end of stage 0: parameters differ across ranks (ranks [1]" in err, err


def test_weak_scaling_resampling_and_rar_d_keep_per_process_sets(runs):
    """Draws at 0 and 4, RAR-D adds at 3 and 6: 2 x (40 + 5) interior, 2 x 6 condition."""
    assert "error" not in runs["weak_rar"], runs["weak_rar"]["error"]
    data = ckpt.load_checkpoint(runs["tmp"] / "weak_rar")
    pts = data["points"]
    assert pts["interior"].shape[0] == 2 * 45 and pts["conditions"][0]["points"].shape[0] == 12
    gens = data["distributed"]["generators"]
    assert len(gens) == 2 and not torch.equal(gens[0], gens[1])
    for k, v in runs["weak_rar"]["state"].items():
        assert np.array_equal(runs["rank1"]["weak_rar"]["state"][k], v) if not isinstance(
            v, dict) else runs["rank1"]["weak_rar"]["state"][k] == v


def test_more_processes_than_points_is_a_clear_error(runs):
    assert "2 processes but only 1" in runs["few"]["error"]
    assert runs["rank1"]["few"]["error"] == runs["few"]["error"]


def test_a_dying_rank_stops_rank_zero_with_the_checkpoint_intact(tmp_path):
    cfg = _config("mlp_tiny", checkpoint={"every": 5})
    jobs = [{"name": "die", "config": cfg, "out": str(tmp_path / "run"), "stop": 12,
             "action": "die"}]
    codes, out = _launch(jobs, tmp_path / "launch")
    assert codes[1] == 3
    err = out["results"][0]["die"]["error"]
    assert err.startswith("DistributedError: rank 0 of 2:"), err
    assert "intact" in err
    data = ckpt.load_checkpoint(tmp_path / "run")
    assert data["global_step"] == 10
    ref = _single(config_from_dict(cfg), checkpoint_dir=tmp_path / "ref",
                  callback=_Stop(10))
    _assert_states_close({k: v.numpy() if isinstance(v, torch.Tensor) else v
                          for k, v in data["model"].items()}, ref["state"])


def test_bench_distributed_reports_throughput_and_efficiency(runs, tmp_path):
    from argparse import Namespace

    from kanpde.cli.bench import distributed as bench

    two = runs["bench"]  # the 2-process measurement, made in the launch above
    assert (two["points"], two["points_per_process"]) == (2 * 72, 72)  # weak: 72 each
    args = Namespace(**{k: v for k, v in BENCH.items() if k not in ("points", "timeout_s")},
                     points=64, procs=[1], models=["mlp"], scalings=["weak"],
                     timeout=DEADLINE_S, json=str(tmp_path / "d.json"),
                     markdown=str(tmp_path / "d.md"))
    assert bench.run(args) == 0
    doc = json.loads((tmp_path / "d.json").read_text())
    (one,) = doc["records"]
    assert (one["processes"], one["points"], one["efficiency"]) == (1, 64 + 8, 1.0)
    assert one["points_per_s"] == pytest.approx(72 / one["time_median_s"])
    doc["records"].append({"model": "mlp", "scaling": "weak", "processes": 2, **two,
                           "points_per_s": 144 / two["time_median_s"], "efficiency": 0.5})
    table = bench.render(doc, markdown=True)
    assert "| mlp | weak | 2 | 144 |" in table and doc["command"] in table


# ------------------------------------------------------------------ in-process ---------


def test_detect_reads_torchrun_then_slurm():
    assert detect({}).world_size == 1
    t = detect({"RANK": "1", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "MASTER_ADDR": "h",
                "MASTER_PORT": "1"})
    assert (t.rank, t.world_size, t.local_rank, t.master_addr) == (1, 4, 1, "h")
    slurm = {"SLURM_PROCID": "3", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1"}
    assert detect(slurm).world_size == 1  # no rendezvous address: one process
    s = detect({**slurm, "MASTER_ADDR": "h", "MASTER_PORT": "1"})
    assert (s.rank, s.world_size, s.local_rank) == (3, 8, 1)


def test_shards_cover_the_set_in_order():
    x = unit_cube(11, 2, "uniform", torch.Generator().manual_seed(0))
    parts = [Context(r, 3).shard(x) for r in range(3)]
    assert [p.shape[0] for p in parts] == [4, 4, 3]
    assert torch.equal(torch.cat(parts), x)
    assert tensor_hash([x]) == tensor_hash([x.clone()]) != tensor_hash([x + 1e-16])


def test_distributed_section_is_validated():
    assert config_from_dict({}).distributed.scaling == "strong"
    for bad, msg in (({"scaling": "medium"}, "distributed.scaling: must be one of"),
                     ({"timeout_s": 0}, "distributed.timeout_s: must be > 0"),
                     ({"backend": "nccl"}, "distributed.backend: 'nccl' needs a CUDA"),
                     ({"ranks": 2}, "distributed.ranks: unknown key")):
        with pytest.raises(ConfigError, match=msg):
            config_from_dict({"distributed": bad}, source="s.toml")


def test_a_taken_port_is_retried_on_another(tmp_path):
    """The launch is repeated on a new port, the waiting rank stopped (not awaited)."""
    from spawned import clashing

    codes, hung = spawn_local(clashing, 2, (str(tmp_path), 10 * DEADLINE_S), DEADLINE_S)
    assert codes == [0, 0] and not hung
    first = (tmp_path / "tried").read_text()
    used = {(tmp_path / f"rank{r}").read_text() for r in range(2)}
    assert len(used) == 1 and first not in used  # both ranks moved to a new port
