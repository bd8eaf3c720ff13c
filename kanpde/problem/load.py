"""Problem files: importing one, and checking that what it defines can be evaluated.

:func:`load_problem` imports a problem file (a Python module defining ``problem``), turns
every failure into one :class:`~kanpde.problem.scope.ProblemError` line naming the file, and
records the file's path and SHA-256 on the :class:`~kanpde.problem.problem.Problem`;
:func:`check_problem` evaluates its residuals, conditions and solution once with a small KAN.
"""

from __future__ import annotations

import dataclasses
import hashlib
import sys
import types
from pathlib import Path

import torch
from torch import Tensor

from kanpde.problem.problem import Problem
from kanpde.problem.scope import ProblemError
from kanpde.problem.usercode import UserCodeError, describe_failure, first_line, user_location


def load_problem(path: str | Path) -> Problem:
    """Import a problem file and return its ``problem``, validated.

    Raises:
        ProblemError: one line naming the file and the fault.
    """
    path = Path(path)
    if not path.is_file():
        raise ProblemError(f"problem file '{path}': not found")
    if path.suffix != ".py":
        raise ProblemError(f"problem file '{path}': expected a Python file (.py)")
    try:
        source = path.read_bytes()
    except OSError as err:
        raise ProblemError(f"problem file '{path}': cannot read it ({err.strerror})") from err
    return load_problem_source(source, path)


def load_problem_source(source: bytes | str, path: str | Path) -> Problem:
    """The ``problem`` a problem file's ``source`` defines, as if imported from ``path``.

    The module's ``__file__`` is ``path``, so paths the file makes relative to itself (data
    files beside it) resolve from there, whether or not ``path`` itself still exists; this is
    how a run's stored copy of its problem file is loaded again.

    Raises:
        ProblemError: one line naming the file and the fault.
    """
    path = Path(path)
    raw = source.encode("utf-8") if isinstance(source, str) else source
    module_name = f"kanpde_problem_{path.stem}_{abs(hash(str(path.resolve())))}"
    module = types.ModuleType(module_name)
    module.__file__ = str(path)
    sys.modules[module_name] = module
    try:
        exec(compile(raw, str(path), "exec"), module.__dict__)  # noqa: S102
    except UserCodeError as err:  # a residual or the solution failed in the probe
        raise ProblemError(f"problem file '{path}': {err}") from err
    except ProblemError as err:  # Problem(...) refused the definition: say where
        where = None if getattr(err, "located", False) else user_location(err)
        raise ProblemError(f"problem file '{path}': {first_line(err)}"
                           + (f" ({where})" if where else "")) from err
    except SystemExit as err:
        raise ProblemError(f"problem file '{path}': {describe_failure('import', err)}; a "
                           "problem file defines `problem` and must not exit") from err
    except Exception as err:  # the user's code failed: say where
        raise ProblemError(f"problem file '{path}': "
                           f"{describe_failure('import', err)}") from err
    finally:
        sys.modules.pop(module_name, None)
    problem = getattr(module, "problem", None)
    if problem is None:
        raise ProblemError(f"problem file '{path}': defines no `problem`")
    if not isinstance(problem, Problem):
        raise ProblemError(f"problem file '{path}': `problem` is a {type(problem).__name__}, "
                           "not a kanpde.Problem")
    try:
        check_problem(problem)
    except ProblemError as err:
        raise ProblemError(f"problem file '{path}': {err}") from err
    description = problem.description or (module.__doc__ or "").strip()
    return dataclasses.replace(problem, description=description, source_path=str(path),
                               source_sha256=hashlib.sha256(raw).hexdigest(),
                               source=raw.decode("utf-8", errors="replace"))


def check_problem(problem: Problem, n: int = 8) -> None:
    """Evaluate residuals, conditions and the solution on a few points with a small KAN."""
    from kanpde.nn import KAN

    gen = torch.Generator().manual_seed(0)
    x = problem.domain.sample_interior(n, gen)
    model = KAN([len(problem.coords), 3, len(problem.fields)], grid_size=3)
    problem.residual_values(model, x)
    for cond in problem.conditions:
        title = problem.condition_title(cond)
        try:
            pts = cond.sample(problem.domain, n, gen)
        except UserCodeError as err:
            raise ProblemError(f"{title}: {err}") from err
        except (ProblemError, ValueError) as err:
            raise ProblemError(f"{title}: {first_line(err)}") from err
        out = problem.condition_values(cond, model, pts)
        if not isinstance(out, Tensor) or out.ndim != 1:
            raise ProblemError(f"{title} returned "
                               f"{getattr(out, 'shape', type(out).__name__)}, expected (n,)")
    if problem.has_solution:
        problem.solution(x)
    problem.region_mask(x)
