"""The book's execution cache, filled by the tests that execute the book's notebooks anyway.

``make book PROFILE=quick`` (myst-nb's ``execute_notebooks: cache``) looks a notebook up in ``_build/.jupyter_cache``
by its code and cell metadata before executing it; a notebook stored there by a test is not executed again.
"""

import pathlib
import sys

import nbformat

ROOT = pathlib.Path(__file__).resolve().parents[1]


def share_with_the_book(nb_path: pathlib.Path, executed, seconds: float) -> bool:
    """Store ``executed`` in the book's execution cache, where ``make book PROFILE=quick`` finds it (myst-nb matches
    a notebook by its code), and say so in ``_build/.profile``; only from the checkout's own environment (``.venv``,
    not the newest-Python leg's) and where the cache holds the quick profile or nothing yet. Whether it stored."""
    build = ROOT / "_build"
    profile = build / ".profile"
    own = pathlib.Path(sys.prefix).resolve() == (ROOT / ".venv").resolve()
    if not own or (profile.exists() and profile.read_text().strip() != "quick"):
        return False
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    stored = nbformat.read(nb_path, as_version=4)  # the file's metadata (myst-nb hashes them with the code)
    for cell, done in zip(stored.cells, executed.cells):
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = done.outputs, done.execution_count
    stored.metadata = {**executed.metadata, "kernelspec": stored.metadata.get("kernelspec", {})}
    build.mkdir(exist_ok=True)
    profile.write_text("quick\n")
    cache = get_cache(str(build / ".jupyter_cache"))
    bundle = CacheBundleIn(stored, str(nb_path), data={"execution_seconds": seconds})
    record = cache.cache_notebook_bundle(bundle, check_validity=False, overwrite=True)
    found = cache.match_cache_notebook(nbformat.read(nb_path, as_version=4))  # as myst-nb will look it up
    assert found.pk == record.pk, f"{nb_path.name}: the book's cache would not find this execution"
    return True
