"""In-memory FID: streaming statistics, the Fréchet distance (pytorch-fid's value, closed forms), reference
cache, offline Inception error.

All numbers here use a small injected feature extractor: they test the pipeline, they are not FID.
"""

import urllib.error
import warnings

import numpy as np
import pytest
import scipy
import scipy.linalg
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
    assert np.allclose(mu_it, feats.mean(0), atol=1e-10) and np.allclose(
        sigma_it, np.cov(feats, rowvar=False), atol=1e-10
    )
    data = ImageData("random", "all", x, "uniform noise")
    assert np.allclose(F.activation_statistics(data, ext)[1], sigma_it, atol=1e-10)


def _pytorch_fid(mu1, sigma1, mu2, sigma2):
    """pytorch-fid's own ``calculate_frechet_distance``, or a skip where it cannot run: pytorch-fid 0.3.0 passes
    ``scipy.linalg.sqrtm(..., disp=False)``, an argument scipy 1.18 (Python >= 3.12) removed."""
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The `disp` argument is deprecated", category=DeprecationWarning)
            return float(calculate_frechet_distance(mu1, sigma1, mu2, sigma2))
    except TypeError as err:
        if "disp" not in str(err):
            raise
        pytest.skip(
            f"pytorch-fid's calculate_frechet_distance raises with scipy {scipy.__version__} ({err}); "
            "molli_utils.fid computes the distance itself, checked here by the closed forms and sqrtm"
        )


def _stats(feats):
    return feats.mean(0), np.cov(feats, rowvar=False)


def _feature_sets(d, n, seed):
    """Two correlated, differently scaled feature sets [n, d] (non-commuting covariances)."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((n, d)) @ rng.standard_normal((d, d)) + rng.standard_normal(d)
    b = rng.standard_normal((n, d)) @ (rng.standard_normal((d, d)) * rng.uniform(0.2, 3.0, d)) + 0.3
    return a, b


def _sqrtm_distance(mu1, sigma1, mu2, sigma2):
    """The textbook formula with scipy's general sqrtm (no ``disp``: runs on every scipy); an independent route."""
    sigma1, sigma2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
    covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean).real)


# Feature sets [n, d]: full rank, and fewer samples than features (rank 19 of 64, a singular product).
SETS = [(2, 40, 1), (3, 30, 0), (16, 200, 2), (64, 500, 3), (256, 1000, 4), (64, 20, 5)]


@pytest.mark.parametrize("d, n, seed", SETS)
def test_frechet_distance_is_pytorch_fids(d, n, seed):
    a, b = _feature_sets(d, n, seed)
    assert F.frechet_distance(*_stats(a), *_stats(b)) == pytest.approx(_pytorch_fid(*_stats(a), *_stats(b)), rel=1e-6)


@pytest.mark.parametrize("d, n, seed", SETS)
def test_frechet_distance_is_the_sqrtm_formula(d, n, seed):
    a, b = _feature_sets(d, n, seed)
    assert F.frechet_distance(*_stats(a), *_stats(b)) == pytest.approx(
        _sqrtm_distance(*_stats(a), *_stats(b)), rel=1e-6
    )


def test_fid_is_the_distance_of_the_features_and_batch_size_free():
    gen, ref, ext = _images(seed=1), _images(seed=2), LinearFeatures()
    f_gen, f_ref = ext(gen).numpy(), ext(ref).numpy()
    ref_stats = F.activation_statistics(ref, ext)
    values = [F.fid(gen, ref_stats, ext, batch_size=b) for b in (1, 13, 64, 500)]
    assert max(values) - min(values) < 1e-8
    assert values[0] == pytest.approx(F.frechet_distance(*_stats(f_gen), *_stats(f_ref)), rel=1e-9)


