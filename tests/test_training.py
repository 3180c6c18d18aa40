"""Tests of molli_utils.training: batches, mollifier steps, non-finite steps, metrics, checkpoints."""

import dataclasses
import math

import normflows as nf
import pytest
import torch

from molli_utils import Mollifier, checkpoints
from molli_utils.training import CHECKPOINT_NAME, DivergenceError, TrainConfig, train


class Gauss(torch.nn.Module):
    """A diagonal Gaussian density with a normflows-style ``forward_kld``: the tiniest model to train."""

    def __init__(self, dim: int = 2) -> None:
        super().__init__()
        self.loc = torch.nn.Parameter(torch.zeros(dim))
        self.log_scale = torch.nn.Parameter(torch.zeros(dim))

    def log_prob(self, x):
        z = (x - self.loc) * torch.exp(-self.log_scale)
        return (-0.5 * z**2 - self.log_scale - 0.5 * math.log(2 * math.pi)).sum(-1)

    def forward_kld(self, x):
        return -self.log_prob(x).mean()


def real_nvp(seed: int = 0, hidden: int = 16, blocks: int = 2) -> nf.NormalizingFlow:
    """The book's 2D REAL-NVP, smaller; its initial weights come from ``seed`` (global RNG untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        flows = []
        for _ in range(blocks):
            flows += [nf.flows.AffineCouplingBlock(nf.nets.MLP([1, hidden, 2])), nf.flows.Permute(2, mode="swap")]
        return nf.NormalizingFlow(nf.distributions.DiagGaussian(2), flows)


def two_moons(n: int = 256, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    t = torch.rand(n, generator=g) * math.pi
    upper = torch.rand(n, generator=g) < 0.5
    x = torch.stack([torch.cos(t) - 0.5 * upper, torch.where(upper, torch.sin(t), 0.5 - torch.sin(t))], 1)
    return x + 0.05 * torch.randn(n, 2, generator=g)


def cfg(**kw) -> TrainConfig:
    kw.setdefault("progress", False)
    if "epochs" not in kw:
        kw.setdefault("steps", 20)
    return TrainConfig(**{"batch_size": 8, "lr": 1e-2, **kw})


def gauss_data(n: int = 64, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.tensor([3.0, -1.0]) + torch.tensor([0.5, 2.0]) * torch.randn(n, 2, generator=g)


def params(model) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_same_state(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs"


class Recorder:
    """A fake mollifier that records the steps and batch sizes it sees and returns x unchanged."""

    def __init__(self):
        self.steps, self.sizes, self.rows = [], [], []

    def __call__(self, x, step):
        self.steps.append(step)
        self.sizes.append(len(x))
        self.rows.append(x[:, 0].tolist())
        return x


# --- fitting and configuration ---------------------------------------------------------------


def test_fits_a_gaussian_and_records_a_history():
    data, model = gauss_data(512), Gauss()
    res = train(model, data, cfg(steps=600, batch_size=64, lr=0.05))
    assert torch.allclose(model.loc, data.mean(0), atol=0.15)
    assert torch.allclose(model.log_scale.exp(), data.std(0), rtol=0.1)
    assert res.final_step == 600 and res.num_nonfinite == 0 and res.resumed_from is None
    assert res.history["step"] == list(range(1, 601))  # 600 steps: log_every = 1
    assert res.history["loss"][-1] < res.history["loss"][0]
    assert res.history["noise_level"] == [0.0] * 600 and res.evals == [] and res.elapsed > 0
    frame = res.to_frame()
    assert list(frame.columns) == ["step", "loss", "noise_level", "skipped"] and len(frame) == 600


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"steps": 10, "epochs": 2}, "exactly one of steps and epochs"),
        ({"steps": None}, "exactly one of steps and epochs"),
        ({"steps": 0}, "steps must be a positive integer"),
        ({"epochs": 1.5}, "epochs must be a positive integer"),
        ({"batch_size": 0}, "batch_size must be a positive integer"),
        ({"batch_size": -3}, "batch_size must be a positive integer"),
        ({"lr": 0.0}, "lr must be a positive finite number"),
        ({"lr": float("nan")}, "lr must be a positive finite number"),
        ({"eval_every": -1}, "eval_every must be an integer >= 0"),
        ({"log_every": 0}, "log_every must be a positive integer"),
        ({"grad_clip": 0.0}, "grad_clip must be a positive number"),
        ({"max_nonfinite_in_row": 0}, "max_nonfinite_in_row must be a positive integer"),
        ({"checkpoint_every": 5}, "needs a checkpoint_dir"),
    ],
)
def test_bad_config_raises_a_clear_value_error(kw, message):
    with pytest.raises(ValueError, match=message):
        cfg(**kw)


@pytest.mark.parametrize(
    "data, message",
    [
        (torch.randn(4, 2), r"batch_size=8 is larger than the data \(4 examples\)"),
        ([[0.0, 1.0]] * 16, "data must be a torch.Tensor"),
        (torch.randn(16), r"at least 2 dims, got shape \(16,\)"),
        (torch.ones(16, 2, dtype=torch.long), "floating point"),
        (torch.full((16, 2), float("nan")), "non-finite"),
    ],
)
def test_bad_data_raises_a_clear_value_error(data, message):
    with pytest.raises(ValueError, match=message):
        train(Gauss(), data, cfg())


def test_bad_metrics_and_loss_raise_value_errors():
    data = gauss_data()
    with pytest.raises(ValueError, match="select_metric='nll' is not one of the metrics"):
        train(Gauss(), data, cfg(), metrics={"mmd": lambda m: 0.0}, select_metric="nll")
    with pytest.raises(ValueError, match="callables"):
        train(Gauss(), data, cfg(), metrics={"mmd": 0.0})
    with pytest.raises(ValueError, match="has no forward_kld"):
        train(torch.nn.Linear(2, 2), data, cfg())


# --- batches and the mollifier -------------------------------------------------------------------


@pytest.mark.parametrize("drop_last, per_epoch, sizes", [(True, 2, [4, 4]), (False, 3, [4, 4, 2])])
def test_mollifier_sees_global_steps_and_epochs_are_permutations(drop_last, per_epoch, sizes):
    data = torch.arange(10.0).unsqueeze(1).repeat(1, 2)
    rec = Recorder()
    config = cfg(epochs=3, batch_size=4, drop_last=drop_last)
    res = train(Gauss(), data, config, mollifier=rec)
    assert config.total_steps(10) == 3 * per_epoch == res.final_step
    assert rec.steps == list(range(3 * per_epoch))
    assert rec.sizes == sizes * 3
    epochs = [sum(rec.rows[e * per_epoch : (e + 1) * per_epoch], []) for e in range(3)]
    for seen in epochs:
        assert len(set(seen)) == len(seen) == sum(sizes)  # no repeats within an epoch
        if not drop_last:
            assert sorted(seen) == list(range(10))
    assert epochs[0] != epochs[1]  # a fresh permutation each epoch


def test_noise_level_history_follows_the_mollifier():
    moll = Mollifier("gaussian", horizon=10, generator=torch.Generator().manual_seed(1))
    res = train(Gauss(), gauss_data(), cfg(steps=20, log_every=2), mollifier=moll)
    assert res.history["step"] == list(range(2, 21, 2))
    assert res.history["noise_level"] == [moll.noise_level(s - 1) for s in range(2, 21, 2)]
    assert res.history["noise_level"][0] > 0.5 and res.history["noise_level"][-1] == 0.0


def test_history_is_thinned_to_about_1000_points_and_averages_windows():
    losses = []

    def loss_fn(model, x):
        loss = model.forward_kld(x)
        losses.append(loss.item())
        return loss

    res = train(Gauss(), gauss_data(), cfg(steps=2500, batch_size=4), loss_fn=loss_fn)
    assert len(res.history["step"]) == 834 and res.history["step"][:2] == [3, 6]  # log_every = ceil(2500/1000)
    assert res.history["step"][-1] == 2500
    assert res.history["loss"][0] == pytest.approx(sum(losses[:3]) / 3)
    assert res.history["loss"][-1] == pytest.approx(losses[-1])  # last window: one step


def test_same_seed_same_run_and_other_seed_other_run():
    def run(seed):
        model = Gauss()
        moll = Mollifier("gaussian", horizon=15, generator=torch.Generator().manual_seed(seed))
        res = train(model, gauss_data(), cfg(seed=seed), mollifier=moll)
        return params(model), res.history["loss"]

    (p1, h1), (p2, h2), (p3, h3) = run(0), run(0), run(1)
    assert_same_state(p1, p2)
    assert h1 == h2 and h1 != h3
    assert not torch.equal(p1["loc"], p3["loc"])


def test_user_optimizer_and_gradient_clipping():
    model = Gauss()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    steps = []
    config = cfg(steps=5, grad_clip=0.01)
    train(model, gauss_data(), config, optimizer=opt, callback=lambda s, m: steps.append(params(m)))
    before = {"loc": torch.zeros(2), "log_scale": torch.zeros(2)}
    for after in steps:  # SGD with lr=1 moves by the clipped gradient: norm <= 0.01
        moved = torch.cat([after[k] - before[k] for k in before])
        assert 0.009 < moved.norm() <= 0.01 + 1e-6
        before = after


# --- non-finite steps -------------------------------------------------------------------------


def test_nan_losses_are_skipped_counted_and_the_schedule_goes_on():
    calls, snapshots, rec = [], [], Recorder()

    def loss_fn(model, x):
        calls.append(len(calls))
        loss = model.forward_kld(x)
        return loss * float("nan") if len(calls) - 1 in (3, 7) else loss

    res = train(
        Gauss(),
        gauss_data(),
        cfg(steps=12, log_every=4),
        loss_fn=loss_fn,
        mollifier=rec,
        callback=lambda s, m: snapshots.append(params(m)),
    )
    assert res.num_nonfinite == 2 and res.final_step == 12
    assert rec.steps == list(range(12))  # skipped steps still advance the step counter
    assert res.history["skipped"] == [1, 1, 0]
    assert all(math.isfinite(v) for v in res.history["loss"])
    assert_same_state(snapshots[3], snapshots[2])  # step 3 made no update
    assert not torch.equal(snapshots[4]["loc"], snapshots[3]["loc"])  # step 4 did


def test_nan_gradient_with_finite_loss_is_skipped():
    def loss_fn(model, x):
        hidden = torch.sqrt(model.loc[0] * 0)  # value 0, gradient 0 * inf = nan
        return model.forward_kld(x) + hidden

    model = Gauss()
    res = train(model, gauss_data(), cfg(steps=3, max_nonfinite_in_row=5), loss_fn=loss_fn)
    assert res.num_nonfinite == 3 and res.history["skipped"] == [1, 1, 1]
    assert math.isnan(res.history["loss"][0])  # a window with only skipped steps
    assert_same_state(params(model), params(Gauss()))


@pytest.mark.parametrize("bad", [math.inf, -math.inf, math.nan])
def test_gradient_check_sees_one_bad_entry_in_any_of_many_gradients(bad):
    from molli_utils.training.ensemble import grad_check

    params = [torch.nn.Parameter(torch.zeros(n)) for n in (3, 1000, 7)]
    for i, p in enumerate(params):
        p.grad = torch.full_like(p, 0.5 * (i + 1))
    params.append(torch.nn.Parameter(torch.zeros(2)))  # no gradient: ignored
    check = grad_check(params, None)
    assert float(check) == pytest.approx(0.5 * 3 + 1.0 * 1000 + 1.5 * 7)  # the sum of all entries
    for p in params[:3]:
        saved = p.grad.clone()
        p.grad[-1] = bad
        assert not math.isfinite(float(grad_check(params, None)))
        p.grad.copy_(saved)
    assert math.isfinite(float(grad_check(params, None)))


def test_persistent_nan_raises_divergence_error_after_the_configured_count():
    model = Gauss()
    with pytest.raises(DivergenceError, match=r"4 non-finite .* in a row \(steps 0..3.*lower learning rate") as err:
        train(model, gauss_data(), cfg(max_nonfinite_in_row=4), loss_fn=lambda m, x: m.forward_kld(x) * math.inf)
    assert err.value.step == 3 and err.value.count == 4 and isinstance(err.value, RuntimeError)
    assert_same_state(params(model), params(Gauss()))


# --- metrics and the best state ------------------------------------------------------------------


def test_metrics_run_in_eval_mode_without_grad_and_do_not_change_training():
    seen = []

    def metric(model):
        seen.append((model.training, torch.is_grad_enabled()))
        return float(torch.randn(1000).mean())  # uses the global RNG, as sampling from a model does

    def run(metrics):  # no mollifier generator: the noise comes from the global RNG
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = Gauss()
            res = train(
                model,
                gauss_data(),
                cfg(steps=20, eval_every=5),
                mollifier=Mollifier("gaussian", horizon=20),
                metrics=metrics,
            )
        return model, res

    plain, _ = run({})
    measured, res = run({"m": metric})
    assert_same_state(params(plain), params(measured))
    assert seen == [(False, False)] * 4 and measured.training
    assert [e["step"] for e in res.evals] == [5, 10, 15, 20] and res.final_metrics["step"] == 20


def test_epoch_runs_evaluate_at_each_epoch_end_and_keep_the_best_state():
    values, snapshots = iter([5.0, 3.0, 4.0, 1.0, 2.0]), {}
    res = train(
        Gauss(),
        gauss_data(64),
        cfg(epochs=5, batch_size=16),
        metrics={"val": lambda m: next(values)},
        callback=lambda s, m: snapshots.__setitem__(s, params(m)),
    )
    assert [(e["step"], e["epoch"], e["val"]) for e in res.evals] == [
        (4, 1, 5.0),
        (8, 2, 3.0),
        (12, 3, 4.0),
        (16, 4, 1.0),
        (20, 5, 2.0),
    ]
    assert (res.best_metric, res.best_value, res.best_step) == ("val", 1.0, 16)
    assert_same_state(res.best_state, snapshots[16])
    assert res.final_metrics["val"] == 2.0 and list(res.to_frame("evals").columns) == ["step", "epoch", "val"]


# --- checkpoints --------------------------------------------------------------------------------


class Stop(KeyboardInterrupt):
    pass


def _stop_at(step):
    def callback(done, model):
        if done == step:
            raise Stop

    return callback


@pytest.mark.parametrize("own_generator", [True, False], ids=["mollifier-generator", "global-rng"])
def test_interrupted_and_resumed_run_is_bitwise_identical(tmp_path, own_generator):
    data = two_moons()
    config = cfg(steps=60, batch_size=32, lr=5e-3, eval_every=10)
    metrics = {"val_nll": lambda m: float(m.forward_kld(data[:64]))}

    def run(checkpoint_dir=None, stop=None):
        moll = Mollifier("gaussian", horizon=60, generator=torch.Generator().manual_seed(7) if own_generator else None)
        model = real_nvp()
        c = dataclasses.replace(config, checkpoint_dir=checkpoint_dir, checkpoint_every=20 if checkpoint_dir else 0)
        return model, train(model, data, c, mollifier=moll, metrics=metrics, callback=stop)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        straight, ref = run()
        torch.manual_seed(3)
        with pytest.raises(Stop):
            run(tmp_path, _stop_at(30))
        saved = checkpoints.load(tmp_path / CHECKPOINT_NAME)
        assert saved["loop"]["step"] == 20 and saved["trainer"] == "molli_utils.training.train"
        assert set(saved) == {"trainer", "fingerprint", "model", "optimizer", "rng", "loop"}
        assert set(saved["rng"]) == {"data", "mollifier", "torch", "cuda"} and saved["rng"]["cuda"] is None
        assert (saved["rng"]["mollifier"]["generator"] is not None) == own_generator
        torch.manual_seed(123)  # the resumed run restores the global RNG state from the checkpoint
        resumed, res = run(tmp_path)
    assert res.resumed_from == 20 and res.final_step == 60
    assert_same_state(params(straight), params(resumed))
    assert res.history == ref.history and res.evals == ref.evals
    assert (res.best_step, res.best_value) == (ref.best_step, ref.best_value)
    assert_same_state(res.best_state, ref.best_state)
    assert sorted(p.name for p in tmp_path.iterdir()) == [CHECKPOINT_NAME]  # no temporary files left

    again_model, again = run(tmp_path)  # a finished run: loads and returns at once
    assert again.resumed_from == 60 and again.history == ref.history
    assert_same_state(params(again_model), params(straight))


def test_damaged_or_foreign_checkpoint_is_refused_with_the_fix(tmp_path):
    """Truncation, garbage, a plain torch.save file and one flipped byte inside a weight: never loaded."""
    data = gauss_data()
    train(Gauss(), data, cfg(steps=10, checkpoint_dir=tmp_path))
    path = tmp_path / CHECKPOINT_NAME
    good = path.read_bytes()
    loc = checkpoints.load(path)["model"]["loc"]
    at = good.find(loc.numpy().tobytes())  # the raw float32 bytes of the weight `loc` in the payload
    assert at > 0
    flipped = good[:at] + bytes([good[at] ^ 0x10]) + good[at + 1 :]
    torch.save({"model": {}}, tmp_path / "plain.pt")
    cases = {
        "truncated": (good[:-100], "truncated"),
        "garbage": (b"\x00garbage" * 50, "not a molli_utils checkpoint"),
        "plain torch.save": ((tmp_path / "plain.pt").read_bytes(), "not a molli_utils checkpoint"),
        "empty": (b"", "is empty"),
        "flipped byte in a weight": (flipped, "damaged"),
    }
    for what, (content, message) in cases.items():
        path.write_bytes(content)
        with pytest.raises(checkpoints.CheckpointError, match=message) as err:
            train(Gauss(), data, cfg(steps=10, checkpoint_dir=tmp_path))
        assert str(path) in str(err.value) and "delete it" in str(err.value), what
    path.write_bytes(good)
    assert train(Gauss(), data, cfg(steps=10, checkpoint_dir=tmp_path)).resumed_from == 10


def test_checkpoint_save_is_atomic_and_refuses_unsafe_objects(tmp_path, monkeypatch):
    path = checkpoints.save({"a": torch.ones(3)}, tmp_path / "c.pt")
    assert torch.equal(checkpoints.load(path)["a"], torch.ones(3))

    def broken_save(obj, f):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        checkpoints.save({"a": torch.zeros(3)}, path)
    monkeypatch.undo()
    assert torch.equal(checkpoints.load(path)["a"], torch.ones(3))  # the old checkpoint is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.pt"]  # no temporary file left
    checkpoints.save({"a": Gauss()}, path)  # an intact file holding an arbitrary object is not unpickled
    with pytest.raises(checkpoints.CheckpointError, match="cannot be loaded safely"):
        checkpoints.load(path)


def test_resume_refuses_a_checkpoint_made_with_another_config(tmp_path):
    data = gauss_data()
    train(Gauss(), data, cfg(steps=10, checkpoint_dir=tmp_path))
    with pytest.raises(ValueError, match=r"different configuration \(config.lr: 0.01 \(checkpoint\) != 0.02 \(now\)"):
        train(Gauss(), data, cfg(steps=10, lr=0.02, checkpoint_dir=tmp_path))
    with pytest.raises(ValueError, match=r"different configuration \(data: "):
        train(Gauss(), gauss_data(seed=1), cfg(steps=10, checkpoint_dir=tmp_path))
    with pytest.raises(ValueError, match="mollifier"):
        train(Gauss(), data, cfg(steps=10, checkpoint_dir=tmp_path), mollifier=Mollifier("gaussian", horizon=10))
    train(Gauss(), data, cfg(steps=10, checkpoint_dir=tmp_path, progress=True))  # run-only fields may change


def test_progress_bar_shows_loss_and_noise(capsys):
    train(Gauss(), gauss_data(), cfg(progress=True, desc="toy"), mollifier=Mollifier("gaussian", horizon=10))
    err = capsys.readouterr().err
    assert "toy" in err and "loss=" in err and "noise=" in err and "20/20" in err


# --- ensembles: one data set, seed and mollifier per member ------------------------------------------


class GaussEnsemble(torch.nn.Module):
    """``m`` :class:`Gauss` models with parameters stacked along dim 0: ``forward_kld(x [M, B, dim]) -> [M]``."""

    def __init__(self, m: int = 3, dim: int = 2) -> None:
        super().__init__()
        self.loc = torch.nn.Parameter(torch.zeros(m, dim))
        self.log_scale = torch.nn.Parameter(torch.zeros(m, dim))

    def forward_kld(self, x):
        z = (x - self.loc[:, None]) * torch.exp(-self.log_scale[:, None])
        return -(-0.5 * z**2 - self.log_scale[:, None] - 0.5 * math.log(2 * math.pi)).sum(-1).mean(-1)


def nan_at(steps):
    """A fake mollifier that turns the batches of the given 0-based steps into nan."""
    return lambda x, step: x * math.nan if step in steps else x


def test_ensemble_members_train_as_if_alone():
    data = [gauss_data(64, seed=i) for i in range(3)]
    molli = lambda: Mollifier("gaussian", horizon=20, generator=torch.Generator().manual_seed(5))  # noqa: E731
    ens = GaussEnsemble(3)
    res = train(ens, data, cfg(seed=(0, 1, 2), log_every=5), mollifier=[None, molli(), None])
    for i in range(3):
        alone = Gauss()
        ref = train(alone, data[i], cfg(seed=i, log_every=5), mollifier=molli() if i == 1 else None)
        torch.testing.assert_close(ens.loc[i], alone.loc, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(ens.log_scale[i], alone.log_scale, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(res.member_losses[:, i], torch.tensor(ref.history["loss"], dtype=torch.float64))
    assert res.history["step"] == [5, 10, 15, 20] and res.member_losses.shape == (4, 3)
    assert res.history["noise_level"][0][0] == 0.0 and res.history["noise_level"][0][1] > 0.5
    assert res.history["skipped"] == [[0, 0, 0]] * 4
    assert res.num_nonfinite == 0 and res.member_nonfinite == [0, 0, 0] and res.diverged_at == [None] * 3
    frame = res.to_frame()
    assert list(frame.columns) == ["step", "member", "loss", "noise_level", "skipped"] and len(frame) == 12
    one = train(Gauss(), data[0], cfg())  # a single model: no per-member fields
    assert one.member_nonfinite is None and one.diverged_at is None and one.member_losses.shape == (20, 1)


def test_ensemble_non_finite_members_skip_then_freeze_and_all_frozen_raises():
    data, snapshots = [gauss_data(64, seed=i) for i in range(3)], []
    ens = GaussEnsemble(3)
    res = train(
        ens,
        data,
        cfg(steps=10, seed=(0, 1, 2), max_nonfinite_in_row=3),
        mollifier=[None, nan_at({2}), nan_at(set(range(4, 10)))],
        callback=lambda s, m: snapshots.append(params(m)),
    )
    assert res.member_nonfinite == [0, 1, 3] and res.num_nonfinite == 4 and res.diverged_at == [None, None, 6]
    assert math.isnan(res.history["loss"][2][1]) and res.history["skipped"][2] == [0, 1, 0]
    assert math.isnan(res.history["loss"][9][2]) and res.history["skipped"][9] == [0, 0, 0]  # frozen: not counted
    assert torch.equal(snapshots[2]["loc"][1], snapshots[1]["loc"][1])  # member 1 skipped step 2 ...
    assert not torch.equal(snapshots[2]["loc"][0], snapshots[1]["loc"][0])  # ... member 0 did not
    assert torch.equal(snapshots[-1]["loc"][2], snapshots[3]["loc"][2])  # member 2: no update after step 3
    alone = Gauss()
    train(alone, data[2], cfg(steps=4, seed=2))
    torch.testing.assert_close(ens.loc[2], alone.loc, rtol=1e-5, atol=1e-6)
    with pytest.raises(DivergenceError, match=r"every member of the ensemble \(2\) froze after 3 non-finite"):
        train(GaussEnsemble(2), data[:2], cfg(max_nonfinite_in_row=3), mollifier=[nan_at({0, 1, 2}), nan_at({1, 2, 3})])


def test_ensemble_gradient_clipping_is_per_member():
    data, steps = [gauss_data(64, seed=0), gauss_data(64, seed=0) * 1e4], []  # member 1: a huge gradient
    ens = GaussEnsemble(2)
    before = params(ens)
    train(
        ens,
        data,
        cfg(steps=1, grad_clip=0.01),
        optimizer=torch.optim.SGD(ens.parameters(), lr=1.0),
        callback=lambda s, m: steps.append(params(m)),
    )
    moved = [torch.cat([steps[0][k][i] - before[k][i] for k in before]).norm() for i in range(2)]
    assert all(0.0099 < v <= 0.01 + 1e-6 for v in moved)  # a global clip would shrink member 0's step ~1e8-fold


@pytest.mark.parametrize(
    "data, kw, message",
    [
        (gauss_data(), {"config": cfg(seed=(0, 1))}, "one data set per member"),
        ([gauss_data(), gauss_data()], {"config": cfg(seed=(0, 1, 2))}, "one seed and one mollifier per data set"),
        ([gauss_data(), gauss_data()], {"mollifier": [None]}, "one seed and one mollifier per data set"),
        ([gauss_data()] * 2, {"loss_fn": lambda m, x: m.forward_kld(x).sum()}, r"one loss per member, shape \[2\]"),
        ([gauss_data(), gauss_data(n=16)], {"config": cfg(epochs=2)}, "equally many batches per epoch"),
        ([gauss_data(), torch.randn(4, 2)], {}, "batch_size=8 is larger than the data"),
    ],
)
def test_ensemble_bad_arguments_raise_value_errors(data, kw, message):
    with pytest.raises(ValueError, match=message):
        train(GaussEnsemble(2), data, kw.pop("config", cfg()), **kw)


def test_ensemble_needs_stacked_parameters_and_valid_seeds():
    with pytest.raises(ValueError, match="stacked along dim 0"):
        train(GaussEnsemble(2), [gauss_data()] * 3, cfg())
    with pytest.raises(ValueError, match="seed must be an integer >= 0"):
        cfg(seed=(0, -1))


@pytest.mark.usefixtures("one_thread")
def test_interrupted_and_resumed_ensemble_run_is_bitwise_identical(tmp_path):
    from molli_utils.models import FlowEnsemble

    data = [two_moons(seed=i) for i in range(3)]
    config = cfg(steps=40, batch_size=32, lr=5e-3, seed=(0, 1, 2), max_nonfinite_in_row=3, eval_every=10)
    metrics = {"val_nll": lambda m: float(m.nll(torch.stack([d[:64] for d in data])).mean())}

    def run(checkpoint_dir=None, stop=None):
        # member 1: non-finite at steps 18-20 (frozen at 20 only if its count survives the checkpoint at 20)
        molli = [
            Mollifier("gaussian", horizon=40, generator=torch.Generator().manual_seed(7)),
            nan_at({18, 19, 20}),
            Mollifier("gaussian", horizon=40, generator=torch.Generator().manual_seed(8)),
        ]
        model = FlowEnsemble([real_nvp(seed=i) for i in range(3)])
        c = dataclasses.replace(config, checkpoint_dir=checkpoint_dir, checkpoint_every=20 if checkpoint_dir else 0)
        return model, train(model, data, c, mollifier=molli, metrics=metrics, callback=stop)

    straight, ref = run()
    with pytest.raises(Stop):
        run(tmp_path, _stop_at(30))
    saved = checkpoints.load(tmp_path / CHECKPOINT_NAME)
    assert saved["loop"]["step"] == 20 and saved["loop"]["in_row"] == [0, 2, 0]
    assert len(saved["rng"]["data"]) == 3 and saved["rng"]["mollifier"][1] is None
    resumed, res = run(tmp_path)
    assert res.resumed_from == 20 and ref.diverged_at == res.diverged_at == [None, 20, None]
    assert ref.member_nonfinite == res.member_nonfinite == [0, 3, 0]
    assert_same_state(params(straight), params(resumed))
    assert repr(res.history) == repr(ref.history) and res.evals == ref.evals  # repr: nan == nan
    assert_same_state(res.best_state, ref.best_state)
