"""Tests of molli_utils.data.toy2d: the paper's 2D toys (Appendix D.1)."""

import math

import numpy as np
import pytest
import scipy.special
import scipy.stats
import torch

from molli_utils.data import TOY2D, MixtureOfGaussians, VonMisesCircle, get_toy2d, load_toy2d

MOG, VM = MixtureOfGaussians(), VonMisesCircle()


pytestmark = pytest.mark.usefixtures("one_thread")


def test_mixture_parameters_match_the_paper():
    k = np.array([1, 2])
    paper_means = np.stack([2 * np.sin(np.pi * k), 2 * np.cos(np.pi * k)], axis=1)
    np.testing.assert_allclose(np.array(MOG.means), paper_means, atol=1e-15)
    assert MOG.means == ((0.0, -2.0), (0.0, 2.0))  # exact, not 2.4e-16
    assert MOG.sigma == pytest.approx(2 / 3 * math.sin(math.pi / 2), abs=0)


def test_mixture_sample_moments():
    x = MOG.sample(200_000, seed=0)
    assert x.shape == (200_000, 2) and x.dtype == torch.float32
    x = x.double()
    np.testing.assert_allclose(x.mean(0), [0.0, 0.0], atol=0.02)
    # Var x1 = sigma^2; Var x2 = sigma^2 + 4 (means at +-2, equal weights).
    np.testing.assert_allclose(x.var(0), [4 / 9, 4 / 9 + 4], rtol=0.02)
    upper = x[x[:, 1] > 0]
    assert len(upper) / len(x) == pytest.approx(0.5, abs=0.005)
    np.testing.assert_allclose(upper.mean(0), [0.0, 2.0], atol=0.02)  # sign split: bias ~1e-3
    np.testing.assert_allclose(upper[:, 0].std(), 2 / 3, rtol=0.01)


def test_mixture_log_prob_matches_scipy_and_integrates_to_one():
    x = MOG.sample(50, seed=1).double()
    ref = np.log(sum(0.5 * scipy.stats.multivariate_normal(m, (2 / 3) ** 2 * np.eye(2)).pdf(x) for m in MOG.means))
    np.testing.assert_allclose(MOG.log_prob(x), ref, rtol=1e-10)
    g1, g2 = torch.linspace(-5, 5, 501, dtype=torch.float64), torch.linspace(-7, 7, 701, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(g1, g2, indexing="ij"), dim=-1)
    density = MOG.log_prob(grid).exp()
    assert torch.trapezoid(torch.trapezoid(density, g2, dim=1), g1).item() == pytest.approx(1.0, abs=1e-4)


def test_mixture_score_matches_autograd():
    x = torch.cat([MOG.sample(64, seed=2), torch.randn(16, 2, generator=torch.Generator().manual_seed(3)) * 5])
    x = x.double().requires_grad_()
    (grad,) = torch.autograd.grad(MOG.log_prob(x).sum(), x)
    torch.testing.assert_close(MOG.score(x.detach()), grad, rtol=1e-10, atol=1e-12)
    assert MOG.score(torch.zeros(2)).tolist() == [0.0, 0.0]  # the saddle between the modes


def test_von_mises_on_the_circle_with_the_right_angle_distribution():
    x = VM.sample(20_000, seed=0)
    assert x.shape == (20_000, 2) and x.dtype == torch.float32
    torch.testing.assert_close(x.norm(dim=1), torch.ones(20_000))
    theta = VM.angle(x).double().numpy()
    assert scipy.stats.kstest(theta, scipy.stats.vonmises(kappa=1.0).cdf).pvalue > 0.01
    # E[cos theta] = I1(kappa) / I0(kappa), E[sin theta] = 0 for mu = 0.
    assert np.cos(theta).mean() == pytest.approx(scipy.special.i1(1.0) / scipy.special.i0(1.0), abs=0.015)
    assert np.sin(theta).mean() == pytest.approx(0.0, abs=0.015)


def test_von_mises_log_prob_is_the_density_along_the_circle():
    theta = torch.linspace(-math.pi, math.pi, 10_001, dtype=torch.float64)
    x = torch.stack([torch.cos(theta), torch.sin(theta)], dim=-1)
    lp = VM.log_prob(x)
    np.testing.assert_allclose(lp, scipy.stats.vonmises(kappa=1.0).logpdf(theta), rtol=1e-6)
    assert torch.trapezoid(lp.exp(), theta).item() == pytest.approx(1.0, abs=1e-9)
    torch.testing.assert_close(VM.log_prob(3.0 * x), lp)  # the radius is ignored


def test_von_mises_scores():
    with pytest.raises(NotImplementedError, match="no density and no score"):
        VM.score(torch.zeros(3, 2))
    theta = torch.linspace(-3, 3, 13, dtype=torch.float64).requires_grad_()
    (grad,) = torch.autograd.grad(VM.log_prob_angle(theta).sum(), theta)
    x = torch.stack([torch.cos(theta), torch.sin(theta)], dim=-1).detach()
    torch.testing.assert_close(VM.angular_score(x), grad)


@pytest.mark.parametrize("name", sorted(TOY2D))
def test_seeds_reproduce_bitwise_and_differ(name):
    data = get_toy2d(name)
    a, b = data.sample(1000, seed=7), data.sample(1000, seed=7)
    assert torch.equal(a, b)
    assert torch.equal(a, data.sample(1000, seed=torch.Generator().manual_seed(7)))
    assert not torch.equal(a, data.sample(1000, seed=8))
    assert data.sample(0, seed=0).shape == (0, 2)
    torch.manual_seed(0)
    c = data.sample(10)  # global RNG
    torch.manual_seed(0)
    assert torch.equal(c, data.sample(10))


@pytest.mark.parametrize("name", sorted(TOY2D))
def test_load_toy2d_splits(name):
    train, test = load_toy2d(name, n_train=500, n_test=300, seed=3)
    assert train.shape == (500, 2) and test.shape == (300, 2)
    train2, test2 = load_toy2d(name, n_train=500, n_test=300, seed=3)
    assert torch.equal(train, train2) and torch.equal(test, test2)
    assert not torch.equal(train[:300], test)  # separate streams
    assert torch.equal(load_toy2d(name, n_train=10, n_test=300, seed=3)[1], test)  # test set independent of n_train
    assert not torch.equal(load_toy2d(name, n_train=500, n_test=300, seed=4)[0], train)
    full_train, full_test = load_toy2d(name)
    assert full_train.shape == full_test.shape == (10_000, 2)


def test_bad_arguments_raise_value_error():
    with pytest.raises(ValueError, match="mixture_of_gaussians.*von_mises"):
        get_toy2d("moons")
    with pytest.raises(ValueError, match="unknown 2D toy"):
        load_toy2d("swiss_roll")
    for data in TOY2D.values():
        for n in (-1, 2.5, True):
            with pytest.raises(ValueError, match="n must be"):
                data.sample(n, seed=0)
        with pytest.raises(ValueError, match="seed"):
            data.sample(3, seed=-1)
        with pytest.raises(ValueError, match=r"\[\.\.\., 2\]"):
            data.log_prob(torch.zeros(4, 3))
    with pytest.raises(ValueError, match="n must be"):
        load_toy2d("von_mises", n_train=-5)
    with pytest.raises(ValueError, match="seed"):
        load_toy2d("von_mises", seed=-1)
