"""Image VAEs of the paper (Sec. 4.2, Appendix D.3.2), built with pythae.

* :class:`ConvEncoder` / :class:`ConvDecoder`: the conv nets of the paper's Table 5
  (the same as pythae's CIFAR / CelebA benchmark nets) for ``3 x 32 x 32`` and
  ``3 x 64 x 64`` images, with a ``width`` multiplier on the channels (1.0 = the
  paper's 128/256/512/1024; CPU quick runs use e.g. 1/16).
* :class:`SmallConvEncoder` / :class:`SmallConvDecoder`: the same design scaled to
  ``C x 8 x 8`` images (two strided convolutions of 16 and 32 channels times ``width``),
  for Table 1 in miniature on scikit-learn's 8 x 8 digits; Table 5's nets need 32 or 64 pixels.
* :func:`make_vae`: VAE, beta-VAE (beta = 0.1), IWAE (K = 5), VAE-IAF (2 MADE blocks
  of 3 hidden layers of 128 units) and HVAE (1 leapfrog step, step size 1e-3,
  learned) through pythae's own config classes; 8 x 8 inputs get the small nets.
* The decoder's likelihood scale (:data:`PAPER_DECODER_VARIANCE`, :func:`check_decoder_variance`):
  ``make_vae(..., decoder_variance=s2)`` makes the reconstruction term the negative log-density
  of ``N(x; x_hat, s2 I)``.

The likelihood. pythae's ``reconstruction_loss="mse"`` (all five models, pythae 0.1.2) is
``0.5 * ||x - x_hat||^2`` summed over the pixels: the negative log-density of a Gaussian
``N(x; x_hat, I)`` without its constant ``(D / 2) log(2 pi)``. With ``decoder_variance`` ``s2``
the term is ``||x - x_hat||^2 / (2 s2)`` (the constant ``(D / 2) log(2 pi s2)`` left out as
pythae leaves it out), in *every* place pythae uses it: the VAE's and beta-VAE's loss (beta
multiplies the KL only), IWAE's log importance weights ``log w_k = -(rec_k + log q - log p)``
(so the weights and the bound change, not only the scale of the loss), VAE-IAF's loss, and
HVAE's ``log p(x | z)``, which enters both its leapfrog gradient ``dU/dz`` and its objective.
It is implemented by handing pythae's own code ``x_hat / s`` and ``x / s`` (``s = sqrt(s2)``),
which turns ``0.5 * ||x - x_hat||^2`` into ``||x - x_hat||^2 / (2 s2)`` and leaves the rest of
each objective pythae's. ``decoder_variance = 1`` (the default, :data:`PAPER_DECODER_VARIANCE`)
calls pythae's code unchanged: the paper's CIFAR-10 / CelebA recipe as pythae runs it.

Images are in ``[0, 1]`` and the decoders end in a sigmoid. Training with mollification
is :class:`molli_utils.training.vae.MollifiedTrainer`.
"""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence

import torch
from torch import nn

from pythae.models import (
    HVAE,
    IWAE,
    VAE,
    VAE_IAF,
    BetaVAE,
    BetaVAEConfig,
    HVAEConfig,
    IWAEConfig,
    VAE_IAF_Config,
    VAEConfig,
)
from pythae.models.base.base_utils import ModelOutput
from pythae.models.nn import BaseDecoder, BaseEncoder

__all__ = [
    "VAE_KINDS",
    "PAPER_DECODER_VARIANCE",
    "check_decoder_variance",
    "PAPER_CHANNELS",
    "SMALL_CHANNELS",
    "ConvEncoder",
    "ConvDecoder",
    "SmallConvEncoder",
    "SmallConvDecoder",
    "make_vae",
    "sample_images",
]

#: VAE variants of the paper's Table 3, as :func:`make_vae` names them.
VAE_KINDS = ("vae", "beta_vae", "iwae", "vae_iaf", "hvae")
#: Channels of the four conv layers of Table 5 at ``width=1``.
PAPER_CHANNELS = (128, 256, 512, 1024)
#: Channels of the two conv layers of the 8 x 8 nets at ``width=1``.
SMALL_CHANNELS = (16, 32)
#: The decoder variance of pythae's ``reconstruction_loss="mse"`` (a unit-variance Gaussian): the paper's.
PAPER_DECODER_VARIANCE = 1.0
_SIZES = (32, 64)
_SMALL = 8


