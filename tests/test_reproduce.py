"""molli_utils.experiments.reproduce: bitwise on the same arithmetic, tolerant of rounding on another, and never
of a wrong run. Stored rows and curves stand in for live runs (no training: seconds)."""

import math

import pytest

from molli_utils.experiments import reproduce, results, toy2d

CELL = dict(dataset="redwine", flow="maf", variant="official", optimizer="adam-fused", matmul="fp32", epochs=150)
ARITH = "torch2.14.1/cpu:AVX512/1t/0123456789"
OTHER = "torch2.14.1/cpu:AVX2/1t/9876543210"


def _uci(mode: str, seed: int):
    table = results.load("uci.csv")
    row = results.select(table, **CELL, mode=mode, seed=seed).iloc[0].to_dict()
    curve_key = {k: v for k, v in {**CELL, "mode": mode, "seed": seed}.items() if k != "epochs"}
    curve = results.select("uci_curves.csv.gz", **curve_key).sort_values("epoch").to_dict("records")
    spread = reproduce._spread(table, {**CELL, "mode": mode}, list(reproduce.UCI.floor))
    return row, curve, spread


def _judge(live, stored, *, live_arith, stored_arith):
    (row, curve, spread), (srow, scurve, _) = live, stored
    return reproduce.compare(
        "test",
        {**row, "arith": live_arith},
        {**srow, "arith": stored_arith},
        reproduce.UCI,
        curve=curve,
        stored_curve=scurve,
        spread=spread,
    )


def _drifted(run, *, early_rel=1e-6, final_shift=0.0):
    """``run`` as another rounding would give it: losses off by a relative drift growing from 1e-9 to ``early_rel``
    at epoch 10 (and more after), final scores moved by ``final_shift`` nats."""
    row, curve, spread = run
    out = []
    for p in curve:
        e = p["epoch"]
        grow = early_rel * (1e-3 ** max(0.0, (10 - e) / 9)) if e <= 10 else early_rel * e
        out.append({**p, "train_loss": p["train_loss"] * (1 + grow), "val_loglik": p["val_loglik"] + grow})
    row = {**row, **{k: row[k] + final_shift for k in ("test_loglik", "val_loglik")}}
    return row, out, spread


@pytest.mark.parametrize("mode", ["vanilla", "mollification"])
def test_the_stored_run_itself_is_identical_in_either_case(mode):
    run = _uci(mode, 1)
    same = _judge(run, run, live_arith=ARITH, stored_arith=ARITH)
    assert same.ok and same.identical and same.same_arithmetic and "to the last bit" in same.sentence()
    unrecorded = _judge(run, run, live_arith=ARITH, stored_arith=float("nan"))
    assert unrecorded.ok and unrecorded.identical and not unrecorded.same_arithmetic
    assert "was not recorded, yet the live run is the stored row to the last bit" in unrecorded.sentence()


def test_on_the_same_arithmetic_one_ulp_anywhere_fails():
    run = _uci("mollification", 1)
    row, curve, spread = run
    nudged = {**row, "test_loglik": math.nextafter(row["test_loglik"], 0.0)}
    rep = _judge((nudged, curve, spread), run, live_arith=ARITH, stored_arith=ARITH)
    assert not rep.ok and "test_loglik" in rep.problems[0]
    late = [dict(p) for p in curve]
    late[-1]["val_loglik"] = math.nextafter(late[-1]["val_loglik"], 0.0)
    assert not _judge((row, late, spread), run, live_arith=ARITH, stored_arith=ARITH).ok
    with pytest.raises(reproduce.ReproductionError, match="same arithmetic, yet"):
        _judge((nudged, curve, spread), run, live_arith=ARITH, stored_arith=ARITH).check()


@pytest.mark.parametrize("stored_arith", [OTHER, ""])
def test_another_rounding_passes_and_says_where_the_runs_part(stored_arith):
    """What forcing MKL's AVX2 kernels did to the vanilla run: 1e-6 drift by epoch 10, 1.5 nats at the end."""
    run = _uci("vanilla", 1)
    rep = _judge(_drifted(run, final_shift=-1.5), run, live_arith=ARITH, stored_arith=stored_arith)
    assert rep.ok and not rep.identical and rep.early_points == 10 and rep.parted_at == 1
    assert rep.early_gap == pytest.approx(1e-6, rel=1e-6)
    assert "rounds differently" in rep.sentence() and "1.5 apart" in rep.sentence()
    rep.check()


def test_a_neighbouring_seed_fails_on_the_early_curve():
    rep = _judge(_uci("mollification", 2), _uci("mollification", 1), live_arith=ARITH, stored_arith=OTHER)
    assert not rep.ok and any("training loss at epoch" in p for p in rep.problems)
    with pytest.raises(reproduce.ReproductionError, match="training loss at epoch 1 "):
        rep.check()


def test_a_wrong_mode_fails_on_the_early_curve():
    live = _uci("mollification", 1)
    stored = _uci("vanilla", 1)
    live = ({**live[0], "mode": "vanilla"}, live[1], live[2])  # a mislabelled run: keys equal, numbers not
    assert not _judge(live, stored, live_arith=ARITH, stored_arith=OTHER).ok


def test_an_early_drift_above_the_tolerance_fails():
    run = _uci("mollification", 1)
    rep = _judge(_drifted(run, early_rel=3e-4), run, live_arith=ARITH, stored_arith=OTHER)
    assert not rep.ok and "relative gap" in rep.problems[0]


