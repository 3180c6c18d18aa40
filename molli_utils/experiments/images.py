"""The image models of Table 1 (paper Sec. 4.2): five VAEs and two flows, vanilla, Gaussian or blurring
mollification, the schedule ablation of Table 2, and Table 1 in miniature on scikit-learn's digits.

One run (:class:`ImageRun`) builds a model of one of two families and trains it with the data
mollified during the first part of training (the paper: the first half), then clean:

* **VAEs** (``vae``, ``beta_vae``, ``iwae``, ``vae_iaf``, ``hvae``;
  :func:`~molli_utils.models.vae.make_vae`) through pythae and
  :class:`~molli_utils.training.vae.MollifiedTrainer`;
* **flows** (``realnvp``, ``glow``; :func:`~molli_utils.models.image_flows.make_image_flow`, normflows)
  through the book's one training loop (:func:`molli_utils.training.train`), with uniform
  dequantisation and the one line applied per batch by
  :class:`~molli_utils.training.batch.FlowBatches`, non-finite steps skipped and counted,
  optional gradient clipping, checkpoints, and DistributedDataParallel under ``torchrun``
  (:mod:`molli_utils.training.distributed`).

A run records the training loss per epoch, the time per step, and at chosen epochs 16 samples
(paper Fig. 8) and a score of ``n_snapshot`` samples (Fig. 7); the final score uses ``n_score``
samples, and flows also report test bits per dimension.

Scores (:class:`Scorer`): on CIFAR-10 / CelebA, FID with pytorch-fid's Inception-v3 where its weights
load and a GPU runs it, else a Fréchet distance on a fixed random conv net's features, named
``FD-random-features`` and never called FID. On the digits, the Fréchet distance and KID on the
features of the digits classifier shipped with the package (``FD-digits-classifier``,
:func:`~molli_utils.fid.digits_classifier`). Generated images are rounded to the data's grey
levels before scoring, as the official code's PNG files are.

Settings. :class:`ImageRun`'s defaults are the paper's for each model family on CIFAR-10
(Appendix D.3.2), with GLOW as the paper's **official code** trains it (``variant="code"``: Adamax
1e-3 with weight decay 1e-5, 50,000 iterations of which 30,000 mollified); ``variant="text"`` is
the paper's text (Adamax 3e-4, 80 epochs of which 50 mollified). :data:`DIFFERENCES` lists every
difference between the two and what the book does.

Command line: ``python -m molli_utils.experiments images --dataset cifar10`` (a GPU with network
access) and ``python -m molli_utils.experiments images --dataset digits --workers 2`` (the
miniature, on a CPU: writes ``images_digits.csv``).
"""

from __future__ import annotations

import dataclasses
import math
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np
import torch

from .. import arithmetic
from ..data.images import DIGITS, IMAGE_NAMES, SAMPLE_PATCHES, ImageData, load_digits, load_images, sample_patches
from ..fid import (SCORE_FD_DIGITS, SCORE_FID, SCORE_KID_DIGITS, SCORE_STANDIN, activation_statistics, digits_classifier,
                   features, fid, frechet_distance, inception_extractor, kid, random_features_extractor,
                   reference_statistics)  # fmt: skip
from ..models.image_flows import FLOW_KINDS
from ..models.vae import PAPER_DECODER_VARIANCE, VAE_KINDS, check_decoder_variance
from . import modes, profiles

__all__ = ["mean_image_fd", "MODES", "MODELS", "FLOWS", "VAES", "DATASETS", "SCHEDULES", "VARIANTS", "RESULTS", "RESULTS_DIGITS",
           "DIFFERENCES", "ImageRun", "ImageResult", "Scorer", "family", "paper_defaults", "schedule_label",
           "results_file", "make_scorer", "load_data", "grid", "run", "run_many", "sample", "key", "resume_dir",
           "result_row", "miniature_runs", "miniature_table", "ablation_table", "paired", "miniature_variance",
           "at_variance", "SEEDS", "SEEDS_DIGITS", "BUDGETS", "MODEL_BUDGETS", "ABLATION", "IDENTITY", "from_profile",
           "profile_of"]  # fmt: skip

#: Training modes of Table 1.
MODES = ("vanilla", "gaussian", "blur")
#: The flows and the VAEs of Table 1, in the paper's row order.
FLOWS = FLOW_KINDS
VAES = ("vae", "vae_iaf", "iwae", "beta_vae", "hvae")
MODELS = (*FLOWS, *VAES)
#: Data sets of the image runs: the paper's two, the offline photo patches, the digits of the miniature.
DATASETS = (*IMAGE_NAMES, SAMPLE_PATCHES, DIGITS)
#: Noise schedules of the Gaussian mode (Table 2).
SCHEDULES = ("sigmoid", "cosine", "linear")
#: ``code``: the paper's official code where it exists (GLOW on CIFAR-10), else the text; ``text``: Appendix D.
VARIANTS = ("code", "text")
RESULTS = "images.csv"
RESULTS_DIGITS = "images_digits.csv"
#: The sigmoid schedule's temperature in the paper (Sec. 3, Appendix C).
PAPER_TAU = 0.7
#: Dequantisation noise of seed ``s`` comes from ``torch.Generator().manual_seed(DEQUANTIZE_SEED_OFFSET + s)``.
DEQUANTIZE_SEED_OFFSET = 20_000

#: Where the paper's text (Appendix D.3.2) and its official code (``image/experiment.py`` and its shell
#: scripts) differ, or where the book departs from both: (what, text, code, the book).
DIFFERENCES = (
    ("GLOW optimiser", "Adamax, lr 3e-4", "Adamax, lr 1e-3, weight decay 1e-5",
     "code (variant='code'); the text's is variant='text'"),
    ("GLOW length on CIFAR-10", "80 epochs, 50 of them mollified", "50,000 iterations, 30,000 mollified (64 epochs)",
     "code: 64 epochs of 781 steps (49,984 iterations), the first 60% mollified"),
    ("mollified part of training", "'the first half' (Sec. 4.2)", "GLOW: 60% (30,000 of 50,000 iterations)",
     "half for every model but GLOW-code; the miniature: half for all seven"),
    ("GLOW architecture", "multi-scale, K = 20, L = 3", "normflows MultiscaleFlow, K = 20, L = 3, 512 hidden channels, "
     "GlowBase bases, channel split, sigmoid scale", "the code's, built the same way (models.image_flows)"),
    ("data scale of the flows", "not stated", "[-1, 1] (torchvision Normalize(0.5, 0.5)), noise of unit variance",
     "the code's: flows model 2y - 1, mollified in that space"),
    ("dequantisation", "not stated", "none (the flow fits the 256 discrete levels)",
     "uniform dequantisation (needed for bits/dim), added after the mollifier; dequantize=False is the code's"),
    ("non-finite losses", "not stated", "step skipped", "step skipped and counted (the book's loop)"),
    ("REAL-NVP", "multi-scale, 4 residual blocks of 32 maps (CelebA: 2), Adam 1e-3, batch 64, 100 / 80 epochs",
     "no official code", "the text, with normflows' layers and RealNVP's exponential scale"),
    ("FID", "50k samples, pytorch-fid", "50 x 1,000 samples written as PNG files, every 1,000 iterations",
     "in-memory FID of n_score samples rounded to 8 bits (same statistics as PNG files)"),
)  # fmt: skip

