"""molli_utils.models.tabular: the paper's tabular flows are proper densities (checked against brute-force Jacobians)."""

import math

import pytest
import torch

import normflows as nf

from molli_utils.models.tabular import (
    FLOWS,
    VARIANTS,
    BatchNormFlow,
    LUInvertibleLinear,
    ReverseOrder,
    count_parameters,
    recompute_batchnorm_statistics,
    tabular_flow,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def _trained_a_little(kind, dim=5, hidden=16, seed=0, variant="official"):
    """A flow with non-trivial parameters and batch-norm statistics, in float64 eval mode."""
    model = tabular_flow(kind, dim, hidden=hidden, layers=3, seed=seed, variant=variant).double()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    gen = torch.Generator().manual_seed(seed)
    scale = torch.linspace(0.5, 2, dim, dtype=torch.float64)
    for _ in range(30):
        x = torch.randn(64, dim, generator=gen, dtype=torch.float64) * scale
        opt.zero_grad()
        model.forward_kld(x).backward()
        opt.step()
    recompute_batchnorm_statistics(model, torch.randn(500, dim, generator=gen, dtype=torch.float64) * scale)
    return model.eval()


def _to_latent(model, x):
    z = x
    for flow in reversed(model.flows):
        z, _ = flow.inverse(z)
    return z


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("kind", FLOWS)
def test_log_prob_matches_brute_force_jacobian(kind, variant):
    model = _trained_a_little(kind, variant=variant)
    x = torch.randn(4, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    logp = model.log_prob(x)
    for i in range(len(x)):
        jac = torch.autograd.functional.jacobian(lambda v: _to_latent(model, v[None])[0], x[i])
        z = _to_latent(model, x[i : i + 1])[0]
        expected = -0.5 * (z @ z) - 2.5 * math.log(2 * math.pi) + torch.linalg.slogdet(jac).logabsdet
        torch.testing.assert_close(logp[i], expected, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("kind", FLOWS)
def test_sampling_inverts_the_density_direction(kind, variant):
    model = _trained_a_little(kind, variant=variant)
    with torch.no_grad():
        x, log_q = model.sample(16)
        torch.testing.assert_close(model.log_prob(x), log_q, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("variant", VARIANTS)
def test_maf_jacobian_is_autoregressive(variant):
    """Each MADE block's output i depends only on inputs before i (in that block's variable order)."""
    model = _trained_a_little("maf", variant=variant)
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
    maf, nvp = tabular_flow("maf", 11, seed=3, variant="paper-text"), tabular_flow("realnvp", 11, seed=3)
    # MADE: 11->512->512->22 with masks (dense weights are stored); coupling: two 11->512->512->11 nets
    assert count_parameters(maf) == 5 * (11 * 512 + 512 + 512 * 512 + 512 + 512 * 22 + 22 + 2 * 11)
    assert count_parameters(nvp) == 5 * (2 * (11 * 512 + 512 + 512 * 512 + 512 + 512 * 11 + 11) + 2 * 11)
    again = tabular_flow("maf", 11, seed=3, variant="paper-text")
    assert all(torch.equal(a, b) for a, b in zip(maf.state_dict().values(), again.state_dict().values()))
    official = tabular_flow("maf", 11, seed=3)  # the same MADE sizes; LU of GLOW adds 2 x 11 x 11 + 11 per block
    assert count_parameters(official) == count_parameters(maf)
    assert count_parameters(tabular_flow("glow", 11)) == count_parameters(nvp) + 5 * (2 * 11 * 11 + 11)
    state = torch.random.get_rng_state()
    tabular_flow("glow", 11, seed=3)
    assert torch.equal(state, torch.random.get_rng_state()), "seeded construction must not move the global RNG"


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"kind": "nsf"}, "unknown flow 'nsf'"),
        ({"dim": 1}, "dim must be"),
        ({"hidden": 0}, "hidden must be"),
        ({"layers": 2.0}, "layers must be"),
        ({"variant": "code"}, "unknown variant 'code'.*official.*paper-text"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    args = {"kind": "maf", "dim": 4, **kwargs}
    with pytest.raises(ValueError, match=match):
        tabular_flow(args.pop("kind"), args.pop("dim"), **args)


def _made(model):
    """The MADE network of the first MAF block (density direction) and the autoregressive flow around it."""
    flow = model.flows[-1].flow
    return flow, flow.autoregressive_net


def _pre_activation(made, x):
    """The second masked layer's output before any activation after it."""
    h = made.initial_layer(x)
    if hasattr(made, "activation") and type(made).__name__ == "_ActivatedMADE":
        h = made.activation(h)
    return made.blocks[0].linear(h)


@pytest.mark.parametrize("variant, nonlinear_hidden_layers", [("official", 2), ("paper-text", 1)])
def test_made_has_the_number_of_nonlinear_hidden_layers_the_docstring_says(variant, nonlinear_hidden_layers):
    """official: D -> 512 -> ReLU -> 512 -> ReLU -> 2D; normflows' MADE as the text variant uses it:
    D -> 512 -> 512 -> tanh -> 2D, so its map from the input to the second hidden layer is affine."""
    _, made = _made(tabular_flow("maf", 6, hidden=32, layers=1, variant=variant, seed=0))
    a, b = torch.randn(2, 4, 6, generator=torch.Generator().manual_seed(0))
    mix = _pre_activation(made, 0.3 * a + 0.7 * b)
    affine = torch.allclose(mix, 0.3 * _pre_activation(made, a) + 0.7 * _pre_activation(made, b), atol=1e-5)
    assert affine == (nonlinear_hidden_layers == 1)


def test_official_maf_block_is_the_official_formula_with_an_unbounded_scale():
    """uci/flows.py:165-170: u = (x - m) exp(-a), log|det| = -sum(a), a unbounded (here a > 10 is reachable)."""
    flow, made = _made(tabular_flow("maf", 5, hidden=16, layers=1, seed=1).double())
    with torch.no_grad():
        made.final_layer.bias[0::2] = 12.0  # the log-scales a_i
    x = torch.randn(7, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    params = made(x).view(7, 5, 2)
    a, m = params[..., 0], params[..., 1]
    u, log_det = flow.forward(x)  # normflows' one-pass direction: the density direction of the official MAF
    torch.testing.assert_close(u, (x - m) * torch.exp(-a))
    torch.testing.assert_close(log_det, -a.sum(1))
    assert (a > 10).all()  # the paper-text variant's sigmoid scale could not go beyond log(1.001)


def test_official_coupling_maps_data_to_latent_by_exp_scale_plus_shift():
    """uci/flows.py:452-455: kept variables unchanged; the others x exp(s(b x)) + t(b x), log|det| = sum of s."""
    model = tabular_flow("realnvp", 4, hidden=8, layers=1, seed=0).double()
    coupling = model.flows[-1]
    assert isinstance(coupling, nf.flows.Reverse)
    inner = coupling.flow
    x = torch.randn(3, 4, dtype=torch.float64)
    y, log_det = coupling.inverse(x)
    b = inner.b
    s, t = inner.s(b * x), inner.t(b * x)
    torch.testing.assert_close(y, b * x + (1 - b) * (x * torch.exp(s) + t))
    torch.testing.assert_close(log_det, ((1 - b) * s).sum(1))
    assert b.flatten().tolist() == [0.0, 1.0, 0.0, 1.0]  # arange(D) % 2: the even variables are transformed first


def test_lu_linear_is_a_proper_invertible_map_from_a_random_orthogonal_matrix():
    torch.manual_seed(0)
    lu = LUInvertibleLinear(6).double()
    w0 = lu.weight()
    torch.testing.assert_close(w0 @ w0.T, torch.eye(6, dtype=torch.float64), atol=1e-6, rtol=0)  # orthogonal start
    with torch.no_grad():
        lu.log_s.add_(0.3)
        lu.L.add_(0.2)
    x = torch.randn(5, 6, dtype=torch.float64)
    y, log_det = lu.inverse(x)
    torch.testing.assert_close(y, x @ lu.weight())
    torch.testing.assert_close(log_det, torch.linalg.slogdet(lu.weight()).logabsdet.expand(5))
    torch.testing.assert_close(lu.forward(y)[0], x)


def test_official_initialisation_is_orthogonal_with_zero_biases():
    model = tabular_flow("realnvp", 6, hidden=12, layers=2, seed=0)
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert linears and all(torch.count_nonzero(m.bias) == 0 for m in linears)
    for m in linears:
        w = m.weight if m.weight.shape[0] <= m.weight.shape[1] else m.weight.T
        torch.testing.assert_close(w @ w.T, torch.eye(w.shape[0]), atol=1e-5, rtol=0)
    text = tabular_flow("realnvp", 6, hidden=12, layers=2, seed=0, variant="paper-text")
    assert any(torch.count_nonzero(m.bias) for m in text.modules() if isinstance(m, torch.nn.Linear))


def test_full_pass_batchnorm_freezes_during_training_and_takes_the_whole_sets_statistics():
    """uci/main.py:287-302: training batches leave the stored statistics alone; one pass over the training
    set stores each layer's statistics of its own inputs there."""
    model = tabular_flow("glow", 3, hidden=8, layers=2, seed=0).double()
    layers = [m for m in model.modules() if isinstance(m, BatchNormFlow)]
    assert layers and all(m.statistics == "full-pass" for m in layers)
    x = torch.randn(400, 3, dtype=torch.float64) * 2 + 1
    model.train()
    model.log_prob(x[:50])
    assert all(torch.equal(m.running_mean, torch.zeros(3, dtype=torch.float64)) for m in layers)  # untouched
    recompute_batchnorm_statistics(model, x)
    first = model.flows[-1]  # GLOW starts with batch norm on the data (normflows lists layers latent to data)
    assert isinstance(first, BatchNormFlow)
    torch.testing.assert_close(first.running_mean, x.mean(0))
    torch.testing.assert_close(first.running_var, x.var(0, unbiased=False))
    assert model.training and not any(m.capture for m in layers)
    model.eval()
    torch.testing.assert_close(model.log_prob(x[:5]), model.log_prob(x[:20])[:5])  # a fixed density


@pytest.mark.parametrize("kind", FLOWS)
def test_batchnorm_recomputation_stops_after_the_last_batchnorm_with_the_same_statistics(kind, monkeypatch):
    """The pass stops after the last batch-norm layer (GLOW skips a map and a coupling); the stored
    statistics are bitwise those of a whole ``log_prob`` pass, and later layers are not run."""
    model = tabular_flow(kind, 5, hidden=16, layers=3, seed=1)
    x = torch.randn(300, 5, generator=torch.Generator().manual_seed(0)) * 3
    recompute_batchnorm_statistics(model, x)
    stats = [(m.running_mean.clone(), m.running_var.clone()) for m in model.modules() if isinstance(m, BatchNormFlow)]
    twin = tabular_flow(kind, 5, hidden=16, layers=3, seed=1)
    layers = [m for m in twin.modules() if isinstance(m, BatchNormFlow)]
    for m in layers:
        m.capture = True
    with torch.no_grad():
        twin.train().log_prob(x)
    assert all(torch.equal(a, m.running_mean) and torch.equal(b, m.running_var) for (a, b), m in zip(stats, layers))
    after = model.flows[: min(i for i, f in enumerate(model.flows) if isinstance(f, BatchNormFlow))]
    assert any(not isinstance(f, ReverseOrder) for f in after) == (kind == "glow")  # MAF: one flip
    for flow in after:  # never run: a layer that raises does not stop the recomputation
        monkeypatch.setattr(flow, "inverse", lambda z: (_ for _ in ()).throw(AssertionError("ran")))
    recompute_batchnorm_statistics(model, x)
