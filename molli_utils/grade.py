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
import copy
import hashlib
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Optional, Sequence

import torch

from .assignments import ANSWER_CELL
from .grade_calls import agent_cell, done_records, rerun_cell, run_checks
from .grade_cells import (
    CheckResult,
    NotGradable,
    Report,
    calling_cells,
    cell_errors,
    expected_checks,
    notebook_modules,
    pick_reference,
    read_notebook,
    records,
    restore_check_cells,
    verified_verdict,
)
from .grade_isolation import (
    Guard,
    Limits,
    bwrap_prefix,
    check_modules,
    hidden_paths,
    isolation,
    kernel_env,
    kill_leftovers,
    package_snapshot,
    python_paths,
    sha256_of,
    read_bytes_or_none,
    uses_bwrap,
)

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

_PACKAGE_DIR = Path(__file__).resolve().parent


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
    _guard: Optional[Guard] = None,
) -> tuple[Report, Any]:
    """Execute a copy of ``nb`` as the module docstring says and grade it; return the report and the executed copy
    (the submission's cells, then the grader's). ``timeout``: seconds per cell; ``limits``: the kernel's limits
    (default :class:`Limits`); ``sandbox``: ``auto``, ``bwrap`` or ``none`` (:func:`isolation`); ``hide``: more
    folders bwrap hides from the kernel. Never raises for what the submission does."""
    nbformat, nbclient = notebook_modules()
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    limits = limits or Limits()
    package = _package if _package is not None else package_snapshot(_PACKAGE_DIR)
    modules = check_modules(package)
    guard = _guard if _guard is not None else Guard([_PACKAGE_DIR / rel for rel in modules])
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
    rerun = sorted({i for c in expected for i in calling_cells(nb, c)})
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
        nb.cells.append(nbformat.v4.new_code_cell(agent_cell(), metadata={"molli_grader": {"agent": True}}))
        for i in rerun:
            nb.cells.append(
                nbformat.v4.new_code_cell(rerun_cell(i, nb.cells[i - 1].source), metadata={"molli_grader": {"cell": i}})
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
        if uses_bwrap(sandbox):
            hidden = hidden_paths([Path.home(), _PACKAGE_DIR, *map(Path, hide)], [work, *python_paths()])
            prefix += bwrap_prefix(work, hidden, python_paths())
        client = _grader_client(nbclient)(
            nb,
            timeout=timeout,
            kernel_name="python3",
            allow_errors=True,
            resources={"metadata": {"path": str(work / "nb")}},
        )
        client.molli_first_grader_cell = n_student
        client.km = _sandboxed_manager(
            prefix, str(work / "kernel.json"), ipc=str(work / "k") if uses_bwrap(sandbox) else None
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
                env=kernel_env(work, profile, token), cwd=str(work / "nb"), stdout=log, stderr=log
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
                done = done_records(nb, n_student)
                with torch.random.fork_rng(devices=[]):
                    died = run_checks(done, nb, run, timeout, recs)
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
        kill_leftovers(token, pgid)
        report.seconds = time.perf_counter() - start
        report.errors = cell_errors(nb, n_student)
        copy_changed = [
            f"molli_utils/{rel} (the grader's copy)"
            for rel, data in package.items()
            if sha256_of(read_bytes_or_none(work / "pkg" / "molli_utils" / rel)) != sha256_of(data)
        ]
    finally:
        if log is not None:
            log.close()
        kill_leftovers(token, pgid)
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
        verified_verdict(nb, c, recs, done, reached if (stopped or dead) else n_student, stopped)
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
    nbformat, _ = notebook_modules()
    paths = [Path(p) for p in paths]
    ref_path = Path(reference) if reference is not None else None
    if ref_path is not None:
        pick_reference(nbformat.v4.new_notebook(), ref_path)  # refuse a bad reference up front
    package = package_snapshot(_PACKAGE_DIR)
    refs = ([ref_path] if ref_path.is_file() else sorted(ref_path.glob("*.ipynb"))) if ref_path is not None else []
    folders = dict.fromkeys(p.parent for p in paths)
    beside = [
        f
        for d in folders
        if d.is_dir()
        for f in sorted(d.glob("*.ipynb"))
        if f.is_file() and f not in paths and f.stat().st_size < 50 * 2**20
    ]
    guard = Guard(
        [*(_PACKAGE_DIR / m for m in check_modules(package)), *paths, *beside, *refs], restore=[*paths, *beside, *refs]
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
            ref = pick_reference(nb, ref_path) if ref_path is not None else None
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
