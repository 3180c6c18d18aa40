"""Image VAEs (pythae) with the Table 5 nets, and the mollified trainer: schedule, eval, resume."""

import math

import pytest
import torch
from pythae.data.datasets import BaseDataset
from pythae.trainers import BaseTrainerConfig
from pythae.trainers.training_callbacks import TrainingCallback

from molli_utils import checkpoints
from molli_utils.models import vae as M
from molli_utils.training import vae as T
from molli_utils.mollifiers import Mollifier, blur, gaussian

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = dict(latent_dim=8, width=1 / 32)


def _data(n=8, seed=0, size=32):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _dataset(x):
    return BaseDataset(x, torch.zeros(len(x)))


def _config(tmp_path, epochs=1, batch=4):
    return BaseTrainerConfig(
        output_dir=str(tmp_path / "out"),
        num_epochs=epochs,
        per_device_train_batch_size=batch,
        per_device_eval_batch_size=batch,
        no_cuda=True,
        learning_rate=1e-3,
        seed=3,
    )


class RecordingMollifier(Mollifier):
    """A Gaussian mollifier that records the step of every call."""

    def __post_init__(self):
        super().__post_init__()
        self.calls = []

    def __call__(self, x, step):
        self.calls.append(step)
        return super().__call__(x, step)


@pytest.mark.parametrize("kind", M.VAE_KINDS)
def test_every_kind_builds_runs_and_trains_one_step(tmp_path, kind):
    torch.manual_seed(0)
    model = M.make_vae(kind, **TINY)
    x = _data()
    out = model({"data": x})
    assert math.isfinite(out.loss.item()) and out.recon_x.shape == x.shape
    assert 0.0 <= out.recon_x.min().item() and out.recon_x.max().item() <= 1.0
    before = [p.detach().clone() for p in model.parameters()]
    trainer = T.MollifiedTrainer(
        model, _dataset(x), None, _config(tmp_path, batch=8), mollifier=Mollifier("gaussian", horizon=10)
    )
    trainer.prepare_training()
    loss = trainer.train_step(epoch=1)
    assert math.isfinite(loss) and trainer.step == 1
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_paper_settings_reach_pythae_configs():
    cfg = {k: M.make_vae(k, **TINY).model_config for k in M.VAE_KINDS}
    assert cfg["beta_vae"].beta == 0.1 and cfg["iwae"].number_samples == 5
    assert (cfg["vae_iaf"].n_made_blocks, cfg["vae_iaf"].n_hidden_in_made, cfg["vae_iaf"].hidden_size) == (2, 3, 128)
    assert (cfg["hvae"].n_lf, cfg["hvae"].eps_lf, cfg["hvae"].learn_eps_lf) == (1, 1e-3, True)
    assert all(
        c.latent_dim == 8 and c.input_dim == (3, 32, 32) and c.reconstruction_loss == "mse" for c in cfg.values()
    )
    assert M.make_vae("beta_vae", **TINY, beta=1.0).model_config.beta == 1.0


@pytest.mark.parametrize("size", [32, 64])
def test_width_one_matches_pythae_benchmark_nets(size):
    """At width 1 the nets have the layer shapes of pythae's CIFAR/CelebA benchmark nets (Table 5)."""
    from pythae.models import VAEConfig
    from pythae.models.nn.benchmarks import celeba, cifar

    cfg = VAEConfig(input_dim=(3, size, size), latent_dim=256)
    mod = cifar if size == 32 else celeba
    suffix = "CIFAR" if size == 32 else "CELEBA"
    pairs = [
        (M.ConvEncoder(cfg.input_dim, 256), getattr(mod, f"Encoder_Conv_VAE_{suffix}")(cfg)),
        (M.ConvDecoder(cfg.input_dim, 256), getattr(mod, f"Decoder_Conv_AE_{suffix}")(cfg)),
    ]
    for mine, theirs in pairs:
        assert sorted(p.shape for p in mine.parameters()) == sorted(p.shape for p in theirs.parameters())
    z = torch.randn(2, 256)
    assert pairs[1][0](z).reconstruction.shape == (2, 3, size, size)


