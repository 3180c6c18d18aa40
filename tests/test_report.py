"""molli_utils.report: paired differences and verdict rules."""

import pandas as pd
import pytest

from molli_utils.report import (
    DIRECTION,
    NOISE,
    NOT_RUN,
    ONE_SEED,
    OPPOSITE,
    SIMILAR,
    SMALLER,
    VERDICTS,
    agrees,
    paired_differences,
    verdict,
)


def test_paired_differences_pair_by_seed():
    frame = pd.DataFrame(
        {
            "dataset": ["a"] * 5,
            "mode": ["vanilla", "mollification", "vanilla", "mollification", "vanilla"],
            "seed": [1, 1, 2, 2, 3],
            "ll": [-3.0, -1.0, -2.0, -2.5, -9.0],
        }
    )
    d = paired_differences(frame, ["dataset"], "ll")
    assert d.to_dict() == {("a", 1): 2.0, ("a", 2): -0.5}  # seed 3 has no mollified run


@pytest.mark.parametrize(
    "diffs,paper,higher,expected",
    [
        ([], 4.8, True, NOT_RUN),
        ([3.0], 4.8, True, ONE_SEED),
        ([1.0, -1.2, 0.5], 4.8, True, NOISE),
        ([4.0, 4.5, 5.0], 4.8, True, SIMILAR),
        ([1.0, 1.2, 0.9], 4.8, True, SMALLER),
        ([-1.0, -1.2, -0.9], 4.8, True, OPPOSITE),
        ([-0.02, -0.03, -0.025], -0.04, False, SIMILAR),  # MMD^2: lower is better
        ([0.02, 0.03, 0.025], -0.04, False, OPPOSITE),
        ([float("nan"), 4.0, 4.5], 4.8, True, SIMILAR),  # a non-finite seed is dropped
        # a claim of no benefit (the paper's difference 0): better beyond noise is opposite to it
        ([0.5, -0.6, 0.2], 0.0, True, NOISE),
        ([-1.0, -1.5, -0.8], 0.0, True, SIMILAR),  # the treatment hurts: no benefit either
        ([1.0, 1.5, 0.8], 0.0, True, OPPOSITE),
        ([-0.02, -0.03, -0.025], 0.0, False, OPPOSITE),  # MMD^2 lower with the treatment
        ([0.02, 0.03, 0.025], 0.0, False, SIMILAR),
    ],
)
def test_verdict_rules(diffs, paper, higher, expected):
    assert verdict(diffs, paper, higher_is_better=higher) == expected


def test_verdict_names_read_the_same_for_every_claim_and_agrees_follows_the_claim():
    assert set(VERDICTS) == {SIMILAR, SMALLER, DIRECTION, NOISE, OPPOSITE, ONE_SEED, NOT_RUN}
    # the paper's direction without a size on our scale
    assert verdict([-0.3, -0.4, -0.35], -1e-3, higher_is_better=False, sized=False) == DIRECTION
    assert verdict([0.3, 0.4, 0.35], -1e-3, higher_is_better=False, sized=False) == OPPOSITE
    assert agrees(SIMILAR, 4.8) and not agrees(SMALLER, 4.8) and not agrees(NOISE, 4.8)
    assert agrees(NOISE, 0.0) and agrees(SIMILAR, 0.0) and not agrees(OPPOSITE, 0.0)
    with pytest.raises(ValueError, match="not a verdict"):
        agrees("reproduced", 4.8)
    with pytest.raises(ValueError, match="finite"):
        verdict([1.0, 2.0], float("nan"))


def _uci_frame():
    rows = []
    for seed, (van, mol, con) in enumerate([(-15.0, -11.0, -12.0), (-16.0, -11.5, -12.5), (-14.0, -11.2, -12.2)], 1):
        for mode, ll in (("vanilla", van), ("mollification", mol), ("constant", con)):
            rows.append(
                {
                    "dataset": "redwine",
                    "flow": "maf",
                    "variant": "official",
                    "mode": mode,
                    "seed": seed,
                    "test_loglik": ll,
                    "test_loglik_best_val": -10.0 + 0.1 * seed if mode == "vanilla" else ll + 0.5,
                }
            )
            rows.append(
                {
                    "dataset": "redwine",
                    "flow": "maf",
                    "variant": "paper-text",
                    "mode": mode,
                    "seed": seed,
                    "test_loglik": -10.0 - 0.1 * seed,
                    "test_loglik_best_val": -10.0,
                }
            )
    return pd.DataFrame(rows)


def test_uci_table_and_verdicts_per_variant():
    from molli_utils.report import uci_table, uci_verdicts

    paper = {
        ("redwine", "maf"): {"vanilla": (-16.32, 1.88), "mollification": (-11.51, 0.44)},
        ("whitewine", "maf"): {"vanilla": (-14.87, 0.24), "mollification": (-11.96, 0.17)},
    }
    frame = _uci_frame()
    table = uci_table(frame, paper, variant="official")
    assert table.loc[("redwine", "maf"), "ours vanilla, final"] == "-15.00 ± 1.00"
    assert table.loc[("redwine", "maf"), "paper vanilla"] == "-16.32 ± 1.88"
    assert table.loc[("whitewine", "maf"), "ours mollification, final"] == "—"  # not run
    v = uci_verdicts(frame, paper, variant="official").set_index(["view", "comparison"])
    final = v.loc[("final", "mollification - vanilla")]
    assert final["better on"] == "3/3" and final["mean"] == pytest.approx(3.7667, abs=1e-3)
    assert final["verdict"] == SIMILAR  # 3.8 of the paper's 4.8 nats, on every seed
    assert v.loc[("early-stopped", "mollification - vanilla"), "verdict"] == OPPOSITE  # stopped vanilla wins
    assert v.loc[("final", "constant - vanilla"), "verdict"] == OPPOSITE  # constant clearly helps
    assert len(uci_verdicts(frame, paper, variant="paper-text")) == 3  # final, early-stopped, constant
    assert uci_verdicts(frame, paper, variant="nonexistent").empty


def test_say_wraps_printed_results_to_the_page_and_keeps_explicit_breaks(capsys):
    from molli_utils.report import PAGE_WIDTH, say

    long = "mixture_of_gaussians: mollification does not help on mean MMD^2 " * 4
    say(long, "first line\nsecond line")
    out = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in out) <= PAGE_WIDTH
    assert " ".join(w.strip() for w in out[:-2]).split() == long.split()
    assert out[-2:] == ["first line", "second line"]
    assert all(line.startswith("    ") for line in out[1:-2])
    with pytest.raises(ValueError, match="too narrow"):
        say("x", width=5)
