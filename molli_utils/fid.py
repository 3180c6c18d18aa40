r"""Fréchet Inception Distance computed in memory (paper Sec. 4.2, Table 3; Heusel et al., 2017).

.. math:: \mathrm{FID} = \lVert \mu_1 - \mu_2 \rVert^2
          + \operatorname{tr}\big(\Sigma_1 + \Sigma_2 - 2 (\Sigma_1 \Sigma_2)^{1/2}\big),

with :math:`(\mu, \Sigma)` the mean and covariance of the pool-3 features of
Inception-v3 over a set of images. The distance is pytorch-fid's
``calculate_frechet_distance`` (the same value, tested to 1e-6 relative), computed
here without ``scipy.linalg.sqrtm`` (:func:`frechet_distance`): pytorch-fid 0.3.0
passes ``sqrtm(..., disp=False)``, an argument scipy 1.18 removed. Images (float
tensors ``[N, 3, H, W]`` with values in ``[0, 1]``) go through the feature extractor
batch by batch, and the statistics are accumulated as running sums in float64, so
neither the images nor the features of a whole set need to be written to disk or
held in memory at once.

A *feature extractor* is any callable mapping a batch ``[B, 3, H, W]`` in
``[0, 1]`` to features ``[B, D]`` (or ``[B, D, 1, 1]``). :func:`inception_extractor`
builds pytorch-fid's Inception-v3 (the real FID); tests and CPU benchmarks inject
small ones -- numbers computed with those are **not** FID.
"""

from __future__ import annotations

import hashlib
import math
import os
import urllib.error
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Union

import numpy as np
import torch

from .data.images import SAMPLE_PATCHES, ImageData, load_images, sample_patches
from .runtime import data_root

__all__ = [
    "SCORE_FID",
    "SCORE_STANDIN",
    "RandomFeatures",
    "random_features_extractor",
    "FeatureExtractor",
    "INCEPTION_NAME",
    "INCEPTION_WEIGHTS",
    "activation_statistics",
    "frechet_distance",
    "fid",
    "fid_cache_root",
    "reference_statistics",
    "inception_extractor",
    "InceptionFeatures",
    "SCORE_FD_DIGITS",
    "SCORE_KID_DIGITS",
    "features",
    "kid",
    "DigitsClassifier",
    "DIGITS_CLASSIFIER_FILE",
    "DIGITS_CLASSIFIER_SHA256",
    "digits_classifier",
    "train_digits_classifier",
    "save_digits_classifier",
]

FeatureExtractor = Callable[[torch.Tensor], torch.Tensor]
Images = Union[torch.Tensor, ImageData, Iterable[torch.Tensor]]
#: Name of the score computed with Inception-v3 (pytorch-fid).
SCORE_FID = "FID"
#: Name of the stand-in score: Fréchet distance on features of a fixed random conv net.
SCORE_STANDIN = "FD-random-features"
#: Name under which statistics of the real Inception extractor are cached.
INCEPTION_NAME = "pytorch-fid-inception-v3-pool3-2048"
#: File name of pytorch-fid's Inception weights in the torch hub checkpoints folder.
INCEPTION_WEIGHTS = "pt_inception-2015-12-05-6726825d.pth"
#: Name of the miniature's score: the Fréchet distance on the features of the package's digits classifier.
SCORE_FD_DIGITS = "FD-digits-classifier"
#: Name of the miniature's second score: the kernel inception distance's estimator on the same features.
SCORE_KID_DIGITS = "KID-digits-classifier"


def _batches(images: Images, batch_size: int) -> Iterable[torch.Tensor]:
    """Batches of at most ``batch_size`` images from a tensor, an :class:`ImageData` or an iterable of batches."""
    if isinstance(images, ImageData):
        images = images.images
    if isinstance(images, torch.Tensor):
        if images.ndim != 4:
            raise ValueError(f"images must have shape [N, C, H, W], got {tuple(images.shape)}")
        for start in range(0, images.shape[0], batch_size):
            yield images[start : start + batch_size]
        return
    for batch in images:
        for start in range(0, batch.shape[0], batch_size):
            yield batch[start : start + batch_size]


