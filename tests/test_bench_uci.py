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
