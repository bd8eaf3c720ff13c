"""``kanpde bench kernels``: the FLOP model by hand, planning and the memory guard, end to end."""

from __future__ import annotations

import argparse
import importlib.util
import json

import pytest
import torch

from kanpde.cli.bench import register
from kanpde.cli.bench.kernels import (
    GB,
    VARIANTS,
    estimate_memory_bytes,
    jet_flops,
    layer_flops,
    plan,
    render,
)


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="kanpde")
    register(parser.add_subparsers(dest="command"))
    return parser.parse_args(["bench", "kernels", *argv])


def test_layer_flops_hand_computed() -> None:
    """k = 3, d = 2, R = 1 (so o = 2), one layer 2 -> 4 on N = 64 points.

    Per point and edge: forward 2*5*3 (phi, phi', phi'') + 1 + 2*2 + 4*1 = 39;
    backward 2*5 (phi''') + 2*(2+1) + 2*1 (a1, a2) + 2*3 (vb) + 2*2 + 4*1 (gb, Sb, qb)
    + 2*5*3 (C and w gradients) = 10 + 6 + 2 + 6 + 8 + 30 = 62.
    Per point and input: forward 5 + 4 + 3 * (2*16 + 4 + 4) + 2*1*2*3 = 9 + 120 + 12 = 141;
    backward (2*16 + 4 + 4) + 12 = 52.
    """
    flops = layer_flops(64, 2, 4, 2, 1, 3)
    assert flops["forward"] == 64 * (8 * 39 + 2 * 141) == 38016
    assert flops["backward"] == 64 * (8 * 62 + 2 * 52) == 38400
    assert flops["total"] == 76416
    # second layer 4 -> 1: 64 * (4 * 39 + 4 * 141) forward, 64 * (4 * 62 + 4 * 52) backward
    model = jet_flops([2, 4, 1], 3, 64)
    assert model == {"forward": 38016 + 46080, "backward": 38400 + 29184, "total": 151680}


def test_layer_flops_value_only() -> None:
    """d = R = 0 (o = 0), k = 3: F_e = 2*5 + 1 = 11, B_e = 2*5*2 + 2 = 22,
    F_i = 5 + 4 + 40 = 49, B_i = 40."""
    assert layer_flops(1, 1, 1, 0, 0, 3) == {"forward": 60, "backward": 62, "total": 122}
    assert layer_flops(10, 3, 2, 0, 0, 3)["forward"] == 10 * (6 * 11 + 3 * 49)


def test_plan_memory_guard_and_grouping() -> None:
    cfg = {"device": "cpu", "dtype": "float64", "spline_order": 3, "widths": [[2, 8, 1]],
           "grid_sizes": [5], "points": [64, 4096], "repeats": 1, "warmup": 0,
           "variants": list(VARIANTS), "threads": 1, "seed": 0, "timeout": 60.0,
           "n_channels": 1, "max_memory_gb": 0.0}
    limit = estimate_memory_bytes("efficient-kan-autograd", [2, 8, 1], 5, 3, 64, 8) / GB
    cfg["max_memory_gb"] = limit * 1.01  # N = 64 fits, N = 4096 does not
    records, specs = plan(cfg)
    assert len(records) == 2 * len(VARIANTS)
    by = {(r["variant"], r["points"]): r for r in records}
    assert by[("fused", 64)]["status"] == "n/a" and by[("fused", 64)]["reason"] == "needs CUDA"
    assert by[("efficient-kan-autograd", 64)]["status"] == "pending"
    skipped = by[("efficient-kan-autograd", 4096)]
    assert skipped["status"] == "skipped" and skipped["reason"].startswith("estimated ")
    assert skipped["estimated_memory_bytes"] > cfg["max_memory_gb"] * GB
    # CPU: one worker per N (fresh process for peak RSS); never the fused variant
    assert all(len(s["points"]) == 1 and s["variant"] != "fused" for s in specs)
    # CUDA: one worker per (variant, widths, G) with its point counts ascending
    cfg.update(device="cuda", max_memory_gb=1e6)
    cuda_records, cuda_specs = plan(cfg)
    # the fused variant runs where triton is installed (the dev/gpu extras), else says why
    triton = importlib.util.find_spec("triton") is not None
    expected = [v for v in VARIANTS if triton or v != "fused"]
    assert sorted(s["variant"] for s in cuda_specs) == sorted(expected)
    if not triton:
        fused = [r for r in cuda_records if r["variant"] == "fused"]
        assert fused and all(r["reason"] == "needs triton" for r in fused)
    assert all(s["points"] == [64, 4096] for s in cuda_specs)
    doc = {"config": cfg | {"device": "cpu"}, "records": records, "complete": False,
           "machine": {"cpu_model": "x", "usable_cpus": 1, "torch_version": "t"}}
    text = render(doc)
    assert "n/a: needs CUDA" in text and "skipped: estimated" in text and "INCOMPLETE" in text


