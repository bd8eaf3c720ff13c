"""``kanpde bench distributed``: data-parallel training throughput for 1..N processes.

For each model (a KAN and an MLP of the chosen sizes), scaling mode and process count ``P``,
``P`` fresh processes are spawned on this machine; they join one process group (gloo on CPU,
NCCL on CUDA, one GPU per process) exactly as ``torchrun`` would make them, build the
trainer of :func:`kanpde.training.solve.solve` for the problem, and time full Adam training steps::

    loss and gradients on this process's shard -> all-reduce -> Adam update

after ``warmup`` untimed ones. Every timed step starts and ends at a barrier, so its time is
that of the slowest process. Reported per configuration: the median (and min, max) step time,
the throughput ``points / median step time`` (interior plus condition points of the global
set, per training step), and the parallel efficiency ``throughput(P) / (P throughput(1))``:

* strong scaling: the global point set is fixed (``--points``), each process gets ``1/P``;
* weak scaling: every process owns ``--points`` points, the global set grows with ``P``.

On a machine whose cores are shared (or fewer than the processes times ``--threads``), the
processes compete for the same cores and the efficiency says so; it is reported as measured.

Run ``kanpde bench distributed --help``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from kanpde.cli.bench import common
from kanpde.training.distributed import AddressInUse

DEFAULT_PROBLEM = "problems/poisson2d_sinsin.py"
MODELS = ("kan", "mlp")
SCALINGS = ("strong", "weak")


def solver_dict(model: str, spec: dict[str, Any], scaling: str) -> dict[str, Any]:
    """The solver config of one measurement (one Adam stage; nothing else due)."""
    m = ({"kind": "kan", "widths": spec["kan_widths"], "grid_size": spec["grid_size"]}
         if model == "kan" else {"kind": "mlp", "widths": spec["mlp_widths"]})
    return {"name": f"bench-{model}", "engine": spec["engine"], "dtype": spec["dtype"],
            "device": spec["device"], "seed": 0, "model": m,
            "sampling": {"interior": spec["points"], "boundary": spec["boundary"],
                         "method": "sobol"},
            "stages": [{"optimizer": "adam", "steps": 10**6, "lr": 1e-3}],
            "evaluation": {"every": 0}, "checkpoint": {"every": 0},
            "distributed": {"scaling": scaling, "timeout_s": spec["timeout_s"]}}


def _measure(spec: dict[str, Any]) -> dict[str, Any]:
    """Time training steps in this process (a member of the group when ``world > 1``)."""
    import torch.distributed as dist

    from kanpde.problem import load_problem
    from kanpde.training.config import config_from_dict
    from kanpde.training.trainer import Trainer

    problem = load_problem(spec["problem"])
    config = config_from_dict(solver_dict(spec["model"], spec, spec["scaling"]))
    tr = Trainer(problem, config, progress=False)
    tr._new_optimizer()
    device_sync = common.synchronizer(tr.device)

    def sync() -> None:
        device_sync()
        if dist.is_initialized():
            dist.barrier()

    def step() -> None:
        tr._evaluate()
        tr.state.optimizer.step()

    stats = common.time_calls(step, repeats=spec["repeats"], warmup=spec["warmup"],
                              synchronize=sync)
    counts = tr.state.points.counts()
    return {"points": sum(counts.values()), "interior": counts["interior"],
            "points_per_process": sum(tr.sharding.local(tr.state.points).counts().values()),
            "n_params": sum(p.numel() for p in tr.state.model.parameters()),
            "device": str(tr.device), **stats.as_dict()}


def _worker(rank: int, world: int, port: int, spec: dict[str, Any], out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(spec["threads"])
    try:
        result = _measure(spec)
        if rank == 0:
            Path(out, "result.json").write_text(json.dumps(result))
    except AddressInUse:  # spawn_local starts the processes again on another port
        raise
    except BaseException:
        Path(out, f"rank{rank}.err").write_text(traceback.format_exc())
        raise
    finally:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def launch(spec: dict[str, Any], world: int, timeout: float) -> dict[str, Any]:
    """Run :func:`_measure` in ``world`` spawned processes; rank 0's result or ``error``."""
    from kanpde.training.distributed import spawn_local

    with tempfile.TemporaryDirectory(prefix="kanpde-bench-dist-") as tmp:
        codes, hung = spawn_local(_worker, world, (spec, tmp), timeout)
        result = Path(tmp, "result.json")
        if not hung and result.is_file() and all(c == 0 for c in codes):
            return json.loads(result.read_text())
        errs = [f.read_text().strip().splitlines()[-1] for f in sorted(Path(tmp).glob("*.err"))]
        reason = f"timed out after {timeout:.0f} s" if hung else (
            errs[0] if errs else f"exit codes {codes}")
        return {"error": reason}


