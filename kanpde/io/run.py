"""A finished run directory, loaded once for every command that reads it.

:func:`load_run` reads ``DIR/result.h5`` into a :class:`Run`: the
:class:`~kanpde.io.results.Result`, the trained model rebuilt from the result alone (its spec
holds the constructor arguments, :mod:`kanpde.nn.spec`) and, when asked for, the problem. The
problem comes from the copy of the problem file stored in the result, executed as if it were
at its original path (so data files beside the original still resolve); the original file is
not needed, and :attr:`Run.problem_note` says in one line when it changed or is gone. Only a
model with a hard constraint needs the problem (its distance functions belong to it);
``predict`` and ``export`` of other runs never load it.
"""

from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kanpde.io.results import Result, load_result


@dataclass
class Run:
    """A loaded run directory.

    Attributes:
        directory: the run directory.
        result: what the run produced.
    """

    directory: Path
    result: Result

    @functools.cached_property
    def model(self) -> Any:
        """The trained model (built from the result; the problem only for a hard constraint).

        Raises:
            ValueError: a model of the caller's own class, or a result of an earlier format.
        """
        spec = self.result.model_spec
        constrain = (lambda net: self.problem.constrain(net)) \
            if spec.get("hard_constraint") else None
        return self.result.rebuild_model(hard_constraint=constrain)

    @functools.cached_property
    def problem(self) -> Any:
        """The run's problem, from the problem file stored in the result (else from the
        original file, for results that hold no copy).

        Raises:
            FileNotFoundError: no stored copy and the original file is gone (one line).
            ProblemError: the problem cannot be loaded (one line).
        """
        from kanpde.problem.load import load_problem, load_problem_source

        path = self.result.problem_path
        if self.result.problem_source:
            return load_problem_source(self.result.problem_source, path)
        if not path or not Path(path).is_file():
            raise FileNotFoundError(f"run {self.directory}: its problem file {_where(path)} "
                                    "and the result holds no copy of it")
        return load_problem(path)

    @property
    def problem_note(self) -> str | None:
        """One line when the original problem file differs from the stored copy or is gone
        (``None`` when it is unchanged, or when the result holds no copy)."""
        source, path = self.result.problem_source, self.result.problem_path
        if not source:
            return None
        if not path or not Path(path).is_file():
            return (f"the problem file of run {self.directory}, {_where(path)}; using the "
                    "copy stored in its result.h5")
        stored = hashlib.sha256(source.encode("utf-8")).hexdigest()
        if hashlib.sha256(Path(path).read_bytes()).hexdigest() != stored:
            return (f"the problem file '{path}' changed since run {self.directory}; using "
                    "the copy stored in its result.h5")
        return None


def _where(path: str) -> str:
    """Why the problem file at ``path`` cannot be read, in a few words: gone, or a relative
    path (results of earlier versions) that does not lead to it from here."""
    if not path:
        return "was not recorded"
    if not Path(path).is_absolute():
        return (f"'{path}' is a path relative to the directory the run was made in, and "
                f"not found from {Path.cwd()}")
    return f"'{path}' is gone"


def load_run(directory: str | os.PathLike) -> Run:
    """Load a run directory written by ``kanpde solve`` (or :func:`~kanpde.io.results.
    save_result`).

    Raises:
        FileNotFoundError: no such directory or no ``result.h5`` in it (named).
        ValueError: not a readable kanpde result (named).
    """
    return Run(Path(directory), load_result(directory))
