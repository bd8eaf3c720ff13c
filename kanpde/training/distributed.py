"""Data-parallel training: process-group set-up, point sharding, rank-consistent decisions.

One model is trained by ``W`` processes ("ranks"). Every rank holds the same parameters and
the same *global* point sets; each evaluates the loss on its own shard of them (the rank-th
of ``W`` nearly equal contiguous slices, :meth:`Context.shard`). The loss is a mean over
points, ``L_t = (1/N) sum_i r_t(x_i)^2``, so each rank contributes
``sum_{i in shard} r_t(x_i)^2 / N`` and the sum over ranks (one all-reduce of the term values
and of the gradients, flattened into one buffer) is the loss and gradient of a
single-process run to round-off. L-BFGS closures see that global loss and gradient, so every
rank takes the same step.

The gradients are summed by an explicit all-reduce rather than by
``DistributedDataParallel``: the residuals reach the parameters through ``model.jet`` (not
``forward``), the loss is a sum of per-rank parts (DDP averages), L-BFGS evaluates its closure
several times per step, grad-norm weighting needs per-term gradients, and the NaN guard rolls
parameters back, none of which DDP's hooks fit. One flattened all-reduce per evaluation
carries the gradients and the term values together.

Scaling modes (``[distributed] scaling``):

* ``"strong"`` (default): the total number of points is fixed. Every rank draws the global
  set from the solver's seed exactly as a single process would and keeps its shard for the
  loss; the result does not depend on ``W``.
* ``"weak"``: the number of points per rank is fixed. Rank ``r`` draws its own points from a
  stream derived from the seed and ``r`` (:func:`point_seed`; rank 0 uses the seed itself);
  the global set is their concatenation (all-gathered), ``W`` times a single-process set.

Decisions that change the objective (new points, grid updates, grad-norm weights) are made
from all-gathered or all-reduced quantities and then broadcast from rank 0, so the ranks
never drift apart; :meth:`Context.check_in_sync` compares a hash of the parameters across
ranks at stage boundaries.

Processes are found from the environment: ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``/
``MASTER_ADDR``/``MASTER_PORT`` (``torchrun``), else ``SLURM_PROCID``/``SLURM_NTASKS``/
``SLURM_LOCALID`` (``srun``). Nothing is initialised unless the world size is above one.
Backend: NCCL on CUDA, gloo on CPU.
"""

from __future__ import annotations

import datetime
import hashlib
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor

__all__ = ["AddressInUse", "Context", "DistributedError", "Launch", "SINGLE", "context",
           "detect", "point_seed", "process_group", "spawn_local", "tensor_hash"]


class DistributedError(RuntimeError):
    """A collective failed (another rank stopped or is unreachable) or the ranks diverged."""


class AddressInUse(DistributedError):
    """Rank 0 could not listen on ``MASTER_PORT``: another process holds it."""


#: the exit status of a :func:`spawn_local` process whose rendezvous port was taken
EXIT_ADDRESS_IN_USE = 98


