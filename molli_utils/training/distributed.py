"""Training on several processes (GPUs, or CPU processes with ``gloo``) with DistributedDataParallel.

The image command runs unchanged under ``torchrun``::

    torchrun --standalone --nproc_per_node=4 -m molli_utils.experiments images --dataset cifar10 --models glow

:func:`setup` reads the variables that ``torchrun`` sets (``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``), starts the process group (``nccl`` on GPUs, ``gloo`` on CPUs) and picks this
rank's device; without them it is a one-process run and nothing changes. What a distributed run
does, and why a run on ``W`` processes equals a one-process run with the same global batch:

* **The global batch stays the paper's** (64 for the flows): every rank draws the same global
  batch from identically seeded generators (the book's loop shuffles with ``config.seed``) and
  trains on its ``1 / W`` slice: the data are sharded per step, not per epoch.
* **Noise**: the dequantisation and mollification noise of the whole global batch is drawn on
  every rank from generators seeded alike, and each rank keeps its own rows
  (:class:`~molli_utils.training.batch.FlowBatches`): each image's noise is independent of every
  other's, and no two ranks share noise for different images.
* **Gradients**: :class:`DistributedLoss` evaluates the model through
  ``torch.nn.parallel.DistributedDataParallel``, which averages the gradients over the ranks
  during the backward pass (the gradient of the global batch's mean loss); the loss value it
  returns is the all-reduced global mean, so the loop's logs and its non-finite checks (a step is
  skipped on every rank or on none) are those of the global batch.
* **Data-dependent initialisation** (GLOW's actnorm): on the first step every rank runs the
  model once on the *global* batch, so all ranks start from the one-process initialisation.
* **Checkpoints and results** are written by rank 0 only (:func:`checkpoint_dir`); every rank
  resumes from rank 0's file, which is valid for all ranks because their states are identical.

The arithmetic differs from one process only in the order of floating-point sums (the mean over
the global batch is taken per rank, then across ranks). The CI test (``tests/test_distributed.py``)
runs 2 ``gloo`` processes in float64: the first loss equals the one-process loss to a relative
1e-12, and training amplifies the rounding differences only to about 5e-9 over 16 steps (held to 1e-7).
"""

from __future__ import annotations

import contextlib
import inspect
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional, Union

import torch

__all__ = ["Context", "context", "setup", "barrier", "broadcast_object", "DistributedLoss", "checkpoint_dir", "cleanup"]


@dataclass(frozen=True)
class Context:
    """Where this process stands: ``rank`` of ``world_size`` processes, ``local_rank`` on its node."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def main(self) -> bool:
        """Rank 0: the process that writes checkpoints, results and console output."""
        return self.rank == 0


def context(env: Optional[dict] = None) -> Context:
    """The :class:`Context` from ``torchrun``'s environment variables (one process without them)."""
    env = os.environ if env is None else env
    world = int(env.get("WORLD_SIZE", 1))
    rank = int(env.get("RANK", 0))
    local = int(env.get("LOCAL_RANK", rank))
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"inconsistent torchrun environment: RANK={rank}, WORLD_SIZE={world}")
    return Context(rank, world, local)


def setup(device: Union[str, torch.device, None] = None, ctx: Optional[Context] = None) -> tuple[Context, torch.device]:
    """Start the process group of a ``torchrun`` launch (``nccl`` for CUDA, else ``gloo``) and return
    ``(context, device)``: ``cuda:LOCAL_RANK`` when ``device`` is CUDA, else ``device``. A one-process
    run returns ``(Context(), device)`` and starts nothing."""
    import torch.distributed as dist

    ctx = context() if ctx is None else ctx
    device = torch.device("cpu" if device is None else device)
    if not ctx.distributed:
        return ctx, device
    if device.type == "cuda":
        torch.cuda.set_device(ctx.local_rank)
        device = torch.device("cuda", ctx.local_rank)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=ctx.rank, world_size=ctx.world_size)
    return ctx, device


