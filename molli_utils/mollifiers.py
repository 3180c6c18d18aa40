"""Data mollifiers: Gaussian noise and heat-equation blurring.

The one line of the paper (Algorithm 1): at training step ``t`` replace the
batch ``x`` by a mollified copy. :class:`Mollifier` bundles the kind of
mollification, its schedule and its horizon so that a training loop reads::

    x = mollifier(x, step)

What a training loop may rely on is written down once, in :class:`MollifierLike`:
the call, the noise level at a step (for logs), and the state of its random
generator (for checkpoints that resume bitwise). Both trainers of the book (the
loop of :mod:`molli_utils.training` and the pythae trainer of
:mod:`molli_utils.training.vae`) use exactly these four methods.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Optional, Protocol, Union, runtime_checkable

import torch

from .schedules import Schedule, blur_schedule, get_schedule

__all__ = ["gaussian", "blur", "dct_matrix", "Mollifier", "MollifierLike", "MOLLIFIER_KINDS"]

MOLLIFIER_KINDS = ("gaussian", "blur", "none")

LevelLike = Union[float, torch.Tensor]


def _check_tensor(x: torch.Tensor, what: str = "x") -> None:
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{what} must be a torch.Tensor, got {type(x).__name__}; wrap it with torch.as_tensor")
    if not x.is_floating_point():
        raise ValueError(
            f"{what} must be a floating-point tensor, got dtype {x.dtype}; convert it first, e.g. x.float() / 255"
        )
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{what} contains non-finite values (nan or inf); clean the data before mollifying it")


def _as_level(value: LevelLike, x: torch.Tensor, name: str, lo: float, hi: float) -> Union[float, torch.Tensor]:
    """``value`` validated to be finite and in [lo, hi]: a float stays a float, else a tensor on x's device."""
    if not isinstance(value, torch.Tensor):
        level = float(value)
        if not (math.isfinite(level) and lo <= level <= hi):
            raise ValueError(f"{name} must be finite and lie in [{lo}, {hi}], got {value}")
        return level
    level = value.to(dtype=x.dtype, device=x.device)
    if not bool(torch.isfinite(level).all()):
        raise ValueError(f"{name} must be finite, got {value}")
    if bool((level < lo).any()) or bool((level > hi).any()):
        raise ValueError(f"{name} must lie in [{lo}, {hi}], got {value}")
    return level


def gaussian(x: torch.Tensor, noise_level: LevelLike, generator: torch.Generator | None = None) -> torch.Tensor:
    r"""Variance-preserving Gaussian mollification (paper Eq. 2, Algorithm 1).

    .. math:: \tilde x = \sqrt{1 - s}\,x + \sqrt{s}\,\varepsilon, \qquad \varepsilon \sim \mathcal N(0, I),

    with noise level ``s = noise_level`` in ``[0, 1]`` (a number, or a tensor
    broadcastable to ``x``, e.g. of shape ``[B, 1, ...]`` for one level per
    sample). Keeps ``x``'s dtype and device; ``generator`` makes the noise
    reproducible.
    """
    _check_tensor(x)
    s = _as_level(noise_level, x, "noise_level", 0.0, 1.0)
    eps = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    if isinstance(s, float):
        return math.sqrt(1.0 - s) * x + math.sqrt(s) * eps
    return torch.sqrt(1.0 - s) * x + torch.sqrt(s) * eps


def dct_matrix(n: int, *, dtype: torch.dtype = torch.float64, device: torch.device | str | None = None) -> torch.Tensor:
    r"""Orthonormal DCT-II matrix ``C`` (``n x n``), so that ``C @ v`` equals ``scipy.fft.dct(v, norm='ortho')``.

    .. math:: C_{kj} = \sqrt{2/n}\, c_k \cos\!\big(\pi k (2j + 1) / (2n)\big), \quad c_0 = 1/\sqrt 2,\ c_{k>0} = 1.

    Its inverse (the orthonormal DCT-III) is ``C.T``.
    """
    k = torch.arange(n, dtype=torch.float64).unsqueeze(1)
    j = torch.arange(n, dtype=torch.float64).unsqueeze(0)
    c = math.sqrt(2.0 / n) * torch.cos(math.pi * k * (2 * j + 1) / (2 * n))
    c[0] /= math.sqrt(2.0)
    return c.to(dtype=dtype, device=device)


