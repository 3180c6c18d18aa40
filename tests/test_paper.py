"""The package's copy of the paper's numbers equals the project's reference files where they are present."""

import csv
import pathlib

import pytest

from molli_utils import paper

SHARED = pathlib.Path(__file__).resolve().parents[2] / "shared" / "paper"


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/paper is not beside this checkout")
def test_toy2d_and_table4_match_reference_files():
    for row in csv.DictReader(open(SHARED / "toy2d_mmd.csv")):
        assert paper.TOY2D_MMD2[row["dataset"]] == {"vanilla": float(row["vanilla"]), "mollification": float(row["mollification"])}
    rows = list(csv.DictReader(open(SHARED / "table4_uci_test_loglik.csv")))
    assert len(rows) == len(paper.UCI_TEST_LOGLIK)
    for r in rows:
        got = paper.UCI_TEST_LOGLIK[(r["dataset"], r["flow"])]
        assert got["vanilla"] == (float(r["vanilla_mean"]), float(r["vanilla_std"]))
        assert got["mollification"] == (float(r["mollification_mean"]), float(r["mollification_std"]))
