"""The stored results are what the book's code computes: re-run one stored row of ``uci.csv`` (with its
learning curve) and one of ``indm_toy2d.csv`` at their stored settings and compare them exactly.

About two minutes on one CPU thread (a red-wine MAF for 150 epochs; a plain diffusion model for 20k steps).
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


def _same(new, stored) -> bool:
    """Equal as written to the CSV and read back (an empty cell reads as nan)."""
    if new is None or new == "" or (isinstance(new, float) and math.isnan(new)):
        return isinstance(stored, float) and math.isnan(stored)
    return new == stored


def _stored_row(name: str, **match) -> dict:
    frame = results.load(name)
    rows = frame[(frame[list(match)] == pd.Series(match)).all(axis=1)]
    assert len(rows) == 1, f"expected one stored row of {match} in {name}"
    return rows.iloc[0].to_dict()


@pytest.mark.skipif(not (SHARED / "redwine" / "data.npy").exists(), reason="../shared/data/uci is absent")
def test_a_stored_uci_row_and_its_curve_are_reproduced_exactly():
    stored = _stored_row("uci.csv", dataset="redwine", flow="maf", variant="paper-text", mode="vanilla", seed=1)
    config = settings.uci("full", dataset="redwine", flow="maf", variant="paper-text", mode="vanilla", seed=1,
                          optimizer=stored["optimizer"])  # fmt: skip
    assert uci.key(config)["epochs"] == stored["epochs"] == 150
    result = uci.run(config, root=SHARED)
    diffs = {k: (result.row[k], stored[k]) for k in result.row if k not in VOLATILE and not _same(result.row[k], stored[k])}
    assert not diffs, f"the stored row is not what the code computes: {diffs}"
    curves = results.load("uci_curves.csv.gz")
    stored_curve = curves[(curves.dataset == "redwine") & (curves.flow == "maf") & (curves.variant == "paper-text")
                          & (curves["mode"] == "vanilla") & (curves.seed == 1)].sort_values("epoch")  # fmt: skip
    assert [c["val_loglik"] for c in result.curve] == stored_curve["val_loglik"].tolist()
    assert [c["train_loss"] for c in result.curve] == stored_curve["train_loss"].tolist()


def test_a_stored_indm_row_is_reproduced_exactly():
    stored = _stored_row("indm_toy2d.csv", dataset="von_mises", flow="identity", seed=0)
    config = settings.indm("full", dataset="von_mises", flow="identity", seed=0)
    assert (config.steps, config.sample_steps) == (stored["steps"], stored["sample_steps"])
    row = indm.run(config).row
    diffs = {k: (row[k], stored[k]) for k in row if k not in VOLATILE and not _same(row[k], stored[k])}
    assert not diffs, f"the stored row is not what the code computes: {diffs}"
