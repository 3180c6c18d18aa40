"""Open every chapter of the built book in headless Chromium and check what a reader would see.

Fails on a page with a Python traceback in its outputs, an image that does not
load, or math that MathJax did not typeset (or typeset with an error), and on
a page that loads MathJax from anywhere but the site itself.

Usage:  python tools/check_site.py [_build/html]      (`make check-site` builds the book first)
"""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
from html.parser import HTMLParser

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--virtual-time-budget=8000",
]


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


def find_chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    raise SystemExit("no Chromium found: install it (Debian: apt-get install -y chromium), then re-run")


def rendered_dom(chromium: str, page: pathlib.Path) -> str:
    with tempfile.TemporaryDirectory() as profile:
        out = subprocess.run(
            ["timeout", "90", chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", page.as_uri()],
            capture_output=True, text=True,
        )
    if out.returncode != 0 or "<html" not in out.stdout:
        raise RuntimeError(f"Chromium could not render {page}: exit {out.returncode}\n{out.stderr[-500:]}")
    return out.stdout


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
    return problems


def main(argv: list[str]) -> int:
    site = pathlib.Path(argv[0] if argv else "_build/html").resolve()
    pages = sorted(p for p in site.rglob("*.html") if p.parts[len(site.parts)] in ("book",) or p.name == "index.html")
    pages = [p for p in pages if p.name not in ("genindex.html", "search.html")]
    if not pages:
        print(f"no pages under {site}: build the book first (make book)", file=sys.stderr)
        return 1
    chromium = find_chromium()
    failed = 0
    for page in pages:
        problems = check_page(page, page.read_text(encoding="utf-8"), rendered_dom(chromium, page))
        status = "ok" if not problems else "FAIL: " + "; ".join(problems)
        failed += bool(problems)
        print(f"{page.relative_to(site)}: {status}")
    print(f"site check: {len(pages)} pages opened in Chromium, {failed} with problems")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
