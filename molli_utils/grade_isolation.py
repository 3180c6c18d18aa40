"""How the grader isolates a submission's kernel: its limits (:class:`Limits`), bubblewrap where it works
(:func:`isolation`), the kernel's clean environment, the clean-up of every process it started, and the files a
submission must not change (:class:`Guard`: SHA-256 before and after, written back).

The kernel itself is started under :mod:`molli_utils.sandbox` by :mod:`molli_utils.grade`.
"""

from __future__ import annotations

import ast
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional, Sequence


@dataclass
class Limits:
    """Limits of one submission's kernel: ``wall`` seconds in all (both passes), ``cpu`` seconds of CPU time,
    ``memory_mib`` MiB of address space, ``nproc`` processes more than the user runs (not enforced for root),
    ``fsize_mib`` MiB per written file. The per-cell limit is ``timeout`` of :func:`grade_notebook`."""

    wall: float = 3600.0
    cpu: int = 4 * 3600
    memory_mib: int = 16384
    nproc: int = 256
    fsize_mib: int = 1024


# --------------------------------------------------------------------------- isolation

BWRAP_WORKS: dict[str, bool] = {}


def bwrap_works() -> bool:
    """Whether ``bwrap`` is on PATH and can make a read-only sandbox with its own PID and network namespaces here."""
    exe = shutil.which("bwrap")
    if exe is None:
        return False
    if exe not in BWRAP_WORKS:
        try:
            done = subprocess.run(
                [
                    exe,
                    "--ro-bind",
                    "/",
                    "/",
                    "--dev",
                    "/dev",
                    "--proc",
                    "/proc",
                    "--unshare-pid",
                    "--unshare-net",
                    "--die-with-parent",
                    "true",
                ],
                capture_output=True,
                timeout=30,
            )
            BWRAP_WORKS[exe] = done.returncode == 0
        except (OSError, subprocess.SubprocessError):
            BWRAP_WORKS[exe] = False
    return BWRAP_WORKS[exe]


def isolation(sandbox: str = "auto") -> str:
    """How submissions are isolated with ``sandbox`` (``auto``: bwrap where it works; ``bwrap``: required;
    ``none``): a sentence for the report. ``sandbox="bwrap"`` where bwrap does not work raises RuntimeError."""
    if sandbox not in ("auto", "bwrap", "none"):
        raise ValueError(f"sandbox={sandbox!r}: choose auto, bwrap or none")
    use = sandbox == "bwrap" or (sandbox == "auto" and bwrap_works())
    if sandbox == "bwrap" and not bwrap_works():
        raise RuntimeError(
            "--sandbox bwrap: bwrap (bubblewrap) is not on PATH or cannot create a sandbox here "
            "(apt-get install bubblewrap; in a container it may need user namespaces)"
        )
    if use:
        return (
            "bwrap: filesystem read-only except the submission's temporary folder; /tmp, HOME, the submissions' "
            "and the reference's folders hidden (but for the Python installation); own PID namespace; no network "
            "(the kernel talks over Unix sockets); limits and clean environment"
        )
    return (
        "no bwrap: process limits, clean environment, own session, temporary folder; the student's code "
        "can still read (and write) what your user can; changes to the checks and submissions are detected"
    )


def uses_bwrap(sandbox: str) -> bool:
    return sandbox == "bwrap" or (sandbox == "auto" and bwrap_works())


def python_paths() -> list[Path]:
    """The folders the kernel's Python needs to read: its prefixes, its executable's folder, its site-packages."""
    import site

    paths = [
        sys.prefix,
        sys.base_prefix,
        sys.exec_prefix,
        sys.base_exec_prefix,
        os.path.dirname(os.path.realpath(sys.executable)),
        *site.getsitepackages(),
    ]
    if site.ENABLE_USER_SITE and site.getusersitepackages():
        paths.append(site.getusersitepackages())
    return [Path(p).resolve() for p in dict.fromkeys(paths) if p and os.path.isdir(p)]


def hidden_paths(paths: Iterable[Path], keep: Iterable[Path]) -> list[tuple[str, list[str]]]:
    """Of ``paths``, the existing folders to hide (never ``/`` or one inside ``keep[0]``, the temporary folder),
    each with the folders of ``keep`` inside it (bound back read-only over the empty folder that hides it)."""
    keep = [Path(k).resolve() for k in keep]
    out: dict[str, list[str]] = {}
    for p in paths:
        p = Path(p).resolve()
        if not p.is_dir() or str(p) == "/" or p == keep[0] or p in keep[0].parents or keep[0] in p.parents:
            continue
        inside = [k for k in keep[1:] if k == p or p in k.parents]
        out[str(p)] = sorted({str(k) for k in inside if not any(o in k.parents for o in inside)})
    return [
        (h, inside) for h, inside in out.items() if not any(Path(o) in Path(h).parents for o in out) and h not in inside
    ]


