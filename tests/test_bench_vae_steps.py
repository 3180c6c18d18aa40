"""benchmarks.bench_vae_steps: step times come from the real training path, on named synthetic data."""

import math

import pytest
import torch

from benchmarks import bench_vae_steps as B

pytestmark = pytest.mark.usefixtures("one_thread")


def test_synthetic_images_are_named_as_such():
    data = B.synthetic_images(4, 32, seed=1)
    assert data.name == "synthetic-uniform" and data.shape == (3, 32, 32) and len(data) == 4
    assert torch.equal(data.images, B.synthetic_images(4, 32, seed=1).images)


def test_time_step_reports_the_second_epoch(monkeypatch):
    seen = {}
    real = B.images.run

    def spy(config, **kwargs):
        run = real(config, **kwargs)
        seen["run"], seen["config"] = run, config
        return run

    monkeypatch.setattr(B.images, "run", spy)
    r = B.time_step("vae", "bf16", torch.device("cpu"), batch=4, steps=2, width=1 / 32, latent_dim=4)
    run = seen["run"]
    assert seen["config"].fraction == 1.0 and seen["config"].mode == "gaussian"  # the timed epoch is mollified too
    assert run.epochs_run == 2 and r["seconds_per_step"] == run.epoch_seconds[1] / 2 > 0
    assert r["warmup_seconds"] == run.epoch_seconds[0] and r["precision"] == "bf16" and r["skipped_steps"] == 0


def test_main_on_a_cpu_times_fp32_and_bf16(capsys):
    out = B.main(
        ["--device", "cpu", "--models", "vae", "--width", "0.03125", "--steps", "1", "--batch", "2", "--threads", "1"]
    )
    assert set(out) == {("vae", "fp32"), ("vae", "bf16")} and all(math.isfinite(v) and v > 0 for v in out.values())
    text = capsys.readouterr().out
    assert "EXTRAPOLATED" in text and "78,200 steps" in text and "fp32 / bf16" in text
