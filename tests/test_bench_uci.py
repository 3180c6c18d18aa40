"""benchmarks.bench_uci: the lever timings run the official flows as an ensemble that computes the same losses."""

import math

import pytest
import torch

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
    assert out["ours_min"] == pytest.approx(out["steps"] / 2 / 60) and out["bound_min"] == pytest.approx(
        out["ours_min"] / 2
    )


def test_floor_parts_count_the_batchnorm_pass_and_time_the_optimizer():
    from benchmarks.bench_uci import BATCH, batchnorm_pass_flops, matmul_flops, optimizer_seconds

    data = torch.randn(1000, 11)  # 10 steps per epoch: the pass is one forward of 10 batches, shared by 10 steps
    per_step = batchnorm_pass_flops("realnvp", data)
    # a forward pass is about a third of forward + backward (which skips the gradient of the data)
    assert 0.3 * matmul_flops("realnvp") < per_step < 0.4 * matmul_flops("realnvp")
    assert batchnorm_pass_flops("realnvp", data[: 10 * BATCH - 1]) == pytest.approx(per_step * 999 / 1000, rel=1e-6)
    assert batchnorm_pass_flops("glow", data) < batchnorm_pass_flops("realnvp", data)  # GLOW stops one coupling early
    assert 0 < optimizer_seconds("maf", inner=1, repeats=1) < 1.0


def test_hoisted_masks_are_the_same_model_bitwise():
    from benchmarks.bench_uci import hoist_masks
    from molli_utils.models.tabular import tabular_flow

    assert hoist_masks(tabular_flow("maf", 4, hidden=8)) == 15  # 5 MADEs of 3 masked layers
    assert hoist_masks(tabular_flow("realnvp", 4, hidden=8)) == 0
    out = lever_timings("maf", members=2, repeats=2, steps=3, dim=4, compile_loss=False)
    assert out["hoisted_loss_gap"] == 0.0  # 2 warm-up + 6 timed steps, and still the same numbers
    assert math.isfinite(out["hoisted_s"]) and out["hoisted_s"] > 0
    assert "hoisted_s" not in lever_timings("glow", members=2, repeats=1, steps=1, dim=4, compile_loss=False)


def test_hoisting_without_masking_the_gradient_is_seen(monkeypatch):
    """The gap can fail: leave the gradient unmasked and the masked entries start to move."""
    import benchmarks.bench_uci as bench

    monkeypatch.setattr(bench, "_mask_gradient", lambda weight, mask: None)
    out = bench.lever_timings("maf", members=2, repeats=1, steps=2, dim=4, compile_loss=False)
    assert out["hoisted_loss_gap"] > 0


def test_bf16_products_change_the_numbers_by_bf16_rounding_only():
    from molli_utils.runtime import bf16_matmul_supported

    out = lever_timings("realnvp", members=2, repeats=1, steps=2, dim=4, compile_loss=False)
    assert torch.get_float32_matmul_precision() == "highest"  # the lever does not leak its setting
    if not bf16_matmul_supported():
        assert "bf16_s" not in out
        pytest.skip(
            "bf16 products do not round to bfloat16 on this CPU (measured by molli_utils.arithmetic.bf16_products)"
        )
    # 2 warm-up + 2 timed steps of a loss of about 4-6 nats: the products' rounding is seen, and stays small
    assert 0 < out["bf16_loss_gap"] < 0.05
    assert math.isfinite(out["bf16_s"]) and out["bf16_s"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("matmul", ["fp32", "bf16"])
def test_step_profile_finds_the_products_and_adam(matmul):
    """--profile splits a step of the UCI loop into matrix products, fused Adam and the rest; a wrong op name
    would leave a part at 0."""
    from benchmarks.bench_uci import step_profile
    from molli_utils.runtime import bf16_matmul_supported

    if matmul == "bf16" and not bf16_matmul_supported():
        pytest.skip(
            "bf16 products do not round to bfloat16 on this CPU (measured by molli_utils.arithmetic.bf16_products)"
        )
    data = torch.randn(250, 4, generator=torch.Generator().manual_seed(0))  # 3 steps per epoch, the last of 50 rows
    out = step_profile("realnvp", data, matmul=matmul, epochs=2, repeats=3)  # medians: a busy machine's noise
    assert torch.get_float32_matmul_precision() == "highest"  # restored
    assert 0 < out["adam_s"] < out["products_s"]  # 2.7 M parameters, but about 90 products of 512-wide layers a step
    assert out["rest_s"] == pytest.approx(out["total_s"] - out["products_s"] - out["adam_s"])
    # parts of one step, not of an epoch's 3 steps (that would be about 3x the total)
    assert out["products_s"] + out["adam_s"] < 2.0 * out["total_s"]


@pytest.mark.slow
def test_compiled_levers_time_the_compiled_loss():
    """torch.compile is timed alone and, on a CPU with bf16 instructions, together with bf16 products."""
    from molli_utils.runtime import bf16_matmul_supported

    out = lever_timings("maf", members=2, repeats=1, steps=1, dim=4)
    assert math.isfinite(out["compiled_s"]) and out["compiled_s"] > 0 and out["compile_s"] > 0
    assert ("compiled_bf16_s" in out) == bf16_matmul_supported()
    assert torch.get_float32_matmul_precision() == "highest"
