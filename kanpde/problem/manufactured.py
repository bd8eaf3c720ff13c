"""Manufactured solutions: the source term derived from the exact solution.

A manufactured problem picks a solution ``u*`` and an operator ``L`` and solves
``L[u] = L[u*]``. Written by hand, the source ``L[u*]`` repeats the solution a second time,
differentiated by hand, which is where such problems go wrong. With :func:`manufactured`
a problem states only its operator and its solution::

    problem = Problem(
        name="poisson2d_sinsin",
        coords=("x", "y"),
        domain=Box([-1, -1], [1, 1], coord_names=("x", "y")),
        residuals={"pde": manufactured(lambda s: s.u.laplacian())},
        conditions=[Dirichlet(on="boundary", value=0.0)],
        exact=lambda x: sin(pi * x[:, 0]) * sin(pi * x[:, 1]),
    )

The residual is ``r(s) = L(s) - L(s*)`` where ``s*`` is the scope of the exact solution at
the same points: its values, gradients and the second-order channels the problem's
residuals use, by forward-over-reverse ``torch.func`` through the exact function
(:class:`~kanpde.problem.SolutionField`), whatever the engine that differentiates the
model. Constants are the problem's; unknown parameters take their true values
(``true_unknowns``), which a manufactured inverse problem must give. The exact part depends
on the points only, so it is computed once per point set (a few sets are kept).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from kanpde.problem.scope import ProblemError, Scope

__all__ = ["Manufactured", "manufactured"]

_CACHED_SETS = 4


class Manufactured:
    """The residual ``L[u] - L[u*]`` of an operator ``L`` (see the module docstring).

    Made by :func:`manufactured`; a :class:`~kanpde.problem.Problem` binds it to its exact
    solution when it is built, so it is only evaluated as one of a problem's residuals.
    """

    def __init__(self, operator: Callable[[Scope], Tensor], problem=None):
        if not callable(operator):
            raise ProblemError(f"manufactured(operator): the operator must be a function of "
                               f"the scope, got {type(operator).__name__}")
        self.operator = operator
        self.problem = problem
        self._cache: list[tuple[Tensor, Tensor]] = []

    def bind(self, problem, name: str) -> Manufactured:
        """This residual for ``problem`` (named ``name`` in errors).

        Raises:
            ProblemError: the problem has no exact solution, or unknown parameters without
                true values.
        """
        if problem.exact is None:
            raise ProblemError(f"residual {name!r} is manufactured, which needs an exact "
                               "solution (exact=...)")
        missing = [k for k in problem.unknowns if k not in problem.true_unknowns]
        if missing:
            raise ProblemError(f"residual {name!r} is manufactured: give the true values of "
                               f"the unknowns {', '.join(missing)} (true_unknowns=...)")
        return Manufactured(self.operator, problem)

    def __call__(self, s: Scope) -> Tensor:
        """``(N,)``: ``L`` on the model's scope less ``L`` on the exact solution's."""
        value = self.operator(s)
        if self.problem is None:
            raise ProblemError("a manufactured residual is evaluated only inside a Problem")
        if not hasattr(self.problem, "_keys"):  # the problem's probe, while it is built:
            return value  # only the derivatives asked for matter
        return value - self._exact(s.points)

    def _exact(self, x: Tensor) -> Tensor:
        """``L[u*]`` at ``x`` ``(N, d)``, without a graph (cached per point set)."""
        x = x.detach()
        for pts, out in self._cache:
            if pts.shape == x.shape and pts.dtype == x.dtype and pts.device == x.device \
                    and torch.equal(pts, x):
                return out
        from kanpde.problem.problem import SolutionField

        problem = self.problem
        jet = SolutionField(problem).jet(x, problem.channels(x))
        jet = type(jet)(jet.value.detach(), jet.grad.detach(), jet.second.detach(),
                        jet.channels)
        truth = {k: x.new_tensor(float(v)) for k, v in problem.true_unknowns.items()
                 if k in problem.unknowns}
        exact_scope = problem.scope_of(x, jet, unknowns=truth or None)
        out = problem._check_output(self.operator(exact_scope), x.shape[0],
                                    problem.what("manufactured operator")).detach()
        self._cache = [(x.clone(), out), *self._cache[:_CACHED_SETS - 1]]
        return out


def manufactured(operator: Callable[[Scope], Tensor]) -> Manufactured:
    """A residual ``L[u] - L[u*]`` whose source term comes from the problem's ``exact``.

    Args:
        operator: ``L``, a function of the :class:`~kanpde.problem.scope.Scope` returning
            ``(N,)`` (written as the residual without its source, e.g.
            ``lambda s: -s.u.laplacian()``).

    Returns:
        A residual for ``Problem(residuals={...})``; the problem must have ``exact``.

    Raises:
        ProblemError: ``operator`` is not callable (when the problem is built: it has no
            exact solution, or unknowns without true values).
    """
    return Manufactured(operator)