#: The seeds of the stored results on CIFAR-10 / CelebA (and the command line's default there).
SEEDS = (1,)
#: The seeds of Table 1 in miniature on the digits (and the command line's default there).
SEEDS_DIGITS = (1, 2, 3, 4, 5)

#: Per profile, the run fields that differ from the paper's defaults (Appendix D.3.2: 200 epochs of CIFAR-10 at
#: full width, ~2.5 T4-hours per VAE run at peak).
BUDGETS: dict[str, dict[str, Any]] = {
    "full": {"snapshot_epochs": tuple(range(20, 201, 20)), "n_snapshot": 5_000},
    # 15 runs in about an hour of a T4: quarter-width nets (1/16 of the FLOPs), 10 epochs, FID of 10k samples.
    "colab": {"epochs": 10, "width": 0.25, "n_score": 5_000, "snapshot_epochs": (2, 4, 6, 8, 10),
              "n_snapshot": 1_000},  # FID of 5k samples (1k per snapshot): python -m tools.chapter_times estimate
    # Table 1 in miniature on the CPU: scikit-learn's 1,437 training digits (8x8), nets sized for 8x8
    # (models.vae.SmallConvEncoder, models.image_flows.MINIATURE), the first half mollified for all seven
    # models, scored on 1,000 samples; per-family epochs and optimisers in MODEL_BUDGETS.
    "quick": {"dataset": "digits", "latent_dim": 8, "batch_size": 64, "fraction": 0.5, "n_score": 1_000,
              "n_snapshot": 500},
}  # fmt: skip

#: Per profile and model, the run fields that differ between the models on top of :data:`BUDGETS`: the miniature
#: trains the VAEs for 60 epochs with Adam 1e-3 (the paper's 3e-4 is for 40M-parameter nets) and a decoder
#: variance of 0.1 (the digits' per-pixel variance is 0.074; with the paper's 1.0 the 8 x 8 VAEs collapse to the
#: mean digit, chapter 6), REAL-NVP for 40 epochs with Adam 1e-3 and GLOW for 40 with the official code's Adamax
#: (1e-3, weight decay 1e-5).
MODEL_BUDGETS: dict[str, dict[str, dict[str, Any]]] = {
    "full": {},
    "colab": {},
    "quick": {
        **{m: {"epochs": 60, "lr": 1e-3, "decoder_variance": 0.1, "snapshot_epochs": (1, 5, 15, 30, 45, 60)}
           for m in ("vae", "beta_vae", "iwae", "vae_iaf", "hvae")},
        "realnvp": {"epochs": 40, "lr": 1e-3, "snapshot_epochs": (1, 5, 10, 20, 30, 40)},
        "glow": {"epochs": 40, "lr": 1e-3, "weight_decay": 1e-5, "snapshot_epochs": (1, 5, 10, 20, 30, 40)},
    },
}  # fmt: skip

#: The schedule ablation of Table 2 in miniature: Gaussian mollification with each schedule (and the sigmoid's
#: temperatures of the paper's Fig. 3, 0.2 to 0.9) on one flow and one VAE; vanilla and sigmoid-0.7 come from the grid.
ABLATION = {"models": ("glow", "vae"), "schedules": ("sigmoid", "cosine", "linear"), "taus": (0.2, 0.7, 0.9)}

#: The fields that name a run (not its budget).
IDENTITY = ("model", "mode", "seed", "schedule", "tau", "variant")

_PAPER_EPOCHS = {"vae": {"cifar10": 200, "celeba": 100}, "realnvp": {"cifar10": 100, "celeba": 80},
                 "glow": {"cifar10": 80, "celeba": 40}}  # fmt: skip


def family(model: str) -> str:
    """``"flow"`` for REAL-NVP and GLOW, ``"vae"`` for the five VAEs."""
    if model in FLOWS:
        return "flow"
    if model in VAE_KINDS:
        return "vae"
    raise ValueError(f"unknown model {model!r}; choose one of {list(MODELS)}")


def paper_defaults(model: str, dataset: str = "cifar10", variant: str = "code") -> dict[str, Any]:
    """The paper's training settings of ``model`` on ``dataset`` (Appendix D.3.2; GLOW: its official code
    for ``variant="code"``): ``epochs``, ``batch_size``, ``lr``, ``optimizer``, ``weight_decay``, ``fraction``.

    Data sets other than CIFAR-10 and CelebA get CIFAR-10's (a profile sets its own).
    """
    data = dataset if dataset in ("cifar10", "celeba") else "cifar10"
    if family(model) == "vae":
        return {"epochs": _PAPER_EPOCHS["vae"][data], "batch_size": 128, "lr": 3e-4, "optimizer": "adam",
                "weight_decay": 0.0, "fraction": 0.5}  # fmt: skip
    if model == "realnvp":
        return {"epochs": _PAPER_EPOCHS["realnvp"][data], "batch_size": 64, "lr": 1e-3, "optimizer": "adam",
                "weight_decay": 0.0, "fraction": 0.5}  # fmt: skip
    text = {"epochs": _PAPER_EPOCHS["glow"][data], "batch_size": 64, "lr": 3e-4, "optimizer": "adamax",
            "weight_decay": 0.0, "fraction": {"cifar10": 50 / 80, "celeba": 20 / 40}[data]}  # fmt: skip
    if variant == "text":
        return text
    code = {**text, "lr": 1e-3, "weight_decay": 1e-5}  # image/experiment.py: Adamax(lr=1e-3, weight_decay=1e-5)
    if data == "cifar10":  # train_mollification.sh: 30,000 mollified + 20,000 clean iterations of batch 64
        code.update(epochs=64, fraction=0.6)
    return code


def schedule_label(schedule: str, tau: Optional[float]) -> str:
    """The ``schedule`` column of the results: ``none``, ``heat``, ``sigmoid`` (tau 0.7), ``sigmoid-tau0.2``, ..."""
    if schedule == "sigmoid" and tau is not None and not math.isclose(tau, PAPER_TAU):
        return f"sigmoid-tau{tau:g}"
    return schedule


