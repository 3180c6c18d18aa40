"""What one image run is: the models, modes, data sets and schedules of Tables 1 and 2, the run's settings
(:class:`ImageRun`, the paper's by default, :func:`paper_defaults`), the profiles' budgets, the grid of runs,
their keys and results files, their checkpoint folders and their data."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import torch

from ...data.images import DIGITS, IMAGE_NAMES, SAMPLE_PATCHES, ImageData, load_digits, load_images, sample_patches
from ...models.image_flows import FLOW_KINDS
from ...models.vae import PAPER_DECODER_VARIANCE, VAE_KINDS, check_decoder_variance
from .. import modes, profiles, results

__all__ = [
    "MODES",
    "MODELS",
    "FLOWS",
    "VAES",
    "DATASETS",
    "SCHEDULES",
    "VARIANTS",
    "RESULTS",
    "RESULTS_DIGITS",
    "KEY_COLUMNS",
    "PAPER_TAU",
    "DEQUANTIZE_SEED_OFFSET",
    "DIFFERENCES",
    "SEEDS",
    "SEEDS_DIGITS",
    "BUDGETS",
    "MODEL_BUDGETS",
    "ABLATION",
    "IDENTITY",
    "ImageRun",
    "family",
    "paper_defaults",
    "schedule_label",
    "from_profile",
    "profile_of",
    "key",
    "variance_cell",
    "results_file",
    "grid",
    "resume_dir",
    "load_data",
    "held_out_data",
]

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
#: The key columns of the results files (``results.FILES[...].key``) not named as the run field they hold: another
#: field's or property's name, or a function of the run.
KEY_COLUMNS: dict[str, Any] = {
    "mollifier": "mode",
    "schedule": "schedule_label",
    "decoder_variance": lambda r: variance_cell(r),
}
#: The sigmoid schedule's temperature in the paper (Sec. 3, Appendix C).
PAPER_TAU = 0.7
#: Dequantisation noise of seed ``s`` comes from ``torch.Generator().manual_seed(DEQUANTIZE_SEED_OFFSET + s)``.
DEQUANTIZE_SEED_OFFSET = 20_000

#: Where the paper's text (Appendix D.3.2) and its official code (``image/experiment.py`` and its shell
#: scripts) differ, or where the book departs from both: (what, text, code, the book).
DIFFERENCES = (
    (
        "GLOW optimiser",
        "Adamax, lr 3e-4",
        "Adamax, lr 1e-3, weight decay 1e-5",
        "code (variant='code'); the text's is variant='text'",
    ),
    (
        "GLOW length on CIFAR-10",
        "80 epochs, 50 of them mollified",
        "50,000 iterations, 30,000 mollified (64 epochs)",
        "code: 64 epochs of 781 steps (49,984 iterations), the first 60% mollified",
    ),
    (
        "mollified part of training",
        "'the first half' (Sec. 4.2)",
        "GLOW: 60% (30,000 of 50,000 iterations)",
        "half for every model but GLOW-code; the miniature: half for all seven",
    ),
    (
        "GLOW architecture",
        "multi-scale, K = 20, L = 3",
        "normflows MultiscaleFlow, K = 20, L = 3, 512 hidden channels, GlowBase bases, channel split, sigmoid scale",
        "the code's, built the same way (models.image_flows)",
    ),
    (
        "data scale of the flows",
        "not stated",
        "[-1, 1] (torchvision Normalize(0.5, 0.5)), noise of unit variance",
        "the code's: flows model 2y - 1, mollified in that space",
    ),
    (
        "dequantisation",
        "not stated",
        "none (the flow fits the 256 discrete levels)",
        "uniform dequantisation (needed for bits/dim), added after the mollifier; dequantize=False is the code's",
    ),
    ("non-finite losses", "not stated", "step skipped", "step skipped and counted (the book's loop)"),
    (
        "REAL-NVP",
        "multi-scale, 4 residual blocks of 32 maps (CelebA: 2), Adam 1e-3, batch 64, 100 / 80 epochs",
        "no official code",
        "the text, with normflows' layers and RealNVP's exponential scale",
    ),
    (
        "FID",
        "50k samples, pytorch-fid",
        "50 x 1,000 samples written as PNG files, every 1,000 iterations",
        "in-memory FID of n_score samples rounded to 8 bits (same statistics as PNG files)",
    ),
)

#: The seeds of the stored results on CIFAR-10 / CelebA (and the command line's default there).
SEEDS = (1,)
#: The seeds of Table 1 in miniature on the digits (and the command line's default there).
SEEDS_DIGITS = (1, 2, 3, 4, 5)

#: Per profile, the run fields that differ from the paper's defaults (Appendix D.3.2: 200 epochs of CIFAR-10 at
#: full width, ~2.5 T4-hours per VAE run at peak).
BUDGETS: dict[str, dict[str, Any]] = {
    "full": {"snapshot_epochs": tuple(range(20, 201, 20)), "n_snapshot": 5_000},
    # 15 runs in about an hour of a T4: quarter-width nets (1/16 of the FLOPs), 10 epochs, FID of 10k samples.
    "colab": {
        "epochs": 10,
        "width": 0.25,
        "n_score": 5_000,
        "snapshot_epochs": (2, 4, 6, 8, 10),
        "n_snapshot": 1_000,
    },  # FID of 5k samples (1k per snapshot): python -m tools.chapter_times estimate
    # Table 1 in miniature on the CPU: scikit-learn's 1,437 training digits (8x8), nets sized for 8x8
    # (models.vae.SmallConvEncoder, models.image_flows.MINIATURE), the first half mollified for all seven
    # models, scored on 1,000 samples; per-family epochs and optimisers in MODEL_BUDGETS.
    "quick": {
        "dataset": "digits",
        "latent_dim": 8,
        "batch_size": 64,
        "fraction": 0.5,
        "n_score": 1_000,
        "n_snapshot": 500,
    },
}

#: Per profile and model, the run fields that differ between the models on top of :data:`BUDGETS`: the miniature
#: trains the VAEs for 60 epochs with Adam 1e-3 (the paper's 3e-4 is for 40M-parameter nets) and a decoder
#: variance of 0.1 (the digits' per-pixel variance is 0.074; with the paper's 1.0 the 8 x 8 VAEs collapse to the
#: mean digit, chapter 6), REAL-NVP for 40 epochs with Adam 1e-3 and GLOW for 40 with the official code's Adamax
#: (1e-3, weight decay 1e-5).
MODEL_BUDGETS: dict[str, dict[str, dict[str, Any]]] = {
    "full": {},
    "colab": {},
    "quick": {
        **{
            m: {"epochs": 60, "lr": 1e-3, "decoder_variance": 0.1, "snapshot_epochs": (1, 5, 15, 30, 45, 60)}
            for m in ("vae", "beta_vae", "iwae", "vae_iaf", "hvae")
        },
        "realnvp": {"epochs": 40, "lr": 1e-3, "snapshot_epochs": (1, 5, 10, 20, 30, 40)},
        "glow": {"epochs": 40, "lr": 1e-3, "weight_decay": 1e-5, "snapshot_epochs": (1, 5, 10, 20, 30, 40)},
    },
}

#: The schedule ablation of Table 2 in miniature: Gaussian mollification with each schedule (and the sigmoid's
#: temperatures of the paper's Fig. 3, 0.2 to 0.9) on one flow and one VAE; vanilla and sigmoid-0.7 come from the grid.
ABLATION = {"models": ("glow", "vae"), "schedules": ("sigmoid", "cosine", "linear"), "taus": (0.2, 0.7, 0.9)}

#: The fields that name a run (not its budget).
IDENTITY = ("model", "mode", "seed", "schedule", "tau", "variant")

_PAPER_EPOCHS = {
    "vae": {"cifar10": 200, "celeba": 100},
    "realnvp": {"cifar10": 100, "celeba": 80},
    "glow": {"cifar10": 80, "celeba": 40},
}


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
        return {
            "epochs": _PAPER_EPOCHS["vae"][data],
            "batch_size": 128,
            "lr": 3e-4,
            "optimizer": "adam",
            "weight_decay": 0.0,
            "fraction": 0.5,
        }
    if model == "realnvp":
        return {
            "epochs": _PAPER_EPOCHS["realnvp"][data],
            "batch_size": 64,
            "lr": 1e-3,
            "optimizer": "adam",
            "weight_decay": 0.0,
            "fraction": 0.5,
        }
    text = {
        "epochs": _PAPER_EPOCHS["glow"][data],
        "batch_size": 64,
        "lr": 3e-4,
        "optimizer": "adamax",
        "weight_decay": 0.0,
        "fraction": {"cifar10": 50 / 80, "celeba": 20 / 40}[data],
    }
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
        for name, value, valid in (
            ("model", self.model, MODELS),
            ("mode", self.mode, MODES),
            ("dataset", self.dataset, DATASETS),
            ("variant", self.variant, VARIANTS),
        ):
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
                raise ValueError(
                    f"mode {self.mode!r} has no noise schedule to choose (got schedule={self.schedule!r}, "
                    f"tau={self.tau!r}); schedules and tau belong to the gaussian mode"
                )
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
                raise ValueError(
                    f"decoder_variance is the VAEs' likelihood scale; the flow {self.model!r} has "
                    f"no decoder (leave it None), got {self.decoder_variance!r}"
                )
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
        return modes.mollifier(
            self.mode,
            total_steps,
            self.seed,
            experiment="images",
            fraction=self.fraction,
            schedule=self.schedule if gaussian else None,
            schedule_kwargs={"tau": self.tau} if gaussian and self.schedule == "sigmoid" else None,
            device=device,
        )


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
    """The recorded-run key of ``r``: its values of the key columns of both results files (``images.csv``'s, then
    the others of ``images_digits.csv``; :func:`~molli_utils.experiments.results.run_key`, :data:`KEY_COLUMNS`)."""
    return {**results.run_key(RESULTS, r, KEY_COLUMNS), **results.run_key(RESULTS_DIGITS, r, KEY_COLUMNS)}


def variance_cell(r: ImageRun) -> Any:
    """The ``decoder_variance`` column: the VAEs' value, empty for the flows."""
    return "" if r.decoder_variance is None else r.decoder_variance


