"""Every profile of every experiment in one place, and the one map from a training mode to a mollifier.

Profiles (:data:`PROFILES`):

* ``quick``: CI and laptops, minutes per chapter on a CPU (fewer steps, same pictures);
* ``colab``: what one free Colab session (a T4 GPU, a few hours) finishes, every chapter in
  about an hour at most;
* ``full``: the paper's settings (Appendix D), the ones behind the stored results.

An experiment's run is a frozen dataclass whose defaults are the paper's settings
(:class:`~molli_utils.experiments.toy2d.Toy2DRun`, :class:`~molli_utils.experiments.indm.INDMRun`,
:class:`~molli_utils.experiments.uci.UCIRun`, :class:`~molli_utils.experiments.images.ImageRun`);
a profile is the set of fields it changes (:data:`BUDGETS`). ``settings.uci("quick", dataset=...,
flow=..., mode=..., seed=...)`` is one run of the UCI experiment in the quick profile, and every
chapter's settings cell reads its profile from here, never from an if/else of its own.

Modes (:data:`MODES`) name what a run trains on; :func:`mollifier` turns a mode into the
:class:`~molli_utils.mollifiers.Mollifier` of a run, with the experiment's seeding of the noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Union

import torch

from ..mollifiers import Mollifier
from ..runtime import PROFILES, get_profile
from ..schedules import constant_schedule

__all__ = [
    "PROFILES",
    "EXPERIMENTS",
    "BUDGETS",
    "SEEDS",
    "MODES",
    "Mode",
    "CONSTANT_NOISE",
    "NOISE_SEED_OFFSET",
    "profile",
    "budget",
    "profile_of",
    "GPU_PROFILES",
    "CHAPTERS",
    "chapter",
    "costs",
    "runnable_profile",
    "mollifier",
    "toy2d",
    "indm",
    "uci",
    "images",
    "IMAGE_MODEL_BUDGETS",
    "IMAGE_ABLATION",
]

EXPERIMENTS = ("toy2d", "indm", "uci", "images")

#: Noise variance of the constant-noise baseline: noise std 0.1 on data of unit scale.
CONSTANT_NOISE = 0.01


@dataclass(frozen=True)
class Mode:
    """What a training mode does: the mollifier ``kind``, the ``fraction`` of the run it covers
    (1 = all of training, 0.5 = the first half, then clean data), its noise ``schedule``, and the
    fraction of the run the schedule spans (``span``; default: ``fraction``, so that the noise is
    gone when mollification stops)."""

    kind: str
    fraction: float
    schedule: str
    description: str
    span: Optional[float] = None


#: Every training mode of the book.
MODES: dict[str, Mode] = {
    "vanilla": Mode("none", 1.0, "", "clean data throughout (Mollifier('none'))"),
    "mollification": Mode("gaussian", 1.0, "sigmoid",
                          "Gaussian, sigmoid schedule over the whole run (the paper's toy and UCI recipe)"),
    "half": Mode("gaussian", 0.5, "sigmoid", "Gaussian, sigmoid schedule over the first half of the run, then clean"),
    "clean-half": Mode("gaussian", 0.5, "sigmoid", "Gaussian, the whole run's sigmoid schedule for the first half "
                       "(noise variance down to 0.19), then clean: 'mollification's annealing, 'half's clean phase",
                       span=1.0),
    "constant": Mode("gaussian", 1.0, "constant",
                     f"Gaussian noise of fixed variance {CONSTANT_NOISE} for the whole run (the baseline of Sec. 2.2)"),
    "gaussian": Mode("gaussian", 0.5, "sigmoid", "Gaussian, sigmoid schedule over the first half (the image recipe)"),
    "blur": Mode("blur", 0.5, "sigmoid", "heat-equation blurring over the first half (the image recipe, Appendix B)"),
}  # fmt: skip

#: The noise of seed ``s`` comes from ``torch.Generator().manual_seed(NOISE_SEED_OFFSET[experiment] + s)``,
#: so that it never shares a stream with the seed's initialisation or batch order.
NOISE_SEED_OFFSET = {"toy2d": 1_000, "uci": 10_000, "images": 0}

#: The seeds of the stored results (and the command line's default); ``images_digits``: Table 1 in miniature.
SEEDS = {"toy2d": (0, 1, 2), "indm": (0, 1, 2), "uci": (1, 2, 3, 4), "images": (1,), "images_digits": (1, 2, 3, 4, 5)}

#: Per experiment and profile, the run fields that differ from the paper's defaults.
BUDGETS: dict[str, dict[str, dict[str, Any]]] = {
    # 2D toys (Appendix D.3.1): 20k steps. On Colab's CPU the four live runs take ~3 min.
    "toy2d": {
        "full": {},
        "colab": {},
        "quick": {"steps": 2_000, "n_samples": 2_000},
    },
    # INDM at the toy flows' budget; ~2 min per INDM run on one CPU thread.
    "indm": {
        "full": {},
        "colab": {},
        "quick": {"steps": 2_000, "sample_steps": 200, "n_samples": 2_000, "draws": 16},
    },
    # UCI (Appendix D.4): 150 epochs; a red-wine run is 1-2 min on one CPU thread.
    "uci": {
        "full": {},
        "colab": {},
        "quick": {"epochs": 12},
    },
    # Image VAEs (Appendix D.3.2): 200 epochs of CIFAR-10 at full width, ~2.5 T4-hours per run at peak.
    "images": {
        "full": {"snapshot_epochs": tuple(range(20, 201, 20)), "n_snapshot": 5_000},
        # 15 runs in about an hour of a T4: quarter-width nets (1/16 of the FLOPs), 10 epochs, FID of 10k samples.
        "colab": {"epochs": 10, "width": 0.25, "n_score": 5_000, "snapshot_epochs": (2, 4, 6, 8, 10),
                  "n_snapshot": 1_000},  # FID of 5k samples (1k per snapshot): python -m tools.chapter_times estimate
        # Table 1 in miniature on the CPU: scikit-learn's 1,437 training digits (8x8), nets sized for 8x8
        # (models.vae.SmallConvEncoder, models.image_flows.MINIATURE), the first half mollified for all seven
        # models, scored on 1,000 samples; per-family epochs and optimisers in IMAGE_MODEL_BUDGETS.
        "quick": {"dataset": "digits", "latent_dim": 8, "batch_size": 64, "fraction": 0.5, "n_score": 1_000,
                  "n_snapshot": 500},
    },
}  # fmt: skip


#: Per profile and model, the image-run fields that differ between the models on top of ``BUDGETS["images"]``:
#: the miniature trains the VAEs for 60 epochs with Adam 1e-3 (the paper's 3e-4 is for 40M-parameter nets) and
#: a decoder variance of 0.1 (the digits' per-pixel variance is 0.074; with the paper's 1.0 the 8 x 8 VAEs
#: collapse to the mean digit, chapter 6), REAL-NVP for 40 epochs with Adam 1e-3 and GLOW for 40 with the
#: official code's Adamax (1e-3, weight decay 1e-5).
IMAGE_MODEL_BUDGETS: dict[str, dict[str, dict[str, Any]]] = {
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
IMAGE_ABLATION = {"models": ("glow", "vae"), "schedules": ("sigmoid", "cosine", "linear"), "taus": (0.2, 0.7, 0.9)}

#: Per chapter and profile, the sizes of the chapter's own demonstrations (what is not an experiment of the paper).
CHAPTERS: dict[str, dict[str, dict[str, Any]]] = {
    "the_one_line": {
        "full": {"toy_steps": 2_000}, "colab": {"toy_steps": 2_000}, "quick": {"toy_steps": 1_000},
    },
    "why_likelihood_struggles": {
        "full": {"n_grid": 4_096, "bandwidth_min": 0.004, "n_bandwidths": 25, "n_model_samples": 4_000,
                 "flow_steps": 20_000},
        "colab": {"n_grid": 4_096, "bandwidth_min": 0.004, "n_bandwidths": 25, "n_model_samples": 4_000,
                  "flow_steps": 20_000},
        "quick": {"n_grid": 2_048, "bandwidth_min": 0.01, "n_bandwidths": 13, "n_model_samples": 1_000,
                  "flow_steps": 3_000},
    },
    "assignment1": {
        "full": {"steps": 3_000, "seeds": (0, 1, 2)}, "colab": {"steps": 3_000, "seeds": (0, 1, 2)},
        "quick": {"steps": 300, "seeds": (0, 1)},
    },
}  # fmt: skip


def costs(chapter_name: str) -> str:
    """What chapter ``chapter_name`` (e.g. ``"03_toys"``) costs in each profile, and how to switch, as one paragraph.

    Read from the stored chapter times (``chapter_times.csv``: measured by executing the chapter on a
    2-core CPU, and for the GPU chapter the T4 time estimated from FLOP counts); profiles not
    measured yet are said to be so. ``python -m tools.chapter_times`` produces the table.
    """
    from . import results

    rows = results.load("chapter_times.csv")
    rows = rows[rows["chapter"] == chapter_name]

    def minutes(profile: str, kind: str) -> str:
        hit = rows[(rows["profile"] == profile) & (rows["kind"] == kind)]
        if hit.empty:
            return "not measured yet"
        s = float(hit["seconds"].iloc[0])
        return f"{s / 60:.1f} min" if s >= 60 else f"{s:.0f} s"

    cpu = ", ".join(f"{p} {minutes(p, 'measured, this CPU')}" for p in ("quick", "colab", "full"))
    t4 = rows[rows["kind"] == "estimate, T4"]
    gpu = f"; on a Colab T4 the colab profile takes about {minutes('colab', 'estimate, T4')} (estimated from FLOP counts)" \
        if not t4.empty else ""  # fmt: skip
    return (f"This chapter takes, on a 2-core CPU: {cpu}{gpu}. The profile comes from the environment variable "
            "MOLLI_PROFILE (quick, colab or full; on Colab the default is colab): set it before running the "
            "chapter, e.g. `%env MOLLI_PROFILE=quick` in a cell above this one.")


def chapter(name: str, profile_name: Optional[str] = None) -> dict[str, Any]:
    """The sizes of chapter ``name``'s own demonstrations in ``profile_name`` (default: :func:`profile`)."""
    if name not in CHAPTERS:
        raise ValueError(f"no settings for chapter {name!r}; the chapters with settings are {list(CHAPTERS)}")
    return dict(CHAPTERS[name][profile(profile_name)])


