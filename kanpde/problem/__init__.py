"""What to solve: :class:`Problem`, its conditions, the residual API (:class:`Scope`), domains
(:mod:`kanpde.problem.geometry`), samplers and reference solutions (the classical solvers that
make the stored references are in :mod:`kanpde.classical`).

* :mod:`~kanpde.problem.problem`: :class:`Problem` and :class:`SolutionField`;
* :mod:`~kanpde.problem.load`: :func:`load_problem` (problem files) and :func:`check_problem`;
* :mod:`~kanpde.problem.conditions`: boundary, initial and data conditions;
* :mod:`~kanpde.problem.scope`: what a residual sees (:class:`Scope`, :class:`FieldView`);
* :mod:`~kanpde.problem.geometry`: domains; :mod:`~kanpde.problem.sampling`: samplers;
* :mod:`~kanpde.problem.reference`: exact and interpolated reference solutions;
* :mod:`~kanpde.problem.usercode`: calls into the problem file's functions, one-line errors;
* :mod:`~kanpde.problem.exactcheck`: does the exact solution solve the problem?
* :mod:`~kanpde.problem.manufactured`: :func:`manufactured`, source terms derived from the
  exact solution.
"""

from kanpde.problem.conditions import (
    Dirichlet,
    Initial,
    InitialRate,
    Neumann,
    Observations,
    Periodic,
    Robin,
)
from kanpde.problem.load import check_problem, load_problem
from kanpde.problem.manufactured import manufactured
from kanpde.problem.problem import Problem, SolutionField
from kanpde.problem.scope import FieldView, ProblemError, Scope

__all__ = ["Problem", "SolutionField", "load_problem", "check_problem", "Scope", "FieldView",
           "ProblemError", "Dirichlet", "Neumann", "Robin", "Periodic", "Initial",
           "InitialRate", "Observations", "manufactured"]
