"""Regenerate the stored reference files: ``python -m kanpde.classical --out DIR``.

Writes ``burgers1d.h5`` and ``allen_cahn1d.h5`` (grid layout of :mod:`kanpde.io.reference_files`) at
the default resolutions, which are exactly those of the committed files, and prints the error
estimates recorded in each file.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from kanpde.classical.allen_cahn import make_allen_cahn_reference
from kanpde.classical.burgers import make_burgers_reference

_MAKERS: dict[str, tuple[str, Callable[..., dict[str, float]]]] = {
    "burgers": ("burgers1d.h5", make_burgers_reference),
    "allen_cahn": ("allen_cahn1d.h5", make_allen_cahn_reference),
}


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, write the requested reference files; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m kanpde.classical", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument(
        "--only", nargs="+", choices=sorted(_MAKERS), default=sorted(_MAKERS),
        help="which references to generate (default: all)",
    )
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    command = " ".join(["python -m kanpde.classical", *argv])
    if not args.out.is_dir():
        parser.error(f"--out {args.out}: not an existing directory")
    for name in args.only:
        filename, make = _MAKERS[name]
        path = args.out / filename
        start = time.perf_counter()
        errors = make(path, command=command)
        size = path.stat().st_size / 1e6
        summary = ", ".join(f"{key}={value:.2e}" for key, value in errors.items())
        print(f"{path} ({size:.2f} MB, {time.perf_counter() - start:.1f} s): {summary}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
