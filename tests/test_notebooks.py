"""Every chapter notebook executes top to bottom in the quick profile (as in CI).

An executed chapter is stored in the book's execution cache (:func:`book_cache.share_with_the_book`), so that
building the book after ``make test`` (CI's ``make check-site``) shows these outputs instead of executing every
chapter a second time. The assignments are executed (and shared) by ``tests/test_assignments.py``.
"""

import pathlib
import re
import time

import nbformat
import pytest
from book_cache import share_with_the_book
from nbclient import NotebookClient

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(
    p for p in (ROOT / "book").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts and "assignments" not in p.parts
)


@pytest.mark.notebook
@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_in_quick_profile(nb_path, monkeypatch):
    monkeypatch.setenv("MOLLI_PROFILE", "quick")
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's inline figures, as in the book
    nb = nbformat.read(nb_path, as_version=4)
    client = NotebookClient(
        nb, timeout=1800, kernel_name="python3", resources={"metadata": {"path": str(nb_path.parent)}}
    )
    start = time.perf_counter()
    client.execute()  # raises CellExecutionError with the failing cell and traceback
    errors = [
        o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.get("output_type") == "error"
    ]
    assert not errors
    missing = sorted(glue_keys(nb) - glued(nb))
    assert not missing, f"{nb_path.name}: the prose uses glue keys that no cell glues: {missing}"
    share_with_the_book(nb_path, nb, time.perf_counter() - start)


GLUE_ROLE = re.compile(r"\{glue(?::[a-z]+)?\}`([^`<]+?)(?::[^`]*)?`")
GLUE_DIRECTIVE = re.compile(r"^[`:]{3,}\{glue(?::[a-z]+)?\}\s+(\S+)", re.M)


def glue_keys(nb) -> set:
    """The names that the notebook's Markdown asks myst-nb to glue in ({glue}`name`, {glue:text}`name:.2f`, ...)."""
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    return set(GLUE_ROLE.findall(text)) | set(GLUE_DIRECTIVE.findall(text))


def glued(nb) -> set:
    """The names an executed notebook glued (myst-nb's outputs carry them in their metadata)."""
    names = set()
    for c in nb.cells:
        for o in c.get("outputs", []) if c.cell_type == "code" else []:
            meta = o.get("metadata", {})
            for key in ("scrapbook", "myst-nb"):  # older and newer myst-nb
                if isinstance(meta.get(key), dict) and "name" in meta[key]:
                    names.add(meta[key]["name"])
    return names


def test_glue_keys_are_read_from_roles_and_directives():
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_markdown_cell(
                "{glue:text}`n_runs` runs, {glue:text}`ratio:.2f` and {glue}`plain`.\n\n```{glue:figure} fig_a\n```"
            )
        ]
    )
    assert glue_keys(nb) == {"n_runs", "ratio", "plain", "fig_a"}
