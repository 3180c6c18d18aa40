"""Colab's versions of what the book's install touches: ``tools/colab/constraints.txt``, made from Colab's pip freeze.

Colab publishes its runtime's packages in https://github.com/googlecolab/backend-info (``pip-freeze.gpu.txt``,
``os-info-gpu.txt``). The whole freeze cannot be installed from PyPI (direct URLs, ``+cu128`` builds from
download.pytorch.org), and most of it is irrelevant here, so this keeps the packages that installing
``molli-utils`` the way the Colab set-up cell does (no extras: :data:`molli_utils.runtime.colab_setup_cell`) and
the Colab simulation's kernel (``tests/test_colab.py``: ipykernel, ipython, nbclient, nbformat) touch, each pinned
``==`` at Colab's version:

1. every freeze line ``name==version`` is a pin; direct URLs (``name @ url``) are dropped and local labels
   stripped (``torch==2.11.0+cu128`` -> ``torch==2.11.0``: still satisfied by Colab's build, and on PyPI);
2. Colab's pip (the freeze's version, in a throwaway venv of Colab's Python) resolves the package's requirements
   plus the kernel's with those pins as constraints, as if nothing were installed (``--dry-run --ignore-installed
   --report``); torch's CUDA libraries (:data:`UNPINNED`) stay unconstrained: Colab's come with its cu128 torch
   from download.pytorch.org, PyPI's torch of the same version is another CUDA build;
3. the file keeps the resolved packages at Colab's versions; its header names the source commit, Colab's Python
   and pip, the packages the install adds (Colab lacks them) and the ones left unpinned.

Regenerate (``git -C backend-info log -1 --format='%H %ci'`` gives the commit and its date)::

    git -C backend-info show HEAD:pip-freeze.gpu.txt > /tmp/freeze.txt
    git -C backend-info show HEAD:os-info-gpu.txt > /tmp/os-info.txt
    python -m tools.colab_constraints make /tmp/freeze.txt --os-info /tmp/os-info.txt \\
        --commit <hash> --date '<commit date>' -o tools/colab/constraints.txt

It needs PyPI and Colab's Python (found on PATH or under pyenv, or ``--python``); a run takes a minute or two
(pip downloads the wheels it resolves, torch's included, as PyPI's mirror here serves no separate metadata).

``python -m tools.colab_constraints check`` is the cheap test of the file (``tests/test_colab_constraints.py``):
Colab's pip, in a venv whose installed packages are stand-ins at the pinned versions (metadata only), plans the
install of the package's requirements (``--dry-run --report``, nothing downloaded but metadata) and must plan to
install only packages Colab lacks, replacing none.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path
from typing import Iterable, Optional

ROOT = Path(__file__).resolve().parents[1]
CONSTRAINTS = ROOT / "tools" / "colab" / "constraints.txt"
SOURCE = "https://github.com/googlecolab/backend-info"
#: What the Colab simulation's kernel needs besides the package (Colab ships all four), and Colab's pip itself.
KERNEL = ["ipykernel", "ipython", "nbclient", "nbformat"]
TOOLS = ["pip"]
#: torch's CUDA libraries: Colab's match its 2.11.0+cu128 build, PyPI's torch 2.11.0 requires CUDA 13 ones.
UNPINNED = r"^(nvidia-.*|cuda-.*)$"
#: Header keys, in order (``# key: value`` lines that :func:`read` parses back).
KEYS = ("source", "commit", "date", "python", "pip", "roots", "adds", "unpinned", "dropped", "made")


def canonical(name: str) -> str:
    """PEP 503 name: lower case, runs of ``-_.`` as one ``-``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_freeze(text: str) -> tuple[dict[str, tuple[str, str]], list[str]]:
    """``pip freeze`` text -> ({canonical name: (name, public version)}, [dropped names]).

    Direct references (``name @ url``: the name; ``-e ...``: the line) are dropped; a local label (``+cu128``) is
    stripped.
    """
    pins: dict[str, tuple[str, str]] = {}
    dropped: list[str] = []
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-e ") or " @ " in line or "==" not in line:
            dropped.append(line.split(" @ ", 1)[0] if " @ " in line else line)
            continue
        name, version = (part.strip() for part in line.split("==", 1))
        pins[canonical(name)] = (name, version.split("+", 1)[0])
    return pins, dropped