def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    """All measurements; a JSON-ready document."""
    base = {"problem": args.problem, "engine": args.engine, "dtype": args.dtype,
            "device": args.device, "kan_widths": args.kan_widths, "grid_size": args.grid_size,
            "mlp_widths": args.mlp_widths, "boundary": args.boundary,
            "repeats": args.repeats, "warmup": args.warmup, "threads": args.threads,
            "timeout_s": args.timeout}
    records = []
    for model in args.models:
        for scaling in args.scalings:
            one = None
            for world in args.procs:
                points = args.points
                if scaling == "strong" and world > 1 and points < world:
                    continue
                # weak scaling: the [sampling] counts are per process
                spec = {**base, "model": model, "scaling": scaling, "points": points}
                res = launch(spec, world, args.timeout)
                rec = {"model": model, "scaling": scaling, "processes": world, **res}
                if "error" not in res:
                    rec["points_per_s"] = res["points"] / res["time_median_s"]
                    if world == 1:
                        one = rec["points_per_s"]
                    rec["efficiency"] = (None if one is None
                                         else rec["points_per_s"] / (world * one))
                records.append(rec)
                print(_row_text(rec), file=sys.stderr, flush=True)
    return {"benchmark": "distributed", "command": "kanpde bench distributed "
            + " ".join(sys.argv[3:] if sys.argv[1:3] == ["bench", "distributed"]
                       else sys.argv[1:]),
            "machine": common.machine_info(), "settings": base, "records": records}


def _row(rec: dict[str, Any]) -> list[str]:
    if "error" in rec:
        return [rec["model"], rec["scaling"], str(rec["processes"]), "-", "-", "-", "-",
                f"error: {rec['error']}"]
    eff = rec.get("efficiency")
    return [rec["model"], rec["scaling"], str(rec["processes"]), str(rec["points"]),
            f"{common.fmt_ms(rec['time_median_s'])} ({common.fmt_ms(rec['time_min_s'])}–"
            f"{common.fmt_ms(rec['time_max_s'])})", f"{rec['points_per_s']:.3g}",
            "-" if eff is None else f"{eff:.2f}", ""]


HEADERS = ["model", "scaling", "processes", "points", "step ms median (min–max)",
           "points/s", "efficiency", "note"]


def _row_text(rec: dict[str, Any]) -> str:
    return " | ".join(_row(rec))


