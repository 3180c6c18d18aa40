"""INDM: the bound is exact for a Gaussian with the oracle noise net, the flow's log-det enters with the right sign,
ancestral sampling recovers the data law, and training lowers the bound."""

import math

import normflows as nf
import pytest
import torch

from molli_utils.models.indm import INDM, INDM_FLOWS, LogSNRRange, NoiseNet, make_indm
from molli_utils.training import TrainConfig, train

pytestmark = pytest.mark.usefixtures("one_thread")


class OracleNet(NoiseNet):
    """E[eps | z_lam] for data N(0, s^2 I) in the latent N(0, I): z_lam ~ N(0, I) and cov(eps, z_lam) = sigma I."""

    def forward(self, z, lam):
        return self.lam_range.alpha_sigma(lam)[1][:, None] * z


class Halve(nf.flows.Flow):
    """g(x) = x / 2: data N(0, 4 I) have the latent N(0, I)."""

    def forward(self, z):
        return 2 * z, z.new_full((z.shape[0],), z.shape[1] * math.log(2))

    def inverse(self, x):
        return x / 2, x.new_full((x.shape[0],), -x.shape[1] * math.log(2))


def gaussian_nll(x, scale):
    d = x.shape[1]
    return 0.5 * (x / scale).pow(2).sum(1) + d * math.log(scale) + 0.5 * d * math.log(2 * math.pi)


def test_log_snr_range():
    lr = LogSNRRange()
    lam = torch.linspace(-10, 10, 5)
    a, s = lr.alpha_sigma(lam)
    assert torch.allclose(a**2 + s**2, torch.ones(5)) and torch.allclose(torch.log(a**2 / s**2), lam, atol=1e-4)
    assert lr.width == 20
    with pytest.raises(ValueError, match="lam_min < lam_max"):
        LogSNRRange(3.0, -3.0)


@pytest.mark.parametrize("scale", [1.0, 2.0])
def test_bound_with_the_oracle_noise_net_is_the_exact_nll(scale):
    # With the exact noise predictor the bound is tight up to the truncation at lam_min/lam_max,
    # and the flow's log-det converts the latent density into the data density.
    flow = None if scale == 1.0 else nf.NormalizingFlow(nf.distributions.DiagGaussian(2), [Halve()])
    model = INDM(flow, OracleNet(2, 4, 1), seed=0)
    x = scale * torch.randn(100_000, 2, generator=torch.Generator().manual_seed(1))
    bound = model.loss(x)
    exact = gaussian_nll(x, scale)
    assert abs(bound.mean().item() - exact.mean().item()) < 0.06  # 2.84 + 2 log(scale) nats
    # per point, averaged over draws: still the exact value (the bound is tight, not only on average)
    # (one draw of a point has a standard deviation of about 18 nats: 40,000 draws give +-0.09)
    few = x[:5]
    per_point = model.loss(few.repeat(40_000, 1)).view(40_000, 5).mean(0)
    assert torch.allclose(per_point, gaussian_nll(few, scale), atol=0.4)


def test_a_worse_noise_net_gives_a_larger_bound():
    x = torch.randn(20_000, 2, generator=torch.Generator().manual_seed(1))
    oracle = INDM(None, OracleNet(2, 4, 1), seed=0).loss(x).mean()
    zero_net = NoiseNet(2, 4, 1)
    torch.nn.init.zeros_(zero_net.net[-1].weight), torch.nn.init.zeros_(zero_net.net[-1].bias)
    assert INDM(None, zero_net, seed=0).loss(x).mean() > oracle + 1.0


@pytest.mark.parametrize("scale", [1.0, 2.0])
def test_ancestral_sampling_with_the_oracle_recovers_the_gaussian(scale):
    flow = None if scale == 1.0 else nf.NormalizingFlow(nf.distributions.DiagGaussian(2), [Halve()])
    model = INDM(flow, OracleNet(2, 4, 1), seed=0)
    xs = model.sample(20_000, seed=3)  # default: 500 steps of lam
    assert xs.shape == (20_000, 2)
    assert xs.mean(0).abs().max() < 0.05 * scale
    assert torch.allclose(torch.cov(xs.T), scale**2 * torch.eye(2), atol=0.05 * scale**2)
    assert torch.equal(xs, INDM(flow, OracleNet(2, 4, 1), seed=0).sample(20_000, seed=3))  # seeded
    # Coarse steps shrink the spread: each step plugs in the mean of z_0 and ignores its uncertainty.
    coarse = model.sample(20_000, steps=50, seed=3)
    assert torch.cov(coarse.T).diag().max() < 0.9 * scale**2


def test_make_indm_flows_and_errors():
    assert make_indm("identity").flow is None and make_indm("realnvp").flow is not None
    a, b = make_indm("realnvp", seed=4), make_indm("realnvp", seed=4)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    x = torch.randn(8, 2)
    z, log_det = a.to_latent(x)
    assert torch.allclose(a.to_data(z), x, atol=1e-5) and log_det.shape == (8,)
    with pytest.raises(ValueError, match="unknown INDM flow 'glow'.*identity"):
        make_indm("glow")
    with pytest.raises(ValueError, match="2D"):
        make_indm("realnvp", dim=3)
    with pytest.raises(ValueError, match=r"\[B, d\]"):
        a.loss(torch.randn(8))
    assert set(INDM_FLOWS) == {"identity", "realnvp"}


@pytest.mark.parametrize("flow", INDM_FLOWS)
def test_training_lowers_the_bound(flow):
    gen = torch.Generator().manual_seed(0)
    x = torch.cat([torch.randn(1000, 2, generator=gen) * 0.3 + 2, torch.randn(1000, 2, generator=gen) * 0.3 - 2])
    model = make_indm(flow, hidden=32, seed=0)
    before = model.nll_bound(x, draws=4).mean().item()
    result = train(model, x, TrainConfig(batch_size=128, lr=2e-3, steps=300, progress=False))
    after = model.nll_bound(x, draws=4).mean().item()
    assert result.num_nonfinite == 0 and after < before - 2.0, (before, after)


def test_mean_bound_and_its_monte_carlo_error():
    model = INDM(None, OracleNet(2, 4, 1), seed=0)
    x = torch.randn(2000, 2, generator=torch.Generator().manual_seed(5))
    mean, se = model.mean_nll_bound(x, draws=64, seed=1)
    assert mean == pytest.approx(model.nll_bound(x, draws=64, seed=1).double().mean().item(), abs=1e-5)
    assert 0 < se < 0.2
    exact = gaussian_nll(x, 1.0).mean().item()
    assert abs(mean - exact) < 4 * se + 0.01  # unbiased for the exact value, within its stated error
    with pytest.raises(ValueError, match="draws"):
        model.mean_nll_bound(x, draws=0)
