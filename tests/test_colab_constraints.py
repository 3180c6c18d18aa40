"""tools/colab_constraints.py and its output, tools/colab/constraints.txt (Colab's versions of what the install
touches): the freeze is parsed as pip would, the file's header says where it came from, and, with PyPI, Colab's pip
(24.1.2, Colab's Python) plans to install the package's requirements on Colab's pinned packages without replacing one.
"""

import importlib.metadata
import os
import re
import urllib.request

import pytest
from packaging.requirements import Requirement

from tools import colab_constraints as cc

FREEZE = """\
# a comment
absl-py==1.4.0
google-colab @ file:///colabtools/dist/google_colab-1.0.0.tar.gz
-e git+https://example.org/x.git#egg=x
Jinja2==3.1.6
typing_extensions==4.16.0
torch==2.11.0+cu128
nvidia-cublas-cu12==12.8.4.1
numpy==2.1.3
"""


def test_the_freeze_is_parsed_as_pins_without_direct_urls_or_local_labels():
    pins, dropped = cc.parse_freeze(FREEZE)
    assert pins["torch"] == ("torch", "2.11.0")
    assert pins["jinja2"] == ("Jinja2", "3.1.6") and pins["typing-extensions"] == ("typing_extensions", "4.16.0")
    assert set(pins) == {"absl-py", "jinja2", "typing-extensions", "torch", "nvidia-cublas-cu12", "numpy"}
    assert dropped == ["google-colab", "-e git+https://example.org/x.git#egg=x"]
    assert cc.python_version("Ubuntu 22.04.5 LTS\nPython 3.13.15\nR version 4.6.1\n") == "3.13.15"
    with pytest.raises(ValueError):
        cc.python_version("Ubuntu 22.04.5 LTS\n")


def test_a_resolution_keeps_colabs_versions_and_names_what_it_adds_and_leaves_unpinned():
    pins, _ = cc.parse_freeze(FREEZE)
    resolved = {
        "torch": ("torch", "2.11.0"),
        "numpy": ("numpy", "2.1.3"),
        "jinja2": ("jinja2", "3.1.6"),
        "nvidia-cublas": ("nvidia-cublas", "13.1.0.3"),
        "normflows": ("normflows", "1.7.3"),
        "typing-extensions": ("typing_extensions", "4.15.0"),
    }
    keep, adds, loose = cc.select(pins, resolved)
    assert list(keep) == ["jinja2", "numpy", "torch"] and keep["jinja2"] == ("Jinja2", "3.1.6")
    assert adds == ["normflows"]
    assert loose == ["nvidia-cublas", "typing-extensions"]  # a CUDA library; a version that is not Colab's


def test_the_file_reads_back_as_written(tmp_path):
    pins, _ = cc.parse_freeze(FREEZE)
    header = {
        "commit": "0" * 40,
        "date": "2026-08-19",
        "python": "3.13.15",
        "pip": "24.1.2",
        "adds": "normflows",
        "unpinned": "nvidia-cublas (why)",
    }
    path = tmp_path / "constraints.txt"
    path.write_text(cc.render(pins, header))
    read_header, read_pins = cc.read(path)
    assert read_header == header and read_pins == pins
    assert cc.listed(read_header, "adds") == ["normflows"] and cc.listed(read_header, "unpinned") == ["nvidia-cublas"]
    assert cc.listed({"adds": "-"}, "adds") == []


def test_stand_ins_are_installed_distributions_at_the_pinned_versions(tmp_path):
    pins, _ = cc.parse_freeze(FREEZE)
    cc.stand_ins(tmp_path, pins)
    found = {
        cc.canonical(d.metadata["Name"]): d.version for d in importlib.metadata.distributions(path=[str(tmp_path)])
    }
    assert found == {k: v for k, (_, v) in pins.items()}


def test_the_committed_file_is_colabs_freeze_for_this_packages_requirements():
    header, pins = cc.read()
    assert re.fullmatch(r"[0-9a-f]{40}", header["commit"]) and re.match(r"\d{4}-\d\d-\d\d", header["date"])
    assert header["source"].startswith(cc.SOURCE)
    assert re.fullmatch(r"3\.\d+\.\d+", header["python"]) and pins["pip"][1] == header["pip"]
    # the roots are today's requirements: a changed dependency in pyproject.toml means re-running the script
    assert header["roots"].split() == cc.requirements() + cc.KERNEL + cc.TOOLS, "re-run tools/colab_constraints.py"
    for line in cc.requirements() + cc.KERNEL:
        req = Requirement(line)
        name = cc.canonical(req.name)
        if name in pins:  # Colab ships it: its version satisfies the requirement, or pip would replace it
            assert req.specifier.contains(pins[name][1], prereleases=True), (line, pins[name])
        else:
            assert name in cc.listed(header, "adds"), f"{name}: neither pinned nor listed as added"
    assert {"torch", "torchvision", "numpy", "pandas", "matplotlib", "ipykernel"} <= set(pins)
    assert not set(pins) & set(cc.listed(header, "adds") + cc.listed(header, "unpinned"))
    assert all("+" not in v for _, v in pins.values())


def _index_unreachable() -> str | None:
    index = os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple").rstrip("/")
    try:
        urllib.request.urlopen(f"{index}/pip/", timeout=15).close()
    except OSError as err:
        return f"the package index {index} is unreachable ({err})"
    return None


@pytest.mark.slow
def test_colabs_pip_would_add_packages_and_replace_none_of_colabs():
    """Colab's pip on Colab's Python, in a venv whose installed packages are metadata-only stand-ins at Colab's
    versions, plans the install of the package's requirements (~15 s: metadata of what it adds)."""
    header, _ = cc.read()
    if reason := _index_unreachable():
        pytest.skip(reason)
    python = cc.find_python(header["python"])
    if python is None:
        pytest.skip(f"no Python {header['python']} (Colab's) on PATH or under pyenv; set MOLLI_COLAB_PYTHON")
    adds = cc.check(python=python)  # raises naming what would be replaced or added unexpectedly
    assert {"normflows", "pythae", "pytorch-fid"} <= set(adds), adds
