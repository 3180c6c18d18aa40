"""Image data: the offline photo patches, CIFAR-10 loading (fake files), and the offline errors."""

import pickle
import urllib.error

import numpy as np
import pytest
import torch

from molli_utils.data import images as im

pytestmark = pytest.mark.usefixtures("one_thread")


def test_sample_patches_grid_is_named_and_in_unit_range():
    data = im.sample_patches(32)
    assert data.name == "sklearn-sample-patches" and data.name == im.SAMPLE_PATCHES
    assert data.images.shape == (2 * 13 * 20, 3, 32, 32) and data.images.dtype == torch.float32
    assert 0.0 <= float(data.images.min()) and float(data.images.max()) <= 1.0
    assert "china.jpg" in data.source_note and "flower.jpg" in data.source_note
    assert data.shape == (3, 32, 32) and len(data) == 520
    # the first grid patch is the top-left corner of china.jpg
    from sklearn.datasets import load_sample_images

    china = load_sample_images().images[0][:32, :32].astype(np.float32) / 255
    assert np.allclose(data.images[0].permute(1, 2, 0).numpy(), china)


def test_sample_patches_subset_and_extra_crops_are_seeded():
    a, b = im.sample_patches(16, n=50, seed=1), im.sample_patches(16, n=50, seed=1)
    assert torch.equal(a.images, b.images) and a.images.shape == (50, 3, 16, 16)
    assert not torch.equal(a.images, im.sample_patches(16, n=50, seed=2).images)
    big = im.sample_patches(64, n=200, seed=0)  # grid has 2 * 6 * 10 = 120 patches
    assert big.images.shape == (200, 3, 64, 64)
    assert torch.equal(big.images, im.sample_patches(64, n=200, seed=0).images)


@pytest.mark.parametrize("kwargs", [{"size": 2}, {"size": 32.0}, {"n": -1}])
def test_sample_patches_bad_input(kwargs):
    with pytest.raises(ValueError):
        im.sample_patches(**kwargs)


def test_unknown_name_lists_choices(tmp_path):
    with pytest.raises(ValueError, match="cifar10.*celeba"):
        im.load_images("mnist", tmp_path)


def test_images_root_env(monkeypatch, tmp_path):
    monkeypatch.setenv("MOLLI_DATA", str(tmp_path))
    assert im.images_root() == tmp_path / "images"
    assert im.images_root(tmp_path / "x") == tmp_path / "x"


@pytest.mark.parametrize("name", ["cifar10", "celeba"])
def test_offline_without_files_download_false(tmp_path, name):
    with pytest.raises(RuntimeError) as err:
        im.load_images(name, tmp_path, download=False)
    msg = str(err.value)
    assert name in msg and str(tmp_path) in msg and "network" in msg and "Colab" in msg


def _no_network(*args, **kwargs):
    raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")


@pytest.mark.parametrize(
    "name,target",
    [
        ("cifar10", "torchvision.datasets.cifar.download_and_extract_archive"),
        ("celeba", "torchvision.datasets.celeba.download_file_from_google_drive"),
    ],
)
def test_offline_without_files_download_true(tmp_path, monkeypatch, name, target):
    monkeypatch.setattr(target, _no_network)
    with pytest.raises(RuntimeError) as err:
        im.load_images(name, tmp_path, download=True)
    msg = str(err.value)
    assert name in msg and str(tmp_path) in msg and "download failed" in msg and "URLError" in msg


def _fake_cifar(root, n_per_batch=4):
    """torchvision's CIFAR-10 folder layout with tiny random batches (checksums are patched out)."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(n_per_batch, 3 * 32 * 32), dtype=np.uint8)
        batches[name] = data
        with open(folder / name, "wb") as f:
            pickle.dump({"data": data, "labels": [0] * n_per_batch}, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [str(i) for i in range(10)]}, f)
    return batches


def test_cifar10_loads_as_unit_float(tmp_path, monkeypatch):
    batches = _fake_cifar(tmp_path)
    monkeypatch.setattr("torchvision.datasets.cifar.check_integrity", lambda *a, **k: True)
    train = im.load_images("cifar10", tmp_path, download=False)
    assert train.name == "cifar10" and train.split == "train" and train.key == "cifar10-train-32"
    assert train.images.shape == (20, 3, 32, 32) and train.images.dtype == torch.float32
    expected = torch.from_numpy(batches["data_batch_1"][0].reshape(3, 32, 32)).float() / 255
    assert torch.allclose(train.images[0], expected)
    test = im.load_images("cifar10", tmp_path, train=False, download=False, limit=3)
    assert test.split == "test" and test.images.shape == (3, 3, 32, 32)
    small = im.load_images("cifar10", tmp_path, download=False, image_size=16, limit=2)
    assert small.images.shape == (2, 3, 16, 16)
    assert 0.0 <= float(small.images.min()) and float(small.images.max()) <= 1.0
