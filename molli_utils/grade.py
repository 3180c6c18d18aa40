"""Grade submitted assignment notebooks from check records that only the grader can produce.

    python -m molli_utils.grade SUBMISSION.ipynb [SUBMISSION.ipynb ...] [--reference book/assignments]
                                [--profile quick] [--json report.json] [--executed DIR]
                                [--timeout S] [--wall S] [--cpu S] [--memory MIB] [--sandbox auto|bwrap|none]

Each submission is executed top to bottom, **with errors allowed** (a failing cell does not stop the later
ones), after its saved outputs are cleared (nothing saved in the file counts), and under these rules:

* **isolated**: a fresh temporary folder per submission holds a copy of its file only (never its original
  folder), a copy of ``molli_utils`` that the kernel imports, and the kernel's ``HOME``; the kernel starts
  with a cleaned environment (``PATH``, ``LANG``, ``HOME`` and ``TMPDIR`` in the temporary folder, the
  copy on ``PYTHONPATH``, ``MOLLI_PROFILE``, the grader's other ``MOLLI_*`` variables, thread counts),
  under :mod:`molli_utils.sandbox`: its own session, limits on wall time (``--wall``), CPU time (``--cpu``),
  memory (``--memory``) and processes, every process it started killed at the end. Where ``bwrap``
  (bubblewrap) works, the kernel runs under it: the whole filesystem read-only except the temporary folder,
  the package copy read-only too, ``/tmp``, the submissions' and the reference's folders and ``HOME``
  hidden, its own PID namespace, no network (the kernel's channels are Unix sockets in the temporary folder).
  :func:`isolation` says which applies;
* **checks restored**: with ``--reference``, every code cell of the instructor notebook that calls a check
  (and is not a ``solution`` cell) is put back over the submission's cell of the same id (or, without ids,
  the cell that calls the same checks), as nbgrader does;
* **verdicts from the grader's process**: after the submission's cells, the grader's own cells re-run each cell
  that calls a check with every check replaced by a recorder that keeps the call's arguments
  (:mod:`molli_utils.grade_kernel`); then the grader runs each recorded check **in its own process**, from its
  own :mod:`molli_utils.checks`, the student's functions reached in the kernel through proxies that send and
  receive data only (tensors, numbers, text, lists, dicts; read with ``torch.load(weights_only=True)``, at most
  64 MiB each, :mod:`molli_utils.grade_calls`). The student's code never runs in the grader's process: it
  cannot patch a check or its reference, nor forge a verdict; records the submission displays are ignored;
* **tampering**: the SHA-256 of the package copy, of the checks' modules in the checkout, of every
  submission, of the other notebooks in the submissions' folders and of the reference notebooks is compared
  before and after each submission; a change makes the submission ``tampered`` (not graded, every check
  failed); all but the checkout's modules are written back, later submissions use the grader's copy of the
  package, and every submission is graded from the bytes read at the start of the batch.

The report gives, per check:

* ``passed``: every verified call of the check passed;
* ``failed``: a call failed (the check's message), the cell that calls the check stopped with an error
  of the student's code before the check ran, or the check could not be verified (the kernel died);
* ``not attempted``: the student's code raised ``NotImplementedError`` (an unfinished exercise), or the
  check never ran (the submission no longer calls it, or execution stopped before).

The checks to expect are those the submission's code calls; with ``--reference`` (an instructor notebook,
or a folder of them: the one sharing the most checks with the submission is used), those the instructor
version calls, so that a deleted check cell counts as not attempted. A submission with no check to expect
(``0 of 0``) is an error, as is a file that is not a notebook (``not gradable: ...``); the batch goes on.
Written answers are graded by hand; the report counts those left as the empty answer box.

What remains (see book/instructors.md): a check judges what the student's functions return; code written to
return the right values in the grader's calls (the reference implementation called, the checks' inputs
recognised) passes, so read the code too; without ``bwrap`` the kernel can read what the instructor's user can.
Needs nbclient, nbformat and ipykernel (``pip install "molli-utils[teach]"``).
"""

from __future__ import annotations

import argparse
import ast
import base64
import copy
import hashlib
import inspect
import io
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

import torch

from .assignments import ANSWER_CELL, SOLUTION_TAG
from . import grade_calls, grade_kernel
from .checks import CHECKS, RECORD_MIME

__all__ = [
    "CheckResult",
    "Report",
    "Limits",
    "NotGradable",
    "grade_notebook",
    "grade",
    "expected_checks",
    "records",
    "restore_check_cells",
    "read_notebook",
    "isolation",
    "format_report",
    "main",
]

_CHECK_CALL = re.compile(r"\b(check_\w+)\s*\(")
_PACKAGE_DIR = Path(__file__).resolve().parent


@dataclass
class CheckResult:
    """The verdict on one check: ``status`` (``passed``, ``failed``, ``not attempted``), why, and how often it ran."""

    check: str
    status: str
    message: str = ""
    calls: int = 0


