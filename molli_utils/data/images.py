"""Image data sets of the paper's VAE experiments (Sec. 4.2, Appendix D.3.2), and an offline stand-in.

Every loader returns an :class:`ImageData`: a float32 tensor ``[N, 3, H, W]`` with
values in ``[0, 1]`` (the benchmark decoders of pythae end in a sigmoid) together
with the **name** of the data set it holds, so that every figure, table and FID
statistic can say which data it used. Nothing is ever silently replaced: when
CIFAR-10 or CelebA is not on disk and cannot be downloaded, the loader raises.

=========================== ================= =================================================
name                        shape             source
=========================== ================= =================================================
``cifar10``                 N x 3 x 32 x 32   torchvision ``CIFAR10``, official train/test split
``celeba``                  N x 3 x 64 x 64   torchvision ``CelebA``, official train/test split,
                                              148 x 148 centre crop, resized to 64 x 64
``sklearn-sample-patches``  N x 3 x s x s     patches of scikit-learn's two bundled photos
                                              (``china.jpg``, ``flower.jpg``); offline, for CI
``digits``                  N x 1 x 8 x 8     scikit-learn's handwritten digits (1,797 real
                                              images, 17 grey levels), fixed 1,437 / 360
                                              train/test split; offline (Table 1 in miniature)
=========================== ================= =================================================

Every image holds ``levels`` grey levels per channel (256 for the photographs, 17 for the
digits): pixel values are ``k / (levels - 1)``, ``k = 0, ..., levels - 1``. The flows'
dequantisation and bits per dimension use it (:mod:`molli_utils.models.image_flows`).

The torchvision files live in ``ROOT`` = the ``root`` argument, else
``$MOLLI_DATA/images``, else ``$XDG_CACHE_HOME/molli_utils/images`` (default
``~/.cache/molli_utils/images``).
"""

from __future__ import annotations

import os
import urllib.error
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch

from ..runtime import data_root, new_folders

__all__ = [
    "IMAGE_NAMES",
    "SAMPLE_PATCHES",
    "DIGITS",
    "DIGITS_TEST",
    "ImageData",
    "images_root",
    "load_images",
    "sample_patches",
    "load_digits",
]

#: Data sets that :func:`load_images` reads through torchvision.
IMAGE_NAMES = ("cifar10", "celeba")
#: Name of the offline real-photo set of :func:`sample_patches`.
SAMPLE_PATCHES = "sklearn-sample-patches"
#: Name of scikit-learn's handwritten digits (:func:`load_digits`), the data of Table 1 in miniature.
DIGITS = "digits"
#: Size of the digits' fixed test split (the other 1,437 images are the training split).
DIGITS_TEST = 360

_NATIVE_SIZE = {"cifar10": 32, "celeba": 64}
_CELEBA_CROP = 148


@dataclass(frozen=True)
class ImageData:
    """Images of one named data set: ``images`` is float32 ``[N, C, H, W]`` with values in ``[0, 1]``.

    ``levels``: grey levels per channel (values ``k / (levels - 1)``); ``labels``: the class of
    each image where the data set has them (the digits), else ``None``.
    """

    name: str
    split: str
    images: torch.Tensor
    source_note: str
    levels: int = 256
    labels: Optional[torch.Tensor] = None

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def shape(self) -> tuple[int, int, int]:
        """The shape of one image, ``(C, H, W)`` (pythae's ``input_dim``)."""
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    @property
    def key(self) -> str:
        """A file-name-safe identifier, e.g. ``cifar10-train-32`` (used to cache FID statistics)."""
        return f"{self.name}-{self.split}-{self.images.shape[-1]}"


def images_root(root: Union[str, Path, None] = None) -> Path:
    """``root``, else ``$MOLLI_DATA/images``, else ``$XDG_CACHE_HOME/molli_utils/images`` (default ``~/.cache/...``)."""
    return data_root("images", root)


def _transform(name: str, image_size: int):
    """torchvision transform: CelebA is centre-cropped to 148 x 148 first; then resize (if needed) and ``ToTensor``."""
    from torchvision import transforms as T

    steps = [T.CenterCrop(_CELEBA_CROP)] if name == "celeba" else []
    if name == "celeba" or image_size != _NATIVE_SIZE[name]:
        steps.append(T.Resize(image_size, antialias=True))
    steps.append(T.ToTensor())  # uint8 HWC -> float CHW in [0, 1]
    return T.Compose(steps)


