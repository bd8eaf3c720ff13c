"""The sections of a solver configuration: the vocabularies, value checkers and frozen
dataclasses of ``[model]``, ``[sampling]``, ``[[stages]]``, ``[weighting]``, ``[evaluation]``,
``[checkpoint]``, ``[regularization]``, ``[scaling]`` and ``[distributed]``. Public through
:mod:`kanpde.training.config`, which assembles them into a
:class:`~kanpde.training.config.SolverConfig` and reads files.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kanpde.core.activations import ACTIVATIONS
from kanpde.problem.sampling import SAMPLERS
from kanpde.training.jacobian import PATHS as JACOBIAN_PATHS

MODEL_KINDS = ("kan", "mlp")
EMBEDDINGS = ("none", "fourier", "periodic")
ADAPTIVE = ("none", "rad", "rar-d")
OPTIMIZERS = ("adam", "lbfgs", "lm", "gauss_newton")
TIME_CLOCKS = ("wall", "cpu")
SECOND_ORDER = ("lm", "gauss_newton")
DAMPING_SCALINGS = ("diag", "identity")
SCHEDULES = ("constant", "exponential", "cosine")
WEIGHTINGS = ("fixed", "gradnorm")
SCALINGS = ("strong", "weak")
BACKENDS = ("auto", "gloo", "nccl")
OUTPUT_SCALINGS = ("auto", "none")
RESIDUAL_SCALINGS = ("auto", "none")
LOSS_SCALINGS = ("initial", "none")
#: default learning rate per optimiser (L-BFGS, Gauss-Newton: the initial line-search step;
#: Levenberg-Marquardt does not use it)
DEFAULT_LR = {"adam": 1e-3, "lbfgs": 1.0, "lm": 1.0, "gauss_newton": 1.0}
#: defaults of the second-order stage keys (left out of a config dict when not given)
SECOND_ORDER_DEFAULTS = {"damping": 1e-3, "damping_up": 10.0, "damping_down": 10.0,
                         "damping_scaling": "diag", "chunk_size": 0, "max_params": 5000,
                         "jacobian": "auto", "cg_steps": 50}
#: the second-order keys only one of the two methods uses
_LM_ONLY = ("chunk_size", "max_params", "jacobian")
_GN_ONLY = ("cg_steps",)


class _Fault(ValueError):
    """A value fault without location (wrapped into a :class:`ConfigError` by the parser)."""


# ------------------------------------------------------------------------------ checkers ---
# A checker takes a raw TOML value and returns the normalised value or raises _Fault.

Checker = Callable[[Any], Any]


def _describe(value: Any) -> str:
    return repr(value) if isinstance(value, str) else f"{value!r}"


def _int(minimum: int | None = None) -> Checker:
    def check(v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise _Fault(f"must be an integer, got {_describe(v)}")
        if minimum is not None and v < minimum:
            raise _Fault(f"must be >= {minimum}, got {v}")
        return v
    return check


def _float(gt: float | None = None, ge: float | None = None, le: float | None = None) -> Checker:
    def check(v: Any) -> float:
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise _Fault(f"must be a number, got {_describe(v)}")
        v = float(v)
        if v != v or v in (float("inf"), float("-inf")):
            raise _Fault(f"must be finite, got {v}")
        if gt is not None and not v > gt:
            raise _Fault(f"must be > {gt:g}, got {v:g}")
        if ge is not None and not v >= ge:
            raise _Fault(f"must be >= {ge:g}, got {v:g}")
        if le is not None and not v <= le:
            raise _Fault(f"must be <= {le:g}, got {v:g}")
        return v
    return check


def _bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise _Fault(f"must be true or false, got {_describe(v)}")
    return v


def _str(v: Any) -> str:
    if not isinstance(v, str):
        raise _Fault(f"must be a string, got {_describe(v)}")
    return v


def _choice(options: tuple[str, ...]) -> Checker:
    def check(v: Any) -> str:
        if v not in options:
            raise _Fault(f"must be one of {', '.join(repr(o) for o in options)}, "
                         f"got {_describe(v)}")
        return v
    return check


def _device(v: Any) -> str:
    if not isinstance(v, str) or not re.fullmatch(r"cpu|cuda(:\d+)?", v):
        raise _Fault(f"must be 'cpu', 'cuda' or 'cuda:N', got {_describe(v)}")
    return v


def _list(item: Checker, min_len: int = 0) -> Checker:
    def check(v: Any) -> tuple:
        if not isinstance(v, list | tuple):
            raise _Fault(f"must be a list, got {_describe(v)}")
        if len(v) < min_len:
            raise _Fault(f"must have at least {min_len} entries, got {len(v)}")
        out = []
        for i, x in enumerate(v):
            try:
                out.append(item(x))
            except _Fault as err:
                raise _Fault(f"entry {i}: {err}") from None
        return tuple(out)
    return check


def _range(v: Any) -> tuple[float, float]:
    pair = _list(_float(), 2)(v)
    if len(pair) != 2 or not pair[0] < pair[1]:
        raise _Fault(f"must be [a, b] with a < b, got {list(v)!r}")
    return pair


def _weights(v: Any) -> tuple[tuple[str, float], ...]:
    if not isinstance(v, Mapping):
        raise _Fault(f"must be a table of term name = weight, got {_describe(v)}")
    out = []
    for k, w in v.items():
        try:
            out.append((str(k), _float(ge=0.0)(w)))
        except _Fault as err:
            raise _Fault(f"{k}: {err}") from None
    return tuple(out)


def _optional(check: Checker) -> Checker:
    def inner(v: Any) -> Any:
        return None if v is None else check(v)
    return inner


def _opt(default: Any, check: Checker, doc: str = "") -> Any:
    """A dataclass field with a checker in its metadata."""
    return field(default=default, metadata={"check": check, "doc": doc})


# ------------------------------------------------------------------------------ sections ---


class _Section:
    """Common methods of the config sections."""

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the section (no ``None`` values)."""
        return _to_dict(self)


