"""The toy experiment command: a short seeded configuration reproduces exactly, early-stops on a
validation set, has a constant-noise baseline, and writes the results schema."""

import math

import pandas as pd
import pytest
import torch

from molli_utils import experiments as E
from molli_utils.experiments import BestByValidation, main, run_toy2d, toy2d_mollifier, toy2d_validation
from molli_utils.models import FlowEnsemble, realnvp_2d
from molli_utils.report import REQUIRED_COLUMNS

pytestmark = pytest.mark.usefixtures("one_thread")

# lr 1e-2 (not the paper's 5e-4) so that within 200 steps some runs' validation NLL goes back up:
# their best step is not the last one, and the snapshot path is exercised.
SHORT = dict(steps=200, seeds=(3,), n_train=600, n_test=400, n_val=500, n_samples=400, n_evals=10, lr=1e-2,
             progress=False)  # fmt: skip


@pytest.fixture(scope="module")
def short_runs():
    return run_toy2d(**SHORT), run_toy2d(**SHORT)


def test_short_toy2d_run_reproduces_exactly(short_runs):
    a, b = short_runs
    assert a.equals(b)
    assert a.attrs["val_nll"] == b.attrs["val_nll"]
    assert list(a[["dataset", "mode"]].itertuples(index=False, name=None)) == [
        ("mixture_of_gaussians", "vanilla"), ("mixture_of_gaussians", "mollification"),
        ("mixture_of_gaussians", "constant"),
        ("von_mises", "vanilla"), ("von_mises", "mollification"), ("von_mises", "constant"),
    ]  # fmt: skip
    for col in ("mmd2", "mmd2_best_val"):
        assert all(math.isfinite(v) and v > -1e-3 for v in a[col])
    assert all(math.isfinite(v) for v in a["test_loglik"])
    # the noised runs saw different batches, so they must differ from vanilla and from each other
    assert len(set(a.loc[0:2, "test_loglik"])) == 3


def test_best_step_is_the_lowest_recorded_validation_nll(short_runs):
    frame = short_runs[0]
    steps, nll = frame.attrs["val_steps"], frame.attrs["val_nll"]
    assert steps == list(range(20, 201, 20))
    for i, row in frame.iterrows():
        curve = [values[i] for values in nll]
        finite = [v for v in curve if math.isfinite(v)]
        assert row["best_step"] in steps
        assert row["val_nll_best"] == min(finite) == curve[steps.index(row["best_step"])]
        assert row["val_nll_final"] == curve[-1]
        if row["best_step"] == SHORT["steps"]:  # the best model is the final one
            assert (row["mmd2_best_val"], row["test_loglik_best_val"]) == (row["mmd2"], row["test_loglik"])
        else:
            assert row["test_loglik_best_val"] != row["test_loglik"]
    assert (frame["best_step"] < SHORT["steps"]).any(), "no run early-stopped: the snapshot path is not tested"


def test_best_by_validation_keeps_each_members_parameters_at_its_best_step():
    torch.manual_seed(0)
    ensemble = FlowEnsemble([realnvp_2d(seed=s) for s in (0, 1)])
    val = torch.randn(2, 300, 2)
    tracker = BestByValidation(ensemble, val, every=1, total=3)
    tracker(1, ensemble)
    start = {k: v.detach().clone() for k, v in ensemble.stacked.items()}
    with torch.no_grad():  # member 0 gets much worse (a scaled base), member 1 is unchanged
        ensemble.stacked["q0__log_scale"][0] += 2.0
    tracker(2, ensemble)
    tracker(3, ensemble)
    assert tracker.steps == [1, 2, 3] and tracker.best_step == [1, 1]
    assert tracker.nll[1][0] > tracker.nll[0][0] and tracker.nll[1][1] == tracker.nll[0][1]
    best = tracker.best_ensemble(ensemble)
    for k, v in best.stacked.items():
        assert torch.equal(v, start[k])
    with torch.no_grad():
        assert (-best.log_prob(val).double().mean(1)).tolist() == tracker.best_nll
    assert not torch.equal(ensemble.stacked["q0__log_scale"], best.stacked["q0__log_scale"])  # a copy


def test_constant_mode_noise_level_is_constant(short_runs):
    mollifier = toy2d_mollifier("constant", 500, seed=0)
    levels = {mollifier.noise_level(t) for t in range(500)}
    assert len(levels) == 1 and levels.pop() == pytest.approx(0.01)
    frame = short_runs[0]
    levels = torch.tensor(frame.attrs["noise_level"])  # [log points, runs]
    for i, mode in enumerate(frame["mode"]):
        values = set(levels[:, i].tolist())
        if mode == "constant":
            assert len(values) == 1 and values.pop() == pytest.approx(0.01)
        elif mode == "vanilla":
            assert values == {0.0}
        else:
            assert len(values) > 1
    assert toy2d_mollifier("vanilla", 10, 0) is None


