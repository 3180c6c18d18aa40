"""molli_utils.report.uci: chapter 4's tables, checks, figures and findings, on the shipped UCI results."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from molli_utils import report  # noqa: E402
from molli_utils.experiments import results  # noqa: E402
from molli_utils.palette import color  # noqa: E402
from molli_utils.report import uci as chapter  # noqa: E402


@pytest.fixture(scope="module")
def stored():
    return {
        name: results.load(f)
        for name, f in (
            ("runs", "uci.csv"),
            ("curves", "uci_curves.csv.gz"),
            ("code", "uci_official_code.csv"),
            ("bf16", "uci_bf16.csv"),
            ("rounding", "uci_rounding.csv"),
        )
    }


def _learned(stored, **replaced):
    frames = {**stored, **replaced}
    return chapter.learned(frames["runs"], frames["curves"], frames["code"], frames["bf16"], frames["rounding"])


def test_learned_holds_on_the_shipped_results_and_glues_every_number(stored):
    numbers = _learned(stored)
    assert all(k.startswith("uci_") and isinstance(v, str) and v for k, v in numbers.items())
    # a few the prose leans on, recomputed here by another route
    assert numbers["uci_cells"] == numbers["uci_of_cells"] == "9"
    assert numbers["uci_paper_cells"] == "18" and numbers["uci_gain_cells"] == "18"
    v = chapter.verdicts(stored["runs"])
    of = v[(v.variant == "official") & (v.comparison == chapter.MOL) & (v.view == "final")]
    assert numbers["uci_of_better"] == str(int((of["mean"] > 0).sum()))
    assert numbers["uci_of_final_max"] == f"{of['mean'].max():+.2f}"
    assert numbers["uci_of_seeds"] == "4"


def _flip(runs, *, variant, mode, column, dataset=None, by=0.0):
    runs = runs.copy()
    rows = (runs.variant == variant) & (runs["mode"] == mode)
    if dataset:
        rows &= runs.dataset == dataset
    runs.loc[rows, column] = runs.loc[rows, column] + by
    return runs


def test_learned_raises_when_early_stopping_no_longer_takes_the_gain_away(stored):
    # the official variant's early-stopped mollified Parkinsons runs 3 nats better: a gain remains
    runs = _flip(
        stored["runs"],
        variant="official",
        mode="mollification",
        column="test_loglik_best_val",
        dataset="parkinsons",
        by=3.0,
    )
    with pytest.raises(AssertionError, match="official, early-stopped"):
        _learned(stored, runs=runs)


def test_learned_raises_when_constant_noise_stops_helping(stored):
    runs = _flip(stored["runs"], variant="paper-text", mode="constant", column="test_loglik", by=-20.0)
    with pytest.raises(AssertionError, match="constant noise"):
        _learned(stored, runs=runs)


def test_learned_raises_when_bf16_flips_a_gain(stored):
    bf16 = stored["bf16"].copy()
    bf16.loc[bf16["mode"] == "mollification", "test_loglik"] -= 60.0  # every bf16 final gain turns negative
    with pytest.raises(AssertionError, match="bf16"):
        _learned(stored, bf16=bf16)


def test_learned_raises_when_the_official_code_departs(stored):
    code = stored["code"].copy()
    code.loc[code.epoch <= 40, "test_loglik"] -= 3.0
    with pytest.raises(AssertionError, match="official code"):
        _learned(stored, code=code)


def test_stored_runs_counts_both_variants_and_raises_on_a_missing_run(stored):
    said = chapter.stored_runs(stored["runs"])
    assert len(said) == 2 and all(f"{chapter.GRID} of {chapter.GRID} runs" in s for s in said)
    with pytest.raises(AssertionError, match="of 108 runs"):
        chapter.stored_runs(stored["runs"].iloc[1:])


def test_tables_have_every_cell_and_brief_names_every_verdict(stored):
    runs = stored["runs"]
    t = chapter.table4(runs, "official")
    assert list(t.columns) == ["paper vanilla", "ours vanilla", "paper mollified", "ours mollified", "ours constant"]
    assert "red wine" in t.index.get_level_values(0) and "MiniBooNE" in t.index.get_level_values(0)
    b = chapter.brief(chapter.verdicts(runs), "paper-text")
    assert len(b) == 9 and b[("final", "verdict")].isin(chapter.BRIEF.values()).all()
    assert set(chapter.BRIEF) <= set(report.VERDICTS)
    gap = chapter.vanilla_gap(runs)
    assert list(gap.columns) == ["ours − paper, official", "ours − paper, paper-text"]


def test_peaks_and_code_check_raise_on_wrong_data(stored):
    peak, said = chapter.peaks(stored["runs"])
    assert set(peak.index.get_level_values(0)) == {"official", "paper-text"} and len(said) == 2
    runs = stored["runs"].copy()
    runs.loc[runs.index[runs.variant == "paper-text"][0], "val_loglik"] = -5000.0
    with pytest.raises(AssertionError, match="paper-text run"):
        chapter.peaks(runs)
    check, _ = chapter.code_check(stored["code"], stored["curves"])
    assert len(check) == 12
    code = stored["code"].copy()
    code.loc[code.epoch == 10, "test_loglik"] += 2.0
    with pytest.raises(AssertionError, match="departs from the official code"):
        chapter.code_check(code, stored["curves"])


def test_bf16_tables_pair_every_run_and_raise_on_a_missing_one(stored):
    verdicts, moved = chapter.bf16_tables(stored["runs"], stored["bf16"])
    assert len(verdicts) == 18 and moved.shape == (4, 2)
    with pytest.raises(AssertionError, match="differ"):
        chapter.bf16_tables(stored["runs"], stored["bf16"].iloc[1:])


def test_figures_draw_in_the_books_palette(stored):
    fig = chapter.code_figure(stored["code"], stored["curves"])
    assert any(line.get_color() == color("vanilla") for line in fig.axes[0].lines)
    chapter.paired_figure(stored["runs"])
    fig = chapter.rounding_figure(stored["curves"], results.load("uci_rounding_curves.csv.gz"))
    assert {line.get_color() for line in fig.axes[0].lines} == {color("vanilla"), color("mollification")}
    said = chapter.rounding_sentences(stored["runs"], stored["rounding"])
    assert said[0].startswith("vanilla: rounding alone moved")
    plt.close("all")


def test_live_tables_and_curves_figure_from_a_run_like_object():
    class Run:
        def __init__(self, mode):
            self.row = {
                "test_loglik": -12.0,
                "best_epoch": 3,
                "test_loglik_best_val": -11.5,
                "train_seconds": 1.0,
                "val_loglik": -12.5,
                "val_loglik_best": -11.9,
            }
            self.curve = [{"epoch": e, "train_loss": 12.0 - e, "val_loglik": -14.0 + e} for e in range(1, 5)]

    live = {"vanilla": Run("vanilla"), "mollification": Run("mollification")}
    assert chapter.live_table(live).shape == (2, 4)
    assert chapter.live_sentences(live, 4)[0].startswith("vanilla: best validation epoch 3 of 4")
    fig = chapter.curves_figure(live, 4)
    assert {line.get_color() for line in fig.axes[1].lines} == {color("vanilla"), color("mollification")}
    plt.close("all")
    assert isinstance(chapter.data_table({}), pd.DataFrame)


def test_every_number_of_the_chapters_prose_is_glued_by_learned(stored):
    import re
    from pathlib import Path

    import nbformat

    nb = nbformat.read(Path(__file__).resolve().parents[1] / "book" / "04_uci.ipynb", 4)
    prose = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    used = set(re.findall(r"\{glue:text\}`(\w+)", prose))
    assert len(used) > 30 and used <= set(_learned(stored))
