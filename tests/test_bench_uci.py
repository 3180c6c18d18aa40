"""benchmarks.bench_uci: the lever timings run the official flows as an ensemble that computes the same losses."""

import math

import pytest

from benchmarks.bench_uci import lever_timings


@pytest.mark.parametrize("kind", ["maf", "glow"])
def test_ensemble_lever_computes_the_members_losses(kind):
    out = lever_timings(kind, members=2, repeats=1, steps=1, dim=4, compile_loss=False)
    assert out["ensemble_loss_gap"] < 1e-4  # the vmapped members are the separate models
    assert out["members"] == 2
    assert all(math.isfinite(out[k]) and out[k] > 0 for k in ("alone_s", "ensemble_s"))
    assert "compiled_s" not in out


def test_table_projection_counts_the_stored_steps():
    from benchmarks.bench_uci import table_projection
    from molli_utils.experiments import results

    rows = results.load("uci.csv")
    steps = rows[rows.variant == "official"].groupby("dataset")["steps"].first()
    assert sorted(steps.index) == ["parkinsons", "redwine", "whitewine"] and steps["redwine"] == 150 * 13
    # one second per step of every flow: 3 flows x 8 runs x the three data sets' steps, over 2 cores
    out = table_projection({"maf": 1.0, "realnvp": 1.0, "glow": 1.0}, {"maf": 0.5, "realnvp": 0.5, "glow": 0.5})
    assert out["runs"] == 72 and out["steps"] == 3 * 8 * steps.sum()
    assert out["ours_min"] == pytest.approx(out["steps"] / 2 / 60) and out["bound_min"] == pytest.approx(out["ours_min"] / 2)
