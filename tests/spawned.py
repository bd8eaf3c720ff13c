"""Targets of processes spawned by the tests: a module of its own, so that a spawned process
imports only what the target needs (not the test module's fixtures and imports)."""

import time
from pathlib import Path

from kanpde.training.distributed import AddressInUse


def clashing(rank: int, world: int, port: int, out: str, wait: float) -> None:
    """Rank 0 finds its port taken on the first launch; the other ranks wait for a rendezvous
    that never comes (``wait`` seconds)."""
    first = not (Path(out) / "tried").exists()
    if first and rank == 0:
        (Path(out) / "tried").write_text(str(port))
        raise AddressInUse(f"rank 0: cannot listen on 127.0.0.1:{port}")
    if first:
        time.sleep(wait)
    (Path(out) / f"rank{rank}").write_text(str(port))