@dataclass
class Report:
    """The grading of one submission: a :class:`CheckResult` per expected check, the errors of its cells
    (``{"cell", "ename", "evalue"}``, cells counted from 1), the written answers left empty, and how it ran:
    ``stopped`` says why it was not executed to the end or not graded (``not gradable: ...``, a timeout, a
    dead kernel, ``tampered: ...``, no checks), else ``""``; ``restored`` the cells put back from the
    reference; ``tampered`` the files it changed outside its copy; ``isolation`` how it was isolated."""

    submission: str
    checks: list[CheckResult] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    empty_answers: int = 0
    profile: str = "quick"
    seconds: float = 0.0
    stopped: str = ""
    restored: list[int] = field(default_factory=list)
    tampered: list[str] = field(default_factory=list)
    isolation: str = ""

    @property
    def passed(self) -> int:
        """How many checks passed."""
        return sum(c.status == "passed" for c in self.checks)


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


class NotGradable(ValueError):
    """A submission that is not a notebook the grader can execute (the message says why)."""


def _nb_modules():
    """``nbformat`` and ``nbclient``, or an ImportError saying how to install what grading needs."""
    try:
        import ipykernel  # noqa: F401  (the kernel that runs the submissions)
        import nbclient
        import nbformat
    except ImportError as err:
        raise ImportError(
            f'the grading command needs nbclient, nbformat and ipykernel ({err}): pip install "molli-utils[teach]"'
        ) from err
    return nbformat, nbclient


# --------------------------------------------------------------------------- reading notebooks


def read_notebook(data: bytes | str) -> Any:
    """The notebook (nbformat 4) in ``data``, or :class:`NotGradable` saying what is wrong with it (not JSON,
    not an object, no list of cells, a cell that is not a cell...). Never raises anything else."""
    nbformat, _ = _nb_modules()
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError) as err:
        raise NotGradable(f"not a notebook: not JSON ({type(err).__name__}: {str(err)[:200]})") from None
    if not isinstance(obj, dict):
        raise NotGradable(f"not a notebook: the file holds a JSON {type(obj).__name__}, not an object")
    if not isinstance(obj.get("nbformat"), int):
        raise NotGradable("not a notebook: no 'nbformat' version number")
    if obj["nbformat"] < 4:
        raise NotGradable(f"not a notebook this grader reads: nbformat {obj['nbformat']} (save it with Jupyter 4+)")
    if not isinstance(obj.get("cells"), list):
        raise NotGradable(f"not a notebook: 'cells' is a {type(obj.get('cells')).__name__}, not a list of cells")
    if not isinstance(obj.get("metadata", {}), dict):
        raise NotGradable("not a notebook: its 'metadata' is not an object")
    for i, cell in enumerate(obj["cells"], 1):
        if not isinstance(cell, dict):
            raise NotGradable(f"not a notebook: cell {i} is a JSON {type(cell).__name__}, not an object")
        if cell.get("cell_type") not in ("code", "markdown", "raw"):
            raise NotGradable(f"not a notebook: cell {i} has cell_type {cell.get('cell_type')!r}")
        source = cell.get("source", "")
        if not (isinstance(source, str) or isinstance(source, list) and all(isinstance(s, str) for s in source)):
            raise NotGradable(f"not a notebook: the source of cell {i} is not text")
        if not isinstance(cell.get("metadata", {}), dict):
            raise NotGradable(f"not a notebook: the metadata of cell {i} is not an object")
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None  # never read; cleared before nbformat sees them
    try:
        return nbformat.reads(json.dumps(obj), as_version=4)
    except Exception as err:  # noqa: BLE001 - any failure of nbformat means the file cannot be graded
        raise NotGradable(f"not a notebook nbformat can read: {type(err).__name__}: {str(err)[:200]}") from None


def _code(nb: Any) -> list[tuple[int, str]]:
    """(position counting from 1, source) of every code cell."""
    return [(i + 1, c.source) for i, c in enumerate(nb.cells) if c.cell_type == "code"]


def _called(source: str) -> list[str]:
    """The checks of :mod:`molli_utils.checks` that ``source`` calls, in order of first call."""
    return [n for n in dict.fromkeys(m.group(1) for m in _CHECK_CALL.finditer(source)) if n in CHECKS]


def expected_checks(nb: Any) -> list[str]:
    """The checks of :mod:`molli_utils.checks` that the code of ``nb`` calls, in order of first call."""
    return list(dict.fromkeys(n for _, src in _code(nb) for n in _called(src)))


def records(nb: Any) -> list[dict[str, Any]]:
    """The check records (``{"check", "status", "message"}``) in the outputs of an executed notebook, with their
    ``cell`` (its position in the notebook, counting from 1). Anything can display these: the grader never
    counts them (it runs the checks itself)."""
    out = []
    for i, cell in enumerate(nb.cells):
        for o in cell.get("outputs", []) if cell.cell_type == "code" else []:
            data = o.get("data", {}) if o.get("output_type") in ("display_data", "execute_result") else {}
            if RECORD_MIME in data:
                rec = data[RECORD_MIME]
                try:
                    rec = json.loads(rec) if isinstance(rec, str) else dict(rec)
                except (ValueError, TypeError):
                    continue
                out.append({**rec, "cell": i + 1})
    return out


def _errors(nb: Any, cells: Optional[int] = None) -> list[dict[str, Any]]:
    """The error outputs of an executed notebook (of its first ``cells`` cells): ``{"cell", "ename", "evalue"}``."""
    return [
        {"cell": i + 1, "ename": o.get("ename", ""), "evalue": o.get("evalue", "")}
        for i, c in enumerate(nb.cells[:cells])
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if o.get("output_type") == "error"
    ]