def bwrap_prefix(work: Path, hide: Sequence[tuple[str, list[str]]], python: Sequence[Path] = ()) -> list[str]:
    """The bwrap command line that runs the kernel with ``work`` writable, its ``pkg`` read-only, each folder of
    ``hide`` empty but for the folders listed with it (read-only), and ``/tmp`` empty but for the folders of
    ``python`` (the Python installation, :func:`python_paths`) that lie in it (a virtual environment in
    ``/tmp``), bound back read-only."""
    cmd = [
        shutil.which("bwrap") or "bwrap",
        "--ro-bind",
        "/",
        "/",
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        "--tmpfs",
        "/tmp",
    ]
    tmp = Path("/tmp").resolve()
    inside = sorted({str(p) for p in map(Path, python) if tmp in p.parents and p != work and work not in p.parents})
    for p in inside:
        if not any(Path(o) in Path(p).parents for o in inside):
            cmd += ["--ro-bind", p, p]
    for folder, inside in hide:
        cmd += ["--tmpfs", folder]
        for k in inside:
            cmd += ["--ro-bind", k, k]
    cmd += [
        "--bind",
        str(work),
        str(work),
        "--ro-bind",
        str(work / "pkg"),
        str(work / "pkg"),
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-net",
        "--die-with-parent",
        "--new-session",
        "--unsetenv",
        "JPY_PARENT_PID",
        "--",
    ]  # ipykernel would exit: its parent is pid 1 there
    return cmd


def kernel_env(work: Path, profile: str, token: str) -> dict[str, str]:
    """The kernel's whole environment (see the module docstring)."""
    keep = ("LANG", "LC_ALL", "TZ", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "VIRTUAL_ENV")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env.update({k: v for k, v in os.environ.items() if k.startswith("MOLLI_")})
    env.update(
        {
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", os.defpath)]),
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            "HOME": str(work / "home"),
            "TMPDIR": str(work / "tmp"),
            "PYTHONPATH": str(work / "pkg"),
            "PYTHONNOUSERSITE": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
            "MOLLI_PROFILE": profile,
            "MPLBACKEND": "Agg",
            "MOLLI_GRADE_RUN": token,
        }
    )
    return env


def kill_leftovers(token: str, pgid: Optional[int]) -> int:
    """SIGKILL the kernel's process group and every process whose environment carries ``token``; how many."""
    killed = 0
    if pgid and pgid != os.getpgrp():
        try:
            os.killpg(pgid, signal.SIGKILL)
            killed += 1
        except OSError:
            pass
    needle = f"MOLLI_GRADE_RUN={token}".encode()
    for _ in range(3):
        found = 0
        for name in os.listdir("/proc") if os.path.isdir("/proc") else []:
            if not name.isdigit() or int(name) == os.getpid():
                continue
            try:
                with open(f"/proc/{name}/environ", "rb") as f:
                    if needle not in f.read():
                        continue
                os.kill(int(name), signal.SIGKILL)
                found += 1
            except OSError:
                continue
        killed += found
        if not found:
            break
        time.sleep(0.05)
    return killed


# --------------------------------------------------------------------------- the package and the guarded files


def package_snapshot(package_dir: Path) -> dict[str, bytes]:
    """Every file of the package in ``package_dir`` (relative path -> bytes), bytecode caches left out."""
    return {
        p.relative_to(package_dir).as_posix(): p.read_bytes()
        for p in sorted(package_dir.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    }


def check_modules(files: dict[str, bytes]) -> list[str]:
    """``checks.py`` and every module of the package it imports, directly or not (relative imports, anywhere)."""
    todo, seen = ["checks.py"], []
    while todo:
        rel = todo.pop()
        if rel in seen or rel not in files:
            continue
        seen.append(rel)
        parts = rel.split("/")[:-1]
        try:
            tree = ast.parse(files[rel])
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom) or node.level == 0:
                continue
            base = parts[: len(parts) - (node.level - 1)] if node.level > 1 else parts
            mods = [node.module.split(".")] if node.module else [[a.name] for a in node.names]
            for mod in mods:
                for k in range(1, len(mod) + 1):
                    todo.append("/".join(base + mod[:k] + ["__init__.py"]))
                todo.append("/".join(base + mod) + ".py")
            for k in range(1, len(base) + 1):
                todo.append("/".join(base[:k] + ["__init__.py"]))
    return sorted(seen)


def sha256_of(data: Optional[bytes]) -> str:
    return "" if data is None else hashlib.sha256(data).hexdigest()


def read_bytes_or_none(path: Path) -> Optional[bytes]:
    try:
        return path.read_bytes()
    except OSError:
        return None


class Guard:
    """Files a submission must not change: their bytes at the start (``saved``, what :meth:`restore` writes back) and
    as the last submission left them (what :meth:`changed` compares with, so that a change is blamed once)."""

    def __init__(self, paths: Iterable[Path], restore: Iterable[Path] = ()):
        self.saved = {Path(p): read_bytes_or_none(Path(p)) for p in paths}
        self.last = dict(self.saved)
        self.restorable = {Path(p) for p in restore}

    def changed(self) -> list[Path]:
        """The files that differ from what the last submission left (and from now on, that is the baseline)."""
        now = {p: read_bytes_or_none(p) for p in self.last}
        out = [p for p, data in now.items() if sha256_of(data) != sha256_of(self.last[p])]
        self.last.update(now)
        return out

    def restore(self, paths: Iterable[Path]) -> list[Path]:
        """Write back those of ``paths`` that may be restored (the submissions, the files beside them, the
        references: never the package's modules); return them."""
        done = []
        for p in paths:
            if p in self.restorable and self.saved.get(p) is not None:
                try:
                    p.parent.mkdir(parents=True, exist_ok=True)
                    p.write_bytes(self.saved[p])
                    self.last[p] = self.saved[p]
                    done.append(p)
                except OSError:
                    pass
        return done
