"""The grader's parts that need no kernel (issue #32): reading untrusted files, restoring check cells, signed records,
the executed copies' names, the modules the checks depend on, and molli_utils.sandbox's limits and clean-up."""

import hashlib
import hmac
import json
import os
import pathlib
import subprocess
import sys
import time
import uuid

import nbformat
import pytest

from molli_utils import grade, sandbox

SANDBOX = pathlib.Path(sandbox.__file__)


@pytest.mark.parametrize("text, reason", [
    ("{}", "no 'nbformat' version"),
    ("[1, 2]", "JSON list"),
    ('{"cells": "x", "nbformat": 4}', "'cells' is a str"),
    ('{"cells": [1], "nbformat": 4}', "cell 1 is a JSON int"),
    ('{"cells": [{"cell_type": "code", "source": 3}], "nbformat": 4}', "source of cell 1 is not text"),
    ('{"cells": [{"cell_type": "x"}], "nbformat": 4}', "cell_type 'x'"),
    ('{"cells": [], "nbformat": 4, "metadata": []}', "'metadata' is not an object"),
    ('{"cells": [], "nbformat": 3}', "nbformat 3"),
    ("not json", "not JSON"),
    ("[" * 100_000, "not JSON"),
    (b"\xff\xfe", "not JSON"),
])  # fmt: skip
def test_read_notebook_says_why_a_file_is_not_gradable(text, reason):
    with pytest.raises(grade.NotGradable, match=reason.replace("(", r"\(")):
        grade.read_notebook(text)


def test_read_notebook_clears_saved_outputs():
    cell = nbformat.v4.new_code_cell("x = 1")
    cell.outputs = [nbformat.v4.new_output("stream", text="saved")]
    nb = grade.read_notebook(nbformat.writes(nbformat.v4.new_notebook(cells=[cell])))
    assert nb.cells[0].outputs == [] and nb.cells[0].source == "x = 1"


def _cell(source, cell_id, tags=()):
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": list(tags)} if tags else {})
    cell["id"] = cell_id
    return cell


def test_check_cells_are_restored_by_id_then_by_the_checks_they_call():
    reference = nbformat.v4.new_notebook(cells=[
        _cell("def f(x):\n    return x", "sol", tags=["solution"]),
        _cell("checks.check_blur(f)", "check-a"),
        _cell("checks.check_dct_matrix(g)", "check-b"),
        _cell("checks.check_sigmoid_schedule(h)", "check-c"),
    ])  # fmt: skip
    student = nbformat.v4.new_notebook(cells=[
        _cell("def f(x):\n    return 2 * x", "sol", tags=["solution"]),
        _cell("checks.check_blur(molli_utils.blur)", "check-a"),  # same id, edited: restored
        _cell("checks.check_dct_matrix(ref_dct)", "renamed"),  # id changed, same checks: restored
        _cell("print('check_sigmoid_schedule deleted')", "other"),  # the third check cell was deleted
    ])  # fmt: skip
    assert grade.restore_check_cells(student, reference) == [2, 3]
    assert [c.source for c in student.cells] == [
        "def f(x):\n    return 2 * x", "checks.check_blur(f)", "checks.check_dct_matrix(g)",
        "print('check_sigmoid_schedule deleted')"]  # fmt: skip
    assert [c["id"] for c in student.cells] == ["sol", "check-a", "renamed", "other"]
    assert grade.restore_check_cells(student, reference) == []  # nothing left to restore


def test_only_records_signed_with_the_key_count():
    key = "k" * 64

    def signed(body, mac=None):
        mac = mac or hmac.new(key.encode(), body.encode(), hashlib.sha256).hexdigest()
        data = {grade.SIGNED_MIME: {"body": body, "hmac": mac}, "text/plain": "x"}
        return nbformat.v4.new_output("display_data", data=data)

    good = json.dumps({"kind": "check", "check": "check_blur", "status": "passed", "cell": 2, "seq": 1})
    forged = json.dumps({"kind": "check", "check": "check_blur", "status": "passed", "cell": 2, "seq": 2})
    student, graders = nbformat.v4.new_code_cell("x"), nbformat.v4.new_code_cell("y")
    student.outputs = [signed(good)]  # validly signed, but before the grader's cells: ignored
    graders.outputs = [signed(good), signed(forged, "0" * 64), signed("not json"),
                       nbformat.v4.new_output("display_data", data={grade.SIGNED_MIME: "text"})]  # fmt: skip
    nb = nbformat.v4.new_notebook(cells=[student, graders])
    assert grade.signed_records(nb, key, first_cell=1) == [json.loads(good)]
    assert grade.signed_records(nb, "other key", first_cell=1) == []