@dataclass(frozen=True)
class Launch:
    """Where this process sits, as the launcher describes it.

    Attributes:
        rank: global rank ``0..world_size-1``.
        world_size: number of processes.
        local_rank: rank on this node (selects the CUDA device).
        master_addr, master_port: rendezvous address (``None`` where not given).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    master_addr: str | None = None
    master_port: str | None = None


def detect(environ: Mapping[str, str] | None = None) -> Launch:
    """Rank and world size from ``torchrun`` variables, else from SLURM's.

    SLURM's ``SLURM_PROCID``/``SLURM_NTASKS``/``SLURM_LOCALID`` count only when
    ``MASTER_ADDR`` and ``MASTER_PORT`` are exported too (as for ``srun python -m kanpde``),
    so a single process inside a multi-task allocation stays a single-process run.

    Raises:
        DistributedError: malformed or inconsistent values.
    """
    env = os.environ if environ is None else environ
    if "WORLD_SIZE" in env:
        keys = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
    elif "SLURM_NTASKS" in env and "MASTER_ADDR" in env and "MASTER_PORT" in env:
        keys = ("SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID")
    else:
        return Launch()
    try:
        rank, world = int(env.get(keys[0], "0")), int(env[keys[1]])
        local = int(env.get(keys[2], str(rank)))
    except ValueError as err:
        raise DistributedError(f"{', '.join(keys)}: must be integers ({err})") from None
    if world < 1 or not 0 <= rank < world:
        raise DistributedError(f"{keys[0]}={rank}, {keys[1]}={world}: need "
                               f"0 <= rank < world size")
    return Launch(rank, world, local, env.get("MASTER_ADDR"), env.get("MASTER_PORT"))


def point_seed(seed: int, rank: int) -> int:
    """Seed of rank ``rank``'s point stream in weak scaling (rank 0: ``seed`` itself)."""
    if rank == 0:
        return seed
    return int(np.random.SeedSequence([seed, rank]).generate_state(1, np.uint64)[0] >> 1)


def tensor_hash(tensors: Sequence[Tensor]) -> str:
    """SHA-256 (hex, 16 digits) of the exact bytes of ``tensors`` (on the CPU)."""
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def _backend(device: torch.device, backend: str) -> str:
    if backend != "auto":
        return backend
    return "nccl" if device.type == "cuda" else "gloo"


def init(launch: Launch, device: torch.device, backend: str = "auto",
         timeout_s: float = 300.0) -> None:
    """Initialise the default process group for ``launch`` (``env://`` rendezvous).

    Raises:
        DistributedError: no rendezvous address, or the group could not be formed.
    """
    if launch.master_addr is None or launch.master_port is None:
        raise DistributedError(f"world size {launch.world_size} but MASTER_ADDR/MASTER_PORT "
                               "are not set (launch with torchrun, or export them under SLURM)")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    try:
        dist.init_process_group(_backend(device, backend), rank=launch.rank,
                                world_size=launch.world_size,
                                timeout=datetime.timedelta(seconds=timeout_s))
    except (RuntimeError, ValueError) as err:
        text = str(err)
        kind = AddressInUse if "EADDRINUSE" in text or "address already in use" in \
            text.lower() else DistributedError
        raise kind(f"rank {launch.rank}: cannot join the process group at "
                   f"{launch.master_addr}:{launch.master_port} ({_first_line(err)})") from err


def rank_device(device: torch.device, local_rank: int) -> torch.device:
    """The device of this rank: ``cuda`` without an index becomes ``cuda:local_rank``."""
    if device.type == "cuda" and device.index is None and _initialized():
        return torch.device("cuda", local_rank % max(torch.cuda.device_count(), 1))
    return device


@contextmanager
def process_group(device: str | torch.device = "cpu", backend: str = "auto",
                  timeout_s: float = 300.0) -> Iterator[Launch]:
    """Initialise the process group when launched with more than one process; tear it down
    on exit (only if this call set it up)."""
    launch = detect()
    created = False
    if launch.world_size > 1 and not _initialized():
        dev = torch.device(device)
        if dev.type == "cuda" and dev.index is None:
            dev = torch.device("cuda", launch.local_rank % max(torch.cuda.device_count(), 1))
        init(launch, dev, backend, timeout_s)
        created = True
    try:
        yield launch
    finally:
        if created and _initialized():
            dist.destroy_process_group()


def _initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


