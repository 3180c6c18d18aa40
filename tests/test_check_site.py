"""The site checker flags what a reader would see broken.

Most tests give it DOMs directly (no browser needed); one renders real pages in headless Chromium,
when it is installed, to show that the layout measurement finds an overflowing code line, an
overflowing equation and one hidden in a folded cell, and passes a page that fits.
"""

import importlib.util
import json
import pathlib
import shutil

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("check_site", ROOT / "tools" / "check_site.py")
check_site = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check_site)

GOOD = '<html><script src="../_static/mathjax/tex-mml-chtml.js"></script><p class="math">x</p><img src="a.png"></html>'


def report(overflow=(), column=752, page=0):
    data = {"column_px": column, "window_px": 1280, "page_overflow_px": page, "overflow": list(overflow)}
    return f'<pre id="{check_site.REPORT_ID}" style="display: none;">{json.dumps(data)}</pre>'


def output_cell(inner):
    return f'<div class="cell_output docutils container"><div class="output stream">{inner}</div></div>'


def widget():
    return f'<script type="{check_site.WIDGET_MIME}">{{"version_major": 2, "model_id": "abc"}}</script>'


NOTEBOOK = GOOD.replace("</html>", '<a href="../_sources/book/01_x.ipynb">.ipynb</a></html>')
BADGE = (
    '<h1>1. X</h1><p class="colab-badge"><a href="https://colab.research.google.com/github/o/r/blob/v1/book/01_x.ipynb">'
    "Open in Colab</a></p><h2>1.1</h2>"
)


def test_clean_page_passes(tmp_path):
    (tmp_path / "a.png").write_bytes(b"png")
    assert check_site.check_page(tmp_path / "p.html", GOOD, GOOD + "<mjx-container>" + report()) == []


def test_each_problem_is_reported(tmp_path):
    page = tmp_path / "p.html"
    problems = check_site.check_page(page, GOOD, GOOD + "<pre>Traceback (most recent call last):</pre>")
    assert "missing image a.png" in problems
    assert any("traceback" in p for p in problems)
    assert any("not typeset" in p for p in problems)
    assert any("layout check did not run" in p for p in problems)
    cdn = GOOD.replace("../_static/mathjax", "https://cdn.jsdelivr.net/npm/mathjax@3/es5")
    assert any("CDN" in p for p in check_site.check_page(page, cdn, cdn + "<mjx-container><mjx-merror>"))
    assert any(
        "MathJax reported an error" in p for p in check_site.check_page(page, cdn, cdn + "<mjx-container><mjx-merror>")
    )


def test_overflow_in_the_report_fails_the_page(tmp_path):
    (tmp_path / "a.png").write_bytes(b"png")
    items = [
        {"kind": "code", "tag": "pre", "text": "x = " + "1" * 100, "section": "1.2 Setup", "excess_px": 361},
        {"kind": "math", "tag": "mjx-container", "text": "H = ...", "section": "1.1", "excess_px": 45},
    ]
    problems = check_site.check_page(tmp_path / "p.html", GOOD, GOOD + "<mjx-container>" + report(items))
    assert len(problems) == 1
    assert problems[0].startswith("2 element(s) overflow the 752px text column at 1280px")
    assert "code +361px in '1.2 Setup'" in problems[0] and "math +45px" in problems[0]
    sideways = check_site.check_page(tmp_path / "p.html", GOOD, GOOD + "<mjx-container>" + report(page=40))
    assert sideways == ["the page scrolls sideways by 40px at 1280px"]


def test_output_cells_are_counted_as_rendered():
    dom = (
        "<h2>Training</h2>"
        + output_cell("<pre>" + "a" * 50 + "</pre>" + widget() * 3)
        + "<h2>Results</h2>"
        + output_cell("<div><div><p>" + "b " * 20 + "</p></div></div><script>var s = '" + "c" * 9000 + "';</script>")
    )
    cells = check_site.output_cells(dom)
    assert [c["widgets"] for c in cells] == [3, 0]
    assert cells[0]["chars"] == 50 and cells[1]["chars"] == len(("b " * 20).strip())  # script text is not shown
    assert [c["section"] for c in cells] == ["Training", "Results"]
    assert cells[1]["kb"] > 9000 / 1024  # but it weighs on the page


