"""The grader against hostile submissions (issue #32): each test grades tiny notebooks built here and asserts what
the grader reports and that nothing outside the submission's temporary copy changed. Every test passes with and
without bubblewrap: where it differs (a write outside the copy fails under bwrap, and is detected, restored and
reported as tampering without it), both outcomes are spelled out. ``MOLLI_TEST_NO_BWRAP=1`` runs the suite as on a
machine without bubblewrap."""

import json
import os
import pathlib
import shutil
import time
import uuid

import nbformat
import pytest

from molli_utils import grade, grade_isolation, grade_kernel
from molli_utils.checks import RECORD_MIME

pytestmark = [pytest.mark.notebook, pytest.mark.usefixtures("one_thread")]

if os.environ.get("MOLLI_TEST_NO_BWRAP"):  # run the suite as on a machine without bubblewrap
    grade_isolation.BWRAP_WORKS[shutil.which("bwrap") or "bwrap"] = False
BWRAP = grade_isolation.bwrap_works()
LIMITS = grade.Limits(wall=120, cpu=120, memory_mib=8192)
HEAD = "from molli_utils import checks\nfrom molli_utils.mollifiers import blur, dct_matrix\n"
RIGHT_BLUR = "def heat_blur(x, t):\n    return blur(x, t)\n"
WRONG_BLUR = "def heat_blur(x, t):\n    return x\n"


