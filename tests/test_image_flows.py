"""The image flows (normflows' layers): exact log-determinants, the paper's and the miniature's shapes, bits per
dimension on a model of known density, the per-batch transform (dequantisation, mollification, sharding), and
training through the book's loop with every mollifier and schedule (CI's quick profile)."""

import math

import normflows as nf
import pytest
import torch

from molli_utils.data.images import load_digits
from molli_utils.experiments import images, settings
from molli_utils.models import image_flows as F
from molli_utils.mollifiers import Mollifier
from molli_utils.training.batch import FlowBatches

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("kind", F.FLOW_KINDS)
def test_log_density_is_base_plus_brute_force_log_determinant(kind):
    torch.manual_seed(0)
    model = F.make_image_flow(kind, (1, 8, 8), F.FlowSizes(levels=2, depth=2, hidden=8, res_blocks=1)).double()
    with torch.no_grad():
        for p in model.parameters():  # away from the identity the couplings start at
            p.add_(0.05 * torch.randn_like(p))
    z = torch.rand(2, 1, 8, 8, dtype=torch.float64) * 2 - 1
    F.log_prob(model, z)  # GLOW's actnorm initialises on a first batch
    for i in range(2):

        def to_latent(x):
            return torch.cat([q.flatten() for q in model.inverse_and_log_det(x.view(1, 1, 8, 8))[0]])

        jac = torch.autograd.functional.jacobian(to_latent, z[i : i + 1]).reshape(64, 64)
        latents, _ = model.inverse_and_log_det(z[i : i + 1])
        base = sum(q0.log_prob(q) for q0, q in zip(model.q0, latents))
        expected = float((base + torch.linalg.slogdet(jac)[1]).detach())
        assert F.log_prob(model, z[i : i + 1]).item() == pytest.approx(expected, rel=1e-10, abs=1e-9)
    x, log_q = model.sample(3)
    assert x.shape == (3, 1, 8, 8) and torch.allclose(F.log_prob(model, x), log_q, atol=1e-8)


def test_the_paper_shapes_and_the_miniature():
    glow = F.make_image_flow("glow", (3, 32, 32))  # the official code's get_model()
    assert [tuple(q.shape) for q in glow.q0] == [(48, 4, 4), (12, 8, 8), (6, 16, 16)]
    blocks = [[f for f in level if isinstance(f, nf.flows.GlowBlock)] for level in glow.flows]
    assert [len(b) for b in blocks] == [20, 20, 20]
    assert all(isinstance(q, nf.distributions.GlowBase) for q in glow.q0)
    assert blocks[0][0].flows[0].flows[1].param_map.net[0].out_channels == 512
    realnvp = F.make_image_flow("realnvp", (3, 32, 32))
    assert [tuple(q.shape) for q in realnvp.q0] == [(12, 8, 8), (12, 8, 8), (6, 16, 16)]
    coupling = realnvp.flows[0][0].flows[1]
    assert (
        coupling.scale_map == "exp" and len(coupling.param_map.blocks) == 4 and coupling.param_map.hidden_channels == 32
    )
    assert F.flow_sizes("realnvp", "celeba").res_blocks == 2
    mini = {k: F.make_image_flow(k, (1, 8, 8), dataset="digits") for k in F.FLOW_KINDS}
    assert all(F.count_parameters(m) < 200_000 for m in mini.values())
    assert F.make_image_flow("glow", (1, 8, 8), dataset="digits", width=2.0).sizes.hidden == 64
    with pytest.raises(ValueError, match="divisible"):
        F.make_image_flow("glow", (1, 6, 6), dataset="digits")
    with pytest.raises(ValueError, match="unknown image flow"):
        F.make_image_flow("maf", (1, 8, 8))


