"""Chapter 7's comparison (molli_utils.report.indm), against the shipped results."""

import pathlib
import re

import matplotlib
import nbformat
import numpy as np
import pytest

from molli_utils.experiments import results
from molli_utils.palette import color
from molli_utils.report import indm

matplotlib.use("Agg")
ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def runs():
    return indm.comparison_runs(results.load("toy2d.csv"), results.load("indm_toy2d.csv"))


def test_the_comparison_holds_three_seeds_of_every_model_on_both_toys(runs):
    counts = runs.groupby(["dataset", "model"])["seed"].nunique()
    assert len(counts) == 10 and (counts == 3).all()
    table = indm.comparison_table(runs)
    assert list(table.index.get_level_values("model")[:5]) == indm.ORDER
    assert table["bound_mc_se"].notna().sum() == 4  # the diffusion models' bounds only
    stored = results.load("indm_toy2d.csv")
    ring = stored[(stored["dataset"] == "von_mises") & (stored["model"] == "indm")]
    assert indm.circle_means(runs).loc[indm.NAMES["indm"], "loglik"] == pytest.approx(ring["test_loglik_bound"].mean())


def test_the_findings_hold_and_cover_the_chapters_prose(runs):
    numbers = indm.learned(runs, show=False)
    assert numbers["circle_indm_ll"] > numbers["circle_diffusion_ll"] > numbers["circle_flow_ll"]
    assert all(not hasattr(v, "dtype") for v in numbers.values())
    nb = nbformat.read(ROOT / "book" / "07_indm.ipynb", as_version=4)
    prose = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    keys = set(re.findall(r"\{glue(?::[a-z]+)?\}`([^`<:]+)", prose))
    assert keys and keys <= set(numbers), sorted(keys - set(numbers))


def _set(runs, dataset, model, column, value):
    out = runs.copy()
    out.loc[(out["dataset"] == dataset) & (out["model"] == model), column] = value
    return out


@pytest.mark.parametrize(
    "dataset, model, column, value, finding",
    [
        ("von_mises", indm.NAMES["indm"], "loglik", 0.0, "INDM's above"),  # INDM no longer above the diffusion
        ("mixture_of_gaussians", indm.NAMES["diffusion"], "mmd2", 1e-9, "mixture"),  # diffusion best on the mixture
        ("von_mises", "REAL-NVP, mollification", "mmd2_ls0.1", 1e-6, "plain diffusion beats the mollified"),
        ("von_mises", "REAL-NVP, constant", "circle_dist_q50", 0.008, "constant noise"),
    ],
)
def test_the_findings_raise_when_one_stops_holding(runs, dataset, model, column, value, finding):
    with pytest.raises(AssertionError, match=finding):
        indm.learned(_set(runs, dataset, model, column, value), show=False)


def test_the_figure_draws_each_model_in_its_palette_colour(runs):
    import matplotlib.pyplot as plt

    fig = indm.plot_comparison(runs)
    ax = fig.axes[1]  # the circle, MMD² at ℓ = 1
    dots = [c for c in ax.collections if isinstance(c, matplotlib.collections.PathCollection)]
    bars = [c for c in ax.collections if isinstance(c, matplotlib.collections.LineCollection)]
    want = [color(m) for m in ("vanilla", "mollification", "constant", "diffusion", "indm")]
    assert [matplotlib.colors.to_hex(c.get_facecolor()[0]) for c in dots] == want
    assert [matplotlib.colors.to_hex(c.get_color()[0]) for c in bars] == want
    assert all(len(c.get_offsets()) == 3 and np.isfinite(c.get_offsets()).all() for c in dots)
    plt.close(fig)
