"""What an image run returns (:class:`ImageResult`) and what it records on the way (:func:`snapshot`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Optional

import torch

from .config import ImageRun
from .scoring import Scorer, sample

__all__ = ["ImageResult", "device_name", "snapshot"]


@dataclass
class ImageResult:
    """What :func:`~molli_utils.experiments.images.runs.run` returns. ``snapshots[epoch] = {"images": 16 samples, "score": ...}``.

    ``epoch_seconds``: the training time of each epoch run in this session (the first one
    includes warm-up: memory allocation, cuDNN's algorithm search); ``score`` is the final
    Fréchet distance of ``n_score`` samples and ``kid`` its kernel distance where the scorer has
    one (``nan`` without a scorer); ``bpd``: the flows' test bits per dimension (``nan`` for the
    VAEs). ``skipped_steps``: steps without an update (the flows' non-finite losses; the VAEs'
    fp16 overflows); ``losses``: the mean training loss of each epoch (flows: the negative
    log-likelihood in nats per image, of mollified data while mollification lasts).
    """

    config: ImageRun
    model: Any
    steps: int
    horizon: int
    precision: str = "fp32"
    device: str = "cpu"
    skipped_steps: int = 0
    losses: list[float] = field(default_factory=list)
    train_seconds: float = 0.0
    epoch_seconds: list[float] = field(default_factory=list)
    epochs_run: int = 0
    snapshots: dict[int, dict[str, Any]] = field(default_factory=dict)
    score_name: str = ""
    score: float = math.nan
    kid: float = math.nan
    bpd: float = math.nan
    score_seconds: float = 0.0
    world_size: int = 1
    arith: str = ""  #: :func:`molli_utils.arithmetic.fingerprint` of the training device

    @property
    def seconds_per_step(self) -> float:
        """Training time per optimiser step of this session (snapshot work excluded); nan if none ran.

        A resumed run counts only the epochs trained after the resume.
        """
        steps = self.epochs_run * math.ceil(self.steps / max(1, self.config.epochs))
        return self.train_seconds / steps if steps else math.nan


def device_name(device: torch.device) -> str:
    """``"cpu"`` or the GPU's name (e.g. ``"cuda: Tesla T4"``), for the results file."""
    return f"cuda: {torch.cuda.get_device_name(device)}" if device.type == "cuda" else device.type


def snapshot(
    result: ImageResult, model: Any, epoch: int, scorer: Optional[Scorer], z: Optional[torch.Tensor], levels: int
) -> None:
    """Record in ``result.snapshots[epoch]`` 16 samples of ``model`` (seed ``config.seed + 1000``; a VAE decodes the
    latents ``z``) and, with a ``scorer``, the Fréchet distance of ``config.n_snapshot`` samples (seed
    ``config.seed + 7``)."""
    config = result.config
    images = sample(model, 16, config.seed + 1000, levels=levels, z=z)
    result.snapshots[epoch] = {
        "images": images[:16],
        "score": None if scorer is None else scorer(model, config.n_snapshot, seed=config.seed + 7),
    }
