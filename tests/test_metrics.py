"""mmd2 against a brute-force evaluation."""

import numpy as np
import pytest
import torch

from molli_utils.metrics import MMDReference, mmd2, rbf_kernel_sums


def brute_mmd2(x, y, ls, var, unbiased):
    k = lambda a, b: var * np.exp(-((a[:, None, :] - b[None, :, :]) ** 2).sum(-1) / (2 * ls**2))
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    n, m = len(x), len(y)
    if unbiased:
        return (
            (kxx.sum() - np.trace(kxx)) / (n * (n - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2 * kxy.mean()
        )
    return kxx.mean() + kyy.mean() - 2 * kxy.mean()


@pytest.mark.parametrize("unbiased", [True, False])
@pytest.mark.parametrize("ls,var", [(1.0, 1.0), (0.5, 1e-4), (2.0, 3.0)])
def test_mmd2_matches_brute_force(unbiased, ls, var):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(300, 3)), rng.normal(loc=0.3, size=(257, 3))
    # block_size smaller than n exercises the tiling, including ragged last tiles
    got = mmd2(x, y, lengthscale=ls, variance=var, unbiased=unbiased, block_size=64)
    assert got == pytest.approx(brute_mmd2(x, y, ls, var, unbiased), rel=1e-9, abs=1e-15)


def test_within_sample_sums_use_symmetry_and_agree_with_all_tiles():
    """A within-sample kernel sum (``x is y``) computes only the tiles on and above the diagonal and counts
    the others twice; it agrees with the sum over all tiles (a copy of x) to float64 rounding, at every
    lengthscale, and MMDReference gives mmd2's value."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(1000, 2, generator=g, dtype=torch.float64)
    y = torch.randn(700, 2, generator=g, dtype=torch.float64) * 1.3
    scales = (1.0, 0.1)
    half = rbf_kernel_sums(x, x, lengthscales=scales, variance=2.0, block_size=128)
    full = rbf_kernel_sums(x, x.clone(), lengthscales=scales, variance=2.0, block_size=128)
    assert half == pytest.approx(full, rel=1e-12) and half[0] > half[1] > 2.0 * len(x)
    ref = MMDReference(y, lengthscales=scales, block_size=128)
    got = ref(x)
    for ls in scales:
        assert got[ls] == pytest.approx(mmd2(x, y, lengthscale=ls, block_size=128), rel=1e-12)
        assert got[ls] == pytest.approx(brute_mmd2(x.numpy(), y.numpy(), ls, 1.0, True), rel=1e-9)


def test_mmd2_scales_with_variance_and_accepts_tensors():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(100, 2)), rng.normal(loc=1.0, size=(120, 2))
    base = mmd2(torch.from_numpy(x).float(), torch.from_numpy(y).float())
    assert mmd2(x, y, variance=1e-4) == pytest.approx(1e-4 * mmd2(x, y), rel=1e-12)
    assert base == pytest.approx(mmd2(x, y), rel=1e-5)


def test_mmd2_same_distribution_near_zero_and_shift_detected():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(2000, 2)), rng.normal(size=(2000, 2))
    assert abs(mmd2(a, b)) < 2e-3
    assert mmd2(a, b + 1.0) > 0.1


def test_mmd2_10k_runs_blockwise():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(10_000, 2, generator=g), torch.randn(10_000, 2, generator=g)
    assert abs(mmd2(a, b)) < 1e-3


def test_mmd2_bad_inputs():
    with pytest.raises(ValueError, match=r"2-D array of samples \[n, d\]"):
        mmd2(np.zeros(5), np.zeros((5, 1)))
    with pytest.raises(ValueError, match="same dimension"):
        mmd2(np.zeros((5, 2)), np.zeros((5, 3)))
    with pytest.raises(ValueError, match="non-finite"):
        mmd2(np.array([[np.nan, 0.0], [0.0, 0.0]]), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="> 0"):
        mmd2(np.zeros((3, 2)), np.zeros((3, 2)), lengthscale=0.0)


# --- scores that see the circle -------------------------------------------------------------------------------------

import math

from molli_utils.data.toy2d import VonMisesCircle
from molli_utils.metrics import angular_tv, angular_tv_floor, circle_distance, circle_scores, von_mises_bin_probs


def _chapter2_angle_tv(x):
    """Chapter 2's inline measure before it moved into the package (kept verbatim, to pin its numbers)."""
    circle = VonMisesCircle()
    edges = torch.linspace(-math.pi, math.pi, 37, dtype=torch.float64)
    fine = torch.linspace(-math.pi, math.pi, 36 * 200 + 1, dtype=torch.float64)
    mass = circle.log_prob_angle((fine[1:] + fine[:-1]) / 2).exp() * (fine[1] - fine[0])
    probs = mass.reshape(36, 200).sum(1)
    counts = torch.histogram(circle.angle(x.double()), edges).hist
    return 0.5 * (counts / counts.sum() - probs).abs().sum().item()


def _ring(n, seed):
    return VonMisesCircle().sample(n, seed=seed).double()


def test_angular_tv_is_chapter_2s_measure_bit_for_bit():
    g = torch.Generator().manual_seed(0)
    for x in (
        _ring(2000, 1),
        _ring(500, 2) * 1.3 + 0.05 * torch.randn(500, 2, generator=g, dtype=torch.float64),
        torch.randn(2000, 2, generator=g).float(),
    ):
        assert angular_tv(x) == _chapter2_angle_tv(x)


def test_von_mises_bin_probs_match_the_exact_cdf():
    from scipy.stats import vonmises

    probs = von_mises_bin_probs(36)
    edges = np.linspace(-np.pi, np.pi, 37)
    exact = np.diff(vonmises.cdf(edges, kappa=1.0, loc=0.0))
    assert probs.sum().item() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(probs.numpy(), exact, atol=1e-7)
    shifted = von_mises_bin_probs(36, mu=math.pi)  # the flipped von Mises puts its mode at +-pi
    assert shifted[0] > probs[0] and shifted[18] < probs[18]


def test_circle_distance_values_and_errors():
    x = torch.tensor([[0.5, 0.0], [0.0, 1.0], [-2.0, 0.0], [0.6, 0.8]])
    np.testing.assert_allclose(circle_distance(x).numpy(), [0.5, 0.0, 1.0, 0.0], atol=1e-7)
    np.testing.assert_allclose(circle_distance(x, radius=2.0).numpy(), [1.5, 1.0, 0.0, 1.0], atol=1e-7)
    with pytest.raises(ValueError, match=r"shape \[n, 2\]"):
        circle_distance(torch.zeros(3, 3))
    with pytest.raises(ValueError, match="radius"):
        circle_distance(x, radius=0.0)


def test_measures_that_see_the_circle_separate_what_mmd2_at_lengthscale_1_cannot():
    """The ring plus N(0, 0.1^2 I) noise against the ring itself (correction 1 of issue 14).

    MMD^2 at the paper's lengthscale 1 stays inside its own sampling noise (the spread of MMD^2
    between two independent draws of the ring); the distance from the circle and MMD^2 at
    lengthscale 0.1 separate the two clearly.
    """
    n = 3000
    test = _ring(n, 10)
    noise = 0.1 * torch.randn(n, 2, generator=torch.Generator().manual_seed(11), dtype=torch.float64)
    clean = circle_scores(_ring(n, 12), test, lengthscales=(1.0, 0.1))
    noisy = circle_scores(_ring(n, 12) + noise, test, lengthscales=(1.0, 0.1))
    null = [mmd2(_ring(n, 20 + k), test) for k in range(3)]  # lengthscale 1, two draws of the same ring
    spread = max(abs(v) for v in null)
    # lengthscale 1 does not see the noise: it is no further from 0 than two draws of the ring itself
    assert abs(noisy["mmd2_ls1"]) < 3 * spread < 1e-3
    # the distance from the circle does: 0 on the ring, sigma * sqrt(2 / pi) = 0.080 for the noisy ring
    assert clean["circle_dist_mean"] < 1e-6 and clean["circle_dist_q99"] < 1e-6  # float32 points on the circle
    assert noisy["circle_dist_mean"] == pytest.approx(0.1 * math.sqrt(2 / math.pi), rel=0.05)
    assert noisy["circle_dist_q50"] == pytest.approx(0.1 * 0.6745, rel=0.08)  # median of |N(0, 0.1^2)|
    assert noisy["circle_dist_q50"] < noisy["circle_dist_q90"] < noisy["circle_dist_q99"]
    # and so does MMD^2 at a lengthscale of the order of the noise: 30 times the clean value's distance from 0
    assert noisy["mmd2_ls0.1"] > 5e-3 and noisy["mmd2_ls0.1"] > 30 * abs(clean["mmd2_ls0.1"])
    # radial noise leaves the angles alone: the angular error of both is at the sampling floor
    floor = angular_tv_floor(n, repeats=5)
    assert clean["angle_tv"] < 2 * floor and noisy["angle_tv"] < 2 * floor


def test_angular_tv_sees_a_wrong_density_on_the_circle_itself():
    """The complementary failure: every sample on the circle (distance 0), the wrong density along it."""
    n = 3000
    flipped = VonMisesCircle(mu=math.pi).sample(n, seed=3).double()
    uniform = torch.rand(n, generator=torch.Generator().manual_seed(4), dtype=torch.float64) * 2 * math.pi
    for wrong in (flipped, torch.stack([uniform.cos(), uniform.sin()], 1)):
        s = circle_scores(wrong, _ring(n, 5))
        assert s["circle_dist_mean"] < 1e-6
        assert s["angle_tv"] > 0.2 > 4 * angular_tv_floor(n, repeats=5)
    # the floor of a finite sample falls like 1/sqrt(n)
    assert angular_tv_floor(8000, repeats=5) < 0.6 * angular_tv_floor(2000, repeats=5)


def test_circle_scores_drops_and_counts_nonfinite_samples():
    x = _ring(500, 1)
    x[:7, 0] = float("nan")
    x[7:9, 1] = float("inf")
    s = circle_scores(x, _ring(500, 2))
    assert s["nonfinite_samples"] == 9
    assert s == circle_scores(x[9:], _ring(500, 2)) | {"nonfinite_samples": 9}
    assert set(s) == {
        "circle_dist_mean",
        "circle_dist_q50",
        "circle_dist_q90",
        "circle_dist_q99",
        "angle_tv",
        "mmd2_ls0.1",
        "nonfinite_samples",
    }
    dead = torch.full((10, 2), float("nan"))
    out = circle_scores(dead, _ring(500, 2))
    assert out["nonfinite_samples"] == 10 and all(math.isnan(v) for k, v in out.items() if k != "nonfinite_samples")
    with pytest.raises(ValueError, match="test contains 1 non-finite"):
        circle_scores(_ring(10, 1), torch.tensor([[float("nan"), 0.0], [1.0, 0.0]]))
    with pytest.raises(ValueError, match="quantiles"):
        circle_scores(_ring(10, 1), _ring(10, 2), quantiles=(1.5,))


def test_mmd2_noise_floor_is_seeded_centred_and_shrinks_with_n():
    from molli_utils.data import get_toy2d
    from molli_utils.metrics import mmd2_noise_floor

    sample = get_toy2d("mixture_of_gaussians").sample
    ref = sample(300, torch.Generator().manual_seed(99))
    a = mmd2_noise_floor(sample, ref, n_samples=300, repeats=12, seed=1)
    assert a.shape == (12,) and np.array_equal(
        a, mmd2_noise_floor(sample, MMDReference(ref), n_samples=300, repeats=12, seed=1)
    )
    x = sample(300, torch.Generator().manual_seed(1))
    assert a[0] == mmd2(x, ref)  # the first repeat: the generator's first draw, the unbiased estimator
    assert not np.array_equal(a, mmd2_noise_floor(sample, ref, n_samples=300, repeats=12, seed=2))
    assert abs(a.mean()) < 3 * a.std() and (a < 0).any()  # centred on 0: some values negative
    big = mmd2_noise_floor(sample, sample(1_200, torch.Generator().manual_seed(98)), n_samples=1_200, repeats=12)
    assert np.quantile(big, 0.9) < np.quantile(a, 0.9)
    with pytest.raises(ValueError, match="repeats"):
        mmd2_noise_floor(sample, ref, repeats=0)
    with pytest.raises(ValueError, match="lengthscales"):
        mmd2_noise_floor(sample, MMDReference(ref), lengthscale=0.5)
