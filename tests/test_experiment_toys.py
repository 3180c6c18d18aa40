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


@pytest.mark.slow
def test_short_toy_run_reproduces_exactly(short_runs):
    runs, a, b = short_runs
    assert a.frame().drop(columns="train_seconds").equals(b.frame().drop(columns="train_seconds"))  # time differs
    assert a.validation.nll == b.validation.nll
    assert [(r["dataset"], r["mode"]) for r in a.rows] == [
        ("mixture_of_gaussians", "vanilla"),
        ("mixture_of_gaussians", "mollification"),
        ("mixture_of_gaussians", "constant"),
        ("von_mises", "vanilla"),
        ("von_mises", "mollification"),
        ("von_mises", "constant"),
    ]
    frame = a.frame()
    for col in ("mmd2", "mmd2_best_val"):
        assert all(math.isfinite(v) and v > -1e-3 for v in frame[col])
    assert all(math.isfinite(v) for v in frame["test_loglik"])
    # the noised runs saw different batches, so they must differ from vanilla and from each other
    assert len(set(frame.loc[0:2, "test_loglik"])) == 3
    assert set(results.FILES["toy2d.csv"].columns) - set(frame.columns) == {
        "commit",
        "date",
        "dirty",
        "wall_seconds_all_runs",
    }  # the command's
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
    small = [
        "--profile",
        "quick",
        "--steps",
        "5",
        "--n-train",
        "600",
        "--n-test",
        "300",
        "--n-val",
        "300",
        "--n-samples",
        "300",
        "--results",
        str(tmp_path),
        "--no-progress",
    ]
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


@pytest.mark.slow
def test_command_on_two_workers_gives_the_rows_of_one(tmp_path):
    """The runs split over two processes (two ensembles) get bitwise the numbers of one ensemble."""
    small = [
        "toy2d",
        "--profile",
        "quick",
        "--steps",
        "8",
        "--seeds",
        "0",
        "--modes",
        "vanilla",
        "clean-half",
        "--n-train",
        "600",
        "--n-test",
        "300",
        "--n-val",
        "300",
        "--n-samples",
        "300",
        "--no-progress",
    ]
    main([*small, "--workers", "2", "--results", str(tmp_path / "two")])
    main([*small, "--workers", "1", "--results", str(tmp_path / "one")])
    two, one = (
        results.load("toy2d.csv", tmp_path / k).sort_values(["dataset", "mode"]).reset_index(drop=True)
        for k in ("two", "one")
    )
    assert set(two["members"]) == {2} and set(one["members"]) == {4}
    volatile = ("wall_seconds_all_runs", "train_seconds", "members", "date", "commit", "dirty")  # provenance
    cols = [c for c in two.columns if c not in volatile]
    assert two[cols].equals(one[cols])


def test_indm_run_is_seeded_and_the_command_appends_and_skips(tmp_path, capsys):
    argv = [
        "indm",
        "--datasets",
        "von_mises",
        "--seeds",
        "0",
        "--steps",
        "150",
        "--n-samples",
        "400",
        "--sample-steps",
        "40",
        "--draws",
        "8",
        "--results",
        str(tmp_path),
        "--no-progress",
    ]
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


# --- the activation ablation and the dead units of chapter 3 (#30) ---------------------------------------------------


def test_activation_is_a_run_setting_with_the_same_initial_weights():
    from molli_utils.models.toy import ACTIVATIONS

    assert ACTIVATIONS == ("relu", "leaky_relu") and toy2d.Toy2DRun("von_mises", "vanilla", 0).activation == "relu"
    relu, leaky = realnvp_2d(seed=4), realnvp_2d(seed=4, activation="leaky_relu")
    acts = [type(m) for m in relu.modules() if isinstance(m, (torch.nn.ReLU, torch.nn.LeakyReLU))]
    leaks = [m.negative_slope for m in leaky.modules() if isinstance(m, torch.nn.LeakyReLU)]
    assert acts == [torch.nn.ReLU] * 10 and leaks == [0.01] * 10
    assert all(torch.equal(a, b) for a, b in zip(relu.state_dict().values(), leaky.state_dict().values()))
    for bad in ("tanh", "ReLU", None):
        with pytest.raises(ValueError, match="unknown activation"):
            realnvp_2d(activation=bad)
        with pytest.raises(ValueError, match="unknown activation"):
            toy2d.Toy2DRun("von_mises", "vanilla", 0, activation=bad)
    assert (
        settings.profile_of(
            "toy2d", settings.toy2d("full", dataset="von_mises", mode="vanilla", seed=0, activation="leaky_relu")
        )
        == "full"
    )


