r"""Normalizing flows for tabular data: the paper's UCI models, in two variants, from normflows.

:func:`tabular_flow` builds ``"maf"``, ``"realnvp"`` or ``"glow"``, each a ``normflows.NormalizingFlow``
on a fixed standard normal base, so ``log_prob(x)``, ``forward_kld(x)`` (the training loss) and
``sample(n)`` work as usual. Five blocks of 512 hidden units, in one of two variants:

``variant="official"`` -- the paper's official code (``tranbahien/data-mollification`` at commit
523d2d3, ``uci/main.py`` and ``uci/flows.py``, itself adopted from ikostrikov/pytorch-flows), layer
for layer; the paper's Table 4 numbers come from this code:

* **MAF**: 5 x [MADE -> batch norm -> reversal of the variable order] (main.py:199-205). A MADE
  (flows.py:134-179) is D -> 512 -> ReLU -> 512 -> ReLU -> 2D, i.e. **two nonlinear hidden layers**
  of ReLU units (main.py:168: ``act = 'relu'``), with the masks of flows.py:14-31 (identical to
  normflows' sequential degrees), and an **unbounded** scale, ``u = (x - m) exp(-a)``,
  ``log|det| = -sum(a)`` (flows.py:165-170).
* **REAL-NVP**: 5 x [affine coupling -> batch norm] (main.py:187-198); the coupling (flows.py:404-460)
  keeps the variables of mask ``b`` and maps the others to ``x exp(s(b x)) + t(b x)`` (data to
  latent), with separate scale and shift nets D -> 512 -> 512 -> D (**two nonlinear hidden layers**:
  tanh for the scale, ReLU for the shift, unbounded log-scale); the mask starts at ``arange(D) % 2``
  and flips every block.
* **GLOW**: 5 x [batch norm -> LU-parameterised linear map -> affine coupling] (main.py:173-186),
  the linear map of flows.py:316-361 (:class:`LUInvertibleLinear`, from a random orthogonal matrix).
* Batch norm (flows.py:208-263, :class:`BatchNormFlow` with ``statistics="full-pass"``): mini-batch
  statistics while training; the statistics used for evaluation are recomputed after every epoch
  from one pass over the whole (clean) training set (main.py:287-302;
  :func:`recompute_batchnorm_statistics`) and frozen in between.
* Initialisation (main.py:225-229): every linear layer orthogonal, biases zero.

``variant="paper-text"`` -- the paper's text (Appendix D.4: "MADE with 512 tanh units"), as the book
first built it from normflows' modules:

* **MAF**: 5 x [``nf.flows.MaskedAffineAutoregressive(dim, 512, num_blocks=1,
  use_residual_blocks=False, activation=tanh)`` -> batch norm -> reversal]. Its MADE is
  D -> 512 -> 512 -> tanh -> 2D: normflows applies no activation after the first layer, so it has
  **one nonlinear hidden layer**; the scale is bounded, ``sigmoid(. + 2) + 1e-3``.
* **REAL-NVP / GLOW**: the same nets as the official variant, but the coupling is normflows'
  ``MaskedAffineFlow`` in its own direction (data to latent ``(x - t) exp(-s)``), GLOW's linear
  map is ``nf.flows.LULinearPermute`` (identity start), batch norm keeps running averages
  (``statistics="running"``, as ``nn.BatchNorm1d``), and PyTorch's default initialisation.

What normflows lacks, and this module adds: a batch-normalisation *flow* layer
(:class:`BatchNormFlow`), the official code's LU layer (:class:`LUInvertibleLinear`) and
unbounded MADE scale (:class:`UnboundedMaskedAffineAutoregressive`), and the reversal of the
variable order (:class:`ReverseOrder`).
"""

from __future__ import annotations

import warnings
from typing import Callable, Iterable, Optional

import normflows as nf
import numpy as np
import scipy.linalg
import torch
import torch.nn.functional as F
from normflows.nets.made import MADE
from torch import nn

__all__ = [
    "FLOWS",
    "VARIANTS",
    "BatchNormFlow",
    "LUInvertibleLinear",
    "ReverseOrder",
    "UnboundedMaskedAffineAutoregressive",
    "count_parameters",
    "recompute_batchnorm_statistics",
    "tabular_flow",
]

