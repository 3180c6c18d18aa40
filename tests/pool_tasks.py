"""Tasks for tests/test_interrupts.py's worker pool (a module, so that spawned workers can import them)."""

import os
import time
from pathlib import Path


def task(name: str, folder: str) -> dict:
    """``fast`` returns a row at once; any other name records its pid and sleeps for a minute."""
    if name != "fast":
        (Path(folder) / f"{name}.pid").write_text(str(os.getpid()))
        time.sleep(60)
    return {"chapter": name, "profile": "quick", "kind": "test", "seconds": 0.0}
