"""``kanpde bench kernels``: fused Triton KAN-layer jets against the PyTorch paths.

One PINN training step on ``N`` points uniform in ``[-1, 1]^d``, as in
:mod:`kanpde.cli.bench.derivatives` (value and the Laplacian channel ``W = I``, then first-order
backward to every parameter)::

    L = mean((lap u - f)^2) + mean(u^2),    f = prod_a sin(pi x_a),    L.backward()

for KANs of the given widths (default ``[2, 64, 64, 1]`` and ``[3, 64, 64, 64, 1]``), grid sizes
``G`` (default 10 and 50) and spline order ``k = 3``, in these variants:

* ``fused``: :class:`kanpde.KAN` with engine ``"jet-triton"`` (the fused kernels of
  :mod:`kanpde.kernels`); CUDA only. On CPU the table says ``n/a: needs CUDA``: the Triton
  interpreter is a test vehicle, not something to time;
* ``jet-torch``: the same KAN with engine ``"jet-torch"`` (the plain-PyTorch jet path);
* ``autograd``: the same KAN through nested autograd (engine ``"autograd"``);
* ``efficient-kan-autograd``: :class:`~kanpde.cli.bench.efficient_kan.EfficientKAN` (dense
  Cox--de Boor basis) through nested autograd, the baseline users have today.

Each measurement runs in a fresh worker process through the machinery of
:mod:`kanpde.cli.bench.derivatives` (:func:`kanpde.cli.bench.common.run_worker`, its ``build_model``
and ``training_step``): build model and points, one tiny step on 16 points (library start-up, kernel
compilation), then ``warmup`` + ``repeats`` full steps; the median is reported. Peak memory is
``torch.cuda.max_memory_allocated`` minus the allocated bytes before the steps on CUDA, and the
peak-RSS increase on CPU (which needs a fresh process per measurement; on CUDA one worker runs all
point counts of a (variant, widths, G) in ascending order, resetting the peak statistics in between,
which saves the process and CUDA start-up per size). TF32 is switched off.

**Memory guard.** A variant whose estimated peak memory (:func:`estimate_memory_bytes`: a
dense-basis model fitted to CPU peak-RSS measurements) exceeds ``--max-memory-gb`` is not
run; the table says ``skipped: estimated X GB``. The default limit is 80% of the GPU's memory
on CUDA and ``min(4, MemAvailable / 2)`` GB on CPU.

**CPU defaults.** The CUDA sizes (``N`` = 16384 and 65536) are far too heavy for a CPU: the
efficient-kan baseline alone needs tens of GB and minutes per step there. On CPU the defaults
are ``N = 2048``, 3 repeats after 1 warm-up step and the 4 GB guard, which finishes in a few
minutes on a 2-core machine (the efficient-kan baseline at ``G = 50`` is skipped by the guard).
Every default can be overridden.

**Useful FLOPs** (:func:`layer_flops`). Achieved FLOP/s for the jet variants (``fused``,
``jet-torch``) is the analytic count of the useful floating-point operations of the jet
forward and backward divided by the median step time (multiply and add count one each; an
``exp`` or a division counts one). Per layer with ``n`` inputs, ``m`` outputs, ``d`` gradient
coordinates, ``R`` second-order channels, order ``k``, and ``o`` the highest derivative the
forward carries (``o = 2`` if ``R > 0``, ``1`` if only ``d > 0``, else ``0``)::

    per point and edge (i, j):
      forward   F_e = 2 (k+2) (o+1)              phi^(q) = w sigma^(q) + sum_r C_r B_r^(q),
                                                 q = 0..o: k+2 multiply-adds each
                    + 1 + 2 d + 4 R              y += phi; gy += phi' g;
                                                 Sy += phi'' q + phi' S
      backward  B_e = 2 (k+2)                    phi^(o+1), one order more for d/dv
                    + 2 (d + R) + 2 R            a1 = gyb.g + syb.S;  a2 = syb.q
                    + 2 (o+1)                    vb += yb phi' + a1 phi'' + a2 phi'''
                    + 2 d + 4 R                  gb += phi' gyb; Sb += phi' syb;
                                                 qb += phi'' syb
                    + 2 (k+2) (o+1)              C and w gradients: k+1 bases and SiLU,
                                                 o+1 multiply-adds each
                  = 2 (k+2) (o+2) + 2 (o+1) + 4 d + 8 R
    per point and input i:
      forward   F_i = (k+2) + 4                  locate (s, u), powers of u; sigma (exp,
                                                 add, div, x sigma)
                    + (o+1) (2 (k+1)^2 + (k+1) + 4)
                                                 bases B^(q) from the (k+1)x(k+1) table,
                                                 1/h^q scaling, sigma^(q); q = 0..o
                    + 2 R d (d+1)                q_r = g^T W_r g (dense W_r)
      backward  B_i = 2 (k+1)^2 + (k+1) + 4      order o+1 of the bases and of sigma
                    + 2 R d (d+1)                the cotangent of g through q
    layer: N (n m (F_e + B_e) + n (F_i + B_i))

Each basis order is counted once (a kernel that recomputes orders 0..o in the backward does
more work than counted: the count is what the algorithm needs, not what an implementation
spends). The loss and the optimiser are not counted. The dense-basis paths (``jet-torch``) do
far more arithmetic than this (a matrix product over all ``G + k + 1`` bases, mostly zeros),
so their "useful" rate is low by design; the nested-autograd variants run another algorithm
and get no FLOP rate.

Run ``kanpde bench kernels --help`` or ``python -m kanpde.cli.bench.kernels --help``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

import torch

from kanpde.cli.bench import common
from kanpde.cli.bench.derivatives import build_model, kan_param_count, training_step
from kanpde.core.dtypes import DTYPES
from kanpde.io.atomic import atomic_write_text

VARIANTS = ("fused", "jet-torch", "autograd", "efficient-kan-autograd")
ENGINES = {"fused": "jet-triton", "jet-torch": "jet-torch", "autograd": "autograd",
           "efficient-kan-autograd": "autograd"}
"""Derivative engine of each variant (see :func:`kanpde.core.engines.compute_jet`)."""
MODEL_KINDS = {"fused": "kan-jet", "jet-torch": "kan-jet", "autograd": "kan-autograd",
               "efficient-kan-autograd": "efficient-kan-autograd"}
"""The model of each variant, named as :func:`kanpde.cli.bench.derivatives.build_model` expects."""
FLOP_VARIANTS = ("fused", "jet-torch")
WORKER = "kanpde.cli.bench.kernels:measure"
DEFAULT_WIDTHS = ((2, 64, 64, 1), (3, 64, 64, 64, 1))
DEFAULT_GRID_SIZES = (10, 50)
CUDA_DEFAULTS: dict[str, Any] = {"points": [16384, 65536], "repeats": 10, "warmup": 2}
CPU_DEFAULTS: dict[str, Any] = {"points": [2048], "repeats": 3, "warmup": 1}
CPU_MAX_MEMORY_GB = 4.0
CUDA_MEMORY_FRACTION = 0.8
GB = 1e9
N_CHANNELS = 1  # the Laplacian

# (a, b) of estimate_memory_bytes: bytes per dense-basis and per local-feature element.
_MEMORY_MODEL = {"jet-torch": (1.4, 3.0), "autograd": (1.45, 7.3),
                 "efficient-kan-autograd": (5.3, 0.0)}


# ----------------------------------------------------------------------------------------------
# analytic models: FLOPs and memory
# ----------------------------------------------------------------------------------------------


def jet_order(dim: int, n_channels: int) -> int:
    """Highest derivative ``o`` of the edge functions the jet forward needs (0, 1 or 2)."""
    return 2 if n_channels > 0 else (1 if dim > 0 else 0)


def layer_flops(n_points: int, n_in: int, n_out: int, dim: int, n_channels: int,
                spline_order: int) -> dict[str, int]:
    """Useful FLOPs of one KAN layer's jet forward and backward (formula: module docstring).

    Args:
        n_points: ``N``.
        n_in: ``n`` layer inputs.
        n_out: ``m`` layer outputs.
        dim: ``d`` gradient coordinates.
        n_channels: ``R`` second-order channels.
        spline_order: ``k``.

    Returns:
        ``forward``, ``backward`` and ``total`` FLOPs.
    """
    k, d, r = spline_order, dim, n_channels
    o = jet_order(d, r)
    edge_fwd = 2 * (k + 2) * (o + 1) + 1 + 2 * d + 4 * r
    edge_bwd = 2 * (k + 2) * (o + 2) + 2 * (o + 1) + 4 * d + 8 * r
    basis_order = 2 * (k + 1) ** 2 + (k + 1) + 4  # one derivative order of bases and SiLU
    quad = 2 * r * d * (d + 1)
    input_fwd = (k + 2) + 4 + (o + 1) * basis_order + quad
    input_bwd = basis_order + quad
    edges = n_in * n_out
    forward = n_points * (edges * edge_fwd + n_in * input_fwd)
    backward = n_points * (edges * edge_bwd + n_in * input_bwd)
    return {"forward": forward, "backward": backward, "total": forward + backward}


def jet_flops(widths: Sequence[int], spline_order: int, n_points: int,
              n_channels: int = N_CHANNELS) -> dict[str, int]:
    """Useful FLOPs of a KAN jet step (every layer, :func:`layer_flops`), ``d = widths[0]``.

    Returns:
        ``forward``, ``backward`` and ``total`` FLOPs, summed over the layers.
    """
    total = {"forward": 0, "backward": 0, "total": 0}
    for n_in, n_out in zip(widths[:-1], widths[1:], strict=True):
        layer = layer_flops(n_points, n_in, n_out, widths[0], n_channels, spline_order)
        total = {key: total[key] + layer[key] for key in total}
    return total


def estimate_memory_bytes(variant: str, widths: Sequence[int], grid_size: int,
                          spline_order: int, n_points: int, itemsize: int,
                          n_channels: int = N_CHANNELS) -> int:
    """Rough peak memory of one training step of ``variant`` (used by ``--max-memory-gb``).

    The dense paths hold, per layer input ``n_l`` and point, ``rows`` copies of a dense basis
    of ``G + k + 1`` entries and of the local ``k + 2`` features, so the model is::

        bytes = itemsize N rows sum_l n_l (a (G + k + 1) + b (k + 2))

    with ``rows = 1 + d + R`` for ``jet-torch`` (value, gradient, channels in one tensor),
    ``1 + d`` for ``autograd`` (the forward, then one reverse pass per Hessian row) and
    ``(1 + d)(k + 1)`` for ``efficient-kan-autograd`` (the ``k + 1`` Cox--de Boor levels kept
    for the nested backward). The fused kernels hold no basis: ``6 itemsize N (1 + d + R)
    sum_l width_l`` (the layer jets and their cotangents). ``a`` and ``b``
    (``_MEMORY_MODEL``) were fitted to CPU peak-RSS increases of ``[2, 64, 64, 1]`` and
    ``[3, 64, 64, 64, 1]`` at ``G = 10, 50``, ``N = 1024, 4096`` (efficient-kan: 1024) in
    float64, within 20%.
    An estimate: it decides what to skip, nothing else.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose from {VARIANTS}")
    d, k = widths[0], spline_order
    if variant == "fused":
        return int(6 * itemsize * n_points * (1 + d + n_channels) * sum(widths))
    rows = {"jet-torch": 1 + d + n_channels, "autograd": 1 + d,
            "efficient-kan-autograd": (1 + d) * (k + 1)}[variant]
    a, b = _MEMORY_MODEL[variant]
    per_input = a * (grid_size + k + 1) + b * (k + 2)
    return int(itemsize * n_points * rows * sum(widths[:-1]) * per_input)


