"""The paper's two 2D toy data sets (Tran et al., 2023, Sec. 4.1 and Appendix D.1).

* :class:`MixtureOfGaussians` -- two equally weighted Gaussians with means
  :math:`(2\\sin(\\pi k), 2\\cos(\\pi k))`, :math:`k = 1, 2`, and covariance
  :math:`\\sigma^2 I`, :math:`\\sigma = \\tfrac23 \\sin(\\pi/2) = 2/3`. Numerically the
  means are :math:`(0, -2)` and :math:`(0, 2)`; we store these exact values rather
  than ``2 * sin(pi)`` (which is ``2.4e-16`` in floating point, not 0).
  It has a density and a score in :math:`\\mathbb R^2`.
* :class:`VonMisesCircle` -- an angle :math:`\\theta \\sim \\mathrm{vM}(\\mu=0, \\kappa=1)`
  mapped onto the unit circle, :math:`x = (\\cos\\theta, \\sin\\theta)`. The data lie on a
  1D manifold of :math:`\\mathbb R^2`: they have a density with respect to *arc length*,
  :math:`p(\\theta) = e^{\\kappa\\cos(\\theta-\\mu)} / (2\\pi I_0(\\kappa))`, but no density and
  no score in :math:`\\mathbb R^2` (the point of the experiment: manifold overfitting).

Every data set has ``sample(n, seed)`` (``seed``: an int, a ``torch.Generator`` or
``None`` for the global torch RNG; same seed -> bitwise the same tensor),
``log_prob(x)`` and ``score(x)``. :func:`load_toy2d` returns seeded train/test splits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Union

import numpy as np
import torch

__all__ = [
    "MixtureOfGaussians",
    "VonMisesCircle",
    "TOY2D",
    "get_toy2d",
    "load_toy2d",
    "make_generator",
]

SeedLike = Union[int, torch.Generator, None]


def make_generator(seed: SeedLike) -> Optional[torch.Generator]:
    """A CPU ``torch.Generator`` seeded with ``seed``; a generator passes through; ``None`` stays ``None`` (global RNG)."""
    if seed is None or isinstance(seed, torch.Generator):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, a torch.Generator or None, got {seed!r}")
    return torch.Generator().manual_seed(int(seed))


def _check_n(n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be an integer >= 0 (a number of samples), got {n!r}")
    return int(n)


def _check_points(x: torch.Tensor) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.ndim < 1 or x.shape[-1] != 2:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x must be a floating-point tensor of 2D points, shape [..., 2], got {shape}")
    return x


@dataclass(frozen=True)
class MixtureOfGaussians:
    r"""Equal-weight mixture of two isotropic Gaussians (paper Appendix D.1).

    .. math:: p(x) = \tfrac12 \sum_{k=1}^{2} \mathcal N(x;\, m_k,\, \sigma^2 I), \qquad
              m_1 = (0, -2),\ m_2 = (0, 2),\ \sigma = 2/3.
    """

    means: tuple[tuple[float, float], ...] = ((0.0, -2.0), (0.0, 2.0))
    sigma: float = 2.0 / 3.0
    name: str = "mixture_of_gaussians"

    def _means(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tensor(self.means, dtype=x.dtype, device=x.device)  # [K, 2]

    def sample(self, n: int, seed: SeedLike = None) -> torch.Tensor:
        """``n`` points ``[n, 2]``: a uniform component index, then ``m_k + sigma * eps``."""
        n, gen = _check_n(n), make_generator(seed)
        k = torch.randint(len(self.means), (n,), generator=gen)
        eps = torch.randn(n, 2, generator=gen)
        return torch.tensor(self.means, dtype=eps.dtype)[k] + self.sigma * eps

    def _component_log_probs(self, x: torch.Tensor) -> torch.Tensor:
        """``log(1/K) + log N(x; m_k, sigma^2 I)`` for every component: ``[..., K]``."""
        d2 = ((x.unsqueeze(-2) - self._means(x)) ** 2).sum(-1)
        log_norm = -math.log(2 * math.pi * self.sigma**2) - math.log(len(self.means))
        return log_norm - d2 / (2 * self.sigma**2)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Exact log density in R^2, ``logsumexp_k [log(1/2) + log N(x; m_k, sigma^2 I)]``: shape ``x.shape[:-1]``."""
        return torch.logsumexp(self._component_log_probs(_check_points(x)), dim=-1)

    def score(self, x: torch.Tensor) -> torch.Tensor:
        r"""Exact score :math:`\nabla_x \log p(x) = \sum_k r_k(x)\,(m_k - x)/\sigma^2`, with
        responsibilities :math:`r_k = \mathrm{softmax}_k(\log \mathcal N(x; m_k, \sigma^2 I))`. Shape of ``x``."""
        r = torch.softmax(self._component_log_probs(_check_points(x)), dim=-1)  # [..., K]
        return (r.unsqueeze(-1) * (self._means(x) - x.unsqueeze(-2))).sum(-2) / self.sigma**2


