"""CI plays Colab: a notebook alone installs the package and runs, in a fresh environment that holds Colab's own
versions of what the install touches, with ``google.colab``, numpy, pandas and matplotlib imported at kernel start.

Once per session: a fresh venv of Colab's Python (3.13 per Colab's published freeze; pyenv's 3.13 here: see
``tools/colab/constraints.txt``, whose header names the freeze's commit), with Colab's pip (24.1.2) and every
package of that constraints file installed at its pinned version (``pip install -r``): torch and torchvision are
Colab's versions taken from PyPI (there CUDA 13 builds, with their CUDA libraries; on Colab +cu128 builds: the
same code, run here on the CPU); a local git mirror of the checkout under test (uncommitted changes included, as
one commit in the mirror only), tagged ``v<version>`` in the mirror only; a stub ``google.colab`` that an IPython
startup file imports, with numpy, pandas and matplotlib, as Colab's kernel has them imported before the first cell.
Each test copies ONE notebook into an empty folder, uninstalls ``molli_utils`` from the venv, points the set-up
cell at the mirror through ``MOLLI_INSTALL_SPEC`` and executes the notebook top to bottom in the quick profile.
The set-up cell's plain ``pip install`` (no constraints, as on Colab) must only ADD packages: every distribution
the environment had before keeps its version and its files (torch is not re-installed), and what appears is
molli-utils and packages Colab lacks (the constraints file's ``adds``); numpy, pandas and matplotlib, imported at
kernel start, are not upgraded underneath the kernel (the imported module's version is the installed one, Colab's).

Without Colab's Python (neither ``python3.13`` on PATH nor under pyenv, nor ``$MOLLI_COLAB_PYTHON``) the venv is
made from the running Python instead, with a warning: the same pins, another interpreter. Python 3.13 is the
default because torch installs there within reason: PyPI's torch 2.11.0 with its CUDA libraries took ~100 s and
4.7 GB here, about what the local torch 2.14.1 for 3.11 costs (~70 s, 5.5 GB).

This proves the whole Colab path except the network and the GPU: the set-up cell, the package's declared
dependencies against Colab's versions, the stored results shipped as package data. It needs ~6 GB of disk and
~2 GB of downloads from PyPI (mostly torch and its CUDA libraries) while it runs. The cheap check of the same question,
without installing anything, is ``tests/test_colab_constraints.py``.
"""

import importlib.metadata
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import warnings

import nbformat
import pytest

import molli_utils
from molli_utils.assignments import make_student
from molli_utils.grade import records
from molli_utils.runtime import release_tag
from tools import colab_constraints as cc

pytestmark = pytest.mark.notebook

ROOT = pathlib.Path(__file__).resolve().parents[1]
#: Colab's versions of what the install and the kernel touch (header: source commit, Python, pip, adds, unpinned).
HEADER, PINS = cc.read()
#: Imported by Colab's kernel before the first cell runs (the install must not upgrade them underneath it).
PRELOADED = ["numpy", "pandas", "matplotlib"]

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

_PROBE = """import json, sys, importlib.metadata
import molli_utils, torch, google.colab
print("PROBE " + json.dumps({"molli_utils": molli_utils.__file__, "version": molli_utils.__version__,
                             "torch": torch.__version__, "colab": "google.colab" in sys.modules,
                             "python": "%d.%d" % sys.version_info[:2], "preloaded": google.colab._preloaded,
                             "imported": {n: sys.modules[n].__version__ for n in google.colab._preloaded},
                             "installed": {n: importlib.metadata.version(n) for n in google.colab._preloaded}}))"""

#: The IPython startup file: import the stub google.colab, then what Colab's kernel has imported before any cell.
_STARTUP = """import sys
sys.path.append({stub!r})
import google.colab  # as on Colab
import {modules}
google.colab._preloaded = {{m: sys.modules[m].__version__ for m in {names!r}}}
"""


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


def _colab_python() -> str:
    """Colab's Python (the constraints file's major.minor) if this machine has it, else the running one (warned)."""
    found = cc.find_python(HEADER["python"])
    if found is None:
        warnings.warn(
            f"no Python {HEADER['python']} (Colab's) on PATH or under pyenv: the Colab simulation runs "
            f"on {sys.version.split()[0]} (set MOLLI_COLAB_PYTHON)"
        )
    return found or sys.executable


