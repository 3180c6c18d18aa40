"""molli_utils.report: paired differences and verdict rules."""

import pandas as pd
import pytest

from molli_utils.report import no_benefit_verdict, paired_differences, verdict


def test_paired_differences_pair_by_seed():
    frame = pd.DataFrame({"dataset": ["a"] * 5, "mode": ["vanilla", "mollification", "vanilla", "mollification", "vanilla"],
                          "seed": [1, 1, 2, 2, 3], "ll": [-3.0, -1.0, -2.0, -2.5, -9.0]})
    d = paired_differences(frame, ["dataset"], "ll")
    assert d.to_dict() == {("a", 1): 2.0, ("a", 2): -0.5}  # seed 3 has no mollified run


@pytest.mark.parametrize("diffs,paper,higher,expected", [
    ([], 4.8, True, "not yet run here"),
    ([3.0], 4.8, True, "one seed only"),
    ([1.0, -1.2, 0.5], 4.8, True, "within seed noise"),
    ([4.0, 4.5, 5.0], 4.8, True, "reproduced"),
    ([1.0, 1.2, 0.9], 4.8, True, "reproduced with a smaller effect"),
    ([-1.0, -1.2, -0.9], 4.8, True, "not reproduced"),
    ([-0.02, -0.03, -0.025], -0.04, False, "reproduced"),       # MMD^2: lower is better
    ([0.02, 0.03, 0.025], -0.04, False, "not reproduced"),
])  # fmt: skip
def test_verdict_rules(diffs, paper, higher, expected):
    assert verdict(diffs, paper, higher_is_better=higher) == expected


@pytest.mark.parametrize("diffs,higher,expected", [
    ([], True, "not yet run here"),
    ([0.4], True, "one seed only"),
    ([0.5, -0.6, 0.2], True, "reproduced"),          # within seed noise: no benefit
    ([-1.0, -1.5, -0.8], True, "reproduced"),        # the treatment hurts: no benefit either
    ([1.0, 1.5, 0.8], True, "not reproduced"),       # clearly better: the claim fails
    ([-0.02, -0.03, -0.025], False, "not reproduced"),  # MMD^2 lower with the treatment
    ([0.02, 0.03, 0.025], False, "reproduced"),
])  # fmt: skip
def test_no_benefit_verdict_rules(diffs, higher, expected):
    assert no_benefit_verdict(diffs, higher_is_better=higher) == expected
