"""molli_utils.report.toys: chapter 3's tables, figures and checked numbers, on the shipped results."""

import math
import re

import matplotlib
import nbformat
import numpy as np
import pytest

matplotlib.use("Agg")

from molli_utils import report  # noqa: E402
from molli_utils.data import load_toy2d  # noqa: E402
from molli_utils.experiments import results  # noqa: E402
from molli_utils.palette import color  # noqa: E402
from molli_utils.paper import TOY2D_MMD2  # noqa: E402
from molli_utils.report import toys  # noqa: E402

from pathlib import Path  # noqa: E402

CHAPTER = Path(__file__).resolve().parents[1] / "book" / "03_toys.ipynb"


@pytest.fixture(scope="module")
def shipped():
    return {
        "stored": results.load("toy2d.csv"),
        "dead": results.load("toy2d_dead_units.csv"),
        "floors": results.load("toy2d_noise_floor.csv"),
        "other": results.load("toy2d_other_cpu.csv"),
        "reference": toys.blurred_ring_reference(n=2_000),
    }


def _learned(shipped, **changed):
    kwargs = {**shipped, **changed}
    return toys.learned(kwargs.pop("stored"), **kwargs)


@pytest.fixture(scope="module")
def facts(shipped):
    return _learned(shipped)


def test_learned_holds_on_the_shipped_results_and_glues_every_key_of_the_chapters_prose(facts):
    prose = "\n".join(c.source for c in nbformat.read(CHAPTER, as_version=4).cells if c.cell_type == "markdown")
    used = set(re.findall(r"\{glue:text\}`([A-Za-z_0-9]+)", prose))
    assert used and used <= set(facts), sorted(used - set(facts))
    # the numbers the prose states, recomputed here from the shipped rows
    assert facts["toy_relu_van_collapsed"] == 0 and facts["toy_relu_mol_collapsed"] > facts["toy_n_seeds"] / 2
    assert facts["toy_leaky_collapsed"] == 0
    assert float(facts["toy_paper_ratio"]) == pytest.approx(
        TOY2D_MMD2["von_mises"]["vanilla"] / TOY2D_MMD2["von_mises"]["mollification"], abs=0.5
    )


def test_the_single_gaussian_is_the_moment_matched_one():
    x = load_toy2d("mixture_of_gaussians", n_test=10_000, seed=0)[1].numpy()
    empirical = -math.log(2 * math.pi * math.e) - 0.5 * math.log(np.linalg.det(np.cov(x.T)))
    assert toys.single_gaussian_loglik() == pytest.approx(empirical, abs=0.01)
    assert toys.true_loglik() > toys.single_gaussian_loglik()


def _set(frame, where, column, value):
    frame = frame.copy()
    frame.loc[where(frame), column] = value
    return frame


def test_learned_fails_when_the_mixture_flips(shipped):
    s = shipped["stored"]
    mix = (s.dataset == "mixture_of_gaussians") & (s.activation == "relu")
    flipped = s.copy()
    for mode, other in (("vanilla", "mollification"), ("mollification", "vanilla")):
        flipped.loc[mix & (s["mode"] == mode), "mmd2"] = s.loc[mix & (s["mode"] == other), "mmd2"].to_numpy()
    with pytest.raises(AssertionError, match="mixture: the vanilla flow has the lower MMD²"):
        _learned(shipped, stored=flipped)


def test_learned_fails_when_a_leaky_run_collapses(shipped):
    leaky = _set(
        shipped["stored"],
        lambda f: (
            (f.activation == "leaky_relu")
            & (f["mode"] == "mollification")
            & (f.seed == 0)
            & (f.dataset == "mixture_of_gaussians")
        ),
        "test_loglik",
        toys.single_gaussian_loglik(),
    )
    with pytest.raises(AssertionError, match="with LeakyReLU no run collapses"):
        _learned(shipped, stored=leaky)


def test_learned_fails_when_the_dead_units_do_not_separate_the_runs(shipped):
    alive = _set(shipped["dead"], lambda f: f["mode"] == "mollification", "dead_fraction", 0.1)
    with pytest.raises(AssertionError, match="second layers are dead"):
        _learned(shipped, dead=alive)


def test_learned_fails_when_the_other_cpu_agrees_seed_by_seed(shipped):
    s = shipped["stored"]
    same = s[s.seed.isin([0, 1, 2]) & (s.activation == "relu") & s["mode"].isin(["vanilla", "mollification"])]
    with pytest.raises(AssertionError, match="on another CPU"):
        _learned(shipped, other=same)


def test_verdict_table_is_the_one_rule_on_the_shipped_runs(shipped):
    _, runs = toys.default_grid(shipped["stored"])
    assert set(runs.activation) == {"relu"} and set(runs.seed) == {0, 1, 2}
    assert set(runs["mode"]) == {"vanilla", "mollification"}
    table = toys.verdict_table(runs)
    for name, short in toys.SHORT.items():
        wide = runs[runs.dataset == name].pivot(index="seed", columns="mode", values="mmd2")
        log_ratio = np.log(wide["vanilla"]) - np.log(wide["mollification"])
        paper = TOY2D_MMD2[name]["vanilla"] / TOY2D_MMD2[name]["mollification"]
        assert table.loc[short, "verdict"] == report.verdict(list(-log_ratio), -math.log(paper), higher_is_better=False)
    assert table.loc["mixture", "verdict"] == report.OPPOSITE


def test_figures_use_the_palette(shipped, monkeypatch):
    import matplotlib.pyplot as plt

    figures = []
    monkeypatch.setattr(plt, "show", lambda: figures.append(plt.gcf()))
    all_runs, _ = toys.default_grid(shipped["stored"])
    toys.plot_circle_measures(all_runs, shipped["reference"])
    toys.plot_ablation(shipped["stored"], shipped["floors"])
    used = {
        matplotlib.colors.to_hex(c)
        for fig in figures
        for ax in fig.axes
        for coll in ax.collections
        for c in coll.get_facecolors()
    }
    assert {color("vanilla"), color("mollification"), color("constant"), color("half")} <= used
    assert "#ff7f0e" == color("half")  # orange only where it means `half`
    plt.close("all")


def test_collapse_table_names_the_collapsed_seeds(shipped):
    all_runs, _ = toys.default_grid(shipped["stored"])
    by_mode = toys.collapsed_by_mode(all_runs)
    table = toys.collapse_table(all_runs)
    for mode, seeds in by_mode.items():
        assert seeds == [s for s in table.index if abs(table.loc[s, mode] - toys.single_gaussian_loglik()) < 0.01]
