"""Models from configs and back from specs: the ansatz of a solve.

``build_model(problem, model_cfg, ...)`` makes ``[d, *hidden, m]`` (``d`` coordinates, ``m``
fields) KAN or MLP behind the input maps the config asks for, in this order:

1. ``normalize_inputs``: :class:`~kanpde.nn.AffineMap` of the domain's bounding box onto the
   KAN grid range (KAN) or ``[-1, 1]`` (MLP);
2. ``embedding = "fourier"``: :class:`~kanpde.nn.FourierFeatures` (seeded with the solver
   seed) of the (normalised) coordinates, or ``embedding = "periodic"``:
   :class:`~kanpde.nn.PeriodicEmbedding` of the named coordinates with period = their
   bounding-box length (in normalised units when normalised);

then wraps it in :class:`~kanpde.nn.hard_constraint.HardConstraint` when
``problem.hard_constraint`` is set (:func:`apply_hard_constraint`). It may hold:

* a ``HardConstraint`` (its ``distance``/``particular`` functions are reused around the
  new network; the network it wraps is ignored);
* a mapping ``{"distance": D, "particular": g}`` (``particular`` optional) or a pair
  ``(D, g)`` of functions ``(N, d) -> (N,)`` or ``(N, m)``;
* a callable ``net -> nn.Module`` returning the wrapped model.

The problem's functions are called through :func:`kanpde.problem.usercode.user_function`, so
a failure in one of them is one line naming it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from kanpde.core.dtypes import as_dtype, dtype_name
from kanpde.nn import KAN, MLP, AffineMap, Chain, FourierFeatures, PeriodicEmbedding
from kanpde.nn.hard_constraint import HardConstraint
from kanpde.nn.parts import grid_sizes, network
from kanpde.problem.usercode import user_function
from kanpde.training.config import ConfigError, ModelConfig, config_from_dict


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
    """Wrap ``net`` in the problem's hard constraint ``spec`` (see the module docstring)."""
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


def build_model(problem, model_cfg: ModelConfig, dtype: torch.dtype | str = torch.float64,
                device: torch.device | str = "cpu", seed: int = 0,
                grid_size: int | Sequence[int] | None = None) -> nn.Module:
    """The model a solve trains, ``(N, d) -> (N, m)``.

    Args:
        problem: gives ``d = len(coords)``, ``m = len(fields)``, the bounding box and the
            hard constraint.
        model_cfg: the ``[model]`` section.
        dtype, device: of the parameters.
        seed: initialisation seed (also of the Fourier features).
        grid_size: KAN grid size(s) overriding ``model_cfg.grid_size`` (rebuilding a model
            after grid extension).
    """
    dtype, device = as_dtype(dtype), torch.device(device)
    widths = [len(problem.coords), *model_cfg.widths, len(problem.fields)]
    emb = _embedding(problem, model_cfg, dtype, device, seed)
    if model_cfg.kind == "kan":
        net: nn.Module = KAN(widths, grid_size=model_cfg.grid_size if grid_size is None
                             else (list(grid_size) if isinstance(grid_size, Sequence)
                                   else grid_size),
                             spline_order=model_cfg.spline_order,
                             grid_range=tuple(model_cfg.grid_range), embedding=emb,
                             noise_scale=model_cfg.noise_scale, seed=seed, dtype=dtype,
                             device=device)
    else:
        net = MLP(widths, model_cfg.activation, embedding=emb, seed=seed, dtype=dtype,
                  device=device)
    return apply_hard_constraint(net, problem.hard_constraint)


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


def model_spec(model: nn.Module, problem, model_cfg: ModelConfig, dtype: torch.dtype,
               seed: int, built: bool = True) -> dict[str, Any]:
    """What :func:`build_model_from_spec` needs to rebuild ``model`` (before its state).

    A model that was not built from ``model_cfg`` (``built`` false: given to the solve) is
    described by its class only (``kind = "custom"``); it cannot be rebuilt.
    """
    net = network(model)
    is_kan = isinstance(net, KAN)
    if not built:
        return {"kind": "custom", "class": f"{type(model).__module__}.{type(model).__qualname__}",
                "in_dim": len(problem.coords), "out_dim": len(problem.fields),
                "dtype": dtype_name(dtype), "seed": seed, "hard_constraint": False}
    return {
        "kind": model_cfg.kind,
        "widths": list(net.widths),
        "grid_size": grid_sizes(net),
        "spline_order": model_cfg.spline_order if is_kan else None,
        "activation": None if is_kan else model_cfg.activation,
        "config_model": model_cfg.to_dict(),
        "in_dim": len(problem.coords),
        "out_dim": len(problem.fields),
        "dtype": dtype_name(dtype),
        "seed": seed,
        "hard_constraint": problem.hard_constraint is not None,
    }


def build_model_from_spec(spec: Mapping[str, Any], problem,
                          state: Mapping[str, Any] | None = None,
                          device: torch.device | str = "cpu") -> nn.Module:
    """Rebuild a trained model from a :class:`~kanpde.io.results.Result`'s ``model_spec``.

    Args:
        spec: the ``model_spec`` dict.
        problem: the problem it was trained on (inputs, outputs, bounding box, hard constraint).
        state: optional ``model_state`` (numpy arrays or tensors; ``..._extra_state``
            entries as stored) to load.
        device: where to put it.
    """
    if spec.get("kind") == "custom":
        raise ValueError(f"the model of this run is a {spec.get('class', 'model')} given to "
                         "solve(); kanpde cannot rebuild it")
    cfg = config_from_dict({"model": dict(spec["config_model"])}, source="model_spec").model
    sizes = spec.get("grid_size")
    model = build_model(problem, cfg, dtype=spec.get("dtype", "float64"), device=device,
                        seed=int(spec.get("seed", 0)), grid_size=sizes)
    if state is not None:
        tensors = {k: (torch.from_numpy(np.asarray(v)) if isinstance(v, np.ndarray | np.generic)
                       else v) for k, v in state.items()}
        model.load_state_dict(tensors)
        model.to(device)
    return model


def model_state_numpy(model: nn.Module) -> dict[str, Any]:
    """``state_dict`` as numpy arrays (``_extra_state`` dicts kept as they are)."""
    return {k: v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else v
            for k, v in model.state_dict().items()}
