"""The grader's parts that need no kernel (issue #32): reading untrusted files, restoring check cells, the checks' calls as data only,
the executed copies' names, the modules the checks depend on, and molli_utils.sandbox's limits and clean-up."""

import base64
import io
import os
import pickle
import pathlib
import subprocess
import sys
import time
import uuid

import nbformat
import pytest
import torch

from molli_utils import grade, grade_calls, grade_isolation, grade_kernel, sandbox

SANDBOX = pathlib.Path(sandbox.__file__)


@pytest.mark.parametrize(
    "text, reason",
    [
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
    ],
)
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
    reference = nbformat.v4.new_notebook(
        cells=[
            _cell("def f(x):\n    return x", "sol", tags=["solution"]),
            _cell("checks.check_blur(f)", "check-a"),
            _cell("checks.check_dct_matrix(g)", "check-b"),
            _cell("checks.check_sigmoid_schedule(h)", "check-c"),
        ]
    )
    student = nbformat.v4.new_notebook(
        cells=[
            _cell("def f(x):\n    return 2 * x", "sol", tags=["solution"]),
            _cell("checks.check_blur(molli_utils.blur)", "check-a"),  # same id, edited: restored
            _cell("checks.check_dct_matrix(ref_dct)", "renamed"),  # id changed, same checks: restored
            _cell("print('check_sigmoid_schedule deleted')", "other"),  # the third check cell was deleted
        ]
    )
    assert grade.restore_check_cells(student, reference) == [2, 3]
    assert [c.source for c in student.cells] == [
        "def f(x):\n    return 2 * x",
        "checks.check_blur(f)",
        "checks.check_dct_matrix(g)",
        "print('check_sigmoid_schedule deleted')",
    ]
    assert [c["id"] for c in student.cells] == ["sol", "check-a", "renamed", "other"]
    assert grade.restore_check_cells(student, reference) == []  # nothing left to restore


def _local_kernel(functions):
    """A stand-in for the kernel's side: encodes ``functions``' answers as the kernel does, decodes them as the
    grader does (no kernel needed)."""
    agent = grade_kernel.Agent()
    agent.handles.extend(functions)

    def call(handle, args, kwargs):
        request = {"args": args, "kwargs": kwargs, "rng": torch.get_rng_state()}
        request = torch.load(io.BytesIO(_saved(request)), weights_only=True)
        torch.set_rng_state(request["rng"])
        try:
            reply = {
                "result": grade_kernel.encode(
                    agent.handles[handle](*request["args"], **request["kwargs"]), agent.handles
                )
            }
        except BaseException as err:
            reply = {"error": {"type": type(err).__name__, "message": str(err)}}
        reply["rng"] = torch.get_rng_state()
        return grade_calls.answer(grade_calls.load_payload(base64.b64encode(_saved(reply)).decode()), call)

    return call


def _saved(obj):
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def test_checks_run_here_call_the_students_functions_through_data_only():
    from molli_utils.mollifiers import blur, dct_matrix

    call = _local_kernel(
        [
            blur,
            lambda x, h: x,
            dct_matrix,
            lambda n: (_ for _ in ()).throw(NotImplementedError("todo")),
            lambda n: (_ for _ in ()).throw(TypeError("bad")),
        ]
    )
    assert grade_calls.run_check("check_blur", (grade_calls.Remote(0, call),), {})[0] == "passed"
    status, message = grade_calls.run_check("check_blur", (grade_calls.Remote(1, call),), {})
    assert status == "failed" and "wrong values" in message
    assert grade_calls.run_check("check_dct_matrix", (grade_calls.Remote(2, call),), {})[0] == "passed"
    assert grade_calls.run_check("check_dct_matrix", (grade_calls.Remote(3, call),), {}) == (
        "not attempted",
        "NotImplementedError: todo",
    )
    assert grade_calls.run_check("check_dct_matrix", (grade_calls.Remote(4, call),), {}) == (
        "failed",
        "the code under test raised TypeError: bad",
    )
    assert grade_calls.run_check("not_a_check", (), {})[0] == "failed"


