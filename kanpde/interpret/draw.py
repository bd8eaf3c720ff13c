"""Figures of a KAN: the network diagram and per-layer grids of edge functions.

:func:`network_figure` draws node layers bottom (inputs) to top (outputs); every edge is a
line whose opacity is its normalised importance (``alpha = max(0.05, tanh(3 s))``), and when
the network is small every edge also carries a small inset of its learned function
``phi_ij`` over the range its inputs actually take (drawn grey when pruned, red when
symbolic). :func:`layer_figure` shows one layer as an ``n_in x n_out`` grid of edge plots
titled with their scores. Figures are :class:`matplotlib.figure.Figure` objects saved
without pyplot.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor

from kanpde.interpret.importance import Importance
from kanpde.nn.kan import KAN

DPI = 110
MAX_INSETS = 64


def edge_curves(net: KAN, x: Tensor, n: int = 101) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per layer: ``(h, phi)`` with ``h`` ``(n, n_in)`` a grid over each input's observed
    range at the samples ``x`` and ``phi`` ``(n, n_in, n_out)`` the edge functions there."""
    out = []
    with torch.no_grad():
        for layer, h in zip(net.layers, net.layer_inputs(x), strict=True):
            lo, hi = h.min(0).values, h.max(0).values
            t = torch.linspace(0.0, 1.0, n, dtype=h.dtype, device=h.device)[:, None]
            grid = lo + (hi - lo) * t  # (n, n_in)
            out.append((grid.cpu().numpy(), layer.edge_values(grid).cpu().numpy()))
    return out


def _alpha(score: float) -> float:
    return max(0.05, math.tanh(3.0 * score))


def _color(kind: str) -> str:
    return {"spline": "black", "pruned": "0.6"}.get(kind, "tab:red")


def network_figure(net: KAN, x: Tensor, imp: Importance,
                   coords: tuple[str, ...] = (), fields: tuple[str, ...] = ()) -> Figure:
    """The network with edge opacity by importance and (small networks) edge insets."""
    widths = [layer.n_in for layer in net.layers] + [net.layers[-1].n_out]
    mult = list(getattr(net, "mult", [])) + [0]
    n_layers = len(net.layers)
    fig = Figure(figsize=(max(4.0, 1.3 * max(widths)), 2.4 * n_layers + 1.0))
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.08, n_layers + 0.08)
    ax.axis("off")

    def pos(layer: int, i: int) -> tuple[float, float]:
        return (i + 0.5) / widths[layer], float(layer)

    curves = edge_curves(net, x)
    edges_norm = [e.detach().cpu().numpy() for e in imp.edges_normalized]
    nodes_norm = [n.detach().cpu().numpy() for n in imp.nodes_normalized]
    insets = sum(w0 * w1 for w0, w1 in zip(widths[:-1], widths[1:], strict=True)) <= MAX_INSETS
    for l_, layer in enumerate(net.layers):
        hgrid, phi = curves[l_]
        for i in range(layer.n_in):
            for j in range(layer.n_out):
                n_add = layer.n_out - 2 * mult[l_]  # subnode j feeds node _node(j)
                node = j if j < n_add else n_add + (j - n_add) // 2
                (x0, y0), (x1, y1) = pos(l_, i), pos(l_ + 1, node)
                kind = layer.edge_kind(i, j)
                alpha = 0.0 if kind == "pruned" else _alpha(float(edges_norm[l_][i, j]))
                ax.plot([x0, x1], [y0, y1], color=_color(kind), alpha=alpha, lw=1.2)
                if insets and kind != "pruned":
                    cx, cy = x0 + 0.4 * (x1 - x0), y0 + 0.4 * (y1 - y0)  # off the crossings
                    size = min(0.6 / max(widths), 0.12)
                    iax = fig.add_axes((cx - size / 2, (cy + 0.08) / (n_layers + 0.16)
                                        - size / 2 * 0.6, size, size * 0.6))
                    iax.plot(hgrid[:, i], phi[:, i, j], color=_color(kind), alpha=max(alpha, .3))
                    iax.set_xticks([])
                    iax.set_yticks([])
                    for side in iax.spines.values():
                        side.set_alpha(max(alpha, 0.2))
    for l_, w in enumerate(widths):
        for i in range(w):
            px, py = pos(l_, i)
            is_mult = 0 < l_ <= len(mult) - 1 and i >= w - mult[l_ - 1]
            ax.scatter([px], [py], s=90 if is_mult else 60, color="black",
                       marker="X" if is_mult else "o",
                       alpha=_alpha(float(nodes_norm[l_][i])), zorder=3)
            label = (coords[i] if l_ == 0 and i < len(coords) else
                     fields[i] if l_ == len(widths) - 1 and i < len(fields) else "")
            if label:
                ax.annotate(label, (px, py), xytext=(0, -14 if l_ == 0 else 8),
                            textcoords="offset points", ha="center", fontsize=10)
    return fig


def layer_figure(net: KAN, x: Tensor, imp: Importance, layer_index: int) -> Figure:
    """An ``n_in x n_out`` grid of the edge functions of one layer over their input ranges."""
    layer = net.layers[layer_index]
    hgrid, phi = edge_curves(net, x)[layer_index]
    score = imp.edges_normalized[layer_index].detach().cpu().numpy()
    fig = Figure(figsize=(max(2.2 * layer.n_out + 0.6, 4.2), 1.8 * layer.n_in + 0.6),
                 layout="constrained")  # wide enough for the title with one column
    axes = fig.subplots(layer.n_in, layer.n_out, squeeze=False)
    for i in range(layer.n_in):
        for j in range(layer.n_out):
            ax = axes[i, j]
            kind = layer.edge_kind(i, j)
            ax.plot(hgrid[:, i], phi[:, i, j], color=_color(kind))
            label = {"x": "linear", "pruned": "masked"}.get(kind, kind)  # not coordinate x
            ax.set_title(f"({i},{j}) {label} s={score[i, j]:.2f}", fontsize=7)
            ax.tick_params(labelsize=6)
    units = " (the coordinates as the network sees them)" if layer_index == 0 else ""
    fig.suptitle(f"layer {layer_index}: phi_ij over the observed range of input i{units}",
                 fontsize=9)
    return fig


def save_figures(net: KAN, x: Tensor, imp: Importance, out_dir: str | Path, prefix: str,
                 coords: tuple[str, ...] = (), fields: tuple[str, ...] = ()) -> list[Path]:
    """Write ``{prefix}_network.png`` and ``{prefix}_layer{l}.png`` into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{prefix}_network.png"]
    network_figure(net, x, imp, coords, fields).savefig(paths[0], dpi=DPI, format="png")
    for l_ in range(len(net.layers)):
        path = out / f"{prefix}_layer{l_}.png"
        layer_figure(net, x, imp, l_).savefig(path, dpi=DPI, format="png")
        paths.append(path)
    return paths