def _calling_cells(nb: Any, check: str) -> list[int]:
    """Cells that call ``check``, directly or through a function defined in a cell that calls it."""
    direct = [i for i, src in _code(nb) if re.search(rf"\b{check}\s*\(", src)]
    helpers = set()
    for i in direct:
        try:
            tree = ast.parse(nb.cells[i - 1].source)
        except SyntaxError:
            continue
        helpers |= {
            n.name
            for n in ast.walk(tree)
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
            and re.search(rf"\b{check}\s*\(", ast.get_source_segment(nb.cells[i - 1].source, n) or "")
        }
    indirect = [i for i, src in _code(nb) if i not in direct and any(re.search(rf"\b{h}\s*\(", src) for h in helpers)]
    return sorted(direct + indirect)


def _verdict(nb: Any, check: str, recs: list[dict[str, Any]], errors: list[dict[str, Any]]) -> CheckResult:
    """The verdict on ``check`` from its records, else from the error of the cell that should have run it."""
    mine = [r for r in recs if r.get("check") == check]
    if mine:
        for status in ("failed", "not attempted"):
            bad = [r for r in mine if r.get("status") == status]
            if bad:
                return CheckResult(check, status, str(bad[0].get("message", "")), len(mine))
        return CheckResult(check, "passed", str(mine[-1].get("message", "")), len(mine))
    cells = _calling_cells(nb, check)
    if not cells:
        return CheckResult(check, "not attempted", "the submission does not call this check")
    stop = next((e for e in errors if e["cell"] in cells), None)
    if stop is None:
        return CheckResult(check, "not attempted", f"never ran (called in cell {cells[0]}, which did not reach it)")
    why = f"cell {stop['cell']} stopped before the check ran: {stop['ename']}: {stop['evalue']}"
    return CheckResult(check, "not attempted" if stop["ename"] == "NotImplementedError" else "failed", why)


def _verified_verdict(
    nb: Any, check: str, recs: list[dict[str, Any]], done: dict[int, dict[str, Any]], reached: int, stopped: str
) -> CheckResult:
    """The verdict on ``check`` from the grader's own runs of it (``recs``: ``{"check", "status", "message"}``),
    else from how the grader's re-run of the cell that should have called it ended (``done``, by cell);
    ``reached``: the last cell of the submission executed."""
    mine = [r for r in recs if r.get("check") == check]
    if mine:
        return _verdict(nb, check, mine, [])
    cells = _calling_cells(nb, check)
    if not cells:
        return CheckResult(check, "not attempted", "the submission does not call this check")
    ran = [i for i in cells if i <= reached]
    if not ran:
        return CheckResult(check, "not attempted", f"never ran (called in cell {cells[0]}; {stopped or 'not reached'})")
    for i in ran:
        d = done.get(i)
        if d is None:
            why = stopped or "its record of the calls was suppressed"
            return CheckResult(
                check, "failed", f"could not be verified: the grader's re-run of cell {i} did not finish ({why})"
            )
        if d.get("ename"):
            why = f"cell {i} stopped before the check ran: {d['ename']}: {d.get('evalue', '')}"
            return CheckResult(check, "not attempted" if d["ename"] == "NotImplementedError" else "failed", why)
    return CheckResult(check, "not attempted", f"never ran (called in cell {cells[0]}, which did not reach it)")


# --------------------------------------------------------------------------- the reference


def _is_solution(cell: Any) -> bool:
    return SOLUTION_TAG in (cell.get("metadata", {}).get("tags", []) or [])


def _check_cells(nb: Any) -> list[Any]:
    """The instructor's check cells of ``nb``: code cells, not ``solution``, that call a check."""
    return [c for c in nb.cells if c.cell_type == "code" and not _is_solution(c) and _called(c.source)]


def restore_check_cells(nb: Any, reference: Any) -> list[int]:
    """Put the instructor's check cells of ``reference`` back into ``nb`` (in place), as nbgrader does: a cell of
    ``nb`` with the id of a reference check cell, else (for the reference cells left) the first cell not yet
    matched that calls the same checks, gets the reference cell's source, type and metadata. Returns the
    positions (from 1) of the cells whose content changed. A check cell the submission deleted stays deleted."""
    nbformat, _ = _nb_modules()
    refs = _check_cells(reference)
    by_id = {c.get("id"): c for c in refs if c.get("id")}
    matched: dict[int, Any] = {}
    for i, cell in enumerate(nb.cells):
        ref = by_id.get(cell.get("id"))
        if ref is not None and all(r is not ref for r in matched.values()):
            matched[i] = ref
    for ref in refs:
        if any(r is ref for r in matched.values()):
            continue
        want = set(_called(ref.source))
        for i, cell in enumerate(nb.cells):
            free = i not in matched and cell.cell_type == "code" and not _is_solution(cell)
            if free and set(_called(cell.source)) == want:
                matched[i] = ref
                break
    changed = []
    for i, ref in sorted(matched.items()):
        cell = nb.cells[i]
        if cell.cell_type != "code" or cell.source != ref.source:
            changed.append(i + 1)
        new = nbformat.from_dict(copy.deepcopy(dict(ref)))
        new.outputs, new.execution_count = [], None
        if cell.get("id"):
            new["id"] = cell["id"]
        nb.cells[i] = new
    return changed