def blur(x: torch.Tensor, t: LevelLike) -> torch.Tensor:
    r"""Heat-equation blur over the last two dimensions (paper Appendix B, Algorithm 2).

    Solves :math:`\partial_t \tilde x = \Delta \tilde x` for time ``t`` with
    Neumann boundaries, in the orthonormal DCT basis:

    .. math:: \tilde x_t = V\, e^{-\Lambda t}\, V^\top x, \qquad
              \Lambda_{kl} = (\pi k / H)^2 + (\pi l / W)^2,

    for ``x`` of shape ``[..., H, W]`` (square or not). ``t`` is a number, or a
    1-D tensor of length ``x.shape[0]`` (one time per sample of a batch). ``t = 0``
    returns ``x``; large ``t`` tends to the per-image mean. Written with
    matrix products, so it runs on any device; use
    :func:`molli_utils.schedules.blur_schedule` for the paper's schedule.
    """
    if isinstance(x, torch.Tensor) and x.ndim < 2:
        raise ValueError(
            f"blur needs an image with at least 2 dims [..., H, W], got shape {tuple(x.shape)}; "
            "add dims with x.view(1, -1) or use the Gaussian mollifier for vectors"
        )
    _check_tensor(x)
    time = _as_level(t, x, "t (blur time)", 0.0, math.inf)
    if isinstance(time, torch.Tensor) and time.ndim > 0:
        if time.ndim != 1 or x.ndim < 3 or time.shape[0] != x.shape[0]:
            raise ValueError(
                f"t must be a number or a 1-D tensor with one time per sample (length {x.shape[0]} "
                f"for x of shape {tuple(x.shape)}), got shape {tuple(time.shape)}"
            )
        time = time.reshape(-1, *([1] * (x.ndim - 1)))
    h, w = x.shape[-2], x.shape[-1]
    c_h = dct_matrix(h, dtype=x.dtype, device=x.device)
    c_w = dct_matrix(w, dtype=x.dtype, device=x.device)
    freq_h = math.pi * torch.arange(h, dtype=x.dtype, device=x.device) / h
    freq_w = math.pi * torch.arange(w, dtype=x.dtype, device=x.device) / w
    lam = freq_h[:, None] ** 2 + freq_w[None, :] ** 2
    coeffs = c_h @ x @ c_w.T
    return c_h.T @ (torch.exp(-lam * time) * coeffs) @ c_w


@runtime_checkable
class MollifierLike(Protocol):
    """The mollifier contract of the book's trainers.

    * ``mollifier(x, step)``: the batch of 0-based training ``step``, mollified (or ``x`` itself);
    * ``noise_level(step)``: the Gaussian noise level at ``step`` (0 when not mollifying), for logs;
    * ``state_dict()`` / ``load_state_dict(state)``: the state of its random generator (``{}``
      for a deterministic mollifier), saved in checkpoints so that a resumed run draws the
      same noise as an uninterrupted one.

    :class:`Mollifier` implements it; ``Mollifier("none")`` is vanilla training.
    """

    def __call__(self, x: torch.Tensor, step: int) -> torch.Tensor: ...

    def noise_level(self, step: int) -> float: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@dataclass
