"""``kanpde bench speed``: time to accuracy on the KAN paper's Poisson problem, side by side.

Trains ``poisson2d_paper`` four ways in one run, one torch thread each: pykan's PDE recipe
([2, 10, 1], G 5 -> 10 -> 20, L-BFGS) through pykan and through kanpde, and DeepXDE's MLP
recipe through DeepXDE and through kanpde, on the same points (the runs of
:mod:`kanpde.cli.bench.anchors`, whose work directory it shares, so either command reuses the
other's finished runs). It reports the time each took to reach the squared L2 error levels
1e-4, 1e-5, 1e-6 and 1e-7, the time kanpde took to reach each library's *final* error, and
the library/kanpde ratios, in wall and in CPU seconds, with the load average.

Example::

    kanpde bench speed --budget full --seeds 0 --out results
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from kanpde.cli.bench import anchors, common, report
from kanpde.cli.bench.runner import check_budget, resolve_problems, run_jobs
from kanpde.io.curves import error_curve, time_to

PROBLEM = "poisson2d_paper"


def timings(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per recipe and implementation: times to the MSE levels and to the library's final
    MSE (seed by seed), on both clocks."""
    out = []
    for rec in records:
        if rec.get("status") != "ok":
            out.append({"recipe": rec["recipe"], "library": rec["library"],
                        "seed": rec.get("seed"), "status": rec.get("status")})
            continue
        row: dict[str, Any] = {"recipe": rec["recipe"], "library": rec["library"],
                               "seed": rec.get("seed"), "status": "ok", "mse": rec.get("mse"),
                               "n_params": rec.get("n_params")}
        anchor = next((r for r in records if r["recipe"] == rec["recipe"]
                       and r["library"] != "kanpde" and r.get("seed") == rec.get("seed")
                       and r.get("status") == "ok"), None)
        for clock in ("wall", "cpu"):
            curve = error_curve(anchors._history(rec), clock, "mse")
            row[clock] = {f"{lv:g}": time_to(curve, lv) for lv in anchors.MSE_LEVELS}
            if anchor is not None:
                row[clock]["library_final"] = time_to(curve, float(anchor["mse"]))
        out.append(row)
    return out


def markdown(rows: Sequence[Mapping[str, Any]], command: str) -> str:
    """``speed.md``."""
    f = report.fmt
    levels = [f"{lv:g}" for lv in anchors.MSE_LEVELS]
    lines = ["# Time to accuracy on poisson2d_paper: kanpde beside pykan and DeepXDE", "",
             f"Command: `{command}`", "", report.machine_line(), "",
             "Seconds until the squared L2 error on the evaluation grid first reached each "
             "level (never: not within the recipe); \"library's final\" is the error the "
             "library itself ended with. One torch thread per run, float64, the same points.",
             ""]
    for clock in ("wall", "cpu"):
        qs = ratios(rows, clock)
        lines += [f"## {'Wall' if clock == 'wall' else 'CPU'} seconds", "",
                  "| recipe | run by | seed | final MSE | "
                  + " | ".join(f"to {lv}" for lv in levels) + " | to the library's final |",
                  "|:---|:---|---:|---:|" + "---:|" * (len(levels) + 1)]
        for r in rows:
            if r["status"] != "ok":
                lines.append(f"| {r['recipe']} | {r['library']} | {r['seed']} | "
                             f"{r['status']} |" + " |" * (len(levels) + 1))
                continue
            t = r[clock]
            cells = [f(t[lv], ".3g") if t[lv] is not None else "never" for lv in levels]
            fin = t.get("library_final")
            lines.append(f"| {r['recipe']} | {r['library']} | {r['seed']} | {f(r['mse'])} | "
                         + " | ".join(cells) + " | "
                         + ("—" if "library_final" not in t else
                            f(fin, ".3g") if fin is not None else "never") + " |")
        lines += ["", f"Ratio library / kanpde of the time to each level ({clock}; —: one of "
                  "the two never reached it):", ""] + _level_lines(qs)
        lines += ["", "Ratio library / kanpde of the time to the library's final error "
                  f"({clock}): " + "; ".join(_ratio_text(qs)), ""]
    return "\n".join(lines) + "\n"


