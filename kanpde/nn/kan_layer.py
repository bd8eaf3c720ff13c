"""One KAN layer: ``n_in * n_out`` learnable edge functions, with a value forward and a
second-order jet forward.

A KAN layer maps ``n_in`` inputs to ``n_out`` outputs with one learnable univariate function
per edge (pykan semantics)::

    y_j = sum_i phi_ij(h_i),
    phi_ij(x) = w_b[i, j] silu(x) + w_s[i, j] sum_m c[i, m, j] B_m(x),

where ``B_m`` are the ``G + k`` B-splines of degree ``k`` on input ``i``'s knots (see
:mod:`kanpde.core.spline`). Off the grid the spline continues as the polynomial of its end
interval; :meth:`KANLayer.update_grid` moves the knots to where the activations are.

The jet forward evaluates every edge function with its first two derivatives from the
``k + 1`` non-zero local bases: for the stacked rows ``[value; grad_a; S_r]`` of the input jet
the features of input ``i`` are ``[b(h_i), B_m(h_i)]``, ``[b'(h_i), B'_m(h_i)] dh_i/dx_a`` and
``[b'', B''_m](h_i) q_ri + [b', B'_m](h_i) S_ri`` (``b = silu``), and the layer output is
``features @ [w_b; w_s * c]``, where only the ``k + 1`` coefficient rows each point touches
are read (:mod:`kanpde.kernels.contract`; no dense ``(N, ..., G + k)`` basis is formed). The
value forward is the same code with no derivative rows, differentiable to any order, so nested
autograd and ``torch.func`` run through it.

Edges can be taken out of the spline form one by one: :meth:`KANLayer.set_symbolic` makes
edge ``(i, j)`` the symbolic function ``c f(a x + b) + d`` of :mod:`kanpde.nn.symbolic`
(trainable ``(a, b, c, d)``, pushed through the jet by its exact derivative triple) and
:meth:`KANLayer.mask_edge` fixes it to zero (pruning). Layers with neither run exactly the
pure-spline code.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from kanpde.core import spline
from kanpde.core.activations import silu_derivatives
from kanpde.core.engines import KERNELS
from kanpde.core.jet import Jet
from kanpde.nn._kan_jet import layer_jet
from kanpde.nn.symbolic import edge_triple, primitive


def spline_layer_jet(
    value: Tensor, grad: Tensor, second: Tensor, quad: Tensor | None, knots: Tensor, k: int,
    uniform: bool, coef: Tensor, base_weight: Tensor, *, backend: str = "auto",
    diag: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Jet of one KAN layer without Triton (the CPU engine and the kernels' reference).

    With ``C = 1 + d + R`` jet rows, the local weights of input ``i`` at point ``p`` are the
    ``k + 1`` non-zero bases times the row's chain-rule factor (``B_r = B_{idx+r}``)::

        a[p, 0, i, r]       = B_r(h_i)
        a[p, 1 + a, i, r]   = B'_r(h_i) dh_i/dx_a
        a[p, 1+d+s, i, r]   = B''_r(h_i) q_si + B'_r(h_i) S_si

    and the rows are ``sum_{i, r} a[p, c, i, r] coef[i, idx + r, :]`` plus the same with
    ``silu`` and ``base_weight``: ``(k + 1) / (G + k)`` of the work of a dense basis and no
    dense basis tensor (see :mod:`kanpde.nn._kan_jet`).

    Args:
        value: ``(N, n_in)`` layer inputs ``h``.
        grad: ``(N, d, n_in)`` their gradients (``d`` may be 0).
        second: ``(N, R, n_in)`` their channels ``S_r`` (``R`` may be 0).
        quad: ``(N, R, n_in)`` quadratic forms ``grad h_i^T W_r grad h_i``, or ``None`` for
            diagonal channels ``W_r = diag(diag[r])`` (then computed inside, fused on CPU).
        knots: ``(n_in, G + 2k + 1)``.
        k: spline order.
        uniform: knots are equally spaced per row (closed-form bases).
        coef: ``(n_in, G + k, n_out)`` effective spline coefficients ``w_s * c``.
        base_weight: ``(n_in, n_out)``.
        backend: ``"auto"`` (compiled CPU kernels when they build, else PyTorch),
            ``"compiled"`` or ``"torch"`` (see :func:`kanpde.kernels.contract.local_contract`).
        diag: ``(R, d)`` diagonal channel weights when ``quad`` is ``None``.

    Returns:
        ``(N, n_out)``, ``(N, d, n_out)``, ``(N, R, n_out)``: value, gradient, channels.
    """
    out = layer_jet(value, grad, second, quad, coef, base_weight, knots, k, uniform, backend,
                    diag)
    rows = out.split((1, grad.shape[1], second.shape[1]), dim=1)  # of (N, 1+d+R, n_out)
    return rows[0].squeeze(1), rows[1], rows[2]