def test_a_final_number_outside_the_seed_envelope_fails():
    """The mollified cell's seeds spread by 0.31 nats: a final test LL 1 nat off is not rounding."""
    run = _uci("mollification", 1)
    rep = _judge(_drifted(run, final_shift=-1.0), run, live_arith=ARITH, stored_arith=OTHER)
    assert not rep.ok and any(p.startswith("test_loglik is") for p in rep.problems)
    assert rep.finals["test_loglik"][2] == pytest.approx(2 * run[2]["test_loglik"] + 0.05)


def test_settings_must_match_whatever_the_arithmetic():
    run = _uci("mollification", 1)
    for column, value in (("epochs", 149), ("optimizer", "adam"), ("seed", 2)):
        live = ({**run[0], column: value}, run[1], run[2])
        rep = _judge(live, run, live_arith=ARITH, stored_arith=OTHER)
        assert not rep.ok and rep.problems[0].startswith(f"{column} is"), column


def test_a_divergence_on_one_arithmetic_only_is_not_judged_on_its_score():
    run = _uci("vanilla", 1)
    row, curve, spread = _drifted(run)
    rep = _judge(({**row, "test_loglik": -math.inf}, curve, spread), run, live_arith=ARITH, stored_arith=OTHER)
    assert rep.ok and "test_loglik" not in rep.finals


def test_the_toy_curves_are_stored_for_every_toy_run():
    table, curves = results.load(toy2d.RESULTS), results.load(toy2d.CURVES)
    keys = ["dataset", "mode", "seed", "activation", "iterations"]
    counts = curves.groupby(keys).size()
    assert len(counts) == len(table) and set(counts.index) == set(map(tuple, table[keys].values))
    assert (counts == toy2d.CURVE_STEPS // 20).all() and curves.step.max() == toy2d.CURVE_STEPS


def test_a_toy_neighbouring_seed_fails_and_the_run_itself_passes():
    table, curves = results.load(toy2d.RESULTS), results.load(toy2d.CURVES)

    def run(mode, seed):
        key = {"dataset": "von_mises", "mode": mode, "seed": seed, "iterations": 20_000}
        return (
            results.select(table, **key).iloc[0].to_dict(),
            results.select(curves, **key).sort_values("step").to_dict("records"),
        )

    spread = reproduce._spread(
        table, {"dataset": "von_mises", "mode": "vanilla", "iterations": 20_000}, list(reproduce.TOYS.floor)
    )
    (row, curve), (other, other_curve) = run("vanilla", 0), run("vanilla", 1)
    itself = reproduce.compare(
        "t", {**row, "arith": ARITH}, row, reproduce.TOYS, curve=curve, stored_curve=curve, spread=spread, point="step"
    )
    assert itself.ok and itself.identical
    neighbour = reproduce.compare(
        "t",
        {**other, "seed": 0, "arith": ARITH},
        row,
        reproduce.TOYS,
        curve=other_curve,
        stored_curve=curve,
        spread=spread,
        point="step",
    )
    assert not neighbour.ok and "training loss at step" in neighbour.problems[0]


def test_a_run_frozen_after_non_finite_losses_is_not_judged_on_its_final_numbers():
    run = _uci("vanilla", 1)
    row, curve, spread = _drifted(run, final_shift=-50.0)
    rep = _judge(({**row, "diverged_at": 1234}, curve, spread), run, live_arith=ARITH, stored_arith=OTHER)
    assert rep.ok and not rep.finals and "final scores are not compared" in rep.sentence()
    assert not _judge(({**row, "diverged_at": ""}, curve, spread), run, live_arith=ARITH, stored_arith=OTHER).ok


def test_a_run_without_a_curve_is_judged_on_its_row_alone():
    """No curve on either side (e.g. a row of a file without curves): settings and final numbers still judged."""
    row, _, spread = _uci("mollification", 1)
    rep = reproduce.compare(
        "t", {**row, "arith": ARITH, "test_loglik": row["test_loglik"] + 0.01}, row, reproduce.UCI, spread=spread
    )
    assert rep.ok and not rep.identical and "no learning curve to compare" in rep.sentence()
    far = reproduce.compare("t", {**row, "arith": ARITH, "test_loglik": ""}, row, reproduce.UCI, spread=spread)
    assert far.ok and "test_loglik" not in far.finals  # an empty score (a diverged run) is not judged


def test_toys_match_stored_rows_on_the_activation():
    """A live run is judged against the stored run of its own activation: a LeakyReLU mollified mixture run
    passes against its own row and curve, and the same numbers labelled ReLU (the collapsed ReLU run of that
    seed) fail."""
    table, curves = results.load(toy2d.RESULTS), results.load(toy2d.CURVES)
    key = {
        "dataset": "mixture_of_gaussians",
        "mode": "mollification",
        "seed": 0,
        "activation": "leaky_relu",
        "iterations": 20_000,
    }
    row = results.select(table, **key).iloc[0].to_dict()
    curve = results.select(curves, **key).sort_values("step").to_dict("records")

    class Live:
        def __init__(self, activation):
            self.rows = [{**row, "activation": activation}]

        def curve(self):
            return [{**p, "activation": self.rows[0]["activation"]} for p in curve]

    (own,) = reproduce.toys(Live("leaky_relu"))
    assert own.ok and own.identical
    (other,) = reproduce.toys(Live("relu"))
    assert not other.ok and other.problems
