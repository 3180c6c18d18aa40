"""Noise schedules gamma(t/T) for annealed data mollification.

Every schedule maps a training step ``t`` in ``[0, T]`` to a noise level
``gamma(t/T)`` that decreases from (about) 1 at ``t = 0`` to (about) 0 at
``t = T``; the mollified data are ``sqrt(1 - gamma) x + sqrt(gamma) eps``
(paper, Sec. 3). The formulas are those of the paper's Appendix C
(Algorithm 3); the sigmoid schedule also clips to ``[clip_min, 1]`` as the
official code does. Steps past ``T`` give the value at ``T``.

All functions accept a Python number, a NumPy array or a torch tensor for
``t`` and return the same kind.
"""

from __future__ import annotations

import math
from typing import Callable, Union

import numpy as np
import torch

Number = Union[int, float]
TimeLike = Union[Number, np.ndarray, torch.Tensor]

__all__ = [
    "sigmoid_schedule",
    "cosine_schedule",
    "linear_schedule",
    "constant_schedule",
    "blur_schedule",
    "log_snr",
    "get_schedule",
    "SCHEDULES",
]


def _progress(t: TimeLike, T: Number) -> TimeLike:
    """Return ``min(t / T, 1)`` in the kind of ``t``, after validating ``t`` and ``T``."""
    if isinstance(T, bool) or not isinstance(T, (int, float, np.integer, np.floating)):
        raise ValueError(f"T must be a positive number of steps, got {T!r}")
    if not math.isfinite(float(T)) or T <= 0:
        raise ValueError(f"T must be a positive, finite number of steps (the schedule's horizon), got T={T}")
    if isinstance(t, torch.Tensor):
        u = t.to(torch.get_default_dtype()) if not t.is_floating_point() else t
        if not bool(torch.isfinite(u).all()):
            raise ValueError("t contains non-finite values (nan or inf); pass finite training steps")
        if bool((u < 0).any()):
            raise ValueError(f"t must be >= 0 (a training step), got min t={u.min().item()}")
        return torch.clamp(u / float(T), max=1.0)
    if isinstance(t, np.ndarray):
        u = np.asarray(t, dtype=np.float64)
        if not np.isfinite(u).all():
            raise ValueError("t contains non-finite values (nan or inf); pass finite training steps")
        if (u < 0).any():
            raise ValueError(f"t must be >= 0 (a training step), got min t={u.min()}")
        return np.minimum(u / float(T), 1.0)
    if isinstance(t, bool) or not isinstance(t, (int, float, np.integer, np.floating)):
        raise ValueError(f"t must be a number, a NumPy array or a torch tensor, got {type(t).__name__}")
    if not math.isfinite(float(t)):
        raise ValueError(f"t must be finite, got t={t}")
    if t < 0:
        raise ValueError(f"t must be >= 0 (a training step), got t={t}")
    return min(float(t) / float(T), 1.0)


def _ops(u: TimeLike):
    """(exp, cos, clip) functions matching the kind of ``u``."""
    if isinstance(u, torch.Tensor):
        return torch.exp, torch.cos, lambda v, lo, hi: torch.clamp(v, lo, hi)
    if isinstance(u, np.ndarray):
        return np.exp, np.cos, np.clip
    return math.exp, math.cos, lambda v, lo, hi: min(max(v, lo), hi)


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def sigmoid_schedule(
    t: TimeLike,
    T: Number,
    *,
    start: float = 0.0,
    end: float = 3.0,
    tau: float = 0.7,
    clip_min: float = 1e-9,
) -> TimeLike:
    r"""Sigmoid noise schedule (paper Eq. 3 and Appendix C; Jabri et al., 2022).

    .. math::
        \gamma(u) = \frac{\sigma(e/\tau) - \sigma((u(e - s) + s)/\tau)}{\sigma(e/\tau) - \sigma(s/\tau)},
        \qquad u = t/T,

    clipped to ``[clip_min, 1]``, with ``s = start``, ``e = end`` and the
    temperature ``tau``. With ``start=0`` a smaller ``tau`` makes the noise drop
    sooner; as ``tau`` grows the schedule approaches the linear one (paper Fig. 3).
    """
    if tau <= 0:
        raise ValueError(f"tau must be > 0, got tau={tau}")
    if end <= start:
        raise ValueError(f"end must be greater than start, got start={start}, end={end}")
    u = _progress(t, T)
    exp, _, clip = _ops(u)
    v_start, v_end = _sigmoid(start / tau), _sigmoid(end / tau)
    out = (v_end - 1.0 / (1.0 + exp(-(u * (end - start) + start) / tau))) / (v_end - v_start)
    return clip(out, clip_min, 1.0)