def test_output_cells_over_the_limits_fail(tmp_path):
    (tmp_path / "a.png").write_bytes(b"png")
    ok = GOOD + "<mjx-container>" + report()
    at_limit = output_cell(widget() * check_site.MAX_OUTPUT_WIDGETS + "x" * check_site.MAX_OUTPUT_CHARS)
    assert check_site.check_page(tmp_path / "p.html", GOOD, ok + at_limit) == []
    spam = output_cell(widget() * 2900)  # chapter 7's progress bars, before the fix
    long = output_cell("<pre>" + "y" * (check_site.MAX_OUTPUT_CHARS + 1) + "</pre>")
    heavy = output_cell("<img src='data:image/png;base64," + "A" * (check_site.MAX_OUTPUT_KB * 1024 + 10) + "'>")
    problems = check_site.check_page(tmp_path / "p.html", GOOD, ok + "<h2>Runs</h2>" + spam + long + heavy)
    assert any("output cell 1 (in 'Runs') holds 2,900 widgets" in p for p in problems)
    assert any("output cell 2" in p and f"{check_site.MAX_OUTPUT_CHARS + 1:,} characters" in p for p in problems)
    assert any("output cell 3" in p and "kB of HTML" in p for p in problems)


def test_chapter_pages_need_the_colab_badge_at_the_top(tmp_path):
    (tmp_path / "a.png").write_bytes(b"png")
    base = "<mjx-container>" + report()
    page = tmp_path / "p.html"
    assert check_site.check_page(page, NOTEBOOK, NOTEBOOK + base + BADGE) == []
    assert check_site.check_page(page, NOTEBOOK, NOTEBOOK + base) == [
        'no "Open in Colab" badge at the top of this chapter'
    ]
    late = "<h1>1. X</h1><h2>1.1</h2>" + BADGE.split("</h1>")[1].split("<h2>")[0]
    assert any("not at the top" in p for p in check_site.check_page(page, NOTEBOOK, NOTEBOOK + base + late))
    wrong = BADGE.replace("https://colab.research.google.com/github/", "https://example.org/")
    assert any("does not link" in p for p in check_site.check_page(page, NOTEBOOK, NOTEBOOK + base + wrong))
    assert check_site.check_page(page, GOOD, GOOD + base) == []  # a Markdown page needs none


def test_the_site_index_redirect_needs_no_layout():
    redirect = '<meta http-equiv="Refresh" content="0; url=book/intro.html" />'
    assert check_site.check_page(pathlib.Path("index.html"), redirect, "<html>" + redirect + "</html>") == []


FITS = "x = 1"
PAGE = """<!DOCTYPE html><html><head><style>
article.bd-article {{ width: 600px; margin: 0 auto; font: 16px monospace; }}
div.highlight pre {{ overflow-x: auto; margin: 0; }}
div.math {{ white-space: nowrap; }}
</style></head><body><main><article class="bd-article">
<h1>Title</h1><h2>Code</h2>
<div class="highlight"><pre>{code}</pre></div>
<h2>Maths</h2><div class="math">{math}</div>
<h2>Folded</h2><details class="hide above-input"><summary>show</summary><div class="highlight"><pre>{hidden}</pre></div></details>
</article></main></body></html>"""


@pytest.mark.skipif(
    not any(shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")),
    reason="headless Chromium is not installed",
)
def test_layout_measurement_in_chromium_finds_overflow_and_passes_a_page_that_fits(tmp_path):
    chromium = check_site.find_chromium()
    wide = tmp_path / "wide.html"
    wide.write_text(PAGE.format(code="y = " + "1" * 120, math="E" * 120, hidden="z = " + "2" * 120))
    fits = tmp_path / "fits.html"
    fits.write_text(PAGE.format(code=FITS, math="E = mc2", hidden=FITS))
    rep = check_site.layout_report(check_site.rendered_dom(chromium, wide))
    assert rep["column_px"] == 600 and rep["window_px"] == check_site.WINDOW_WIDTH
    kinds = {(i["kind"], i["section"]) for i in rep["overflow"]}
    assert {("code", "Code"), ("math", "Maths"), ("code", "Folded")} <= kinds, rep["overflow"]
    assert all(i["excess_px"] > 300 for i in rep["overflow"])  # ~120 characters of 10px in 600px
    assert check_site.layout_report(check_site.rendered_dom(chromium, fits))["overflow"] == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fits.html", "wide.html"]  # the probe copies are gone
