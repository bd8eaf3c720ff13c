"""The model a solver config describes: the ansatz of a solve.

``build_model(problem, model_cfg, ...)`` makes ``[d, *hidden, m]`` (``d`` coordinates, ``m``
fields) KAN or MLP behind the input maps the config asks for, in this order:

1. ``normalize_inputs``: :class:`~kanpde.nn.AffineMap` of the domain's bounding box onto the
   KAN grid range (KAN) or ``[-1, 1]`` (MLP);
2. ``embedding = "fourier"``: :class:`~kanpde.nn.FourierFeatures` (seeded with the solver
   seed) of the (normalised) coordinates, or ``embedding = "periodic"``:
   :class:`~kanpde.nn.PeriodicEmbedding` of the named coordinates with period = their
   bounding-box length (in normalised units when normalised);

With ``factors`` (KAN with multiplication nodes in the first hidden layer), the first
layer's edges from the coordinates of one group into the other factor are masked; with
``linear_output`` the last layer's edges are linear symbolic edges ``c (a h + b) + d``.

It then multiplies its outputs by the field scales ``U`` when given
(:class:`~kanpde.nn.output_scale.OutputScale`, :mod:`kanpde.training.scaling`), and wraps it
in the problem's hard constraint, if it has one (:meth:`kanpde.problem.Problem.constrain`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from kanpde.core.dtypes import as_dtype
from kanpde.nn import KAN, MLP, AffineMap, Chain, FourierFeatures, PeriodicEmbedding
from kanpde.nn.output_scale import OutputScale
from kanpde.nn.parts import network
from kanpde.training.config import ConfigError, ModelConfig


def resolve_device(device: str | torch.device) -> torch.device:
    """The torch device, or a :class:`ConfigError` when it is not available here."""
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {str(device)!r}: not available "
                              "(torch.cuda.is_available() is False)")
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise ConfigError(f"device {str(device)!r}: not available ({count} CUDA "
                              f"device{'s' if count != 1 else ''})")
    elif dev.type != "cpu":
        raise ConfigError(f"device {str(device)!r}: must be 'cpu', 'cuda' or 'cuda:N'")
    return dev


def _embedding(problem, cfg: ModelConfig, dtype: torch.dtype, device: torch.device,
               seed: int) -> nn.Module | None:
    d = len(problem.coords)
    lo, hi = (t.to(torch.float64) for t in problem.domain.bbox)
    target = tuple(cfg.grid_range) if cfg.kind == "kan" else (-1.0, 1.0)
    maps: list[nn.Module] = []
    kw = {"dtype": dtype, "device": device}
    if cfg.normalize_inputs:
        maps.append(AffineMap(lo.tolist(), hi.tolist(), target, **kw))
    if cfg.embedding == "fourier":
        maps.append(FourierFeatures(d, cfg.fourier_features, cfg.fourier_sigma, seed=seed, **kw))
    elif cfg.embedding == "periodic":
        periods = {}
        for name in cfg.periodic:
            if name not in problem.coords:
                raise ConfigError(f"model.periodic: unknown coordinate {name!r} (coordinates "
                                  f"of problem {problem.name!r}: {', '.join(problem.coords)})")
            i = problem.coords.index(name)
            periods[i] = (target[1] - target[0]) if cfg.normalize_inputs \
                else float(hi[i] - lo[i])
        maps.append(PeriodicEmbedding(d, periods, cfg.harmonics, **kw))
    if not maps:
        return None
    return maps[0] if len(maps) == 1 else Chain(*maps)


def _mult(model_cfg: ModelConfig) -> list[int] | None:
    """``model.mult`` checked against ``model.widths`` (``None``: no multiplication nodes)."""
    mult = list(model_cfg.mult)
    if not mult:
        return None
    if len(mult) != len(model_cfg.widths) or any(
            m > w for m, w in zip(mult, model_cfg.widths, strict=True)):
        raise ConfigError(f"model.mult: one count per hidden layer, each at most its width "
                          f"(widths {list(model_cfg.widths)}), got {mult}")
    return mult


def _factor_masks(net: KAN, problem, cfg: ModelConfig) -> None:
    """Mask the layer-0 edges ``model.factors`` excludes (in place; module docstring).

    Raises:
        ConfigError: ``factors`` without multiplication nodes in the first hidden layer,
            with an input embedding, not two groups, an unknown or repeated coordinate.
    """
    groups = [list(g) for g in cfg.factors]
    if not groups:
        return
    where = "model.factors"
    if cfg.kind != "kan" or not cfg.mult or cfg.mult[0] == 0:
        raise ConfigError(f"{where}: needs multiplication nodes in the first hidden layer "
                          f"(model.mult = [n, ...] with n >= 1), got mult {list(cfg.mult)}")
    if cfg.embedding != "none":
        raise ConfigError(f"{where}: the factors see coordinates; embedding "
                          f"{cfg.embedding!r} replaces them (use embedding = 'none')")
    if len(groups) != 2:
        raise ConfigError(f"{where}: two lists of coordinates (one per factor), got "
                          f"{len(groups)}")
    seen: set[str] = set()
    for g in groups:
        for name in g:
            if name not in problem.coords:
                raise ConfigError(f"{where}: unknown coordinate {name!r} (coordinates of "
                                  f"problem {problem.name!r}: {', '.join(problem.coords)})")
            if g.count(name) > 1:
                raise ConfigError(f"{where}: coordinate {name!r} is named twice in one "
                                  "factor")
            if name in seen:
                raise ConfigError(f"{where}: coordinate {name!r} is in both factors")
            seen.add(name)
    left = [c for c in problem.coords if c not in seen]
    if left and cfg.mult[0] == cfg.widths[0]:
        raise ConfigError(f"{where}: coordinate{'s' if len(left) > 1 else ''} "
                          f"{', '.join(map(repr, left))} in neither factor would reach no node "
                          "(every first-layer node is a product); name each coordinate once "
                          "or add plain nodes (model.mult below model.widths)")
    first = net.layers[0]
    n_mult = net.mult[0]
    start = first.n_out - 2 * n_mult  # subnodes: plain nodes, then two per product
    for f, g in enumerate(groups):
        keep = {problem.coords.index(name) for name in g}
        for k in range(start + f, first.n_out, 2):
            for i in range(first.n_in):
                if i not in keep:
                    first.mask_edge(i, k)


def build_model(problem, model_cfg: ModelConfig, dtype: torch.dtype | str = torch.float64,
                device: torch.device | str = "cpu", seed: int = 0,
                grid_size: int | Sequence[int] | None = None,
                output_scale: Sequence[float] | None = None, source: str = "") -> nn.Module:
    """The model a solve trains, ``(N, d) -> (N, m)``.

    Args:
        problem: gives ``d = len(coords)``, ``m = len(fields)``, the bounding box and the
            hard constraint.
        model_cfg: the ``[model]`` section.
        dtype, device: of the parameters.
        seed: initialisation seed (also of the Fourier features).
        grid_size: KAN grid size(s) overriding ``model_cfg.grid_size`` (rebuilding a model
            after grid extension).
        output_scale: ``(m,)`` field scales ``U``: the network predicts ``u / U``
            (``None``, or all ones: no scaling layer).
        source: the solver file, named first in the errors (as the parser's are).

    Raises:
        ConfigError: a ``[model]`` key that does not fit the problem or the other keys (one
            line, ``SOURCE: model.KEY: ...``).
    """
    try:
        return _build(problem, model_cfg, as_dtype(dtype), torch.device(device), seed,
                      grid_size, output_scale)
    except ConfigError as err:
        if not source:
            raise
        raise ConfigError(f"{source}: {err}") from None


def _build(problem, model_cfg: ModelConfig, dtype: torch.dtype, device: torch.device,
           seed: int, grid_size: int | Sequence[int] | None,
           output_scale: Sequence[float] | None) -> nn.Module:
    widths = [len(problem.coords), *model_cfg.widths, len(problem.fields)]
    emb = _embedding(problem, model_cfg, dtype, device, seed)
    if model_cfg.kind == "kan":
        net: nn.Module = KAN(widths, grid_size=model_cfg.grid_size if grid_size is None
                             else (list(grid_size) if isinstance(grid_size, Sequence)
                                   else grid_size),
                             spline_order=model_cfg.spline_order,
                             grid_range=tuple(model_cfg.grid_range), embedding=emb,
                             mult=_mult(model_cfg),
                             noise_scale=model_cfg.noise_scale, seed=seed, dtype=dtype,
                             device=device)
        _factor_masks(net, problem, model_cfg)
        if model_cfg.linear_output:
            last = net.layers[-1]
            for i in range(last.n_in):
                for j in range(last.n_out):
                    last.set_symbolic(i, j, "x", (1.0, 0.0, 1.0, 0.0))
    else:
        for key in ("factors", "linear_output"):
            if getattr(model_cfg, key):
                raise ConfigError(f"model.{key}: needs a KAN (model.kind = 'kan'), got kind "
                                  f"{model_cfg.kind!r}")
        net = MLP(widths, model_cfg.activation, embedding=emb, seed=seed, dtype=dtype,
                  device=device)
    if output_scale is not None and any(float(u) != 1.0 for u in output_scale):
        net = OutputScale(net, output_scale)
    return problem.constrain(net)


def check_model(model: nn.Module, config) -> None:
    """Refuse grid events and the sparsity penalty on a model without KAN layers.

    Raises:
        ConfigError: one line naming the stage key or ``regularization``.
    """
    net, src = network(model), config.source
    for i, st in enumerate(config.stages):
        for key, wanted, method in (("grid_extend", st.grid_extend is not None, "extend_grid"),
                                    ("grid_update", st.grid_update, "update_grid")):
            if wanted and not hasattr(net, method):
                raise ConfigError(f"{src}: stages[{i}].{key}: the model "
                                  f"({type(net).__name__}) has no grid")
    if config.regularization.active and not isinstance(net, KAN):
        raise ConfigError(f"{src}: regularization: the sparsity penalty acts on KAN edges; "
                          f"the model is a {type(net).__name__}")


def model_state_numpy(model: nn.Module) -> dict[str, Any]:
    """``state_dict`` as numpy arrays (``_extra_state`` dicts kept as they are)."""
    return {k: v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else v
            for k, v in model.state_dict().items()}
