"""The loss of a run as a least-squares problem, the history columns of second-order stages,
and the check that a dense stage fits.

:class:`LeastSquares` views :class:`~kanpde.training.loss.PinnLoss` at the run's points as
``L(theta) = ||rho(theta)||^2`` over the optimised parameters: the loss, its terms and
``g = J^T rho`` with either ``J^T J`` (dense, :class:`~kanpde.training.jacobian.Jacobian`) or
the products ``J^T (J v)`` (:class:`~kanpde.training.jacobian.Products`), summed over the
processes of a data-parallel run; and the loss at trial parameters with the row scales
(causal weights) frozen at the linearisation point, so that a step is judged on the
objective it was computed for. The trainer runs the ``lm``/``gauss_newton`` stages
(:mod:`kanpde.training.second_order`) on it; :func:`history_row` gives their history columns
and :func:`check_dense_limit` refuses a dense stage that would not fit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from kanpde.training.config import ConfigError, stage_option
from kanpde.training.jacobian import Jacobian, Parameters, Products
from kanpde.training.loss import NonFiniteError, PinnLoss
from kanpde.training.points import TrainingPoints
from kanpde.training.sharding import Sharding

if TYPE_CHECKING:
    from kanpde.training.second_order import StepResult


@dataclass
class Linearization:
    """The loss, its terms and the Gauss-Newton quantities at the current parameters (sums
    over processes).

    Attributes:
        loss: ``L``.
        terms: term values ``L_t`` (unweighted).
        g: ``(P,)`` ``J^T rho`` in float64.
        a: ``(P, P)`` ``J^T J`` in float64 (``None`` for products only).
        products: the matrix-free products (``None`` for the dense path).
    """

    loss: float
    terms: dict[str, float]
    g: Tensor
    a: Tensor | None = None
    products: Products | None = None


class LeastSquares:
    """The loss of a run as a least-squares problem in ``theta`` (see the module docstring).

    Args:
        loss: the run's loss.
        model: the model.
        points: the global point sets.
        params: the optimised tensors.
        jacobian: the Jacobian engine (for the dense path).
    """

    def __init__(self, loss: PinnLoss, model, points: TrainingPoints, params: Parameters,
                 jacobian: Jacobian | None = None):
        self.loss, self.model, self.points, self.params = loss, model, points, params
        self.jacobian = jacobian or Jacobian(model, params)
        self.sharding: Sharding = loss.sharding
        self.scales: dict[str, Tensor] | None = None

    def _reduce(self, local: Tensor, terms: dict[str, Tensor], extra: list[Tensor]
                ) -> tuple[float, dict[str, float], list[Tensor]]:
        names = list(terms)
        head = torch.stack([local.to(torch.float64).reshape(()),
                            *(terms[k].detach().to(torch.float64).reshape(()) for k in names)])
        out = self.sharding.sum([head, *extra], "second-order all-reduce")
        return float(out[0][0]), {k: float(out[0][i + 1]) for i, k in enumerate(names)}, \
            out[1:]

    def linearize(self, dense: bool = True) -> Linearization:
        """``L``, the terms and ``g`` (and ``J^T J`` or the products) at ``theta``; the row
        scales (causal weights) are frozen for :meth:`value`.

        Raises:
            NonFiniteError: the loss is not finite (on any process).
        """
        p = self.params.numel
        dev = self.params.tensors[0].device
        try:
            with torch.no_grad():
                res = self.loss.residuals(self.model, self.points, blocks=True)
            local = res.rows.to(torch.float64).square().sum()
            ok = bool(torch.isfinite(local))
        except RuntimeError as err:  # KAN layers fed non-finite values fail to index
            if "out of bounds" not in str(err):
                raise
            res, local, ok = None, torch.tensor(math.nan, dtype=torch.float64), False
        a = products = None
        if ok and dense:
            a, g = self.jacobian.normal_equations(res.blocks)  # type: ignore[union-attr]
        elif ok:
            products = Products(res.blocks, self.model, self.params)  # type: ignore[union-attr]
            g = products.jt(products.rows.detach()).to(torch.float64)
        else:
            g = torch.zeros(p, dtype=torch.float64, device=dev)
            a = torch.zeros(p, p, dtype=torch.float64, device=dev) if dense else None
        terms = res.terms if res is not None else {}
        loss, terms_f, out = self._reduce(local, terms, [g] + ([a] if a is not None else []))
        if not math.isfinite(loss):
            raise NonFiniteError(f"loss {loss} at the start of a second-order iteration")
        self.scales = res.scales if res is not None else None
        return Linearization(loss, terms_f, out[0], out[1] if a is not None else None,
                             products)

    def value(self) -> float:
        """``L`` at the current ``theta`` with the frozen row scales (``inf`` when it cannot
        be evaluated or is not finite)."""
        try:
            with torch.no_grad():
                res = self.loss.residuals(self.model, self.points, scales=self.scales)
            local = res.rows.to(torch.float64).square().sum()
        except RuntimeError as err:
            if "out of bounds" not in str(err):
                raise
            local = torch.tensor(math.inf, dtype=torch.float64)
        value = float(self.sharding.sum([local.reshape(1)], "trial loss all-reduce")[0][0])
        return value if math.isfinite(value) else math.inf

    def gram(self, products: Products, v: Tensor) -> Tensor:
        """``J^T (J v)`` summed over processes, float64."""
        local = products.jt(products.j(v)).to(torch.float64)
        return self.sharding.sum([local], "Gauss-Newton product all-reduce")[0]


def check_dense_limit(problem, config, n_unknowns: int = 0, model=None) -> None:
    """Raise before training when an ``lm`` stage would form ``J^T J`` for more parameters
    than its ``max_params``.

    Args:
        problem, config: the run's.
        n_unknowns: unknown parameters trained with the model.
        model: a model given to the run (counted at its size; ``None``: the models of
            ``config.model`` at each stage's grid size).

    Raises:
        ConfigError: one line naming the stage, the count and suggesting ``gauss_newton``.
    """
    from kanpde.nn.parts import trainable_parameters
    from kanpde.training.model import build_model

    grid, counts = config.model.grid_size, {}
    for i, st in enumerate(config.stages):
        grid = st.grid_extend if st.grid_extend is not None else grid
        if st.optimizer != "lm":
            continue
        if model is not None:
            grid = None
            counts[grid] = trainable_parameters(model) + n_unknowns
        elif grid not in counts:
            built = build_model(problem, config.model, "float64", "cpu", config.seed,
                                grid_size=grid if config.model.kind == "kan" else None,
                                source=config.source)
            counts[grid] = trainable_parameters(built) + n_unknowns
        limit = int(stage_option(st, "max_params"))
        if counts[grid] > limit:
            raise ConfigError(
                f"{config.source}: stages[{i}].max_params: the model has {counts[grid]} "
                f"trainable parameters in this stage, above the dense Levenberg-Marquardt "
                f"limit {limit}; use optimizer = 'gauss_newton' (matrix-free) or raise "
                "max_params")


#: history columns of a run with second-order stages (NaN in first-order rows)
HISTORY_COLUMNS = ("damping", "residual_evals", "jacobian_evals", "cg_steps")


def history_row(out: StepResult | None = None) -> dict[str, float]:
    """The :data:`HISTORY_COLUMNS` of one history row (``None``: a first-order row)."""
    if out is None:
        return dict.fromkeys(HISTORY_COLUMNS, math.nan)
    return {"damping": out.damping, "residual_evals": out.counts["residual_evals"],
            "jacobian_evals": out.counts["jacobian_evals"], "cg_steps": out.counts["cg_steps"]}