def profile(name: Optional[str] = None) -> str:
    """The profile to run: ``name`` if given, else ``$MOLLI_PROFILE``, else ``colab`` on Colab and ``full`` elsewhere.

    An explicit ``name`` wins over the environment (``settings.uci("full", ...)`` is always the paper's).
    """
    if name is None:
        return get_profile()
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of {list(PROFILES)}")
    return name


def budget(experiment: str, profile_name: Optional[str] = None) -> dict[str, Any]:
    """The run fields that ``profile_name`` (default: :func:`profile`) changes for ``experiment``."""
    if experiment not in BUDGETS:
        raise ValueError(f"unknown experiment {experiment!r}; choose one of {list(EXPERIMENTS)}")
    return dict(BUDGETS[experiment][profile(profile_name)])


#: The profiles of an experiment that need a CUDA GPU (15 image VAEs: weeks on a CPU).
GPU_PROFILES = {"images": ("colab", "full")}


def runnable_profile(experiment: str, profile_name: Optional[str] = None, device: Union[str, torch.device] = "cpu",
                     log: Any = print) -> str:  # fmt: skip
    """``profile_name`` (default: :func:`profile`) if ``device`` can run it, else ``"quick"``, with a ``log`` line saying why."""
    name = profile(profile_name)
    if name in GPU_PROFILES.get(experiment, ()) and torch.device(device).type != "cuda":
        log(f"The {name} profile of the {experiment} experiment needs a CUDA GPU (Colab: Runtime > Change runtime "
            f"type > GPU); on {torch.device(device).type} the quick profile runs instead.")
        return "quick"
    return name


