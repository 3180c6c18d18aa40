import matplotlib.colors as mcolors
import pytest

from molli_utils.experiments.settings import MODES
from molli_utils.palette import PALETTE, color


def test_every_training_mode_has_one_colour_and_the_kinds_differ():
    assert set(MODES) <= set(PALETTE)
    assert color("Vanilla") == mcolors.to_hex("C3") and color("mollification") == mcolors.to_hex("C0")
    assert color("gaussian") == color("mollification")  # both are annealed Gaussian noise
    distinct = {PALETTE[m] for m in PALETTE if m != "gaussian"}
    assert len(distinct) == len(PALETTE) - 1


def test_an_unknown_mode_names_the_known_ones():
    with pytest.raises(KeyError, match="the book's modes are"):
        color("annealed")