@dataclass(frozen=True)
class VonMisesCircle:
    r"""Von Mises angles on the unit circle (paper Appendix D.1): :math:`x = (\cos\theta, \sin\theta)`,
    :math:`\theta \sim \mathrm{vM}(\mu, \kappa)` with :math:`\mu = 0,\ \kappa = 1`.

    The distribution is supported on a 1D manifold: :meth:`log_prob` is the log
    density **with respect to arc length on the circle** (of the angle of ``x``),
    not a density in R^2, which does not exist. For the same reason :meth:`score`
    raises; :meth:`angular_score` gives the derivative along the circle.
    """

    kappa: float = 1.0
    mu: float = 0.0
    name: str = "von_mises"

    def sample_angles(self, n: int, seed: SeedLike = None) -> torch.Tensor:
        """``n`` angles in ``[-pi, pi)``, exact rejection sampler of Best & Fisher (1979), in float64."""
        n, gen = _check_n(n), make_generator(seed)
        tau = 1.0 + math.sqrt(1.0 + 4.0 * self.kappa**2)
        rho = (tau - math.sqrt(2.0 * tau)) / (2.0 * self.kappa)
        r = (1.0 + rho**2) / (2.0 * rho)
        out, filled = torch.empty(n, dtype=torch.float64), 0
        while filled < n:
            u1, u2, u3 = torch.rand(3, max(n - filled, 16) + 16, dtype=torch.float64, generator=gen)
            z = torch.cos(math.pi * u1)
            f = (1.0 + r * z) / (r + z)
            c = self.kappa * (r - f)
            accept = (c * (2.0 - c) > u2) | (torch.log(c / u2) + 1.0 - c >= 0.0)
            theta = torch.sign(u3 - 0.5) * torch.acos(f.clamp(-1.0, 1.0))
            theta = theta[accept][: n - filled]
            out[filled : filled + len(theta)] = theta
            filled += len(theta)
        return torch.remainder(out + self.mu + math.pi, 2 * math.pi) - math.pi

    def sample(self, n: int, seed: SeedLike = None) -> torch.Tensor:
        """``n`` points ``[n, 2]`` on the unit circle, ``(cos theta, sin theta)``."""
        theta = self.sample_angles(n, seed)
        return torch.stack([torch.cos(theta), torch.sin(theta)], dim=-1).to(torch.get_default_dtype())

    @staticmethod
    def angle(x: torch.Tensor) -> torch.Tensor:
        """The angle ``atan2(x_2, x_1)`` in ``(-pi, pi]`` of points ``[..., 2]`` (their projection onto the circle)."""
        x = _check_points(x)
        return torch.atan2(x[..., 1], x[..., 0])

    def log_prob_angle(self, theta: torch.Tensor) -> torch.Tensor:
        r""":math:`\log p(\theta) = \kappa\cos(\theta-\mu) - \log(2\pi I_0(\kappa))` (density in the angle)."""
        log_i0 = math.log(float(torch.special.i0e(torch.tensor(self.kappa, dtype=torch.float64)))) + self.kappa
        return self.kappa * torch.cos(theta - self.mu) - (math.log(2 * math.pi) + log_i0)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Log density **w.r.t. arc length on the unit circle** at the angle of ``x``; shape ``x.shape[:-1]``.

        Integrates to 1 over the angle, not over R^2. The radius of ``x`` is ignored.
        """
        return self.log_prob_angle(self.angle(x))

    def angular_score(self, x: torch.Tensor) -> torch.Tensor:
        r"""Score along the circle, :math:`\partial_\theta \log p = -\kappa \sin(\theta - \mu)`; shape ``x.shape[:-1]``."""
        return -self.kappa * torch.sin(self.angle(x) - self.mu)

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """Not defined: the data lie on a circle, so there is no density (and no score) in R^2."""
        raise NotImplementedError(
            "the von Mises toy lies on the unit circle (a 1D manifold): it has no density and no score "
            "in R^2. Use angular_score(x) for d/dtheta log p along the circle, or compare densities "
            "along the circle with log_prob (w.r.t. arc length)."
        )


Toy2D = Union[MixtureOfGaussians, VonMisesCircle]

#: The paper's toy data sets by name.
TOY2D: dict[str, Toy2D] = {
    "mixture_of_gaussians": MixtureOfGaussians(),
    "von_mises": VonMisesCircle(),
}


def get_toy2d(name: str) -> Toy2D:
    """The toy data set called ``name`` (a key of :data:`TOY2D`)."""
    try:
        return TOY2D[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown 2D toy data set {name!r}; choose one of {sorted(TOY2D)}") from None


def _split_seeds(seed: int) -> tuple[int, int]:
    """Two independent 64-bit seeds (train, test) derived from ``seed`` with NumPy's ``SeedSequence``."""
    children = np.random.SeedSequence(seed).spawn(2)
    return tuple(int(c.generate_state(1, dtype=np.uint64)[0]) for c in children)


def load_toy2d(
    name: str, n_train: int = 10_000, n_test: int = 10_000, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Train and test samples ``([n_train, 2], [n_test, 2])`` of toy ``name`` (paper: 10k and 10k).

    The two sets come from independent random streams derived from ``seed``
    (``numpy.random.SeedSequence(seed).spawn(2)``): the test set does not depend
    on ``n_train``, and the same arguments always give the same tensors.
    """
    data = get_toy2d(name)
    n_train, n_test = _check_n(n_train), _check_n(n_test)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    train_seed, test_seed = _split_seeds(int(seed))
    train_gen, test_gen = (torch.Generator().manual_seed(s) for s in (train_seed, test_seed))
    return data.sample(n_train, train_gen), data.sample(n_test, test_gen)
