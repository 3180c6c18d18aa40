"""Issue #32, "silent defaults": what used to pass silently is refused with the fix; a failed download leaves
nothing behind."""

import math
import urllib.error
import urllib.request

import numpy as np
import pytest
import torch

from molli_utils import runtime
from molli_utils.data import images as image_data
from molli_utils.data import uci as uci_data
from molli_utils.mollifiers import Mollifier
from molli_utils.schedules import log_snr
from molli_utils.training import TrainConfig, train


def test_a_mollifier_that_mollifies_needs_its_horizon():
    for kind in ("gaussian", "blur"):
        with pytest.raises(ValueError, match=rf"Mollifier\('{kind}'\) needs horizon=T"):
            Mollifier(kind)
    with pytest.raises(ValueError, match="needs horizon"):
        Mollifier()
    vanilla = Mollifier("none")
    x = torch.randn(4, 2)
    assert vanilla(x, 0) is x and vanilla.noise_level(0) == 0.0
    assert Mollifier("gaussian", 100).noise_level(50) > 0  # positional, as before


def test_blur_refuses_points():
    with pytest.raises(ValueError, match=r"blurs a batch of images.*\(256, 2\).*Mollifier\('gaussian'"):
        Mollifier("blur", horizon=10)(torch.randn(256, 2), 0)
    images = torch.rand(3, 1, 8, 8)
    assert Mollifier("blur", horizon=10)(images, 0).shape == images.shape


@pytest.mark.parametrize("value", [1.5, -0.1, math.nan, np.array([0.5, 1.5]), torch.tensor([-0.2, 0.3])])
def test_log_snr_refuses_a_noise_level_outside_0_1(value):
    with pytest.raises(ValueError, match=r"noise_level must lie in \[0, 1\]"):
        log_snr(value)
    assert log_snr(0.0) == math.inf and log_snr(1.0) == -math.inf and log_snr(0.5) == 0.0


def test_a_cuda_index_beyond_the_gpus_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ValueError, match=r"'cuda:7' was requested but this machine has 1 visible CUDA GPU\(s\)"):
        runtime.pick_device("cuda:7")
    assert runtime.pick_device("cuda:0") == torch.device("cuda:0")


def test_train_refuses_a_device_this_machine_lacks_before_any_step(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)

    class Never(torch.nn.Module):
        def forward_kld(self, x):
            raise AssertionError("no step may run")

    with pytest.raises(ValueError, match="no CUDA GPU is visible"):
        train(Never(), torch.randn(8, 2), TrainConfig(batch_size=4, lr=1e-3, steps=1, device="cuda:7"))


def _offline(*args, **kwargs):
    raise urllib.error.URLError("no network (test)")


def test_a_failed_uci_download_leaves_nothing_behind(tmp_path, monkeypatch):
    monkeypatch.setattr(urllib.request, "urlopen", _offline)
    root = tmp_path / "cache" / "uci"
    with pytest.raises(FileNotFoundError, match="downloading .* failed"):
        uci_data.load_uci("miniboone", root)
    assert list(tmp_path.iterdir()) == []  # not even the cache folders


def test_a_uci_download_cut_midway_leaves_nothing_behind(tmp_path, monkeypatch):
    class Cut:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def read(self, n=-1):
            raise OSError("connection reset (test)")

    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: Cut())
    (tmp_path / "uci").mkdir()  # an existing root stays; the data set's folder and the partial file go
    with pytest.raises(FileNotFoundError, match="connection reset"):
        uci_data.load_uci("redwine", tmp_path / "uci")
    assert list((tmp_path / "uci").iterdir()) == []


def test_a_failed_image_download_leaves_nothing_behind(tmp_path, monkeypatch):
    calls = []

    def fake(name, folder, train, download, transform):
        calls.append(download)
        if not download:
            raise RuntimeError("Dataset not found or corrupted.")
        (folder / "cifar-10-python.tar.gz").write_bytes(b"partial")
        raise urllib.error.URLError("no network (test)")

    monkeypatch.setattr(image_data, "_torchvision_dataset", fake)
    with pytest.raises(RuntimeError, match="not in .* and the download failed"):
        image_data.load_images("cifar10", tmp_path / "cache" / "images")
    assert calls == [False, True] and list(tmp_path.iterdir()) == []


def test_a_finished_image_download_is_moved_into_place(tmp_path, monkeypatch):
    folder = tmp_path / "images"

    class Fake:
        data = np.zeros((2, 32, 32, 3), dtype=np.uint8)

        class transform:
            transforms = [None]

        def __len__(self):
            return 2

    def fake(name, where, train, download, transform):
        if download:
            (where / "cifar-10-batches-py").mkdir()
            (where / "cifar-10-batches-py" / "data_batch_1").write_bytes(b"x")
            return Fake()
        if not (where / "cifar-10-batches-py" / "data_batch_1").exists():
            raise RuntimeError("Dataset not found or corrupted.")
        return Fake()

    monkeypatch.setattr(image_data, "_torchvision_dataset", fake)
    data = image_data.load_images("cifar10", folder)
    assert data.images.shape == (2, 3, 32, 32)
    assert sorted(p.name for p in folder.iterdir()) == ["cifar-10-batches-py"]  # no temporary folder left
