"""Open every chapter of the built book in headless Chromium and check what a reader would see.

A page FAILS on any of:

* a Python traceback in its outputs;
* an image that does not load;
* math that MathJax did not typeset (or typeset with an error), or MathJax loaded from
  anywhere but the site itself;
* **horizontal overflow of the text column** at a window width of ``WINDOW_WIDTH`` (1280 px):
  a code line, an equation, an output or a table wider than the column, whether the theme
  gives it a scroll bar or lets it stick out. Folded content (hidden inputs, solution
  dropdowns) is unfolded before measuring, since a reader can open it;
* **an output cell longer than the limits** below, counted on the page as rendered: the
  characters of visible text, the widgets (one tqdm progress bar is one widget), and the
  bytes of its HTML;
* a chapter page (built from a notebook) without the "Open in Colab" badge at its top
  (``book/_ext/colab_badge.py``).

The limits (per output cell; a cell has one output area, however many outputs it prints):

* ``MAX_OUTPUT_CHARS`` = 10,000 characters of visible text (about 130 lines of 75
  characters; the longest legitimate output of the book, chapter 5's table of claims, is
  about 5,800);
* ``MAX_OUTPUT_WIDGETS`` = 2 widgets (a progress bar per run and a spare; a loop that
  opens a bar per step or per run of a grid fails);
* ``MAX_OUTPUT_KB`` = 4,000 kB of HTML (a 40-frame animation from
  ``molli_utils.plotting`` is 1-2 MB);
* ``OVERFLOW_TOLERANCE_PX`` = 2 px of overflow is ignored (sub-pixel rounding).

The layout checks run a small script in the page (a temporary copy next to it, so that its
relative links still resolve): after MathJax has typeset, it measures every element of the
text column (``article.bd-article``) and writes a JSON report into the DOM, which
``--dump-dom`` returns.

Usage:  python tools/check_site.py [_build/html]      (`make check-site` builds the book first)
"""

from __future__ import annotations

import html as html_lib
import json
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
from html.parser import HTMLParser

#: Width of the browser window of the layout checks, in CSS pixels.
WINDOW_WIDTH = 1280
#: Visible characters allowed in one output cell.
MAX_OUTPUT_CHARS = 10_000
#: Widgets (e.g. tqdm progress bars) allowed in one output cell.
MAX_OUTPUT_WIDGETS = 2
#: HTML allowed in one output cell, in kB.
MAX_OUTPUT_KB = 4_000
#: Overflow below this many pixels is ignored.
OVERFLOW_TOLERANCE_PX = 2

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--virtual-time-budget=8000",
    f"--window-size={WINDOW_WIDTH},900",
    "--hide-scrollbars",
]

REPORT_ID = "check-site-report"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
COLAB_BADGE_CLASS = "colab-badge"

