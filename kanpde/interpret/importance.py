"""Edge and node importance of a KAN on sample points (Liu et al. 2024, §2.5.1).

Edge score of layer ``l``: ``E_l[i, j] = mean_n |phi_ij(h_i(n))|`` (``"l1"``, the paper's
``|phi|_1``) or ``std_n phi_ij(h_i(n))`` (``"std"``) over the layer inputs ``h`` of the
samples. Node scores: node ``i`` of layer ``l`` (``l = 0``: the inputs, ``L``: the outputs)
has ``incoming = max_k E_{l-1}[k, i]`` (a multiplication node: the smaller of its two
subnodes' incoming scores) and ``outgoing = max_j E_l[i, j]``; its score is the
smaller of the two for hidden nodes, the one it has for input and output nodes. Every score
also comes normalised per layer (divided by the layer's largest), which is what line
opacities and pruning thresholds use.

Redundant nodes (:func:`redundant_nodes`): hidden nodes whose values at the samples are
affine images of each other (``|corr| >= 1 - tol``) carry one feature; pruning by score keeps
them all, so a network trained wider than it needs can keep several copies of one feature.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from kanpde.nn.kan import KAN

METHODS = ("l1", "std")


@dataclass(frozen=True)
class Importance:
    """Scores of a KAN with widths ``[n_0, ..., n_L]``.

    Attributes:
        edges: per layer ``l < L``, ``(n_l, n_{l+1})`` raw edge scores.
        incoming: per node layer ``l``, ``(n_l,)`` (zeros for the inputs).
        outgoing: per node layer ``l``, ``(n_l,)`` (zeros for the outputs).
        method: ``"l1"`` or ``"std"``.
    """

    edges: list[Tensor]
    incoming: list[Tensor]
    outgoing: list[Tensor]
    method: str

    @property
    def nodes(self) -> list[Tensor]:
        """Per node layer, ``(n_l,)`` node scores (min of in/out for hidden nodes)."""
        last = len(self.incoming) - 1
        out = []
        for l_, (inc, outg) in enumerate(zip(self.incoming, self.outgoing, strict=True)):
            out.append(outg if l_ == 0 else inc if l_ == last else torch.minimum(inc, outg))
        return out

    @property
    def edges_normalized(self) -> list[Tensor]:
        """Edge scores divided by their layer's largest (in ``[0, 1]``)."""
        return [_normalize(e) for e in self.edges]

    @property
    def nodes_normalized(self) -> list[Tensor]:
        """Node scores divided by their layer's largest."""
        return [_normalize(n) for n in self.nodes]

    @property
    def incoming_normalized(self) -> list[Tensor]:
        """Incoming scores normalised like the edges that define them (per edge layer)."""
        return [self.incoming[0]] + [
            inc / _top(e) for inc, e in zip(self.incoming[1:], self.edges, strict=True)]

    @property
    def outgoing_normalized(self) -> list[Tensor]:
        """Outgoing scores normalised like the edges that define them (per edge layer)."""
        return [out / _top(e) for out, e in zip(self.outgoing[:-1], self.edges, strict=True)] \
            + [self.outgoing[-1]]

    def to_dict(self) -> dict:
        """Plain lists for JSON: ``edges``, ``edges_normalized``, ``nodes``, ... per layer."""
        def lists(ts: list[Tensor]) -> list:
            return [t.detach().cpu().tolist() for t in ts]

        return {"method": self.method, "edges": lists(self.edges),
                "edges_normalized": lists(self.edges_normalized),
                "nodes": lists(self.nodes), "nodes_normalized": lists(self.nodes_normalized),
                "incoming": lists(self.incoming), "outgoing": lists(self.outgoing)}


def _top(t: Tensor) -> Tensor:
    top = t.max() if t.numel() else t.new_ones(())
    return torch.where(top > 0, top, torch.ones_like(top))


def _normalize(t: Tensor) -> Tensor:
    return t / _top(t)


@torch.no_grad()
def edge_scores(net: KAN, x: Tensor, method: str = "l1") -> list[Tensor]:
    """Per layer, ``(n_in, n_out)`` edge scores at the samples ``x`` ``(N, d)``."""
    if method not in METHODS:
        raise ValueError(f"importance method must be one of {METHODS}, got {method!r}")
    out = []
    for layer, h in zip(net.layers, net.layer_inputs(x), strict=True):
        phi = layer.edge_values(h)  # (N, n_in, n_out)
        out.append(phi.abs().mean(0) if method == "l1" else phi.std(0, correction=0))
    return out


def _node_incoming(sub: Tensor, width: int) -> Tensor:
    """Incoming scores of ``width`` nodes from those of their subnodes ``sub``: a
    multiplication node (the last ``len(sub) - width`` nodes take two subnodes each) is as
    important as its weaker factor."""
    n_mult = sub.shape[0] - width
    if n_mult <= 0:
        return sub
    n_add = width - n_mult
    return torch.cat([sub[:n_add], torch.minimum(sub[n_add::2], sub[n_add + 1::2])])


def importance(net: KAN, x: Tensor, method: str = "l1") -> Importance:
    """Edge and node scores of ``net`` at the samples ``x`` ``(N, d)``.

    Args:
        net: the KAN.
        x: ``(N, d)`` samples (evaluation or collocation points).
        method: ``"l1"`` (mean ``|phi|``) or ``"std"``.
    """
    edges = edge_scores(net, x, method)
    widths = [edges[0].shape[0]] + [e.shape[0] for e in edges[1:]] + [edges[-1].shape[1]]
    zeros = [x.new_zeros(w) for w in widths]
    incoming = [zeros[0]] + [_node_incoming(e.max(0).values, w)
                             for e, w in zip(edges, widths[1:], strict=True)]
    outgoing = [e.max(1).values for e in edges] + [zeros[-1]]
    return Importance(edges, incoming, outgoing, method)


@torch.no_grad()
def redundant_nodes(net: KAN, x: Tensor, tol: float = 1e-4) -> list[dict]:
    """Groups of hidden nodes that carry the same feature up to an affine map.

    Two hidden nodes of one layer are in a group when the correlation of their values at
    the samples is ``|corr| >= 1 - tol`` (node values: the next layer's inputs). Constant
    nodes (standard deviation below ``1e-12`` of the layer's largest) are left out.

    Args:
        net: the KAN.
        x: ``(N, d)`` samples.
        tol: how close to 1 the absolute correlation must be.

    Returns:
        ``[{"layer": l, "nodes": [j, ...], "min_abs_corr": c}, ...]``, one entry per group of
        two or more nodes (``l``: the node layer, 1 for the first hidden layer).
    """
    groups = []
    for layer, h in enumerate(net.layer_inputs(x)[1:], start=1):  # h: (N, n_l)
        std = h.std(0, correction=0)  # (n_l,)
        live = [j for j in range(h.shape[1]) if std[j] > 1e-12 * float(std.max())]
        if len(live) < 2:
            continue
        z = (h[:, live] - h[:, live].mean(0)) / std[live]  # (N, n_live)
        corr = (z.T @ z / h.shape[0]).abs()  # (n_live, n_live)
        seen: set[int] = set()
        for a in range(len(live)):
            if a in seen:
                continue
            members = [b for b in range(len(live)) if b not in seen and corr[a, b] >= 1 - tol]
            if len(members) > 1:
                seen.update(members)
                groups.append({"layer": layer, "nodes": [live[b] for b in members],
                               "min_abs_corr": float(corr[members][:, members].min())})
    return groups