@dataclass(frozen=True)
class ModelConfig(_Section):
    """``[model]``: the ansatz. Inputs and outputs come from the problem.

    Attributes:
        kind: ``"kan"`` or ``"mlp"``.
        widths: hidden widths only (``[10]`` gives ``[d, 10, m]``).
        mult: KAN multiplication nodes per hidden layer, counted in ``widths`` (the last
            ones of each layer; ``[]``: none). See :mod:`kanpde.nn.kan`.
        factors: two disjoint lists of coordinate names, ``[[...], [...]]``: the first
            factor of every multiplication node of the first hidden layer sees only the
            first coordinates, the second factor only the second (the other layer-0 edges
            into the factors are masked and not counted as parameters: the node is a
            product of functions of separate variables, as in separation of variables).
            Needs ``mult`` in the first hidden layer and ``embedding = "none"``; plain
            first-layer nodes still see every coordinate, and when every first-layer node
            is a product each coordinate must be named once. ``[]``: every factor sees
            every coordinate.
        linear_output: KAN only: the last layer's edges are linear, ``c (a h + b) + d``
            (symbolic ``x`` edges, four trainable numbers each): the output is a weighted
            sum of the last hidden nodes; with multiplication nodes, a sum of products as
            in separation of variables.
        grid_size: KAN grid intervals ``G`` (before any extension).
        spline_order: KAN spline order ``k``.
        grid_range: KAN base grid range ``[a, b]``.
        noise_scale: KAN initial spline noise.
        activation: MLP activation.
        embedding: ``"none"``, ``"fourier"`` (random Fourier features) or ``"periodic"``.
        fourier_features: number of Fourier frequencies (output ``2F`` features).
        fourier_sigma: standard deviation of the Fourier frequencies (normalised coords).
        periodic: coordinate names made exactly periodic with period = bounding-box length.
        harmonics: harmonics per periodic coordinate.
        normalize_inputs: map the domain's bounding box onto the grid range (KAN) or
            ``[-1, 1]`` (MLP) first.
    """

    kind: str = _opt("kan", _choice(MODEL_KINDS))
    widths: tuple[int, ...] = _opt((10,), _list(_int(1), 1))
    mult: tuple[int, ...] = _opt((), _list(_int(0)))
    factors: tuple[tuple[str, ...], ...] = _opt((), _list(_list(_str, 1)))
    linear_output: bool = _opt(False, _bool)
    grid_size: int = _opt(5, _int(1))
    spline_order: int = _opt(3, _int(1))
    grid_range: tuple[float, float] = _opt((-1.0, 1.0), _range)
    noise_scale: float = _opt(0.5, _float(ge=0.0))
    activation: str = _opt("tanh", _choice(tuple(ACTIVATIONS)))
    embedding: str = _opt("none", _choice(EMBEDDINGS))
    fourier_features: int = _opt(16, _int(1))
    fourier_sigma: float = _opt(1.0, _float(gt=0.0))
    periodic: tuple[str, ...] = _opt((), _list(_str))
    harmonics: int = _opt(1, _int(1))
    normalize_inputs: bool = _opt(True, _bool)


