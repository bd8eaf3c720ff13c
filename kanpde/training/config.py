"""Solver configurations: TOML files become frozen dataclasses here, and only here.

A solver file describes *how* to solve (model, derivative engine, points, optimiser stages,
grid schedule, loss weighting, dtype); the problem file describes *what* to solve. Every
section and key has a default, so an empty file is a valid (small KAN) solver::

    name = "kan_default"            # defaults to the file name
    engine = "jet"                  # derivatives: "jet" | "autograd"
    kernel = "auto"                 # KAN layers in a jet: "auto" | "torch" | "triton"
    dtype = "float64"               # "float64" | "float32"
    device = "cpu"                  # "cpu" | "cuda" | "cuda:N"
    seed = 0
    # threads = 2                   # CPU threads; default: the cores that are free

    [model]
    kind = "kan"                    # "kan" | "mlp"
    widths = [10]                   # hidden widths only: [10] -> [d, 10, m]
    grid_size = 5
    ...

    [[stages]]
    optimizer = "adam"
    steps = 500
    lr = 1e-2

The vocabularies come from their owners: engines and kernels from :mod:`kanpde.core.engines`
(the former engine names ``"jet-torch"`` and ``"jet-triton"`` are read as ``engine = "jet"``
with that kernel), dtypes from :mod:`kanpde.core.dtypes`, activations from
:mod:`kanpde.core.activations`, samplers from :mod:`kanpde.problem.sampling`.

The sections themselves (their fields, checkers and vocabularies) are
:mod:`kanpde.training._config_sections`; this module assembles them and reads files.

Unknown keys and bad values raise :class:`ConfigError` with one line naming the source, the
dotted key and the fault, e.g. ``solvers/x.toml: stages[0].lr: must be > 0, got -1``.
:meth:`SolverConfig.to_dict` gives a plain, TOML-like dict that :func:`config_from_dict`
turns back into an equal config.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kanpde.core.dtypes import DTYPES
from kanpde.core.engines import ENGINE_ALIASES, ENGINES, KERNELS, Engine, resolve_engine
from kanpde.training._config_sections import (
    _GN_ONLY,
    _LM_ONLY,
    DEFAULT_LR,
    SECOND_ORDER,
    SECOND_ORDER_DEFAULTS,
    TIME_CLOCKS,
    CheckpointConfig,
    DistributedConfig,
    EvaluationConfig,
    ModelConfig,
    RegularizationConfig,
    SamplingConfig,
    ScalingConfig,
    StageConfig,
    WeightingConfig,
    _choice,
    _default_stages,
    _describe,
    _device,
    _Fault,
    _float,
    _int,
    _opt,
    _optional,
    _str,
    _to_dict,
    stage_option,
)

__all__ = ["ConfigError", "SolverConfig", "ModelConfig", "SamplingConfig", "StageConfig",
           "WeightingConfig", "EvaluationConfig", "CheckpointConfig", "RegularizationConfig",
           "ScalingConfig",
           "DistributedConfig", "stage_option", "DEFAULT_LR", "SECOND_ORDER",
           "SECOND_ORDER_DEFAULTS", "OVERRIDE_KEYS", "RUNTIME_KEYS", "config_from_dict",
           "load_config", "diff_configs"]


class ConfigError(ValueError):
    """A solver configuration is invalid; the message is one line: ``source: key: fault``."""


@dataclass(frozen=True)
class SolverConfig:
    """A whole solver file. See the module docstring for the layout.

    Attributes:
        name: solver name (the file name by default).
        engine: derivative method, ``"jet"`` or ``"autograd"``.
        kernel: KAN layer implementation inside a jet: ``"auto"``, ``"torch"`` or
            ``"triton"``.
        dtype: ``"float64"`` or ``"float32"``.
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` (checked when solving).
        seed: seed of the model initialisation and of the point generator.
        max_time_s: wall-time cap of the whole run (stops with status "max_time").
        time_clock: the clock of every ``max_time_s`` (run and stages): ``"wall"`` (wall
            time) or ``"cpu"`` (process CPU time, user + system: hardly changed by other
            jobs on a shared machine, so capped runs are comparable).
        threads: CPU threads of torch (``None``: the cores that are free, see
            :mod:`kanpde.training.threads`); not part of the resume check.
        model, sampling, stages, weighting, evaluation, checkpoint, regularization,
            scaling, distributed: the sections.
    """

    name: str = _opt("solver", _str)
    engine: str = _opt("jet", _choice((*ENGINES, *ENGINE_ALIASES)))
    kernel: str = _opt("auto", _choice(KERNELS))
    dtype: str = _opt("float64", _choice(tuple(DTYPES)))
    device: str = _opt("cpu", _device)
    seed: int = _opt(0, _int(0))
    max_time_s: float | None = _opt(None, _optional(_float(gt=0.0)))
    time_clock: str = _opt("wall", _choice(TIME_CLOCKS))
    threads: int | None = _opt(None, _optional(_int(1)))
    model: ModelConfig = field(default_factory=ModelConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    stages: tuple[StageConfig, ...] = field(default_factory=_default_stages)
    weighting: WeightingConfig = field(default_factory=WeightingConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    regularization: RegularizationConfig = field(default_factory=RegularizationConfig)
    scaling: ScalingConfig = field(default_factory=ScalingConfig)
    distributed: DistributedConfig = field(default_factory=DistributedConfig)
    #: where the config came from (for messages; not part of the config itself)
    source: str = field(default="<dict>", compare=False, repr=False,
                        metadata={"internal": True})

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (lists, tables, no ``None``) that round-trips."""
        return _to_dict(self)

    @property
    def derivative_engine(self) -> Engine:
        """The derivative method and KAN layer implementation (``engine``, ``kernel``)."""
        return Engine(self.engine, self.kernel)

    def with_overrides(self, overrides: Mapping[str, Any] | None,
                       source: str = "overrides") -> SolverConfig:
        """A copy with top-level keys of :data:`OVERRIDE_KEYS` replaced (``None`` values are
        ignored; an engine alias such as ``"jet-triton"`` also sets the kernel).

        Raises:
            ConfigError: unknown key or bad value (naming ``source``).
        """
        if not overrides:
            return self
        d = self.to_dict()
        for key, value in overrides.items():
            if key not in OVERRIDE_KEYS:
                raise ConfigError(f"{source}: {key}: unknown override (allowed: "
                                  f"{', '.join(OVERRIDE_KEYS)})")
            if value is not None:
                d[key] = value
        if overrides.get("engine") in ENGINE_ALIASES and overrides.get("kernel") is None:
            d.pop("kernel", None)
        return dataclasses.replace(config_from_dict(d, source=source), source=self.source)


OVERRIDE_KEYS = ("engine", "kernel", "dtype", "device", "seed", "threads")
"""Top-level keys a command line or a caller may replace (:meth:`SolverConfig.with_overrides`)."""


_SECTIONS = {"regularization": RegularizationConfig, "scaling": ScalingConfig,
             "model": ModelConfig, "sampling": SamplingConfig, "weighting": WeightingConfig,
             "evaluation": EvaluationConfig, "checkpoint": CheckpointConfig,
             "distributed": DistributedConfig}


def _parse_section(cls: type, raw: Any, path: str, source: str) -> Any:
    """Check a table against ``cls``'s fields; build the dataclass."""
    where = path or "top level"
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{source}: {where}: must be a table, got {_describe(raw)}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        dotted = f"{path}.{key}" if path else str(key)
        f = fields.get(key)
        if f is None or "check" not in f.metadata:
            valid = ", ".join(k for k in fields if "check" in fields[k].metadata
                              or (cls is SolverConfig and k in (*_SECTIONS, "stages")))
            raise ConfigError(f"{source}: {dotted}: unknown key (valid: {valid})")
        try:
            values[key] = f.metadata["check"](value)
        except _Fault as err:
            raise ConfigError(f"{source}: {dotted}: {err}") from None
    return values


def config_from_dict(d: Mapping[str, Any], source: str = "<dict>") -> SolverConfig:
    """Validate a TOML-like dict and build the :class:`SolverConfig`.

    Args:
        d: the parsed file.
        source: name used in error messages (the file path).

    Raises:
        ConfigError: one line ``source: key: fault``.
    """
    if not isinstance(d, Mapping):
        raise ConfigError(f"{source}: top level: must be a table, got {_describe(d)}")
    top = {k: v for k, v in d.items() if k not in _SECTIONS and k != "stages"}
    kwargs: dict[str, Any] = _parse_section(SolverConfig, top, "", source)
    if kwargs.get("engine") in ENGINE_ALIASES:  # a former engine name: jet with that kernel
        try:
            eng = resolve_engine(kwargs["engine"], kwargs.get("kernel", "auto"))
        except ValueError as err:
            raise ConfigError(f"{source}: engine: {err}") from None
        kwargs["engine"], kwargs["kernel"] = eng.name, eng.kernel
    for name, cls in _SECTIONS.items():
        if name in d:
            kwargs[name] = cls(**_parse_section(cls, d[name], name, source))
    if "stages" in d:
        raw = d["stages"]
        if not isinstance(raw, list | tuple) or not raw:
            raise ConfigError(f"{source}: stages: must be a non-empty list of tables "
                              "([[stages]]), got " + _describe(raw))
        stages = []
        for i, table in enumerate(raw):
            vals = _parse_section(StageConfig, table, f"stages[{i}]", source)
            stages.append(StageConfig(**vals))
        kwargs["stages"] = tuple(stages)
    config = SolverConfig(**kwargs, source=source)
    _cross_check(config, source)
    return config


def _cross_check(c: SolverConfig, source: str) -> None:
    """Constraints between fields."""

    def fail(key: str, msg: str) -> None:
        raise ConfigError(f"{source}: {key}: {msg}")

    m = c.model
    if m.kind == "kan" and m.spline_order > 5:
        fail("model.spline_order", f"must be in 1..5 for a KAN, got {m.spline_order}")
    if m.embedding == "periodic" and not m.periodic:
        fail("model.periodic", "embedding = 'periodic' needs at least one coordinate name")
    if m.periodic and m.embedding != "periodic":
        fail("model.periodic", f"only used with embedding = 'periodic' (embedding is "
                               f"{m.embedding!r})")
    if len(set(m.periodic)) != len(m.periodic):
        fail("model.periodic", f"names a coordinate twice: {list(m.periodic)}")
    s = c.sampling
    dd = c.distributed
    if dd.backend == "nccl" and not c.device.startswith("cuda"):
        fail("distributed.backend", f"'nccl' needs a CUDA device (device is {c.device!r})")
    if s.adaptive != "none":
        if s.adaptive_every < 1:
            fail("sampling.adaptive_every", f"must be >= 1 when adaptive = {s.adaptive!r}")
        if s.adaptive == "rad" and s.adaptive_candidates < s.interior:
            fail("sampling.adaptive_candidates", f"must be >= sampling.interior "
                                                 f"({s.interior}) for RAD, got "
                                                 f"{s.adaptive_candidates}")
        if s.adaptive == "rar-d" and s.rar_add > s.adaptive_candidates:
            fail("sampling.rar_add", f"must be <= sampling.adaptive_candidates "
                                     f"({s.adaptive_candidates}), got {s.rar_add}")
    grid = m.grid_size
    for i, st in enumerate(c.stages):
        if m.kind == "mlp" and st.grid_extend is not None:
            fail(f"stages[{i}].grid_extend", "the model is an MLP (no grid to extend)")
        if m.kind == "mlp" and st.grid_update:
            fail(f"stages[{i}].grid_update", "the model is an MLP (no grid to update)")
        if st.grid_extend is not None:
            if st.grid_extend < grid:
                fail(f"stages[{i}].grid_extend", f"must be >= the current grid size "
                                                 f"{grid}, got {st.grid_extend}")
            grid = st.grid_extend
        if st.keep_memory and st.optimizer != "lbfgs":
            fail(f"stages[{i}].keep_memory", f"only used with optimizer = 'lbfgs' (optimizer "
                                             f"is {st.optimizer!r})")
        if st.keep_memory and (i == 0 or c.stages[i - 1].optimizer != "lbfgs"):
            fail(f"stages[{i}].keep_memory", "continues the memory of the previous L-BFGS "
                                             "stage, and " + ("there is none" if i == 0 else
                                             f"stages[{i - 1}] is {c.stages[i - 1].optimizer!r}"))
        if st.schedule == "cosine" and st.lr_min > st.lr:
            fail(f"stages[{i}].lr_min", f"must be <= lr ({st.lr:g}), got {st.lr_min:g}")
        for key in SECOND_ORDER_DEFAULTS:
            if getattr(st, key) is None:
                continue
            only = ("lm",) if key in _LM_ONLY else ("gauss_newton",) if key in _GN_ONLY \
                else SECOND_ORDER
            if st.optimizer not in only:
                fail(f"stages[{i}].{key}", f"only used with optimizer = "
                                           f"{' or '.join(repr(o) for o in only)} (optimizer is "
                                           f"{st.optimizer!r})")
        if st.optimizer == "gauss_newton" and st.damping_scaling == "diag":
            fail(f"stages[{i}].damping_scaling", "gauss_newton is matrix-free and damps with "
                                                 "D = I; use 'identity' or optimizer = 'lm'")
    if m.kind == "mlp" and c.regularization.active:
        fail("regularization", "the sparsity penalty acts on KAN edges; the model is an MLP "
                               "(set l1 = entropy = 0 or model.kind = 'kan')")
    known = set()
    for name, _ in c.weighting.weights:
        if name in known:
            fail(f"weighting.weights.{name}", "given twice")
        known.add(name)


def load_config(path: str | Path) -> SolverConfig:
    """Read a solver TOML file.

    The solver ``name`` defaults to the file name without ``.toml``.

    Raises:
        ConfigError: missing file, TOML syntax error, unknown key or bad value (one line).
    """
    path = Path(path)
    source = str(path)
    if not path.is_file():
        raise ConfigError(f"{source}: not found")
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{source}: TOML syntax error: {err}") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"{source}: not UTF-8 text (byte {err.object[err.start]:#04x} at "
                          f"offset {err.start}); TOML files are UTF-8") from None
    except OSError as err:
        raise ConfigError(f"{source}: cannot read it ({err.strerror})") from None
    data.setdefault("name", path.stem)
    return config_from_dict(data, source=source)


#: top-level keys that do not change what is computed (a run may resume with other values)
RUNTIME_KEYS = ("threads",)


def diff_configs(a: Mapping[str, Any], b: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys where two config dicts differ (for resume checks; :data:`RUNTIME_KEYS`
    excepted)."""
    out: list[str] = []
    for key in sorted(set(a) | set(b), key=str):
        if not prefix and key in RUNTIME_KEYS:
            continue
        dotted = f"{prefix}.{key}" if prefix else str(key)
        va, vb = a.get(key), b.get(key)
        if isinstance(va, Mapping) and isinstance(vb, Mapping):
            out += diff_configs(va, vb, dotted)
        elif isinstance(va, list) and isinstance(vb, list) and len(va) == len(vb) and all(
                isinstance(x, Mapping) for x in va + vb):
            for i, (x, y) in enumerate(zip(va, vb, strict=True)):
                out += diff_configs(x, y, f"{dotted}[{i}]")
        elif va != vb:
            out.append(dotted)
    return out
