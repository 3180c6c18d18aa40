"""One image-VAE run: stand-in features, mollifier per mode, training record, results file (full profile only)."""

import csv
import math

import pytest
import torch

from molli_utils import image_runs as R
from molli_utils.data.images import ImageData

pytestmark = pytest.mark.usefixtures("one_thread")


def _data(n=16, size=32):
    x = torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(0))
    return ImageData("random-test-images", "all", x, "uniform noise for tests")


def test_random_features_are_fixed_by_the_seed_and_named_as_a_stand_in():
    x = _data(4).images
    a, b, c = R.random_features_extractor(0), R.random_features_extractor(0), R.random_features_extractor(1)
    assert a(x).shape == (4, 64)
    assert torch.equal(a(x), b(x)) and not torch.equal(a(x), c(x))
    assert "fd-random-features" in a.name and "fid" not in a.name.replace("fd-", "")
    with pytest.raises(ValueError):
        R.RandomFeatures(dim=3)


def test_make_mollifier_maps_the_three_modes():
    assert R.make_mollifier("vanilla", 10).kind == "none"
    g = R.make_mollifier("gaussian", 10, seed=2)
    assert g.kind == "gaussian" and g.horizon == 10 and g.generator is not None
    assert R.make_mollifier("blur", 10).kind == "blur"
    with pytest.raises(ValueError, match="unknown mode"):
        R.make_mollifier("noise", 10)


def test_train_image_vae_records_losses_time_and_snapshots():
    data = _data(16)
    calls = []
    run = R.train_image_vae("vae", "gaussian", data, epochs=2, batch_size=8, latent_dim=4, width=1 / 32, seed=3,
                            snapshot_epochs=[2], snapshot=lambda m: calls.append(m.training) or 1.5)  # fmt: skip
    assert run.steps == 4 and run.horizon == 2
    assert len(run.losses) == 2 and all(math.isfinite(v) for v in run.losses)
    assert run.train_seconds > 0 and run.epochs_run == 2 and run.seconds_per_step == run.train_seconds / 4
    assert len(run.epoch_seconds) == 2 and math.isclose(sum(run.epoch_seconds), run.train_seconds)
    assert run.precision == "fp32" and run.device == "cpu" and run.skipped_steps == 0  # "auto" on a CPU
    assert list(run.snapshots) == [2] and run.snapshots[2]["score"] == 1.5
    assert run.snapshots[2]["images"].shape == (16, 3, 32, 32)
    samples = R.sample_images(run.model, 5, seed=0)
    assert samples.shape == (5, 3, 32, 32) and 0 <= samples.min() and samples.max() <= 1
    assert torch.equal(samples, R.sample_images(run.model, 5, seed=0))


def test_results_file_takes_full_profile_rows_only(tmp_path):
    data = _data(8)
    run = R.ImageRunResult("vae", "blur", None, epochs=2, steps=4, horizon=2, train_seconds=2.0, epochs_run=2)
    row = R.result_row(run, data, seed=1, score_name=R.SCORE_FID, score=12.345678, width=1.0, profile="full", commit="abc")
    assert list(row) == list(R.RESULTS_COLUMNS) and row["seconds_per_step"] == 0.5
    assert (row["precision"], row["skipped_steps"], row["device"]) == ("fp32", 0, "cpu")
    path = tmp_path / "images.csv"
    R.append_result(path, row)
    R.append_result(path, row)
    rows = list(csv.DictReader(open(path)))
    assert len(rows) == 2 and rows[0]["model"] == "vae" and rows[0]["score_name"] == "FID"
    with pytest.raises(ValueError, match="full-profile"):
        R.append_result(path, {**row, "profile": "quick"})
    assert math.isnan(R.ImageRunResult("vae", "blur", None, epochs=2, steps=4, horizon=2).seconds_per_step)
    with pytest.raises(ValueError, match="score_name"):
        R.result_row(run, data, seed=1, score_name="fid", score=1.0, width=1.0, profile="full")


def test_train_image_vae_in_fp16_records_precision_and_skipped_steps():
    run = R.train_image_vae("vae", "blur", _data(16), epochs=3, batch_size=8, latent_dim=4, width=1 / 32, seed=3,
                            precision="fp16")  # fmt: skip
    assert run.precision == "fp16" and 1 <= run.skipped_steps <= run.steps
    with pytest.raises(ValueError, match="unknown precision"):
        R.train_image_vae("vae", "blur", _data(16), epochs=1, batch_size=8, width=1 / 32, precision="half")


@pytest.mark.filterwarnings("ignore::scipy.linalg.LinAlgWarning")  # 16 reference images, 64 features: singular
def test_command_line_trains_scores_records_and_skips_recorded_runs(tmp_path, monkeypatch, capsys):
    # The Colab/GPU command end to end on a CPU: the data set and Inception are replaced by
    # small stand-ins (offline), everything else -- training, resume folders, reference
    # statistics cache, FID of samples, the results file -- is the real code.
    import molli_utils.data.images as images
    import molli_utils.fid as fid

    monkeypatch.setenv("MOLLI_DATA", str(tmp_path / "data"))
    monkeypatch.setattr(images, "load_images", lambda name, **kw: ImageData(name, "train", _data(16).images, "test images"))
    monkeypatch.setattr(fid, "inception_extractor", lambda device: R.random_features_extractor(0, device=device))
    out = tmp_path / "images.csv"
    argv = ["--dataset", "cifar10", "--models", "vae", "--modes", "vanilla", "blur", "--epochs", "2", "--width", "0.03125",
            "--samples", "32", "--checkpoints", str(tmp_path / "ck"), "--out", str(out)]  # fmt: skip
    R.main(argv)
    rows = list(csv.DictReader(open(out)))
    assert [(r["model"], r["mollifier"]) for r in rows] == [("vae", "vanilla"), ("vae", "blur")]
    assert all(r["dataset"] == "cifar10" and r["epochs"] == "2" and r["width"] == "0.03125" and r["precision"] == "fp32"
               and r["profile"] == "full" and float(r["score"]) > 0 for r in rows)  # fmt: skip
    assert rows[0]["score"] != rows[1]["score"]
    assert (tmp_path / "ck" / "cifar10-vae-blur-seed1" / "resume.pt").exists()
    assert len(list((tmp_path / "data" / "fid").glob("cifar10-train-32-n16__*.npz"))) == 1  # reference stats cached
    assert R.recorded_runs(out) == {("cifar10", "vae", m, 1, 2, 0.03125) for m in ("vanilla", "blur")}
    R.main(argv)  # again: both runs are recorded, nothing is trained or appended
    assert len(list(csv.DictReader(open(out)))) == 2 and capsys.readouterr().out.count("skipped") == 2