def results_file(dataset: str) -> str:
    """``images_digits.csv`` for the digits (the miniature), ``images.csv`` otherwise."""
    return RESULTS_DIGITS if dataset == DIGITS else RESULTS


def grid(
    profile: Optional[str] = None,
    *,
    models: Optional[Sequence[str]] = None,
    modes: Sequence[str] = MODES,
    seeds: Optional[Sequence[int]] = None,
    schedules: Sequence[str] = ("sigmoid",),
    taus: Sequence[Optional[float]] = (None,),
    **fields_: Any,
) -> list[ImageRun]:
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

    return [
        from_profile(profile, model=k, mode=m, seed=seed, schedule=s, tau=t, **own(k))
        for k in models
        for m, s, t in variants
        for seed in seeds
    ]


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
            data = ImageData(
                data.name,
                data.split,
                data.images[: config.n_images],
                data.source_note,
                data.levels,
                data.labels[: config.n_images],
            )
        return data
    return load_images(config.dataset, train=train, limit=config.n_images if train else None)


def held_out_data(config: ImageRun) -> Optional[ImageData]:
    """The held-out images of ``config``'s data set (:func:`load_data` with ``train=False``), ``None`` for the photo
    patches (one split only)."""
    if config.dataset in (*IMAGE_NAMES, DIGITS):
        return load_data(config, train=False)
    return None
