"""molli_utils.experiments.uci: one short seeded configuration reproduces exactly, in-process and in a worker
process; the table resumes; a diverging run is reported."""

import csv
import math
import pathlib
from dataclasses import replace

import pytest
import torch

from molli_utils.data.uci import load_uci
from molli_utils.experiments import results, uci
from molli_utils.experiments.uci import UCIRun, grid, run_many
from molli_utils.training import DivergenceError

pytestmark = pytest.mark.usefixtures("one_thread")
SHARED = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "uci"
needs_shared = pytest.mark.skipif(not (SHARED / "redwine" / "data.npy").exists(), reason="../shared/data/uci is absent")
VOLATILE = {"train_seconds", "eval_seconds", "date", "commit", "dirty"}


def run_uci(config, **kw):
    result = uci.run(config, **kw)
    return result.row, result.curve


def _short(mode="mollification", flow="maf", seed=1):
    return UCIRun("redwine", flow, mode, seed, epochs=2, hidden=16, layers=2)


def _stable(row):
    return {k: v for k, v in row.items() if k not in VOLATILE}


@needs_shared
def test_short_run_reproduces_exactly_and_reports_both_views():
    row, curve = run_uci(_short(), root=SHARED)
    again, _ = run_uci(_short(), root=SHARED)
    assert _stable(row) == _stable(again)  # bitwise: floats compared with ==
    assert set(results.FILES["uci.csv"].columns) - set(row) == {"commit", "dirty", "date"}  # added by the command
    assert row["steps"] == 2 * 13 and row["epochs"] == 2  # 1296 training rows, batch 100, last batch kept
    assert [c["epoch"] for c in curve] == [1, 2]
    assert (
        row["best_epoch"] in (1, 2) and math.isfinite(row["test_loglik"]) and math.isfinite(row["test_loglik_best_val"])
    )
    best = max(curve, key=lambda c: c["val_loglik"])
    assert row["best_epoch"] == best["epoch"] and row["val_loglik_best"] == best["val_loglik"]
    assert row["val_loglik"] == curve[-1]["val_loglik"]
    other, _ = run_uci(_short(seed=2), root=SHARED)
    assert other["test_loglik"] != row["test_loglik"]


@needs_shared
def test_modes_differ_only_in_the_data_the_model_sees():
    rows = {m: run_uci(_short(mode=m), root=SHARED)[0]["test_loglik"] for m in ("vanilla", "mollification", "constant")}
    assert len(set(rows.values())) == 3


@needs_shared
def test_worker_process_gives_the_same_row_and_the_table_resumes(tmp_path):
    out = tmp_path / "uci.csv"
    runs = [_short(), _short(mode="vanilla")]
    rows = run_many(runs, tmp_path, workers=1, root=SHARED, log=lambda s: None)
    local, _ = run_uci(_short(), root=SHARED)
    stored = next(r for r in rows if r["mode"] == "mollification")
    assert _stable(stored) == _stable(local)
    with open(out) as f:
        table = list(csv.DictReader(f))
    assert (
        len(table) == 2
        and float(next(r for r in table if r["mode"] == "mollification")["test_loglik"]) == local["test_loglik"]
    )
    assert len(results.load("uci_curves.csv.gz", tmp_path)) == 4
    assert all(r["commit"] == results.provenance()["commit"] for r in table)
    messages = []
    assert run_many(runs, tmp_path, workers=1, root=SHARED, log=messages.append) == []
    assert messages[0].startswith("2 of 2 runs already in")


@needs_shared
def test_a_diverging_run_is_reported_not_kept(monkeypatch):
    def boom(*args, **kwargs):
        raise DivergenceError(step=57, count=20, total=20, lr=1e-4)

    monkeypatch.setattr(uci, "train", boom)
    row, curve = run_uci(_short(), root=SHARED)
    assert row["diverged_at"] == 57 and math.isnan(row["test_loglik"]) and curve == []


def test_grid_is_seed_major():
    runs = grid("full")
    assert len(runs) == 72 and [r.seed for r in runs[:18]] == [1] * 18
    assert {(r.dataset, r.flow, r.mode) for r in runs[:18]} == {(r.dataset, r.flow, r.mode) for r in runs}
    assert {r.epochs for r in grid("quick")} == {12}


@needs_shared
def test_live_model_is_returned_in_eval_mode_with_its_best_epoch_copy():
    result = uci.run(_short(), root=SHARED)
    assert not result.model.training and not result.best_model.training
    assert result.train.best_step == result.train.evals[result.row["best_epoch"] - 1]["step"]
    test = torch.from_numpy(load_uci("redwine", SHARED).test)
    assert uci.mean_loglik(result.model, test) == result.row["test_loglik"]
    assert uci.mean_loglik(result.best_model, test) == result.row["test_loglik_best_val"]


@needs_shared
def test_bf16_products_are_recorded_change_training_only_and_stay_close():
    """matmul='bf16' rounds the training products' inputs to bfloat16: another run (keyed and recorded as such),
    close to the float32 one; the evaluation of a given model is float32 whatever the setting."""
    from molli_utils.runtime import bf16_matmul_supported, matmul_precision

    if not bf16_matmul_supported():
        pytest.skip(
            "bf16 products do not round to bfloat16 on this CPU (measured by molli_utils.arithmetic.bf16_products)"
        )
    config = UCIRun("redwine", "maf", "mollification", 1, epochs=2, hidden=64, layers=2, matmul="bf16")
    twin = replace(config, matmul="fp32")
    fp32, bf16 = uci.run(twin, root=SHARED), uci.run(config, root=SHARED)
    assert (fp32.row["matmul"], bf16.row["matmul"], bf16.curve[0]["matmul"]) == ("fp32", "bf16", "bf16")
    assert uci.key(config) != uci.key(twin)  # a table keeps both
    assert bf16.row["test_loglik"] != fp32.row["test_loglik"]  # the rounding is seen ...
    assert bf16.row["test_loglik"] == pytest.approx(fp32.row["test_loglik"], abs=1e-3)  # ... and is small here
    assert torch.get_float32_matmul_precision() == "highest"  # restored after the run
    test_x = torch.from_numpy(load_uci("redwine", SHARED).test)
    with matmul_precision("bf16"):
        inside = uci.mean_loglik(bf16.model, test_x)
    assert inside == uci.mean_loglik(bf16.model, test_x) == bf16.row["test_loglik"]  # evaluated in float32


def test_bf16_on_a_cpu_without_it_is_refused_and_unknown_arithmetic_named(monkeypatch):
    from molli_utils import runtime

    monkeypatch.setattr(runtime, "bf16_matmul_supported", lambda device="cpu": False)
    with pytest.raises(ValueError, match="they do not \\(measured\\), so use matmul='fp32'"):
        with runtime.matmul_precision("bf16"):
            pass
    with runtime.matmul_precision("fp32"):  # full float32 needs nothing
        assert torch.get_float32_matmul_precision() == "highest"
    with pytest.raises(ValueError, match=r"unknown matmul 'fp16'.*\['fp32', 'bf16'\]"):
        UCIRun("redwine", "maf", "vanilla", 1, matmul="fp16")
