"""The stored results are what the book's code computes: re-run two stored rows of ``uci.csv`` (one per
variant, with their learning curves), one of ``uci_bf16.csv`` and one of ``indm_toy2d.csv`` at their stored
settings and compare them.

On the machine that wrote a row the re-run is bitwise equal. On another CPU (another SIMD kernel of the
same matrix product) the rounding differs and 150 epochs amplify it: seen here, the red-wine MAF's final
test LL moved by 0.006 nats and its training losses by under 1e-6 relative. So integers and text must be
equal, the training loss per epoch within 1e-5 relative, the log-likelihoods within 0.02 nats (the
neighbouring seed is 0.13 nats away, the seed sd 0.4), and INDM's sample metrics within 1e-3 relative
(another seed moves them by percents). A wrong model, seed or schedule is far outside all of these.

About three minutes on one CPU thread (three red-wine MAFs for 150 epochs; a plain diffusion model for 20k
steps).
"""

import math
import pathlib

import pandas as pd
import pytest

from molli_utils.experiments import indm, results, settings, uci

pytestmark = pytest.mark.usefixtures("one_thread")
SHARED = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "uci"
#: Columns that describe the machine or the moment of a run, not its result.
VOLATILE = {"train_seconds", "eval_seconds", "commit", "dirty", "date"}


#: Tolerances for a re-run on another CPU (see the module docstring).
LOGLIK_ABS = 0.02
TRAIN_LOSS_REL = 1e-5
METRIC_REL = 1e-3


def _same(new, stored, *, rel: float = 0.0, abs_: float = 0.0) -> bool:
    """Equal as written to the CSV and read back (an empty cell reads as nan); floats within ``rel`` / ``abs_``."""
    if new is None or new == "" or (isinstance(new, float) and math.isnan(new)):
        return isinstance(stored, float) and math.isnan(stored)
    if isinstance(new, float) and not new.is_integer():
        return math.isclose(new, stored, rel_tol=rel, abs_tol=abs_)
    return new == stored


def _uci_row_diffs(row: dict, stored: dict) -> dict:
    """The columns of a re-run UCI row (other than the volatile ones) that differ from the stored row."""
    return {k: (row[k], stored[k]) for k in row if k not in VOLATILE and not _same(row[k], stored[k], abs_=LOGLIK_ABS)}


def _stored_row(name: str, **match) -> dict:
    frame = results.load(name)
    rows = frame[(frame[list(match)] == pd.Series(match)).all(axis=1)]
    assert len(rows) == 1, f"expected one stored row of {match} in {name}"
    return rows.iloc[0].to_dict()


def _red_wine_maf_curves():
    """The stored per-epoch curves of red wine, paper-text MAF, vanilla, all seeds."""
    curves = results.load("uci_curves.csv.gz")
    return curves[(curves.dataset == "redwine") & (curves.flow == "maf") & (curves.variant == "paper-text")
                  & (curves["mode"] == "vanilla")]  # fmt: skip


@pytest.mark.skipif(not (SHARED / "redwine" / "data.npy").exists(), reason="../shared/data/uci is absent")
def test_a_stored_uci_row_and_its_curve_are_reproduced():
    stored = _stored_row("uci.csv", dataset="redwine", flow="maf", variant="paper-text", mode="vanilla", seed=1)
    config = settings.uci("full", dataset="redwine", flow="maf", variant="paper-text", mode="vanilla", seed=1,
                          optimizer=stored["optimizer"])  # fmt: skip
    assert uci.key(config)["epochs"] == stored["epochs"] == 150
    result = uci.run(config, root=SHARED)
    diffs = _uci_row_diffs(result.row, stored)
    assert not diffs, f"the stored row is not what the code computes: {diffs}"
    stored_curve = _red_wine_maf_curves().query("seed == 1").sort_values("epoch")
    assert len(result.curve) == len(stored_curve) == 150
    val = [(c["val_loglik"], v) for c, v in zip(result.curve, stored_curve["val_loglik"])]
    assert all(_same(a, b, abs_=LOGLIK_ABS) for a, b in val), max(abs(a - b) for a, b in val)
    loss = [(c["train_loss"], v) for c, v in zip(result.curve, stored_curve["train_loss"])]
    assert all(_same(a, b, rel=TRAIN_LOSS_REL) for a, b in loss), max(abs(a - b) / abs(b) for a, b in loss)