def _missing(name: str, folder: Path, download: bool, err: BaseException) -> RuntimeError:
    """The error raised when ``name`` is neither on disk nor downloadable."""
    how = "the download failed (no network?)" if download else "download=False"
    return RuntimeError(
        f"the {name} image data set is not in {folder} and {how}: {type(err).__name__}: {err}. "
        f"Fix: run once on a machine with network access (e.g. Colab) with download=True, or put "
        f"torchvision's {name} files in {folder} (set $MOLLI_DATA or pass root=...). "
        f"For an offline smoke test use molli_utils.data.images.sample_patches() instead, "
        f"which is a different data set ({SAMPLE_PATCHES!r})."
    )


def _torchvision_dataset(name: str, folder: Path, train: bool, download: bool, transform):
    from torchvision import datasets

    if name == "cifar10":
        return datasets.CIFAR10(str(folder), train=train, download=download, transform=transform)
    split = "train" if train else "test"
    return datasets.CelebA(str(folder), split=split, target_type=[], download=download, transform=transform)


def _download_into(name: str, folder: Path, train: bool, transform) -> None:
    """Download ``name`` with torchvision into a temporary folder inside ``folder`` and move what it wrote into
    ``folder`` only once the download succeeded: a failed or interrupted download leaves nothing behind."""
    import shutil
    import tempfile

    with tempfile.TemporaryDirectory(dir=folder, prefix=".download-") as tmp:
        _torchvision_dataset(name, Path(tmp), train, True, transform)
        for entry in Path(tmp).iterdir():
            target = folder / entry.name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)  # a damaged copy that failed torchvision's check above
            os.replace(entry, target)


def _stack(dataset, limit: Optional[int]) -> torch.Tensor:
    """The first ``limit`` (all if None) transformed images of ``dataset`` as one float32 tensor."""
    n = len(dataset) if limit is None else min(limit, len(dataset))
    if isinstance(getattr(dataset, "data", None), np.ndarray) and len(dataset.transform.transforms) == 1:
        # CIFAR-10 at its native size: ToTensor of the uint8 HWC array, without PIL
        return torch.from_numpy(dataset.data[:n]).permute(0, 3, 1, 2).float().div(255.0).contiguous()
    first = dataset[0][0] if n else torch.empty(0)
    out = torch.empty((n, *first.shape), dtype=torch.float32)
    for i in range(n):
        out[i] = dataset[i][0]
    return out


def load_images(
    name: str,
    root: Union[str, Path, None] = None,
    *,
    train: bool = True,
    download: bool = True,
    image_size: Optional[int] = None,
    limit: Optional[int] = None,
) -> ImageData:
    """Load CIFAR-10 or CelebA (paper Appendix D.3.2) as float32 ``[N, 3, H, W]`` in ``[0, 1]``.

    ``train`` picks the official training or test split. ``image_size`` defaults to
    32 (CIFAR-10) and 64 (CelebA, after a 148 x 148 centre crop). ``limit`` keeps
    the first ``limit`` images: the whole CelebA training split is 162,770 images,
    8 GB as float32 at 64 x 64. Offline with nothing on disk this raises a
    ``RuntimeError`` naming the data set, the folder and the fix; it never
    substitutes another data set.
    """
    if name not in IMAGE_NAMES:
        raise ValueError(
            f"unknown image data set {name!r}; choose one of {list(IMAGE_NAMES)} "
            f"(or sample_patches() for the offline {SAMPLE_PATCHES!r} set)"
        )
    size = _NATIVE_SIZE[name] if image_size is None else int(image_size)
    if size <= 0 or (name == "celeba" and size > _CELEBA_CROP):
        raise ValueError(
            f"image_size must be a positive number of pixels (at most {_CELEBA_CROP} for celeba), got {image_size}"
        )
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be None (all images) or >= 0, got {limit}")
    folder = images_root(root)
    transform = _transform(name, size)
    try:
        with new_folders(folder):  # a failed download removes the folders made here
            try:
                dataset = _torchvision_dataset(name, folder, train, False, transform)  # already on disk
            except (OSError, RuntimeError):
                if not download:
                    raise
                _download_into(name, folder, train, transform)
                dataset = _torchvision_dataset(name, folder, train, False, transform)
    except (urllib.error.URLError, OSError, RuntimeError) as err:
        raise _missing(name, folder, download, err) from err
    split = "train" if train else "test"
    crop = ", 148x148 centre crop" if name == "celeba" else ""
    note = f"torchvision {type(dataset).__name__} ({split} split{crop}, {size}x{size}) from {folder}"
    return ImageData(name, split, _stack(dataset, limit), note)