def _check_batch(batch: torch.Tensor) -> None:
    if not isinstance(batch, torch.Tensor) or batch.ndim != 4 or not batch.is_floating_point():
        raise ValueError(
            f"each batch must be a float tensor [B, C, H, W] in [0, 1], got {getattr(batch, 'shape', type(batch))}"
        )
    lo, hi = float(batch.min()), float(batch.max())
    if lo < -1e-6 or hi > 1 + 1e-6:
        raise ValueError(
            f"images must lie in [0, 1] (pytorch-fid's convention), got values in [{lo:.3g}, {hi:.3g}]; "
            "map [-1, 1] data with (x + 1) / 2 or clamp"
        )


@torch.no_grad()
def activation_statistics(
    images: Images,
    feature_extractor: FeatureExtractor,
    batch_size: int = 50,
    device: Union[str, torch.device] = "cpu",
) -> tuple[np.ndarray, np.ndarray]:
    r"""Mean and covariance (``ddof=1``, as ``np.cov``) of the features of ``images``, streamed.

    With features :math:`f_i` and the shift :math:`k` = the mean of the first batch,
    :math:`\mu = k + \tfrac1n \sum_i (f_i - k)` and
    :math:`\Sigma = \tfrac{1}{n-1}\big(\sum_i (f_i - k)(f_i - k)^\top - n (\mu - k)(\mu - k)^\top\big)`,
    accumulated in float64 (the shift avoids cancellation). Memory: one batch of
    images and features plus a ``D x D`` matrix.
    """
    if not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    n, shift, total, outer = 0, None, None, None
    for batch in _batches(images, batch_size):
        _check_batch(batch)
        feats = feature_extractor(batch.to(device))
        feats = feats.reshape(feats.shape[0], -1).to(device="cpu", dtype=torch.float64)
        if shift is None:
            shift = feats.mean(0)
            total = torch.zeros_like(shift)
            outer = torch.zeros(shift.shape[0], shift.shape[0], dtype=torch.float64)
        centred = feats - shift
        total += centred.sum(0)
        outer += centred.T @ centred
        n += feats.shape[0]
    if n < 2:
        raise ValueError(f"Fréchet statistics need at least 2 images, got {n}")
    mean_c = total / n
    sigma = (outer - n * torch.outer(mean_c, mean_c)) / (n - 1)
    return (shift + mean_c).numpy(), sigma.numpy()


