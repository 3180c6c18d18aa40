"""CI plays Colab: a notebook alone installs the package and runs, in a fresh environment that has only torch and
what Colab ships, with ``google.colab`` imported at kernel start.

Once per session: a fresh venv with torch and torchvision (the versions of this environment) and Colab's usual
numpy, pandas, matplotlib, IPython and ipykernel (+ nbclient/nbformat to drive it); a local git mirror of the
checkout under test (uncommitted changes included, as one commit in the mirror only), tagged ``v<version>`` in
the mirror only; a stub ``google.colab`` that an IPython startup file imports. Each test copies ONE notebook
into an empty folder, uninstalls ``molli_utils`` from the venv, points the set-up cell at the mirror through
``MOLLI_INSTALL_SPEC`` and executes the notebook top to bottom in the quick profile. This proves the whole
Colab path except the network: the set-up cell, the package's declared dependencies, the stored results
shipped as package data, and that torch is never re-installed. It needs ~6 GB of disk while it runs.
"""

import importlib.metadata
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

import nbformat
import pytest

import molli_utils
from molli_utils.assignments import make_student
from molli_utils.grade import records
from molli_utils.runtime import release_tag

pytestmark = pytest.mark.notebook

ROOT = pathlib.Path(__file__).resolve().parents[1]
COLAB_SHIPS = ["numpy", "pandas", "matplotlib", "ipython", "ipykernel", "nbclient", "nbformat"]

_DRIVER = """
import os, sys
import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

src, dst, allow_errors = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
nb = nbformat.read(src, as_version=4)
client = NotebookClient(nb, timeout=1800, kernel_name="python3", allow_errors=allow_errors,
                        resources={"metadata": {"path": os.path.dirname(src)}})
try:
    client.execute()
except CellExecutionError:  # Colab's "Run all" stops at the first error too
    pass
nbformat.write(nb, dst)
"""

_PROBE = """import json, sys
import molli_utils, torch
print("PROBE " + json.dumps({"molli_utils": molli_utils.__file__, "version": molli_utils.__version__,
                             "torch": torch.__version__, "colab": "google.colab" in sys.modules}))"""


def _sh(*args, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, **kwargs)
    assert done.returncode == 0, f"{' '.join(map(str, args))} failed:\n{done.stdout}\n{done.stderr}"
    return done


def _mirror_of_the_checkout(dest: pathlib.Path, tag: str) -> pathlib.Path:
    """A git clone of the checkout whose HEAD is the working tree under test, tagged ``tag`` (in the mirror only)."""
    _sh("git", "clone", "--quiet", ROOT, dest)
    files = _sh("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", cwd=ROOT).stdout.split("\0")
    for name in filter(None, files):
        target = dest / name
        if (ROOT / name).is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, target)
        elif target.exists():  # deleted in the working tree
            target.unlink()
    _sh("git", "add", "-A", cwd=dest)
    identity = ["-c", "user.name=test_colab", "-c", "user.email=test_colab@localhost"]
    if _sh("git", "status", "--porcelain", cwd=dest).stdout.strip():
        _sh("git", *identity, "commit", "--quiet", "-m", "the working tree under test", cwd=dest)
    _sh("git", *identity, "tag", tag, cwd=dest)
    return dest


@pytest.fixture(scope="session")
def colab():
    """The fresh 'Colab' environment: venv, kernel settings, the mirror and the environment variables of a run."""
    top = pathlib.Path(tempfile.mkdtemp(prefix="molli-colab-"))
    try:
        venv = top / "venv"
        _sh(sys.executable, "-m", "venv", venv)
        python = venv / "bin" / "python"
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("MOLLI_", "PYTHON", "VIRTUAL_ENV", "JUPYTER", "IPYTHON", "MPL"))}  # fmt: skip
        env.update(PATH=f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}", PYTHONNOUSERSITE="1", PIP_NO_CACHE_DIR="1",
                   PIP_DISABLE_PIP_VERSION_CHECK="1", JUPYTER_DATA_DIR=str(top / "jupyter"),
                   JUPYTER_CONFIG_DIR=str(top / "jupyter-config"), IPYTHONDIR=str(top / "ipython"),
                   OMP_NUM_THREADS="1")  # fmt: skip
        torch_pins = [f"{p}=={importlib.metadata.version(p)}" for p in ("torch", "torchvision")]
        _sh(python, "-m", "pip", "install", "--quiet", "--upgrade", "pip", env=env)
        _sh(python, "-m", "pip", "install", "--quiet", *torch_pins, *COLAB_SHIPS, env=env)
        stub = top / "colab-stub" / "google" / "colab"
        stub.mkdir(parents=True)
        (stub / "__init__.py").write_text('"""A stand-in for Colab\'s google.colab module (tests/test_colab.py)."""\n')
        startup = top / "ipython" / "profile_default" / "startup"
        startup.mkdir(parents=True)
        (startup / "00-google-colab.py").write_text(
            f"import sys\nsys.path.append({str(top / 'colab-stub')!r})\nimport google.colab  # as on Colab\n")
        mirror = _mirror_of_the_checkout(top / "mirror", release_tag())
        env.update(MOLLI_INSTALL_SPEC=f"molli-utils @ git+file://{mirror}@{release_tag()}", MOLLI_PROFILE="quick")
        if os.environ.get("MOLLI_DATA"):  # offline UCI arrays, for the chapters that read them (not 03, 06)
            env["MOLLI_DATA"] = os.environ["MOLLI_DATA"]
        (top / "driver.py").write_text(_DRIVER)
        yield {"top": top, "python": python, "env": env, "mirror": mirror}
    finally:
        shutil.rmtree(top, ignore_errors=True)