def _pick_reference(nb: Any, reference: Path) -> Optional[Any]:
    """The instructor notebook ``reference``, or in a folder the one sharing the most checks with ``nb``
    (None when none shares any). A reference that is not a notebook raises ValueError."""
    paths = [reference] if reference.is_file() else sorted(reference.glob("*.ipynb"))
    if not paths:
        raise ValueError(
            f"--reference {reference}: no notebooks (*.ipynb) there; pass an instructor notebook or its folder"
        )
    candidates = []
    for p in paths:
        try:
            candidates.append(read_notebook(p.read_bytes()))
        except (OSError, NotGradable) as err:
            raise ValueError(f"--reference {p}: {err}") from None
    if reference.is_file():
        return candidates[0]
    mine = set(expected_checks(nb))
    overlap = [len(mine & set(expected_checks(c))) for c in candidates]
    best = max(overlap)
    if best == 0:
        return None
    return candidates[overlap.index(best)]


# --------------------------------------------------------------------------- isolation

_BWRAP: dict[str, bool] = {}


def _bwrap_works() -> bool:
    """Whether ``bwrap`` is on PATH and can make a read-only sandbox with its own PID and network namespaces here."""
    exe = shutil.which("bwrap")
    if exe is None:
        return False
    if exe not in _BWRAP:
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
            _BWRAP[exe] = done.returncode == 0
        except (OSError, subprocess.SubprocessError):
            _BWRAP[exe] = False
    return _BWRAP[exe]


def isolation(sandbox: str = "auto") -> str:
    """How submissions are isolated with ``sandbox`` (``auto``: bwrap where it works; ``bwrap``: required;
    ``none``): a sentence for the report. ``sandbox="bwrap"`` where bwrap does not work raises RuntimeError."""
    if sandbox not in ("auto", "bwrap", "none"):
        raise ValueError(f"sandbox={sandbox!r}: choose auto, bwrap or none")
    use = sandbox == "bwrap" or (sandbox == "auto" and _bwrap_works())
    if sandbox == "bwrap" and not _bwrap_works():
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


def _uses_bwrap(sandbox: str) -> bool:
    return sandbox == "bwrap" or (sandbox == "auto" and _bwrap_works())


def _python_paths() -> list[Path]:
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


def _hidden_paths(paths: Iterable[Path], keep: Iterable[Path]) -> list[tuple[str, list[str]]]:
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