def test_width_scales_channels():
    enc = M.ConvEncoder((3, 32, 32), 16, width=1 / 16)
    assert [blk[0].out_channels for blk in enc.layers] == [8, 16, 32, 64]


@pytest.mark.parametrize("kind", M.VAE_KINDS)
def test_8x8_variant_for_the_digits_keeps_the_table5_nets_for_32_and_64(kind):
    model = M.make_vae(kind, (1, 8, 8), 8)
    assert isinstance(model.encoder, M.SmallConvEncoder) and isinstance(model.decoder, M.SmallConvDecoder)
    assert [blk[0].out_channels for blk in model.encoder.layers] == list(M.SMALL_CHANNELS)
    x = torch.rand(4, 1, 8, 8)
    out = model({"data": x})
    assert out.recon_x.shape == (4, 1, 8, 8) and torch.isfinite(out.loss)
    assert M.sample_images(model, 3, seed=0).shape == (3, 1, 8, 8)
    assert isinstance(M.make_vae(kind, (3, 32, 32), 8, 1 / 32).encoder, M.ConvEncoder)
    with pytest.raises(ValueError, match="8x8"):
        M.SmallConvEncoder((1, 16, 16))


@pytest.mark.parametrize(
    "bad",
    [
        dict(kind="nvae"),
        dict(kind="vae", input_dim=(3, 28, 28)),
        dict(kind="vae", width=0),
        dict(kind="vae", latent_dim=0),
    ],
)
def test_bad_arguments(bad):
    with pytest.raises(ValueError):
        M.make_vae(**bad)


def test_unknown_kind_lists_choices():
    with pytest.raises(ValueError, match="beta_vae.*iwae.*vae_iaf.*hvae"):
        M.make_vae("nvae")


def test_mollify_images_spaces():
    x = _data(2)
    moll = Mollifier("gaussian", horizon=10, generator=torch.Generator().manual_seed(0))
    s = moll.noise_level(4)
    eps = torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    sym = T.mollify_images(x, moll, 4, "symmetric")
    assert torch.allclose(sym, (math.sqrt(1 - s) * (2 * x - 1) + math.sqrt(s) * eps + 1) / 2, atol=1e-6)
    moll.generator.manual_seed(0)
    assert torch.allclose(T.mollify_images(x, moll, 4, "input"), gaussian(x, s, torch.Generator().manual_seed(0)))
    assert torch.equal(T.mollify_images(x, moll, 10, "symmetric"), x)  # after the horizon: clean
    b = Mollifier("blur", horizon=10)
    assert torch.allclose(T.mollify_images(x, b, 2, "symmetric"), blur(x, b.blur_time(2, 32)))
    with pytest.raises(ValueError, match="symmetric"):
        T.mollify_images(x, moll, 0, "zero-one")


def test_horizon_is_first_half_of_training():
    assert T.mollification_horizon(200, 50000, 128) == 100 * 391  # CIFAR-10: 100 of 200 epochs
    assert T.mollification_horizon(2, 8, 4, fraction=1.0) == 4
    with pytest.raises(ValueError):
        T.mollification_horizon(2, 8, 4, fraction=0.0)


def test_trainer_rejects_bad_mollifier_and_space(tmp_path):
    x = _data()
    with pytest.raises(ValueError, match="Mollifier"):
        T.MollifiedTrainer(M.make_vae("vae", **TINY), _dataset(x), None, _config(tmp_path), mollifier="gaussian")
    with pytest.raises(ValueError, match="symmetric"):
        T.MollifiedTrainer(
            M.make_vae("vae", **TINY),
            _dataset(x),
            None,
            _config(tmp_path),
            mollifier=Mollifier("gaussian", horizon=10),
            space="pixels",
        )