def test_the_mollifier_check_sees_the_graders_seed_through_the_kernel():
    """The grader's CPU random state travels with each call, so a verdict on random noise is the same as in-process."""
    from molli_utils import checks

    def mollify(x, gamma):
        gamma = torch.as_tensor(gamma, dtype=x.dtype)
        return (1 - gamma).sqrt() * x + gamma.sqrt() * torch.randn_like(x)

    call = _local_kernel([mollify])
    here = grade_calls.run_check("check_gaussian_mollifier", (mollify,), {})
    assert grade_calls.run_check("check_gaussian_mollifier", (grade_calls.Remote(0, call),), {}) == here
    assert here[0] == "passed"
    assert checks.check_gaussian_mollifier.__wrapped__ is not checks.check_gaussian_mollifier


def test_values_cross_as_data_and_come_back_as_they_were():
    import numpy as np
    import pandas as pd

    handles = []
    value = {
        "t": torch.arange(3.0, requires_grad=True) * 2,
        "a": np.arange(4, dtype=np.float32),
        "s": np.float64(2.5),
        "f": pd.DataFrame({"step": [0, 1], "x": [0.5, 1.5]}),
        "l": [1, (2.0, "x"), None],
        3: True,
        "fn": len,
        "o": object(),
    }
    back = grade_calls.decode(
        torch.load(io.BytesIO(_saved(grade_kernel.encode(value, handles))), weights_only=True), lambda *a: None
    )
    assert torch.equal(back["t"], torch.tensor([0.0, 2.0, 4.0])) and not back["t"].requires_grad
    assert back["a"].dtype == np.float32 and back["a"].tolist() == [0, 1, 2, 3]
    assert isinstance(back["s"], np.float64) and back["s"] == 2.5
    assert back["f"] == {"step": [0, 1], "x": [0.5, 1.5]} and back["l"] == [1, (2.0, "x"), None] and back[3] is True
    assert isinstance(back["fn"], grade_calls.Remote) and handles == [len]
    assert type(back["o"]).__name__ == "object" and "object" in repr(back["o"])


@pytest.mark.parametrize(
    "payload, reason",
    [
        (123, "not text"),
        ("not base64!", "not data"),
        (base64.b64encode(b"x" * 100).decode(), "not data"),
        (base64.b64encode(pickle.dumps(os.system)).decode(), "not data"),  # a pickle that would run code
        ("A" * (grade_calls.MAX_BYTES * 2), "64 MiB"),
    ],
)
def test_what_a_kernel_sends_back_is_refused_unless_it_is_plain_data(payload, reason):
    with pytest.raises(grade_calls.CallError, match=reason):
        grade_calls.load_payload(payload)


def test_an_answer_without_a_result_or_with_a_bad_record_fails_the_call():
    with pytest.raises(grade_calls.CallError, match="no result"):
        grade_calls.answer({"rng": "x"}, lambda *a: None)
    with pytest.raises(grade_calls.CallError, match="not a record"):
        grade_calls.answer([1], lambda *a: None)
    assert grade_calls.run_check("check_blur", "x", {})[0] == "failed"


def test_executed_copies_of_submissions_named_alike_do_not_collide(tmp_path):
    a, b = tmp_path / "a" / "hw.ipynb", tmp_path / "b" / "hw.ipynb"
    assert grade._executed_name(a) != grade._executed_name(b)
    assert grade._executed_name(a).startswith("hw-") and grade._executed_name(a) == grade._executed_name(a)


def test_the_checks_modules_are_those_checks_imports():
    modules = grade_isolation.check_modules(grade_isolation.package_snapshot(grade._PACKAGE_DIR))
    assert {"checks.py", "mollifiers.py", "schedules.py", "metrics.py", "data/__init__.py"} <= set(modules)
    assert "training.py" not in modules and "grade.py" not in modules


def test_isolation_is_said_plainly():
    assert grade.isolation("none").startswith("no bwrap") and "read" in grade.isolation("none")
    with pytest.raises(ValueError):
        grade.isolation("docker")
    if not grade_isolation.bwrap_works():
        with pytest.raises(RuntimeError, match="bubblewrap"):
            grade.isolation("bwrap")
    assert grade.main.__doc__ and "2 for bad arguments" in grade.main.__doc__


