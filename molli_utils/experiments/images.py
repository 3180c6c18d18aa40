"""The image VAEs of Table 1 (paper Sec. 4.2): vanilla, Gaussian or blurring mollification, scored by FID.

One run (:class:`ImageRun`) builds a VAE variant (:func:`~molli_utils.models.vae.make_vae`), trains it
with pythae and :class:`~molli_utils.training.vae.MollifiedTrainer` -- mollified during the first
half of training, as in the paper -- and records the training loss per epoch, the time per step,
and at chosen epochs 16 decoder samples of fixed latents and a score of ``n_snapshot`` samples
(paper Fig. 7 and Fig. 8); the final score uses ``n_score`` samples.

Scores (:class:`Scorer`): FID with pytorch-fid's Inception-v3 where its weights load and a GPU
runs it; otherwise a Fréchet distance on a fixed random conv net's features, named
``FD-random-features`` and never called FID (:func:`~molli_utils.fid.random_features_extractor`).

Command line (a GPU with network access): ``python -m molli_utils.experiments images --dataset cifar10``.
"""

from __future__ import annotations

import math
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np
import torch

from ..data.images import IMAGE_NAMES, SAMPLE_PATCHES, ImageData, load_images, sample_patches
from ..fid import (SCORE_FID, SCORE_STANDIN, activation_statistics, fid, frechet_distance, inception_extractor,
                   random_features_extractor, reference_statistics)  # fmt: skip
from . import settings

__all__ = ["MODES", "DATASETS", "RESULTS", "ImageRun", "ImageResult", "Scorer", "make_scorer", "load_data", "grid",
           "run", "key", "resume_dir", "result_row"]  # fmt: skip

#: Training modes of Table 1.
MODES = ("vanilla", "gaussian", "blur")
#: Data sets of the image runs: the paper's two and the offline photo patches.
DATASETS = (*IMAGE_NAMES, SAMPLE_PATCHES)
RESULTS = "images.csv"
_PAPER_EPOCHS = {"cifar10": 200, "celeba": 100}


@dataclass(frozen=True)
class ImageRun:
    """One (model, mode, seed) of Table 1; the defaults are the paper's CIFAR-10 settings (Appendix D.3.2).

    ``epochs=None`` means the paper's: 200 on CIFAR-10, 100 on CelebA. ``n_images`` limits the
    training images (``None``: all; for the photo patches, the number of patches). ``fraction`` of
    the steps are mollified (paper: the first half).
    """

    model: str
    mode: str
    seed: int = 1
    dataset: str = "cifar10"
    epochs: Optional[int] = None
    batch_size: int = 128
    lr: float = 3e-4
    latent_dim: int = 256
    width: float = 1.0
    fraction: float = 0.5
    n_images: Optional[int] = None
    n_score: int = 50_000
    snapshot_epochs: tuple[int, ...] = ()
    n_snapshot: int = 5_000
    precision: str = "auto"

    def __post_init__(self) -> None:
        from ..models.vae import VAE_KINDS

        for name, value, valid in (("model", self.model, VAE_KINDS), ("mode", self.mode, MODES),
                                   ("dataset", self.dataset, DATASETS)):  # fmt: skip
            if value not in valid:
                raise ValueError(f"unknown {name} {value!r}; choose one of {list(valid)}")
        if self.epochs is None:
            object.__setattr__(self, "epochs", _PAPER_EPOCHS.get(self.dataset, 200))
        object.__setattr__(self, "snapshot_epochs", tuple(int(e) for e in self.snapshot_epochs))
        if not 0.0 < self.fraction <= 1.0:
            raise ValueError(f"fraction must lie in (0, 1] (0.5 = the first half of training), got {self.fraction}")


def key(r: ImageRun) -> dict[str, Any]:
    """The recorded-run key of ``r`` in ``images.csv``."""
    return {"dataset": r.dataset, "model": r.model, "mollifier": r.mode, "seed": r.seed, "epochs": r.epochs,
            "width": r.width}  # fmt: skip


def grid(profile: Optional[str] = None, *, models: Optional[Sequence[str]] = None, modes: Sequence[str] = MODES,
         seeds: Optional[Sequence[int]] = None, **fields_: Any) -> list[ImageRun]:  # fmt: skip
    """Every (model, mode, seed) of ``profile``, model-major (Table 1's rows)."""
    from ..models.vae import VAE_KINDS

    seeds = settings.SEEDS["images"] if seeds is None else seeds
    return [settings.images(profile, model=k, mode=m, seed=s, **fields_)
            for k in (models or VAE_KINDS) for m in modes for s in seeds]  # fmt: skip


def resume_dir(config: ImageRun, root: Union[str, Path]) -> Path:
    """The folder under ``root`` where ``config``'s run keeps its checkpoint (one per run)."""
    return Path(root) / f"{config.dataset}-{config.model}-{config.mode}-seed{config.seed}"


