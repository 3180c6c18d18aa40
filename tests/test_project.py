"""Project-level checks: one set of dependencies, and every chapter notebook in shape for the book and Colab."""

import json
import pathlib
import re
import tomllib

import pytest
import yaml

import molli_utils
from molli_utils.runtime import REPOSITORY, colab_install_spec, colab_setup_cell

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "book").rglob("*.ipynb"))


def _pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _extras_of(spec: str) -> set[str]:
    m = re.search(r"\.\[([^\]]*)\]", spec)
    return set(m.group(1).replace(" ", "").split(",")) if m else set()


def test_environment_yaml_installs_the_package_with_every_extra():
    env = yaml.safe_load((ROOT / "environment.yaml").read_text())
    pip_sections = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip_sections) == 1, "environment.yaml needs exactly one pip section"
    specs = [s for s in pip_sections[0] if re.search(r"(^|\s|\")\.\[", s)]
    assert specs, "environment.yaml's pip section must install the package itself (-e .[...])"
    assert _extras_of(specs[0]) == set(_pyproject()["project"]["optional-dependencies"])


def test_makefile_installs_the_same_extras():
    mk = (ROOT / "Makefile").read_text()
    extras = set(re.search(r"^EXTRAS\s*:=\s*(\S+)", mk, re.M).group(1).split(","))
    assert extras == set(_pyproject()["project"]["optional-dependencies"])


def test_torch_is_a_range_admitting_2_14_1():
    deps = _pyproject()["project"]["dependencies"]
    torch_req = next(d for d in deps if re.match(r"torch\b(?!vision)", d))
    assert "==" not in torch_req
    from packaging.specifiers import SpecifierSet

    assert "2.14.1" in SpecifierSet(torch_req[len("torch") :])
    # no upper bound: if Colab ships a newer torch, a cap would make pip downgrade it
    assert "99.0" in SpecifierSet(torch_req[len("torch") :]), (
        f"{torch_req!r} caps torch: drop the upper bound (pip would downgrade a newer torch on Colab)"
    )


def test_book_config_points_colab_at_the_package_repository():
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert cfg["repository"]["url"] == REPOSITORY
    assert cfg["launch_buttons"]["colab_url"].startswith("https://colab.research.google.com")
    assert cfg["execute"]["allow_errors"] is False


def test_one_source_of_truth_for_the_release():
    """__version__ decides the tag the set-up cell installs and the ref the launch buttons open (RELEASING.md)."""
    from molli_utils.runtime import release_tag

    tag = release_tag()
    assert tag == f"v{molli_utils.__version__}" and re.fullmatch(r"v\d+\.\d+\.\d+", tag)
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert cfg["repository"]["branch"] == tag, (
        f"_config.yml repository.branch is {cfg['repository']['branch']!r}: set it to {tag!r}, the release the "
        "set-up cell installs, so that the launch buttons open the notebooks of that release (see RELEASING.md)"
    )
    assert colab_install_spec() == f"molli-utils @ git+{REPOSITORY}@{tag}"
    project = _pyproject()["project"]
    assert project["dynamic"] == ["version"], "the version is molli_utils.__version__ only"
    assert project["urls"]["Repository"] == REPOSITORY
    assert project["license"] == "MIT" and "MIT License" in (ROOT / "LICENSE").read_text()


def test_book_has_chapters():
    assert NOTEBOOKS, "book/ has no chapter notebooks"


def test_every_notebook_is_in_the_toc():
    toc = (ROOT / "_toc.yml").read_text()
    for nb in NOTEBOOKS:
        assert str(nb.relative_to(ROOT).with_suffix("")) in toc, f"{nb.name} is not in _toc.yml"


def _code_cells(nb_path):
    nb = json.loads(nb_path.read_text())
    return nb, [c for c in nb["cells"] if c["cell_type"] == "code"]


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_committed_without_outputs(nb_path):
    _, cells = _code_cells(nb_path)
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in cells), (
        f"{nb_path.name} has outputs: strip them (the build executes the notebooks)"
    )


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_starts_with_colab_setup_and_settings(nb_path):
    _, cells = _code_cells(nb_path)
    setup = "".join(cells[0]["source"])
    assert setup == colab_setup_cell(), "the first code cell must be runtime.colab_setup_cell() (regenerate it)"
    from molli_utils.runtime import release_tag

    # the requirement it installs is colab_install_spec(): the repository at this version's tag
    assert f'REPO, TAG = "{REPOSITORY}", "{release_tag()}"' in setup, "Colab cell must pin the book's version"
    assert 'SPEC or f"molli-utils @ git+{REPO}@{TAG}"' in setup
    assert colab_install_spec() == f"molli-utils @ git+{REPOSITORY}@{release_tag()}"
    assert max(len(line) for line in setup.splitlines()) <= 72, "the set-up cell must fit the text column"
    assert "torch" not in setup.split("sys.modules:")[1], "the Colab cell must never re-install torch"
    assert "%pip" not in setup, "%pip does not raise when the install fails"
    tags = set(cells[0].get("metadata", {}).get("tags", []))
    assert {"remove-output", "hide-input"} <= tags
    settings = "".join(cells[1]["source"])
    assert "settings.profile(" in settings, (
        "the second code cell reads the profile from molli_utils.experiments.settings"
    )


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_never_branches_on_the_profile_itself(nb_path):
    """Three profiles, one place: what a profile means lives in molli_utils.experiments.settings."""
    _, cells = _code_cells(nb_path)
    code = "\n".join("".join(c["source"]) for c in cells)
    branches = re.findall(r".*\bPROFILE\s*(?:==|!=|\bin\b|\bnot in\b).*", code)
    assert not branches, f"{nb_path.name} branches on PROFILE (move the sizes to settings): {branches}"


