"""Tests of molli_utils.models: the toy REAL-NVP (Appendix D.3.1) and the vectorised ensemble."""

import math

import normflows as nf
import pytest
import torch

from molli_utils.data import load_toy2d
from molli_utils.models import FlowEnsemble, flow_log_prob, realnvp_2d
from molli_utils.models.toy import plain_relu
from molli_utils.mollifiers import Mollifier
from molli_utils.training import DivergenceError, TrainConfig, train


pytestmark = pytest.mark.usefixtures("one_thread")


def _perturb(model: nf.NormalizingFlow, seed: int, scale: float = 0.05) -> nf.NormalizingFlow:
    """Give the zero-initialised output layers random weights, so the flow is not the identity."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=gen))
    return model


def _std_normal_log_prob(x: torch.Tensor) -> torch.Tensor:
    return -0.5 * (x**2).sum(-1) - math.log(2 * math.pi)


def test_realnvp_2d_architecture():
    model = realnvp_2d()
    blocks = [f for f in model.flows if isinstance(f, nf.flows.AffineCouplingBlock)]
    perms = [f for f in model.flows if isinstance(f, nf.flows.Permute)]
    assert len(blocks) == len(perms) == 5 and len(model.flows) == 10
    assert isinstance(model.q0, nf.distributions.DiagGaussian)
    for block in blocks:
        linears = [m for m in block.modules() if isinstance(m, torch.nn.Linear)]
        assert [(lin.in_features, lin.out_features) for lin in linears] == [(1, 64), (64, 64), (64, 2)]
        assert not linears[-1].weight.any() and not linears[-1].bias.any()  # init_zeros
    assert len(realnvp_2d(layers=2, hidden=8).flows) == 4
    with pytest.raises(ValueError, match="layers"):
        realnvp_2d(layers=0)


def test_realnvp_2d_uses_plain_relu_and_trains_as_normflows_leaky_relu_zero_does():
    """The swap of normflows' LeakyReLU(0.0) for nn.ReLU (a speed lever) changes no number: after 200 Adam
    steps on noisy data, with the loop's default optimizer, the parameters are bitwise the same."""
    model = realnvp_2d(seed=0)
    acts = [m for m in model.modules() if isinstance(m, (torch.nn.ReLU, torch.nn.LeakyReLU))]
    assert len(acts) == 10 and all(type(m) is torch.nn.ReLU for m in acts)
    leaky = realnvp_2d(seed=0)
    for module in list(leaky.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, torch.nn.ReLU):
                setattr(module, name, torch.nn.LeakyReLU(0.0))  # what normflows builds
    x = load_toy2d("von_mises", n_train=1000, n_test=10, seed=0)[0]
    config = TrainConfig(steps=200, batch_size=64, lr=5e-4, seed=1, progress=False)
    for m in (model, leaky):
        train(m, x, config, mollifier=Mollifier("gaussian", horizon=200, generator=torch.Generator().manual_seed(9)))
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), leaky.parameters()))
    assert not all(torch.equal(p, q) for p, q in zip(model.parameters(), realnvp_2d(seed=0).parameters()))
    # and a slope that is not 0 is left alone
    net = torch.nn.Sequential(torch.nn.LeakyReLU(0.2))
    assert type(plain_relu(net)[0]) is torch.nn.LeakyReLU


def test_the_loops_default_adam_is_foreach_and_bitwise_the_per_tensor_one(monkeypatch):
    """train()'s default optimizer is PyTorch's multi-tensor Adam (a speed lever); on the CPU it gives the
    same parameters as the per-tensor implementation, bitwise, for one model and for an ensemble."""
    data, molli = _setup()
    config = TrainConfig(steps=50, batch_size=64, lr=5e-4, seed=(3, 4), progress=False)
    ens, ref = (FlowEnsemble([realnvp_2d(seed=0), realnvp_2d(seed=1)]) for _ in range(2))
    seen = []

    class Spy(torch.optim.Adam):
        def __init__(self, *args, **kwargs):
            seen.append(kwargs.get("foreach"))
            super().__init__(*args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(torch.optim, "Adam", Spy)
        train(ens, data, config, mollifier=[molli(), None])
    assert seen == [True]
    train(
        ref,
        data,
        config,
        mollifier=[molli(), None],
        optimizer=torch.optim.Adam(ref.parameters(), lr=5e-4, foreach=False),
    )
    assert all(torch.equal(p, q) for p, q in zip(ens.parameters(), ref.parameters()))
    one, alone = realnvp_2d(seed=2), realnvp_2d(seed=2)
    single = TrainConfig(steps=50, batch_size=64, lr=5e-4, seed=5, progress=False)
    train(one, data[0], single)
    train(alone, data[0], single, optimizer=torch.optim.Adam(alone.parameters(), lr=5e-4, foreach=False))
    assert all(torch.equal(p, q) for p, q in zip(one.parameters(), alone.parameters()))


def test_realnvp_2d_seed_reproduces_and_leaves_global_rng_alone():
    torch.manual_seed(0)
    before = torch.get_rng_state()
    a, b = realnvp_2d(seed=3), realnvp_2d(seed=3)
    assert torch.equal(torch.get_rng_state(), before)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    c = realnvp_2d(seed=4)
    assert not all(torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters()))


