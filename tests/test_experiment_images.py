"""The image-VAE experiment: stand-in features, the run's record, the scorer, results rows with their profile,
and the command end to end (offline stand-ins for CIFAR-10 and Inception)."""

import csv
import math

import pytest
import torch

from molli_utils import fid
from molli_utils.data.images import ImageData
from molli_utils.experiments import images, main, results, settings
from molli_utils.models.vae import sample_images

pytestmark = pytest.mark.usefixtures("one_thread")


def _data(n=16, size=32):
    x = torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(0))
    return ImageData("random-test-images", "all", x, "uniform noise for tests")


def _config(**kw):
    return images.ImageRun(**{"model": "vae", "mode": "gaussian", "seed": 3, "epochs": 2, "batch_size": 8,
                              "latent_dim": 4, "width": 1 / 32, "n_score": 32, "n_snapshot": 16, **kw})  # fmt: skip


def test_random_features_are_fixed_by_the_seed_and_named_as_a_stand_in():
    x = _data(4).images
    a, b, c = fid.random_features_extractor(0), fid.random_features_extractor(0), fid.random_features_extractor(1)
    assert a(x).shape == (4, 64)
    assert torch.equal(a(x), b(x)) and not torch.equal(a(x), c(x))
    assert "fd-random-features" in a.name and "fid" not in a.name.replace("fd-", "")
    with pytest.raises(ValueError):
        fid.RandomFeatures(dim=3)


def test_run_records_losses_time_snapshots_and_the_final_score():
    data = _data(16)
    scorer = images.make_scorer(data, use_fid="never", log=lambda s: None)
    assert scorer.name == fid.SCORE_STANDIN
    epochs_seen = []
    run = images.run(_config(snapshot_epochs=(2,)), data=data, scorer=scorer, callback=lambda e, m: epochs_seen.append(e))
    assert run.steps == 4 and run.horizon == 2 and epochs_seen == [1, 2]
    assert len(run.losses) == 2 and all(math.isfinite(v) for v in run.losses)
    assert run.train_seconds > 0 and run.epochs_run == 2 and run.seconds_per_step == run.train_seconds / 4
    assert len(run.epoch_seconds) == 2 and math.isclose(sum(run.epoch_seconds), run.train_seconds)
    assert run.precision == "fp32" and run.device == "cpu" and run.skipped_steps == 0  # "auto" on a CPU
    assert list(run.snapshots) == [2] and run.snapshots[2]["images"].shape == (16, 3, 32, 32)
    assert run.snapshots[2]["score"] == scorer(run.model, 16, seed=10)  # n_snapshot samples, seed + 7
    assert run.score_name == fid.SCORE_STANDIN and run.score == scorer(run.model, 32, seed=10)
    samples = sample_images(run.model, 5, seed=0)
    assert samples.shape == (5, 3, 32, 32) and 0 <= samples.min() and samples.max() <= 1
    assert torch.equal(samples, sample_images(run.model, 5, seed=0))
    again = images.run(_config(snapshot_epochs=(2,)), data=data, scorer=scorer)
    assert again.score == run.score and again.losses == run.losses  # seeded


def test_results_row_names_its_profile_and_needs_a_score():
    data = _data(8)
    run = images.ImageResult(_config(), None, steps=4, horizon=2, train_seconds=2.0, epochs_run=2,
                             score_name=fid.SCORE_FID, score=12.345678)  # fmt: skip
    row = images.result_row(run, data)
    assert row["seconds_per_step"] == 0.5 and row["score"] == 12.3457 and row["profile"] == "custom"
    assert set(row) | {"commit", "dirty", "date"} == set(results.FILES["images.csv"].columns)
    quick = settings.images("quick", model="vae", mode="blur", seed=1)
    assert images.result_row(images.ImageResult(quick, None, 4, 2, score_name="FID", score=1.0), data)["profile"] == "quick"
    with pytest.raises(ValueError, match="no score"):
        images.result_row(images.ImageResult(_config(), None, steps=4, horizon=2), data)
    assert math.isnan(images.ImageResult(_config(), None, steps=4, horizon=2).seconds_per_step)


def test_fp16_run_records_precision_and_skipped_steps():
    run = images.run(_config(mode="blur", epochs=3, precision="fp16"), data=_data(16))
    assert run.precision == "fp16" and 1 <= run.skipped_steps <= run.steps
    with pytest.raises(ValueError, match="unknown precision"):
        images.run(_config(precision="half"), data=_data(16))


def test_resume_dir_and_profiles_of_the_chapter():
    config = settings.images("full", model="iwae", mode="blur", seed=2)
    assert images.resume_dir(config, "ck").as_posix() == "ck/cifar10-iwae-blur-seed2"
    assert (config.epochs, config.width, config.n_score) == (200, 1.0, 50_000)
    quick = settings.images("quick", model="iwae", mode="blur", seed=2)
    assert quick.dataset == "sklearn-sample-patches" and len(images.load_data(quick)) == 512


@pytest.mark.filterwarnings("ignore::scipy.linalg.LinAlgWarning")  # 16 reference images, 64 features: singular
def test_command_line_trains_scores_records_and_skips_recorded_runs(tmp_path, monkeypatch, capsys):
    # The GPU command end to end on a CPU: the data set and Inception are replaced by small
    # stand-ins (offline); everything else -- training, resume folders, the reference statistics
    # cache, FID of samples, the results file with provenance -- is the real code.
    monkeypatch.setenv("MOLLI_DATA", str(tmp_path / "data"))
    monkeypatch.setattr(images, "load_images", lambda name, **kw: ImageData(name, "train", _data(16).images, "test images"))
    monkeypatch.setattr(images, "inception_extractor", lambda device: fid.random_features_extractor(0, device=device))
    argv = ["images", "--dataset", "cifar10", "--models", "vae", "--modes", "vanilla", "blur", "--epochs", "2",
            "--width", "0.03125", "--samples", "32", "--checkpoints", str(tmp_path / "ck"), "--results", str(tmp_path)]
    main(argv)
    rows = list(csv.DictReader(open(tmp_path / "images.csv")))
    assert [(r["model"], r["mollifier"]) for r in rows] == [("vae", "vanilla"), ("vae", "blur")]
    assert all(r["dataset"] == "cifar10" and r["epochs"] == "2" and r["width"] == "0.03125" and r["precision"] == "fp32"
               and r["profile"] == "custom" and r["score_name"] == "FID" and float(r["score"]) > 0
               and r["commit"] for r in rows)  # fmt: skip
    assert rows[0]["score"] != rows[1]["score"]
    assert (tmp_path / "ck" / "cifar10-vae-blur-seed1" / "checkpoint.pt").exists()
    assert len(list((tmp_path / "data" / "fid").glob("cifar10-train-32-n16__*.npz"))) == 1  # reference stats cached
    main(argv)  # again: both runs are recorded, nothing is trained or appended
    assert len(list(csv.DictReader(open(tmp_path / "images.csv")))) == 2
    assert "2 of 2 image runs already" in capsys.readouterr().out
