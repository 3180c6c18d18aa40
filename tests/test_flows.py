"""molli_utils.models.tabular: the paper's tabular flows are proper densities (checked against brute-force Jacobians)."""

import math

import pytest
import torch

from molli_utils.models.tabular import FLOWS, BatchNormFlow, ReverseOrder, count_parameters, tabular_flow

pytestmark = pytest.mark.usefixtures("one_thread")


def _trained_a_little(kind, dim=5, hidden=16, seed=0):
    """A flow with non-trivial parameters and batch-norm statistics, in float64 eval mode."""
    model = tabular_flow(kind, dim, hidden=hidden, layers=3, seed=seed).double()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(30):
        x = torch.randn(64, dim, generator=gen, dtype=torch.float64) * torch.linspace(0.5, 2, dim, dtype=torch.float64)
        opt.zero_grad()
        model.forward_kld(x).backward()
        opt.step()
    return model.eval()


def _to_latent(model, x):
    z = x
    for flow in reversed(model.flows):
        z, _ = flow.inverse(z)
    return z


@pytest.mark.parametrize("kind", FLOWS)
def test_log_prob_matches_brute_force_jacobian(kind):
    model = _trained_a_little(kind)
    x = torch.randn(4, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    logp = model.log_prob(x)
    for i in range(len(x)):
        jac = torch.autograd.functional.jacobian(lambda v: _to_latent(model, v[None])[0], x[i])
        z = _to_latent(model, x[i : i + 1])[0]
        expected = -0.5 * (z @ z) - 2.5 * math.log(2 * math.pi) + torch.linalg.slogdet(jac).logabsdet
        torch.testing.assert_close(logp[i], expected, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("kind", FLOWS)
def test_sampling_inverts_the_density_direction(kind):
    model = _trained_a_little(kind)
    with torch.no_grad():
        x, log_q = model.sample(16)
        torch.testing.assert_close(model.log_prob(x), log_q, rtol=1e-8, atol=1e-8)


def test_maf_jacobian_is_autoregressive():
    """Each MADE block's output i depends only on inputs before i (in that block's variable order)."""
    model = _trained_a_little("maf")
    made = model.flows[-1]  # the first block in the density direction, after no permutation
    x = torch.randn(5, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda v: made.inverse(v[None])[0][0], x)
    assert torch.count_nonzero(torch.triu(jac, diagonal=1)) == 0
    assert torch.all(torch.diagonal(jac) != 0)


def test_batchnorm_flow_uses_batch_statistics_in_training_and_running_ones_in_eval():
    bn = BatchNormFlow(3, momentum=0.5).double()
    x = torch.randn(200, 3, dtype=torch.float64) * 3 + 2
    y, log_det = bn.inverse(x)
    torch.testing.assert_close(y.mean(0), torch.zeros(3, dtype=torch.float64), atol=1e-9, rtol=0)
    torch.testing.assert_close(y.std(0, unbiased=False), torch.ones(3, dtype=torch.float64), atol=1e-4, rtol=0)
    torch.testing.assert_close(bn.running_mean, 0.5 * x.mean(0))  # lerp from 0 with momentum 0.5
    torch.testing.assert_close(log_det, (-0.5 * (x.var(0, unbiased=False) + bn.eps).log()).sum().expand(200))
    bn.eval()
    one, _ = bn.inverse(x[:1])
    torch.testing.assert_close(one, bn.inverse(x[:10])[0][:1])  # no dependence on the batch
    back, inv_log_det = bn.forward(one)
    torch.testing.assert_close(back, x[:1])
    torch.testing.assert_close(inv_log_det, -bn.inverse(x[:1])[1])


def test_reverse_order_is_its_own_inverse():
    x = torch.arange(6.0).reshape(2, 3)
    y, log_det = ReverseOrder().inverse(x)
    assert y.tolist() == [[2.0, 1.0, 0.0], [5.0, 4.0, 3.0]] and log_det.tolist() == [0.0, 0.0]
    assert torch.equal(ReverseOrder().forward(y)[0], x)


def test_paper_sizes_and_seeding():
    maf, nvp = tabular_flow("maf", 11, seed=3), tabular_flow("realnvp", 11, seed=3)
    # MADE: 11->512->512->22 with masks (dense weights are stored); coupling: two 11->512->512->11 nets
    assert count_parameters(maf) == 5 * (11 * 512 + 512 + 512 * 512 + 512 + 512 * 22 + 22 + 2 * 11)
    assert count_parameters(nvp) == 5 * (2 * (11 * 512 + 512 + 512 * 512 + 512 + 512 * 11 + 11) + 2 * 11)
    again = tabular_flow("maf", 11, seed=3)
    assert all(torch.equal(a, b) for a, b in zip(maf.state_dict().values(), again.state_dict().values()))
    state = torch.random.get_rng_state()
    tabular_flow("glow", 11, seed=3)
    assert torch.equal(state, torch.random.get_rng_state()), "seeded construction must not move the global RNG"


@pytest.mark.parametrize("kwargs,match", [({"kind": "nsf"}, "unknown flow 'nsf'"), ({"dim": 1}, "dim must be"),
                                          ({"hidden": 0}, "hidden must be"), ({"layers": 2.0}, "layers must be")])  # fmt: skip
def test_bad_arguments_are_named(kwargs, match):
    args = {"kind": "maf", "dim": 4, **kwargs}
    with pytest.raises(ValueError, match=match):
        tabular_flow(args.pop("kind"), args.pop("dim"), **args)
