"""The reproduction report's claim tables (molli_utils.report.claims), against the shipped results."""

import pathlib
import re

import nbformat
import pandas as pd
import pytest

from molli_utils import report
from molli_utils.report import claims

ROOT = pathlib.Path(__file__).resolve().parents[1]
MEAN_DIGIT_FD = 214.4  # images.mean_image_fd() (the digits classifier's features); only its half matters here


@pytest.fixture(scope="module")
def stored():
    return claims.load(verbose=False)


def test_the_toy_claims_are_the_rules_verdicts_on_the_stored_runs(stored):
    t = claims.toy_claims(stored["toy2d.csv"])
    assert len(t) == 12 and set(t["verdict"]) <= set(report.VERDICTS)
    assert t.loc[("mixture, MMD² (ℓ = 1)", "annealed, final"), "verdict"] == report.OPPOSITE
    assert t.loc[("circle, median distance", "annealed, final"), "verdict"] == report.DIRECTION
    assert t.loc[("circle, MMD² (ℓ = 1)", "constant, final"), "paper"] == "no benefit (Sec. 2.2)"
    # the same numbers by hand: the circle's MMD² at ℓ = 1, annealed, ReLU conditioners
    d = claims.toy_diffs(stored["toy2d.csv"], "von_mises", "mmd2")
    assert len(d) == 3
    assert t.loc[("circle, MMD² (ℓ = 1)", "annealed, final"), "verdict"] == report.verdict(
        d, claims.paper_log_ratio("von_mises"), higher_is_better=False
    )


def test_the_uci_tables_hold_every_cell_of_both_variants_and_match_uci_verdicts(stored):
    uci = stored["uci.csv"]
    tables = claims.uci_tables(uci, verbose=False)
    assert list(tables) == ["official", "paper-text"]
    for variant, table in tables.items():
        assert len(table) == 27 and not table.index.duplicated().any()
        raw = report.uci_verdicts(uci, claims.UCI_TEST_LOGLIK, variant=variant)
        assert sorted(table["verdict"]) == sorted(raw["verdict"])
    assert not any("MiniBooNE" in c for c, _ in tables["official"].index)


def test_a_variant_or_cell_without_runs_says_not_run_here(stored, capsys):
    uci = stored["uci.csv"]
    only = uci[(uci["variant"] == "official") & (uci["dataset"] != "parkinsons")]
    tables = claims.uci_tables(only)
    assert list(tables) == ["official"] and "not run here" in capsys.readouterr().out
    t = tables["official"]
    assert (t.loc["Parkinsons, MAF", "verdict"] == report.NOT_RUN).all()


def test_image_and_other_claims_keep_the_not_run_rows_and_the_overhead(stored):
    images_ = claims.image_claims(stored["images_digits.csv"], MEAN_DIGIT_FD)
    assert len(images_) == 14 and images_["learns"].all()
    assert images_.loc[("REAL-NVP", "Gaussian"), "verdict"] == report.SIMILAR
    other = claims.other_claims(stored["images_digits.csv"], stored["overhead.csv"])
    not_run = other[other["verdict"].str.startswith(report.NOT_RUN)].index
    assert {
        "better than or comparable with the two-step methods (Table 3)",
        "NVAE on CIFAR-10 (Sec. 4.2)",
        "UCI, MiniBooNE",
        "images on CIFAR-10 / CelebA (FID)",
    } == set(not_run)
    bench = stored["overhead.csv"].iloc[-1]
    assert f"{100 * bench.overhead_ratio:.2f}%" in other.loc["no computational overhead", "ours"]
    assert f"{bench.end_to_end_ratio:.3f} times" in other.loc["no computational overhead", "ours"]


def test_the_constant_table_tallies_the_uci_pairs(stored):
    table, wins = claims.constant_table(stored["toy2d.csv"], stored["uci.csv"])
    assert len(table) == 5 + 9 + 9
    assert wins[("UCI paper-text", "annealed − constant")] == (29, 36)
    assert all(n == 36 for _, n in wins.values())


def test_the_findings_hold_on_the_shipped_results_and_cover_the_chapters_prose(stored):
    numbers = claims.learned(stored, MEAN_DIGIT_FD, show=False)
    assert numbers["of_cells"] == numbers["of_gains"] == 9 and numbers["pt_smaller"] == 8
    assert all(not hasattr(v, "dtype") for v in numbers.values())  # plain Python: myst-nb can format them
    nb = nbformat.read(ROOT / "book" / "05_report.ipynb", as_version=4)
    prose = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    keys = set(re.findall(r"\{glue(?::[a-z]+)?\}`([^`<:]+)", prose))
    assert keys and keys <= set(numbers), sorted(keys - set(numbers))


def _tampered(stored, name, change):
    frame = stored[name].copy()
    change(frame)
    return {**stored, name: frame}


def _no_gain(uci):  # the official flows' mollified final models lose 1 nat against vanilla
    keys = ["variant", "dataset", "flow", "seed"]
    van = uci[uci["mode"] == "vanilla"].set_index(keys)["test_loglik"]
    mol = (uci["mode"] == "mollification") & (uci["variant"] == "official")
    uci.loc[mol, "test_loglik"] = van.reindex(pd.MultiIndex.from_frame(uci.loc[mol, keys])).to_numpy() - 1.0


def _expensive(overhead):
    overhead.loc[overhead.index[-1], "end_to_end_ratio"] = 1.5


def _mixture_helps(toy):
    mix = (toy["dataset"] == "mixture_of_gaussians") & (toy["mode"] == "mollification")
    toy.loc[mix, "mmd2"] = 1e-9


@pytest.mark.parametrize(
    "name, change, finding",
    [
        ("uci.csv", _no_gain, "UCI official"),
        ("overhead.csv", _expensive, "cost"),
        ("toy2d.csv", _mixture_helps, "mixture"),
    ],
)
def test_the_findings_raise_when_one_stops_holding(stored, name, change, finding):
    with pytest.raises(AssertionError, match=finding):
        claims.learned(_tampered(stored, name, change), MEAN_DIGIT_FD, show=False)


def test_a_model_that_learns_nothing_breaks_the_digits_finding(stored):
    with pytest.raises(AssertionError, match="digits"):
        claims.learned(stored, 40.0, show=False)  # every vanilla FD above half of 40


def test_the_summary_counts_every_claims_cells(stored):
    from molli_utils.experiments import results

    s = claims.summary(
        stored["toy2d.csv"], stored["uci.csv"], stored["images_digits.csv"], results.load("toy2d_noise_floor.csv")
    )
    assert s.loc[("UCI, official flows", "annealed − vanilla, final"), "cells"] == 9
    assert s.loc[("2D toy, mixture", "annealed − vanilla, MMD², relu"), "verdicts"] == report.OPPOSITE
    counted = s.loc[("digits miniature, VAEs", "gaussian − vanilla, FD"), "verdicts"]
    assert counted == f"5 {report.NOISE}"