class Mollifier:
    """Annealed data mollification as one callable: ``x = mollifier(x, step)``.

    Parameters
    ----------
    kind:
        ``"gaussian"`` (noise, paper Sec. 3), ``"blur"`` (heat equation,
        Appendix B) or ``"none"`` (vanilla training: returns ``x`` itself).
    horizon:
        Number of steps ``T`` over which the data are mollified; required for ``"gaussian"`` and
        ``"blur"`` (there is no sensible default: with ``T = 1`` only the first batch would be
        mollified, vanilla training in effect), ignored for ``"none"``. For
        ``step < horizon`` the noise level is ``schedule(step, horizon)``; from
        ``step >= horizon`` on, ``x`` is returned unchanged (the paper
        mollifies the first half of image training and all of UCI training).
    schedule:
        Noise schedule for ``"gaussian"``: a name from
        :data:`molli_utils.schedules.SCHEDULES` or a callable ``gamma(t, T)``.
        Blurring always follows :func:`~molli_utils.schedules.blur_schedule`.
    schedule_kwargs:
        Extra keyword arguments for the schedule (e.g. ``{"tau": 0.5}``).
    generator:
        Optional ``torch.Generator`` for reproducible Gaussian noise.
    step_quantum:
        The noise level changes every ``step_quantum`` steps (default 1: every step):
        ``gamma(step - step % step_quantum, horizon)``. The paper's official UCI code changes
        it once per epoch (``step_quantum`` = batches per epoch).
    schedule_horizon:
        The ``T`` of the schedule, ``gamma(step / T)`` (default: ``horizon``). A larger value
        anneals more slowly and stops, at ``horizon``, before the noise is gone: e.g. the
        schedule of the whole run cut off halfway, then clean data.
    """

    kind: str = "gaussian"
    horizon: Optional[int] = None
    schedule: Union[str, Schedule] = "sigmoid"
    schedule_kwargs: dict[str, Any] = field(default_factory=dict)
    generator: torch.Generator | None = None
    step_quantum: int = 1
    schedule_horizon: Optional[int] = None

    def __post_init__(self) -> None:
        if self.kind not in MOLLIFIER_KINDS:
            raise ValueError(f"unknown mollifier kind {self.kind!r}; choose one of {list(MOLLIFIER_KINDS)}")
        if self.horizon is None:
            if self.kind != "none":
                raise ValueError(
                    f"Mollifier({self.kind!r}) needs horizon=T, the number of steps over which the data "
                    "are mollified: e.g. Mollifier('gaussian', horizon=total_steps) (the paper's UCI and "
                    "toy recipe) or horizon=total_steps // 2 (its image recipe)"
                )
            self.horizon = 1  # vanilla: never mollifies (1 keeps the fingerprints of earlier checkpoints)
        if isinstance(self.horizon, bool) or not isinstance(self.horizon, int) or self.horizon <= 0:
            raise ValueError(
                f"horizon must be a positive integer number of steps, got {self.horizon!r} "
                "(e.g. the total number of steps, or half of it for 'first half of training')"
            )
        if isinstance(self.step_quantum, bool) or not isinstance(self.step_quantum, int) or self.step_quantum <= 0:
            raise ValueError(
                f"step_quantum must be a positive integer number of steps (e.g. batches per epoch), "
                f"got {self.step_quantum!r}"
            )
        if self.schedule_horizon is not None and (
            isinstance(self.schedule_horizon, bool)
            or not isinstance(self.schedule_horizon, int)
            or self.schedule_horizon < self.horizon
        ):
            raise ValueError(
                f"schedule_horizon must be None or an integer >= horizon ({self.horizon}), "
                f"got {self.schedule_horizon!r}"
            )
        self._gamma = get_schedule(self.schedule)

    def active(self, step: int) -> bool:
        """Whether ``step`` is mollified (``kind != 'none'`` and ``0 <= step < horizon``)."""
        if step < 0:
            raise ValueError(f"step must be >= 0, got step={step}")
        return self.kind != "none" and step < self.horizon

    def noise_level(self, step: int) -> float:
        """Gaussian noise level ``gamma(step / horizon)`` (at the start of the step's quantum); 0 once mollification has ended."""
        if not self.active(step):
            return 0.0
        span = self.horizon if self.schedule_horizon is None else self.schedule_horizon
        return float(self._gamma(step - step % self.step_quantum, span, **self.schedule_kwargs))

    def blur_time(self, step: int, image_size: int) -> float:
        """Heat-equation time of the blur at ``step`` for images ``image_size`` pixels wide."""
        if not self.active(step):
            return 0.0
        return float(blur_schedule(step, self.horizon, image_size))

    def state_dict(self) -> dict[str, Optional[torch.Tensor]]:
        """``{"generator": state}``: the noise generator's state (``None`` without a generator)."""
        return {"generator": None if self.generator is None else self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Optional[torch.Tensor]]) -> None:
        """Restore the generator state saved by :meth:`state_dict` (a checkpoint of the same run)."""
        saved = state.get("generator")
        if (saved is None) != (self.generator is None):
            raise ValueError(
                "the saved mollifier state and this mollifier differ in having a noise generator; "
                "resume with the mollifier of the run that wrote the checkpoint"
            )
        if saved is not None:
            self.generator.set_state(saved)

    def __call__(self, x: torch.Tensor, step: int) -> torch.Tensor:
        if not self.active(step):
            return x
        if self.kind == "gaussian":
            return gaussian(x, self.noise_level(step), generator=self.generator)
        if isinstance(x, torch.Tensor) and x.ndim < 3:
            raise ValueError(
                f"Mollifier('blur') blurs a batch of images [B, (C,) H, W], got shape {tuple(x.shape)}: "
                "points or vectors have no pixels to blur; use Mollifier('gaussian', horizon=...) for "
                "them"
            )
        return blur(x, self.blur_time(step, x.shape[-1]))
