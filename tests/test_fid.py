"""In-memory FID: streaming statistics, pytorch-fid's distance, reference cache, offline Inception error.

All numbers here use a small injected feature extractor: they test the pipeline, they are not FID.
"""

import urllib.error

import numpy as np
import pytest
import torch
from pytorch_fid.fid_score import calculate_frechet_distance

from molli_utils import fid as F
from molli_utils.data.images import ImageData

pytestmark = pytest.mark.usefixtures("one_thread")


class LinearFeatures:
    """A fixed random linear map of the flattened image (float64, so batching cannot change it)."""

    name = "test-linear-32"

    def __init__(self, pixels=3 * 16 * 16, dim=32, seed=0):
        self.weight = torch.randn(pixels, dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        self.calls = 0

    def __call__(self, x):
        self.calls += 1
        return x.flatten(1).double() @ self.weight


def _images(n=120, seed=0):
    return torch.rand(n, 3, 16, 16, generator=torch.Generator().manual_seed(seed))


def test_streaming_statistics_equal_numpy():
    x, ext = _images(), LinearFeatures()
    feats = ext(x).numpy()
    for batch_size in (7, 50, 1000):
        mu, sigma = F.activation_statistics(x, ext, batch_size=batch_size)
        assert np.allclose(mu, feats.mean(0), rtol=0, atol=1e-10)
        assert np.allclose(sigma, np.cov(feats, rowvar=False), rtol=0, atol=1e-10)
    mu_it, sigma_it = F.activation_statistics([x[:50], x[50:]], ext, batch_size=16)  # an iterable of batches
    assert np.allclose(mu_it, feats.mean(0), atol=1e-10) and np.allclose(sigma_it, np.cov(feats, rowvar=False), atol=1e-10)
    data = ImageData("random", "all", x, "uniform noise")
    assert np.allclose(F.activation_statistics(data, ext)[1], sigma_it, atol=1e-10)


@pytest.mark.filterwarnings("ignore:The `disp` argument is deprecated:DeprecationWarning")
def test_fid_is_pytorch_fid_distance_and_batch_size_free():
    gen, ref, ext = _images(seed=1), _images(seed=2), LinearFeatures()
    f_gen, f_ref = ext(gen).numpy(), ext(ref).numpy()
    expected = calculate_frechet_distance(f_gen.mean(0), np.cov(f_gen, rowvar=False), f_ref.mean(0), np.cov(f_ref, rowvar=False))
    ref_stats = F.activation_statistics(ref, ext)
    values = [F.fid(gen, ref_stats, ext, batch_size=b) for b in (1, 13, 64, 500)]
    assert abs(values[0] - expected) < 1e-6 * max(1.0, abs(expected))
    assert max(values) - min(values) < 1e-8


def test_fid_of_a_set_against_itself_is_zero():
    x, ext = _images(), LinearFeatures()
    assert abs(F.fid(x, F.activation_statistics(x, ext), ext, batch_size=32)) < 1e-6
    assert F.fid(_images(seed=5) * 0.5, F.activation_statistics(x, ext), ext) > 1.0  # a different set is far


def test_bad_inputs():
    ext = LinearFeatures()
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        F.activation_statistics(_images() * 2 - 1, ext)
    with pytest.raises(ValueError, match="at least 2"):
        F.activation_statistics(_images(1), ext)
    with pytest.raises(ValueError, match="batch_size"):
        F.activation_statistics(_images(), ext, batch_size=0)
    with pytest.raises(ValueError, match="same feature extractor"):
        F.frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))


def test_reference_statistics_are_cached_by_data_and_extractor(tmp_path):
    ext = LinearFeatures()
    stats = F.reference_statistics("sklearn-sample-patches", ext, cache_dir=tmp_path, size=16, n=40)
    assert ext.calls > 0
    files = list(tmp_path.glob("*.npz"))
    assert [f.name for f in files] == ["sklearn-sample-patches-all-16-n40__test-linear-32.npz"]
    calls = ext.calls
    again = F.reference_statistics("sklearn-sample-patches", ext, cache_dir=tmp_path, size=16, n=40)
    assert ext.calls == calls  # read from the cache
    assert np.array_equal(stats[0], again[0]) and np.array_equal(stats[1], again[1])
    with np.load(files[0]) as saved:
        assert str(saved["data_name"]) == "sklearn-sample-patches" and int(saved["n"]) == 40
    other = LinearFeatures(seed=1)
    other.name = "test-linear-32-seed1"
    F.reference_statistics("sklearn-sample-patches", other, cache_dir=tmp_path, size=16, n=40)
    assert len(list(tmp_path.glob("*.npz"))) == 2
    with pytest.raises(ValueError, match="extractor_name"):
        F.reference_statistics("sklearn-sample-patches", lambda x: x.flatten(1), cache_dir=tmp_path, size=16, n=4)


def test_fid_cache_root_env(monkeypatch, tmp_path):
    monkeypatch.setenv("MOLLI_DATA", str(tmp_path))
    assert F.fid_cache_root() == tmp_path / "fid"


def test_inception_offline_error(monkeypatch):
    def no_network(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr("pytorch_fid.inception.load_state_dict_from_url", no_network)
    with pytest.raises(RuntimeError) as err:
        F.inception_extractor("cpu")
    msg = str(err.value)
    assert "Inception weights" in msg and F.INCEPTION_WEIGHTS in msg and "Colab" in msg and "checkpoints" in msg


def test_inception_wrapper_shape_with_random_weights(monkeypatch):
    """The wrapper's plumbing (not the weights): torchvision's Inception-v3 architecture, random init."""
    import pytorch_fid.inception as inc

    monkeypatch.setattr(inc, "fid_inception_v3", lambda: inc._inception_v3(num_classes=1008, aux_logits=False, weights=None))
    ext = F.inception_extractor("cpu")
    assert ext.name == F.INCEPTION_NAME and not ext.training
    with torch.no_grad():
        feats = ext(torch.rand(2, 3, 32, 32))
    assert feats.shape == (2, 2048) and torch.isfinite(feats).all()
