"""Pruning a KAN: mask unimportant edges, remove unimportant hidden nodes.

With per-layer normalised scores (:mod:`kanpde.interpret.importance`) and a threshold
``theta``:

* edge ``(l, i, j)`` is masked (fixed to zero, no longer counted as parameters) when its
  normalised score is below ``theta``;
* hidden node ``i`` of layer ``l`` is removed when its normalised incoming or outgoing score
  is below ``theta`` (the paper's rule: a node is kept only if it both receives and sends
  something that matters). Every hidden layer keeps at least its best node. Removing a node
  drops its row of the next layer and its column of the previous one, giving a KAN with
  smaller widths; when the removed parts are exactly zero the function is unchanged.
  Node layers with multiplication nodes (:mod:`kanpde.nn.kan`) keep all their nodes (their
  edges are still masked).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from kanpde.interpret.importance import Importance, importance
from kanpde.nn.kan import KAN
from kanpde.nn.kan_layer import KANLayer
from kanpde.nn.parts import grid_sizes, network, trainable_parameters


def replace_network(model: nn.Module, net: KAN) -> nn.Module:
    """A copy of ``model`` with its inner KAN replaced by ``net`` (``net`` itself when
    ``model`` is a bare KAN)."""
    if isinstance(model, KAN):
        return net
    outer = copy.deepcopy(model)
    holder = outer
    while not isinstance(getattr(holder, "model", None), KAN):
        holder = holder.model
    holder.model = net
    return outer


@torch.no_grad()
def prune_edges(net: KAN, imp: Importance, threshold: float) -> list[tuple[int, int, int]]:
    """Mask (in place) the edges whose normalised score is below ``threshold``.

    Returns:
        The ``(layer, i, j)`` edges newly masked.
    """
    done = []
    for l_, (layer, score) in enumerate(zip(net.layers, imp.edges_normalized, strict=True)):
        for i, j in (score < threshold).nonzero().tolist():
            if layer.edge_kind(i, j) != "pruned":
                layer.mask_edge(i, j)
                done.append((l_, i, j))
    return done


def kept_nodes(imp: Importance, threshold: float) -> list[list[int]]:
    """Per node layer, the indices kept (all inputs and outputs; hidden nodes by the rule
    of the module docstring, at least the best one)."""
    keep = []
    inc, out, nodes = imp.incoming_normalized, imp.outgoing_normalized, imp.nodes_normalized
    last = len(nodes) - 1
    for l_ in range(len(nodes)):
        n = nodes[l_].shape[0]
        if l_ in (0, last):
            keep.append(list(range(n)))
            continue
        ok = ((inc[l_] >= threshold) & (out[l_] >= threshold)).nonzero().flatten().tolist()
        keep.append(ok or [int(nodes[l_].argmax())])
    return keep


@torch.no_grad()
def _sub_layer(layer: KANLayer, rows: list[int], cols: list[int], new: KANLayer) -> None:
    r = torch.tensor(rows, device=layer.knots.device)
    c = torch.tensor(cols, device=layer.knots.device)
    new.knots = layer.knots[r].clone()
    new.uniform = layer.uniform
    new.base_weight = nn.Parameter(layer.base_weight[r][:, c].clone())
    new.spline_scale = nn.Parameter(layer.spline_scale[r][:, c].clone())
    new.coef = nn.Parameter(layer.coef[r][:, :, c].clone())
    if layer.edge_mask is not None:
        new.edge_mask = layer.edge_mask[r][:, c].clone()
    if layer.sym_params is not None:
        new.sym_params = nn.Parameter(layer.sym_params[r][:, c].clone())
    where_r, where_c = {v: k for k, v in enumerate(rows)}, {v: k for k, v in enumerate(cols)}
    new.symbolic = {(where_r[i], where_c[j]): name for (i, j), name in layer.symbolic.items()
                    if i in where_r and j in where_c}


def prune_nodes(net: KAN, keep: list[list[int]]) -> KAN:
    """A new KAN keeping the nodes ``keep`` (per node layer) and everything between them.

    Args:
        net: the KAN (unchanged).
        keep: per node layer, sorted indices to keep; inputs and outputs must be complete.
    """
    widths = [net.widths[0]] + [len(k) for k in keep[1:]]
    kw = {"dtype": net.layers[0].knots.dtype, "device": net.layers[0].knots.device}
    mult = list(net.mult)
    for l_, m in enumerate(mult):
        if m and len(keep[l_ + 1]) != net.widths[l_ + 1]:
            raise ValueError(f"prune_nodes: node layer {l_ + 1} has multiplication nodes; "
                             "its nodes are kept")
    new = KAN(widths, grid_size=grid_sizes(net),
              spline_order=[layer.k for layer in net.layers],
              embedding=copy.deepcopy(net.embedding), mult=mult, **kw)
    for l_, (old_layer, new_layer) in enumerate(zip(net.layers, new.layers, strict=True)):
        cols = keep[l_ + 1] if l_ + 1 > len(mult) or not mult[l_] else \
            list(range(old_layer.n_out))  # a node layer with products: its subnodes
        _sub_layer(old_layer, keep[l_], cols, new_layer)
    return new


@dataclass
class PruneReport:
    """What :func:`prune` did.

    Attributes:
        threshold: the normalised-score threshold.
        edges_masked: ``(layer, i, j)`` edges fixed to zero.
        nodes_removed: ``(node layer, index)`` hidden nodes removed (old indices).
        widths_before, widths_after: KAN widths.
        params_before, params_after: :func:`kanpde.nn.parts.trainable_parameters`.
    """

    threshold: float
    edges_masked: list[tuple[int, int, int]] = field(default_factory=list)
    nodes_removed: list[tuple[int, int]] = field(default_factory=list)
    widths_before: list[int] = field(default_factory=list)
    widths_after: list[int] = field(default_factory=list)
    params_before: int = 0
    params_after: int = 0

    def to_dict(self) -> dict:
        """Plain dict for JSON."""
        return {"threshold": self.threshold, "edges_masked": [list(e) for e in self.edges_masked],
                "nodes_removed": [list(n) for n in self.nodes_removed],
                "widths_before": self.widths_before, "widths_after": self.widths_after,
                "params_before": self.params_before, "params_after": self.params_after}


def prune(model: nn.Module, x: Tensor, threshold: float, method: str = "l1",
          nodes: bool = True) -> tuple[nn.Module, PruneReport]:
    """Mask edges and remove hidden nodes below ``threshold`` (normalised scores at ``x``).

    Args:
        model: a KAN or a wrapper around one (unchanged; a pruned copy is returned).
        x: ``(N, d)`` samples for the scores.
        threshold: in ``[0, 1)``, relative to the largest score of each layer.
        method: score, ``"l1"`` or ``"std"``.
        nodes: also remove hidden nodes (else only mask edges).

    Returns:
        The pruned model and a :class:`PruneReport`.
    """
    if not 0.0 <= threshold < 1.0:
        raise ValueError(f"prune threshold must be in [0, 1), got {threshold}")
    net = network(model)
    if not isinstance(net, KAN):
        raise ValueError(f"pruning needs a KAN, got {type(net).__name__}")
    report = PruneReport(threshold, widths_before=list(net.widths),
                         params_before=trainable_parameters(model))
    net = copy.deepcopy(net)
    imp = importance(net, x, method)
    report.edges_masked = prune_edges(net, imp, threshold)
    if nodes:
        keep = kept_nodes(imp, threshold)
        for l_, m in enumerate(net.mult):  # node layers with products are kept whole
            if m:
                keep[l_ + 1] = list(range(net.widths[l_ + 1]))
        report.nodes_removed = [(l_, i) for l_, k in enumerate(keep)
                                for i in range(imp.nodes[l_].shape[0]) if i not in k]
        if report.nodes_removed:
            net = prune_nodes(net, keep)
    out = replace_network(model, net)
    report.widths_after = list(net.widths)
    report.params_after = trainable_parameters(out)
    return out, report
