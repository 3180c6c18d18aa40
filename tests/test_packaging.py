"""The package installs as a library: a wheel carries the stored results, and a chapter run from an empty
folder with that (non-editable) installation reads them; a command run there writes under that folder."""

import csv
import json
import os
import pathlib
import shutil
import subprocess
import sys
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The wheel built from this checkout, unpacked as an installed package (``--target``), outside the checkout."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"  # a copy of what git tracks: the build writes nothing into the checkout
    tracked = subprocess.run(
        ["git", "ls-files", "pyproject.toml", "README.md", "LICENSE", "molli_utils"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    untracked = subprocess.run(
        ["git", "ls-files", "--others", "--exclude-standard", "molli_utils"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for name in (n for n in tracked + untracked if (ROOT / n).is_file()):
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, source / name)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp / "dist"),
            str(source),
        ],
        check=True,
        cwd=tmp,
    )
    (wheel,) = (tmp / "dist").glob("molli_utils-*.whl")
    site = tmp / "lib" / "site-packages"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-compile",
            "--target",
            str(site),
            str(wheel),
        ],
        check=True,
        cwd=tmp,
    )
    return wheel, site


def test_the_wheel_carries_every_stored_results_file(installed):
    wheel, _ = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    stored = {p.name for p in (ROOT / "molli_utils" / "results").iterdir() if p.suffix in (".csv", ".gz")}
    assert stored and {f"molli_utils/results/{n}" for n in stored} <= names
    assert not any(n.startswith(("tests/", "book/", "benchmarks/")) for n in names)


def _env(site: pathlib.Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("MOLLI_RESULTS",)}
    env["PYTHONPATH"] = str(site)  # ahead of this checkout's editable install
    return env


@pytest.mark.slow
def test_a_chapter_run_from_an_empty_folder_reads_the_installed_results(installed, tmp_path):
    import nbformat
    from nbclient import NotebookClient

    _, site = installed
    empty = tmp_path / "empty"
    empty.mkdir()
    nb = nbformat.read(ROOT / "book" / "05_report.ipynb", as_version=4)
    probe = nbformat.v4.new_code_cell("import molli_utils, json; print(json.dumps(molli_utils.__file__))")
    nb.cells.insert(2, probe)
    env = {**_env(site), "MOLLI_PROFILE": "quick", "MPLBACKEND": "Agg"}
    old = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)  # the kernel inherits this environment
    try:
        NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(empty)}}).execute()
    finally:
        os.environ.clear()
        os.environ.update(old)
    where = json.loads(nb.cells[2].outputs[0]["text"])
    assert where.startswith(str(site)), f"the chapter imported {where}, not the installed wheel"
    errors = [
        o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.get("output_type") == "error"
    ]
    assert not errors and list(empty.iterdir()) == []  # it read the package's results and wrote nothing


@pytest.mark.slow
def test_a_command_of_the_installed_package_writes_under_the_current_folder(installed, tmp_path):
    _, site = installed
    work = tmp_path / "work"
    work.mkdir()
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import molli_utils, sys; from molli_utils.experiments import main; "
            "main(sys.argv[1:]); print(molli_utils.__file__)",
            "indm",
            "--profile",
            "quick",
            "--datasets",
            "von_mises",
            "--flows",
            "identity",
            "--seeds",
            "0",
            "--steps",
            "5",
            "--n-samples",
            "50",
            "--sample-steps",
            "3",
            "--draws",
            "2",
            "--no-progress",
        ],
        cwd=work,
        env=_env(site),
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip().splitlines()[-1].startswith(str(site))
    assert (work / "results" / "indm_toy2d.csv").exists()
    shipped = site / "molli_utils" / "results" / "indm_toy2d.csv"
    assert shipped.read_bytes() == (ROOT / "molli_utils" / "results" / "indm_toy2d.csv").read_bytes()  # untouched
    (row,) = csv.DictReader(open(work / "results" / "indm_toy2d.csv"))
    assert (row["commit"], row["dirty"], row["steps"]) == ("unknown", "", "5")  # not a checkout: no commit to name