def _psd_root(sigma: np.ndarray, name: str, slack: float) -> np.ndarray:
    """The symmetric square root of a covariance; eigenvalues that rounding put below 0 count as 0."""
    w, v = np.linalg.eigh(sigma)
    if w[0] < -slack * max(abs(w[0]), abs(w[-1])):
        raise ValueError(
            f"{name} is not a covariance (positive semi-definite): eigenvalue {w[0]:.3g} < 0 (largest {w[-1]:.3g})"
        )
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    r"""Fréchet distance of the Gaussians :math:`N(\mu_1, \Sigma_1)` and :math:`N(\mu_2, \Sigma_2)` (formula in the
    module docstring): means ``[D]``, covariances ``[D, D]`` (symmetric positive semi-definite; singular is fine).

    The value of pytorch-fid's ``calculate_frechet_distance``, without a general matrix square root:
    :math:`\Sigma_1 \Sigma_2 = \Sigma_1^{1/2} (\Sigma_1^{1/2} \Sigma_2^{1/2}) \Sigma_2^{1/2}` is similar to
    :math:`(\Sigma_1^{1/2} \Sigma_2^{1/2})(\Sigma_1^{1/2} \Sigma_2^{1/2})^\top`, so
    :math:`\operatorname{tr}(\Sigma_1 \Sigma_2)^{1/2}` is the sum of the singular values of
    :math:`\Sigma_1^{1/2} \Sigma_2^{1/2}` (the symmetric roots from the eigendecompositions), in float64. No
    complex parts, and no ``eps`` added to the diagonals when the product is singular (pytorch-fid does that
    when its square root is not finite). Singular values are accurate where square roots of small eigenvalues
    are not: with fewer samples than features the distance of a set from itself is 0 to rounding (-2e-12 for
    20 samples of 64 features, where pytorch-fid gives -1.6e-4).

    Raises ``ValueError`` when the statistics have different feature sizes (not of one feature extractor),
    a covariance is not ``[D, D]``, a value is not finite, or a covariance is not positive semi-definite
    beyond rounding.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1)), np.atleast_1d(np.asarray(mu2))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1)), np.atleast_2d(np.asarray(sigma2))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(
            f"statistics of different feature sizes: mu {mu1.shape} vs {mu2.shape}, "
            f"sigma {sigma1.shape} vs {sigma2.shape}; use the same feature extractor for both"
        )
    if mu1.ndim != 1 or sigma1.shape != (mu1.shape[0], mu1.shape[0]):
        raise ValueError(
            f"mu must be a vector [D] and sigma its covariance [D, D], got mu {mu1.shape} and sigma {sigma1.shape}"
        )
    for name, value in (("mu1", mu1), ("sigma1", sigma1), ("mu2", mu2), ("sigma2", sigma2)):
        if not np.isfinite(value).all():
            raise ValueError(f"{name} has non-finite values (nan or inf): were the features (or the images) finite?")
    # How far below 0 rounding can put an eigenvalue of a covariance stored at the inputs' precision.
    slack = 10 * mu1.shape[0] * max(np.finfo(np.result_type(a, np.float32)).eps for a in (sigma1, sigma2))
    s1, s2 = sigma1.astype(np.float64), sigma2.astype(np.float64)
    s1, s2 = (s1 + s1.T) / 2, (s2 + s2.T) / 2
    root1, root2 = _psd_root(s1, "sigma1", slack), _psd_root(s2, "sigma2", slack)
    tr_covmean = np.linalg.svd(root1 @ root2, compute_uv=False).sum()
    diff = mu1.astype(np.float64) - mu2.astype(np.float64)
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean)


def fid(
    generated: Images,
    reference_stats: tuple[np.ndarray, np.ndarray],
    feature_extractor: FeatureExtractor,
    batch_size: int = 50,
    device: Union[str, torch.device] = "cpu",
) -> float:
    """FID of ``generated`` images (``[0, 1]``) against precomputed ``(mu, sigma)`` of the reference set.

    Only FID when ``feature_extractor`` is :func:`inception_extractor` (and the
    reference statistics were computed with it).
    """
    mu, sigma = activation_statistics(generated, feature_extractor, batch_size, device)
    return frechet_distance(mu, sigma, *reference_stats)


def fid_cache_root(cache_dir: Union[str, Path, None] = None) -> Path:
    """``cache_dir``, else ``$MOLLI_DATA/fid``, else ``$XDG_CACHE_HOME/molli_utils/fid`` (default ``~/.cache/...``)."""
    return data_root("fid", cache_dir)


def reference_statistics(
    data: Union[ImageData, str],
    feature_extractor: FeatureExtractor,
    extractor_name: Optional[str] = None,
    *,
    cache_dir: Union[str, Path, None] = None,
    batch_size: int = 50,
    device: Union[str, torch.device] = "cpu",
    **load_kwargs,
) -> tuple[np.ndarray, np.ndarray]:
    """``(mu, sigma)`` of a reference data set, computed once and cached as ``.npz``.

    ``data`` is an :class:`~molli_utils.data.images.ImageData` or a data set name
    (``"cifar10"``, ``"celeba"``: :func:`~molli_utils.data.images.load_images` with
    ``load_kwargs``; ``"sklearn-sample-patches"``: :func:`~molli_utils.data.images.sample_patches`).
    The cache file is ``CACHE/<name>-<split>-<size>-n<N>__<extractor name>.npz`` in
    :func:`fid_cache_root`; ``extractor_name`` defaults to ``feature_extractor.name``.
    """
    name = extractor_name or getattr(feature_extractor, "name", None)
    if not name:
        raise ValueError(
            "give extractor_name (or a feature extractor with a .name): it keys the cache file, "
            "so statistics of different extractors never mix"
        )
    if isinstance(data, str):
        data = sample_patches(**load_kwargs) if data == SAMPLE_PATCHES else load_images(data, **load_kwargs)
    path = fid_cache_root(cache_dir) / f"{data.key}-n{len(data)}__{name}.npz"
    if path.exists():
        with np.load(path) as cached:
            return cached["mu"], cached["sigma"]
    mu, sigma = activation_statistics(data, feature_extractor, batch_size, device)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part.npz")
    np.savez(tmp, mu=mu, sigma=sigma, n=len(data), data_name=data.name, source_note=data.source_note, extractor=name)
    os.replace(tmp, path)
    return mu, sigma


class InceptionFeatures(torch.nn.Module):
    """pytorch-fid's ``InceptionV3`` (pool-3 block) returning features ``[B, 2048]``.

    pytorch-fid resizes inputs to 299 x 299 (bilinear) and maps ``[0, 1]`` to ``[-1, 1]`` itself.
    """

    name = INCEPTION_NAME

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)[0].flatten(1)


def inception_extractor(device: Union[str, torch.device] = "cpu") -> InceptionFeatures:
    """The FID feature extractor: pytorch-fid's Inception-v3 with its FID weights, in eval mode on ``device``.

    The weights (``pt_inception-2015-12-05-6726825d.pth``, 91 MB) are downloaded by
    pytorch-fid into the torch hub checkpoints folder on first use; offline and
    without that file this raises a ``RuntimeError`` saying so.
    """
    from pytorch_fid.inception import InceptionV3

    try:
        model = InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[2048]])
    except (urllib.error.URLError, OSError) as err:
        folder = Path(torch.hub.get_dir()) / "checkpoints"
        raise RuntimeError(
            f"FID needs pytorch-fid's Inception weights, which could not be loaded ({type(err).__name__}: {err}). "
            f"Fix: run on a machine with network access (e.g. Colab) once, or place {INCEPTION_WEIGHTS} "
            f"in the torch hub checkpoints folder {folder}."
        ) from err
    return InceptionFeatures(model).eval().to(device)


class RandomFeatures(torch.nn.Module):
    """A fixed, randomly initialised conv net ``[B, 3, H, W]`` in ``[0, 1]`` -> features ``[B, dim]``.

    Three strided 3 x 3 convolutions with ReLU, then global average and standard-deviation
    pooling. Its weights depend only on ``seed``; it is a stand-in for Inception-v3 where
    those weights are not available, so that runs can still be *compared with each other*.
    Numbers computed with it are not FID and are on another scale.
    """

    def __init__(self, seed: int = 0, dim: int = 64):
        super().__init__()
        if dim % 2 or dim < 4:
            raise ValueError(f"dim must be an even number >= 4 (mean and std pooling of dim/2 channels), got {dim}")
        gen = torch.Generator().manual_seed(seed)
        c = dim // 2
        self.convs = torch.nn.ModuleList(
            [torch.nn.Conv2d(3, 16, 3, 2, 1), torch.nn.Conv2d(16, 32, 3, 2, 1), torch.nn.Conv2d(32, c, 3, 2, 1)]
        )
        with torch.no_grad():
            for conv in self.convs:
                fan_in = conv.in_channels * 9
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen) * math.sqrt(2.0 / fan_in))
                conv.bias.zero_()
        self.requires_grad_(False)
        self.name = f"{SCORE_STANDIN.lower()}-conv3-seed{seed}-dim{dim}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = 2.0 * x - 1.0
        for conv in self.convs:
            h = torch.relu(conv(h))
        return torch.cat([h.mean((2, 3)), h.std((2, 3))], dim=1)


def random_features_extractor(seed: int = 0, dim: int = 64, device: Union[str, torch.device] = "cpu") -> RandomFeatures:
    """The stand-in extractor of :class:`RandomFeatures`, in eval mode on ``device``."""
    return RandomFeatures(seed, dim).eval().to(device)


@torch.no_grad()
def features(
    images: Images, feature_extractor: FeatureExtractor, batch_size: int = 500, device: Union[str, torch.device] = "cpu"
) -> torch.Tensor:
    """The features ``[N, D]`` (float64, on the CPU) of ``images`` (``[0, 1]``), batch by batch."""
    out = []
    for batch in _batches(images, batch_size):
        _check_batch(batch)
        feats = feature_extractor(batch.to(device))
        out.append(feats.reshape(feats.shape[0], -1).to(device="cpu", dtype=torch.float64))
    if not out:
        raise ValueError("no images given")
    return torch.cat(out)


def kid(feats_a: torch.Tensor, feats_b: torch.Tensor) -> float:
    r"""Kernel distance of two feature sets: the unbiased estimate of MMD² with the cubic polynomial kernel
    :math:`k(x, y) = (x^\top y / d + 1)^3` (Bińkowski et al., 2018, the *kernel inception distance* when the
    features are Inception's), over all pairs of the two sets (no subsets).

    Unbiased: about 0 (and possibly slightly negative) for two samples of one distribution.
    """
    a, b = torch.as_tensor(feats_a, dtype=torch.float64), torch.as_tensor(feats_b, dtype=torch.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(
            f"kid needs two feature matrices [N, D] of the same D, got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    m, n, d = a.shape[0], b.shape[0], a.shape[1]
    if min(m, n) < 2:
        raise ValueError(f"kid needs at least 2 samples in each set, got {m} and {n}")
    k_aa = (a @ a.T / d + 1.0) ** 3
    k_bb = (b @ b.T / d + 1.0) ** 3
    k_ab = (a @ b.T / d + 1.0) ** 3
    within_a = (k_aa.sum() - k_aa.diagonal().sum()) / (m * (m - 1))
    within_b = (k_bb.sum() - k_bb.diagonal().sum()) / (n * (n - 1))
    return float(within_a + within_b - 2.0 * k_ab.mean())


class DigitsClassifier(torch.nn.Module):
    """A small conv net classifying 8 x 8 digits ``[B, 1, 8, 8]`` in ``[0, 1]``; its 64 penultimate
    (pre-activation) units are the features of the miniature's Fréchet distance, the convention for
    MNIST-like data where Inception-v3 (trained on 299 x 299 photographs) does not fit.

    conv 3x3 (32) -> ReLU -> conv 3x3 (64) -> ReLU -> max-pool 2 -> conv 3x3 (64) -> ReLU ->
    max-pool 2 -> FC 64 (the features) -> ReLU -> FC 10. After training, the features are
    standardised with the mean and standard deviation of the training digits' features (stored
    as buffers), so that distances are in units of the real data's spread.
    """

    def __init__(self, dim: int = 64):
        super().__init__()
        c = torch.nn
        self.body = c.Sequential(
            c.Conv2d(1, 32, 3, padding=1),
            c.ReLU(),
            c.Conv2d(32, 64, 3, padding=1),
            c.ReLU(),
            c.MaxPool2d(2),
            c.Conv2d(64, 64, 3, padding=1),
            c.ReLU(),
            c.MaxPool2d(2),
            c.Flatten(),
            c.Linear(64 * 2 * 2, dim),
        )
        self.head = c.Sequential(c.ReLU(), c.Linear(dim, 10))
        self.register_buffer("feature_mean", torch.zeros(dim))
        self.register_buffer("feature_std", torch.ones(dim))
        self.name = f"{SCORE_FD_DIGITS.lower()}-conv3-fc{dim}"
        self.test_accuracy = math.nan

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return (self.body(2.0 * x - 1.0) - self.feature_mean) / self.feature_std

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(2.0 * x - 1.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The features (what a feature extractor returns)."""
        return self.features(x)