def test_validation_set_is_seeded_and_independent_of_train_and_test():
    from molli_utils.data import load_toy2d

    val = toy2d_validation("von_mises", n_val=200)
    assert torch.equal(val, toy2d_validation("von_mises", n_val=200))
    train, test = load_toy2d("von_mises", n_train=200, n_test=200)
    assert not torch.equal(val, train) and not torch.equal(val, test)


def test_extra_mode_does_not_change_the_other_members():
    """Adding the constant members to the vectorised ensemble leaves the others bitwise unchanged."""
    kw = dict(steps=60, seeds=(0,), datasets=("von_mises",), n_train=600, n_test=300, n_val=300, n_samples=300,
              n_evals=3, progress=False)  # fmt: skip
    three, two = run_toy2d(**kw), run_toy2d(modes=("vanilla", "mollification"), **kw)
    cols = ["mmd2", "test_loglik", "val_nll_final", "mmd2_best_val", "best_step"]
    assert three[three["mode"] != "constant"].reset_index(drop=True)[cols].equals(two[cols])


def test_command_writes_csv_with_required_columns(tmp_path):
    import pandas as pd

    out = tmp_path / "toy2d.csv"
    main(["toy2d", "--steps", "5", "--seeds", "0", "1", "--n-train", "600", "--n-test", "300", "--n-val", "300",
          "--n-samples", "300", "--out", str(out), "--no-progress"])  # fmt: skip
    frame = pd.read_csv(out)
    assert set(REQUIRED_COLUMNS["toy2d.csv"]) <= set(frame.columns)
    assert {"mmd2_best_val", "best_step", "val_nll_best", "test_loglik_best_val"} <= set(frame.columns)
    assert len(frame) == 2 * 3 * 2 and set(frame["iterations"]) == {5}
    assert set(frame["mode"]) == {"vanilla", "mollification", "constant"}
    assert set(frame["best_step"]) <= {1, 2, 3, 4, 5}
    main(["toy2d", "--steps", "5", "--seeds", "0", "--modes", "constant", "--n-train", "600", "--n-test", "300",
          "--n-val", "300", "--n-samples", "300", "--out", str(out), "--no-progress"])  # fmt: skip
    assert set(pd.read_csv(out)["mode"]) == {"constant"}


def test_append_keeps_other_runs_and_half_mode_mollifies_the_first_half(tmp_path):
    import pandas as pd

    from molli_utils.experiments import main, toy2d_mollifier

    half = toy2d_mollifier("half", 100, 0)
    assert half.noise_level(0) == 1.0 and half.noise_level(49) > 0 and half.noise_level(50) == 0.0
    out = tmp_path / "toy.csv"
    small = ["--steps", "20", "--seeds", "0", "--n-train", "300", "--n-test", "200", "--n-val", "200",
             "--n-samples", "200", "--no-progress", "--out", str(out)]
    main(["toy2d", "--modes", "vanilla", "half", *small])
    first = pd.read_csv(out)
    main(["toy2d", "--modes", "half", "--append", *small])
    both = pd.read_csv(out)
    assert len(both) == len(first) == 4
    key = ["dataset", "mode", "seed"]
    merged = first.merge(both, on=key)
    assert (merged.mmd2_x == merged.mmd2_y).all()  # an appended member trains as it would with the others


def test_indm_command_appends_scored_runs_and_skips_finished_ones(tmp_path, capsys):
    out = tmp_path / "indm.csv"
    argv = ["indm", "--datasets", "von_mises", "--seeds", "0", "--steps", "150", "--n-samples", "400",
            "--sample-steps", "40", "--out", str(out), "--no-progress"]  # fmt: skip
    E.main(argv)
    frame = pd.read_csv(out)
    assert list(frame["model"]) == ["diffusion", "indm"] and list(frame["flow"]) == ["identity", "realnvp"]
    assert (frame["steps"] == 150).all() and (frame["nonfinite_samples"] == 0).all()
    assert frame["mmd2"].between(0, 1).all() and frame["test_loglik_bound"].between(-10, 5).all()
    row, model = E.run_indm_toy2d("von_mises", "identity", 0, steps=150, n_samples=400, sample_steps=40)
    assert row["mmd2"] == pytest.approx(frame["mmd2"][0], rel=1e-6)  # seeded: the same run gives the same scores
    assert row["test_loglik_bound"] == pytest.approx(frame["test_loglik_bound"][0], rel=1e-6)
    E.main(argv)
    assert len(pd.read_csv(out)) == 2 and capsys.readouterr().out.count("skipped") == 2