def test_steps_follow_schedule_and_eval_is_clean(tmp_path):
    """Steps 0, 1, 2, ... across epochs; eval, predict and the sanity check see clean data."""
    torch.manual_seed(0)
    train_x, eval_x = _data(8, seed=0), _data(4, seed=1)
    model = M.make_vae("vae", **TINY)
    seen = []  # (training?, data) of every forward call
    forward = model.forward

    def recording_forward(inputs, **kwargs):
        seen.append((model.training, inputs["data"].clone()))
        return forward(inputs, **kwargs)

    model.forward = recording_forward
    moll = RecordingMollifier("gaussian", horizon=100, generator=torch.Generator().manual_seed(0))
    trainer = T.MollifiedTrainer(
        model, _dataset(train_x), _dataset(eval_x), _config(tmp_path, epochs=3), mollifier=moll
    )
    assert moll.calls == [] and trainer.step == 0  # the constructor's sanity check is not mollified
    trainer.train()
    assert moll.calls == [0, 1, 2, 3, 4, 5] and trainer.step == 6  # 3 epochs x 2 batches

    def is_clean(batch, clean):
        return all(any(torch.equal(row, c) for c in clean) for row in batch)

    train_calls = [d for training, d in seen[1:] if training]
    eval_calls = [d for training, d in seen[1:] if not training]
    assert len(train_calls) == 6 and len(eval_calls) == 3  # eval: 3 epochs x 1 batch
    assert all(is_clean(d, eval_x) for d in eval_calls)
    assert not any(is_clean(d, train_x) for d in train_calls)  # noise level > 0 throughout the horizon
    trainer.predict(trainer.model)
    assert moll.calls == [0, 1, 2, 3, 4, 5] and is_clean(seen[-1][1], eval_x)
    trainer.model.train()  # a model in train mode outside train_step: still not mollified
    batch = {"data": train_x}
    assert trainer._set_inputs_to_device(batch)["data"] is train_x and trainer.step == 6


