"""Write the student versions of the assignment notebooks: solutions stripped, outputs removed.

    python tools/make_student.py [SRC_DIR] [OUT_DIR]     # defaults: book/assignments _build/student

Relative paths are relative to the current folder; the defaults are those of this checkout. It runs
from a checkout without installing the package, and needs only nbformat (``pip install nbformat``):
it loads ``molli_utils/assignments.py`` by itself, without the package's torch imports. The logic
lives in :mod:`molli_utils.assignments` (``make_student(nb) -> nb``), where the tests import it.
"""

import importlib.util
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _assignments():
    """``molli_utils/assignments.py`` of this checkout, loaded alone (it imports nothing of the package)."""
    spec = importlib.util.spec_from_file_location("molli_assignments", ROOT / "molli_utils" / "assignments.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str]) -> int:
    """Write the student versions of ``argv[0]``'s notebooks to ``argv[1]``; 0 on success, 2 on bad arguments."""
    if len(argv) > 2 or any(a in ("-h", "--help") for a in argv):
        print(__doc__.strip())
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    src = pathlib.Path(argv[0]) if argv else ROOT / "book" / "assignments"
    dest = pathlib.Path(argv[1]) if len(argv) > 1 else ROOT / "_build" / "student"
    try:
        written = _assignments().write_student_versions(src, dest)
    except (ImportError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for path in written:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
