"""Findings: the text of "What we learned" is rendered from the checked statements, and a false one fails."""

import pytest

from molli_utils.findings import Findings


def test_findings_render_as_markdown_and_pass_when_all_hold():
    f = Findings().add("τ = 0.7 crosses SNR = 1 at t/T = 0.25.", 0.24 < 0.25 < 0.26).add("**two**", True)
    assert f.check() is f
    assert f._repr_markdown_() == "- τ = 0.7 crosses SNR = 1 at t/T = 0.25.\n- **two**\n"
    assert "2 (all hold)" in repr(f)


def test_a_finding_that_stops_holding_fails_the_check_and_names_itself():
    f = Findings().add("holds", True).add("the vanilla flow wins", 3.0 < 2.0)
    assert f.failing == ["the vanilla flow wins"]
    with pytest.raises(AssertionError, match="the vanilla flow wins"):
        f.check()
    with pytest.raises(AssertionError, match="no findings"):
        Findings().check()
    with pytest.raises(ValueError, match="non-empty"):
        Findings().add("  ", True)


def test_glue_returns_the_value_and_refuses_a_bad_name(monkeypatch):
    import sys
    import types

    from molli_utils.findings import glue

    stored = {}
    fake = types.ModuleType("myst_nb")
    fake.glue = lambda name, value, display=True: stored.update({name: (value, display)})
    monkeypatch.setitem(sys.modules, "myst_nb", fake)
    assert glue("diverged_step", 7508) == 7508
    assert stored == {"diverged_step": (7508, False)}
    with pytest.raises(ValueError, match="identifier"):
        glue("two words", 1)
    monkeypatch.setitem(sys.modules, "myst_nb", None)  # not installed (Colab): nothing stored, value returned
    assert glue("other", 3.5) == 3.5 and "other" not in stored


def test_glue_all_glues_every_value_as_a_python_number(monkeypatch):
    import sys
    import types

    import numpy as np
    import torch

    from molli_utils.findings import glue_all

    stored = {}
    fake = types.ModuleType("myst_nb")
    fake.glue = lambda name, value, display=True: stored.update({name: value})
    monkeypatch.setitem(sys.modules, "myst_nb", fake)
    out = glue_all(
        {"n": np.int64(3), "x": np.float32(0.5), "t": torch.tensor(2.0), "ok": np.bool_(True), "s": "a"}, "ch_"
    )
    assert out == {"n": 3, "x": 0.5, "t": 2.0, "ok": True, "s": "a"}
    assert stored == {f"ch_{k}": v for k, v in out.items()}
    assert [type(v) for v in stored.values()] == [int, float, float, bool, str]
