"""Helpers shared by the ``kanpde bench`` benchmarks.

* timing: :func:`time_calls` (warm-up, then repeats; median, min, max);
* memory: :func:`process_counters` (peak RSS and minor page faults of this process; measure
  in a fresh process, see :func:`run_worker`), :func:`profile_call` (torch-profiler op
  breakdown and the peak of live allocator bytes during one call), :func:`first_touch_cost`
  (what a minor page fault costs on this machine);
* isolation: :func:`run_worker` runs ``module:function(spec) -> dict`` in a fresh interpreter,
  so peak-memory counters see only that measurement;
* description: :func:`machine_info`;
* output: :func:`text_table`, :func:`markdown_table`, :func:`fmt_ms`, :func:`fmt_mib`.

Why RSS and not ``tracemalloc``: torch's CPU tensors come from its own allocator (``malloc``
/ ``mmap``), which ``tracemalloc`` does not see. ``ru_maxrss`` is the process's resident high
watermark, so the increase over a warmed-up baseline is the extra memory a step needed.
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

ALLOC_FILL_OPS = frozenset({
    "aten::empty", "aten::empty_strided", "aten::empty_like", "aten::new_empty",
    "aten::new_empty_strided", "aten::zeros", "aten::zeros_like", "aten::new_zeros",
    "aten::zero_", "aten::fill_", "aten::full", "aten::full_like", "aten::new_full",
    "aten::ones", "aten::ones_like", "aten::new_ones", "aten::resize_",
})
"""Ops whose self time is allocation or initialisation (page faults land here or in the
first op that writes into fresh memory)."""

MIB = 1024.0**2


@dataclass(frozen=True)
class TimingStats:
    """Wall-clock samples of repeated calls, in seconds."""

    samples: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def min(self) -> float:
        return min(self.samples)

    @property
    def max(self) -> float:
        return max(self.samples)

    def as_dict(self) -> dict[str, Any]:
        """``time_median_s``, ``time_min_s``, ``time_max_s`` and ``times_s``."""
        return {"time_median_s": self.median, "time_min_s": self.min,
                "time_max_s": self.max, "times_s": list(self.samples)}


def synchronizer(device: torch.device | str) -> Callable[[], None]:
    """A function that waits for ``device`` to finish queued work (a no-op on CPU)."""
    if torch.device(device).type == "cuda":
        return torch.cuda.synchronize
    return lambda: None


def time_calls(fn: Callable[[], Any], *, repeats: int = 5, warmup: int = 1,
               synchronize: Callable[[], None] | None = None) -> TimingStats:
    """Time ``fn()``: ``warmup`` untimed calls, then ``repeats`` timed ones.

    Args:
        fn: the call to time.
        repeats: number of timed calls (``>= 1``).
        warmup: number of untimed calls first.
        synchronize: called before starting and after each call (e.g. CUDA sync).
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    sync = synchronize or (lambda: None)
    for _ in range(warmup):
        fn()
        sync()
    samples = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        samples.append(time.perf_counter() - start)
    return TimingStats(tuple(samples))


@dataclass(frozen=True)
class ProcessCounters:
    """Resource counters of the current process."""

    max_rss_bytes: int
    minor_faults: int
    cpu_s: float
    wall_s: float


def process_counters() -> ProcessCounters:
    """Peak resident set size (bytes), minor page faults and CPU seconds (user + system, all
    threads) so far, from ``getrusage``, with a wall-clock stamp (``time.perf_counter``).

    ``cpu_s`` over ``wall_s`` between two stamps is the number of cores the process kept
    busy: well below its thread count means it waited for the CPU (a busy machine) or memory.
    """
    usage = resource.getrusage(resource.RUSAGE_SELF)
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    return ProcessCounters(int(usage.ru_maxrss) * scale, int(usage.ru_minflt),
                           usage.ru_utime + usage.ru_stime, time.perf_counter())


def profile_call(fn: Callable[[], Any], *, device: torch.device | str = "cpu",
                 top: int = 15) -> dict[str, Any]:
    """Run ``fn()`` once under ``torch.profiler`` with memory profiling.

    Returns:
        ``allocator_peak_bytes``: peak of the running sum of the allocator's allocation and
        free records during the call, relative to its start (live bytes the call added at
        its worst; blocks freed that were allocated before the call count negative; ``None``
        if the records are not available);
        ``total_self_s``: summed self time of all ops; ``alloc_fill_s``: the part spent in
        :data:`ALLOC_FILL_OPS`; ``top_ops``: the ``top`` ops by self time, each with
        ``name``, ``self_s``, ``count`` and ``share``.
    """
    from torch.profiler import ProfilerActivity, profile

    cuda = torch.device(device).type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    sync = synchronizer(device)
    sync()
    with profile(activities=activities, profile_memory=True) as prof:
        fn()
        sync()
    ops = [(a.key, a.self_cpu_time_total * 1e-6, a.count) for a in prof.key_averages()
           if a.key != "[memory]"]
    total = sum(s for _, s, _ in ops) or float("nan")
    alloc_fill = sum(s for name, s, _ in ops if name in ALLOC_FILL_OPS)
    ops.sort(key=lambda op: op[1], reverse=True)
    return {
        "allocator_peak_bytes": _allocator_peak(prof, "cuda" if cuda else "cpu"),
        "total_self_s": total,
        "alloc_fill_s": alloc_fill,
        "top_ops": [{"name": n, "self_s": s, "count": c, "share": s / total}
                    for n, s, c in ops[:top]],
    }


