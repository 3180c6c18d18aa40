"""mmd2 against a brute-force evaluation."""

import numpy as np
import pytest
import torch

from molli_utils.metrics import mmd2


def brute_mmd2(x, y, ls, var, unbiased):
    k = lambda a, b: var * np.exp(-((a[:, None, :] - b[None, :, :]) ** 2).sum(-1) / (2 * ls**2))
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    n, m = len(x), len(y)
    if unbiased:
        return (kxx.sum() - np.trace(kxx)) / (n * (n - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2 * kxy.mean()
    return kxx.mean() + kyy.mean() - 2 * kxy.mean()


@pytest.mark.parametrize("unbiased", [True, False])
@pytest.mark.parametrize("ls,var", [(1.0, 1.0), (0.5, 1e-4), (2.0, 3.0)])
def test_mmd2_matches_brute_force(unbiased, ls, var):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(300, 3)), rng.normal(loc=0.3, size=(257, 3))
    # block_size smaller than n exercises the tiling, including ragged last tiles
    got = mmd2(x, y, lengthscale=ls, variance=var, unbiased=unbiased, block_size=64)
    assert got == pytest.approx(brute_mmd2(x, y, ls, var, unbiased), rel=1e-9, abs=1e-15)


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