@dataclass(frozen=True)
class ImageRun:
    """One (model, mode, schedule, seed) of Table 1 / Table 2; the defaults are the paper's on CIFAR-10.

    ``None`` fields take :func:`paper_defaults` of the model (and ``variant``): ``epochs`` (VAEs 200
    on CIFAR-10 and 100 on CelebA, REAL-NVP 100 / 80, GLOW-code 64, GLOW-text 80 / 40),
    ``batch_size`` (VAEs 128, flows 64), ``lr``, ``optimizer`` (``adam`` or ``adamax``),
    ``weight_decay``, and ``fraction``, the part of the steps mollified. ``schedule`` (Gaussian
    mode only): ``sigmoid`` (default, temperature ``tau``, default 0.7), ``cosine`` or ``linear``;
    vanilla runs have ``none`` and blurring ``heat`` (the log-linear blur of Appendix B).
    ``latent_dim`` and ``precision`` concern the VAEs, ``dequantize`` and ``grad_clip`` the flows
    (``grad_clip``: the gradients' global 2-norm, ``None`` = off, as in the paper). ``width``
    multiplies the channels of either family (VAEs: Table 5's; flows: the coupling networks').
    ``n_images`` limits the training images (``None``: all; for the photo patches, their number).

    ``decoder_variance`` (VAEs only; flows have no decoder and keep ``None``): the variance
    ``s2`` of the decoder's Gaussian likelihood ``N(x; x_hat, s2 I)``, so the reconstruction
    term is ``||x - x_hat||^2 / (2 s2)`` summed over the pixels, up to a constant
    (:func:`~molli_utils.models.vae.make_vae`). ``None`` takes the paper's value,
    :data:`~molli_utils.models.vae.PAPER_DECODER_VARIANCE` = 1: pythae's
    ``reconstruction_loss="mse"``, ``0.5 * ||x - x_hat||^2``, exactly as before the field
    existed (CIFAR-10, CelebA). The digits miniature uses 0.1
    (:data:`MODEL_BUDGETS`; chapter 6 says why).
    """

    model: str
    mode: str
    seed: int = 1
    dataset: str = "cifar10"
    schedule: Optional[str] = None
    tau: Optional[float] = None
    variant: str = "code"
    epochs: Optional[int] = None
    batch_size: Optional[int] = None
    lr: Optional[float] = None
    optimizer: Optional[str] = None
    weight_decay: Optional[float] = None
    fraction: Optional[float] = None
    latent_dim: int = 256
    width: float = 1.0
    dequantize: bool = True
    grad_clip: Optional[float] = None
    n_images: Optional[int] = None
    n_score: int = 50_000
    snapshot_epochs: tuple[int, ...] = ()
    n_snapshot: int = 5_000
    precision: str = "auto"
    decoder_variance: Optional[float] = None

    def __post_init__(self) -> None:
        for name, value, valid in (("model", self.model, MODELS), ("mode", self.mode, MODES),
                                   ("dataset", self.dataset, DATASETS), ("variant", self.variant, VARIANTS)):  # fmt: skip
            if value not in valid:
                raise ValueError(f"unknown {name} {value!r}; choose one of {list(valid)}")
        for name, value in paper_defaults(self.model, self.dataset, self.variant).items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        if self.optimizer not in ("adam", "adamax"):
            raise ValueError(f"unknown optimizer {self.optimizer!r}; choose 'adam' or 'adamax'")
        fixed = {"vanilla": "none", "blur": "heat"}
        if self.mode in fixed:
            if self.schedule not in (None, fixed[self.mode]) or self.tau is not None:
                raise ValueError(f"mode {self.mode!r} has no noise schedule to choose (got schedule={self.schedule!r}, "
                                 f"tau={self.tau!r}); schedules and tau belong to the gaussian mode")  # fmt: skip
            object.__setattr__(self, "schedule", fixed[self.mode])
        else:
            schedule = self.schedule or "sigmoid"
            if schedule not in SCHEDULES:
                raise ValueError(f"unknown schedule {schedule!r}; choose one of {list(SCHEDULES)}")
            if schedule != "sigmoid" and self.tau is not None:
                raise ValueError(f"tau is the sigmoid schedule's temperature; the {schedule} schedule has none")
            object.__setattr__(self, "schedule", schedule)
            if schedule == "sigmoid":
                tau = PAPER_TAU if self.tau is None else float(self.tau)
                if not tau > 0:
                    raise ValueError(f"tau must be > 0, got {self.tau}")
                object.__setattr__(self, "tau", tau)
        object.__setattr__(self, "snapshot_epochs", tuple(int(e) for e in self.snapshot_epochs))
        if self.family == "flow":
            if self.decoder_variance is not None:
                raise ValueError(f"decoder_variance is the VAEs' likelihood scale; the flow {self.model!r} has "
                                 f"no decoder (leave it None), got {self.decoder_variance!r}")  # fmt: skip
        else:
            variance = PAPER_DECODER_VARIANCE if self.decoder_variance is None else self.decoder_variance
            object.__setattr__(self, "decoder_variance", check_decoder_variance(variance))
        if not 0.0 < self.fraction <= 1.0:
            raise ValueError(f"fraction must lie in (0, 1] (0.5 = the first half of training), got {self.fraction}")

    @property
    def family(self) -> str:
        return family(self.model)

    @property
    def schedule_label(self) -> str:
        return schedule_label(self.schedule, self.tau)

    def mollifier(self, total_steps: int, device: Union[str, torch.device] = "cpu"):
        """The run's :class:`~molli_utils.mollifiers.Mollifier` (:func:`~molli_utils.experiments.modes.mollifier`) over ``total_steps``."""
        gaussian = self.mode == "gaussian"
        return modes.mollifier(self.mode, total_steps, self.seed, experiment="images", fraction=self.fraction,
                               schedule=self.schedule if gaussian else None,
                               schedule_kwargs={"tau": self.tau} if gaussian and self.schedule == "sigmoid" else None,
                               device=device)  # fmt: skip


def from_profile(profile_name: Optional[str] = None, **fields_: Any) -> ImageRun:
    """One :class:`ImageRun` of ``profile_name`` (default: :func:`~molli_utils.experiments.profiles.profile`):
    ``BUDGETS[profile]``, then ``MODEL_BUDGETS[profile][model]``, then ``fields_`` (``model``, ``mode``, ``seed``,
    any other field) on top."""
    name = profiles.profile(profile_name)
    per_model = MODEL_BUDGETS[name].get(fields_.get("model"), {})
    return ImageRun(**{**profiles.budget_of(BUDGETS, name), **per_model, **fields_})


def profile_of(config: ImageRun) -> str:
    """The profile whose settings ``config`` has (``"full"``, ``"colab"`` or ``"quick"``), else ``"custom"``."""
    return profiles.matching_profile(config, from_profile, IDENTITY)


def key(r: ImageRun) -> dict[str, Any]:
    """The recorded-run key of ``r`` (the fields of both results files' keys)."""
    return {"dataset": r.dataset, "model": r.model, "mollifier": r.mode, "mode": r.mode, "schedule": r.schedule_label,
            "variant": r.variant, "seed": r.seed, "epochs": r.epochs, "width": r.width,
            "decoder_variance": _variance_cell(r)}  # fmt: skip


