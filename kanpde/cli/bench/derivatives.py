"""``kanpde bench derivatives``: the cost of one PINN training step with second derivatives.

One step of a Poisson loss on ``N`` points uniform in ``[-1, 1]^d``::

    L = mean((lap u - f)^2) + mean(u^2),    f = prod_a sin(pi x_a),    L.backward()

(value and the Laplacian channel ``W = I``, then first-order backward to every parameter),
for these variants side by side:

* ``kan-jet``: :class:`kanpde.KAN`, derivatives carried forward by ``model.jet``;
* ``kan-autograd``: the same KAN through nested autograd (:func:`kanpde.autograd_jet`);
* ``efficient-kan-autograd``: :class:`~kanpde.cli.bench.efficient_kan.EfficientKAN`, the
  dense-basis design users have today, through nested autograd;
* ``mlp-jet``, ``mlp-autograd``: a tanh MLP with about the KAN's parameter count at the
  smallest grid size (run once; it has no grid).

The KAN variants run for every grid size of the sweep (default ``G = 5, 10, 20, 50, 100``);
the efficient-kan baseline, whose cost grows with ``G``, up to ``--baseline-max-grid``
(default 50). Workers use one thread by default (``--threads``), so that ratios measured side
by side in one run stay meaningful on a shared machine; the load average is recorded at the
start and end of the run and of every worker. The report checks the targets of
:data:`TARGETS`: time ratios against the efficient-kan layer, jets never slower than nested
autograd through the same KAN, and peak memory against the efficient-kan layer.

Each (variant, G) runs in a fresh Python process (:func:`kanpde.cli.bench.common.run_worker`):
build model and points, one tiny step on 16 points, then ``warmup`` + ``repeats`` full steps.
Memory is the **peak RSS increase** over that warmed-up state (``ru_maxrss`` after minus
before; on CUDA, ``torch.cuda.max_memory_allocated`` minus the allocated bytes before). One
more step runs under ``torch.profiler`` for the allocator peak (live bytes) and an op
breakdown. Minor page faults per step are counted (fresh ``mmap`` pages are zeroed by the
kernel on first touch: the cost shows up in whatever op first writes the memory).

Run ``python -m kanpde.cli.bench.derivatives --help`` or ``kanpde bench derivatives --help``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from kanpde.cli.bench import common
from kanpde.cli.bench.efficient_kan import EfficientKAN
from kanpde.core.dtypes import DTYPES

KAN_VARIANTS = ("kan-jet", "kan-autograd", "efficient-kan-autograd")
MLP_VARIANTS = ("mlp-jet", "mlp-autograd")
VARIANTS = KAN_VARIANTS + MLP_VARIANTS
WORKER = "kanpde.cli.bench.derivatives:measure"
#: (numerator, quantity, grid size or None for every G, least ratio numerator / kan-jet)
TARGETS = (
    ("efficient-kan-autograd", "time_median", 10, 40.0),
    ("efficient-kan-autograd", "time_median", 50, 100.0),
    ("kan-autograd", "time_median", None, 1.0),
    ("efficient-kan-autograd", "peak_memory", None, 5.0),
)


def kan_param_count(widths: Sequence[int], grid_size: int, spline_order: int) -> int:
    """Parameters of a KAN (either design): ``G + k + 2`` per edge (coefficients, 2 scales)."""
    edges = sum(a * b for a, b in zip(widths[:-1], widths[1:], strict=True))
    return edges * (grid_size + spline_order + 2)


def mlp_param_count(widths: Sequence[int]) -> int:
    """Weights and biases of a fully connected network."""
    return sum(a * b + b for a, b in zip(widths[:-1], widths[1:], strict=True))


def matching_mlp_widths(target: int, dim: int, n_out: int, n_hidden: int) -> list[int]:
    """``[dim, h, ..., h, n_out]`` with ``n_hidden`` layers, ``h`` chosen so the parameter
    count is closest to ``target``."""
    if n_hidden < 1:
        return [dim, n_out]
    best, h = None, 1
    while True:
        widths = [dim, *[h] * n_hidden, n_out]
        gap = abs(mlp_param_count(widths) - target)
        if best is not None and gap > best[0]:
            return best[1]
        best = (gap, widths) if best is None or gap < best[0] else best
        h += 1


def build_model(variant: str, spec: dict[str, Any]) -> nn.Module:
    """The model of ``variant`` from a worker spec (see :func:`measure`)."""
    dtype, device, seed = DTYPES[spec["dtype"]], spec["device"], spec["seed"]
    if variant in ("kan-jet", "kan-autograd"):
        from kanpde import KAN

        return KAN(spec["widths"], grid_size=spec["grid_size"],
                   spline_order=spec["spline_order"], seed=seed, dtype=dtype, device=device)
    if variant == "efficient-kan-autograd":
        return EfficientKAN(spec["widths"], grid_size=spec["grid_size"],
                            spline_order=spec["spline_order"], seed=seed, dtype=dtype,
                            device=device)
    if variant in MLP_VARIANTS:
        from kanpde import MLP

        return MLP(spec["mlp_widths"], activation="tanh", seed=seed, dtype=dtype, device=device)
    raise ValueError(f"unknown variant {variant!r}; choose from {VARIANTS}")


def source(x: Tensor) -> Tensor:
    """``(N, 1)`` right-hand side ``f = prod_a sin(pi x_a)`` at ``(N, d)`` points."""
    return torch.sin(torch.pi * x).prod(dim=1, keepdim=True)


def training_step(model: nn.Module, x: Tensor, channels: Tensor, engine: str,
                  f: Tensor | None = None) -> Tensor:
    """One step: ``mean((S u - f)^2) + mean(u^2)``, backward to all parameters.

    Args:
        model: maps ``(N, d)`` to ``(N, m)``.
        x: ``(N, d)`` points.
        channels: ``(R, d, d)`` second-order channel matrices (``eye(d)[None]``: Laplacian).
        engine: ``"jet"`` or ``"autograd"``.
        f: ``(N, 1)`` right-hand side (default :func:`source`).

    Returns:
        The detached loss.
    """
    from kanpde.core.engines import compute_jet

    f = source(x) if f is None else f
    model.zero_grad(set_to_none=True)
    jet = compute_jet(model, x, second=channels, engine=engine)
    loss = (jet.second - f[:, None]).square().mean() + jet.value.square().mean()
    loss.backward()
    return loss.detach()


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    """Worker body (runs in a fresh process): time and memory of one variant.

    Args:
        spec: ``variant``, ``grid_size`` (``None`` for MLPs), ``spline_order``, ``widths``,
            ``mlp_widths``, ``points``, ``repeats``, ``warmup``, ``threads`` (``None``: torch's
            default), ``device``, ``dtype``, ``seed``, ``profile`` (bool), ``top_ops``.

    Returns:
        A record: the spec's identifying fields, ``n_params``, timing (see
        :meth:`~kanpde.cli.bench.common.TimingStats.as_dict`), ``peak_memory_bytes`` and
        ``peak_memory_method``, ``minor_faults_per_step``, ``loss`` and, when profiled,
        ``allocator_peak_bytes``, ``total_self_s``, ``alloc_fill_s``, ``top_ops``.
    """
    if spec.get("threads"):
        torch.set_num_threads(int(spec["threads"]))
    load_start = common.machine_info()["load_average"]
    variant, device = spec["variant"], torch.device(spec["device"])
    dtype = DTYPES[spec["dtype"]]
    engine = "jet" if variant.endswith("-jet") else "autograd"
    model = build_model(variant, spec)
    dim = spec["widths"][0]
    gen = torch.Generator().manual_seed(spec["seed"])
    x = (2 * torch.rand(spec["points"], dim, generator=gen, dtype=dtype) - 1).to(device)
    channels = torch.eye(dim, dtype=dtype, device=device)[None]  # (1, d, d): Laplacian
    f = source(x)  # (N, 1)
    sync = common.synchronizer(device)
    losses: list[Tensor] = []

    def step() -> None:
        losses.append(training_step(model, x, channels, engine, f))

    training_step(model, x[:16], channels, engine)  # tiny warm-up: libraries, kernels
    sync()
    m = common.measure_steps(step, device, repeats=spec["repeats"], warmup=spec["warmup"])
    timing, peak, method, before, after = (m.timing, m.peak_bytes, m.peak_method, m.before,
                                           m.after)
    n_steps = spec["repeats"] + spec["warmup"]
    record = {
        "variant": variant, "engine": engine,
        "grid_size": spec["grid_size"] if variant in KAN_VARIANTS else None,
        "spline_order": spec["spline_order"] if variant in KAN_VARIANTS else None,
        "widths": spec["mlp_widths"] if variant in MLP_VARIANTS else spec["widths"],
        "n_params": sum(p.numel() for p in model.parameters()),
        "points": spec["points"], "device": str(device), "dtype": spec["dtype"],
        "threads": torch.get_num_threads(),
        **timing.as_dict(),
        "peak_memory_bytes": int(peak), "peak_memory_method": method,
        "minor_faults_per_step": (after.minor_faults - before.minor_faults) / n_steps,
        "cpu_s_per_step": (after.cpu_s - before.cpu_s) / n_steps,
        "cpu_per_wall": (after.cpu_s - before.cpu_s) / (after.wall_s - before.wall_s),
        "loss": float(losses[-1]),
        "load_average": [load_start, common.machine_info()["load_average"]],
    }
    if spec.get("profile", True):
        record.update(common.profile_call(step, device=device, top=spec.get("top_ops", 15)))
    return record


def _ratio(num: dict | None, den: dict | None, key: str) -> float | None:
    if not num or not den or num.get(key) is None or not den.get(key):
        return None
    return num[key] / den[key]


def ratios(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per grid size: ``efficient-kan-autograd / kan-jet`` and ``kan-autograd / kan-jet``
    of median and min time, CPU time per step, peak memory and allocator peak; then
    ``mlp-autograd / mlp-jet``."""
    ok = [r for r in records if "error" not in r]
    by_key = {(r["variant"], r["grid_size"]): r for r in ok}
    keys = {"time_median": "time_median_s", "time_min": "time_min_s", "cpu": "cpu_s_per_step",
            "peak_memory": "peak_memory_bytes", "allocator_peak": "allocator_peak_bytes"}
    pairs = [(g, num, den) for g in sorted({r["grid_size"] for r in ok if r["grid_size"]})
             for num, den in (("efficient-kan-autograd", "kan-jet"),
                              ("kan-autograd", "kan-jet"))]
    pairs.append((None, "mlp-autograd", "mlp-jet"))
    out = []
    for g, num, den in pairs:
        a, b = by_key.get((num, g)), by_key.get((den, g))
        if a and b:
            out.append({"grid_size": g, "numerator": num, "denominator": den,
                        **{name: _ratio(a, b, key) for name, key in keys.items()}})
    return out


