"""Where and how a chapter runs: device, run profile, Colab detection, the checkout's commit.

Nothing here is global state: every function reads its inputs (arguments,
then environment variables) and returns a value for the caller to pass on.
What each profile *means* for each experiment is in :mod:`molli_utils.experiments.settings`.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator, Optional

import torch

from ._version import __version__

__all__ = [
    "PROFILES",
    "REPOSITORY",
    "MATMULS",
    "get_profile",
    "pick_device",
    "check_device",
    "matmul_precision",
    "bf16_matmul_supported",
    "on_colab",
    "release_tag",
    "colab_install_spec",
    "colab_setup_cell",
    "data_root",
    "new_folders",
    "git_commit",
    "git_dirty",
]

#: ``quick``: CI and laptops, minutes; ``colab``: one free Colab session on a T4; ``full``: the paper's settings.
PROFILES = ("quick", "colab", "full")

#: Where the book's package lives; the Colab set-up cell installs from here. A setting until the project is
#: published: _config.yml's repository.url and pyproject's [project.urls] must equal it (tests/test_project.py).
REPOSITORY = "https://github.com/molli-book/molli-book"


def get_profile(default: Optional[str] = None, *, env: str = "MOLLI_PROFILE") -> str:
    """Run profile: ``quick`` (CI, CPU: fewer steps, same pictures), ``colab`` (one free Colab session on a T4)
    or ``full`` (the paper's settings).

    The environment variable ``MOLLI_PROFILE`` overrides ``default`` (``make test`` sets it to
    ``quick``); without either, the profile is ``colab`` inside Google Colab and ``full`` elsewhere.
    """
    profile = os.environ.get(env, "").strip().lower() or default or ("colab" if on_colab() else "full")
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r} (from ${env} or default); choose one of {list(PROFILES)}")
    return profile


#: The arithmetic of float32 matrix products: ``fp32`` in full (PyTorch's default), or ``bf16``: inputs rounded to
#: bfloat16 (8 significant bits), float32 accumulation and output (``torch.set_float32_matmul_precision("medium")``).
MATMULS = ("fp32", "bf16")
_PRECISION = {"fp32": "highest", "bf16": "medium"}


def bf16_matmul_supported(device: str | torch.device = "cpu") -> bool:
    """Whether ``bf16`` products on ``device`` really round their inputs to bfloat16: measured by
    :func:`molli_utils.arithmetic.bf16_products`, not read from CPU flags (a CPU with AVX512-BF16 but no AMX
    may keep float32, or run another float32 kernel that changes only the last bits; a GPU may use TF32)."""
    from .arithmetic import bf16_products

    return bf16_products(device)


@contextlib.contextmanager
def matmul_precision(matmul: str, device: str | torch.device = "cpu") -> Iterator[None]:
    """Run the block with float32 matrix products in ``matmul`` arithmetic (:data:`MATMULS`), then restore
    the previous setting (``torch.set_float32_matmul_precision`` is process-wide).

    ``bf16`` on a CPU with AMX (Intel Xeon since Sapphire Rapids) runs a 100 x 512 x 512 product about 2.8x
    faster than float32. Asking for it where the setting does not round the products' inputs to bfloat16
    (:func:`bf16_matmul_supported`: most CPUs without AMX, GPUs that use TF32 instead) raises a ``ValueError``:
    PyTorch would quietly compute in (nearly) float32, and the run would be recorded as what it is not.
    """
    if matmul not in MATMULS:
        raise ValueError(f"unknown matmul {matmul!r}; choose one of {list(MATMULS)}")
    if matmul == "bf16" and not bf16_matmul_supported(device):
        raise ValueError(
            f"matmul='bf16' needs a device whose 'medium' float32 products round their inputs to "
            f"bfloat16 (a CPU with AMX); on this {torch.device(device).type} they do not (measured), "
            "so use matmul='fp32'"
        )
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision(_PRECISION[matmul])
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(previous)


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
    return check_device(choice)


def check_device(choice: str | torch.device) -> torch.device:
    """``choice`` as a ``torch.device``, if this machine has it; else a ``ValueError`` that says what to use.

    Refused: an unknown name, CUDA without a visible GPU, a CUDA index beyond the visible GPUs
    (``"cuda:7"`` on a machine with one), MPS where it is not available.
    """
    try:
        dev = torch.device(choice)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"unknown device {choice!r}; use 'cpu', 'cuda', 'cuda:0' or 'mps'") from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device {choice!r} was requested but no CUDA GPU is visible; on Colab choose "
            "Runtime > Change runtime type > GPU, or unset MOLLI_DEVICE to run on the CPU"
        )
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        raise ValueError(
            f"device {choice!r} was requested but this machine has {count} visible CUDA GPU(s) "
            f"(cuda:0 to cuda:{count - 1}); use one of them, or 'cuda' for the first"
        )
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError(f"device {choice!r} was requested but MPS is not available; use 'cpu'")
    return dev


def on_colab() -> bool:
    """True inside a Google Colab runtime."""
    return "google.colab" in sys.modules


def release_tag(version: str | None = None) -> str:
    """The git tag of a release, ``v<version>`` (default: this package's ``__version__``, the one source of truth).

    The Colab set-up cell installs this tag and the book's launch buttons open it (``_config.yml``'s
    ``repository.branch``); see RELEASING.md.
    """
    return f"v{version or __version__}"


def colab_install_spec(version: str | None = None) -> str:
    """The pip requirement that installs this version of ``molli_utils`` from the book's repository."""
    return f"molli-utils @ git+{REPOSITORY}@{release_tag(version)}"


#: The environment variable that replaces the requirement the set-up cell installs (e.g. a local mirror in CI).
INSTALL_SPEC_ENV = "MOLLI_INSTALL_SPEC"

_SETUP_CELL = """# Colab set-up: on Colab, install molli_utils at this book's release
# (and only what Colab lacks: torch is never re-installed). Elsewhere
# this cell does nothing: `make book` / `make test` installed it.
import os, subprocess, sys

if "google.colab" in sys.modules:
    REPO, TAG = "{repository}", "{tag}"
    SPEC = os.environ.get("{env}")
    SPEC = SPEC or f"molli-utils @ git+{{REPO}}@{{TAG}}"
    pip = [sys.executable, "-m", "pip", "install", "--quiet", SPEC]
    try:
        subprocess.run(pip, check=True)
        import molli_utils
    except (subprocess.CalledProcessError, ImportError) as err:
        raise RuntimeError(
            f"installing molli_utils from {{SPEC!r}} failed ({{err}}). "
            "Check the network and that the repository and tag exist "
            "(pip's message is above), or set {env} to "
            "another requirement, then run this cell again.") from None"""


def colab_setup_cell(version: str | None = None) -> str:
    """The first code cell of every chapter: installs this version on Colab and stops with a clear error if it fails.

    It installs :func:`colab_install_spec` with a subprocess that raises on failure (IPython's ``%pip``
    does not), then imports the package; ``$MOLLI_INSTALL_SPEC`` replaces the requirement (CI points it
    at a local git mirror). Its lines fit the book's text column (at most 72 characters).
    """
    return _SETUP_CELL.format(env=INSTALL_SPEC_ENV, repository=REPOSITORY, tag=release_tag(version))


@contextlib.contextmanager
def new_folders(folder: str | os.PathLike) -> Iterator[Path]:
    """Create ``folder`` (and its missing parents) for the block; if the block raises, remove again the folders it
    created that are empty by then (a failed download leaves no empty data folder behind), then re-raise."""
    folder = Path(folder)
    created = []
    for parent in [folder, *folder.parents]:
        if parent.exists():
            break
        created.append(parent)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        yield folder
    except BaseException:
        for made in created:  # deepest first
            try:
                made.rmdir()
            except OSError:  # not empty (something else was put there meanwhile), or gone
                break
        raise


def data_root(kind: str, root: str | os.PathLike | None = None) -> Path:
    """Folder for data of ``kind`` (``"uci"``, ``"images"``, ``"fid"``): ``root`` if given,
    else ``$MOLLI_DATA/kind``, else ``$XDG_CACHE_HOME/molli_utils/kind`` (default ``~/.cache/...``)."""
    if root is not None:
        return Path(root).expanduser()
    if os.environ.get("MOLLI_DATA"):
        return Path(os.environ["MOLLI_DATA"]).expanduser() / kind
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "molli_utils" / kind


def _git(args: list[str], root: Path) -> Optional[str]:
    if "site-packages" in root.parts:  # an installed package: not the checkout it was built from
        return None
    try:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None


def _checkout(root: str | os.PathLike | None) -> Path:
    return Path(__file__).resolve().parents[1] if root is None else Path(root)


def git_commit(root: str | os.PathLike | None = None) -> str:
    """The current commit of the checkout (short hash) holding ``root`` (default: this package), or ``unknown``."""
    out = _git(["rev-parse", "--short", "HEAD"], _checkout(root))
    return out.strip() if out else "unknown"


def git_dirty(
    root: str | os.PathLike | None = None, ignore: tuple[str, ...] = ("molli_utils/results",)
) -> Optional[bool]:
    """Whether tracked files of the checkout differ from its commit (``None`` outside a git checkout).

    Paths under ``ignore`` do not count: the stored results that a running command appends to.
    """
    root = _checkout(root)
    top = _git(["rev-parse", "--show-toplevel"], root)
    if top is None:
        return None
    specs = [f":(exclude){p}" for p in ignore]
    out = _git(["status", "--porcelain", "--untracked-files=no", "--", ".", *specs], Path(top.strip()))
    return None if out is None else bool(out.strip())