#: The digits classifier the book's FD-digits-classifier numbers were computed with: shipped inside the
#: package (73k weights, float32), made once by ``python -m tools.digits_classifier`` (seed 0, 40 epochs).
#: A classifier trained on another CPU is a different metric: the same seed and code give other weights
#: there (float rounding differs between instruction sets, and 40 epochs of Adam amplify it), and the FD
#: of the same samples moved by up to 7% between them. So the weights are fixed, like Inception's for FID.
DIGITS_CLASSIFIER_FILE = "weights/digits_classifier.pt"
#: SHA-256 of the shipped file; :func:`digits_classifier` refuses any other unless told to accept it.
DIGITS_CLASSIFIER_SHA256 = "afdb17f5caf9827147d6f3b17f7c568c3b4c98c9e8414ea271eddc36b4dc6d5c"


def train_digits_classifier(seed: int = 0, epochs: int = 40, log: Callable[[str], None] = print) -> DigitsClassifier:
    """Train :class:`DigitsClassifier` on the digits' training split: ``epochs`` of Adam (lr 1e-3), batch 64,
    random +-1 pixel shifts, seeded, on one thread (the caller's thread count is restored). Its features are
    then standardised with the training digits' mean and standard deviation, and ``.test_accuracy`` is set
    from the 360 test digits. The shipped classifier was made this way (:data:`DIGITS_CLASSIFIER_FILE`).
    """
    from .data.images import load_digits

    train, test = load_digits(train=True), load_digits(train=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread: the same weights whatever the caller's setting (on one CPU type)
    try:
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            net = DigitsClassifier()
            gen = torch.Generator().manual_seed(seed)
            opt = torch.optim.Adam(net.parameters(), lr=1e-3)
            x, y = train.images, train.labels
            net.train()
            for _ in range(epochs):
                perm = torch.randperm(len(x), generator=gen)
                for start in range(0, len(x), 64):
                    idx = perm[start : start + 64]
                    shift = torch.randint(-1, 2, (2,), generator=gen).tolist()  # +-1 pixel: a little augmentation
                    xb = torch.roll(x[idx], shifts=shift, dims=(2, 3))
                    loss = torch.nn.functional.cross_entropy(net.logits(xb), y[idx])
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
    finally:
        torch.set_num_threads(threads)
    net.eval()
    with torch.no_grad():
        net.test_accuracy = float((net.logits(test.images).argmax(1) == test.labels).double().mean())
        raw = net.body(2.0 * x - 1.0)
        net.feature_mean.copy_(raw.mean(0))
        net.feature_std.copy_(raw.std(0).clamp_min(1e-6))
    log(
        f"trained the digits classifier (seed {seed}, {epochs} epochs on {len(train)} training digits):\n"
        f"  test accuracy {net.test_accuracy:.4f} on {len(test)} held-out digits"
    )
    return net


def save_digits_classifier(net: DigitsClassifier, path: Union[str, Path], **about: Any) -> str:
    """Write ``net`` in the book's checkpoint format (with its test accuracy and ``about``); return the
    file's SHA-256."""
    from . import checkpoints

    checkpoints.save({"model": net.state_dict(), "test_accuracy": net.test_accuracy, **about}, path)
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _shipped_classifier() -> Path:
    from importlib.resources import files

    return Path(str(files("molli_utils").joinpath(DIGITS_CLASSIFIER_FILE)))


def digits_classifier(
    path: Union[str, Path, None] = None,
    *,
    sha256: Optional[str] = DIGITS_CLASSIFIER_SHA256,
    device: Union[str, torch.device] = "cpu",
    log: Callable[[str], None] = print,
) -> DigitsClassifier:
    """The feature extractor of the miniature: the :class:`DigitsClassifier` shipped with the package
    (:data:`DIGITS_CLASSIFIER_FILE`), or the one at ``path``, in eval mode on ``device``.

    The file must be intact (the checkpoint format's own check) and, unless ``sha256=None``, be exactly
    the shipped one: a classifier retrained elsewhere gives other FDs, and is refused with what to do.
    ``.test_accuracy`` is its accuracy on the 360 test digits, stored with the weights; ``log`` prints it.
    """
    from . import checkpoints

    path = _shipped_classifier() if path is None else Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"the digits classifier {path} is missing: reinstall molli_utils "
            "(pip install --force-reinstall molli-utils), or in a checkout "
            f"`git checkout -- molli_utils/{DIGITS_CLASSIFIER_FILE}`"
        )
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if sha256 is not None and digest != sha256:
        raise checkpoints.CheckpointError(
            f"the digits classifier {path} is not the one the book's {SCORE_FD_DIGITS} numbers were computed with "
            f"(SHA-256 {digest[:16]}..., expected {sha256[:16]}...): it is damaged or was retrained. Restore it "
            f"(reinstall molli_utils, or `git checkout -- molli_utils/{DIGITS_CLASSIFIER_FILE}`); to score with a "
            "classifier of your own on purpose, pass sha256=None, and compare its numbers only with each other."
        )
    state = checkpoints.load(path)
    net = DigitsClassifier()
    net.load_state_dict(state["model"])
    net.test_accuracy = float(state["test_accuracy"])
    log(f"digits classifier: test accuracy {net.test_accuracy:.4f}\n  ({path.name}, SHA-256 {digest[:12]})")
    net.requires_grad_(False)
    return net.eval().to(device)
