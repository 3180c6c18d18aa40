r"""Normalizing flows for tabular data: the paper's UCI models (Appendix D.4), from normflows.

Built with :func:`tabular_flow` (``"maf"``, ``"realnvp"`` or ``"glow"``), each a
``normflows.NormalizingFlow`` on a fixed standard normal base, so ``log_prob(x)``,
``forward_kld(x)`` (the training loss) and ``sample(n)`` work as usual.

* **MAF** (Papamakarios et al., 2017): 5 blocks of a MADE with two hidden layers of
  512 tanh units (``nf.flows.MaskedAffineAutoregressive``, wrapped in
  ``nf.flows.Reverse`` so that the *density* costs one network pass per block), then
  batch normalisation, then a reversal of the variable order.
* **REAL-NVP** (Dinh et al., 2017): 5 affine coupling layers with alternating masks
  (``nf.flows.MaskedAffineFlow``), a scale network with tanh and a shift network with
  ReLU (two hidden layers of 512 units each), batch normalisation after each coupling.
* **GLOW** (Kingma & Dhariwal, 2018), tabular version: 5 blocks of batch normalisation,
  an invertible linear map in LU form with a fixed permutation
  (``nf.flows.LULinearPermute``) and the same affine coupling.

What normflows lacks is a batch-normalisation *flow* with running statistics (its
``BatchNorm`` has neither an inverse nor running averages): :class:`BatchNormFlow`.
The layer order follows the paper's official code (which builds on
ikostrikov/pytorch-flows); its MADE uses ReLU where the paper's text says tanh --
we follow the text.
"""

from __future__ import annotations

import warnings
from typing import Optional

import normflows as nf
import torch
from torch import nn

__all__ = ["FLOWS", "BatchNormFlow", "ReverseOrder", "count_parameters", "tabular_flow"]

FLOWS = ("maf", "realnvp", "glow")


class BatchNormFlow(nf.flows.Flow):
    r"""Batch normalisation as an invertible layer (Dinh et al., 2017, Sec. 3.7).

    Data to latent (``inverse``, the density direction):
    :math:`y = e^{\log\gamma} \odot (x - \mu) / \sqrt{v + \epsilon} + \beta`, with
    :math:`\log|\det| = \sum_j \log\gamma_j - \tfrac12 \log(v_j + \epsilon)`.
    In training mode :math:`\mu, v` are the batch's mean and (biased) variance, and
    the running averages move by ``momentum`` towards them; in eval mode the running
    averages are used, so the layer is a fixed affine map (a proper density).
    """

    def __init__(self, dim: int, momentum: float = 0.1, eps: float = 1e-5) -> None:
        super().__init__()
        if not 0.0 < momentum <= 1.0:
            raise ValueError(f"momentum must be in (0, 1], got {momentum}")
        self.momentum, self.eps = momentum, eps
        self.log_gamma = nn.Parameter(torch.zeros(dim))
        self.beta = nn.Parameter(torch.zeros(dim))
        self.register_buffer("running_mean", torch.zeros(dim))
        self.register_buffer("running_var", torch.ones(dim))

    def _stats(self, x: Optional[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        if x is None or not self.training:
            return self.running_mean, self.running_var + self.eps
        mean, var = x.mean(0), x.var(0, unbiased=False)
        with torch.no_grad():
            self.running_mean.lerp_(mean.detach(), self.momentum)
            self.running_var.lerp_(var.detach(), self.momentum)
        return mean, var + self.eps

    def inverse(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, var = self._stats(x)
        y = (x - mean) * torch.rsqrt(var) * self.log_gamma.exp() + self.beta
        log_det = (self.log_gamma - 0.5 * var.log()).sum()
        return y, log_det.expand(x.shape[0])

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, var = self._stats(None)
        x = (z - self.beta) * (-self.log_gamma).exp() * var.sqrt() + mean
        log_det = (0.5 * var.log() - self.log_gamma).sum()
        return x, log_det.expand(z.shape[0])


class ReverseOrder(nf.flows.Flow):
    """Reverse the order of the variables (MAF's permutation between autoregressive blocks)."""

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return z.flip(1), torch.zeros(z.shape[0], dtype=z.dtype, device=z.device)

    inverse = forward


def _mlp(dim: int, hidden: int, activation: type[nn.Module]) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim, hidden), activation(), nn.Linear(hidden, hidden), activation(),
                         nn.Linear(hidden, dim))  # fmt: skip


def _coupling(dim: int, hidden: int, mask: torch.Tensor) -> nf.flows.MaskedAffineFlow:
    """Affine coupling: variables with ``mask == 1`` pass through and condition the others."""
    return nf.flows.MaskedAffineFlow(mask, t=_mlp(dim, hidden, nn.ReLU), s=_mlp(dim, hidden, nn.Tanh))


def _blocks(kind: str, dim: int, hidden: int, layers: int) -> list[nf.flows.Flow]:
    """The flow's layers in the density direction (data to latent), as in the paper's code."""
    blocks: list[nf.flows.Flow] = []
    mask = (torch.arange(dim) % 2).float()
    for _ in range(layers):
        if kind == "maf":
            made = nf.flows.MaskedAffineAutoregressive(
                dim, hidden, num_blocks=1, use_residual_blocks=False, activation=torch.tanh
            )
            blocks += [nf.flows.Reverse(made), BatchNormFlow(dim), ReverseOrder()]
        elif kind == "realnvp":
            blocks += [_coupling(dim, hidden, mask), BatchNormFlow(dim)]
        else:  # glow
            with warnings.catch_warnings():  # normflows' LU set-up calls the deprecated torch.lu
                warnings.simplefilter("ignore")
                lu = nf.flows.LULinearPermute(dim)
            blocks += [BatchNormFlow(dim), lu, _coupling(dim, hidden, mask)]
        mask = 1.0 - mask
    return blocks


def tabular_flow(
    kind: str, dim: int, *, hidden: int = 512, layers: int = 5, seed: Optional[int] = None
) -> nf.NormalizingFlow:
    """The paper's UCI flow ``kind`` (``"maf"``, ``"realnvp"``, ``"glow"``) for ``dim`` variables.

    ``seed``: if given, the weights are drawn from ``torch.manual_seed(seed)`` inside
    ``torch.random.fork_rng`` (the global RNG is left as it was).
    """
    if kind not in FLOWS:
        raise ValueError(f"unknown flow {kind!r}; choose one of {list(FLOWS)}")
    for name, value, least in (("dim", dim, 2), ("hidden", hidden, 1), ("layers", layers, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")
    with torch.random.fork_rng(devices=[], enabled=seed is not None):
        if seed is not None:
            torch.manual_seed(seed)
        blocks = _blocks(kind, dim, hidden, layers)
    # normflows lists flows from latent to data: reverse the density-direction list.
    return nf.NormalizingFlow(nf.distributions.DiagGaussian(dim, trainable=False), blocks[::-1])


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)