def _distributions(venv: pathlib.Path) -> dict[str, tuple[str, int, int]]:
    """{canonical name: (version, inode and mtime of its dist-info folder)} of what the venv has installed: a
    re-install of the same version gives a new folder."""
    (site,) = venv.glob("lib/python*/site-packages")
    found = {}
    for dist in importlib.metadata.distributions(path=[str(site)]):
        info = pathlib.Path(dist._path)  # the .dist-info folder
        stat = info.stat()
        found[cc.canonical(dist.metadata["Name"])] = (dist.version, stat.st_ino, stat.st_mtime_ns)
    return found


@pytest.fixture(scope="session")
def colab():
    """The fresh 'Colab' environment: venv, kernel settings, the mirror and the environment variables of a run."""
    top = pathlib.Path(tempfile.mkdtemp(prefix="molli-colab-"))
    try:
        venv = top / "venv"
        _sh(_colab_python(), "-m", "venv", venv)
        python = venv / "bin" / "python"
        drop = ("MOLLI_", "PYTHON", "VIRTUAL_ENV", "JUPYTER", "IPYTHON", "MPL", "PIP_CONSTRAINT")  # as on Colab: none
        env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
        env.update(
            PATH=f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}",
            PYTHONNOUSERSITE="1",
            PIP_NO_CACHE_DIR="1",
            PIP_DISABLE_PIP_VERSION_CHECK="1",
            JUPYTER_DATA_DIR=str(top / "jupyter"),
            JUPYTER_CONFIG_DIR=str(top / "jupyter-config"),
            IPYTHONDIR=str(top / "ipython"),
            OMP_NUM_THREADS="1",
        )
        _sh(python, "-m", "pip", "install", "--quiet", f"pip=={HEADER['pip']}", env=env)  # Colab's pip
        _sh(python, "-m", "pip", "install", "--quiet", "-r", cc.CONSTRAINTS, env=env)  # Colab's versions
        stub = top / "colab-stub" / "google" / "colab"
        stub.mkdir(parents=True)
        (stub / "__init__.py").write_text('"""A stand-in for Colab\'s google.colab module (tests/test_colab.py)."""\n')
        startup = top / "ipython" / "profile_default" / "startup"
        startup.mkdir(parents=True)
        (startup / "00-google-colab.py").write_text(
            _STARTUP.format(stub=str(top / "colab-stub"), modules=", ".join(PRELOADED), names=PRELOADED)
        )
        mirror = _mirror_of_the_checkout(top / "mirror", release_tag())
        env.update(MOLLI_INSTALL_SPEC=f"molli-utils @ git+file://{mirror}@{release_tag()}", MOLLI_PROFILE="quick")
        if os.environ.get("MOLLI_DATA"):  # offline UCI arrays, for the chapters that read them (not 03, 06)
            env["MOLLI_DATA"] = os.environ["MOLLI_DATA"]
        (top / "driver.py").write_text(_DRIVER)
        yield {"top": top, "python": python, "env": env, "mirror": mirror}
    finally:
        shutil.rmtree(top, ignore_errors=True)


def test_the_environment_is_colabs(colab):
    """Every pinned package at Colab's version; anything else is torch's CUDA libraries or what Colab lacks."""
    have = _distributions(colab["top"] / "venv")
    assert {k: have.get(k, ("missing",))[0] for k in PINS} == {k: v for k, (_, v) in PINS.items()}
    extra = set(have) - set(PINS) - {"molli-utils"}
    assert extra <= set(cc.listed(HEADER, "unpinned") + cc.listed(HEADER, "adds")), sorted(extra)