class StopAt(TrainingCallback):
    """Simulates an interruption at the start of epoch ``epoch``."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_begin(self, training_config, **kwargs):
        if kwargs["epoch"] == self.epoch:
            raise KeyboardInterrupt


class StopAfterBatches(TrainingCallback):
    """Simulates an interruption in the middle of an epoch: after the optimiser step of batch ``n`` (1-based, global)."""

    def __init__(self, n):
        self.n, self.seen = n, 0

    def on_train_step_end(self, training_config, **kwargs):
        self.seen += 1
        if self.seen == self.n:
            raise KeyboardInterrupt


def _run(tmp_path, name, resume_dir, callbacks=None, init_seed=0, epochs=4, precision="fp32"):
    torch.manual_seed(init_seed)
    model = M.make_vae("vae", **TINY)
    moll = Mollifier("gaussian", horizon=5, generator=torch.Generator().manual_seed(7))
    trainer = T.MollifiedTrainer(
        model,
        _dataset(_data(8)),
        _dataset(_data(4, seed=1)),
        _config(tmp_path / name, epochs),
        callbacks=callbacks,
        mollifier=moll,
        resume_dir=resume_dir,
        precision=precision,
    )
    trainer.train()
    return trainer


def test_resume_equals_uninterrupted_and_pythae_loop(tmp_path):
    plain = _run(tmp_path, "plain", None)  # pythae's own BaseTrainer.train loop
    whole = _run(tmp_path, "whole", tmp_path / "whole-resume")
    with pytest.raises(KeyboardInterrupt):  # mid-epoch: after the first of the two batches of epoch 3
        _run(tmp_path, "cut", tmp_path / "cut-resume", callbacks=[StopAfterBatches(5)])
    saved = checkpoints.load(tmp_path / "cut-resume" / T.RESUME_NAME)
    assert saved["epoch"] == 2 and saved["step"] == 4  # the last finished epoch; batch 5's update is not kept
    resumed = _run(tmp_path, "cut", tmp_path / "cut-resume", init_seed=123)  # different init: all state is loaded
    assert resumed.step == whole.step == plain.step == 8
    for a, b, c in zip(
        whole.model.state_dict().values(), resumed.model.state_dict().values(), plain.model.state_dict().values()
    ):
        assert torch.equal(a, b) and torch.equal(a, c)
    for a, b in zip(whole._best_model.parameters(), resumed._best_model.parameters()):
        assert torch.equal(a, b)


def test_resume_refuses_another_model(tmp_path):
    _run(tmp_path, "a", tmp_path / "r", epochs=1)
    torch.manual_seed(0)
    trainer = T.MollifiedTrainer(
        M.make_vae("iwae", **TINY),
        _dataset(_data(8)),
        None,
        _config(tmp_path / "b", 2),
        mollifier=Mollifier("gaussian", horizon=5),
        resume_dir=tmp_path / "r",
    )
    with pytest.raises(
        checkpoints.CheckpointError, match=r"different configuration \(.*model: 'VAE' \(checkpoint\) != 'IWAE'"
    ):
        trainer.train()


def test_damaged_resume_file_is_refused_not_loaded(tmp_path):
    """One flipped byte inside a weight, a truncated file, or another program's file: refused with the fix."""
    _run(tmp_path, "a", tmp_path / "r", epochs=1)
    path = tmp_path / "r" / T.RESUME_NAME
    good = path.read_bytes()
    weight = M.make_vae("vae", **TINY).state_dict()["encoder.embedding.weight"]
    saved = checkpoints.load(path)["model"]["encoder.embedding.weight"]
    at = good.find(saved.numpy().tobytes()[:64])  # the raw bytes of a weight tensor in the payload
    assert at > 0 and weight.shape == saved.shape
    damaged = {
        "flipped": good[: at + 10] + bytes([good[at + 10] ^ 1]) + good[at + 11 :],
        "truncated": good[: len(good) // 2],
        "foreign": b"PK\x03\x04 not a checkpoint",
    }
    messages = {"flipped": "damaged", "truncated": "truncated", "foreign": "not a molli_utils checkpoint"}
    for what, content in damaged.items():
        path.write_bytes(content)
        torch.manual_seed(0)
        trainer = T.MollifiedTrainer(
            M.make_vae("vae", **TINY),
            _dataset(_data(8)),
            None,
            _config(tmp_path / what, 2),
            mollifier=Mollifier("gaussian", horizon=5),
            resume_dir=tmp_path / "r",
        )
        with pytest.raises(checkpoints.CheckpointError, match=messages[what]) as err:
            trainer.train()
        assert str(path) in str(err.value) and "delete it" in str(err.value)


def test_resume_file_missing_a_part_is_refused_with_the_fix(tmp_path):
    """A resume file of another version (a part missing, e.g. the numpy RNG's state): a CheckpointError, no KeyError."""
    _run(tmp_path, "a", tmp_path / "r", epochs=1)
    path = tmp_path / "r" / T.RESUME_NAME
    for cut in (lambda s: s.pop("numpy_rng"), lambda s: s["numpy_rng"].pop("pos")):
        broken = checkpoints.load(path)
        cut(broken)
        other = tmp_path / "other"
        other.mkdir(exist_ok=True)
        checkpoints.save(broken, other / T.RESUME_NAME)
        torch.manual_seed(0)
        trainer = T.MollifiedTrainer(
            M.make_vae("vae", **TINY),
            _dataset(_data(8)),
            _dataset(_data(4, seed=1)),
            _config(tmp_path / "b", 1),
            resume_dir=other,
            mollifier=Mollifier("gaussian", horizon=5, generator=torch.Generator().manual_seed(7)),
        )
        with pytest.raises(checkpoints.CheckpointError, match="incomplete") as err:
            trainer.train()
        assert "numpy_rng" in str(err.value) or "pos" in str(err.value)


# ---- mixed precision -----------------------------------------------------------------------


def test_resolve_precision(monkeypatch):
    assert T.resolve_precision("auto", "cpu") == "fp32"
    assert [T.resolve_precision(p, "cpu") for p in ("fp32", "bf16", "fp16")] == ["fp32", "bf16", "fp16"]
    for native, expected in ((True, "bf16"), (False, "fp16")):  # A100/L4/H100 vs T4/V100
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True, n=native: n)
        assert T.resolve_precision("auto", "cuda") == expected
    with pytest.raises(ValueError, match="unknown precision 'half'.*'auto'"):
        T.resolve_precision("half", "cpu")