def test_executed_copies_of_submissions_named_alike_do_not_collide(tmp_path):
    a, b = tmp_path / "a" / "hw.ipynb", tmp_path / "b" / "hw.ipynb"
    assert grade._executed_name(a) != grade._executed_name(b)
    assert grade._executed_name(a).startswith("hw-") and grade._executed_name(a) == grade._executed_name(a)


def test_the_checks_modules_are_those_checks_imports():
    modules = grade._check_modules(grade._package_snapshot())
    assert {"checks.py", "mollifiers.py", "schedules.py", "metrics.py", "data/__init__.py"} <= set(modules)
    assert "training.py" not in modules and "grade.py" not in modules


def test_isolation_is_said_plainly():
    assert grade.isolation("none").startswith("no bwrap") and "read" in grade.isolation("none")
    with pytest.raises(ValueError):
        grade.isolation("docker")
    if not grade._bwrap_works():
        with pytest.raises(RuntimeError, match="bubblewrap"):
            grade.isolation("bwrap")
    assert grade.main.__doc__ and "2 for bad arguments" in grade.main.__doc__


def test_a_python_installed_under_tmp_stays_visible_under_bwrap(tmp_path):
    """/tmp is an empty tmpfs in the sandbox, but a virtual environment there (a CI clone in /tmp) is bound back."""
    import subprocess
    import sys
    import tempfile

    if not grade._bwrap_works():
        pytest.skip("bwrap does not work here")
    with tempfile.TemporaryDirectory(dir="/tmp") as folder:
        venv = pathlib.Path(folder) / "venv"
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
        work = tmp_path / "work"
        (work / "pkg").mkdir(parents=True)
        cmd = grade._bwrap_prefix(work, [], [venv.resolve()])
        done = subprocess.run([*cmd, str(venv / "bin" / "python"), "-c", "import sys; print(sys.prefix)"],
                              capture_output=True, text=True, timeout=60)  # fmt: skip
        assert done.returncode == 0 and done.stdout.strip() == str(venv.resolve()), done.stderr
        hidden = subprocess.run([*grade._bwrap_prefix(work, []), str(venv / "bin" / "python"), "-c", "1"],
                                capture_output=True, timeout=60)  # fmt: skip
        assert hidden.returncode != 0  # without it, /tmp hides the environment


def test_the_command_refuses_nonpositive_limits(tmp_path):
    for flag in ("--timeout", "--wall", "--cpu", "--memory"):
        with pytest.raises(SystemExit) as err:
            grade.main([str(tmp_path / "x.ipynb"), flag, "0"])
        assert err.value.code == 2


def _alive(marker):
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if marker.encode() in pathlib.Path(f"/proc/{name}/cmdline").read_bytes():
                    return True
            except OSError:
                continue
    return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the subreaper and /proc are Linux's")
def test_the_sandbox_kills_what_the_command_left_and_stops_it_at_the_wall_time():
    marker = f"{5000 + uuid.uuid4().int % 1000}.{uuid.uuid4().int % 10**6}"
    script = f"(setsid sleep {marker} &) ; (sleep {marker} &) ; exit 3"
    done = subprocess.run([sys.executable, "-I", str(SANDBOX), "--wall", "30", "--", "sh", "-c", script],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 3, done.stderr
    time.sleep(0.2)
    assert not _alive(marker), "processes left by the command are killed when it exits"
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-I", str(SANDBOX), "--wall", "1", "--", "sleep", marker],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 128 + 9 and "wall-time limit of 1 s" in done.stderr
    assert time.perf_counter() - start < 10 and not _alive(marker)


def test_the_sandbox_limits_cpu_and_memory():
    probe = ("import resource\n"
             "print(resource.getrlimit(resource.RLIMIT_CPU), resource.getrlimit(resource.RLIMIT_AS),"
             " resource.getrlimit(resource.RLIMIT_CORE), resource.getrlimit(resource.RLIMIT_FSIZE))")  # fmt: skip
    done = subprocess.run([sys.executable, "-I", str(SANDBOX), "--cpu", "7", "--memory", "3000", "--fsize", "5",
                           "--", sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    mib = 2**20
    assert done.stdout.split() == f"(7, 7) ({3000 * mib}, {3000 * mib}) (0, 0) ({5 * mib}, {5 * mib})".split()
    burn = subprocess.run([sys.executable, "-I", str(SANDBOX), "--cpu", "1", "--", sys.executable, "-c",
                           "while True: pass"], capture_output=True, text=True, timeout=60)  # fmt: skip
    assert burn.returncode in (128 + 9, 128 + 24), burn  # SIGXCPU, or SIGKILL at the hard limit
    with pytest.raises(SystemExit):
        sandbox.main(["--wall", "1"])  # no command