# ----------------------------------------------------------------------------------------------
# worker
# ----------------------------------------------------------------------------------------------


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    """Worker body (runs in a fresh process): time and memory of one variant, several ``N``.

    Args:
        spec: ``variant``, ``widths``, ``grid_size``, ``spline_order``, ``points`` (list of
            ``N``, ascending; one entry on CPU), ``repeats``, ``warmup``, ``threads`` (``None``:
            torch's default), ``device``, ``dtype``, ``seed``.

    Returns:
        ``{"records": [...]}``, one record per ``N``: the identifying fields, ``status``
        (``"ok"`` or ``"failed"`` with ``error``), ``engine``, ``n_params``, timing (see
        :meth:`~kanpde.cli.bench.common.TimingStats.as_dict`), ``peak_memory_bytes``,
        ``peak_memory_method`` and ``loss``.
    """
    if spec.get("threads"):
        torch.set_num_threads(int(spec["threads"]))
    variant, device = spec["variant"], torch.device(spec["device"])
    engine = ENGINES[variant]
    dtype = DTYPES[spec["dtype"]]
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    model = build_model(MODEL_KINDS[variant], spec)
    dim = spec["widths"][0]
    channels = torch.eye(dim, dtype=dtype, device=device)[None]  # (1, d, d): Laplacian
    tiny = (2 * torch.rand(16, dim, generator=torch.Generator().manual_seed(1), dtype=dtype)
            - 1).to(device)
    training_step(model, tiny, channels, engine)  # libraries, kernel compilation
    common.synchronizer(device)()
    base = {"variant": variant, "engine": engine, "widths": list(spec["widths"]),
            "grid_size": spec["grid_size"], "spline_order": spec["spline_order"],
            "device": str(device), "dtype": spec["dtype"],
            "n_params": sum(p.numel() for p in model.parameters())}
    records = []
    for n_points in spec["points"]:
        try:
            records.append({**base, **_measure_points(model, channels, engine, n_points, spec)})
        except torch.cuda.OutOfMemoryError as err:
            records.append({**base, "points": n_points, "status": "failed",
                            "error": f"CUDA out of memory: {str(err).splitlines()[0][:120]}"})
            torch.cuda.empty_cache()
    return {"records": records}