@dataclass(frozen=True)
class Context:
    """The process group as a training run sees it.

    Attributes:
        rank: this process's rank.
        world_size: number of processes (1: everything below is the identity).
        local_rank: rank on this node.
        scaling: ``"strong"`` or ``"weak"``.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    scaling: str = "strong"

    @property
    def active(self) -> bool:
        """Whether there is more than one process."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0 (the one that writes files and shows progress)."""
        return self.rank == 0

    # ---------------------------------------------------------------- sharding -------

    def shard(self, x: Tensor | None) -> Tensor | None:
        """This rank's contiguous slice of ``x`` ``(N, ...)`` (``N // W`` or one more rows)."""
        if x is None or not self.active:
            return x
        return torch.tensor_split(x, self.world_size)[self.rank]

    # ---------------------------------------------------------------- collectives ----

    @contextmanager
    def _guard(self, what: str) -> Iterator[None]:
        try:
            yield
        except DistributedError:
            raise
        except (RuntimeError, ValueError) as err:
            raise DistributedError(
                f"rank {self.rank} of {self.world_size}: {what} failed: another process "
                f"stopped or is unreachable ({_first_line(err)})") from err

    def all_reduce_flat(self, tensors: Sequence[Tensor], what: str = "all-reduce"
                        ) -> list[Tensor]:
        """Sums over ranks of ``tensors`` (any shapes, one dtype and device), by one
        all-reduce of their concatenation; returns new tensors of the same shapes."""
        if not self.active or not tensors:
            return [t.clone() for t in tensors]
        flat = torch.cat([t.detach().reshape(-1) for t in tensors])
        with self._guard(what):
            dist.all_reduce(flat)
        return [chunk.view_as(t) for chunk, t in
                zip(torch.split(flat, [t.numel() for t in tensors]), tensors, strict=True)]

    def all_gather_cat(self, x: Tensor, what: str = "all-gather") -> Tensor:
        """``(sum_r N_r, ...)``: the ranks' ``x`` ``(N_r, ...)`` concatenated in rank order
        (sizes may differ between ranks)."""
        if not self.active:
            return x
        with self._guard(what):
            n = torch.tensor([x.shape[0]], dtype=torch.int64, device=x.device)
            sizes = [torch.zeros_like(n) for _ in range(self.world_size)]
            dist.all_gather(sizes, n)
            counts = [int(s) for s in sizes]
            top = max(counts)
            pad = x.new_zeros((top - x.shape[0], *x.shape[1:]))
            padded = torch.cat([x.detach(), pad]).contiguous()
            parts = [torch.empty_like(padded) for _ in range(self.world_size)]
            dist.all_gather(parts, padded)
        return torch.cat([p[:c] for p, c in zip(parts, counts, strict=True)])

    def broadcast_(self, x: Tensor, src: int = 0, what: str = "broadcast") -> Tensor:
        """Overwrite ``x`` with rank ``src``'s values (same shape on every rank); returns
        ``x``."""
        if self.active:
            with self._guard(what):
                dist.broadcast(x.data, src)
        return x

    def broadcast_object(self, obj: Any, src: int = 0, what: str = "broadcast") -> Any:
        """Rank ``src``'s (picklable) ``obj`` on every rank."""
        if not self.active:
            return obj
        box = [obj]
        with self._guard(what):
            dist.broadcast_object_list(box, src)
        return box[0]

    def all_gather_object(self, obj: Any, what: str = "all-gather") -> list[Any]:
        """Every rank's (picklable) ``obj``, in rank order."""
        if not self.active:
            return [obj]
        out: list[Any] = [None] * self.world_size
        with self._guard(what):
            dist.all_gather_object(out, obj)
        return out

    def any(self, flag: bool, device: torch.device | str = "cpu", what: str = "all-reduce"
            ) -> bool:
        """Whether ``flag`` is true on at least one rank."""
        if not self.active:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], dtype=torch.float64, device=device)
        with self._guard(what):
            dist.all_reduce(t)
        return bool(t.item() > 0)

    def check_in_sync(self, tensors: Sequence[Tensor], where: str) -> None:
        """Stop unless ``tensors`` (the parameters) hash equal on every rank.

        Raises:
            DistributedError: naming the ranks whose parameters differ from rank 0's.
        """
        if not self.active:
            return
        hashes = self.all_gather_object(tensor_hash(tensors), f"parameter check ({where})")
        bad = [r for r, h in enumerate(hashes) if h != hashes[0]]
        if bad:
            raise DistributedError(
                f"{where}: parameters differ across ranks (ranks {bad} differ from rank 0; "
                f"hashes {hashes}); the ranks took different steps, so the run stops")