_DATA_SUFFIXES = (
    ".csv",
    ".tsv",
    ".npy",
    ".npz",
    ".pt",
    ".pth",
    ".pkl",
    ".pickle",
    ".json",
    ".parquet",
    ".h5",
    ".hdf5",
    ".txt",
)


def _string_literals(source: str) -> list[str]:
    """String constants of a code cell; IPython magic and shell lines are blanked out first."""
    import ast

    lines = ["" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines()]
    tree = ast.parse("\n".join(lines))
    return [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_reads_no_file_outside_the_book(nb_path):
    """A notebook reads only what the package gives it (the stored results through results.load) and its downloads:
    no absolute path (/work, /home, /tmp...), no home (~/) or parent (../shared) path, no data file in a folder."""
    _, cells = _code_cells(nb_path)
    bad = []
    for cell in cells:
        for text in _string_literals("".join(cell["source"])):
            path = text.strip()
            if "://" in path or "\n" in path or " " in path or not re.search(r"\w", path):
                continue  # URLs, prose, labels, code and f-string pieces such as "/" are not paths
            if (
                path.startswith(("/", "~", "\\"))
                or re.match(r"^[A-Za-z]:[\\/]", path)
                or ".." in re.split(r"[\\/]", path)
            ):
                bad.append(f"{path!r}: absolute, home or parent path")
            elif path.lower().endswith(_DATA_SUFFIXES) and re.search(r"[\\/]", path):
                bad.append(f"{path!r}: a data file in a folder (stored results come from results.load(NAME))")
    assert not bad, f"{nb_path.name} depends on files outside the book: " + "; ".join(bad)


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_code_fits_the_text_column(nb_path):
    """Code lines of at most 76 characters fit the book's 752 px text column (what `make check-site` measures in
    Chromium, minutes later): caught here, with the line to re-wrap."""
    cells = json.loads(nb_path.read_text())["cells"]
    long = [
        (i, line)
        for i, c in enumerate(cells)
        if c["cell_type"] == "code"
        for line in "".join(c["source"]).splitlines()
        if len(line) > 76
    ]
    assert not long, f"{nb_path.name}: code lines over 76 characters (cell, line): {long}"


#: What a reader sees of a chapter's code: cells without these tags (``hide-input`` folds a cell behind a toggle).
HIDDEN_TAGS = {"hide-input", "remove-input", "remove-cell", "hide-cell"}
#: At most this many visible code lines per chapter (issue #31): the plumbing lives in molli_utils.report.
VISIBLE_CODE_BUDGET = 250


def visible_code_lines(cells) -> int:
    return sum(
        len("".join(c["source"]).splitlines())
        for c in cells
        if c["cell_type"] == "code" and not HIDDEN_TAGS & set(c.get("metadata", {}).get("tags", []))
    )


@pytest.mark.parametrize("nb_path", [p for p in NOTEBOOKS if p.parent.name == "book"], ids=lambda p: p.name)
def test_a_chapter_shows_at_most_the_budget_of_code(nb_path):
    """A chapter is a lecture: the code that teaches in view, tables, verdicts and checks one call each."""
    shown = visible_code_lines(json.loads(nb_path.read_text())["cells"])
    assert shown <= VISIBLE_CODE_BUDGET, (
        f"{nb_path.name} shows {shown} lines of code (budget {VISIBLE_CODE_BUDGET}): "
        "move plumbing to molli_utils.report, or hide what a reader need not see "
        "(tag the cell hide-input, first line a one-line comment caption)"
    )


def test_the_budget_counts_only_visible_cells():
    cell = lambda n, tags=(): {"cell_type": "code", "source": ["x\n"] * n, "metadata": {"tags": list(tags)}}  # noqa: E731
    assert (
        visible_code_lines(
            [
                cell(3),
                cell(5, ["hide-input"]),
                cell(2, ["remove-cell"]),
                {"cell_type": "markdown", "source": ["a\n"] * 9, "metadata": {}},
            ]
        )
        == 3
    )
    assert visible_code_lines([cell(VISIBLE_CODE_BUDGET + 1)]) > VISIBLE_CODE_BUDGET


def test_the_code_is_formatted_by_the_one_formatter_and_has_no_pyflakes_error():
    """``ruff format --check`` and ``ruff check`` (pyproject's [tool.ruff]: pyflakes) pass: ``make format`` fixes
    the first."""
    import shutil
    import subprocess
    import sys

    ruff = shutil.which("ruff", path=str(pathlib.Path(sys.executable).parent)) or shutil.which("ruff")
    assert ruff, 'ruff is not installed: pip install -e ".[test]"'
    done = subprocess.run([ruff, "format", "--check", "."], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, f"run `make format`:\n{done.stdout}{done.stderr}"
    done = subprocess.run([ruff, "check", "--output-format", "concise", "."], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, f"ruff check (pyflakes) finds:\n{done.stdout}{done.stderr}"
