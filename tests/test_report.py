"""molli_utils.report: loud failures on incomplete results files, paired differences, verdict rules."""

import pandas as pd
import pytest

from molli_utils.report import REQUIRED_COLUMNS, load_results, no_benefit_verdict, paired_differences, verdict


def test_missing_column_fails_loudly_with_the_fix(tmp_path):
    cols = [c for c in REQUIRED_COLUMNS["uci.csv"] if c != "test_loglik_best_val"]
    pd.DataFrame([{c: 1 for c in cols}]).to_csv(tmp_path / "uci.csv", index=False)
    with pytest.raises(ValueError, match=r"lacks the column\(s\) \['test_loglik_best_val'\].*experiments uci --all"):
        load_results("uci.csv", tmp_path)


def test_complete_file_loads(tmp_path):
    cols = REQUIRED_COLUMNS["toy2d.csv"]
    pd.DataFrame([{c: 0 for c in cols}]).to_csv(tmp_path / "toy2d.csv", index=False)
    assert list(load_results("toy2d.csv", tmp_path).columns) == cols


def test_the_committed_results_have_what_the_report_needs():
    import pathlib

    folder = pathlib.Path(__file__).resolve().parents[1] / "book" / "results"
    for name in REQUIRED_COLUMNS:
        assert len(load_results(name, folder)) > 0


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
