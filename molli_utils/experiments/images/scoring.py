"""How image runs are scored: seeded samples of a model (:func:`sample`) and the Fréchet distance (and KID) of
samples against the training images (:class:`Scorer`, :func:`make_scorer`).

On CIFAR-10 / CelebA, FID with pytorch-fid's Inception-v3 where its weights load and a GPU runs it, else a
Fréchet distance on a fixed random conv net's features, named ``FD-random-features`` and never called FID. On
the digits, the Fréchet distance and KID on the features of the digits classifier shipped with the package
(``FD-digits-classifier``, :func:`~molli_utils.fid.digits_classifier`). Generated images are rounded to the
data's grey levels before scoring, as the official code's PNG files are.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Optional, Union

import numpy as np
import torch

from ...data.images import DIGITS, IMAGE_NAMES, ImageData, load_digits
from ...fid import (
    SCORE_FD_DIGITS,
    SCORE_FID,
    SCORE_KID_DIGITS,
    SCORE_STANDIN,
    activation_statistics,
    digits_classifier,
    features,
    fid,
    frechet_distance,
    inception_extractor,
    kid,
    random_features_extractor,
    reference_statistics,
)
from ...models.image_flows import sample_images as flow_samples
from ...models.vae import sample_images as vae_samples
from .config import ImageRun, load_data

__all__ = ["sample", "Scorer", "make_scorer", "mean_image_fd"]


def _quantize(images: torch.Tensor, levels: int) -> torch.Tensor:
    """``images`` in ``[0, 1]`` rounded to ``levels`` grey levels."""
    return torch.round(images.clamp(0.0, 1.0) * (levels - 1)) / (levels - 1)


def sample(model, n: int, seed: int, *, levels: int = 256, z: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``n`` seeded samples of an image model (a VAE or a flow) as images in ``[0, 1]`` on the CPU.

    VAEs: ``decoder(z)``, ``z ~ N(0, I)`` (or the given latents ``z``); flows: ``model.sample`` mapped back
    from the flow's space (:func:`~molli_utils.models.image_flows.from_flow_space`) with ``levels``.
    """
    if hasattr(model, "q0"):  # a normflows MultiscaleFlow
        return flow_samples(model, n, seed, levels=levels, dequantize=getattr(model, "dequantize", True))
    return vae_samples(model, n, seed=seed, z=z)


@dataclass
class Scorer:
    """A sample-quality score: ``name`` (:data:`~molli_utils.fid.SCORE_FID`, the stand-in's, or the digits
    classifier's :data:`~molli_utils.fid.SCORE_FD_DIGITS`), the feature extractor and the reference statistics
    of the training images; ``scorer(model, n, seed)`` is the Fréchet distance of ``n`` samples of
    ``model``, and :meth:`scores` adds the KID where ``reference_features`` are kept (the digits).
    Samples are rounded to the data's ``levels`` before scoring.
    """

    name: str
    extractor: Any
    reference: tuple[np.ndarray, np.ndarray]
    device: torch.device
    levels: int = 256
    reference_features: Optional[torch.Tensor] = None
    kid_name: str = ""

    def score_images(self, images: torch.Tensor) -> dict[str, float]:
        """``{"fd": ..., "kid": ...}`` of ``images`` (``kid`` is nan without reference features). Early in training
        the samples can be nearly constant and their feature covariance singular, which
        :func:`~molli_utils.fid.frechet_distance` handles (no matrix square root of a singular matrix)."""
        images = _quantize(images, self.levels)
        if self.reference_features is None:
            return {"fd": fid(images, self.reference, self.extractor, device=self.device), "kid": math.nan}
        feats = features(images, self.extractor, device=self.device)
        mu, sigma = feats.mean(0).numpy(), np.cov(feats.numpy(), rowvar=False)
        return {"fd": frechet_distance(mu, sigma, *self.reference), "kid": kid(feats, self.reference_features)}

    def one_image(self, image: torch.Tensor) -> float:
        """The Fréchet distance of copies of one ``image`` ``[C, H, W]`` (what a model that always draws it scores):
        ``||mu_r - f||^2 + tr(Sigma_r)`` with ``f`` its features; the covariance of the copies is 0."""
        f = features(_quantize(image.unsqueeze(0), self.levels), self.extractor, device=self.device).numpy()[0]
        mu, sigma = self.reference
        return float(((mu - f) ** 2).sum() + np.trace(sigma))

    def scores(self, model, n: int, seed: int) -> dict[str, float]:
        """:meth:`score_images` of ``n`` samples of ``model`` (seeded)."""
        return self.score_images(sample(model, n, seed, levels=self.levels))

    def __call__(self, model, n: int, seed: int) -> float:
        return self.scores(model, n, seed)["fd"]

    def floor(self, config: ImageRun, data: ImageData) -> tuple[float, str]:
        """The score of real images: the test split against the training statistics where there is one,
        else the two halves of the training images against each other; and what was compared."""
        if config.dataset in (*IMAGE_NAMES, DIGITS):
            held_out = load_data(config, train=False)
            return self.score_images(held_out.images)["fd"], f"{len(held_out)} real test images vs the training set"
        half = len(data) // 2
        value = frechet_distance(
            *activation_statistics(data.images[:half], self.extractor, device=self.device),
            *activation_statistics(data.images[half:], self.extractor, device=self.device),
        )
        return value, f"two halves of {data.name} against each other"