def test_a_python_installed_under_tmp_stays_visible_under_bwrap(tmp_path):
    """/tmp is an empty tmpfs in the sandbox, but a virtual environment there (a CI clone in /tmp) is bound back."""
    import subprocess
    import sys
    import tempfile

    if not grade_isolation.bwrap_works():
        pytest.skip("bwrap does not work here")
    with tempfile.TemporaryDirectory(dir="/tmp") as folder:
        venv = pathlib.Path(folder) / "venv"
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
        work = tmp_path / "work"
        (work / "pkg").mkdir(parents=True)
        cmd = grade_isolation.bwrap_prefix(work, [], [venv.resolve()])
        done = subprocess.run(
            [*cmd, str(venv / "bin" / "python"), "-c", "import sys; print(sys.prefix)"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0 and done.stdout.strip() == str(venv.resolve()), done.stderr
        hidden = subprocess.run(
            [*grade_isolation.bwrap_prefix(work, []), str(venv / "bin" / "python"), "-c", "1"],
            capture_output=True,
            timeout=60,
        )
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
    done = subprocess.run(
        [sys.executable, "-I", str(SANDBOX), "--wall", "30", "--", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 3, done.stderr
    time.sleep(0.2)
    assert not _alive(marker), "processes left by the command are killed when it exits"
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-I", str(SANDBOX), "--wall", "1", "--", "sleep", marker],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 128 + 9 and "wall-time limit of 1 s" in done.stderr
    assert time.perf_counter() - start < 10 and not _alive(marker)


def test_the_sandbox_limits_cpu_and_memory():
    probe = (
        "import resource\n"
        "print(resource.getrlimit(resource.RLIMIT_CPU), resource.getrlimit(resource.RLIMIT_AS),"
        " resource.getrlimit(resource.RLIMIT_CORE), resource.getrlimit(resource.RLIMIT_FSIZE))"
    )
    done = subprocess.run(
        [
            sys.executable,
            "-I",
            str(SANDBOX),
            "--cpu",
            "7",
            "--memory",
            "3000",
            "--fsize",
            "5",
            "--",
            sys.executable,
            "-c",
            probe,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    mib = 2**20
    assert done.stdout.split() == f"(7, 7) ({3000 * mib}, {3000 * mib}) (0, 0) ({5 * mib}, {5 * mib})".split()
    burn = subprocess.run(
        [sys.executable, "-I", str(SANDBOX), "--cpu", "1", "--", sys.executable, "-c", "while True: pass"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert burn.returncode in (128 + 9, 128 + 24), burn  # SIGXCPU, or SIGKILL at the hard limit
    with pytest.raises(SystemExit):
        sandbox.main(["--wall", "1"])  # no command


def test_checks_run_by_the_grader_refuse_inputs_too_large_to_judge_quickly():
    """The grader runs the checks in its own process on what a submission sends: sizes are capped before any work."""
    from molli_utils import checks

    big, small = torch.zeros(checks.MAX_ROWS + 1, 2), torch.zeros(10, 2)
    t0 = time.perf_counter()
    status, message = grade_calls.run_check(
        "check_mmd_scores", ({"vanilla": 0.0, "mollified": 0.0}, {"vanilla": big, "mollified": small}, small), {}
    )
    assert status == "failed" and "at most 20,000" in message
    status, message = grade_calls.run_check("check_mmd_scores", ({}, {}, big), {})
    assert status == "failed" and "at most 20,000 held-out points" in message
    table = {
        "step": list(range(1001)),
        "noise_level": [0.0] * 1001,
        "heat_time": [0.0] * 1001,
        "mse_noise": [0.0] * 1001,
        "mse_blur": [0.0] * 1001,
    }
    status, message = grade_calls.run_check("check_noise_vs_blur", (table, torch.zeros(3, 8, 8)), {"horizon": 10})
    assert status == "failed" and "at most 1,000" in message
    assert time.perf_counter() - t0 < 10


def test_a_zip_that_is_not_a_torch_file_is_refused_too():
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("x/data.pkl", b"not a pickle")
    with pytest.raises(grade_calls.CallError, match="not data"):
        grade_calls.load_payload(base64.b64encode(buf.getvalue()).decode())