def _channels(width: float, base: Sequence[int] = PAPER_CHANNELS) -> list[int]:
    """Table 5's channels (or ``base``) times ``width``, rounded, at least 1."""
    if not (isinstance(width, (int, float)) and math.isfinite(width) and width > 0):
        raise ValueError(
            f"width must be a positive number (1.0 = the paper's 128/256/512/1024 channels), got {width!r}"
        )
    return [max(1, round(c * width)) for c in base]


def _check_input_dim(input_dim: Sequence[int], sizes: Sequence[int] = _SIZES) -> tuple[int, int, int]:
    dim = tuple(int(d) for d in input_dim)
    if len(dim) != 3 or dim[1] != dim[2] or dim[1] not in sizes or dim[0] <= 0:
        raise ValueError(
            f"input_dim must be (channels, H, W) with H = W in {list(sizes)} (Table 5: CIFAR-10 32x32, "
            f"CelebA 64x64; the small nets: 8x8 digits), got {tuple(input_dim)}"
        )
    return dim  # type: ignore[return-value]


def _conv_block(c_in: int, c_out: int, k: int, s: int, p: int, op: int = 0, transpose: bool = False) -> nn.Sequential:
    conv = (
        nn.ConvTranspose2d(c_in, c_out, k, s, padding=p, output_padding=op)
        if transpose
        else nn.Conv2d(c_in, c_out, k, s, padding=p)
    )
    return nn.Sequential(conv, nn.BatchNorm2d(c_out), nn.ReLU())


