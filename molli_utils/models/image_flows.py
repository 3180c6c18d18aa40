r"""The image flows of Table 1 (paper Sec. 4.2, Appendix D.3.2), built from normflows' layers.

* **REAL-NVP** (Dinh et al., 2017): the multi-scale architecture. At each scale but the last,
  three affine couplings with checkerboard masking, a squeeze (``C x H x W -> 4C x H/2 x W/2``),
  three couplings with channel masking, then half of the channels are factored out to the base;
  the last scale has four checkerboard couplings. Each coupling's scale and shift come from a
  convolutional residual network (normflows' ``ConvResidualNet``; paper: 4 residual blocks of 32
  feature maps on CIFAR-10, 2 on CelebA), with RealNVP's exponential scale; the last layer of each
  net starts at zero, so every coupling starts as the identity. Diagonal Gaussian bases.
* **GLOW** (Kingma & Dhariwal, 2018), as the paper's official code builds it
  (``tranbahien/data-mollification``, ``image/experiment.py``): normflows' ``MultiscaleFlow`` with
  ``L`` levels of ``K`` ``GlowBlock`` s (affine coupling with channel split and sigmoid scale,
  invertible 1x1 convolution in LU form, actnorm) and ``GlowBase`` bases (a learned mean and scale
  per channel); ``L = 3``, ``K = 20``, 512 hidden channels on CIFAR-10.

:func:`make_image_flow` builds either for any ``C x H x W`` whose sides halve ``L - 1`` (REAL-NVP)
or ``L`` (GLOW) times: the paper's 32 x 32 and 64 x 64 images and the 8 x 8 digits of the
miniature (:data:`MINIATURE`). Nothing here is re-implemented: the layers, the multi-scale
bookkeeping and the log-determinants are normflows'.

Data and likelihood. Images are ``[0, 1]`` tensors with ``levels`` grey levels (values
``k / (levels - 1)``). A flow models ``z = 2 y - 1`` in ``[-1, 1]``, where

* with **uniform dequantisation** (``dequantize=True``, the default): ``y = (k + u) / levels``,
  ``u ~ U[0, 1)^D`` drawn afresh for every batch (:func:`to_flow_space`);
* without (``dequantize=False``, what the official code does): ``y = k / (levels - 1)``.

**Bits per dimension** (:func:`bits_per_dim`) follow the usual convention for 8-bit images, here
for ``levels`` grey levels: with ``D`` dimensions the dequantised density bounds the probability
of the discrete image, ``log P(k) >= E_u[log p_Y((k + u) / levels)] - D log levels``, and with
``p_Y(y) = 2^D p_Z(2 y - 1)``

.. math:: \mathrm{bpd} = -\frac{\mathbb E_u[\log p_Z(z)] + D \log 2 - D \log L}{D \log 2},
          \qquad L = \text{levels}

(for CIFAR-10, ``L = 256``: the numbers the flow literature reports). A density uniform over
``[-1, 1]^D`` has ``log2 L`` bits per dimension, the entropy of uniform pixels.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, replace
from typing import Optional, Sequence

import torch

__all__ = [
    "FLOW_KINDS",
    "FlowSizes",
    "PAPER_SIZES",
    "MINIATURE",
    "flow_sizes",
    "make_image_flow",
    "to_flow_space",
    "from_flow_space",
    "log_prob",
    "bits_per_dim",
    "sample_images",
    "count_parameters",
]

#: Flows of Table 1, as :func:`make_image_flow` names them.
FLOW_KINDS = ("realnvp", "glow")


@dataclass(frozen=True)
class FlowSizes:
    """The size of an image flow.

    ``levels``: scales ``L`` (REAL-NVP: ``L - 1`` squeeze-and-split scales and a last one;
    GLOW: ``L`` levels); ``depth``: GLOW's blocks per level ``K`` (REAL-NVP: couplings per
    masking group, 3, and 4 at the last scale, as in Dinh et al.); ``hidden``: channels of the
    coupling networks; ``res_blocks``: REAL-NVP's residual blocks per coupling network.
    """

    levels: int
    depth: int
    hidden: int
    res_blocks: int = 0

    def scaled(self, width: float) -> "FlowSizes":
        """The same flow with ``width`` times the hidden channels (at least 4)."""
        if not (isinstance(width, (int, float)) and math.isfinite(width) and width > 0):
            raise ValueError(f"width must be a positive number (1.0 = the paper's channels), got {width!r}")
        return replace(self, hidden=max(4, round(self.hidden * width)))


#: The paper's flows (Appendix D.3.2; GLOW as its official code): per (kind, data set).
PAPER_SIZES = {
    ("realnvp", "cifar10"): FlowSizes(levels=3, depth=3, hidden=32, res_blocks=4),
    ("realnvp", "celeba"): FlowSizes(levels=4, depth=3, hidden=32, res_blocks=2),
    ("glow", "cifar10"): FlowSizes(levels=3, depth=20, hidden=512),
    ("glow", "celeba"): FlowSizes(levels=3, depth=20, hidden=512),
}
#: The miniature's flows for 8 x 8 digits: two scales; REAL-NVP with 2 residual blocks of 16 maps,
#: GLOW with K = 4 blocks per level of 32 hidden channels.
MINIATURE = {
    "realnvp": FlowSizes(levels=2, depth=3, hidden=16, res_blocks=2),
    "glow": FlowSizes(levels=2, depth=4, hidden=32),
}


def flow_sizes(kind: str, dataset: str) -> FlowSizes:
    """The sizes of ``kind`` on ``dataset``: the paper's for CIFAR-10 and CelebA, :data:`MINIATURE` otherwise."""
    _check_kind(kind)
    return PAPER_SIZES.get((kind, dataset), MINIATURE[kind])