def ratios(rows: Sequence[Mapping[str, Any]], clock: str) -> list[dict[str, Any]]:
    """Per library and seed: the library's time to its own final error over kanpde's time to
    that error (``ratio``; above 1: kanpde is faster; ``None``: kanpde never reached it), and
    the same ratio at each MSE level that both reached (``levels``; ``None`` where one of
    them never reached the level)."""
    out = []
    for a in (r for r in rows if r["library"] != "kanpde" and r["status"] == "ok"):
        mine = next((r for r in rows if r["library"] == "kanpde" and r["recipe"] == a["recipe"]
                     and r["seed"] == a["seed"] and r["status"] == "ok"), None)
        if mine is None:
            continue
        t_lib, t_mine = a[clock].get("library_final"), mine[clock].get("library_final")
        levels = {}
        for lv in (f"{x:g}" for x in anchors.MSE_LEVELS):
            t_a, t_m = a[clock].get(lv), mine[clock].get(lv)
            levels[lv] = t_a / t_m if t_a and t_m else None
        out.append({"library": a["library"], "seed": a["seed"],
                    "ratio": t_lib / t_mine if t_lib and t_mine else None, "levels": levels})
    return out


def _ratio_text(qs: Sequence[Mapping[str, Any]]) -> list[str]:
    return [f"{q['library']} seed {q['seed']}: "
            + (f"{q['ratio']:.3g}x" if q["ratio"] else "kanpde never reached it")
            for q in qs] or ["n/a"]


def _level_lines(qs: Sequence[Mapping[str, Any]]) -> list[str]:
    """The per-level ratio table of :func:`ratios`' records ``qs``."""
    levels = [f"{lv:g}" for lv in anchors.MSE_LEVELS]
    lines = ["| library / kanpde | seed | " + " | ".join(f"at {lv}" for lv in levels) + " |",
             "|:---|---:|" + "---:|" * len(levels)]
    for q in qs:
        cells = [f"{q['levels'][lv]:.3g}x" if q["levels"][lv] else "—" for lv in levels]
        lines.append(f"| {q['library']} | {q['seed']} | " + " | ".join(cells) + " |")
    return lines


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    report.add_common_arguments(parser, problems=False, seeds=(0,))


def run(args: argparse.Namespace) -> int:
    """Run (or reuse) the four trainings and write the time-to-accuracy tables."""
    import torch

    budget = check_budget(args.budget)
    problems = resolve_problems([PROBLEM], args.problems_dir)
    torch.set_num_threads(1)
    work = Path(args.work) / f"anchors-{budget}"
    records: list[dict[str, Any]] = []
    for library in ("pykan", "deepxde"):
        recipe = anchors.LIBRARIES[library]["recipes"][budget]
        for seed in args.seeds:
            rec = anchors.anchor_record(PROBLEM, problems[PROBLEM], library, recipe, seed,
                                        work)
            records.append(rec)
        records += run_jobs(anchors.kanpde_jobs(PROBLEM, library, recipe, args.seeds),
                            problems, work / "kanpde", quiet=not args.progress)
    rows = timings(records)
    text = markdown(rows, report.command_line("speed", args))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "speed.md").write_text(text)
    report.write_json(out / "speed.json", {"budget": budget, "rows": rows,
                                           "ratios": {c: ratios(rows, c)
                                                      for c in ("wall", "cpu")}})
    print(text)
    print(f"wrote {out / 'speed.md'} and {out / 'speed.json'}")
    return 0


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``kanpde bench speed``."""
    return common.add_subcommand(subparsers, "speed", "time to accuracy on poisson2d_paper: "
                                 "kanpde beside pykan and DeepXDE", __doc__, _add_arguments,
                                 run)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m kanpde.cli.bench.speed [options]``."""
    return common.standalone_main("speed", __doc__, _add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