@dataclass(frozen=True)
class SamplingConfig(_Section):
    """``[sampling]``: collocation points, resampling and residual-adaptive refinement.

    Attributes:
        interior: interior points.
        boundary: points per boundary condition.
        initial: points per initial condition (``None``: as ``boundary``).
        method: sampler (see :mod:`kanpde.problem.sampling`).
        resample_every: redraw all points every this many steps (0: never).
        adaptive: ``"none"``, ``"rad"`` (replace interior points) or ``"rar-d"`` (add points).
        adaptive_every: steps between adaptive events.
        adaptive_candidates: candidate points per adaptive event.
        rad_k, rad_c: density ``|r|^k / mean(|r|^k) + c``.
        rar_add: points added per RAR-D event.
    """

    interior: int = _opt(1000, _int(1))
    boundary: int = _opt(100, _int(1))
    initial: int | None = _opt(None, _optional(_int(1)))
    method: str = _opt("uniform", _choice(SAMPLERS))
    resample_every: int = _opt(0, _int(0))
    adaptive: str = _opt("none", _choice(ADAPTIVE))
    adaptive_every: int = _opt(0, _int(0))
    adaptive_candidates: int = _opt(10000, _int(1))
    rad_k: float = _opt(1.0, _float(ge=0.0))
    rad_c: float = _opt(1.0, _float(ge=0.0))
    rar_add: int = _opt(100, _int(1))

    @property
    def initial_count(self) -> int:
        """Points per initial condition."""
        return self.boundary if self.initial is None else self.initial


