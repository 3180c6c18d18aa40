"""The toy and INDM experiments: a short seeded configuration reproduces exactly, early-stops on a
validation set, trains any set of runs as one ensemble without changing any member, and the command
appends its runs (with provenance) and skips the finished ones."""

import math

import pytest
import torch

from molli_utils.experiments import indm, main, results, settings, toy2d
from molli_utils.experiments.toy2d import BestByValidation, validation_set
from molli_utils.models import FlowEnsemble, realnvp_2d

pytestmark = pytest.mark.usefixtures("one_thread")

# lr 1e-2 (not the paper's 5e-4) so that within 200 steps some runs' validation NLL goes back up:
# their best step is not the last one, and the snapshot path is exercised.
SHORT = dict(steps=200, n_train=600, n_test=400, n_val=500, n_samples=400, n_evals=10, lr=1e-2)


@pytest.fixture(scope="module")
def short_runs():
    runs = toy2d.grid("full", seeds=(3,), **SHORT)
    return runs, toy2d.run(runs), toy2d.run(runs)


def test_short_toy_run_reproduces_exactly(short_runs):
    runs, a, b = short_runs
    assert a.frame().drop(columns="train_seconds").equals(b.frame().drop(columns="train_seconds"))  # time differs
    assert a.validation.nll == b.validation.nll
    assert [(r["dataset"], r["mode"]) for r in a.rows] == [
        ("mixture_of_gaussians", "vanilla"), ("mixture_of_gaussians", "mollification"),
        ("mixture_of_gaussians", "constant"),
        ("von_mises", "vanilla"), ("von_mises", "mollification"), ("von_mises", "constant"),
    ]  # fmt: skip
    frame = a.frame()
    for col in ("mmd2", "mmd2_best_val"):
        assert all(math.isfinite(v) and v > -1e-3 for v in frame[col])
    assert all(math.isfinite(v) for v in frame["test_loglik"])
    # the noised runs saw different batches, so they must differ from vanilla and from each other
    assert len(set(frame.loc[0:2, "test_loglik"])) == 3
    assert set(results.FILES["toy2d.csv"].columns) - set(frame.columns) == {"commit", "date", "dirty",
                                                                             "wall_seconds_all_runs"}  # the command's
    circle = frame[frame.dataset == "von_mises"]
    assert circle[list(toy2d.CIRCLE_COLUMNS)].notna().all().all() and (circle["circle_dist_mean"] > 0).all()
    assert frame[frame.dataset == "mixture_of_gaussians"]["circle_dist_mean"].isna().all()
    assert (frame["members"] == 6).all() and frame["train_seconds"].nunique() == 1


def test_best_step_is_the_lowest_recorded_validation_nll(short_runs):
    _, result, _ = short_runs
    frame = result.frame()
    steps, nll = result.validation.steps, result.validation.nll
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


def test_noise_levels_follow_the_modes(short_runs):
    runs, result, _ = short_runs
    levels = torch.tensor(result.train.history["noise_level"])  # [log points, runs]
    for i, r in enumerate(runs):
        values = set(levels[:, i].tolist())
        if r.mode == "constant":
            assert len(values) == 1 and values.pop() == pytest.approx(settings.CONSTANT_NOISE)
        elif r.mode == "vanilla":
            assert values == {0.0}
        else:
            assert len(values) > 1


def test_validation_set_is_seeded_and_independent_of_train_and_test():
    from molli_utils.data import load_toy2d

    val = validation_set("von_mises", n_val=200)
    assert torch.equal(val, validation_set("von_mises", n_val=200))
    train, test = load_toy2d("von_mises", n_train=200, n_test=200)
    assert not torch.equal(val, train) and not torch.equal(val, test)


def test_a_member_gets_the_same_numbers_in_any_ensemble_and_the_callback_sees_every_step():
    """Adding members leaves every member's row bitwise unchanged (from two members on: a one-member
    ensemble takes other matrix kernels and differs in the last bits)."""
    kw = dict(steps=60, n_train=600, n_test=300, n_val=300, n_samples=300, n_evals=3)
    big = toy2d.grid("full", datasets=["von_mises"], modes=toy2d.MODES, seeds=(0,), **kw)
    seen = []
    four = toy2d.run(big, callback=lambda step, ens: seen.append(step))
    assert seen == list(range(1, 61))
    two = toy2d.run([big[3], big[1]])  # half and mollified, in another order

    def numbers(row):  # what the run computed (not the ensemble's size and time)
        return {k: v for k, v in row.items() if k not in ("members", "train_seconds")}

    assert [numbers(r) for r in two.rows] == [numbers(four.rows[3]), numbers(four.rows[1])]
    assert four.index("von_mises", "half", 0) == 3
    with pytest.raises(KeyError):
        four.index("von_mises", "half", 9)
    with pytest.raises(ValueError, match="share steps"):
        toy2d.run([big[0], toy2d.Toy2DRun("von_mises", "vanilla", 0, steps=61)])