def test_trainer_refuses_pythae_amp_and_bad_precision(tmp_path):
    config = _config(tmp_path)
    config.amp = True  # pythae: float16 autocast without loss scaling
    with pytest.raises(ValueError, match="precision='auto'"):
        T.MollifiedTrainer(M.make_vae("vae", **TINY), _dataset(_data()), None, config, mollifier=Mollifier("none"))
    with pytest.raises(ValueError, match="unknown precision"):
        T.MollifiedTrainer(
            M.make_vae("vae", **TINY),
            _dataset(_data()),
            None,
            _config(tmp_path),
            mollifier=Mollifier("none"),
            precision="float16",
        )


def _losses(tmp_path, kind, precision, epochs):
    torch.manual_seed(0)
    trainer = T.MollifiedTrainer(
        M.make_vae(kind, **TINY),
        _dataset(_data(8)),
        None,
        _config(tmp_path / precision, 1, 8),
        mollifier=Mollifier("none"),
        precision=precision,
    )
    trainer.prepare_training()
    return trainer, [trainer.train_step(epoch) for epoch in range(1, epochs + 1)]


@pytest.mark.parametrize("kind", M.VAE_KINDS)
def test_bf16_autocast_trains_like_fp32(tmp_path, kind):
    # bfloat16 keeps float32's range: no loss scaling, and the losses track the float32 run closely.
    _, ref = _losses(tmp_path, kind, "fp32", 4)
    trainer, low = _losses(tmp_path, kind, "bf16", 4)
    assert trainer.precision == "bf16" and trainer.scaler is None
    assert isinstance(trainer.amp_context, torch.autocast) and trainer.amp_context.fast_dtype == torch.bfloat16
    assert low[-1] < low[0] and ref[-1] < ref[0]
    assert low != ref  # autocast did change the arithmetic...
    assert max(abs(a - b) / abs(b) for a, b in zip(low, ref)) < 0.01  # ...by under 1% of the loss


def test_fp16_scales_the_loss_and_counts_skipped_steps(tmp_path):
    trainer, losses = _losses(tmp_path, "vae", "fp16", 16)
    assert trainer.precision == "fp16" and trainer.amp_context.fast_dtype == torch.float16
    scale = trainer.scaler.get_scale()
    # The default initial scale 2**16 makes the first gradients overflow: each such step is skipped
    # and halves the scale (no growth within 2000 steps), so the count is log2(2**16 / scale).
    assert 1 <= trainer.skipped_steps == round(math.log2(65536 / scale)) < 16
    assert losses[-1] < losses[trainer.skipped_steps]  # the steps that were taken do train


def test_fp16_resume_restores_the_loss_scale(tmp_path):
    whole = _run(tmp_path, "whole", tmp_path / "whole-resume", epochs=8, precision="fp16")
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path, "cut", tmp_path / "cut-resume", callbacks=[StopAt(6)], epochs=8, precision="fp16")
    saved = checkpoints.load(tmp_path / "cut-resume" / T.RESUME_NAME)
    assert (
        saved["fingerprint"]["precision"] == "fp16" and saved["scaler"]["scale"] < 65536 and saved["skipped_steps"] >= 1
    )
    resumed = _run(tmp_path, "cut", tmp_path / "cut-resume", init_seed=123, epochs=8, precision="fp16")
    assert resumed.skipped_steps == whole.skipped_steps < 16 and resumed.scaler.get_scale() == whole.scaler.get_scale()
    for a, b in zip(whole.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)


def test_fp16_run_whose_gradients_never_become_finite_is_reported(tmp_path):
    trainer, _ = _losses(tmp_path, "vae", "fp16", 0)
    next(trainer.model.parameters()).register_hook(lambda g: g * float("inf"))  # overflow at any scale
    with pytest.raises(ArithmeticError, match="diverged.*precision='fp32'"):
        for epoch in range(1, 40):
            trainer.train_step(epoch)
    assert trainer.skipped_steps == 17 and trainer.scaler.get_scale() == 0.5  # 2**16 halved 17 times


# ---- the decoder variance (the likelihood's scale) ---------------------------------------------------------------


def _gaussian_nll(x, x_hat, s2):
    """-log N(x; x_hat, s2 I) per row, with its constant, written from the density."""
    d = x.shape[-1]
    return ((x - x_hat) ** 2).sum(-1) / (2 * s2) + 0.5 * d * math.log(2 * math.pi * s2)


