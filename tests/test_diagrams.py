"""The book's diagrams (book/figures/*.svg) are what tools/diagrams.py draws, and the pages find them.

A change to the script without re-running it (``python -m tools.diagrams``) and committing the new
SVGs fails here twice: every SVG records the SHA-256 of the script that drew it, and the script,
re-run into a temporary folder, must give the committed files byte for byte. The byte comparison
needs the Matplotlib and FreeType versions that drew the committed files (glyph outlines and number
formatting change between versions); with other versions it is skipped, and the recorded SHA-256
still has to match.
"""

import hashlib
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
FIGURES = ROOT / "book" / "figures"
SCRIPT = ROOT / "tools" / "diagrams.py"
COMMITTED = sorted(FIGURES.glob("*.svg"))
#: pages that include a diagram: a MyST figure directive (```{figure} figures/x.svg) or a Markdown image
FIGURE_REF = re.compile(r"(?:\{figure\}\s*|\]\()((?:\.\./)*figures/[\w.-]+\.svg)")


def _creator(svg: str) -> str:
    match = re.search(r"<dc:creator>\s*<cc:Agent>\s*<dc:title>([^<]*)</dc:title>", svg)
    return match.group(1) if match else ""


@pytest.fixture(scope="module")
def redrawn(tmp_path_factory):
    out = tmp_path_factory.mktemp("figures")
    done = subprocess.run(
        [sys.executable, "-m", "tools.diagrams", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, f"python -m tools.diagrams failed:\n{done.stderr[-3000:]}"
    return out


def test_there_are_at_least_four_diagrams():
    names = {p.stem for p in COMMITTED}
    assert {"loop", "schedule", "manifold_overfitting", "book_map"} <= names, names


def test_each_svg_records_the_script_that_drew_it():
    digest = hashlib.sha256(SCRIPT.read_bytes()).hexdigest()
    stale = [p.name for p in COMMITTED if f"sha256 {digest}" not in p.read_text()]
    assert not stale, (
        f"{stale} were not drawn by the current tools/diagrams.py: "
        "run `python -m tools.diagrams` and commit book/figures"
    )


def test_text_is_drawn_as_paths():
    """svg.fonttype = "path": a browser shows the same glyphs without the fonts installed."""
    with_text = [p.name for p in COMMITTED if "<text" in p.read_text()]
    assert not with_text, f"{with_text} contain <text> elements: keep svg.fonttype = 'path'"


@pytest.mark.slow
def test_the_script_writes_exactly_the_committed_files(redrawn):
    assert sorted(p.name for p in redrawn.glob("*.svg")) == [p.name for p in COMMITTED], (
        "book/figures holds other SVGs than the script writes: run `python -m tools.diagrams`, "
        "remove stale files, commit"
    )


@pytest.mark.slow
def test_the_script_reproduces_the_committed_files_byte_for_byte(redrawn):
    for path in COMMITTED:
        committed, fresh = path.read_bytes(), (redrawn / path.name).read_bytes()
        drawn_with, here = _creator(committed.decode()), _creator(fresh.decode())
        if drawn_with != here:
            pytest.skip(f"{path.name} was drawn by {drawn_with!r}, this is {here!r}: bytes not comparable")
        assert committed == fresh, (
            f"book/figures/{path.name} differs from what tools/diagrams.py draws: "
            "run `python -m tools.diagrams` and commit book/figures"
        )


def test_every_diagram_is_used_and_every_reference_resolves():
    pages = [p for p in (ROOT / "book").rglob("*") if p.suffix in (".md", ".ipynb") and "_build" not in p.parts]
    used = set()
    for page in pages:
        for ref in FIGURE_REF.findall(page.read_text()):
            target = (page.parent / ref).resolve()
            assert target.is_file(), f"{page.relative_to(ROOT)} refers to {ref}, which does not exist"
            used.add(target)
    unused = [p.name for p in COMMITTED if p.resolve() not in used]
    assert not unused, f"diagrams no page shows: {unused}"