#: Runs in the page: unfold what a reader can unfold, wait for MathJax, measure the text column.
MEASURE_JS = r"""
(function () {
  var TOL = %(tol)d;
  function describe(el) {
    var kind = el.closest('.cell_output') ? 'output'
             : (el.closest('mjx-container, .math') ? 'math'
             : (el.closest('div.highlight, pre, code') ? 'code'
             : (el.closest('table') ? 'table' : 'other')));
    var text = (el.textContent || '').replace(/\s+/g, ' ').trim().slice(0, 90);
    var heading = '', h = el;
    while (h && !heading) {
      var prev = h.previousElementSibling;
      while (prev && !/^H[1-6]$/.test(prev.tagName) && !prev.querySelector('h1,h2,h3,h4,h5,h6')) prev = prev.previousElementSibling;
      if (prev) { var hs = /^H[1-6]$/.test(prev.tagName) ? [prev] : prev.querySelectorAll('h1,h2,h3,h4,h5,h6');
                  heading = hs[hs.length - 1].textContent.replace(/[#¶]/g, '').trim(); }
      h = h.parentElement;
    }
    return {kind: kind, tag: el.tagName.toLowerCase(), text: text, section: heading.slice(0, 60)};
  }
  function clipped(el, col) {            // inside a box that hides or scrolls horizontal overflow?
    for (var a = el.parentElement; a && a !== col; a = a.parentElement) {
      var ox = getComputedStyle(a).overflowX;
      if (ox !== 'visible') return true;
    }
    return false;
  }
  function ownText(el) {                // a non-blank text node directly inside el
    for (var n = el.firstChild; n; n = n.nextSibling) {
      if (n.nodeType === 3 && n.textContent.trim()) return true;
    }
    return false;
  }
  function measure() {
    document.querySelectorAll('details').forEach(function (d) { d.open = true; });
    document.querySelectorAll('.toggle-hidden').forEach(function (e) { e.classList.remove('toggle-hidden'); });
    document.querySelectorAll('.toggle-details__container').forEach(function (e) { e.style.display = 'block'; });
    var col = document.querySelector('article.bd-article') || document.querySelector('main') || document.body;
    var cr = col.getBoundingClientRect();
    var out = [], seen = [];
    col.querySelectorAll('*').forEach(function (el) {
      if (el.closest('.headerlink, script, style, mjx-assistive-mml')) return;
      var st = getComputedStyle(el);
      if (st.display === 'none' || st.visibility === 'hidden' || st.position === 'fixed') return;
      var r = el.getBoundingClientRect();
      if (r.width === 0 && r.height === 0) return;
      if (seen.some(function (s) { return s.contains(el); })) return;
      var excess = 0, scrolls = st.overflowX === 'auto' || st.overflowX === 'scroll';
      if (scrolls && el.scrollWidth > el.clientWidth + TOL) {
        excess = el.scrollWidth - el.clientWidth;                       // the reader gets a scroll bar
      } else if (!clipped(el, col) && r.right > cr.right + TOL) {
        excess = r.right - cr.right;                                    // the box sticks out of the column
      } else if (!scrolls && st.overflowX === 'visible' && !clipped(el, col) && ownText(el)
                 && el.scrollWidth > el.clientWidth + TOL && r.left + el.scrollWidth > cr.right + TOL) {
        excess = r.left + el.scrollWidth - cr.right;                    // its text runs out of the column
      }
      if (excess > TOL) {
        var d = describe(el); d.excess_px = Math.round(excess); out.push(d); seen.push(el);
      }
    });
    var page = document.documentElement.scrollWidth - window.innerWidth;
    var pre = document.createElement('pre');
    pre.id = '%(report_id)s';
    pre.style.display = 'none';
    pre.textContent = JSON.stringify({column_px: Math.round(cr.width), window_px: window.innerWidth,
                                      page_overflow_px: Math.max(0, page), overflow: out});
    document.body.appendChild(pre);
  }
  window.addEventListener('load', function () {
    var mj = window.MathJax && window.MathJax.startup && window.MathJax.startup.promise;
    var go = function () { setTimeout(measure, 50); };
    if (mj) { mj.then(go, go); } else { go(); }
  });
})();
""" % {"tol": OVERFLOW_TOLERANCE_PX, "report_id": REPORT_ID}


class _PageParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.scripts: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img" and a.get("src"):
            self.images.append(a["src"])
        if tag == "script" and a.get("src"):
            self.scripts.append(a["src"])


