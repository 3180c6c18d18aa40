"""The grading command: the instructor workflow of book/instructors.md, run as written, grades a solved notebook,
an untouched student version and a wrong submission from the checks' records (not from printed text)."""

import json
import os
import pathlib
import re
import subprocess
import sys

import nbformat
import pytest

from molli_utils import grade, grade_cells
from molli_utils.checks import RECORD_MIME

ROOT = pathlib.Path(__file__).resolve().parents[1]
ASSIGNMENT = "assignment2_blurring.ipynb"  # seconds to run; assignment 1 trains flows


def _documented_commands() -> list[str]:
    """The commands of the block that book/instructors.md marks as tested, comments stripped."""
    text = (ROOT / "book" / "instructors.md").read_text()
    marker = text.index("<!-- tests/test_grade.py runs the commands of the next block as written -->")
    block = re.search(r"```bash\n(.*?)```", text[marker:], re.S).group(1)
    block = re.sub(r"\\\n\s*", " ", block)  # a line ending in a backslash continues on the next
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]


def _run(command: str, cwd: pathlib.Path) -> subprocess.CompletedProcess:
    """``command`` in a shell at ``cwd``, with this interpreter's folder first on PATH (the activated environment)."""
    env = {
        **os.environ,
        "PATH": f"{pathlib.Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "OMP_NUM_THREADS": "1",
    }
    return subprocess.run(command, shell=True, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


def _set_source(nb, marker: str, source: str) -> None:
    """Replace the source of the one code cell that contains ``marker``."""
    (cell,) = [c for c in nb.cells if c.cell_type == "code" and marker in c.source]
    cell.source = source


def _wrong_submission(student) -> nbformat.NotebookNode:
    """A student version of assignment 2 with one exercise right, one subtly wrong, one unfinished and its check
    cell deleted, one crashing; plus a forged 'passed' record saved in the outputs (it must not count)."""
    nb = nbformat.reads(nbformat.writes(student), as_version=4)
    _set_source(nb, "def dct_matrix", "from molli_utils.mollifiers import dct_matrix\n")
    _set_source(
        nb,
        "def heat_blur",
        (  # both frequencies divided by H: right for square images only
            "def heat_blur(x, t):\n"
            "    h, w = x.shape[-2], x.shape[-1]\n"
            "    c_h, c_w = dct_matrix(h).to(x.dtype), dct_matrix(w).to(x.dtype)\n"
            "    f_h = math.pi * torch.arange(h, dtype=x.dtype) / h\n"
            "    f_w = math.pi * torch.arange(w, dtype=x.dtype) / h\n"
            "    decay = torch.exp(-(f_h[:, None] ** 2 + f_w[None, :] ** 2) * t)\n"
            "    return c_h.T @ (decay * (c_h @ x @ c_w.T)) @ c_w\n"
        ),
    )
    _set_source(
        nb,
        "def noise_vs_blur",
        "def noise_vs_blur(image, steps, horizon, generator=None):\n    return len(image, steps)\n",
    )
    nb.cells = [c for c in nb.cells if "checks.check_blur_schedule(" not in c.source]
    (blur_check,) = [c for c in nb.cells if "checks.check_blur(" in c.source]
    forged = {"check": "check_blur", "status": "passed", "message": "forged"}
    blur_check.outputs = [
        nbformat.v4.new_output("display_data", data={RECORD_MIME: forged, "text/plain": "passed: forged"})
    ]
    return nb


@pytest.mark.notebook
def test_the_documented_instructor_workflow(tmp_path):
    make_student, grade_command = _documented_commands()
    assert make_student == "make student"
    done = _run(make_student, ROOT)  # the Makefile's target, in the checkout
    assert done.returncode == 0, done.stdout + done.stderr
    student = nbformat.read(ROOT / "_build" / "student" / ASSIGNMENT, as_version=4)

    (tmp_path / "book").symlink_to(ROOT / "book")  # the grading command runs where book/ is, as in the checkout
    subs = tmp_path / "submissions"
    subs.mkdir()
    nbformat.write(nbformat.read(ROOT / "book" / "assignments" / ASSIGNMENT, as_version=4), subs / "solved.ipynb")
    nbformat.write(student, subs / "untouched.ipynb")
    nbformat.write(_wrong_submission(student), subs / "wrong.ipynb")
    (subs / "broken.ipynb").write_text("{not a notebook")

    out = _run(grade_command, tmp_path)
    assert out.returncode == 1, out.stdout + out.stderr  # the unreadable file is reported, the others graded
    reports = {pathlib.Path(r["submission"]).stem: r for r in json.loads((tmp_path / "grades.json").read_text())}
    status = {name: {c["check"]: c["status"] for c in r["checks"]} for name, r in reports.items()}
    names = ["check_dct_matrix", "check_blur", "check_blur_schedule", "check_noise_vs_blur"]
    assert status["solved"] == dict.fromkeys(names, "passed")
    assert status["untouched"] == dict.fromkeys(names, "not attempted")
    assert status["wrong"] == {
        "check_dct_matrix": "passed",
        "check_blur": "failed",
        "check_blur_schedule": "not attempted",
        "check_noise_vs_blur": "failed",
    }
    assert status["broken"] == {} and reports["broken"]["stopped"].startswith("not gradable: not a notebook: not JSON")
    message = {c["check"]: c["message"] for c in reports["wrong"]["checks"]}
    assert "not square" in message["check_blur"] and "forged" not in message["check_blur"]
    assert message["check_blur_schedule"] == "the submission does not call this check"
    assert "TypeError" in message["check_noise_vs_blur"] and "before the check ran" in message["check_noise_vs_blur"]
    assert reports["untouched"]["empty_answers"] == 5 and reports["solved"]["empty_answers"] == 0  # D, E1 and E2 (x2)
    assert all(e["ename"] == "NotImplementedError" for e in reports["untouched"]["errors"])
    # the text report says the same, one line per check
    assert re.search(r"wrong\.ipynb.*\n(?:.*\n)*?\s+check_blur\s+failed\s+blur of a batch", out.stdout), out.stdout
    assert "passed 4 of 4 checks" in out.stdout and "passed 0 of 4 checks" in out.stdout
    assert "passed 1 of 4 checks" in out.stdout


def _fake_executed(cells):
    """An executed notebook from (source, outputs) pairs, without running anything."""
    nb = nbformat.v4.new_notebook()
    for source, outputs in cells:
        cell = nbformat.v4.new_code_cell(source)
        cell.outputs = [nbformat.from_dict(o) for o in outputs]
        nb.cells.append(cell)
    return nb


def _rec(check, status, message=""):
    return {
        "output_type": "display_data",
        "metadata": {},
        "data": {RECORD_MIME: {"check": check, "status": status, "message": message}, "text/plain": status},
    }


def _err(ename, evalue=""):
    return {"output_type": "error", "ename": ename, "evalue": evalue, "traceback": []}


def test_verdicts_from_records_and_errors():
    nb = _fake_executed(
        [
            ("checks.check_dct_matrix(dct_matrix)", [_rec("check_dct_matrix", "passed", "ok")]),
            ("def compare():\n    return checks.check_mmd_scores(s, x, t)", []),
            ("compare()", [_err("NotImplementedError", "Exercise: implement train_flow")]),
            (
                "checks.check_blur(heat_blur)",
                [_rec("check_blur", "passed"), _rec("check_blur", "failed", "t = 10: wrong")],
            ),
            ("checks.check_blur_schedule(f)", [_err("ValueError", "bad")]),
            ("checks.check_ring_data(make_ring)", []),
            ("print('passed: check_noise_vs_blur')", []),  # printed text is not a record
        ]
    )
    assert grade.expected_checks(nb) == [
        "check_dct_matrix",
        "check_mmd_scores",
        "check_blur",
        "check_blur_schedule",
        "check_ring_data",
    ]
    recs, errors = grade.records(nb), grade_cells.cell_errors(nb)
    got = {c: grade_cells.verdict(nb, c, recs, errors) for c in grade.expected_checks(nb)}
    assert got["check_dct_matrix"].status == "passed" and got["check_dct_matrix"].calls == 1
    assert got["check_mmd_scores"].status == "not attempted" and "cell 3" in got["check_mmd_scores"].message
    assert got["check_blur"].status == "failed" and got["check_blur"].message == "t = 10: wrong"
    assert got["check_blur_schedule"].status == "failed" and "ValueError: bad" in got["check_blur_schedule"].message
    assert got["check_ring_data"].status == "not attempted" and "never ran" in got["check_ring_data"].message


def test_the_command_line_refuses_bad_arguments(tmp_path):
    with pytest.raises(SystemExit) as err:
        grade.main([str(tmp_path / "x.ipynb"), "--reference", str(tmp_path / "missing")])
    assert err.value.code == 2
    with pytest.raises(ValueError, match="no notebooks"):
        grade_cells.pick_reference(nbformat.v4.new_notebook(), tmp_path)


@pytest.mark.notebook
def test_a_cell_past_the_timeout_stops_the_run_and_is_reported():
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell(
                "from molli_utils import checks\nfrom molli_utils.mollifiers import dct_matrix\n"
                "checks.check_dct_matrix(dct_matrix)"
            ),
            nbformat.v4.new_code_cell("import time\ntime.sleep(60)"),
            nbformat.v4.new_code_cell("checks.check_blur(lambda x, t: x)"),
        ]
    )
    report, _ = grade.grade_notebook(nb, timeout=5)
    assert "longer than 5 s" in report.stopped
    assert [(c.check, c.status) for c in report.checks] == [
        ("check_dct_matrix", "passed"),
        ("check_blur", "not attempted"),
    ]
