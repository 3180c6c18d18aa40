"""Grade submitted assignment notebooks from the checks' structured records.

    python -m molli_utils.grade SUBMISSION.ipynb [SUBMISSION.ipynb ...] [--reference book/assignments]
                                [--profile quick] [--json report.json] [--executed DIR]

Each submission is executed top to bottom in a fresh kernel, **with errors allowed** (a failing
cell does not stop the later ones), in an empty temporary folder, after its saved outputs are
cleared (so nothing saved in the file counts). Every call of a check of :mod:`molli_utils.checks`
leaves a record of its verdict in the outputs (MIME type :data:`~molli_utils.checks.RECORD_MIME`);
the report gives, per check:

* ``passed``: every call of the check passed;
* ``failed``: a call failed (the check's message), or the cell that calls the check stopped
  with an error of the student's code before the check ran;
* ``not attempted``: the student's code raised ``NotImplementedError`` (an unfinished exercise),
  or the check never ran (e.g. the submission no longer calls it).

The checks to expect are those the submission's code calls; with ``--reference`` (an instructor
notebook, or a folder of them: the one sharing the most checks with the submission is used), those
the instructor version calls, so that a deleted check cell counts as not attempted. Written answers
are graded by hand; the report counts those left as the empty answer box.

The kernel runs the student's code, so the records are only as trustworthy as that code: read it.
Needs nbclient, nbformat and ipykernel (``pip install "molli-utils[teach]"``).
"""

from __future__ import annotations

import argparse
import ast
import copy
import json
import os
import re
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from .assignments import ANSWER_CELL
from .checks import CHECKS, RECORD_MIME

__all__ = ["CheckResult", "Report", "grade_notebook", "grade", "expected_checks", "records", "format_report", "main"]