class _OutputCells(HTMLParser):
    """Per ``div.cell_output`` of a page: visible characters, widgets and HTML size (what a page renders)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.cells: list[dict] = []
        self._depth = 0  # depth of <div> nesting inside the current output cell (0: outside)
        self._hidden = 0  # inside <script>/<style>/<template>
        self._start = 0
        self._heading: list[str] = []
        self._in_heading = False
        self._section = ""  # the last heading before the current point of the page

    def _pos(self) -> int:
        line, col = self.getpos()
        return self._offsets[line - 1] + col

    def feed_page(self, html: str) -> list[dict]:
        self._offsets = [0]
        for line in html.splitlines(keepends=True):
            self._offsets.append(self._offsets[-1] + len(line))
        self.feed(html)
        self.close()
        return self.cells

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        if tag in ("h1", "h2", "h3", "h4") and not self._depth:
            self._in_heading, self._heading = True, []
        if tag == "div":
            if self._depth:
                self._depth += 1
            elif "cell_output" in classes:
                self._depth = 1
                self._start = self._pos()
                self.cells.append({"chars": 0, "widgets": 0, "kb": 0.0, "section": self._section})
        if self._depth and tag in ("script", "style", "template"):
            self._hidden += 1
            if tag == "script" and a.get("type") == WIDGET_MIME:
                self.cells[-1]["widgets"] += 1

    def handle_endtag(self, tag):
        if tag in ("h1", "h2", "h3", "h4") and self._in_heading:
            self._in_heading = False
            self._section = re.sub(r"\s+", " ", "".join(self._heading)).replace("#", "").strip()[:60]
        if self._depth and tag in ("script", "style", "template"):
            self._hidden = max(0, self._hidden - 1)
        if tag == "div" and self._depth:
            self._depth -= 1
            if not self._depth:
                self.cells[-1]["kb"] = (self._pos() - self._start) / 1024

    def handle_data(self, data):
        if self._in_heading:
            self._heading.append(data)
        if self._depth and not self._hidden:
            self.cells[-1]["chars"] += len(re.sub(r"\s+", " ", data).strip())


def output_cells(dom: str) -> list[dict]:
    """``[{"chars", "widgets", "kb", "section"}, ...]``, one per output cell of the rendered page ``dom``."""
    return _OutputCells().feed_page(dom)


def layout_report(dom: str):
    """The JSON report the in-page script wrote into ``dom`` (``None`` if it did not run)."""
    m = re.search(rf'<pre id="{REPORT_ID}"[^>]*>(.*?)</pre>', dom, re.S)
    if not m:
        return None
    return json.loads(html_lib.unescape(m.group(1)))


def find_chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    raise SystemExit("no Chromium found: install it (Debian: apt-get install -y chromium), then re-run")


def rendered_dom(chromium: str, page: pathlib.Path, *, measure: bool = True) -> str:
    """The DOM of ``page`` after Chromium ran it; with ``measure``, including the layout report of :data:`MEASURE_JS`."""
    page = page.resolve()
    target = page
    if measure:
        html = page.read_text(encoding="utf-8")
        probe = f"<script>{MEASURE_JS}</script>"
        html = html.replace("</body>", probe + "</body>", 1) if "</body>" in html else html + probe
        target = page.with_name(f".check-site-{page.name}")
        target.write_text(html, encoding="utf-8")
    try:
        with tempfile.TemporaryDirectory() as profile:
            out = subprocess.run(
                [
                    "timeout",
                    "90",
                    chromium,
                    *CHROMIUM_FLAGS,
                    f"--user-data-dir={profile}",
                    "--dump-dom",
                    target.as_uri(),
                ],
                capture_output=True,
                text=True,
            )
    finally:
        if measure:
            target.unlink(missing_ok=True)
    if out.returncode != 0 or "<html" not in out.stdout:
        raise RuntimeError(f"Chromium could not render {page}: exit {out.returncode}\n{out.stderr[-500:]}")
    return out.stdout


def is_notebook_page(static_html: str) -> bool:
    """A page built from a ``.ipynb`` source (the theme links its ``_sources/...ipynb`` download)."""
    return bool(re.search(r'href="[^"]*_sources/[^"]+\.ipynb"', static_html))


def check_page(page: pathlib.Path, static_html: str, dom: str) -> list[str]:
    """Problems a reader would see on ``page`` (empty list: fine)."""
    problems = []
    if "Traceback (most recent call last)" in dom or re.search(r'class="[^"]*\boutput\b[^"]*\btraceback', dom):
        problems.append("a Python traceback is shown in the outputs")
    parser = _PageParser()
    parser.feed(static_html)
    for src in parser.images:
        if src.startswith(("http://", "https://", "data:")):
            continue
        if not (page.parent / src.split("#")[0].split("?")[0]).is_file():
            problems.append(f"missing image {src}")
    mathjax = [s for s in parser.scripts if "mathjax" in s.lower() or "tex-mml" in s]
    if any(s.startswith(("http://", "https://", "//")) for s in mathjax):
        problems.append(f"MathJax is loaded from a CDN: {mathjax}")
    has_math = 'class="math' in static_html or "\\(" in static_html
    if has_math and "<mjx-container" not in dom:
        problems.append("math was not typeset (no MathJax output in the rendered page)")
    if "<mjx-merror" in dom:
        problems.append("MathJax reported an error typesetting some math")

    report = layout_report(dom)
    if re.search(r'<meta[^>]+http-equiv="refresh"', static_html, re.I):
        pass  # a redirect (the site's index.html): nothing of its own to lay out
    elif report is None:
        problems.append("the layout check did not run (no report in the rendered page)")
    else:
        items = report["overflow"]
        if items:
            shown = "; ".join(
                f"{i['kind']} +{i['excess_px']}px in '{i['section']}': {i['text'][:50]!r}" for i in items[:6]
            )
            more = f" (and {len(items) - 6} more)" if len(items) > 6 else ""
            problems.append(
                f"{len(items)} element(s) overflow the {report['column_px']}px text column at "
                f"{report['window_px']}px: {shown}{more}"
            )
        elif report.get("page_overflow_px", 0) > OVERFLOW_TOLERANCE_PX:
            problems.append(f"the page scrolls sideways by {report['page_overflow_px']}px at {report['window_px']}px")

    for k, cell in enumerate(output_cells(dom)):
        where = f"output cell {k + 1} (in '{cell['section']}')"
        if cell["chars"] > MAX_OUTPUT_CHARS:
            problems.append(f"{where} shows {cell['chars']:,} characters (limit {MAX_OUTPUT_CHARS:,})")
        if cell["widgets"] > MAX_OUTPUT_WIDGETS:
            problems.append(
                f"{where} holds {cell['widgets']:,} widgets, e.g. progress bars (limit {MAX_OUTPUT_WIDGETS})"
            )
        if cell["kb"] > MAX_OUTPUT_KB:
            problems.append(f"{where} is {cell['kb']:,.0f} kB of HTML (limit {MAX_OUTPUT_KB:,} kB)")

    if is_notebook_page(static_html):
        badges = _badge_links(dom)
        article = dom[max(0, dom.find("<article")) :]  # the text, not the print-only contents
        first_section = article.find("<h2")
        if not badges:
            problems.append('no "Open in Colab" badge at the top of this chapter')
        elif first_section >= 0 and article.find(f'class="{COLAB_BADGE_CLASS}"') > first_section:
            problems.append("the Colab badge is not at the top of the chapter (it comes after the first section)")
        elif not all(
            h.startswith("https://colab.research.google.com/github/") and h.endswith(".ipynb") for h in badges
        ):
            problems.append(f"the Colab badge does not link to a notebook on Colab: {badges}")
    return problems


def _badge_links(dom: str) -> list[str]:
    """The links inside the page's Colab badges."""
    out = []
    for m in re.finditer(rf'<p class="{COLAB_BADGE_CLASS}"[^>]*>(.*?)</p>', dom, re.S):
        out += [html_lib.unescape(h) for h in re.findall(r'href="([^"]+)"', m.group(1))]
    return out


def main(argv: list[str]) -> int:
    site = pathlib.Path(argv[0] if argv else "_build/html").resolve()
    pages = sorted(p for p in site.rglob("*.html") if p.parts[len(site.parts)] in ("book",) or p.name == "index.html")
    pages = [
        p for p in pages if p.name not in ("genindex.html", "search.html") and not p.name.startswith(".check-site-")
    ]
    if not pages:
        print(f"no pages under {site}: build the book first (make book)", file=sys.stderr)
        return 1
    chromium = find_chromium()
    failed = 0
    print(
        f"limits per output cell: {MAX_OUTPUT_CHARS:,} characters, {MAX_OUTPUT_WIDGETS} widgets, "
        f"{MAX_OUTPUT_KB:,} kB; no overflow of the text column at {WINDOW_WIDTH}px"
    )
    for page in pages:
        problems = check_page(page, page.read_text(encoding="utf-8"), rendered_dom(chromium, page))
        status = "ok" if not problems else "FAIL: " + "\n    ".join([""] + problems)
        failed += bool(problems)
        print(f"{page.relative_to(site)}: {status}")
    print(f"site check: {len(pages)} pages opened in Chromium, {failed} with problems")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
