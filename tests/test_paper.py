"""The package's copy of the paper's numbers equals the project's reference files where they are present."""

import csv
import pathlib

import pytest

from molli_utils import paper

SHARED = pathlib.Path(__file__).resolve().parents[2] / "shared" / "paper"


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/paper is not beside this checkout")
def test_toy2d_and_table4_match_reference_files():
    for row in csv.DictReader(open(SHARED / "toy2d_mmd.csv")):
        assert paper.TOY2D_MMD2[row["dataset"]] == {
            "vanilla": float(row["vanilla"]),
            "mollification": float(row["mollification"]),
        }
    rows = list(csv.DictReader(open(SHARED / "table4_uci_test_loglik.csv")))
    assert len(rows) == len(paper.UCI_TEST_LOGLIK)
    for r in rows:
        got = paper.UCI_TEST_LOGLIK[(r["dataset"], r["flow"])]
        assert got["vanilla"] == (float(r["vanilla_mean"]), float(r["vanilla_std"]))
        assert got["mollification"] == (float(r["mollification_mean"]), float(r["mollification_std"]))


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/paper is not beside this checkout")
def test_table1_images_fid_matches_reference_file():
    rows = list(csv.DictReader(open(SHARED / "table1_fid.csv")))
    expected = {
        (r["dataset"], r["model"]): {
            "vanilla": float(r["vanilla"]),
            "gaussian": float(r["gaussian_mollification"]),
            "blur": float(r["blurring_mollification"]),
        }
        for r in rows
    }
    assert paper.IMAGES_FID == expected


def test_table1_mollification_improves_every_cifar10_vae():
    """Sanity check of the copy: on CIFAR-10 both mollifiers lower every VAE's FID (paper Sec. 4.2)."""
    for (dataset, model), fid in paper.IMAGES_FID.items():
        if dataset == "cifar10" and model not in ("realnvp", "glow"):
            assert fid["gaussian"] < fid["blur"] < fid["vanilla"]


@pytest.mark.skipif(
    not (SHARED / "table2_schedules_cifar10_fid.csv").is_file(),
    reason="../shared/paper/table2_schedules_cifar10_fid.csv is not beside this checkout",
)
def test_table2_schedules_fid_matches_reference_file():
    rows = list(csv.DictReader(open(SHARED / "table2_schedules_cifar10_fid.csv")))
    expected = {
        ("cifar10", r["model"]): {k: float(r[k]) for k in ("vanilla", "sigmoid", "cosine", "linear")} for r in rows
    }
    assert paper.SCHEDULES_FID == expected


def test_table2_disagrees_with_table1_only_on_realnvp_vanilla():
    """The typo the book reports (chapter 1): Table 2's REAL-NVP vanilla FID is Table 1's VAE value."""
    assert paper.table2_disagreements() == [
        {
            "model": "realnvp",
            "column": "vanilla",
            "table1": 131.15,
            "table2": 191.98,
            "table1_models_with_that_value": ["vae"],
        }
    ]
    # every schedule improves on vanilla for every model, whichever vanilla value is right for REAL-NVP
    for (dataset, model), row in paper.SCHEDULES_FID.items():
        vanilla = min(row["vanilla"], paper.IMAGES_FID[(dataset, model)]["vanilla"])
        assert all(row[s] < vanilla for s in ("sigmoid", "cosine", "linear")), model


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/paper is not beside this checkout")
def test_table3_and_nvae_equal_the_reference_notes():
    """The paper's Table 3 and NVAE figures as ../shared/paper/README.md records them."""
    import re

    notes = (SHARED / "README.md").read_text()
    assert re.search(r"from 53\.64 \(vanilla\) to\s+52\.26", notes)
    assert paper.NVAE_FID["cifar10"] == {"vanilla": 53.64, "gaussian": 52.26}
    two = paper.TWO_STEP_FID["cifar10"]
    for name in ("NF", "EBM", "AVB", "ARM"):
        value = float(re.search(rf"VAE\+{name} ([0-9]+\.[0-9]+)", notes).group(1))
        assert two[f"vae+{name.lower()}"] == value
    table1 = paper.IMAGES_FID[("cifar10", "vae")]  # Table 3's mollification columns are Table 1's VAE row
    assert (two["vae"], two["vae+gaussian"], two["vae+blur"]) == (table1["vanilla"], table1["gaussian"], table1["blur"])
