"""A model as data: the resolved constructor arguments that rebuild it, before its state.

:func:`model_spec` describes a trained model by what its constructors need, not by the solver
configuration that made it: for a KAN the widths and, per layer, the grid size, spline order
and grid range (the knots themselves, moved by grid updates, and the coefficients are in the
state dict); for an MLP the widths and activation; for the input embedding its own arguments
(the box and target of an :class:`~kanpde.nn.AffineMap`, the frequencies' count, scale and
seed of :class:`~kanpde.nn.FourierFeatures`, the periods and harmonics of a
:class:`~kanpde.nn.PeriodicEmbedding`); and whether a hard constraint wraps the network (its
distance and particular functions belong to the problem) and the output scales ``U`` of an
:class:`~kanpde.nn.output_scale.OutputScale` (``u = U N``). :func:`model_from_spec` builds the
model back, and with the state dict loaded it computes exactly what the trained one did, with
no problem file and no solver file. A model of another class is described by its class name
only (``kind = "custom"``) and cannot be rebuilt.

Layout (JSON-able)::

    {"format": 2, "kind": "kan" | "mlp" | "custom", "dtype": "float64",
     "in_dim": d, "out_dim": m, "widths": [d, ..., m], "hard_constraint": bool,
     "output_scale": null | [U_1, ..., U_m],                 (absent in earlier runs: null)
     "grid_size": [G_1, ...], "spline_order": [k_1, ...], "grid_range": [[a, b], ...],  (KAN)
     "mult": [n_mult_1, ...]   (KAN with multiplication nodes only; absent: none)
     "activation": "tanh",                                                              (MLP)
     "embedding": null | {"type": "affine", "lo": [...], "hi": [...], "target": [a, b]}
                       | {"type": "fourier", "in_dim", "n_features", "sigma", "seed",
                          "keep_input"}
                       | {"type": "periodic", "in_dim", "periods": {"i": period},
                          "harmonics"}
                       | {"type": "chain", "maps": [...]}}
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from kanpde.core.dtypes import as_dtype, dtype_name
from kanpde.nn.embed import AffineMap, Chain, FourierFeatures, PeriodicEmbedding
from kanpde.nn.hard_constraint import HardConstraint
from kanpde.nn.kan import KAN
from kanpde.nn.mlp import MLP
from kanpde.nn.output_scale import OutputScale
from kanpde.nn.parts import grid_sizes, network

FORMAT = 2
"""Version of the layout above."""


def model_spec(model: nn.Module) -> dict[str, Any]:
    """The resolved constructor arguments of ``model`` (see the module docstring)."""
    net = network(model)
    wrapped = isinstance(model, HardConstraint)
    inner = model.model if wrapped else model
    scale = inner.scales if isinstance(inner, OutputScale) else None
    core = inner.model if scale is not None else inner
    if core is not net:  # a wrapper of the caller's own: not rebuildable
        net, wrapped, scale = model, False, None
    tensors = list(model.parameters()) + list(model.buffers())
    dtype = next((t.dtype for t in tensors if t.is_floating_point()), torch.float64)
    spec: dict[str, Any] = {"format": FORMAT, "dtype": dtype_name(dtype),
                            "hard_constraint": wrapped, "output_scale": scale}
    if isinstance(net, KAN):
        spec.update(kind="kan", widths=list(net.widths), grid_size=grid_sizes(net),
                    spline_order=[layer.k for layer in net.layers],
                    grid_range=[[float(layer.knots[:, layer.k].min()),
                                 float(layer.knots[:, -layer.k - 1].max())]
                                for layer in net.layers],
                    embedding=embedding_spec(net.embedding))
        if any(net.mult):
            spec["mult"] = list(net.mult)
    elif isinstance(net, MLP):
        spec.update(kind="mlp", widths=list(net.widths), activation=net.activation,
                    embedding=embedding_spec(net.embedding))
    else:
        spec.update(kind="custom", model_class=f"{type(model).__module__}."
                                               f"{type(model).__qualname__}")
    if isinstance(net, KAN | MLP):
        spec.update(in_dim=net.in_dim, out_dim=net.out_dim)
    return spec


def embedding_spec(embedding: nn.Module | None) -> dict[str, Any] | None:
    """The constructor arguments of an input embedding (``None`` for none).

    Raises:
        ValueError: an embedding of another class.
    """
    if embedding is None:
        return None
    if isinstance(embedding, AffineMap):
        return {"type": "affine", "lo": embedding.box[0], "hi": embedding.box[1],
                "target": list(embedding.target)}
    if isinstance(embedding, FourierFeatures):
        return {"type": "fourier", "in_dim": embedding.in_dim,
                "n_features": embedding.n_features, "sigma": embedding.sigma,
                "seed": embedding.seed, "keep_input": embedding.keep_input}
    if isinstance(embedding, PeriodicEmbedding):
        return {"type": "periodic", "in_dim": embedding.in_dim,
                "periods": {str(c): p for c, p in embedding.periods.items()},
                "harmonics": embedding.harmonics}
    if isinstance(embedding, Chain):
        return {"type": "chain", "maps": [embedding_spec(m) for m in embedding.maps]}
    raise ValueError(f"cannot describe an embedding of class {type(embedding).__name__}")


def _embedding(spec: Mapping[str, Any] | None, **kw: Any) -> nn.Module | None:
    if spec is None:
        return None
    kind = spec["type"]
    if kind == "affine":
        return AffineMap(spec["lo"], spec["hi"], tuple(spec["target"]), **kw)
    if kind == "fourier":
        return FourierFeatures(int(spec["in_dim"]), int(spec["n_features"]),
                               float(spec["sigma"]), keep_input=bool(spec["keep_input"]),
                               seed=int(spec["seed"]), **kw)
    if kind == "periodic":
        return PeriodicEmbedding(int(spec["in_dim"]),
                                 {int(c): float(p) for c, p in spec["periods"].items()},
                                 int(spec["harmonics"]), **kw)
    if kind == "chain":
        return Chain(*(_embedding(m, **kw) for m in spec["maps"]))
    raise ValueError(f"model spec: unknown embedding type {kind!r}")


def model_from_spec(spec: Mapping[str, Any], state: Mapping[str, Any] | None = None, *,
                    hard_constraint: Callable[[nn.Module], nn.Module] | None = None,
                    device: torch.device | str = "cpu") -> nn.Module:
    """Rebuild a model described by :func:`model_spec` and load its ``state``.

    Args:
        spec: the description.
        state: its ``state_dict`` (numpy arrays or tensors; ``_extra_state`` entries as
            stored), or ``None`` for the freshly initialised model.
        hard_constraint: wraps the network in the problem's hard constraint (needed when
            ``spec["hard_constraint"]``), e.g. ``lambda net: apply_hard_constraint(net,
            problem.hard_constraint)``.
        device: where to put it.

    Raises:
        ValueError: a spec of another format, of a model of the caller's own class, or with a
            hard constraint but no ``hard_constraint``.
    """
    if spec.get("format") != FORMAT:
        raise ValueError(f"model spec format {spec.get('format', 1)!r}: written by an earlier "
                         f"kanpde (this one reads format {FORMAT}); retrain the run")
    kind = spec.get("kind")
    if kind == "custom":
        raise ValueError(f"the model is a {spec.get('model_class', 'module')} given to "
                         "solve(); kanpde cannot rebuild it")
    kw = {"dtype": as_dtype(spec["dtype"]), "device": device}
    emb = _embedding(spec.get("embedding"), **kw)
    if kind == "kan":
        net: nn.Module = KAN(list(spec["widths"]), grid_size=list(spec["grid_size"]),
                             spline_order=list(spec["spline_order"]),
                             grid_range=[tuple(r) for r in spec["grid_range"]],
                             embedding=emb, mult=spec.get("mult"), **kw)
    elif kind == "mlp":
        net = MLP(list(spec["widths"]), spec["activation"], embedding=emb, **kw)
    else:
        raise ValueError(f"model spec: unknown kind {kind!r}")
    model = net
    if spec.get("output_scale") is not None:
        model = OutputScale(net, spec["output_scale"])
    if spec.get("hard_constraint"):
        if hard_constraint is None:
            raise ValueError("the model has a hard constraint, whose functions belong to its "
                             "problem; rebuild it with the problem's hard constraint")
        model = hard_constraint(model)
    if state is not None:
        model.load_state_dict({k: torch.from_numpy(np.array(v, copy=True))
                               if isinstance(v, np.ndarray | np.generic) else v
                               for k, v in state.items()})
        model.to(device)
    return model
