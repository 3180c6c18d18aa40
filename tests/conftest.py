import os

import pytest
import torch

# tests never show progress bars (the book's build does not either): see molli_utils.training.show_progress
os.environ.setdefault("MOLLI_PROGRESS", "0")


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models: one torch thread is fastest, and much faster than two on a loaded 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def digits_classifier_root(tmp_path_factory):
    """A data folder holding the digits classifier, trained once per test session (~15 s of CPU).

    ``MOLLI_DATA`` points at it only while the classifier trains: a session-wide change would hide
    ``../shared/data`` from every later test (the UCI notebooks among them). Tests that need it take
    the function-scoped ``digits_root`` (tests/image_helpers.py).
    """
    from molli_utils import fid

    root = tmp_path_factory.getbasetemp() / "molli-data-digits"
    old = os.environ.get("MOLLI_DATA")
    os.environ["MOLLI_DATA"] = str(root)
    try:
        fid.digits_classifier(log=lambda s: None)
    finally:
        if old is None:
            os.environ.pop("MOLLI_DATA", None)
        else:
            os.environ["MOLLI_DATA"] = old
    return root
