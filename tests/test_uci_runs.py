"""molli_utils.uci_runs: one short seeded configuration reproduces exactly, in-process and in a worker process."""

import csv
import math
import pathlib

import pytest

from molli_utils import uci_runs
from molli_utils.training import DivergenceError
from molli_utils.uci_runs import COLUMNS, UCIRun, grid, run_many, run_uci

pytestmark = pytest.mark.usefixtures("one_thread")
SHARED = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "uci"
needs_shared = pytest.mark.skipif(not (SHARED / "redwine" / "data.npy").exists(), reason="../shared/data/uci is absent")
VOLATILE = {"train_seconds", "eval_seconds", "date"}


def _short(mode="mollification", flow="maf", seed=1):
    return UCIRun("redwine", flow, mode, seed, epochs=2, hidden=16, layers=2)


def _stable(row):
    return {k: v for k, v in row.items() if k not in VOLATILE}


@needs_shared
def test_short_run_reproduces_exactly_and_reports_both_views():
    row, curve = run_uci(_short(), root=SHARED)
    again, _ = run_uci(_short(), root=SHARED)
    assert _stable(row) == _stable(again)  # bitwise: floats compared with ==
    assert set(COLUMNS) == set(row)
    assert row["steps"] == 2 * 13 and row["epochs"] == 2  # 1296 training rows, batch 100, last batch kept
    assert [c["epoch"] for c in curve] == [1, 2]
    assert row["best_epoch"] in (1, 2) and math.isfinite(row["test_loglik"]) and math.isfinite(row["test_loglik_best_val"])
    best = max(curve, key=lambda c: c["val_loglik"])
    assert row["best_epoch"] == best["epoch"] and row["val_loglik_best"] == best["val_loglik"]
    assert row["val_loglik"] == curve[-1]["val_loglik"]
    other, _ = run_uci(_short(seed=2), root=SHARED)
    assert other["test_loglik"] != row["test_loglik"]


@needs_shared
def test_modes_differ_only_in_the_data_the_model_sees():
    rows = {m: run_uci(_short(mode=m), root=SHARED)[0]["test_loglik"] for m in ("vanilla", "mollification", "constant")}
    assert len(set(rows.values())) == 3


def test_mollifiers_of_the_modes():
    assert uci_runs._mollifier("vanilla", 100, 1) is None
    moll = uci_runs._mollifier("mollification", 100, 1)
    assert moll.noise_level(0) == 1.0 and moll.noise_level(99) < 2e-3 and moll.noise_level(100) == 0.0
    const = uci_runs._mollifier("constant", 100, 1)
    assert const.noise_level(0) == const.noise_level(99) == uci_runs.CONSTANT_NOISE


@needs_shared
def test_worker_process_gives_the_same_row_and_the_table_resumes(tmp_path):
    out, curves = tmp_path / "uci.csv", tmp_path / "curves.csv"
    runs = [_short(), _short(mode="vanilla")]
    rows = run_many(runs, out, curves=curves, workers=1, root=SHARED, log=lambda s: None)
    local, _ = run_uci(_short(), root=SHARED)
    stored = next(r for r in rows if r["mode"] == "mollification")
    assert _stable(stored) == _stable(local)
    with open(out) as f:
        table = list(csv.DictReader(f))
    assert len(table) == 2 and float(next(r for r in table if r["mode"] == "mollification")["test_loglik"]) == local["test_loglik"]
    with open(curves) as f:
        assert len(list(csv.DictReader(f))) == 4
    messages = []
    assert run_many(runs, out, workers=1, root=SHARED, log=messages.append) == []
    assert messages[0].startswith("2 of 2 runs already in")


@needs_shared
def test_a_diverging_run_is_reported_not_kept(monkeypatch):
    def boom(*args, **kwargs):
        raise DivergenceError(step=57, count=20, total=20, lr=1e-4)

    monkeypatch.setattr(uci_runs, "train", boom)
    row, curve = run_uci(_short(), root=SHARED)
    assert row["diverged_at"] == 57 and math.isnan(row["test_loglik"]) and curve == []


def test_grid_is_seed_major_and_validates():
    runs = grid()
    assert len(runs) == 72 and [r.seed for r in runs[:18]] == [1] * 18
    assert {(r.dataset, r.flow, r.mode) for r in runs[:18]} == {(r.dataset, r.flow, r.mode) for r in runs}
    with pytest.raises(ValueError, match="unknown mode 'noisy'"):
        UCIRun("redwine", "maf", "noisy", 1)
    with pytest.raises(ValueError, match="unknown flow"):
        UCIRun("redwine", "nsf", "vanilla", 1)