def load_data(config: ImageRun, *, train: bool = True) -> ImageData:
    """The training images of ``config`` (``train=False``: the test split; the patches have one split)."""
    if config.dataset == SAMPLE_PATCHES:
        return sample_patches(32, n=config.n_images, seed=config.seed)
    return load_images(config.dataset, train=train, limit=config.n_images if train else None)


@dataclass
class Scorer:
    """A sample-quality score: ``name`` (:data:`~molli_utils.fid.SCORE_FID` or the stand-in's), the feature
    extractor and the reference statistics of the training images; ``scorer(model, n, seed)`` scores
    ``n`` decoder samples of ``model``."""

    name: str
    extractor: Any
    reference: tuple[np.ndarray, np.ndarray]
    device: torch.device

    def __call__(self, model, n: int, seed: int) -> float:
        import warnings

        from scipy.linalg import LinAlgWarning

        from ..models.vae import sample_images

        # Early in training the samples can be nearly constant and their feature covariance singular:
        # pytorch-fid then adds a small offset to the diagonal and warns; the value stays usable.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=LinAlgWarning)
            return fid(sample_images(model, n, seed=seed), self.reference, self.extractor, device=self.device)

    def floor(self, config: ImageRun, data: ImageData) -> tuple[float, str]:
        """The score of real images: the test split against the training statistics where there is one,
        else the two halves of the training images against each other; and what was compared."""
        if config.dataset in IMAGE_NAMES:
            held_out = load_data(config, train=False)
            return fid(held_out, self.reference, self.extractor, device=self.device), \
                f"{len(held_out)} real test images vs the training set"  # fmt: skip
        half = len(data) // 2
        value = frechet_distance(*activation_statistics(data.images[:half], self.extractor, device=self.device),
                                 *activation_statistics(data.images[half:], self.extractor, device=self.device))  # fmt: skip
        return value, f"two halves of {data.name} against each other"


def make_scorer(data: ImageData, device: Union[str, torch.device] = "cpu", *, use_fid: str = "auto",
                log: Callable[[str], None] = print) -> Scorer:  # fmt: skip
    """The score of the image runs on ``data``.

    ``use_fid``: ``"auto"`` -- FID when pytorch-fid's Inception weights load and ``device`` is a GPU
    (on a CPU Inception takes about half a second per image), else the stand-in; ``"always"`` -- FID
    or a ``RuntimeError`` saying why not (the command line); ``"never"`` -- the stand-in. The
    reference statistics of the official data sets are cached on disk. ``log`` says which score it is.
    """
    if use_fid not in ("auto", "always", "never"):
        raise ValueError(f"use_fid must be 'auto', 'always' or 'never', got {use_fid!r}")
    device = torch.device(device)
    extractor = None
    if use_fid == "always" or (use_fid == "auto" and device.type == "cuda"):
        try:
            extractor = inception_extractor(device)
        except RuntimeError as err:
            if use_fid == "always":
                raise
            log(f"FID is not available here: {err}")
    if extractor is None:
        extractor, name = random_features_extractor(seed=0, device=device), SCORE_STANDIN
    else:
        name = SCORE_FID
    cached = data.name in IMAGE_NAMES
    reference = reference_statistics(data, extractor, device=device) if cached else activation_statistics(data, extractor, device=device)
    log(f"score: {name} (feature extractor {extractor.name}), reference: {len(data)} {data.name} training images")
    return Scorer(name, extractor, reference, device)


@dataclass
class ImageResult:
    """What :func:`run` returns. ``snapshots[epoch] = {"images": 16 samples, "score": ...}``.

    ``epoch_seconds``: the training time of each epoch run in this session (the first one
    includes warm-up: memory allocation, cuDNN's algorithm search); ``score`` is the final score
    of ``n_score`` samples (``nan`` without a scorer).
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

    @property
    def seconds_per_step(self) -> float:
        """Training time per optimiser step of this session (snapshot work excluded); nan if none ran.

        A resumed run counts only the epochs trained after the resume.
        """
        steps = self.epochs_run * math.ceil(self.steps / max(1, self.config.epochs))
        return self.train_seconds / steps if steps else math.nan


def _device_name(device: torch.device) -> str:
    """``"cpu"`` or the GPU's name (e.g. ``"cuda: Tesla T4"``), for the results file."""
    return f"cuda: {torch.cuda.get_device_name(device)}" if device.type == "cuda" else device.type


def _recorder(result: ImageResult, snapshot: Optional[Callable[[Any], float]], z: torch.Tensor, bar,
              callback: Optional[Callable[[int, Any], None]]):  # fmt: skip
    from pythae.trainers.training_callbacks import TrainingCallback

    from ..models.vae import sample_images

    snapshot_epochs = set(result.config.snapshot_epochs)

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
            if self.epoch in snapshot_epochs:
                images = sample_images(kwargs["model"], z=z)
                result.snapshots[self.epoch] = {"images": images[:16],
                                                "score": None if snapshot is None else snapshot(kwargs["model"])}  # fmt: skip
            if callback is not None:
                callback(self.epoch, kwargs["model"])

        def on_log(self, training_config, logs, **kwargs):
            result.losses.append(float(logs["train_epoch_loss"]))
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{result.losses[-1]:.4g}")

    return Recorder()