def _run_alone(colab, nb, name: str, *, allow_errors: bool = False, env: dict | None = None):
    """Execute ``nb`` as the only file of an empty folder in the fresh environment, without molli_utils installed;
    return the executed notebook, the probe's findings (None when the probe did not run) and what was installed
    before (:func:`_distributions`)."""
    subprocess.run(
        [colab["python"], "-m", "pip", "uninstall", "--quiet", "--yes", "molli-utils"],
        env=colab["env"],
        capture_output=True,
    )
    before = _distributions(colab["top"] / "venv")
    work = pathlib.Path(tempfile.mkdtemp(dir=colab["top"], prefix="notebook-"))
    nb = nbformat.from_dict(json.loads(nbformat.writes(nb)))
    nb.cells.append(nbformat.v4.new_code_cell(_PROBE))
    nbformat.write(nb, work / name)
    out = colab["top"] / f"executed-{name}"
    _sh(
        colab["python"],
        colab["top"] / "driver.py",
        work / name,
        out,
        "1" if allow_errors else "0",
        env=env or colab["env"],
        cwd=work,
        timeout=3600,
    )
    executed = nbformat.read(out, as_version=4)
    probe = [o["text"] for o in executed.cells[-1].get("outputs", []) if o.get("name") == "stdout"]
    found = json.loads(probe[0].split("PROBE ", 1)[1]) if probe else None
    return executed, found, before


def _errors(nb) -> list[tuple[str, str]]:
    return [
        (o["ename"], o["evalue"])
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if o.get("output_type") == "error"
    ]


def _assert_installed_like_colab(colab, found, before):
    """The install cell added molli-utils (and packages Colab lacks), replaced nothing, upgraded nothing imported."""
    assert found is not None, "the probe cell did not run"
    assert found["colab"], "google.colab was not imported at kernel start"
    assert found["molli_utils"].startswith(str(colab["top"] / "venv")), (
        f"imported {found['molli_utils']}, not the install"
    )
    assert found["version"] == molli_utils.__version__
    if cc.find_python(HEADER["python"]):
        assert found["python"] == ".".join(HEADER["python"].split(".")[:2]), "not Colab's Python"
    assert found["torch"].split("+")[0] == PINS["torch"][1]
    after = _distributions(colab["top"] / "venv")
    assert after.get("torch") == before["torch"], "installing molli_utils re-installed torch"
    changed = {
        k: f"{v[0]} -> {after[k][0] if k in after else 'removed'}" for k, v in before.items() if after.get(k) != v
    }
    assert not changed, f"the install cell replaced what the Colab environment had: {changed}"
    added = set(after) - set(before)
    assert "molli-utils" in added
    assert added - {"molli-utils"} <= set(cc.listed(HEADER, "adds")), f"added what Colab has: {sorted(added)}"
    assert set(found["preloaded"]) == set(PRELOADED), "numpy, pandas, matplotlib were not imported at kernel start"
    pinned = {n: PINS[n][1] for n in PRELOADED}
    assert found["preloaded"] == found["imported"] == found["installed"] == pinned, (
        f"upgraded underneath the kernel: at start {found['preloaded']}, imported {found['imported']}, "
        f"installed {found['installed']}, Colab's {pinned}"
    )


@pytest.mark.parametrize("chapter", ["03_toys.ipynb", "06_images.ipynb"])
def test_a_chapter_alone_installs_and_runs(colab, chapter):
    executed, found, before = _run_alone(colab, nbformat.read(ROOT / "book" / chapter, as_version=4), chapter)
    assert not _errors(executed), _errors(executed)
    _assert_installed_like_colab(colab, found, before)


def test_a_student_assignment_alone_installs_and_stops_at_the_exercises(colab):
    student = make_student(
        nbformat.read(ROOT / "book" / "assignments" / "assignment1_gaussian_mollification.ipynb", as_version=4)
    )
    executed, found, before = _run_alone(colab, student, "assignment1.ipynb", allow_errors=True)
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
    executed, found, _ = _run_alone(colab, nb, "03_toys.ipynb", env={**colab["env"], "MOLLI_INSTALL_SPEC": spec})
    code = [c for c in executed.cells if c.cell_type == "code"]
    (error,) = [o for o in code[0].outputs if o.get("output_type") == "error"]
    assert error["ename"] == "RuntimeError"
    assert spec in error["evalue"] and "failed" in error["evalue"] and "MOLLI_INSTALL_SPEC" in error["evalue"]
    assert all(not c.get("outputs") for c in code[1:]), "execution must stop at the set-up cell"
    assert found is None