def cosine_schedule(t: TimeLike, T: Number, *, ns: float = 0.0002, ds: float = 0.00025) -> TimeLike:
    r"""Cosine noise schedule (Nichol & Dhariwal, 2021; paper Appendix C).

    .. math:: \gamma(u) = \cos^2\!\left(\frac{u + n_s}{1 + d_s}\,\frac{\pi}{2}\right), \qquad u = t/T.
    """
    u = _progress(t, T)
    _, cos, _ = _ops(u)
    return cos((u + ns) / (1.0 + ds) * math.pi / 2) ** 2


def linear_schedule(t: TimeLike, T: Number) -> TimeLike:
    r"""Linear noise schedule (paper Appendix C): :math:`\gamma(u) = 1 - u`, ``u = t/T``."""
    return 1.0 - _progress(t, T)


def constant_schedule(t: TimeLike, T: Number, *, level: float = 0.01) -> TimeLike:
    r"""A constant noise level, :math:`\gamma(u) = \text{level}` for all ``u = t/T``.

    Not an annealing schedule: the baseline that the paper (Sec. 2.2) says does not
    help ("a small constant amount of noise"). Pass it as ``Mollifier(schedule=...)``.
    """
    if not 0.0 <= level <= 1.0:
        raise ValueError(f"level must be a noise level in [0, 1], got {level}")
    return 0.0 * _progress(t, T) + level


def blur_schedule(
    t: TimeLike,
    T: Number,
    image_size: int,
    *,
    sigma_min: float = 0.5,
    sigma_max: float | None = None,
) -> TimeLike:
    r"""Heat-equation time for blurring mollification (paper Appendix B; Rissanen et al., 2023).

    The blur length scale is log-spaced from ``sigma_max`` (default: half the
    image width) at ``t = 0`` down to ``sigma_min = 0.5`` (sub-pixel) at ``t = T``:

    .. math::
        \sigma(u) = \exp\big((1-u)\log\sigma_{\max} + u\log\sigma_{\min}\big), \qquad
        \text{time}(u) = \sigma(u)^2 / 2 .

    Pass the returned time to :func:`molli_utils.mollifiers.blur`.
    """
    if int(image_size) < 1:
        raise ValueError(f"image_size must be a positive number of pixels, got {image_size}")
    sigma_max = image_size / 2 if sigma_max is None else sigma_max
    if not 0 < sigma_min <= sigma_max:
        raise ValueError(f"need 0 < sigma_min <= sigma_max, got sigma_min={sigma_min}, sigma_max={sigma_max}")
    u = _progress(t, T)
    exp, _, _ = _ops(u)
    log_sigma = (1.0 - u) * math.log(sigma_max) + u * math.log(sigma_min)
    return exp(2.0 * log_sigma) / 2.0


def log_snr(noise_level: TimeLike) -> TimeLike:
    r"""Log signal-to-noise ratio of the variance-preserving mollifier.

    With ``alpha^2 = 1 - gamma`` and ``sigma^2 = gamma``:
    :math:`\log\mathrm{SNR} = \log\big((1-\gamma)/\gamma\big)` (paper Sec. 3, Fig. 3).
    ``noise_level`` must lie in ``[0, 1]`` (0 gives ``+inf``, 1 gives ``-inf``); a value outside, or nan,
    raises ``ValueError``.
    """
    bad = "noise_level must lie in [0, 1] (a variance-preserving noise level), got {}"
    if isinstance(noise_level, torch.Tensor):
        if bool(((noise_level < 0) | (noise_level > 1) | torch.isnan(noise_level)).any()):
            raise ValueError(bad.format(f"values from {noise_level.min().item()} to {noise_level.max().item()}"))
        return torch.log1p(-noise_level) - torch.log(noise_level)
    if isinstance(noise_level, np.ndarray):
        if bool(((noise_level < 0) | (noise_level > 1) | np.isnan(noise_level)).any()):
            raise ValueError(bad.format(f"values from {np.min(noise_level)} to {np.max(noise_level)}"))
        with np.errstate(divide="ignore"):
            return np.log1p(-noise_level) - np.log(noise_level)
    s = float(noise_level)
    if not 0.0 <= s <= 1.0:
        raise ValueError(bad.format(noise_level))
    if s <= 0.0:
        return math.inf
    if s >= 1.0:
        return -math.inf
    return math.log1p(-s) - math.log(s)


Schedule = Callable[..., TimeLike]

SCHEDULES: dict[str, Schedule] = {
    "sigmoid": sigmoid_schedule,
    "cosine": cosine_schedule,
    "linear": linear_schedule,
}


def get_schedule(name: str | Schedule) -> Schedule:
    """Look up a noise schedule by name (``sigmoid``, ``cosine``, ``linear``); a callable passes through."""
    if callable(name):
        return name
    try:
        return SCHEDULES[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown schedule {name!r}; choose one of {sorted(SCHEDULES)} or pass a callable gamma(t, T)"
        ) from None