#: The fields that name a run (not its budget), per experiment.
IDENTITY = {"toy2d": ("dataset", "mode", "seed", "activation"), "indm": ("dataset", "flow", "seed"),
            "uci": ("dataset", "flow", "mode", "seed"),
            "images": ("model", "mode", "seed", "schedule", "tau", "variant")}  # fmt: skip


def profile_of(experiment: str, config: Any) -> str:
    """The profile whose settings ``config`` has (``"full"``, ``"colab"`` or ``"quick"``), else ``"custom"``."""
    build = {"toy2d": toy2d, "indm": indm, "uci": uci, "images": images}[experiment]
    names = {k: getattr(config, k) for k in IDENTITY[experiment]}
    for name in ("full", "colab", "quick"):
        if build(name, **names) == config:
            return name
    return "custom"


def mollifier(
    mode: str,
    total_steps: int,
    seed: int,
    *,
    experiment: str,
    fraction: Optional[float] = None,
    schedule: Optional[str] = None,
    schedule_kwargs: Optional[dict[str, Any]] = None,
    step_quantum: int = 1,
    device: Union[str, torch.device] = "cpu",
) -> Mollifier:
    """The :class:`~molli_utils.mollifiers.Mollifier` of a run in ``mode`` lasting ``total_steps`` steps.

    The horizon is ``int(fraction * total_steps)`` (at least 1), with the mode's fraction unless
    ``fraction`` is given; ``schedule`` (``"sigmoid"``, ``"cosine"``, ``"linear"``) and
    ``schedule_kwargs`` (e.g. ``{"tau": 0.5}``) replace the sigmoid schedule of the annealed modes
    (the ablation of Table 2); the noise level changes every ``step_quantum`` steps (the official
    UCI code: once per epoch). The Gaussian noise comes from a generator on ``device`` seeded
    with ``NOISE_SEED_OFFSET[experiment] + seed``. ``vanilla`` is ``Mollifier("none")``.
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose one of {list(MODES)}")
    if experiment not in NOISE_SEED_OFFSET:
        raise ValueError(f"experiment {experiment!r} has no mollified modes; choose one of {list(NOISE_SEED_OFFSET)}")
    spec = MODES[mode]
    if spec.kind == "none":
        return Mollifier("none")
    frac = spec.fraction if fraction is None else fraction
    if not 0.0 < frac <= 1.0:
        raise ValueError(f"fraction must lie in (0, 1] (0.5 = the first half of training), got {frac}")
    horizon = max(1, int(frac * total_steps))
    span = None if spec.span is None or spec.span == frac else max(horizon, int(spec.span * total_steps))
    gen = torch.Generator(device=torch.device(device)).manual_seed(NOISE_SEED_OFFSET[experiment] + seed)
    if spec.schedule == "constant":
        if schedule is not None:
            raise ValueError(f"mode 'constant' has no annealing schedule to replace (got schedule={schedule!r})")
        return Mollifier("gaussian", horizon=horizon, schedule=constant_schedule,
                         schedule_kwargs={"level": CONSTANT_NOISE}, generator=gen)  # fmt: skip
    return Mollifier(spec.kind, horizon=horizon, schedule=schedule or spec.schedule,
                     schedule_kwargs=dict(schedule_kwargs or {}), generator=gen, step_quantum=step_quantum,
                     schedule_horizon=span)  # fmt: skip


def toy2d(profile_name: Optional[str] = None, **fields: Any):
    """One :class:`~molli_utils.experiments.toy2d.Toy2DRun` of ``profile_name`` (``dataset``, ``mode``, ``seed`` in ``fields``)."""
    from .toy2d import Toy2DRun

    return Toy2DRun(**{**budget("toy2d", profile_name), **fields})


def indm(profile_name: Optional[str] = None, **fields: Any):
    """One :class:`~molli_utils.experiments.indm.INDMRun` of ``profile_name`` (``dataset``, ``flow``, ``seed`` in ``fields``)."""
    from .indm import INDMRun

    return INDMRun(**{**budget("indm", profile_name), **fields})


def uci(profile_name: Optional[str] = None, **fields: Any):
    """One :class:`~molli_utils.experiments.uci.UCIRun` of ``profile_name`` (``dataset``, ``flow``, ``mode``, ``seed``)."""
    from .uci import UCIRun

    return UCIRun(**{**budget("uci", profile_name), **fields})


def images(profile_name: Optional[str] = None, **fields: Any):
    """One :class:`~molli_utils.experiments.images.ImageRun` of ``profile_name`` (``model``, ``mode``, ``seed``;
    the profile's fields for that model from :data:`IMAGE_MODEL_BUDGETS` on top of ``BUDGETS["images"]``)."""
    from .images import ImageRun

    name = profile(profile_name)
    per_model = IMAGE_MODEL_BUDGETS[name].get(fields.get("model"), {})
    return ImageRun(**{**budget("images", name), **per_model, **fields})