@dataclass(frozen=True)
class StageConfig(_Section):
    """``[[stages]]``: one optimiser stage.

    Attributes:
        optimizer: ``"adam"``, ``"lbfgs"``, ``"lm"`` (Levenberg-Marquardt) or
            ``"gauss_newton"`` (:mod:`kanpde.training.second_order`).
        steps: iterations (L-BFGS: iterations, each with its strong-Wolfe line search).
        lr: learning rate (default 1e-3 for Adam, 1.0 for L-BFGS).
        schedule: ``"constant"``, ``"exponential"`` (``lr gamma^step``) or ``"cosine"``
            (from ``lr`` to ``lr_min``).
        gamma: exponential decay per step.
        lr_min: final cosine learning rate.
        history_size: L-BFGS memory.
        tolerance_grad: L-BFGS stops ("converged") when ``max |grad| <= tolerance_grad``.
        tolerance_change: L-BFGS stops ("converged") when the loss or the step changes less.
        grid_extend: extend the KAN grid to this ``G`` before the stage.
        grid_update: move the KAN knots to the current interior points before the stage.
        grid_eps: uniform fraction of the updated knots (see ``KAN.update_grid``).
        grid_update_tol: how far (relative, per layer) an update may move each layer's
            outputs at the point sets (see ``KAN.update_grid``): the default keeps the
            function to round-off; a large value (1) lets the knots move as pykan's
            ``update_grid_from_samples`` does, under the loss guard below (such a move can
            multiply the loss by 10-100 before training recovers; raise the guard to let it
            through).
        grid_update_max_ratio: an update that multiplies the loss by more than this factor
            is rolled back (the old knots and coefficients are restored; ``grid_events``
            records why).
        max_time_s: wall-time cap of the stage (stops with "max_time").
        keep_memory: L-BFGS only: continue the previous L-BFGS stage's curvature memory
            (its ``history_size`` pairs, last direction and step) instead of starting
            afresh, when the parameter shapes did not change (a grid update keeps them, a
            grid extension does not). pykan keeps its optimiser across the grid updates
            inside one ``fit`` call; its recipe (``kanpde.tune.budgets.pykan_solver``)
            sets this on every stage that starts with such an update.

    Second-order stages (``"lm"``, ``"gauss_newton"``; see
    :mod:`kanpde.training.second_order`) count ``steps`` in iterations (one Jacobian or one
    CG solve each), stop on ``tolerance_grad`` (``max |grad L|``) and on ``tolerance_change``
    taken *relative* (loss change over the loss, step over the parameter norm), and read
    (``None``: the default in :data:`SECOND_ORDER_DEFAULTS`):

    Attributes:
        damping: initial damping ``lambda >= 0`` (0: undamped Gauss-Newton steps).
        damping_up: factor ``> 1`` raising ``lambda`` after a rejected or poor step.
        damping_down: factor ``> 1`` lowering ``lambda`` after a very good step.
        damping_scaling: ``"diag"`` (``D = diag(J^T J)``, Marquardt) or ``"identity"``
            (``D = I``; the only choice of ``gauss_newton``).
        chunk_size: points per Jacobian chunk (``lm``; 0: chosen by path).
        max_params: largest parameter count of the dense ``lm`` path.
        jacobian: ``"auto"``, ``"vmap"``, ``"reverse"`` or ``"loop"`` (``lm``; see
            :mod:`kanpde.training.jacobian`).
        cg_steps: conjugate-gradient budget per ``gauss_newton`` iteration.
    """

    optimizer: str = _opt("adam", _choice(OPTIMIZERS))
    steps: int = _opt(1000, _int(1))
    lr: float = _opt(None, _float(gt=0.0))  # resolved per optimiser by the parser
    schedule: str = _opt("constant", _choice(SCHEDULES))
    gamma: float = _opt(1.0, _float(gt=0.0, le=1.0))
    lr_min: float = _opt(0.0, _float(ge=0.0))
    history_size: int = _opt(50, _int(1))
    tolerance_grad: float = _opt(1e-12, _float(ge=0.0))
    tolerance_change: float = _opt(1e-16, _float(ge=0.0))
    grid_extend: int | None = _opt(None, _optional(_int(1)))
    grid_update: bool = _opt(False, _bool)
    grid_eps: float = _opt(0.02, _float(ge=0.0, le=1.0))
    grid_update_tol: float = _opt(1e-9, _float(ge=0.0))
    grid_update_max_ratio: float = _opt(2.0, _float(ge=1.0))
    max_time_s: float | None = _opt(None, _optional(_float(gt=0.0)))
    keep_memory: bool = _opt(False, _bool)
    damping: float | None = _opt(None, _optional(_float(ge=0.0)))
    damping_up: float | None = _opt(None, _optional(_float(gt=1.0)))
    damping_down: float | None = _opt(None, _optional(_float(gt=1.0)))
    damping_scaling: str | None = _opt(None, _optional(_choice(DAMPING_SCALINGS)))
    chunk_size: int | None = _opt(None, _optional(_int(0)))
    max_params: int | None = _opt(None, _optional(_int(1)))
    jacobian: str | None = _opt(None, _optional(_choice(JACOBIAN_PATHS)))
    cg_steps: int | None = _opt(None, _optional(_int(1)))

    def __post_init__(self) -> None:
        if self.lr is None:
            object.__setattr__(self, "lr", DEFAULT_LR.get(self.optimizer, 1e-3))


def stage_option(stage: StageConfig, key: str) -> Any:
    """A second-order key of ``stage``, or its default when not given."""
    value = getattr(stage, key)
    if value is None and key == "damping_scaling" and stage.optimizer == "gauss_newton":
        return "identity"
    return SECOND_ORDER_DEFAULTS[key] if value is None else value


@dataclass(frozen=True)
class WeightingConfig(_Section):
    """``[weighting]``: loss weights.

    Attributes:
        kind: ``"fixed"`` or ``"gradnorm"`` (Wang, Teng, Perdikaris 2021 learning-rate
            annealing, see :mod:`kanpde.training.weighting`).
        weights: ``term name -> weight`` (residual names and condition labels) or group
            ``residuals``/``conditions -> factor`` (multiplying the default of the terms not
            named: 1 for residuals, the condition's ``weight``).
        update_every: steps between grad-norm updates.
        alpha: moving-average memory ``lambda <- alpha lambda + (1 - alpha) lambda_hat``.
        causal: causal weighting of the residuals over time (Wang, Sankaran, Perdikaris 2022).
        causal_eps: ``epsilon`` in ``w_i = exp(-epsilon sum_{j<i} L_j)``.
        causal_bins: number of time bins.
    """

    kind: str = _opt("fixed", _choice(WEIGHTINGS))
    weights: tuple[tuple[str, float], ...] = _opt((), _weights)
    update_every: int = _opt(100, _int(1))
    alpha: float = _opt(0.9, _float(ge=0.0, le=1.0))
    causal: bool = _opt(False, _bool)
    causal_eps: float = _opt(1.0, _float(ge=0.0))
    causal_bins: int = _opt(16, _int(1))

    @property
    def weight_map(self) -> dict[str, float]:
        """``weights`` as a dict."""
        return dict(self.weights)


