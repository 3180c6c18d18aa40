"""Shared by the image tests: the digits classifier, trained once per test session into a private data folder."""

import os

import pytest

from molli_utils import fid


@pytest.fixture(scope="session")
def digits_root(tmp_path_factory):
    """A ``MOLLI_DATA`` folder holding the cached digits classifier (trained once per session, ~15 s of CPU)."""
    root = tmp_path_factory.getbasetemp() / "molli-data-digits"
    old = os.environ.get("MOLLI_DATA")
    os.environ["MOLLI_DATA"] = str(root)
    try:
        fid.digits_classifier(log=lambda s: None)
        yield root
    finally:
        if old is None:
            os.environ.pop("MOLLI_DATA", None)
        else:
            os.environ["MOLLI_DATA"] = old
