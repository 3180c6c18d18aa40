"""Every profile of every experiment in one place, and the one map from a training mode to a mollifier.

Profiles (:data:`PROFILES`, :mod:`~molli_utils.experiments.profiles`):

* ``quick``: CI and laptops, minutes per chapter on a CPU (fewer steps, same pictures);
* ``colab``: what one free Colab session (a T4 GPU, a few hours) finishes, every chapter in
  about an hour at most;
* ``full``: the paper's settings (Appendix D), the ones behind the stored results.

An experiment's run is a frozen dataclass whose defaults are the paper's settings
(:class:`~molli_utils.experiments.toy2d.Toy2DRun`, :class:`~molli_utils.experiments.indm.INDMRun`,
:class:`~molli_utils.experiments.uci.UCIRun`, :class:`~molli_utils.experiments.images.ImageRun`);
a profile is the set of fields it changes, kept beside the dataclass in each experiment's module
(``toy2d.BUDGETS``, ...) and gathered here in :data:`BUDGETS`. ``settings.uci("quick", dataset=...,
flow=..., mode=..., seed=...)`` is one run of the UCI experiment in the quick profile, and every
chapter's settings cell reads its profile from here, never from an if/else of its own.

Modes (:data:`MODES`, :mod:`~molli_utils.experiments.modes`) name what a run trains on;
:func:`mollifier` turns a mode into the :class:`~molli_utils.mollifiers.Mollifier` of a run, with
the experiment's seeding of the noise.
"""

from __future__ import annotations

from typing import Any, Optional

from . import images as _images
from . import indm as _indm
from . import toy2d as _toy2d
from . import uci as _uci
from .modes import CONSTANT_NOISE, MODES, NOISE_SEED_OFFSET, Mode, mollifier
from .profiles import CHAPTERS, GPU_PROFILES, PROFILES, chapter, costs, matching_profile, profile, runnable_profile

__all__ = [
    "PROFILES",
    "EXPERIMENTS",
    "BUDGETS",
    "SEEDS",
    "IDENTITY",
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

#: The experiment modules, by name.
_MODULES = {"toy2d": _toy2d, "indm": _indm, "uci": _uci, "images": _images}
EXPERIMENTS = tuple(_MODULES)

#: The seeds of the stored results (and the command line's default); ``images_digits``: Table 1 in miniature.
SEEDS = {
    "toy2d": _toy2d.SEEDS,
    "indm": _indm.SEEDS,
    "uci": _uci.SEEDS,
    "images": _images.SEEDS,
    "images_digits": _images.SEEDS_DIGITS,
}

#: Per experiment and profile, the run fields that differ from the paper's defaults (each experiment's ``BUDGETS``).
BUDGETS: dict[str, dict[str, dict[str, Any]]] = {name: module.BUDGETS for name, module in _MODULES.items()}

#: Per profile and model, the image-run fields that differ between the models on top of ``BUDGETS["images"]``
#: (:data:`molli_utils.experiments.images.MODEL_BUDGETS`).
IMAGE_MODEL_BUDGETS = _images.MODEL_BUDGETS

#: The schedule ablation of Table 2 in miniature (:data:`molli_utils.experiments.images.ABLATION`).
IMAGE_ABLATION = _images.ABLATION

#: The fields that name a run (not its budget), per experiment.
IDENTITY = {name: module.IDENTITY for name, module in _MODULES.items()}


def budget(experiment: str, profile_name: Optional[str] = None) -> dict[str, Any]:
    """The run fields that ``profile_name`` (default: :func:`profile`) changes for ``experiment``; ``ValueError`` for
    an unknown experiment or profile."""
    if experiment not in BUDGETS:
        raise ValueError(f"unknown experiment {experiment!r}; choose one of {list(EXPERIMENTS)}")
    return dict(BUDGETS[experiment][profile(profile_name)])


def profile_of(experiment: str, config: Any) -> str:
    """The profile whose settings ``config`` has (``"full"``, ``"colab"`` or ``"quick"``), else ``"custom"``."""
    module = _MODULES[experiment]
    return matching_profile(config, module.from_profile, module.IDENTITY)


def toy2d(profile_name: Optional[str] = None, **fields: Any) -> _toy2d.Toy2DRun:
    """One :class:`~molli_utils.experiments.toy2d.Toy2DRun` of ``profile_name`` (``dataset``, ``mode``, ``seed`` in ``fields``)."""
    return _toy2d.from_profile(profile_name, **fields)


def indm(profile_name: Optional[str] = None, **fields: Any) -> _indm.INDMRun:
    """One :class:`~molli_utils.experiments.indm.INDMRun` of ``profile_name`` (``dataset``, ``flow``, ``seed`` in ``fields``)."""
    return _indm.from_profile(profile_name, **fields)


def uci(profile_name: Optional[str] = None, **fields: Any) -> _uci.UCIRun:
    """One :class:`~molli_utils.experiments.uci.UCIRun` of ``profile_name`` (``dataset``, ``flow``, ``mode``, ``seed``)."""
    return _uci.from_profile(profile_name, **fields)


def images(profile_name: Optional[str] = None, **fields: Any) -> _images.ImageRun:
    """One :class:`~molli_utils.experiments.images.ImageRun` of ``profile_name`` (``model``, ``mode``, ``seed``;
    the profile's fields for that model from :data:`IMAGE_MODEL_BUDGETS` on top of ``BUDGETS["images"]``)."""
    return _images.from_profile(profile_name, **fields)