def _normal_logpdf(z, mu, log_var):
    return (-0.5 * (math.log(2 * math.pi) + log_var + (z - mu) ** 2 / log_var.exp())).sum(-1)


@pytest.mark.parametrize("s2", [1.0, 0.1, 0.01])
def test_decoder_variance_vae_loss_is_the_gaussian_nll_plus_kl(s2):
    # pythae's VAE and beta-VAE losses with decoder variance s2 are, per image, ||x - x_hat||^2 / (2 s2) + (beta) KL,
    # i.e. the Gaussian negative log-likelihood without its constant (D/2) log(2 pi s2)
    g = torch.Generator().manual_seed(0)
    b, d, k = 3, 64, 4
    x, x_hat = torch.rand(b, 1, 8, 8, generator=g), torch.rand(b, 1, 8, 8, generator=g)
    mu, log_var, z = torch.randn(b, k, generator=g), torch.randn(b, k, generator=g), torch.randn(b, k, generator=g)
    kl = 0.5 * (mu**2 + log_var.exp() - 1 - log_var).sum(-1)
    rec = _gaussian_nll(x.reshape(b, -1), x_hat.reshape(b, -1), s2) - 0.5 * d * math.log(2 * math.pi * s2)
    for kind, beta in (("vae", 1.0), ("beta_vae", 0.1)):
        model = M.make_vae(kind, (1, 8, 8), k, decoder_variance=s2)
        loss, rec_loss, kld = model.loss_function(x_hat, x, mu, log_var, z)
        assert loss.item() == pytest.approx((rec + beta * kl).mean().item(), rel=1e-5)
        assert rec_loss.item() == pytest.approx(rec.mean().item(), rel=1e-5)
    iaf = M.make_vae("vae_iaf", (1, 8, 8), k, decoder_variance=s2)
    jac = torch.randn(b, generator=g)
    loss, rec_loss, _ = iaf.loss_function(x_hat, x, mu, log_var, z, z, jac)
    kl_iaf = _normal_logpdf(z, mu, log_var) - _normal_logpdf(z, torch.zeros_like(z), torch.zeros_like(z)) - jac
    assert loss.item() == pytest.approx((rec + kl_iaf).mean().item(), rel=1e-5)


@pytest.mark.parametrize("s2", [1.0, 0.1])
def test_decoder_variance_iwae_weights_use_the_scaled_likelihood(s2):
    # IWAE's objective: -sum_k w~_k log w_k with log w_k = log N(x; x_hat_k, s2 I) + log p(z_k) - log q(z_k | x),
    # w~ = softmax(log w) (no gradient). pythae leaves out the likelihood's constant, which shifts every log w_k
    # alike: the weights are unchanged and the loss moves by that constant.
    g = torch.Generator().manual_seed(1)
    b, n, d, k = 2, 5, 64, 3
    model = M.make_vae("iwae", (1, 8, 8), k, decoder_variance=s2)
    assert model.n_samples == n
    x, x_hat = torch.rand(b, 1, 8, 8, generator=g), torch.rand(b, n, d, generator=g)
    mu = torch.randn(b, 1, k, generator=g).repeat(1, n, 1)
    log_var = torch.randn(b, 1, k, generator=g).repeat(1, n, 1)
    z = mu + (0.5 * log_var).exp() * torch.randn(b, n, k, generator=g)
    log_w = (
        -_gaussian_nll(x.reshape(b, 1, d), x_hat, s2)
        + _normal_logpdf(z, torch.zeros_like(z), torch.zeros_like(z))
        - _normal_logpdf(z, mu, log_var)
    )
    hand = -(torch.softmax(log_w, 1) * log_w).sum(1).mean()
    loss, _, _ = model.loss_function(x_hat, x, mu, log_var, z)
    assert loss.item() + 0.5 * d * math.log(2 * math.pi * s2) == pytest.approx(hand.item(), rel=1e-5)
    if s2 != 1.0:  # the variance changes the weights themselves, not only the loss's scale (unlike a beta)
        unit = M.make_vae("iwae", (1, 8, 8), k)
        log_w1 = log_w + _gaussian_nll(x.reshape(b, 1, d), x_hat, s2) - _gaussian_nll(x.reshape(b, 1, d), x_hat, 1.0)
        assert unit.loss_function(x_hat, x, mu, log_var, z)[0].item() + 0.5 * d * math.log(
            2 * math.pi
        ) == pytest.approx(-(torch.softmax(log_w1, 1) * log_w1).sum(1).mean().item(), rel=1e-5)
        assert not torch.allclose(torch.softmax(log_w, 1), torch.softmax(log_w1, 1), atol=1e-3)


