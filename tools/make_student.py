"""Write the student versions of the assignment notebooks: solutions stripped, outputs removed.

    python tools/make_student.py [SRC_DIR] [OUT_DIR]     # defaults: book/assignments _build/student

The logic lives in :mod:`molli_utils.assignments` (``make_student(nb) -> nb``), where the tests import it.
"""

import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing the package

from molli_utils.assignments import write_student_versions  # noqa: E402


def main(argv: list[str]) -> int:
    if len(argv) > 2 or any(a in ("-h", "--help") for a in argv):
        print(__doc__.strip())
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    src = pathlib.Path(argv[0]) if argv else ROOT / "book" / "assignments"
    dest = pathlib.Path(argv[1]) if len(argv) > 1 else ROOT / "_build" / "student"
    for path in write_student_versions(src, dest):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