def targets(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every target of :data:`TARGETS` with the measured ratio and whether it is met.

    Peak memory compares the allocator peaks of the profiled step when both records have
    them, else the peak RSS increases.

    Returns:
        One row per (target, grid size) with ``numerator``, ``quantity``, ``grid_size``,
        ``goal`` (least ratio numerator / kan-jet), ``ratio`` (``None`` if not measured) and
        ``met`` (``None`` if not measured).
    """
    by_key = {(r["variant"], r["grid_size"]): r for r in records if "error" not in r}
    keys = {"time_median": "time_median_s", "peak_memory": "peak_memory_bytes"}
    sizes = sorted({g for v, g in by_key if v == "kan-jet" and g is not None})
    rows = []
    for numerator, quantity, grid, goal in TARGETS:
        for g in [grid] if grid is not None else sizes:
            if grid is None and (numerator, g) not in by_key:
                continue
            num, den = by_key.get((numerator, g)), by_key.get(("kan-jet", g))
            key = keys[quantity]
            if quantity == "peak_memory" and all(
                    r and r.get("allocator_peak_bytes") for r in (num, den)):
                key = "allocator_peak_bytes"  # live bytes of the step: no RSS reuse artefacts
            ratio = _ratio(num, den, key)
            if ratio is None and num and den and den.get(key) == 0:
                ratio = math.inf  # kan-jet raised no peak at all: any bound is met
            rows.append({"numerator": numerator, "quantity": quantity, "grid_size": g,
                         "goal": goal, "ratio": ratio,
                         "met": None if ratio is None else ratio >= goal})
    return rows


def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    """Run every requested (variant, G) in its own worker; return the JSON document."""
    widths = list(args.widths)
    grid_sizes = list(args.grid_sizes)
    if args.mlp_widths:
        mlp_widths = list(args.mlp_widths)
    else:
        target = kan_param_count(widths, min(grid_sizes), args.spline_order)
        mlp_widths = matching_mlp_widths(target, widths[0], widths[-1], len(widths) - 2)
    base = {"spline_order": args.spline_order, "widths": widths, "mlp_widths": mlp_widths,
            "points": args.points, "repeats": args.repeats, "warmup": args.warmup,
            "threads": args.threads, "device": args.device, "dtype": args.dtype,
            "seed": args.seed, "profile": not args.no_profile, "top_ops": 15}
    specs = [{**base, "variant": v, "grid_size": g}
             for g in grid_sizes for v in KAN_VARIANTS if v in args.variants
             and (v != "efficient-kan-autograd" or g <= args.baseline_max_grid)]
    specs += [{**base, "variant": v, "grid_size": None}
              for v in MLP_VARIANTS if v in args.variants]
    machine = common.machine_info()
    print(f"load average (1, 5, 15 min): {machine['load_average']}", file=sys.stderr)
    if args.device == "cpu":
        machine["first_touch"] = common.first_touch_cost()

    def one(item: tuple[int, dict[str, Any]]) -> dict[str, Any]:
        i, spec = item
        label = f"{spec['variant']} G={spec['grid_size'] or '-'}"
        print(f"[{i}/{len(specs)}] {label} ...", file=sys.stderr, flush=True)
        try:
            return common.run_worker(WORKER, spec, timeout=args.timeout)
        except common.WorkerError as err:
            return {"variant": spec["variant"], "grid_size": spec["grid_size"],
                    "error": str(err)}

    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        records = list(pool.map(one, enumerate(specs, 1)))
    machine["load_average_end"] = common.machine_info()["load_average"]
    config = {k: v for k, v in base.items() if k not in ("top_ops",)}
    config["grid_sizes"] = grid_sizes
    config["baseline_max_grid"] = args.baseline_max_grid
    config["jobs"] = args.jobs
    return {"benchmark": "derivatives", "machine": machine, "config": config,
            "records": records, "ratios": ratios(records), "targets": targets(records)}


def _header(doc: dict[str, Any]) -> list[str]:
    cfg, m = doc["config"], doc["machine"]
    threads = next((r["threads"] for r in doc["records"] if "threads" in r), cfg["threads"])
    mem = ("torch.cuda.max_memory_allocated increase" if cfg["device"] == "cuda"
           else "peak RSS increase (ru_maxrss after the steps minus before, fresh process)")
    lines = [
        "Derivative cost: one step of mean((lap u - f)^2) + mean(u^2), f = prod sin(pi x), "
        "backward to all parameters",
        f"N = {cfg['points']} points in [-1,1]^{cfg['widths'][0]}, {cfg['dtype']}, "
        f"{cfg['device']}, {threads} threads; k = {cfg['spline_order']}; "
        f"KAN {cfg['widths']}; MLP {cfg['mlp_widths']} tanh",
        f"machine: {m['cpu_model']}, {m['usable_cpus']} cpus, torch {m['torch_version']}, "
        f"load average {m['load_average'][0]:.2f} -> {m['load_average_end'][0]:.2f}"
        if m.get("load_average") else f"machine: {m['cpu_model']}",
        f"time: median [min-max] over {cfg['repeats']} steps after {cfg['warmup']} warm-up; "
        f"peak mem: {mem}",
        "alloc peak: torch.profiler, peak of live allocator bytes during one extra step; "
        "faults: minor page faults per step (x 4 KiB = memory first touched); "
        "cpu: user + system seconds of the worker per step (all threads; robust to other "
        "load with --threads 1); cpu/wall: cores kept busy",
    ]
    load = (m.get("load_average") or [0.0])[0]
    if max(load, (m.get("load_average_end") or [0.0])[0]) > (m.get("usable_cpus") or 1) + 1:
        lines.append("WARNING: the machine was busy (load average above cores + 1): "
                     "times are unreliable")
    if cfg.get("jobs", 1) > 1:
        lines.append(f"WARNING: {cfg['jobs']} workers ran at once: times are not comparable")
    if "first_touch" in m:
        ft = m["first_touch"]
        lines.append(f"first touch on this machine: {ft['s_per_fault'] * 1e6:.2f} us per "
                     f"4 KiB page fault (fill of fresh memory {ft['fresh_fill_s'] * 1e3:.0f} ms"
                     f" vs {ft['warm_fill_s'] * 1e3:.0f} ms warm for "
                     f"{ft['bytes'] / common.MIB:.0f} MiB)")
    return lines


def tables(doc: dict[str, Any]) -> tuple[list[str], list[list[str]], list[str], list[list[str]]]:
    """Headers and rows of the results table and the ratio table."""
    s_fault = doc["machine"].get("first_touch", {}).get("s_per_fault")
    head = ["variant", "G", "params", "time/step ms [min-max]", "cpu ms/step", "cpu/wall",
            "peak mem MiB", "alloc peak MiB", "faults/step", "est. fault ms", "alloc+fill %"]
    rows = []
    for r in doc["records"]:
        g = "-" if r.get("grid_size") is None else str(r["grid_size"])
        if "error" in r:
            rows.append([r["variant"], g, "-", f"failed: {r['error'][:60]}", *["-"] * 7])
            continue
        faults = r["minor_faults_per_step"]
        share = (f"{100 * r['alloc_fill_s'] / r['total_self_s']:.0f}"
                 if r.get("total_self_s") else "-")
        time = (f"{common.fmt_ms(r['time_median_s'])} [{common.fmt_ms(r['time_min_s'])}-"
                f"{common.fmt_ms(r['time_max_s'])}]")
        rows.append([r["variant"], g, str(r["n_params"]), time,
                     common.fmt_ms(r.get("cpu_s_per_step")),
                     f"{r['cpu_per_wall']:.2f}" if "cpu_per_wall" in r else "-",
                     common.fmt_mib(r["peak_memory_bytes"]),
                     common.fmt_mib(r.get("allocator_peak_bytes")), f"{faults:.0f}",
                     common.fmt_ms(faults * s_fault) if s_fault else "-", share])
    rhead = ["ratio", "G", "time (median)", "time (min)", "cpu", "peak mem", "alloc peak"]
    rrows = [[f"{q['numerator']} / {q['denominator']}",
              "-" if q["grid_size"] is None else str(q["grid_size"]),
              *(common.fmt_ratio(q.get(k)) for k in ("time_median", "time_min", "cpu",
                                                     "peak_memory", "allocator_peak"))]
             for q in doc["ratios"]]
    return head, rows, rhead, rrows


def target_table(doc: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Headers and rows of the targets table (see :func:`targets`)."""
    head = ["target", "G", "measured", "goal", "met"]
    what = {"time_median": "time", "peak_memory": "peak mem"}
    rows = [[f"{what[t['quantity']]}: {t['numerator']} / kan-jet", str(t["grid_size"]),
             common.fmt_ratio(t["ratio"]), f">= {t['goal']:g}x",
             "-" if t["met"] is None else ("yes" if t["met"] else "NO")]
            for t in doc.get("targets", [])]
    return head, rows


def _short(op: str) -> str:
    return op.replace("autograd::engine::evaluate_function: ", "bw:").removeprefix("aten::")


def breakdown(doc: dict[str, Any], top: int = 8) -> list[str]:
    """Per record, the ``top`` ops by self time (from the profiled step)."""
    lines = []
    for r in doc["records"]:
        if not r.get("top_ops"):
            continue
        ops = ", ".join(f"{_short(o['name'])} {100 * o['share']:.0f}%"
                        for o in r["top_ops"][:top])
        lines.append(f"{r['variant']} G={r['grid_size'] or '-'} "
                     f"({r['total_self_s'] * 1e3:.0f} ms profiled): {ops}")
    return lines


def render(doc: dict[str, Any], *, markdown: bool = False, top_ops: int = 8) -> str:
    """The report as plain text or markdown."""
    head, rows, rhead, rrows = tables(doc)
    table = common.markdown_table if markdown else common.text_table
    header = _header(doc)
    parts = ["\n".join(f"{'- ' if markdown else ''}{h}" for h in header), table(head, rows),
             table(rhead, rrows)]
    thead, trows = target_table(doc)
    if trows:
        parts.append(table(thead, trows))
    if top_ops:
        title = "Self time by op in the profiled step:"
        lines = breakdown(doc, top_ops)
        parts.append("\n".join([title, *[f"{'- ' if markdown else '  '}{ln}"
                                         for ln in lines]]))
    return "\n\n".join(parts) + "\n"


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--points", type=int, default=8192, help="collocation points N")
    parser.add_argument("--grid-sizes", type=int, nargs="+", default=[5, 10, 20, 50, 100],
                        metavar="G")
    parser.add_argument("--baseline-max-grid", type=int, default=50, metavar="G",
                        help="largest G for the efficient-kan baseline (its time and memory "
                             "grow with G)")
    parser.add_argument("--spline-order", type=int, default=3, metavar="K")
    parser.add_argument("--widths", type=int, nargs="+", default=[2, 32, 32, 1],
                        help="KAN widths [d, hidden..., m]")
    parser.add_argument("--mlp-widths", type=int, nargs="+", default=None,
                        help="MLP widths (default: same depth, params matched to the KAN at "
                             "the smallest G)")
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--repeats", type=int, default=5, help="timed steps (median reported)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed full-size steps first")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch.set_num_threads in each worker (default 1; 0: torch's "
                             "default)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--dtype", choices=tuple(DTYPES), default="float64")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=1,
                        help="workers run at once (>1 distorts timings; memory stays valid)")
    parser.add_argument("--timeout", type=float, default=3600.0,
                        help="seconds per worker process")
    parser.add_argument("--no-profile", action="store_true",
                        help="skip the extra profiled step (allocator peak, op breakdown)")
    parser.add_argument("--top-ops", type=int, default=8,
                        help="ops per variant in the printed self-time breakdown (0: none)")
    parser.add_argument("--json", metavar="PATH", default=None, help="write results as JSON")
    parser.add_argument("--markdown", metavar="PATH", default=None,
                        help="write the tables as markdown")


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``derivatives`` subcommand on an argparse ``subparsers`` object."""
    help_text = ("cost of a training step with second derivatives: KAN jet vs nested autograd "
                 "vs efficient-kan vs MLP")
    return common.add_subcommand(subparsers, "derivatives", help_text, __doc__, _add_arguments,
                                 run)


def _check(args: argparse.Namespace) -> str | None:
    if args.points < 16:
        return f"--points must be >= 16, got {args.points}"
    if args.repeats < 1 or args.warmup < 0:
        return "--repeats must be >= 1 and --warmup >= 0"
    if any(g < 1 for g in args.grid_sizes):
        return f"--grid-sizes must be positive, got {args.grid_sizes}"
    if len(args.widths) < 3:
        return f"--widths needs at least one hidden layer, got {args.widths}"
    if args.device == "cuda" and not torch.cuda.is_available():
        return "--device cuda requested but CUDA is not available"
    return None


def run(args: argparse.Namespace) -> int:
    """Run the benchmark for parsed arguments; print the table. Returns the exit status."""
    problem = _check(args)
    if problem:
        print(f"kanpde bench derivatives: {problem}", file=sys.stderr)
        return 2
    for path in (args.json, args.markdown):  # their folders, before minutes of measuring
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    doc = run_benchmark(args)
    print(render(doc, top_ops=args.top_ops))
    if args.json:
        Path(args.json).write_text(json.dumps(doc, indent=1))
    if args.markdown:
        Path(args.markdown).write_text(render(doc, markdown=True, top_ops=args.top_ops))
    failed = [r for r in doc["records"] if "error" in r]
    for r in failed:
        print(f"{r['variant']} G={r['grid_size']}: {r['error']}", file=sys.stderr)
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m kanpde.cli.bench.derivatives [options]``."""
    return common.standalone_main("derivatives", __doc__, _add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