def _grid_patches(image: np.ndarray, size: int) -> list[np.ndarray]:
    """Non-overlapping ``size x size`` patches of an ``H x W x 3`` image, row by row."""
    h, w = image.shape[0] // size, image.shape[1] // size
    return [image[i * size : (i + 1) * size, j * size : (j + 1) * size] for i in range(h) for j in range(w)]


def sample_patches(size: int = 32, n: Optional[int] = None, seed: int = 0) -> ImageData:
    """Offline real photos: ``size x size`` RGB patches of scikit-learn's two sample images, in ``[0, 1]``.

    The two bundled photos (``china.jpg``, ``flower.jpg``, 427 x 640) are cut into a
    grid of non-overlapping patches (for ``size=32``: 2 x 13 x 20 = 520 patches).
    ``n=None`` returns the whole grid in order; a smaller ``n`` a random subset of it
    and a larger ``n`` the grid plus random crops, both drawn with ``seed``. The result
    is named ``"sklearn-sample-patches"``: it is *not* CIFAR-10 and stands in for it
    only where the network is missing (CI).
    """
    from sklearn.datasets import load_sample_images

    if not isinstance(size, int) or not 4 <= size <= 427:
        raise ValueError(f"size must be an integer number of pixels in [4, 427], got {size!r}")
    if n is not None and (not isinstance(n, int) or n < 0):
        raise ValueError(f"n must be None (the whole grid) or a non-negative integer, got {n!r}")
    photos = load_sample_images()
    patches = [p for image in photos.images for p in _grid_patches(image, size)]
    rng = np.random.default_rng(seed)
    if n is not None and n <= len(patches):
        patches = [patches[i] for i in rng.permutation(len(patches))[:n]]
    elif n is not None:
        for _ in range(n - len(patches)):
            image = photos.images[rng.integers(len(photos.images))]
            i, j = rng.integers(image.shape[0] - size + 1), rng.integers(image.shape[1] - size + 1)
            patches.append(image[i : i + size, j : j + size])
    array = np.stack(patches).astype(np.float32) / 255.0
    images = torch.from_numpy(array).permute(0, 3, 1, 2).contiguous()
    names = ", ".join(Path(f).name for f in photos.filenames)
    note = f"{len(images)} patches {size}x{size} of scikit-learn's sample photos ({names}), seed {seed}"
    return ImageData(SAMPLE_PATCHES, "all", images, note)


def load_digits(train: bool = True) -> ImageData:
    """scikit-learn's handwritten digits (offline): 1,797 real 8 x 8 images with 17 grey levels, as
    float32 ``[N, 1, 8, 8]`` in ``[0, 1]`` (``k / 16``) with their labels.

    The split is fixed: a permutation drawn once with ``numpy.random.default_rng(0)`` puts
    :data:`DIGITS_TEST` = 360 images in the test split (``train=False``) and the other 1,437 in
    the training split. The result is named ``"digits"``.
    """
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    values = np.asarray(bunch.images, dtype=np.float32)
    if values.shape != (1797, 8, 8) or values.min() < 0 or values.max() > 16:
        raise RuntimeError(
            f"scikit-learn's digits changed: shape {values.shape}, values in [{values.min()}, {values.max()}] "
            "(expected 1797 images of 8 x 8 with values 0..16)"
        )
    order = np.random.default_rng(0).permutation(len(values))
    index = order[DIGITS_TEST:] if train else order[:DIGITS_TEST]
    images = torch.from_numpy(values[index] / 16.0).unsqueeze(1).contiguous()
    labels = torch.from_numpy(np.asarray(bunch.target)[index].astype(np.int64))
    split = "train" if train else "test"
    note = (
        f"scikit-learn's handwritten digits (UCI optdigits test set), {split} split of {len(index)} of 1,797, "
        "8x8, 17 grey levels; fixed split: numpy default_rng(0) permutation, first 360 = test"
    )
    return ImageData(DIGITS, split, images, note, levels=17, labels=labels)