def _allocator_peak(prof: Any, device_type: str) -> int | None:
    """Peak of the running sum of raw allocation (+) and free (-) records of one device.

    The per-op memory columns of ``prof.events()`` are net sums that hide peaks inside an
    op, so the raw ``[memory]`` records of the kineto result are replayed in time order.
    Returns ``None`` if this torch version does not expose them.
    """
    try:
        raw = prof.profiler.kineto_results.events()
        records = sorted((e.start_ns(), e.nbytes()) for e in raw
                         if e.name() == "[memory]" and e.device_type().name.lower()
                         == device_type)
    except (AttributeError, TypeError):
        return None
    live = peak = 0
    for _, n_bytes in records:
        live += n_bytes
        peak = max(peak, live)
    return int(peak)


def first_touch_cost(n_bytes: int = 256 * 1024**2) -> dict[str, float]:
    """Cost of minor page faults: ``fill_`` of a fresh buffer versus a second ``fill_``.

    Returns:
        ``fresh_fill_s``, ``warm_fill_s``, ``faults`` and ``s_per_fault`` (the extra time of
        the first fill divided by the page faults it took).
    """
    buf = torch.empty(n_bytes // 8, dtype=torch.float64)
    before = process_counters().minor_faults
    start = time.perf_counter()
    buf.fill_(1.0)
    fresh = time.perf_counter() - start
    faults = process_counters().minor_faults - before
    start = time.perf_counter()
    buf.fill_(2.0)
    warm = time.perf_counter() - start
    return {"bytes": float(n_bytes), "fresh_fill_s": fresh, "warm_fill_s": warm,
            "faults": float(faults), "s_per_fault": (fresh - warm) / max(faults, 1)}


@dataclass(frozen=True)
class StepMeasurement:
    """What :func:`measure_steps` measured: timing, peak memory and process counters."""

    timing: TimingStats
    peak_bytes: int
    peak_method: str  # "cuda_max_allocated" or "rss_increase"
    before: ProcessCounters
    after: ProcessCounters


def measure_steps(step: Callable[[], Any], device: torch.device, *, repeats: int,
                  warmup: int) -> StepMeasurement:
    """Time ``step`` (:func:`time_calls`) and measure the peak memory it added.

    On CUDA the peak is ``max_memory_allocated`` over the allocation before the first call;
    on CPU the increase of the process's peak RSS (meaningful in a fresh process, see
    :func:`run_worker`). The process counters around the calls come with it.
    """
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
        cuda_base = torch.cuda.memory_allocated(device)
    before = process_counters()
    timing = time_calls(step, repeats=repeats, warmup=warmup, synchronize=synchronizer(device))
    after = process_counters()
    if cuda:
        peak, method = torch.cuda.max_memory_allocated(device) - cuda_base, "cuda_max_allocated"
    else:
        peak, method = after.max_rss_bytes - before.max_rss_bytes, "rss_increase"
    return StepMeasurement(timing, int(peak), method, before, after)


def machine_info() -> dict[str, Any]:
    """CPU model, core counts, memory, load, Python/torch versions and CUDA device if any."""
    cpu_model = platform.processor() or "unknown"
    mem_total = None
    try:
        with open("/proc/cpuinfo") as f:
            cpu_model = next((line.split(":", 1)[1].strip() for line in f
                              if line.startswith("model name")), cpu_model)
        with open("/proc/meminfo") as f:
            kib = next((line.split()[1] for line in f if line.startswith("MemTotal")), None)
            mem_total = int(kib) * 1024 if kib else None
    except OSError:
        pass
    affinity = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                else os.cpu_count())
    info: dict[str, Any] = {
        "cpu_model": cpu_model,
        "logical_cpus": os.cpu_count(),
        "usable_cpus": affinity,
        "mem_total_bytes": mem_total,
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "torch_version": torch.__version__,
        "torch_default_threads": torch.get_num_threads(),
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "cuda_device": None,
    }
    if torch.cuda.is_available():
        info["cuda_device"] = torch.cuda.get_device_name(0)
    return info