def run(
    config: ImageRun,
    *,
    data: Optional[ImageData] = None,
    scorer: Optional[Scorer] = None,
    device: Union[str, torch.device] = "cpu",
    resume_root: Union[str, Path, None] = None,
    callback: Optional[Callable[[int, Any], None]] = None,
    progress: bool = False,
) -> ImageResult:
    """Train one (model, mode) of Table 1 and score it; returns an :class:`ImageResult`.

    Adam (paper: 3e-4, batch 128, 200 epochs on CIFAR-10); the data are mollified during the
    first ``config.fraction`` of the steps, then clean. No evaluation set: pythae keeps the model
    of the epoch with the best training loss, and the returned ``model`` is the *current* (last)
    one. ``data`` defaults to :func:`load_data`; with a ``scorer`` the snapshot epochs and the end
    are scored (that time is not counted in ``train_seconds``). ``resume_root`` makes the run
    resumable (its folder: :func:`resume_dir`; the snapshots and losses of the epochs before an
    interruption are then not recorded again). ``callback(epoch, model)`` runs after every epoch;
    ``progress`` shows one bar over epochs. ``config.precision`` "auto" trains in mixed precision
    on a GPU (:func:`~molli_utils.training.vae.resolve_precision`) and in float32 on a CPU.
    """
    from pythae.data.datasets import BaseDataset
    from pythae.trainers import BaseTrainerConfig
    from pythae.trainers.training_callbacks import MetricConsolePrinterCallback, ProgressBarCallback

    from ..models.vae import make_vae
    from ..training import progress_bar
    from ..training.vae import MollifiedTrainer, mollification_horizon, quiet_pythae, resolve_precision

    quiet_pythae()
    data = load_data(config) if data is None else data
    device = torch.device(device)
    torch.manual_seed(config.seed)
    model = make_vae(config.model, data.shape, config.latent_dim, config.width)
    steps = config.epochs * math.ceil(len(data) / config.batch_size)
    horizon = mollification_horizon(config.epochs, len(data), config.batch_size, config.fraction)
    result = ImageResult(config, model, steps, horizon, precision=resolve_precision(config.precision, device),
                         device=_device_name(device))  # fmt: skip
    trainer_config = BaseTrainerConfig(output_dir=tempfile.mkdtemp(prefix="molli-images-"), num_epochs=config.epochs,
                                       learning_rate=config.lr, per_device_train_batch_size=config.batch_size,
                                       per_device_eval_batch_size=config.batch_size, no_cuda=device.type != "cuda",
                                       seed=config.seed, optimizer_cls="Adam")  # fmt: skip
    z = torch.randn(16, config.latent_dim, generator=torch.Generator().manual_seed(config.seed + 1000))
    snapshot = None if scorer is None else (lambda m: scorer(m, config.n_snapshot, seed=config.seed + 7))
    bar = progress_bar(total=config.epochs, desc=f"{config.model}/{config.mode}", unit="epoch", disable=not progress)
    mollifier = settings.mollifier(config.mode, steps, config.seed, experiment="images", fraction=config.fraction,
                                   device=device)  # fmt: skip
    try:
        trainer = MollifiedTrainer(
            model, BaseDataset(data.images, torch.zeros(len(data))), None, trainer_config,
            callbacks=[_recorder(result, snapshot, z, None if bar.disable else bar, callback)], mollifier=mollifier,
            resume_dir=None if resume_root is None else resume_dir(config, resume_root), precision=result.precision,
        )  # fmt: skip
        setup = trainer._setup_callbacks  # pythae adds its per-epoch progress bars and console printer there

        def setup_without_console_output():
            setup()
            handler = trainer.callback_handler
            handler.callbacks = [c for c in handler.callbacks if not isinstance(c, (ProgressBarCallback, MetricConsolePrinterCallback))]

        trainer._setup_callbacks = setup_without_console_output
        trainer.train()
        result.model = trainer.model
        result.skipped_steps = trainer.skipped_steps
    finally:
        bar.close()
        shutil.rmtree(trainer_config.output_dir, ignore_errors=True)
    if scorer is not None:
        result.score_name, result.score = scorer.name, scorer(result.model, config.n_score, seed=config.seed + 7)
    return result


def result_row(result: ImageResult, data: ImageData) -> dict[str, Any]:
    """One row of ``images.csv`` for a finished, scored run (the command adds the provenance)."""
    if result.score_name not in (SCORE_FID, SCORE_STANDIN):
        raise ValueError(f"the run has no score ({result.score_name!r}): pass a scorer to run()")
    c = result.config
    return {"dataset": data.name, "model": c.model, "mollifier": c.mode, "seed": c.seed, "score_name": result.score_name,
            "score": round(float(result.score), 4), "epochs": c.epochs, "steps": result.steps, "width": c.width,
            "profile": settings.profile_of("images", c), "precision": result.precision,
            "skipped_steps": result.skipped_steps, "seconds_per_step": round(result.seconds_per_step, 6),
            "device": result.device}  # fmt: skip