class ConvEncoder(BaseEncoder):
    """Table 5 encoder: 4 x [CONV(c, 4, 2) -> BN -> RELU] -> FLATTEN -> FC(latent x 2).

    Returns ``ModelOutput(embedding=mu, log_covariance=log_var)`` (pythae's Gaussian
    encoder interface) for ``x`` of shape ``[B, *input_dim]``.
    """

    def __init__(self, input_dim: Sequence[int] = (3, 32, 32), latent_dim: int = 256, width: float = 1.0):
        BaseEncoder.__init__(self)
        c_in, size, _ = _check_input_dim(input_dim)
        chans = _channels(width)
        self.layers = nn.Sequential(*[_conv_block(a, b, 4, 2, 1) for a, b in zip([c_in, *chans[:-1]], chans)])
        n_flat = chans[-1] * (size // 16) ** 2
        self.embedding = nn.Linear(n_flat, latent_dim)
        self.log_var = nn.Linear(n_flat, latent_dim)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        h = self.layers(x).flatten(1)
        return ModelOutput(embedding=self.embedding(h), log_covariance=self.log_var(h))


class ConvDecoder(BaseDecoder):
    """Table 5 decoder: FC(8 x 8 x c4) -> transposed convs -> sigmoid, output in ``[0, 1]``.

    32 x 32: CONVT(c3, 4, 2) -> BN -> RELU -> CONVT(c2, 4, 2) -> BN -> RELU -> CONVT(3, 4, 1).
    64 x 64: CONVT(c3, 5, 2), CONVT(c2, 5, 2), CONVT(c1, 5, 2) (each -> BN -> RELU) -> CONVT(3, 4, 1).
    Paddings follow pythae's benchmark nets (the 64 x 64 net's last kernel is 5 there,
    as here). Returns ``ModelOutput(reconstruction=x)``.
    """

    def __init__(self, input_dim: Sequence[int] = (3, 32, 32), latent_dim: int = 256, width: float = 1.0):
        BaseDecoder.__init__(self)
        c_out, size, _ = _check_input_dim(input_dim)
        c1, c2, c3, c4 = _channels(width)
        self.c4 = c4
        self.fc = nn.Linear(latent_dim, c4 * 8 * 8)
        if size == 32:
            blocks = [
                _conv_block(c4, c3, 4, 2, 1, transpose=True),
                _conv_block(c3, c2, 4, 2, 1, 1, transpose=True),
                nn.ConvTranspose2d(c2, c_out, 4, 1, padding=2),
            ]
        else:
            blocks = [
                _conv_block(c4, c3, 5, 2, 2, transpose=True),
                _conv_block(c3, c2, 5, 2, 1, transpose=True),
                _conv_block(c2, c1, 5, 2, 2, 1, transpose=True),
                nn.ConvTranspose2d(c1, c_out, 5, 1, padding=1),
            ]
        self.layers = nn.Sequential(*blocks, nn.Sigmoid())

    def forward(self, z: torch.Tensor) -> ModelOutput:
        h = self.fc(z).reshape(z.shape[0], self.c4, 8, 8)
        return ModelOutput(reconstruction=self.layers(h))


class SmallConvEncoder(BaseEncoder):
    """The encoder for ``C x 8 x 8`` images: 2 x [CONV(c, 4, 2, 1) -> BN -> RELU] -> FLATTEN -> FC(latent x 2),
    ``c`` = 16 and 32 channels times ``width`` (Table 5's design with two of its four layers)."""

    def __init__(self, input_dim: Sequence[int] = (1, 8, 8), latent_dim: int = 8, width: float = 1.0):
        BaseEncoder.__init__(self)
        c_in, _, _ = _check_input_dim(input_dim, (_SMALL,))
        c1, c2 = _channels(width, SMALL_CHANNELS)
        self.layers = nn.Sequential(_conv_block(c_in, c1, 4, 2, 1), _conv_block(c1, c2, 4, 2, 1))
        self.embedding = nn.Linear(c2 * 2 * 2, latent_dim)
        self.log_var = nn.Linear(c2 * 2 * 2, latent_dim)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        h = self.layers(x).flatten(1)
        return ModelOutput(embedding=self.embedding(h), log_covariance=self.log_var(h))


class SmallConvDecoder(BaseDecoder):
    """The decoder for ``C x 8 x 8`` images: FC(2 x 2 x c2) -> CONVT(c1, 4, 2, 1) -> BN -> RELU ->
    CONVT(C, 4, 2, 1) -> sigmoid, output in ``[0, 1]``."""

    def __init__(self, input_dim: Sequence[int] = (1, 8, 8), latent_dim: int = 8, width: float = 1.0):
        BaseDecoder.__init__(self)
        c_out, _, _ = _check_input_dim(input_dim, (_SMALL,))
        c1, c2 = _channels(width, SMALL_CHANNELS)
        self.c2 = c2
        self.fc = nn.Linear(latent_dim, c2 * 2 * 2)
        self.layers = nn.Sequential(
            _conv_block(c2, c1, 4, 2, 1, transpose=True), nn.ConvTranspose2d(c1, c_out, 4, 2, padding=1), nn.Sigmoid()
        )

    def forward(self, z: torch.Tensor) -> ModelOutput:
        return ModelOutput(reconstruction=self.layers(self.fc(z).reshape(z.shape[0], self.c2, 2, 2)))


def _config(kind: str, input_dim: tuple[int, int, int], latent_dim: int, **overrides: Any):
    """pythae config of ``kind`` with the paper's settings (Appendix D.3.2), updated by ``overrides``."""
    base = dict(input_dim=input_dim, latent_dim=latent_dim, reconstruction_loss="mse")
    paper: dict[str, tuple[type, dict[str, Any]]] = {
        "vae": (VAEConfig, {}),
        "beta_vae": (BetaVAEConfig, {"beta": 0.1}),
        "iwae": (IWAEConfig, {"number_samples": 5}),
        "vae_iaf": (VAE_IAF_Config, {"n_made_blocks": 2, "n_hidden_in_made": 3, "hidden_size": 128}),
        "hvae": (HVAEConfig, {"n_lf": 1, "eps_lf": 1e-3, "learn_eps_lf": True}),
    }
    cls, settings = paper[kind]
    return cls(**{**base, **settings, **overrides})


def check_decoder_variance(value: Any) -> float:
    """``value`` as a float if it is a positive finite number (a decoder variance), else ``ValueError``."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0
    if not ok:
        raise ValueError(
            f"decoder_variance must be a positive finite number (the variance s2 of the Gaussian "
            f"likelihood N(x; x_hat, s2 I); {PAPER_DECODER_VARIANCE} = pythae's 'mse' loss, the paper's), "
            f"got {value!r}"
        )
    return float(value)


class _ScaledReconstruction:
    """Mixin for pythae's VAE, BetaVAE, IWAE and VAE_IAF, whose ``loss_function(recon_x, x, ...)``
    compute ``0.5 * mse(recon_x, x).sum()``: with ``decoder_variance`` ``s2`` != 1 they get
    ``recon_x / s`` and ``x / s`` (``s = sqrt(s2)``), i.e. ``||x - x_hat||^2 / (2 s2)``."""

    decoder_variance: float = PAPER_DECODER_VARIANCE

    def loss_function(self, recon_x, x, *args):
        if self.decoder_variance == PAPER_DECODER_VARIANCE:
            return super().loss_function(recon_x, x, *args)
        s = math.sqrt(self.decoder_variance)
        return super().loss_function(recon_x / s, x / s, *args)


class _ScaledLikelihood:
    """Mixin for pythae's HVAE: its ``_log_p_x_given_z`` (used by the leapfrog steps' gradient and by
    the objective) with ``recon_x / s`` and ``x / s``, i.e. ``-||x - x_hat||^2 / (2 s2)``."""

    decoder_variance: float = PAPER_DECODER_VARIANCE

    def _log_p_x_given_z(self, recon_x, x):
        if self.decoder_variance == PAPER_DECODER_VARIANCE:
            return super()._log_p_x_given_z(recon_x, x)
        s = math.sqrt(self.decoder_variance)
        return super()._log_p_x_given_z(recon_x / s, x / s)


_PYTHAE = {"vae": VAE, "beta_vae": BetaVAE, "iwae": IWAE, "vae_iaf": VAE_IAF, "hvae": HVAE}
_MODELS = {
    k: type(
        f"{cls.__name__}WithDecoderVariance",
        (_ScaledLikelihood if k == "hvae" else _ScaledReconstruction, cls),
        {"__module__": __name__, "__doc__": f"pythae's {cls.__name__} with a decoder variance."},
    )
    for k, cls in _PYTHAE.items()
}
globals().update({cls.__name__: cls for cls in _MODELS.values()})  # importable by name (pickling)


def make_vae(
    kind: str,
    input_dim: Sequence[int] = (3, 32, 32),
    latent_dim: int = 256,
    width: float = 1.0,
    decoder_variance: float = PAPER_DECODER_VARIANCE,
    **overrides: Any,
):
    """A pythae VAE variant with the Table 5 conv nets and the paper's settings (Appendix D.3.2).

    ``kind``: ``vae``; ``beta_vae`` (``BetaVAEConfig.beta = 0.1``); ``iwae``
    (``IWAEConfig.number_samples = 5``); ``vae_iaf`` (``VAE_IAF_Config``:
    ``n_made_blocks = 2``, ``n_hidden_in_made = 3``, ``hidden_size = 128``); ``hvae``
    (``HVAEConfig``: ``n_lf = 1``, ``eps_lf = 1e-3``, ``learn_eps_lf = True`` -- the
    paper's "adaptive" step size). All use ``reconstruction_loss = "mse"``.
    ``overrides`` replace config fields (e.g. ``beta=1.0``). ``input_dim`` ``(C, 8, 8)`` gets
    :class:`SmallConvEncoder` / :class:`SmallConvDecoder` (the miniature on the digits).
    ``decoder_variance`` ``s2`` (positive, finite): the reconstruction term is
    ``||x - x_hat||^2 / (2 s2)`` (see the module docstring); 1.0 is pythae's ``"mse"``, the
    paper's. The model is a subclass of pythae's class (same ``model_name``) with the
    attribute ``decoder_variance``.
    """
    if kind not in _MODELS:
        raise ValueError(f"unknown VAE kind {kind!r}; choose one of {list(VAE_KINDS)}")
    dim = _check_input_dim(input_dim, (*_SIZES, _SMALL))
    if not isinstance(latent_dim, int) or latent_dim <= 0:
        raise ValueError(f"latent_dim must be a positive integer (the paper uses 256), got {latent_dim!r}")
    variance = check_decoder_variance(decoder_variance)
    config = _config(kind, dim, latent_dim, **overrides)
    if variance != PAPER_DECODER_VARIANCE and config.reconstruction_loss != "mse":
        raise ValueError(
            f"decoder_variance is the variance of the Gaussian ('mse') likelihood; "
            f"reconstruction_loss={config.reconstruction_loss!r} has none"
        )
    encoder, decoder = (SmallConvEncoder, SmallConvDecoder) if dim[1] == _SMALL else (ConvEncoder, ConvDecoder)
    model = _MODELS[kind](config, encoder=encoder(dim, latent_dim, width), decoder=decoder(dim, latent_dim, width))
    model.decoder_variance = variance
    return model


@torch.no_grad()
def sample_images(
    model, n: int = 64, seed: int = 0, batch_size: int = 500, z: Optional[torch.Tensor] = None
) -> torch.Tensor:
    """``n`` samples ``decoder(z)``, ``z ~ N(0, I)`` (seeded), on the CPU, in ``[0, 1]``; or the decoder of given ``z``.

    The model is put in eval mode (batch norm uses its running statistics) and its
    training flag is restored afterwards.
    """
    device = next(model.parameters()).device
    if z is None:
        z = torch.randn(n, model.latent_dim, generator=torch.Generator().manual_seed(seed))
    was_training = model.training
    model.eval()
    try:
        out = [model.decoder(zb.to(device))["reconstruction"].float().cpu() for zb in z.split(batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(out).clamp_(0.0, 1.0)