def _variance_cell(r: ImageRun) -> Any:
    """The ``decoder_variance`` column: the VAEs' value, empty for the flows."""
    return "" if r.decoder_variance is None else r.decoder_variance


def results_file(dataset: str) -> str:
    """``images_digits.csv`` for the digits (the miniature), ``images.csv`` otherwise."""
    return RESULTS_DIGITS if dataset == DIGITS else RESULTS


def grid(profile: Optional[str] = None, *, models: Optional[Sequence[str]] = None, modes: Sequence[str] = MODES,
         seeds: Optional[Sequence[int]] = None, schedules: Sequence[str] = ("sigmoid",),
         taus: Sequence[Optional[float]] = (None,), **fields_: Any) -> list[ImageRun]:  # fmt: skip
    """Every (model, mode, schedule, seed) of ``profile``, model-major (Table 1's rows; default: all seven).

    ``schedules`` and ``taus`` (the sigmoid's temperatures; ``None`` = 0.7) multiply the Gaussian mode
    only (Table 2). A ``decoder_variance`` among ``fields_`` applies to the VAEs only. ``seeds`` default to :data:`SEEDS_DIGITS` on the digits, else
    :data:`SEEDS`.
    """
    models = list(models or MODELS)
    if seeds is None:
        dataset = from_profile(profile, model=models[0], mode="vanilla", **fields_).dataset
        seeds = SEEDS_DIGITS if dataset == DIGITS else SEEDS
    variants = []
    for mode in modes:
        if mode != "gaussian":
            variants.append((mode, None, None))
            continue
        for s in schedules:
            for t in taus if s == "sigmoid" else (None,):
                variants.append((mode, s, t))
    def own(model: str) -> dict[str, Any]:  # the flows have no decoder variance to set
        return fields_ if family(model) == "vae" else {k: v for k, v in fields_.items() if k != "decoder_variance"}

    return [from_profile(profile, model=k, mode=m, seed=seed, schedule=s, tau=t, **own(k))
            for k in models for m, s, t in variants for seed in seeds]  # fmt: skip


def resume_dir(config: ImageRun, root: Union[str, Path]) -> Path:
    """The folder under ``root`` where ``config``'s run keeps its checkpoint (one per run; a VAE's decoder variance
    other than the paper's 1 is part of the name, e.g. ``digits-vae-vanilla-s2_0.1-seed1``)."""
    schedule = "" if config.schedule_label in ("none", "heat", "sigmoid") else f"-{config.schedule_label}"
    variant = "" if config.variant == "code" else f"-{config.variant}"
    variance = config.decoder_variance
    s2 = "" if variance is None or variance == PAPER_DECODER_VARIANCE else f"-s2_{variance:g}"
    return Path(root) / f"{config.dataset}-{config.model}-{config.mode}{schedule}{variant}{s2}-seed{config.seed}"


def load_data(config: ImageRun, *, train: bool = True) -> ImageData:
    """The training images of ``config`` (``train=False``: the test split; the patches have one split)."""
    if config.dataset == SAMPLE_PATCHES:
        return sample_patches(32, n=config.n_images, seed=config.seed)
    if config.dataset == DIGITS:
        data = load_digits(train=train)
        if train and config.n_images is not None:
            data = ImageData(data.name, data.split, data.images[: config.n_images], data.source_note, data.levels,
                             data.labels[: config.n_images])  # fmt: skip
        return data
    return load_images(config.dataset, train=train, limit=config.n_images if train else None)


def _quantize(images: torch.Tensor, levels: int) -> torch.Tensor:
    """``images`` in ``[0, 1]`` rounded to ``levels`` grey levels."""
    return torch.round(images.clamp(0.0, 1.0) * (levels - 1)) / (levels - 1)


