"""Shared by the image tests: a fresh, empty ``MOLLI_DATA`` for one test at a time (nothing is written to ../shared)."""

import pytest


@pytest.fixture
def digits_root(tmp_path, monkeypatch):
    """``MOLLI_DATA`` set to an empty folder for this test only (the digits come with scikit-learn, the
    classifier with the package)."""
    root = tmp_path / "molli-data"
    monkeypatch.setenv("MOLLI_DATA", str(root))
    return root
