"""``kanpde explain DIR``: importance, figures, pruning and symbolic formula of a KAN run.

Steps (each reported in ``OUT/explain.json``, ``OUT`` defaulting to the run directory):

1. rebuild the trained KAN from ``DIR/result.h5`` (float64) and the problem file;
2. importance of every edge and node on the problem's evaluation points; figures
   ``explain_network.png`` and ``explain_layer{l}.png``;
3. with ``prune``: mask edges and remove hidden nodes whose normalised score is below the
   threshold, fine-tune with L-BFGS on the problem's loss without the sparsity penalty
   (which made the unused edges small, and would now bias the rest), report parameters and errors
   before and after (figures ``pruned_*.png``); when the fine-tuned loss is above
   ``PRUNE_FACTOR`` times the unpruned network's, the pruning is reverted (said in the log
   and ``explain.json``);
4. with ``symbolic``: a structure search. For each hypothesis on the first layer (its
   edges fixed to their best fits with ``R^2 >= r2``; to their best fits whatever the
   ``R^2``; all to ``x``; all to each primitive that is some edge's best fit; for products
   with separated factors, the factors of one coordinate as a primitive basis of their span,
   :mod:`kanpde.interpret.separation`) a copy of the
   model is carried layer by layer: fix the layer, retrain every remaining parameter
   (spline edges and symbolic constants) with L-BFGS in float64 on the problem's PDE loss
   (without the sparsity penalty, which would bias the constants), fit the next layer
   (``R^2 >= r2`` rule) on its retrained inputs. Then the hypotheses whose L-BFGS loss is
   within ``POLISH_FACTOR`` of the lowest get their symbolic constants polished by
   Levenberg-Marquardt (:func:`~kanpde.interpret.refit.polish_symbolic`). The hypothesis
   with the lowest loss on fresh validation points
   (:func:`kanpde.tune.validation.validation_points`: no training used them) wins, ties near
   round-off going to fewer spline edges, then simpler primitives; the exact solution is
   never used to choose. Its formula is composed; without spline edges it is expanded,
   refitted, its constants snapped and simplified under the validation loss
   (:func:`~kanpde.interpret.closed_form.read_formula`, every SymPy call time-limited).
   ``formula.txt`` is written with the validation loss and, for the record, the relative
   L2 error against the reference on the evaluation points; ``explain.json`` keeps every
   hypothesis and every snapping step with its loss.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from kanpde.interpret.closed_form import read_formula, sympy_call
from kanpde.interpret.draw import save_figures
from kanpde.interpret.formula import Formula, formula_error, kan_formula
from kanpde.interpret.importance import importance, redundant_nodes
from kanpde.interpret.prune import prune
from kanpde.interpret.refit import (
    ProblemLoss,
    l2_error,
    lbfgs,
    polish_symbolic,
    to_float64,
)
from kanpde.interpret.separation import factor_groups, set_span_basis
from kanpde.interpret.symbolic import auto_symbolic
from kanpde.nn.kan import KAN
from kanpde.nn.parts import network, trainable_parameters
from kanpde.nn.symbolic import PRIMITIVES, primitive
from kanpde.training.config import RegularizationConfig

FINISHED = ("ok", "max_time")
MAX_SAMPLES = 4096
PRUNE_FACTOR = 10.0
"""Pruning is reverted when the fine-tuned loss is above this factor of the unpruned one
(a factor of a product can score low whatever it carries: ``X Y = (s X)(Y / s)``)."""
POLISH_FACTOR = 10.0
"""Hypotheses whose L-BFGS loss is within this factor of the lowest are polished."""
BASIS = "basis "
"""Prefix of the layer-0 hypothesis "the factors fed by input i as a primitive basis"."""
CLAIM_FACTOR = 10.0
"""A formula without spline edges is claimed as the closed form only when its validation
loss is at most this factor above the trained network's (else it is a worse model)."""