_CHECK_CALL = re.compile(r"\b(check_\w+)\s*\(")


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
    (``{"cell", "ename", "evalue"}``, cells counted from 1), the written answers left empty, and how it ran."""

    submission: str
    checks: list[CheckResult] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    empty_answers: int = 0
    profile: str = "quick"
    seconds: float = 0.0
    stopped: str = ""  # why execution stopped early (a cell timed out, the kernel died), else ""

    @property
    def passed(self) -> int:
        """How many checks passed."""
        return sum(c.status == "passed" for c in self.checks)


def _nb_modules():
    """``nbformat`` and ``nbclient``, or an ImportError saying how to install what grading needs."""
    try:
        import ipykernel  # noqa: F401  (the kernel that runs the submissions)
        import nbclient
        import nbformat
    except ImportError as err:
        raise ImportError(f'the grading command needs nbclient, nbformat and ipykernel ({err}): '
                          'pip install "molli-utils[teach]"') from err
    return nbformat, nbclient


def _code(nb: Any) -> list[tuple[int, str]]:
    """(position counting from 1, source) of every code cell."""
    return [(i + 1, c.source) for i, c in enumerate(nb.cells) if c.cell_type == "code"]


def expected_checks(nb: Any) -> list[str]:
    """The checks of :mod:`molli_utils.checks` that the code of ``nb`` calls, in order of first call."""
    names = [m.group(1) for _, src in _code(nb) for m in _CHECK_CALL.finditer(src)]
    return [n for n in dict.fromkeys(names) if n in CHECKS]


def records(nb: Any) -> list[dict[str, Any]]:
    """The check records (``{"check", "status", "message"}``) in the outputs of an executed notebook, with their
    ``cell`` (its position in the notebook, counting from 1)."""
    out = []
    for i, cell in enumerate(nb.cells):
        for o in cell.get("outputs", []) if cell.cell_type == "code" else []:
            data = o.get("data", {}) if o.get("output_type") in ("display_data", "execute_result") else {}
            if RECORD_MIME in data:
                rec = data[RECORD_MIME]
                rec = json.loads(rec) if isinstance(rec, str) else dict(rec)
                out.append({**rec, "cell": i + 1})
    return out


def _errors(nb: Any) -> list[dict[str, Any]]:
    """The error outputs of an executed notebook: ``{"cell", "ename", "evalue"}``, cells counted from 1."""
    return [{"cell": i + 1, "ename": o.get("ename", ""), "evalue": o.get("evalue", "")}
            for i, c in enumerate(nb.cells) if c.cell_type == "code"
            for o in c.get("outputs", []) if o.get("output_type") == "error"]  # fmt: skip


def _calling_cells(nb: Any, check: str) -> list[int]:
    """Cells that call ``check``, directly or through a function defined in a cell that calls it."""
    direct = [i for i, src in _code(nb) if re.search(rf"\b{check}\s*\(", src)]
    helpers = set()
    for i in direct:
        try:
            tree = ast.parse(nb.cells[i - 1].source)
        except SyntaxError:
            continue
        helpers |= {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
                    and re.search(rf"\b{check}\s*\(", ast.get_source_segment(nb.cells[i - 1].source, n) or "")}  # fmt: skip
    indirect = [i for i, src in _code(nb) if i not in direct and any(re.search(rf"\b{h}\s*\(", src) for h in helpers)]
    return sorted(direct + indirect)


def _verdict(nb: Any, check: str, recs: list[dict[str, Any]], errors: list[dict[str, Any]]) -> CheckResult:
    """The verdict on ``check`` from its records, else from the error of the cell that should have run it."""
    mine = [r for r in recs if r.get("check") == check]
    if mine:
        for status in ("failed", "not attempted"):
            bad = [r for r in mine if r.get("status") == status]
            if bad:
                return CheckResult(check, status, bad[0].get("message", ""), len(mine))
        return CheckResult(check, "passed", mine[-1].get("message", ""), len(mine))
    cells = _calling_cells(nb, check)
    if not cells:
        return CheckResult(check, "not attempted", "the submission does not call this check")
    stop = next((e for e in errors if e["cell"] in cells), None)
    if stop is None:
        return CheckResult(check, "not attempted", f"never ran (called in cell {cells[0]}, which did not reach it)")
    why = f"cell {stop['cell']} stopped before the check ran: {stop['ename']}: {stop['evalue']}"
    return CheckResult(check, "not attempted" if stop["ename"] == "NotImplementedError" else "failed", why)


def _pick_reference(nb: Any, reference: Path) -> Optional[Any]:
    """The instructor notebook ``reference``, or in a folder the one sharing the most checks with ``nb``."""
    nbformat, _ = _nb_modules()
    if reference.is_file():
        return nbformat.read(reference, as_version=4)
    candidates = [nbformat.read(p, as_version=4) for p in sorted(reference.glob("*.ipynb"))]
    if not candidates:
        raise ValueError(f"--reference {reference}: no notebooks (*.ipynb) there; pass an instructor notebook or its folder")
    mine = set(expected_checks(nb))
    overlap = [len(mine & set(expected_checks(c))) for c in candidates]
    best = max(overlap)
    if best == 0:
        return None
    return candidates[overlap.index(best)]


def grade_notebook(nb: Any, *, reference: Optional[Any] = None, profile: str = "quick", timeout: int = 600,
                   name: str = "submission") -> tuple[Report, Any]:  # fmt: skip
    """Execute a copy of ``nb`` (errors allowed, outputs cleared first) and grade it; return the report and the executed copy."""
    nbformat, nbclient = _nb_modules()
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    nb = nbformat.from_dict(copy.deepcopy(nb))
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    expected = expected_checks(reference if reference is not None else nb)
    report = Report(name, profile=profile)
    env = {**os.environ, "MOLLI_PROFILE": profile, "MPLBACKEND": "Agg"}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="molli-grade-") as work:
        client = nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=True,
                                         resources={"metadata": {"path": work}})  # fmt: skip
        try:
            client.execute(env=env)
        except CellTimeoutError:
            report.stopped = f"a cell ran longer than {timeout} s: execution stopped there"
        except DeadKernelError as err:
            report.stopped = f"the kernel died ({err}): execution stopped there"
    report.seconds = time.perf_counter() - start
    recs, report.errors = records(nb), _errors(nb)
    extra = [c for c in dict.fromkeys(r["check"] for r in recs) if c not in expected]
    report.checks = [_verdict(nb, c, recs, report.errors) for c in [*expected, *extra]]
    report.empty_answers = sum(c.cell_type == "markdown" and c.source.strip() == ANSWER_CELL.strip() for c in nb.cells)
    return report, nb


def grade(paths: Sequence[str | os.PathLike], *, reference: Optional[str | os.PathLike] = None, profile: str = "quick",
          timeout: int = 600, executed_dir: Optional[str | os.PathLike] = None) -> list[Report]:  # fmt: skip
    """Grade every notebook in ``paths`` (see the module docstring); write the executed copies to ``executed_dir``."""
    nbformat, _ = _nb_modules()
    reports = []
    for path in map(Path, paths):
        try:
            nb = nbformat.read(path, as_version=4)
        except (OSError, ValueError) as err:  # missing file, not JSON, not a notebook
            reports.append(Report(str(path), profile=profile, stopped=f"could not read the notebook: {err}"))
            continue
        ref = _pick_reference(nb, Path(reference)) if reference is not None else None
        report, executed = grade_notebook(nb, reference=ref, profile=profile, timeout=timeout, name=str(path))
        if executed_dir is not None:
            Path(executed_dir).mkdir(parents=True, exist_ok=True)
            nbformat.write(executed, Path(executed_dir) / path.name)
        reports.append(report)
    return reports


def format_report(report: Report) -> str:
    """The report of one submission as text: one line per check, then errors and written answers."""
    lines = [f"{report.submission} (profile {report.profile}, {report.seconds:.0f} s)"]
    if report.stopped:
        lines.append(f"  STOPPED: {report.stopped}")
    width = max([len(c.check) for c in report.checks] + [5])
    for c in report.checks:
        first = c.message.strip().splitlines()[0] if c.message.strip() else ""
        runs = f" [{c.calls} calls]" if c.calls > 1 else ""
        lines.append(f"  {c.check:{width}s}  {c.status:13s}  {first[:160]}{runs}")
    lines.append(f"  passed {report.passed} of {len(report.checks)} checks; "
                 f"{len(report.errors)} cell(s) ended in an error; "
                 f"{report.empty_answers} written answer(s) left empty (grade the others by hand)")  # fmt: skip
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """The command line; exit status 0 when every submission was executed, 1 when one could not be."""
    parser = argparse.ArgumentParser(prog="python -m molli_utils.grade", description=__doc__.split("\n")[0])
    parser.add_argument("submissions", nargs="+", help="submitted notebooks (.ipynb)")
    parser.add_argument("--reference", help="the instructor notebook, or their folder (e.g. book/assignments)")
    parser.add_argument("--profile", default="quick", choices=("quick", "colab", "full"),
                        help="MOLLI_PROFILE of the run (default: quick)")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell (default: 600)")
    parser.add_argument("--json", dest="json_path", help="also write the reports to this JSON file")
    parser.add_argument("--executed", help="write the executed submissions to this folder (to read them)")
    args = parser.parse_args(argv)
    if args.reference is not None and not Path(args.reference).exists():
        parser.error(f"--reference {args.reference} does not exist: pass an instructor notebook or its folder")
    reports = grade(args.submissions, reference=args.reference, profile=args.profile, timeout=args.timeout,
                    executed_dir=args.executed)  # fmt: skip
    for report in reports:
        print(format_report(report))
    if args.json_path:
        Path(args.json_path).write_text(json.dumps([asdict(r) for r in reports], indent=1) + "\n")
    return 1 if any(r.stopped for r in reports) else 0


if __name__ == "__main__":
    sys.exit(main())