def test_dead_units_of_a_hand_built_flow():
    """Coupling 1 (next to the base) of a two-coupling flow with units killed by hand: 1 of 4 dead in its
    first hidden layer, 3 of 4 in its second; coupling 2 untouched (its counts: those of its own weights)."""
    from molli_utils.models.toy import dead_units

    model = realnvp_2d(layers=2, hidden=4, seed=0)
    net = model.flows[0].flows[1].param_map.net  # coupling 1's MLP: Linear, ReLU, Linear, ReLU, Linear
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0], [-1.0], [0.0], [0.0]]))
        net[0].bias.copy_(torch.tensor([0.0, 0.0, -1.0, 1.0]))  # unit 2: -1 everywhere
        net[2].weight.zero_()
        net[2].bias.copy_(torch.tensor([-1.0, -1.0, 1.0, -1.0]))  # units 0, 1, 3: -1 everywhere
    x = torch.randn(500, 2, generator=torch.Generator().manual_seed(0))
    fractions = dead_units(model, x)
    assert len(fractions) == 2 and all(len(f) == 2 for f in fractions)
    assert fractions[0] == [0.25, 0.75]
    # coupling 2 is the first the data meets and an identity at initialisation: its points are x's (swapped)
    first = model.flows[2].flows[1].param_map.net[0]  # model.flows: coupling 1, swap, coupling 2, swap
    w, b = first.weight, first.bias
    x1 = x[:, 1:]  # the last swap undone, then normflows' Split gives the conditioner the first coordinate
    expected = 1.0 - float(((x1 @ w.T + b) > 0).any(0).double().mean())
    assert fractions[1][0] == pytest.approx(expected)
    leaky = realnvp_2d(layers=2, hidden=4, seed=0, activation="leaky_relu")
    leaky.load_state_dict(model.state_dict())
    assert dead_units(leaky, x) == fractions  # for leaky nets: the units that are never positive
    with pytest.raises(ValueError, match="shape"):
        dead_units(model, x[0])


def test_runs_record_their_dead_units_without_changing_their_numbers():
    runs = toy2d.grid(
        "full",
        datasets=["mixture_of_gaussians"],
        modes=("vanilla", "mollification"),
        seeds=(0,),
        steps=30,
        n_train=300,
        n_test=200,
        n_val=200,
        n_samples=200,
        n_evals=3,
    )
    plain, watched = toy2d.run(runs), toy2d.run(runs, dead_units_every=10)
    assert plain.rows == [{**r, "train_seconds": p["train_seconds"]} for r, p in zip(watched.rows, plain.rows)]
    assert not plain.dead and len(watched.dead) == 2 * 4 * 5 * 2  # runs x steps (0, 10, 20, 30) x couplings x layers
    assert {d["step"] for d in watched.dead} == {0, 10, 20, 30} and all(
        0 <= d["dead_fraction"] <= 1 for d in watched.dead
    )
    assert {r["activation"] for r in watched.rows} == {"relu"}
    with pytest.raises(ValueError, match="dead_units_every"):
        toy2d.run(runs, dead_units_every=0)
    with pytest.raises(ValueError, match="activation"):
        toy2d.run([runs[0], toy2d.Toy2DRun(**{**runs[1].__dict__, "activation": "leaky_relu"})])


def test_command_takes_the_activation_and_writes_the_dead_units_and_the_noise_floor(tmp_path, capsys):
    small = [
        "toy2d",
        "--profile",
        "quick",
        "--steps",
        "6",
        "--n-evals",
        "3",
        "--seeds",
        "0",
        "--datasets",
        "mixture_of_gaussians",
        "--modes",
        "vanilla",
        "mollification",
        "--n-train",
        "300",
        "--n-test",
        "200",
        "--n-val",
        "200",
        "--n-samples",
        "200",
        "--results",
        str(tmp_path),
        "--no-progress",
        "--workers",
        "1",
    ]
    main([*small, "--activation", "relu", "leaky_relu"])
    frame = results.load("toy2d.csv", tmp_path)
    assert sorted(frame["activation"]) == ["leaky_relu"] * 2 + ["relu"] * 2 and set(frame["members"]) == {2}
    dead = results.load("toy2d_dead_units.csv", tmp_path)
    assert len(dead) == 4 * 4 * 5 * 2 and set(dead["step"]) == {0, 2, 4, 6}
    curves = results.load("toy2d_curves.csv", tmp_path)
    assert set(curves["activation"]) == {"relu", "leaky_relu"}
    main([*small, "--activation", "leaky_relu"])
    assert "2 of 2 toy runs already" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main([*small, "--activation", "tanh"])
    assert "unknown activation 'tanh'" in capsys.readouterr().err
    floor = ["toy2d", "--noise-floor", "3", "--n-samples", "50", "--n-test", "40", "--results", str(tmp_path)]
    main(floor)
    table = results.load("toy2d_noise_floor.csv", tmp_path)
    assert len(table) == 6 and list(table["repeat"]) == [0, 1, 2] * 2 and table["mmd2"].abs().lt(0.5).all()
    main(floor)  # nothing new
    assert len(results.load("toy2d_noise_floor.csv", tmp_path)) == 6
    row = toy2d.noise_floor("von_mises", 3, n_samples=50, n_test=40)
    assert [r["mmd2"] for r in row] == list(table[table["dataset"] == "von_mises"]["mmd2"])