def make_scorer(
    data: ImageData,
    device: Union[str, torch.device] = "cpu",
    *,
    use_fid: str = "auto",
    log: Callable[[str], None] = print,
) -> Scorer:
    """The score of the image runs on ``data``.

    The digits: the Fréchet distance and KID on the features of the package's digits classifier
    (trained once and cached; ``log`` prints its test accuracy). Other data, ``use_fid``: ``"auto"``
    -- FID when pytorch-fid's Inception weights load and ``device`` is a GPU (on a CPU Inception
    takes about half a second per image), else the stand-in; ``"always"`` -- FID or a
    ``RuntimeError`` saying why not (the command line); ``"never"`` -- the stand-in. The reference
    statistics of the official data sets are cached on disk. ``log`` says which score it is.
    """
    if use_fid not in ("auto", "always", "never"):
        raise ValueError(f"use_fid must be 'auto', 'always' or 'never', got {use_fid!r}")
    device = torch.device(device)
    if data.name == DIGITS:
        extractor = digits_classifier(device=device, log=log)
        reference_features = features(data.images, extractor, device=device)
        reference = (reference_features.mean(0).numpy(), np.cov(reference_features.numpy(), rowvar=False))
        log(
            f"score: {SCORE_FD_DIGITS} and {SCORE_KID_DIGITS}, on the features\n"
            f"  of a digits classifier (test accuracy {extractor.test_accuracy:.4f}; not FID);\n"
            f"  reference: {len(data)} {data.name} training images"
        )
        return Scorer(SCORE_FD_DIGITS, extractor, reference, device, data.levels, reference_features, SCORE_KID_DIGITS)
    extractor = None
    if use_fid == "always" or (use_fid == "auto" and device.type == "cuda"):
        try:
            extractor = inception_extractor(device)
        except RuntimeError as err:
            if use_fid == "always":
                raise
            log(f"FID is not available here: {err}")
    if extractor is None:
        extractor, name = random_features_extractor(seed=0, device=device), SCORE_STANDIN
    else:
        name = SCORE_FID
    cached = data.name in IMAGE_NAMES
    reference = (
        reference_statistics(data, extractor, device=device)
        if cached
        else activation_statistics(data, extractor, device=device)
    )
    log(f"score: {name} (feature extractor {extractor.name}),\n  reference: {len(data)} {data.name} training images")
    return Scorer(name, extractor, reference, device, data.levels)


def mean_image_fd(device: Union[str, torch.device] = "cpu") -> float:
    """The Fréchet distance, on the digits classifier's features, of copies of the mean training digit: what a
    model that always draws one image, the mean, scores in the digits miniature (a collapsed VAE scores about
    this). The miniature counts a model as learning when its vanilla FD is below half of it."""
    data = load_digits(train=True)
    return make_scorer(data, device, log=lambda _: None).one_image(data.images.mean(0))
