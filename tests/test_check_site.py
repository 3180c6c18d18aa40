"""The site checker flags what a reader would see broken (no browser needed: DOMs are given)."""

import importlib.util
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("check_site", ROOT / "tools" / "check_site.py")
check_site = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check_site)

GOOD = '<html><script src="../_static/mathjax/tex-mml-chtml.js"></script><p class="math">x</p><img src="a.png"></html>'


def test_clean_page_passes(tmp_path):
    (tmp_path / "a.png").write_bytes(b"png")
    assert check_site.check_page(tmp_path / "p.html", GOOD, GOOD + "<mjx-container>") == []


def test_each_problem_is_reported(tmp_path):
    page = tmp_path / "p.html"
    problems = check_site.check_page(page, GOOD, GOOD + "<pre>Traceback (most recent call last):</pre>")
    assert "missing image a.png" in problems
    assert any("traceback" in p for p in problems)
    assert any("not typeset" in p for p in problems)
    cdn = GOOD.replace("../_static/mathjax", "https://cdn.jsdelivr.net/npm/mathjax@3/es5")
    assert any("CDN" in p for p in check_site.check_page(page, cdn, cdn + "<mjx-container><mjx-merror>"))
    assert any("MathJax reported an error" in p for p in check_site.check_page(page, cdn, cdn + "<mjx-container><mjx-merror>"))