def test_memory_estimates_order_variants() -> None:
    args = ([3, 64, 64, 64, 1], 50, 3, 65536, 8)
    est = {v: estimate_memory_bytes(v, *args) for v in VARIANTS}
    assert est["fused"] < min(est["autograd"], est["jet-torch"])
    assert max(est["autograd"], est["jet-torch"]) < est["efficient-kan-autograd"]
    assert est["efficient-kan-autograd"] > 100 * GB > est["fused"]
    with pytest.raises(ValueError, match="unknown variant"):
        estimate_memory_bytes("nope", *args)


def test_benchmark_end_to_end(tmp_path) -> None:
    out, md = tmp_path / "kernels.json", tmp_path / "kernels.md"
    args = _parse(["--points", "64", "--grid-sizes", "3", "--widths", "2", "4", "1",
                   "--repeats", "1", "--warmup", "0", "--threads", "1", "--device", "cpu",
                   "--json", str(out), "--markdown", str(md)])
    assert args.func(args) == 0
    doc = json.loads(out.read_text())
    assert doc["benchmark"] == "kernels" and doc["complete"] is True
    assert {"cpu_model", "torch_version", "cuda_device"} <= set(doc["machine"])
    cfg = doc["config"]
    assert cfg["widths"] == [[2, 4, 1]] and cfg["grid_sizes"] == [3] and cfg["points"] == [64]
    assert cfg["device"] == "cpu" and cfg["repeats"] == 1 and cfg["spline_order"] == 3
    records = doc["records"]
    assert [r["variant"] for r in records] == list(VARIANTS)
    by = {r["variant"]: r for r in records}
    fused = by["fused"]
    assert fused["status"] == "n/a" and fused["reason"] == "needs CUDA"
    assert "time_median_s" not in fused
    for variant in ("jet-torch", "autograd", "efficient-kan-autograd"):
        r = by[variant]
        assert r["status"] == "ok", r
        assert {"engine", "n_params", "time_median_s", "time_min_s", "time_max_s",
                "peak_memory_bytes", "peak_memory_method", "loss", "threads",
                "estimated_memory_bytes"} <= set(r)
        assert r["widths"] == [2, 4, 1] and r["grid_size"] == 3 and r["points"] == 64
        assert 0 < r["time_min_s"] <= r["time_median_s"] <= r["time_max_s"]
        assert r["peak_memory_method"] == "rss_increase" and r["threads"] == 1
        assert r["n_params"] == 12 * (3 + 3 + 2)
    assert by["jet-torch"]["engine"] == "jet-torch" and by["autograd"]["engine"] == "autograd"
    # the FLOP rate is the analytic count over the median time, for jet variants only
    jet = by["jet-torch"]
    assert jet["flops"] == jet_flops([2, 4, 1], 3, 64)
    assert jet["flop_rate"] == pytest.approx(jet["flops"]["total"] / jet["time_median_s"])
    assert "flops" not in by["autograd"]
    # same KAN, same points: jets and nested autograd give the same loss
    assert jet["loss"] == pytest.approx(by["autograd"]["loss"], rel=1e-12)
    text = md.read_text()
    assert "n/a: needs CUDA" in text and "| [2,4,1] | 3 | 64 | jet-torch |" in text


def test_help_and_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _parse(["--help"])
    assert "--max-memory-gb" in capsys.readouterr().out
    for argv in (["--widths", "2"], ["--points", "8"], ["--max-memory-gb", "0"]):
        args = _parse(argv)
        assert args.func(args) == 2, argv
    if not torch.cuda.is_available():
        args = _parse(["--device", "cuda"])
        assert args.func(args) == 2