def _check_kind(kind: str) -> None:
    if kind not in FLOW_KINDS:
        raise ValueError(f"unknown image flow {kind!r}; choose one of {list(FLOW_KINDS)}")


def _check_shape(kind: str, shape: Sequence[int], levels: int) -> tuple[int, int, int]:
    dim = tuple(int(d) for d in shape)
    halvings = levels if kind == "glow" else levels - 1
    if (
        len(dim) != 3
        or min(dim) <= 0
        or any(s % 2**halvings for s in dim[1:])
        or (kind == "realnvp" and dim[2] // 2**halvings < 2)
    ):
        raise ValueError(
            f"input shape must be (C, H, W) with H and W divisible by 2^{halvings} for a {kind} of "
            f"{levels} levels (at least 2 wide at the last REAL-NVP scale), got {tuple(shape)}"
        )
    return dim  # type: ignore[return-value]


def _coupling(nf, channels: int, mode: str, sizes: FlowSizes):
    """A REAL-NVP affine coupling on ``channels`` channels with ``mode`` masking, starting as the identity."""
    conditioner = channels if "checkerboard" in mode else channels // 2
    transformed = channels if "checkerboard" in mode else channels - channels // 2
    if mode.startswith("channel") and channels % 2:
        raise ValueError(f"channel masking needs an even number of channels, got {channels}")
    net = nf.nets.ConvResidualNet(conditioner, 2 * transformed, sizes.hidden, num_blocks=sizes.res_blocks)
    torch.nn.init.zeros_(net.final_layer.weight)
    torch.nn.init.zeros_(net.final_layer.bias)
    return nf.flows.AffineCouplingBlock(net, scale=True, scale_map="exp", split_mode=mode)


def _realnvp(nf, shape: tuple[int, int, int], sizes: FlowSizes):
    c, h, w = shape
    L = sizes.levels
    # latent shapes, coarsest first: the last scale, then the halves factored out at each scale
    q0 = [nf.distributions.DiagGaussian((c * 2 ** (L - 1), h // 2 ** (L - 1), w // 2 ** (L - 1)))]
    q0 += [nf.distributions.DiagGaussian((c * 2 ** (L - i), h // 2 ** (L - i), w // 2 ** (L - i))) for i in range(1, L)]
    masks = ("checkerboard", "checkerboard_inv")
    flows = [[_coupling(nf, c * 2 ** (L - 1), masks[j % 2], sizes) for j in range(sizes.depth + 1)]]
    for i in range(1, L):
        merged = c * 2 ** (L - i + 1)  # channels after the merge, at H / 2^(L - i)
        level = [_coupling(nf, merged, ("channel", "channel_inv")[j % 2], sizes) for j in range(sizes.depth)]
        level += [nf.flows.Squeeze()]
        level += [_coupling(nf, merged // 4, masks[j % 2], sizes) for j in range(sizes.depth)]
        flows.append(level)
    merges = [nf.flows.Merge() for _ in range(L - 1)]
    return nf.MultiscaleFlow(q0, flows, merges, class_cond=False)


def _glow(nf, shape: tuple[int, int, int], sizes: FlowSizes):
    # image/experiment.py of the official code, get_model(), for any (C, H, W) and sizes
    c, h, w = shape
    L, K = sizes.levels, sizes.depth
    q0, merges, flows = [], [], []
    for i in range(L):
        level = [
            nf.flows.GlowBlock(c * 2 ** (L + 1 - i), sizes.hidden, split_mode="channel", scale=True) for _ in range(K)
        ]
        level += [nf.flows.Squeeze()]
        flows.append(level)
        if i > 0:
            merges.append(nf.flows.Merge())
            latent = (c * 2 ** (L - i), h // 2 ** (L - i), w // 2 ** (L - i))
        else:
            latent = (c * 2 ** (L + 1), h // 2**L, w // 2**L)
        q0.append(nf.distributions.GlowBase(latent))
    return nf.MultiscaleFlow(q0, flows, merges, class_cond=False)


def make_image_flow(
    kind: str, shape: Sequence[int], sizes: Optional[FlowSizes] = None, *, dataset: str = "cifar10", width: float = 1.0
):
    """A normflows ``MultiscaleFlow``: ``kind`` ``"realnvp"`` or ``"glow"`` for images of ``shape`` ``(C, H, W)``.

    ``sizes`` default to :func:`flow_sizes` of ``dataset``; ``width`` multiplies the hidden
    channels. The model's ``log_prob(z, None)`` is the density of ``z`` in ``[-1, 1]`` space
    (see the module docstring), ``forward(z)`` its negative (per image), ``forward_kld(z)`` the
    mean negative log-likelihood that the book's training loop minimises. GLOW's actnorm layers
    initialise from the first batch they see.
    """
    import normflows as nf

    _check_kind(kind)
    sizes = (sizes or flow_sizes(kind, dataset)).scaled(width)
    dim = _check_shape(kind, shape, sizes.levels)
    with warnings.catch_warnings():  # Invertible1x1Conv's LU set-up calls the deprecated torch.lu
        warnings.filterwarnings("ignore", message=r"torch\.lu is deprecated", category=UserWarning)
        model = _realnvp(nf, dim, sizes) if kind == "realnvp" else _glow(nf, dim, sizes)
    model.kind, model.sizes, model.input_shape = kind, sizes, dim
    return model


def count_parameters(model: torch.nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def to_flow_space(
    images: torch.Tensor, levels: int, *, dequantize: bool = True, generator: Optional[torch.Generator] = None
) -> torch.Tensor:
    """Images in ``[0, 1]`` with ``levels`` grey levels -> the flow's ``z = 2 y - 1`` (see the module docstring).

    ``dequantize``: ``y = (k + u) / levels`` with uniform ``u`` from ``generator``; else ``y = k / (levels - 1)``.
    """
    if not isinstance(levels, int) or levels < 2:
        raise ValueError(f"levels must be an integer >= 2 (256 for 8-bit images, 17 for the digits), got {levels!r}")
    if not dequantize:
        return 2.0 * images - 1.0
    k = torch.round(images * (levels - 1))
    u = torch.rand(images.shape, generator=generator, dtype=images.dtype, device=images.device)
    return 2.0 * (k + u) / levels - 1.0


def from_flow_space(z: torch.Tensor, levels: int, *, dequantize: bool = True) -> torch.Tensor:
    """The inverse of :func:`to_flow_space` up to the dequantisation noise, as images in ``[0, 1]``.

    With ``dequantize``, ``y = (z + 1) / 2`` lies in the cell ``[k / levels, (k + 1) / levels)`` of level
    ``k``; the image is ``(levels y - 1/2) / (levels - 1)``, which rounds to ``k / (levels - 1)``.
    Non-finite values (a diverged flow) become 0; the result is clamped to ``[0, 1]``.
    """
    y = (torch.nan_to_num(z, nan=-1.0, posinf=1.0, neginf=-1.0) + 1.0) / 2.0
    x = (levels * y - 0.5) / (levels - 1) if dequantize else y
    return x.clamp(0.0, 1.0)


def log_prob(model, z: torch.Tensor) -> torch.Tensor:
    """``log p_Z(z)`` per image ``[B]`` (normflows 1.7.3's ``MultiscaleFlow.log_prob`` needs its ``y`` argument)."""
    return model.log_prob(z, None)


@torch.no_grad()
def bits_per_dim(
    model, images: torch.Tensor, levels: int, *, draws: int = 1, seed: int = 0, batch_size: int = 500
) -> float:
    """Test bits per dimension of ``images`` (``[N, C, H, W]`` in ``[0, 1]``, ``levels`` grey levels)
    under a flow of the dequantised data (module docstring), averaged over ``draws`` uniform
    dequantisations seeded with ``seed``. The model is evaluated in eval mode (its mode is restored).
    """
    if not isinstance(draws, int) or draws < 1:
        raise ValueError(f"draws must be a positive integer, got {draws!r}")
    device = next(model.parameters()).device
    dims = int(images[0].numel())
    gen = torch.Generator().manual_seed(seed)
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    try:
        for _ in range(draws):
            for batch in images.split(batch_size):
                z = to_flow_space(batch, levels, generator=gen).to(device)
                lp = log_prob(model, z).double().cpu()
                total += float(lp.sum())
                count += lp.numel()
    finally:
        model.train(was_training)
    mean_log_p = total / count
    return -(mean_log_p + dims * math.log(2.0) - dims * math.log(levels)) / (dims * math.log(2.0))


@torch.no_grad()
def sample_images(
    model,
    n: int = 64,
    seed: int = 0,
    *,
    levels: int = 256,
    dequantize: bool = True,
    batch_size: int = 500,
    temperature: Optional[float] = None,
) -> torch.Tensor:
    """``n`` samples of the flow (seeded; the global RNG is left as it was) as images in ``[0, 1]`` on the CPU.

    The model is put in eval mode and restored. ``temperature`` scales the bases' standard deviation
    (GLOW's bases support it); ``None`` samples the model itself.
    """
    was_training = model.training
    model.eval()
    out = []
    try:
        devices = [next(model.parameters()).device] if next(model.parameters()).is_cuda else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            done = 0
            while done < n:
                m = min(batch_size, n - done)
                z, _ = model.sample(m, temperature=temperature) if temperature is not None else model.sample(m)
                out.append(from_flow_space(z.float().cpu(), levels, dequantize=dequantize))
                done += m
    finally:
        model.train(was_training)
    return torch.cat(out) if out else torch.empty(0)
