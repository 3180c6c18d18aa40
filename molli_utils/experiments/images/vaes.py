"""Training one image VAE (pythae's VAE, beta-VAE, IWAE, VAE-IAF, HVAE) of an
:class:`~molli_utils.experiments.images.config.ImageRun` through
:class:`~molli_utils.training.vae.MollifiedTrainer`."""

from __future__ import annotations

import math
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Optional, Union

import torch
from pythae.data.datasets import BaseDataset
from pythae.trainers import BaseTrainerConfig
from pythae.trainers.training_callbacks import MetricConsolePrinterCallback, ProgressBarCallback, TrainingCallback

from ... import arithmetic
from ...data.images import ImageData
from ...models.vae import make_vae
from ...training import progress_bar
from ...training.distributed import Context
from ...training.vae import MollifiedTrainer, mollification_horizon, quiet_pythae, resolve_precision
from .config import ImageRun, resume_dir
from .result import ImageResult, device_name, snapshot
from .scoring import Scorer

__all__ = ["run_vae"]


def run_vae(
    config: ImageRun,
    data: ImageData,
    scorer: Optional[Scorer],
    device: torch.device,
    resume_root: Union[str, Path, None],
    callback: Optional[Callable[[int, Any], None]],
    progress: bool,
    dist: Context,
) -> ImageResult:
    """Train the VAE of ``config`` on ``data`` (the arguments of :func:`~molli_utils.experiments.images.runs.run`)
    and return its :class:`ImageResult` before the final score: the current (last) model, the loss and training
    time of every epoch, the snapshots at ``config.snapshot_epochs`` (scored with ``scorer`` if given), the steps
    pythae's mixed precision skipped. pythae's own progress bars and console printer are removed."""
    quiet_pythae()
    torch.manual_seed(config.seed)
    model = make_vae(config.model, data.shape, config.latent_dim, config.width, config.decoder_variance)
    steps = config.epochs * math.ceil(len(data) / config.batch_size)
    horizon = mollification_horizon(config.epochs, len(data), config.batch_size, config.fraction)
    result = ImageResult(
        config,
        model,
        steps,
        horizon if config.mode != "vanilla" else 0,
        precision=resolve_precision(config.precision, device),
        device=device_name(device),
        arith=arithmetic.fingerprint(device),
    )
    trainer_config = BaseTrainerConfig(
        output_dir=tempfile.mkdtemp(prefix="molli-images-"),
        num_epochs=config.epochs,
        learning_rate=config.lr,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        no_cuda=device.type != "cuda",
        seed=config.seed,
        optimizer_cls="Adam",
        optimizer_params={"weight_decay": config.weight_decay} if config.weight_decay else None,
    )
    z = torch.randn(16, config.latent_dim, generator=torch.Generator().manual_seed(config.seed + 1000))
    bar = progress_bar(
        total=config.epochs, desc=f"{config.model}/{config.mode}", unit="epoch", disable=not (progress and dist.main)
    )
    mollifier = config.mollifier(steps, device)

    class Recorder(TrainingCallback):
        """Times each epoch's training steps, records its loss, and takes snapshots (untimed)."""

        epoch = 0
        start = 0.0

        def on_epoch_begin(self, training_config, **kwargs):
            self.epoch = kwargs.get("epoch", self.epoch + 1)
            self.start = time.perf_counter()

        def on_epoch_end(self, training_config, **kwargs):
            seconds = time.perf_counter() - self.start
            result.train_seconds += seconds
            result.epoch_seconds.append(seconds)
            result.epochs_run += 1
            model = getattr(kwargs["model"], "module", kwargs["model"])  # without a DistributedDataParallel wrapper
            if self.epoch in config.snapshot_epochs and dist.main:
                snapshot(result, model, self.epoch, scorer, z, data.levels)
            if callback is not None:
                callback(self.epoch, model)

        def on_log(self, training_config, logs, **kwargs):
            result.losses.append(float(logs["train_epoch_loss"]))
            if not bar.disable:
                bar.update(1)
                bar.set_postfix(loss=f"{result.losses[-1]:.4g}")

    try:
        trainer = MollifiedTrainer(
            model,
            BaseDataset(data.images, torch.zeros(len(data))),
            None,
            trainer_config,
            callbacks=[Recorder()],
            mollifier=mollifier,
            resume_dir=None if resume_root is None else resume_dir(config, resume_root),
            precision=result.precision,
            dist=dist,
        )
        setup = trainer._setup_callbacks  # pythae adds its per-epoch progress bars and console printer there

        def setup_without_console_output():
            setup()
            handler = trainer.callback_handler
            handler.callbacks = [
                c for c in handler.callbacks if not isinstance(c, (ProgressBarCallback, MetricConsolePrinterCallback))
            ]

        trainer._setup_callbacks = setup_without_console_output
        trainer.train()
        result.model = trainer.bare_model
        result.skipped_steps = trainer.skipped_steps
    finally:
        bar.close()
        shutil.rmtree(trainer_config.output_dir, ignore_errors=True)
    return result