def test_circle_scores_of_a_run_are_those_of_its_samples(short_runs):
    """The stored circle columns are circle_scores of the member's seeded samples (MMD^2 at lengthscale 0.1 too)."""
    from molli_utils.metrics import circle_scores, mmd2

    runs, result, _ = short_runs
    i = result.index("von_mises", "mollification", 3)
    x = toy2d._samples(result.ensemble.member(i), runs[i].n_samples, runs[i].seed)
    test = result.splits["von_mises"][1]
    expected = circle_scores(x, test)
    row = result.rows[i]
    assert all(row[k] == expected[k] for k in toy2d.CIRCLE_COLUMNS)
    assert row["mmd2"] == mmd2(x[torch.isfinite(x).all(1)], test)


def test_command_appends_runs_with_provenance_and_skips_finished_ones(tmp_path, capsys):
    small = ["--profile", "quick", "--steps", "5", "--n-train", "600", "--n-test", "300", "--n-val", "300",
             "--n-samples", "300", "--results", str(tmp_path), "--no-progress"]  # fmt: skip
    main(["toy2d", "--seeds", "0", "1", "--workers", "1", *small])
    frame = results.load("toy2d.csv", tmp_path)
    assert len(frame) == 2 * 3 * 2 and set(frame["iterations"]) == {5}
    assert set(frame["mode"]) == {"vanilla", "mollification", "constant"}
    assert set(frame["best_step"]) <= {1, 2, 3, 4, 5}
    assert frame["commit"].nunique() == 1 and frame["dirty"].isin([True, False]).all()
    main(["toy2d", "--seeds", "0", "--modes", "vanilla", "half", *small])  # only half is new
    both = results.load("toy2d.csv", tmp_path)
    assert len(both) == 14 and both["mode"].value_counts()["half"] == 2
    assert "2 of 4 toy runs already" in capsys.readouterr().out
    volatile = ["wall_seconds_all_runs", "train_seconds", "members"]
    first_half = both[both["mode"] != "half"].reset_index(drop=True)
    assert first_half.drop(columns=volatile).equals(frame.drop(columns=volatile))


def test_command_on_two_workers_gives_the_rows_of_one(tmp_path):
    """The runs split over two processes (two ensembles) get bitwise the numbers of one ensemble."""
    small = ["toy2d", "--profile", "quick", "--steps", "8", "--seeds", "0", "--modes", "vanilla", "clean-half",
             "--n-train", "600", "--n-test", "300", "--n-val", "300", "--n-samples", "300", "--no-progress"]  # fmt: skip
    main([*small, "--workers", "2", "--results", str(tmp_path / "two")])
    main([*small, "--workers", "1", "--results", str(tmp_path / "one")])
    two, one = (results.load("toy2d.csv", tmp_path / k).sort_values(["dataset", "mode"]).reset_index(drop=True)
                for k in ("two", "one"))  # fmt: skip
    assert set(two["members"]) == {2} and set(one["members"]) == {4}
    cols = [c for c in two.columns if c not in ("wall_seconds_all_runs", "train_seconds", "members", "date")]
    assert two[cols].equals(one[cols])


def test_indm_run_is_seeded_and_the_command_appends_and_skips(tmp_path, capsys):
    argv = ["indm", "--datasets", "von_mises", "--seeds", "0", "--steps", "150", "--n-samples", "400",
            "--sample-steps", "40", "--draws", "8", "--results", str(tmp_path), "--no-progress"]  # fmt: skip
    main(argv)
    frame = results.load("indm_toy2d.csv", tmp_path)
    assert list(frame["model"]) == ["diffusion", "indm"] and list(frame["flow"]) == ["identity", "realnvp"]
    assert (frame["steps"] == 150).all() and (frame["nonfinite_samples"] == 0).all()
    assert frame["mmd2"].between(0, 1).all() and frame["test_loglik_bound"].between(-10, 5).all()
    assert frame["circle_dist_mean"].notna().all() and (frame["angle_tv"] > 0).all()
    config = indm.INDMRun("von_mises", "identity", 0, steps=150, n_samples=400, sample_steps=40, draws=8)
    again = indm.run(config)
    assert again.row["mmd2"] == frame["mmd2"][0] and again.row["test_loglik_bound"] == frame["test_loglik_bound"][0]
    assert not again.model.training and again.train.final_step == 150
    main(argv)
    assert len(results.load("indm_toy2d.csv", tmp_path)) == 2 and "2 of 2 INDM runs already" in capsys.readouterr().out


def test_denormals_are_flushed_while_the_toys_train_and_not_after():
    tiny = torch.tensor([1e-39])  # a float32 denormal
    assert float(tiny * 1.0) > 0.0
    with toy2d.flush_denormals():
        assert float(tiny * 1.0) == 0.0
    assert float(tiny * 1.0) > 0.0

