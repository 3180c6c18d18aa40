"""The one map from a training mode to a mollifier, shared by every experiment.

Modes (:data:`MODES`) name what a run trains on; :func:`mollifier` turns a mode into the
:class:`~molli_utils.mollifiers.Mollifier` of a run, with the experiment's seeding of the noise
(:data:`NOISE_SEED_OFFSET`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Union

import torch

from ..mollifiers import Mollifier
from ..schedules import constant_schedule

__all__ = ["Mode", "MODES", "CONSTANT_NOISE", "NOISE_SEED_OFFSET", "mollifier"]

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
    "mollification": Mode(
        "gaussian", 1.0, "sigmoid", "Gaussian, sigmoid schedule over the whole run (the paper's toy and UCI recipe)"
    ),
    "half": Mode("gaussian", 0.5, "sigmoid", "Gaussian, sigmoid schedule over the first half of the run, then clean"),
    "clean-half": Mode(
        "gaussian",
        0.5,
        "sigmoid",
        "Gaussian, the whole run's sigmoid schedule for the first half "
        "(noise variance down to 0.19), then clean: 'mollification's annealing, 'half's clean phase",
        span=1.0,
    ),
    "constant": Mode(
        "gaussian",
        1.0,
        "constant",
        f"Gaussian noise of fixed variance {CONSTANT_NOISE} for the whole run (the baseline of Sec. 2.2)",
    ),
    "gaussian": Mode("gaussian", 0.5, "sigmoid", "Gaussian, sigmoid schedule over the first half (the image recipe)"),
    "blur": Mode("blur", 0.5, "sigmoid", "heat-equation blurring over the first half (the image recipe, Appendix B)"),
}

#: The noise of seed ``s`` comes from ``torch.Generator().manual_seed(NOISE_SEED_OFFSET[experiment] + s)``,
#: so that it never shares a stream with the seed's initialisation or batch order.
NOISE_SEED_OFFSET = {"toy2d": 1_000, "uci": 10_000, "images": 0}


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

    Raises ``ValueError`` for an unknown ``mode`` or ``experiment``, a ``fraction`` outside ``(0, 1]``,
    and a ``schedule`` given to the ``constant`` mode.
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
        return Mollifier(
            "gaussian",
            horizon=horizon,
            schedule=constant_schedule,
            schedule_kwargs={"level": CONSTANT_NOISE},
            generator=gen,
        )
    return Mollifier(
        spec.kind,
        horizon=horizon,
        schedule=schedule or spec.schedule,
        schedule_kwargs=dict(schedule_kwargs or {}),
        generator=gen,
        step_quantum=step_quantum,
        schedule_horizon=span,
    )