@dataclass(frozen=True)
class ExplainOptions:
    """What ``explain`` does beyond importance and figures.

    Attributes:
        prune: normalised-score threshold for pruning (``None``: no pruning).
        symbolic: fit edges symbolically and write the formula.
        fine_tune_steps: L-BFGS iterations after pruning.
        refit_steps: L-BFGS iterations refitting the constants after symbolic fixing.
        r2: edges whose best fit has a lower ``R^2`` stay splines.
        method: importance score, ``"l1"`` or ``"std"``.
        library: primitive names (``None``: the whole library).
        engine: derivative engine of the fine-tuning and refit (``None``: the run's).
        simplify_timeout: seconds per SymPy call (expand, simplify) before the formula is
            kept unsimplified, with a note.
    """

    prune: float | None = None
    symbolic: bool = False
    fine_tune_steps: int = 50
    refit_steps: int = 300
    r2: float = 0.999
    method: str = "l1"
    library: Sequence[str] | None = None
    engine: str | None = None
    simplify_timeout: float = 20.0


def load_kan_run(run_dir: str | Path, log: Callable[[str], None] = print):
    """``(result, problem, model, config)`` of a finished KAN run, the model in float64; the
    problem from the copy stored in the run (one ``log`` line when the original file changed
    or is gone).

    Raises:
        FileNotFoundError: no run there, or no copy of its problem and the file is gone.
        ValueError: an MLP run, or a run that did not finish.
    """
    from kanpde.io.results import load_summary
    from kanpde.io.run import load_run
    from kanpde.training.config import config_from_dict

    run_path = Path(run_dir)
    summary = load_summary(run_path)
    status = summary.get("status")
    if status not in FINISHED:
        raise ValueError(f"run {run_path}: status {status!r}; explain needs a finished run "
                         f"(status {' or '.join(map(repr, FINISHED))})")
    if summary.get("model") != "kan":
        raise ValueError(f"run {run_path}: explain needs a KAN run, this one is "
                         f"{summary.get('model')!r}")
    run = load_run(run_path)
    note = run.problem_note
    if note:
        log(f"note: {note}")
    problem, model = run.problem, run.model
    to_float64(model)
    if not isinstance(network(model), KAN):
        raise ValueError(f"run {run_path}: explain needs a KAN run")
    config = config_from_dict(run.result.config, source=str(run_path / "result.h5"))
    return run.result, problem, model, config


def _samples(x: torch.Tensor) -> torch.Tensor:
    if x.shape[0] <= MAX_SAMPLES:
        return x
    idx = torch.linspace(0, x.shape[0] - 1, MAX_SAMPLES).round().long()
    return x[idx]


def _edge_table(net: KAN, imp) -> list[dict[str, Any]]:
    norm = imp.edges_normalized
    return [{"layer": l_, "i": i, "j": j, "kind": layer.edge_kind(i, j),
             "score": float(imp.edges[l_][i, j]), "score_normalized": float(norm[l_][i, j])}
            for l_, layer in enumerate(net.layers)
            for i in range(layer.n_in) for j in range(layer.n_out)]


def _report_redundant(net: KAN, x: torch.Tensor, log: Callable[[str], None]) -> list[dict]:
    groups = redundant_nodes(net, x)
    for g in groups:
        log(f"layer {g['layer']}: hidden nodes {', '.join(map(str, g['nodes']))} carry one "
            f"feature up to an affine map (|corr| >= {g['min_abs_corr']:.6f}); pruning keeps "
            "them all, and the formula repeats it")
    return groups


