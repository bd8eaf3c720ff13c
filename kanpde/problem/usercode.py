"""Calls into user code, with one-line errors.

Every function a problem file supplies (residuals, the exact solution, condition
coefficients and boundary predicates) is called through :func:`call_user`. Whatever it
raises, and a ``sys.exit()`` inside it, becomes a :class:`UserCodeError`: one line naming
what was called, the exception and the user's file and line, e.g.::

    residual 'pde' raised IndexError: index 5 is out of bounds for dimension 1 with size 2
    (poisson.py, line 14)

The original exception is chained (``__cause__``), so ``kanpde --debug`` shows its
traceback. ``KeyboardInterrupt`` (and so a SIGTERM turned into one, see
:mod:`kanpde.cli.signals`) passes through unchanged.
"""

from __future__ import annotations

import functools
import os
import sysconfig
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from kanpde.problem.scope import ProblemError

T = TypeVar("T")

_PACKAGE_DIR = str(Path(__file__).resolve().parents[1])  # the kanpde package


class UserCodeError(ProblemError):
    """A function from a problem file failed; the message is one line."""


def _library_dirs() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    dirs = {_PACKAGE_DIR}
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        if paths.get(key):
            dirs.add(str(Path(paths[key]).resolve()))
    return tuple(dirs)


def _is_user_file(filename: str, library: tuple[str, ...]) -> bool:
    if filename.startswith("<"):  # <frozen ...>, <string>
        return False
    try:
        resolved = str(Path(filename).resolve())
    except OSError:
        return False
    return not any(resolved == d or resolved.startswith(d + os.sep) for d in library)


def _shown(filename: str) -> str:
    """``filename`` relative to the working directory when it lies below it."""
    try:
        rel = os.path.relpath(filename)
    except ValueError:  # another drive
        return filename
    return filename if rel.startswith("..") else rel


def user_location(err: BaseException) -> str | None:
    """``"file.py, line N"``: the innermost frame of user code in ``err``'s traceback (or
    in the exceptions it was raised from), or ``None`` when there is none."""
    library = _library_dirs()
    found = None
    seen: set[int] = set()
    chain: BaseException | None = err
    while chain is not None and id(chain) not in seen:
        seen.add(id(chain))
        for frame in traceback.extract_tb(chain.__traceback__):
            if _is_user_file(frame.filename, library):
                found = f"{_shown(frame.filename)}, line {frame.lineno}"
        chain = chain.__cause__ or chain.__context__
    return found


def defined_at(fn: object) -> str:
    """``" (file.py, line N)"``: where the user's function ``fn`` is defined (``""`` for a
    callable without source, e.g. a builtin or a class instance)."""
    code = getattr(fn, "__code__", None)
    if code is None:
        return ""
    return f" ({_shown(code.co_filename)}, line {code.co_firstlineno})"


def misshaped(message: str, fn: object) -> ProblemError:
    """A :class:`ProblemError` for a user function's output of the wrong shape or type:
    ``message`` and where ``fn`` is defined (the traceback shows only the caller)."""
    err = ProblemError(message + defined_at(fn))
    err.located = True  # type: ignore[attr-defined]
    return err


def first_line(err: BaseException) -> str:
    """The first non-empty line of ``str(err)`` (the exception's name when empty)."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def describe_failure(what: str, err: BaseException) -> str:
    """One line for ``err`` raised by the user code ``what``."""
    where = None if getattr(err, "located", False) else user_location(err)
    at = f" ({where})" if where else ""
    if isinstance(err, SystemExit):
        return f"{what} called sys.exit({err.code!r}){at}"
    if isinstance(err, ProblemError):
        return f"{what}: {first_line(err)}{at}"
    return f"{what} raised {type(err).__name__}: {first_line(err)}{at}"


def call_user(fn: Callable[..., T], what: str, *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)``, with any failure turned into one :class:`UserCodeError`.

    Args:
        fn: the user's function.
        what: what it is in messages, e.g. ``"problem file 'p.py': residual 'pde'"``.

    Raises:
        UserCodeError: ``fn`` raised (or called ``sys.exit()``); already described
            failures of nested calls pass through unchanged.
        KeyboardInterrupt: passed through.
    """
    try:
        return fn(*args, **kwargs)
    except UserCodeError:
        raise
    except (Exception, SystemExit) as err:
        raise UserCodeError(describe_failure(what, err)) from err


def user_function(fn: Callable[..., T], what: str) -> Callable[..., T]:
    """``fn`` called through :func:`call_user` (one-line errors naming ``what``), keeping its
    name; a function already wrapped so is returned as it is."""
    if getattr(fn, "__kanpde_user__", False):
        return fn

    @functools.wraps(fn)
    def called(*args: Any, **kwargs: Any) -> T:
        return call_user(fn, what, *args, **kwargs)

    called.__kanpde_user__ = True  # type: ignore[attr-defined]
    return called
