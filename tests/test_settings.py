"""molli_utils.experiments.settings: every profile of every experiment, and the one mode -> mollifier map."""

import dataclasses

import pytest
import torch

from molli_utils.experiments import images, indm, settings, toy2d, uci
from molli_utils.mollifiers import Mollifier
from molli_utils.schedules import sigmoid_schedule

IDENTITY = {
    "toy2d": dict(dataset="von_mises", mode="vanilla", seed=0),
    "indm": dict(dataset="von_mises", flow="identity", seed=0),
    "uci": dict(dataset="redwine", flow="maf", mode="vanilla", seed=1),
    "images": dict(model="vae", mode="vanilla", seed=1),
}
BUILD = {"toy2d": settings.toy2d, "indm": settings.indm, "uci": settings.uci, "images": settings.images}


@pytest.mark.parametrize("experiment", settings.EXPERIMENTS)
def test_full_profile_is_the_run_dataclass_defaults_and_every_profile_builds(experiment):
    cls = type(BUILD[experiment]("full", **IDENTITY[experiment]))
    assert dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen
    if experiment != "images":  # the image runs' full profile adds snapshots of the score during training
        assert BUILD[experiment]("full", **IDENTITY[experiment]) == cls(**IDENTITY[experiment])
    for profile in settings.PROFILES:
        config = BUILD[experiment](profile, **IDENTITY[experiment])
        assert settings.profile_of(experiment, config) in (profile, "full")  # toys: colab = full
    quick = BUILD[experiment]("quick", **IDENTITY[experiment])
    assert quick != BUILD[experiment]("full", **IDENTITY[experiment])
    assert settings.profile_of(experiment, dataclasses.replace(quick, seed=5)) == "quick"
    assert settings.profile_of(experiment, dataclasses.replace(quick, **{_budget_field(experiment): 3})) == "custom"


def _budget_field(experiment):
    return {"toy2d": "steps", "indm": "steps", "uci": "epochs", "images": "epochs"}[experiment]


def test_the_paper_settings_are_the_defaults():
    assert (toy2d.Toy2DRun("von_mises", "vanilla", 0).steps, toy2d.Toy2DRun("von_mises", "vanilla", 0).lr) == (
        20_000,
        5e-4,
    )
    u = uci.UCIRun("redwine", "maf", "vanilla", 1)
    assert (u.epochs, u.batch_size, u.lr, u.weight_decay, u.hidden, u.layers) == (150, 100, 1e-4, 1e-6, 512, 5)
    i = images.ImageRun("vae", "gaussian")
    assert (i.epochs, i.batch_size, i.lr, i.latent_dim, i.width, i.fraction) == (200, 128, 3e-4, 256, 1.0, 0.5)
    assert images.ImageRun("vae", "gaussian", dataset="celeba").epochs == 100
    assert indm.INDMRun("mixture_of_gaussians", "realnvp", 0).sample_steps == 500


def test_profile_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("MOLLI_PROFILE", "quick")
    assert settings.uci(**IDENTITY["uci"]).epochs == 12
    monkeypatch.setenv("MOLLI_PROFILE", "full")
    assert settings.uci(**IDENTITY["uci"]).epochs == 150
    with pytest.raises(ValueError, match="unknown experiment"):
        settings.budget("tables")


def test_every_mode_maps_to_its_mollifier():
    T = 1000
    van = settings.mollifier("vanilla", T, 3, experiment="uci")
    assert isinstance(van, Mollifier) and van.kind == "none" and van.generator is None
    moll = settings.mollifier("mollification", T, 3, experiment="uci")
    assert moll.horizon == T and moll.noise_level(0) == 1.0 and moll.noise_level(T - 1) < 2e-3
    assert moll.noise_level(500) == sigmoid_schedule(500, T)
    half = settings.mollifier("half", T, 3, experiment="toy2d")
    assert half.horizon == 500 and half.noise_level(499) > 0 and half.noise_level(500) == 0.0
    cut = settings.mollifier("clean-half", T, 3, experiment="toy2d")  # the whole run's schedule, stopped halfway
    assert (cut.horizon, cut.schedule_horizon) == (500, T) and cut.noise_level(500) == 0.0
    assert cut.noise_level(499) == moll.noise_level(499) > 0.18 and half.noise_level(250) < moll.noise_level(250)
    const = settings.mollifier("constant", T, 3, experiment="toy2d")
    assert {const.noise_level(t) for t in (0, 500, 999)} == {settings.CONSTANT_NOISE}
    gauss, blur = (settings.mollifier(m, T, 3, experiment="images") for m in ("gaussian", "blur"))
    assert (gauss.kind, gauss.horizon, blur.kind, blur.horizon) == ("gaussian", 500, "blur", 500)
    assert settings.mollifier("gaussian", T, 3, experiment="images", fraction=0.25).horizon == 250
    cosine = settings.mollifier("gaussian", T, 3, experiment="images", schedule="cosine")
    assert cosine.schedule == "cosine" and cosine.noise_level(100) != gauss.noise_level(100)
    with pytest.raises(ValueError, match="unknown mode 'noisy'"):
        settings.mollifier("noisy", T, 3, experiment="uci")
    with pytest.raises(ValueError, match="no annealing schedule"):
        settings.mollifier("constant", T, 3, experiment="uci", schedule="linear")


def test_noise_is_seeded_per_experiment_and_seed():
    x = torch.zeros(4, 2)
    a = settings.mollifier("mollification", 10, 1, experiment="uci")(x, 0)
    assert torch.equal(a, settings.mollifier("mollification", 10, 1, experiment="uci")(x, 0))
    assert torch.equal(a, torch.randn(4, 2, generator=torch.Generator().manual_seed(10_001)))  # offset + seed
    assert not torch.equal(a, settings.mollifier("mollification", 10, 2, experiment="uci")(x, 0))
    assert not torch.equal(a, settings.mollifier("mollification", 10, 1, experiment="toy2d")(x, 0))


def test_runs_validate_their_fields():
    with pytest.raises(ValueError, match="unknown mode 'noisy'"):
        uci.UCIRun("redwine", "maf", "noisy", 1)
    with pytest.raises(ValueError, match="unknown flow"):
        uci.UCIRun("redwine", "nsf", "vanilla", 1)
    with pytest.raises(ValueError, match="unknown dataset 'moons'"):
        toy2d.Toy2DRun("moons", "vanilla", 0)
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        toy2d.Toy2DRun("von_mises", "vanilla", 0, steps=0)
    with pytest.raises(ValueError, match="unknown flow 'glow'.*identity = plain diffusion"):
        indm.INDMRun("von_mises", "glow", 0)
    with pytest.raises(ValueError, match="unknown model 'gan'"):
        images.ImageRun("gan", "vanilla")
    with pytest.raises(ValueError, match="fraction"):
        images.ImageRun("vae", "gaussian", fraction=0.0)
