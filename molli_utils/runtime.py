"""Where and how a chapter runs: device, quick/full profile, Colab detection.

Nothing here is global state: every function reads its inputs (arguments,
then environment variables) and returns a value for the caller to pass on.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path
from typing import Iterable

import torch

__all__ = ["PROFILES", "get_profile", "pick_device", "on_colab", "colab_install_spec", "results_source", "data_root", "git_commit", "append_csv_rows"]

PROFILES = ("quick", "full")

#: Where the book's package lives; the Colab set-up cell installs from here.
REPOSITORY = "https://github.com/molli-book/molli-book"


def get_profile(default: str = "full", *, env: str = "MOLLI_PROFILE") -> str:
    """Run profile: ``quick`` (CI, CPU: fewer steps, same pictures) or ``full`` (paper settings).

    The environment variable ``MOLLI_PROFILE`` overrides ``default``
    (``make test`` sets it to ``quick``).
    """
    profile = os.environ.get(env, "").strip().lower() or default
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r} (from ${env} or default); choose one of {list(PROFILES)}")
    return profile


def pick_device(device: str | torch.device | None = None, *, env: str = "MOLLI_DEVICE") -> torch.device:
    """The device to run on: ``device`` if given, else ``$MOLLI_DEVICE``, else CUDA, MPS or CPU.

    Asking for a device that is not available raises a ``ValueError`` that
    says how to get one (e.g. Colab: Runtime > Change runtime type > GPU).
    """
    choice = device if device is not None else (os.environ.get(env) or None)
    if choice is None:
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(choice)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"unknown device {choice!r}; use 'cpu', 'cuda', 'cuda:0' or 'mps'") from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device {choice!r} was requested but no CUDA GPU is visible; on Colab choose "
            "Runtime > Change runtime type > GPU, or unset MOLLI_DEVICE to run on the CPU"
        )
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError(f"device {choice!r} was requested but MPS is not available; use 'cpu'")
    return dev


def on_colab() -> bool:
    """True inside a Google Colab runtime."""
    return "google.colab" in sys.modules


def colab_install_spec(version: str | None = None) -> str:
    """The pip requirement that installs this version of ``molli_utils`` from the book's repository."""
    from . import __version__

    return f"molli-utils @ git+{REPOSITORY}@v{version or __version__}"


def results_source(name: str, folder: str | os.PathLike = "results", version: str | None = None) -> str:
    """Where a chapter reads the stored results file ``name`` (e.g. ``"uci.csv"``) from.

    ``folder/name`` when it exists (the book's build runs in ``book/``, next to
    ``book/results``); otherwise, e.g. on Colab where a notebook arrives alone, the
    same file of this version in the book's repository, as a URL that ``pandas.read_csv``
    opens directly.
    """
    from . import __version__

    local = os.path.join(os.fspath(folder), name)
    if os.path.exists(local):
        return local
    slug = REPOSITORY.removeprefix("https://github.com/")
    return f"https://raw.githubusercontent.com/{slug}/v{version or __version__}/book/results/{name}"


def data_root(kind: str, root: str | os.PathLike | None = None) -> Path:
    """Folder for data of ``kind`` (``"uci"``, ``"images"``, ``"fid"``): ``root`` if given,
    else ``$MOLLI_DATA/kind``, else ``$XDG_CACHE_HOME/molli_utils/kind`` (default ``~/.cache/...``)."""
    if root is not None:
        return Path(root).expanduser()
    if os.environ.get("MOLLI_DATA"):
        return Path(os.environ["MOLLI_DATA"]).expanduser() / kind
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "molli_utils" / kind


def git_commit(root: str | os.PathLike | None = None) -> str:
    """The current commit of the checkout (short hash) holding ``root`` (default: this package), or ``unknown``."""
    root = Path(__file__).resolve().parents[1] if root is None else root
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def append_csv_rows(path: str | os.PathLike, rows: Iterable[dict], columns: list[str]) -> Path:
    """Append ``rows`` (dicts; keys outside ``columns`` are ignored) to the CSV ``path``, writing the header if new."""
    path = Path(path)
    new = not path.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        if new:
            writer.writeheader()
        writer.writerows(rows)
    return path
