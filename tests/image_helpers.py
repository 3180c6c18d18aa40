"""Shared by the image tests: the digits classifier's data folder as ``MOLLI_DATA``, for one test at a time."""

import pytest


@pytest.fixture
def digits_root(digits_classifier_root, monkeypatch):
    """``MOLLI_DATA`` set to the folder with the cached digits classifier (see conftest.py) for this test only."""
    monkeypatch.setenv("MOLLI_DATA", str(digits_classifier_root))
    return digits_classifier_root