def python_version(os_info: str) -> str:
    """Colab's Python version from ``os-info-gpu.txt`` (its ``Python 3.x.y`` line)."""
    found = re.search(r"^Python (\d+\.\d+\.\d+)", os_info, re.M)
    if not found:
        raise ValueError("no 'Python x.y.z' line in the os-info text")
    return found.group(1)


def requirements(pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    """The package's own requirements (no extras), as the Colab set-up cell installs it."""
    return list(tomllib.loads(pyproject.read_text())["project"]["dependencies"])


def find_python(version: str) -> Optional[str]:
    """An interpreter of ``version``'s major.minor: ``$MOLLI_COLAB_PYTHON``, ``python3.x`` on PATH, or pyenv's newest."""
    minor = ".".join(version.split(".")[:2])
    candidates = [os.environ.get("MOLLI_COLAB_PYTHON", "")]
    candidates += [os.path.join(d, f"python{minor}") for d in os.environ.get("PATH", "").split(os.pathsep) if d]
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    installed = {
        int(p.parent.parent.name.rsplit(".", 1)[1]): p
        for p in pyenv.glob(f"{minor}.*/bin/python")
        if p.parent.parent.name.rsplit(".", 1)[1].isdigit()
    }
    candidates += [str(installed[patch]) for patch in sorted(installed, reverse=True)]
    for candidate in filter(None, candidates):
        if os.access(candidate, os.X_OK):
            out = subprocess.run(
                [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], capture_output=True, text=True
            )
            if out.returncode == 0 and out.stdout.strip() == minor:
                return candidate
    return None


def _run(args: list, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", **kwargs.pop("env", {})}
    env.pop("PIP_CONSTRAINT", None)
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, env=env, **kwargs)
    if done.returncode:
        command = " ".join(map(str, args))
        raise RuntimeError(f"{command} failed ({done.returncode}):\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    return done


def pip_venv(python: str, pip_version: str, dest: Path) -> Path:
    """A throwaway venv of ``python`` whose pip is ``pip_version``; returns its interpreter."""
    _run([python, "-m", "venv", dest])
    exe = dest / "bin" / "python"
    _run([exe, "-m", "pip", "install", "--quiet", f"pip=={pip_version}"])
    found = _run([exe, "-m", "pip", "--version"]).stdout.split()[1]
    if found != pip_version:
        raise RuntimeError(f"the throwaway venv has pip {found}, not {pip_version}")
    return exe


def report_installs(report: dict) -> dict[str, tuple[str, str]]:
    """pip's ``--report`` JSON -> {canonical name: (name, version)} of what it would install."""
    return {
        canonical(item["metadata"]["name"]): (item["metadata"]["name"], item["metadata"]["version"])
        for item in report.get("install", [])
    }


def resolve(
    python_exe: Path, roots: list[str], pins: dict[str, tuple[str, str]], work: Path
) -> dict[str, tuple[str, str]]:
    """What pip resolves for ``roots`` with ``pins`` as constraints, ignoring what is installed."""
    constraints = work / "pins.txt"
    constraints.write_text("".join(f"{name}=={version}\n" for name, version in pins.values()))
    report = work / "report.json"
    _run(
        [
            python_exe,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--dry-run",
            "--ignore-installed",
            "--report",
            report,
            "-c",
            constraints,
            *roots,
        ]
    )
    return report_installs(json.loads(report.read_text()))


def select(
    pins: dict[str, tuple[str, str]], resolved: dict[str, tuple[str, str]], unpinned: str = UNPINNED
) -> tuple[dict[str, tuple[str, str]], list[str], list[str]]:
    """Split a resolution: (kept pins, at Colab's version), [added: Colab lacks them], [left unpinned]."""
    keep, adds, loose = {}, [], []
    for key, (name, version) in resolved.items():
        if key in pins and pins[key][1] == version and not re.match(unpinned, key):
            keep[key] = pins[key]
        elif key in pins or re.match(unpinned, key):
            loose.append(key)
        else:
            adds.append(key)
    return dict(sorted(keep.items())), sorted(adds), sorted(loose)


def render(keep: dict[str, tuple[str, str]], header: dict[str, str]) -> str:
    """The constraints file: a comment header (``# key: value`` for :data:`KEYS`, wrapped notes) and sorted pins."""
    lines = [
        "# Colab's versions of the packages that installing molli-utils (as the Colab set-up cell does) and the",
        "# Colab simulation's kernel touch: pip constraints, or requirements for a Colab-like environment.",
        "# Generated by tools/colab_constraints.py (its docstring says how); do not edit by hand.",
        "# torch/torchvision: Colab's are +cu128 builds from download.pytorch.org; these pins take the same",
        "# versions from PyPI (CUDA 13 builds: torch's CUDA libraries are the 'unpinned' below). Python 3.11",
        "# has no such torch here; tests/test_colab.py runs on Colab's Python (pyenv) with PyPI's torch.",
    ]
    lines += [f"# {key}: {header[key]}" for key in KEYS if key in header]
    lines += [f"{name}=={version}" for name, version in keep.values()]
    return "\n".join(lines) + "\n"


def read(path: Path = CONSTRAINTS) -> tuple[dict[str, str], dict[str, tuple[str, str]]]:
    """A constraints file -> (header {key: value}, pins {canonical name: (name, version)})."""
    text = path.read_text()
    header = {}
    for line in text.splitlines():
        found = re.match(r"# (\w+): (.*)$", line)
        if found and found.group(1) in KEYS:
            header[found.group(1)] = found.group(2).strip()
    pins, dropped = parse_freeze(text)
    if dropped:
        raise ValueError(f"{path}: lines that are not name==version pins: {dropped}")
    return header, pins


def listed(header: dict[str, str], key: str) -> list[str]:
    """A header list (space-separated names; ``-`` for none)."""
    value = header.get(key, "-").split("(", 1)[0].strip()
    return [] if value in ("", "-") else value.split()


def stand_ins(site_packages: Path, pins: dict[str, tuple[str, str]], skip: Iterable[str] = ("pip",)) -> None:
    """Metadata-only installed distributions at the pinned versions: what pip sees of a Colab environment."""
    for key, (name, version) in pins.items():
        if key in skip:
            continue
        info = site_packages / f"{re.sub(r'[-_.]+', '_', name)}-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        (info / "INSTALLER").write_text("colab-stand-in\n")
        (info / "RECORD").write_text("")


def plan(
    python_exe: Path, roots: list[str], pins: dict[str, tuple[str, str]], work: Path
) -> dict[str, tuple[str, str]]:
    """What Colab's pip would install for ``roots`` in a venv (``python_exe``) holding stand-ins of ``pins``."""
    site = Path(_run([python_exe, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]).stdout.strip())
    stand_ins(site, pins)
    report = work / "plan.json"
    _run([python_exe, "-m", "pip", "install", "--quiet", "--dry-run", "--report", report, *roots])
    return report_installs(json.loads(report.read_text()))


def check(path: Path = CONSTRAINTS, python: Optional[str] = None) -> dict[str, tuple[str, str]]:
    """Raise if installing the package's requirements on Colab would replace a pinned package or add one that the
    header's ``adds`` does not name; return what the install adds."""
    header, pins = read(path)
    python = python or find_python(header["python"])
    if python is None:
        raise FileNotFoundError(
            f"no Python {header['python']} (Colab's) on PATH or under pyenv; set MOLLI_COLAB_PYTHON"
        )
    with tempfile.TemporaryDirectory(prefix="colab-check-") as tmp:
        exe = pip_venv(python, header["pip"], Path(tmp) / "venv")
        planned = plan(exe, requirements(), pins, Path(tmp))
    replaced = {k: f"{pins[k][1]} -> {v}" for k, (_, v) in planned.items() if k in pins}
    unexpected = sorted(set(planned) - set(listed(header, "adds")) - set(pins))
    if replaced or unexpected:
        raise AssertionError(
            f"on Colab the install would replace {replaced or 'nothing'} and add packages the "
            f"constraints file does not list as added: {unexpected or 'none'} "
            f"(re-run tools/colab_constraints.py make)"
        )
    return planned


def make(freeze: Path, os_info: Path, commit: str, date: str, python: Optional[str], out: Path) -> str:
    pins, dropped = parse_freeze(freeze.read_text())
    version = python_version(os_info.read_text())
    python = python or find_python(version)
    if python is None:
        raise SystemExit(f"no Python {version} (Colab's) found: pass --python")
    pip_version = pins["pip"][1]
    roots = requirements() + KERNEL + TOOLS
    with tempfile.TemporaryDirectory(prefix="colab-constraints-") as tmp:
        exe = pip_venv(python, pip_version, Path(tmp) / "venv")
        constraining = {k: v for k, v in pins.items() if not re.match(UNPINNED, k)}
        resolved = resolve(exe, roots, constraining, Path(tmp))
    keep, adds, loose = select(pins, resolved)
    for root in requirements() + KERNEL:  # every root that Colab ships resolved to Colab's version
        name = canonical(re.split(r"[\s<>=!~;\[]", root, maxsplit=1)[0])
        if name in pins and name not in keep:
            raise SystemExit(f"{name} is in Colab's freeze but did not resolve to its version")
    header = {
        "source": f"{SOURCE} pip-freeze.gpu.txt, os-info-gpu.txt (Colab's GPU runtime)",
        "commit": commit,
        "date": date,
        "python": version,
        "pip": pip_version,
        "roots": " ".join(roots),
        "adds": " ".join(adds) or "-",
        "unpinned": (" ".join(loose) or "-") + " (torch's CUDA libraries: resolved unconstrained, not Colab's)",
        "dropped": f"{len(dropped)} direct-URL lines of the freeze; local labels (+cu128) stripped",
        "made": f"python -m tools.colab_constraints make <freeze> --os-info <os-info> --commit <hash> --date <date> "
        f"(Python {version}, pip {pip_version})",
    }
    text = render(keep, header)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    return text


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    mk = sub.add_parser("make", help="write the constraints file from Colab's pip freeze")
    mk.add_argument("freeze", type=Path, help="pip-freeze.gpu.txt of googlecolab/backend-info")
    mk.add_argument("--os-info", type=Path, required=True, help="os-info-gpu.txt of the same commit")
    mk.add_argument("--commit", required=True, help="the backend-info commit (hash)")
    mk.add_argument("--date", required=True, help="its commit date")
    mk.add_argument("--python", help="Colab's Python (default: found on PATH or under pyenv)")
    mk.add_argument("-o", "--out", type=Path, default=CONSTRAINTS)
    ck = sub.add_parser("check", help="would the install on Colab replace a pinned package? (needs PyPI)")
    ck.add_argument("constraints", type=Path, nargs="?", default=CONSTRAINTS)
    ck.add_argument("--python", help="Colab's Python (default: found on PATH or under pyenv)")
    args = parser.parse_args(argv)
    if args.command == "make":
        text = make(args.freeze, args.os_info, args.commit, args.date, args.python, args.out)
        print(f"wrote {args.out}: {sum(1 for l in text.splitlines() if l and not l.startswith('#'))} pins")  # noqa: E741
    else:
        adds = check(args.constraints, args.python)
        print("the install adds " + ", ".join(f"{n}=={v}" for n, v in adds.values()) + "; it replaces nothing")
    return 0


if __name__ == "__main__":
    sys.exit(main())
