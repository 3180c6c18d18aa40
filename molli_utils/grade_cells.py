"""The notebooks the grader reads: reading an untrusted file, the checks a notebook calls, the instructor's
check cells put back (as nbgrader does), and the verdict on each check (:class:`CheckResult`, :class:`Report`).

Everything here reads notebooks (nbformat 4 objects) and never executes them; :mod:`molli_utils.grade` runs them.
"""

from __future__ import annotations

import ast
import copy
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional


from .assignments import SOLUTION_TAG
from .checks import CHECKS, RECORD_MIME

#: A call of a check in a cell's source (``check_blur(``).
CHECK_CALL = re.compile(r"\b(check_\w+)\s*\(")


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


class NotGradable(ValueError):
    """A submission that is not a notebook the grader can execute (the message says why)."""


def notebook_modules():
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
    nbformat, _ = notebook_modules()
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


def code_cells(nb: Any) -> list[tuple[int, str]]:
    """(position counting from 1, source) of every code cell."""
    return [(i + 1, c.source) for i, c in enumerate(nb.cells) if c.cell_type == "code"]


def called_checks(source: str) -> list[str]:
    """The checks of :mod:`molli_utils.checks` that ``source`` calls, in order of first call."""
    return [n for n in dict.fromkeys(m.group(1) for m in CHECK_CALL.finditer(source)) if n in CHECKS]


def expected_checks(nb: Any) -> list[str]:
    """The checks of :mod:`molli_utils.checks` that the code of ``nb`` calls, in order of first call."""
    return list(dict.fromkeys(n for _, src in code_cells(nb) for n in called_checks(src)))


def records(nb: Any) -> list[dict[str, Any]]:
    """The check records (``{"check", "status", "message"}``) in the outputs of an executed notebook, with their
    ``cell`` (its position in the notebook, counting from 1). Anything can display these: the grader never
    counts them (it runs the checks itself)."""
    out = []
    for i, cell in enumerate(nb.cells):
        for rec in outputs_of(cell, RECORD_MIME):
            try:
                rec = json.loads(rec) if isinstance(rec, str) else dict(rec)
            except (ValueError, TypeError):
                continue
            out.append({**rec, "cell": i + 1})
    return out


def outputs_of(cell: Any, mime: str) -> list[Any]:
    """The values of ``mime`` in the display outputs of ``cell``."""
    return [
        o["data"][mime]
        for o in cell.get("outputs", [])
        if o.get("output_type") in ("display_data", "execute_result") and mime in o.get("data", {})
    ]


def cell_errors(nb: Any, cells: Optional[int] = None) -> list[dict[str, Any]]:
    """The error outputs of an executed notebook (of its first ``cells`` cells): ``{"cell", "ename", "evalue"}``."""
    return [
        {"cell": i + 1, "ename": o.get("ename", ""), "evalue": o.get("evalue", "")}
        for i, c in enumerate(nb.cells[:cells])
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if o.get("output_type") == "error"
    ]


def calling_cells(nb: Any, check: str) -> list[int]:
    """Cells that call ``check``, directly or through a function defined in a cell that calls it."""
    direct = [i for i, src in code_cells(nb) if re.search(rf"\b{check}\s*\(", src)]
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
    indirect = [
        i for i, src in code_cells(nb) if i not in direct and any(re.search(rf"\b{h}\s*\(", src) for h in helpers)
    ]
    return sorted(direct + indirect)


def verdict(nb: Any, check: str, recs: list[dict[str, Any]], errors: list[dict[str, Any]]) -> CheckResult:
    """The verdict on ``check`` from its records, else from the error of the cell that should have run it."""
    mine = [r for r in recs if r.get("check") == check]
    if mine:
        for status in ("failed", "not attempted"):
            bad = [r for r in mine if r.get("status") == status]
            if bad:
                return CheckResult(check, status, str(bad[0].get("message", "")), len(mine))
        return CheckResult(check, "passed", str(mine[-1].get("message", "")), len(mine))
    cells = calling_cells(nb, check)
    if not cells:
        return CheckResult(check, "not attempted", "the submission does not call this check")
    stop = next((e for e in errors if e["cell"] in cells), None)
    if stop is None:
        return CheckResult(check, "not attempted", f"never ran (called in cell {cells[0]}, which did not reach it)")
    why = f"cell {stop['cell']} stopped before the check ran: {stop['ename']}: {stop['evalue']}"
    return CheckResult(check, "not attempted" if stop["ename"] == "NotImplementedError" else "failed", why)


def verified_verdict(
    nb: Any, check: str, recs: list[dict[str, Any]], done: dict[int, dict[str, Any]], reached: int, stopped: str
) -> CheckResult:
    """The verdict on ``check`` from the grader's own runs of it (``recs``: ``{"check", "status", "message"}``),
    else from how the grader's re-run of the cell that should have called it ended (``done``, by cell);
    ``reached``: the last cell of the submission executed."""
    mine = [r for r in recs if r.get("check") == check]
    if mine:
        return verdict(nb, check, mine, [])
    cells = calling_cells(nb, check)
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


def is_solution(cell: Any) -> bool:
    return SOLUTION_TAG in (cell.get("metadata", {}).get("tags", []) or [])


def check_cells(nb: Any) -> list[Any]:
    """The instructor's check cells of ``nb``: code cells, not ``solution``, that call a check."""
    return [c for c in nb.cells if c.cell_type == "code" and not is_solution(c) and called_checks(c.source)]


def restore_check_cells(nb: Any, reference: Any) -> list[int]:
    """Put the instructor's check cells of ``reference`` back into ``nb`` (in place), as nbgrader does: a cell of
    ``nb`` with the id of a reference check cell, else (for the reference cells left) the first cell not yet
    matched that calls the same checks, gets the reference cell's source, type and metadata. Returns the
    positions (from 1) of the cells whose content changed. A check cell the submission deleted stays deleted."""
    nbformat, _ = notebook_modules()
    refs = check_cells(reference)
    by_id = {c.get("id"): c for c in refs if c.get("id")}
    matched: dict[int, Any] = {}
    for i, cell in enumerate(nb.cells):
        ref = by_id.get(cell.get("id"))
        if ref is not None and all(r is not ref for r in matched.values()):
            matched[i] = ref
    for ref in refs:
        if any(r is ref for r in matched.values()):
            continue
        want = set(called_checks(ref.source))
        for i, cell in enumerate(nb.cells):
            free = i not in matched and cell.cell_type == "code" and not is_solution(cell)
            if free and set(called_checks(cell.source)) == want:
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


def pick_reference(nb: Any, reference: Path) -> Optional[Any]:
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