def _measure_points(model: torch.nn.Module, channels: torch.Tensor, engine: str, n_points: int,
                    spec: dict[str, Any]) -> dict[str, Any]:
    """Time ``warmup + repeats`` steps on ``n_points`` points; peak memory of those steps."""
    device, dtype = channels.device, channels.dtype
    gen = torch.Generator().manual_seed(spec["seed"])
    x = (2 * torch.rand(n_points, channels.shape[1], generator=gen, dtype=dtype) - 1).to(device)
    losses: list[torch.Tensor] = []

    def step() -> None:
        losses.append(training_step(model, x, channels, engine))

    if device.type == "cuda":
        torch.cuda.empty_cache()
    m = common.measure_steps(step, device, repeats=spec["repeats"], warmup=spec["warmup"])
    timing, peak, method = m.timing, m.peak_bytes, m.peak_method
    return {"points": n_points, "status": "ok", "threads": torch.get_num_threads(),
            **timing.as_dict(), "peak_memory_bytes": int(peak), "peak_memory_method": method,
            "loss": float(losses[-1])}


# ----------------------------------------------------------------------------------------------
# driver
# ----------------------------------------------------------------------------------------------


def resolve(args: argparse.Namespace) -> dict[str, Any]:
    """The benchmark configuration: parsed arguments with per-device defaults filled in."""
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    defaults = CUDA_DEFAULTS if device == "cuda" else CPU_DEFAULTS
    max_gb = args.max_memory_gb
    if max_gb is None:
        max_gb = _default_max_memory_gb(device)
    return {
        "device": device, "dtype": args.dtype, "spline_order": args.spline_order,
        "widths": [list(w) for w in (args.widths or DEFAULT_WIDTHS)],
        "grid_sizes": list(args.grid_sizes or DEFAULT_GRID_SIZES),
        "points": sorted(args.points or defaults["points"]),
        "repeats": args.repeats if args.repeats is not None else defaults["repeats"],
        "warmup": args.warmup if args.warmup is not None else defaults["warmup"],
        "variants": [v for v in VARIANTS if v in (args.variants or VARIANTS)],
        "max_memory_gb": max_gb, "threads": args.threads, "seed": args.seed,
        "timeout": args.timeout, "n_channels": N_CHANNELS,
    }