def _torch_record(colab) -> tuple:
    (record,) = (colab["top"] / "venv").glob("lib/python*/site-packages/torch-*.dist-info/RECORD")
    stat = record.stat()
    return record, stat.st_ino, stat.st_mtime_ns


def _run_alone(colab, nb, name: str, *, allow_errors: bool = False, env: dict | None = None):
    """Execute ``nb`` as the only file of an empty folder in the fresh environment, without molli_utils installed;
    return the executed notebook and the probe's findings (None when the probe did not run)."""
    subprocess.run([colab["python"], "-m", "pip", "uninstall", "--quiet", "--yes", "molli-utils"], env=colab["env"],
                   capture_output=True)  # fmt: skip
    work = pathlib.Path(tempfile.mkdtemp(dir=colab["top"], prefix="notebook-"))
    nb = nbformat.from_dict(json.loads(nbformat.writes(nb)))
    nb.cells.append(nbformat.v4.new_code_cell(_PROBE))
    nbformat.write(nb, work / name)
    out = colab["top"] / f"executed-{name}"
    _sh(colab["python"], colab["top"] / "driver.py", work / name, out, "1" if allow_errors else "0",
        env=env or colab["env"], cwd=work, timeout=3600)  # fmt: skip
    executed = nbformat.read(out, as_version=4)
    probe = [o["text"] for o in executed.cells[-1].get("outputs", []) if o.get("name") == "stdout"]
    found = json.loads(probe[0].split("PROBE ", 1)[1]) if probe else None
    return executed, found


def _errors(nb) -> list[tuple[str, str]]:
    return [(o["ename"], o["evalue"]) for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
            if o.get("output_type") == "error"]  # fmt: skip


def _assert_installed_like_colab(colab, found, before):
    assert found is not None, "the probe cell did not run"
    assert found["colab"], "google.colab was not imported at kernel start"
    assert found["molli_utils"].startswith(str(colab["top"] / "venv")), f"imported {found['molli_utils']}, not the install"
    assert found["version"] == molli_utils.__version__
    assert found["torch"].split("+")[0] == importlib.metadata.version("torch").split("+")[0]
    assert _torch_record(colab) == before, "installing molli_utils re-installed torch"


@pytest.mark.parametrize("chapter", ["03_toys.ipynb", "06_images.ipynb"])
def test_a_chapter_alone_installs_and_runs(colab, chapter):
    before = _torch_record(colab)
    executed, found = _run_alone(colab, nbformat.read(ROOT / "book" / chapter, as_version=4), chapter)
    assert not _errors(executed), _errors(executed)
    _assert_installed_like_colab(colab, found, before)


def test_a_student_assignment_alone_installs_and_stops_at_the_exercises(colab):
    student = make_student(nbformat.read(ROOT / "book" / "assignments" / "assignment1_gaussian_mollification.ipynb",
                                         as_version=4))  # fmt: skip
    before = _torch_record(colab)
    executed, found = _run_alone(colab, student, "assignment1.ipynb", allow_errors=True)
    errors = _errors(executed)
    assert errors and {e for e, _ in errors} == {"NotImplementedError"}, errors
    first = next(c for c in executed.cells if c.cell_type == "code")
    assert not [o for o in first.outputs if o.get("output_type") == "error"]
    recs = records(executed)
    assert recs and {r["status"] for r in recs} == {"not attempted"}, recs
    _assert_installed_like_colab(colab, found, before)


def test_a_failed_install_stops_the_first_cell_with_the_fix(colab):
    spec = f"molli-utils @ git+file://{colab['mirror']}@v0.0.0-no-such-tag"
    nb = nbformat.read(ROOT / "book" / "03_toys.ipynb", as_version=4)
    executed, found = _run_alone(colab, nb, "03_toys.ipynb", env={**colab["env"], "MOLLI_INSTALL_SPEC": spec})
    code = [c for c in executed.cells if c.cell_type == "code"]
    (error,) = [o for o in code[0].outputs if o.get("output_type") == "error"]
    assert error["ename"] == "RuntimeError"
    assert spec in error["evalue"] and "failed" in error["evalue"] and "MOLLI_INSTALL_SPEC" in error["evalue"]
    assert all(not c.get("outputs") for c in code[1:]), "execution must stop at the set-up cell"
    assert found is None