@pytest.fixture(autouse=True)
def package_copy(tmp_path, monkeypatch):
    """The grader guards a copy of molli_utils, never the checkout (other work must not be restored over); the
    kernel's threads limited so that the memory limit is not reached by thread stacks."""
    copy = tmp_path / "checkout" / "molli_utils"
    shutil.copytree(grade._PACKAGE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__", "results", "weights"))
    monkeypatch.setattr(grade, "_PACKAGE_DIR", copy)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.setenv(var, "1")
    return copy


def _cell(source, *, cell_id=None, tags=(), outputs=()):
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": list(tags)} if tags else {})
    if cell_id:
        cell["id"] = cell_id
    cell.outputs = [nbformat.from_dict(o) for o in outputs]
    return cell


def _reference():
    """An instructor notebook: a solution cell and its check cell, for the blur and for the DCT matrix."""
    return nbformat.v4.new_notebook(
        cells=[
            _cell(HEAD, cell_id="imports"),
            _cell(RIGHT_BLUR, cell_id="blur-solution", tags=["solution"]),
            _cell("checks.check_blur(heat_blur)", cell_id="blur-check"),
            _cell("def my_dct(n):\n    return dct_matrix(n)\n", cell_id="dct-solution", tags=["solution"]),
            _cell("checks.check_dct_matrix(my_dct)", cell_id="dct-check"),
        ]
    )


def _submission(blur_source=WRONG_BLUR, *extra, dct="def my_dct(n):\n    return dct_matrix(n)\n"):
    """A student's version of :func:`_reference` with ``blur_source`` as the blur, then ``extra`` cells."""
    nb = _reference()
    nb.cells[1].source, nb.cells[3].source = blur_source, dct
    nb.cells.extend(_cell(src) for src in extra)
    return nb


def _write(folder, name, nb):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    nbformat.write(nb, path)
    return path


def _status(report):
    return {c.check: c.status for c in report.checks}


def _tree(folder):
    """Every file under ``folder`` with its bytes."""
    return {p: p.read_bytes() for p in sorted(pathlib.Path(folder).rglob("*")) if p.is_file()}


def _processes_with(marker):
    """Processes whose command line contains ``marker``."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                cmdline = pathlib.Path(f"/proc/{name}/cmdline").read_bytes()
            except OSError:
                continue
            if marker.encode() in cmdline:
                found.append(int(name))
    return found


# --------------------------------------------------------------------------- 1. the batch


def test_malformed_notebooks_are_not_gradable_and_the_batch_goes_on(tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    bad = {
        "empty.ipynb": "{}",
        "list.ipynb": "[1, 2]",
        "cells.ipynb": '{"cells": "x", "nbformat": 4}',
        "cell.ipynb": '{"cells": [1], "nbformat": 4, "nbformat_minor": 5, "metadata": {}}',
        "text.ipynb": "not json",
        "deep.ipynb": "[" * 100_000,
    }
    for name, text in bad.items():
        (subs / name).write_text(text)
    good = _write(subs, "good.ipynb", _submission(RIGHT_BLUR))
    same_name = _write(tmp_path / "other", "good.ipynb", _submission(WRONG_BLUR))
    ref = _write(tmp_path / "ref", "ref.ipynb", _reference())
    paths = [*(subs / n for n in bad), subs / "missing.ipynb", good, same_name]
    reports = grade.grade(paths, reference=ref, timeout=120, limits=LIMITS, executed_dir=tmp_path / "executed")
    by_name = {pathlib.Path(r.submission).name + pathlib.Path(r.submission).parent.name: r for r in reports}
    for name in [*bad, "missing.ipynb"]:
        report = by_name[name + "subs"]
        assert report.stopped.startswith("not gradable: "), (name, report.stopped)
        assert report.checks == []
    assert "JSON list" in by_name["list.ipynbsubs"].stopped and "'cells' is a str" in by_name["cells.ipynbsubs"].stopped
    assert _status(by_name["good.ipynbsubs"]) == {"check_blur": "passed", "check_dct_matrix": "passed"}
    assert _status(by_name["good.ipynbother"]) == {"check_blur": "failed", "check_dct_matrix": "passed"}
    # two submissions named alike: two executed copies
    executed = sorted(p.name for p in (tmp_path / "executed").iterdir())
    assert len(executed) == 2 and all(n.startswith("good-") for n in executed), executed


def test_nothing_to_grade_is_an_error(tmp_path, capsys):
    plain = _write(tmp_path / "subs", "plain.ipynb", nbformat.v4.new_notebook(cells=[_cell("x = 1")]))
    no_checks = _write(tmp_path / "ref", "ref.ipynb", nbformat.v4.new_notebook(cells=[_cell("y = 2")]))
    assert grade.main([str(plain)]) == 1
    assert "no checks to grade (0 of 0)" in capsys.readouterr().out
    assert grade.main([str(plain), "--reference", str(no_checks.parent)]) == 1
    assert "not gradable: it calls none of the checks" in capsys.readouterr().out
    plain_nb = nbformat.v4.new_notebook(cells=[_cell("x = 1")])
    report, _ = grade.grade_notebook(plain_nb, reference=nbformat.read(no_checks, as_version=4))
    assert report.stopped.startswith("no checks to grade (0 of 0): the reference calls no check")
    with pytest.raises(SystemExit) as err:  # a reference that is not a notebook: refused before anything runs
        (tmp_path / "badref").mkdir()
        (tmp_path / "badref" / "x.ipynb").write_text("[]")
        grade.main([str(plain), "--reference", str(tmp_path / "badref")])
    assert err.value.code == 2 and "not a notebook" in capsys.readouterr().err


# --------------------------------------------------------------------------- 2. isolation


def test_a_submission_runs_in_a_clean_limited_copy_and_leaves_no_process(tmp_path, monkeypatch):
    import socket

    monkeypatch.setenv("INSTRUCTOR_SECRET", "hunter2")
    (tmp_path / "secret.txt").write_text("the instructor's file")
    server = socket.create_server(("127.0.0.1", 0))  # a service on the grader's machine
    port = server.getsockname()[1]
    marker = f"{4000 + uuid.uuid4().int % 1000}.{uuid.uuid4().int % 10**6}"  # a sleep nobody else runs
    spy = (
        "import json, os, subprocess, sys, numpy as np\n"
        "import molli_utils\n"
        f"subprocess.Popen(['sleep', '{marker}'], start_new_session=True)\n"  # detached, its own session
        f"subprocess.Popen('(setsid sleep {marker} &) ; nohup sleep {marker} >/dev/null 2>&1 &', shell=True)\n"
        "for _ in range(20):\n"  # a bounded fork loop: 20 children that outlive the kernel
        "    if os.fork() == 0:\n"
        "        os.setsid()\n"
        f"        os.execvp('sleep', ['sleep', '{marker}'])\n"
        "try:\n"
        "    np.empty(6 * 2**30 // 8)\n"  # 6 GiB, more than the limit
        "    memory = 'allocated'\n"
        "except MemoryError:\n"
        "    memory = 'MemoryError'\n"
        "import socket\n"
        "try:\n"
        f"    socket.create_connection(('127.0.0.1', {port}), timeout=5).close()\n"
        "    network = 'connected'\n"
        "except OSError as err:\n"
        "    network = type(err).__name__\n"
        "def ls(folder):\n"
        "    try:\n"
        "        return sorted(os.listdir(folder))\n"
        "    except OSError:\n"
        "        return None\n"
        "print(json.dumps({'env': sorted(os.environ), 'home': os.environ['HOME'], 'cwd': os.getcwd(),\n"
        "                  'files': sorted(os.listdir('.')), 'package': molli_utils.__file__, 'memory': memory,\n"
        "                  'network': network,\n"
        f"                  'outside': ls({str(tmp_path)!r})}}))\n"
    )
    limits = grade.Limits(wall=120, cpu=120, memory_mib=4096)
    report, executed = grade.grade_notebook(
        _submission(RIGHT_BLUR, spy), reference=_reference(), timeout=120, limits=limits, name="spy.ipynb"
    )
    assert _status(report) == {"check_blur": "passed", "check_dct_matrix": "passed"}, report
    (out,) = [o for o in executed.cells[5].outputs if o.get("name") == "stdout"]
    seen = json.loads(out["text"].splitlines()[-1])
    assert "INSTRUCTOR_SECRET" not in seen["env"] and "MOLLI_GRADE_RUN" in seen["env"]
    assert set(seen["env"]) <= {
        "PATH",
        "LANG",
        "HOME",
        "TMPDIR",
        "PYTHONPATH",
        "PYTHONNOUSERSITE",
        "MPLBACKEND",
        "PYTHONDONTWRITEBYTECODE",
        "MOLLI_PROFILE",
        "MOLLI_GRADE_RUN",
        "JPY_PARENT_PID",
        "PWD",
        "OMP_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "MKL_NUM_THREADS",
        "VIRTUAL_ENV",
        "LC_ALL",
        "TZ",
        "TERM",
        "CLICOLOR",
        "CLICOLOR_FORCE",
        "FORCE_COLOR",
        "PAGER",
        "GIT_PAGER",
        "PYDEVD_USE_FRAME_EVAL",
        "SHLVL",
        "_",
    } | {k for k in os.environ if k[:6] == "MOLLI_"}
    work = pathlib.Path(seen["cwd"]).parent
    assert work.name.startswith("molli-grade-") and not work.exists(), "a fresh temporary folder, removed after"
    assert seen["files"] == ["spy.ipynb"] and seen["home"] == str(work / "home")
    assert seen["package"] == str(work / "pkg" / "molli_utils" / "__init__.py")
    assert seen["memory"] == "MemoryError"
    for _ in range(20):
        if not _processes_with(marker):
            break
        time.sleep(0.1)
    assert _processes_with(marker) == [], "every process the submission started is killed at the end"
    assert report.isolation.startswith("bwrap" if BWRAP else "no bwrap")
    server.close()
    if BWRAP:  # /tmp is an empty tmpfs but for the submission's own folder (and the mount points bwrap made)
        assert "secret.txt" not in (seen["outside"] or [])
        assert seen["network"] != "connected", "no network: not even the grader's localhost"
    else:  # what remains without bubblewrap (book/instructors.md): the instructor's files and network can be reached
        assert "secret.txt" in seen["outside"] and seen["network"] == "connected"


def test_an_infinite_loop_is_stopped_and_the_batch_goes_on(tmp_path):
    loop = "import time\nwhile True:\n    try:\n        time.sleep(0.5)\n    except KeyboardInterrupt:\n        pass\n"
    first = _write(tmp_path / "subs", "loop.ipynb", _submission(RIGHT_BLUR, dct=loop))
    second = _write(tmp_path / "subs", "next.ipynb", _submission(RIGHT_BLUR))
    ref = _write(tmp_path / "ref", "ref.ipynb", _reference())
    limits = grade.Limits(wall=15, cpu=60, memory_mib=8192)
    start = time.perf_counter()
    reports = grade.grade([first, second], reference=ref, timeout=6, limits=limits)
    assert time.perf_counter() - start < 90
    assert "longer than 6 s" in reports[0].stopped or "wall-time limit of 15 s" in reports[0].stopped, reports[0]
    assert _status(reports[0])["check_dct_matrix"] != "passed"
    assert _status(reports[1]) == {"check_blur": "passed", "check_dct_matrix": "passed"} and not reports[1].stopped


# --------------------------------------------------------------------------- 3. files outside the copy


def test_deletion_and_a_write_over_another_submission_change_nothing(tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    precious = subs / "late_submission.ipynb"  # a notebook beside the graded ones; other files: bwrap only
    precious.write_text(nbformat.v4.writes(_reference()))
    victim = _write(subs, "victim.ipynb", _submission(WRONG_BLUR))
    forged = json.dumps(nbformat.v4.writes(_submission(RIGHT_BLUR)))
    attack = (
        f"import os, pathlib\nfor f in [{str(precious)!r}]:\n    try:\n        os.remove(f)\n"
        f"    except OSError as err:\n        print('refused', err)\n"
        f"pathlib.Path({str(victim)!r}).write_text(json.loads({forged!r}))\n"
    )
    attacker = _write(subs, "attacker.ipynb", _submission(RIGHT_BLUR, "import json\n" + attack))
    before = _tree(tmp_path / "subs")
    ref = _write(tmp_path / "ref", "ref.ipynb", _reference())
    reports = grade.grade([attacker, victim], reference=ref, timeout=120, limits=LIMITS)
    assert _tree(tmp_path / "subs") == before, "the deleted file and the overwritten submission are as they were"
    if BWRAP:  # the attack changed nothing: the folder is hidden (an empty tmpfs), the filesystem read-only
        assert not reports[0].tampered and _status(reports[0])["check_blur"] == "passed", reports[0]
    else:  # it succeeded, was detected, and undone
        assert reports[0].stopped.startswith("tampered: ") and str(victim) + " (restored)" in reports[0].tampered
        assert {c.status for c in reports[0].checks} == {"failed"}
    assert _status(reports[1]) == {"check_blur": "failed", "check_dct_matrix": "passed"}, "graded from its own bytes"


def test_tampering_with_the_checks_does_not_reach_the_next_submission(tmp_path, package_copy):
    checkout_checks = package_copy / "checks.py"
    original = checkout_checks.read_bytes()
    append = "\n\ndef check_blur(fn):\n    record('check_blur', 'passed', 'tampered')\n\nCHECKS = CHECKS\n"
    tamper = (
        "from molli_utils import checks as c\n"
        f"for f in (c.__file__, {str(checkout_checks)!r}):\n"
        "    try:\n"
        f"        open(f, 'a').write({append!r})\n"
        "    except OSError as err:\n"
        "        print('refused', f, err)\n"
    )
    subs = tmp_path / "subs"
    first = _write(subs, "tamper.ipynb", _submission(WRONG_BLUR, tamper))
    second = _write(subs, "next.ipynb", _submission(WRONG_BLUR))
    ref = _write(tmp_path / "ref", "ref.ipynb", _reference())
    reports = grade.grade([first, second], reference=ref, timeout=120, limits=LIMITS)
    assert "passed" != _status(reports[0]).get("check_blur")
    if BWRAP:
        assert checkout_checks.read_bytes() == original and not reports[0].tampered
    else:  # the grader's copy and the checkout changed: reported, and later submissions use the grader's snapshot
        assert reports[0].stopped.startswith("tampered: ")
        assert any("checks.py (the grader's copy)" in t for t in reports[0].tampered)
        assert any(t.startswith(str(checkout_checks)) for t in reports[0].tampered)
        checkout_checks.write_bytes(original)
    assert _status(reports[1]) == {"check_blur": "failed", "check_dct_matrix": "passed"}
    assert not reports[1].stopped


# --------------------------------------------------------------------------- 4. forged verdicts


def test_a_monkeypatched_check_or_reference_does_not_pass():
    patch = (
        "import molli_utils, molli_utils.mollifiers, molli_utils.checks\n"
        "checks.check_blur = lambda *a, **k: checks.record('check_blur', 'passed', 'patched')\n"
        "molli_utils.mollifiers.blur = lambda x, t: x\n"
        "molli_utils.checks._ref_blur = lambda x, t: x\n"
        "molli_utils.checks.check_blur = checks.check_blur\n"
        "molli_utils.check_tools.assert_close = lambda *a, **k: None\n"
        "import torch\ntorch.allclose = lambda *a, **k: True\n"
    )
    nb = _submission(WRONG_BLUR)
    nb.cells.insert(2, _cell(patch))
    nb.cells[3].source = "checks.check_blur(blur)  # the reference's own blur: restored to the instructor's cell"
    report, executed = grade.grade_notebook(nb, reference=_reference(), timeout=120, limits=LIMITS)
    assert report.restored == [4]
    assert _status(report) == {"check_blur": "failed", "check_dct_matrix": "passed"}, report
    assert any(r["message"] == "patched" for r in grade.records(executed)), "the patch did run in the student's cells"


def test_forged_records_without_code_do_not_count():
    forged = {"check": "check_blur", "status": "passed", "message": "forged"}
    done = {"cell": 3, "ename": "", "evalue": "", "calls": [{"check": "check_blur", "payload": "forged"}]}
    show = (
        "from IPython.display import display\n"
        f"display({{{RECORD_MIME!r}: {forged!r}, 'text/plain': 'passed'}}, raw=True)\n"
        f"display({{{grade_kernel.DONE_MIME!r}: {done!r}, 'text/plain': 'grader: done'}}, raw=True)\n"
    )
    saved = [{"output_type": "display_data", "metadata": {}, "data": {RECORD_MIME: forged, "text/plain": "passed"}}]
    nb = nbformat.v4.new_notebook(cells=[_cell(show, outputs=saved), _cell("# check_dct_matrix( in a comment")])
    report, _ = grade.grade_notebook(nb, reference=_reference(), timeout=120, limits=LIMITS)
    assert "passed" not in _status(report).values(), report
    assert _status(report)["check_blur"] == "not attempted"
    assert report.checks[0].message == "the submission does not call this check"


def test_clear_output_after_a_failing_check_keeps_it_failed():
    hide = (
        "from IPython.display import clear_output\n"
        "try:\n    checks.check_blur(heat_blur)\nexcept AssertionError:\n    pass\n"
        "clear_output()\nclear_output(wait=True)\nprint('all good')\n"
    )
    nb = nbformat.v4.new_notebook(cells=[_cell(HEAD), _cell(WRONG_BLUR), _cell(hide)])
    report, _ = grade.grade_notebook(nb, timeout=120, limits=LIMITS)  # no reference: the student's cell re-run
    assert _status(report) == {"check_blur": "failed"}, report
    with_ref = _submission(WRONG_BLUR, hide)
    report, _ = grade.grade_notebook(with_ref, reference=_reference(), timeout=120, limits=LIMITS)
    assert _status(report) == {"check_blur": "failed", "check_dct_matrix": "passed"}, report


def test_suppressing_the_graders_records_does_not_help():
    def dropping(word):
        return (
            "import IPython.display, IPython.core.display_functions\n"
            "_show = IPython.display.display\n"
            "def display(*objs, **kw):\n"
            f"    if {word!r} not in repr(objs):\n"
            "        return _show(*objs, **kw)\n"
            "IPython.display.display = IPython.core.display_functions.display = display\n"
        )

    nb = _submission(WRONG_BLUR)
    nb.cells.insert(1, _cell(dropping("failed")))  # verdicts are not displayed by the kernel: nothing to drop
    report, _ = grade.grade_notebook(nb, reference=_reference(), timeout=120, limits=LIMITS)
    assert _status(report) == {"check_blur": "failed", "check_dct_matrix": "passed"}, report
    assert "wrong values" in report.checks[0].message
    nb = _submission(WRONG_BLUR)
    nb.cells.insert(1, _cell(dropping("molli-grade")))  # every record of the grader's agent dropped
    report, _ = grade.grade_notebook(nb, reference=_reference(), timeout=120, limits=LIMITS)
    assert _status(report) == {"check_blur": "failed", "check_dct_matrix": "failed"}, report
    assert all("suppressed" in c.message for c in report.checks), report


def test_a_pickle_sent_back_by_the_kernel_is_refused_not_run(tmp_path):
    """The checks run in the grader's process, reading only data from the kernel: a kernel that sends a pickle
    that would run code (torch.save patched in the student's cell) gets its calls refused, and the code never runs."""
    marker = tmp_path / f"pwned-{uuid.uuid4().hex}"
    evil = (
        "import io, os, pickle, torch\n"
        "class Evil:\n"
        f"    def __reduce__(self):\n        return (os.system, ('touch {marker}',))\n"
        "def save(obj, f, *a, **k):\n    f.write(pickle.dumps(Evil()))\n"
        "torch.save = save\n"
    )
    nb = _submission(RIGHT_BLUR)
    nb.cells.insert(1, _cell(evil))
    report, _ = grade.grade_notebook(nb, reference=_reference(), timeout=120, limits=LIMITS, sandbox="none")
    assert _status(report) == {"check_blur": "failed", "check_dct_matrix": "failed"}, report
    assert all("could not be verified" in c.message and "not data" in c.message for c in report.checks), report
    assert not marker.exists()
