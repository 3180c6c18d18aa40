"""Chapter 8's findings (molli_utils.report.takeaways) against the shipped results, and against wrong ones."""

import pathlib
import re

import nbformat
import pytest

from molli_utils.experiments import results
from molli_utils.report import takeaways

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def stored():
    return {
        "toy": results.load("toy2d.csv"),
        "uci": results.load("uci.csv"),
        "digits": results.load("images_digits.csv"),
        "floor": results.load("toy2d_noise_floor.csv"),
        "bench": results.load("overhead.csv").iloc[-1],
    }


@pytest.fixture(scope="module")
def gauss():
    return takeaways.single_gaussian_loglik()


def _learned(s, gauss, **changed):
    args = {**s, **changed}
    return takeaways.learned(
        args["toy"], args["uci"], args["digits"], args["floor"], args["bench"], gaussian_loglik=gauss
    )


def test_the_findings_hold_on_the_stored_runs_and_give_every_number_of_the_prose(stored, gauss):
    found = _learned(stored, gauss)
    assert found["fin_pos"] == found["fin_n"] == 9 and found["mix_col_van"] == 0 and found["leaky_col"] == 0
    assert found["mix_relu_verdict"] == "opposite to the paper" and found["n_models"] == 7
    assert found["stuck"] == 4 and found["beta_fd"] < found["mean_digit"] / 2
    assert abs(gauss - (-3.178)) < 1e-3  # the collapsed flows' test LL
    nb = nbformat.read(ROOT / "book" / "08_takeaways.ipynb", as_version=4)
    prose = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    keys = set(re.findall(r"\{glue:text\}`tk_([a-z0-9_]+)", prose))
    assert keys and keys <= set(found), sorted(keys - set(found))


def test_a_finding_that_stops_holding_fails_the_chapter(stored, gauss):
    toy = stored["toy"].copy()
    leaky = (toy["dataset"] == "mixture_of_gaussians") & (toy["activation"] == "leaky_relu")
    toy.loc[leaky & (toy["mode"] == "mollification"), "test_loglik"] = gauss  # LeakyReLU runs collapse too
    with pytest.raises(AssertionError, match="no LeakyReLU run collapses"):
        _learned(stored, gauss, toy=toy)
    bench = stored["bench"].copy()
    bench["end_to_end_ratio"] = 1.5
    with pytest.raises(AssertionError, match="under 1.1 times"):
        _learned(stored, gauss, bench=bench)
    uci = stored["uci"].copy()
    moll = (uci["variant"] == "official") & (uci["mode"] == "mollification")
    uci.loc[moll, "test_loglik"] -= 5.0  # the annealed final models now lose
    with pytest.raises(AssertionError, match="annealing improves every final"):
        _learned(stored, gauss, uci=uci)