def sample(model, n: int, seed: int, *, levels: int = 256, z: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``n`` seeded samples of an image model (a VAE or a flow) as images in ``[0, 1]`` on the CPU.

    VAEs: ``decoder(z)``, ``z ~ N(0, I)`` (or the given latents ``z``); flows: ``model.sample`` mapped back
    from the flow's space (:func:`~molli_utils.models.image_flows.from_flow_space`) with ``levels``.
    """
    if hasattr(model, "q0"):  # a normflows MultiscaleFlow
        from ..models.image_flows import sample_images as flow_samples

        return flow_samples(model, n, seed, levels=levels, dequantize=getattr(model, "dequantize", True))
    from ..models.vae import sample_images

    return sample_images(model, n, seed=seed, z=z)


@dataclass
class Scorer:
    """A sample-quality score: ``name`` (:data:`~molli_utils.fid.SCORE_FID`, the stand-in's, or the digits
    classifier's :data:`~molli_utils.fid.SCORE_FD_DIGITS`), the feature extractor and the reference statistics
    of the training images; ``scorer(model, n, seed)`` is the Fréchet distance of ``n`` samples of
    ``model``, and :meth:`scores` adds the KID where ``reference_features`` are kept (the digits).
    Samples are rounded to the data's ``levels`` before scoring.
    """

    name: str
    extractor: Any
    reference: tuple[np.ndarray, np.ndarray]
    device: torch.device
    levels: int = 256
    reference_features: Optional[torch.Tensor] = None
    kid_name: str = ""

    def score_images(self, images: torch.Tensor) -> dict[str, float]:
        """``{"fd": ..., "kid": ...}`` of ``images`` (``kid`` is nan without reference features). Early in training
        the samples can be nearly constant and their feature covariance singular, which
        :func:`~molli_utils.fid.frechet_distance` handles (no matrix square root of a singular matrix)."""
        images = _quantize(images, self.levels)
        if self.reference_features is None:
            return {"fd": fid(images, self.reference, self.extractor, device=self.device), "kid": math.nan}
        feats = features(images, self.extractor, device=self.device)
        mu, sigma = feats.mean(0).numpy(), np.cov(feats.numpy(), rowvar=False)
        return {"fd": frechet_distance(mu, sigma, *self.reference), "kid": kid(feats, self.reference_features)}

    def one_image(self, image: torch.Tensor) -> float:
        """The Fréchet distance of copies of one ``image`` ``[C, H, W]`` (what a model that always draws it scores):
        ``||mu_r - f||^2 + tr(Sigma_r)`` with ``f`` its features; the covariance of the copies is 0."""
        f = features(_quantize(image.unsqueeze(0), self.levels), self.extractor, device=self.device).numpy()[0]
        mu, sigma = self.reference
        return float(((mu - f) ** 2).sum() + np.trace(sigma))

    def scores(self, model, n: int, seed: int) -> dict[str, float]:
        """:meth:`score_images` of ``n`` samples of ``model`` (seeded)."""
        return self.score_images(sample(model, n, seed, levels=self.levels))

    def __call__(self, model, n: int, seed: int) -> float:
        return self.scores(model, n, seed)["fd"]

    def floor(self, config: ImageRun, data: ImageData) -> tuple[float, str]:
        """The score of real images: the test split against the training statistics where there is one,
        else the two halves of the training images against each other; and what was compared."""
        if config.dataset in (*IMAGE_NAMES, DIGITS):
            held_out = load_data(config, train=False)
            return self.score_images(held_out.images)["fd"], f"{len(held_out)} real test images vs the training set"
        half = len(data) // 2
        value = frechet_distance(*activation_statistics(data.images[:half], self.extractor, device=self.device),
                                 *activation_statistics(data.images[half:], self.extractor, device=self.device))  # fmt: skip
        return value, f"two halves of {data.name} against each other"


def make_scorer(data: ImageData, device: Union[str, torch.device] = "cpu", *, use_fid: str = "auto",
                log: Callable[[str], None] = print) -> Scorer:  # fmt: skip
    """The score of the image runs on ``data``.

    The digits: the Fréchet distance and KID on the features of the package's digits classifier
    (trained once and cached; ``log`` prints its test accuracy). Other data, ``use_fid``: ``"auto"``
    -- FID when pytorch-fid's Inception weights load and ``device`` is a GPU (on a CPU Inception
    takes about half a second per image), else the stand-in; ``"always"`` -- FID or a
    ``RuntimeError`` saying why not (the command line); ``"never"`` -- the stand-in. The reference
    statistics of the official data sets are cached on disk. ``log`` says which score it is.
    """
    if use_fid not in ("auto", "always", "never"):
        raise ValueError(f"use_fid must be 'auto', 'always' or 'never', got {use_fid!r}")
    device = torch.device(device)
    if data.name == DIGITS:
        extractor = digits_classifier(device=device, log=log)
        reference_features = features(data.images, extractor, device=device)
        reference = (reference_features.mean(0).numpy(), np.cov(reference_features.numpy(), rowvar=False))
        log(f"score: {SCORE_FD_DIGITS} and {SCORE_KID_DIGITS}, on the features\n"
            f"  of a digits classifier (test accuracy {extractor.test_accuracy:.4f}; not FID);\n"
            f"  reference: {len(data)} {data.name} training images")  # fmt: skip
        return Scorer(SCORE_FD_DIGITS, extractor, reference, device, data.levels, reference_features, SCORE_KID_DIGITS)
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
    log(f"score: {name} (feature extractor {extractor.name}),\n  reference: {len(data)} {data.name} training images")
    return Scorer(name, extractor, reference, device, data.levels)


def mean_image_fd(device: Union[str, torch.device] = "cpu") -> float:
    """The Fréchet distance, on the digits classifier's features, of copies of the mean training digit: what a
    model that always draws one image, the mean, scores in the digits miniature (a collapsed VAE scores about
    this). The miniature counts a model as learning when its vanilla FD is below half of it."""
    data = load_digits(train=True)
    return make_scorer(data, device, log=lambda _: None).one_image(data.images.mean(0))


@dataclass
class ImageResult:
    """What :func:`run` returns. ``snapshots[epoch] = {"images": 16 samples, "score": ...}``.

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


def _device_name(device: torch.device) -> str:
    """``"cpu"`` or the GPU's name (e.g. ``"cuda: Tesla T4"``), for the results file."""
    return f"cuda: {torch.cuda.get_device_name(device)}" if device.type == "cuda" else device.type


def run(
    config: ImageRun,
    *,
    data: Optional[ImageData] = None,
    scorer: Optional[Scorer] = None,
    device: Union[str, torch.device] = "cpu",
    resume_root: Union[str, Path, None] = None,
    callback: Optional[Callable[[int, Any], None]] = None,
    progress: bool = False,
    test: Optional[ImageData] = None,
    dist: Any = None,
) -> ImageResult:
    """Train one run of Table 1 / Table 2 and score it; returns an :class:`ImageResult`.

    The data are mollified during the first ``config.fraction`` of the steps, then clean. ``data``
    defaults to :func:`load_data`; with a ``scorer`` the snapshot epochs and the end are scored
    (that time is not counted in ``train_seconds``); flows also get the test bits per dimension
    of ``test`` (default: the test split, where there is one). ``resume_root`` makes the run
    resumable (its folder: :func:`resume_dir`; the snapshots and losses of the epochs before an
    interruption are then not recorded again). ``callback(epoch, model)`` runs after every epoch;
    ``progress`` shows one bar. ``dist``: a :class:`~molli_utils.training.distributed.Context`
    of a ``torchrun`` launch (the flows train with DistributedDataParallel; the scores are
    computed on rank 0 only). VAEs: pythae keeps the model of the epoch with the best training
    loss; the returned ``model`` is the *current* (last) one, and ``config.precision`` "auto"
    trains in mixed precision on a GPU (:func:`~molli_utils.training.vae.resolve_precision`).
    """
    from ..training.distributed import Context

    data = load_data(config) if data is None else data
    device = torch.device(device)
    dist = Context() if dist is None else dist
    runner = _run_flow if config.family == "flow" else _run_vae
    result = runner(config, data, scorer, device, resume_root, callback, progress, dist)
    result.world_size = dist.world_size
    if dist.main:
        start = time.perf_counter()
        if scorer is not None:
            scores = scorer.scores(result.model, config.n_score, seed=config.seed + 7)
            result.score_name, result.score, result.kid = scorer.name, scores["fd"], scores["kid"]
        if config.family == "flow" and config.dequantize:
            from ..models.image_flows import bits_per_dim

            held_out = test if test is not None else _test_split(config)
            if held_out is not None:
                result.bpd = bits_per_dim(result.model, held_out.images, held_out.levels, seed=config.seed + 11)
        result.score_seconds = time.perf_counter() - start
    return result


def _test_split(config: ImageRun) -> Optional[ImageData]:
    if config.dataset in (*IMAGE_NAMES, DIGITS):
        return load_data(config, train=False)
    return None


def _snapshot(result: ImageResult, model, epoch: int, scorer: Optional[Scorer], z, levels: int) -> None:
    config = result.config
    images = sample(model, 16, config.seed + 1000, levels=levels, z=z)
    result.snapshots[epoch] = {"images": images[:16],
                               "score": None if scorer is None else scorer(model, config.n_snapshot, seed=config.seed + 7)}  # fmt: skip


def _run_flow(config, data, scorer, device, resume_root, callback, progress, dist) -> ImageResult:
    from ..models.image_flows import make_image_flow
    from ..training import TrainConfig, train
    from ..training.batch import FlowBatches
    from ..training.distributed import DistributedLoss, checkpoint_dir

    torch.manual_seed(config.seed)
    model = make_image_flow(config.model, data.shape, dataset=config.dataset, width=config.width)
    model.dequantize = config.dequantize
    model.to(device)
    cls = torch.optim.Adam if config.optimizer == "adam" else torch.optim.Adamax
    optimizer = cls(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    per_epoch = len(data) // config.batch_size
    tc = TrainConfig(batch_size=config.batch_size, lr=config.lr, epochs=config.epochs, seed=config.seed,
                     grad_clip=config.grad_clip, log_every=per_epoch, progress=progress and dist.main,
                     desc=f"{config.model}/{config.mode}", device=device)  # fmt: skip
    steps = tc.total_steps(len(data))
    mollifier = config.mollifier(steps, device)
    gen = torch.Generator(device=device).manual_seed(DEQUANTIZE_SEED_OFFSET + config.seed)
    batches = FlowBatches(mollifier, data.levels, dequantize=config.dequantize, generator=gen, rank=dist.rank,
                          world_size=dist.world_size)  # fmt: skip
    loss = DistributedLoss(model, dist, batches, device)
    result = ImageResult(config, model, steps, mollifier.horizon if mollifier.kind != "none" else 0,
                         device=_device_name(device), arith=arithmetic.fingerprint(device))  # fmt: skip
    z = None
    extra = {"seconds": 0.0}

    def every_step(done: int, m) -> None:
        if done % per_epoch:
            return
        epoch = done // per_epoch
        start = time.perf_counter()
        if dist.main and epoch in config.snapshot_epochs:
            _snapshot(result, m, epoch, scorer, z, data.levels)
        if callback is not None:
            callback(epoch, m)
        extra["seconds"] += time.perf_counter() - start

    folder = None if resume_root is None else resume_dir(config, resume_root)
    with checkpoint_dir(folder, dist) as ckpt:
        tc = dataclasses.replace(tc, checkpoint_dir=ckpt, checkpoint_every=per_epoch if ckpt is not None else 0)
        out = train(model, data.images, tc, mollifier=batches, loss_fn=loss, optimizer=optimizer, callback=every_step)
    first = 0 if out.resumed_from is None else out.resumed_from // per_epoch
    result.losses = [float(v) for v in out.history["loss"][first:]]
    result.epochs_run = config.epochs - first
    result.train_seconds = max(0.0, out.elapsed - extra["seconds"])
    result.skipped_steps = out.num_nonfinite
    return result


def _run_vae(config, data, scorer, device, resume_root, callback, progress, dist) -> ImageResult:
    from ..training.vae import MollifiedTrainer, mollification_horizon, quiet_pythae, resolve_precision  # pythae first: quietly

    from pythae.data.datasets import BaseDataset
    from pythae.trainers import BaseTrainerConfig
    from pythae.trainers.training_callbacks import MetricConsolePrinterCallback, ProgressBarCallback, TrainingCallback

    from ..models.vae import make_vae
    from ..training import progress_bar

    quiet_pythae()
    torch.manual_seed(config.seed)
    model = make_vae(config.model, data.shape, config.latent_dim, config.width, config.decoder_variance)
    steps = config.epochs * math.ceil(len(data) / config.batch_size)
    horizon = mollification_horizon(config.epochs, len(data), config.batch_size, config.fraction)
    result = ImageResult(config, model, steps, horizon if config.mode != "vanilla" else 0,
                         precision=resolve_precision(config.precision, device), device=_device_name(device),
                         arith=arithmetic.fingerprint(device))  # fmt: skip
    trainer_config = BaseTrainerConfig(output_dir=tempfile.mkdtemp(prefix="molli-images-"), num_epochs=config.epochs,
                                       learning_rate=config.lr, per_device_train_batch_size=config.batch_size,
                                       per_device_eval_batch_size=config.batch_size, no_cuda=device.type != "cuda",
                                       seed=config.seed, optimizer_cls="Adam",
                                       optimizer_params={"weight_decay": config.weight_decay} if config.weight_decay else None)  # fmt: skip
    z = torch.randn(16, config.latent_dim, generator=torch.Generator().manual_seed(config.seed + 1000))
    bar = progress_bar(total=config.epochs, desc=f"{config.model}/{config.mode}", unit="epoch",
                       disable=not (progress and dist.main))  # fmt: skip
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
                _snapshot(result, model, self.epoch, scorer, z, data.levels)
            if callback is not None:
                callback(self.epoch, model)

        def on_log(self, training_config, logs, **kwargs):
            result.losses.append(float(logs["train_epoch_loss"]))
            if not bar.disable:
                bar.update(1)
                bar.set_postfix(loss=f"{result.losses[-1]:.4g}")

    try:
        trainer = MollifiedTrainer(
            model, BaseDataset(data.images, torch.zeros(len(data))), None, trainer_config, callbacks=[Recorder()],
            mollifier=mollifier, resume_dir=None if resume_root is None else resume_dir(config, resume_root),
            precision=result.precision, dist=dist,
        )  # fmt: skip
        setup = trainer._setup_callbacks  # pythae adds its per-epoch progress bars and console printer there

        def setup_without_console_output():
            setup()
            handler = trainer.callback_handler
            handler.callbacks = [c for c in handler.callbacks if not isinstance(c, (ProgressBarCallback, MetricConsolePrinterCallback))]

        trainer._setup_callbacks = setup_without_console_output
        trainer.train()
        result.model = trainer.bare_model
        result.skipped_steps = trainer.skipped_steps
    finally:
        bar.close()
        shutil.rmtree(trainer_config.output_dir, ignore_errors=True)
    return result


def result_row(result: ImageResult, data: ImageData) -> dict[str, Any]:
    """One row of ``images.csv`` (or, on the digits, ``images_digits.csv``) for a finished, scored run
    (the command adds the provenance)."""
    if result.score_name not in (SCORE_FID, SCORE_STANDIN, SCORE_FD_DIGITS):
        raise ValueError(f"the run has no score ({result.score_name!r}): pass a scorer to run()")
    c = result.config

    def num(value: float, digits: int = 4) -> Any:
        return "" if value is None or not math.isfinite(value) else round(float(value), digits)

    common = {"dataset": data.name, "model": c.model, "schedule": c.schedule_label, "seed": c.seed, "epochs": c.epochs,
              "steps": result.steps, "profile": profile_of(c), "device": result.device,
              "world_size": result.world_size, "seconds_per_step": round(result.seconds_per_step, 6),
              "arith": result.arith, "decoder_variance": _variance_cell(c)}  # fmt: skip
    if data.name == DIGITS:
        return {**common, "family": c.family, "mode": c.mode, "tau": num(c.tau, 6) if c.tau is not None else "",
                "fd": num(result.score), "kid": num(result.kid, 6), "bpd": num(result.bpd), "n_score": c.n_score,
                "horizon": result.horizon, "batch_size": c.batch_size, "lr": c.lr, "nonfinite_steps": result.skipped_steps,
                "train_seconds": round(result.train_seconds, 2), "score_seconds": round(result.score_seconds, 2)}  # fmt: skip
    return {**common, "mollifier": c.mode, "tau": c.tau if c.tau is not None else "", "variant": c.variant,
            "score_name": result.score_name, "score": round(float(result.score), 4), "bpd": num(result.bpd),
            "width": c.width, "precision": result.precision, "skipped_steps": result.skipped_steps}  # fmt: skip


def _log_line(result: ImageResult, data: ImageData) -> str:
    c = result.config
    bpd = f", {result.bpd:.3f} bits/dim" if math.isfinite(result.bpd) else ""
    kid_ = f", KID {result.kid:.4f}" if math.isfinite(result.kid) else ""
    return (f"{data.name}/{c.model}/{c.mode}/{c.schedule_label}/seed {c.seed}: {result.score_name} {result.score:.3f}"
            f"{kid_}{bpd}; {result.steps} steps in {result.train_seconds:.0f} s ({1e3 * result.seconds_per_step:.1f} "
            f"ms/step, {result.precision}, {result.skipped_steps} skipped)")  # fmt: skip


_WORKER: dict[str, Any] = {}


def _worker(config: ImageRun, use_fid: str, checkpoints: Optional[str], threads: int) -> tuple[dict, str]:
    """One run in a worker process of :func:`run_many` (the data and the scorer are built once per process)."""
    torch.set_num_threads(threads)
    if _WORKER.get("dataset") != config.dataset:
        data = load_data(config)
        _WORKER.update(dataset=config.dataset, data=data, test=_test_split(config),
                       scorer=make_scorer(data, "cpu", use_fid=use_fid, log=lambda s: None))  # fmt: skip
    data = _WORKER["data"]
    result = run(config, data=data, scorer=_WORKER["scorer"], resume_root=checkpoints, test=_WORKER["test"])
    return result_row(result, data), _log_line(result, data)


def run_many(runs: Sequence[ImageRun], folder: Union[str, Path, None] = None, *, workers: int = 1,
             device: Union[str, torch.device, None] = None, checkpoints: Union[str, Path, None] = None,
             use_fid: str = "always", threads: int = 1, progress: bool = True, dist: Any = None,
             log: Callable[[str], None] = print) -> list[dict]:  # fmt: skip
    """Run the ``runs`` (one data set) not yet recorded in ``folder`` (:func:`results_file` of their data set;
    folder: :func:`~molli_utils.experiments.results.results_dir`), appending each row with its provenance as
    soon as it finishes; returns the new rows.

    ``workers`` > 1: that many processes on the CPU (``threads`` torch threads each), one run per process at a
    time. ``dist``: a ``torchrun`` launch's :class:`~molli_utils.training.distributed.Context` (every rank
    runs the same list; rank 0 scores, writes and logs). ``use_fid`` as in :func:`make_scorer` (the digits
    always use their classifier).

    The runs are de-duplicated first. A run that raises is reported (its key and error) and the others go on;
    once all have ended, :class:`~molli_utils.experiments.cli.RunsFailed` is raised if any failed (every
    finished run is stored by then). Under ``torchrun`` an error stops every rank at once (the ranks run in
    lockstep). Ctrl-C (or SIGTERM under the command) terminates the workers; finished runs stay stored.
    """
    import concurrent.futures as cf

    from ..runtime import pick_device
    from .cli import RunsFailed, deferred_signals, process_pool
    from ..training.distributed import Context, barrier
    from . import results

    ctx = Context() if dist is None else dist
    runs = list(dict.fromkeys(runs))  # a run given twice is trained once
    if not runs:
        return []
    if len({r.dataset for r in runs}) > 1:
        raise ValueError("run_many takes the runs of one data set (they share its results file and its scorer)")
    say = log if ctx.main else (lambda s: None)
    out = results.results_dir(folder) / results_file(runs[0].dataset)
    if out.exists():
        results.append(out, [])  # a file of an older version (other columns) is refused here, with the fix
    todo = results.pending(runs, out, key)
    barrier(ctx)  # every rank has the same list before rank 0 appends to the file
    say(f"{len(runs) - len(todo)} of {len(runs)} image runs already in {out}; running {len(todo)}"
        + (f" on {workers} processes" if workers > 1 and todo else ""))  # fmt: skip
    if not todo:
        return []
    rows: list[dict] = []
    failed: list[tuple[dict, BaseException]] = []
    start = time.perf_counter()

    def store(i: int, row: dict, line: str) -> None:
        row = {**row, **results.provenance()}
        with deferred_signals():  # an interrupt never cuts a row
            results.append(out, [row])
        rows.append(row)
        say(f"[{i}/{len(todo)}, {time.perf_counter() - start:.0f} s] {line}")

    def report(i: int, config: ImageRun, err: BaseException) -> None:
        failed.append((key(config), err))
        text = str(err).strip().splitlines()[0] if str(err).strip() else repr(err)
        say(f"[{i}/{len(todo)}, {time.perf_counter() - start:.0f} s] {config.dataset}/{config.model}/{config.mode}/"
            f"{config.schedule_label}/seed {config.seed}: FAILED: {type(err).__name__}: {text}")  # fmt: skip

    if workers > 1:
        if ctx.distributed:
            raise ValueError("workers > 1 runs several one-process runs side by side; under torchrun use workers=1")
        if todo[0].dataset == DIGITS:
            digits_classifier(log=say)  # checked once here (a damaged file stops the batch before it starts)
        with process_pool(workers) as pool:
            futures = {pool.submit(_worker, r, use_fid, None if checkpoints is None else str(checkpoints), threads): r
                       for r in todo}  # fmt: skip
            for i, fut in enumerate(cf.as_completed(futures), 1):
                try:
                    row, line = fut.result()
                except Exception as err:  # reported with its key; the other runs go on
                    report(i, futures[fut], err)
                    continue
                store(i, row, line)
    else:
        device = torch.device(pick_device() if device is None else device)
        data = load_data(todo[0])
        scorer = make_scorer(data, device, use_fid=use_fid, log=say) if ctx.main else None
        test = _test_split(todo[0])
        for i, config in enumerate(todo, 1):
            try:
                result = run(config, data=data, scorer=scorer, device=device, resume_root=checkpoints,
                             progress=progress, test=test, dist=ctx)  # fmt: skip
            except Exception as err:
                if ctx.distributed:
                    raise
                report(i, config, err)
                continue
            if ctx.main:
                store(i, result_row(result, data), _log_line(result, data))
            barrier(ctx)
    say(f"{len(todo)} runs in {time.perf_counter() - start:.0f} s wall" + (f" on {workers} processes" if workers > 1 else ""))
    if failed:
        raise RunsFailed(failed, len(rows), out)
    return rows


def miniature_runs(ablation: bool = False) -> list[ImageRun]:
    """The runs of Table 1 in miniature (the quick profile's grid: 7 models x 3 modes x the seeds of
    :data:`SEEDS_DIGITS`), or with ``ablation`` those of Table 2 in miniature (:data:`ABLATION`, the Gaussian
    mode only)."""
    if not ablation:
        return grid("quick")
    spec = ABLATION
    return grid("quick", models=spec["models"], modes=["gaussian"], schedules=spec["schedules"], taus=spec["taus"])


def _signs(values: Sequence[float]) -> str:
    return "".join("-" if v < 0 else "+" if v > 0 else "0" for v in values)


def paired(frame, model: str, mode: str, schedule: str, metric: str = "fd"):
    """Per seed: ``metric`` of (model, mode, schedule) and of the vanilla run of the same seed."""
    base = frame[(frame["model"] == model) & (frame["mode"] == "vanilla")].set_index("seed")[metric]
    treated = frame[(frame["model"] == model) & (frame["mode"] == mode) & (frame["schedule"] == schedule)]
    treated = treated.set_index("seed")[metric]
    seeds = sorted(set(base.index) & set(treated.index))
    return base.loc[seeds].astype(float), treated.loc[seeds].astype(float)


def miniature_variance() -> float:
    """The decoder variance of the miniature's VAEs (the quick profile's, :data:`MODEL_BUDGETS`)."""
    return float(MODEL_BUDGETS["quick"]["vae"]["decoder_variance"])


def at_variance(frame, decoder_variance: Optional[float] = None):
    """The rows of ``frame`` (``images_digits.csv``) of the flows and of the VAEs trained with ``decoder_variance``
    (default: :func:`miniature_variance`); a frame without the column is returned as it is."""
    if "decoder_variance" not in frame.columns:
        return frame
    value = miniature_variance() if decoder_variance is None else decoder_variance
    column = frame["decoder_variance"].astype(float)
    return frame[column.isna() | np.isclose(column, value)]


def _log_changes(van, mol) -> list[float]:
    """Per seed, ``log FD(mollified) - log FD(vanilla)``: the quantity every verdict on the images reads."""
    return (np.log(mol.to_numpy()) - np.log(van.to_numpy())).tolist()


def _change_columns(diffs: Sequence[float], paper_diff: float) -> dict[str, Any]:
    """The columns shared by both tables: our mean and sd of ``log FD`` differences, the same as a percentage
    (``100 (exp(mean) - 1)``, the geometric mean change), the signs per seed, and the paper's."""
    mean = float(np.mean(diffs)) if diffs else math.nan
    sd = float(np.std(diffs, ddof=1)) if len(diffs) > 1 else math.nan
    return {"Δ log FD": mean, "Δ log FD sd": sd, "change %": 100 * math.expm1(mean),
            "signs per seed": _signs(diffs), "paper Δ log FID (CIFAR-10)": paper_diff,
            "paper change % (FID, CIFAR-10)": 100 * math.expm1(paper_diff)}  # fmt: skip


def miniature_table(frame, paper: Optional[dict] = None, decoder_variance: Optional[float] = None):
    """Table 1 in miniature from the rows of ``images_digits.csv`` (a DataFrame): per model and mollifier, the
    mean and standard deviation over seeds of the Fréchet distance (and of KID, and the flows' bits/dim), and
    the change against vanilla training of the same seed as a paired difference of **log FD**,
    ``log FD(mollified) - log FD(vanilla)`` per seed (mean ``Δ log FD``, its sd, the same as a percentage,
    its sign per seed), beside the paper's ``log(FID_mollified / FID_vanilla)`` on CIFAR-10 (Table 1).
    The verdict is the book's one rule, :func:`molli_utils.report.verdict` of the per-seed log
    differences against the paper's, lower is better. The VAE rows are those of ``decoder_variance``
    (:func:`at_variance`; default: the miniature's)."""
    import pandas as pd

    from ..paper import IMAGES_FID
    from ..report import verdict

    paper = IMAGES_FID if paper is None else paper
    frame = at_variance(frame, decoder_variance)
    rows = []
    for model in MODELS:
        for mode, schedule in (("gaussian", "sigmoid"), ("blur", "heat")):
            van, mol = paired(frame, model, mode, schedule)
            diffs = _log_changes(van, mol)
            p = paper[("cifar10", model)]
            p_diff = math.log(p[mode] / p["vanilla"])
            row = {"model": model, "mollifier": mode, "seeds": len(diffs),
                   "FD vanilla": van.mean(), "FD vanilla sd": van.std(), "FD mollified": mol.mean(),
                   "FD mollified sd": mol.std(), **_change_columns(diffs, p_diff),
                   "verdict (miniature)": verdict(diffs, p_diff, higher_is_better=False)}  # fmt: skip
            for metric in ("kid", "bpd"):
                v, m = paired(frame, model, mode, schedule, metric)
                row[f"{metric} vanilla"], row[f"{metric} mollified"] = v.mean(), m.mean()
            rows.append(row)
    return pd.DataFrame(rows)


def ablation_table(frame, paper: Optional[dict] = None, decoder_variance: Optional[float] = None):
    """Table 2 in miniature: per ablated model and Gaussian schedule (and sigmoid temperature), the mean FD over
    seeds and its paired change against vanilla as in :func:`miniature_table` (``Δ log FD`` per seed), the
    paper's ``log(FID_schedule / FID_vanilla)`` on CIFAR-10 (Table 2, :data:`molli_utils.paper.SCHEDULES_FID`)
    and the verdict of :func:`molli_utils.report.verdict`. Table 2 has no temperatures: for ``sigmoid-tau0.2``
    and ``sigmoid-tau0.9`` the paper's number is empty (``paper number`` says so) and the verdict compares
    with the direction of the paper's sigmoid (tau 0.7) only (``sized=False``). The VAE rows are those of
    ``decoder_variance`` (:func:`at_variance`)."""
    import pandas as pd

    from .. import paper as paper_numbers
    from ..report import verdict

    table2 = paper_numbers.SCHEDULES_FID if paper is None else paper
    frame = at_variance(frame, decoder_variance)
    rows = []
    for model in ABLATION["models"]:
        labels = [schedule_label(s, t) for s in ABLATION["schedules"]
                  for t in (ABLATION["taus"] if s == "sigmoid" else (None,))]  # fmt: skip
        p = table2[("cifar10", model)]
        for label in labels:
            van, mol = paired(frame, model, "gaussian", label)
            diffs = _log_changes(van, mol)
            if label in p:
                p_diff, sized, note = math.log(p[label] / p["vanilla"]), True, "Table 2"
            else:  # a temperature of the sigmoid: Table 2 has none; the sigmoid's direction
                p_diff, sized, note = math.log(p["sigmoid"] / p["vanilla"]), False, \
                    "none (Table 2 has no temperatures): the direction of its sigmoid"  # fmt: skip
            verdict_ = verdict(diffs, p_diff, higher_is_better=False, sized=sized)
            if not sized:
                p_diff = math.nan
            rows.append({"model": model, "schedule": label, "seeds": len(diffs), "FD": mol.mean(), "FD sd": mol.std(),
                         "FD vanilla": van.mean(), **_change_columns(diffs, p_diff), "paper number": note,
                         "verdict (miniature)": verdict_})  # fmt: skip
    return pd.DataFrame(rows)
