"""Student versions of the graded assignment notebooks (``book/assignments``).

The instructor notebooks hold the solutions, in cells tagged ``solution``.
:func:`make_student` turns such a notebook into the version handed to students:

* a ``solution`` code cell made of function definitions keeps, for every function,
  its decorators, its signature and its docstring; the body becomes
  ``raise NotImplementedError("Exercise: implement <name>")``. Import statements
  of the cell are kept, any other top-level statement is dropped;
* any other ``solution`` code cell becomes ``raise NotImplementedError("Exercise: ...")``;
* a ``solution`` markdown cell (a written answer) becomes an empty answer box;
* every code cell loses its outputs and execution count;
* every other cell is left exactly as it was (same source, metadata and id).

``python tools/make_student.py book/assignments _build/student`` (or ``make student``)
writes the student versions of a folder of notebooks.

This module needs ``nbformat``, which the package does not require: install the ``teach``
extra (``pip install "molli-utils[teach]"``), which also brings what the grading command
(:mod:`molli_utils.grade`) needs.
"""

from __future__ import annotations

import ast
import copy
import pathlib
from typing import Any, Union

__all__ = ["SOLUTION_TAG", "make_student", "stub_source", "write_student_versions"]

SOLUTION_TAG = "solution"
EXERCISE_CELL = 'raise NotImplementedError("Exercise: complete this cell (see the instructions above)")\n'
ANSWER_CELL = "**Your answer:** *(write your answer here)*\n"


def _nbformat():
    """The ``nbformat`` module, or an ImportError that says how to install it."""
    try:
        import nbformat
    except ImportError as err:
        raise ImportError(
            "molli_utils.assignments needs nbformat, which is not installed: "
            'pip install "molli-utils[teach]" (or pip install nbformat)'
        ) from err
    return nbformat


def _is_solution(cell) -> bool:
    return SOLUTION_TAG in cell.get("metadata", {}).get("tags", [])


def _stub_function(lines: list[str], node: Union[ast.FunctionDef, ast.AsyncFunctionDef]) -> list[str]:
    """Decorators, signature and docstring of ``node`` (from ``lines``), then ``raise NotImplementedError``."""
    start = (node.decorator_list[0].lineno if node.decorator_list else node.lineno) - 1
    first = node.body[0]
    has_doc = (
        isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str)
    )
    if first.lineno == node.lineno:  # one-liner `def f(x): return x`: rebuild the header
        header = copy.copy(node)
        header.body = [ast.Pass()]
        text = ast.unparse(header).splitlines()[:-1]
        indent = " " * (node.col_offset + 4)
        body: list[str] = []
    else:
        text = lines[start : first.lineno - 1]
        indent = " " * first.col_offset
        body = lines[first.lineno - 1 : first.end_lineno] if has_doc else []
    message = f'{indent}raise NotImplementedError("Exercise: implement {node.name}")'
    return [*text, *body, message]


def stub_source(source: str) -> str:
    """The student version of one solution cell's source (see the module docstring)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:  # IPython magics and the like: not a plain function cell
        return EXERCISE_CELL
    functions = (ast.FunctionDef, ast.AsyncFunctionDef)
    if not any(isinstance(node, functions) for node in tree.body):
        return EXERCISE_CELL
    lines = source.splitlines()
    out: list[str] = []
    for node in tree.body:
        if isinstance(node, functions):
            if out:
                out += ["", ""]
            out += _stub_function(lines, node)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            out += lines[node.lineno - 1 : node.end_lineno]
    return "\n".join(out) + "\n"


def make_student(nb: Any) -> Any:
    """A student copy of the instructor notebook ``nb`` (an ``nbformat.NotebookNode`` or the dict of its
    JSON; ``nb`` itself is not modified), as a ``NotebookNode``."""
    student = _nbformat().from_dict(copy.deepcopy(nb))
    for cell in student.cells:
        solution = _is_solution(cell)
        if cell.cell_type == "code":
            if solution:
                cell.source = stub_source(cell.source)
            if cell.get("outputs") or cell.get("execution_count") is not None:
                cell.outputs, cell.execution_count = [], None
        elif solution:
            cell.source = ANSWER_CELL
            cell.pop("attachments", None)
    return student


def write_student_versions(src: Union[str, pathlib.Path], dest: Union[str, pathlib.Path]) -> list[pathlib.Path]:
    """Write the student version of every ``*.ipynb`` directly in ``src`` to ``dest``; return the paths written."""
    nbformat = _nbformat()
    src, dest = pathlib.Path(src), pathlib.Path(dest)
    if not src.is_dir():
        raise ValueError(f"{src} is not a folder: pass the folder of the instructor notebooks (e.g. book/assignments)")
    notebooks = sorted(src.glob("*.ipynb"))
    if not notebooks:
        raise ValueError(f"no notebooks (*.ipynb) in {src}: pass the folder of the instructor notebooks")
    if dest.resolve() == src.resolve():
        raise ValueError(
            f"the output folder {dest} is the source folder: the student versions would overwrite the solutions"
        )
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        out = dest / path.name
        nbformat.write(make_student(nb), out)
        written.append(out)
    return written