def render(doc: dict[str, Any], markdown: bool = False) -> str:
    """The results table (plain text or markdown, with the command and the machine)."""
    rows = [_row(r) for r in doc["records"]]
    table = (common.markdown_table if markdown else common.text_table)(HEADERS, rows)
    m, s = doc["machine"], doc["settings"]
    lines = [
        "# Data-parallel training throughput" if markdown else "data-parallel throughput",
        "",
        f"Command: `{doc['command']}`",
        "",
        f"Machine: {m['cpu_model']}, {m['usable_cpus']} usable CPUs, load average "
        f"{', '.join(f'{x:.2f}' for x in (m['load_average'] or []))}, torch "
        f"{m['torch_version']}, CUDA device: {m['cuda_device'] or 'none'}.",
        "",
        f"Problem {s['problem']}; {s['dtype']}, engine {s['engine']}, device {s['device']}, "
        f"{s['threads']} torch thread(s) per process; KAN widths {s['kan_widths']} "
        f"(G = {s['grid_size']}), MLP widths {s['mlp_widths']}; one Adam step (loss, "
        f"gradients, all-reduce, update) timed {s['repeats']} times after {s['warmup']} "
        "warm-up steps, barrier to barrier. points/s = global points (interior + "
        "conditions) / median step time; efficiency = points/s(P) / (P points/s(1)).",
        "",
        table,
        "",
        f"Efficiency is as measured. When processes x threads exceed the {m['usable_cpus']} "
        "usable CPUs, or other work keeps them busy (see the load average), the processes "
        "compete for the same cores and an efficiency below 1 reflects the machine, not only "
        "the communication; each step also pays two barriers and one all-reduce of all "
        "gradients, which matters most for small models and few points.",
    ]
    return "\n".join(lines) + "\n"


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--problem", default=DEFAULT_PROBLEM, help="problem file")
    parser.add_argument("--procs", type=int, nargs="+", default=[1, 2],
                        help="process counts (default: 1 2); on CUDA one GPU per process")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--scalings", nargs="+", choices=SCALINGS, default=list(SCALINGS))
    parser.add_argument("--points", type=int, default=4096,
                        help="interior points: total (strong) or per process (weak)")
    parser.add_argument("--boundary", type=int, default=256,
                        help="points per condition: total (strong) or per process (weak)")
    parser.add_argument("--kan-widths", type=int, nargs="+", default=[16],
                        help="KAN hidden widths")
    parser.add_argument("--grid-size", type=int, default=10)
    parser.add_argument("--mlp-widths", type=int, nargs="+", default=[64, 64],
                        help="MLP hidden widths")
    parser.add_argument("--engine", default="jet")
    parser.add_argument("--dtype", default="float64", choices=("float64", "float32"))
    parser.add_argument("--device", default="cpu", help="cpu or cuda (one GPU per process)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=600.0,
                        help="seconds allowed per configuration")
    parser.add_argument("--json", metavar="PATH", help="write results as JSON")
    parser.add_argument("--markdown", metavar="PATH", help="write the table as markdown")


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``distributed`` subcommand on an argparse ``subparsers`` object."""
    return common.add_subcommand(subparsers, "distributed",
                                 "data-parallel training throughput for 1..N processes",
                                 __doc__, _add_arguments, run)


def _check(args: argparse.Namespace) -> str | None:
    if any(p < 1 for p in args.procs):
        return f"--procs must be positive, got {args.procs}"
    if args.points < 1 or args.boundary < 1:
        return "--points and --boundary must be >= 1"
    if args.repeats < 1 or args.warmup < 0 or args.threads < 1:
        return "--repeats and --threads must be >= 1 and --warmup >= 0"
    if args.device.startswith("cuda"):
        if not torch.cuda.is_available():
            return "--device cuda requested but CUDA is not available"
        if max(args.procs) > torch.cuda.device_count():
            return (f"--procs {max(args.procs)}: only {torch.cuda.device_count()} CUDA "
                    "device(s), one per process")
    if not Path(args.problem).is_file():
        return f"--problem {args.problem}: not found"
    return None


def run(args: argparse.Namespace) -> int:
    """Run the benchmark for parsed arguments; print the table. Returns the exit status."""
    problem = _check(args)
    if problem:
        print(f"kanpde bench distributed: {problem}", file=sys.stderr)
        return 2
    doc = run_benchmark(args)
    print(render(doc))
    for path, text in ((args.json, json.dumps(doc, indent=1)),
                       (args.markdown, render(doc, markdown=True))):
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(text)
    return 1 if any("error" in r for r in doc["records"]) else 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m kanpde.cli.bench.distributed [options]``."""
    return common.standalone_main("distributed", __doc__, _add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
