"""Training one image flow (REAL-NVP, GLOW) of an :class:`~molli_utils.experiments.images.config.ImageRun`
through the book's one training loop (:func:`molli_utils.training.train`), with uniform dequantisation and
the one line applied per batch (:class:`~molli_utils.training.batch.FlowBatches`), non-finite steps skipped
and counted, optional gradient clipping, checkpoints, and DistributedDataParallel under ``torchrun``."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Callable, Optional, Union

import torch

from ... import arithmetic
from ...data.images import ImageData
from ...models.image_flows import make_image_flow
from ...training import TrainConfig, train
from ...training.batch import FlowBatches
from ...training.distributed import Context, DistributedLoss, checkpoint_dir
from .config import DEQUANTIZE_SEED_OFFSET, ImageRun, resume_dir
from .result import ImageResult, device_name, snapshot
from .scoring import Scorer

__all__ = ["run_flow"]


def run_flow(
    config: ImageRun,
    data: ImageData,
    scorer: Optional[Scorer],
    device: torch.device,
    resume_root: Union[str, Path, None],
    callback: Optional[Callable[[int, Any], None]],
    progress: bool,
    dist: Context,
) -> ImageResult:
    """Train the flow of ``config`` on ``data`` (the arguments of :func:`~molli_utils.experiments.images.runs.run`)
    and return its :class:`ImageResult` before the final score: the model, the mean loss of every epoch trained in
    this session, the training time without the snapshots, the snapshots at ``config.snapshot_epochs`` (scored
    with ``scorer`` if given, on rank 0) and the non-finite steps skipped. The dequantisation noise of seed ``s``
    comes from a generator seeded with ``DEQUANTIZE_SEED_OFFSET + s``; with ``resume_root`` the run checkpoints
    every epoch into :func:`resume_dir` and resumes from it."""
    torch.manual_seed(config.seed)
    model = make_image_flow(config.model, data.shape, dataset=config.dataset, width=config.width)
    model.dequantize = config.dequantize
    model.to(device)
    cls = torch.optim.Adam if config.optimizer == "adam" else torch.optim.Adamax
    optimizer = cls(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    per_epoch = len(data) // config.batch_size
    tc = TrainConfig(
        batch_size=config.batch_size,
        lr=config.lr,
        epochs=config.epochs,
        seed=config.seed,
        grad_clip=config.grad_clip,
        log_every=per_epoch,
        progress=progress and dist.main,
        desc=f"{config.model}/{config.mode}",
        device=device,
    )
    steps = tc.total_steps(len(data))
    mollifier = config.mollifier(steps, device)
    gen = torch.Generator(device=device).manual_seed(DEQUANTIZE_SEED_OFFSET + config.seed)
    batches = FlowBatches(
        data.levels, dequantize=config.dequantize, generator=gen, rank=dist.rank, world_size=dist.world_size
    )
    loss = DistributedLoss(model, dist, batches, device)
    result = ImageResult(
        config,
        model,
        steps,
        mollifier.horizon if mollifier.kind != "none" else 0,
        device=device_name(device),
        arith=arithmetic.fingerprint(device),
    )
    z = None
    extra = {"seconds": 0.0}

    def every_step(done: int, m) -> None:
        if done % per_epoch:
            return
        epoch = done // per_epoch
        start = time.perf_counter()
        if dist.main and epoch in config.snapshot_epochs:
            snapshot(result, m, epoch, scorer, z, data.levels)
        if callback is not None:
            callback(epoch, m)
        extra["seconds"] += time.perf_counter() - start

    folder = None if resume_root is None else resume_dir(config, resume_root)
    with checkpoint_dir(folder, dist) as ckpt:
        tc = dataclasses.replace(tc, checkpoint_dir=ckpt, checkpoint_every=per_epoch if ckpt is not None else 0)
        out = train(
            model,
            data.images,
            tc,
            mollifier=mollifier,
            prepare=batches,
            loss_fn=loss,
            optimizer=optimizer,
            callback=every_step,
        )
    first = 0 if out.resumed_from is None else out.resumed_from // per_epoch
    result.losses = [float(v) for v in out.history["loss"][first:]]
    result.epochs_run = config.epochs - first
    result.train_seconds = max(0.0, out.elapsed - extra["seconds"])
    result.skipped_steps = out.num_nonfinite
    return result