class Uniform(torch.nn.Module):
    """The density 2^-D on [-1, 1]^D: log2(levels) bits per dimension, the entropy of uniform pixels."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))

    def log_prob(self, z, y=None):
        return torch.full((z.shape[0],), -z[0].numel() * math.log(2.0), dtype=torch.float64) + 0 * self.w


def test_bits_per_dim_of_known_densities():
    x = load_digits(train=False).images
    assert F.bits_per_dim(Uniform(), x, 17) == pytest.approx(math.log2(17), abs=1e-12)
    assert F.bits_per_dim(Uniform(), torch.rand(4, 3, 8, 8), 256) == pytest.approx(8.0, abs=1e-12)  # CIFAR's convention
    # A standard normal in [-1, 1] space (a normflows MultiscaleFlow without layers): the expectation over the
    # dequantisation is analytic, E[z^2] = (a^2 + ab + b^2) / 3 on each level's cell [a, b].
    gauss = nf.MultiscaleFlow([nf.distributions.DiagGaussian((1, 8, 8), trainable=False)], [[]], [], class_cond=False)
    gauss.register_parameter("p", torch.nn.Parameter(torch.zeros(())))  # bits_per_dim reads the device from a parameter
    k = torch.round(x * 16)
    a = 2 * k / 17 - 1
    b = a + 2 / 17
    nll = 0.5 * math.log(2 * math.pi) + 0.5 * (a * a + a * b + b * b) / 3  # nats per dimension, in z space
    expected = float(nll.mean()) / math.log(2) - 1 + math.log2(17)
    assert F.bits_per_dim(gauss, x, 17, draws=20, seed=1) == pytest.approx(expected, abs=2e-3)
    assert abs(F.bits_per_dim(gauss, x, 17, draws=1) - expected) > 1e-6  # one draw: a Monte-Carlo estimate


def test_flow_space_round_trips_and_the_per_batch_transform():
    x = load_digits().images[:64]
    gen = torch.Generator().manual_seed(0)
    z = F.to_flow_space(x, 17, generator=gen)
    assert z.min() >= -1 and z.max() < 1 and torch.equal(F.from_flow_space(z, 17).mul(16).round(), x.mul(16).round())
    assert torch.equal(F.to_flow_space(x, 17, dequantize=False), 2 * x - 1)
    # clean steps: exactly the usual dequantisation 2(k + u)/L - 1 with the run's generator
    clean = FlowBatches(17, generator=torch.Generator().manual_seed(0))(x, 0, Mollifier("none"))
    assert torch.allclose(clean, z, atol=1e-6)
    # mollified steps: the one line on the cells' centres, then the dequantisation noise
    moll = Mollifier("gaussian", horizon=10, generator=torch.Generator().manual_seed(1))
    batches = FlowBatches(17, generator=torch.Generator().manual_seed(0))
    out = batches.after(moll(batches.before(x), 0), 0)
    centres = 2 * (torch.round(x * 16) + 0.5) / 17 - 1
    u = torch.rand(x.shape, generator=torch.Generator().manual_seed(0))
    expected = (
        Mollifier("gaussian", horizon=10, generator=torch.Generator().manual_seed(1))(centres, 0) + 2 * (u - 0.5) / 17
    )
    assert torch.allclose(out, expected, atol=1e-6) and torch.equal(batches.last_global, out)
    # state: a resumed transform draws what an uninterrupted one does
    state = batches.state_dict()
    again = batches(x, 1)
    batches.load_state_dict(state)
    assert torch.equal(batches(x, 1), again)
    with pytest.raises(ValueError, match="differ in having a generator"):
        FlowBatches(17).load_state_dict(state)
    # two ranks keep their halves of one global batch
    halves = [
        FlowBatches(17, generator=torch.Generator().manual_seed(0), rank=r, world_size=2)(
            x, 3, Mollifier("blur", horizon=10)
        )
        for r in (0, 1)
    ]
    whole = FlowBatches(17, generator=torch.Generator().manual_seed(0))(x, 3, Mollifier("blur", horizon=10))
    assert torch.equal(torch.cat(halves), whole)
    assert torch.equal(FlowBatches(17, dequantize=False)(x, 0), 2 * x - 1)
    with pytest.raises(ValueError, match="do not split evenly over 3 ranks"):
        FlowBatches(17, rank=0, world_size=3)(x, 0)
    with pytest.raises(ValueError, match="levels must be an int"):
        FlowBatches(1)


def _quick(model, mode, **kw):
    return settings.images(
        "quick",
        model=model,
        mode=mode,
        seed=2,
        **{"epochs": 2, "n_images": 128, "snapshot_epochs": (2,), "n_score": 64, "n_snapshot": 32, **kw},
    )


@pytest.mark.parametrize("model", images.FLOWS)
def test_both_flows_train_with_every_mollifier_and_schedule(model):
    data, test = images.load_data(_quick(model, "vanilla")), load_digits(train=False)
    test = type(test)(test.name, test.split, test.images[:64], test.source_note, test.levels)
    configs = [_quick(model, "vanilla"), _quick(model, "blur")] + [
        _quick(model, "gaussian", schedule=s, tau=t)
        for s, t in (("sigmoid", None), ("sigmoid", 0.2), ("cosine", None), ("linear", None))
    ]
    seen = set()
    for config in configs:
        run = images.run(config, data=data, test=test)
        assert run.steps == 4 and len(run.losses) == 2 and all(math.isfinite(v) for v in run.losses)
        assert run.horizon == (0 if config.mode == "vanilla" else 2) and run.skipped_steps == 0
        assert math.isfinite(run.bpd) and run.bpd > 0 and list(run.snapshots) == [2]  # (4 steps: any quality)
        assert run.snapshots[2]["images"].shape == (16, 1, 8, 8) and run.seconds_per_step > 0
        seen.add(round(run.losses[0], 6))
    assert len(seen) == len(configs)  # every mollifier and schedule changes what is trained on


def test_nonfinite_flow_steps_are_skipped_and_counted_and_runs_resume(tmp_path, monkeypatch):
    config = _quick("glow", "gaussian", snapshot_epochs=())
    data = images.load_data(config)
    whole = images.run(config, data=data, test=data)
    with pytest.raises(KeyboardInterrupt):
        images.run(
            config,
            data=data,
            test=data,
            resume_root=tmp_path,
            callback=lambda e, m: (_ for _ in ()).throw(KeyboardInterrupt()),
        )
    resumed = images.run(config, data=data, test=data, resume_root=tmp_path)
    assert resumed.losses == whole.losses[1:] and resumed.bpd == whole.bpd  # the second epoch, bitwise
    after = FlowBatches.after

    def nan_at_step_1(self, z, step):
        out = after(self, z, step)
        return out * float("nan") if step == 1 else out

    monkeypatch.setattr(FlowBatches, "after", nan_at_step_1)
    run = images.run(config, data=data, test=data)
    assert run.skipped_steps == 1 and all(math.isfinite(v) for v in run.losses)