def cleanup() -> None:
    """End the process group (if any)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: Context) -> None:
    """Wait for every rank (a no-op for one process)."""
    if ctx.distributed:
        import torch.distributed as dist

        dist.barrier()


def broadcast_object(obj: Any, ctx: Context) -> Any:
    """Rank 0's ``obj`` on every rank (``obj`` itself for one process)."""
    if not ctx.distributed:
        return obj
    import torch.distributed as dist

    box = [obj if ctx.main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def _needs_data_init(model: torch.nn.Module) -> bool:
    """Whether ``model`` has normflows actnorm layers that still initialise from their first batch."""
    return any(hasattr(m, "data_dep_init_done") and not float(m.data_dep_init_done) > 0 for m in model.modules())


class DistributedLoss:
    """The loss for the book's loop (``train(model, ..., loss_fn=DistributedLoss(...))``) of a flow whose
    ``forward(z)`` is the negative log-likelihood per image (normflows' ``MultiscaleFlow``).

    The loop keeps the bare ``model`` (its parameters, optimizer and checkpoints do not change);
    the loss evaluates it through DistributedDataParallel, so that the backward pass averages the
    gradients over the ranks, and returns the all-reduced mean over the global batch. ``batches``
    is the run's :class:`~molli_utils.training.batch.FlowBatches`: before the first step, a model
    with data-dependent initialisation is run once on its global batch (module docstring). With
    one process it is ``model(z).mean()`` (= ``forward_kld``).
    """

    def __init__(self, model: torch.nn.Module, ctx: Context, batches: Any, device: Union[str, torch.device]) -> None:
        self.model, self.ctx, self.batches = model, ctx, batches
        self.ddp, self._initialised = None, False
        if ctx.distributed:
            from torch.nn.parallel import DistributedDataParallel

            model.to(device)
            ids = [torch.device(device).index] if torch.device(device).type == "cuda" else None
            # buffers (masks, actnorm's flag, the 1x1 convolutions' permutations) are alike on every rank:
            # no broadcast in every forward pass (torch >= 2.12 names the switch forward_sync_buffers)
            params = inspect.signature(DistributedDataParallel).parameters
            sync = {"forward_sync_buffers": False} if "forward_sync_buffers" in params else {"broadcast_buffers": False}
            self.ddp = DistributedDataParallel(model, device_ids=ids, **sync)

    def __call__(self, model: torch.nn.Module, z: torch.Tensor) -> torch.Tensor:
        if self.ddp is None:
            return model(z).mean()
        import torch.distributed as dist

        if not self._initialised:
            if _needs_data_init(self.model) and self.batches.last_global is not None:
                with torch.no_grad():
                    self.model(self.batches.last_global)  # actnorm: initialised from the global batch on every rank
            self._initialised = True
        local = self.ddp(z).mean()
        total = local.detach().clone()
        dist.all_reduce(total)
        return local + (total / self.ctx.world_size - local.detach())


@contextlib.contextmanager
def checkpoint_dir(
    folder: Union[str, Path, None], ctx: Context, name: str = "checkpoint.pt"
) -> Iterator[Optional[Path]]:
    """The checkpoint folder this rank gives the loop: ``folder`` on rank 0; on the other ranks a private
    temporary folder holding a copy of rank 0's checkpoint (so that they resume from it) whose own
    writes are discarded at the end. All ranks wait until the copies are made."""
    if folder is None or ctx.main:
        barrier(ctx)
        yield None if folder is None else Path(folder)
        return
    private = Path(tempfile.mkdtemp(prefix=f"molli-rank{ctx.rank}-"))
    try:
        source = Path(folder) / name
        if source.exists():
            shutil.copy2(source, private / name)
        barrier(ctx)
        yield private
    finally:
        shutil.rmtree(private, ignore_errors=True)
