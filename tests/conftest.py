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