class WorkerError(RuntimeError):
    """A benchmark worker process failed."""


def run_worker(target: str, spec: Mapping[str, Any], *, timeout: float | None = None,
               env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Call ``module:function(spec)`` in a fresh Python process and return its result.

    The function must take a JSON-serialisable dict and return one. A fresh interpreter
    gives each measurement its own peak-RSS and page-fault counters and a cold allocator.

    Args:
        target: ``"package.module:function"``.
        spec: the argument, passed as JSON.
        timeout: seconds before the worker is killed.
        env: environment of the worker (default: this process's).

    Raises:
        WorkerError: the worker exited non-zero, timed out or wrote no result.
    """
    with tempfile.TemporaryDirectory(prefix="kanpde-bench-") as tmp:
        spec_path = os.path.join(tmp, "spec.json")
        out_path = os.path.join(tmp, "result.json")
        with open(spec_path, "w") as f:
            json.dump(dict(spec), f)
        cmd = [sys.executable, "-c",
               "from kanpde.cli.bench.common import worker_main; worker_main()",
               target, spec_path, out_path]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                                  env=dict(env) if env is not None else None)
        except subprocess.TimeoutExpired as err:
            raise WorkerError(f"{target} timed out after {timeout} s") from err
        if proc.returncode != 0 or not os.path.exists(out_path):
            lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
            reason = lines[-1] if lines else f"exit status {proc.returncode}"
            if proc.returncode < 0:
                reason = f"killed by signal {-proc.returncode} (out of memory?)"
            raise WorkerError(f"{target} failed: {reason}")
        with open(out_path) as f:
            return json.load(f)


def worker_main(argv: Sequence[str] | None = None) -> None:
    """Entry point of a :func:`run_worker` process: ``TARGET SPEC_JSON RESULT_JSON``."""
    target, spec_path, out_path = list(sys.argv[1:] if argv is None else argv)
    module_name, _, func_name = target.partition(":")
    func = getattr(importlib.import_module(module_name), func_name)
    with open(spec_path) as f:
        spec = json.load(f)
    result = func(spec)
    with open(out_path, "w") as f:
        json.dump(result, f)


def fmt_ms(seconds: float | None) -> str:
    """Seconds as milliseconds with 3 significant digits (``-`` for ``None``)."""
    if seconds is None:
        return "-"
    ms = seconds * 1e3
    return f"{ms:.3g}" if ms < 100 else f"{ms:.0f}"


def fmt_mib(n_bytes: float | None) -> str:
    """Bytes as MiB (``-`` for ``None``)."""
    if n_bytes is None:
        return "-"
    mib = n_bytes / MIB
    return f"{mib:.3g}" if mib < 100 else f"{mib:.0f}"


def fmt_ratio(ratio: float | None) -> str:
    """A ratio as ``12.3x`` (``-`` for ``None``)."""
    return "-" if ratio is None else f"{ratio:.3g}x"


def text_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain-text table: first column left-aligned, the others right-aligned."""
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True)))

    return "\n".join([line(headers), "  ".join("-" * w for w in widths)]
                     + [line(r) for r in rows])


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured markdown table (numeric columns right-aligned)."""
    head = "| " + " | ".join(headers) + " |"
    rule = "|" + "|".join([":---"] + ["---:"] * (len(headers) - 1)) + "|"
    body = ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join([head, rule, *body])


def seed(text: str) -> int:
    """An argparse ``type``: a seed, an integer >= 0."""
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid seed {text!r}: not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"invalid seed {value}: must be >= 0")
    return value


def add_subcommand(subparsers: Any, name: str, help_text: str, doc: str | None,
                   add_arguments: Callable[[Any], None], run: Callable[[Any], int]) -> Any:
    """Register one ``kanpde bench NAME`` subcommand: its arguments and ``func = run``."""
    import argparse

    # no abbreviations: --problems must not silently mean --problems-dir where a
    # benchmark has no --problems of its own
    parser = subparsers.add_parser(name, help=help_text, description=(doc or "").split("\n\n")[0],
                                   formatter_class=argparse.RawTextHelpFormatter,
                                   allow_abbrev=False)
    add_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def standalone_main(module: str, doc: str | None, add_arguments: Callable[[Any], None],
                    run: Callable[[Any], int], argv: Sequence[str] | None = None) -> int:
    """``python -m kanpde.cli.bench.<module> [options]``: the same arguments as the subcommand."""
    import argparse

    parser = argparse.ArgumentParser(prog=f"python -m kanpde.cli.bench.{module}",
                                     description=(doc or "").split("\n\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))