def test_frechet_distance_closed_forms():
    rng = np.random.default_rng(0)
    # Diagonal covariances commute: FD = sum (mu1 - mu2)^2 + sum (sqrt(a) - sqrt(b))^2.
    mu1, mu2, a, b = rng.standard_normal(8), rng.standard_normal(8), rng.uniform(0.1, 4, 8), rng.uniform(0.1, 4, 8)
    expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert F.frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-12)
    assert F.frechet_distance(0.5, 4.0, -1.0, 9.0) == pytest.approx(1.5**2 + (2 - 3) ** 2, rel=1e-12)  # scalars: 1-D
    # 2x2 covariances that do not commute: A = S1 S2 has eigenvalues >= 0, and tr A^(1/2) = sqrt(tr A + 2 sqrt(det A)).
    s1 = np.array([[2.0, 0.9], [0.9, 1.0]])
    s2 = np.array([[0.5, -0.3], [-0.3, 3.0]])
    tr_root = np.sqrt(np.trace(s1 @ s2) + 2 * np.sqrt(np.linalg.det(s1) * np.linalg.det(s2)))
    expected = np.trace(s1) + np.trace(s2) - 2 * tr_root
    assert F.frechet_distance(np.zeros(2), s1, np.zeros(2), s2) == pytest.approx(expected, rel=1e-12)
    # The closed form tells the formula from the usual slips: these wrong values are all far from it.
    roots = [np.real(scipy.linalg.sqrtm(s)) for s in (s1, s2)]
    wrong = {
        "factor 2 missing": np.trace(s1) + np.trace(s2) - tr_root,
        "tr(S1^1/2 S2^1/2)": np.trace(s1) + np.trace(s2) - 2 * np.trace(roots[0] @ roots[1]),
        "elementwise sqrt": np.trace(s1) + np.trace(s2) - 2 * np.sqrt(np.abs(s1 @ s2)).trace(),
    }
    for name, value in wrong.items():
        assert abs(value - expected) > 1e-3, name


def test_frechet_distance_is_symmetric_and_zero_for_one_set():
    a, b = _feature_sets(64, 500, 5)
    assert F.frechet_distance(*_stats(a), *_stats(b)) == pytest.approx(
        F.frechet_distance(*_stats(b), *_stats(a)), rel=1e-9
    )
    # Fewer samples than features (rank 19 of 64): 0 against itself to rounding (sqrtm's route, pytorch-fid's,
    # gives -1.6e-4 there: square roots of the product's rounded zero eigenvalues).
    assert abs(F.frechet_distance(*_stats(a[:20]), *_stats(a[:20]))) < 1e-8
    # Copies of one point: a zero covariance, FD = ||mu - f||^2 + tr(Sigma_ref) (the image scorer's one_image).
    mu, sigma = _stats(b)
    assert F.frechet_distance(a[0], np.zeros((64, 64)), mu, sigma) == pytest.approx(
        ((a[0] - mu) ** 2).sum() + np.trace(sigma), rel=1e-12
    )


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
    with pytest.raises(ValueError, match=r"\[D, D\]"):
        F.frechet_distance(np.zeros(2), np.eye(3), np.zeros(2), np.eye(3))
    with pytest.raises(ValueError, match="non-finite"):
        F.frechet_distance(np.zeros(2), np.diag([1.0, np.nan]), np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match="sigma1 is not a covariance"):
        F.frechet_distance(np.zeros(2), np.diag([1.0, -0.5]), np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match="sigma2 is not a covariance"):  # eigenvalues 3 and -1
        F.frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), np.array([[1.0, 2.0], [2.0, 1.0]]))


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

    monkeypatch.setattr(
        inc, "fid_inception_v3", lambda: inc._inception_v3(num_classes=1008, aux_logits=False, weights=None)
    )
    ext = F.inception_extractor("cpu")
    assert ext.name == F.INCEPTION_NAME and not ext.training
    with torch.no_grad():
        feats = ext(torch.rand(2, 3, 32, 32))
    assert feats.shape == (2, 2048) and torch.isfinite(feats).all()