class KANLayer(nn.Module):
    """One KAN layer: ``n_in * n_out`` learnable edge functions.

    Args:
        n_in, n_out: widths.
        grid_size: number ``G`` of base intervals (``>= 1``).
        spline_order: ``k`` in ``1..5``.
        grid_range: base range ``[a, b]`` of every input's grid.
        noise_scale: initial spline coefficients are ``U(-1/2, 1/2) * noise_scale / G``.
        generator: source of the initial random numbers.
    """

    def __init__(self, n_in: int, n_out: int, grid_size: int = 5, spline_order: int = 3,
                 grid_range: tuple[float, float] = (-1.0, 1.0), *, noise_scale: float = 0.5,
                 generator: torch.Generator | None = None, dtype: torch.dtype = torch.float64,
                 device: torch.device | str | None = None):
        super().__init__()
        spline.check_grid_size(grid_size)
        spline.check_order(spline_order)
        lo, hi = (float(v) for v in grid_range)
        if not lo < hi:
            raise ValueError(f"grid_range must satisfy a < b, got {grid_range!r}")
        self.n_in, self.n_out, self.k = n_in, n_out, spline_order
        self.uniform = True
        kw = {"dtype": dtype, "device": device}
        ends = torch.full((n_in,), lo, **kw), torch.full((n_in,), hi, **kw)
        self.register_buffer("knots", spline.uniform_knots(*ends, grid_size, spline_order))
        gen = generator if generator is not None else torch.Generator().manual_seed(0)
        u = torch.rand(3, n_in, n_out, generator=gen, dtype=dtype).to(device)
        noise = torch.rand(n_in, grid_size + spline_order, n_out, generator=gen, dtype=dtype)
        self.base_weight = nn.Parameter((2 * u[0] - 1) / n_in**0.5)  # (n_in, n_out)
        self.spline_scale = nn.Parameter(torch.full((n_in, n_out), n_in**-0.5, **kw))
        self.coef = nn.Parameter(((noise - 0.5) * noise_scale / grid_size).to(device))
        #: ``(n_in, n_out)`` 1 where the edge is a spline, 0 where symbolic or pruned;
        #: ``None``: every edge is a spline
        self.edge_mask: Tensor | None = None
        #: ``{(i, j): primitive name}`` of the symbolic edges
        self.symbolic: dict[tuple[int, int], str] = {}
        #: ``(n_in, n_out, 4)`` constants ``(a, b, c, d)`` of the symbolic edges (created by
        #: the first :meth:`set_symbolic`)
        self.register_parameter("sym_params", None)

    @property
    def grid_size(self) -> int:
        """Number ``G`` of base intervals."""
        return self.knots.shape[1] - 2 * self.k - 1

    def get_extra_state(self) -> dict:
        state: dict = {"uniform": self.uniform, "k": self.k}
        if self.edge_mask is not None:
            state["edge_mask"] = self.edge_mask.tolist()
            state["symbolic"] = [[i, j, name] for (i, j), name in sorted(self.symbolic.items())]
        return state

    def set_extra_state(self, state: dict) -> None:
        self.uniform = bool(state["uniform"])
        mask = state.get("edge_mask")
        self.edge_mask = None if mask is None else torch.as_tensor(
            mask, dtype=self.knots.dtype, device=self.knots.device)
        self.symbolic = {(int(i), int(j)): str(name)
                         for i, j, name in state.get("symbolic", [])}

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        """Accept states saved after grid extension or update (other ``G``, moved knots)."""
        knots, coef = state_dict.get(prefix + "knots"), state_dict.get(prefix + "coef")
        if knots is not None and knots.shape != self.knots.shape:
            self.knots = torch.empty_like(knots, device=self.knots.device,
                                          dtype=self.knots.dtype)
        if coef is not None and coef.shape != self.coef.shape:
            self.coef = nn.Parameter(torch.empty(coef.shape, device=self.coef.device,
                                                 dtype=self.coef.dtype))
        if prefix + "sym_params" in state_dict and self.sym_params is None:
            self.sym_params = nn.Parameter(self.knots.new_zeros(self.n_in, self.n_out, 4))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        kind = "uniform" if self.uniform else "adaptive"
        return f"{self.n_in} -> {self.n_out}, G={self.grid_size}, k={self.k}, {kind} grid"

    def effective_coef(self) -> Tensor:
        """``(n_in, G + k, n_out)`` coefficients ``w_s[i, j] * c[i, m, j]``."""
        return self.spline_scale[:, None, :] * self.coef

    @property
    def pure_spline(self) -> bool:
        """Every edge is a spline (no symbolic or pruned edge)."""
        return self.edge_mask is None

    def _spline_weights(self) -> tuple[Tensor, Tensor]:
        """Effective coefficients ``(n_in, G + k, n_out)`` and base weights ``(n_in, n_out)``
        with symbolic and pruned edges zeroed."""
        coef, base = self.effective_coef(), self.base_weight
        if self.edge_mask is not None:
            coef = coef * self.edge_mask[:, None, :]
            base = base * self.edge_mask
        return coef, base

    def _symbolic_jet(self, value: Tensor, grad: Tensor, second: Tensor, quad: Tensor,
                      out: tuple[Tensor, Tensor, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        """Add the symbolic edges' jets to the spline part ``out`` (shapes as in
        :func:`spline_layer_jet`): ``y_j += phi_ij(h_i)``, ``grad y_j += phi'_ij grad h_i``,
        ``S_rj += phi''_ij q_ri + phi'_ij S_ri``."""
        y, dy, sy = out
        groups: dict[str, list[tuple[int, int]]] = {}
        for edge, name in self.symbolic.items():
            groups.setdefault(name, []).append(edge)
        dev = value.device
        for name, edges in sorted(groups.items()):
            ii = torch.tensor([e[0] for e in edges], device=dev)
            jj = torch.tensor([e[1] for e in edges], device=dev)
            f, df, d2f = edge_triple(name, value[:, ii], self.sym_params[ii, jj])  # (N, E)
            y = y.index_add(1, jj, f)
            if grad.shape[1]:
                dy = dy.index_add(2, jj, df[:, None] * grad[:, :, ii])
            if second.shape[1]:
                sy = sy.index_add(2, jj, d2f[:, None] * quad[:, :, ii]
                                  + df[:, None] * second[:, :, ii])
        return y, dy, sy

    def forward(self, h: Tensor) -> Tensor:
        """``(N, n_in) -> (N, n_out)`` layer values."""
        empty = h.new_zeros(h.shape[0], 0, self.n_in)
        if self.edge_mask is None:
            return spline_layer_jet(h, empty, empty, empty, self.knots, self.k, self.uniform,
                                    self.effective_coef(), self.base_weight)[0]
        out = spline_layer_jet(h, empty, empty, empty, self.knots, self.k, self.uniform,
                               *self._spline_weights())
        return self._symbolic_jet(h, empty, empty, empty, out)[0]

    def jet(self, jet: Jet, kernel: str = "auto") -> Jet:
        """Push a jet of the layer inputs through the layer.

        Args:
            kernel: ``"auto"`` (fused Triton kernel for CUDA tensors on uniform grids when
                triton is available, else the PyTorch path of :func:`spline_layer_jet`, which
                runs compiled CPU loops on CPU when they build), ``"torch"`` or ``"triton"``
                (forced).
        """
        coef, base = ((self.effective_coef(), self.base_weight) if self.edge_mask is None
                      else self._spline_weights())
        triton = self._use_triton(jet.value, kernel)
        # diagonal channels (Laplacians, u_xx): the quadratic forms are formed inside
        diag = jet.channels.diagonal if jet.channels.count and jet.channels.is_diagonal \
            and not triton and self.edge_mask is None else None
        quad = None if diag is not None else (jet.quad() if jet.channels.count else jet.second)
        if triton:
            from kanpde.kernels import kan_layer_jet

            lo = self.knots[:, self.k]
            step = self.knots[:, self.k + 1] - lo
            value, grad, second = kan_layer_jet(
                jet.value, jet.grad, jet.second, quad, lo, step, self.grid_size, self.k,
                coef, base)
        else:
            value, grad, second = spline_layer_jet(
                jet.value, jet.grad, jet.second, quad, self.knots, self.k, self.uniform,
                coef, base, diag=diag)
        if self.edge_mask is not None:
            value, grad, second = self._symbolic_jet(jet.value, jet.grad, jet.second, quad,
                                                     (value, grad, second))
        return Jet(value, grad, second, jet.channels)

    def _use_triton(self, x: Tensor, kernel: str) -> bool:
        if kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
        if kernel == "torch":
            return False
        from kanpde.kernels import available

        ok = self.uniform and available(x.device)
        if kernel == "triton" and not ok:
            why = ("the grid is not uniform (after update_grid)" if not self.uniform else
                   f"triton cannot run on device {x.device} (CUDA, or TRITON_INTERPRET=1 "
                   "on CPU, with triton installed)")
            raise RuntimeError(f"kernel='triton' requested but {why}")
        return ok and (kernel == "triton" or x.is_cuda)

    def spline_values(self, h: Tensor, n_deriv: int = 0) -> Tensor:
        """``(n_deriv+1, N, n_in, n_out)`` raw spline parts ``sum_m c[i, m, j] B_m(h_i)``."""
        return spline.evaluate(h, self.knots, self.coef, self.k, n_deriv, self.uniform)

    def edge_values(self, h: Tensor) -> Tensor:
        """``(N, n_in, n_out)`` edge functions ``phi_ij(h_i)`` (symbolic edges included,
        pruned edges zero)."""
        silu = silu_derivatives(h)[0]
        out = (self.base_weight * silu[..., None]
               + self.spline_scale * self.spline_values(h)[0])
        if self.edge_mask is None:
            return out
        out = out * self.edge_mask
        for (i, j), name in self.symbolic.items():
            phi = edge_triple(name, h[:, i : i + 1], self.sym_params[i, j][None])[0][:, 0]
            out = out.index_put((torch.arange(h.shape[0], device=h.device),
                                 torch.tensor(i, device=h.device),
                                 torch.tensor(j, device=h.device)), phi)
        return out

    def edge_kind(self, i: int, j: int) -> str:
        """``"spline"``, ``"pruned"`` or the primitive name of a symbolic edge."""
        if (i, j) in self.symbolic:
            return self.symbolic[(i, j)]
        if self.edge_mask is not None and float(self.edge_mask[i, j]) == 0.0:
            return "pruned"
        return "spline"

    def _take_edge(self, i: int, j: int) -> None:
        if not (0 <= i < self.n_in and 0 <= j < self.n_out):
            raise ValueError(f"edge ({i}, {j}) outside a {self.n_in} -> {self.n_out} layer")
        if self.edge_mask is None:
            self.edge_mask = self.knots.new_ones(self.n_in, self.n_out)
        self.edge_mask[i, j] = 0.0
        self.symbolic.pop((i, j), None)

    @torch.no_grad()
    def set_symbolic(self, i: int, j: int, name: str,
                     params: Sequence[float] = (1.0, 0.0, 1.0, 0.0)) -> None:
        """Make edge ``(i, j)`` the symbolic function ``c f(a x + b) + d``.

        Args:
            i, j: input and output index.
            name: primitive of :data:`kanpde.nn.symbolic.PRIMITIVES`.
            params: initial ``(a, b, c, d)`` (trainable afterwards).

        The first call creates the ``sym_params`` parameter: rebuild any optimiser after it.
        """
        primitive(name)
        self._take_edge(i, j)
        if self.sym_params is None:
            self.sym_params = nn.Parameter(self.knots.new_zeros(self.n_in, self.n_out, 4))
        self.sym_params[i, j] = torch.as_tensor([float(v) for v in params],
                                                dtype=self.sym_params.dtype,
                                                device=self.sym_params.device)
        self.symbolic[(i, j)] = name

    def mask_edge(self, i: int, j: int) -> None:
        """Fix edge ``(i, j)`` to zero (pruning); a symbolic edge stops being one."""
        self._take_edge(i, j)

    @torch.no_grad()
    def set_spline(self, i: int, j: int) -> None:
        """Make edge ``(i, j)`` a spline again (its spline parameters as they were)."""
        self.symbolic.pop((i, j), None)
        if self.edge_mask is not None:
            self.edge_mask[i, j] = 1.0

    def _fit_points(self, knots: Tensor) -> Tensor:
        """``(G'(k+1), n_in)`` points, ``k + 1`` inside every base interval of ``knots``."""
        inner = knots[:, self.k : knots.shape[1] - self.k]  # (n_in, G'+1)
        frac = (torch.arange(self.k + 1, dtype=knots.dtype, device=knots.device) + 0.5)
        frac = frac / (self.k + 1)
        pts = inner[:, :-1, None] + (inner[:, 1:] - inner[:, :-1])[..., None] * frac
        return pts.reshape(self.n_in, -1).T

    @torch.no_grad()
    def _fit_to(self, knots: Tensor) -> Tensor:
        """``(n_in, G' + k, n_out)`` coefficients on ``knots`` that keep the spline part.

        The old spline part ``sum_m c[i, m, j] B_m`` (polynomial continuation off the old
        grid included) is fitted by least squares at ``k + 1`` points inside every base
        interval of ``knots``: no interval is empty, so the fit is well-posed (no ridge
        needed) and exact whenever the old spline lies in the new spline space.
        """
        x = self._fit_points(knots)  # (G'(k+1), n_in)
        target = self.spline_values(x)[0]  # (G'(k+1), n_in, n_out)
        return spline.fit_coefficients(x, target, knots, self.k, _equally_spaced(knots))

    @torch.no_grad()
    def _refit(self, knots: Tensor, uniform: bool) -> None:
        """Move to ``knots`` and refit ``c`` so the spline part is kept on the new base range."""
        coef = self._fit_to(knots)
        self.knots = knots
        self.uniform = uniform
        self.coef = nn.Parameter(coef.contiguous())

    def extend_grid(self, grid_size: int) -> None:
        """Refine to ``grid_size`` intervals on the same base range (least-squares transfer).

        On nested grids (``grid_size`` a multiple of ``G``) the spline is reproduced exactly.
        The ``coef`` parameter is replaced: rebuild any optimiser afterwards.
        """
        spline.check_grid_size(grid_size)
        inner = self.knots[:, self.k : self.knots.shape[1] - self.k]  # (n_in, G+1)
        old = torch.linspace(0.0, 1.0, inner.shape[1], dtype=torch.float64)
        new = torch.linspace(0.0, 1.0, grid_size + 1, dtype=torch.float64)
        rows = [torch.from_numpy(_interp(new, old, r)) for r in inner.detach().cpu().double()]
        new_inner = torch.stack(rows).to(self.knots)
        self._refit(spline.extend_knots(new_inner, self.k), self.uniform)

    def _target_grid(self, h: Tensor, grid_eps: float, margin: float) -> tuple[Tensor, Tensor]:
        """Base knots ``(n_in, G + 1)`` of pykan's update rule for the samples ``h``, and the
        ``(n_in,)`` mask of inputs whose samples are all equal (they keep their knots)."""
        sorted_h = torch.sort(h, dim=0).values  # (S, n_in)
        lo, hi = sorted_h[0], sorted_h[-1]
        flat = (hi - lo) <= 1e-12 * (1.0 + hi.abs())
        pad = margin * (hi - lo)
        lo, hi = lo - pad, hi + pad
        pos = torch.linspace(0, h.shape[0] - 1, self.grid_size + 1).round().long()
        adaptive = sorted_h[pos].T  # (n_in, G+1)
        steps = torch.linspace(0.0, 1.0, self.grid_size + 1, dtype=h.dtype, device=h.device)
        uniform = lo[:, None] + (hi - lo)[:, None] * steps  # (n_in, G+1)
        inner = grid_eps * uniform + (1.0 - grid_eps) * adaptive
        inner[:, 0], inner[:, -1] = lo, hi  # exact ends: every sample lies on the grid
        gaps = inner[:, 1:] - inner[:, :-1]
        tiny = 1e-9 * (hi - lo).clamp_min(1e-300)
        bad = (gaps <= tiny[:, None]).any(1)
        inner = torch.where((bad & ~flat)[:, None], uniform, inner)
        inner = torch.where(flat[:, None], self._inner(), inner)
        return inner, flat

    def _inner(self) -> Tensor:
        """``(n_in, G + 1)`` base knots ``t_k .. t_{G+k}``."""
        return self.knots[:, self.k : self.knots.shape[1] - self.k]

    def _keeping_grid(self, target: Tensor, lattice: bool) -> Tensor:
        """Base knots ``(n_in, G + 1)`` on the target range that contain the old breakpoints.

        The old spline part is a polynomial between its interior knots ``t_{k+1} ..
        t_{G+k-1}`` and beyond its base range, so it lies in the spline space of any knots
        that contain its interior knots inside the range: the refit keeps it up to
        round-off. Per input with target range ``[a, b]``:

        * with ``lattice`` and equally spaced old knots (spacing ``h``), the finest uniform
          grid of spacing ``h / q`` (``q`` a positive integer) through the old knots whose
          ``G`` intervals cover ``[a, b]`` (equally padded on both sides), if any;
        * otherwise the old interior knots inside ``[a, b]`` (at least ``1e-3 (b - a)``
          from its ends) and, for the remaining knots, the ``target`` knots (farthest from
          the knots chosen so far first), or the midpoint of the widest interval where every
          target knot lies within a quarter of it of a chosen knot.
        """
        old_inner = self._inner().detach().cpu().double()
        old = old_inner[:, 1:-1]
        rows = []
        for i, row in enumerate(target.detach().cpu().double()):
            a, b = float(row[0]), float(row[-1])
            grid = _lattice(old_inner[i], a, b, self.grid_size) if lattice else None
            if grid is not None:
                rows.append(grid)
                continue
            gap = 1e-3 * (b - a)
            knots = [a, b] + [float(t) for t in old[i] if a + gap < float(t) < b - gap]
            candidates = [float(t) for t in row[1:-1]]
            while len(knots) < self.grid_size + 1:
                knots.sort()
                widest = max(hi - lo for lo, hi in zip(knots[:-1], knots[1:], strict=True))
                dist = [min(abs(c - t) for t in knots) for c in candidates]
                best = max(range(len(dist)), key=dist.__getitem__, default=None)
                if best is not None and dist[best] >= 0.25 * widest:
                    knots.append(candidates.pop(best))
                else:
                    j = max(range(len(knots) - 1), key=lambda j: knots[j + 1] - knots[j])
                    knots.append(0.5 * (knots[j] + knots[j + 1]))
            rows.append(sorted(knots))
        return torch.tensor(rows, dtype=target.dtype).to(target.device)

    @torch.no_grad()
    def _spline_change(self, h: Tensor, knots: Tensor, coef: Tensor) -> Tensor:
        """``(n_in,)`` largest change ``max_{s,j} |w_s[i, j] (s_new - s_old)(h[s, i])|`` of
        input ``i``'s spline edges at the samples ``h`` (symbolic and pruned edges skipped)."""
        new = spline.evaluate(h, knots, coef, self.k, 0, _equally_spaced(knots))[0]
        diff = (new - self.spline_values(h)[0]) * self.spline_scale  # (S, n_in, n_out)
        if self.edge_mask is not None:
            diff = diff * self.edge_mask
        return diff.abs().amax(dim=(0, 2))

    @torch.no_grad()
    def update_grid(self, h: Tensor, grid_eps: float = 0.02, *, margin: float = 0.0,
                    tol: float | None = None) -> dict[str, int | float]:
        """Place the knots where the inputs ``h`` ``(S, n_in)`` are and keep the function there.

        Base knots are ``grid_eps * uniform + (1 - grid_eps) * quantiles`` of each input's
        samples over their range widened by ``margin * (max - min)`` on each side
        (``grid_eps = 1``: a uniform grid over that range), as pykan's
        ``update_grid_from_samples`` (Liu et al., "KAN", 2024, §2.5). Inputs whose samples
        are all equal keep their grid. The new coefficients are a least-squares fit of the
        old spline part at ``k + 1`` points in every new interval (:meth:`_fit_to`).

        With ``tol``, the update keeps the layer's function on the samples: an input whose
        refit changes its edges by more than ``tol * max |y| / n_in`` there (``y`` ``(S,
        n_out)``: the layer's outputs at ``h``) takes knots on the same range that contain
        its old breakpoints instead (:meth:`_keeping_grid`, exact up to round-off), and
        keeps its old knots and coefficients if even that misses. So the layer's outputs at
        ``h`` move by at most ``tol * max |y|``.

        Returns:
            ``{"moved": n, "kept_breakpoints": n, "unchanged": n, "max_change": e}``: how
            many inputs took the pykan knots, knots containing their old breakpoints, or no
            new knots, and the largest change ``e`` of the layer's outputs at ``h`` relative
            to ``max |y|``. The ``coef`` parameter is replaced: rebuild any optimiser.
        """
        if not 0.0 <= grid_eps <= 1.0:
            raise ValueError(f"grid_eps must be in [0, 1], got {grid_eps}")
        if not margin >= 0.0:
            raise ValueError(f"margin must be >= 0, got {margin}")
        h = h.detach()
        before = self(h)
        scale = float(before.abs().max()) if before.numel() else 0.0
        inner, flat = self._target_grid(h, grid_eps, margin)
        knots = spline.extend_knots(inner, self.k)
        coef = self._fit_to(knots)
        moved = torch.ones(self.n_in, dtype=torch.bool, device=h.device)
        keeping = torch.zeros_like(moved)
        if tol is not None:
            bound = tol * max(scale, 1e-300) / self.n_in
            moved = (self._spline_change(h, knots, coef) <= bound) | flat
            if not bool(moved.all()):
                keep_knots = spline.extend_knots(
                    self._keeping_grid(inner, lattice=grid_eps == 1.0), self.k)
                keep_coef = self._fit_to(keep_knots)
                keeping = ~moved & (self._spline_change(h, keep_knots, keep_coef) <= bound)
                knots = torch.where(keeping[:, None], keep_knots, knots)
                coef = torch.where(keeping[:, None, None], keep_coef, coef)
            unchanged = ~(moved | keeping)
            knots = torch.where(unchanged[:, None], self.knots, knots)
            coef = torch.where(unchanged[:, None, None], self.coef.detach(), coef)
        self.knots = knots.contiguous()
        self.uniform = _equally_spaced(self.knots)
        self.coef = nn.Parameter(coef.contiguous())
        change = float((self(h) - before).abs().max()) / max(scale, 1e-300) if scale else 0.0
        n_moved, n_keep = int(moved.sum()), int(keeping.sum())
        return {"moved": n_moved, "kept_breakpoints": n_keep,
                "unchanged": self.n_in - n_moved - n_keep, "max_change": change}

    def range_fraction(self, h: Tensor) -> Tensor:
        """``(n_in,)`` fraction of the inputs ``h`` outside each input's base range."""
        lo, hi = self.knots[:, self.k], self.knots[:, -self.k - 1]
        return ((h < lo) | (h > hi)).to(h.dtype).mean(0)


def _lattice(old: Tensor, a: float, b: float, grid_size: int) -> list[float] | None:
    """``G + 1`` equally spaced knots through the equally spaced ``old`` ``(G + 1,)`` knots
    covering ``[a, b]`` (equally padded on both sides), at the finest spacing ``h / q``
    (``q`` a positive integer) that fits; ``None`` when the old knots are not equally spaced
    or even spacing ``h`` needs more than ``G`` intervals."""
    steps = old[1:] - old[:-1]
    h = float(steps.mean())
    if not (h > 0 and float((steps - h).abs().max()) <= 1e-12 * h and b > a):
        return None
    t0 = float(old[0])
    q_hi = int(grid_size * h / (b - a)) + 1
    q_fits = int((grid_size - 2) * h / (b - a))  # every q <= q_fits fits; try a few above
    for q in itertools.chain(range(q_hi, max(q_fits, q_hi - 64, 0), -1),
                             range(q_fits, 0, -1)):
        step = h / q
        first = math.floor((a - t0) / step + 1e-9)
        spare = grid_size - (math.ceil((b - t0) / step - 1e-9) - first)
        if spare >= 0:
            start = first - spare // 2
            return [t0 + (start + j) * step for j in range(grid_size + 1)]
    return None


def _equally_spaced(knots: Tensor) -> bool:
    """Every row of ``knots`` ``(n, K)`` is equally spaced (closed-form bases apply)."""
    steps = knots[:, 1:] - knots[:, :-1]
    return bool(((steps - steps[:, :1]).abs() <= 1e-12 * steps[:, :1].abs()).all())


def _interp(x_new: Tensor, x_old: Tensor, y_old: Tensor):
    import numpy as np

    return np.interp(x_new.numpy(), x_old.numpy(), y_old.numpy())
