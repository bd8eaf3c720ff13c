"""A PDE problem: domain, residuals, conditions, parameters and a reference solution.

A problem file is a Python module that defines ``problem = Problem(...)``::

    problem = Problem(
        name="poisson2d_sinsin",
        coords=("x", "y"),
        domain=Box([-1, -1], [1, 1], coord_names=("x", "y")),
        residuals={"pde": lambda s: s.u.laplacian() + 2 * pi**2 * sin(pi * s.x) * sin(pi * s.y)},
        conditions=[Dirichlet(on="boundary", value=0.0)],
        exact=lambda x: sin(pi * x[:, 0]) * sin(pi * x[:, 1]),
    )

Residuals are written against a :class:`~kanpde.problem.scope.Scope` ``s``: coordinates
(``s.x``), fields with derivatives by coordinate name (``s.u.d("x", "x")``,
``s.u.laplacian()``), constants and unknown parameters (``s.nu``). The second-order channels
a problem needs are found by running its residuals once on a recording probe, so the same
file runs on the "jet" and "autograd" engines and never names either.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from kanpde.core.engines import Engine, compute_jet
from kanpde.core.jet import Channels, Jet, channel_matrices
from kanpde.nn.hard_constraint import HardConstraint
from kanpde.problem.conditions import Condition, ConditionPoints
from kanpde.problem.manufactured import Manufactured
from kanpde.problem.scope import DerivativeRecorder, FieldView, JetDerivatives, ProblemError, Scope
from kanpde.problem.usercode import call_user, misshaped, user_function

Residual = Callable[[Scope], Tensor]


@dataclass(frozen=True)
class Problem:
    """A PDE problem. Immutable; build variants with :func:`dataclasses.replace`.

    Attributes:
        name: short identifier.
        coords: coordinate names in tensor column order (time last when present).
        domain: a :mod:`kanpde.problem.geometry` domain of dimension ``len(coords)``; boxes,
            intervals and space-time cylinders take their part names from ``coords`` and
            ``time`` (:meth:`~kanpde.problem.geometry.Domain.with_coords`).
        residuals: ``{name: r(s) -> (N,)}``: the PDE(s), zero for the solution; a
            :func:`~kanpde.problem.manufactured.manufactured` operator takes its source
            term from ``exact``.
        conditions: boundary, initial and data conditions.
        fields: output field names (model output columns).
        constants: fixed named parameters, visible in residuals as ``s.<name>``.
        unknowns: unknown scalar parameters with initial guesses (inverse problems).
        exact: exact solution ``(N, d) -> (N,)`` or ``(N, m)``; ``None`` when unknown.
        reference: reference data (a :class:`kanpde.problem.reference.Reference`), when no
            ``exact``. Its columns are matched to ``fields`` by name when it names its
            fields (a ``fields`` attribute), by position otherwise. With neither ``exact``
            nor ``reference`` the problem is solved all the same and its runs report
            residual diagnostics instead of errors.
        true_unknowns: the true values of the unknowns, for reporting.
        time: name of the time coordinate (must be the last one), or ``None``.
        eval_resolution: points per axis of the evaluation grid (``d <= 2``).
        eval_points: number of random evaluation points (``d > 2`` or non-box domains).
        hard_constraint: optional hard constraint ``u = g + D N`` around the network: a
            mapping ``{"distance": D, "particular": g}``, a pair ``(D, g)``, a
            :class:`~kanpde.nn.hard_constraint.HardConstraint` or a callable ``net -> module``
            (see :mod:`kanpde.training.model`).
        gauge: fields determined only up to an additive constant (a pressure in
            incompressible flow, a potential with pure Neumann conditions), e.g.
            ``("p",)``. Their errors are computed after removing the mean difference
            between prediction and solution over the evaluation points, and ``kanpde
            check`` accepts an exact solution that meets their value conditions up to a
            constant.
        region: where the errors are measured: a function ``(N, d) -> (N,)`` bool of the
            evaluation points (e.g. leaving out the singular corners of a reference), or
            ``None`` for all of them. The summary says when one was used.
        scales: characteristic magnitudes of the fields by name (``{"u": 1e3}``), in the
            fields' units: the network predicts ``u / U`` (:mod:`kanpde.training.scaling`).
            Fields left out are estimated from the conditions' data and the residuals'
            source terms. Coordinates need none: the domain's bounding box gives them.
        description: free text (the file's docstring by default).
        source_path: the problem file it was loaded from (set by :func:`load_problem`;
            named in every error raised while evaluating the problem's functions).
        source_sha256: SHA-256 of that file's bytes (checkpoints record it, so a run does
            not silently resume on an edited problem).
        source: that file's text (results store it, so a run can be explained after the
            file was edited, moved or deleted).
    """

    name: str
    coords: tuple[str, ...]
    domain: object
    residuals: Mapping[str, Residual]
    conditions: Sequence[Condition] = ()
    fields: tuple[str, ...] = ("u",)
    constants: Mapping[str, float] = field(default_factory=dict)
    unknowns: Mapping[str, float] = field(default_factory=dict)
    exact: Callable[[Tensor], Tensor] | None = None
    reference: object | None = None
    true_unknowns: Mapping[str, float] = field(default_factory=dict)
    time: str | None = None
    eval_resolution: int | None = None
    eval_points: int = 10_000
    hard_constraint: object | None = None
    gauge: tuple[str, ...] = ()
    region: Callable[[Tensor], Tensor] | None = None
    scales: Mapping[str, float] = field(default_factory=dict)
    description: str = ""
    source_path: str = ""
    source_sha256: str = ""
    source: str = field(default="", repr=False, compare=False)

    def __post_init__(self) -> None:
        coords = tuple(self.coords)
        fields = tuple(self.fields)
        object.__setattr__(self, "coords", coords)
        object.__setattr__(self, "fields", fields)
        names = list(coords) + list(fields) + list(self.constants) + list(self.unknowns)
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ProblemError(f"names used twice among coordinates, fields and parameters: "
                               f"{', '.join(dupes)}")
        if getattr(self.domain, "dim", None) != len(coords):
            raise ProblemError(f"domain has dimension {getattr(self.domain, 'dim', '?')} but "
                               f"{len(coords)} coordinates are named ({', '.join(coords)})")
        if self.time is not None and (self.time not in coords or coords[-1] != self.time):
            raise ProblemError(f"time coordinate {self.time!r} must be the last coordinate "
                               f"(coordinates: {', '.join(coords)})")
        if hasattr(self.domain, "with_coords"):  # part names follow the coordinate names
            try:
                object.__setattr__(self, "domain", self.domain.with_coords(coords, self.time))
            except ValueError as err:
                raise ProblemError(str(err)) from err
        self._check_scales(fields)
        if not self.residuals:
            raise ProblemError("problem has no residuals")
        for key, fn in self.residuals.items():
            if not callable(fn):
                raise ProblemError(f"residual {key!r} is not callable")
        object.__setattr__(self, "residuals", {  # manufactured sources from this exact
            k: fn.bind(self, k) if isinstance(fn, Manufactured) else fn
            for k, fn in self.residuals.items()})
        if not self.conditions and not self.unknowns and self.hard_constraint is None:
            raise ProblemError("problem has no conditions (boundary, initial or data)")
        conds = tuple(c.bind(coords, self.time) if isinstance(c, Condition) else c
                      for c in self.conditions)
        for c in conds:
            if not isinstance(c, Condition):
                raise ProblemError(f"conditions must be kanpde.problem.conditions types, got "
                                   f"{type(c).__name__}")
            if c.field not in fields:
                raise ProblemError(f"condition {type(c).__name__} names unknown field "
                                   f"{c.field!r} (fields: {', '.join(fields)})")
        object.__setattr__(self, "conditions", conds)
        gauge = (self.gauge,) if isinstance(self.gauge, str) else tuple(self.gauge)
        unknown = [g for g in gauge if g not in fields]
        if unknown:
            raise ProblemError(f"gauge names unknown field(s) {', '.join(map(repr, unknown))} "
                               f"(fields: {', '.join(fields)})")
        object.__setattr__(self, "gauge", gauge)
        if self.region is not None and not callable(self.region):
            raise ProblemError(f"region must be a function of the points (N, d) -> (N,) "
                               f"bool, got {type(self.region).__name__}")
        object.__setattr__(self, "_ref_columns", self._reference_columns())
        object.__setattr__(self, "_keys", self._probe())

    def _reference_columns(self) -> list[int] | None:
        """Columns of the reference that hold ``fields``, in order, when the reference
        names its fields (``None``: by position)."""
        if self.exact is not None or self.reference is None:
            return None
        names = getattr(self.reference, "fields", None)
        if names is None:
            return None
        names = tuple(str(n) for n in names)
        missing = [f for f in self.fields if f not in names]
        if missing:
            raise ProblemError(f"the reference has no field(s) {', '.join(missing)}; it holds "
                               f"{', '.join(names)}")
        columns = [names.index(f) for f in self.fields]
        return None if columns == list(range(len(names))) else columns

    @property
    def has_solution(self) -> bool:
        """Whether errors can be measured: an exact solution or a reference is given."""
        return self.exact is not None or self.reference is not None
    def _check_scales(self, fields: tuple[str, ...]) -> None:
        if not isinstance(self.scales, Mapping):
            raise ProblemError(f"scales must be a mapping {{field: magnitude}}, got "
                               f"{type(self.scales).__name__}")
        for key, value in self.scales.items():
            if key not in fields:
                raise ProblemError(f"scales: {key!r} is not a field (fields: "
                                   f"{', '.join(fields)})")
            try:
                number = float(value)
            except (TypeError, ValueError):
                number = math.nan
            if not (math.isfinite(number) and number > 0):
                raise ProblemError(f"scales: {key!r}: must be a positive finite number, "
                                   f"got {value!r}")
        object.__setattr__(self, "scales", {k: float(v) for k, v in self.scales.items()})

    # ---------------------------------------------------------------- derivatives ----------

    def _probe(self) -> list[tuple]:
        """Run every residual on a recording probe; return the second-order channel keys."""
        gen = torch.Generator().manual_seed(0)
        x = self.domain.sample_interior(4, gen)
        recorder = DerivativeRecorder(self.coords, self.time, x.shape[0], x)
        scope = Scope(x, self.coords,
                      {f: FieldView(f, x.new_zeros(x.shape[0]), recorder) for f in self.fields},
                      self.parameters(x))
        for key, fn in self.residuals.items():
            what = self.what(f"residual {key!r}")
            self._check_output(call_user(fn, what, scope), x.shape[0], what, fn)
        return recorder.keys

    def what(self, name: str) -> str:
        """``name`` (a residual, condition or the exact solution) as error messages say it:
        prefixed with the problem file once the problem was loaded from one."""
        return f"problem file '{self.source_path}': {name}" if self.source_path else name

    def condition_title(self, condition: Condition) -> str:
        """``"condition 2 'inflow' (Dirichlet on x_min)"``: a condition in error messages."""
        index = next((i for i, c in enumerate(self.conditions) if c is condition), None)
        on = getattr(condition, "on", None)
        if on is None:
            where = ""
        elif isinstance(on, str) or not callable(on):
            where = f" on {on if isinstance(on, str) else ', '.join(map(str, on))}"
        else:
            where = " on a predicate"
        kind = f"{type(condition).__name__}{where}"
        if index is None:
            return f"condition {condition.describe()} ({kind})"
        return f"condition {index} {condition.label(index)!r} ({kind})"

    @staticmethod
    def _check_output(out, n: int, what: str, fn: object = None) -> Tensor:
        if isinstance(out, FieldView):
            out = out.value
        if not isinstance(out, Tensor):
            raise misshaped(f"{what} returned {type(out).__name__}, expected a tensor "
                            f"of shape ({n},)", fn)
        if out.shape == (n, 1):
            out = out[:, 0]
        if out.shape != (n,):
            raise misshaped(f"{what} returned shape {tuple(out.shape)}, expected ({n},)", fn)
        return out

    def channels(self, like: Tensor) -> Channels:
        """The ``(R, d, d)`` second-order channels the residuals need."""
        keys = self._keys  # type: ignore[attr-defined]
        return Channels(channel_matrices(keys, self.coords, like))

    @property
    def channel_keys(self) -> list[tuple]:
        """Second-order requests found by the probe, e.g. ``[("lap", ("x", "y"))]``."""
        return list(self._keys)  # type: ignore[attr-defined]

    def parameters(self, like: Tensor, unknowns: Mapping[str, Tensor] | None = None) -> dict:
        """Constants and unknowns (current values, or the initial guesses) by name."""
        params: dict = {k: float(v) for k, v in self.constants.items()}
        for k, v in self.unknowns.items():
            params[k] = unknowns[k] if unknowns is not None else like.new_tensor(float(v))
        return params

    def scope(self, model: nn.Module, x: Tensor, *, engine: str | Engine = "jet",
              channels: Channels | None = None, order: int = 2,
              unknowns: Mapping[str, Tensor] | None = None,
              normals: Tensor | None = None) -> Scope:
        """Evaluate ``model`` on ``x`` and wrap it as a :class:`Scope`.

        ``order`` 0 computes values only, 1 adds gradients, 2 adds the problem's channels.
        """
        if order == 0:
            return self.scope_of(x, model(x), unknowns=unknowns, normals=normals)
        second = (channels if channels is not None else self.channels(x)) if order == 2 \
            else None
        return self.scope_of(x, compute_jet(model, x, second, engine), unknowns=unknowns,
                             normals=normals)

    def scope_of(self, x: Tensor, field: Jet | Tensor, *,
                 unknowns: Mapping[str, Tensor] | None = None,
                 normals: Tensor | None = None) -> Scope:
        """The :class:`Scope` of given field values at ``x``.

        Args:
            x: ``(N, d)`` points.
            field: a :class:`~kanpde.core.jet.Jet` whose channels are the problem's
                (:meth:`channels`) or first-order only, or just the values ``(N, m)`` (then
                asking for a derivative is an error).
            unknowns, normals: as in :meth:`scope`.
        """
        if isinstance(field, Jet):
            keys = self._keys if field.channels.count else []  # type: ignore[attr-defined]
            source = JetDerivatives(self.coords, self.time, self.fields, field, keys)
            value = field.value
        else:
            source, value = _NoDerivatives(self.coords, self.time), field
        views = {f: FieldView(f, value[:, j], source) for j, f in enumerate(self.fields)}
        return Scope(x, self.coords, views, self.parameters(x, unknowns), normals)

    def residual_values(self, model: nn.Module, x: Tensor, *, engine: str | Engine = "jet",
                        unknowns: Mapping[str, Tensor] | None = None) -> dict[str, Tensor]:
        """``{name: (N,)}`` PDE residuals of ``model`` at interior points ``x``."""
        s = self.scope(model, x, engine=engine, unknowns=unknowns)
        return {k: self.residual(k, s) for k in self.residuals}

    def residual(self, name: str, s: Scope) -> Tensor:
        """Residual ``name`` on the scope ``s``: ``(N,)``. Any failure of the user's function
        (or a wrong shape) is one :class:`~kanpde.problem.scope.ProblemError` line naming the
        problem file and the residual."""
        what = self.what(f"residual {name!r}")
        return self._check_output(call_user(self.residuals[name], what, s),
                                  s.points.shape[0], what, self.residuals[name])

    def condition_values(self, condition: Condition, model: nn.Module, pts: ConditionPoints,
                         *, engine: str | Engine = "jet",
                         unknowns: Mapping[str, Tensor] | None = None) -> Tensor:
        """Residual ``(n,)`` of one condition at its points."""
        s = self.scope(model, pts.points, engine=engine, order=condition.order,
                       unknowns=unknowns, normals=pts.normals)
        out = call_user(condition.residual, self.what(self.condition_title(condition)), s)
        if isinstance(out, FieldView):
            out = out.value
        return out

    def constrain(self, net: nn.Module) -> nn.Module:
        """``net`` inside the problem's hard constraint (``net`` itself when there is none;
        see :func:`apply_hard_constraint`)."""
        return apply_hard_constraint(net, self.hard_constraint)

    # ---------------------------------------------------------------- solution -------------

    def solution(self, x: Tensor) -> Tensor:
        """``(N, m)`` exact or reference solution at ``x``."""
        if self.exact is not None:
            what = self.what("exact solution")
            out = call_user(self.exact, what, x)
        elif self.reference is not None:
            what = self.what("reference solution")
            out = call_user(self.reference, what, x)  # type: ignore[arg-type]
            columns = self._ref_columns  # type: ignore[attr-defined]
            if columns is not None and isinstance(out, Tensor) and out.ndim == 2:
                out = out[:, columns]
        else:
            raise ProblemError(self.what("the problem has no exact solution or reference"))
        try:
            out = torch.as_tensor(out, dtype=x.dtype, device=x.device)
        except (TypeError, ValueError, RuntimeError) as err:
            raise ProblemError(f"{what} returned {type(out).__name__}, expected a tensor of "
                               f"shape ({x.shape[0]},) ({err})") from err
        if out.ndim == 1:
            out = out[:, None]
        if out.shape != (x.shape[0], len(self.fields)):
            raise misshaped(f"{what} returned shape {tuple(out.shape)}, expected "
                            f"({x.shape[0]}, {len(self.fields)})",
                            self.exact if self.exact is not None else self.reference)
        return out

    def evaluation_points(self, *, dtype: torch.dtype = torch.float64,
                          device: torch.device | str | None = None) -> Tensor:
        """Points for the error metrics: a grid over the bounding box (kept inside the domain)
        when ``d <= 2``, else ``eval_points`` random interior points (fixed seed)."""
        lo, hi = self.domain.bbox
        d = len(self.coords)
        if d <= 2:
            res = self.eval_resolution or (2001 if d == 1 else 101)
            axes = [torch.linspace(float(lo[i]), float(hi[i]), res, dtype=torch.float64)
                    for i in range(d)]
            grid = torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, d)
            grid = grid[self.domain.inside(grid)]
        elif self.eval_points < 1:  # an empty evaluation set (refused by solve and check)
            grid = torch.zeros(0, d, dtype=torch.float64)
        else:
            grid = self.domain.sample_interior(self.eval_points,
                                               torch.Generator().manual_seed(12345))
        return grid.to(dtype=dtype, device=device)

    def region_mask(self, x: Tensor) -> Tensor | None:
        """``(N,)`` bool: the points of ``x`` ``(N, d)`` inside the evaluation ``region``
        (``None`` without a region).

        Raises:
            ProblemError: the region function fails or returns another shape (one line
                naming the problem file).
        """
        if self.region is None:
            return None
        what = self.what("region")
        out = call_user(self.region, what, x)
        try:
            out = torch.as_tensor(out, device=x.device)
        except (TypeError, ValueError, RuntimeError) as err:
            raise ProblemError(f"{what} returned {type(out).__name__}, expected a bool "
                               f"tensor of shape ({x.shape[0]},) ({err})") from err
        if out.ndim == 2 and out.shape[1] == 1:
            out = out[:, 0]
        if out.shape != (x.shape[0],):
            raise misshaped(f"{what} returned shape {tuple(out.shape)} for {x.shape[0]} "
                            f"points, expected ({x.shape[0]},)", self.region)
        if out.dtype != torch.bool:
            raise misshaped(f"{what} returned {out.dtype}, expected a bool tensor (e.g. "
                            "x[:, 0] > 0.1)", self.region)
        return out


def _guarded(fn: Any) -> Any:
    name = getattr(fn, "__name__", type(fn).__name__)
    return user_function(fn, f"hard-constraint function {name!r}")


def _guard(model: HardConstraint) -> HardConstraint:
    """``model`` with its distance and particular functions called as user code."""
    model.distance.fn = _guarded(model.distance.fn)
    if model.particular is not None:
        model.particular.fn = _guarded(model.particular.fn)
    return model


def apply_hard_constraint(net: nn.Module, spec: Any) -> nn.Module:
    """Wrap ``net`` in the hard constraint ``spec`` of a problem.

    ``spec`` may be a :class:`~kanpde.nn.hard_constraint.HardConstraint` (its ``distance``
    and ``particular`` functions are reused around ``net``; the network it wraps is ignored),
    a mapping ``{"distance": D, "particular": g}`` (``particular`` optional) or a pair
    ``(D, g)`` of functions ``(N, d) -> (N,)`` or ``(N, m)``, or a callable
    ``net -> nn.Module`` returning the wrapped model; ``None`` returns ``net``. The functions
    are called through :func:`~kanpde.problem.usercode.user_function`, so a failure in one
    of them is one line naming it.
    """
    if spec is None:
        return net
    if isinstance(spec, HardConstraint):
        part = spec.particular
        return _guard(HardConstraint(net, spec.distance.fn, None if part is None else part.fn))
    if isinstance(spec, Mapping):
        if "distance" not in spec:
            raise ValueError("problem.hard_constraint mapping needs a 'distance' function")
        return _guard(HardConstraint(net, spec["distance"], spec.get("particular")))
    if isinstance(spec, tuple | list) and len(spec) == 2:
        return _guard(HardConstraint(net, spec[0], spec[1]))
    if callable(spec):
        out = spec(net)
        if not isinstance(out, nn.Module):
            raise ValueError(f"problem.hard_constraint(net) returned {type(out).__name__}, "
                             "expected an nn.Module")
        return _guard(out) if isinstance(out, HardConstraint) else out
    raise ValueError(f"problem.hard_constraint: unsupported {type(spec).__name__}")


class _NoDerivatives(JetDerivatives):
    def __init__(self, coords, time):
        super(JetDerivatives, self).__init__(coords, time)

    def derivative(self, field, coords):
        raise ProblemError("this condition was evaluated without derivatives (order 0)")

    laplacian = derivative


class SolutionField(nn.Module):
    """A problem's exact solution as a model, with jets by ``torch.func`` (forward over
    reverse), so residuals and conditions of the exact solution can be checked on both
    engines."""

    def __init__(self, problem: Problem):
        super().__init__()
        if problem.exact is None:
            raise ProblemError(f"problem {problem.name!r} has no exact solution")
        self.problem = problem

    def forward(self, x: Tensor) -> Tensor:
        return self.problem.solution(x)

    def jet(self, x: Tensor, second=None):
        from torch.func import hessian, jacfwd, vmap

        from kanpde.core.jet import Jet, make_channels

        channels = make_channels(second, x)

        def point(p: Tensor) -> Tensor:
            return self.problem.solution(p[None])[0]  # (m,)

        value = self.forward(x)
        grad = vmap(jacfwd(point))(x).transpose(1, 2)  # (N, d, m)
        if channels.count:
            hess = vmap(hessian(point))(x)  # (N, m, d, d)
            second_out = torch.einsum("rab,Njab->Nrj", channels.matrices, hess)
        else:
            second_out = x.new_zeros(x.shape[0], 0, value.shape[1])
        return Jet(value, grad, second_out, channels)
