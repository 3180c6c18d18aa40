"""molli_utils.report.images: chapters 6 and 6b's tables and findings, against the shipped miniature.

The lessons of both chapters hold on the stored ``images_digits.csv`` and raise when a finding stops
holding (a results frame with values changed); the tables keep per-seed signs safe from smart dashes.
"""

import numpy as np
import pytest

from molli_utils.experiments import images, results
from molli_utils.report import OPPOSITE, VERDICTS
from molli_utils.report import images as ri

# copies of the mean training digit: images.mean_image_fd() (tested in test_digits); a fixed stand-in here
# keeps these tests free of the classifier, and the lessons only compare FDs with it
MEAN_DIGIT_FD = 214.4
GAIN_UNIT = 64 * 0.0735 / 2  # D v / 2 at sigma^2 = 1 on the digits


@pytest.fixture(scope="module")
def stored():
    return results.load("images_digits.csv")


def test_vae_lessons_hold_on_the_stored_miniature(stored):
    v = ri.vae_lessons(stored, MEAN_DIGIT_FD, GAIN_UNIT)
    assert v["collapse_n"] == 20 and v["collapse_max"] < MEAN_DIGIT_FD * 1.05
    assert v["van_worst"] < 50
    assert v["g_min"] <= v["g_max"] and v["blur_worse"] != "none"
    assert v["blur_flat"].count(" and ") <= 1


def test_flow_lessons_hold_on_the_stored_miniature(stored):
    v = ri.flow_lessons(stored, MEAN_DIGIT_FD)
    assert v["comparisons"] == 2 * len(images.MODELS)
    assert v["agree"] == "realnvp"
    assert v["realnvp_b_verdict"] == v["glow_b_verdict"] == OPPOSITE
    assert v["glow_best"] >= v["glow_least"] > 0


def _scaled(stored, model, mode, factor):
    out = stored.copy()
    rows = (out["model"] == model) & (out["mode"] == mode)
    out.loc[rows, "fd"] = out.loc[rows, "fd"] * factor
    return out


def test_vae_lessons_raise_when_gaussian_mollification_helps_a_vae(stored):
    # the chapter says Gaussian mollification is within seed noise for every VAE: make it halve the VAE's FD
    with pytest.raises(AssertionError, match="within seed noise for every VAE"):
        ri.vae_lessons(_scaled(stored, "vae", "gaussian", 0.5), MEAN_DIGIT_FD, GAIN_UNIT)


def test_vae_lessons_raise_when_the_unit_variance_vaes_do_not_collapse(stored):
    tampered = stored.copy()
    unit = np.isclose(tampered["decoder_variance"].astype(float), 1.0) & (tampered["model"] == "iwae")
    tampered.loc[unit, "fd"] = 30.0
    with pytest.raises(AssertionError, match="collapse"):
        ri.vae_lessons(tampered, MEAN_DIGIT_FD, GAIN_UNIT)


def test_flow_lessons_raise_when_blurring_helps_glow(stored):
    with pytest.raises(AssertionError, match="Blurring is opposite to the paper for both flows"):
        ri.flow_lessons(_scaled(stored, "glow", "blur", 0.5), MEAN_DIGIT_FD)


def test_lessons_refuse_an_incomplete_grid(stored):
    short = stored[~((stored["model"] == "glow") & (stored["seed"] == 5))]
    with pytest.raises(AssertionError, match="incomplete"):
        ri.flow_lessons(short, MEAN_DIGIT_FD)


def test_sign_strings_are_code_with_minus_signs(stored):
    assert ri.signs("--+-") == "`\u2212\u2212+\u2212`"
    text = ri.miniature_markdown(images.miniature_table(stored)).data
    assert "---" not in text.split("\n", 2)[2]  # the rule line aside, no run of hyphens to become a dash
    assert "`\u2212" in text or "`+" in text
    assert "`" in ri.ablation_markdown(images.ablation_table(stored)).data


def test_tables_show_every_row(stored):
    table = images.miniature_table(stored)
    assert ri.vae_table(stored).data.count("\n") == 2 + 2 * len(images.VAES) - 1
    assert ri.flow_bpd_markdown(table).data.count("\n") == 2 + 2 * len(images.FLOWS) - 1
    text = ri.variance_table(stored, MEAN_DIGIT_FD).data
    assert "σ² = 0.1" in text and "σ² = 1" in text and "214.4" in text
    assert set(table["verdict (miniature)"]) <= set(VERDICTS)


def test_one_seed_table_is_numbers_from_the_scores():
    scores = {("vae", "vanilla"): 20.0, ("vae", "gaussian"): 15.0, ("vae", "blur"): 25.0}
    t = ri.one_seed_table(scores)
    assert list(t["mollifier"]) == ["gaussian", "blur"]
    assert t["ours: change %"].tolist() == pytest.approx([-25.0, 25.0])
    assert (t["paper: change %"] < 0).all()  # the paper: both better for the VAE on CIFAR-10


def test_show_and_plot_draw(stored):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    fig, ax = plt.subplots()
    ri.show(torch.rand(4, 1, 8, 8), ax, "four", nrow=2, fontsize=7)
    assert ax.get_title() == "four"
    ax = ri.plot_miniature(images.miniature_table(stored), stored)
    assert len(ax.patches) == 2 * len(images.MODELS)
    plt.close("all")