@pytest.mark.skipif(not (SHARED / "redwine" / "data.npy").exists(), reason="../shared/data/uci is absent")
def test_a_stored_official_variant_row_is_reproduced():
    """The variant behind the paper's numbers (batch-norm statistics recomputed every epoch, noise level
    changed per epoch, fused Adam): a mollified red-wine MAF, seed 1, about 30 s."""
    match = dict(dataset="redwine", flow="maf", variant="official", mode="mollification", seed=1)
    stored = _stored_row("uci.csv", **match)
    config = settings.uci("full", **match, optimizer=stored["optimizer"])
    result = uci.run(config, root=SHARED)
    diffs = _uci_row_diffs(result.row, stored)
    assert not diffs, f"the stored row is not what the code computes: {diffs}"
    curves = results.load("uci_curves.csv.gz")
    stored_curve = curves[(curves[list(match)] == pd.Series(match)).all(axis=1)].sort_values("epoch")
    assert len(result.curve) == len(stored_curve) == 150
    val = [(c["val_loglik"], v) for c, v in zip(result.curve, stored_curve["val_loglik"])]
    assert all(_same(a, b, abs_=LOGLIK_ABS) for a, b in val), max(abs(a - b) for a, b in val)


@pytest.mark.skipif(not (SHARED / "redwine" / "data.npy").exists(), reason="../shared/data/uci is absent")
def test_a_stored_bf16_row_is_reproduced():
    """``uci_bf16.csv`` is what ``matmul="bf16"`` computes: the same mollified red-wine MAF, seed 1, with
    bfloat16 products (about 27 s). Only on a CPU with bf16 instructions; another one refuses the run."""
    from molli_utils.runtime import bf16_matmul_supported

    if not bf16_matmul_supported():
        pytest.skip("this CPU has no bfloat16 instructions")
    match = dict(dataset="redwine", flow="maf", variant="official", mode="mollification", seed=1)
    stored = _stored_row("uci_bf16.csv", **match)
    config = settings.uci("full", **match, optimizer=stored["optimizer"], matmul="bf16")
    result = uci.run(config, root=SHARED)
    diffs = _uci_row_diffs(result.row, stored)
    assert not diffs, f"the stored row is not what the code computes: {diffs}"
    fp32 = _stored_row("uci.csv", **match)
    assert result.row["test_loglik"] != fp32["test_loglik"]  # really another arithmetic than the book's table


def test_the_bf16_table_is_the_official_table_again():
    """The same 72 runs (official variant, vanilla and mollified, 4 seeds) in both files, the book's all fp32."""
    fp32, bf16 = results.load("uci.csv"), results.load("uci_bf16.csv")
    assert set(fp32["matmul"]) == {"fp32"} and set(bf16["matmul"]) == {"bf16"}
    official = fp32[(fp32.variant == "official") & fp32["mode"].isin(["vanilla", "mollification"])]
    key = ["dataset", "flow", "variant", "mode", "seed", "epochs", "optimizer"]
    assert len(bf16) == 72 and sorted(map(tuple, bf16[key].values)) == sorted(map(tuple, official[key].values))
    assert (bf16.nonfinite_steps == 0).all() and bf16.diverged_at.isna().all()


def test_a_stored_indm_row_is_reproduced():
    stored = _stored_row("indm_toy2d.csv", dataset="von_mises", flow="identity", seed=0)
    config = settings.indm("full", dataset="von_mises", flow="identity", seed=0)
    assert (config.steps, config.sample_steps) == (stored["steps"], stored["sample_steps"])
    row = indm.run(config).row
    diffs = {k: (row[k], stored[k]) for k in row if k not in VOLATILE and not _same(row[k], stored[k], rel=METRIC_REL)}
    assert not diffs, f"the stored row is not what the code computes: {diffs}"


def test_the_tolerances_tell_the_neighbouring_seeds_apart():
    """The comparison above would catch a re-run with the wrong seed: the stored seeds 1 and 2 of the
    same UCI cell, and seeds 0 and 1 of the same INDM cell, differ far beyond the tolerances."""
    one, two = (_stored_row("uci.csv", dataset="redwine", flow="maf", variant="paper-text", mode="vanilla", seed=s)
                for s in (1, 2))  # fmt: skip
    assert not _same(one["test_loglik"], two["test_loglik"], abs_=LOGLIK_ABS)
    first = _red_wine_maf_curves().query("epoch == 1").set_index("seed").train_loss
    assert not _same(first[1], first[2], rel=TRAIN_LOSS_REL)
    a, b = (_stored_row("indm_toy2d.csv", dataset="von_mises", flow="identity", seed=s) for s in (0, 1))
    for metric in ("mmd2", "circle_dist_q50", "angle_tv", "test_loglik_bound"):
        assert not _same(a[metric], b[metric], rel=METRIC_REL), metric