FLOWS = ("maf", "realnvp", "glow")
#: ``official``: the paper's code (its Table 4 numbers); ``paper-text``: its Appendix D.4.
VARIANTS = ("official", "paper-text")
BATCHNORM_STATISTICS = ("running", "full-pass")


class BatchNormFlow(nf.flows.Flow):
    r"""Batch normalisation as an invertible layer (Dinh et al., 2017, Sec. 3.7).

    Data to latent (``inverse``, the density direction):
    :math:`y = e^{\log\gamma} \odot (x - \mu) / \sqrt{v + \epsilon} + \beta`, with
    :math:`\log|\det| = \sum_j \log\gamma_j - \tfrac12 \log(v_j + \epsilon)`.
    In training mode :math:`\mu, v` are the batch's mean and (biased) variance (gradients flow
    through them); in eval mode the stored statistics are used, so the layer is a fixed affine
    map (a proper density). How the stored statistics are kept, ``statistics``:

    * ``"running"``: moved by ``momentum`` towards every training batch's (as ``nn.BatchNorm1d``);
    * ``"full-pass"`` (the paper's official code): left alone by training batches and set by
      :func:`recompute_batchnorm_statistics` from one pass over the whole training set.
    """

    def __init__(self, dim: int, momentum: float = 0.1, eps: float = 1e-5, statistics: str = "running") -> None:
        super().__init__()
        if not 0.0 < momentum <= 1.0:
            raise ValueError(f"momentum must be in (0, 1], got {momentum}")
        if statistics not in BATCHNORM_STATISTICS:
            raise ValueError(
                f"unknown batch-norm statistics {statistics!r}; choose one of {list(BATCHNORM_STATISTICS)}"
            )
        self.momentum, self.eps, self.statistics = momentum, eps, statistics
        self.capture = False  # set by recompute_batchnorm_statistics: the next batch's statistics are stored
        self.log_gamma = nn.Parameter(torch.zeros(dim))
        self.beta = nn.Parameter(torch.zeros(dim))
        self.register_buffer("running_mean", torch.zeros(dim))
        self.register_buffer("running_var", torch.ones(dim))

    def _stats(self, x: Optional[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        if x is None or not self.training:
            return self.running_mean, self.running_var + self.eps
        mean, var = x.mean(0), x.var(0, unbiased=False)
        with torch.no_grad():
            if self.capture:
                self.running_mean.copy_(mean.detach())
                self.running_var.copy_(var.detach())
            elif self.statistics == "running":
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


def _batchnorm_layers(model: nn.Module) -> list[BatchNormFlow]:
    """The batch-norm flow layers of ``model`` (also those of a FlowEnsemble's member template)."""
    modules: Iterable[nn.Module] = list(model.modules()) + list(getattr(model, "template_modules", lambda: [])())
    return [m for m in modules if isinstance(m, BatchNormFlow)]


@torch.no_grad()
def recompute_batchnorm_statistics(model: nn.Module, x: torch.Tensor) -> None:
    """Set every :class:`BatchNormFlow`'s stored statistics from one pass of ``x`` (the whole training set).

    The official code's step after every epoch (uci/main.py:287-302): the model runs in training
    mode on the full training set, each batch-norm layer normalising with -- and storing -- the
    statistics of its own inputs on that set. Works for a :class:`~molli_utils.models.ensemble.FlowEnsemble`
    too (``x`` ``[M, N, D]``, one set per member). The model's train/eval mode is restored.
    """
    layers = _batchnorm_layers(model)
    if not layers:
        return
    was_training = model.training
    model.train()
    for layer in layers:
        layer.capture = True
    try:
        if type(model) is nf.NormalizingFlow:  # a subclass may compute log_prob otherwise
            _through_last_batchnorm(model, x)
        else:
            model.log_prob(x)
    finally:
        for layer in layers:
            layer.capture = False
        model.train(was_training)


def _through_last_batchnorm(model: nf.NormalizingFlow, x: torch.Tensor) -> None:
    """Run ``x`` through ``model``'s layers in the density direction (as ``log_prob`` does: each layer sees
    the same input), stopping after the last batch-norm layer: what follows cannot change any statistics
    (for GLOW, the last LU map and coupling: a fifth of the pass)."""
    last = min(i for i, f in enumerate(model.flows) if isinstance(f, BatchNormFlow))
    z = x
    for i in range(len(model.flows) - 1, last - 1, -1):
        z, _ = model.flows[i].inverse(z)


class ReverseOrder(nf.flows.Flow):
    """Reverse the order of the variables (MAF's permutation between autoregressive blocks)."""

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return z.flip(1), torch.zeros(z.shape[0], dtype=z.dtype, device=z.device)

    inverse = forward


class _ActivatedMADE(MADE):
    """normflows' MADE with the activation after its first masked layer too: D -> H -> act -> H -> act -> out.

    normflows applies the activation only inside its blocks, so ``num_blocks=1`` alone gives one
    nonlinear hidden layer; the official MADE (uci/flows.py:156-163) has two. The masks are
    normflows' sequential ones, which equal the official code's (flows.py:14-31) up to a shift of
    every degree by one.
    """

    def __init__(self, features: int, hidden: int, activation: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__(
            features, hidden, num_blocks=1, output_multiplier=2, use_residual_blocks=False, activation=activation
        )
        self.activation = activation

    def forward(self, inputs: torch.Tensor, context: Optional[torch.Tensor] = None) -> torch.Tensor:
        out = self.activation(self.initial_layer(inputs))
        for block in self.blocks:
            out = block(out)
        return self.final_layer(out)


class UnboundedMaskedAffineAutoregressive(nf.flows.MaskedAffineAutoregressive):
    """The official MAF block (uci/flows.py:134-179): in normflows' one-pass direction ``forward``,
    ``u = (x - m) exp(-a)`` with ``log|det| = -sum(a)``, an unbounded log-scale ``a``; its MADE has two
    ReLU hidden layers. Wrap it in ``nf.flows.Reverse`` so that the density costs one pass."""

    def __init__(self, features: int, hidden: int, activation: Callable[[torch.Tensor], torch.Tensor] = F.relu) -> None:
        self.features = features
        nf.flows.affine.autoregressive.Autoregressive.__init__(self, _ActivatedMADE(features, hidden, activation))

    def _elementwise_forward(self, inputs, autoregressive_params):
        log_scale, shift = self._unconstrained_scale_and_shift(autoregressive_params)
        return (inputs - shift) * torch.exp(-log_scale), -log_scale.sum(1)

    def _elementwise_inverse(self, inputs, autoregressive_params):
        log_scale, shift = self._unconstrained_scale_and_shift(autoregressive_params)
        return inputs * torch.exp(log_scale) + shift, log_scale.sum(1)


class LUInvertibleLinear(nf.flows.Flow):
    r"""The official GLOW's linear map (uci/flows.py:316-361): data to latent ``y = x W``, with

    .. math:: W = P\,(I + L \odot M_{<})\,(U \odot M_{>} + \operatorname{diag}(\operatorname{sign}(s)\, e^{\log|s|})),
              \qquad \log|\det W| = \sum_j \log|s_j|,

    where ``P L U`` is the LU decomposition of a random orthogonal matrix at construction (from
    the global torch RNG), ``P`` and the signs ``sign(s)`` are fixed, and ``L``, ``U`` and ``log|s|``
    are trained (``M_<`` and ``M_>`` are the strictly lower and upper triangular masks).
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        w = torch.empty(dim, dim)
        nn.init.orthogonal_(w)
        p, lower, upper = (torch.from_numpy(np.asarray(a, dtype=np.float32)) for a in scipy.linalg.lu(w.numpy()))
        s = torch.diagonal(upper)
        self.register_buffer("P", p)
        self.register_buffer("sign_s", torch.sign(s))
        self.register_buffer("lower_mask", torch.tril(torch.ones(dim, dim), -1))
        self.register_buffer("eye", torch.eye(dim))
        self.L = nn.Parameter(lower)
        self.U = nn.Parameter(upper)
        self.log_s = nn.Parameter(torch.log(s.abs()))

    def weight(self) -> torch.Tensor:
        lower = self.L * self.lower_mask + self.eye
        upper = self.U * self.lower_mask.T + torch.diag(self.sign_s * torch.exp(self.log_s))
        return self.P @ lower @ upper

    def inverse(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x @ self.weight(), self.log_s.sum().expand(x.shape[0])

    def forward(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return y @ torch.linalg.inv(self.weight()), (-self.log_s.sum()).expand(y.shape[0])


def _mlp(dim: int, hidden: int, activation: type[nn.Module]) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(dim, hidden), activation(), nn.Linear(hidden, hidden), activation(), nn.Linear(hidden, dim)
    )


def _coupling(dim: int, hidden: int, mask: torch.Tensor, variant: str) -> nf.flows.Flow:
    """Affine coupling: variables with ``mask == 1`` pass through and condition the others (scale net tanh,
    shift net ReLU). ``official``: data to latent ``x exp(s) + t`` (uci/flows.py:454); ``paper-text``: normflows'
    ``MaskedAffineFlow`` in its own direction, ``(x - t) exp(-s)``."""
    coupling = nf.flows.MaskedAffineFlow(mask, t=_mlp(dim, hidden, nn.ReLU), s=_mlp(dim, hidden, nn.Tanh))
    return nf.flows.Reverse(coupling) if variant == "official" else coupling


def _blocks(kind: str, dim: int, hidden: int, layers: int, variant: str) -> list[nf.flows.Flow]:
    """The flow's layers in the density direction (data to latent), as in the paper's code."""
    stats = "full-pass" if variant == "official" else "running"
    blocks: list[nf.flows.Flow] = []
    mask = (torch.arange(dim) % 2).float()
    for _ in range(layers):
        if kind == "maf" and variant == "official":
            blocks += [
                nf.flows.Reverse(UnboundedMaskedAffineAutoregressive(dim, hidden)),
                BatchNormFlow(dim, statistics=stats),
                ReverseOrder(),
            ]
        elif kind == "maf":
            made = nf.flows.MaskedAffineAutoregressive(
                dim, hidden, num_blocks=1, use_residual_blocks=False, activation=torch.tanh
            )
            blocks += [nf.flows.Reverse(made), BatchNormFlow(dim, statistics=stats), ReverseOrder()]
        elif kind == "realnvp":
            blocks += [_coupling(dim, hidden, mask, variant), BatchNormFlow(dim, statistics=stats)]
        else:  # glow
            if variant == "official":
                lu = LUInvertibleLinear(dim)
            else:
                with warnings.catch_warnings():  # normflows' LU set-up calls the deprecated torch.lu
                    warnings.simplefilter("ignore")
                    lu = nf.flows.LULinearPermute(dim)
            blocks += [BatchNormFlow(dim, statistics=stats), lu, _coupling(dim, hidden, mask, variant)]
        mask = 1.0 - mask
    return blocks


def _official_init(module: nn.Module) -> None:
    """uci/main.py:225-229: every linear layer (the MADEs' masked ones too) orthogonal, biases zero."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.orthogonal_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def tabular_flow(
    kind: str,
    dim: int,
    *,
    hidden: int = 512,
    layers: int = 5,
    variant: str = "official",
    seed: Optional[int] = None,
) -> nf.NormalizingFlow:
    """The paper's UCI flow ``kind`` (``"maf"``, ``"realnvp"``, ``"glow"``) for ``dim`` variables.

    ``variant``: ``"official"`` (the paper's code, whose numbers Table 4 reports) or ``"paper-text"``
    (its Appendix D.4); see the module docstring. ``seed``: if given, the weights are drawn from
    ``torch.manual_seed(seed)`` inside ``torch.random.fork_rng`` (the global RNG is left as it was).
    An official-variant model needs :func:`recompute_batchnorm_statistics` after every epoch
    (the UCI experiment does it) before it is evaluated.
    """
    if kind not in FLOWS:
        raise ValueError(f"unknown flow {kind!r}; choose one of {list(FLOWS)}")
    if variant not in VARIANTS:
        raise ValueError(
            f"unknown variant {variant!r}; choose one of {list(VARIANTS)} "
            "(official = the paper's code, paper-text = its Appendix D.4)"
        )
    for name, value, least in (("dim", dim, 2), ("hidden", hidden, 1), ("layers", layers, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")
    with torch.random.fork_rng(devices=[], enabled=seed is not None):
        if seed is not None:
            torch.manual_seed(seed)
        blocks = _blocks(kind, dim, hidden, layers, variant)
        # normflows lists flows from latent to data: reverse the density-direction list.
        model = nf.NormalizingFlow(nf.distributions.DiagGaussian(dim, trainable=False), blocks[::-1])
        if variant == "official":
            _official_init(model)
    return model


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