def _bwrap_prefix(work: Path, hide: Sequence[tuple[str, list[str]]], python: Sequence[Path] = ()) -> list[str]:
    """The bwrap command line that runs the kernel with ``work`` writable, its ``pkg`` read-only, each folder of
    ``hide`` empty but for the folders listed with it (read-only), and ``/tmp`` empty but for the folders of
    ``python`` (the Python installation, :func:`_python_paths`) that lie in it (a virtual environment in
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


def _kernel_env(work: Path, profile: str, token: str) -> dict[str, str]:
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


def _kill_leftovers(token: str, pgid: Optional[int]) -> int:
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


def _package_snapshot() -> dict[str, bytes]:
    """Every file of the molli_utils package (relative path -> bytes), bytecode caches left out."""
    return {
        p.relative_to(_PACKAGE_DIR).as_posix(): p.read_bytes()
        for p in sorted(_PACKAGE_DIR.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    }


def _check_modules(files: dict[str, bytes]) -> list[str]:
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


def _sha(data: Optional[bytes]) -> str:
    return "" if data is None else hashlib.sha256(data).hexdigest()


def _read(path: Path) -> Optional[bytes]:
    try:
        return path.read_bytes()
    except OSError:
        return None


class _Guard:
    """Files a submission must not change: their bytes at the start (``saved``, what :meth:`restore` writes back) and
    as the last submission left them (what :meth:`changed` compares with, so that a change is blamed once)."""

    def __init__(self, paths: Iterable[Path], restore: Iterable[Path] = ()):
        self.saved = {Path(p): _read(Path(p)) for p in paths}
        self.last = dict(self.saved)
        self.restorable = {Path(p) for p in restore}

    def changed(self) -> list[Path]:
        """The files that differ from what the last submission left (and from now on, that is the baseline)."""
        now = {p: _read(p) for p in self.last}
        out = [p for p, data in now.items() if _sha(data) != _sha(self.last[p])]
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


# --------------------------------------------------------------------------- the grader's cells


def _agent_cell() -> str:
    """The source of the grader's first cell: :mod:`molli_utils.grade_kernel`, sent as text (never imported in the
    kernel from the package) and bound to ``_molli_grade``."""
    source = inspect.getsource(grade_kernel)
    return (
        "# Added by the grading command (python -m molli_utils.grade): its agent in this kernel. The checks run in\n"
        "# the grader's own process; only data passes between them.\n"
        "import types as _molli_types\n"
        "_molli_grade = _molli_types.ModuleType('_molli_grade')\n"
        f"exec(compile({source!r}, '<molli_utils.grade_kernel>', 'exec'), _molli_grade.__dict__)\n"
        "_molli_grade = _molli_grade.Agent()\n"
        "del _molli_types\n"
    )


def _rerun_cell(cell: int, source: str) -> str:
    """The source of the grader's cell that re-runs ``source`` (cell ``cell``) with the checks' calls recorded."""
    return (
        f"# Added by the grading command: re-runs cell {cell} of the submission, recording its checks' calls.\n"
        f"_molli_grade.rerun({cell}, {source!r}, {list(CHECKS)!r})\n"
    )


def _outputs(cell: Any, mime: str) -> list[Any]:
    """The values of ``mime`` in the display outputs of ``cell``."""
    return [
        o["data"][mime]
        for o in cell.get("outputs", [])
        if o.get("output_type") in ("display_data", "execute_result") and mime in o.get("data", {})
    ]


def _done_records(nb: Any, first_cell: int) -> dict[int, dict[str, Any]]:
    """The last :data:`~molli_utils.grade_kernel.DONE_MIME` record of each re-run cell, by the submission's cell
    it re-ran: ``{"ename", "evalue", "calls": [{"check", "payload"}]}`` (malformed records are skipped)."""
    out = {}
    for cell in nb.cells[first_cell:]:
        meta = cell.get("metadata", {}).get("molli_grader", {})
        if "cell" not in meta:
            continue
        for rec in _outputs(cell, grade_kernel.DONE_MIME):
            if isinstance(rec, dict) and rec.get("cell") == meta["cell"] and isinstance(rec.get("calls"), list):
                out[meta["cell"]] = {
                    "ename": str(rec.get("ename", "")),
                    "evalue": str(rec.get("evalue", "")),
                    "calls": [c for c in rec["calls"] if isinstance(c, dict)],
                }
    return out


# --------------------------------------------------------------------------- grading


def _sandboxed_manager(prefix: list[str], connection_file: str, ipc: Optional[str] = None) -> Any:
    """A kernel manager whose kernel command starts with ``prefix`` and is interrupted by message; with ``ipc``
    (a path prefix), the kernel's channels are Unix sockets there instead of TCP ports on localhost (a kernel
    without a network, under ``bwrap --unshare-net``, is still reachable)."""
    from jupyter_client.manager import AsyncKernelManager

    class _SandboxedKernelManager(AsyncKernelManager):
        def format_kernel_cmd(self, extra_arguments: Optional[list[str]] = None) -> list[str]:
            return prefix + super().format_kernel_cmd(extra_arguments)

    km = _SandboxedKernelManager(kernel_name="python3")
    km.connection_file = connection_file
    if ipc is not None:
        km.transport, km.ip = "ipc", ipc
    km.kernel_spec.interrupt_mode = "message"  # a signal would not reach a kernel in its own session
    return km


def _grader_client(nbclient_mod: Any) -> type:
    """nbclient's NotebookClient, except that ``clear_output`` never clears the outputs of the grader's cells."""

    class _GraderClient(nbclient_mod.NotebookClient):
        molli_first_grader_cell = 10**9

        def clear_output(self, outs: Any, msg: dict[str, Any], cell_index: int) -> None:
            if cell_index < self.molli_first_grader_cell:
                super().clear_output(outs, msg, cell_index)

    return _GraderClient


def _run_checks(done: dict[int, dict[str, Any]], nb: Any, run: Any, timeout: int, recs: list[dict[str, Any]]) -> str:
    """Run every recorded call of a check (``done``, :func:`_done_records`) in this process, the student's
    functions called in the kernel through cells appended to ``nb`` and executed by ``run(index)``; append the
    verdicts ``{"check", "status", "message", "cell"}`` to ``recs``. A call whose record cannot be read fails.
    Returns why the kernel stopped answering (it died), else ``""``."""
    nbformat, _ = _nb_modules()
    from nbclient.exceptions import DeadKernelError

    dead = [""]

    def call(handle: int, args: tuple, kwargs: dict) -> Any:
        if dead[0]:
            raise grade_calls.CallError(dead[0])
        buf = io.BytesIO()
        torch.save({"args": args, "kwargs": kwargs, "rng": torch.get_rng_state()}, buf)
        payload = base64.b64encode(buf.getvalue()).decode("ascii")
        nb.cells.append(
            nbformat.v4.new_code_cell(
                f"_molli_grade.call({int(handle)}, {payload!r})", metadata={"molli_grader": {"call": int(handle)}}
            )
        )
        index = len(nb.cells) - 1
        try:
            late = run(index)
        except DeadKernelError as err:
            dead[0] = f"the kernel died while the checks called the student's code ({err})"
            raise grade_calls.CallError(dead[0]) from None
        cell = nb.cells[index]
        answers = _outputs(cell, grade_kernel.RESULT_MIME)
        cell.source = f"_molli_grade.call({int(handle)}, ...)  # {len(payload)} characters of arguments"
        for o in cell.outputs:  # keep the executed copy small: the answers are read, not stored
            if grade_kernel.RESULT_MIME in o.get("data", {}):
                o["data"][grade_kernel.RESULT_MIME] = f"{len(str(o['data'][grade_kernel.RESULT_MIME]))} characters"
        if late:
            raise grade_calls.CallError(f"the call ran longer than {timeout} s")
        if not answers:
            raise grade_calls.CallError("the kernel gave no answer to a call of the student's function")
        return grade_calls.answer(grade_calls.load_payload(answers[-1]), call)

    for cell in sorted(done):
        for entry in done[cell]["calls"]:
            name = entry.get("check")
            if name not in CHECKS:
                continue
            try:
                request = grade_calls.load_payload(entry.get("payload"))
                if not isinstance(request, dict):
                    raise grade_calls.CallError("the recorded call is not a record")
                args = grade_calls.decode(request.get("args"), call)
                kwargs = grade_calls.decode(request.get("kwargs"), call)
            except grade_calls.CallError as err:
                status, message = "failed", f"could not be verified: {err}"
            else:
                status, message = grade_calls.run_check(name, args, kwargs)
            recs.append({"check": name, "status": status, "message": message, "cell": cell})
    return dead[0]


def grade_notebook(
    nb: Any,
    *,
    reference: Optional[Any] = None,
    profile: str = "quick",
    timeout: int = 600,
    name: str = "submission",
    limits: Optional[Limits] = None,
    sandbox: str = "auto",
    hide: Sequence[str | os.PathLike] = (),
    _package: Optional[dict[str, bytes]] = None,
    _guard: Optional[_Guard] = None,
) -> tuple[Report, Any]:
    """Execute a copy of ``nb`` as the module docstring says and grade it; return the report and the executed copy
    (the submission's cells, then the grader's). ``timeout``: seconds per cell; ``limits``: the kernel's limits
    (default :class:`Limits`); ``sandbox``: ``auto``, ``bwrap`` or ``none`` (:func:`isolation`); ``hide``: more
    folders bwrap hides from the kernel. Never raises for what the submission does."""
    nbformat, nbclient = _nb_modules()
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    limits = limits or Limits()
    package = _package if _package is not None else _package_snapshot()
    modules = _check_modules(package)
    guard = _guard if _guard is not None else _Guard([_PACKAGE_DIR / rel for rel in modules])
    report = Report(name, profile=profile, isolation=isolation(sandbox))

    nb = nbformat.from_dict(copy.deepcopy(nb))
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    if reference is not None:
        report.restored = restore_check_cells(nb, reference)
    expected = expected_checks(reference if reference is not None else nb)
    report.empty_answers = sum(c.cell_type == "markdown" and c.source.strip() == ANSWER_CELL.strip() for c in nb.cells)
    if not expected:
        report.stopped = "no checks to grade (0 of 0): " + (
            "the reference calls no check of molli_utils.checks"
            if reference is not None
            else "the submission calls no check of molli_utils.checks; pass the instructor notebook with --reference"
        )
        return report, nb

    token = secrets.token_hex(16)
    n_student = len(nb.cells)
    rerun = sorted({i for c in expected for i in _calling_cells(nb, c)})
    start = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="molli-grade-"))
    reached, pgid, log, copy_changed, done, recs = 0, None, None, [], {}, []
    try:
        for sub in ("nb", "home", "tmp", "pkg/molli_utils"):
            (work / sub).mkdir(parents=True, exist_ok=True)
        for rel, data in package.items():
            target = work / "pkg" / "molli_utils" / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        nb.cells.append(nbformat.v4.new_code_cell(_agent_cell(), metadata={"molli_grader": {"agent": True}}))
        for i in rerun:
            nb.cells.append(
                nbformat.v4.new_code_cell(
                    _rerun_cell(i, nb.cells[i - 1].source), metadata={"molli_grader": {"cell": i}}
                )
            )
        nbformat.write(nb, work / "nb" / (Path(name).name if name.endswith(".ipynb") else "submission.ipynb"))
        prefix = [
            sys.executable,
            "-I",
            str(work / "pkg" / "molli_utils" / "sandbox.py"),
            "--wall",
            str(limits.wall),
            "--cpu",
            str(limits.cpu),
            "--memory",
            str(limits.memory_mib),
            "--nproc",
            str(limits.nproc),
            "--fsize",
            str(limits.fsize_mib),
            "--",
        ]
        if _uses_bwrap(sandbox):
            hidden = _hidden_paths([Path.home(), _PACKAGE_DIR, *map(Path, hide)], [work, *_python_paths()])
            prefix += _bwrap_prefix(work, hidden, _python_paths())
        client = _grader_client(nbclient)(
            nb,
            timeout=timeout,
            kernel_name="python3",
            allow_errors=True,
            resources={"metadata": {"path": str(work / "nb")}},
        )
        client.molli_first_grader_cell = n_student
        client.km = _sandboxed_manager(
            prefix, str(work / "kernel.json"), ipc=str(work / "k") if _uses_bwrap(sandbox) else None
        )
        client.owns_km = True
        client.reset_execution_trackers()
        dead = False

        # on a timeout nbclient interrupts the kernel and waits for the cell's last outputs (nothing is lost)
        client.interrupt_on_timeout = True
        client.error_on_timeout = {"ename": "CellTimeoutError", "evalue": f"the cell ran longer than {timeout} s"}

        def run(index: int) -> bool:
            """Execute cell ``index``; whether it ran past the timeout (and was interrupted)."""
            begin = time.perf_counter()
            try:
                client.execute_cell(nb.cells[index], index)
            except CellTimeoutError:  # the IOPub output did not finish in time
                return True
            return time.perf_counter() - begin >= timeout

        log = open(work / "kernel.log", "wb")  # the kernel's own messages: read back if it dies
        try:
            with client.setup_kernel(
                env=_kernel_env(work, profile, token), cwd=str(work / "nb"), stdout=log, stderr=log
            ):
                pgid = getattr(client.km.provisioner, "pgid", None)
                for index in range(n_student):
                    if nb.cells[index].cell_type != "code":
                        continue
                    reached = index + 1
                    if run(index):
                        report.stopped = f"a cell ran longer than {timeout} s: execution stopped there"
                        reached -= 1  # that cell did not finish: the grader does not re-run it
                        break
                n_grader = len(nb.cells)
                for index in range(n_student, n_grader):
                    cell = nb.cells[index].metadata["molli_grader"].get("cell", 0)
                    if cell <= reached and run(index):
                        report.stopped = report.stopped or f"a cell re-run by the grader ran longer than {timeout} s"
                done = _done_records(nb, n_student)
                with torch.random.fork_rng(devices=[]):
                    died = _run_checks(done, nb, run, timeout, recs)
                if died:
                    report.stopped = report.stopped or f"{died}{_last_words(work / 'kernel.log')}"
        except DeadKernelError as err:
            dead = True
            elapsed = time.perf_counter() - start
            why = (
                f"the wall-time limit of {limits.wall:g} s"
                if elapsed >= limits.wall - 1
                else f"the kernel died ({err}: a crash, or the memory or CPU-time limit)"
            )
            report.stopped = report.stopped or f"{why}: execution stopped there{_last_words(work / 'kernel.log')}"
        except Exception as err:  # noqa: BLE001 - the kernel could not be started or driven
            dead = True
            report.stopped = report.stopped or f"the kernel failed: {type(err).__name__}: {err}"
        _kill_leftovers(token, pgid)
        report.seconds = time.perf_counter() - start
        report.errors = _errors(nb, n_student)
        copy_changed = [
            f"molli_utils/{rel} (the grader's copy)"
            for rel, data in package.items()
            if _sha(_read(work / "pkg" / "molli_utils" / rel)) != _sha(data)
        ]
    finally:
        if log is not None:
            log.close()
        _kill_leftovers(token, pgid)
        shutil.rmtree(work, ignore_errors=True)
    changed = guard.changed()
    restored = guard.restore(changed)
    report.tampered = copy_changed + [str(p) + (" (restored)" if p in restored else "") for p in changed]
    if report.tampered:
        report.stopped = (
            "tampered: the submission changed "
            + ", ".join(report.tampered)
            + "; not graded (later submissions use the grader's copy)"
        )
        report.checks = [
            CheckResult(c, "failed", "not graded: the submission changed files outside its copy") for c in expected
        ]
        return report, nb
    stopped = report.stopped if report.stopped else ""
    extra = [c for c in dict.fromkeys(r["check"] for r in recs) if c not in expected]
    report.checks = [
        _verified_verdict(nb, c, recs, done, reached if (stopped or dead) else n_student, stopped)
        for c in [*expected, *extra]
    ]
    return report, nb


def _last_words(log: Path) -> str:
    """The last line of the kernel's log that is not a known warning, as ``" (sandbox: ...)"``, or ``""``."""
    try:
        with open(log, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 65536))
            lines = [ln.strip() for ln in f.read().decode(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    lines = [ln for ln in lines if "without encryption" not in ln]
    return f" (kernel's last words: {lines[-1][:300]})" if lines else ""


def _executed_name(path: Path) -> str:
    """The executed copy's file name: the submission's stem and a short hash of its full path (never collides)."""
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:8]
    return f"{path.stem}-{digest}.ipynb"


def grade(
    paths: Sequence[str | os.PathLike],
    *,
    reference: Optional[str | os.PathLike] = None,
    profile: str = "quick",
    timeout: int = 600,
    executed_dir: Optional[str | os.PathLike] = None,
    limits: Optional[Limits] = None,
    sandbox: str = "auto",
) -> list[Report]:
    """Grade every notebook in ``paths`` (see the module docstring), each from the bytes read before the first
    runs; write the executed copies to ``executed_dir`` (named by :func:`_executed_name`). A submission that
    cannot be read or graded gets a report saying why, and the batch goes on. A reference that is not a
    notebook raises ValueError before anything runs."""
    nbformat, _ = _nb_modules()
    paths = [Path(p) for p in paths]
    ref_path = Path(reference) if reference is not None else None
    if ref_path is not None:
        _pick_reference(nbformat.v4.new_notebook(), ref_path)  # refuse a bad reference up front
    package = _package_snapshot()
    refs = ([ref_path] if ref_path.is_file() else sorted(ref_path.glob("*.ipynb"))) if ref_path is not None else []
    folders = dict.fromkeys(p.parent for p in paths)
    beside = [
        f
        for d in folders
        if d.is_dir()
        for f in sorted(d.glob("*.ipynb"))
        if f.is_file() and f not in paths and f.stat().st_size < 50 * 2**20
    ]
    guard = _Guard(
        [*(_PACKAGE_DIR / m for m in _check_modules(package)), *paths, *beside, *refs], restore=[*paths, *beside, *refs]
    )
    hide = [p.resolve().parent for p in paths]
    if ref_path is not None:
        hide.append(ref_path.resolve() if ref_path.is_dir() else ref_path.resolve().parent)
    reports = []
    for path in paths:
        data = guard.saved.get(path)
        try:
            if data is None:
                raise NotGradable(f"could not read the notebook: {path} is missing or unreadable")
            nb = read_notebook(data)
            ref = _pick_reference(nb, ref_path) if ref_path is not None else None
            if ref_path is not None and ref is None:
                raise NotGradable(
                    f"it calls none of the checks of the notebooks in --reference {ref_path} "
                    "(pass the instructor notebook itself)"
                )
            report, executed = grade_notebook(
                nb,
                reference=ref,
                profile=profile,
                timeout=timeout,
                name=str(path),
                limits=limits,
                sandbox=sandbox,
                hide=hide,
                _package=package,
                _guard=guard,
            )
        except NotGradable as err:
            reports.append(Report(str(path), profile=profile, stopped=f"not gradable: {err}"))
            continue
        except Exception as err:  # noqa: BLE001 - one submission never stops the batch
            reports.append(Report(str(path), profile=profile, stopped=f"not gradable: {type(err).__name__}: {err}"))
            continue
        if executed_dir is not None:
            Path(executed_dir).mkdir(parents=True, exist_ok=True)
            nbformat.write(executed, Path(executed_dir) / _executed_name(path))
        reports.append(report)
    return reports


def format_report(report: Report) -> str:
    """The report of one submission as text: one line per check, then errors and written answers."""
    lines = [f"{report.submission} (profile {report.profile}, {report.seconds:.0f} s)"]
    if report.stopped:
        lines.append(f"  STOPPED: {report.stopped}")
    if report.restored:
        lines.append(f"  check cells restored from the reference: {', '.join(map(str, report.restored))}")
    width = max([len(c.check) for c in report.checks] + [5])
    for c in report.checks:
        first = c.message.strip().splitlines()[0] if c.message.strip() else ""
        runs = f" [{c.calls} calls]" if c.calls > 1 else ""
        lines.append(f"  {c.check:{width}s}  {c.status:13s}  {first[:160]}{runs}")
    lines.append(
        f"  passed {report.passed} of {len(report.checks)} checks; "
        f"{len(report.errors)} cell(s) ended in an error; "
        f"{report.empty_answers} written answer(s) left empty (grade the others by hand)"
    )
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """The command line; exit status 0 when every submission was executed and graded, 1 when one was not (not
    gradable, stopped, tampered, no checks to grade), 2 for bad arguments."""
    parser = argparse.ArgumentParser(prog="python -m molli_utils.grade", description=__doc__.split("\n")[0])
    parser.add_argument("submissions", nargs="+", help="submitted notebooks (.ipynb)")
    parser.add_argument("--reference", help="the instructor notebook, or their folder (e.g. book/assignments)")
    parser.add_argument(
        "--profile",
        default="quick",
        choices=("quick", "colab", "full"),
        help="MOLLI_PROFILE of the run (default: quick)",
    )
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell (default: 600)")
    parser.add_argument("--wall", type=float, default=Limits.wall, help="seconds per submission in all (default: 3600)")
    parser.add_argument("--cpu", type=int, default=Limits.cpu, help="CPU seconds per submission (default: 14400)")
    parser.add_argument(
        "--memory",
        type=int,
        default=Limits.memory_mib,
        help="MiB of address space per submission (RLIMIT_AS; default: 16384)",
    )
    parser.add_argument(
        "--sandbox",
        default="auto",
        choices=("auto", "bwrap", "none"),
        help="bwrap: require bubblewrap; auto (default): use it where it works",
    )
    parser.add_argument("--json", dest="json_path", help="also write the reports to this JSON file")
    parser.add_argument("--executed", help="write the executed submissions to this folder (to read them)")
    args = parser.parse_args(argv)
    if args.reference is not None and not Path(args.reference).exists():
        parser.error(f"--reference {args.reference} does not exist: pass an instructor notebook or its folder")
    for name, value in (
        ("--timeout", args.timeout),
        ("--wall", args.wall),
        ("--cpu", args.cpu),
        ("--memory", args.memory),
    ):
        if value <= 0:
            parser.error(f"{name} {value}: must be positive")
    try:
        print(f"isolation: {isolation(args.sandbox)}")
        limits = Limits(wall=args.wall, cpu=args.cpu, memory_mib=args.memory)
        reports = grade(
            args.submissions,
            reference=args.reference,
            profile=args.profile,
            timeout=args.timeout,
            executed_dir=args.executed,
            limits=limits,
            sandbox=args.sandbox,
        )
    except (ValueError, RuntimeError) as err:
        parser.error(str(err))
    for report in reports:
        print(format_report(report))
    if args.json_path:
        Path(args.json_path).write_text(json.dumps([asdict(r) for r in reports], indent=1) + "\n")
    return 1 if any(r.stopped for r in reports) else 0


if __name__ == "__main__":
    sys.exit(main())