def _default_max_memory_gb(device: str) -> float:
    if device == "cuda":
        return CUDA_MEMORY_FRACTION * torch.cuda.get_device_properties(0).total_memory / GB
    available = None
    try:
        with open("/proc/meminfo") as f:
            kib = next((ln.split()[1] for ln in f if ln.startswith("MemAvailable")), None)
            available = int(kib) * 1024 / GB if kib else None
    except OSError:
        pass
    return CPU_MAX_MEMORY_GB if available is None else min(CPU_MAX_MEMORY_GB, available / 2)


def _fused_unavailable(device: str) -> str | None:
    """Why the fused variant cannot run on ``device`` (``None``: it can)."""
    if device != "cuda":
        return "needs CUDA"
    from kanpde.kernels import available

    return None if available(device) else "needs triton"


def plan(cfg: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Records in table order (placeholders for what will run) and the worker specs.

    Returns:
        ``records``: one per (widths, G, N, variant); those that will not run already carry
        ``status`` ``"n/a"`` (with ``reason``) or ``"skipped"``; the others ``"pending"``.
        ``specs``: worker specs; each lists the ``points`` it measures (on CPU one ``N``).
    """
    itemsize = torch.empty(0, dtype=DTYPES[cfg["dtype"]]).element_size()
    fused_reason = (_fused_unavailable(cfg["device"]) if "fused" in cfg["variants"] else None)
    records, specs = [], []
    for widths in cfg["widths"]:
        for grid in cfg["grid_sizes"]:
            runnable: dict[str, list[int]] = {v: [] for v in cfg["variants"]}
            for n_points in cfg["points"]:
                for variant in cfg["variants"]:
                    est = estimate_memory_bytes(variant, widths, grid, cfg["spline_order"],
                                                n_points, itemsize, cfg["n_channels"])
                    rec = {"variant": variant, "widths": widths, "grid_size": grid,
                           "points": n_points, "estimated_memory_bytes": est}
                    if variant == "fused" and fused_reason:
                        rec.update(status="n/a", reason=fused_reason)
                    elif est > cfg["max_memory_gb"] * GB:
                        rec.update(status="skipped", reason=f"estimated {est / GB:.3g} GB")
                    else:
                        rec["status"] = "pending"
                        runnable[variant].append(n_points)
                    records.append(rec)
            base = {"widths": widths, "grid_size": grid, "spline_order": cfg["spline_order"],
                    "repeats": cfg["repeats"], "warmup": cfg["warmup"],
                    "threads": cfg["threads"], "device": cfg["device"], "dtype": cfg["dtype"],
                    "seed": cfg["seed"]}
            for variant, points in runnable.items():
                groups = [points] if cfg["device"] == "cuda" else [[n] for n in points]
                specs += [{**base, "variant": variant, "points": g} for g in groups if g]
    return records, specs


def _key(rec: dict[str, Any]) -> tuple:
    return rec["variant"], tuple(rec["widths"]), rec["grid_size"], rec["points"]


def _finish(rec: dict[str, Any], cfg: dict[str, Any]) -> dict[str, Any]:
    """Add the analytic FLOP count and rate to a measured jet record."""
    if rec.get("status") == "ok" and rec["variant"] in FLOP_VARIANTS:
        flops = jet_flops(rec["widths"], rec["spline_order"], rec["points"], cfg["n_channels"])
        rec["flops"] = flops
        rec["flop_rate"] = flops["total"] / rec["time_median_s"]
    return rec


def run_benchmark(cfg: dict[str, Any], *, json_path: str | None = None,
                  markdown_path: str | None = None) -> dict[str, Any]:
    """Run every planned worker; return the JSON document.

    With ``json_path`` / ``markdown_path`` the document (``"complete": false`` until the end)
    and its tables are rewritten after every worker, so an interrupted run keeps its results.
    """
    records, specs = plan(cfg)
    index = {_key(r): i for i, r in enumerate(records)}
    machine = common.machine_info()
    doc = {"benchmark": "kernels", "machine": machine, "config": cfg, "records": records,
           "complete": False}
    _write(doc, json_path, markdown_path)
    for i, spec in enumerate(specs, 1):
        label = (f"{spec['variant']} {spec['widths']} G={spec['grid_size']} "
                 f"N={','.join(map(str, spec['points']))}")
        print(f"[{i}/{len(specs)}] {label} ...", file=sys.stderr, flush=True)
        try:
            results = common.run_worker(WORKER, spec, timeout=cfg["timeout"])["records"]
        except common.WorkerError as err:
            results = [{"variant": spec["variant"], "widths": spec["widths"],
                        "grid_size": spec["grid_size"], "points": n, "status": "failed",
                        "error": str(err)} for n in spec["points"]]
        for res in results:
            i_rec = index[_key(res)]
            records[i_rec] = _finish({**records[i_rec], **res}, cfg)
        _write(doc, json_path, markdown_path)
    machine["load_average_end"] = common.machine_info()["load_average"]
    doc["complete"] = True
    _write(doc, json_path, markdown_path)
    return doc


def _write(doc: dict[str, Any], json_path: str | None, markdown_path: str | None) -> None:
    if json_path:
        atomic_write_text(json_path, json.dumps(doc, indent=1))
    if markdown_path:
        with open(markdown_path, "w") as f:
            f.write(render(doc, markdown=True))


# ----------------------------------------------------------------------------------------------
# report
# ----------------------------------------------------------------------------------------------


def _header(doc: dict[str, Any]) -> list[str]:
    cfg, m = doc["config"], doc["machine"]
    where = (f"CUDA {m['cuda_device']}" if cfg["device"] == "cuda" and m.get("cuda_device")
             else f"{m['cpu_model']}, {m['usable_cpus']} cpus")
    mem = ("torch.cuda.max_memory_allocated increase" if cfg["device"] == "cuda"
           else "peak RSS increase in a fresh process")
    lines = [
        "Kernel benchmark: one step of mean(u^2) + mean(|grad u|^2) + mean((lap u)^2), "
        "backward to all parameters",
        f"KAN widths {', '.join(str(w) for w in cfg['widths'])}; G in {cfg['grid_sizes']}, "
        f"k = {cfg['spline_order']}; N in {cfg['points']} points in [-1,1]^d; {cfg['dtype']}, "
        f"{cfg['device']} ({where}); torch {m['torch_version']}"
        + (f"; load average {m['load_average'][0]:.2f} -> {m['load_average_end'][0]:.2f}"
           if cfg["device"] == "cpu" and m.get("load_average") and m.get("load_average_end")
           else ""),
        f"time: median [min-max] of {cfg['repeats']} steps after {cfg['warmup']} warm-up; "
        f"peak mem: {mem}; est. GB: the memory model behind --max-memory-gb "
        f"({cfg['max_memory_gb']:.3g} GB)",
        "GFLOP/s: useful jet FLOPs (analytic, kanpde.cli.bench.kernels docstring) / median time; "
        "vs autograd: time of 'autograd' (same KAN, nested autograd) / time of the row",
    ]
    loads = [(m.get(key) or [0.0])[0] for key in ("load_average", "load_average_end")]
    if cfg["device"] == "cpu" and max(loads) > (m.get("usable_cpus") or 1) + 1:
        lines.append("WARNING: the machine was busy (load average above cores + 1): "
                     "times are unreliable")
    if not doc.get("complete", True):
        lines.append("INCOMPLETE: the run was interrupted or is still going")
    return lines


def table(doc: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Headers and rows of the results table."""
    ok = {_key(r): r for r in doc["records"] if r.get("status") == "ok"}
    head = ["KAN", "G", "N", "variant", "params", "time/step ms", "[min-max]",
            "peak mem MiB", "est. GB", "GFLOP/s", "vs autograd"]
    rows = []
    for r in doc["records"]:
        first = [str(r["widths"]).replace(" ", ""), str(r["grid_size"]), str(r["points"]),
                 r["variant"]]
        est = r.get("estimated_memory_bytes")
        est_s = "-" if est is None else f"{est / GB:.3g}"
        status = r.get("status")
        params = str(kan_param_count(r["widths"], r["grid_size"],
                                     doc["config"]["spline_order"]))
        if status != "ok":
            what = {"n/a": f"n/a: {r.get('reason', '')}",
                    "skipped": f"skipped: {r.get('reason', '')}",
                    "failed": f"failed: {r.get('error', '')[:60]}"}.get(status, str(status))
            rows.append([*first, params, what, "-", "-", est_s, "-", "-"])
            continue
        ref = ok.get(("autograd", *_key(r)[1:]))
        speed = common.fmt_ratio(ref["time_median_s"] / r["time_median_s"]) if ref else "-"
        rate = f"{r['flop_rate'] / 1e9:.3g}" if r.get("flop_rate") else "-"
        rows.append([*first, params, common.fmt_ms(r["time_median_s"]),
                     f"[{common.fmt_ms(r['time_min_s'])}-{common.fmt_ms(r['time_max_s'])}]",
                     common.fmt_mib(r["peak_memory_bytes"]), est_s, rate, speed])
    return head, rows


def render(doc: dict[str, Any], *, markdown: bool = False) -> str:
    """The report as plain text or markdown."""
    head, rows = table(doc)
    make = common.markdown_table if markdown else common.text_table
    header = "\n".join(f"{'- ' if markdown else ''}{h}" for h in _header(doc))
    return f"{header}\n\n{make(head, rows)}\n"


# ----------------------------------------------------------------------------------------------
# command line
# ----------------------------------------------------------------------------------------------


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--widths", type=int, nargs="+", action="append", default=None,
                        metavar="W", help="KAN widths [d, hidden..., m]; repeat for several "
                        "(default: --widths 2 64 64 1 --widths 3 64 64 64 1)")
    parser.add_argument("--grid-sizes", type=int, nargs="+", default=None, metavar="G",
                        help="grid sizes (default: 10 50)")
    parser.add_argument("--spline-order", type=int, default=3, metavar="K")
    parser.add_argument("--points", type=int, nargs="+", default=None, metavar="N",
                        help="collocation points (default: 16384 65536 on CUDA, 2048 on CPU)")
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=None,
                        help="variants to run (default: all)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed steps, median reported (default: 10 on CUDA, 3 on CPU)")
    parser.add_argument("--warmup", type=int, default=None,
                        help="untimed full-size steps first (default: 2 on CUDA, 1 on CPU)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="auto: cuda when available")
    parser.add_argument("--dtype", choices=tuple(DTYPES), default="float64")
    parser.add_argument("--max-memory-gb", type=float, default=None, metavar="GB",
                        help="skip variants whose estimated peak memory exceeds this (default: "
                        f"{CUDA_MEMORY_FRACTION:.0%}% of the GPU; on CPU min({CPU_MAX_MEMORY_GB:g},"
                        " MemAvailable/2))")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch.set_num_threads in each worker (default: torch's default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=600.0,
                        help="seconds per worker process")
    parser.add_argument("--json", metavar="PATH", default=None,
                        help="write results as JSON (rewritten after every worker)")
    parser.add_argument("--markdown", metavar="PATH", default=None,
                        help="write the table as markdown (rewritten after every worker)")


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``kernels`` subcommand on an argparse ``subparsers`` object."""
    help_text = ("fused Triton KAN-layer jets vs the PyTorch jet path vs nested autograd vs "
                 "efficient-kan: time, memory, FLOP/s")
    return common.add_subcommand(subparsers, "kernels", help_text, __doc__, _add_arguments, run)


def _check(args: argparse.Namespace) -> str | None:
    if args.device == "cuda" and not torch.cuda.is_available():
        return "--device cuda requested but CUDA is not available"
    for widths in args.widths or ():
        if len(widths) < 2 or min(widths) < 1:
            return f"--widths needs at least two positive entries, got {widths}"
    if any(n < 16 for n in args.points or ()):
        return f"--points must be >= 16, got {args.points}"
    if any(g < 1 for g in args.grid_sizes or ()):
        return f"--grid-sizes must be positive, got {args.grid_sizes}"
    if args.repeats is not None and args.repeats < 1:
        return "--repeats must be >= 1"
    if args.warmup is not None and args.warmup < 0:
        return "--warmup must be >= 0"
    if not 1 <= args.spline_order <= 5:
        return f"--spline-order must be in 1..5, got {args.spline_order}"
    if args.max_memory_gb is not None and args.max_memory_gb <= 0:
        return "--max-memory-gb must be positive"
    return None


def run(args: argparse.Namespace) -> int:
    """Run the benchmark for parsed arguments; print the table. Returns the exit status."""
    problem = _check(args)
    if problem:
        print(f"kanpde bench kernels: {problem}", file=sys.stderr)
        return 2
    doc = run_benchmark(resolve(args), json_path=args.json, markdown_path=args.markdown)
    print(render(doc))
    failed = [r for r in doc["records"] if r.get("status") == "failed"]
    for r in failed:
        print(f"{r['variant']} {r['widths']} G={r['grid_size']} N={r['points']}: {r['error']}",
              file=sys.stderr)
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m kanpde.cli.bench.kernels [options]``."""
    return common.standalone_main("kernels", __doc__, _add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