SINGLE = Context()
"""The context of a single-process run."""


def context(scaling: str = "strong", device: torch.device | None = None,
            backend: str = "auto", timeout_s: float = 300.0) -> Context:
    """The run's :class:`Context`: the initialised default group, else one set up from the
    launcher's environment when it names more than one process, else :data:`SINGLE`-like.

    Raises:
        DistributedError: the environment asks for several processes but the group cannot be
            formed.
    """
    if _initialized():
        world = dist.get_world_size()
        return Context(dist.get_rank(), world, detect().local_rank, scaling)
    launch = detect()
    if launch.world_size <= 1:
        return Context(scaling=scaling)
    dev = torch.device("cpu") if device is None else device
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", launch.local_rank % max(torch.cuda.device_count(), 1))
    init(launch, dev, backend, timeout_s)
    return Context(launch.rank, launch.world_size, launch.local_rank, scaling)


def _rank_main(target: Any, rank: int, world: int, port: int, args: Sequence[Any]) -> None:
    """A :func:`spawn_local` process: ``target``, exiting with :data:`EXIT_ADDRESS_IN_USE`
    when its rendezvous port turned out to be taken."""
    try:
        target(rank, world, port, *args)
    except AddressInUse:
        os._exit(EXIT_ADDRESS_IN_USE)


def spawn_local(target: Any, world: int, args: Sequence[Any], timeout: float,
                attempts: int = 5) -> tuple[list[int | None], bool]:
    """Run ``target(rank, world, port, *args)`` in ``world`` spawned local processes.

    For benchmarks and tests of a local gloo/NCCL group without ``torchrun``: ``port`` is the
    ``MASTER_PORT`` to use, drawn at random from the dynamic range. When another process
    holds it (rank 0 raises :class:`AddressInUse`: no probe can reserve a port for another
    process), the processes are stopped and started again on another port, up to
    ``attempts`` times. Processes still running after ``timeout`` seconds are killed.

    Returns:
        The exit codes in rank order and whether any process had to be killed.
    """
    import multiprocessing
    import random

    ctx = multiprocessing.get_context("spawn")
    ports = random.Random()
    for _ in range(attempts - 1):
        codes, hung, clash = _run_once(ctx, target, world, ports.randrange(20000, 60000),
                                       args, timeout)
        if not clash:
            return codes, hung
    codes, hung, _ = _run_once(ctx, target, world, ports.randrange(20000, 60000), args,
                               timeout)
    return codes, hung


def _run_once(ctx: Any, target: Any, world: int, port: int, args: Sequence[Any],
              timeout: float) -> tuple[list[int | None], bool, bool]:
    """One launch: exit codes, whether a process had to be killed, whether the port was
    taken (then the others are stopped at once)."""
    import time

    procs = [ctx.Process(target=_rank_main, args=(target, r, world, port, args))
             for r in range(world)]
    for p in procs:
        p.start()
    end = time.monotonic() + timeout
    clash = False
    while any(p.is_alive() for p in procs) and time.monotonic() < end and not clash:
        clash = any(p.exitcode == EXIT_ADDRESS_IN_USE for p in procs)
        time.sleep(0.02)
    clash = clash or any(p.exitcode == EXIT_ADDRESS_IN_USE for p in procs)
    hung = [p for p in procs if p.is_alive()]
    for p in hung:
        p.kill()
        p.join()
    for p in procs:
        p.join()
    return [p.exitcode for p in procs], bool(hung) and not clash, clash


def is_main_process() -> bool:
    """Whether this process is rank 0 (or the only one): the one that writes and prints."""
    if _initialized():
        return dist.get_rank() == 0
    return detect().rank == 0