def test_untrained_model_is_the_standard_normal():
    x = torch.randn(100, 2, generator=torch.Generator().manual_seed(0)) * 3
    torch.testing.assert_close(realnvp_2d(seed=0).log_prob(x), _std_normal_log_prob(x))
    z, log_q = realnvp_2d(seed=0).sample(7)
    assert z.shape == (7, 2) and log_q.shape == (7,)


def test_flow_log_prob_equals_normflows_bitwise():
    model = _perturb(realnvp_2d(seed=1), seed=2)
    x = torch.randn(50, 2, generator=torch.Generator().manual_seed(3))
    assert torch.equal(flow_log_prob(model, x), model.log_prob(x))


def test_log_det_matches_brute_force_jacobian():
    model = _perturb(realnvp_2d(seed=1), seed=5).double()
    x = torch.randn(5, 2, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    for xi in x:
        jac = torch.autograd.functional.jacobian(lambda v: model.inverse(v[None])[0], xi)  # dz/dx, 2 x 2
        z = model.inverse(xi[None])
        expected = model.q0.log_prob(z) + torch.linalg.slogdet(jac)[1]
        torch.testing.assert_close(model.log_prob(xi[None]), expected, rtol=1e-10, atol=1e-10)


def test_trained_model_log_prob_integrates_to_one():
    torch.manual_seed(0)
    model = realnvp_2d(seed=0)
    data = load_toy2d("mixture_of_gaussians", n_train=512, n_test=0)[0]
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(30):
        opt.zero_grad()
        model.forward_kld(data[(step % 2) * 256 : (step % 2 + 1) * 256]).backward()
        opt.step()
    g = torch.linspace(-12, 12, 301, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(g, g, indexing="ij"), dim=-1).reshape(-1, 2)
    with torch.no_grad():
        density = model.double().log_prob(grid).exp().reshape(301, 301)
    assert not torch.allclose(density, _std_normal_log_prob(grid).exp().reshape(301, 301), atol=1e-3)  # it learnt
    assert torch.trapezoid(torch.trapezoid(density, g, dim=1), g).item() == pytest.approx(1.0, abs=1e-2)


def test_ensemble_log_prob_matches_members():
    models = [_perturb(realnvp_2d(seed=i), seed=10 + i) for i in range(3)]
    ens = FlowEnsemble(models)
    x = torch.randn(3, 40, 2, generator=torch.Generator().manual_seed(0))
    expected = torch.stack([m.log_prob(x[i]) for i, m in enumerate(models)])
    torch.testing.assert_close(ens.log_prob(x), expected, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(ens.nll(x), -expected.mean(1), rtol=1e-6, atol=1e-6)
    shared = torch.stack([m.log_prob(x[0]) for m in models])  # [B, 2]: the same points for every member
    torch.testing.assert_close(ens.log_prob(x[0]), shared, rtol=1e-6, atol=1e-6)
    assert len(ens) == 3 and ens.sample(5).shape == (3, 5, 2)
    with pytest.raises(ValueError, match="shape"):
        ens.log_prob(torch.zeros(2, 4, 2))
    with pytest.raises(ValueError, match="same architecture"):
        FlowEnsemble([realnvp_2d(), realnvp_2d(layers=2)])


def test_ensemble_members_are_independent_copies():
    models = [_perturb(realnvp_2d(seed=i), seed=20 + i) for i in range(2)]
    ens = FlowEnsemble(models)
    members = ens.members()
    assert all(isinstance(m, nf.NormalizingFlow) for m in members)
    for m, ref in zip(members, models):
        assert all(torch.equal(p, q) for p, q in zip(m.parameters(), ref.parameters()))
    with torch.no_grad():
        next(iter(ens.parameters())).add_(1.0)
    assert all(torch.equal(p, q) for p, q in zip(members[0].parameters(), models[0].parameters()))
    assert {p.data_ptr() for p in ens.parameters()}.isdisjoint({p.data_ptr() for p in models[0].parameters()})


def _train_alone(model, data, steps, seed, mollifier=None, lr=5e-4, batch_size=64):
    """Reference: one model, one Adam, batches as molli_utils.training draws them; skips non-finite steps."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen, per_epoch = torch.Generator().manual_seed(seed), len(data) // batch_size
    for step in range(steps):
        if step % per_epoch == 0:
            perm = torch.randperm(len(data), generator=gen)
        x = data[perm[(step % per_epoch) * batch_size : (step % per_epoch + 1) * batch_size]]
        x = x if mollifier is None else mollifier(x, step)
        opt.zero_grad()
        loss = model.forward_kld(x)
        loss.backward()
        if torch.isfinite(loss):
            opt.step()
    return model


def _setup():
    data = [load_toy2d(name, n_train=200, n_test=0, seed=0)[0] for name in ("mixture_of_gaussians", "von_mises")]
    molli = lambda: Mollifier("gaussian", horizon=20, generator=torch.Generator().manual_seed(9))  # noqa: E731
    return data, molli


def _assert_same_params(a, b, atol=1e-6):
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=atol)


def _train_ensemble(ens, data, steps, seeds, mollifiers=None, **kw):
    """The toy experiment's use of the training loop: one data set, seed and mollifier per member."""
    config = TrainConfig(steps=steps, batch_size=64, lr=5e-4, seed=tuple(seeds), progress=False, **kw)
    return train(ens, data, config, mollifier=mollifiers or [None] * len(ens))


def test_ensemble_training_equals_separate_training():
    data, molli = _setup()
    ens = FlowEnsemble([realnvp_2d(seed=0), realnvp_2d(seed=1)])
    result = _train_ensemble(ens, data, 20, [3, 4], [molli(), None])
    alone = [
        _train_alone(realnvp_2d(seed=0), data[0], 20, 3, molli()),
        _train_alone(realnvp_2d(seed=1), data[1], 20, 4),
    ]
    for member, ref in zip(ens.members(), alone):
        _assert_same_params(member, ref)
        assert not all(torch.equal(p, q) for p, q in zip(member.parameters(), realnvp_2d(seed=0).parameters()))
    assert result.member_nonfinite == [0, 0] and result.diverged_at == [None, None]
    assert result.member_losses.shape == (20, 2) and result.history["step"] == list(range(1, 21))
    noise = torch.tensor(result.history["noise_level"])
    assert noise[0, 0] > 0.99 and noise[-1, 0] < 0.01 and not noise[:, 1].any()
    # A callback after every step, a thinned log; the same parameters.
    ens2, seen = FlowEnsemble([realnvp_2d(seed=0), realnvp_2d(seed=1)]), []
    config = TrainConfig(steps=20, batch_size=64, lr=5e-4, seed=(3, 4), progress=False, log_every=8)
    result2 = train(ens2, data, config, mollifier=[molli(), None], callback=lambda k, e: seen.append(k))
    assert seen == list(range(1, 21)) and result2.history["step"] == [8, 16, 20]
    for a, b in zip(ens.parameters(), ens2.parameters()):
        assert torch.equal(a, b)


def test_ensemble_training_skips_and_freezes_non_finite_members():
    data, molli = _setup()
    nan_at = lambda steps: lambda x, step: x * math.nan if step in steps else x  # noqa: E731
    ens = FlowEnsemble([realnvp_2d(seed=0), realnvp_2d(seed=1)])
    result = _train_ensemble(ens, data, 6, [3, 4], [None, nan_at({5})])
    assert result.member_nonfinite == [0, 1] and result.diverged_at == [None, None]
    assert math.isnan(result.member_losses[-1, 1]) and math.isfinite(result.member_losses[-1, 0])
    _assert_same_params(ens.member(0), _train_alone(realnvp_2d(seed=0), data[0], 6, 3))
    _assert_same_params(ens.member(1), _train_alone(realnvp_2d(seed=1), data[1], 5, 4))  # step 5 skipped
    # Non-finite from step 2 on, 2 in a row allowed: member 1 is frozen at step 3 with its step-2 parameters.
    ens = FlowEnsemble([realnvp_2d(seed=0), realnvp_2d(seed=1)])
    result = _train_ensemble(ens, data, 8, [3, 4], [None, nan_at(set(range(2, 8)))], max_nonfinite_in_row=2)
    assert result.diverged_at == [None, 3] and result.member_nonfinite == [0, 2]
    _assert_same_params(ens.member(1), _train_alone(realnvp_2d(seed=1), data[1], 2, 4))
    assert all(torch.isfinite(p).all() for p in ens.parameters())
    nan = lambda x, step: x * math.nan  # noqa: E731
    with pytest.raises(DivergenceError, match="every member"):
        _train_ensemble(ens, data, 5, [3, 4], [nan, nan], max_nonfinite_in_row=2)