def test_decoder_variance_hvae_likelihood_drives_leapfrog_and_objective():
    g = torch.Generator().manual_seed(2)
    x, x_hat = torch.rand(3, 1, 8, 8, generator=g), torch.rand(3, 1, 8, 8, generator=g)
    for s2 in (1.0, 0.1):
        model = M.make_vae("hvae", (1, 8, 8), 4, decoder_variance=s2)
        want = -((x - x_hat) ** 2).reshape(3, -1).sum(-1) / (2 * s2)
        assert torch.allclose(model._log_p_x_given_z(x_hat, x), want, rtol=1e-5)
    # the leapfrog gradient dU/dz = -d log p(x|z)/dz + z sees the variance: 10x the likelihood's gradient
    torch.manual_seed(0)
    unit = M.make_vae("hvae", (1, 8, 8), 4)
    tenth = M.make_vae("hvae", (1, 8, 8), 4, decoder_variance=0.1)
    tenth.load_state_dict(unit.state_dict())
    unit.eval(), tenth.eval()
    z = torch.randn(3, 4, generator=g, requires_grad=True)
    g1, g01 = unit._dU_dz(z, x) - z, tenth._dU_dz(z, x) - z
    assert torch.allclose(g01, 10 * g1, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("kind", M.VAE_KINDS)
def test_default_decoder_variance_is_pythaes_mse_loss_bitwise(kind):
    from pythae.models import HVAE, IWAE, VAE, VAE_IAF, BetaVAE

    pythae_cls = {"vae": VAE, "beta_vae": BetaVAE, "iwae": IWAE, "vae_iaf": VAE_IAF, "hvae": HVAE}[kind]
    torch.manual_seed(0)
    ours = M.make_vae(kind, (1, 8, 8), 4)
    assert ours.decoder_variance == M.PAPER_DECODER_VARIANCE == 1.0 and isinstance(ours, pythae_cls)
    theirs = pythae_cls(ours.model_config, encoder=ours.encoder, decoder=ours.decoder)
    theirs.load_state_dict(ours.state_dict())
    x = torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    torch.manual_seed(5)
    a = ours({"data": x}).loss
    torch.manual_seed(5)
    b = theirs({"data": x}).loss
    assert torch.equal(a, b)
    torch.manual_seed(5)
    c = M.make_vae(kind, (1, 8, 8), 4, decoder_variance=0.1)
    c.load_state_dict(ours.state_dict())
    assert not torch.equal(c({"data": x}).loss, a)


@pytest.mark.parametrize("bad", [0, -0.1, float("nan"), float("inf"), "0.1", None, True])
def test_bad_decoder_variance_raises(bad):
    with pytest.raises(ValueError, match="decoder_variance must be a positive finite number"):
        M.make_vae("vae", (1, 8, 8), 4, decoder_variance=bad)
    with pytest.raises(ValueError, match="has none"):
        M.make_vae("vae", (1, 8, 8), 4, decoder_variance=0.1, reconstruction_loss="bce")


def test_resume_refuses_another_decoder_variance(tmp_path):
    x = torch.rand(8, 1, 8, 8, generator=torch.Generator().manual_seed(0))

    def trainer(s2):
        torch.manual_seed(0)
        model = M.make_vae("vae", (1, 8, 8), 4, decoder_variance=s2)
        return T.MollifiedTrainer(
            model, _dataset(x), None, _config(tmp_path), mollifier=Mollifier("none"), resume_dir=tmp_path / "resume"
        )

    T.quiet_pythae()
    trainer(0.1).train()
    with pytest.raises(checkpoints.CheckpointError, match="decoder_variance"):
        trainer(1.0).train()