def explain_run(run_dir: str | Path, options: ExplainOptions = ExplainOptions(),
                out_dir: str | Path | None = None,
                log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the workflow of the module docstring; returns what ``explain.json`` holds."""
    result, problem, model, config = load_kan_run(run_dir, log)
    out = Path(out_dir) if out_dir is not None else Path(run_dir)
    out.mkdir(parents=True, exist_ok=True)
    coords, fields = tuple(problem.coords), tuple(problem.fields)
    x_eval = problem.evaluation_points(dtype=torch.float64)
    x = _samples(x_eval)
    net = network(model)
    imp = importance(net, x, options.method)
    figures = save_figures(net, x, imp, out, "explain", coords, fields)
    l2 = l2_error(model, problem)
    params = trainable_parameters(model)
    log(f"{problem.name}: KAN {net.widths}, {params} parameters, l2_rel {l2:.3e}")
    report: dict[str, Any] = {
        "run": str(run_dir), "problem": problem.name, "widths": list(net.widths),
        "n_params": params, "l2_rel": l2, "importance": imp.to_dict(),
        "edges": _edge_table(net, imp)}
    summary = result.summary
    unknowns = {k: v["value"] for k, v in (summary.get("unknowns") or {}).items()}
    # fine-tuning and refits use the PDE loss alone: the sparsity penalty has done its work
    # (small unused edges to prune) and would bias what is left
    loss = ProblemLoss(problem, replace(config, regularization=RegularizationConfig()),
                       weights=summary.get("weights"), unknowns=unknowns,
                       engine=options.engine)
    report["redundant_nodes"] = _report_redundant(net, x, log)
    if options.prune is not None:
        unpruned, loss_unpruned = model, float(loss(model).detach())
        model, rep = prune(model, x, options.prune, options.method)
        before = l2_error(model, problem)
        history = lbfgs(model, loss, options.fine_tune_steps)
        after = l2_error(model, problem)
        log(f"pruned (threshold {options.prune:g}): widths {rep.widths_before} -> "
            f"{rep.widths_after}, {len(rep.edges_masked)} edges masked, parameters "
            f"{rep.params_before} -> {rep.params_after}; l2_rel {l2:.3e} -> {before:.3e} "
            f"(pruned) -> {after:.3e} (after {len(history) - 1} L-BFGS evaluations)")
        reverted = not history[-1] <= PRUNE_FACTOR * max(loss_unpruned, 1e-300)
        if reverted:  # pruning removed something the solution needs: keep the network
            log(f"pruning reverted: the fine-tuned loss {history[-1]:.3e} is above "
                f"{PRUNE_FACTOR:g}x the unpruned network's ({loss_unpruned:.3e}); "
                "explain goes on with the unpruned network")
            model = unpruned
        net = network(model)
        imp = importance(net, x, options.method)
        figures += save_figures(net, x, imp, out, "pruned", coords, fields)
        report["prune"] = {**rep.to_dict(), "l2_rel_before": l2, "l2_rel_pruned": before,
                           "l2_rel_fine_tuned": after, "fine_tune_steps": len(history) - 1,
                           "loss_unpruned": loss_unpruned, "loss_fine_tuned": history[-1],
                           "reverted": reverted, "edges": _edge_table(net, imp),
                           "redundant_nodes": _report_redundant(net, x, log)}
    if options.symbolic:
        from kanpde.tune.validation import validation_loss, validation_points

        vpts = validation_points(problem, config.seed)

        def validation(m) -> float:
            engine = "jet" if hasattr(network(m), "jet") else "autograd"
            return validation_loss(problem, m, vpts, unknowns, engine=engine)["total"]

        report["symbolic"] = _symbolic(model, problem, loss, x, x_eval, options, out, log,
                                       validation)
    report["figures"] = [str(p) for p in figures]
    (out / "explain.json").write_text(json.dumps(report, indent=2) + "\n")
    log(f"wrote {out / 'explain.json'} and {len(figures)} figures")
    return report


def _fix_layers(model, x, loss, first: str | None, options: ExplainOptions,
                cache: dict | None = None) -> tuple[list[dict[str, Any]], float]:
    """Fix the layers one after the other, retraining the rest after each (in place).

    Layer 0 is fixed edge by edge to its best fit with ``R^2 >= options.r2`` when ``first``
    is ``None``, to its best fit whatever its ``R^2`` when ``first`` is ``"best"``, else
    every spline edge of it to the primitive ``first`` whatever its ``R^2``, and with
    ``first = "basis i"`` the factors of input ``i`` to a primitive basis of their span
    (refitting the rest before fitting the other layer-0 edges by the ``R^2`` rule); later
    layers always by the ``R^2`` rule. Compositions ``f(g)`` are tried for badly fitted
    edges except under "all ``f``". After each layer all remaining parameters (spline edges
    and symbolic constants) are refitted by L-BFGS on the problem's loss
    (``options.refit_steps`` iterations).

    ``cache`` holds the edge fits of the search (an edge function met again is not refitted).

    Returns:
        The edge records of :func:`auto_symbolic` and the loss after the last L-BFGS.
    """
    net = network(model)
    records: list[dict[str, Any]] = []
    history = [math.nan]
    # compositions (slow to fit) only where edges are fitted one by one: not under "all f"
    compose = options.r2 if first in (None, "best") or first.startswith(BASIS) else None
    for l_ in range(len(net.layers)):
        if l_ == 0 and first is not None and first.startswith(BASIS):
            found = set_span_basis(net, x, int(first[len(BASIS):]), options.library,
                                   options.r2)
            records += [r for r in found if r["kind"] != "spline"]
            if len(records) == len(found) > 0:  # the other side absorbs the mixing
                lbfgs(model, loss, options.refit_steps)
            records += auto_symbolic(net, x, options.r2, options.library, layers=[0],
                                     compose_below=compose, cache=cache)
        elif l_ == 0 and first is not None:
            lib = options.library if first == "best" else [first]
            records += auto_symbolic(net, x, -math.inf, lib, layers=[0],
                                     compose_below=compose, cache=cache)
        else:
            records += auto_symbolic(net, x, options.r2, options.library, layers=[l_],
                                     compose_below=compose, cache=cache)
        history = lbfgs(model, loss, options.refit_steps)
    return records, history[-1]


def _layer0_hypotheses(model, x, options: ExplainOptions,
                       cache: dict | None = None) -> list[str | None]:
    """The layer-0 hypotheses of :func:`_fix_layers`: ``None`` (best fits with
    ``R^2 >= r2``), ``"best"`` (every best fit) and, for ``"x"`` and every primitive that is
    the best fit of some layer-0 edge, "all of layer 0 is that primitive". Duplicates are
    left out: ``"best"`` when every best fit already has ``R^2 >= r2``, "all ``f``" when
    ``f`` is the best fit of every edge. For a first layer of products with separated
    factors, one more per input feeding two or more factors: ``"basis i"``, those factors
    as the primitives of their span (:mod:`kanpde.interpret.separation`), the rest refitted
    before the remaining layer-0 edges are fitted."""
    net = copy.deepcopy(network(model))
    chosen = [r["chosen"] for r in auto_symbolic(net, x, math.inf, options.library,
                                                 layers=[0], cache=cache)
              if r["kind"] == "spline"]
    names = {c["name"] for c in chosen if c}
    out: list[str | None] = [None]
    if not all(c and c["r2"] >= options.r2 for c in chosen):
        out.append("best")
    same = names.copy() if len(names) == 1 and all(chosen) else set()
    lib = options.library if options.library is not None else list(PRIMITIVES)
    if "x" in lib:
        names.add("x")
    names -= same | {"0"}  # "all f" with f every edge's best fit is "every best fit"
    bases = [f"{BASIS}{i}" for i, members in factor_groups(network(model)).items()
             if len(members) > 1]
    return [*out, *sorted(names, key=lambda n: list(PRIMITIVES).index(n)), *bases]


def _symbolic(model, problem, loss, x, x_eval, options: ExplainOptions, out: Path,
              log: Callable[[str], None], validation: Callable[[Any], float]
              ) -> dict[str, Any]:
    """Structure search, then the formula.

    Each hypothesis of :func:`_layer0_hypotheses` is carried through :func:`_fix_layers` on
    a copy of the model; those within ``POLISH_FACTOR`` of the lowest L-BFGS loss are
    polished by :func:`~kanpde.interpret.refit.polish_symbolic`. The winner has the lowest
    loss on fresh validation points (``validation``: never the error against a solution),
    ties (within ``1e-20`` of the starting validation loss) going to fewer spline edges,
    then to simpler primitives. Its formula is read by
    :func:`~kanpde.interpret.closed_form.read_formula` when no spline edge is left.
    """
    start = float(loss(model).detach())
    v_start = validation(model)
    trials = []
    cache: dict = {}
    for first in _layer0_hypotheses(model, x, options, cache):
        trial = copy.deepcopy(model)
        records, lbfgs_loss = _fix_layers(trial, x, loss, first, options, cache)
        label = {None: "per-edge best fits", "best": "every best fit"}.get(first) or (
            f"primitive basis of input {first[len(BASIS):]}'s factors"
            if first.startswith(BASIS) else f"all {first}")
        trials.append({"trial": trial, "records": records, "lbfgs": lbfgs_loss,
                       "final": lbfgs_loss, "label": label, "polished": False})
        log(f"  layer 0 as {label}: L-BFGS loss {lbfgs_loss:.3e}")
    finite = [t["lbfgs"] for t in trials if math.isfinite(t["lbfgs"])]
    lead = min(finite) if finite else math.inf
    for t in trials:  # Levenberg-Marquardt only on the leaders after L-BFGS
        if options.refit_steps > 0 and math.isfinite(t["lbfgs"]) and \
                t["lbfgs"] <= POLISH_FACTOR * lead:
            t["final"] = polish_symbolic(t["trial"], loss,
                                         max_nfev=min(30, options.refit_steps))[1]
            t["polished"] = True
    tried, best = [], None
    for t in trials:
        records, final, label = t["records"], t["final"], t["label"]
        n_spline = sum(r["kind"] == "spline" for r in records)
        cost = sum(primitive(r["kind"]).complexity if r["kind"] not in ("spline", "pruned")
                   else 4
                   for r in records)
        v = validation(t["trial"])
        v = v if math.isfinite(v) else math.inf
        l2 = l2_error(t["trial"], problem)  # for the record only
        tried.append({"layer0": label, "loss_lbfgs": t["lbfgs"], "loss": final,
                      "polished": t["polished"], "loss_validation": v, "l2_rel": l2,
                      "spline_edges": n_spline,
                      "edges": [{k: r[k] for k in ("layer", "i", "j", "kind")}
                                for r in records]})
        log(f"  layer 0 as {label}: loss {t['lbfgs']:.3e} (L-BFGS) -> {final:.3e}"
            f"{' (Levenberg-Marquardt)' if t['polished'] else ' (not polished)'}, "
            f"validation loss {v:.3e}, {n_spline} spline edges (l2_rel {l2:.3e})")
        key = (max(v, 1e-20 * v_start), n_spline, cost)
        if best is None or key < best[0]:
            best = (key, t["trial"], records, t["lbfgs"], final, l2, label, v)
    assert best is not None
    _, trial, records, lbfgs_loss, final, refit_l2, label, v_best = best
    model.load_state_dict(trial.state_dict())
    log("  edges c f(a h + b) + d (h: each layer's inputs; layer 0's are the coordinates "
        "as the network sees them, normalised when the run normalises inputs):")
    for r in records:
        chosen = r["chosen"]
        fit = "no valid fit" if chosen is None else (
            f"{chosen['name']} R2={chosen['r2']:.8f} a,b,c,d=" +
            ",".join(f"{v:.4g}" for v in chosen["params"]))
        log(f"  edge layer {r['layer']} ({r['i']}->{r['j']}): {r['kind']:<8} [{fit}]")
    splines = [f"layer {r['layer']} ({r['i']}->{r['j']})" for r in records
               if r["kind"] == "spline"]
    rec: dict[str, Any] = {"edges": records, "hypotheses": tried, "chosen": label,
                           "selected_by": "validation loss on fresh collocation points",
                           "loss_start": start, "loss_validation_start": v_start,
                           "loss_lbfgs": lbfgs_loss, "loss_refit": final,
                           "loss_validation": v_best, "l2_rel_refit": refit_l2,
                           "spline_edges": splines}
    log(f"symbolic: layer 0 as {label}; loss {start:.3e} -> {lbfgs_loss:.3e} (L-BFGS after "
        f"each layer) -> {final:.3e} (Levenberg-Marquardt on the symbolic constants); "
        f"validation loss {v_best:.3e}; l2_rel {refit_l2:.3e}")
    try:
        formula = kan_formula(model, problem.coords)
    except ValueError as err:
        rec["formula_error"] = str(err)
        log(f"no formula: {err}")
        return rec
    points = x_eval.cpu().numpy()
    reference = problem.solution(x_eval).detach().cpu().numpy()
    raw = formula_error(formula, points, reference)
    notes: list[str] = []
    if formula.splines:  # no closed form: expanded only, constants as fitted
        outputs = []
        for e in formula.outputs:
            expanded, note = sympy_call("expand", e, options.simplify_timeout)
            outputs.append(expanded)
            notes += [note] if note else []
        history: list[dict[str, Any]] = []
        v_formula = v_best
    else:
        read = read_formula(formula.outputs, formula.symbols, loss, validation,
                            floor=max(1e-22 * validation_scale(validation, problem),
                                      1e-30), timeout=options.simplify_timeout)
        outputs, history, notes = read["outputs"], read["history"], read["notes"]
        v_formula = read["loss_validation"]
    simple = Formula(outputs, formula.symbols, formula.splines, formula.functions)
    err = formula_error(simple, points, reference)
    text = [f"{f} = {e}" for f, e in zip(problem.fields, simple.outputs, strict=True)]
    rec.update({"formula": text, "formula_raw": [str(e) for e in formula.outputs],
                "formula_l2_rel": err, "formula_raw_l2_rel": raw,
                "formula_loss_validation": v_formula, "formula_steps": history,
                "notes": notes})
    lines = [f"# closed form of the KAN trained on {problem.name}", *text, "",
             f"validation loss (fresh collocation points): {v_formula:.3e}",
             f"relative L2 error against the reference on {points.shape[0]} evaluation "
             f"points: {err:.3e} (before snapping and refit: {raw:.3e})",
             "edges still splines (phi_l_i_j): " + (", ".join(splines) or "none"),
             *[f"note: {n}" for n in notes]]
    claim = None
    if splines:  # a partial formula is no closed form
        claim = (f"no closed form claimed: {len(splines)} edge(s) stay splines; the partial "
                 f"formula (splines as phi_l_i_j) has relative L2 error {err:.3e}")
    elif not v_formula <= CLAIM_FACTOR * v_start:
        claim = (f"no closed form claimed: the formula's validation loss {v_formula:.3e} is "
                 f"above {CLAIM_FACTOR:g}x the trained network's ({v_start:.3e}); its "
                 f"relative L2 error is {err:.3e}")
    rec["claimed"] = claim is None
    if claim is not None:
        rec["claim"] = claim
        lines.insert(1 + len(text), f"# {claim}")
        log(claim)
    (out / "formula.txt").write_text("\n".join(lines) + "\n")
    for line in text:
        log(line)
    for n in notes:
        log(f"note: {n}")
    log(f"formula l2_rel {err:.3e}; spline edges: {', '.join(splines) or 'none'}; "
        f"wrote {out / 'formula.txt'}")
    return rec


def validation_scale(validation: Callable[[Any], float], problem) -> float:
    """Validation loss of the zero field: the scale below which losses are round-off."""
    from kanpde.nn.kan import KAN

    zero = KAN([len(problem.coords), 1, len(problem.fields)], grid_size=1, spline_order=3)
    for p in zero.parameters():
        p.data.zero_()
    v = validation(zero)
    return v if math.isfinite(v) and v > 0 else 1.0