@dataclass(frozen=True)
class EvaluationConfig(_Section):
    """``[evaluation]``: error evaluation every ``every`` steps (0: only at the end)."""

    every: int = _opt(100, _int(0))


@dataclass(frozen=True)
class CheckpointConfig(_Section):
    """``[checkpoint]``: checkpoint every ``every`` steps (0: only at stage ends/interrupts)."""

    every: int = _opt(500, _int(0))


@dataclass(frozen=True)
class RegularizationConfig(_Section):
    """``[regularization]``: sparsity penalty of a KAN (Liu et al. 2024, §2.5.1).

    Added to the loss: ``l1 * sum_l |Phi_l|_1 + entropy * sum_l S(Phi_l)``, i.e. the paper's
    ``lambda (sum_l |Phi_l|_1 + mu sum_l S(Phi_l))`` with ``lambda = l1`` and
    ``mu = entropy / l1``. ``|phi|_1`` is the mean of ``|phi(x)|`` over the interior
    collocation points, ``|Phi_l|_1`` its sum over the layer's edges and ``S`` the entropy of
    the normalised ``|phi|_1`` (see :mod:`kanpde.training.regularization`). Both 0 (the
    default): off. KAN models only.

    Attributes:
        l1: weight of the L1 term.
        entropy: weight of the entropy term.
    """

    l1: float = _opt(0.0, _float(ge=0.0))
    entropy: float = _opt(0.0, _float(ge=0.0))

    @property
    def active(self) -> bool:
        """Whether the penalty is on."""
        return self.l1 > 0.0 or self.entropy > 0.0


@dataclass(frozen=True)
class DistributedConfig(_Section):
    """``[distributed]``: data-parallel training (used only when launched with several
    processes, e.g. by ``torchrun``; see :mod:`kanpde.training.distributed`).

    Attributes:
        scaling: ``"strong"`` (the point counts of ``[sampling]`` are totals, split between
            the processes; the result does not depend on their number) or ``"weak"`` (the
            counts are per process; each draws its own points).
        backend: ``"auto"`` (NCCL on CUDA, gloo on CPU), ``"gloo"`` or ``"nccl"``.
        timeout_s: seconds a collective waits for the other processes before failing.
    """

    scaling: str = _opt("strong", _choice(SCALINGS))
    backend: str = _opt("auto", _choice(BACKENDS))
    timeout_s: float = _opt(300.0, _float(gt=0.0))


@dataclass(frozen=True)
class ScalingConfig(_Section):
    """``[scaling]``: how a solve makes the problem dimensionless
    (:mod:`kanpde.training.scaling`). Inputs are scaled by ``model.normalize_inputs``.

    Attributes:
        outputs: ``"auto"``: the network predicts ``u / U`` for characteristic field scales
            ``U`` (the problem's ``scales``, else estimated from its conditions and source
            terms); ``"none"``: it predicts ``u``.
        residuals: ``"auto"``: every residual and condition is divided by a characteristic
            magnitude of its terms at those scales, so each loss term starts near unit
            size whatever the units; ``"none"``: terms in the problem's units.
        loss: ``"initial"``: the optimisers see the loss divided by its value at the start
            of the run, so their tolerances (and Adam's epsilon, L-BFGS's curvature test)
            are relative to it; ``"none"``: the loss as it is.
    """

    outputs: str = _opt("auto", _choice(OUTPUT_SCALINGS))
    residuals: str = _opt("none", _choice(RESIDUAL_SCALINGS))
    loss: str = _opt("initial", _choice(LOSS_SCALINGS))


def _default_stages() -> tuple[StageConfig, ...]:
    return (StageConfig(optimizer="adam", steps=1000, lr=1e-3),)


def _to_dict(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        out = {}
        for f in dataclasses.fields(obj):
            v = getattr(obj, f.name)
            if v is None or f.metadata.get("internal"):
                continue
            if f.name == "weights":
                out[f.name] = dict(v)
            else:
                out[f.name] = _to_dict(v)
        return out
    if isinstance(obj, tuple):
        return [_to_dict(v) for v in obj]
    return obj
